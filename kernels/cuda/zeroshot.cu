// zeroshot.cu — fused zero-shot evaluation on the GPU: a block keeps 64 image rows in
// shared memory, multiplies them with 64-class tiles of normalised text embeddings on the
// tensor cores (fp16 in, fp32 accumulate), and folds each 64x64 score tile into a per-row
// top-5 at once, so the N x C logits never exist in device memory. Images stream through
// in chunks on two streams, so inputs larger than the GPU's memory work too.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "../kernels.h"
}

using namespace nvcuda;

#define BM 64        // image rows per block
#define BN 64        // classes per tile
#define THREADS 128  // 4 warps: each owns 16 rows x 64 classes of a tile
#define CPAD 4       // pad of the fp32 score tile (bank conflicts)

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

__global__ void __launch_bounds__(THREADS) zeroshot_kernel(const __half *__restrict__ img, const __half *__restrict__ txt,
							  int rows, int classes, int cpad, int dpad,
							  int *__restrict__ topk, unsigned long long *__restrict__ bad_row,
							  long long row_offset)
{
	extern __shared__ __align__(128) unsigned char smem[];
	__half *a = (__half *)smem;                          // BM x dpad: this block's image rows
	__half *b = a + BM * dpad;                            // BN x 16: one k-slice of a text tile
	float *c = (float *)(b + BN * 16 * 4);                // BM x (BN + CPAD) scores
	const int tid = threadIdx.x, warp = tid / 32, row0 = blockIdx.x * BM;

	// the block's rows stay resident for every class tile (128-bit loads)
	for (int i = tid; i < BM * dpad / 8; i += THREADS) {
		int r = (i * 8) / dpad;
		uint4 v = make_uint4(0, 0, 0, 0);
		if (row0 + r < rows)
			v = ((const uint4 *)(img + (long long)row0 * dpad))[i];
		((uint4 *)a)[i] = v;
	}
	float best[ZS_K];
	int best_c[ZS_K];
	for (int j = 0; j < ZS_K; j++) {
		best[j] = -INFINITY;
		best_c[j] = -1;
	}
	const int k_keep = classes < ZS_K ? classes : ZS_K;
	__syncthreads();

	for (int ct = 0; ct < cpad; ct += BN) {
		wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4];
		for (int j = 0; j < 4; j++)
			wmma::fill_fragment(acc[j], 0.f);
		for (int k0 = 0; k0 < dpad; k0 += 64) {
			// stage up to four 16-wide k-slices of the text tile: BN x 64 halves
			__half *bt = b;
			for (int i = tid; i < BN * 8; i += THREADS) { // 8 uint4 per class row of 64 halves
				int n = i / 8, part = i % 8;
				uint4 v = make_uint4(0, 0, 0, 0);
				if (k0 + part * 8 < dpad)
					v = *(const uint4 *)(txt + (long long)(ct + n) * dpad + k0 + part * 8);
				((uint4 *)(bt + n * 64))[part] = v;
			}
			__syncthreads();
			for (int kk = 0; kk < 64 && k0 + kk < dpad; kk += 16) {
				wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
				wmma::load_matrix_sync(fa, a + warp * 16 * dpad + k0 + kk, dpad);
				for (int j = 0; j < 4; j++) {
					// B[k][n] = text[n][k]: column-major with leading dimension 64
					wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
					wmma::load_matrix_sync(fb, bt + j * 16 * 64 + kk, 64);
					wmma::mma_sync(acc[j], fa, fb, acc[j]);
				}
			}
			__syncthreads();
		}
		for (int j = 0; j < 4; j++)
			wmma::store_matrix_sync(c + warp * 16 * (BN + CPAD) + j * 16, acc[j], BN + CPAD, wmma::mem_row_major);
		__syncthreads();
		if (tid < BM && row0 + tid < rows) {
			const float *s = c + tid * (BN + CPAD);
			for (int n = 0; n < BN && ct + n < classes; n++) {
				float v = s[n];
				if (v != v) {
					atomicMin(bad_row, (unsigned long long)(row_offset + row0 + tid)); // NaN: by global row
					break;
				}
				if (v > best[k_keep - 1]) { // strictly greater: ties keep the lower class
					int j = k_keep - 1;
					while (j > 0 && v > best[j - 1]) {
						best[j] = best[j - 1];
						best_c[j] = best_c[j - 1];
						j--;
					}
					best[j] = v;
					best_c[j] = ct + n;
				}
			}
		}
		__syncthreads();
	}
	if (tid < BM && row0 + tid < rows)
		for (int j = 0; j < ZS_K; j++)
			topk[(long long)(row0 + tid) * ZS_K + j] = j < k_keep ? best_c[j] : -1;
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

/* The C reference's normalised text embeddings, padded to cpad x dpad fp16. Returns the
 * first class with NaN/inf, -2 when out of memory, or -1. */
static long long normalised_text(const ZeroshotInput *in, int dpad, int cpad, __half *out)
{
	memset(out, 0, (size_t)cpad * dpad * sizeof(__half));
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

extern "C" int kk_zeroshot_cuda(const ZeroshotInput *in, ZeroshotResult *r, char *err, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	const int dpad = (int)((in->d + 63) / 64 * 64), cpad = (int)((in->c + BN - 1) / BN * BN);
	const int f32 = in->images->dtype == DT_F32;
	size_t smem = (size_t)BM * dpad * 2 + (size_t)BN * 64 * 2 + (size_t)BM * (BN + CPAD) * 4;
	__half *txt_h = NULL, *txt_d = NULL, *img_d[2] = {NULL, NULL};
	float *stage_d[2] = {NULL, NULL};
	int *topk_d[2] = {NULL, NULL};
	unsigned long long *bad_d = NULL, bad = ~0ULL;
	long long bad_text;
	cudaStream_t st[2] = {NULL, NULL};
	cudaEvent_t *ev = NULL; // around each chunk's kernel: its time apart from the copies
	size_t free_b = 0, total_b = 0;
	long long chunk;
	int nchunks = 0;
	if (in->d > 1024 || smem > 200 * 1024) {
		snprintf(err, errlen, "CUDA zeroshot supports D up to 1024 (got %lld)", (long long)in->d);
		return -1;
	}
	CHECK_CUDA(cudaFuncSetAttribute(zeroshot_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
	txt_h = (__half *)malloc((size_t)cpad * dpad * sizeof(__half));
	bad_text = normalised_text(in, dpad, cpad, txt_h);
	if (bad_text == -2) {
		snprintf(err, errlen, "out of memory for the class text embeddings");
		goto fail;
	}
	if (bad_text >= 0) {
		snprintf(err, errlen, "class text embedding %lld contains NaN or infinity", bad_text);
		goto fail;
	}
	CHECK_CUDA(cudaMalloc(&txt_d, (size_t)cpad * dpad * sizeof(__half)));
	CHECK_CUDA(cudaMemcpy(txt_d, txt_h, (size_t)cpad * dpad * sizeof(__half), cudaMemcpyHostToDevice));
	CHECK_CUDA(cudaMalloc(&bad_d, sizeof bad));
	CHECK_CUDA(cudaMemcpy(bad_d, &bad, sizeof bad, cudaMemcpyHostToDevice));
	// chunk size: a quarter of free memory across both buffers, at most 256k rows
	CHECK_CUDA(cudaMemGetInfo(&free_b, &total_b));
	chunk = (long long)(free_b / 4 / ((size_t)dpad * (f32 ? 6 : 2) + ZS_K * 4));
	chunk = chunk > 262144 ? 262144 : chunk < BM ? BM : chunk / BM * BM;
	if (in->batch > 0 && chunk > in->batch)
		chunk = (in->batch + BM - 1) / BM * BM;
	if (chunk > in->n)
		chunk = (in->n + BM - 1) / BM * BM;
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
		CHECK_CUDA(cudaMalloc(&img_d[s], (size_t)chunk * dpad * sizeof(__half)));
		CHECK_CUDA(cudaMalloc(&topk_d[s], (size_t)chunk * ZS_K * sizeof(int)));
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
		if (rows % BM) // the tail block reads whole 64-row groups: zero the rows past the end
			CHECK_CUDA(cudaMemsetAsync(img_d[s] + rows * dpad, 0, (size_t)(BM - rows % BM) * dpad * 2, st[s]));
		CHECK_CUDA(cudaEventRecord(ev[2 * i], st[s]));
		zeroshot_kernel<<<(unsigned)((rows + BM - 1) / BM), THREADS, smem, st[s]>>>(
			img_d[s], txt_d, (int)rows, (int)in->c, cpad, dpad, topk_d[s], bad_d, begin);
		CHECK_CUDA(cudaGetLastError());
		CHECK_CUDA(cudaEventRecord(ev[2 * i + 1], st[s]));
		CHECK_CUDA(cudaMemcpyAsync(r->topk + begin * ZS_K, topk_d[s], (size_t)rows * ZS_K * sizeof(int),
					   cudaMemcpyDeviceToHost, st[s]));
	}
	CHECK_CUDA(cudaDeviceSynchronize());
	CHECK_CUDA(cudaMemcpy(&bad, bad_d, sizeof bad, cudaMemcpyDeviceToHost));
	if (bad != ~0ULL) {
		snprintf(err, errlen, "image feature row %llu contains NaN or infinity", bad);
		goto fail;
	}
	r->kernel_seconds = 0;
	for (int i = 0; i < nchunks; i++) {
		float ms = 0;
		CHECK_CUDA(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
		r->kernel_seconds += ms / 1e3;
	}
	for (int e = 0; e < nchunks * 2; e++)
		cudaEventDestroy(ev[e]);
	free(ev);
	for (int s = 0; s < 2; s++) {
		cudaFree(img_d[s]);
		cudaFree(topk_d[s]);
		cudaFree(stage_d[s]);
		cudaStreamDestroy(st[s]);
	}
	cudaFree(txt_d);
	cudaFree(bad_d);
	free(txt_h);
	zeroshot_score(in, r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	r->device = "cuda";
	return 0;
fail:
	for (int s = 0; s < 2; s++) {
		cudaFree(img_d[s]);
		cudaFree(topk_d[s]);
		cudaFree(stage_d[s]);
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
	return -1;
}
