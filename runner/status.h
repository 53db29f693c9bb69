/* status.h — progress output: a one-line status redrawn in place on a terminal
 * (like ninja's), plain lines otherwise. */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

#include "graph.h"

typedef struct {
	int tty;    /* redraw a status line */
	int color;  /* ANSI colours (off with NO_COLOR or when not a tty) */
	int shown;  /* a status line is on screen */
	int width;
} Status;

void status_init(Status *s);
/* Redraws "[done/total] running: a, b, …" (terminal only). */
void status_line(Status *s, int done, int total, Task **running, int nrunning);
/* Prints one message line, above the status line on a terminal. kind: "ok", "FAILED",
 * "restored", "retry", "note" (coloured on a terminal); "ok" lines only when not a terminal. */
void status_print(Status *s, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Removes the status line before the summary. */
void status_clear(Status *s);

#endif
