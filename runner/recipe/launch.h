/* launch.h — `kiln launch`, the launcher of a task's ranks (launch.c), and the rewrite of a
 * task's command that puts it in front. */
#ifndef KILN_LAUNCH_H
#define KILN_LAUNCH_H

#include "../../base/graph.h"

/* The launcher's main: argv after "launch". Returns the exit status. */
int launch_main(int argc, char **argv);
/* Rewrites t's command (argv, or a shell string) into `@kiln launch --ranks N ...`, in g's
 * arena, with one more port for the ranks' rendezvous ({master_port}; on Slurm the job
 * finds one on its first node); every rank sees all leased GPUs when the command names
 * {local_rank}, else its share. nodes > 1: N ranks on each of that many nodes (Slurm: one
 * launcher per node, node rank SLURM_NODEID, the rendezvous on KILN_HEAD). 0, or -1. */
int launch_wrap(Graph *g, Task *t, int ranks, int nodes, double grace_sec, Buf *err);
/* Whether t runs under kiln launch (ranks). */
int launch_wraps(const Task *t);

#endif
