// conv_graph.cu — one convolution pass through cuDNN's graph (backend) API, the way PyTorch
// and the cuDNN frontend call it, measured beside the legacy calls conv_cudnn.cu times: the
// heuristics' first engine configurations (mode A) are built into execution plans, each is
// timed on the real buffers, and the fastest is kept. The H200 run of 2026-12-04 found the
// legacy calls 3-5x slower than PyTorch's; this tells whether the engines the graph API
// offers are the difference (bench/RESULTS.md). A pass it cannot run says why.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <string.h>

#include "conv_graph.h"

namespace {

typedef cudnnBackendDescriptor_t Desc;

// Descriptors made and set one after another; the first failure is kept, with where it was,
// and every later step does nothing. Every descriptor made is destroyed with the builder.
struct Builder {
	cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
	const char *where = "";
	Desc made[64];
	int nmade = 0;

	bool ok() const { return status == CUDNN_STATUS_SUCCESS; }
	void note(cudnnStatus_t s, const char *what)
	{
		if (s != CUDNN_STATUS_SUCCESS && ok())
			status = s, where = what;
	}
	Desc make(cudnnBackendDescriptorType_t t, const char *what)
	{
		Desc d = nullptr;
		if (ok() && nmade < 64) {
			note(cudnnBackendCreateDescriptor(t, &d), what);
			if (d)
				made[nmade++] = d;
		}
		return d;
	}
	void set(Desc d, cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t n, const void *v,
		 const char *what)
	{
		if (ok())
			note(cudnnBackendSetAttribute(d, a, t, n, v), what);
	}
	void finalize(Desc d, const char *what)
	{
		if (ok())
			note(cudnnBackendFinalize(d), what);
	}
	~Builder()
	{
		for (int i = nmade - 1; i >= 0; i--)
			cudnnBackendDestroyDescriptor(made[i]);
	}
};

// An NHWC activation or KRSC filter tensor: dims in cuDNN's N, C, H, W order, channels last.
Desc tensor(Builder &b, int64_t uid, cudnnDataType_t dt, int64_t n, int64_t c, int64_t h, int64_t w)
{
	Desc d = b.make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "a tensor");
	int64_t dim[4] = {n, c, h, w}, stride[4] = {h * w * c, 1, w * c, c}, align = 16;
	b.set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "a tensor's type");
	b.set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "a tensor's dimensions");
	b.set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, stride, "a tensor's strides");
	b.set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "a tensor's id");
	b.set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "a tensor's alignment");
	b.finalize(d, "a tensor");
	return d;
}

// The operation of pass p over tensors 1 (x or dx), 2 (w or dw) and 3 (y or dy).
Desc operation(Builder &b, const ConvShape &s, cudnnDataType_t dt, ConvPass p)
{
	Desc x = tensor(b, 1, dt, s.n, s.c, s.h, s.w), w = tensor(b, 2, dt, s.k, s.c, s.r, s.s),
	     y = tensor(b, 3, dt, s.n, s.k, s.p, s.q);
	Desc conv = b.make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, "the convolution");
	cudnnDataType_t comp = CUDNN_DATA_FLOAT;
	cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
	int64_t dims = 2, dil[2] = {1, 1}, str[2] = {s.stride, s.stride}, pad[2] = {s.pad, s.pad};
	b.set(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, "the convolution's sums");
	b.set(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, "the convolution's mode");
	b.set(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims, "the convolution's dimensions");
	b.set(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil, "the convolution's dilation");
	b.set(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, str, "the convolution's stride");
	b.set(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad, "the convolution's padding");
	b.set(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad, "the convolution's padding");
	b.finalize(conv, "the convolution");
	static const cudnnBackendDescriptorType_t kind[CONV_PASSES] = {
		CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
		CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
		CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
	// per pass: alpha, beta, the convolution, then its x-side, w-side and y-side tensors
	static const cudnnBackendAttributeName_t attr[CONV_PASSES][6] = {
		{CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
		 CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
		 CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y},
		{CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
		 CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
		 CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY},
		{CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
		 CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
		 CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY}};
	Desc op = b.make(kind[p], "the operation");
	float alpha = 1, beta = 0;
	b.set(op, attr[p][0], CUDNN_TYPE_FLOAT, 1, &alpha, "the operation's alpha");
	b.set(op, attr[p][1], CUDNN_TYPE_FLOAT, 1, &beta, "the operation's beta");
	b.set(op, attr[p][2], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv, "the operation's convolution");
	b.set(op, attr[p][3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "the operation's x");
	b.set(op, attr[p][4], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w, "the operation's w");
	b.set(op, attr[p][5], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "the operation's y");
	b.finalize(op, "the operation");
	return op;
}

// The handle attributes are marked deprecated in cuDNN 9 headers and still read by it; by
// number, so the build stays free of warnings (800: the graph's, 400: the plan's).
const cudnnBackendAttributeName_t graph_handle = (cudnnBackendAttributeName_t)800,
				  plan_handle = (cudnnBackendAttributeName_t)400;

// The execution plan of engine configuration cfg and its variant pack over tensors 1-3 at
// ptr, made in pb; false where this engine cannot run the shape within wsz of workspace.
bool plan_for(Builder &pb, cudnnHandle_t h, Desc cfg, void *const ptr[3], void *ws, size_t wsz, Desc *plan, Desc *pack)
{
	static const int64_t uid[3] = {1, 2, 3};
	*plan = pb.make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "a plan");
	pb.set(*plan, plan_handle, CUDNN_TYPE_HANDLE, 1, &h, "a plan's handle");
	pb.set(*plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg, "a plan's engine");
	pb.finalize(*plan, "a plan");
	int64_t need = 0, got = 0;
	if (pb.ok())
		pb.note(cudnnBackendGetAttribute(*plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &need),
			"a plan's workspace");
	if (!pb.ok() || need > (int64_t)wsz)
		return false;
	*pack = pb.make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "a variant pack");
	pb.set(*pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uid, "the pack's ids");
	pb.set(*pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptr, "the pack's buffers");
	pb.set(*pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws, "the pack's workspace");
	pb.finalize(*pack, "a variant pack");
	return pb.ok();
}

// The global index of cfg's engine (-1 where it cannot be read), and whether the engine
// compiles its kernels at run time (its plan can take seconds to make: such engines are left
// out, as a cold start is not what the benchmark measures).
long long engine_index(Desc cfg, bool *compiles)
{
	Builder b;
	Desc engine = b.make(CUDNN_BACKEND_ENGINE_DESCRIPTOR, "the engine");
	int64_t index = -1, n = 0;
	cudnnBackendBehaviorNote_t notes[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
	*compiles = false;
	if (b.ok() && cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine) ==
			      CUDNN_STATUS_SUCCESS) {
		cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index);
		if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
					     CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &n, notes) == CUDNN_STATUS_SUCCESS)
			for (int64_t i = 0; i < n; i++)
				*compiles |= notes[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
	}
	return index;
}

} // namespace

int conv_graph_time(cudnnHandle_t h, cudaStream_t stream, const ConvShape &s, bool bf16, ConvPass p, void *const ptr[3],
		    void *ws, size_t wsz, int iters, ConvGraphResult *r)
{
	memset(r, 0, sizeof *r);
	r->engine = -1;
	Builder b;
	Desc op = operation(b, s, bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF, p);
	Desc graph = b.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "the operation graph");
	b.set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op, "the graph's operation");
	b.set(graph, graph_handle, CUDNN_TYPE_HANDLE, 1, &h, "the graph's handle");
	b.finalize(graph, "the operation graph");
	Desc heur = b.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "the heuristics");
	cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
	b.set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph, "the heuristics' graph");
	b.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "the heuristics' mode");
	b.finalize(heur, "the heuristics");
	Desc cfg[8];
	int64_t ncfg = 0;
	for (int i = 0; i < 8; i++) // filled by the heuristics, best first
		cfg[i] = b.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "an engine configuration");
	if (b.ok())
		b.note(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 8, &ncfg, cfg),
		       "the heuristics' results");
	if (!b.ok()) {
		snprintf(r->why, sizeof r->why, "%s: %s", b.where, cudnnGetErrorString(b.status));
		return -1;
	}
	cudaEvent_t t0, t1;
	cudaEventCreate(&t0);
	cudaEventCreate(&t1);
	int chosen = -1;
	for (int i = 0; i < (int)ncfg; i++) {
		Builder pb;
		Desc plan, pack;
		bool compiles;
		engine_index(cfg[i], &compiles);
		if (compiles) {
			r->compiling++;
			continue;
		}
		if (!plan_for(pb, h, cfg[i], ptr, ws, wsz, &plan, &pack))
			continue; // an engine this shape or this workspace cannot have
		cudnnStatus_t st = cudnnBackendExecute(h, plan, pack); // warm-up
		cudaEventRecord(t0, stream);
		for (int k = 0; k < iters && st == CUDNN_STATUS_SUCCESS; k++)
			st = cudnnBackendExecute(h, plan, pack);
		cudaEventRecord(t1, stream);
		float ms = 0;
		if (st != CUDNN_STATUS_SUCCESS || cudaEventSynchronize(t1) != cudaSuccess ||
		    cudaEventElapsedTime(&ms, t0, t1) != cudaSuccess)
			continue;
		r->tried++;
		double sec = ms / 1e3 / iters;
		if (chosen < 0 || sec < r->seconds)
			r->seconds = sec, chosen = i;
	}
	cudaEventDestroy(t0);
	cudaEventDestroy(t1);
	if (chosen < 0) {
		snprintf(r->why, sizeof r->why, "none of the heuristics' %lld engine configurations ran (%d compile at run time)",
			 (long long)ncfg, r->compiling);
		return -1;
	}
	bool compiles;
	r->engine = engine_index(cfg[chosen], &compiles);
	// the fastest plan once more, last: its output is what the caller compares
	Builder pb;
	Desc plan, pack;
	if (plan_for(pb, h, cfg[chosen], ptr, ws, wsz, &plan, &pack))
		pb.note(cudnnBackendExecute(h, plan, pack), "the fastest plan, again");
	if (!pb.ok() || cudaStreamSynchronize(stream) != cudaSuccess) {
		snprintf(r->why, sizeof r->why, "%s: %s", pb.where, cudnnGetErrorString(pb.status));
		return -1;
	}
	return 0;
}
