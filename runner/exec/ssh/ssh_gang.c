/* ssh_gang.c — a torchrun task with nnodes = M on the ssh executor: M hosts leased
 * together (t->opts->gpus devices on each), one launcher per host, the rendezvous on the first
 * host at a port found free there.
 *
 * Each node is an attempt of its own there (a Remote: its copies, its job directory with
 * the same ID, its follow command), started from the same job script with its own
 * devices, KILN_HOST, KILN_NODE_RANK and KILN_NNODES. The first node brings the outputs
 * back and its log is the job's; the others' streams are joined to that log at the end,
 * each under a "# kiln: node K on HOST" line. The job ends once every node has: as the
 * first node ended, unless one failed or was lost first — then the others are stopped and
 * the job ends as that node did (lost with its host: it runs again elsewhere, all nodes
 * together). The attempt's record names the first node's host and devices; its job id
 * names the others ("ID+v801:0,1+v802:0,1"), so a later kiln re-attaches to all of them. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../recipe/launch.h"
#include "../../recipe/torchrun.h"
#include "ssh_internal.h"

int ssh_nodes(const Task *t)
{
	if (t->opts->torchrun && t->opts->torchrun->nnodes > 1)
		return t->opts->torchrun->nnodes;
	return t->opts->rank_nodes > 1 ? t->opts->rank_nodes : 1; /* ranks = N, nnodes = M */
}

/* Sets KEY=value in job's environment (replaced, or appended: the job's list has room). */
static void set_env(Job *job, const char *key, const char *value)
{
	size_t n = strlen(key);
	int i = 0;
	for (; job->env[i]; i++)
		if (!strncmp(job->env[i], key, n) && job->env[i][n] == '=')
			break;
	free(job->env[i]);
	job->env[i] = xasprintf("%s=%s", key, value);
}

void ssh_gang_node_env(Remote *rm)
{
	Job *job = rm->job;
	char text[512];
	if (rm->lease->ngpus) {
		lease_gpus_text(rm->lease, text, sizeof text);
		set_env(job, "CUDA_VISIBLE_DEVICES", text);
	}
	set_env(job, "KILN_HOST", rm->host->spec->name);
	snprintf(text, sizeof text, "%d", rm->node);
	set_env(job, "KILN_NODE_RANK", text);
	if (job->task->opts->torchrun) /* torchrun's --node_rank: its static rendezvous (torchrun.c) */
		set_env(job, "PET_NODE_RANK", text);
	snprintf(text, sizeof text, "%d", rm->gang->n);
	set_env(job, "KILN_NNODES", text);
	if (launch_wraps(job->task)) /* kiln launch: its node's ranks meet the first node's */
		set_env(job, "KILN_HEAD", job->rdzv_host);
}

/* The rendezvous: the first host's own name for itself (the others reach it so) and a port
 * that was free there a moment ago; else its address and the port kiln reserved here. */
static void find_rendezvous(Job *job, SshHost *head)
{
	Buf out = {0};
	const char *python = job->task->opts->torchrun ? job->task->opts->torchrun->python : "python3";
	Buf cmd = {0};
	buf_puts(&cmd, "hostname && ");
	buf_shell_quote(&cmd, python);
	buf_puts(&cmd, " -c 'import socket; s = socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])'");
	char host[64] = "";
	int port = 0;
	if (ssh_run(head, buf_str(&cmd), &out, NULL) == 0 && out.data)
		sscanf(out.data, "%63s %d", host, &port);
	if (!host[0] || port <= 0) {
		const char *at = strchr(head->spec->address, '@');
		snprintf(host, sizeof host, "%s", at ? at + 1 : head->spec->address);
		port = 0;
	}
	snprintf(job->rdzv_host, sizeof job->rdzv_host, "%s", host);
	job->rdzv_port = port;
	buf_free(&cmd);
	buf_free(&out);
}

/* The later node's local files: its ssh stderr and its stream. */
static void node_files(SshExec *se, Remote *rm)
{
	rm->err_path = xasprintf("%s/%s.n%d.err", se->cfg.state_dir, rm->id, rm->node);
	rm->node_log = xasprintf("%s/%s.n%d.log", se->cfg.state_dir, rm->id, rm->node);
	int fd = open(rm->node_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd >= 0)
		close(fd);
}

static Gang *gang_of(Remote *head, int n)
{
	Gang *g = xcalloc(1, sizeof *g);
	g->job = head->job;
	g->n = n;
	g->end = JOB_EXITED;
	g->nodes[0] = head;
	head->gang = g;
	return g;
}

Gang *ssh_gang_new(SshExec *se, Remote *head)
{
	Job *job = head->job;
	Gang *g = gang_of(head, se->nheld);
	find_rendezvous(job, head->host);
	/* kiln launch's --master-port is its last {portK}: the port found free on the first host */
	int last = job->task->opts->ports - 1;
	if (launch_wraps(job->task) && job->rdzv_port > 0 && last >= 0 && last < job->nports)
		job->ports[last] = job->rdzv_port;
	for (int k = 1; k < se->nheld; k++) {
		Remote *rm = ssh_new_remote(se, job, se->held_hosts[k], k);
		rm->gang = g;
		g->nodes[k] = rm;
		rm->lease->ngpus = job->task->opts->gpus;
		memcpy(rm->lease->gpus, se->held_gpus[k], sizeof rm->lease->gpus);
		snprintf(rm->id, sizeof rm->id, "%s", head->id);
		node_files(se, rm);
		char gpus[256];
		lease_gpus_text(rm->lease, gpus, sizeof gpus);
		size_t len = strlen(job->job_id);
		snprintf(job->job_id + len, sizeof job->job_id - len, "+%s:%s", rm->host->spec->name, gpus);
	}
	g->running = g->n;
	return g;
}

void ssh_gang_node_ended(SshExec *se, Gang *g, int node, const char *host, enum JobEnd end, int code,
			 int term_signal, const char *reason)
{
	g->nodes[node] = NULL;
	g->running--;
	int ok = end == JOB_EXITED && code == 0;
	if (!ok && !g->failed) { /* the first failure is the job's; the others are stopped */
		g->failed = 1;
		g->end = end;
		g->code = code;
		g->term_signal = term_signal;
		snprintf(g->reason, sizeof g->reason, "node %d (%s): %s", node, host,
			 reason && *reason ? reason : end == JOB_SIGNALED ? "stopped" : "failed");
		for (int k = 0; k < g->n; k++)
			if (g->nodes[k])
				ssh_signal_remote(se, g->nodes[k], SIGTERM);
	} else if (node == 0 && !g->failed) {
		g->end = end;
		g->code = code;
		snprintf(g->reason, sizeof g->reason, "%s", reason ? reason : "");
	}
	if (g->running > 0)
		return;
	/* every node ended: the later nodes' streams join the job's log, in node order */
	Job *job = g->job;
	char id[48];
	snprintf(id, sizeof id, "%.*s", (int)strcspn(job->job_id, "+"), job->job_id);
	FILE *out = fopen(job->log_path, "a");
	for (int k = 1; k < g->n; k++) {
		char *path = xasprintf("%s/%s.n%d.log", se->cfg.state_dir, id, k);
		size_t len;
		char *text = read_file(path, &len);
		if (out)
			fprintf(out, "# kiln: node %d's log\n%s", k, text ? text : "");
		free(text);
		unlink(path);
		free(path);
	}
	if (out)
		fclose(out);
	job->term_signal = g->term_signal;
	ssh_end_job(se, job, g->end, g->code, g->reason[0] ? g->reason : NULL);
	free(g);
}

void ssh_gang_reattach(SshExec *se, Remote *head, const char *job_id)
{
	int n = 1;
	for (const char *p = job_id; (p = strchr(p, '+')); p++)
		n++;
	if (n > SSH_MAX_NODES)
		n = SSH_MAX_NODES;
	Gang *g = gang_of(head, n);
	g->running = n;
	const char *p = strchr(job_id, '+');
	for (int k = 1; k < n && p; k++, p = strchr(p + 1, '+')) {
		char name[64] = "", gpus[256] = "";
		sscanf(p + 1, "%63[^:+]:%255[^+]", name, gpus);
		SshHost *h = ssh_find_host(se, name);
		Buf err = {0};
		int up = h && ssh_host_connect(h, se->cfg.busy_mem, se->cfg.busy_util, &err) == 0;
		buf_free(&err);
		if (!up) { /* the job cannot go on without it: the others are stopped */
			ssh_gang_node_ended(se, g, k, name, JOB_LOST, -1, 0, "its host is down or gone from hosts{}");
			continue;
		}
		Remote *rm = ssh_new_remote(se, head->job, h, k);
		rm->gang = g;
		g->nodes[k] = rm;
		rm->lease->ngpus = lease_parse_gpus(rm->lease, gpus);
		if (rm->lease->ngpus && h->gpus)
			gpu_lease_ids(h->gpus, rm->lease->gpus, rm->lease->ngpus);
		snprintf(rm->id, sizeof rm->id, "%s", head->id);
		node_files(se, rm);
		if (ssh_spawn_follow(rm, NULL) != 0)
			ssh_finished(se, rm, JOB_LOST, -1, "cannot run ssh to re-attach");
		else if (g->failed) /* an earlier node is gone: this one stops too */
			ssh_signal_remote(se, rm, SIGTERM);
	}
}
