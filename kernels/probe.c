/* probe.c — `kiln-kernels probe`: what a recipe checks before trusting a server's GPUs.
 * NVML (dlopen, so the probe runs without the toolkit) lists the devices; the CUDA back
 * end, when built, measures copy bandwidth and a matrix-product rate and checks cuDNN and
 * NCCL against plain references. Every part says ok / failed / unavailable and why. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "../base/nvml.h"
#include "kernels.h"
#include "modules.h"


static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, out);
	}
	fputc('"', out);
}

/* Writes "nvml" and "gpus" members; returns the number of GPUs found. */
static int probe_nvml(FILE *out)
{
	Nvml api;
	const char *why;
	if (nvml_load(&api, &why) != 0) {
		fprintf(out, "  \"nvml\": {\"status\": \"unavailable\", \"reason\": ");
		json_string(out, why);
		fprintf(out, "},\n  \"gpus\": [],\n");
		return 0;
	}
	int (*count)(unsigned *) = api.count;
	int (*handle)(unsigned, void **) = api.handle;
	int (*name)(void *, char *, unsigned) = api.name;
	int (*mem)(void *, NvmlMemory *) = api.memory;
	int (*util)(void *, NvmlUtil *) = api.utilization;
	int (*cc)(void *, int *, int *) = api.compute_capability;
	int (*driver)(char *, unsigned) = api.driver_version;
	char version[96] = "?";
	if (driver)
		driver(version, sizeof version);
	fprintf(out, "  \"nvml\": {\"status\": \"ok\", \"driver\": ");
	json_string(out, version);
	fprintf(out, "},\n  \"gpus\": [");
	unsigned n = 0;
	if (count)
		count(&n);
	for (unsigned i = 0; i < n; i++) {
		void *h = NULL;
		char nm[128] = "?";
		NvmlMemory m = {0, 0, 0};
		NvmlUtil u = {0, 0};
		int major = 0, minor = 0, have_util = 0;
		if (handle && handle(i, &h) == 0) {
			if (name)
				name(h, nm, sizeof nm);
			if (mem)
				mem(h, &m);
			have_util = util && util(h, &u) == 0;
			if (cc)
				cc(h, &major, &minor);
		}
		fprintf(out, "%s\n    {\"index\": %u, \"name\": ", i ? "," : "", i);
		json_string(out, nm);
		fprintf(out, ", \"memory_total_mib\": %llu, \"memory_free_mib\": %llu, \"compute_capability\": \"%d.%d\"",
			m.total >> 20, m.free >> 20, major, minor);
		if (have_util)
			fprintf(out, ", \"utilization_gpu\": %u, \"utilization_memory\": %u", u.gpu, u.memory);
		fprintf(out, "}");
	}
	fprintf(out, "%s],\n", n ? "\n  " : "");
	nvml_unload(&api);
	return (int)n;
}

int probe_run(FILE *out)
{
	fprintf(out, "{\n");
	int gpus = probe_nvml(out);
	int cuda_ok = 0;
	char why[512];
	int (*cuda)(FILE *) = (int (*)(FILE *))kk_module_symbol("libkiln-kernels-probe.so", "probe_cuda", why, sizeof why);
	if (cuda) {
		cuda_ok = cuda(out);
	} else {
		fprintf(out, "  \"cuda\": {\"status\": \"unavailable\", \"reason\": \"");
		for (const char *c = why; *c; c++) /* a loader message, as a JSON string */
			fprintf(out, *c == '"' || *c == '\\' ? "\\%c" : (unsigned char)*c < 0x20 ? " " : "%c", *c);
		fprintf(out, "\"},\n");
	}
	int usable = gpus > 0 && cuda_ok;
	fprintf(out, "  \"usable\": %s\n}\n", usable ? "true" : "false");
	return usable;
}
