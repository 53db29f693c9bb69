/* ssh_progress.c — the KILN_PROGRESS of jobs on the hosts. A job's file is there
 * (.kiln/jobs/ID/progress, ssh_job.c); every PROGRESS_EVERY_NS, one background ssh per host
 * with jobs running (every PROGRESS_QUIET_NS while none of them writes one) reads the last
 * bytes of each one's, and what it read becomes the
 * attempt's local progress file (beside its log), which the scheduler reads as it reads a
 * local task's. One round trip per host at most that often, through the master connection:
 * a host that stops answering holds up nothing (the reading is taken when it ends). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "../../recipe/logmetrics.h"
#include "ssh_internal.h"

#define PROGRESS_EVERY_NS 3000000000LL
#define PROGRESS_QUIET_NS 15000000000LL /* a host whose jobs wrote none at the last reading */
#define PROGRESS_TAIL 256 /* bytes of a file's end read: its last few "done/total" lines */

/* The next record of a reading (p: where it starts, "\036ID SIZE\n" and the file's last
 * bytes, a first line the read cut left out): its id and text, and where the next begins
 * (end: none), or NULL when none is left. */
static const char *next_record(const char *p, const char *end, char id[48], const char **text, size_t *len)
{
	long long size;
	p = p < end ? memchr(p, '\036', (size_t)(end - p)) : NULL;
	const char *nl = p ? memchr(p, '\n', (size_t)(end - p)) : NULL;
	if (!nl || sscanf(p + 1, "%47s %lld", id, &size) != 2)
		return NULL;
	const char *next = memchr(nl + 1, '\036', (size_t)(end - nl - 1)), *stop = next ? next : end;
	*text = nl + 1, *len = (size_t)(stop - nl - 1);
	if (size > PROGRESS_TAIL) {
		const char *cut = memchr(*text, '\n', *len);
		size_t skip = cut ? (size_t)(cut + 1 - *text) : *len;
		*text += skip, *len -= skip;
	}
	return stop;
}

/* The command that reads the progress files' ends of jobs ids (" ID ID ...") on h. */
static void reading_command(Buf *cmd, const SshHost *h, const char *ids)
{
	ssh_cd_workdir(cmd, h);
	buf_printf(cmd, " && for i in%s; do f=.kiln/jobs/$i/progress; [ -s $f ] && printf '\\036%%s %%s\\n' $i $(wc -c < $f) "
			"&& tail -c %d $f; done; true", ids, PROGRESS_TAIL);
}

/* Job rm's progress file's end, as read there: into its local file when it changed. */
static void progress_take(Remote *rm, const char *text, size_t len)
{
	if (rm->progress_seen && strlen(rm->progress_seen) == len && !memcmp(rm->progress_seen, text, len))
		return;
	free(rm->progress_seen);
	rm->progress_seen = xmalloc(len + 1);
	memcpy(rm->progress_seen, text, len);
	rm->progress_seen[len] = 0;
	write_file_atomic(rm->job->progress_path, text, len); /* read whole or not at all */
}

/* The reading of h's jobs into their local files: 1 if it held any. */
static int progress_spread(SshExec *se, SshHost *h, const Buf *out)
{
	int any = 0;
	char id[48];
	const char *text, *end = out->data + out->len;
	size_t len;
	for (const char *p = out->data; p && (p = next_record(p, end, id, &text, &len)); any = 1)
		for (int i = 0; i < se->nactive; i++) {
			Remote *rm = se->active[i];
			if (rm->host == h && rm->node == 0 && !strcmp(rm->id, id) && rm->job->progress_path)
				progress_take(rm, text, len);
		}
	return any;
}

int ssh_progress_of(const Remote *rm, long long *done, long long *total)
{
	const char *seen = rm->progress_seen;
	return seen && text_last_fraction(seen, strlen(seen), done, total);
}

int ssh_progress_there(SshHost *h, const char *id, long long *done, long long *total)
{
	Buf cmd = {0}, out = {0}, ids = {0};
	buf_printf(&ids, " %s", id);
	reading_command(&cmd, h, buf_str(&ids));
	char got[48];
	const char *text;
	size_t len;
	int found = ssh_run(h, buf_str(&cmd), &out, NULL) == 0 && out.len &&
		    next_record(out.data, out.data + out.len, got, &text, &len) && !strcmp(got, id) &&
		    text_last_fraction(text, len, done, total);
	buf_free(&cmd);
	buf_free(&out);
	buf_free(&ids);
	return found;
}

int ssh_log_progress_of(const Remote *rm, long long *done, long long *total)
{
	size_t len;
	long long from;
	char *tail = rm->job->log_path ? read_file_tail(rm->job->log_path, LOG_PROGRESS_TAIL, &len, &from) : NULL;
	int found = tail && log_progress_in_tail(rm->job->task, tail, len, from == 0, done, total);
	free(tail);
	return found;
}

int ssh_log_progress_there(SshHost *h, const Task *t, const char *id, long long *done, long long *total)
{
	if (!t->opts->log_progress)
		return 0;
	Buf cmd = {0}, out = {0};
	ssh_cd_workdir(&cmd, h); /* its size on a line, then its end */
	buf_printf(&cmd, " && f=.kiln/jobs/%s/log && wc -c < $f && tail -c %d $f", id, LOG_PROGRESS_TAIL);
	char *nl;
	int found = ssh_run(h, buf_str(&cmd), &out, NULL) == 0 && out.len && (nl = memchr(out.data, '\n', out.len)) &&
		    log_progress_in_tail(t, nl + 1, out.len - (size_t)(nl + 1 - out.data),
					 atoll(out.data) <= LOG_PROGRESS_TAIL, done, total);
	buf_free(&cmd);
	buf_free(&out);
	return found;
}

/* Whether rm's job is asked for its progress: started there a while ago (not copying its
 * inputs, not queued at the agent: a short job is never asked); a map shard's progress is
 * its items' (shards.c). When it first may be, in *from_ns. */
static int askable(const Remote *rm, int64_t *from_ns)
{
	*from_ns = rm->job->started_ns + PROGRESS_EVERY_NS;
	return rm->phase == PH_RUN && rm->node == 0 && !rm->map_outputs && rm->agent != 1 && rm->job->progress_path;
}

int ssh_progress_poll_ms(const SshExec *se)
{
	int64_t now = now_mono_ns(), next = -1, from;
	for (int k = 0; k < se->nactive; k++) {
		const Remote *rm = se->active[k];
		const SshHost *h = rm->host;
		if (!askable(rm, &from) || ssh_reader_busy(&h->progress_read) || !h->connected || h->down)
			continue; /* a reading under way wakes the loop as it ends */
		int64_t due = from > h->progress_at_ns ? from : h->progress_at_ns;
		if (next < 0 || due < next)
			next = due;
	}
	return next < 0 ? -1 : next <= now ? 0 : (int)((next - now) / 1000000) + 1;
}

void ssh_progress_poll(SshExec *se)
{
	int64_t now = now_mono_ns();
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (ssh_reader_busy(&h->progress_read)) {
			Buf out = {0};
			int rc = ssh_reader_take(&h->progress_read, &out);
			if (rc == 1) {
				buf_free(&out);
				continue;
			}
			/* none written there by jobs asked twice before: they may write none */
			if ((rc != 0 || !progress_spread(se, h, &out)) && !h->progress_fresh)
				h->progress_at_ns += PROGRESS_QUIET_NS - PROGRESS_EVERY_NS;
			buf_free(&out);
		}
		if (now < h->progress_at_ns || !h->connected || h->down)
			continue;
		Buf ids = {0};
		int fresh = 0;
		for (int k = 0; k < se->nactive; k++) {
			Remote *rm = se->active[k];
			int64_t from;
			if (rm->host == h && askable(rm, &from) && now >= from) {
				buf_printf(&ids, " %s", rm->id);
				fresh |= rm->progress_asked++ < 2;
			}
		}
		h->progress_fresh = fresh;
		if (ids.len) {
			h->progress_at_ns = now + PROGRESS_EVERY_NS;
			Buf cmd = {0};
			reading_command(&cmd, h, buf_str(&ids));
			ssh_reader_ask(h, &h->progress_read, buf_str(&cmd));
			buf_free(&cmd);
		}
		buf_free(&ids);
	}
}
