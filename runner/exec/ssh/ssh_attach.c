/* ssh_attach.c — jobs a previous kiln left on the hosts: re-attached when their task runs
 * again with the same key (every node of a multi-node job), stopped when their task's
 * recipe changed, and swept when no record names them (a kill -9 struck before the attempt
 * was recorded); and a job this run lost with its host, taken up by its task's next attempt
 * when the host answers again and the job ran on there (a network's drop, not a reboot;
 * ssh_stale.c settles those whose work went elsewhere); and `kiln log -f` of a job no kiln
 * follows, from its log there. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../../base/os.h"
#include "ssh_internal.h"

/* Whether adopted job a (its lease's host the first node's, its id "ID+HOST:GPUS+...") has
 * the job directory id on host. */
static int adopted_names(const AdoptedJob *a, const char *host, const char *id)
{
	size_t n = strcspn(a->job_id, "+");
	if (strlen(id) != n || strncmp(a->job_id, id, n))
		return 0;
	if (!strcmp(a->lease.host, host))
		return 1;
	for (const char *p = strchr(a->job_id, '+'); p; p = strchr(p + 1, '+'))
		if (!strncmp(p + 1, host, strlen(host)) && p[1 + strlen(host)] == ':')
			return 1;
	return 0;
}

/* A job a kiln killed before recording it (so no record names it) is found on a host's
 * first contact in a run: a live one, or one that exited 0 there. Rather than thrown away,
 * it is kept as an orphan (an adopted job without a record, row 0): when its task starts
 * again with the same key, the attempt re-attaches to it (its GPU time is not spent twice;
 * one that finished brings its outputs back). Orphans whose task does not take them up are
 * stopped at the run's end; a new attempt of their task stops them too (ssh_job.c), and a
 * multi-node job's are stopped at once. (A workdir belongs to one workspace, as its
 * .kiln/owner says at the first contact (ssh_host.c), and the workspace lock keeps a second
 * kiln out of it.) */
/* A job dir without its pid yet is claimed to stop (its start, late after a kill -9, then
 * starts nothing), or its start won the claim: it is stopped before it starts the job
 * (kiln_stopped), unless it is starting it (its pid comes within moments). A stop is not
 * waited on: no pid comes. Each found:
 * "ID<TAB>live|done<TAB>TASK<TAB>KEY<TAB>GPUS" from its job script. Run in the workdir, as
 * part of the host's first contact (ssh_host.c), so it costs no command of its own. */
const char ssh_sweep_listing[] =
	SSH_CLAIM_FN
	/* folders claimed over an hour ago and still without a pid: no start is on its way any
	 * more (an older kiln's stops, whose claims are empty, go too) */
	"set -- .kiln/jobs/*/claim; [ -f \"$1\" ] && find .kiln/jobs -mindepth 2 -maxdepth 2 -name claim -mmin +60 | "
	"while read -r c; do [ -s \"${c%/claim}/pid\" ] || rm -rf -- \"${c%/claim}\"; done\n"
	"for d in .kiln/jobs/*/; do [ -d \"$d\" ] || continue; s=live\n"
	"if [ -f \"$d/exit\" ]; then read rc < \"$d/exit\"; [ \"$rc\" = 0 ] || continue; s=done; else\n"
	"[ -s \"$d/pid\" ] || kiln_claim \"$d\" stop && [ ! -s \"$d/pid\" ] && continue; "
	"i=0; while [ ! -s \"$d/pid\" ] && [ ! -s \"$d/claim\" ] && [ $i -lt 100 ]; do "
	"kiln_stopped \"$d\" && break; sleep 0.1; i=$((i + 1)); done; "
	"read p 2>/dev/null < \"$d/pid\" && kill -0 -\"$p\" 2>/dev/null || continue; fi\n"
	"printf '%s\\t%s\\t' \"$(basename \"$d\")\" $s; sed -n -e 's/^# written by kiln for task //p' "
	"-e 's/^KILN_KEY=//p' -e 's/^CUDA_VISIBLE_DEVICES=//p' \"$d/job.sh\" | tr '\\n' '\\t'; echo; done; true";

void ssh_sweep_orphans(SshExec *se, SshHost *h)
{
	h->swept = 1;
	Buf b = {0}, out = {0};
	if (h->sweep_found) { /* listed at its first contact */
		buf_puts(&out, h->sweep_found);
		free(h->sweep_found);
		h->sweep_found = NULL;
	} else {
		ssh_job_set_dir(&b, h, "none");
		buf_puts(&b, ssh_sweep_listing);
		ssh_run(h, buf_str(&b), &out, NULL);
		buf_reset(&b);
	}
	ssh_job_set_dir(&b, h, "none");
	int n = 0, kept = 0;
	for (char *save = NULL, *line = strtok_r(out.data ? out.data : (char[]){0}, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *f[6] = {0};
		int nf = 0;
		for (char *p = line; nf < 6; nf++) {
			f[nf] = p;
			char *tab = strchr(p, '\t');
			if (!tab)
				break;
			*tab = 0;
			p = tab + 1;
		}
		for (int k = 3; k < 5; k++) /* "KEY; export KILN_KEY" (the value maybe quoted): the value */
			if (f[k]) {
				f[k][strcspn(f[k], ";")] = 0;
				if (f[k][0] == '\'' && strlen(f[k]) >= 2) {
					f[k][strlen(f[k]) - 1] = 0;
					f[k]++;
				}
			}
		const char *id = f[0];
		int known = 0;
		for (int i = 0; i < se->nadopted && !known; i++)
			known = adopted_names(&se->adopted[i], h->spec->name, id);
		if (known || strpbrk(id, "'\"$`\\ "))
			continue;
		const Task *t = f[2] ? graph_find(se->cfg.g, f[2]) : NULL;
		/* its task runs already (it took up another job, or started afresh), or is done with
		 * in this run: nothing will take it up, so it is stopped now, not at the run's end */
		int waits = t && (t->state == TS_IDLE || t->state == TS_WAITING || t->state == TS_READY);
		if (waits && f[3] && *f[3] && ssh_nodes(t) == 1 && !t->forced) { /* an orphan its task may take up */
			se->adopted = xrealloc(se->adopted, (size_t)(se->nadopted + 1) * sizeof *se->adopted);
			AdoptedJob *a = &se->adopted[se->nadopted++];
			*a = (AdoptedJob){xstrdup(f[2]), xstrdup(id), xstrdup(f[3]), xstrdup(""), .row = 0,
					  .finished = f[1] && !strcmp(f[1], "done")};
			snprintf(a->lease.host, sizeof a->lease.host, "%s", h->spec->name);
			if (f[4] && *f[4])
				lease_parse_gpus(&a->lease, f[4]);
			kept++;
			continue;
		}
		if (!strcmp(f[1] ? f[1] : "", "live")) {
			ssh_kill_job(&b, "KILL", id, (int)strlen(id));
			n++;
		}
	}
	if (n) {
		buf_puts(&b, "true");
		ssh_run(h, buf_str(&b), NULL, NULL);
		fprintf(stderr, "kiln: stopped %d job%s on %s that a killed kiln had started without recording them\n", n,
			n == 1 ? "" : "s", h->spec->name);
	}
	if (kept)
		fprintf(stderr, "kiln: found %d job%s on %s that a killed kiln had started without recording them: "
				"their tasks take them up\n", kept, kept == 1 ? "" : "s", h->spec->name);
	buf_free(&b);
	buf_free(&out);
}

void ssh_stop_orphans(SshExec *se)
{
	Buf *stops = xcalloc((size_t)se->nhosts + 1, sizeof *stops); /* per host, its kill commands */
	for (int h = 0; h < se->nhosts; h++) {
		SshHost *host = &se->hosts[h];
		for (int i = 0; i < se->nadopted; i++) {
			const AdoptedJob *a = &se->adopted[i];
			if (a->row == 0 && !a->used && !strcmp(a->lease.host, host->spec->name) && !strpbrk(a->job_id, "'\"$`\\ /")) {
				ssh_kill_job(&stops[h], "KILL", a->job_id, (int)strlen(a->job_id));
				LostLog *l = ssh_lost_log(se, a->job_id, strlen(a->job_id));
				if (l)
					l->stale = 1;
			}
		}
		ssh_host_stop_stale(host, &stops[h], 0); /* lost, their work done elsewhere */
		if (stops[h].len && (host->down || !host->connected)) { /* jobs lost with it may run on there: */
			Buf err = {0}; /* one more try (or a first), every such host's at once (a silent one takes 5 s) */
			host->retry_at_ns = 0;
			ssh_host_connect_soon(host, se->cfg.busy_mem, se->cfg.busy_util, &err);
			buf_free(&err);
		}
	}
	for (int h = 0; h < se->nhosts; h++) {
		SshHost *host = &se->hosts[h];
		if (stops[h].len && host->probe_pid > 0) { /* its try's answer (or its first contact's) */
			Buf err = {0};
			ssh_host_connect_wait(host, se->cfg.busy_mem, se->cfg.busy_util, &err);
			buf_free(&err);
			if (host->stale_kept.len) /* that contact found some ran on or finished: too late to take them back */
				ssh_host_stop_stale(host, &stops[h], 0);
		}
		if (stops[h].len && host->connected && !host->down) {
			Buf cmd = {0};
			ssh_cd_workdir(&cmd, host);
			buf_puts(&cmd, " && { " EXEC_KILL_FN); /* its awk's %s: no format */
			buf_printf(&cmd, "%s true; }", buf_str(&stops[h]));
			if (ssh_run(host, buf_str(&cmd), NULL, NULL) == 0) { /* stopped: their logs' rest is fetched */
				buf_reset(&host->stale_jobs);
				buf_reset(&host->stale_logged);
				buf_reset(&host->stale_kept);
			}
			buf_free(&cmd);
		}
		buf_free(&stops[h]);
	}
	free(stops);
}


/* rm's attempt ends before its job ran there: released, and its end filed (a node of a
 * multi-node job's: through its gang). */
void ssh_node_failed(SshExec *se, Remote *rm, enum JobEnd end, int code, const char *reason)
{
	Job *job = rm->job;
	Gang *g = rm->gang;
	int node = rm->node;
	const char *host = rm->host->spec->name; /* the host's: outlives rm */
	ssh_release_remote(se, rm);
	if (g)
		ssh_gang_node_ended(se, g, node, host, end, code, 0, reason);
	else
		ssh_end_job(se, job, end, code, reason);
}


void ssh_keep_lost(SshExec *se, const Remote *rm)
{
	const Task *t = rm->job->task;
	struct stat st;
	if (!rm->gang && stat(rm->job->log_path, &st) == 0 && st.st_size >= rm->log_prefix) {
		ssh_add_lost_log(se, rm->id, rm->host, rm->job->log_path, (long long)st.st_size - rm->log_prefix, 0);
	}
	if (rm->gang || t->forced || !rm->job->key[0]) { /* run again elsewhere, whole */
		ssh_went_stale(se, rm->host, rm->id, NULL);
		return;
	}
	rm->job->kept_lost = 1;
	se->adopted = xrealloc(se->adopted, (size_t)(se->nadopted + 1) * sizeof *se->adopted);
	AdoptedJob *a = &se->adopted[se->nadopted++];
	*a = (AdoptedJob){xstrdup(t->name), xstrdup(rm->id), xstrdup(rm->job->key), xstrdup(""), .lease = *rm->lease,
			  .attempt = rm->job->attempt, .row = 0, /* an orphan of row 0 with its attempt's number */
			  .ran_sec = (double)(now_mono_ns() - rm->job->started_ns) / 1e9};
}

/* The bytes of the job's log that reached its attempt's local log: those between kiln's
 * lines after the header ("# --", then "# kiln: on host ..." and the like: a stream that
 * dropped and was followed again starts over after one) and, when lost is set, kiln's last
 * line, "kiln: lost with host ...", else the log's end; -1 when the log does not read as
 * one of those. */
static long long job_bytes_in(const char *log, int lost)
{
	size_t len;
	long long from, got = -1;
	char head[65536], *tail = read_file_tail(log, 65536, &len, &from);
	FILE *f = fopen(log, "r");
	size_t nhead = f ? fread(head, 1, sizeof head - 1, f) : 0;
	if (f)
		fclose(f);
	head[nhead] = 0;
	const char *start = strstr(head, "\n# --\n"), *end = lost || !tail ? NULL : tail + len;
	if (start)
		for (start += 6; !strncmp(start, "# kiln: ", 8) && strchr(start, '\n');)
			start = strchr(start, '\n') + 1;
	for (const char *p = tail; lost && p && (p = strstr(p, "kiln: lost with host ")); p++)
		end = p;
	if (start && end)
		got = from + (long long)(end - tail) - (long long)(start - head);
	free(tail);
	return got >= 0 ? got : -1;
}

static void stop_left_job(SshExec *se, AdoptedJob *a, const char *why);

void ssh_adopt_lost(SshExec *se, const OpenAttempt *o)
{
	const Task *t = graph_find(se->cfg.g, o->rec.task);
	SshHost *h = ssh_find_host(se, o->rec.host ? o->rec.host : "");
	if (!t || !h || t->forced || ssh_nodes(t) != 1 || strpbrk(o->rec.job_id, "'\"$`\\ /+"))
		return; /* nothing to take up: its host's first contact stops the job (the sweep) */
	exec_adopted_add(&se->adopted, &se->nadopted, o);
	AdoptedJob *a = &se->adopted[se->nadopted - 1];
	a->row = 0; /* an orphan of its attempt's number, as in the run that lost it */
	a->earlier = 1;
	a->ran_sec = o->ended - o->rec.started > 0.001 ? o->ended - o->rec.started : 0.001;
	long long received = o->rec.log ? job_bytes_in(o->rec.log, 1) : -1;
	if (received >= 0)
		ssh_add_lost_log(se, a->job_id, h, o->rec.log, received, 0);
	int later_runs = 0; /* open attempts are adopted first (main.c) */
	for (int i = 0; i < se->nadopted - 1; i++)
		later_runs |= se->adopted[i].row && !strcmp(se->adopted[i].task, t->name);
	if (o->superseded && !later_runs) /* its work went to a later attempt, which ended: stopped */
		stop_left_job(se, a, NULL);
}

/* The order t's jobs are taken up in: the earliest attempt first (it has run longest: a retry
 * started elsewhere after its host stopped answering is younger), a job no record names last
 * (a killed kiln started it after every recorded one). */
static int take_up_order(const AdoptedJob *a) { return a->attempt > 0 ? a->attempt : INT_MAX; }

AdoptedJob *ssh_task_job(const SshExec *se, const Task *t, int lost_only)
{
	AdoptedJob *best = NULL;
	for (int i = 0; i < se->nadopted; i++) {
		AdoptedJob *a = &se->adopted[i];
		if (a->used || strcmp(a->task, t->name) || (lost_only && (a->ran_sec <= 0 || !a->job_id[0])))
			continue;
		if (!best || take_up_order(a) < take_up_order(best))
			best = a;
	}
	return best;
}

/* Job a of t (each of its nodes) is stopped where it runs: at once on a host that answers,
 * else when its host answers again (its contact stops it); its log's rest is fetched into
 * its attempt's log, and an open attempt's record is closed with why. */
static void stop_left_job(SshExec *se, AdoptedJob *a, const char *why)
{
	a->used = 1;
	int id_len = (int)strcspn(a->job_id, "+");
	if (!a->job_id[0] || strpbrk(a->job_id, "'\"$`\\ /"))
		return;
	if (a->row) { /* its log: the streamed part is here, the rest is there */
		long long received = a->log[0] ? job_bytes_in(a->log, 0) : -1;
		SshHost *h = ssh_find_host(se, a->lease.host);
		if (h && received >= 0 && !a->job_id[id_len]) {
			char id[64];
			snprintf(id, sizeof id, "%.*s", id_len, a->job_id);
			ssh_add_lost_log(se, id, h, a->log, received, 1);
		}
		cache_attempt_ended(se->cfg.cache, a->row, -1, why, NULL);
	}
	for (const char *p = a->job_id; p; p = strchr(p + 1, '+')) {
		char name[64], id[64];
		SshHost *on = p == a->job_id ? ssh_find_host(se, a->lease.host)
					     : (sscanf(p + 1, "%63[^:+]", name) == 1 ? ssh_find_host(se, name) : NULL);
		if (!on)
			continue;
		snprintf(id, sizeof id, "%.*s", id_len, a->job_id);
		if (!on->connected || on->down) {
			ssh_went_stale(se, on, id, graph_find(se->cfg.g, a->task)); /* stopped by its next contact */
			continue;
		}
		Buf kill = {0};
		ssh_cd_workdir(&kill, on);
		buf_puts(&kill, " && { " EXEC_KILL_FN);
		ssh_kill_job(&kill, "TERM", id, (int)strlen(id));
		buf_puts(&kill, "true; }");
		if (ssh_run(on, buf_str(&kill), NULL, NULL) != 0) {
			ssh_went_stale(se, on, id, graph_find(se->cfg.g, a->task));
		} else {
			LostLog *l = ssh_lost_log(se, id, strlen(id));
			if (l) /* stopped: its log's rest is fetched */
				l->stale = 1;
		}
		buf_free(&kill);
	}
}

/* Every job left for t but keep is stopped (keep: the one taken up, or NULL when t starts
 * afresh, why then saying why): a task runs one attempt at a time. */
static void stop_other_jobs(SshExec *se, const Task *t, const AdoptedJob *keep, const char *why)
{
	char taken[160];
	if (keep && keep->attempt > 0)
		snprintf(taken, sizeof taken, "stopped: the task's job of attempt %d was taken up instead", keep->attempt);
	else if (keep)
		snprintf(taken, sizeof taken, "stopped: a job of the task that no record named was taken up instead");
	for (int i = 0; i < se->nadopted; i++)
		if (&se->adopted[i] != keep && !se->adopted[i].used && !strcmp(se->adopted[i].task, t->name))
			stop_left_job(se, &se->adopted[i], keep ? taken : why);
}

/* Where job a stands on its host h, which answers; asked there unless ask is 0 and a is an
 * open attempt's (its follow tells). A job gone with a reboot is used up: nothing to take
 * up, its log's rest (to the reboot) fetched. */
enum { JOB_GONE, JOB_FAILED_THERE, JOB_LIVE, JOB_DONE_THERE };
static int job_state(SshExec *se, AdoptedJob *a, SshHost *h, int ask)
{
	if (a->row && !ask)
		return JOB_LIVE;
	Buf check = {0};
	ssh_cd_workdir(&check, h);
	buf_printf(&check, " && J=.kiln/jobs/%s && if [ -f $J/exit ]; then read rc < $J/exit; [ \"$rc\" = 0 ] && exit 3; "
			   "exit 4; fi; kill -0 -$(cat $J/pid) 2>/dev/null && exit 2; exit 5", a->job_id);
	int rc = ssh_run(h, buf_str(&check), NULL, NULL);
	buf_free(&check);
	if (rc == 3)
		return JOB_DONE_THERE;
	if (rc == 4)
		return JOB_FAILED_THERE;
	if (rc == 2)
		return JOB_LIVE;
	if (rc != 5) /* ssh could not tell: an open attempt's follow will */
		return a->row ? JOB_LIVE : JOB_GONE;
	LostLog *l = ssh_lost_log(se, a->job_id, strlen(a->job_id));
	if (l)
		l->stale = 1;
	a->used = 1;
	return JOB_GONE;
}

int ssh_reattaches(SshExec *se, const Task *t)
{
	char key[33];
	cache_key_hex(se->cfg.cache, t, key);
	AdoptedJob **order = xmalloc(((size_t)se->nadopted + 1) * sizeof *order); /* t's, in take-up order */
	int n = 0;
	for (AdoptedJob *a; (a = ssh_task_job(se, t, 0)); a->used = 1)
		order[n++] = a;
	for (int i = 0; i < n; i++)
		order[i]->used = 0;
	/* of several, one that finished there first (nothing left to run), else the one that has
	 * run longest, else one that failed there (its end is this attempt's) */
	AdoptedJob *best = NULL;
	int best_state = JOB_GONE, unanswered = 0;
	for (int i = 0; i < n && best_state != JOB_DONE_THERE; i++) {
		AdoptedJob *a = order[i];
		if (a->used || strcmp(a->key, key) || !a->job_id[0] || strpbrk(a->job_id, "'\"$`\\ /+"))
			continue; /* not its job any more (start() stops it), or a multi-node one (start() takes it up) */
		SshHost *h = ssh_find_host(se, a->lease.host);
		Buf err = {0};
		int up = h && ssh_host_connect_soon(h, se->cfg.busy_mem, se->cfg.busy_util, &err) == 0;
		buf_free(&err);
		unanswered |= !up && h && !h->down; /* its first contact: asked again */
		int state = up ? job_state(se, a, h, n > 1) : JOB_GONE;
		if (state > best_state)
			best = a, best_state = state;
	}
	free(order);
	if (!best || (unanswered && best_state != JOB_DONE_THERE))
		return 0; /* an earlier job's host may answer in a moment */
	stop_other_jobs(se, t, best, NULL); /* a later one beside it, an earlier one on a host that is down */
	return 1;
}

int ssh_follow_log(const Graph *g, const char *state_dir, const char *host, const char *job_id, long long skip,
		   Buf *err)
{
	const RecipeHosts *block = graph_block(g, "hosts");
	const RecipeHost *spec = NULL;
	char id[64]; /* a multi-node job's "ID+HOST:GPUS+...": node 0's, whose log is the job's */
	snprintf(id, sizeof id, "%.*s", (int)strcspn(job_id, "+"), job_id);
	for (int i = 0; block && i < block->n && !spec; i++)
		if (!strcmp(block->hosts[i].name, host))
			spec = &block->hosts[i];
	if (!spec || strpbrk(id, "'\"$`\\ /")) {
		buf_printf(err, "the recipe declares no host %s (hosts{}, or --hosts FILE)", host);
		return -1;
	}
	/* through the master connection a kiln left (ControlPersist), else one of its own */
	SshHost h = {.spec = spec, .control_path = xasprintf("ControlPath=%s/%s.sock", state_dir, host)};
	Buf script = {0};
	buf_puts(&script, "cd 2>/dev/null; cd ");
	buf_shell_quote(&script, spec->workdir);
	buf_printf(&script, " 2>/dev/null && J=.kiln/jobs/%s && [ -f \"$J/log\" ] || exit 3\n"
			    "if [ -f \"$J/exit\" ] || ! read p < \"$J/pid\"; then tail -c +%lld \"$J/log\"\n"
			    "else tail -c +%lld -f --pid=\"$p\" \"$J/log\"; fi\n", id, skip + 1, skip + 1);
	char **argv = ssh_argv(&h, buf_str(&script));
	pid_t pid;
	int status = -1;
	fflush(stdout);
	OsSpawn spawn = {.argv = argv, .stdin_null = 1, .out_fd = -1, .err_fd = -1};
	if (os_spawn(&spawn, &pid) == 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	free(argv);
	buf_free(&script);
	free(h.control_path);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		buf_printf(err, "job %s is gone from %s's workdir %s", id, host, spec->workdir);
	else
		buf_printf(err, "cannot follow it on %s (ssh %s)", host, WIFEXITED(status) ? "failed" : "was stopped");
	return -1;
}

int ssh_reattach(SshExec *se, Job *job)
{
	const Task *t = job->task;
	AdoptedJob *a = ssh_task_job(se, t, 0); /* the one has_room chose, if it chose one */
	if (a) {
		SshHost *h = ssh_find_host(se, a->lease.host);
		Buf err = {0};
		int up = h && ssh_host_connect_soon(h, se->cfg.busy_mem, se->cfg.busy_util, &err) == 0;
		buf_free(&err);
		if (!up || !a->job_id[0] || strpbrk(a->job_id, "'\"$`\\ /")) {
			/* its host is gone from hosts{} or down: it starts afresh, and what may run on there
			 * is stopped when its host answers */
			stop_other_jobs(se, t, NULL, "stopped: its host did not answer, and the task started afresh");
			return 0;
		}
		if (strcmp(a->key, job->key)) { /* its recipe changed: those jobs are stale (on each node) */
			for (int i = 0; i < se->nadopted; i++) /* said when one of them still ran */
				job->stopped_stale |= !se->adopted[i].used && !se->adopted[i].finished &&
						      !strcmp(se->adopted[i].task, t->name);
			stop_other_jobs(se, t, NULL, "stopped: the task's key changed since it started");
			return 0;
		}
		a->used = 1;
		stop_other_jobs(se, t, a, NULL);
		int id_len = (int)strcspn(a->job_id, "+"); /* "ID", then a multi-node job's later nodes */
		LostLog *l = ssh_lost_log(se, a->job_id, (size_t)id_len);
		if (l) /* taken up: its whole log goes into this attempt's */
			ssh_drop_lost_log(se, l);
		int attempt = job->attempt, lost = a->row ? 0 : a->attempt;
		char *log = a->row ? NULL : xstrdup(job->log_path);
		exec_attach(job, a); /* its lease: the host and the devices it holds there */
		if (log) { /* an orphan: no record to take the attempt's number and log from */
			job->attempt = attempt;
			free(job->log_path);
			job->log_path = log;
			job->adopted_lost = lost;
			h->taken_up += lost > 0 && !a->earlier;
			h->taken_up_earlier += lost > 0 && a->earlier;
			int fd = lost ? exec_open_log(job) : -1; /* a header; the job's log follows, from its start */
			if (fd >= 0) {
				dprintf(fd, "# kiln: task %s, attempt %d (try %d of %d in this run): re-attached on host %s to the job "
					"of attempt %d, which ran on while the host did not answer (its command and environment: "
					"%s@%d.log)\n# --\n", t->name, job->attempt, job->run_try, t->opts->retries + 1,
					h->spec->name, lost, t->name, lost);
				close(fd);
			}
		}
		if (se->held == t) /* what has_room leased for a fresh start is not this job's */
			ssh_release_held(se);
		Remote *rm = ssh_new_remote(se, job, h, 0);
		snprintf(rm->id, sizeof rm->id, "%.*s", id_len, a->job_id);
		rm->err_path = xasprintf("%s/%s.err", se->cfg.state_dir, rm->id);
		if (job->lease.ngpus && h->gpus) /* a device the job holds is not leased to another */
			gpu_lease_ids(h->gpus, job->lease.gpus, job->lease.ngpus);
		ssh_job_truncate_to_header(job->log_path);
		if (task_is_runner(t))
			ssh_map_reattached(se, rm);
		if (a->job_id[id_len])
			ssh_gang_reattach(se, rm, a->job_id);
		if (ssh_spawn_follow(rm, NULL) != 0)
			ssh_node_failed(se, rm, JOB_LOST, -1, "cannot run ssh to re-attach");
		return 1;
	}
	return 0;
}
