/* status.c — the progress line and message lines, in colour only where it helps. */
#define _GNU_SOURCE
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void status_init(Status *s)
{
	memset(s, 0, sizeof *s);
	s->tty = isatty(STDOUT_FILENO);
	const char *no_color = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	s->color = s->tty && !(no_color && *no_color) && !(term && !strcmp(term, "dumb"));
	struct winsize ws;
	s->width = s->tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
}

void status_line(Status *s, int done, int total, const char *doing, Task **running, int nrunning, const char *waiting)
{
	if (!s->tty)
		return;
	char line[1024];
	int n = snprintf(line, sizeof line, "[%d/%d] %s:", done, total, doing);
	for (int i = 0; i < nrunning && n < (int)sizeof line - 64; i++)
		n += snprintf(line + n, sizeof line - (size_t)n, "%s %s", i ? "," : "", running[i]->name);
	if (nrunning == 0)
		n += snprintf(line + n, sizeof line - (size_t)n, " -");
	if (waiting && *waiting && n < (int)sizeof line - 8)
		n += snprintf(line + n, sizeof line - (size_t)n, "; %s", waiting);
	if (n >= (int)sizeof line)
		n = (int)sizeof line - 1;
	if (n > s->width - 1 && s->width > 8) {
		n = s->width - 1;
		memcpy(line + n - 3, "...", 3);
	}
	printf("\r%.*s\033[K", n, line);
	fflush(stdout);
	s->shown = 1;
}

void status_clear(Status *s)
{
	if (s->tty && s->shown) {
		printf("\r\033[K");
		fflush(stdout);
	}
	s->shown = 0;
}

void status_print(Status *s, const char *kind, const char *fmt, ...)
{
	if (s->tty && !strcmp(kind, "ok"))
		return; /* on a terminal the status line shows progress; 10k "ok" lines would bury failures */
	status_clear(s);
	const char *colour = "";
	if (s->color) {
		if (!strcmp(kind, "FAILED"))
			colour = "\033[1;31m";
		else if (!strcmp(kind, "ok"))
			colour = "\033[32m";
		else if (!strcmp(kind, "restored") || !strcmp(kind, "retry"))
			colour = "\033[33m";
	}
	if (strcmp(kind, "note"))
		printf("%s%-8s%s ", colour, kind, *colour ? "\033[0m" : "");
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (s->tty || (strcmp(kind, "ok") && strcmp(kind, "restored"))) {
		fflush(stdout);
		s->unflushed_since_ns = 0;
	} else if (!s->unflushed_since_ns) {
		s->unflushed_since_ns = now_mono_ns();
	}
}

int status_flush_due_ms(Status *s)
{
	enum { FLUSH_MS = 100 };
	if (!s->unflushed_since_ns)
		return -1;
	int64_t waited_ms = (now_mono_ns() - s->unflushed_since_ns) / 1000000;
	if (waited_ms < FLUSH_MS)
		return (int)(FLUSH_MS - waited_ms);
	fflush(stdout);
	s->unflushed_since_ns = 0;
	return -1;
}
