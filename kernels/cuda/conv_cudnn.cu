// conv_cudnn.cu — `kiln-kernels conv` on a GPU (libkiln-kernels-cudnn.so): cuDNN's
// convolutions in NHWC fp16 or bf16 with fp32 accumulation on the tensor cores, the
// algorithm of each pass autotuned (cudnnFind*AlgorithmEx: every algorithm timed on the
// real buffers, as PyTorch's cudnn.benchmark does), then timed as the mean of `iters` calls
// between two CUDA events. Each layer's results for its first image are checked against the
// C reference computed from the same rounded inputs (the filter gradient on a batch whose
// other gradients are zero, so that it depends on the first image alone).
#include <cuda_runtime.h>
#include <cudnn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../conv.h"
#include "../kernels.h"
#include "conv_graph.h"

namespace {

const char *const fwd_algos[] = {"implicit_gemm", "implicit_precomp_gemm", "gemm", "direct",
				 "fft", "fft_tiling", "winograd", "winograd_nonfused"};
const char *const bwd_data_algos[] = {"algo0", "algo1", "fft", "fft_tiling", "winograd", "winograd_nonfused"};
const char *const bwd_filter_algos[] = {"algo0", "algo1", "fft", "algo3", "winograd", "winograd_nonfused", "fft_tiling"};

uint16_t to_bits(float f, bool bf16)
{
	if (!bf16)
		return float_to_half(f);
	uint32_t u;
	memcpy(&u, &f, 4);
	u += 0x7FFF + ((u >> 16) & 1); // round to nearest even
	return (uint16_t)(u >> 16);
}

float from_bits(uint16_t b, bool bf16)
{
	if (!bf16)
		return half_to_float(b);
	uint32_t u = (uint32_t)b << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

// One layer's descriptors and buffers (dy is the incoming gradient, the others results).
struct Layer {
	ConvShape s;
	bool bf16;
	size_t nx, nw, ny;
	cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
	cudnnFilterDescriptor_t wd = nullptr;
	cudnnConvolutionDescriptor_t cd = nullptr;
	uint16_t *x = nullptr, *w = nullptr, *y = nullptr, *dy = nullptr, *dx = nullptr, *dw = nullptr;
	uint16_t *scratch = nullptr; // the graph API's output, beside the legacy call's
	float *x0 = nullptr, *w0 = nullptr, *dy0 = nullptr; // the rounded inputs of image 0, for the check
	int algo[CONV_PASSES] = {0, 0, 0};
};

void layer_free(Layer &L)
{
	if (L.xd)
		cudnnDestroyTensorDescriptor(L.xd);
	if (L.yd)
		cudnnDestroyTensorDescriptor(L.yd);
	if (L.wd)
		cudnnDestroyFilterDescriptor(L.wd);
	if (L.cd)
		cudnnDestroyConvolutionDescriptor(L.cd);
	cudaFree(L.x), cudaFree(L.w), cudaFree(L.y), cudaFree(L.dy), cudaFree(L.dx), cudaFree(L.dw), cudaFree(L.scratch);
	free(L.x0), free(L.w0), free(L.dy0);
}

// Uploads n seeded values in [-1, 1) as fp16/bf16 and keeps the first keep of them, rounded.
int upload(uint16_t *dev, size_t n, unsigned long long seed, bool bf16, float *keep, size_t nkeep)
{
	float *f = (float *)malloc(n * sizeof *f);
	uint16_t *h = (uint16_t *)malloc(n * sizeof *h);
	int rc = -1;
	if (f && h) {
		conv_fill(f, n, seed);
		for (size_t i = 0; i < n; i++)
			h[i] = to_bits(f[i], bf16);
		for (size_t i = 0; i < nkeep; i++)
			keep[i] = from_bits(h[i], bf16);
		rc = cudaMemcpy(dev, h, n * sizeof *h, cudaMemcpyHostToDevice) == cudaSuccess ? 0 : -1;
	}
	free(f), free(h);
	return rc;
}

#define CUDNN_OR_FAIL(call)                                                                                              \
	do {                                                                                                             \
		cudnnStatus_t st_ = (call);                                                                              \
		if (st_ != CUDNN_STATUS_SUCCESS) {                                                                       \
			snprintf(err, errlen, "%s: %s", #call, cudnnGetErrorString(st_));                                \
			return -1;                                                                                       \
		}                                                                                                        \
	} while (0)

int layer_setup(Layer &L, const ConvShape &s, bool bf16, char *err, size_t errlen)
{
	L.s = s;
	L.bf16 = bf16;
	L.nx = (size_t)s.n * s.h * s.w * s.c, L.nw = (size_t)s.k * s.r * s.s * s.c, L.ny = (size_t)s.n * s.p * s.q * s.k;
	cudnnDataType_t dt = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
	CUDNN_OR_FAIL(cudnnCreateTensorDescriptor(&L.xd));
	CUDNN_OR_FAIL(cudnnCreateTensorDescriptor(&L.yd));
	CUDNN_OR_FAIL(cudnnCreateFilterDescriptor(&L.wd));
	CUDNN_OR_FAIL(cudnnCreateConvolutionDescriptor(&L.cd));
	CUDNN_OR_FAIL(cudnnSetTensor4dDescriptor(L.xd, CUDNN_TENSOR_NHWC, dt, s.n, s.c, s.h, s.w));
	CUDNN_OR_FAIL(cudnnSetTensor4dDescriptor(L.yd, CUDNN_TENSOR_NHWC, dt, s.n, s.k, s.p, s.q));
	CUDNN_OR_FAIL(cudnnSetFilter4dDescriptor(L.wd, dt, CUDNN_TENSOR_NHWC, s.k, s.c, s.r, s.s));
	CUDNN_OR_FAIL(cudnnSetConvolution2dDescriptor(L.cd, s.pad, s.pad, s.stride, s.stride, 1, 1, CUDNN_CROSS_CORRELATION,
						      CUDNN_DATA_FLOAT));
	CUDNN_OR_FAIL(cudnnSetConvolutionMathType(L.cd, CUDNN_TENSOR_OP_MATH));
	int n, k, p, q;
	CUDNN_OR_FAIL(cudnnGetConvolution2dForwardOutputDim(L.cd, L.xd, L.wd, &n, &k, &p, &q));
	if (n != s.n || k != s.k || p != s.p || q != s.q) {
		snprintf(err, errlen, "cuDNN's output shape %dx%dx%dx%d differs from %dx%dx%dx%d", n, k, p, q, s.n, s.k, s.p, s.q);
		return -1;
	}
	size_t per_image_x = L.nx / s.n, per_image_y = L.ny / s.n;
	L.x0 = (float *)malloc(per_image_x * sizeof(float));
	L.w0 = (float *)malloc(L.nw * sizeof(float));
	L.dy0 = (float *)malloc(per_image_y * sizeof(float));
	size_t most = L.nx > L.ny ? L.nx : L.ny; // the scratch output: room for any pass's
	most = most > L.nw ? most : L.nw;
	if (!L.x0 || !L.w0 || !L.dy0 || cudaMalloc(&L.x, L.nx * 2) || cudaMalloc(&L.dx, L.nx * 2) ||
	    cudaMalloc(&L.w, L.nw * 2) || cudaMalloc(&L.dw, L.nw * 2) || cudaMalloc(&L.y, L.ny * 2) ||
	    cudaMalloc(&L.dy, L.ny * 2) || cudaMalloc(&L.scratch, most * 2) || upload(L.x, L.nx, 1, bf16, L.x0, per_image_x) ||
	    upload(L.w, L.nw, 2, bf16, L.w0, L.nw) || upload(L.dy, L.ny, 3, bf16, L.dy0, per_image_y)) {
		snprintf(err, errlen, "cannot allocate or fill the buffers of a %dx%dx%dx%d convolution", s.n, s.c, s.h, s.w);
		return -1;
	}
	// a copy from pageable memory may still be in flight when cudaMemcpy returns, and cuDNN's
	// stream does not wait for the legacy default stream's work
	return cudaDeviceSynchronize() == cudaSuccess ? 0 : -1;
}

// One call of the pass with its chosen algorithm.
cudnnStatus_t run_pass(cudnnHandle_t h, Layer &L, ConvPass p, void *ws, size_t wsz)
{
	const float one = 1, zero = 0;
	if (p == CONV_FWD)
		return cudnnConvolutionForward(h, &one, L.xd, L.x, L.wd, L.w, L.cd, (cudnnConvolutionFwdAlgo_t)L.algo[p], ws, wsz,
					       &zero, L.yd, L.y);
	if (p == CONV_BWD_DATA)
		return cudnnConvolutionBackwardData(h, &one, L.wd, L.w, L.yd, L.dy, L.cd,
						    (cudnnConvolutionBwdDataAlgo_t)L.algo[p], ws, wsz, &zero, L.xd, L.dx);
	return cudnnConvolutionBackwardFilter(h, &one, L.xd, L.x, L.yd, L.dy, L.cd, (cudnnConvolutionBwdFilterAlgo_t)L.algo[p],
					      ws, wsz, &zero, L.wd, L.dw);
}

// The autotuner's fastest algorithm that ran (a name for the JSON in name).
int autotune(cudnnHandle_t h, Layer &L, ConvPass p, void *ws, size_t wsz, char *name, size_t namelen, char *err,
	     size_t errlen)
{
	int got = 0;
	if (p == CONV_FWD) {
		cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
		CUDNN_OR_FAIL(cudnnFindConvolutionForwardAlgorithmEx(h, L.xd, L.x, L.wd, L.w, L.cd, L.yd, L.y,
								     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, ws, wsz));
		for (int i = 0; i < got; i++)
			if (perf[i].status == CUDNN_STATUS_SUCCESS) {
				L.algo[p] = perf[i].algo;
				snprintf(name, namelen, "%s", fwd_algos[perf[i].algo % 8]);
				return 0;
			}
	} else if (p == CONV_BWD_DATA) {
		cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
		CUDNN_OR_FAIL(cudnnFindConvolutionBackwardDataAlgorithmEx(h, L.wd, L.w, L.yd, L.dy, L.cd, L.xd, L.dx,
									  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf, ws, wsz));
		for (int i = 0; i < got; i++)
			if (perf[i].status == CUDNN_STATUS_SUCCESS) {
				L.algo[p] = perf[i].algo;
				snprintf(name, namelen, "%s", bwd_data_algos[perf[i].algo % 6]);
				return 0;
			}
	} else {
		cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
		CUDNN_OR_FAIL(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, L.xd, L.x, L.yd, L.dy, L.cd, L.wd, L.dw,
									    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf, ws,
									    wsz));
		for (int i = 0; i < got; i++)
			if (perf[i].status == CUDNN_STATUS_SUCCESS) {
				L.algo[p] = perf[i].algo;
				snprintf(name, namelen, "%s", bwd_filter_algos[perf[i].algo % 7]);
				return 0;
			}
	}
	snprintf(err, errlen, "no cuDNN algorithm ran %s for a %dx%dx%dx%d input", conv_pass_names[p], L.s.n, L.s.c, L.s.h,
		 L.s.w);
	return -1;
}

// max |got - want| / max |want| over n values (got as fp16/bf16 bits on the GPU)
double rel_error(const uint16_t *dev, const float *want, size_t n, bool bf16)
{
	uint16_t *h = (uint16_t *)malloc(n * sizeof *h);
	if (!h || cudaMemcpy(h, dev, n * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
		free(h);
		return INFINITY;
	}
	double worst = 0, scale = 0;
	for (size_t i = 0; i < n; i++) {
		worst = fmax(worst, fabs((double)from_bits(h[i], bf16) - want[i]));
		scale = fmax(scale, fabs((double)want[i]));
	}
	free(h);
	return scale > 0 ? worst / scale : worst;
}

// max |a - b| / max |b| over n values, both fp16/bf16 bits on the GPU
double rel_diff(const uint16_t *a, const uint16_t *b, size_t n, bool bf16)
{
	float *want = (float *)malloc(n * sizeof *want);
	uint16_t *h = (uint16_t *)malloc(n * sizeof *h);
	double e = INFINITY;
	if (want && h && cudaMemcpy(h, b, n * sizeof *h, cudaMemcpyDeviceToHost) == cudaSuccess) {
		for (size_t i = 0; i < n; i++)
			want[i] = from_bits(h[i], bf16);
		e = rel_error(a, want, n, bf16);
	}
	free(want), free(h);
	return e;
}

// The pass through the graph API into L.scratch, timed, and compared with the legacy call's
// output (which the timing loop left in place); a pass it cannot run is a note, not a failure.
void graph_api_pass(cudnnHandle_t h, cudaStream_t stream, Layer &L, ConvPass p, void *ws, size_t wsz, int iters,
		    ConvPoint *pt)
{
	void *ptr[3] = {L.x, L.w, L.scratch}; // tensors 1-3: x or dx, w or dw, y or dy
	const uint16_t *legacy = L.y;
	size_t n = L.ny;
	if (p == CONV_BWD_DATA)
		ptr[0] = L.scratch, ptr[2] = L.dy, legacy = L.dx, n = L.nx;
	else if (p == CONV_BWD_FILTER)
		ptr[1] = L.scratch, ptr[2] = L.dy, legacy = L.dw, n = L.nw;
	ConvGraphResult g;
	if (conv_graph_time(h, stream, L.s, L.bf16, p, ptr, ws, wsz, iters, &g) != 0) {
		fprintf(stderr, "kiln-kernels: conv %s %s through cuDNN's graph API: %s\n", pt->layer->name,
			conv_pass_names[p], g.why);
		cudaGetLastError();
		return;
	}
	pt->api_seconds[p] = g.seconds;
	pt->api_engine[p] = g.engine;
	pt->api_diff[p] = rel_diff(L.scratch, legacy, n, L.bf16);
}

// Checks pass p of image 0 against the C reference; the relative error, or INFINITY.
double check_pass(cudnnHandle_t h, Layer &L, ConvPass p, void *ws, size_t wsz, int threads)
{
	ConvShape one = L.s;
	one.n = 1;
	size_t per_x = L.nx / L.s.n, per_y = L.ny / L.s.n;
	float *want = (float *)malloc((p == CONV_FWD ? per_y : p == CONV_BWD_DATA ? per_x : L.nw) * sizeof(float));
	double e = INFINITY;
	cudaStream_t stream;
	if (!want)
		return e;
	if (p == CONV_FWD) {
		conv_forward_cpu(&one, L.x0, L.w0, want, threads);
		e = rel_error(L.y, want, per_y, L.bf16);
	} else if (p == CONV_BWD_DATA) {
		conv_backward_data_cpu(&one, L.dy0, L.w0, want, threads);
		e = rel_error(L.dx, want, per_x, L.bf16);
	} else if (cudnnGetStream(h, &stream) == CUDNN_STATUS_SUCCESS &&
		   cudaMemsetAsync(L.dy + per_y, 0, (L.ny - per_y) * 2, stream) == cudaSuccess &&
		   run_pass(h, L, p, ws, wsz) == CUDNN_STATUS_SUCCESS && cudaDeviceSynchronize() == cudaSuccess) {
		conv_backward_filter_cpu(&one, L.x0, L.dy0, want, threads);
		e = rel_error(L.dw, want, L.nw, L.bf16);
	}
	free(want);
	return e;
}

double now()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

// The mean time of one call of pass p when iters calls are captured into one CUDA graph and
// replayed (the GPU's time without the gaps of issuing each call: cuDNN's legacy calls cost
// CPU time each), or 0 where the capture fails (it is then forgotten: the loop's time stands).
double replay_seconds(cudnnHandle_t h, Layer &L, ConvPass p, void *ws, size_t wsz, cudaStream_t stream, int iters,
		     cudaEvent_t t0, cudaEvent_t t1)
{
	cudaGraph_t graph = nullptr;
	cudaGraphExec_t exec = nullptr;
	bool ok = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
	for (int i = 0; ok && i < iters; i++)
		ok = run_pass(h, L, p, ws, wsz) == CUDNN_STATUS_SUCCESS;
	cudaError_t end = cudaStreamEndCapture(stream, &graph); // always: it leaves the stream uncaptured
	ok = ok && end == cudaSuccess && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
	float ms = 0;
	ok = ok && cudaGraphLaunch(exec, stream) == cudaSuccess && // the first replay uploads the graph
	     cudaEventRecord(t0, stream) == cudaSuccess && cudaGraphLaunch(exec, stream) == cudaSuccess &&
	     cudaEventRecord(t1, stream) == cudaSuccess && cudaEventSynchronize(t1) == cudaSuccess &&
	     cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess;
	if (exec)
		cudaGraphExecDestroy(exec);
	if (graph)
		cudaGraphDestroy(graph);
	cudaGetLastError(); // a failed capture's error is not the next call's
	return ok ? ms / 1e3 / iters : 0;
}

int run_layer(cudnnHandle_t h, cudaStream_t stream, const ConvSpec *spec, ConvPoint *pt, void *ws, size_t wsz,
	      ConvResult *r, char *err, size_t errlen)
{
	Layer L;
	bool bf16 = !strcmp(spec->dtype, "bf16");
	int rc = layer_setup(L, pt->shape, bf16, err, errlen);
	cudaEvent_t t0, t1;
	cudaEventCreate(&t0);
	cudaEventCreate(&t1);
	for (int p = 0; p < CONV_PASSES && rc == 0; p++) {
		if (!spec->passes[p])
			continue;
		rc = autotune(h, L, (ConvPass)p, ws, wsz, pt->algo[p], sizeof pt->algo[p], err, errlen);
		cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
		for (int i = 0; rc == 0 && i < spec->warmup && st == CUDNN_STATUS_SUCCESS; i++)
			st = run_pass(h, L, (ConvPass)p, ws, wsz);
		int iters = spec->iters > 0 ? spec->iters : 1;
		double issue = now();
		cudaEventRecord(t0, stream);
		for (int i = 0; rc == 0 && i < iters && st == CUDNN_STATUS_SUCCESS; i++)
			st = run_pass(h, L, (ConvPass)p, ws, wsz);
		issue = now() - issue;
		cudaEventRecord(t1, stream);
		float ms = 0;
		if (rc == 0 && (st != CUDNN_STATUS_SUCCESS || cudaEventSynchronize(t1) != cudaSuccess)) {
			snprintf(err, errlen, "%s of layer %s: %s", conv_pass_names[p], pt->layer->name, cudnnGetErrorString(st));
			rc = -1;
		}
		if (rc == 0) {
			cudaEventElapsedTime(&ms, t0, t1);
			pt->loop_seconds[p] = ms / 1e3 / iters;
			pt->host_seconds[p] = issue / iters;
			double replay = replay_seconds(h, L, (ConvPass)p, ws, wsz, stream, iters, t0, t1);
			pt->seconds[p] = replay > 0 ? replay : pt->loop_seconds[p];
			if (spec->graph_api)
				graph_api_pass(h, stream, L, (ConvPass)p, ws, wsz, iters, pt); // before check_pass changes dy
			double e = check_pass(h, L, (ConvPass)p, ws, wsz, spec->threads);
			double tolerance = bf16 ? 4e-2 : 1e-2; // output rounding plus fp32 sums in another order
			if (!(e <= r->max_rel_err))
				r->max_rel_err = e;
			if (!(e <= tolerance) && r->correct) {
				r->correct = 0;
				snprintf(r->check, sizeof r->check, "%s of %s: relative error %.3g against the C reference (tolerance %.0e)",
					 conv_pass_names[p], pt->layer->name, e, tolerance);
			}
		}
	}
	cudaEventDestroy(t0);
	cudaEventDestroy(t1);
	layer_free(L);
	return rc;
}

} // namespace

extern "C" int kk_conv_cudnn(const ConvSpec *spec, ConvResult *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->device = "cuda";
	r->dtype = !strcmp(spec->dtype, "bf16") ? "bf16" : "fp16";
	const ConvLayer *sel[64];
	int n = conv_select(spec, sel, 64, err, errlen);
	if (n < 0)
		return -1;
	cudnnHandle_t h;
	cudnnStatus_t st = cudnnCreate(&h);
	if (st != CUDNN_STATUS_SUCCESS) {
		snprintf(err, errlen, "cudnnCreate: %s", cudnnGetErrorString(st));
		return -1;
	}
	cudaStream_t stream = nullptr; // a stream of its own: the legacy default stream cannot be captured
	if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess ||
	    (st = cudnnSetStream(h, stream)) != CUDNN_STATUS_SUCCESS) {
		snprintf(err, errlen, "cannot give cuDNN a stream of its own");
		if (stream)
			cudaStreamDestroy(stream);
		cudnnDestroy(h);
		return -1;
	}
	size_t free_b = 0, total_b = 0, wsz = 1ull << 30;
	cudaMemGetInfo(&free_b, &total_b);
	if (wsz > free_b / 4)
		wsz = free_b / 4;
	void *ws = nullptr;
	r->points = (ConvPoint *)calloc((size_t)n, sizeof *r->points);
	if (!r->points || cudaMalloc(&ws, wsz) != cudaSuccess) {
		snprintf(err, errlen, "cannot allocate a %zu-byte cuDNN workspace", wsz);
		cudnnDestroy(h);
		cudaStreamDestroy(stream);
		conv_result_free(r);
		return -1;
	}
	r->correct = 1;
	snprintf(r->check, sizeof r->check, "every pass of every layer matched the C reference on its first image");
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		ConvPoint *pt = &r->points[r->npoints++];
		pt->layer = sel[i];
		pt->shape = conv_shape(sel[i], spec->batch, spec->image_size);
		rc = run_layer(h, stream, spec, pt, ws, wsz, r, err, errlen);
	}
	cudaFree(ws);
	cudnnDestroy(h);
	cudaStreamDestroy(stream);
	if (rc != 0)
		conv_result_free(r);
	return rc;
}
