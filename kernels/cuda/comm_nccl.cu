// comm_nccl.cu — `kiln-kernels comm` on GPUs (libkiln-kernels-nccl.so): one NCCL rank per
// visible GPU, driven from this one thread (ncclCommInitAll, every call inside a group), the
// nccl-tests way: each size is checked for the right sum on every rank, then timed as the
// mean of `iters` operations between two synchronisations of every GPU.
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../comm.h"

#define MAX_RANKS 16

namespace {

struct Ranks {
	int n = 0;
	size_t capacity = 0; // floats per buffer
	ncclComm_t comm[MAX_RANKS] = {};
	cudaStream_t stream[MAX_RANKS] = {};
	float *buf[MAX_RANKS] = {};
	float *inbox[MAX_RANKS] = {}; // on GPU 0: what worker w sent (p2p)
};

double now()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__global__ void add_into(float *dst, const float *src, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		dst[i] += src[i];
}

// One operation of pattern p over count floats; the first error's text, or NULL.
const char *run_op(Ranks &R, CommPattern p, size_t count)
{
	ncclResult_t r = ncclSuccess;
#define NCCL_OR_FAIL(call)                                                                                               \
	do {                                                                                                             \
		if (r == ncclSuccess)                                                                                    \
			r = (call);                                                                                      \
	} while (0)
	if (p == COMM_ALLREDUCE) {
		ncclGroupStart();
		for (int i = 0; i < R.n; i++)
			NCCL_OR_FAIL(ncclAllReduce(R.buf[i], R.buf[i], count, ncclFloat, ncclSum, R.comm[i], R.stream[i]));
		ncclGroupEnd();
	} else if (p == COMM_PS) { // the server's sum by a reduce to rank 0, handed back by a broadcast
		ncclGroupStart();
		for (int i = 0; i < R.n; i++)
			NCCL_OR_FAIL(ncclReduce(R.buf[i], R.buf[i], count, ncclFloat, ncclSum, 0, R.comm[i], R.stream[i]));
		ncclGroupEnd();
		ncclGroupStart();
		for (int i = 0; i < R.n; i++)
			NCCL_OR_FAIL(ncclBroadcast(R.buf[i], R.buf[i], count, ncclFloat, 0, R.comm[i], R.stream[i]));
		ncclGroupEnd();
	} else { // every worker sends to rank 0, which sums and sends the sum to each
		ncclGroupStart();
		for (int w = 1; w < R.n; w++) {
			NCCL_OR_FAIL(ncclSend(R.buf[w], count, ncclFloat, 0, R.comm[w], R.stream[w]));
			NCCL_OR_FAIL(ncclRecv(R.inbox[w], count, ncclFloat, w, R.comm[0], R.stream[0]));
		}
		ncclGroupEnd();
		cudaSetDevice(0);
		for (int w = 1; w < R.n; w++)
			add_into<<<264, 256, 0, R.stream[0]>>>(R.buf[0], R.inbox[w], count);
		ncclGroupStart();
		for (int w = 1; w < R.n; w++) {
			NCCL_OR_FAIL(ncclSend(R.buf[0], count, ncclFloat, w, R.comm[0], R.stream[0]));
			NCCL_OR_FAIL(ncclRecv(R.buf[w], count, ncclFloat, 0, R.comm[w], R.stream[w]));
		}
		ncclGroupEnd();
	}
#undef NCCL_OR_FAIL
	if (r != ncclSuccess)
		return ncclGetErrorString(r);
	cudaError_t e = cudaGetLastError();
	return e == cudaSuccess ? NULL : cudaGetErrorString(e);
}

const char *sync_all(Ranks &R)
{
	for (int i = 0; i < R.n; i++) {
		cudaSetDevice(i);
		cudaError_t e = cudaStreamSynchronize(R.stream[i]);
		if (e != cudaSuccess)
			return cudaGetErrorString(e);
	}
	return NULL;
}

void release(Ranks &R)
{
	for (int i = 0; i < R.n; i++) {
		cudaSetDevice(i);
		cudaFree(R.buf[i]);
		cudaFree(R.inbox[i]);
		if (R.stream[i])
			cudaStreamDestroy(R.stream[i]);
		if (R.comm[i])
			ncclCommDestroy(R.comm[i]);
	}
	cudaSetDevice(0);
}

// Fills every rank with its test values, runs one operation and compares; 0 when right.
int check(Ranks &R, CommPattern p, size_t count, float *host, CommResult *res, const char **why)
{
	for (int k = 0; k < R.n; k++) {
		for (size_t i = 0; i < count; i++)
			host[i] = (float)((k + 1) * (int)(i % 7 + 1));
		cudaSetDevice(k);
		cudaMemcpy(R.buf[k], host, count * sizeof(float), cudaMemcpyHostToDevice);
	}
	if ((*why = run_op(R, p, count)) || (*why = sync_all(R)))
		return -1;
	int wrong = 0;
	for (int k = 0; k < R.n; k++) {
		cudaSetDevice(k);
		cudaMemcpy(host, R.buf[k], count * sizeof(float), cudaMemcpyDeviceToHost);
		for (size_t i = 0; i < count && !wrong; i++) {
			float want = (float)((int)(i % 7 + 1) * R.n * (R.n + 1) / 2);
			if (host[i] != want) {
				if (res->correct) // keep the first wrong value
					snprintf(res->check, sizeof res->check, "%s: rank %d element %zu is %g, not %g",
					 comm_pattern_names[p], k, i, host[i], want);
				wrong = 1;
			}
		}
		cudaMemset(R.buf[k], 0, count * sizeof(float)); // zeros stay zeros while timing
	}
	return wrong;
}

} // namespace

extern "C" int kk_comm_nccl(const CommSpec *s, CommResult *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof *res);
	res->device = "cuda";
	int ndev = 0;
	cudaError_t ce = cudaGetDeviceCount(&ndev);
	if (ce != cudaSuccess || ndev < 1) {
		snprintf(err, errlen, "no usable GPU: %s", ce != cudaSuccess ? cudaGetErrorString(ce) : "none visible");
		return -1;
	}
	Ranks R;
	R.n = s->ranks > 0 ? s->ranks : ndev;
	if (R.n > ndev || R.n > MAX_RANKS) {
		snprintf(err, errlen, "--ranks %d: %d GPUs are visible (one rank per GPU, at most %d)", R.n, ndev, MAX_RANKS);
		return -1;
	}
	res->ranks = R.n;
	R.capacity = s->max_bytes / sizeof(float) + 1;
	int devs[MAX_RANKS];
	for (int i = 0; i < R.n; i++)
		devs[i] = i;
	ncclResult_t nr = ncclCommInitAll(R.comm, R.n, devs);
	if (nr != ncclSuccess) {
		snprintf(err, errlen, "ncclCommInitAll over %d GPUs: %s", R.n, ncclGetErrorString(nr));
		return -1;
	}
	for (int i = 0; i < R.n; i++) {
		cudaSetDevice(i);
		if (cudaStreamCreateWithFlags(&R.stream[i], cudaStreamNonBlocking) != cudaSuccess ||
		    cudaMalloc(&R.buf[i], R.capacity * sizeof(float)) != cudaSuccess) {
			snprintf(err, errlen, "cannot allocate %zu bytes on GPU %d", s->max_bytes, i);
			release(R);
			return -1;
		}
	}
	cudaSetDevice(0);
	for (int w = 1; w < R.n; w++)
		if (cudaMalloc(&R.inbox[w], R.capacity * sizeof(float)) != cudaSuccess) {
			snprintf(err, errlen, "cannot allocate rank 0's receive buffers (%d x %zu bytes)", R.n - 1, s->max_bytes);
			release(R);
			return -1;
		}
	float *host = (float *)malloc(R.capacity * sizeof(float));
	res->points = (CommPoint *)calloc((size_t)comm_sizes(s) * COMM_PATTERNS, sizeof *res->points);
	if (!host || !res->points) {
		snprintf(err, errlen, "out of memory");
		free(host);
		release(R);
		comm_result_free(res);
		return -1;
	}
	res->correct = 1;
	snprintf(res->check, sizeof res->check, "every GPU held the exact sum of %d ranks after each pattern", R.n);
	const char *why = NULL;
	for (int p = 0; p < COMM_PATTERNS && !why; p++) {
		if (!s->patterns[p])
			continue;
		for (size_t bytes = s->min_bytes; bytes <= s->max_bytes && !why; bytes *= (size_t)s->factor) {
			size_t count = bytes / sizeof(float) ? bytes / sizeof(float) : 1;
			int wrong = check(R, (CommPattern)p, count, host, res, &why);
			if (wrong < 0)
				break;
			if (wrong)
				res->correct = 0;
			for (int k = 0; k < s->warmup && !why; k++)
				why = run_op(R, (CommPattern)p, count);
			if (why || (why = sync_all(R)))
				break;
			double t0 = now();
			for (int k = 0; k < s->iters && !why; k++)
				why = run_op(R, (CommPattern)p, count);
			if (why || (why = sync_all(R)))
				break;
			CommPoint *pt = &res->points[res->npoints++];
			pt->pattern = (CommPattern)p;
			pt->bytes = count * sizeof(float);
			pt->seconds = (now() - t0) / s->iters;
			pt->algbw = pt->bytes / pt->seconds / 1e9;
			pt->busbw = pt->algbw * comm_bus_factor(pt->pattern, R.n);
			if (s->factor < 2)
				break;
		}
	}
	free(host);
	release(R);
	if (why) {
		snprintf(err, errlen, "NCCL: %s", why);
		comm_result_free(res);
		return -1;
	}
	return 0;
}
