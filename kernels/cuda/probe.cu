// probe.cu — the CUDA half of `kiln-kernels probe` (libkiln-kernels-probe.so: the CUDA
// runtime and cuBLAS): driver and runtime versions, a device-to-device copy bandwidth, an
// fp16 matrix-product rate (cuBLAS), then the cuDNN and NCCL parts from modules of their
// own (probe_cudnn.cu, probe_nccl.cu), so a missing library is reported, not fatal. Each
// part reports ok / failed / unavailable with the reason.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../modules.h"
#include "backend.h"
#include "probe_status.h"

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
		kk_probe_status(out, "copy", "failed", "cudaMalloc of 2 x 256 MiB failed", NULL);
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
	kk_probe_status(out, "copy", e == cudaSuccess ? "ok" : "failed", e == cudaSuccess ? NULL : cudaGetErrorString(e), extra);
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
		kk_probe_status(out, "matmul", "unavailable", "cublasCreate failed", NULL);
		return 0;
	}
	size_t bytes = (size_t)n * n * sizeof(__half);
	if (cudaMalloc(&a, bytes) || cudaMalloc(&b, bytes) || cudaMalloc(&c, bytes)) {
		kk_probe_status(out, "matmul", "failed", "cudaMalloc failed", NULL);
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
	kk_probe_status(out, "matmul", s == CUBLAS_STATUS_SUCCESS ? "ok" : "failed", s == CUBLAS_STATUS_SUCCESS ? NULL : "cublasGemmEx failed",
	       extra);
	cudaFree(a), cudaFree(b), cudaFree(c);
	cublasDestroy(h);
	cudaEventDestroy(e0);
	cudaEventDestroy(e1);
	return s == CUBLAS_STATUS_SUCCESS;
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
		kk_probe_status(out, "cuda", "unavailable", e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device", extra);
		return 0;
	}
	kk_probe_status(out, "cuda", "ok", NULL, extra);
	int ok = probe_copy(out);
	ok &= probe_matmul(out);
	char why[512];
	typedef int (*CudnnFn)(FILE *);
	typedef int (*NcclFn)(FILE *, int);
	CudnnFn cudnn = (CudnnFn)kk_module_symbol("libkiln-kernels-cudnn.so", "kk_probe_cudnn", why, sizeof why);
	if (cudnn)
		ok &= cudnn(out);
	else
		kk_probe_status(out, "cudnn", "unavailable", why, NULL);
	NcclFn nccl = (NcclFn)kk_module_symbol("libkiln-kernels-nccl.so", "kk_probe_nccl", why, sizeof why);
	if (nccl)
		ok &= nccl(out, n);
	else
		kk_probe_status(out, "nccl", "unavailable", why, NULL);
	return ok;
}
