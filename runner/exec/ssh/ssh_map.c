/* ssh_map.c — a map{} shard on an ssh host. The runner's attempt goes there like any task's,
 * with what differs for a batch of items:
 *
 * - its inputs are its items' (each copied once, skipped where the host holds it), and two
 *   files of its own go with them: the item list ({items}, KILN_ITEMS, the host's path) and
 *   the list of the items' outputs in the same order (.kiln/maps/NAME.outputs);
 * - every second while it runs (less often while there is nothing new), a harvest brings
 *   back the outputs that are complete (those before the last one there: a shard works
 *   through its list in order), so the scheduler records items as they are made and a lost
 *   host costs only the items since;
 * - however it ends (exit 0, a failure, a Ctrl-C, a kill), whatever outputs exist there come
 *   back after its log, and the scheduler records by the same rule as locally.
 *
 * Fetched outputs are unpacked beside the workspace (.kiln/ssh/ID.fetch) and moved into
 * place only when the tar was whole, and only where the output is not here yet: a harvest's
 * file is never replaced by the final fetch's copy of it, nor a half-unpacked file left. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "ssh_internal.h"
#include "ssh_job.h"

/* A shard's complete outputs come back every second while it makes items (a host lost costs
 * the items of the last second), and less often, up to every 8 s, while harvests find none
 * new (slow items cost fewer commands). */
#define HARVEST_FIRST_NS 1000000000LL
#define HARVEST_MAX_NS 8000000000LL

/* path relative to the workspace (the list's own path is absolute when the task has a cwd) */
static const char *in_workspace(const SshExec *se, const char *path)
{
	size_t n = strlen(se->cfg.g->workspace);
	if (!strncmp(path, se->cfg.g->workspace, n) && path[n] == '/')
		return path + n + 1;
	return path;
}

/* The outputs list's path beside the item list: .kiln/maps/NAME.outputs. */
static char *outputs_list_path(const SshExec *se, const Job *job)
{
	return exec_map_outputs_path(in_workspace(se, job->items_path));
}

void ssh_map_reattached(SshExec *se, Remote *rm)
{
	rm->map_outputs = outputs_list_path(se, rm->job);
	rm->harvest_every_ns = HARVEST_FIRST_NS;
	rm->harvest_at_ns = now_mono_ns() + rm->harvest_every_ns;
}

int ssh_map_place(SshExec *se, Remote *rm, HostLookup find, Buf *err)
{
	Job *job = rm->job;
	SshHost *h = rm->host;
	rm->map_outputs = outputs_list_path(se, job);
	char *items = xstrdup(in_workspace(se, job->items_path));
	StrMap seen = {0};
	const char **inputs = NULL;
	int ninputs = 0, cap = 0;
	for (int i = 0; i < job->nitems; i++) {
		const Task *t = job->items[i];
		for (int k = 0; k < t->ninputs; k++) { /* the map's inputs are every item's: once */
			if (strmap_get(&seen, t->inputs[k]))
				continue;
			strmap_put(&seen, t->inputs[k], (void *)1);
			if (ninputs == cap)
				inputs = xrealloc(inputs, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *inputs);
			inputs[ninputs++] = t->inputs[k];
		}
	}
	strmap_free(&seen);
	int rc = 0;
	if (exec_write_map_outputs(job, rm->map_outputs) != 0) {
		buf_printf(err, "cannot write %s", rm->map_outputs);
		rc = -1;
	}
	const char *extra[2] = {items, rm->map_outputs};
	if (rc == 0)
		rc = place_prepare_paths(se->cfg.cache, h, inputs, ninputs, extra, 2, find, se, &rm->placement, err);
	free(inputs);
	exec_set_items_path(job, xasprintf("%s/%s", h->home_workdir, items)); /* the list there */
	free(items);
	rm->harvest_every_ns = HARVEST_FIRST_NS;
	rm->harvest_at_ns = now_mono_ns() + rm->harvest_every_ns;
	return rc;
}

static char *fetch_dir(const SshExec *se, const Remote *rm, const char *what)
{
	return xasprintf("%s/%s.%s", se->cfg.state_dir, rm->id, what);
}

/* Moves each item output from dir into place where it is not here yet; how many moved. */
static int move_in(const Job *job, const char *dir, long from)
{
	int moved = 0;
	for (long i = from; i < job->nitems; i++) {
		const Task *t = job->items[i];
		if (!t->noutputs || t->outputs[0][0] == '/')
			continue;
		char *src = xasprintf("%s/%s", dir, t->outputs[0]);
		struct stat st;
		if (lstat(src, &st) == 0 && lstat(t->outputs[0], &st) != 0) {
			mkdirs_parent(t->outputs[0]);
			if (rename(src, t->outputs[0]) == 0)
				moved++;
			else
				warn("cannot move %s into place", t->outputs[0]);
		}
		free(src);
	}
	return moved;
}

int ssh_map_fetch(SshExec *se, Remote *rm, int kind, int code)
{
	rm->map_kind = kind;
	rm->map_code = code;
	char *dir = fetch_dir(se, rm, "fetch");
	remove_tree(dir);
	int status, how = mkdirs(dir, 0700) == 0 ? ssh_unpack_tar(rm, dir, &status) : 0;
	free(dir);
	if (how == 2)
		ssh_map_fetch_ended(se, rm, status);
	return how;
}

void ssh_map_fetch_ended(SshExec *se, Remote *rm, int status)
{
	Job *job = rm->job;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (truncate(job->log_path, (off_t)rm->unpack_at) != 0)
		warn("cannot truncate %s", job->log_path);
	char *dir = fetch_dir(se, rm, "fetch");
	if (rc == 0)
		move_in(job, dir, 0);
	remove_tree(dir);
	free(dir);
	if (rm->map_kind == 2) {
		job->term_signal = rm->signalled ? rm->signalled : SIGKILL;
		ssh_finished(se, rm, JOB_SIGNALED, -1, NULL);
		return;
	}
	if (rc == 0) {
		ssh_finished(se, rm, JOB_EXITED, rm->map_code, NULL);
		return;
	}
	char reason[96];
	snprintf(reason, sizeof reason, "its items' outputs could not be unpacked here (tar exit %d: disk full?)", rc);
	ssh_log_line(job, "kiln: %s\n", reason);
	ssh_finished(se, rm, JOB_EXITED, rm->map_code ? rm->map_code : 1, reason);
}

/* ---- harvests while it runs ---- */

/* The items before the first one whose output is not here: a harvest asks for the rest. */
static long fetched_prefix(const Job *job, long from)
{
	struct stat st;
	while (from < job->nitems && job->items[from]->noutputs && stat(job->items[from]->outputs[0], &st) == 0)
		from++;
	return from;
}

void ssh_map_harvest(SshExec *se, Remote *rm)
{
	if (rm->phase != PH_RUN || rm->harvest_pid > 0 || now_mono_ns() < rm->harvest_at_ns || rm->signalled)
		return;
	rm->harvested = fetched_prefix(rm->job, rm->harvested);
	if (rm->harvested >= rm->job->nitems)
		return;
	char *dir = fetch_dir(se, rm, "harvest");
	remove_tree(dir);
	Buf remote = {0}, cmd = {0};
	ssh_job_set_dir(&remote, rm->host, rm->id);
	ssh_job_map_tar(&remote, rm->map_outputs, rm->harvested, 1);
	char *ssh = ssh_spawn_text(rm->host, buf_str(&remote));
	buf_printf(&cmd, "set -o pipefail; mkdir -p -- ");
	buf_shell_quote(&cmd, dir);
	buf_printf(&cmd, " && %s | tar xf - --no-same-owner -C ", ssh);
	buf_shell_quote(&cmd, dir);
	char *argv[] = {"/bin/bash", "-c", cmd.data, NULL};
	int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC); /* a failed harvest is retried: nothing to say */
	rm->harvest_pid = ssh_spawn_local(argv, quiet, quiet);
	if (quiet >= 0)
		close(quiet);
	free(ssh);
	free(dir);
	buf_free(&remote);
	buf_free(&cmd);
	rm->harvest_at_ns = now_mono_ns() + rm->harvest_every_ns;
}

void ssh_map_harvest_ended(SshExec *se, Remote *rm, int status)
{
	rm->harvest_pid = 0;
	char *dir = fetch_dir(se, rm, "harvest");
	int moved = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? move_in(rm->job, dir, rm->harvested) : 0;
	/* (the scheduler records them as it follows the shard) */
	rm->harvest_every_ns = moved ? HARVEST_FIRST_NS
			       : rm->harvest_every_ns * 2 < HARVEST_MAX_NS ? rm->harvest_every_ns * 2 : HARVEST_MAX_NS;
	rm->harvest_at_ns = now_mono_ns() + rm->harvest_every_ns;
	remove_tree(dir);
	free(dir);
}
