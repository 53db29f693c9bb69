/* ssh_place.h — data placement for the ssh executor: before a task starts on a host, the
 * workspace inputs it reads (files and directories, the task's own scripts among them) are
 * copied there with rsync unless the copy recorded for that host (cache/placements.c) has
 * the same content hash here and the same size-and-mtime listing there; kiln's tools are
 * copied once per run beside the workspace there. */
#ifndef KILN_SSH_PLACE_H
#define KILN_SSH_PLACE_H

#include "../base/graph.h"
#include "../cache/cache.h"
#include "ssh_host.h"

/* How many of t's workspace inputs h already holds as they are here (placement prefers
 * the host holding the most). */
int place_affinity(Cache *c, SshHost *h, const Task *t);
/* Copies what h lacks of t's inputs (and kiln's tools when t uses them). 0; 1 when the
 * host could not be reached (its failure is counted); -1 when a copy failed otherwise;
 * both with why in err. Writes what it copied to log_fd (>= 0). */
int place_inputs(Cache *c, SshHost *h, const Task *t, int log_fd, Buf *err);
/* Paths recorded on h, for the per-host summary. */
int place_count(Cache *c, SshHost *h);

#endif
