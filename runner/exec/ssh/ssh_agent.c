/* ssh_agent.c — a host's agent (ssh_agent.h): its script, the starts sent to it, and the
 * reader of what it sends back (lines and tars, walked here as they arrive). */
#define _GNU_SOURCE
#include "ssh_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "../../../base/untar.h"

/* Where the reader is in the agent's stdout: a line, a tar's header block, a member's data. */
enum ReadState { AT_LINE, AT_HEADER, AT_DATA };
/* A member of a record's tar: one of an end's own files (under .kiln/) or an output. */
enum Member { M_SKIP, M_EXIT, M_LOG, M_ERR, M_OUTPUT };

/* One job's end in the record being read. */
typedef struct {
	char id[48];
	int outputs;         /* its outputs are in the tar (it exited 0) */
	int has_exit;
	char exit_text[16];
	long long logbytes;
	Buf err;             /* its start's stderr */
} AgentEnd;

typedef struct Agent {
	pid_t pid;           /* the local ssh */
	int in_fd, out_fd;   /* its stdin (we write), its stdout (we read, non-blocking) */
	char id[48];         /* .kiln/agents/ID there */
	Buf queued;          /* start parts of this pass, not yet sent */
	Buf clear, dirs;     /* what they clear and make there: one rm and one mkdir for the pass */
	Buf pending;         /* bytes for its stdin not written yet */
	Buf in;              /* what it sent, not yet read */
	size_t in_off;
	enum ReadState state;
	int zero_blocks;
	long long data_left, member_left;
	enum Member member;
	AgentEnd *ends;      /* the record being read: its ends, in the tar's order */
	int nends, ends_cap;
	int cur;             /* the end whose members are being read, or -1 */
	int up;              /* it said it runs there (its pid is there): its jobs may be handed on */
} Agent;

int ssh_agent_can_carry(const Remote *rm)
{
	static int off = -1;
	if (off < 0) {
		const char *v = getenv("KILN_SSH_AGENT");
		off = v && !strcmp(v, "0");
	}
	const Task *t = rm->job->task;
	if (off || rm->gang || rm->map_outputs || rm->placement.n || rm->host->agent_off)
		return 0;
	for (int i = 0; t->opts->stays && i < t->noutputs; i++)
		if (t->opts->stays[i])
			return 0; /* their hashes are read there at the end: the follow command's report */
	return 1;
}

/* The agent's script: the reporter in the background, then the loop over kiln's batches. */
static char *agent_script(const SshHost *h, const char *id)
{
	Buf b = {0};
	ssh_job_set_dir(&b, h, "-"); /* the functions the start parts use, and the workdir */
	buf_printf(&b, "A=.kiln/agents/%s\n", id);
	/* its pid: a follow command waits for a start this shell has yet to get to (ssh_job.c) */
	/* the FIFO: written on fd 3 by this shell and its jobs (an E at each end), read on fd 5 by
	 * the reporter alone, which holds no write end: once the shell and its jobs are gone (a
	 * connection's drop kills the shell before it writes Q) it reads EOF and ends, not
	 * orphaned there for good */
	buf_puts(&b, "mkdir -p \"$A\" && echo $$ > \"$A/pid\" && mkfifo \"$A/q\" && exec 3<>\"$A/q\" && "
		     "exec 5<\"$A/q\" && rm -f \"$A/q\" || "
		     "{ echo 'kiln: cannot make the agent'\"'\"'s FIFO there' >&2; exit 97; }\n"
		     /* the reporter: at each wake-up, every end appended to A/ends since the last,
		      * in one record (ssh_agent.h) */
		     ": > \"$A/ends\" && exec 4< \"$A/ends\" || exit 97\necho KILN-AGENT\n"
		     "{ exec 3>&-\n"
		     "while read -r w <&5; do\n"
		     "  [ \"$w\" = E ] || break\n"
		     "  set --; ids=\n"
		     "  while IFS=' ' read -r id st <&4; do\n"
		     "    J=.kiln/jobs/$id; set -- \"$@\" \"$A/$id.err\"\n"
		     "    [ -f \"$J/exit\" ] && set -- \"$@\" \"$J/exit\"\n"
		     "    [ -f \"$J/log\" ] && set -- \"$@\" \"$J/log\"\n"
		     "    rc=; read rc 2>/dev/null < \"$J/exit\"; o=0\n"
		     "    [ \"$rc\" = 0 ] && [ -f \"$J/send\" ] && { o=1; . \"$J/send\"; }\n"
		     "    ids=\"$ids $id:$st:$o\"\n"
		     "  done\n"
		     "  [ -n \"$ids\" ] || continue\n"
		     "  echo \"KILN-ENDS$ids\"; tar -b1 -cf - -- \"$@\" 2> \"$A/tar.err\"; echo KILN-SENT\n"
		     "done; } < /dev/null &\n"
		     "exec 5<&- 4<&-\n"
		     /* kiln's batches: each start part in a shell of its own, orphaned at once */
		     "while read -r c n; do\n"
		     "  [ \"$c\" = B ] && head -c \"$n\" > \"$A/b\" || break\n"
		     "  ( . \"$A/b\" )\n"
		     "done\n"
		     "echo Q >&3\n");
	return b.data;
}

static int agent_start(SshExec *se, SshHost *h)
{
	Agent *a = xcalloc(1, sizeof *a);
	snprintf(a->id, sizeof a->id, "%lld-%d", se->cfg.run_id, (int)getpid());
	char *script = agent_script(h, a->id);
	char *err_path = xasprintf("%s/agent-%s.err", se->cfg.state_dir, h->spec->name);
	int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	free(err_path);
	a->pid = ssh_spawn_piped(h, script, err, &a->in_fd, &a->out_fd);
	free(script);
	if (err >= 0)
		close(err);
	if (a->pid <= 0) {
		free(a);
		return -1;
	}
	/* cleared there at the run's end, with those of killed kilns (their shells end with their ssh) */
	if (!strstr(buf_str(&h->ended_jobs), " .kiln/agents"))
		buf_puts(&h->ended_jobs, " .kiln/agents");
	h->agent = a;
	return 0;
}

int ssh_agent_queue(SshExec *se, Remote *rm, const char *start_part)
{
	SshHost *h = rm->host;
	if (!h->agent && agent_start(se, h) != 0) {
		h->agent_off = 1;
		return -1;
	}
	Agent *a = h->agent;
	ssh_job_batch_paths(rm->job, rm->id, &a->clear, &a->dirs);
	/* the batch claims the job (a builtin: at once, in order), so a follow command finds it
	 * claimed or waits while this agent lives; a job claimed already (a cancel) starts
	 * nothing. Then the start part in a shell of its own, which starts the job and waits for
	 * it (setsid sh job.sh, whose own trap then reports its end); until then its EXIT trap
	 * reports a start that ended early (kiln_cannot, a claim lost): "ID STATUS" appended to
	 * A/ends (one short write: whole) and the reporter woken. Its stderr is kept for the
	 * reporter. Without its folder (the batch's mkdir failed) the start part says why */
	buf_printf(&a->queued, "J=.kiln/jobs/%s; kiln_claimed=0; kiln_claim \"$J\" && kiln_claimed=1\n"
			       "if [ $kiln_claimed = 1 ] || [ ! -d \"$J\" ]; then\n"
			       "( trap 'echo \"%s $?\" >> \"$A/ends\"; echo E >&3' EXIT\n%s) < /dev/null > /dev/null 2> \"$A/%s.err\" &\n"
			       "else echo KILN-CLAIMED > \"$A/%s.err\"; echo \"%s 0\" >> \"$A/ends\"; echo E >&3; fi\n",
		   rm->id, rm->id, start_part, rm->id, rm->id, rm->id);
	snprintf(rm->agent_id, sizeof rm->agent_id, "%s", a->id);
	struct stat st; /* the remote log will follow what the local log holds now */
	rm->log_prefix = stat(ssh_stream_path(rm), &st) == 0 ? (long long)st.st_size : 0;
	rm->agent = 1; /* queued */
	return 0;
}

static Remote *agent_remote(SshExec *se, const SshHost *h, const char *id)
{
	for (int i = 0; i < se->nactive; i++) {
		Remote *rm = se->active[i];
		if (rm->host == h && rm->agent && !strcmp(rm->id, id))
			return rm;
	}
	return NULL;
}

static void append_to(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd >= 0) {
		exec_write_all(fd, data, n);
		close(fd);
	}
}

/* One end of a whole record: its attempt ends as a follow command's would have. */
static void end_arrived(SshExec *se, SshHost *h, AgentEnd *e)
{
	Remote *rm = agent_remote(se, h, e->id);
	if (!rm)
		return; /* handed to a follow command, or no longer this run's */
	Buf last = {0};
	buf_puts(&last, buf_str(&e->err));
	if (last.len && last.data[last.len - 1] != '\n')
		buf_putc(&last, '\n');
	if (e->has_exit)
		buf_printf(&last, "KILN-EXIT %d %lld\n%s", atoi(e->exit_text), e->logbytes, e->outputs ? "KILN-SENT\n" : "");
	else if (!strstr(buf_str(&last), "KILN-START-FAILED") && !strstr(buf_str(&last), "KILN-CLAIMED"))
		buf_puts(&last, "KILN-GONE\n"); /* ended without a status: killed */
	int fd = open(rm->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd >= 0) {
		if (write(fd, last.data, last.len) != (ssize_t)last.len)
			warn("cannot write %s", rm->err_path);
		close(fd);
	}
	buf_free(&last);
	rm->agent = 0;
	rm->pid = 0;
	ssh_follow_ended(se, rm, 0);
}

/* "KILN-ENDS ID:STATUS:OUT...": a record's ends; "KILN-SENT": its tar is whole. */
static void read_line(SshExec *se, SshHost *h, Agent *a, char *line)
{
	if (!strncmp(line, "KILN-ENDS ", 10)) {
		a->nends = 0;
		for (char *w = strtok(line + 10, " "); w; w = strtok(NULL, " ")) {
			if (a->nends == a->ends_cap) {
				a->ends = xrealloc(a->ends, (size_t)(a->ends_cap = a->ends_cap ? 2 * a->ends_cap : 8) * sizeof *a->ends);
				memset(a->ends + a->nends, 0, (size_t)(a->ends_cap - a->nends) * sizeof *a->ends);
			}
			AgentEnd *e = &a->ends[a->nends++];
			size_t n = strcspn(w, ":");
			snprintf(e->id, sizeof e->id, "%.*s", (int)n, w);
			const char *o = strrchr(w, ':');
			e->outputs = o && o > w + n && o[1] == '1';
			e->has_exit = 0;
			e->exit_text[0] = 0;
			e->logbytes = 0;
			e->err.len = 0;
			Remote *rm = agent_remote(se, h, e->id);
			struct stat st;
			if (rm) /* the remote log follows what the local log holds now */
				rm->log_prefix = stat(ssh_stream_path(rm), &st) == 0 ? (long long)st.st_size : 0;
		}
		a->state = a->nends ? AT_HEADER : AT_LINE;
		a->zero_blocks = 0;
		a->cur = -1;
	} else if (!strcmp(line, "KILN-AGENT")) {
		a->up = 1;
	} else if (!strcmp(line, "KILN-SENT") && a->nends) {
		int n = a->nends;
		a->nends = 0; /* ended attempts may start others, whose records come later */
		for (int i = 0; i < n; i++)
			end_arrived(se, h, &a->ends[i]);
	}
	/* anything else (a shell's complaint on stdout) is not ours: dropped */
}

/* The end an own member's name belongs to (".kiln/jobs/ID/F" or ".kiln/agents/A/ID.err"). */
static int end_named(const Agent *a, const char *name)
{
	char id[48];
	if (!strncmp(name, ".kiln/jobs/", 11))
		snprintf(id, sizeof id, "%.*s", (int)strcspn(name + 11, "/"), name + 11);
	else if (strrchr(name, '/'))
		snprintf(id, sizeof id, "%.*s", (int)strlen(strrchr(name, '/') + 1) - 4, strrchr(name, '/') + 1);
	else
		return -1;
	for (int i = 0; i < a->nends; i++)
		if (!strcmp(a->ends[i].id, id))
			return i;
	return -1;
}

/* A header block of the record's tar: each end's own files (short names under .kiln/; its
 * stderr first), then its outputs, which go to its local log after its log, as the tar a
 * follow command sends, for ssh_end.c to unpack. */
static void read_header(SshExec *se, SshHost *h, Agent *a, const unsigned char *block)
{
	long long size;
	char type, name[101];
	int kind = untar_header(block, &size, &type, name);
	if (kind == 0) {
		if (++a->zero_blocks == 2) /* the archive's end (one block a record: no padding after) */
			a->state = AT_LINE;
		return;
	}
	if (kind < 0) { /* not a tar after all: lost; the connection's end follows the jobs again */
		a->state = AT_LINE;
		return;
	}
	a->zero_blocks = 0;
	a->member_left = size;
	a->data_left = (size + 511) / 512 * 512;
	size_t n = strlen(name);
	if (!strncmp(name, ".kiln/", 6) && type != 'L' && type != 'K' && type != 'x') {
		a->cur = end_named(a, name);
		a->member = n > 5 && !strcmp(name + n - 5, "/exit") ? M_EXIT
			    : n > 4 && !strcmp(name + n - 4, "/log") ? M_LOG
			    : n > 4 && !strcmp(name + n - 4, ".err") ? M_ERR : M_SKIP;
		if (a->member == M_EXIT && a->cur >= 0)
			a->ends[a->cur].has_exit = 1;
	} else {
		a->member = M_OUTPUT;
		Remote *rm = a->cur >= 0 ? agent_remote(se, h, a->ends[a->cur].id) : NULL;
		if (rm)
			append_to(ssh_stream_path(rm), (const char *)block, 512);
	}
	if (a->data_left)
		a->state = AT_DATA;
}

static void read_data(SshExec *se, SshHost *h, Agent *a, const char *p, size_t n)
{
	AgentEnd *e = a->cur >= 0 ? &a->ends[a->cur] : NULL;
	Remote *rm = e && (a->member == M_OUTPUT || a->member == M_LOG) ? agent_remote(se, h, e->id) : NULL;
	size_t mine = (long long)n < a->member_left ? n : (size_t)a->member_left; /* the rest is padding */
	if (rm && a->member == M_OUTPUT)
		append_to(ssh_stream_path(rm), p, n);
	else if (rm && a->member == M_LOG) {
		append_to(ssh_stream_path(rm), p, mine);
		e->logbytes += (long long)mine;
	} else if (e && a->member == M_EXIT) {
		size_t have = strlen(e->exit_text);
		snprintf(e->exit_text + have, sizeof e->exit_text - have, "%.*s", (int)mine, p);
	} else if (e && a->member == M_ERR && e->err.len < 65536)
		buf_put(&e->err, p, mine);
	a->member_left -= (long long)mine;
	a->data_left -= (long long)n;
	if (!a->data_left)
		a->state = AT_HEADER;
}

/* Whether id's end is in the record being read (its log may be half here). */
static int in_record(const Agent *a, const char *id)
{
	for (int i = 0; i < a->nends; i++)
		if (!strcmp(a->ends[i].id, id))
			return 1;
	return 0;
}

/* Frees what a holds here (its pipes are closed by whoever ends it). */
static void agent_free(Agent *a)
{
	for (int i = 0; i < a->ends_cap; i++)
		buf_free(&a->ends[i].err);
	free(a->ends);
	buf_free(&a->queued);
	buf_free(&a->clear);
	buf_free(&a->dirs);
	buf_free(&a->pending);
	buf_free(&a->in);
	free(a);
}

/* Reads what h's agent sent, ending the attempts whose records are whole: 0 while its
 * stdout is open, -1 at its end. */
static int agent_read(SshExec *se, SshHost *h, Agent *a)
{
	char chunk[65536];
	int open_ = 1;
	for (;;) {
		ssize_t r = read(a->out_fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			open_ = r < 0 && errno == EAGAIN;
			break;
		}
		buf_put(&a->in, chunk, (size_t)r);
		while (a->in_off < a->in.len) {
			char *p = a->in.data + a->in_off;
			size_t left = a->in.len - a->in_off;
			if (a->state == AT_LINE) {
				char *nl = memchr(p, '\n', left);
				if (!nl)
					break;
				*nl = 0;
				a->in_off += (size_t)(nl - p) + 1;
				read_line(se, h, a, p);
			} else if (a->state == AT_HEADER) {
				if (left < 512)
					break;
				a->in_off += 512;
				read_header(se, h, a, (const unsigned char *)p);
			} else {
				size_t n = (long long)left < a->data_left ? left : (size_t)a->data_left;
				a->in_off += n;
				read_data(se, h, a, p, n);
			}
		}
		memmove(a->in.data, a->in.data + a->in_off, a->in.len - a->in_off);
		a->in.len -= a->in_off;
		a->in_off = 0;
	}
	return open_ ? 0 : -1;
}

/* Sends the pass's starts: a batch ("B n") once per pass, as much as the pipe takes now;
 * the attempts in it count as sent (a follow finds their jobs there) once all of it went. */
static void agent_flush(SshExec *se, SshHost *h, Agent *a)
{
	if (a->queued.len) { /* the pass's stale outputs go and its folders are made first, at once */
		Buf batch = {0};
		/* in braces: a batch cut short (kiln killed mid-write; head -c then ends early) is
		 * a syntax error as a whole, and runs nothing */
		buf_printf(&batch, "{\nset --\n%s[ $# = 0 ] || rm -rf -- \"$@\"\nmkdir -p --%s 2>/dev/null\n%s}\n",
			   buf_str(&a->clear), buf_str(&a->dirs), buf_str(&a->queued));
		buf_printf(&a->pending, "B %zu\n", batch.len);
		buf_put(&a->pending, batch.data, batch.len);
		buf_free(&batch);
		a->queued.len = a->clear.len = a->dirs.len = 0;
	}
	size_t done = 0;
	void (*was)(int) = signal(SIGPIPE, SIG_IGN); /* an agent whose ssh ended must not end kiln */
	while (done < a->pending.len) {
		ssize_t w = write(a->in_fd, a->pending.data + done, a->pending.len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* full (EAGAIN): the rest at the next pump; gone (EPIPE): its end says so */
		done += (size_t)w;
	}
	signal(SIGPIPE, was);
	memmove(a->pending.data, a->pending.data + done, a->pending.len - done);
	a->pending.len -= done;
	if (a->pending.len)
		return;
	int64_t now = now_mono_ns();
	for (int i = 0; i < se->nactive; i++)
		if (se->active[i]->host == h && se->active[i]->agent == 1) {
			se->active[i]->agent = 2;
			se->active[i]->agent_sent_ns = now;
		}
}

/* rm's job is followed by a command of its own from now on (a long job, or its agent is
 * gone): its log streams again from the first byte. */
static void follow_alone(SshExec *se, Remote *rm, int dropped)
{
	rm->agent = 0;
	if (truncate(ssh_stream_path(rm), (off_t)rm->log_prefix) != 0 && errno != ENOENT)
		warn("cannot truncate %s", ssh_stream_path(rm));
	if (dropped)
		ssh_log_line(rm->job, "# kiln: the connection to %s dropped; following the job there again\n",
			     rm->host->spec->name);
	if (ssh_spawn_follow(rm, NULL) != 0)
		ssh_finished(se, rm, JOB_LOST, -1, "cannot run ssh to follow the job there");
}

/* h's agent is gone: its sent jobs are followed one by one, its unsent ones start the old
 * way, and the host's later attempts too (this run). */
static void agent_gone(SshExec *se, SshHost *h)
{
	Agent *a = h->agent;
	h->agent = NULL;
	h->agent_off = 1;
	close(a->in_fd);
	close(a->out_fd);
	os_signal(-a->pid, SIGTERM);
	ssh_push_helper(se, a->pid);
	int n = 0;
	Remote **mine = xmalloc((size_t)(se->nactive + 1) * sizeof *mine);
	for (int i = 0; i < se->nactive; i++)
		if (se->active[i]->host == h && se->active[i]->agent)
			mine[n++] = se->active[i];
	for (int i = 0; i < n; i++) {
		struct stat st;
		if (mine[i]->agent == 2) {
			follow_alone(se, mine[i], 1);
		} else {
			mine[i]->agent = 0;
			mine[i]->agent_id[0] = 0;
			if (stat(ssh_stream_path(mine[i]), &st) == 0)
				mine[i]->log_prefix = (long long)st.st_size;
			ssh_start_remote(se, mine[i]);
		}
	}
	free(mine);
	agent_free(a);
}

void ssh_agent_pump(SshExec *se)
{
	int64_t now = now_mono_ns();
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		Agent *a = h->agent;
		if (!a)
			continue;
		agent_flush(se, h, a);
		int status;
		if (agent_read(se, h, a) != 0 || os_children_take(a->pid, &status)) {
			agent_gone(se, h);
			continue;
		}
		/* long jobs: their logs live. Only once the agent runs there: a follow command then
		 * waits for a start it has yet to get to (before, it would find no job yet) */
		for (int k = 0; a->up && k < se->nactive; k++) {
			Remote *rm = se->active[k];
			if (rm->host == h && rm->agent == 2 && now - rm->agent_sent_ns > (int64_t)SSH_AGENT_LIVE_SEC * 1000000000 &&
			    !in_record(a, rm->id)) {
				follow_alone(se, rm, 0);
				k = -1; /* the list may have changed */
			}
		}
	}
}

int ssh_agent_poll_ms(const SshExec *se)
{
	int ms = -1;
	int64_t now = now_mono_ns();
	for (int i = 0; i < se->nhosts; i++) {
		const Agent *a = se->hosts[i].agent;
		if (a && a->queued.len)
			return 0;
		if (a && a->pending.len)
			ms = 10;
	}
	for (int i = 0; i < se->nactive; i++)
		if (se->active[i]->agent == 2 && se->active[i]->host->agent && se->active[i]->host->agent->up) {
			int64_t due = se->active[i]->agent_sent_ns + (int64_t)SSH_AGENT_LIVE_SEC * 1000000000 - now;
			int at = due <= 0 ? 1 : (int)(due / 1000000) + 1;
			if (ms < 0 || at < ms)
				ms = at;
		}
	return ms;
}

void ssh_agent_close_all(SshExec *se)
{
	for (int i = 0; i < se->nhosts; i++) {
		Agent *a = se->hosts[i].agent;
		if (!a)
			continue;
		close(a->in_fd); /* its loop ends; the reporter after the ends it has */
		close(a->out_fd);
		agent_free(a);
		se->hosts[i].agent = NULL;
	}
}
