// zeroshot.cu — zero-shot evaluation on the GPU: image rows stream through in chunks on two
// streams (inputs larger than the GPU's memory work too); each chunk is scored a block of
// rows at a time by cuBLAS into a buffer sized to stay in L2, and each row's top-5 is read
// back from it at once (zeroshot_rows.cuh), so the N x C logits never exist whole.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "../kernels.h"
}

#include "zeroshot_rows.cuh"

#define CHECK_CUDA(call)                                                                          \
	do {                                                                                      \
		cudaError_t e_ = (call);                                                          \
		if (e_ != cudaSuccess) {                                                          \
			snprintf(err, errlen, "CUDA: %s: %s", #call, cudaGetErrorString(e_));     \
			goto fail;                                                                \
		}                                                                                 \
	} while (0)

// float rows (d wide) -> half rows (dpad wide, zero-padded)
__global__ void to_half_padded(const float *in, __half *out, long long rows, int d, int dpad)
{
	long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
	if (i >= rows * dpad)
		return;
	long long r = i / dpad;
	int c = (int)(i % dpad);
	out[i] = c < d ? __float2half(in[r * d + c]) : __float2half(0.f);
}

extern "C" int kk_cuda_available(char *why, size_t whylen)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess) {
		snprintf(why, whylen, "no usable CUDA driver (%s)", cudaGetErrorString(e));
		return 0;
	}
	if (n == 0) {
		snprintf(why, whylen, "no CUDA device");
		return 0;
	}
	return 1;
}

/* The C reference's normalised text embeddings as c x dpad fp16, zero-padded. Returns the
 * first class with NaN/inf, -2 when out of memory, or -1. */
static long long normalised_text(const ZeroshotInput *in, int dpad, __half *out)
{
	memset(out, 0, (size_t)in->c * dpad * sizeof(__half));
	float *text;
	int64_t bad = zeroshot_text_normalised(in, &text);
	if (bad >= 0 || !text)
		return bad >= 0 ? bad : -2;
	for (int64_t c = 0; c < in->c; c++)
		for (int64_t j = 0; j < in->d; j++)
			out[c * dpad + j] = __float2half(text[c * in->d + j]);
	free(text);
	return -1;
}

/* Rows scored by one product: KILN_ZS_SCORE_ROWS (the benchmark's sweep), else as many as
 * fill half of the L2 cache with fp32 scores, so the top-5 pass reads them from L2 rather
 * than memory; at least 256, at most a chunk. */
static long long score_rows(long long classes, long long chunk)
{
	const char *e = getenv("KILN_ZS_SCORE_ROWS");
	long long rows = e ? atoll(e) : 0;
	if (rows <= 0) {
		int dev = 0, l2 = 0;
		cudaGetDevice(&dev);
		cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev);
		rows = (long long)l2 / 2 / (classes * 4) / 256 * 256;
	}
	rows = rows < 256 ? 256 : rows;
	return rows < chunk ? rows : chunk;
}

extern "C" int kk_zeroshot_cuda(const ZeroshotInput *in, ZeroshotResult *r, char *err, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const int dpad = (int)((in->d + 7) / 8 * 8); // rows 16-byte aligned, as the tensor cores want
	const int f32 = in->images->dtype == DT_F32, classes = (int)in->c;
	__half *txt_h = NULL, *txt_d = NULL, *img_d[2] = {NULL, NULL};
	float *stage_d[2] = {NULL, NULL}, *scores_d[2] = {NULL, NULL};
	int *topk_d[2] = {NULL, NULL};
	cublasHandle_t blas[2] = {NULL, NULL}; // one per stream: a handle's workspace is not shared across streams
	unsigned long long *bad_d = NULL, bad = ~0ULL;
	long long bad_text, chunk, block;
	cudaStream_t st[2] = {NULL, NULL};
	cudaEvent_t *ev = NULL; // around each chunk's products and top-5s: their time apart from the copies
	size_t free_b = 0, total_b = 0;
	int nchunks = 0, rc = -1;
	if (in->c > (1 << 24) || in->d > (1 << 20)) {
		snprintf(err, errlen, "CUDA zeroshot supports up to 16M classes of dimension 1M (got %lld x %lld)",
			 (long long)in->c, (long long)in->d);
		return -1;
	}
	if (in->n == 0) { // nothing to score (and no chunk to size)
		zeroshot_score(in, r);
		r->kernel_seconds = r->seconds = 0;
		r->device = "cuda";
		return 0;
	}
	txt_h = (__half *)malloc((size_t)in->c * dpad * sizeof(__half));
	bad_text = txt_h ? normalised_text(in, dpad, txt_h) : -2;
	if (bad_text == -2) {
		snprintf(err, errlen, "out of memory for the class text embeddings");
		goto fail;
	}
	if (bad_text >= 0) {
		snprintf(err, errlen, "class text embedding %lld contains NaN or infinity", bad_text);
		goto fail;
	}
	CHECK_CUDA(cudaMalloc(&txt_d, (size_t)in->c * dpad * sizeof(__half)));
	CHECK_CUDA(cudaMemcpy(txt_d, txt_h, (size_t)in->c * dpad * sizeof(__half), cudaMemcpyHostToDevice));
	CHECK_CUDA(cudaMalloc(&bad_d, sizeof bad));
	CHECK_CUDA(cudaMemcpy(bad_d, &bad, sizeof bad, cudaMemcpyHostToDevice));
	// chunk size: a quarter of free memory across both streams' buffers, at most 256k rows
	CHECK_CUDA(cudaMemGetInfo(&free_b, &total_b));
	chunk = (long long)(free_b / 4 / ((size_t)dpad * 2 + (f32 ? in->d * 4 : 0) + ZS_K * 4));
	chunk = chunk > 262144 ? 262144 : chunk < 256 ? 256 : chunk;
	if (in->batch > 0 && chunk > in->batch)
		chunk = in->batch;
	if (chunk > in->n)
		chunk = in->n;
	block = score_rows(in->c, chunk);
	nchunks = (int)((in->n + chunk - 1) / chunk);
	ev = (cudaEvent_t *)calloc((size_t)nchunks * 2, sizeof *ev);
	if (!ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int e = 0; e < nchunks * 2; e++)
		CHECK_CUDA(cudaEventCreate(&ev[e]));
	for (int s = 0; s < 2; s++) {
		CHECK_CUDA(cudaStreamCreate(&st[s]));
		if (cublasCreate(&blas[s]) != CUBLAS_STATUS_SUCCESS) {
			blas[s] = NULL;
			snprintf(err, errlen, "cuBLAS could not start (cublasCreate failed)");
			goto fail;
		}
		CHECK_CUDA(cudaMalloc(&img_d[s], (size_t)chunk * dpad * sizeof(__half)));
		CHECK_CUDA(cudaMalloc(&topk_d[s], (size_t)chunk * ZS_K * sizeof(int)));
		CHECK_CUDA(cudaMalloc(&scores_d[s], (size_t)block * in->c * sizeof(float)));
		if (f32)
			CHECK_CUDA(cudaMalloc(&stage_d[s], (size_t)chunk * in->d * sizeof(float)));
	}
	for (int i = 0; i < nchunks; i++) {
		int s = i % 2;
		long long begin = (long long)i * chunk, rows = in->n - begin < chunk ? in->n - begin : chunk;
		if (f32) {
			CHECK_CUDA(cudaMemcpyAsync(stage_d[s], (const float *)in->images->data + begin * in->d,
						   (size_t)rows * in->d * sizeof(float), cudaMemcpyHostToDevice, st[s]));
			long long elems = rows * dpad;
			to_half_padded<<<(unsigned)((elems + 255) / 256), 256, 0, st[s]>>>(stage_d[s], img_d[s], rows,
											  (int)in->d, dpad);
		} else {
			CHECK_CUDA(cudaMemcpy2DAsync(img_d[s], (size_t)dpad * 2,
						     (const uint16_t *)in->images->data + begin * in->d, (size_t)in->d * 2,
						     (size_t)in->d * 2, (size_t)rows, cudaMemcpyHostToDevice, st[s]));
			if (dpad != in->d)
				CHECK_CUDA(cudaMemset2DAsync((char *)img_d[s] + in->d * 2, (size_t)dpad * 2, 0,
							     (size_t)(dpad - in->d) * 2, (size_t)rows, st[s]));
		}
		CHECK_CUDA(cudaEventRecord(ev[2 * i], st[s]));
		for (long long b = 0; b < rows; b += block) {
			long long nb = rows - b < block ? rows - b : block;
			cublasStatus_t bs = zs_rows<float>(blas[s], st[s], txt_d, img_d[s] + b * dpad, nb, classes, dpad, dpad,
							   scores_d[s], topk_d[s] + b * ZS_K, bad_d, begin + b);
			if (bs != CUBLAS_STATUS_SUCCESS) {
				snprintf(err, errlen, "cuBLAS: the product of %lld image rows with %d classes failed (status %d)", nb,
					 classes, (int)bs);
				goto fail;
			}
		}
		CHECK_CUDA(cudaGetLastError());
		CHECK_CUDA(cudaEventRecord(ev[2 * i + 1], st[s]));
		CHECK_CUDA(cudaMemcpyAsync(r->topk + begin * ZS_K, topk_d[s], (size_t)rows * ZS_K * sizeof(int),
					   cudaMemcpyDeviceToHost, st[s]));
	}
	CHECK_CUDA(cudaDeviceSynchronize());
	CHECK_CUDA(cudaMemcpy(&bad, bad_d, sizeof bad, cudaMemcpyDeviceToHost));
	if (bad != ~0ULL) {
		snprintf(err, errlen, "image feature row %llu contains NaN or infinity (as fp16: beyond +-65504 counts)", bad);
		goto fail;
	}
	r->kernel_seconds = 0;
	for (int i = 0; i < nchunks; i++) {
		float ms = 0;
		CHECK_CUDA(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
		r->kernel_seconds += ms / 1e3;
	}
	rc = 0;
fail:
	for (int s = 0; s < 2; s++) {
		cudaFree(img_d[s]);
		cudaFree(topk_d[s]);
		cudaFree(stage_d[s]);
		cudaFree(scores_d[s]);
		if (blas[s])
			cublasDestroy(blas[s]);
		if (st[s])
			cudaStreamDestroy(st[s]);
	}
	cudaFree(txt_d);
	cudaFree(bad_d);
	free(txt_h);
	for (int e = 0; ev && e < nchunks * 2; e++)
		if (ev[e])
			cudaEventDestroy(ev[e]);
	free(ev);
	if (rc == 0) {
		zeroshot_score(in, r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		r->device = "cuda";
	}
	return rc;
}
