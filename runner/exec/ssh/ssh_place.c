/* ssh_place.c — inputs follow their tasks to the hosts (ssh_place.h). A host's listing of
 * every recorded copy (size and mtime of each file, as one checksum per path) is read once
 * per run: with the host's first contact, or with one command the first time a task there
 * needs inputs. */
#define _GNU_SOURCE
#include "ssh_place.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../recipe/launch.h"
#include "../exec.h"

/* The first line of a pointer file: an output that stays on its host. */
#define POINTER_MAGIC "kiln: this output stays on an ssh host\n"

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

/* The commands listing every path recorded as copied to h (run in its workdir), or NULL
 * when none is. */
static char *listing_commands(Cache *c, SshHost *h)
{
	Buf script = {0};
	cache_each_placement(c, h->spec->name, add_recorded, &script);
	return script.data;
}

/* Reads h's listing of every recorded path, once per run: with its first contact when it
 * could ride there (place_choose), else with a command of its own. 0, or 1 when unreachable. */
static int read_listing(Cache *c, SshHost *h, Buf *err)
{
	if (h->listing)
		return 0;
	char *commands = listing_commands(c, h);
	if (!commands) { /* nothing recorded there: nothing to ask */
		h->listing = xstrdup("");
		return 0;
	}
	Buf script = {0}, out = {0}, errout = {0};
	buf_puts(&script, "cd ");
	buf_shell_quote(&script, h->home_workdir);
	buf_puts(&script, " || exit 1\n");
	buf_puts(&script, commands);
	free(commands);
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

/* A file's identity here: "SIZE:MTIME:INODE", or "" (not a file). */
static void identity(const char *path, char out[64])
{
	struct stat st;
	out[0] = 0;
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
		snprintf(out, 64, "%lld:%lld.%09ld:%llu", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
}

void place_made(SshHost *h, const Task *t)
{
	for (int i = 0; i < t->noutputs; i++) {
		char id[64];
		if (!placeable(t->outputs[i]) || (t->opts->stays && t->opts->stays[i]))
			continue;
		identity(t->outputs[i], id);
		char *slot = strmap_get(&h->made, t->outputs[i]); /* 64 bytes, key and value the map's */
		if (!slot && !id[0])
			continue;
		if (!slot)
			strmap_put(&h->made, xstrdup(t->outputs[i]), slot = xmalloc(64));
		memcpy(slot, id, 64);
	}
}

/* Whether path was made on h this run and its copy here is still the one that came back. */
static int made_there(SshHost *h, const char *path)
{
	const char *made = strmap_get(&h->made, path);
	char now[64];
	if (!made || !made[0])
		return 0;
	identity(path, now);
	return !strcmp(made, now);
}

/* Whether h holds input path as it is here (hash: its content hash here): made there this
 * run, copied there this run, or recorded with the listing it still has. */
static int holds(Cache *c, SshHost *h, const char *path, const char *hash)
{
	if (made_there(h, path))
		return 1;
	const char *copied = strmap_get(&h->copied, path);
	if (copied && !strcmp(copied, hash))
		return 1;
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
		if (!placeable(t->inputs[i]))
			continue;
		if (made_there(h, t->inputs[i])) {
			n++;
			continue;
		}
		if (cache_content_hash(c, t->inputs[i], hash) != 0)
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

/* A copy cut short (a Ctrl-C, a dropped host) keeps what came of the file it was copying, in
 * that file's folder there (rsync excludes it from the copy and from --delete, and removes it
 * once the file is whole): the next copy sends only the rest, not a 20 GB shard again. */
#define RSYNC_PARTIAL "--partial-dir=.kiln-partial"

/* rsync -a of source to dest with h's ssh; 0, or the rsync exit status (with its complaint). */
static int rsync(SshHost *h, char *source, const char *dest, Buf *err)
{
	char *ssh = ssh_command_text(h);
	char *argv[] = {"rsync", "-a", "-e", ssh, source, (char *)dest, NULL};
	int rc = ssh_run_local(argv, NULL, err);
	free(ssh);
	return rc;
}

/* The script's rsync (flags: its options, as shell words) of sources to under/ in h's
 * workdir, with h's ssh. */
static void rsync_line(Buf *b, SshHost *h, const char *flags, char *const *sources, int n, const char *under)
{
	char *ssh = ssh_command_text(h), *dest = xasprintf("%s:%s/%s", h->spec->address, h->home_workdir, under);
	buf_printf(b, "rsync %s -e ", flags);
	buf_shell_quote(b, ssh);
	buf_puts(b, " --");
	for (int i = 0; i < n; i++) {
		buf_putc(b, ' ');
		buf_shell_quote(b, sources[i]);
	}
	buf_putc(b, ' ');
	buf_shell_quote(b, dest);
	free(dest);
	free(ssh);
}

/* rsync's exit statuses that mean the connection, not the files, failed. */
static int rsync_unreachable(int rc) { return rc == 255 || rc == 12 || rc == 10 || rc == 35 || rc == 30; }

/* kiln's tools here that h lacks there (by size and mtime, as the first contact listed them,
 * rsync -a keeping both): their paths into sources (malloc'd, at most 5); how many. */
static int tools_missing(const SshHost *h, char **sources)
{
	char *dir = xstrdup(exec_self());
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	int n = 0, same = 1;
	static const char *const tools[] = {"kiln-kernels", "libkiln-kernels-cuda.so", "libkiln-kernels-probe.so",
					    "libkiln-kernels-cudnn.so", "libkiln-kernels-nccl.so"};
	for (int i = 0; i < 5; i++) {
		char *p = xasprintf("%s/%s", dir, tools[i]), word[160];
		struct stat st;
		if (access(p, R_OK) == 0 && stat(p, &st) == 0) {
			sources[n++] = p;
			snprintf(word, sizeof word, " %s:%lld:%lld ", tools[i], (long long)st.st_size, (long long)st.st_mtime);
			same &= h->tools_there && strstr(h->tools_there, word) != NULL;
		} else {
			free(p);
		}
	}
	free(dir);
	if (same) {
		for (int i = 0; i < n; i++)
			free(sources[i]);
		n = 0;
	}
	return n;
}

/* kiln itself, for a task whose ranks `kiln launch` starts there (it needs only libc and
 * libm: Lua, SQLite and xxHash are linked in); once per run. */
static int place_kiln(SshHost *h, Buf *err)
{
	char *dest = xasprintf("%s:%s/.kiln/bin/kiln", h->spec->address, h->home_workdir);
	int rc = rsync(h, (char *)exec_self(), dest, err);
	free(dest);
	if (rc == 0)
		h->kiln_placed = 1;
	return rc;
}

/* The host named in path's pointer file (into host), or 0 when path is no pointer. */
static int pointer_host(const char *path, char *host, size_t n)
{
	char head[256];
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t len = fread(head, 1, sizeof head - 1, f);
	fclose(f);
	head[len] = 0;
	const char *h;
	if (strncmp(head, POINTER_MAGIC, strlen(POINTER_MAGIC)) || !(h = strstr(head, "\nhost ")))
		return 0;
	h += 6;
	snprintf(host, n, "%.*s", (int)strcspn(h, "\n"), h);
	return 1;
}

/* The script's line that runs cmd and, when it fails, says so with its status. */
static void guarded(Buf *b, const char *what)
{
	buf_printf(b, " || { rc=$?; echo \"KILN-PLACE-FAILED $rc %s\" >&2; exit 1; }\n", what);
}

/* The shell command that copies path from src's workdir to h's, streaming tar through this
 * machine (two connections, nothing stored here). */
static void relay_command(Buf *cmd, SshHost *src, SshHost *h, const char *path)
{
	Buf pack = {0}, unpack = {0};
	buf_puts(&pack, "cd ");
	buf_shell_quote(&pack, src->home_workdir);
	buf_puts(&pack, " && tar cf - ");
	buf_shell_quote(&pack, path);
	buf_puts(&unpack, "cd ");
	buf_shell_quote(&unpack, h->home_workdir);
	buf_puts(&unpack, " && rm -rf -- ");
	buf_shell_quote(&unpack, path);
	buf_puts(&unpack, " && tar xf -");
	char *from = ssh_spawn_text(src, buf_str(&pack)), *to = ssh_spawn_text(h, buf_str(&unpack));
	buf_printf(cmd, "%s | %s", from, to);
	free(from);
	free(to);
	buf_free(&pack);
	buf_free(&unpack);
}

/* Whether src copies to h itself (h is in src's reach list). */
static int reaches(const SshHost *src, const SshHost *h)
{
	for (int i = 0; i < src->spec->nreach; i++)
		if (!strcmp(src->spec->reach[i], h->spec->name))
			return 1;
	return 0;
}

/* The shell command that has src copy path to h itself (rsync there, with h's address and
 * ssh options): no byte through this machine. */
static void direct_command(Buf *cmd, SshHost *src, SshHost *h, const char *path)
{
	Buf e = {0}, remote = {0}, dest = {0};
	buf_puts(&e, "ssh -o BatchMode=yes -o ConnectTimeout=5");
	for (int i = 0; i < h->spec->nssh; i++) {
		buf_putc(&e, ' ');
		buf_shell_quote(&e, h->spec->ssh[i]);
	}
	buf_printf(&dest, "%s:%s/", h->spec->address, h->home_workdir);
	buf_puts(&remote, "cd ");
	buf_shell_quote(&remote, src->home_workdir);
	buf_puts(&remote, " && rsync -a -R --delete " RSYNC_PARTIAL " -e ");
	buf_shell_quote(&remote, buf_str(&e));
	buf_puts(&remote, " -- ");
	buf_shell_quote(&remote, path);
	buf_putc(&remote, ' ');
	buf_shell_quote(&remote, buf_str(&dest));
	char *run = ssh_spawn_text(src, buf_str(&remote));
	buf_puts(cmd, run);
	free(run);
	buf_free(&e);
	buf_free(&remote);
	buf_free(&dest);
}

/* The script's lines that copy path from src to h and say which way it went: directly when
 * src reaches h (through this machine if that fails), else through this machine. */
static void copy_between(Buf *b, SshHost *src, SshHost *h, const char *path)
{
	char what[160];
	snprintf(what, sizeof what, "copying from %.60s", src->spec->name);
	Buf said = {0};
	buf_printf(&said, "# kiln: copied %s from %s to %s", path, src->spec->name, h->spec->name);
	if (reaches(src, h)) {
		buf_puts(b, "if ");
		direct_command(b, src, h, path);
		buf_puts(b, " 2>&3; then echo ");
		Buf line = {0};
		buf_printf(&line, "%s directly", buf_str(&said));
		buf_shell_quote(b, buf_str(&line));
		buf_puts(b, "\nelse ");
		buf_free(&line);
	}
	relay_command(b, src, h, path);
	guarded(b, what);
	Buf line = {0};
	buf_printf(&line, "%s through this machine%s", buf_str(&said), reaches(src, h) ? " (the direct copy failed)" : "");
	buf_puts(b, "echo ");
	buf_shell_quote(b, buf_str(&line));
	buf_puts(b, reaches(src, h) ? "\nfi\n" : "\n");
	buf_free(&line);
	buf_free(&said);
}

void place_stay_script(Buf *b, const Task *t)
{
	for (int i = 0; t->opts->stays && i < t->noutputs; i++) {
		if (!t->opts->stays[i] || t->outputs[i][0] == '/')
			continue;
		const char *p = t->outputs[i];
		/* "KILN-STAY PATH<TAB>SHA256" over its files' hashes and names, "KILN-LIST ..." its listing */
		buf_puts(b, "if [ -e ");
		buf_shell_quote(b, p);
		buf_puts(b, " ]; then { printf 'KILN-STAY %s\\t' ");
		buf_shell_quote(b, p);
		buf_puts(b, "; { find ");
		buf_shell_quote(b, p);
		buf_puts(b, " -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum; } | sha256sum | cut -d' ' -f1; "
			    "printf 'KILN-LIST '; ");
		listing_command(b, p);
		buf_puts(b, "} >&2; else printf 'KILN-MISSING %s\\n' ");
		buf_shell_quote(b, p);
		buf_puts(b, " >&2; fi\n");
	}
}

/* The value after "KILN-<word> PATH<TAB>" in report, into out; 0 when absent. */
static int reported(const char *report, const char *word, const char *path, Buf *out)
{
	Buf key = {0};
	buf_printf(&key, "KILN-%s %s\t", word, path);
	const char *at = report ? strstr(report, buf_str(&key)) : NULL;
	if (at) {
		at += key.len;
		buf_put(out, at, strcspn(at, "\n"));
	}
	buf_free(&key);
	return at != NULL;
}

int place_record_stays(Cache *c, SshHost *h, const Task *t, const char *report, Buf *err)
{
	for (int i = 0; t->opts->stays && i < t->noutputs; i++) {
		if (!t->opts->stays[i] || t->outputs[i][0] == '/')
			continue;
		const char *p = t->outputs[i];
		Buf sha = {0}, listing = {0}, pointer = {0};
		int rc = 0;
		if (!reported(report, "STAY", p, &sha) || !reported(report, "LIST", p, &listing)) {
			buf_printf(err, "exited 0 but did not write its declared output %s (it stays on %s)", p, h->spec->name);
			rc = -1;
		} else {
			buf_printf(&pointer, POINTER_MAGIC "host %s\npath %s\nsha256 %s\n", h->spec->name, p, buf_str(&sha));
			mkdirs_parent(p);
			char hash[33];
			if (write_file_atomic(p, pointer.data, pointer.len) != 0 || cache_content_hash(c, p, hash) != 0) {
				buf_printf(err, "cannot write the pointer file %s", p);
				rc = -1;
			} else {
				cache_placement_put(c, h->spec->name, p, hash, buf_str(&listing));
			}
		}
		buf_free(&sha);
		buf_free(&listing);
		buf_free(&pointer);
		if (rc)
			return rc;
	}
	return 0;
}


int place_prepare(Cache *c, SshHost *h, const Task *t, HostLookup find, void *ctx, Placement *pl, Buf *err)
{
	memset(pl, 0, sizeof *pl);
	if (launch_wraps(t) && !h->kiln_placed) {
		int rc = place_kiln(h, err);
		if (rc)
			return rsync_unreachable(rc) ? (ssh_host_failed(h, buf_str(err)), 1) : -1;
	}
	return place_prepare_paths(c, h, (const char *const *)t->inputs, t->ninputs, NULL, 0, find, ctx, pl, err);
}

int place_prepare_paths(Cache *c, SshHost *h, const char *const *inputs, int count, const char *const *extra,
			int nextra, HostLookup find, void *ctx, Placement *pl, Buf *err)
{
	memset(pl, 0, sizeof *pl);
	/* kiln's tools go to every host once per run, with its first attempt's copies: a command
	 * may name kiln-kernels in any word (env, nice, timeout, sh -c, srun) or from its own
	 * scripts. In that step, not before it: a run over dozens of hosts copies to them all at
	 * once rather than one after the other while no host starts anything */
	char *tools[5];
	int ntools = h->tools_placed ? 0 : tools_missing(h, tools);
	if (!h->tools_placed && !ntools)
		h->tools_placed = 1; /* there as they are here */
	int ninputs = 0;
	for (int i = 0; i < count; i++)
		ninputs += placeable(inputs[i]);
	if (ntools) {
		buf_puts(&pl->script, "set -o pipefail\nexec 3>&1\n");
		rsync_line(&pl->script, h, "-a", tools, ntools, ".kiln/bin/");
		for (int i = 0; i < ntools; i++)
			free(tools[i]);
		guarded(&pl->script, "copying kiln's tools");
		pl->tools = 1;
	}
	if (!ninputs && !nextra)
		return 0;
	if (ninputs && read_listing(c, h, err))
		return 1;
	pl->paths = xmalloc(((size_t)ninputs + 1) * sizeof *pl->paths);
	pl->hashes = xmalloc(((size_t)ninputs + 1) * sizeof *pl->hashes);
	pl->origins = xcalloc((size_t)ninputs + 1, sizeof *pl->origins);
	char **from_here = xmalloc(((size_t)ninputs + (size_t)nextra + 1) * sizeof *from_here);
	int nhere = 0, rc = 0;
	Buf relays = {0};
	for (int i = 0; i < count && rc == 0; i++) {
		const char *p = inputs[i];
		char hash[33], origin[64];
		if (!placeable(p) || cache_content_hash(c, p, hash) != 0 || holds(c, h, p, hash))
			continue;
		if (pointer_host(p, origin, sizeof origin)) { /* it stays on another host: from there */
			SshHost *src = find(ctx, origin);
			if (src == h || !src) {
				buf_printf(err, "%s stays on host %s, which %s: run the task that makes it again (kiln run --force "
						"TASK)", p, origin, src ? "no longer holds it as it was made" : "hosts{} does not name");
				rc = -1;
				break;
			}
			if (ssh_host_connect(src, 0.5, 0.7, err) != 0) {
				rc = 2; /* src's failure is counted by the connect */
				break;
			}
			copy_between(&relays, src, h, p);
			snprintf(pl->origins[pl->n], sizeof pl->origins[pl->n], "%s", origin);
		} else {
			from_here[nhere++] = (char *)p;
		}
		memcpy(pl->hashes[pl->n], hash, 33);
		pl->paths[pl->n++] = (char *)p;
	}
	for (int i = 0; i < nextra; i++) /* copied, never recorded: this attempt's own files */
		from_here[nhere++] = (char *)extra[i];
	if (rc == 0 && nhere + pl->n) {
		/* bash for pipefail: a relay fails when either end does; a direct copy's complaints
		 * (3) go to the log, the relay follows */
		if (!pl->tools)
			buf_puts(&pl->script, "set -o pipefail\nexec 3>&1\n");
		if (nhere) { /* -R keeps each path's place in the workspace; --delete mends an edited directory */
			rsync_line(&pl->script, h, "-a -R --delete " RSYNC_PARTIAL, from_here, nhere, "");
			guarded(&pl->script, "copying from here");
		}
		buf_puts(&pl->script, buf_str(&relays));
	}
	buf_free(&relays);
	free(from_here);
	if (rc != 0) {
		place_free(pl);
		return rc == 2 ? 1 : rc;
	}
	return 0;
}

int place_failed_unreachable(const char *report)
{
	const char *w = report ? strstr(report, "KILN-PLACE-FAILED ") : NULL;
	return w && rsync_unreachable(atoi(w + 18));
}

void place_listing_script(Buf *b, const Placement *pl)
{
	for (int i = 0; i < pl->n; i++) {
		buf_puts(b, "{ printf 'KILN-LIST '; ");
		listing_command(b, pl->paths[i]);
		buf_puts(b, "} >&2\n");
	}
}

void place_copied(SshHost *h, const Placement *pl, int log_fd)
{
	if (pl->tools)
		h->tools_placed = 1;
	for (int i = 0; i < pl->n; i++) {
		char *old = strmap_get(&h->copied, pl->paths[i]);
		if (old)
			memcpy(old, pl->hashes[i], 33);
		else
			strmap_put(&h->copied, xstrdup(pl->paths[i]), xstrdup(pl->hashes[i]));
		if (log_fd >= 0 && !pl->origins[i][0]) /* from another host: the copy's script said which way */
			dprintf(log_fd, "# kiln: copied %s to %s\n", pl->paths[i], h->spec->name);
	}
}

void place_record(Cache *c, SshHost *h, const Placement *pl, const char *report)
{
	for (int i = 0; i < pl->n; i++) {
		Buf listing = {0};
		if (reported(report, "LIST", pl->paths[i], &listing)) {
			cache_placement_put(c, h->spec->name, pl->paths[i], pl->hashes[i], buf_str(&listing));
			char *more = xasprintf("%s\t%s\n%s", pl->paths[i], buf_str(&listing), h->listing ? h->listing : "");
			free(h->listing); /* this run's view (first: it is found before an older line) */
			h->listing = more;
		}
		buf_free(&listing);
	}
}

int place_in_flight(const SshHost *h, const Task *t)
{
	if (h->tools_in_flight)
		return 1; /* one copy of them per host: its next attempts wait the moment it takes */
	for (int i = 0; i < t->ninputs; i++) {
		const int *copies = strmap_get(&h->in_flight, t->inputs[i]);
		if (copies && *copies > 0)
			return 1;
	}
	return 0;
}

void place_flight(SshHost *h, const Placement *pl, int delta)
{
	if (pl->tools)
		h->tools_in_flight += delta;
	for (int i = 0; i < pl->n; i++) {
		int *copies = strmap_get(&h->in_flight, pl->paths[i]);
		if (!copies) { /* key and count owned by the map */
			copies = xcalloc(1, sizeof *copies);
			strmap_put(&h->in_flight, xstrdup(pl->paths[i]), copies);
		}
		*copies += delta;
	}
}

void place_free(Placement *pl)
{
	buf_free(&pl->script);
	free(pl->paths);
	free(pl->hashes);
	free(pl->origins);
	memset(pl, 0, sizeof *pl);
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

int place_has_slot(const SshHost *h, const Task *t)
{
	if (h->free_jobs < 1 || ssh_host_task_cpus(t, h) > h->free_cpus || (h->mem_mib && t->opts->mem_mib > h->free_mem))
		return 0;
	return !place_in_flight(h, t); /* an input of its is being copied there: after that, not beside it */
}

int place_fits(SshHost *h, const Task *t, int *ids)
{
	if (!place_has_slot(h, t))
		return 0;
	if (t->opts->gpus == 0)
		return 1;
	if (!h->gpus || gpu_unleased(h->gpus) < t->opts->gpus)
		return 0; /* whatever the readings say: no reading is asked for */
	gpu_refresh(h->gpus, 0);
	return gpu_lease(h->gpus, t->opts->gpus, t->opts->gpu_mem_mib, ids) == 0;
}

SshHost *place_home(Cache *c, SshHost *hosts, int n, const Task *t, int node)
{
	char names[128];
	if (!cache_resume_host(c, t, names))
		return NULL;
	const char *name = names;
	for (int k = 0; k < node && name; k++)
		name = strchr(name, '+') ? strchr(name, '+') + 1 : NULL;
	for (int i = 0; name && i < n; i++)
		if (strlen(hosts[i].spec->name) == strcspn(name, "+") && !strncmp(hosts[i].spec->name, name, strcspn(name, "+")))
			return &hosts[i];
	return NULL;
}

SshHost *place_choose(Cache *c, SshHost *hosts, int n, const Task *t, double busy_mem, double busy_util,
		      int *reachable, int *big_enough)
{
	SshHost *best = NULL;
	int best_score = -1, ids[64], nnew = 0;
	SshHost **fresh = xmalloc(((size_t)n + 1) * sizeof *fresh);
	for (int i = 0; i < n; i++) /* hosts not contacted yet this run: all at once */
		if (!hosts[i].chosen && !hosts[i].connected && !hosts[i].down && !hosts[i].probe_pid &&
		    ssh_host_allows(&hosts[i], t)) {
			fresh[nnew++] = &hosts[i];
			if (!hosts[i].listing && !hosts[i].listing_script) /* read with the contact, side by side */
				hosts[i].listing_script = listing_commands(c, &hosts[i]);
		}
	if (nnew > 1)
		ssh_hosts_connect(fresh, nnew, busy_mem, busy_util);
	free(fresh);
	for (int i = 0; i < n; i++) {
		SshHost *h = &hosts[i];
		if (h->chosen || !ssh_host_allows(h, t))
			continue;
		Buf err = {0};
		int up = ssh_host_connect(h, busy_mem, busy_util, &err) == 0;
		buf_free(&err);
		if (!up)
			continue;
		++*reachable;
		*big_enough += t->opts->gpus <= gpu_count(h->gpus);
		if (!place_fits(h, t, ids))
			continue;
		if (t->opts->gpus)
			gpu_release(h->gpus, ids, t->opts->gpus); /* leased again on the host chosen */
		/* the host holding most of its inputs first, then the one with most room */
		int score = place_affinity(c, h, t) * 100000 + h->free_jobs;
		if (score > best_score) {
			best = h;
			best_score = score;
		}
	}
	return best;
}
