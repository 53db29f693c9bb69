// probe_nccl.cu — the probe's NCCL part (libkiln-kernels-nccl.so, linked with NCCL): an
// all-reduce across the local GPUs, checked for the right sum.
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>

#include "probe_status.h"

extern "C" int kk_probe_nccl(FILE *out, int ndev)
{
	if (ndev > 16)
		ndev = 16;
	ncclComm_t comms[16];
	int devs[16];
	for (int i = 0; i < ndev; i++)
		devs[i] = i;
	ncclResult_t r = ncclCommInitAll(comms, ndev, devs);
	if (r != ncclSuccess) {
		kk_probe_status(out, "nccl", "failed", ncclGetErrorString(r), NULL);
		return 0;
	}
	const size_t count = 1 << 20;
	float *buf[16];
	cudaStream_t st[16];
	for (int i = 0; i < ndev; i++) {
		cudaSetDevice(i);
		cudaStreamCreate(&st[i]);
		cudaMalloc(&buf[i], count * sizeof(float));
		float *host = (float *)malloc(count * sizeof(float));
		for (size_t j = 0; j < count; j++)
			host[j] = (float)(i + 1);
		cudaMemcpy(buf[i], host, count * sizeof(float), cudaMemcpyHostToDevice);
		free(host);
	}
	ncclGroupStart();
	for (int i = 0; i < ndev; i++)
		r = r == ncclSuccess ? ncclAllReduce(buf[i], buf[i], count, ncclFloat, ncclSum, comms[i], st[i]) : r;
	ncclGroupEnd();
	int ok = r == ncclSuccess;
	float want = ndev * (ndev + 1) / 2.0f, *host = (float *)malloc(count * sizeof(float));
	for (int i = 0; i < ndev; i++) {
		cudaSetDevice(i);
		cudaStreamSynchronize(st[i]);
		cudaMemcpy(host, buf[i], count * sizeof(float), cudaMemcpyDeviceToHost);
		for (size_t j = 0; j < count && ok; j++)
			ok = host[j] == want;
		cudaFree(buf[i]);
		cudaStreamDestroy(st[i]);
		ncclCommDestroy(comms[i]);
	}
	free(host);
	cudaSetDevice(0);
	char extra[96];
	snprintf(extra, sizeof extra, "\"ranks\": %d, \"expected_sum\": %.0f", ndev, want);
	kk_probe_status(out, "nccl", ok ? "ok" : "failed", ok ? NULL : "all-reduce returned a wrong sum", extra);
	return ok;
}

