/* ssh_ask.c — readings asked of a host in the background (ssh_host.h's SshReader): one shell
 * per reader kept on the host's master connection, each question sent down its stdin and its
 * answer read as it comes. A reading repeated every second (GPUs while tasks wait for them)
 * or every three (the jobs' progress) then costs no ssh command of its own — a local fork and
 * exec of ssh, and a session, a login shell and an exec there, each time: with two dozen
 * hosts the readings were most of the CPU a run spent. */
#define _GNU_SOURCE
#include "ssh_host.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../../base/os.h"

/* The shell there: a question is its length on a line, then its text (head -c reads exactly
 * that much from a pipe); it runs in a subshell, away from the loop's stdin, and its output
 * ends with a line of the reader's mark and its exit status. The loop ends with its stdin
 * (kiln ended, or stopped the reader). */
static char *asking_script(const char *mark)
{
	Buf b = {0};
	buf_printf(&b, "while read -r n; do q=$(head -c \"$n\"); ( eval \"$q\" ) </dev/null 2>/dev/null; "
		       "echo \"%s $?\"; done",
		   mark);
	return b.data;
}

pid_t ssh_spawn_piped(SshHost *h, const char *script, int err_fd, int *in_fd, int *out_fd)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) != 0) {
		close(in[0]), close(in[1]);
		return -1;
	}
	Buf wrapped = {0};
	buf_puts(&wrapped, "exec /bin/sh -c ");
	buf_shell_quote(&wrapped, script);
	char **argv = ssh_argv(h, buf_str(&wrapped));
	/* a group of its own, as every helper: a kiln after a kill -9 stops what this one left */
	OsSpawn spawn = {.argv = argv, .in_fd = in[0], .out_fd = out[1], .err_fd = err_fd, .new_group = 1};
	pid_t pid;
	int rc = os_spawn(&spawn, &pid);
	free(argv);
	buf_free(&wrapped);
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		close(in[1]), close(out[0]);
		return -1;
	}
	os_children_watch(pid);
	*in_fd = in[1];
	*out_fd = out[0];
	fcntl(*in_fd, F_SETFL, O_NONBLOCK);
	os_notify_readable(*out_fd); /* what it sends wakes the loop as a child's end does */
	return pid;
}

/* Starts r's shell there: 0, or -1. */
static int start_shell(SshHost *h, SshReader *r)
{
	static unsigned serial;
	snprintf(r->mark, sizeof r->mark, "KILN-ANSWER-%d-%u-%lld", (int)getpid(), ++serial,
		 (long long)(now_mono_ns() % 1000000007));
	int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
	char *script = asking_script(r->mark);
	pid_t pid = ssh_spawn_piped(h, script, quiet, &r->in_fd, &r->out_fd);
	free(script);
	if (quiet >= 0)
		close(quiet);
	if (pid <= 0)
		return -1;
	r->pid = pid;
	r->open = 1;
	return 0;
}

int ssh_reader_ask(SshHost *h, SshReader *r, const char *remote)
{
	if (r->asked)
		return -1;
	int status;
	os_children_reap();
	if (r->pid > 0 && os_children_take(r->pid, &status)) { /* it ended since its last answer */
		r->pid = 0;
		ssh_reader_stop(r);
	}
	if (r->pid <= 0 && start_shell(h, r) != 0)
		return -1;
	Buf q = {0};
	buf_printf(&q, "%zu\n%s", strlen(remote), remote);
	void (*was)(int) = signal(SIGPIPE, SIG_IGN); /* a shell whose ssh ended must not end kiln */
	ssize_t w;
	do
		w = write(r->in_fd, q.data, q.len);
	while (w < 0 && errno == EINTR);
	signal(SIGPIPE, was);
	/* one question at a time, far under a pipe's atomic size: all of it goes in, or the
	 * shell is gone (its ssh ended: the next question starts another) */
	int sent = w == (ssize_t)q.len;
	buf_free(&q);
	if (!sent) {
		ssh_reader_stop(r);
		return -1;
	}
	r->asked = 1;
	r->got.len = 0;
	return 0;
}

/* The answer's end in what came back: the mark's line (at the start or after a newline), or NULL. */
static char *answer_end(SshReader *r)
{
	size_t mlen = strlen(r->mark);
	for (char *p = r->got.data; p && (p = strstr(p, r->mark)); p += mlen)
		if ((p == r->got.data || p[-1] == '\n') && p[mlen] == ' ' && strchr(p, '\n'))
			return p;
	return NULL;
}

int ssh_reader_take(SshReader *r, Buf *out)
{
	if (!r->asked)
		return -1;
	char chunk[4096];
	ssize_t n;
	while ((n = read(r->out_fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			buf_put(&r->got, chunk, (size_t)n);
	char *end = answer_end(r);
	if (end) {
		int status = atoi(end + strlen(r->mark) + 1);
		buf_put(out, r->got.data, (size_t)(end - r->got.data));
		r->got.len = 0;
		r->asked = 0;
		return status == 0 ? 0 : -1;
	}
	int status;
	os_children_reap();
	if (r->pid > 0 && !os_children_take(r->pid, &status))
		return 1;
	r->pid = 0; /* reaped: nothing to kill */
	ssh_reader_stop(r); /* its ssh ended unanswered (the host dropped): the next question starts another */
	return -1;
}

int ssh_reader_busy(const SshReader *r) { return r->asked; }

void ssh_reader_stop(SshReader *r)
{
	if (r->pid > 0)
		kill(r->pid, SIGKILL);
	if (r->open) {
		close(r->in_fd);
		close(r->out_fd);
	}
	buf_free(&r->got);
	memset(r, 0, sizeof *r);
}
