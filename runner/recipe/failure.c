/* failure.c — classifying failed attempts. The log patterns are the messages PyTorch,
 * CUDA, NCCL, gloo, torchrun, Python and the C library print for each kind of failure;
 * the first class that matches wins, in the order of the table (an OOM on one rank makes
 * the others report lost connections, so memory comes before communication). */
#define _GNU_SOURCE
#include "failure.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const names[FC_COUNT] = {
	[FC_ERROR] = "error",     [FC_OOM] = "oom",           [FC_COMM] = "comm",
	[FC_PORT] = "port",       [FC_PREEMPTED] = "preempted", [FC_TIMEOUT] = "timeout",
	[FC_MISSING] = "missing-input", [FC_GPU_BUSY] = "gpu-busy", [FC_HOST_DOWN] = "host-down",
	[FC_INPUT_CHANGED] = "input-changed", [FC_UNSCHEDULABLE] = "unschedulable",
};

static const struct {
	enum FailureClass cls;
	const char *needle; /* matched case-insensitively */
} patterns[] = {
	{FC_OOM, "out of memory"}, /* "CUDA out of memory", "CUDA error: out of memory" */
	{FC_OOM, "OutOfMemoryError"},
	{FC_OOM, "CUBLAS_STATUS_ALLOC_FAILED"},
	{FC_OOM, "cudaErrorMemoryAllocation"},
	{FC_OOM, "MemoryError"},
	{FC_OOM, "Cannot allocate memory"},
	{FC_PORT, "Address already in use"},
	{FC_PORT, "EADDRINUSE"},
	{FC_PORT, "errno 98"},
	{FC_COMM, "NCCL error"},
	{FC_COMM, "ncclSystemError"},
	{FC_COMM, "ncclInternalError"},
	{FC_COMM, "ncclRemoteError"},
	{FC_COMM, "collective operation timeout"},
	{FC_COMM, "DistNetworkError"},
	{FC_COMM, "RendezvousTimeoutError"},
	{FC_COMM, "RendezvousConnectionError"},
	{FC_COMM, "Connection refused"},
	{FC_COMM, "Connection reset by peer"},
	{FC_COMM, "Connection closed by peer"},
	{FC_COMM, "connectFullMesh"},
	{FC_COMM, "Socket Timeout"},
	{FC_COMM, "gloo] Timed out"},
	{FC_MISSING, "No such file or directory"},
	{FC_MISSING, "FileNotFoundError"},
	{FC_MISSING, "command not found"},
	{FC_MISSING, "kiln: cannot start"},
};

enum FailureClass failure_classify(const FailureFacts *f)
{
	const char *reason = f->reason ? f->reason : "";
	if (f->timed_out)
		return FC_TIMEOUT;
	if (f->host_down)
		return FC_HOST_DOWN;
	if (f->unschedulable)
		return FC_UNSCHEDULABLE;
	if (strstr(reason, "PREEMPTED") || strstr(reason, "NODE_FAIL") || strstr(reason, "BOOT_FAIL"))
		return FC_PREEMPTED;
	if (f->start_failed)
		return FC_MISSING;
	if (f->signaled)
		return FC_PREEMPTED;
	const char *tail = f->tail ? f->tail : "";
	for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++)
		if (strcasestr(tail, patterns[i].needle))
			return patterns[i].cls;
	/* a shell or launcher reports a child killed by SIGKILL/SIGTERM as 128 + signal */
	if (f->exit_code == 137 || f->exit_code == 143)
		return FC_PREEMPTED;
	if (f->exit_code == 127)
		return FC_MISSING;
	return FC_ERROR;
}

const char *failure_name(enum FailureClass c) { return c >= 0 && c < FC_COUNT ? names[c] : "error"; }

int failure_parse(const char *name)
{
	for (int c = 0; c < FC_COUNT; c++)
		if (!strcmp(names[c], name))
			return c;
	return -1;
}

const char *failure_names(void)
{
	return "error, oom, comm, port, preempted, timeout, missing-input, gpu-busy, host-down, input-changed, "
	       "unschedulable";
}

size_t failure_read_tail(const char *path, char *buf, size_t max)
{
	buf[0] = 0;
	size_t len;
	long long from;
	char *tail = path ? read_file_tail(path, max - 1, &len, &from) : NULL;
	if (!tail)
		return 0;
	ssize_t n = (ssize_t)len;
	for (ssize_t i = 0; i < n; i++)
		buf[i] = tail[i] ? tail[i] : ' ';
	buf[n] = 0;
	free(tail);
	/* kiln's own header names the command, which may quote the very messages looked for */
	char *body = from == 0 && !strncmp(buf, "# kiln: ", 8) ? strstr(buf, "\n# --\n") : NULL;
	if (body) {
		body += 6;
		n = (ssize_t)strlen(body);
		memmove(buf, body, (size_t)n + 1);
	}
	return (size_t)n;
}

/* Whether w could name a file the command opens: a relative path, not an option, a
 * placeholder, a variable or an assignment. */
static int file_word(const char *w)
{
	return *w && !strchr("-/{$~", *w) && !strpbrk(w, "{}$=*?") && strpbrk(w, "./");
}

void failure_hint_missing(const Task *t, char *out, size_t n)
{
	out[0] = 0;
	const char *slash = t->opts->file ? strrchr(t->opts->file, '/') : NULL;
	if (!slash)
		return; /* a recipe in the workspace: its neighbours are the workspace's */
	char *dir = strndup(t->opts->file, (size_t)(slash - t->opts->file));
	char *shell = task_shell(t) ? strdup(task_shell(t)) : NULL, *save = NULL;
	const char *w = shell ? strtok_r(shell, " \t\n;|&<>()'\"", &save) : task_word(t, 0);
	for (int i = 0; w && !out[0];) {
		char beside[4096];
		if (file_word(w) && access(w, F_OK) != 0 &&
		    snprintf(beside, sizeof beside, "%s/%s", dir, w) < (int)sizeof beside && access(beside, F_OK) == 0) {
			char *here = getcwd(NULL, 0);
			snprintf(out, n, "; %s is not in the workspace (%s), where commands run, but beside the recipe: name it "
				 "RECIPE_DIR .. \"/%s\" in the recipe", w, here ? here : ".", w);
			free(here);
		}
		w = shell ? strtok_r(NULL, " \t\n;|&<>()'\"", &save) : task_word(t, ++i);
	}
	free(shell);
	free(dir);
}
