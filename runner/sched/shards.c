/* shards.c — running map{} items in batches. Every item is a task with its own key and
 * output, decided by the cache like any task (up to date, restored, or must run); the
 * items that must run wait in their shard's list, and once every item of a shard is
 * decided its runner starts one process for all of them, with the list in a file
 * ({items}, KILN_ITEMS) and the runner's resources (its GPU lease lasts for the batch).
 *
 * An item is recorded (its output hashed, its success in the state) only once its output
 * is certainly complete: when an output of a later item in the list has appeared (a shard
 * works through its list in order, one item at a time), or when the process exits 0. So
 * a kill -9, a Ctrl-C or a crash loses at most the item in progress, never records half
 * an output, and the next run starts at the first unrecorded item. A listed item whose
 * output is missing after a successful exit fails by name; the others stay recorded. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../base/os.h"
#include "sched_internal.h"

typedef struct ShardRun {
	Task **pending;   /* items that must run, in list order */
	int npending, cap;
	int recorded;     /* pending[0..recorded) are recorded (this attempt) */
	int undecided;    /* needed items whose verdict is not in yet */
	int running;      /* its runner's job is running */
	int ran;          /* items it recorded in this run */
	int caught_up;    /* of those, what a re-attached attempt had made before this kiln
			     looked (while no kiln watched): not made at this run's rate */
	int attached;     /* re-attached, and its first look at the outputs not yet taken */
	int reattached;   /* its attempt is one an earlier kiln started (its items: taken up) */
	int unwatched;    /* pending[0..unwatched) had their outputs at that first look */
	int64_t started_ns; /* its first start in this run (or that first look), 0 before */
	Task **later;     /* pending items a re-attached attempt does not list, or whose inputs
			     changed after it started: the next attempt's */
	int nlater;
	int64_t listed_ns; /* re-attached: when its list was written (just before it started) */
	int redone;       /* items of it whose inputs changed since: said once */
	int looked;       /* kiln stopped its local processes and looked at their open files:
			     closed_last is the verdict on its last item */
	Task *closed_last; /* then: its last item with outputs, which no process of it held
			      open when kiln stopped it (complete), or NULL */
	struct stat closed_st[4]; /* and those outputs then: changed since, it is not recorded */
} ShardRun;

void shards_init(Run *r)
{
	Graph *g = r->g;
	r->shards = xcalloc((size_t)g->nshards + 1, sizeof *r->shards);
	for (int s = 0; s < g->nshards; s++)
		for (int i = 0; i < g->shards[s]->nitems; i++)
			r->shards[s].undecided += shard_item(g, g->shards[s], i)->needed;
}

void shards_free(Run *r)
{
	for (int s = 0; s < r->g->nshards; s++) {
		free(r->shards[s].pending);
		free(r->shards[s].later);
	}
	free(r->shards);
}

void shard_item_pending(Run *r, Task *t)
{
	ShardRun *s = &r->shards[t->more->shard->id];
	if (s->npending == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->pending = xrealloc(s->pending, (size_t)s->cap * sizeof *s->pending);
	}
	s->pending[s->npending++] = t;
	t->state = TS_READY;
	s->undecided--;
}

void shard_item_settled(Run *r, Task *t) { r->shards[t->more->shard->id].undecided--; }

int shards_waiting(const Run *r)
{
	for (int s = 0; s < r->g->nshards; s++)
		if (!r->shards[s].running && r->shards[s].npending > 0)
			return 1;
	return 0;
}

int shards_running(const Run *r)
{
	for (int s = 0; s < r->g->nshards; s++)
		if (r->shards[s].running)
			return 1;
	return 0;
}

/* Pending items go in the order of the shard's list, which is declaration order (map{}
 * declares a shard's items one after the other): they were queued as they were decided. */
static int compare_position(const void *a, const void *b)
{
	return (*(Task *const *)a)->index - (*(Task *const *)b)->index;
}

void shards_start(Run *r)
{
	Graph *g = r->g;
	for (int i = 0; i < g->nshards; i++) {
		ShardRun *s = &r->shards[i];
		MapShard *m = g->shards[i];
		if (s->running || s->undecided > 0 || s->npending == 0 || r->stopping)
			continue;
		if (m->runner->opts->gpus > 0 && gpu_count(r->o->gpus) == 0 && r->o->task_exec[m->runner->index]->local_slots) {
			for (int k = 0; k < s->npending; k++)
				task_failed(r, s->pending[k], "its shard needs a GPU but none is known: no NVML driver was found; "
							    "name devices with --gpus 0,1", NULL);
			s->npending = 0;
			continue;
		}
		if (s->npending > 1)
			qsort(s->pending, (size_t)s->npending, sizeof *s->pending, compare_position);
		for (int k = 0; k < s->npending; k++)
			s->pending[k]->state = TS_RUNNING;
		s->recorded = 0;
		s->running = 1;
		if (!s->started_ns)
			s->started_ns = now_mono_ns();
		if (!try_start(r, m->runner)) { /* no slot yet: the next wake-up tries again */
			s->running = 0;
			for (int k = 0; k < s->npending; k++)
				s->pending[k]->state = TS_READY;
		}
	}
}

static const char *item_text(const Task *t)
{
	const char *item = task_tag(t, "item");
	return item ? item : t->name;
}

/* A re-attached attempt works through the list a previous kiln wrote: the pending items go
 * in its order (the rule that an item is complete once a later one's output appears holds
 * only in that order), and pending items it does not list wait for the next attempt. */
static void follow_listed_order(ShardRun *s, const char *list)
{
	StrMap position = {0};
	long k = 0;
	for (const char *p = list; *p; k++) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *item = xasprintf("%.*s", (int)n, p);
		if (!strmap_get(&position, item))
			strmap_put(&position, item, (void *)(k + 1));
		else
			free(item);
		p += n + (nl != NULL);
	}
	Task **listed = xmalloc(((size_t)s->npending + 1) * sizeof *listed);
	long *at = xmalloc(((size_t)s->npending + 1) * sizeof *at);
	int nlisted = 0;
	for (int i = 0; i < s->npending; i++) {
		long pos = (long)strmap_get(&position, item_text(s->pending[i]));
		if (!pos) {
			s->later = xrealloc(s->later, (size_t)(s->nlater + 1) * sizeof *s->later);
			s->later[s->nlater++] = s->pending[i];
			s->pending[i]->state = TS_READY;
			continue;
		}
		int j = nlisted++; /* insertion by list position: lists are read once per attach */
		while (j > 0 && at[j - 1] > pos) {
			listed[j] = listed[j - 1];
			at[j] = at[j - 1];
			j--;
		}
		listed[j] = s->pending[i];
		at[j] = pos;
	}
	memcpy(s->pending, listed, (size_t)nlisted * sizeof *listed);
	s->npending = nlisted;
	free(listed);
	free(at);
	const char *key;
	void *value;
	for (size_t i = 0; strmap_next(&position, &i, &key, &value);)
		free((char *)key);
	strmap_free(&position);
}

char *shard_prepare(Run *r, Task *runner, int attempt, int reattach, Buf *err)
{
	ShardRun *s = &r->shards[runner->more->shard->id];
	const char *slash = strrchr(r->o->log_dir, '/'); /* beside the logs: .kiln/maps/ */
	int dir = slash ? (int)(slash - r->o->log_dir) : 0;
	/* one list per runner: the attempt running is the one that reads it */
	char *path = xasprintf("%.*s%smaps/%s.items", dir, r->o->log_dir, dir ? "/" : "", runner->name);
	size_t len;
	char *old = reattach ? read_file(path, &len) : NULL;
	struct stat st;
	s->listed_ns = old && stat(path, &st) == 0 ? (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec : 0;
	s->redone = 0;
	s->reattached = old != NULL;
	if (old) {
		follow_listed_order(s, old);
		s->attached = 1;
		free(old);
		return path;
	}
	Buf list = {0};
	for (int k = 0; k < s->npending; k++) {
		Task *t = s->pending[k];
		cache_clear_outputs(r->o->cache, t); /* only what must be made again */
		for (int j = 0; j < t->noutputs; j++)
			mkdirs_parent(t->outputs[j]);
		buf_printf(&list, "%s\n", item_text(t));
	}
	if (mkdirs_parent(path) != 0 || write_file_atomic(path, list.data ? list.data : "", list.len) != 0) {
		buf_printf(err, "cannot write the item list %s", path);
		free(path);
		path = NULL;
	} else { /* the attempt's own copy, kept as the next attempt replaces the list (a new file) */
		char *own = xasprintf("%s/%s@%d.items", r->o->log_dir, runner->name, attempt);
		unlink(own); /* a number is never reused, but a killed kiln may have left one */
		if (mkdirs_parent(own) != 0 || link(path, own) != 0)
			write_file_atomic(own, list.data ? list.data : "", list.len); /* a file system without links */
		free(own);
	}
	buf_free(&list);
	return path;
}

Task **shard_items(Run *r, const Task *runner, int *n)
{
	ShardRun *s = &r->shards[runner->more->shard->id];
	Task **items = xmalloc(((size_t)s->npending + 1) * sizeof *items);
	memcpy(items, s->pending, (size_t)s->npending * sizeof *items);
	*n = s->npending;
	return items;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int output_there(const Task *t) { return t->noutputs == 0 || exists(t->outputs[0]); }

static void record_item(Run *r, Task *t)
{
	Buf err = {0};
	if (cache_record_success(r->o->cache, t, &err) == 0) {
		r->sum->ran++;
		r->shards[t->more->shard->id].ran++;
		task_done(r, t);
	} else {
		task_failed(r, t, buf_str(&err), NULL);
	}
	buf_free(&err);
}

/* Whether an input of item t was written or replaced at since_ns or later. */
static int input_changed_since(const Task *t, int64_t since_ns)
{
	struct stat st;
	for (int j = 0; j < t->ninputs; j++)
		if (stat(t->inputs[j], &st) == 0 &&
		    ((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec >= since_ns ||
		     (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec >= since_ns))
			return 1;
	return 0;
}

/* An item whose input changed after a re-attached attempt started (made again by this run,
 * or edited) is neither recorded nor failed from that attempt, which may have read the old
 * content (or found it gone): it waits for the next attempt, which makes it afresh. 1 when
 * t is such an item, now in s->later. */
static int redo_later(Run *r, ShardRun *s, Task *t)
{
	if (!s->listed_ns || !input_changed_since(t, s->listed_ns))
		return 0;
	if (!s->redone++)
		status_print(&r->st, "note", "%s: inputs of its items changed after the attempt an earlier kiln left "
			     "running started: those items run again, in an attempt of their own", t->more->shard->runner->name);
	s->later = xrealloc(s->later, (size_t)(s->nlater + 1) * sizeof *s->later);
	s->later[s->nlater++] = t;
	t->state = TS_READY;
	return 1;
}

/* Records s->pending[k]; one a re-attached attempt made while no kiln watched is not
 * counted in the rate. */
static void record_pending(Run *r, ShardRun *s, int k)
{
	if (redo_later(r, s, s->pending[k]))
		return;
	int ran = s->ran;
	record_item(r, s->pending[k]);
	if (s->ran > ran && k < s->unwatched)
		s->caught_up++;
	if (s->ran > ran && s->reattached)
		r->sum->taken_up++;
}

/* The index of the last pending item not yet recorded whose output is there, or -1. */
static int last_with_output(const ShardRun *s)
{
	for (int k = s->npending - 1; k >= s->recorded; k--)
		if (output_there(s->pending[k]))
			return k;
	return -1;
}

/* Records the pending items before the last one whose output exists (those are complete:
 * the command has moved on); an item before it without an output was skipped by the
 * command and is settled when the process ends. */
static void record_complete(Run *r, ShardRun *s)
{
	int last = last_with_output(s);
	if (s->attached) { /* the rate counts from here: what is there already was made unwatched */
		s->attached = 0;
		s->unwatched = last + 1;
		s->started_ns = now_mono_ns();
	}
	for (; s->recorded < last; s->recorded++)
		if (output_there(s->pending[s->recorded]))
			record_pending(r, s, s->recorded);
}

void shard_note_stop(Run *r, Job *job)
{
	if (!task_is_runner(job->task))
		return;
	ShardRun *s = &r->shards[job->task->more->shard->id];
	s->closed_last = NULL;
	/* an output written in several steps (echo > out; ...; cmd >> out) is closed between
	 * them: only a map that says its outputs appear whole has its last one looked at */
	if (job->pid <= 0 || !job->task->more->shard->atomic_outputs)
		return;
	s->looked = 1; /* the look decides: one that found nothing keeps nothing */
	/* frozen, its processes cannot finish another item between this look and the SIGTERM
	 * that follows (with the SIGCONT that lets them see it); one in a disk wait stops when
	 * the wait ends, which on a loaded disk can take a good part of a second, or more. A
	 * group not frozen by then is looked at as it runs: an output written after the look
	 * differs from the stat taken here, and record_closed_last then keeps nothing */
	(void)os_attempt_freeze(job->pid, 2000);
	int last = last_with_output(s);
	Task *t = last >= 0 ? s->pending[last] : NULL;
	if (!t || t->state != TS_RUNNING || t->noutputs < 1 || t->noutputs > 4)
		return;
	char *paths[4] = {0};
	int n = 0;
	while (n < t->noutputs && (paths[n] = realpath(t->outputs[n], NULL)) && stat(paths[n], &s->closed_st[n]) == 0)
		n++;
	if (n == t->noutputs && os_attempt_uses(job->pid, (const char *const *)paths, n) == 0)
		s->closed_last = t;
	for (int i = 0; i < t->noutputs; i++)
		free(paths[i]);
}

/* Records the item shard_note_stop found complete, if its outputs are as they were then. */
static void record_closed_last(Run *r, ShardRun *s)
{
	Task *t = s->closed_last;
	s->closed_last = NULL;
	if (!t || t->state != TS_RUNNING)
		return;
	for (int i = 0; i < t->noutputs; i++) {
		struct stat st;
		const struct stat *was = &s->closed_st[i];
		if (stat(t->outputs[i], &st) != 0 || st.st_ino != was->st_ino || st.st_size != was->st_size ||
		    st.st_mtim.tv_sec != was->st_mtim.tv_sec || st.st_mtim.tv_nsec != was->st_mtim.tv_nsec)
			return;
	}
	for (int k = 0; k < s->npending; k++)
		if (s->pending[k] == t)
			record_pending(r, s, k);
}

/* An attempt of a map with atomic_outputs ended unfinished (stopped, timed out, failed, its
 * host lost): its last item with outputs is finished if all of them are there, since each
 * appears whole. Where kiln stopped a local shard it looked at its open files too, and that
 * look decides; elsewhere (a process that ended by itself, a Slurm job, a host's outputs
 * brought back) the promise alone does. */
static void record_whole_last(Run *r, ShardRun *s, const Job *job)
{
	if (s->looked) {
		record_closed_last(r, s);
		return;
	}
	int last = last_with_output(s);
	if (last < 0 || !job->task->more->shard->atomic_outputs || s->pending[last]->state != TS_RUNNING)
		return;
	Task *t = s->pending[last];
	struct stat st;
	for (int i = 0; i < t->noutputs; i++)
		if (stat(t->outputs[i], &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			return;
	record_pending(r, s, last);
}

void shards_poll(Run *r)
{
	for (int i = 0; i < r->g->nshards; i++)
		if (r->shards[i].running)
			record_complete(r, &r->shards[i]);
}

void shard_job_ended(Run *r, Job *job, const char *why, int mode)
{
	ShardRun *s = &r->shards[job->task->more->shard->id];
	s->running = 0;
	record_complete(r, s);
	if (mode != SHARD_OK) /* the item it was on when it ended, if it had finished it */
		record_whole_last(r, s, job);
	s->closed_last = NULL;
	s->looked = 0;
	int left = 0;
	for (int k = 0; k < s->npending; k++) {
		Task *t = s->pending[k];
		if (t->state != TS_RUNNING)
			continue; /* recorded (or failed) while it ran */
		if (mode != SHARD_STOPPED && redo_later(r, s, t))
			continue;
		if (mode == SHARD_OK && output_there(t)) {
			record_pending(r, s, k);
		} else if (mode == SHARD_OK) {
			char msg[300];
			snprintf(msg, sizeof msg, "%s exited 0 without writing %s (log: %s)", job->task->name,
				 t->noutputs ? t->outputs[0] : "its output", job->log_path);
			task_failed(r, t, msg, job->log_path);
		} else if (mode == SHARD_RETRY) {
			t->state = TS_READY;
			s->pending[left++] = t; /* the next attempt takes what is left */
		} else if (mode == SHARD_STOPPED) {
			t->state = TS_SKIPPED;
			r->done++;
		} else {
			char msg[700];
			snprintf(msg, sizeof msg, "%s failed: %s", job->task->name, why);
			task_failed(r, t, msg, job->log_path);
		}
	}
	/* recorded items before s->recorded are settled; kept ones move to the front */
	if (mode != SHARD_RETRY)
		left = 0;
	for (int k = 0; k < s->nlater; k++) { /* not listed by a re-attached attempt */
		Task *t = s->later[k];
		if (mode == SHARD_OK || mode == SHARD_RETRY || (mode == SHARD_FAILED && s->redone)) {
			s->pending[left++] = t; /* room: they were pending before the attach */
		} else {
			t->state = TS_SKIPPED;
			r->done++;
		}
	}
	s->nlater = 0;
	s->npending = left;
	s->recorded = 0;
	s->unwatched = 0;
}

/* ---- progress ---- */

void shards_progress(Run *r, Buf *out, int force_print)
{
	Graph *g = r->g;
	int64_t now = now_mono_ns();
	for (int i = 0; i < g->nshards; i++) {
		MapShard *m = g->shards[i];
		if (m->index != 1)
			continue; /* a map is summed from its first shard */
		int done = 0, total = 0, running = 0, ran = 0;
		int64_t started = 0;
		for (int k = i; k < g->nshards && g->shards[k]->map == m->map; k++) {
			ShardRun *s = &r->shards[k];
			running |= s->running;
			ran += s->ran - s->caught_up;
			if (s->started_ns && (!started || s->started_ns < started))
				started = s->started_ns;
			for (int j = 0; j < g->shards[k]->nitems; j++) {
				Task *t = shard_item(g, g->shards[k], j);
				total += t->needed;
				done += t->needed && (t->state == TS_DONE || t->state == TS_FAILED);
			}
		}
		if (!running && !(force_print && started))
			continue; /* nothing of this map ran */
		double elapsed = started ? (double)(now - started) / 1e9 : 0;
		double rate = elapsed > 0.05 && ran ? ran / elapsed : 0; /* items made per second since the map began */
		buf_printf(out, "%s%s: %d/%d items", out->len ? "; " : "", m->map, done, total);
		if (rate > 0) {
			buf_printf(out, ", %.1f items/s", rate);
			if (done < total) {
				char eta[32];
				format_duration((total - done) / rate, eta, sizeof eta);
				buf_printf(out, ", ETA %s", eta);
			}
		}
	}
	/* plain output: a progress line every 10 s (and the last one), the status line otherwise */
	if (out->len && (force_print || (!r->st.tty && now - r->progress_printed_ns >= 10000000000LL))) {
		status_print(&r->st, "progress", "%s", buf_str(out));
		r->progress_printed_ns = now;
	}
}
