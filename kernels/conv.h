/* conv.h — `kiln-kernels conv`: convolution throughput for the layers of a ResNet, the
 * measurement the ImageNet recipe charts beside its training runs. Tensors are NHWC
 * (activations) and KRSC (filters), the layout tensor cores want and PyTorch's
 * channels_last gives. Each of the network's distinct convolutions is timed forward,
 * backward-data and backward-filter; network totals weight every layer by how often it
 * occurs. The CUDA back end uses cuDNN with autotuned algorithms in fp16 or bf16 (checked
 * against the C reference on one image); the C reference is a direct convolution in fp32
 * with threads, exact enough to check PyTorch against (tests do). */
#ifndef KILN_CONV_H
#define KILN_CONV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One distinct convolution of a network: in channels c, out channels k, an r x r kernel. */
typedef struct {
	const char *name;
	int c, k, r, stride, pad;
	int stage; /* input resolution: 0 the image, 1 after the stem's pool, 2..4 the later stages */
	int count; /* how many times the network uses it */
} ConvLayer;

typedef struct {
	int n, c, h, w;  /* input NHWC */
	int k, r, s;     /* filter KRSC */
	int stride, pad;
	int p, q;        /* output height and width */
} ConvShape;

typedef enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_FILTER, CONV_PASSES } ConvPass;
/* "fwd", "bwd_data", "bwd_filter" */
extern const char *const conv_pass_names[CONV_PASSES];

/* The distinct convolutions of net ("resnet50", "resnet18"); their number, or -1. */
int conv_layers(const char *net, const ConvLayer **layers);
ConvShape conv_shape(const ConvLayer *l, int batch, int image_size);
/* Multiply-adds times two: the same for each pass. */
double conv_flops(const ConvShape *s);

/* The C reference (fp32, threads > 1 splits the work). */
void conv_forward_cpu(const ConvShape *s, const float *x, const float *w, float *y, int threads);
void conv_backward_data_cpu(const ConvShape *s, const float *dy, const float *w, float *dx, int threads);
void conv_backward_filter_cpu(const ConvShape *s, const float *x, const float *dy, float *dw, int threads);
/* Deterministic values in [-1, 1) for test tensors. */
void conv_fill(float *a, size_t n, unsigned long long seed);

typedef struct {
	const char *net;
	int batch, image_size;
	int warmup, iters;
	int threads;                /* the C reference */
	int passes[CONV_PASSES];
	const char *dtype;          /* CUDA: "fp16" or "bf16"; the C reference is fp32 */
	const char *layers;         /* comma-separated layer names to keep; NULL: all */
	int graph_api;              /* CUDA: also time each pass through cuDNN's graph API */
} ConvSpec;

typedef struct {
	const ConvLayer *layer;
	ConvShape shape;
	double seconds[CONV_PASSES]; /* mean per call; 0 where the pass did not run. CUDA: the
	                              * calls replayed as one CUDA graph (GPU time, no launch gaps)
	                              * where the capture worked, else loop_seconds */
	double loop_seconds[CONV_PASSES]; /* CUDA: the same calls made one after another */
	double host_seconds[CONV_PASSES]; /* CUDA: the CPU time to issue one call in that loop */
	double api_seconds[CONV_PASSES];  /* CUDA: the graph API's fastest plan, calls one after
	                                   * another (0: it did not run: a note on stderr says why) */
	long long api_engine[CONV_PASSES]; /* its engine's global index */
	double api_diff[CONV_PASSES];      /* its output against the legacy call's, relative */
	char algo[CONV_PASSES][40];  /* the algorithm the autotuner chose ("direct" for C) */
} ConvPoint;

typedef struct {
	const char *device, *dtype;
	ConvPoint *points; /* owned */
	int npoints;
	int correct;       /* CUDA: every checked layer within tolerance of the C reference */
	double max_rel_err;
	char check[200];
} ConvResult;

/* The layers spec selects (every one of net unless spec->layers names some); their number,
 * or -1 with err (an unknown net or layer name). */
int conv_select(const ConvSpec *spec, const ConvLayer **selected, int max, char *err, size_t errlen);
int conv_cpu(const ConvSpec *spec, ConvResult *r, char *err, size_t errlen);
/* cuDNN (libkiln-kernels-cudnn.so); -1 with err when unavailable. */
int conv_cuda(const ConvSpec *spec, ConvResult *r, char *err, size_t errlen);
/* JSON: per-layer figures as "layers" [{"step": i, "name", shape, "gflop", "<pass>_ms",
 * "<pass>_tflops", "<pass>_algo"}], per pass network totals {"ms", "tflops",
 * "images_per_s"}; with one pass, also "tflops", "images_per_s" and layers[].tflops. */
int conv_write_json(const char *path, const ConvSpec *spec, const ConvResult *r, char *err, size_t errlen);
/* For one selected layer: runs the C reference on seeded inputs and writes x.npy, w.npy,
 * y.npy (forward), dy.npy, dx.npy (backward-data) and dw.npy (backward-filter) to dir. */
int conv_dump(const ConvSpec *spec, const char *dir, char *err, size_t errlen);
void conv_result_free(ConvResult *r);

#ifdef __cplusplus
}
#endif

#endif
