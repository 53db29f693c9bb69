/* gpu.h — GPU devices and their leases. Devices come from a list (--gpus 0,1,3), from
 * an injected description file (KILN_GPU_INFO, for tests and odd setups), or from NVML
 * loaded with dlopen. A device is leased to one task at a time, and a device whose
 * memory is mostly used by processes kiln did not start is not leased. */
#ifndef KILN_GPU_H
#define KILN_GPU_H

#include "../base/util.h"

typedef struct {
	int id;                   /* the index CUDA_VISIBLE_DEVICES takes (PCI bus order) */
	long long total_mib, used_mib; /* -1 when unknown */
	int leased;               /* 1 while a kiln task holds it */
} Gpu;

typedef struct GpuPool GpuPool;

/* "0,1,3": devices with unknown memory, always considered free of foreign load. */
GpuPool *gpu_pool_from_list(const char *ids, Buf *err);
/* A file of lines "index, memory.total MiB, memory.used MiB" (the format of
 * `nvidia-smi --query-gpu=index,memory.total,memory.used --format=csv,noheader,nounits`),
 * re-read on every refresh. */
GpuPool *gpu_pool_from_file(const char *path, Buf *err);
/* NVML through dlopen("libnvidia-ml.so.1"); an empty pool when NVML is absent. */
GpuPool *gpu_pool_from_nvml(void);
/* Chooses the source: list if given, else $KILN_GPU_INFO, else NVML. NULL + err on a bad list/file. */
GpuPool *gpu_pool_open(const char *list, Buf *err);
void gpu_pool_free(GpuPool *p);

int gpu_count(const GpuPool *p);
const char *gpu_source(const GpuPool *p); /* "--gpus", "KILN_GPU_INFO", "NVML" or "none" */
/* Fraction of memory in foreign use above which a device is not leased (default 0.5). */
void gpu_set_busy_threshold(GpuPool *p, double fraction);
/* Re-reads memory use (file or NVML), at most once per second unless forced. */
void gpu_refresh(GpuPool *p, int force);
/* Leases n free devices with at least min_free_mib free each (0: no minimum): writes
 * their ids to ids and returns 0, or returns -1 and leases nothing. */
int gpu_lease(GpuPool *p, int n, long long min_free_mib, int *ids);
void gpu_release(GpuPool *p, const int *ids, int n);
/* Number of devices currently unusable because of foreign load (for messages). */
int gpu_busy_count(const GpuPool *p);

#endif
