/* ssh_stale.c — jobs lost with their host whose work went elsewhere (stale): their logs
 * kept until they are stopped, each down host holding some tried on its back-off, and, when
 * such a host answers again, what became of them settled. One that finished there (exit 0)
 * while its task's later attempt, started afresh elsewhere once the host had not answered
 * for the wait, still runs is taken back: that later attempt is stopped and given back as
 * lost (no retry spent, recorded as superseded), and the task's next attempt re-attaches to
 * the finished job (its outputs fetched). One that still runs is taken back the same way
 * only when its KILN_PROGRESS (or, for a task that only prints its progress, its
 * log_progress over the two logs) shows it further along; otherwise it is stopped, as is one
 * whose task's work a later attempt recorded done under its key. Either way a
 * job not taken back has the rest of its log fetched into the lost attempt's. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../base/os.h"
#include "ssh_internal.h"

LostLog *ssh_lost_log(SshExec *se, const char *id, size_t len)
{
	for (int i = 0; i < se->nlost_logs; i++)
		if (strlen(se->lost_logs[i].id) == len && !strncmp(se->lost_logs[i].id, id, len))
			return &se->lost_logs[i];
	return NULL;
}

void ssh_went_stale(SshExec *se, SshHost *h, const char *id, const Task *t)
{
	buf_printf(&h->stale_jobs, " %s", id);
	if (t && t->opts->log_progress)
		buf_printf(&h->stale_logged, " %s", id);
	int64_t soon = now_mono_ns() + (int64_t)HOST_RETRY_STALE_SEC * 1000000000LL;
	if (h->down && h->retry_at_ns > soon) /* tried sooner from now on (ssh_host.h) */
		h->retry_at_ns = soon;
	LostLog *l = ssh_lost_log(se, id, strlen(id));
	if (l)
		l->stale = 1;
}

/* Whether h's last contact found stale job id finished there or running on, not settled yet. */
static int kept(const SshHost *h, const char *id)
{
	size_t n = strlen(id);
	for (const char *p = h->stale_kept.data ? h->stale_kept.data : ""; (p = strstr(p, id)); p += n)
		if (p > h->stale_kept.data && (p[-1] == ' ' || p[-1] == ':') && (p[n] == ' ' || !p[n]))
			return 1;
	return 0;
}

void ssh_cd_workdir(Buf *b, const SshHost *h)
{
	buf_puts(b, "cd ");
	buf_shell_quote(b, h->home_workdir);
}

void ssh_add_lost_log(SshExec *se, const char *id, SshHost *h, const char *log, long long received, int superseded)
{
	se->lost_logs = xrealloc(se->lost_logs, (size_t)(se->nlost_logs + 1) * sizeof *se->lost_logs);
	se->lost_logs[se->nlost_logs++] = (LostLog){xstrdup(id), h, xstrdup(log), received, 0, superseded, 0};
}

void ssh_drop_lost_log(SshExec *se, LostLog *l)
{
	free(l->id);
	free(l->log);
	*l = se->lost_logs[--se->nlost_logs];
}

int ssh_stop_stale_when_back(SshExec *se)
{
	int waiting = 0;
	for (int h = 0; h < se->nhosts; h++) {
		SshHost *host = &se->hosts[h];
		if (!host->stale_jobs.len || (host->connected && !ssh_host_unanswered(host)))
			continue; /* none, or stopped by whoever marked them (a host that answers) */
		Buf err = {0}; /* on its back-off's schedule, in the background: the contact stops them */
		waiting |= ssh_host_connect_soon(host, se->cfg.busy_mem, se->cfg.busy_util, &err) != 0;
		buf_free(&err);
	}
	return waiting;
}

void ssh_fetch_lost_logs(SshExec *se, int final)
{
	for (int i = 0; i < se->nlost_logs; i++) {
		LostLog *l = &se->lost_logs[i];
		SshHost *h = l->host;
		if (!l->stale || !h->connected || h->down || ssh_word_in(&h->stale_jobs, l->id) || kept(h, l->id) ||
		    (!final && now_mono_ns() < l->next_ns))
			continue; /* taken up, or not stopped yet (or taken back yet) */
		/* once its job has ended there (its last words in the log; its directory, which names
		 * it, kept while it runs): asked again in a moment, the run's end waits up to 1 s */
		Buf cmd = {0}, out = {0};
		ssh_cd_workdir(&cmd, h);
		buf_printf(&cmd, " && J=.kiln/jobs/%s && { ! read p < \"$J/pid\" || for i in 1 2 3 4 5 6 7 8 9 10; "
				 "do kill -0 -\"$p\" 2>/dev/null || break; [ %d = 0 ] && exit 9; sleep 0.1; done; } && "
				 "tail -c +%lld \"$J/log\" && rm -rf \"$J\"", l->id, final, l->received + 1);
		int rc = ssh_run(h, buf_str(&cmd), &out, NULL);
		if (rc == 9) {
			l->next_ns = now_mono_ns() + 500000000LL;
			buf_free(&cmd);
			buf_free(&out);
			continue;
		}
		if (rc == 0 && out.len) {
			FILE *f = fopen(l->log, "a");
			if (f) {
				if (l->superseded)
					fprintf(f, "# kiln: this job was stopped on host %s (another attempt of the task runs in its "
						   "place): its log there from where the copy above ends, to its end\n", h->spec->name);
				else
					fprintf(f, "# kiln: host %s answered again: the job's log there from where the copy above ends, "
						   "to the job's end there (no later attempt took it up)\n", h->spec->name);
				fwrite(out.data, 1, out.len, f);
				fclose(f);
			}
		}
		buf_free(&cmd);
		buf_free(&out);
		ssh_drop_lost_log(se, l);
		i--;
	}
}


enum { SETTLE_DROP, SETTLE_WAIT, SETTLE_TAKE };

/* Whether job id, which finished on h (live: runs on there) after its work went elsewhere,
 * is taken back, waited on (its task's later attempt is still copying its inputs) or left
 * (stopped, if it runs on; its log's rest fetched). One that runs on is taken back only
 * when it is further along than the attempt that replaced it, by their KILN_PROGRESS
 * readings (else their logs' log_progress readings) of the same total: a cut-off host may
 * have stalled it, and wall time says nothing of that. */
static int settle_one(SshExec *se, SshHost *h, const char *id, int live)
{
	AdoptedJob *a = NULL;
	for (int i = 0; i < se->nadopted && !a; i++)
		if (!se->adopted[i].row && !strcmp(se->adopted[i].job_id, id) && !strcmp(se->adopted[i].lease.host, h->spec->name))
			a = &se->adopted[i];
	const Task *t = a ? graph_find(se->cfg.g, a->task) : NULL;
	char key[33];
	if (!t || t->forced || task_is_runner(t) || ssh_nodes(t) != 1)
		return SETTLE_DROP; /* a multi-node job's node, a map's shard: run again whole */
	cache_key_hex(se->cfg.cache, t, key);
	if (strcmp(key, a->key))
		return SETTLE_DROP;
	if (t->state == TS_IDLE || t->state == TS_WAITING || t->state == TS_READY) {
		if (cache_succeeded_with(se->cfg.cache, t, a->key))
			return SETTLE_DROP; /* a later attempt did its work: it will not run again */
		a->used = 0; /* its next attempt takes it up (ssh_reattaches) */
		return SETTLE_TAKE;
	}
	if (t->state != TS_RUNNING)
		return SETTLE_DROP; /* done with in this run: its later attempt's end stands */
	Remote *rm = NULL;
	for (int i = 0; i < se->nactive && !rm; i++)
		if (se->active[i]->job->task == t)
			rm = se->active[i];
	if (rm && !strcmp(rm->id, id))
		return SETTLE_DROP; /* taken up already */
	if (!rm || rm->phase == PH_PLACE || rm->probing || rm->agent == 1)
		return SETTLE_WAIT; /* its end is being filed, or its job not started there yet */
	if (rm->phase != PH_RUN || rm->gang || rm->map_outputs || rm->job->superseded)
		return SETTLE_DROP; /* it finished too (its outputs come) */
	long long done = 0, total = 0, here = 0, here_total = 0;
	if (live) {
		int there = ssh_progress_there(h, id, &done, &total), mine = ssh_progress_of(rm, &here, &here_total);
		if (!there) { /* a script that only prints its progress: both logs' ends (log_progress) */
			there = ssh_log_progress_there(h, t, id, &done, &total);
			mine = there && ssh_log_progress_of(rm, &here, &here_total);
		}
		if (!mine)
			here = 0, here_total = -1; /* none read back yet: it started afresh moments ago */
		if (!(there && done > here && (total == here_total || here_total < 0)))
			return SETTLE_DROP;
	}
	Job *job = rm->job;
	char attempt[48], how[96];
	if (a->attempt > 0)
		snprintf(attempt, sizeof attempt, "attempt %d", a->attempt);
	else
		snprintf(attempt, sizeof attempt, "an attempt no record names");
	if (live)
		snprintf(how, sizeof how, "ran on and is further along (%lld/%lld against %lld here)", done, total, here);
	else
		snprintf(how, sizeof how, "had finished");
	snprintf(job->reason, sizeof job->reason, "stopped: host %s answered again, where the task's job of %s %s: that "
		 "job is taken up", h->spec->name, attempt, how);
	job->superseded = 1;
	a->used = 0;
	ssh_log_line(job, "kiln: %s\n", job->reason);
	ssh_signal_remote(se, rm, SIGKILL); /* its work is not wanted: no grace to save it */
	return SETTLE_TAKE;
}

int ssh_settle_kept(SshExec *se)
{
	int waiting = 0;
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (!h->stale_kept.len || !h->connected || h->down)
			continue;
		char *list = xstrdup(h->stale_kept.data), *save = NULL;
		Buf stop = {0};
		buf_reset(&h->stale_kept);
		for (char *w = strtok_r(list, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			int live = !strncmp(w, "live:", 5);
			const char *id = live ? w + 5 : w;
			int how = settle_one(se, h, id, live);
			LostLog *l = ssh_lost_log(se, id, strlen(id));
			if (how == SETTLE_WAIT) {
				buf_printf(&h->stale_kept, " %s", w);
				waiting = 1;
			} else if (how == SETTLE_TAKE && l) {
				l->stale = 0; /* its whole log goes into the attempt that takes it up */
			} else if (how == SETTLE_DROP && live) {
				buf_printf(&stop, " %s", id);
				ssh_word_drop(&h->stale_logged, id); /* no more to ask of it: stopped */
			}
		}
		free(list);
		if (stop.len) { /* stopped now, or by the host's next contact */
			Buf cmd = {0};
			ssh_cd_workdir(&cmd, h);
			buf_puts(&cmd, " && { " EXEC_KILL_FN); /* its awk's %s: no format */
			buf_printf(&cmd, "for i in%s; do kiln_kill TERM \"$(cat .kiln/jobs/$i/pid 2>/dev/null)\"; done; true; }",
				   buf_str(&stop));
			if (ssh_run(h, buf_str(&cmd), NULL, NULL) != 0)
				buf_put(&h->stale_jobs, stop.data, stop.len);
			buf_free(&cmd);
		}
		buf_free(&stop);
	}
	return waiting;
}
