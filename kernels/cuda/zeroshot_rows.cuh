// zeroshot_rows.cuh — the zero-shot evaluation's device work on rows already on the GPU, for
// zeroshot.cu and the benchmark that sweeps its block size (bench/bench_zeroshot.cu): the
// product of a block of image rows with the normalised class embeddings by cuBLAS (fp16 in,
// fp32 accumulate) into a scores buffer small enough to stay in L2, then each row's top-5
// read back from it by one warp. The measured alternative, one fused kernel folding WMMA
// score tiles into a top-5 in shared memory, ran at 22x cuBLAS's time (RESULTS.md).
#ifndef KILN_ZEROSHOT_ROWS_CUH
#define KILN_ZEROSHOT_ROWS_CUH

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>

static_assert(ZS_K == 5, "zs_top5_rows keeps five classes per row");

__device__ __forceinline__ float zs_float(float x) { return x; }
__device__ __forceinline__ float zs_float(__half x) { return __half2float(x); }

// Top-5 classes of each of rows rows of scores (rows x c), best first, ties to the lower
// class as the C reference breaks them: each lane keeps a sorted top-5 of the classes lane,
// lane + 32, ... (scanned in increasing order, so a later equal score stays below), then
// five rounds of a warp-wide maximum. Fewer than 5 classes: -1 past c. A score that is not
// finite lowers *bad_row to the row's global index: the class rows are unit vectors, so only
// a row holding NaN or infinity in fp16 (beyond +-65504 once rounded) can make one.
template <typename T>
__global__ void __launch_bounds__(256) zs_top5_rows(const T *__restrict__ s, long long rows, int c, int *__restrict__ out,
						   unsigned long long *__restrict__ bad_row, long long row_offset)
{
	long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
	int lane = threadIdx.x % 32;
	if (row >= rows)
		return;
	const T *r = s + row * c;
	float v[5];
	int id[5];
	bool bad = false;
#pragma unroll
	for (int k = 0; k < 5; k++)
		v[k] = -INFINITY, id[k] = INT_MAX;
	for (int j = lane; j < c; j += 32) {
		float x = zs_float(r[j]);
		bad |= !isfinite(x);
		if (x > v[4]) {
			v[4] = x, id[4] = j;
#pragma unroll
			for (int k = 4; k > 0; k--)
				if (v[k] > v[k - 1]) {
					float tv = v[k];
					int ti = id[k];
					v[k] = v[k - 1], id[k] = id[k - 1], v[k - 1] = tv, id[k - 1] = ti;
				}
		}
	}
	if (__any_sync(0xffffffffu, bad)) {
		if (lane == 0)
			atomicMin(bad_row, (unsigned long long)(row_offset + row));
		return;
	}
#pragma unroll
	for (int k = 0; k < 5; k++) {
		float bv = v[0];
		int bi = id[0];
		for (int off = 16; off; off >>= 1) {
			float ov = __shfl_xor_sync(0xffffffffu, bv, off);
			int oi = __shfl_xor_sync(0xffffffffu, bi, off);
			if (ov > bv || (ov == bv && oi < bi))
				bv = ov, bi = oi;
		}
		if (lane == 0)
			out[row * 5 + k] = bi < c ? bi : -1;
		if (id[0] == bi) { // this lane's best was taken: the next one moves up
#pragma unroll
			for (int q = 0; q < 4; q++)
				v[q] = v[q + 1], id[q] = id[q + 1];
			v[4] = -INFINITY, id[4] = INT_MAX;
		}
	}
}

// Scores and top-5 of rows image rows (img_d, rows x ld fp16, the first d columns used)
// against the c normalised class rows (txt_d, c x ld fp16), on stream st: one product into
// scores (rows x c of T: float, or __half in the benchmark's sweep), then the top-5 of each
// row into topk_d (rows x 5). row_offset is the first row's global index (for bad_row).
template <typename T>
static cublasStatus_t zs_rows(cublasHandle_t h, cudaStream_t st, const __half *txt_d, const __half *img_d, long long rows,
			      int c, int d, int ld, T *scores, int *topk_d, unsigned long long *bad_d, long long row_offset)
{
	const float one = 1, zero = 0;
	cublasSetStream(h, st);
	// column-major: scores^T (c x rows) = txt (d x c)^T x img (d x rows), i.e. row-major rows x c
	cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, c, (int)rows, d, &one, txt_d, CUDA_R_16F, ld, img_d,
					CUDA_R_16F, ld, &zero, scores, sizeof(T) == 4 ? CUDA_R_32F : CUDA_R_16F, c,
					CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	if (s == CUBLAS_STATUS_SUCCESS)
		zs_top5_rows<T><<<(unsigned)((rows + 7) / 8), 256, 0, st>>>(scores, rows, c, topk_d, bad_d, row_offset);
	return s;
}

#endif
