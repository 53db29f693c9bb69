/* sizehint.h — how many memo entries and last successes a workspace held when the last
 * kiln that wrote it exited (kiln_dir/sizes). The loader sizes its tables from it before
 * reading, where counting the rows would scan both tables whole (~210 ms for a million
 * tasks). Only a hint: missing, stale or torn, the tables grow as rows come; nothing kiln
 * decides depends on it. */
#ifndef KILN_SIZEHINT_H
#define KILN_SIZEHINT_H

#include <stddef.h>

typedef struct {
	size_t memo, last;
} SizeHint;

/* The hint at path, or {0, 0} when there is none that reads whole. */
SizeHint sizehint_read(const char *path);
/* Replaces the hint at path with h (a failure is not reported: the next reader grows). */
void sizehint_write(const char *path, SizeHint h);

#endif
