/* ssh_place.c — inputs follow their tasks to the hosts (ssh_place.h). A host's listing of
 * every recorded copy (size and mtime of each file, as one checksum per path) is read once
 * per run, with one command, the first time a task there needs inputs. */
#define _GNU_SOURCE
#include "ssh_place.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"

/* Workspace inputs only: a path outside the workspace (external{}) must already be at the
 * same place on the host. */
static int placeable(const char *path) { return path[0] != '/'; }

/* The listing script's part for one path: "PATH<TAB>CHECKSUM BYTES". */
static void listing_command(Buf *b, const char *path)
{
	buf_puts(b, "printf '%s\\t' ");
	buf_shell_quote(b, path);
	buf_puts(b, "; find ");
	buf_shell_quote(b, path);
	buf_puts(b, " -printf '%y %s %T@ %P\\n' 2>/dev/null | LC_ALL=C sort | cksum;\n");
}

/* The line of path in a listing text, as "CHECKSUM BYTES" (into out); 0 when absent. */
static int listing_of(const char *text, const char *path, Buf *out)
{
	size_t plen = strlen(path);
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (n > plen && !strncmp(line, path, plen) && line[plen] == '\t') {
			buf_put(out, line + plen + 1, n - plen - 1);
			return 1;
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

static void add_recorded(void *ctx, const char *path, const char *hash)
{
	(void)hash;
	listing_command(ctx, path);
}

/* Reads h's listing of every recorded path, once per run. 0, or 1 when unreachable. */
static int read_listing(Cache *c, SshHost *h, Buf *err)
{
	if (h->listing)
		return 0;
	Buf script = {0}, out = {0}, errout = {0};
	buf_puts(&script, "cd ");
	buf_shell_quote(&script, h->home_workdir);
	buf_puts(&script, " || exit 1\n");
	cache_each_placement(c, h->spec->name, add_recorded, &script);
	int rc = ssh_run(h, buf_str(&script), &out, &errout);
	buf_free(&script);
	if (rc != 0) {
		ssh_host_failed(h, errout.len ? buf_str(&errout) : "cannot list the workdir");
		buf_printf(err, "%s: %s", h->spec->name, h->last_error);
		buf_free(&out);
		buf_free(&errout);
		return 1;
	}
	buf_free(&errout);
	h->listing = out.data ? out.data : xstrdup("");
	return 0;
}

/* Whether h holds input path as it is here (hash: its content hash here). */
static int holds(Cache *c, SshHost *h, const char *path, const char *hash)
{
	Buf rec_hash = {0}, rec_listing = {0}, now = {0};
	int yes = cache_placement_get(c, h->spec->name, path, &rec_hash, &rec_listing) &&
		  !strcmp(buf_str(&rec_hash), hash) && h->listing && listing_of(h->listing, path, &now) &&
		  !strcmp(buf_str(&now), buf_str(&rec_listing));
	buf_free(&rec_hash);
	buf_free(&rec_listing);
	buf_free(&now);
	return yes;
}

int place_affinity(Cache *c, SshHost *h, const Task *t)
{
	int n = 0;
	char hash[33];
	for (int i = 0; i < t->ninputs; i++) {
		if (!placeable(t->inputs[i]) || cache_content_hash(c, t->inputs[i], hash) != 0)
			continue;
		Buf rec_hash = {0}, rec_listing = {0};
		/* the record alone: the listing is read when a task goes there */
		n += cache_placement_get(c, h->spec->name, t->inputs[i], &rec_hash, &rec_listing) &&
		     !strcmp(buf_str(&rec_hash), hash);
		buf_free(&rec_hash);
		buf_free(&rec_listing);
	}
	return n;
}

/* Whether t's command runs one of kiln's tools (kiln-kernels), which then must be there. */
static int uses_tools(const Task *t)
{
	const char *first = t->shell ? t->shell : t->argc ? t->argv[0] : "";
	return strstr(first, "kiln-kernels") != NULL;
}

/* rsync of sources to dest with h's ssh; 0, or the rsync exit status (with its complaint). */
static int rsync(SshHost *h, char **sources, int n, const char *dest, int relative, Buf *err)
{
	char *ssh = ssh_command_text(h);
	char **argv = xmalloc((size_t)(n + 8) * sizeof *argv);
	int k = 0;
	argv[k++] = "rsync";
	argv[k++] = "-a";
	if (relative) { /* -R keeps each path's place in the workspace; --delete mends an edited directory */
		argv[k++] = "-R";
		argv[k++] = "--delete";
	}
	argv[k++] = "-e";
	argv[k++] = ssh;
	for (int i = 0; i < n; i++)
		argv[k++] = sources[i];
	argv[k++] = (char *)dest;
	argv[k] = NULL;
	int rc = ssh_run_local(argv, NULL, err);
	free(argv);
	free(ssh);
	return rc;
}

/* rsync's exit statuses that mean the connection, not the files, failed. */
static int rsync_unreachable(int rc) { return rc == 255 || rc == 12 || rc == 10 || rc == 35 || rc == 30; }

static int place_tools(SshHost *h, Buf *err)
{
	char *dir = xstrdup(exec_self());
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	char *sources[8];
	int n = 0;
	static const char *const tools[] = {"kiln-kernels", "libkiln-kernels-cuda.so", "libkiln-kernels-probe.so",
					    "libkiln-kernels-cudnn.so", "libkiln-kernels-nccl.so"};
	for (int i = 0; i < 5; i++) {
		char *p = xasprintf("%s/%s", dir, tools[i]);
		if (access(p, R_OK) == 0)
			sources[n++] = p;
		else
			free(p);
	}
	free(dir);
	int rc = 0;
	if (n) {
		char *dest = xasprintf("%s:%s/.kiln/bin/", h->spec->address, h->home_workdir);
		rc = rsync(h, sources, n, dest, 0, err);
		free(dest);
	}
	for (int i = 0; i < n; i++)
		free(sources[i]);
	if (rc == 0)
		h->tools_placed = 1;
	return rc;
}

int place_inputs(Cache *c, SshHost *h, const Task *t, int log_fd, Buf *err)
{
	if (uses_tools(t) && !h->tools_placed) {
		int rc = place_tools(h, err);
		if (rc)
			return rsync_unreachable(rc) ? (ssh_host_failed(h, buf_str(err)), 1) : -1;
	}
	int ninputs = 0;
	for (int i = 0; i < t->ninputs; i++)
		ninputs += placeable(t->inputs[i]);
	if (!ninputs)
		return 0;
	if (read_listing(c, h, err))
		return 1;
	char **need = xmalloc((size_t)ninputs * sizeof *need);
	char (*hashes)[33] = xmalloc((size_t)ninputs * sizeof *hashes);
	int n = 0;
	for (int i = 0; i < t->ninputs; i++) {
		const char *p = t->inputs[i];
		if (!placeable(p) || cache_content_hash(c, p, hashes[n]) != 0 || holds(c, h, p, hashes[n]))
			continue;
		need[n++] = (char *)p;
	}
	int rc = 0;
	if (n) {
		char *dest = xasprintf("%s:%s/", h->spec->address, h->home_workdir);
		rc = rsync(h, need, n, dest, 1, err);
		free(dest);
		Buf script = {0}, out = {0}, errout = {0};
		if (rc == 0) {
			buf_puts(&script, "cd ");
			buf_shell_quote(&script, h->home_workdir);
			buf_puts(&script, " || exit 1\n");
			for (int i = 0; i < n; i++)
				listing_command(&script, need[i]);
			if (ssh_run(h, buf_str(&script), &out, &errout) != 0)
				rc = 255;
		}
		for (int i = 0; rc == 0 && i < n; i++) {
			Buf now = {0};
			listing_of(buf_str(&out), need[i], &now);
			cache_placement_put(c, h->spec->name, need[i], hashes[i], buf_str(&now));
			/* this run's view of the host gains the copy (first: it is found before an older line) */
			char *more = xasprintf("%s\t%s\n%s", need[i], buf_str(&now), h->listing);
			free(h->listing);
			h->listing = more;
			if (log_fd >= 0)
				dprintf(log_fd, "# kiln: copied %s to %s\n", need[i], h->spec->name);
			buf_free(&now);
		}
		if (rc && !err->len)
			buf_puts(err, buf_str(&errout));
		buf_free(&script);
		buf_free(&out);
		buf_free(&errout);
	}
	free(need);
	free(hashes);
	if (rc == 0)
		return 0;
	if (rsync_unreachable(rc)) {
		ssh_host_failed(h, buf_str(err));
		return 1;
	}
	return -1;
}

static void count_one(void *ctx, const char *path, const char *hash)
{
	(void)path, (void)hash;
	++*(int *)ctx;
}

int place_count(Cache *c, SshHost *h)
{
	int n = 0;
	cache_each_placement(c, h->spec->name, count_one, &n);
	return n;
}
