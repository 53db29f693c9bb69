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
/* Finds a host by name (the executor's list). */
typedef SshHost *(*HostLookup)(void *ctx, const char *name);

/* Copies what h lacks of t's inputs (and kiln's tools when t uses them): from here, or for
 * an output that stays on another host (a pointer file here), from that host through this
 * machine (two ssh connections and tar, nothing stored here). 0; 1 when a host could not be
 * reached (its failure is counted); -1 when a copy failed otherwise; both with why in err.
 * Writes what it copied to log_fd (>= 0). */
int place_inputs(Cache *c, SshHost *h, const Task *t, HostLookup find, void *ctx, int log_fd, Buf *err);
/* The remote script part, run there after t exited 0, that reports on stderr the hash
 * (sha256 over the files) and listing of each output that stays there. */
void place_stay_script(Buf *b, const Task *t);
/* From that report: writes a pointer file here for each such output (host, path, hash: what
 * the cache hashes and dependents' keys see) and records h as holding it. 0, or -1 with err. */
int place_record_stays(Cache *c, SshHost *h, const Task *t, const char *report, Buf *err);
/* Paths recorded on h, for the per-host summary. */
int place_count(Cache *c, SshHost *h);

#endif
