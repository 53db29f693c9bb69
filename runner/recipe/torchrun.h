/* torchrun.h — tasks that run under PyTorch's torchrun: kiln wraps the task's command in
 * the launcher with a rendezvous on a port reserved for the attempt ({rdzv}), so two such
 * tasks never clash, and --nproc_per_node from `nproc` or the GPU lease ({gpus}). The
 * wrapped command is the task's command (its key, its log header); {rdzv} is filled per
 * attempt: "127.0.0.1:PORT" here, the first node and a port probed there on Slurm. With
 * nnodes > 1 the rendezvous is the static one: ranks follow the node ranks kiln gives. */
#ifndef KILN_TORCHRUN_H
#define KILN_TORCHRUN_H

#include "../../base/graph.h"

typedef struct Torchrun {
	int nproc;          /* processes per node; 0: one per leased GPU */
	int nnodes;         /* nodes (more than one: one Slurm job of that many nodes) */
	const char *python; /* the interpreter the launcher runs under */
	int launcher_words; /* argv words before the task's own command */
} Torchrun;

/* Rewrites t's command (argv, or a shell string run by /bin/sh -c) into the launcher's
 * argv, in g's arena, and reserves one more port for the rendezvous: it is the last of
 * the attempt's ports. Returns 0, or -1 with the reason in err. */
int torchrun_wrap(Graph *g, Task *t, Torchrun *tr, Buf *err);

#endif
