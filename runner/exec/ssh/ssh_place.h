/* ssh_place.h — data placement for the ssh executor: before a task starts on a host, the
 * workspace inputs it reads (files and directories, the task's own scripts among them) are
 * copied there with rsync unless the copy recorded for that host (cache/placements.c) has
 * the same content hash here and the same size-and-mtime listing there; kiln's tools are
 * copied once per run beside the workspace there. */
#ifndef KILN_SSH_PLACE_H
#define KILN_SSH_PLACE_H

#include "../../../base/graph.h"
#include "../../../cache/cache.h"
#include "ssh_host.h"

/* How many of t's workspace inputs h already holds as they are here (placement prefers
 * the host holding the most). */
int place_affinity(Cache *c, SshHost *h, const Task *t);
/* Finds a host by name (the executor's list). */
typedef SshHost *(*HostLookup)(void *ctx, const char *name);

/* What an attempt copies to its host before it starts: a bash script run here as the
 * attempt's first step (rsync from here; for an output that stays on another host, tar
 * relayed from there through this machine, nothing stored here), and the paths it places with
 * their content hash here, recorded once the host has listed them. */
typedef struct {
	Buf script;          /* empty: nothing to copy */
	char **paths;        /* the task's own strings */
	char (*hashes)[33];
	char (*origins)[64]; /* the host it comes from, or "" (from here) */
	int n;
	int tools;           /* the script copies kiln's tools there too (the host's first copy step) */
} Placement;

/* What h lacks of t's workspace inputs (and kiln's tools, once per run). 0; 1
 * when a host could not be reached (its failure is counted); -1 when it cannot be placed
 * (why in err). */
int place_prepare(Cache *c, SshHost *h, const Task *t, HostLookup find, void *ctx, Placement *pl, Buf *err);
/* The same for a list of inputs (a map shard's items'), and extra workspace files copied
 * with them but never recorded (the shard's item and output lists). */
int place_prepare_paths(Cache *c, SshHost *h, const char *const *inputs, int count, const char *const *extra,
			int nextra, HostLookup find, void *ctx, Placement *pl, Buf *err);
/* Whether the copy script's report says a host was out of reach (not a file's fault). */
int place_failed_unreachable(const char *report);
/* The remote script part, run there before the job, that reports each placed path's listing
 * on stderr ("KILN-LIST PATH<TAB>..."). */
void place_listing_script(Buf *b, const Placement *pl);
/* t's attempt on h exited 0 and its outputs came back: this run's view of h holds each
 * fetched output that is a file, for as long as its copy here stays as it came (a task
 * after it there then needs no copy of it: no rsync, and its start can go to h's agent). */
void place_made(SshHost *h, const Task *t);
/* The copy is done: this run's view of h holds the paths (log_fd >= 0: noted there). */
void place_copied(SshHost *h, const Placement *pl, int log_fd);
/* Records the placed paths with the listing the host reported (report: its stderr). */
void place_record(Cache *c, SshHost *h, const Placement *pl, const char *report);
/* Whether some input of t (or kiln's tools) is being copied to h now (a task needing it waits for the copy),
 * and the count of copies in flight changed by delta for pl's paths. */
int place_in_flight(const SshHost *h, const Task *t);
void place_flight(SshHost *h, const Placement *pl, int delta);
void place_free(Placement *pl);

/* The remote script part, run there after t exited 0, that reports on stderr the hash
 * (sha256 over the files) and listing of each output that stays there. */
void place_stay_script(Buf *b, const Task *t);
/* From that report: writes a pointer file here for each such output (host, path, hash: what
 * the cache hashes and dependents' keys see) and records h as holding it. 0, or -1 with err. */
int place_record_stays(Cache *c, SshHost *h, const Task *t, const char *report, Buf *err);
/* Whether h has room for t now but for its GPUs: a slot, CPUs, memory, no input of its
 * being copied there. */
int place_has_slot(const SshHost *h, const Task *t);
/* Whether h can take t now (place_has_slot, and GPUs free by the busy test), leasing its GPUs
 * into ids when it can. */
int place_fits(SshHost *h, const Task *t, int *ids);
/* The host holding the resume state t's next attempt continues from (cache_resume_host):
 * node's part of it (a multi-node job's nodes each keep their own), or NULL. */
SshHost *place_home(Cache *c, SshHost *hosts, int n, const Task *t, int node);
/* The allowed host, reachable now, that can take t and holds most of its inputs (then: the
 * most free slots), or NULL; counts the allowed hosts that answer and those with enough GPUs. */
SshHost *place_choose(Cache *c, SshHost *hosts, int n, const Task *t, double busy_mem, double busy_util,
		      int *reachable, int *big_enough);
/* Paths recorded on h, for the per-host summary. */
int place_count(Cache *c, SshHost *h);

#endif
