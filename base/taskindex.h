/* taskindex.h — the graph's name and output indexes. Open addressing over 8-byte slots
 * (32 bits of the key's hash, the task's position; for outputs, 24 bits of the hash and
 * which of the task's outputs it is) instead of key, value and hash pointers: a million
 * tasks' two indexes take 21 MiB rather than 96, and a probe compares strings only on a
 * hash match. Keys live in the tasks themselves. */
#ifndef KILN_TASKINDEX_H
#define KILN_TASKINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "keytable.h"

struct Task;

/* a slot's id: the task's position in the graph's task list + 1 (keytable.h's slots) */
typedef KeyTableSlot TaskIndexSlot;

typedef struct {
	TaskIndexSlot *slots;
	size_t cap, count;
	int outputs; /* keys are tasks' outputs (else their names) */
} TaskIndex;

/* Makes room for n keys in all (at most three quarters full). */
void tindex_reserve(TaskIndex *ix, size_t n);
/* Inserts key (task t's name, or its output number item) with hash h = hash_str(key),
 * unless an equal key is there: then returns the task holding it, else NULL. */
struct Task *tindex_put(TaskIndex *ix, struct Task *const *tasks, const char *key, uint64_t h, struct Task *t,
			int item);
/* The task holding key, or NULL. */
struct Task *tindex_get(const TaskIndex *ix, struct Task *const *tasks, const char *key);
/* Starts loading the slot a key with hash h probes first (batches of puts). */
void tindex_prefetch(const TaskIndex *ix, uint64_t h);
void tindex_free(TaskIndex *ix);

#endif
