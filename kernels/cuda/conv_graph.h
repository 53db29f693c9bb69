/* conv_graph.h — a convolution pass through cuDNN's graph (backend) API, timed beside the
 * legacy calls of conv_cudnn.cu (C++, inside libkiln-kernels-cudnn.so only). */
#ifndef KILN_CONV_GRAPH_H
#define KILN_CONV_GRAPH_H

#include <cuda_runtime.h>
#include <cudnn.h>

#include "../conv.h"

struct ConvGraphResult {
	double seconds;   /* mean per call of the fastest plan */
	long long engine; /* its engine's global index, or -1 */
	int tried;        /* plans that ran */
	int compiling;    /* configurations left out: their engines compile at run time */
	char why[160];    /* why none ran */
};

/* Times pass p of convolution s (NHWC fp16 or bf16, fp32 sums) through the graph API: the
 * heuristics' first eight engine configurations (mode A) made into plans (but those whose
 * engines compile kernels at run time: seconds each, a cold start), each run iters
 * times on the real buffers (ptr: the x or dx, w or dw, y or dy of the pass, the pass's
 * output among them), the fastest kept and run once more last, so its output is what the
 * buffers hold. 0, or -1 with r->why. */
int conv_graph_time(cudnnHandle_t h, cudaStream_t stream, const ConvShape &s, bool bf16, ConvPass p, void *const ptr[3],
		    void *ws, size_t wsz, int iters, ConvGraphResult *r);

#endif
