/* slurm_queue.c — following submitted jobs: one squeue per poll for all of them (array
 * elements one per line), with back-off; a failing squeue (a controller restart) is tried
 * again and never fails a job. A job that waits keeps Slurm's reason (the status line shows
 * "12 pending: Resources"); a reason that can never clear for it fails it within seconds,
 * cancelled, with the reason in words and the class `unschedulable`. A finished job's
 * outcome is its own exit-code file's, or Slurm's state when it wrote none. */
#define _GNU_SOURCE
#include "slurm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Slurm's pending reasons kiln puts in words: final ones fail their job (they never clear
 * for it); the others only read cryptically. */
static const struct {
	const char *reason, *words;
	int final;
} reasons[] = {
	{"PartitionNodeLimit", "it asks for more nodes than its partition has or allows", 1},
	{"PartitionTimeLimit", "its time limit is longer than its partition allows", 1},
	{"PartitionConfig", "its partition's configuration cannot run it (CPUs, memory or GPUs per node)", 1},
	{"BadConstraints", "no node has the features, CPUs, memory or GPUs it asks for", 1},
	{"InvalidQOS", "its QOS does not exist or is not allowed to this account", 1},
	{"InvalidAccount", "its account does not exist or is not this user's", 1},
	{"QOSJobLimit", "it exceeds a limit its QOS sets per job", 1},
	{"BeginTime", "requeued or deferred: Slurm starts it after its begin time", 0},
	{"JobHeldUser", "held: scontrol release JOBID lets it run", 0},
	{"JobHeldAdmin", "held by an administrator", 0},
	{"Dependency", "waits for the jobs it depends on", 0},
	{"DependencyNeverSatisfied", "a job it depends on failed: scancel it", 0},
	{"ReqNodeNotAvail", "the nodes it may use are down, drained or reserved", 0},
	{"launch failed requeued held", "its launch failed and Slurm held it: scontrol release JOBID", 0},
};

/* The table's entry for reason: the name alone, or followed by squeue's details
 * ("ReqNodeNotAvail, UnavailableNodes:n3"); -1 if none. */
static int reason_entry(const char *reason)
{
	for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
		size_t len = strlen(reasons[i].reason);
		if (!strncmp(reason, reasons[i].reason, len) && (!reason[len] || reason[len] == ',' || reason[len] == ' '))
			return (int)i;
	}
	return -1;
}

int slurm_reason_is_final(const char *reason, char *why, size_t n)
{
	int i = reason_entry(reason);
	if (i >= 0 && reasons[i].final) {
		snprintf(why, n, "%s (%s)", reason, reasons[i].words);
		return 1;
	}
	/* QOS and association limits per job ("QOSMaxNodePerJobLimit", "AssocMaxCpuPerJobLimit")
	 * never clear for this job; those per user or account (running jobs, GRES in use) do */
	if ((!strncmp(reason, "QOSMax", 6) || !strncmp(reason, "AssocMax", 8)) && strstr(reason, "PerJob")) {
		snprintf(why, n, "%s (it asks for more than its %s allows one job)", reason,
			 reason[0] == 'Q' ? "QOS" : "association");
		return 1;
	}
	return 0;
}

const char *slurm_reason_gloss(const char *reason)
{
	int i = reason_entry(reason);
	return i >= 0 && !reasons[i].final ? reasons[i].words : NULL;
}

/* Whether a final state says the job's node was taken from it: preempted, failed, or
 * never booted. */
static int node_taken(const char *state)
{
	return !strncmp(state, "PREEMPTED", 9) || !strncmp(state, "NODE_FAIL", 9) || !strncmp(state, "BOOT_FAIL", 9);
}

/* Slurm's KillWait: how long a signalled job's processes have between SIGTERM and SIGKILL
 * (30 s where scontrol cannot say). Read once. */
static int kill_wait_s(SlurmExec *se)
{
	if (se->kill_wait_known)
		return se->kill_wait_s;
	se->kill_wait_known = 1;
	se->kill_wait_s = 30;
	Buf out = {0};
	char *argv[] = {"scontrol", "show", "config", NULL};
	if (slurm_tool(argv, &out, NULL) == 0 && out.len) {
		const char *k = strstr(buf_str(&out), "\nKillWait");
		const char *eq = k ? strchr(k, '=') : NULL;
		if (eq && eq - k < 40 && atoi(eq + 1) >= 0)
			se->kill_wait_s = atoi(eq + 1);
	}
	buf_free(&out);
	return se->kill_wait_s;
}

/* Whether a job Slurm calls ended by a signal (scancel, its time limit, preemption, a
 * deadline) may still have a command quitting: Slurm says CANCELLED at once, while the
 * job's processes have KillWait after their SIGTERM; its script writes the exit file once
 * its command is gone (job_script.c). Until that file is there, or KillWait and a few
 * seconds have passed, the job has not ended: a next attempt must not start beside a
 * command still saving its state. A job never seen running (cancelled while pending) ran
 * no command; one a previous kiln left may have. A job seen COMPLETING had its end
 * followed by Slurm: its script waits for its command (job_script.c), and Slurm says the
 * job COMPLETING until that script is gone, killed with its command after KillWait if
 * need be; a script that ended at once (a job an older kiln wrote) is the one waited for. */
static int still_ending(SlurmExec *se, Job *job, const char *state)
{
	if ((!job->seen_running && !job->adopted) || job->seen_running == 2 ||
	    (strncmp(state, "CANCELLED", 9) && strcmp(state, "TIMEOUT") && strcmp(state, "PREEMPTED") &&
	     strcmp(state, "DEADLINE")))
		return 0;
	char *exit_path = slurm_exit_path(se, job);
	int there = access(exit_path, F_OK) == 0;
	free(exit_path);
	if (there)
		return 0;
	int64_t now = now_mono_ns();
	if (!job->end_seen_ns)
		job->end_seen_ns = now;
	return now - job->end_seen_ns < (int64_t)(kill_wait_s(se) + 5) * 1000000000LL;
}

int slurm_ending(const SlurmExec *se, int *kill_wait)
{
	int n = 0;
	for (int i = 0; i < se->nactive; i++)
		n += se->active[i]->end_seen_ns != 0;
	*kill_wait = se->kill_wait_s;
	return n;
}

/* Decides a finished job's outcome from its Slurm state and its own exit-code file: the
 * command's status, and " stopped" where a signal of Slurm's came in while it ran. */
static void finish(SlurmExec *se, Job *job, const char *state)
{
	char *exit_path = slurm_exit_path(se, job), *go = slurm_go_path(se, job);
	size_t len;
	char *text = read_file(exit_path, &len);
	free(exit_path);
	int stopped = text && strstr(text, " stopped");
	/* an exit 0 after kiln's own stop is the command's handler quitting (sched.c) */
	job->stop_landed |= stopped;
	unlink(go);
	free(go);
	char *ports_path = slurm_ports_path(se, job);
	char *ports = job->task->opts->ports ? read_file(ports_path, &len) : NULL;
	if (ports && job->attempt_row > 0 && se->cfg.cache) { /* what {port} was on its node */
		ports[strcspn(ports, "\n")] = 0;
		cache_attempt_ports(se->cfg.cache, job->attempt_row, ports);
	}
	free(ports);
	free(ports_path);
	job->ended_ns = now_mono_ns();
	job->waiting[0] = 0;
	if (node_taken(state) && !(text && atoi(text) == 0 && !stopped)) {
		/* its node failed or was taken from it before the command succeeded (the signal
		 * that stopped it may have let the job script record its end, and a command that
		 * saves when told to stop may exit 0 then: stopped, not done): no failure of the
		 * task's, so like a job lost with its ssh host it runs again without spending a
		 * retry (and continues from its resume state) */
		job->end = JOB_LOST;
		snprintf(job->reason, sizeof job->reason, "Slurm job %.32s ended %.32s (%s)", job->job_id, state,
			 !strncmp(state, "PREEMPTED", 9) ? "preempted"
			 : !strncmp(state, "BOOT_FAIL", 9) ? "its node failed to boot"
							   : "its node failed");
	} else if (!strcmp(state, "COMPLETED") ||
		   (text && (!strcmp(state, "FAILED") || !strcmp(state, "GONE") || node_taken(state))) ||
		   (text && atoi(text) == 0 && !stopped &&
		    (!strncmp(state, "CANCELLED", 9) || !strcmp(state, "TIMEOUT") || !strcmp(state, "DEADLINE")))) {
		/* the command's own exit status, as the job script recorded it; also a command that
		 * had finished when a cancel or a time limit came (its script ending: Slurm says
		 * CANCELLED then), recorded as it ended, as a local one that ended before a Ctrl-C */
		job->end = JOB_EXITED;
		job->exit_code = text ? atoi(text) : 0;
		if (job->timed_out && stopped) { /* kiln's clock: its script passed the stop on */
			char dur[32];
			format_duration(job->task->opts->timeout_sec, dur, sizeof dur);
			snprintf(job->reason, sizeof job->reason, "timed out after %s (Slurm job %.32s stopped)", dur,
				 job->job_id);
		}
	} else {
		/* TIMEOUT, CANCELLED, OUT_OF_MEMORY, DEADLINE, FAILED */
		job->end = JOB_EXITED;
		job->exit_code = text ? atoi(text) : 1;
		char dur[32];
		format_duration(job->task->opts->timeout_sec, dur, sizeof dur);
		if (job->timed_out && strcmp(state, "TIMEOUT")) /* kiln's clock (slurm_poll_queue) */
			snprintf(job->reason, sizeof job->reason, "timed out after %s (Slurm job %.32s cancelled)", dur,
				 job->job_id);
		else
			snprintf(job->reason, sizeof job->reason, "Slurm job %.32s ended %s%s", job->job_id,
				 !strcmp(state, "GONE") ? "(no longer known to Slurm, no exit code)" : state,
				 job->end_seen_ns && !text ? "; its command did not quit within Slurm's KillWait and was "
							     "killed" : "");
		if (!strcmp(state, "TIMEOUT"))
			job->timed_out = 1;
		if (job->exit_code == 0)
			job->exit_code = 1;
	}
	free(text);
}

/* squeue's time used ("%M": "1:05", "2:01:05", "3-02:01:05"), up to its '|', in seconds;
 * 0 when it says none ("0:00", "INVALID"). */
static double time_used(const char *s)
{
	long days = 0, part[3] = {0};
	int n = 0;
	const char *dash = strchr(s, '-'), *bar = strchr(s, '|');
	if (dash && (!bar || dash < bar)) {
		days = strtol(s, NULL, 10);
		s = dash + 1;
	}
	for (char *end; n < 3 && *s >= '0' && *s <= '9'; s = *end == ':' ? end + 1 : end) {
		part[n++] = strtol(s, &end, 10);
		if (*end != ':')
			break;
	}
	long sec = n == 3 ? part[0] * 3600 + part[1] * 60 + part[2] : n == 2 ? part[0] * 60 + part[1] : 0;
	return (double)(days * 86400 + sec);
}

static int is_final(const char *state)
{
	static const char *const finals[] = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL",
					     "PREEMPTED", "BOOT_FAIL", "DEADLINE", NULL};
	for (int i = 0; finals[i]; i++)
		if (!strncmp(state, finals[i], strlen(finals[i])))
			return 1;
	return 0;
}

/* squeue's lines by job id: "ID|STATE|REASON" each, split in place (a lookup per job, not a
 * scan of the output: a 10,000-element grid polls in milliseconds). */
static void index_lines(char *out, StrMap *by_id)
{
	for (char *line = out, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *bar = strchr(line, '|');
		if (!bar)
			continue;
		*bar = 0;
		strmap_put(by_id, line, bar + 1);
	}
}

/* A job waits for a reason that never clears: it is cancelled and fails, said in words.
 * Seen on two polls a few seconds apart first (a reason can be set for a moment). */
static int unschedulable(Job *job, const char *reason)
{
	char why[200];
	if (!slurm_reason_is_final(reason, why, sizeof why))
		return 0;
	int64_t now = now_mono_ns();
	if (strcmp(job->waiting, reason) || !job->waiting_since_ns || now - job->waiting_since_ns < 3000000000LL)
		return 0;
	char *argv[] = {"scancel", job->job_id, NULL};
	slurm_tool(argv, NULL, NULL);
	char line[512];
	snprintf(line, sizeof line, "kiln: Slurm can never start job %.64s: %s\n", job->job_id, why);
	FILE *log = fopen(job->log_path, "a");
	if (log) {
		fputs(line, log);
		fclose(log);
	}
	snprintf(job->reason, sizeof job->reason, "Slurm can never start it: %s", why);
	job->unschedulable = 1;
	job->end = JOB_EXITED;
	job->exit_code = 1;
	job->ended_ns = now;
	return 1;
}

void slurm_poll_queue(SlurmExec *se)
{
	Buf ids = {0}, out = {0}, err = {0};
	/* one query for all of this run's jobs, by their array's id (-r lists the elements);
	 * -t all keeps finished ones for MinJobAge */
	StrMap masters = {0}, by_id = {0};
	char **keys = xmalloc((size_t)(se->nactive + 1) * sizeof *keys);
	int nkeys = 0;
	for (int i = 0; i < se->nactive; i++) {
		const char *id = se->active[i]->job_id;
		char *master = strndup(id, strcspn(id, "_"));
		if (strmap_put_new(&masters, master, master) == NULL) {
			keys[nkeys++] = master;
			buf_printf(&ids, "%s%s", ids.len ? "," : "", master);
		} else {
			free(master);
		}
	}
	char *argv[] = {"squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%M|%r", "-j", (char *)buf_str(&ids), NULL};
	int rc = slurm_tool(argv, &out, &err);
	int changed = 0, ending = 0;
	if (rc == 0) {
		se->submit_trouble[0] = se->nqueued ? se->submit_trouble[0] : 0;
		if (out.len)
			index_lines(out.data, &by_id);
		for (int i = 0; i < se->nactive; i++) {
			Job *job = se->active[i];
			const char *line = strmap_get(&by_id, job->job_id); /* "STATE|TIME USED|REASON" */
			char state[32] = "GONE", reason[64] = "";
			double used = 0;
			if (line) { /* not listed any more: decided by its exit-code file */
				snprintf(state, sizeof state, "%.*s", (int)strcspn(line, "|"), line);
				const char *r = strchr(line, '|');
				used = r ? time_used(r + 1) : 0;
				r = r ? strchr(r + 1, '|') : NULL;
				if (r)
					snprintf(reason, sizeof reason, "%s", r + 1);
			}
			int ended = !line || is_final(state);
			if (!ended && strcmp(state, "PENDING")) {
				/* a timeout counts from the job's start, to the second, however long it
				 * had run when this kiln first saw it (one a killed kiln left: only what is
				 * left of it; Slurm's --time is whole minutes, checked every 30 s or so:
				 * the backstop when no kiln is there to stop it): the scheduler's clock
				 * stops it (sched_check_clocks) */
				if (!job->seen_running && job->task->opts->timeout_sec > 0 && !job->deadline_ns)
					job->deadline_ns = now_mono_ns() + (int64_t)((job->task->opts->timeout_sec - used) * 1e9);
				job->seen_running = !strcmp(state, "COMPLETING") ? 2 : job->seen_running > 1 ? 2 : 1;
			}
			if (ended && line && still_ending(se, job, state)) {
				ending++;
				continue;
			}
			if (ended)
				finish(se, job, state);
			else if (!strcmp(state, "PENDING") && strcmp(reason, "None"))
				ended = unschedulable(job, reason);
			if (!ended && strcmp(job->waiting, !strcmp(state, "PENDING") && strcmp(reason, "None") ? reason : "")) {
				snprintf(job->waiting, sizeof job->waiting, "%s", !strcmp(state, "PENDING") && strcmp(reason, "None") ? reason : "");
				job->waiting_since_ns = now_mono_ns();
			}
			if (ended) {
				exec_push_job(&se->ended, &se->nended, &se->ended_cap, job);
				se->active[i--] = se->active[--se->nactive];
				changed = 1;
			}
		}
	} else { /* said as squeue says it; tried again at the next poll */
		char first[160];
		snprintf(first, sizeof first, "%.*s", (int)strcspn(buf_str(&err), "\n"), err.len ? buf_str(&err) : "no output");
		snprintf(se->submit_trouble, sizeof se->submit_trouble, "squeue failed (%.100s): trying again; is the "
			 "controller up (scontrol ping)?", first);
	}
	/* a waiting job is looked at every few seconds at least: its reason may be final */
	int cap = ending ? 500 : 2000; /* a stopped job's exit file is looked for often */
	if (changed || rc != 0)
		se->interval_ms = changed ? 100 : se->interval_ms;
	else
		se->interval_ms = se->interval_ms * 3 / 2 > cap ? cap : se->interval_ms * 3 / 2;
	se->next_poll_ns = now_mono_ns() + (int64_t)se->interval_ms * 1000000;
	strmap_free(&by_id);
	strmap_free(&masters);
	for (int i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	buf_free(&ids);
	buf_free(&out);
	buf_free(&err);
}

/* The open Slurm attempts' job ids, comma-separated, and their arrays' ids. */
typedef struct {
	Buf ids, masters;
	int n;
} OpenJobs;

static void collect_open(void *ctx, const OpenAttempt *a)
{
	OpenJobs *o = ctx;
	if (strcmp(a->rec.executor, "slurm") || !a->rec.job_id[0])
		return;
	buf_printf(&o->ids, "%s,", a->rec.job_id);
	buf_printf(&o->masters, "%s%.*s", o->n++ ? "," : "", (int)strcspn(a->rec.job_id, "_"), a->rec.job_id);
}

void slurm_queue_status(Cache *c, Buf *out)
{
	OpenJobs o = {0};
	cache_each_open_job(c, collect_open, &o);
	if (!o.n) {
		buf_free(&o.ids);
		buf_free(&o.masters);
		return;
	}
	Buf said = {0}, err = {0};
	char *argv[] = {"squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", (char *)buf_str(&o.masters), NULL};
	if (slurm_tool(argv, &said, &err) != 0) {
		buf_printf(out, "%d Slurm job%s of an earlier run are recorded as open; squeue failed: %.*s", o.n,
			   o.n == 1 ? "" : "s", (int)strcspn(buf_str(&err), "\n"), buf_str(&err));
	} else {
		const char *keys[16];
		int counts[16], nk = 0, queued = 0;
		char (*texts)[128] = xcalloc(16, sizeof *texts);
		for (char *line = said.data, *next; line && *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			char id[64];
			snprintf(id, sizeof id, "%.*s,", (int)strcspn(line, "|"), line);
			Buf probe = {0};
			buf_printf(&probe, ",%s", buf_str(&o.ids));
			char want[70];
			snprintf(want, sizeof want, ",%s", id);
			int ours = strstr(buf_str(&probe), want) != NULL;
			buf_free(&probe);
			const char *state = strchr(line, '|');
			if (!ours || !state)
				continue;
			state++;
			const char *reason = strchr(state, '|');
			char key[128];
			if (!strncmp(state, "PENDING", 7) && reason && strcmp(reason + 1, "None")) {
				const char *gloss = slurm_reason_gloss(reason + 1);
				snprintf(key, sizeof key, "pending: %s%s%s%s", reason + 1, gloss ? " (" : "", gloss ? gloss : "",
					 gloss ? ")" : "");
			}
			else
				snprintf(key, sizeof key, "%.*s", (int)(reason ? reason - state : (long)strlen(state)), state);
			for (char *p = key; *p && strncmp(key, "pending", 7); p++)
				*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
			int k = 0;
			while (k < nk && strcmp(keys[k], key))
				k++;
			if (k == nk && nk < 16) {
				snprintf(texts[nk], sizeof texts[nk], "%s", key);
				keys[nk] = texts[nk];
				counts[nk++] = 0;
			}
			if (k < nk)
				counts[k]++;
			queued++;
		}
		buf_printf(out, "Slurm holds %d of the %d job%s an earlier run left%s", queued, o.n, o.n == 1 ? "" : "s",
			   nk ? ": " : "");
		for (int k = 0; k < nk; k++)
			buf_printf(out, "%s%d %s", k ? ", " : "", counts[k], keys[k]);
		buf_puts(out, " (the next run re-attaches to those of unchanged tasks)");
		free(texts);
	}
	buf_free(&said);
	buf_free(&err);
	buf_free(&o.ids);
	buf_free(&o.masters);
}

int slurm_holds_job(const char *job_id)
{
	static const char *const held[] = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
					   "RUNNING", "SUSPENDED", "RESIZING", NULL};
	Buf said = {0};
	char *argv[] = {"squeue", "-h", "-j", (char *)job_id, "-o", "%T", NULL};
	int holds = 0;
	if (slurm_tool(argv, &said, NULL) == 0) { /* a job Slurm no longer knows: an error, not held */
		const char *state = buf_str(&said);
		size_t n = strcspn(state, "\n");
		for (int i = 0; held[i] && !holds; i++)
			holds = strlen(held[i]) == n && !strncmp(state, held[i], n);
	}
	buf_free(&said);
	return holds;
}
