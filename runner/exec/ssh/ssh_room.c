/* ssh_room.c — which hosts take a task, and when it waits (the ssh executor's has_room).
 *
 * A host is leased for each of the task's nodes (distinct hosts; the one holding most of its
 * inputs, then the one with most room) and held in se->held* for the start() that follows.
 * A task continuing from resume state a host holds (its previous attempt ran there and did
 * not finish: place_home) goes back there, each node of a multi-node job to its own: it
 * waits for room on that host while other tasks run, and, when the host does not answer,
 * waits for it to come back (a reboot, a dropped network) before starting afresh elsewhere
 * — every epoch kept there would be thrown away — --host-wait, or as long as the work kept
 * there took, whichever is longer: the wait never costs more than starting afresh would. A task whose hosts all stay down that long
 * fails as host-down. */
#define _GNU_SOURCE
#include <string.h>

#include "../../../base/os.h"
#include "ssh_internal.h"

void ssh_release_held(SshExec *se)
{
	for (int k = 0; se->held && k < se->nheld; k++)
		if (se->held->opts->gpus && se->held_hosts[k]->gpus)
			gpu_release(se->held_hosts[k]->gpus, se->held_gpus[k], se->held->opts->gpus);
	se->held = NULL;
	se->nheld = 0;
}

/* The job of t that may run on where kiln cannot reach it now, not taken up yet: lost with
 * its host in this run, or left by a killed kiln (open, or recorded lost), the first in
 * take-up order (ssh_task_job); NULL when none, or when t's key is no longer the job's (the
 * recipe changed: nothing to wait for). */
static const AdoptedJob *lost_job(const SshExec *se, const Task *t)
{
	const AdoptedJob *a = ssh_task_job(se, t, 1);
	char key[33];
	if (a)
		cache_key_hex(se->cfg.cache, t, key);
	return a && !strcmp(a->key, key) ? a : NULL;
}

SshHost *ssh_home(SshExec *se, const Task *t, int node, int *lost)
{
	*lost = 0;
	SshHost *home = place_home(se->cfg.cache, se->hosts, se->nhosts, t, node);
	const AdoptedJob *a = home || node ? NULL : lost_job(se, t);
	if (!a)
		return home;
	home = ssh_find_host(se, a->lease.host);
	if (!home || !ssh_host_unanswered(home))
		return NULL; /* it answers, and ssh_reattaches found no job to take up there */
	*lost = 1;
	return home;
}

double ssh_home_wait_sec(const SshExec *se, const Task *t)
{
	char names[128];
	const AdoptedJob *a;
	if (!cache_resume_host(se->cfg.cache, t, names) && (a = lost_job(se, t))) {
		/* at least until the host's first retry has had its answer: a job that ran a moment
		 * has a chance to be taken up too */
		double ran = a->ran_sec > HOST_RETRY_FIRST_SEC + 1 ? a->ran_sec : HOST_RETRY_FIRST_SEC + 1;
		return ran < se->cfg.host_wait_sec ? ran : se->cfg.host_wait_sec;
	}
	double kept = cache_resume_seconds(se->cfg.cache, t);
	return kept > se->cfg.host_wait_sec ? kept : se->cfg.host_wait_sec;
}

/* When t's wait for its home host ends (0: the host answers). */
static int64_t home_wait_end(const SshExec *se, const SshHost *home, const Task *t)
{
	if (!home->down || !home->down_since_ns)
		return 0;
	return home->down_since_ns + (int64_t)(ssh_home_wait_sec(se, t) * 1e9);
}

int ssh_home_given_up(const SshExec *se, const SshHost *home, const Task *t)
{
	int64_t end = home_wait_end(se, home, t);
	return end && now_mono_ns() > end && home->failed_ns >= end;
}

/* A home host waited for to the end of t's wait is tried once more at that end, not at its
 * back-off's (up to 30 s later): one that came back meanwhile has its jobs taken up then,
 * rather than their work started afresh elsewhere a moment before it would have answered. */
static void try_home_at_wait_end(const SshExec *se, SshHost *home, const Task *t)
{
	int64_t end = home_wait_end(se, home, t);
	if (end && home->failed_ns < end && home->retry_at_ns > end)
		home->retry_at_ns = end;
}

/* place_choose among the hosts but those chosen already, or on only (when not NULL). */
static SshHost *choose_one(SshExec *se, const Task *t, SshHost *only, int *reachable, int *big_enough)
{
	for (int i = 0; only && i < se->nhosts; i++) /* place_choose skips a host chosen */
		se->hosts[i].chosen += &se->hosts[i] != only;
	SshHost *h = place_choose(se->cfg.cache, se->hosts, se->nhosts, t, se->cfg.busy_mem, se->cfg.busy_util,
				  reachable, big_enough);
	for (int i = 0; only && i < se->nhosts; i++)
		se->hosts[i].chosen -= &se->hosts[i] != only;
	return h;
}

/* Leases a host for each of t's nodes (distinct hosts, the best first) into se->held*: 1
 * when all are there; counts the allowed hosts that answer and those with enough GPUs, and
 * sets *home_wait when t waits for the host holding its resume state to answer. */
static int choose_hosts(SshExec *se, const Task *t, int *reachable, int *big_enough, int *home_wait)
{
	int n = ssh_nodes(t), ok = 1;
	se->nheld = 0;
	for (int k = 0; k < n && ok; k++) {
		int r = 0, b = 0;
		/* node k goes back to the host holding its part of the resume state, if any */
		int lost;
		SshHost *home = ssh_home(se, t, k, &lost);
		if (home && (!ssh_host_allows(home, t) || home->chosen))
			home = NULL; /* the recipe no longer lets it run there */
		SshHost *h = choose_one(se, t, home, &r, &b);
		if (home && !r) { /* the home host does not answer */
			try_home_at_wait_end(se, home, t);
			if (!ssh_home_given_up(se, home, t)) {
				*home_wait = 1;
				ok = 0;
				break;
			}
			h = choose_one(se, t, NULL, &r, &b);
		} else if (home && k == 0) { /* what has_room judges by is counted over every host */
			r = b = 0;
			choose_one(se, t, NULL, &r, &b);
		}
		if (k == 0)
			*reachable = r, *big_enough = b;
		ok = h && place_fits(h, t, se->held_gpus[k]);
		if (ok) {
			h->chosen = 1; /* one node per host */
			se->held_hosts[se->nheld++] = h;
		}
	}
	for (int k = 0; k < se->nheld; k++)
		se->held_hosts[k]->chosen = 0;
	if (!ok) {
		for (int k = 0; k < se->nheld; k++)
			if (t->opts->gpus && se->held_hosts[k]->gpus)
				gpu_release(se->held_hosts[k]->gpus, se->held_gpus[k], t->opts->gpus);
		se->nheld = 0;
	}
	return ok;
}

int ssh_has_room(Executor *ex, const Task *t)
{
	SshExec *se = ex->impl;
	if (se->held == t)
		return 1;
	ssh_release_held(se);
	se->reattaching = NULL;
	if (se->nadopted && ssh_reattaches(se, t)) { /* its job's slot and devices are its own */
		se->held = se->reattaching = t;
		return 1;
	}
	int reachable = 0, big_enough = 0, home_wait = 0, nodes = ssh_nodes(t), allowed = 0;
	for (int i = 0; nodes > 1 && i < se->nhosts; i++)
		allowed += ssh_host_allows(&se->hosts[i], t);
	if (nodes > 1 && allowed < nodes) { /* never: start() fails it */
		se->held = t;
		return 1;
	}
	int got = choose_hosts(se, t, &reachable, &big_enough, &home_wait);
	for (int i = 0; i < se->nhosts; i++)
		if (se->hosts[i].connected && !se->hosts[i].swept)
			ssh_sweep_orphans(se, &se->hosts[i]);
	se->waiting = 0;
	if (se->home_waiter == t)
		se->home_waiter = NULL;
	if (home_wait) { /* poll: the host's back-off ends */
		se->waiting = 1;
		se->home_waiter = t;
		return 0;
	}
	if (got) {
		se->held = t;
		se->all_down_since_ns = 0;
		return 1;
	}
	if (reachable >= nodes) {
		se->all_down_since_ns = 0;
		if (big_enough < nodes) { /* not enough hosts of its own could ever take it: start() fails it */
			se->held = t;
			return 1;
		}
		se->waiting = t->opts->gpus > 0;
		return 0;
	}
	int64_t now = now_mono_ns();
	if (!se->all_down_since_ns)
		se->all_down_since_ns = now;
	/* every allowed host down this long (--host-wait): the task fails as host-down */
	if (now - se->all_down_since_ns > (int64_t)(se->cfg.host_wait_sec * 1e9)) {
		se->held = t; /* start() fails it: no host of its own answers (or too few for its nodes) */
		return 1;
	}
	se->waiting = 1; /* poll: a host's back-off ends */
	return 0;
}

void ssh_gpus_wait_text(Executor *ex, const Task *t, Buf *out)
{
	SshExec *se = ex->impl;
	if (se->home_waiter == t)
		return; /* it waits for its host to answer, not for devices */
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (!ssh_host_allows(h, t) || h->down || !h->connected || !gpu_count(h->gpus))
			continue;
		buf_printf(out, "%s%s: ", out->len ? "; " : "", h->spec->name);
		gpu_describe(h->gpus, out);
	}
}

int ssh_gpus_after_wait(Executor *ex, const Task *t, int take)
{
	SshExec *se = ex->impl;
	int busy = 0;
	SshHost *fits = NULL;
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (!ssh_host_allows(h, t) || h->down || !h->connected || !gpu_count(h->gpus))
			continue;
		busy |= gpu_busy_count(h->gpus) > 0;
		if (!fits && place_has_slot(h, t) && gpu_unleased(h->gpus) >= t->opts->gpus)
			fits = h;
	}
	if (!busy)
		return -1;
	if (!take || !fits || ssh_nodes(t) > 1)
		return 0;
	ssh_release_held(se); /* (has_room said no: nothing is held) */
	if (gpu_lease_least_busy(fits->gpus, t->opts->gpus, se->held_gpus[0]) != 0)
		return 0;
	se->held = t; /* as has_room holds a host for the start that follows */
	se->held_hosts[0] = fits;
	se->nheld = 1;
	se->all_down_since_ns = 0;
	return 1;
}
