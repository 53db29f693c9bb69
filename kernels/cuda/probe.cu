// probe.cu — the CUDA half of `kiln-kernels probe`: driver and runtime versions, a
// device-to-device copy bandwidth, an fp16 matrix-product rate (cuBLAS), a cuDNN
// convolution checked against a plain C loop, and an NCCL all-reduce across the local GPUs
// checked for the right sum. Each part reports ok / failed / unavailable with the reason.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef KILN_HAVE_CUDNN
#include <cudnn.h>
#endif
#ifdef KILN_HAVE_NCCL
#include <nccl.h>
#endif

#include "backend.h"

static void status(FILE *out, const char *part, const char *st, const char *reason, const char *extra)
{
	fprintf(out, "  \"%s\": {\"status\": \"%s\"", part, st);
	if (reason && *reason)
		fprintf(out, ", \"reason\": \"%s\"", reason);
	if (extra && *extra)
		fprintf(out, ", %s", extra);
	fprintf(out, "},\n");
}

static float time_ms(cudaEvent_t a, cudaEvent_t b)
{
	float ms = 0;
	cudaEventElapsedTime(&ms, a, b);
	return ms;
}

static int probe_copy(FILE *out)
{
	size_t bytes = 256u << 20;
	void *a = NULL, *b = NULL;
	cudaEvent_t e0, e1;
	if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
		status(out, "copy", "failed", "cudaMalloc of 2 x 256 MiB failed", NULL);
		cudaFree(a);
		return 0;
	}
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice); // warm-up
	cudaEventRecord(e0);
	for (int i = 0; i < 10; i++)
		cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
	cudaEventRecord(e1);
	cudaEventSynchronize(e1);
	double gbs = 10.0 * 2 * bytes / (time_ms(e0, e1) / 1e3) / 1e9; // read + write
	char extra[96];
	snprintf(extra, sizeof extra, "\"device_copy_gb_s\": %.1f", gbs);
	cudaError_t e = cudaGetLastError();
	status(out, "copy", e == cudaSuccess ? "ok" : "failed", e == cudaSuccess ? NULL : cudaGetErrorString(e), extra);
	cudaFree(a);
	cudaFree(b);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	return e == cudaSuccess;
}

static int probe_matmul(FILE *out)
{
	const int n = 4096;
	__half *a = NULL, *b = NULL, *c = NULL;
	cublasHandle_t h = NULL;
	if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
		status(out, "matmul", "unavailable", "cublasCreate failed", NULL);
		return 0;
	}
	size_t bytes = (size_t)n * n * sizeof(__half);
	if (cudaMalloc(&a, bytes) || cudaMalloc(&b, bytes) || cudaMalloc(&c, bytes)) {
		status(out, "matmul", "failed", "cudaMalloc failed", NULL);
		cudaFree(a), cudaFree(b), cublasDestroy(h);
		return 0;
	}
	cudaMemset(a, 0, bytes);
	cudaMemset(b, 0, bytes);
	float one = 1, zero = 0;
	cudaEvent_t e0, e1;
	cudaEventCreate(&e0);
	cudaEventCreate(&e1);
	cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16F, n, b, CUDA_R_16F, n,
					&zero, c, CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	cudaEventRecord(e0);
	for (int i = 0; i < 10 && s == CUBLAS_STATUS_SUCCESS; i++)
		s = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16F, n, b, CUDA_R_16F, n, &zero, c,
				 CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	cudaEventRecord(e1);
	cudaEventSynchronize(e1);
	char extra[96];
	snprintf(extra, sizeof extra, "\"fp16_tflops\": %.1f", 10.0 * 2.0 * n * n * (double)n / (time_ms(e0, e1) / 1e3) / 1e12);
	status(out, "matmul", s == CUBLAS_STATUS_SUCCESS ? "ok" : "failed", s == CUBLAS_STATUS_SUCCESS ? NULL : "cublasGemmEx failed",
	       extra);
	cudaFree(a), cudaFree(b), cudaFree(c);
	cublasDestroy(h);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	return s == CUBLAS_STATUS_SUCCESS;
}

static int probe_cudnn(FILE *out)
{
#ifndef KILN_HAVE_CUDNN
	status(out, "cudnn", "unavailable", "built without cuDNN", NULL);
	return 1;
#else
	// 2 images, 3 channels, 8x8; 4 filters 3x3, padding 1: check against a C loop
	const int N = 2, C = 3, H = 8, W = 8, K = 4, R = 3;
	float x[N * C * H * W], w[K * C * R * R], y[N * K * H * W], ref[N * K * H * W];
	for (int i = 0; i < N * C * H * W; i++)
		x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
	for (int i = 0; i < K * C * R * R; i++)
		w[i] = (float)((i * 17) % 7) / 7.0f - 0.5f;
	for (int n = 0; n < N; n++)
		for (int k = 0; k < K; k++)
			for (int i = 0; i < H; i++)
				for (int j = 0; j < W; j++) {
					float s = 0;
					for (int c = 0; c < C; c++)
						for (int p = 0; p < R; p++)
							for (int q = 0; q < R; q++) {
								int ii = i + p - 1, jj = j + q - 1;
								if (ii >= 0 && ii < H && jj >= 0 && jj < W)
									s += x[((n * C + c) * H + ii) * W + jj] * w[((k * C + c) * R + p) * R + q];
							}
					ref[((n * K + k) * H + i) * W + j] = s;
				}
	cudnnHandle_t h;
	if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) {
		status(out, "cudnn", "unavailable", "cudnnCreate failed (library or driver missing)", NULL);
		return 0;
	}
	cudnnTensorDescriptor_t xd, yd;
	cudnnFilterDescriptor_t wd;
	cudnnConvolutionDescriptor_t cd;
	cudnnCreateTensorDescriptor(&xd);
	cudnnCreateTensorDescriptor(&yd);
	cudnnCreateFilterDescriptor(&wd);
	cudnnCreateConvolutionDescriptor(&cd);
	cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, C, H, W);
	cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, K, H, W);
	cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, K, C, R, R);
	cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
	float *xg, *wg, *yg;
	cudaMalloc(&xg, sizeof x);
	cudaMalloc(&wg, sizeof w);
	cudaMalloc(&yg, sizeof y);
	cudaMemcpy(xg, x, sizeof x, cudaMemcpyHostToDevice);
	cudaMemcpy(wg, w, sizeof w, cudaMemcpyHostToDevice);
	float one = 1, zero = 0;
	cudnnStatus_t s = cudnnConvolutionForward(h, &one, xd, xg, wd, wg, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
						  NULL, 0, &zero, yd, yg);
	cudaMemcpy(y, yg, sizeof y, cudaMemcpyDeviceToHost);
	double worst = 0;
	for (int i = 0; i < N * K * H * W; i++)
		worst = fmax(worst, fabs(y[i] - ref[i]) / (1e-3 + fabs(ref[i])));
	int ok = s == CUDNN_STATUS_SUCCESS && worst < 1e-2;
	char extra[96], reason[160];
	snprintf(extra, sizeof extra, "\"version\": %zu, \"max_rel_error\": %.2e", cudnnGetVersion(), worst);
	snprintf(reason, sizeof reason, "%s", s != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(s) : "result differs from the C reference");
	status(out, "cudnn", ok ? "ok" : "failed", ok ? NULL : reason, extra);
	cudaFree(xg), cudaFree(wg), cudaFree(yg);
	cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd);
	cudnnDestroyFilterDescriptor(wd), cudnnDestroyConvolutionDescriptor(cd);
	cudnnDestroy(h);
	return ok;
#endif
}

static int probe_nccl(FILE *out, int ndev)
{
#ifndef KILN_HAVE_NCCL
	status(out, "nccl", "unavailable", "built without NCCL", NULL);
	return 1;
#else
	if (ndev > 16)
		ndev = 16;
	ncclComm_t comms[16];
	int devs[16];
	for (int i = 0; i < ndev; i++)
		devs[i] = i;
	ncclResult_t r = ncclCommInitAll(comms, ndev, devs);
	if (r != ncclSuccess) {
		status(out, "nccl", "failed", ncclGetErrorString(r), NULL);
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
	status(out, "nccl", ok ? "ok" : "failed", ok ? NULL : "all-reduce returned a wrong sum", extra);
	return ok;
#endif
}

extern "C" int probe_cuda(FILE *out)
{
	int driver = 0, runtime = 0, n = 0;
	cudaDriverGetVersion(&driver);
	cudaRuntimeGetVersion(&runtime);
	cudaError_t e = cudaGetDeviceCount(&n);
	char extra[160];
	snprintf(extra, sizeof extra, "\"driver_version\": %d, \"runtime_version\": %d, \"devices\": %d", driver, runtime,
		 e == cudaSuccess ? n : 0);
	if (e != cudaSuccess || n == 0) {
		status(out, "cuda", "unavailable", e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device", extra);
		return 0;
	}
	status(out, "cuda", "ok", NULL, extra);
	int ok = probe_copy(out);
	ok &= probe_matmul(out);
	ok &= probe_cudnn(out);
	ok &= probe_nccl(out, n);
	return ok;
}
