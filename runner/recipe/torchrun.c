/* torchrun.c — the launcher words. A command whose program is a Python interpreter gets
 * the launcher from that same interpreter (`python -m torch.distributed.run`), so a recipe
 * pointed at another Python with torch uses its torchrun; any other command runs under
 * `torchrun` from PATH. The command itself follows --no_python, exactly as declared.
 *
 * --redirects and --tee: torchrun 1.13 (Debian 12's python3-torch) on Python 3.11 fails to
 * start with "'NoneType' object has no attribute 'get'" because its parser of these flags
 * cannot return Std.NONE there (Python 3.11 no longer lists a zero flag among an IntFlag's
 * members), and their default, "0", is exactly that. A per-rank mapping that names no rank
 * below 9 ("9:0") means "no redirection" to every version and avoids the broken branch
 * for up to 9 processes per node. */
#define _GNU_SOURCE
#include "torchrun.h"

#include <stdio.h>
#include <string.h>

static int is_python(const char *prog)
{
	const char *base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	return !strncmp(base, "python", 6);
}

int torchrun_wrap(Graph *g, Task *t, Torchrun *tr, Buf *err)
{
	if (t->opts->spec || (!task_shell(t) && !task_word(t, 0))) {
		buf_puts(err, "torchrun needs a command (run = {\"python3\", \"train.py\", ...})");
		return -1;
	}
	if (!task_shell(t) && !strcmp(task_argv(t)[0], "@kiln")) {
		buf_puts(err, "torchrun runs Python programs, not @kiln");
		return -1;
	}
	if (t->opts->ports >= 16) {
		buf_puts(err, "torchrun needs a port of its own, and the task already uses all 16");
		return -1;
	}
	int python_cmd = !task_shell(t) && is_python(task_argv(t)[0]);
	tr->python = python_cmd ? task_argv(t)[0] : "python3";
	const char *words[16];
	int n = 0;
	char nnodes[32], nproc[32];
	snprintf(nnodes, sizeof nnodes, "--nnodes=%d", tr->nnodes);
	if (tr->nproc)
		snprintf(nproc, sizeof nproc, "--nproc_per_node=%d", tr->nproc);
	else
		snprintf(nproc, sizeof nproc, "--nproc_per_node={gpus}");
	if (python_cmd) {
		words[n++] = task_argv(t)[0];
		words[n++] = "-m";
		words[n++] = "torch.distributed.run";
	} else {
		words[n++] = "torchrun";
	}
	words[n++] = nnodes;
	words[n++] = nproc;
	/* several nodes: the static rendezvous, whose group ranks follow the node ranks kiln
	 * gives (PET_NODE_RANK, per node); c10d's sort the nodes by host name (then pid), so rank
	 * 0 could land on any node, and on ssh hosts its outputs stay where kiln never fetches */
	words[n++] = tr->nnodes > 1 ? "--rdzv_backend=static" : "--rdzv_backend=c10d";
	words[n++] = "--rdzv_endpoint={rdzv}";
	words[n++] = "--rdzv_id=kiln";
	words[n++] = "--redirects=9:0";
	words[n++] = "--tee=9:0";
	words[n++] = "--no_python";
	int user = task_shell(t) ? 3 : task_argc(t);
	const char **argv = arena_alloc(&g->arena, (size_t)(n + user + 1) * sizeof *argv);
	for (int i = 0; i < n; i++)
		argv[i] = arena_strdup(&g->arena, words[i]);
	if (task_shell(t)) {
		argv[n] = task_shell_program(t), argv[n + 1] = "-c", argv[n + 2] = task_shell(t);
	} else {
		memcpy(argv + n, task_argv(t), (size_t)user * sizeof *argv);
	}
	argv[n + user] = NULL;
	task_set_argv(t, argv);
	tr->launcher_words = n;
	t->opts->ports++; /* the rendezvous port: the last one */
	t->opts->torchrun = tr;
	return 0;
}
