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
#include "ssh_internal.h"

#define PROGRESS_EVERY_NS 3000000000LL
#define PROGRESS_QUIET_NS 15000000000LL /* a host whose jobs wrote none at the last reading */
#define PROGRESS_TAIL 256 /* bytes of a file's end read: its last few "done/total" lines */

/* Job rm's progress file's end, as read there (size: the whole file's): into its local file
 * when it changed, a first line cut by the read left out. */
static void progress_take(Remote *rm, long long size, const char *text, size_t len)
{
	if (size > PROGRESS_TAIL) {
		const char *nl = memchr(text, '\n', len);
		size_t skip = nl ? (size_t)(nl + 1 - text) : len;
		text += skip, len -= skip;
	}
	if (rm->progress_seen && strlen(rm->progress_seen) == len && !memcmp(rm->progress_seen, text, len))
		return;
	free(rm->progress_seen);
	rm->progress_seen = xmalloc(len + 1);
	memcpy(rm->progress_seen, text, len);
	rm->progress_seen[len] = 0;
	char *tmp = xasprintf("%s.tmp", rm->job->progress_path); /* read whole or not at all */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0 && write(fd, text, len) == (ssize_t)len && close(fd) == 0)
		rename(tmp, rm->job->progress_path);
	else if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
}

/* The reading of h's jobs: records "\036ID SIZE\n" then the file's last bytes. 1 if it
 * held any. */
static int progress_spread(SshExec *se, SshHost *h, const Buf *out)
{
	int any = 0;
	const char *p = out->data, *end = out->data + out->len;
	while (p && p < end && (p = memchr(p, '\036', (size_t)(end - p)))) {
		char id[48];
		long long size;
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *next;
		if (!nl || sscanf(p + 1, "%47s %lld", id, &size) != 2)
			break;
		next = memchr(nl + 1, '\036', (size_t)(end - nl - 1));
		const char *stop = next ? next : end;
		for (int i = 0; i < se->nactive; i++) {
			Remote *rm = se->active[i];
			if (rm->host == h && rm->node == 0 && !strcmp(rm->id, id) && rm->job->progress_path)
				progress_take(rm, size, nl + 1, (size_t)(stop - nl - 1));
		}
		any = 1;
		p = next;
	}
	return any;
}

void ssh_progress_poll(SshExec *se)
{
	int64_t now = now_mono_ns();
	for (int i = 0; i < se->nhosts; i++) {
		SshHost *h = &se->hosts[i];
		if (h->progress_read.pid > 0) {
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
			/* a job started there (not copying its inputs, not queued at the agent); a map
			 * shard's progress is its items' (shards.c) */
			if (rm->host == h && rm->phase == PH_RUN && rm->node == 0 && !rm->map_outputs && rm->agent != 1 &&
			    rm->job->progress_path) {
				buf_printf(&ids, " %s", rm->id);
				fresh |= rm->progress_asked++ < 2;
			}
		}
		h->progress_fresh = fresh;
		if (ids.len) {
			h->progress_at_ns = now + PROGRESS_EVERY_NS;
			Buf cmd = {0};
			ssh_cd_workdir(&cmd, h);
			buf_printf(&cmd, " && for i in%s; do f=.kiln/jobs/$i/progress; [ -s $f ] && "
					 "printf '\\036%%s %%s\\n' $i $(wc -c < $f) && tail -c %d $f; done; true",
				   buf_str(&ids), PROGRESS_TAIL);
			h->progress_read = ssh_reader_start(h, buf_str(&cmd));
			buf_free(&cmd);
		}
		buf_free(&ids);
	}
}
