/* gpu.h — GPU devices and their leases. Devices and their readings come from an injected
 * description file (KILN_GPU_INFO, for tests and odd setups) or from NVML loaded with
 * dlopen; --gpus 0,1,3 restricts kiln to those devices (and names them when there are no
 * readings). A device is leased to one task at a time, and a device kiln has not leased
 * is busy — not leased — while processes kiln did not start use most of its memory or,
 * averaged over the last few seconds, most of its compute, or while another kiln on this
 * machine has leased it (a claim every kiln here sees: gpu.c). */
#ifndef KILN_GPU_H
#define KILN_GPU_H

#include "../../base/util.h"

#define GPU_UTIL_SAMPLES 5 /* utilisation readings averaged (one per refresh, about a second apart) */

typedef struct {
	int id;                   /* the index CUDA_VISIBLE_DEVICES takes (PCI bus order) */
	long long total_mib, used_mib; /* -1 when unknown */
	int util[GPU_UTIL_SAMPLES]; /* recent utilisation.gpu readings in percent, newest at util_next - 1 */
	int nutil, util_next;
	int leased;               /* 1 while a kiln task holds it */
	int claim_fd;             /* the machine-wide claim of a lease (gpu.c), -1 when none */
	int other_kiln;           /* another kiln on this machine had leased it, when last looked */
	int held_there;           /* another kiln's job holds it, as the last readings' "leased" lines
				   * say (an ssh host's process list: ssh_host.c) */
} Gpu;

typedef struct GpuPool GpuPool;

/* "0,1,3": devices with unknown readings, always considered free of foreign load. */
GpuPool *gpu_pool_from_list(const char *ids, Buf *err);
/* A file of lines "index, memory.total MiB, memory.used MiB[, utilization.gpu %]" (the
 * format of `nvidia-smi --query-gpu=index,memory.total,memory.used,utilization.gpu
 * --format=csv,noheader,nounits`), re-read on every refresh. Lines "leased 0,2" in readings
 * (any source) say another kiln's jobs hold those devices: busy here until a reading without. */
GpuPool *gpu_pool_from_file(const char *path, Buf *err);
/* Readings fetched by read (nvidia-smi's CSV text, as in the file above) on every refresh:
 * another host's devices, read over its connection. name says where they come from. */
GpuPool *gpu_pool_from_reader(int (*read)(void *ctx, Buf *out), void *ctx, const char *name, Buf *err);
/* Keeps only the devices of list ("0,1,3") in a pool with readings; -1 + err (naming flag)
 * when the readings know one of them not. */
int gpu_pool_restrict(GpuPool *p, const char *list, const char *flag, Buf *err);
/* NVML through dlopen("libnvidia-ml.so.1"); an empty pool when NVML is absent. */
GpuPool *gpu_pool_from_nvml(void);
/* The readings come from $KILN_GPU_INFO, else NVML; list (when given) keeps only those
 * devices, and names them when there are no readings. NULL + err on a bad list or file,
 * or a listed device the readings do not know. */
GpuPool *gpu_pool_open(const char *list, Buf *err);
void gpu_pool_free(GpuPool *p);

int gpu_count(const GpuPool *p);
/* Devices no kiln task holds (busy with foreign work or not). */
int gpu_unleased(const GpuPool *p);
const char *gpu_source(const GpuPool *p); /* "--gpus", "KILN_GPU_INFO", "NVML", "nvidia-smi" or "none" */
/* A device kiln has not leased is busy above mem_fraction of its memory used (default 0.5)
 * or util_fraction of compute, averaged over the recent readings (default 0.7). */
void gpu_set_busy_threshold(GpuPool *p, double mem_fraction, double util_fraction);
/* Re-reads memory use (file or NVML), at most once per second unless forced. */
void gpu_refresh(GpuPool *p, int force);
/* Leases n free devices with at least min_free_mib free each (0: no minimum): writes
 * their ids to ids and returns 0, or returns -1 and leases nothing. */
int gpu_lease(GpuPool *p, int n, long long min_free_mib, int *ids);
/* After a bounded wait: leases the n least busy devices kiln has not leased, busy or not
 * (0), or -1 when fewer than n are not leased by kiln. */
int gpu_lease_least_busy(GpuPool *p, int n, int *ids);
/* "GPU 0 leased to another task, GPU 1 busy 79 % util, GPU 2 busy 62 % memory, GPU 3 free"
 * for waiting messages. */
void gpu_describe(const GpuPool *p, Buf *out);
void gpu_release(GpuPool *p, const int *ids, int n);
/* Device ids from a list like "0,3" (CUDA_VISIBLE_DEVICES, a lease's text) into ids, at most
 * max; returns how many. */
int gpu_parse_list(const char *list, int *ids, int max);
/* The fds of the machine-wide claims (gpu.c) of these leased devices, at most max: each
 * process holding a copy keeps the devices leased for every kiln on the machine. */
int gpu_claim_fds(const GpuPool *p, const int *ids, int n, int *fds, int max);
/* Marks these devices leased (a re-attached job holds them). */
void gpu_lease_ids(GpuPool *p, const int *ids, int n);
/* Number of devices currently unusable because of foreign load (for messages). */
int gpu_busy_count(const GpuPool *p);

#endif
