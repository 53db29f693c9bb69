/* nvml.h — the NVML entry points kiln and kiln-kernels use, declared by hand (no CUDA
 * headers at build time) and looked up with dlopen, so neither links the driver. Header
 * only: kiln-kernels, a separate program, includes it without linking base/. */
#ifndef KILN_NVML_H
#define KILN_NVML_H

#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	unsigned long long total, free, used;
} NvmlMemory;
typedef struct {
	unsigned int gpu, memory; /* percent of the last sample period */
} NvmlUtil;

typedef struct {
	void *lib; /* dlopen handle; NULL: no driver */
	int (*count)(unsigned *);
	int (*handle)(unsigned, void **);
	int (*memory)(void *, NvmlMemory *);
	int (*utilization)(void *, NvmlUtil *);
	int (*name)(void *, char *, unsigned);
	int (*compute_capability)(void *, int *, int *);
	int (*driver_version)(char *, unsigned);
} Nvml;

/* Loads and initialises NVML into api: 0, or -1 with why (a static string) when there is
 * no driver or it does not start. Entry points a driver lacks are NULL. */
static inline int nvml_load(Nvml *api, const char **why)
{
	memset(api, 0, sizeof *api);
	/* no device node, no driver to talk to: a machine without NVIDIA GPUs skips dlopen's
	 * search of every library directory (~50 failed opens on each kiln command). /dev/dxg
	 * is how WSL2 passes GPUs through. */
	if (access("/dev/nvidiactl", F_OK) != 0 && access("/dev/dxg", F_OK) != 0) {
		*why = "no NVIDIA driver (neither /dev/nvidiactl nor /dev/dxg exists)";
		return -1;
	}
	void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	int (*init)(void) = lib ? (int (*)(void))dlsym(lib, "nvmlInit_v2") : NULL;
	if (!lib || !init || init() != 0) {
		*why = lib ? "nvmlInit failed (no driver or no GPU)" : "libnvidia-ml.so.1 not found (no NVIDIA driver)";
		if (lib)
			dlclose(lib);
		return -1;
	}
	api->lib = lib;
	api->count = (int (*)(unsigned *))dlsym(lib, "nvmlDeviceGetCount_v2");
	api->handle = (int (*)(unsigned, void **))dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
	api->memory = (int (*)(void *, NvmlMemory *))dlsym(lib, "nvmlDeviceGetMemoryInfo");
	api->utilization = (int (*)(void *, NvmlUtil *))dlsym(lib, "nvmlDeviceGetUtilizationRates");
	api->name = (int (*)(void *, char *, unsigned))dlsym(lib, "nvmlDeviceGetName");
	api->compute_capability = (int (*)(void *, int *, int *))dlsym(lib, "nvmlDeviceGetCudaComputeCapability");
	api->driver_version = (int (*)(char *, unsigned))dlsym(lib, "nvmlSystemGetDriverVersion");
	return 0;
}

/* Shuts NVML down and unloads it. */
static inline void nvml_unload(Nvml *api)
{
	if (!api->lib)
		return;
	int (*shutdown)(void) = (int (*)(void))dlsym(api->lib, "nvmlShutdown");
	if (shutdown)
		shutdown();
	dlclose(api->lib);
	api->lib = NULL;
}

#endif
