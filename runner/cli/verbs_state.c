/* verbs_state.c — the verbs that read attempts back or prune what runs leave: kiln log (an
 * attempt's log: the latest, one by number, or all of a task's), kiln gc (stored outputs
 * nothing refers to, and old attempt logs) and kiln clean (outputs and recorded successes,
 * or with --all the whole of .kiln/). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../base/os.h"
#include "../../cache/cache.h"
#include "../exec/exec.h"
#include "../../cache/resume.h"
#include "cli.h"

/* The logs `kiln gc` keeps per task beyond the latest run's and the latest success's. */
#define KEEP_LOGS_PER_TASK 5

static void print_file(const char *path)
{
	size_t len;
	char *text = read_file(path, &len);
	if (!text)
		fatal("cannot read %s: %s", path, strerror(errno));
	fwrite(text, 1, len, stdout);
	free(text);
}

typedef struct {
	int want;      /* an attempt number, 0: every one (--all) */
	int printed;
} LogQuery;

static void print_attempt_log(void *ctx, int attempt, long long run_id, const char *outcome, const char *log)
{
	LogQuery *q = ctx;
	if (q->want && attempt != q->want)
		return;
	if (!q->want) /* --all: each log under a line naming its attempt */
		printf("%s==> attempt %d (run %lld, %s): %s <==\n", q->printed ? "\n" : "", attempt, run_id, outcome, log);
	q->printed++;
	if (access(log, F_OK) != 0)
		printf("(%s was removed by kiln gc)\n", log);
	else
		print_file(log);
}

/* A map{}'s items and the map itself have no logs of their own: their shards do. The shard
 * that ran the item `name` (and in *attempt the attempt of it, 0 when only its latest list is
 * known); or fails saying which shards a map called `name` has, or that nothing ran as `name`. */
static char *shard_of(const char *name, int *attempt)
{
	ShardScan scan = scan_shards(name);
	char *found = scan.shard, *map = scan.map;
	int nshards = scan.nshards;
	*attempt = scan.attempt;
	if (!found && map) /* its lists pruned by kiln gc, or made before attempts kept their own */
		fatal("no log recorded for task \"%s\", and no list of map %s's shards names it: if an earlier "
		      "attempt made it, `kiln log %s:shard-N --all` prints every attempt of shard N",
		      name, map, map);
	if (!found && nshards)
		fatal("\"%s\" is a map{}: its items ran in %d shard%s, each with its logs: `kiln log %s:shard-1` (to "
		      "%s:shard-%d), or `kiln log %s/ITEM` for the shard that ran an item",
		      name, nshards, nshards == 1 ? "" : "s", name, name, nshards, name);
	if (!found)
		fatal("no log recorded for task \"%s\" in this workspace (has it run?)", name);
	free(map);
	return found;
}

/* Copies to stdout what f holds past where it was last read. */
static void print_new(FILE *f)
{
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		fwrite(chunk, 1, n, stdout);
	clearerr(f); /* at its end for now: read on later */
	fflush(stdout);
}

/* How long the follower of an attempt that failed waits for a retry's before it stops. */
#define FOLLOW_RETRY_WAIT_NS (3 * 1000000000LL)

/* The executor and host of the open attempt whose log is `log` ("" when none is open). */
typedef struct {
	const char *log;
	char executor[16], host[128], job_id[128];
} OpenOf;

static void find_open(void *ctx, const OpenAttempt *a)
{
	OpenOf *o = ctx;
	if (a->rec.log && !strcmp(a->rec.log, o->log)) {
		snprintf(o->executor, sizeof o->executor, "%s", a->rec.executor ? a->rec.executor : "");
		snprintf(o->host, sizeof o->host, "%s", a->rec.host ? a->rec.host : "");
		snprintf(o->job_id, sizeof o->job_id, "%s", a->rec.job_id ? a->rec.job_id : "");
	}
}

/* The bytes of the job's own log that the local log at path holds: what follows its header
 * and kiln's lines before the job's first (a host's copy streamed here, byte for byte). */
static long long streamed_here(const char *path)
{
	size_t len;
	char *text = read_file(path, &len);
	char *p = text ? strstr(text, "\n# --\n") : NULL;
	long long n = 0;
	if (p) {
		p += 6;
		while (!strncmp(p, "# kiln: ", 8) && strchr(p, '\n'))
			p = strchr(p, '\n') + 1;
		n = (long long)(len - (size_t)(p - text));
	}
	free(text);
	return n;
}

/* kiln log -f of an attempt on an executor's machines (ssh) while no kiln is at work here:
 * the rest of its log from there, until its job ends; 0 when it was followed to its end. */
static int follow_there(Options *o, const char *task, const char *path, const OpenOf *where)
{
	const ExecutorKind *kind = exec_kind(where->executor);
	if (!kind || !kind->follow_log || !where->job_id[0])
		return -1;
	fflush(stdout);
	fprintf(stderr, "kiln: %s runs on %s and no kiln is at work here: following its log there\n", task, where->host);
	char state_dir[64];
	snprintf(state_dir, sizeof state_dir, KILN_DIR "/%s", kind->name);
	Graph *g = load_recipe(o, new_graph()); /* its hosts{}: how to reach the host */
	Buf err = {0};
	int rc = kind->follow_log(g, state_dir, where->host, where->job_id, streamed_here(path), &err);
	fflush(stdout);
	if (rc == 0)
		fprintf(stderr, "kiln: its job there has ended; `kiln run` brings its outputs back and records it\n");
	else
		fprintf(stderr, "kiln: %s; `kiln run` re-attaches to it and brings the rest\n", buf_str(&err));
	buf_free(&err);
	graph_free(g);
	return rc;
}

/* Whether the attempt logging to `log` has ended though no kiln recorded it: a local
 * attempt's keeper and a Slurm job's script each leave an exit file when it ends (the job
 * writes its log on the shared file system, then that file: .kiln/slurm/TASK@N.exit),
 * unless its system holds the job to run again (a preempted Slurm job, requeued: its
 * stopped run left the file, the next one appends to the same log). */
static int ended_unwatched(const char *log, const OpenOf *o)
{
	int ended;
	if (!strcmp(o->executor, "slurm")) {
		size_t n = strlen(log), dir = strlen(KILN_DIR "/logs/");
		if (n <= dir + 4 || strncmp(log, KILN_DIR "/logs/", dir) != 0)
			return 0;
		char *exit_path = xasprintf(KILN_DIR "/slurm/%.*s.exit", (int)(n - dir - 4), log + dir);
		ended = access(exit_path, F_OK) == 0;
		free(exit_path);
	} else {
		ended = exec_local_ended(log);
	}
	const ExecutorKind *kind = exec_kind(o->executor);
	return ended && !(kind && kind->holds_job && o->job_id[0] && kind->holds_job(o->job_id));
}

/* kiln log --follow: task's latest log (path), then what is written to it until its attempt
 * ends (as the state records it, or as a local keeper or a Slurm job wrote, for a kiln killed
 * meanwhile; an ssh attempt's with no kiln at work, only what has arrived); a
 * retry of a failed one that starts within a few seconds is followed on, under a line
 * naming its log. */
static void follow_log(Options *o, Cache *c, const char *task, const char *path)
{
	char *following = xstrdup(path);
	FILE *f = fopen(following, "r");
	if (!f)
		fatal("cannot read %s: %s", following, strerror(errno));
	int64_t ended_at = 0;
	unsigned turn = 0;
	OpenOf where = {following, "", "", ""};
	cache_each_open_job(c, find_open, &where);
	for (;;) {
		print_new(f);
		Buf latest = {0};
		int stands = ATTEMPT_ENDED, found = cache_last_log(c, task, &latest, &stands) == 0;
		if (found && strcmp(buf_str(&latest), following) != 0) { /* a retry's attempt: on to its log */
			FILE *next = fopen(buf_str(&latest), "r");
			if (next) {
				print_new(f);
				fclose(f);
				f = next;
				free(following);
				following = xstrdup(buf_str(&latest));
				printf("\n==> %s <==\n", following);
				ended_at = 0;
				where = (OpenOf){following, "", "", ""};
				cache_each_open_job(c, find_open, &where);
				buf_free(&latest);
				continue;
			}
		}
		buf_free(&latest);
		if (stands == ATTEMPT_SUCCEEDED)
			break;
		if (stands == ATTEMPT_RUNNING && !strcmp(where.executor, "ssh") && !cache_lock_holder(c)) {
			/* the host's log comes here through a kiln: with none at work, from there */
			print_new(f);
			follow_there(o, task, following, &where);
			break;
		}
		/* its exit file's reading asks Slurm, so once a second (the loop's fifth turn) */
		if (!found || stands == ATTEMPT_ENDED || (++turn % 5 == 0 && ended_unwatched(following, &where))) {
			if (!ended_at)
				ended_at = now_mono_ns();
			else if (now_mono_ns() - ended_at > FOLLOW_RETRY_WAIT_NS)
				break;
		}
		struct timespec pause = {0, 200 * 1000000};
		nanosleep(&pause, NULL);
	}
	print_new(f);
	fclose(f);
	free(following);
}

/* kiln log while a kiln on another host writes this workspace (a shared file system): the
 * state cannot be read from here (cache_open says why), but the logs are files whose names
 * say their attempt: TASK@N.log, the highest N the latest. Prints it (or number's) and returns
 * 1; 0 when no other host's kiln holds the workspace. */
static int log_read_beside_another_host(Options *o, const char *number)
{
	char host[256];
	int holder = cache_lock_holder_at(KILN_DIR, host, sizeof host);
	if (!holder || !host[0])
		return 0;
	const char *task = o->targets[0], *slash = strrchr(task, '/');
	char *dir = xasprintf(KILN_DIR "/logs%s%.*s", slash ? "/" : "", slash ? (int)(slash - task) : 0, task);
	const char *base = slash ? slash + 1 : task;
	size_t blen = strlen(base);
	int want = number ? atoi(number) : 0, best = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		const char *at = e->d_name + blen;
		int n = 0, used = 0;
		if (!strncmp(e->d_name, base, blen) && *at == '@' && sscanf(at + 1, "%d.log%n", &n, &used) == 1 &&
		    !at[1 + used] && used > 4 && (want ? n == want : n > best))
			best = n;
	}
	if (d)
		closedir(d);
	if (o->follow || o->all || !best) {
		free(dir);
		fatal("a kiln on %s (pid %d) is running in this workspace, and its state cannot be read from a second "
		      "host while it writes: %s", host, holder,
		      o->follow || o->all ? "follow or list logs there; from here, `kiln log TASK [N]` reads one log's file"
					  : "no log of that task (or attempt) is here yet");
	}
	char *path = xasprintf("%s/%s@%d.log", dir, base, best);
	fprintf(stderr, "kiln: a kiln on %s is at work in this workspace; %s, read from its file\n", host, path);
	print_file(path);
	free(path);
	free(dir);
	return 1;
}

int verb_log(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	const char *number = o->ntargets == 2 ? o->targets[1] : NULL;
	if (o->ntargets < 1 || o->ntargets > 2 || (number && (strspn(number, "0123456789") != strlen(number) || !*number)))
		fatal("usage: kiln log TASK [N | --all | -f] (N: an attempt number, as in its log's name TASK@N.log)");
	if (o->follow && (number || o->all))
		fatal("kiln log -f follows the latest attempt: give it no attempt number or --all");
	if (log_read_beside_another_host(o, number))
		return 0;
	CacheOptions copt = {.readonly = 1};
	Buf err = {0}, path = {0};
	Cache *c = cache_open(KILN_DIR, NULL, &copt, &err);
	if (!c || cache_loaded(c, &err) != 0)
		fatal("no log recorded for task \"%s\" in this workspace (has it run?)", o->targets[0]);
	char *shard = NULL;
	int item_attempt = 0; /* a map item's: the attempt of its shard that ran it */
	int holder = o->follow && cache_last_log(c, o->targets[0], &path, NULL) != 0 ? cache_lock_holder(c) : 0;
	if (holder) /* -f before the task started: its first attempt is waited for while a kiln works */
		fprintf(stderr, "kiln: %s has no attempt yet; waiting while the kiln at work here (pid %d) may start it\n",
			o->targets[0], holder);
	while (holder && cache_last_log(c, o->targets[0], &path, NULL) != 0 && (holder = cache_lock_holder(c))) {
		struct timespec pause = {0, 200 * 1000000};
		nanosleep(&pause, NULL);
	}
	buf_reset(&path);
	if (cache_last_log(c, o->targets[0], &path, NULL) != 0) { /* a map's item: its shard's logs */
		shard = shard_of(o->targets[0], &item_attempt);
		if (item_attempt && !number && !o->all && !o->follow)
			fprintf(stderr, "kiln: %s is an item of a map{}; attempt %d of %s ran it, whose log follows\n",
				o->targets[0], item_attempt, shard);
		else
			fprintf(stderr, "kiln: %s is an item of a map{}; it ran in %s, whose log follows\n", o->targets[0], shard);
		o->targets[0] = shard;
	}
	buf_reset(&path);
	if (item_attempt && !number && !o->all && !o->follow) {
		LogQuery q = {item_attempt, 0};
		cache_each_attempt_log(c, o->targets[0], print_attempt_log, &q);
		if (!q.printed)
			fatal("%s has no attempt %d with a log (kiln log %s --all lists them)", o->targets[0], item_attempt,
			      o->targets[0]);
	} else if (number || o->all) {
		LogQuery q = {number ? atoi(number) : 0, 0};
		cache_each_attempt_log(c, o->targets[0], print_attempt_log, &q);
		if (!q.printed && number)
			fatal("task \"%s\" has no attempt %s with a log (kiln log %s --all lists them)", o->targets[0],
			      number, o->targets[0]);
		if (!q.printed)
			fatal("no log recorded for task \"%s\" in this workspace (has it run?)", o->targets[0]);
	} else {
		if (cache_last_log(c, o->targets[0], &path, NULL) != 0)
			fatal("no log recorded for task \"%s\" in this workspace (has it run?)", o->targets[0]);
		if (o->follow)
			follow_log(o, c, o->targets[0], buf_str(&path));
		else
			print_file(buf_str(&path));
		ShardScan scan = shard ? (ShardScan){0} : scan_shards(o->targets[0]);
		if (scan.nshards) /* a map's own task only groups its items: say where their logs are */
			fprintf(stderr, "kiln: %s is a map{}: its items ran in %d shard%s, each with its logs: `kiln log "
					"%s:shard-1` (to %s:shard-%d), or `kiln log %s/ITEM` for the shard that ran an item\n",
				o->targets[0], scan.nshards, scan.nshards == 1 ? "" : "s", o->targets[0], o->targets[0],
				scan.nshards, o->targets[0]);
		free(scan.shard);
		free(scan.map);
	}
	cache_close(c);
	buf_free(&path);
	buf_free(&err);
	free(shard);
	return 0;
}

int verb_gc(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	if (o->ntargets)
		fatal("kiln gc takes no task names: it prunes the whole workspace's store and logs (`kiln clean TASK` "
		      "removes one task's outputs)");
	Graph *g = graph_new("/");
	CacheOptions copt = {.store_max_mib = o->store_max_mib};
	Buf err = {0};
	Cache *c = cache_open(KILN_DIR, g, &copt, &err);
	if (!c || cache_loaded(c, &err) != 0)
		fatal("%s", buf_str(&err));
	long long bytes, log_bytes, copy_bytes;
	int n = cache_gc(c, &bytes);
	int logs = cache_gc_logs(c, KILN_DIR "/logs", KEEP_LOGS_PER_TASK, &log_bytes);
	int copies = cache_gc_resume(c, &copy_bytes);
	printf("kiln: removed %d unreferenced object%s (%.1f MiB) and %d old attempt log%s (%.1f MiB)", n,
	       n == 1 ? "" : "s", bytes / 1048576.0, logs, logs == 1 ? "" : "s", log_bytes / 1048576.0);
	if (copies) /* checkpoints' copies: said only when there were some (most workspaces have none) */
		printf(", %d checkpoint cop%s no attempt needs (%.1f MiB)", copies, copies == 1 ? "y" : "ies",
		       copy_bytes / 1048576.0);
	putchar('\n');
	cache_close(c);
	graph_free(g);
	buf_free(&err);
	return 0;
}

static void mark_needed(void *ctx, Task *t)
{
	(void)ctx;
	t->needed = 1;
}

/* An attempt of a task being cleaned that a killed or detached kiln left open on another
 * machine (an ssh host, a Slurm node): clean cannot stop it from here, so it says so. */
static void note_remote_attempt(void *ctx, const OpenAttempt *a)
{
	void **args = ctx;
	const Task *t = graph_find(args[0], a->rec.task);
	if (t && t->needed && (strcmp(a->rec.executor, "local") || (a->rec.host && strcmp(a->rec.host, os_hostname()))))
		buf_printf(args[1], "  %s: %s job %s%s%s%s\n", t->name, a->rec.executor, a->rec.job_id,
			   a->rec.host ? " on " : "", a->rec.host ? a->rec.host : "",
			   strcmp(a->rec.executor, "local") ? "" : " (the workspace is shared: only a kiln there re-attaches it)");
}

/* Before outputs go: attempts of the cleaned tasks that a killed or detached kiln left
 * running would write them again later (or be taken up as done by the next run, having
 * read inputs that are gone). Local ones are stopped and their records closed; one on
 * another machine makes clean refuse, changing nothing. */
static void stop_open_attempts(Graph *g, Cache *c)
{
	Buf remote = {0};
	void *args[] = {g, &remote};
	cache_each_open_job(c, note_remote_attempt, args);
	if (remote.len)
		fatal("these tasks have attempts still running elsewhere, left by a kiln that was killed or "
		      "detached:\n%s`kiln run` re-attaches them (Ctrl-C in it stops them); clean after that run",
		      buf_str(&remote));
	Executor *local = exec_local_new(c, 0);
	int orphans = exec_local_take_over(local, c, NULL);
	exec_local_stop_stale(local, g, STALE_CLEAN); /* says what it stops */
	if (orphans > 0)
		fprintf(stderr, "kiln: stopped %d task process group%s left running by a kiln that was killed\n", orphans,
			orphans == 1 ? "" : "s");
	local->destroy(local);
}

/* kiln clean: the named tasks (all without names; with --deps what they need too) lose
 * their outputs and their recorded successes, so the next run runs them. */
int verb_clean(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = new_graph();
	Cache *c = open_cache(o, g, 0); /* the workspace lock: no run may be writing meanwhile */
	load_graph_with(o, g, c);
	Buf err = {0};
	if (o->ntargets && !o->deps) { /* only what the targets name, not what they depend on */
		for (int i = 0; i < g->ntasks; i++)
			g->tasks[i]->needed = 0;
		graph_match(g, o->targets, o->ntargets, mark_needed, NULL, &err);
	}
	stop_open_attempts(g, c);
	int removed = 0, forgotten = 0;
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		if (!t->needed)
			continue;
		int had = 0;
		for (int j = 0; j < t->noutputs + t->opts->nresume; j++) { /* resume state goes too */
			struct stat st;
			const char *p = j < t->noutputs ? t->outputs[j] : t->opts->resume[j - t->noutputs];
			if (lstat(p, &st) == 0 && (S_ISDIR(st.st_mode) ? remove_tree(p) : unlink(p)) == 0)
				removed++, had++;
		}
		resume_forget(c, t); /* its checkpoints' last whole copies */
		if (!o->all && cache_forget(c, t) != 0)
			fatal("cannot write %s/state.db: %s", KILN_DIR, cache_write_error(c) ? cache_write_error(c) : "?");
		forgotten++;
		if (o->ntargets)
			printf("cleaned   %s (%d output%s removed)\n", t->name, had, had == 1 ? "" : "s");
	}
	printf("kiln: removed %d output%s; %d task%s will run again\n", removed, removed == 1 ? "" : "s", forgotten,
	       forgotten == 1 ? "" : "s");
	if (!o->all)
		cache_close(c);
	else if (cache_close_removing(c, KILN_DIR) != 0)
		fatal("could not remove all of %s/ (see the messages above); remove it by hand when no kiln runs", KILN_DIR);
	else
		printf("kiln: removed %s/ (state, logs, stored outputs)\n", KILN_DIR);
	graph_free(g);
	return 0;
}
