/* ssh_end.c — how an attempt on an ssh host ends: the status the follow command reports
 * (ssh_job.c reads it), the outputs' tar after the log unpacked here, a dropped connection
 * followed again while the host answers, otherwise the job lost with its host. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "../../../base/untar.h"
#include "ssh_internal.h"
#include "ssh_job.h"

/* Outputs up to this size are unpacked in this process, with no tar started per attempt (a
 * fifth of the local CPU of small tasks in bench/ssh_hosts.py); larger ones by tar beside
 * the scheduler, which a big checkpoint would otherwise hold up. */
#define SSH_UNPACK_INLINE_MAX (16LL << 20)

int ssh_unpack_tar(Remote *rm, const char *dir, int *status)
{
	int fd = open(ssh_stream_path(rm), O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || lseek(fd, (off_t)rm->unpack_at, SEEK_SET) < 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (st.st_size - rm->unpack_at <= SSH_UNPACK_INLINE_MAX) {
		Buf err = {0};
		int rc = untar_fd(fd, dir, &err);
		close(fd);
		if (rc != 0) { /* said as tar would, for the log */
			int errfd = open(rm->err_path, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (errfd >= 0) {
				dprintf(errfd, "tar: %s\n", buf_str(&err));
				close(errfd);
			}
		}
		buf_free(&err);
		*status = rc == 0 ? 0 : 2 << 8; /* as tar's exit 2 reads from waitpid */
		return 2;
	}
	char *argv[] = {"tar", "xf", "-", "--no-same-owner", dir ? "-C" : NULL, (char *)dir, NULL};
	int err = open(rm->err_path, O_WRONLY | O_APPEND | O_CLOEXEC); /* its complaints, for the log */
	OsSpawn spawn = {.argv = argv, .in_fd = fd, .out_fd = -1, .err_fd = err, .new_group = 1};
	pid_t pid;
	rm->pid = os_spawn(&spawn, &pid) == 0 ? pid : -1;
	close(fd);
	if (err >= 0)
		close(err);
	if (rm->pid > 0)
		os_children_watch(rm->pid);
	return rm->pid > 0;
}

void ssh_finished(SshExec *se, Remote *rm, enum JobEnd end, int code, const char *reason)
{
	Buf err = {0};
	if (end == JOB_EXITED && code == 0 && rm->node == 0 && rm->job->task->opts->stays &&
	    place_record_stays(se->cfg.cache, rm->host, rm->job->task, rm->report, &err) != 0) {
		ssh_log_line(rm->job, "kiln: %s\n", buf_str(&err));
		snprintf(rm->job->reason, sizeof rm->job->reason, "%.*s", (int)strcspn(buf_str(&err), "\n"), buf_str(&err));
		reason = rm->job->reason;
		code = 1;
	}
	buf_free(&err);
	SshHost *h = rm->host;
	Job *job = rm->job;
	if (end == JOB_EXITED && code == 0 && rm->node == 0 && !rm->map_outputs) /* its outputs are there too */
		place_made(h, job->task);
	if (end == JOB_LOST && !job->never_started && !job->superseded)
		h->lost++;
	else if (exec_job_done(job, end, code))
		h->ran++; /* as the scheduler records it: one that had finished when a Ctrl-C came too */
	else if (job->interrupted || job->superseded || (rm->gang && rm->signalled)) /* not its failure */
		h->stopped++;
	else
		h->failed++;
	h->gpu_sec += rm->lease->ngpus * (double)(now_mono_ns() - job->started_ns) / 1e9;
	if (end != JOB_LOST || (job->superseded && !h->down)) /* its status is in: the job's directory there may go */
		buf_printf(&h->ended_jobs, " .kiln/jobs/%s", rm->id);
	Gang *g = rm->gang;
	int node = rm->node;
	ssh_release_remote(se, rm);
	if (g) /* one node of several: the job ends with the last */
		ssh_gang_node_ended(se, g, node, h->spec->name, end, code, job->term_signal, reason);
	else
		ssh_end_job(se, job, end, code, reason);
}

/* rm's job is lost with its host (kind 0: the connection dropped and the host does not
 * answer, why says how; 3: the job is gone there; 5: its start never got there, or was
 * stopped there before it began, which is no loss of the host's: the attempt ends as lost,
 * so it runs again as if not started). */
static void lost_with_host(SshExec *se, Remote *rm, int kind, const char *why)
{
	SshHost *h = rm->host;
	char reason[256];
	if (kind == 0) {
		ssh_host_failed(h, why);
		ssh_keep_lost(se, rm); /* it may run on there: a partition, not a reboot */
	}
	if (kind == 5 && rm->report && strstr(rm->report, "KILN-NOSTART slow")) {
		rm->job->never_started = 1; /* stopped before it started anything (ssh_job_follow_script) */
		snprintf(reason, sizeof reason, "its start on host %s was too slow to begin and was stopped before it did",
			 h->spec->name);
	} else if (kind == 5) {
		rm->job->never_started = 1;
		snprintf(reason, sizeof reason, "its start never got to host %s (%s first)", h->spec->name,
			 rm->job->adopted ? "kiln was stopped" : "the connection dropped");
	} else
		snprintf(reason, sizeof reason, "lost with host %s: %s", h->spec->name, kind == 3 ? "its job is gone there" : why);
	ssh_log_line(rm->job, "kiln: %s\n", reason);
	ssh_finished(se, rm, JOB_LOST, -1, reason);
}

void ssh_follow_ended(SshExec *se, Remote *rm, int status)
{
	(void)status;
	int code = 0;
	long long logbytes = 0;
	char why[200];
	free(rm->report);
	int kind = ssh_job_outcome(rm->err_path, rm->job->task, ssh_report_of(rm), &rm->report, &code, &logbytes, why,
				   sizeof why);
	SshHost *h = rm->host;
	if (kind == 1 || kind == 2) /* the copies' listings came first: they are there, whatever the job did */
		place_record(se->cfg.cache, h, &rm->placement, rm->report);
	if (rm->job->superseded) { /* stopped for an earlier job of its task (ssh_stale.c): whatever it did */
		if (kind == 0 || (kind == 3 && !rm->signalled)) /* its stop may not have got there */
			ssh_went_stale(se, h, rm->id, NULL);
		ssh_finished(se, rm, JOB_LOST, -1, rm->job->reason);
		return;
	}
	if ((kind == 1 || kind == 2) && rm->map_outputs) { /* a shard: what it made comes, however it ended */
		if (kind == 1)
			ssh_host_ok(h);
		rm->unpack_at = rm->log_prefix + logbytes;
		int fetch = ssh_map_fetch(se, rm, kind, code);
		if (fetch == 2)
			return; /* unpacked here and now: the attempt has ended */
		if (fetch == 1) {
			rm->phase = PH_FETCH;
			return;
		}
		if (truncate(ssh_stream_path(rm), (off_t)rm->unpack_at) != 0)
			warn("cannot truncate %s", ssh_stream_path(rm));
		ssh_finished(se, rm, JOB_EXITED, code ? code : 1, "cannot start tar to unpack its items' outputs");
		return;
	}
	if (kind == 1) {
		ssh_host_ok(h);
		rm->unpack_at = rm->log_prefix + logbytes; /* where the log ends and the tar begins */
		int no_tar = 0; /* the job's own exit 1 is its own, not tar's */
		if (code == 0 && rm->node == 0 && ssh_job_fetches(rm->job->task)) {
			int unpacked, how = ssh_unpack_tar(rm, NULL, &unpacked);
			if (how == 2) { /* unpacked here and now */
				ssh_unpack_ended(se, rm, unpacked);
				return;
			}
			if (how == 1) {
				rm->phase = PH_FETCH;
				return;
			}
			code = no_tar = 1;
		}
		if (truncate(ssh_stream_path(rm), (off_t)rm->unpack_at) != 0)
			warn("cannot truncate %s", ssh_stream_path(rm));
		ssh_finished(se, rm, JOB_EXITED, code, no_tar ? "cannot start tar to unpack its outputs" : NULL);
	} else if (kind == 2) {
		rm->job->term_signal = rm->signalled ? rm->signalled : SIGKILL;
		ssh_finished(se, rm, JOB_SIGNALED, -1, NULL);
	} else if (kind == 4) { /* it could not be set up there: the host answered why */
		char failed[240];
		ssh_job_complaint(h, "cannot start the task there", rm->report ? rm->report : why, failed, sizeof failed);
		ssh_log_line(rm->job, "kiln: %s\n", failed);
		ssh_finished(se, rm, JOB_EXITED, 1, failed);
	} else if (kind == 3 && rm->signalled) { /* stopped (Ctrl-C, a cancel) before it began, or gone by it */
		rm->job->term_signal = rm->signalled;
		ssh_finished(se, rm, JOB_SIGNALED, -1, NULL);
	} else {
		if (kind == 0 && rm->refollows < 3 && !h->down) { /* down: another stream found it so */
			/* the connection dropped: if the host still answers, the job may run on there. Asked
			 * in the background: a host that drops packets takes ssh's 5 s to say no. So too
			 * for a job told to stop (it may be saving, and kiln ends only once it has: given
			 * up, kiln ended beside it, a retry's start there killing its save); one the stop
			 * never reached gets the SIGKILL at the grace's end, through a connection of its own */
			char *probe_err = xasprintf("%s.probe", rm->err_path);
			int fd = open(probe_err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			free(probe_err);
			rm->pid = fd >= 0 ? ssh_spawn(h, "true", -1, fd) : -1;
			if (fd >= 0)
				close(fd);
			if (rm->pid > 0) {
				snprintf(rm->dropped_why, sizeof rm->dropped_why, "%s", why);
				rm->probing = 1;
				return;
			}
			rm->pid = 0;
		}
		lost_with_host(se, rm, kind, why);
	}
}

void ssh_probe_ended(SshExec *se, Remote *rm, int status)
{
	SshHost *h = rm->host;
	rm->probing = 0;
	char *path = xasprintf("%s.probe", rm->err_path);
	size_t len;
	char *err = read_file(path, &len);
	unlink(path);
	free(path);
	int answers = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!answers) /* with the dropped stream, two failures in a row: it is down */
		ssh_host_failed(h, err && *err ? err : "ssh failed");
	free(err);
	/* what came of this stream goes: the follow sends the whole log (and tar) again */
	if (answers && truncate(ssh_stream_path(rm), (off_t)rm->log_prefix) == 0) {
		ssh_log_line(rm->job, "# kiln: the connection to %s dropped; following the job there again\n", h->spec->name);
		if (ssh_spawn_follow(rm, NULL) == 0) {
			rm->refollows++;
			return;
		}
	}
	lost_with_host(se, rm, 0, rm->dropped_why);
}

/* The outputs' tar was unpacked (or not): the log loses the tar, the attempt ends. */
void ssh_unpack_ended(SshExec *se, Remote *rm, int status)
{
	if (rm->map_outputs) {
		ssh_map_fetch_ended(se, rm, status);
		return;
	}
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (truncate(ssh_stream_path(rm), (off_t)rm->unpack_at) != 0)
		warn("cannot truncate %s", ssh_stream_path(rm));
	if (rc == 0) {
		ssh_finished(se, rm, JOB_EXITED, 0, NULL);
		return;
	}
	/* half-unpacked outputs must not be recorded: they go, and the attempt fails */
	const Task *t = rm->job->task;
	for (int i = 0; i < t->noutputs; i++)
		if (t->outputs[i][0] != '/' && !(t->opts->stays && t->opts->stays[i]))
			remove_tree(t->outputs[i]);
	char reason[96];
	snprintf(reason, sizeof reason, "its outputs could not be unpacked here (tar exit %d: disk full?)", rc);
	size_t len;
	char *text = read_file(rm->err_path, &len), *tar = text ? strstr(text, "tar: ") : NULL;
	ssh_log_line(rm->job, "kiln: %s\n", reason);
	if (tar)
		ssh_log_line(rm->job, "%s", tar);
	free(text);
	ssh_finished(se, rm, JOB_EXITED, 1, reason);
}

