/* exec_ssh.c — the ssh executor: tasks run on a few servers of hosts{} that have OpenSSH,
 * rsync, a POSIX shell and (for GPUs) nvidia-smi, and nothing of kiln's.
 *
 * An attempt on a host: the host is chosen (ssh_room.c) and its inputs copied there first, as a step of
 * their own (ssh_place.c); then one ssh command clears its outputs there, writes its job
 * script (the local executor's command, environment and working directory, in the
 * workspace's copy there), starts it detached — setsid, its own process group, its log and
 * exit-status file in .kiln/jobs/ID, its output streamed back through tee into the local
 * log — waits for it, and reports its status and sends its outputs back as a tar after the
 * log (ssh_job.c), unpacked here, hashed and recorded like any task's. The attempt row holds
 * the job's ID, its host and its devices (its lease), so a kiln killed or disconnected
 * meanwhile re-attaches to the job on its next run (the same key) instead of starting it
 * again. A connection that fails while the
 * host still answers is followed again; otherwise the job is lost with its host: it runs
 * again elsewhere and the host is down for a while (ssh_host.c). A map{} shard (ssh_map.c)
 * and a job spanning several hosts (ssh_gang.c: one attempt per node, ended together) are
 * attempts of the same kind; jobs an earlier kiln left are re-attached by ssh_attach.c. */
#define _GNU_SOURCE
#include "../exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "ssh_host.h"
#include "ssh_job.h"
#include "ssh_place.h"
#include "ssh_internal.h"
#include "ssh_agent.h"

static void push_remote(SshExec *se, Remote *rm)
{
	if (se->nactive == se->cap)
		se->active = xrealloc(se->active, (size_t)(se->cap = se->cap ? 2 * se->cap : 16) * sizeof *se->active);
	se->active[se->nactive++] = rm;
}

void ssh_push_helper(SshExec *se, pid_t pid)
{
	if (se->nhelpers == se->helpers_cap)
		se->helpers = xrealloc(se->helpers, (size_t)(se->helpers_cap = se->helpers_cap ? 2 * se->helpers_cap : 8) *
							  sizeof *se->helpers);
	se->helpers[se->nhelpers++] = pid;
}

static SshHost *host_named(SshExec *se, const char *name, size_t len)
{
	for (int i = 0; i < se->nhosts; i++)
		if (strlen(se->hosts[i].spec->name) == len && !strncmp(se->hosts[i].spec->name, name, len))
			return &se->hosts[i];
	return NULL;
}

SshHost *ssh_find_host(void *ctx, const char *name) { return host_named(ctx, name, strlen(name)); }

void ssh_end_job(SshExec *se, Job *job, enum JobEnd end, int code, const char *reason)
{
	exec_end_job(job, end, code, reason, &se->ended, &se->nended, &se->ended_cap);
}

/* Appends a line to the job's local log. */
void ssh_log_line(const Job *job, const char *fmt, const char *arg)
{
	int fd = open(job->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0) {
		dprintf(fd, fmt, arg);
		close(fd);
	}
}

/* rm's job holds a slot, its CPUs and memory on h (release_remote gives them back). */
static void take_room(SshHost *h, Remote *rm, const Task *t)
{
	rm->cpus = ssh_host_task_cpus(t, h);
	rm->mem = t->opts->mem_mib;
	h->free_jobs--;
	h->free_cpus -= rm->cpus;
	h->free_mem -= rm->mem;
	h->running++;
}

Remote *ssh_new_remote(SshExec *se, Job *job, SshHost *h, int node)
{
	Remote *rm = xcalloc(1, sizeof *rm);
	rm->job = job;
	rm->host = h;
	rm->node = node;
	rm->lease = node ? &rm->own_lease : &job->lease;
	snprintf(rm->lease->host, sizeof rm->lease->host, "%s", h->spec->name);
	take_room(h, rm, job->task);
	push_remote(se, rm);
	return rm;
}

void ssh_release_remote(SshExec *se, Remote *rm)
{
	SshHost *h = rm->host;
	h->free_jobs++;
	h->free_cpus += rm->cpus;
	h->free_mem += rm->mem;
	h->running--;
	if (rm->lease->ngpus && h->gpus)
		gpu_release(h->gpus, rm->lease->gpus, rm->lease->ngpus);
	for (int i = 0; i < se->nactive; i++)
		if (se->active[i] == rm) {
			se->active[i] = se->active[--se->nactive];
			break;
		}
	if (rm->harvest_pid > 0) { /* the attempt's end brought every output: the harvest is moot */
		os_signal(-rm->harvest_pid, SIGKILL);
		ssh_push_helper(se, rm->harvest_pid);
		char *dir = xasprintf("%s/%s.harvest", se->cfg.state_dir, rm->id);
		remove_tree(dir);
		free(dir);
	}
	free(rm->map_outputs);
	free(rm->node_log);
	free(rm->err_path);
	free(rm->report);
	free(rm->progress_seen);
	if (rm->phase == PH_PLACE)
		place_flight(h, &rm->placement, -1);
	place_free(&rm->placement);
	free(rm);
}

/* Spawns the start command (start_part given) or the follow command for rm, its stdout
 * appended to the local log: the remote log from its first byte follows what the log has
 * now (log_prefix). 0 or -1. */
int ssh_spawn_follow(Remote *rm, const char *start_part)
{
	Job *job = rm->job;
	Buf b = {0};
	ssh_job_set_dir(&b, rm->host, rm->id);
	if (start_part) {
		buf_puts(&b, start_part);
		ssh_job_report_end(&b, job->task, ssh_report_of(rm), rm->map_outputs);
	} else {
		ssh_job_follow_script(&b, job->task, ssh_report_of(rm), rm->map_outputs, rm->agent_id[0] ? rm->agent_id : NULL);
	}
	int out = open(ssh_stream_path(rm), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	int err = open(rm->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	struct stat st;
	if (out >= 0 && fstat(out, &st) == 0)
		rm->log_prefix = (long long)st.st_size;
	rm->pid = out >= 0 && err >= 0 ? ssh_spawn(rm->host, buf_str(&b), out, err) : -1;
	if (out >= 0)
		close(out);
	if (err >= 0)
		close(err);
	buf_free(&b);
	return rm->pid > 0 ? 0 : -1;
}

/* The inputs are there: starts the job (the start command, which lists the copies first). */
int ssh_start_remote(SshExec *se, Remote *rm)
{
	Job *job = rm->job;
	rm->phase = PH_RUN;
	if (rm->gang) /* this node's devices, host and rank in the script */
		ssh_gang_node_env(rm);
	int agent = ssh_agent_can_carry(rm);
	Buf start = {0};
	place_listing_script(&start, &rm->placement);
	char mark[300] = "";
	if (rm->lease->ngpus) { /* its devices there, named for other kilns (ssh_host.c's query) */
		char ids[256];
		lease_gpus_text(rm->lease, ids, sizeof ids);
		snprintf(mark, sizeof mark, "kiln-gpu-lease:%s:%s", ids, rm->host->spec->owner_tag ? rm->host->spec->owner_tag : "");
	}
	char *script = ssh_job_start_script(job, rm->id, rm->host->spec->prelude, rm->map_outputs, agent,
					    mark[0] ? mark : NULL);
	buf_puts(&start, script);
	free(script);
	if (agent && ssh_agent_queue(se, rm, buf_str(&start)) == 0) {
		buf_free(&start);
		return 0;
	}
	if (agent) { /* the agent could not start: the old way, its job script written for it */
		buf_free(&start);
		return ssh_start_remote(se, rm);
	}
	int rc = ssh_spawn_follow(rm, buf_str(&start));
	buf_free(&start);
	if (rc != 0) {
		ssh_log_line(job, "kiln: cannot run ssh for host %s\n", rm->host->spec->name);
		ssh_node_failed(se, rm, JOB_START_FAILED, 127, "cannot run ssh (Debian: openssh-client)");
		return -1;
	}
	return 0;
}

/* Appends to text what h's workdir says when a few KiB are written there, unless text holds
 * a full disk's words already: a copy that died of a full disk (rsync's receiver, exit 11)
 * may end before its complaint reaches here. */
static void ask_room(SshHost *h, Buf *text)
{
	if (ssh_job_full_words(buf_str(text)))
		return;
	Buf cmd = {0}, out = {0};
	ssh_cd_workdir(&cmd, h);
	buf_puts(&cmd, " && { head -c 65536 /dev/zero > .kiln-room; } 2>&1; rm -f .kiln-room; true");
	if (ssh_run(h, buf_str(&cmd), &out, NULL) == 0 && ssh_job_full_words(buf_str(&out))) {
		buf_puts(text, text->len ? "\n" : "");
		buf_put(text, out.data, out.len);
	}
	buf_free(&cmd);
	buf_free(&out);
}

/* The copy step ended: the job starts, or the attempt ends (lost with an unreachable host). */
static void place_ended(SshExec *se, Remote *rm, int status)
{
	place_flight(rm->host, &rm->placement, -1);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		int fd = open(ssh_stream_path(rm), O_WRONLY | O_APPEND | O_CLOEXEC);
		place_copied(rm->host, &rm->placement, fd);
		if (fd >= 0)
			close(fd);
		ssh_start_remote(se, rm);
		return;
	}
	size_t len;
	char *text = read_file(rm->err_path, &len);
	int unreachable = !text || place_failed_unreachable(text);
	Buf said = {0};
	buf_puts(&said, text ? text : "");
	free(text);
	if (!unreachable && !rm->job->interrupted)
		ask_room(rm->host, &said);
	char reason[240];
	ssh_job_complaint(rm->host, "cannot copy the inputs", said.len ? buf_str(&said) : "the copy was stopped", reason,
			  sizeof reason);
	int full = strstr(reason, " is full (") != NULL; /* not a missing input: the task failed there */
	ssh_log_line(rm->job, "kiln: %s\n", said.len ? buf_str(&said) : reason);
	buf_free(&said);
	if (unreachable)
		ssh_host_failed(rm->host, reason);
	rm->phase = PH_RUN; /* its copies are no longer in flight */
	ssh_finished(se, rm, rm->job->interrupted ? JOB_SIGNALED : unreachable ? JOB_LOST : full ? JOB_EXITED : JOB_START_FAILED,
		 full ? 1 : 127, reason);
}

/* Copies rm's inputs there (a step of its own when there is anything to copy), then starts
 * its job; 0, or -1 when it ended at once. */
static int place_and_start(SshExec *se, Remote *rm)
{
	Job *job = rm->job;
	const Task *t = job->task;
	SshHost *h = rm->host;
	if (rm->gang && rm->gang->failed) { /* another node failed before this one started */
		ssh_node_failed(se, rm, JOB_SIGNALED, -1, "stopped: another node failed");
		return -1;
	}
	Buf err = {0};
	int placed = task_is_runner(t) ? ssh_map_place(se, rm, ssh_find_host, &err)
				       : place_prepare(se->cfg.cache, h, t, ssh_find_host, se, &rm->placement, &err);
	if (placed != 0) {
		ssh_log_line(job, "kiln: cannot copy the inputs to the host: %s\n", buf_str(&err));
		char reason[256]; /* whole lines: the first of rsync's or ssh's complaint, a full disk in words */
		ssh_job_complaint(h, "cannot copy the inputs", buf_str(&err), reason, sizeof reason);
		int full = strstr(reason, " is full (") != NULL;
		buf_free(&err);
		ssh_node_failed(se, rm, placed > 0 ? JOB_LOST : full ? JOB_EXITED : JOB_START_FAILED, full ? 1 : 127, reason);
		return -1;
	}
	buf_free(&err);
	if (!rm->placement.script.len)
		return ssh_start_remote(se, rm);
	rm->phase = PH_PLACE; /* the copies first, as a step of their own (reap goes on) */
	place_flight(h, &rm->placement, 1);
	int out = open(ssh_stream_path(rm), O_WRONLY | O_APPEND | O_CLOEXEC);
	int errf = open(rm->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	char *argv[] = {"/bin/bash", "-c", rm->placement.script.data, NULL};
	rm->pid = errf >= 0 ? ssh_spawn_local(argv, out, errf) : -1;
	if (out >= 0)
		close(out);
	if (errf >= 0)
		close(errf);
	if (rm->pid > 0)
		return 0;
	ssh_node_failed(se, rm, JOB_START_FAILED, 127, "cannot run bash to copy the inputs");
	return -1;
}

static int ssh_start(Executor *ex, Job *job)
{
	SshExec *se = ex->impl;
	Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
	int lost; /* where it would have gone back to (asked before a lost job is taken up or given up) */
	SshHost *home = ssh_home(se, t, 0, &lost);
	char wait[32];
	format_duration(home ? ssh_home_wait_sec(se, t) : 0, wait, sizeof wait);
	if (se->nadopted && ssh_reattach(se, job))
		return job->end == JOB_RUNNING ? 0 : -1;
	SshHost *h = se->held == t && se->nheld ? se->held_hosts[0] : NULL;
	int fd = exec_open_log(job);
	if (!h) {
		se->held = NULL;
		Buf why = {0};
		int most = 0, down = 0;
		for (int i = 0; i < se->nhosts; i++)
			if (ssh_host_allows(&se->hosts[i], t)) {
				if (gpu_count(se->hosts[i].gpus) > most)
					most = gpu_count(se->hosts[i].gpus);
				if (se->hosts[i].down) { /* counted on each host it waited for */
					buf_printf(&why, "%s%s down (%s)", why.len ? ", " : "", se->hosts[i].spec->name,
						   se->hosts[i].last_error);
					se->hosts[i].unplaced++;
					down = 1;
				}
			}
		int nodes = ssh_nodes(t), big = 0;
		for (int i = 0; i < se->nhosts; i++)
			big += ssh_host_allows(&se->hosts[i], t) && !se->hosts[i].down && gpu_count(se->hosts[i].gpus) >= t->opts->gpus;
		if (!why.len && nodes > 1)
			buf_printf(&why, "it spans %d nodes, one host each%s; %d of the hosts it may use can take one", nodes,
				   t->opts->gpus ? " with its GPUs" : "", big);
		else if (!why.len)
			buf_printf(&why, "it asks for %d GPUs and %d CPUs; the most any of its hosts has is %d GPUs", t->opts->gpus,
				   t->opts->cpus, most);
		if (fd >= 0)
			dprintf(fd, "kiln: no host can take %s: %s\n", t->name, buf_str(&why));
		char reason[256];
		snprintf(reason, sizeof reason, "no host can take it: %s", buf_str(&why));
		buf_free(&why);
		if (fd >= 0)
			close(fd);
		job->unschedulable = !down; /* no host of its own is big enough: no retry mends that */
		ssh_end_job(se, job, down ? JOB_HOST_DOWN : JOB_START_FAILED, 127, reason);
		return -1;
	}
	Remote *rm = ssh_new_remote(se, job, h, 0);
	job->lease.ngpus = t->opts->gpus;
	memcpy(job->lease.gpus, se->held_gpus[0], sizeof job->lease.gpus);
	/* unique in a workdir that outlives this workspace's state (.kiln deleted): the pid too */
	snprintf(rm->id, sizeof rm->id, "%lld.%d.%d-%d", se->cfg.run_id, t->index, job->attempt, (int)getpid());
	rm->err_path = xasprintf("%s/%s.err", se->cfg.state_dir, rm->id);
	snprintf(job->job_id, sizeof job->job_id, "%s", rm->id); /* on the host the lease names */
	Gang *g = se->nheld > 1 ? ssh_gang_new(se, rm) : NULL; /* the later nodes, named in the job id */
	se->held = NULL;
	se->nheld = 0;
	exec_gpu_env(job);
	int nenv = 0;
	while (job->env[nenv])
		nenv++;
	job->env[nenv++] = xasprintf("KILN_HOST=%s", h->spec->name);
	ssh_job_remote_env(job, rm->id);
	if (fd >= 0) {
		exec_write_log_header(fd, job);
		dprintf(fd, "# kiln: on host %s (%s:%s)\n", h->spec->name, h->spec->address, h->home_workdir);
		if (home && home != h && !ssh_host_allows(home, t))
			dprintf(fd, "# kiln: its resume state is on host %s, where the recipe no longer lets it run: it "
				"starts afresh here\n", home->spec->name);
		else if (home && home != h && lost)
			dprintf(fd, "# kiln: its job on host %s may run on there, but the host has not answered for %s (as "
				"long as that job had run, at most --host-wait): it starts afresh here\n",
				home->spec->name, wait);
		else if (home && home != h)
			dprintf(fd, "# kiln: its resume state is on host %s, which has not answered for %s (--host-wait, or as "
				"long as the work kept there took): it starts afresh here\n", home->spec->name, wait);
		exec_write_shell_note(fd, job, "there ");
		for (int k = 1; g && k < g->n; k++)
			dprintf(fd, "# kiln: node %d on host %s\n", k, g->nodes[k]->host->spec->name);
		if (g)
			dprintf(fd, "# kiln: the nodes meet at %s:%d (torchrun's rendezvous, on node 0's host)\n", job->rdzv_host,
				job->rdzv_port ? job->rdzv_port : job->ports[job->nports - 1]);
		close(fd);
	}
	if (!g)
		return place_and_start(se, rm);
	Remote *nodes[SSH_MAX_NODES];
	int n = g->n, rc = 0;
	memcpy(nodes, g->nodes, sizeof nodes);
	for (int k = 0; k < n; k++) /* the gang outlives its nodes' ends until the last */
		rc |= place_and_start(se, nodes[k]);
	return rc ? -1 : 0;
}

static int ssh_reap(Executor *ex, Job **out, int max)
{
	SshExec *se = ex->impl;
	os_children_reap();
	ssh_agent_pump(se); /* the agents' batches out, their ends in */
	int status;
	for (int i = 0; i < se->nhelpers; i++)
		if (os_children_take(se->helpers[i], &status))
			se->helpers[i--] = se->helpers[--se->nhelpers];
	se->stale_down = ssh_stop_stale_when_back(se);
	se->stale_down |= ssh_settle_kept(se); /* before their logs are fetched: a job taken back keeps its own */
	ssh_progress_poll(se);
	if (se->nlost_logs)
		ssh_fetch_lost_logs(se, 0);
	for (int i = 0; i < se->nactive; i++) {
		Remote *rm = se->active[i];
		if (rm->harvest_pid > 0 && os_children_take(rm->harvest_pid, &status))
			ssh_map_harvest_ended(se, rm, status);
		if (rm->map_outputs)
			ssh_map_harvest(se, rm);
		if (rm->pid <= 0 || !os_children_take(rm->pid, &status))
			continue;
		rm->pid = 0;
		int before = se->nactive;
		if (rm->phase == PH_PLACE)
			place_ended(se, rm, status);
		else if (rm->phase == PH_RUN && rm->probing)
			ssh_probe_ended(se, rm, status);
		else if (rm->phase == PH_RUN)
			ssh_follow_ended(se, rm, status);
		else
			ssh_unpack_ended(se, rm, status);
		if (se->nactive < before)
			i = -1; /* the list was reordered: look again */
	}
	int n = 0;
	while (se->nended > 0 && n < max)
		out[n++] = se->ended[--se->nended];
	return n;
}

void ssh_signal_remote(SshExec *se, Remote *rm, int sig)
{
	if (rm->phase != PH_RUN) { /* a local step: the copy or the unpacking */
		if (rm->pid > 0)
			os_signal(-rm->pid, sig);
		return;
	}
	rm->signalled = sig;
	Buf b = {0};
	ssh_job_set_dir(&b, rm->host, rm->id); /* kiln_kill's too */
	/* a job not started yet is claimed, so its start starts nothing; one whose start won the
	 * claim is stopped before it starts the job (kiln_stopped), or is starting it: its pid
	 * comes. No "--": dash's kill takes the group as the word after the signal */
	buf_printf(&b, "if [ ! -s \"$J/pid\" ]; then mkdir -p \"$J\" && kiln_claim \"$J\" stop && exit 0; i=0; "
		       "while [ ! -s \"$J/pid\" ] && [ ! -s \"$J/claim\" ] && [ $i -lt 3000 ]; do "
		       "kiln_stopped \"$J\" && exit 0; sleep 0.1; i=$((i + 1)); done; fi; "
		       "read p 2>/dev/null < \"$J/pid\" && kiln_kill %s \"$p\"; true",
		   exec_signal_name(sig));
	pid_t pid = ssh_spawn(rm->host, buf_str(&b), -1, -1);
	buf_free(&b);
	if (pid > 0)
		ssh_push_helper(se, pid);
}

static void ssh_signal(Executor *ex, Job *job, int sig)
{
	SshExec *se = ex->impl;
	for (int i = 0; i < se->nactive; i++) /* every node of a multi-node job */
		if (se->active[i]->job == job)
			ssh_signal_remote(se, se->active[i], sig);
}

static int ssh_poll_ms(Executor *ex)
{
	SshExec *se = ex->impl;
	if (se->nended)
		return 0;
	int ms = ssh_agent_poll_ms(se);
	for (int i = 0; i < se->nactive; i++)
		if (se->active[i]->map_outputs) /* a shard's harvests are due every few seconds */
			return ms >= 0 && ms < 1000 ? ms : 1000;
	if ((se->waiting || se->stale_down) && (ms < 0 || ms > 1000))
		ms = 1000;
	int progress = ssh_progress_poll_ms(se);
	return progress >= 0 && (ms < 0 || progress < ms) ? progress : ms;
}

static int ssh_detach(Executor *ex, Job *job, int hangup)
{
	SshExec *se = ex->impl;
	if (!se->cfg.detach && !hangup)
		return 0;
	Gang *g = NULL;
	int left = 0;
	for (int i = 0; i < se->nactive; i++) /* a node still copying or unpacking: stopped like any job */
		if (se->active[i]->job == job && se->active[i]->phase != PH_RUN)
			return 0;
	for (int i = 0; i < se->nactive; i++) {
		Remote *rm = se->active[i];
		if (rm->job != job || rm->phase != PH_RUN)
			continue;
		if (rm->pid > 0) { /* the job runs on there; only the local follower stops */
			os_signal(rm->pid, SIGTERM);
			ssh_push_helper(se, rm->pid);
		}
		g = rm->gang;
		ssh_release_remote(se, rm);
		left = 1;
		i = -1; /* the list was reordered */
	}
	free(g); /* every node of it is left running */
	return left;
}

static void ssh_adopt(Executor *ex, const OpenAttempt *a)
{
	SshExec *se = ex->impl;
	if (a->ended) /* recorded lost with its host: it may run on there */
		ssh_adopt_lost(se, a);
	else
		exec_adopted_add(&se->adopted, &se->nadopted, a);
}

/* A map shard's runner left running is followed in its own list's order (the scheduler
 * reads the list it wrote); other tasks need nothing of the scheduler to re-attach. */
static int ssh_adoptable(Executor *ex, const Task *t, const char *key_hex, Lease *held)
{
	SshExec *se = ex->impl;
	held->ngpus = 0; /* a host's devices are this executor's, not this machine's */
	if (se->reattaching != t) /* its host does not answer, or the job is gone: a fresh list */
		return 0;
	for (int i = 0; task_is_runner(t) && i < se->nadopted; i++)
		if (!se->adopted[i].used && !strcmp(se->adopted[i].task, t->name) && !strcmp(se->adopted[i].key, key_hex))
			return 1;
	return 0;
}

/* The status line's part, per host it has reached: "v800 3/4 GPUs, 12 done", "v802 down". */
static void ssh_describe(Executor *ex, Buf *out)
{
	SshExec *se = ex->impl;
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (!h->connected && !h->down)
			continue; /* not needed yet */
		buf_printf(out, "%s%s", out->len ? ", " : "", h->spec->name);
		if (h->down) {
			buf_puts(out, " down");
			const Task *w = se->home_waiter;
			int lost;
			for (int k = 0; w && !ssh_home_given_up(se, h, w) && k < ssh_nodes(w); k++)
				if (ssh_home(se, w, k, &lost) == h) {
					char wait[32];
					format_duration(ssh_home_wait_sec(se, w), wait, sizeof wait);
					buf_printf(out, " (%s waits for it up to %s: %s)", w->name, wait,
						   lost ? "its job may run on there" : "its resume state is there");
				}
			continue;
		}
		int leased = 0;
		for (int k = 0; k < se->nactive; k++)
			if (se->active[k]->host == h)
				leased += se->active[k]->lease->ngpus;
		if (gpu_count(h->gpus))
			buf_printf(out, " %d/%d GPUs", leased, gpu_count(h->gpus));
		else
			buf_printf(out, " %d/%d jobs", h->running, h->jobs);
		buf_printf(out, ", %d done", h->ran);
	}
}

/* A host's GPU time this run, as its attempts' records have it (kiln status and the report
 * count the same way): one figure everywhere. */
static void recorded_gpu_time(void *ctx, const HistoryHost *rec)
{
	SshExec *se = ctx;
	for (int i = 0; i < se->nhosts; i++)
		if (!strcmp(se->hosts[i].spec->name, rec->host))
			se->hosts[i].gpu_sec = rec->gpu_sec;
}

static void ssh_summarize(Executor *ex)
{
	SshExec *se = ex->impl;
	cache_each_host(se->cfg.cache, se->cfg.run_id, recorded_gpu_time, se);
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (!h->connected && !h->down && !h->ran && !h->failed && !h->unplaced)
			continue; /* not needed this run */
		ssh_host_print_summary(h, place_count(se->cfg.cache, h));
	}
	fflush(stdout);
}

static void ssh_destroy(Executor *ex)
{
	SshExec *se = ex->impl;
	ssh_release_held(se);
	ssh_agent_close_all(se);
	ssh_stop_orphans(se);
	ssh_fetch_lost_logs(se, 1);
	/* one command per host, all at once, clears this run's job directories */
	SshHost **each = xcalloc((size_t)se->nhosts + 1, sizeof *each);
	char **clear = xcalloc((size_t)se->nhosts + 1, sizeof *clear);
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = each[i] = &se->hosts[i];
		if (!h->ended_jobs.len || h->down)
			continue;
		Buf b = {0};
		buf_puts(&b, "cd ");
		buf_shell_quote(&b, h->home_workdir);
		/* and the task pointers (ssh_job.c) left naming none of the jobs still there */
		buf_printf(&b, " && rm -rf%s && for T in .kiln/jobs/task-*; do [ -f \"$T\" ] || continue; "
			       "read d < \"$T\"; [ -d \".kiln/jobs/$d\" ] || rm -f \"$T\"; done", buf_str(&h->ended_jobs));
		clear[i] = b.data;
	}
	ssh_run_each(each, clear, se->nhosts);
	for (int i = 0; i < se->nhosts; i++)
		free(clear[i]);
	free(clear);
	free(each);
	for (int i = 0; i < se->nhosts; i++)
		ssh_host_free(&se->hosts[i]);
	free(se->hosts);
	exec_adopted_free(se->adopted, se->nadopted);
	for (int i = 0; i < se->nlost_logs; i++) {
		free(se->lost_logs[i].id);
		free(se->lost_logs[i].log);
	}
	free(se->lost_logs);
	for (int i = 0; i < se->nactive; i++) {
		free(se->active[i]->map_outputs);
		free(se->active[i]->err_path);
		free(se->active[i]->report);
		place_free(&se->active[i]->placement);
		free(se->active[i]);
	}
	free(se->active);
	free(se->ended);
	free(se->helpers);
	free(se);
	free(ex);
}

Executor *exec_ssh_new(const ExecSetup *cfg, Buf *err)
{
	const RecipeHosts *block = graph_block(cfg->g, "hosts");
	if (!block || block->n == 0) {
		buf_puts(err, "the ssh executor needs hosts: a hosts { v800 = { address = \"user@v800\" }, ... } block in the "
			      "recipe, or --hosts FILE with one");
		return NULL;
	}
	if (!os_program_found("ssh") || !os_program_found("rsync")) { /* looked up, not started: a run's start */
		buf_puts(err, "the ssh executor needs ssh and rsync on PATH (Debian: openssh-client rsync)");
		return NULL;
	}
	if (mkdirs(cfg->state_dir, 0700) != 0) {
		buf_printf(err, "cannot create %s", cfg->state_dir);
		return NULL;
	}
	/* every ssh and rsync kiln starts carries the workspace marker, so a kiln started after a
	 * kill -9 stops the followers the dead one left (the remote jobs run on, re-attached) */
	putenv((char *)exec_workspace_marker());
	SshExec *se = xcalloc(1, sizeof *se);
	se->cfg = *cfg;
	se->nhosts = block->n;
	se->hosts = xcalloc((size_t)se->nhosts, sizeof *se->hosts);
	for (int i = 0; i < se->nhosts; i++) {
		se->hosts[i].spec = &block->hosts[i];
		se->hosts[i].control_path = xasprintf("ControlPath=%s/%s.sock", cfg->state_dir, block->hosts[i].name);
	}
	Executor *ex = xmalloc(sizeof *ex);
	*ex = (Executor){
		.name = "ssh",
		.title = "ssh",
		.kiln_timeouts = 1,
		.kiln_ports = 1,
		.reattaches = 1,
		.state_on_host = 1,
		.start = ssh_start,
		.reap = ssh_reap,
		.signal = ssh_signal,
		.poll_ms = ssh_poll_ms,
		.has_room = ssh_has_room,
		.gpus_wait_text = ssh_gpus_wait_text,
		.gpus_after_wait = ssh_gpus_after_wait,
		.detach = ssh_detach,
		.adopt = ssh_adopt,
		.adoptable = ssh_adoptable,
		.describe = ssh_describe,
		.summarize = ssh_summarize,
		.destroy = ssh_destroy,
		.impl = se,
	};
	return ex;
}
