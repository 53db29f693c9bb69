/* gpu.c — device discovery and leasing. NVML is loaded at run time so kiln never links
 * CUDA; a missing driver simply means no devices.
 *
 * Leases are kiln's own, and every kiln on a machine sees the others': a lease of this
 * machine's device also binds an abstract unix socket named for it (no file: a name in the
 * kernel, any user's kiln sees it, gone with the process that holds it), so a device
 * another kiln leased reads as busy here even before its task loads anything. */
#define _GNU_SOURCE
#include "gpu.h"

#include "../../base/hash.h"
#include "../../base/nvml.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../base/util.h"

enum Source { SRC_NONE, SRC_LIST, SRC_FILE, SRC_NVML, SRC_READER };

struct GpuPool {
	Gpu *gpus;
	int n;
	enum Source source;
	char *path;
	char *restrict_to; /* --gpus with readings: only these devices are kept on refresh */
	double busy_fraction, busy_util;
	int64_t refreshed_ns;
	Nvml nvml; /* loaded when the source is NVML */
	int (*reader)(void *ctx, Buf *out); /* SRC_READER: fetches the readings' text */
	void *reader_ctx;
	char claim_scope[40]; /* "" or whose devices: this machine's by NVML, or a readings file's */
};

static GpuPool *pool_new(enum Source source)
{
	GpuPool *p = xcalloc(1, sizeof *p);
	p->source = source;
	p->busy_fraction = 0.5;
	p->busy_util = 0.7;
	return p;
}

/* Binds g's machine-wide name: 1 when this kiln holds it now (or claims are not made: a
 * remote pool, no socket), 0 when another kiln does (g->other_kiln is set). */
static int claim(const GpuPool *p, Gpu *g)
{
	if (!p->claim_scope[0] || g->claim_fd >= 0)
		return 1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "kiln-gpu-lease/%s/%d", p->claim_scope, g->id);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	if (bind(fd, (struct sockaddr *)&a, len) != 0) {
		int busy = errno == EADDRINUSE;
		close(fd);
		g->other_kiln = busy;
		return !busy; /* another error: no claims to be had here, none to respect */
	}
	g->claim_fd = fd;
	g->other_kiln = 0;
	return 1;
}

static void unclaim(Gpu *g)
{
	if (g->claim_fd >= 0)
		close(g->claim_fd);
	g->claim_fd = -1;
}

/* A reading of device id (util < 0: none); a device not seen before is added. */
static void pool_add(GpuPool *p, int id, long long total, long long used, int util)
{
	Gpu *g = NULL;
	for (int i = 0; i < p->n && !g; i++)
		if (p->gpus[i].id == id)
			g = &p->gpus[i];
	if (!g) {
		p->gpus = xrealloc(p->gpus, (size_t)(p->n + 1) * sizeof *p->gpus);
		g = &p->gpus[p->n++];
		*g = (Gpu){.id = id, .claim_fd = -1};
	}
	g->total_mib = total;
	g->used_mib = used;
	if (util >= 0) {
		g->util[g->util_next] = util;
		g->util_next = (g->util_next + 1) % GPU_UTIL_SAMPLES;
		g->nutil += g->nutil < GPU_UTIL_SAMPLES;
	}
}

/* Mean of the recent utilisation readings, in [0, 1]; -1 when there are none. */
static double util_mean(const Gpu *g)
{
	if (!g->nutil)
		return -1;
	int sum = 0;
	for (int i = 0; i < g->nutil; i++)
		sum += g->util[i];
	return sum / 100.0 / g->nutil;
}

GpuPool *gpu_pool_from_list(const char *ids, Buf *err)
{
	GpuPool *p = pool_new(SRC_LIST);
	const char *s = ids;
	while (*s) {
		char *end;
		long id = strtol(s, &end, 10);
		if (end == s || id < 0 || id > 65535 || (*end && *end != ',')) {
			buf_printf(err, "--gpus takes device ids like 0,1,3; got \"%s\"", ids);
			gpu_pool_free(p);
			return NULL;
		}
		pool_add(p, (int)id, -1, -1, -1);
		s = *end ? end + 1 : end;
	}
	return p;
}

/* Parses readings text (nvidia-smi's CSV lines) from `name` into p. */
static int parse_readings(GpuPool *p, const char *text, const char *name, Buf *err)
{
	int lineno = 0, held[64], nheld = 0;
	for (const char *line = text; *line;) {
		size_t n = strcspn(line, "\n");
		char one[256];
		snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one ? n : sizeof one - 1), line);
		line += n + (line[n] == '\n');
		lineno++;
		if (one[strspn(one, " \t\r")] == 0 || one[0] == '#')
			continue;
		if (!strncmp(one, "leased ", 7)) { /* another kiln's job holds these */
			nheld += gpu_parse_list(one + 7, held + nheld, 64 - nheld);
			continue;
		}
		int id, util = -1;
		long long total, used;
		int fields = sscanf(one, " %d , %lld , %lld , %d", &id, &total, &used, &util);
		if (fields < 3 || id < 0 || (fields == 4 && (util < 0 || util > 100))) {
			buf_printf(err, "%s:%d: expected \"index, memory.total, memory.used[, utilization.gpu]\" (MiB, MiB, %%)",
				   name, lineno);
			return -1;
		}
		pool_add(p, id, total, used, fields == 4 ? util : -1);
	}
	for (int i = 0; i < p->n; i++) {
		p->gpus[i].held_there = 0;
		for (int k = 0; k < nheld; k++)
			p->gpus[i].held_there |= p->gpus[i].id == held[k];
	}
	return 0;
}

static int read_info_file(GpuPool *p, Buf *err)
{
	size_t len;
	char *text = read_file(p->path, &len);
	if (!text) {
		buf_printf(err, "cannot read GPU description %s", p->path);
		return -1;
	}
	int rc = parse_readings(p, text, p->path, err);
	free(text);
	return rc;
}

static int read_from_reader(GpuPool *p, Buf *err)
{
	Buf text = {0};
	int rc = p->reader(p->reader_ctx, &text) == 0 ? parse_readings(p, buf_str(&text), p->path, err) : -1;
	if (rc != 0 && !err->len)
		buf_printf(err, "cannot read GPU readings from %s", p->path);
	buf_free(&text);
	return rc;
}

GpuPool *gpu_pool_from_reader(int (*read)(void *ctx, Buf *out), void *ctx, const char *name, Buf *err)
{
	GpuPool *p = pool_new(SRC_READER);
	p->path = xstrdup(name);
	p->reader = read;
	p->reader_ctx = ctx;
	if (read_from_reader(p, err) != 0) {
		gpu_pool_free(p);
		return NULL;
	}
	return p;
}

GpuPool *gpu_pool_from_file(const char *path, Buf *err)
{
	GpuPool *p = pool_new(SRC_FILE);
	p->path = xstrdup(path);
	if (read_info_file(p, err) != 0) {
		gpu_pool_free(p);
		return NULL;
	}
	return p;
}

static void nvml_read(GpuPool *p)
{
	const Nvml *api = &p->nvml;
	unsigned int n = 0;
	if (!api->count || !api->handle || !api->memory || api->count(&n) != 0)
		return;
	for (unsigned int i = 0; i < n; i++) {
		void *h;
		NvmlMemory m;
		NvmlUtil u;
		if (api->handle(i, &h) == 0 && api->memory(h, &m) == 0) {
			int util = api->utilization && api->utilization(h, &u) == 0 ? (int)u.gpu : -1;
			pool_add(p, (int)i, (long long)(m.total >> 20), (long long)(m.used >> 20), util);
		}
	}
}

GpuPool *gpu_pool_from_nvml(void)
{
	GpuPool *p = pool_new(SRC_NONE);
	const char *why;
	if (nvml_load(&p->nvml, &why) != 0)
		return p;
	p->source = SRC_NVML;
	nvml_read(p);
	return p;
}

/* Keeps only the devices of list in p, which has readings; -1 + err when one is unknown. */
static int restrict_pool(GpuPool *p, const char *list, const GpuPool *wanted, const char *flag, Buf *err)
{
	p->restrict_to = xstrdup(list);
	int k = 0;
	for (int i = 0; i < wanted->n; i++) {
		int found = -1;
		for (int j = 0; j < p->n && found < 0; j++)
			if (p->gpus[j].id == wanted->gpus[i].id)
				found = j;
		if (found < 0) {
			buf_printf(err, "%s names device %d, but %s knows no such device", flag, wanted->gpus[i].id,
				   p->source == SRC_NVML ? "NVML" : p->path);
			return -1;
		}
		Gpu g = p->gpus[found];
		p->gpus[found] = p->gpus[k];
		p->gpus[k++] = g;
	}
	p->n = k;
	return 0;
}

int gpu_pool_restrict(GpuPool *p, const char *list, const char *flag, Buf *err)
{
	GpuPool *wanted = gpu_pool_from_list(list, err);
	if (!wanted)
		return -1;
	int rc = restrict_pool(p, list, wanted, flag, err);
	gpu_pool_free(wanted);
	return rc;
}

GpuPool *gpu_pool_open(const char *list, Buf *err)
{
	const char *info = getenv("KILN_GPU_INFO");
	GpuPool *p = info && *info ? gpu_pool_from_file(info, err) : gpu_pool_from_nvml();
	if (p && p->source == SRC_NVML) /* NVML's index: PCI bus order, as every kiln here numbers them */
		snprintf(p->claim_scope, sizeof p->claim_scope, "nvml");
	else if (p && p->source == SRC_FILE) { /* the devices a readings file describes */
		char full[PATH_MAX], hex[33];
		const char *path = realpath(p->path, full) ? full : p->path;
		hash_hex(hash_bytes(path, strlen(path)), hex);
		snprintf(p->claim_scope, sizeof p->claim_scope, "file-%.24s", hex);
	}
	if (!p || !list)
		return p;
	GpuPool *wanted = gpu_pool_from_list(list, err);
	if (!wanted || p->source == SRC_NONE) { /* no readings: the list is all kiln knows */
		gpu_pool_free(p);
		if (wanted)
			wanted->source = SRC_LIST;
		return wanted;
	}
	/* readings exist: keep the listed devices, with their busy test */
	int rc = restrict_pool(p, list, wanted, "--gpus", err);
	gpu_pool_free(wanted);
	if (rc != 0) {
		gpu_pool_free(p);
		return NULL;
	}
	return p;
}

void gpu_pool_free(GpuPool *p)
{
	if (!p)
		return;
	nvml_unload(&p->nvml);
	for (int i = 0; i < p->n; i++)
		unclaim(&p->gpus[i]);
	free(p->gpus);
	free(p->path);
	free(p->restrict_to);
	free(p);
}

int gpu_count(const GpuPool *p) { return p ? p->n : 0; }

int gpu_unleased(const GpuPool *p)
{
	int n = 0;
	for (int i = 0; p && i < p->n; i++)
		n += !p->gpus[i].leased;
	return n;
}

const char *gpu_source(const GpuPool *p)
{
	static const char *names[] = {"none", "--gpus", "KILN_GPU_INFO", "NVML", "nvidia-smi"};
	return p ? names[p->source] : "none";
}

void gpu_set_busy_threshold(GpuPool *p, double mem_fraction, double util_fraction)
{
	p->busy_fraction = mem_fraction;
	p->busy_util = util_fraction;
}

/* Whether the --gpus list (if any) names device id. */
static int allowed(const GpuPool *p, int id)
{
	if (!p->restrict_to)
		return 1;
	for (const char *s = p->restrict_to; *s;) {
		char *end;
		if (strtol(s, &end, 10) == id)
			return 1;
		s = *end ? end + 1 : end;
	}
	return 0;
}

void gpu_refresh(GpuPool *p, int force)
{
	int64_t now = now_mono_ns();
	if (!force && now - p->refreshed_ns < 1000000000LL)
		return;
	p->refreshed_ns = now;
	Buf err = {0};
	if (p->source == SRC_FILE)
		read_info_file(p, &err); /* a bad rewrite keeps the last good values */
	else if (p->source == SRC_NVML)
		nvml_read(p);
	else if (p->source == SRC_READER)
		read_from_reader(p, &err); /* a failed reading keeps the last good values */
	buf_free(&err);
	int k = 0; /* a device the readings add is kept only if --gpus allows it */
	for (int i = 0; i < p->n; i++)
		if (allowed(p, p->gpus[i].id))
			p->gpus[k++] = p->gpus[i];
	p->n = k;
	for (int i = 0; i < p->n; i++) { /* another kiln's lease, taken or let go since */
		Gpu *g = &p->gpus[i];
		if (!g->leased && claim(p, g))
			unclaim(g);
	}
}

enum Busy { NOT_BUSY, BUSY_MEMORY, BUSY_UTIL, BUSY_KILN, BUSY_KILN_THERE };

static enum Busy foreign_busy(const GpuPool *p, const Gpu *g)
{
	/* memory and compute on a leased device are our task's own; only idle devices are judged */
	if (g->leased)
		return NOT_BUSY;
	if (g->other_kiln)
		return BUSY_KILN;
	if (g->held_there)
		return BUSY_KILN_THERE;
	if (g->total_mib > 0 && g->used_mib > g->total_mib * p->busy_fraction)
		return BUSY_MEMORY;
	double u = util_mean(g);
	return u >= 0 && u > p->busy_util ? BUSY_UTIL : NOT_BUSY;
}

/* How busy an unleased device is, for picking the least busy: the larger share. */
static double load(const Gpu *g)
{
	if (g->other_kiln || g->held_there)
		return 1; /* another kiln's task may not have loaded yet */
	double mem = g->total_mib > 0 ? (double)g->used_mib / (double)g->total_mib : 0, u = util_mean(g);
	return u > mem ? u : mem;
}

int gpu_lease_least_busy(GpuPool *p, int n, int *ids)
{
	int picked[64], k = 0;
	while (k < n && k < 64) {
		int best = -1;
		for (int i = 0; i < p->n; i++) {
			int taken = p->gpus[i].leased;
			for (int j = 0; j < k && !taken; j++)
				taken = picked[j] == i;
			if (!taken && (best < 0 || load(&p->gpus[i]) < load(&p->gpus[best])))
				best = i;
		}
		if (best < 0)
			return -1;
		picked[k++] = best;
	}
	for (int i = 0; i < k; i++) {
		p->gpus[picked[i]].leased = 1;
		claim(p, &p->gpus[picked[i]]); /* shared with another kiln's task, if it must */
		ids[i] = p->gpus[picked[i]].id;
	}
	return 0;
}

void gpu_describe(const GpuPool *p, Buf *out)
{
	for (int i = 0; i < p->n; i++) {
		const Gpu *g = &p->gpus[i];
		buf_printf(out, "%sGPU %d ", i ? ", " : "", g->id); /* "GPU 0 leased", never "0 leased" */
		enum Busy b = foreign_busy(p, g);
		if (g->leased)
			buf_puts(out, "leased to another task");
		else if (b == BUSY_MEMORY)
			buf_printf(out, "busy %.0f %% memory", 100.0 * (double)g->used_mib / (double)g->total_mib);
		else if (b == BUSY_UTIL)
			buf_printf(out, "busy %.0f %% util", 100 * util_mean(g));
		else if (b == BUSY_KILN)
			buf_puts(out, "leased by another kiln on this machine");
		else if (b == BUSY_KILN_THERE)
			buf_puts(out, "held by another kiln's job there");
		else
			buf_puts(out, "free");
	}
}

int gpu_lease(GpuPool *p, int n, long long min_free_mib, int *ids)
{
	int picked[64], k = 0;
	for (int i = 0; i < p->n && k < n && k < 64; i++) {
		Gpu *g = &p->gpus[i];
		if (g->leased || foreign_busy(p, g))
			continue;
		if (min_free_mib > 0 && g->total_mib > 0 && g->total_mib - g->used_mib < min_free_mib)
			continue;
		if (!claim(p, g))
			continue; /* another kiln leased it since the last refresh */
		picked[k++] = i;
	}
	if (k < n) {
		for (int i = 0; i < k; i++) /* not enough: leave the others' to them */
			unclaim(&p->gpus[picked[i]]);
		return -1;
	}
	for (int i = 0; i < k; i++) {
		p->gpus[picked[i]].leased = 1;
		ids[i] = p->gpus[picked[i]].id;
	}
	return 0;
}

int gpu_claim_fds(const GpuPool *p, const int *ids, int n, int *fds, int max)
{
	int k = 0;
	for (int i = 0; p && i < n; i++)
		for (int j = 0; j < p->n && k < max; j++)
			if (p->gpus[j].id == ids[i] && p->gpus[j].claim_fd >= 0)
				fds[k++] = p->gpus[j].claim_fd;
	return k;
}

void gpu_lease_ids(GpuPool *p, const int *ids, int n)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < p->n; j++)
			if (p->gpus[j].id == ids[i]) {
				p->gpus[j].leased = 1;
				claim(p, &p->gpus[j]); /* a re-attached attempt's: kiln holds its claim again */
			}
}

void gpu_release(GpuPool *p, const int *ids, int n)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < p->n; i++)
			if (p->gpus[i].id == ids[j]) {
				p->gpus[i].leased = 0;
				unclaim(&p->gpus[i]);
			}
}

int gpu_busy_count(const GpuPool *p)
{
	int busy = 0;
	for (int i = 0; i < p->n; i++)
		busy += foreign_busy(p, &p->gpus[i]) != NOT_BUSY;
	return busy;
}

int gpu_parse_list(const char *list, int *ids, int max)
{
	int n = 0;
	for (const char *s = list; *s && n < max;) {
		char *end;
		ids[n++] = (int)strtol(s, &end, 10);
		s = *end ? end + 1 : end;
	}
	return n;
}
