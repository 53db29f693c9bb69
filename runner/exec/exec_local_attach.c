/* exec_local_attach.c — re-attaching to local attempts a previous kiln left: by their
 * records (job id "local/PID/START/KPID/KSTART", devices and host in their own columns), or, for starts a killed kiln never
 * committed, by their keepers' command lines; stopping the stale ones (their task's key
 * changed, or left the recipe). */
#define _GNU_SOURCE
#include "exec_local_internal.h"
#include "../../base/os.h"
#include "../../cache/cache.h"
#include "gpu.h"
#include "keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* "<log without .log>.exit": where the attempt's keeper writes how it ended. malloc'd. */
char *local_exit_path(const char *log_path)
{
	size_t n = strlen(log_path);
	if (n > 4 && !strcmp(log_path + n - 4, ".log"))
		n -= 4;
	return xasprintf("%.*s.exit", (int)n, log_path);
}

int local_parse_id(const char *id, pid_t *pid, long long *start, pid_t *keeper, long long *keeper_start)
{
	if (strncmp(id, "local/", 6))
		return -1;
	const char *p = id + 6;
	if (*p < '0' || *p > '9') /* written before the host had a column: "local/HOST/..." */
		p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p);
	int n, k;
	if (sscanf(p, "%d/%lld/%d/%lld", &n, start, &k, keeper_start) != 4)
		return -1;
	*pid = n;
	*keeper = k;
	return 0;
}

int exec_local_job_alive(const char *job_id)
{
	pid_t pid, keeper;
	long long start, keeper_start;
	if (local_parse_id(job_id, &pid, &start, &keeper, &keeper_start) != 0)
		return 0;
	/* a start time unknown (-1) never matches: a process that is gone reads as -1 too */
	return (start > 0 && os_process_start(pid) == start) || (keeper_start > 0 && os_process_start(keeper) == keeper_start);
}

int exec_local_ended(const char *log_path)
{
	char *path = local_exit_path(log_path);
	int ended = access(path, F_OK) == 0;
	free(path);
	return ended;
}

/* Reads the keeper's exit file into job (end, code, signal): 1 when it is there. */
int local_read_exit_file(const char *path, Job *job)
{
	size_t len;
	char *text = read_file(path, &len);
	if (!text)
		return 0;
	int n = 0;
	if (sscanf(text, "exit %d", &n) == 1)
		job->end = JOB_EXITED, job->exit_code = n;
	else if (sscanf(text, "signal %d", &n) == 1)
		job->end = JOB_SIGNALED, job->term_signal = n;
	else
		job->end = JOB_START_FAILED, job->exit_code = 127;
	free(text);
	return 1;
}

/* Whether a local attempt a previous kiln left open can be re-attached to: its leader or
 * its keeper still runs on this host (their sessions go to spare: the orphan sweep leaves
 * them alone), or it ended and its keeper left its exit file beside log_path. */
static int reattachable(const char *job_id, const char *log_path, pid_t **spare, int *nspare)
{
	pid_t pid, keeper;
	long long start, keeper_start;
	if (local_parse_id(job_id, &pid, &start, &keeper, &keeper_start) != 0)
		return 0;
	int alive = 0;
	pid_t both[2] = {pid, keeper};
	long long starts[2] = {start, keeper_start};
	for (int i = 0; i < 2; i++)
		if (starts[i] > 0 && os_process_start(both[i]) == starts[i]) { /* -1: unknown or gone */
			*spare = xrealloc(*spare, (size_t)(*nspare + 1) * sizeof **spare);
			(*spare)[(*nspare)++] = both[i];
			alive = 1;
		}
	if (alive)
		return 1;
	char *exit_path = local_exit_path(log_path);
	int ended = access(exit_path, F_OK) == 0;
	free(exit_path);
	return ended;
}

void local_adopt(Executor *ex, const OpenAttempt *a)
{
	LocalExec *le = ex->impl;
	exec_adopted_add(&le->adopted, &le->nadopted, a);
}

static AdoptedJob *adopted_for(LocalExec *le, const Task *t) { return exec_adopted_latest(le->adopted, le->nadopted, t->name); }

int local_adoptable(Executor *ex, const Task *t, const char *key_hex, Lease *held)
{
	LocalExec *le = ex->impl;
	AdoptedJob *a = adopted_for(le, t);
	if (a)
		*held = a->lease;
	return exec_adopted_matches(le->adopted, le->nadopted, t, key_hex);
}

/* The devices adopted attempts hold (ids, at most max): leased before anything starts,
 * so no task is given a device a re-attached attempt still uses. */
static int adopted_gpus(Executor *local, int *ids, int max)
{
	LocalExec *le = local->impl;
	int n = 0;
	for (int i = 0; i < le->nadopted; i++)
		for (int k = 0; k < le->adopted[i].lease.ngpus && n < max; k++)
			ids[n++] = le->adopted[i].lease.gpus[k];
	return n;
}

/* Stops an adopted attempt and waits until its processes are gone (its task's key changed: it is
 * stale and must not write beside the new one): SIGTERM, SIGKILL after 5 s. */
static void stop_stale(LocalExec *le, AdoptedJob *a, const char *why)
{
	pid_t pid, keeper;
	long long start, keeper_start;
	char *exit_path = local_exit_path(a->log);
	if (local_parse_id(a->job_id, &pid, &start, &keeper, &keeper_start) == 0 && start > 0 &&
	    os_process_start(pid) == start) {
		pid_t left = 0;
		os_signal_attempt(pid, SIGTERM);
		os_signal_attempt(pid, SIGCONT);
		for (int i = 0; i < 1000 && os_attempt_alive(pid, &left); i++) { /* 20 s at most */
			if (i == 250)
				os_signal_attempt(pid, SIGKILL); /* 5 s of grace are over */
			struct timespec pause = {0, 20000000};
			nanosleep(&pause, NULL);
		}
	}
	unlink(exit_path);
	free(exit_path);
	if (le->cache)
		cache_attempt_ended(le->cache, a->row, -1, why, NULL);
}

/* The value of NAME=... in a NUL-separated environment block, or NULL. */
static const char *env_value(const char *env, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (size_t off = 0; off < len; off += strlen(env + off) + 1)
		if (!strncmp(env + off, name, n) && env[off + n] == '=')
			return env + off + n + 1;
	return NULL;
}

/* The parent of pid and its start time, from /proc/PID/stat; 0 when unknown. */
static pid_t parent_of(pid_t pid)
{
	char path[64];
	size_t len;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *text = read_file(path, &len);
	const char *p = text ? strrchr(text, ')') : NULL;
	int ppid = 0;
	if (p && sscanf(p + 1, " %*c %d", &ppid) != 1)
		ppid = 0;
	free(text);
	return ppid;
}

/* Finds attempts of this workspace running on this host that no record names (a kiln
 * killed between a start and its next commit): session leaders whose parent is a keeper,
 * carrying the workspace marker and KILN_TASK, KILN_ATTEMPT, KILN_KEY and KILN_PROGRESS
 * (whose name gives the log's). Adopts them with attempt row 0, their and their keepers'
 * sessions appended to spare. Returns how many. */
static int find_unrecorded(Executor *local, const char *marker, pid_t **spare, int *nspare)
{
	LocalExec *le = local->impl;
	DIR *proc = opendir("/proc");
	int found = 0;
	for (struct dirent *e; proc && (e = readdir(proc));) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || getsid(pid) != pid)
			continue; /* an attempt leads its session */
		char path[64];
		size_t clen, elen;
		pid_t keeper = parent_of(pid);
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)keeper);
		char *cmd = keeper > 1 ? read_file(path, &clen) : NULL, *env = NULL;
		/* a keeper by its name (keeper.h), or one an older kiln started by its path */
		const char *slash = cmd ? strrchr(cmd, '/') : NULL;
		if (!cmd || (strcmp(cmd, KEEPER_PROCESS_NAME) && (!slash || strcmp(slash, "/kiln-keeper"))))
			goto next;
		snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
		env = read_file(path, &elen);
		const char *ws = env ? env_value(env, elen, "KILN_WORKSPACE") : NULL;
		const char *task = env ? env_value(env, elen, "KILN_TASK") : NULL;
		const char *attempt = env ? env_value(env, elen, "KILN_ATTEMPT") : NULL;
		const char *key = env ? env_value(env, elen, "KILN_KEY") : NULL;
		const char *progress = env ? env_value(env, elen, "KILN_PROGRESS") : NULL;
		size_t pl = progress ? strlen(progress) : 0;
		if (!ws || !task || !attempt || !key || pl <= SUFFIX_LEN(ATTEMPT_PROGRESS_SUFFIX) ||
		    strcmp(progress + pl - SUFFIX_LEN(ATTEMPT_PROGRESS_SUFFIX), ATTEMPT_PROGRESS_SUFFIX) ||
		    strcmp(ws, strchr(marker, '=') + 1))
			goto next;
		char job_id[256];
		const char *devices = env_value(env, elen, "CUDA_VISIBLE_DEVICES");
		long long started = os_process_start(pid);
		snprintf(job_id, sizeof job_id, "local/%d/%lld/%d/%lld", (int)pid, started, (int)keeper,
			 os_process_start(keeper));
		int known = 0;
		for (int i = 0; i < le->nadopted && !known; i++) { /* by its leader, whatever the id's form */
			pid_t p, k;
			long long st, kst;
			known = local_parse_id(le->adopted[i].job_id, &p, &st, &k, &kst) == 0 && p == pid && st == started;
		}
		if (!known) { /* started, but its record was not yet committed: adopted all the same */
			size_t wl = strlen(ws); /* its full path (from an earlier kiln: maybe not) */
			if (!strncmp(progress, ws, wl) && progress[wl] == '/')
				progress += wl + 1, pl -= wl + 1;
			char *log = xasprintf("%.*s", (int)(pl - SUFFIX_LEN(ATTEMPT_PROGRESS_SUFFIX)), progress);
			OpenAttempt unrecorded = {.rec = {.task = task, .attempt = atoi(attempt), .executor = "local",
						     .host = os_hostname(), .gpus = devices, .log = log, .job_id = job_id, .key = key}};
			exec_adopted_add(&le->adopted, &le->nadopted, &unrecorded);
			free(log);
			*spare = xrealloc(*spare, (size_t)(*nspare + 2) * sizeof **spare);
			(*spare)[(*nspare)++] = pid;
			(*spare)[(*nspare)++] = keeper;
			found++;
		}
	next:
		free(cmd);
		free(env);
	}
	if (proc)
		closedir(proc);
	return found;
}

int exec_local_stop_stale(Executor *local, const Graph *g, StaleWhen when)
{
	static const char *const said[] = {"the task is no longer in the recipe", "this run did not take it up",
					   "kiln clean removes its outputs"};
	LocalExec *le = local->impl;
	int stopped = 0;
	for (int i = 0; i < le->nadopted; i++) {
		AdoptedJob *a = &le->adopted[i];
		if (a->used)
			continue;
		const Task *t = graph_find(g, a->task);
		if (when == STALE_BEFORE_RUN ? t != NULL : !(t && t->needed))
			continue; /* not asked for now: it runs on for a later kiln */
		a->used = 1;
		fprintf(stderr, "kiln: stopped the attempt of \"%s\" an earlier kiln left running: %s\n", a->task,
			said[t ? when : STALE_BEFORE_RUN]);
		stop_stale(le, a, when == STALE_CLEAN ? "stopped by kiln clean" : "stopped: the task's key changed since it started");
		stopped++;
	}
	return stopped;
}

/* Attaches job to the attempt a previous kiln left for its task, when its key is the same. */
int local_reattach(Executor *ex, Job *job)
{
	LocalExec *le = ex->impl;
	AdoptedJob *a = adopted_for(le, job->task);
	if (!a)
		return 0;
	a->used = 1;
	/* one attempt of a task at a time: any other left for it is older, and must not write
	 * beside this one */
	for (AdoptedJob *older; (older = adopted_for(le, job->task));) {
		older->used = 1;
		if (strcmp(older->job_id, a->job_id)) /* not the same attempt, recorded twice */
			stop_stale(le, older, "stopped: a later attempt of the task was left too");
	}
	if (strcmp(a->key, job->key)) {
		stop_stale(le, a, "stopped: the task's key changed since it started");
		job->stopped_stale = 1;
		return 0;
	}
	long long start, keeper_start;
	pid_t keeper;
	local_parse_id(a->job_id, &job->pid, &start, &keeper, &keeper_start);
	if (a->lease.host[0] && strcmp(a->lease.host, os_hostname()))
		job->pid = 0; /* another host's (ended: adopt_elsewhere): its pid is nothing here to signal */
	exec_attach(job, a);
	exec_push_job(&le->jobs, &le->njobs, &le->cap, job);
	return 1;
}

/* Local attempts a killed (or detached) kiln left open: re-attachable ones go to the local
 * executor and their sessions are spared by the orphan sweep; the others are abandoned. */
typedef struct {
	Executor *local;
	Cache *c;
	pid_t *spare;
	int nspare, abandoned;
} LocalLeftovers;

/* An attempt another host's kiln started, in a workspace on a file system the hosts share
 * (an NFS home): its keeper there writes its exit file here when it ends. Ended, it is
 * adopted, and how it ended recorded as a re-attach would (its devices are that host's,
 * not leased here); running, or ended unseen there, its task is held: from here kiln can
 * neither watch nor stop it, and a second attempt beside it would write the same files. */
static void adopt_elsewhere(LocalLeftovers *lo, const OpenAttempt *a)
{
	LocalExec *le = lo->local->impl;
	if (exec_local_ended(a->rec.log)) {
		local_adopt(lo->local, a);
		le->adopted[le->nadopted - 1].lease.ngpus = 0;
		return;
	}
	le->held = xrealloc(le->held, (size_t)(le->nheld + 1) * sizeof *le->held);
	le->held[le->nheld++] = (HeldElsewhere){xstrdup(a->rec.task), xstrdup(a->rec.host), a->rec.attempt,
						a->rec.started, a->row, NULL};
}

const char *local_held_elsewhere(Executor *ex, const Task *t)
{
	LocalExec *le = ex->impl;
	for (int i = 0; i < le->nheld; i++) {
		HeldElsewhere *h = &le->held[i];
		if (strcmp(h->task, t->name))
			continue;
		if (t->forced) { /* the researcher's word: its host is gone, or it was stopped there */
			fprintf(stderr, "kiln: gave up attempt %d of %s on %s (--force runs it here): if it still runs there, "
				"stop it there\n", h->attempt, h->task, h->host);
			char *why = xasprintf("abandoned: run again on %s by kiln run --force", os_hostname());
			if (le->cache && h->row)
				cache_attempt_ended(le->cache, h->row, -1, why, NULL);
			free(why);
			h->task[0] = 0; /* said once */
			continue;
		}
		if (!h->why) {
			char ago[32];
			format_duration(h->started > 0 ? now_wall() - h->started : 0, ago, sizeof ago);
			h->why = xasprintf("attempt %d, started %s ago on %s by a kiln there that stopped, may still run "
					   "there: kiln here can neither watch nor stop it. Run kiln on %s to take it back; "
					   "if %s is down or the attempt was stopped there, `kiln run --force %s` runs it here",
					   h->attempt, ago, h->host, h->host, h->host, t->name);
		}
		return h->why;
	}
	return NULL;
}

static void adopt_local(void *ctx, const OpenAttempt *a)
{
	LocalLeftovers *lo = ctx;
	pid_t pid, keeper;
	long long start, keeper_start;
	if (strcmp(a->rec.executor, "local") || local_parse_id(a->rec.job_id, &pid, &start, &keeper, &keeper_start) != 0)
		return;
	if (a->rec.host && strcmp(a->rec.host, os_hostname())) { /* another host's, the workspace shared */
		adopt_elsewhere(lo, a);
		return;
	}
	if (reattachable(a->rec.job_id, a->rec.log, &lo->spare, &lo->nspare)) {
		local_adopt(lo->local, a);
	} else { /* this host's, and gone */
		cache_attempt_ended(lo->c, a->row, -1, "abandoned: kiln stopped before the attempt ended", NULL);
		lo->abandoned++;
	}
}

/* Waits (10 s at most) until no keeper holds LOCAL_KEEPER_LOCK: each has made every start
 * its kiln sent. A killed kiln's last start may still wait in its keeper's socket on a
 * loaded machine; looked for before it is made, it would be missed, and the task started
 * again beside it. */
static void wait_for_keepers(void)
{
	int fd = open(LOCAL_KEEPER_LOCK, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return; /* no keeper was ever started here */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
		if (errno != EWOULDBLOCK)
			break; /* a file system without locks: none was taken either (start_keeper) */
		if (i == 1000) {
			warn("a keeper of an earlier kiln has not read what that kiln sent it after 10 s (stopped? `ps` "
			     "shows it as " KEEPER_PROCESS_NAME "); going on");
			break;
		}
		struct timespec pause = {0, 10000000};
		nanosleep(&pause, NULL);
	}
	close(fd); /* the lock goes with it: this run's keeper takes its own */
}

int exec_local_take_over(Executor *local, Cache *c, GpuPool *gpus)
{
	wait_for_keepers();
	LocalLeftovers lo = {.local = local, .c = c};
	cache_each_open_job(c, adopt_local, &lo);
	if (cache_unclean(c)) /* a killed kiln: its last starts may have no record yet */
		find_unrecorded(local, exec_workspace_marker(), &lo.spare, &lo.nspare);
	int held[64], nheld = adopted_gpus(local, held, 64);
	if (gpus)
		gpu_lease_ids(gpus, held, nheld); /* devices re-attached attempts still use */
	int orphans = cache_reap_orphans(c, exec_workspace_marker(), lo.spare, lo.nspare, lo.abandoned > 0);
	free(lo.spare);
	return orphans;
}
