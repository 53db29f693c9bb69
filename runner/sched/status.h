/* status.h — progress output: a one-line status redrawn in place on a terminal
 * (like ninja's), plain lines otherwise. */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

#include <stdint.h>

#include "../../base/graph.h"

typedef struct {
	int tty;    /* redraw a status line */
	int color;  /* ANSI colours (off with NO_COLOR or when not a tty) */
	int shown;  /* a status line is on screen */
	int width;
	int64_t unflushed_since_ns; /* 0, or when the oldest line still in stdio's buffer was printed */
} Status;

void status_init(Status *s);
/* Redraws "[done/total] <doing>: a, b, …; <waiting>" (terminal only); doing is "running"
 * or what a stop does; waiting says what a task waits for, or is "". */
void status_line(Status *s, int done, int total, const char *doing, Task **running, int nrunning, const char *waiting);
/* Prints one message line, above the status line on a terminal. kind: "ok", "FAILED",
 * "restored", "retry", "note" (coloured on a terminal); "ok" lines only when not a terminal.
 * Into a pipe or file, "ok" and "restored" lines are flushed in batches (10k flushes cost
 * a 10k-task run more than its own bookkeeping); see status_flush_due_ms. */
void status_print(Status *s, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Milliseconds until buffered lines must be flushed (-1: nothing buffered), flushing them
 * first when that time has come: a caller about to sleep wakes by then, so no line waits
 * more than 100 ms to be seen. */
int status_flush_due_ms(Status *s);
/* Removes the status line before the summary. */
void status_clear(Status *s);

#endif
