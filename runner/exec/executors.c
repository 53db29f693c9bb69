/* executors.c — the table of executors: each one's name, its line of help, its recipe block,
 * the tasks it claims or refuses, and its constructor. The command line reads it to load
 * recipes (the names and blocks), to route each task and to make the executors a run needs;
 * nothing else names an executor. */
#define _GNU_SOURCE
#include "exec.h"

#include <stdio.h>
#include <string.h>

#include "../recipe/launch.h"
#include "../recipe/torchrun.h"

/* A task spread over nodes needs an executor that places it on several (Slurm). */
static int refuses_nodes(const Task *t, Buf *why)
{
	if (t->opts->rank_nodes > 1)
		buf_printf(why, "spreads its ranks over %d nodes, but it runs on this machine only: run it with "
				"--executor slurm (or executor = \"slurm\"), or drop nnodes", t->opts->rank_nodes);
	else if (t->opts->torchrun && t->opts->torchrun->nnodes > 1)
		buf_printf(why, "asks torchrun for %d nodes, but it runs on this machine only: run it with "
				"--executor slurm (or executor = \"slurm\"), or set nnodes = 1", t->opts->torchrun->nnodes);
	return why->len > 0;
}

int exec_ssh_refuses(const Task *t, Buf *why)
{
	const char *what = t->shard		? "belongs to a map{}, which runs on this machine only"
			   : launch_wraps(t)	? "has ranks, which this kiln starts here and on Slurm, not yet on ssh hosts"
			   : exec_runs_kiln(t)	? "runs kiln itself (@kiln), which reads the state here"
						: NULL;
	if (what)
		buf_printf(why, "%s: give it executor = \"local\" (or \"slurm\")", what);
	return why->len > 0 || refuses_nodes(t, why);
}

static Executor *make_local(const ExecSetup *s, Buf *err)
{
	(void)err;
	return exec_local_new(s->cache, s->detach);
}

const ExecutorKind exec_kinds[] = {
	{.name = "local", .about = "this machine: its CPUs, memory and GPUs (the default)", .refuses = refuses_nodes,
	 .make = make_local},
	{.name = "slurm", .about = "a Slurm cluster: one batch job per attempt (slurm{} says where)", .block = "slurm",
	 .read_block = exec_slurm_read_block, .refuses = exec_slurm_refuses, .make = exec_slurm_new},
	{.name = "ssh", .about = "the servers of hosts{} (or --hosts FILE), reached by ssh", .block = "hosts",
	 .read_block = exec_ssh_read_block, .claims = exec_ssh_claims, .refuses = exec_ssh_refuses,
	 .check = exec_ssh_check, .make = exec_ssh_new},
	{0},
};

const ExecutorKind *exec_kind(const char *name)
{
	for (const ExecutorKind *k = exec_kinds; k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

const char *exec_kind_names(void)
{
	static char names[256];
	if (!names[0]) {
		size_t len = 0;
		for (const ExecutorKind *k = exec_kinds; k->name && len < sizeof names; k++)
			len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k == exec_kinds ? "" : k[1].name ? ", " : " or ",
						k->name);
	}
	return names;
}

const char *const *exec_kind_list(void)
{
	static const char *list[16];
	if (!list[0])
		for (int i = 0; exec_kinds[i].name && i < 15; i++)
			list[i] = exec_kinds[i].name;
	return list;
}
