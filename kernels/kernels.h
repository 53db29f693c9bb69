/* kernels.h — kiln-kernels: .npy arrays in and out, the zero-shot evaluation with a plain
 * C reference and a CUDA back end, and deterministic demo features. Library code: every
 * function returns 0 or -1 with a message in err; nothing here exits. */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* C linkage for the CUDA modules too (C++ would look for mangled names the C objects lack,
 * and a module that needs one does not load). */
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DT_F16, DT_F32, DT_I32, DT_I64 } DType;

/* A C-ordered array read from (or for) a .npy file; data points into a mapping. */
typedef struct {
	DType dtype;
	int ndim;
	int64_t shape[4];
	const void *data;
	size_t nbytes;
	void *map;
	size_t map_len;
} Npy;

/* Reads path (memory-mapped). Formats 1.0-3.0, little-endian f2/f4/i4/i8, C order. */
int npy_load(const char *path, Npy *out, char *err, size_t errlen);
/* Parses the .npy bytes at [bytes, bytes + len) (which must outlive out): fills dtype,
 * shape, nbytes and data, checking that the shape's byte size fits in size_t and in len.
 * 0, or -1 with "path: why" in err. npy_load maps a file and calls this. */
int npy_parse(const void *bytes, size_t len, const char *path, Npy *out, char *err, size_t errlen);
void npy_free(Npy *a);
/* A file written whole or not at all: out_open opens PATH.tmp.PID for writing; out_close
 * checks every write, renames it over path, or removes it and says why in err. */
typedef struct {
	FILE *f;
	char *tmp;
	const char *path;
} OutFile;
int out_open(OutFile *o, const char *path, char *err, size_t errlen);
int out_close(OutFile *o, char *err, size_t errlen);

/* Writes a .npy file (version 1.0) atomically. */
int npy_save(const char *path, DType dtype, int ndim, const int64_t *shape, const void *data, char *err, size_t errlen);
const char *dtype_name(DType t);

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

#define ZS_K 5 /* top-k kept per sample: top-1 and top-5 accuracy */

/* Inputs of a zero-shot evaluation, checked by zeroshot_prepare(). */
typedef struct {
	const Npy *images; /* N x D, f16 or f32 */
	const Npy *text;   /* C x D, f16 or f32 */
	int64_t *labels;   /* N, converted to int64 and range-checked (owned) */
	int64_t n, c, d;
	int64_t batch;     /* rows per streamed chunk; 0: the back end chooses */
} ZeroshotInput;

typedef struct {
	int64_t n, c;
	int64_t top1, top5;   /* correct counts */
	int64_t *class_count; /* per class: samples, top-1 correct (c entries each, owned) */
	int64_t *class_top1;
	int32_t *topk;        /* n x ZS_K predicted classes, best first (owned; NULL if not kept) */
	double seconds;
	double kernel_seconds; /* cuda: the kernels alone (CUDA events, summed over chunks); cpu: 0 */
	const char *device;   /* "cpu" or "cuda" */
} ZeroshotResult;

/* Checks shapes and dtypes of the three arrays and converts labels. */
int zeroshot_prepare(const Npy *images, const Npy *text, const Npy *labels, ZeroshotInput *in, char *err, size_t errlen);
void zeroshot_input_free(ZeroshotInput *in);
/* Allocates the result's arrays (keep_topk: also n x ZS_K predictions). */
int zeroshot_result_init(ZeroshotResult *r, int64_t n, int64_t c, int keep_topk);
void zeroshot_result_free(ZeroshotResult *r);
/* Fills the accuracy counts from r->topk and the labels. */
void zeroshot_score(const ZeroshotInput *in, ZeroshotResult *r);

/* The class text embeddings as L2-normalised floats (C x D, malloc'd into *out). Returns
 * -1 when all are finite, else the first class holding NaN or infinity (*out is NULL). */
int64_t zeroshot_text_normalised(const ZeroshotInput *in, float **out);

/* The C reference: L2-normalise both sides, cosine similarity, top-k with ties to the
 * lower class index; threads > 1 splits samples. NaN in either input is an error. */
int zeroshot_cpu(const ZeroshotInput *in, int threads, ZeroshotResult *r, char *err, size_t errlen);
/* The CUDA back end (cuBLAS products and a top-5 pass, streaming); -1 with err when
 * unavailable. Its result is spot-checked against the C reference (zeroshot_spot_check on
 * ZS_SPOT_ROWS rows, fewer as C x D passes 1M, 4 from 8M on): a disagreement is an error,
 * never a result. */
int zeroshot_cuda(const ZeroshotInput *in, ZeroshotResult *r, char *err, size_t errlen);
/* Recomputes samples rows spread evenly over the input with the C reference and checks each
 * of r's picks scores within fp16's tolerance of the reference's pick at that rank (ties
 * may swap classes, not scores). 0, or -1 with the first disagreement in err. */
#define ZS_SPOT_ROWS 32
int zeroshot_spot_check(const ZeroshotInput *in, const ZeroshotResult *r, int64_t samples, char *err, size_t errlen);
/* Whether a CUDA device is usable (built with CUDA and a driver and GPU present). */
int cuda_available(char *why, size_t whylen);

/* Writes the result as JSON (top1, top5, mean_per_class, per_class, ...). */
int zeroshot_write_json(const char *path, const ZeroshotResult *r, const char *const *class_names, char *err, size_t errlen);

/* Deterministic class-structured demo features. quality in [0, 1] moves accuracy. */
typedef struct {
	int64_t classes, dim, samples;
	uint64_t seed;
	double quality;
	int fp16;
} SynthSpec;
int synth_write(const SynthSpec *s, const char *dir, char *err, size_t errlen);

/* GPU probe: writes JSON to out; returns 1 if the machine is usable for GPU work. */
int probe_run(FILE *out);

#ifdef __cplusplus
}
#endif

#endif
