/* gpu.c — device discovery and leasing. NVML is loaded at run time so kiln never links
 * CUDA; a missing driver simply means no devices. */
#define _GNU_SOURCE
#include "gpu.h"

#include "../base/nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/util.h"

enum Source { SRC_NONE, SRC_LIST, SRC_FILE, SRC_NVML };

struct GpuPool {
	Gpu *gpus;
	int n;
	enum Source source;
	char *path;
	double busy_fraction;
	int64_t refreshed_ns;
	Nvml nvml; /* loaded when the source is NVML */
};

static GpuPool *pool_new(enum Source source)
{
	GpuPool *p = xcalloc(1, sizeof *p);
	p->source = source;
	p->busy_fraction = 0.5;
	return p;
}

static void pool_add(GpuPool *p, int id, long long total, long long used)
{
	for (int i = 0; i < p->n; i++)
		if (p->gpus[i].id == id) {
			p->gpus[i].total_mib = total;
			p->gpus[i].used_mib = used;
			return;
		}
	p->gpus = xrealloc(p->gpus, (size_t)(p->n + 1) * sizeof *p->gpus);
	p->gpus[p->n++] = (Gpu){.id = id, .total_mib = total, .used_mib = used};
}

GpuPool *gpu_pool_from_list(const char *ids, Buf *err)
{
	GpuPool *p = pool_new(SRC_LIST);
	const char *s = ids;
	while (*s) {
		char *end;
		long id = strtol(s, &end, 10);
		if (end == s || id < 0 || (*end && *end != ',')) {
			buf_printf(err, "--gpus takes device ids like 0,1,3; got \"%s\"", ids);
			gpu_pool_free(p);
			return NULL;
		}
		pool_add(p, (int)id, -1, -1);
		s = *end ? end + 1 : end;
	}
	return p;
}

static int read_info_file(GpuPool *p, Buf *err)
{
	FILE *f = fopen(p->path, "r");
	if (!f) {
		buf_printf(err, "cannot read GPU description %s", p->path);
		return -1;
	}
	char line[256];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		if (line[strspn(line, " \t\r\n")] == 0 || line[0] == '#')
			continue;
		int id;
		long long total, used;
		if (sscanf(line, " %d , %lld , %lld", &id, &total, &used) != 3 || id < 0) {
			buf_printf(err, "%s:%d: expected \"index, memory.total, memory.used\"", p->path, lineno);
			fclose(f);
			return -1;
		}
		pool_add(p, id, total, used);
	}
	fclose(f);
	return 0;
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
		if (api->handle(i, &h) == 0 && api->memory(h, &m) == 0)
			pool_add(p, (int)i, (long long)(m.total >> 20), (long long)(m.used >> 20));
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

GpuPool *gpu_pool_open(const char *list, Buf *err)
{
	if (list)
		return gpu_pool_from_list(list, err);
	const char *info = getenv("KILN_GPU_INFO");
	if (info && *info)
		return gpu_pool_from_file(info, err);
	return gpu_pool_from_nvml();
}

void gpu_pool_free(GpuPool *p)
{
	if (!p)
		return;
	nvml_unload(&p->nvml);
	free(p->gpus);
	free(p->path);
	free(p);
}

int gpu_count(const GpuPool *p) { return p ? p->n : 0; }

const char *gpu_source(const GpuPool *p)
{
	static const char *names[] = {"none", "--gpus", "KILN_GPU_INFO", "NVML"};
	return p ? names[p->source] : "none";
}

void gpu_set_busy_threshold(GpuPool *p, double fraction) { p->busy_fraction = fraction; }

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
	buf_free(&err);
}

static int foreign_busy(const GpuPool *p, const Gpu *g)
{
	/* memory on a leased device is our task's own; only idle devices are judged */
	return !g->leased && g->total_mib > 0 && g->used_mib > g->total_mib * p->busy_fraction;
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
		picked[k++] = i;
	}
	if (k < n)
		return -1;
	for (int i = 0; i < k; i++) {
		p->gpus[picked[i]].leased = 1;
		ids[i] = p->gpus[picked[i]].id;
	}
	return 0;
}

void gpu_release(GpuPool *p, const int *ids, int n)
{
	for (int j = 0; j < n; j++)
		for (int i = 0; i < p->n; i++)
			if (p->gpus[i].id == ids[j])
				p->gpus[i].leased = 0;
}

int gpu_busy_count(const GpuPool *p)
{
	int busy = 0;
	for (int i = 0; i < p->n; i++)
		busy += foreign_busy(p, &p->gpus[i]);
	return busy;
}
