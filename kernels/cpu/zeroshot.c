/* zeroshot.c — the C reference of zero-shot classification: L2-normalise class text
 * embeddings and image features, score every class by cosine similarity, keep the top-5
 * per sample (ties go to the lower class index), and count top-1/top-5 and per-class
 * accuracy. Samples are split across threads; the CUDA back end is checked against it. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kernels.h"

int zeroshot_prepare(const Npy *images, const Npy *text, const Npy *labels, ZeroshotInput *in, char *err, size_t errlen)
{
	memset(in, 0, sizeof *in);
	if (images->ndim != 2 || (images->dtype != DT_F16 && images->dtype != DT_F32)) {
		snprintf(err, errlen, "image features must be a 2-D float16 or float32 array (N x D), got %d-D %s",
			 images->ndim, dtype_name(images->dtype));
		return -1;
	}
	if (text->ndim != 2 || (text->dtype != DT_F16 && text->dtype != DT_F32)) {
		snprintf(err, errlen, "class text embeddings must be a 2-D float16 or float32 array (C x D), got %d-D %s",
			 text->ndim, dtype_name(text->dtype));
		return -1;
	}
	if (labels->ndim != 1 || (labels->dtype != DT_I32 && labels->dtype != DT_I64)) {
		snprintf(err, errlen, "labels must be a 1-D int32 or int64 array (N), got %d-D %s", labels->ndim,
			 dtype_name(labels->dtype));
		return -1;
	}
	in->n = images->shape[0];
	in->d = images->shape[1];
	in->c = text->shape[0];
	if (text->shape[1] != in->d) {
		snprintf(err, errlen, "dimension mismatch: image features have D = %lld, text embeddings D = %lld",
			 (long long)in->d, (long long)text->shape[1]);
		return -1;
	}
	if (labels->shape[0] != in->n) {
		snprintf(err, errlen, "count mismatch: %lld image features but %lld labels", (long long)in->n,
			 (long long)labels->shape[0]);
		return -1;
	}
	if (in->c < 1 || in->d < 1) {
		snprintf(err, errlen, "need at least one class and one feature dimension");
		return -1;
	}
	in->labels = malloc((size_t)(in->n ? in->n : 1) * sizeof *in->labels);
	if (!in->labels) {
		snprintf(err, errlen, "out of memory for %lld labels", (long long)in->n);
		return -1;
	}
	for (int64_t i = 0; i < in->n; i++) {
		int64_t y = labels->dtype == DT_I64 ? ((const int64_t *)labels->data)[i] : ((const int32_t *)labels->data)[i];
		if (y < 0 || y >= in->c) {
			snprintf(err, errlen, "label %lld of sample %lld is out of range (there are %lld classes)", (long long)y,
				 (long long)i, (long long)in->c);
			free(in->labels);
			in->labels = NULL;
			return -1;
		}
		in->labels[i] = y;
	}
	in->images = images;
	in->text = text;
	return 0;
}

void zeroshot_input_free(ZeroshotInput *in)
{
	free(in->labels);
	in->labels = NULL;
}

int zeroshot_result_init(ZeroshotResult *r, int64_t n, int64_t c, int keep_topk)
{
	memset(r, 0, sizeof *r);
	r->n = n;
	r->c = c;
	r->class_count = calloc((size_t)c, sizeof(int64_t));
	r->class_top1 = calloc((size_t)c, sizeof(int64_t));
	r->topk = keep_topk ? malloc((size_t)(n ? n : 1) * ZS_K * sizeof(int32_t)) : NULL;
	return r->class_count && r->class_top1 && (!keep_topk || r->topk) ? 0 : -1;
}

void zeroshot_result_free(ZeroshotResult *r)
{
	free(r->class_count);
	free(r->class_top1);
	free(r->topk);
	memset(r, 0, sizeof *r);
}

void zeroshot_score(const ZeroshotInput *in, ZeroshotResult *r)
{
	int k = in->c < ZS_K ? (int)in->c : ZS_K;
	r->top1 = r->top5 = 0;
	memset(r->class_count, 0, (size_t)in->c * sizeof(int64_t));
	memset(r->class_top1, 0, (size_t)in->c * sizeof(int64_t));
	for (int64_t i = 0; i < in->n; i++) {
		const int32_t *p = r->topk + i * ZS_K;
		int64_t y = in->labels[i];
		r->class_count[y]++;
		if (p[0] == y) {
			r->top1++;
			r->class_top1[y]++;
		}
		for (int j = 0; j < k; j++)
			if (p[j] == y) {
				r->top5++;
				break;
			}
	}
}

/* Row i of a float16/float32 matrix as floats. */
static void load_row(const Npy *a, int64_t i, int64_t d, float *out)
{
	if (a->dtype == DT_F32) {
		memcpy(out, (const float *)a->data + i * d, (size_t)d * sizeof(float));
	} else {
		const uint16_t *h = (const uint16_t *)a->data + i * d;
		for (int64_t j = 0; j < d; j++)
			out[j] = half_to_float(h[j]);
	}
}

/* Normalises v in place; returns -1 if it holds NaN or infinity. A zero vector stays zero. */
static int normalise(float *v, int64_t d)
{
	double ss = 0;
	for (int64_t j = 0; j < d; j++)
		ss += (double)v[j] * v[j];
	if (!isfinite(ss))
		return -1;
	if (ss > 0) {
		float inv = (float)(1.0 / sqrt(ss));
		for (int64_t j = 0; j < d; j++)
			v[j] *= inv;
	}
	return 0;
}

/* Inserts (score, cls) into a best-first top-k list; equal scores keep the lower index
 * first because classes arrive in increasing order and only a strictly greater score moves. */
static void topk_insert(float *score, int32_t *cls, int k, float s, int32_t c)
{
	if (s <= score[k - 1])
		return;
	int j = k - 1;
	while (j > 0 && s > score[j - 1]) {
		score[j] = score[j - 1];
		cls[j] = cls[j - 1];
		j--;
	}
	score[j] = s;
	cls[j] = c;
}

int64_t zeroshot_text_normalised(const ZeroshotInput *in, float **out)
{
	float *text = malloc((size_t)(in->c * in->d) * sizeof(float));
	*out = NULL;
	if (!text)
		return -1;
	for (int64_t c = 0; c < in->c; c++) {
		load_row(in->text, c, in->d, text + c * in->d);
		if (normalise(text + c * in->d, in->d) != 0) {
			free(text);
			return c;
		}
	}
	*out = text;
	return -1;
}

typedef struct {
	const ZeroshotInput *in;
	const float *text; /* C x D normalised */
	ZeroshotResult *r;
	int64_t begin, end;
	int64_t bad_row; /* first row with NaN, or -1 */
} Slice;

static void *run_slice(void *arg)
{
	Slice *s = arg;
	const ZeroshotInput *in = s->in;
	int64_t d = in->d, c = in->c;
	int k = c < ZS_K ? (int)c : ZS_K;
	float *x = malloc((size_t)d * sizeof(float));
	s->bad_row = -1;
	for (int64_t i = s->begin; i < s->end; i++) {
		load_row(in->images, i, d, x);
		if (normalise(x, d) != 0) {
			s->bad_row = i;
			break;
		}
		float score[ZS_K];
		int32_t cls[ZS_K];
		for (int j = 0; j < ZS_K; j++) {
			score[j] = -INFINITY;
			cls[j] = -1;
		}
		for (int64_t cc = 0; cc < c; cc++) {
			const float *t = s->text + cc * d;
			float dot = 0;
			for (int64_t j = 0; j < d; j++)
				dot += x[j] * t[j];
			topk_insert(score, cls, k, dot, (int32_t)cc);
		}
		int32_t *out = s->r->topk + i * ZS_K;
		for (int j = 0; j < ZS_K; j++)
			out[j] = j < k ? cls[j] : -1;
	}
	free(x);
	return NULL;
}

int zeroshot_cpu(const ZeroshotInput *in, int threads, ZeroshotResult *r, char *err, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	float *text;
	int64_t bad_text = zeroshot_text_normalised(in, &text);
	if (bad_text >= 0 || !text) {
		if (bad_text >= 0)
			snprintf(err, errlen, "class text embedding %lld contains NaN or infinity", (long long)bad_text);
		else
			snprintf(err, errlen, "out of memory for %lld x %lld text embeddings", (long long)in->c, (long long)in->d);
		return -1;
	}
	int own_topk = !r->topk;
	if (own_topk && !(r->topk = malloc((size_t)(in->n ? in->n : 1) * ZS_K * sizeof(int32_t)))) {
		free(text);
		snprintf(err, errlen, "out of memory for predictions");
		return -1;
	}
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	if (in->n < threads * 64)
		threads = in->n > 64 ? (int)(in->n / 64) : 1;
	Slice slices[64];
	pthread_t tids[64];
	int64_t bad = -1, chunk = in->batch > 0 ? in->batch : in->n;
	for (int64_t begin = 0; begin < in->n && bad < 0; begin += chunk) {
		/* one chunk of `batch` rows at a time, split across the threads */
		int64_t rows = in->n - begin < chunk ? in->n - begin : chunk;
		int started[64] = {0};
		for (int t = 0; t < threads; t++) {
			slices[t] = (Slice){in, text, r, begin + rows * t / threads, begin + rows * (t + 1) / threads, -1};
			if (t > 0)
				started[t] = pthread_create(&tids[t], NULL, run_slice, &slices[t]) == 0;
		}
		run_slice(&slices[0]);
		for (int t = 1; t < threads; t++) {
			if (started[t])
				pthread_join(tids[t], NULL);
			else
				run_slice(&slices[t]); /* no thread to be had: do it here */
		}
		for (int t = 0; t < threads && bad < 0; t++)
			bad = slices[t].bad_row;
	}
	free(text);
	if (bad >= 0) {
		snprintf(err, errlen, "image feature row %lld contains NaN or infinity", (long long)bad);
		return -1;
	}
	zeroshot_score(in, r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	r->device = "cpu";
	return 0;
}

int zeroshot_spot_check(const ZeroshotInput *in, const ZeroshotResult *r, int64_t samples, char *err, size_t errlen)
{
	int64_t d = in->d, c = in->c, n = in->n;
	int k = c < ZS_K ? (int)c : ZS_K, rc = 0;
	float *text, *x = malloc((size_t)d * sizeof(float));
	int64_t bad_text = zeroshot_text_normalised(in, &text);
	if (!x || bad_text >= 0 || !text) {
		free(x), free(text);
		return 0; /* the back end said why already, or there is no memory to look: nothing to hold against it */
	}
	samples = samples < n ? samples : n;
	for (int64_t si = 0; si < samples && rc == 0; si++) {
		int64_t i = si * n / samples;
		load_row(in->images, i, d, x);
		if (normalise(x, d) != 0)
			continue;
		float score[ZS_K];
		int32_t cls[ZS_K];
		for (int j = 0; j < ZS_K; j++)
			score[j] = -INFINITY, cls[j] = -1;
		for (int64_t cc = 0; cc < c; cc++) {
			float dot = 0;
			for (int64_t j = 0; j < d; j++)
				dot += x[j] * text[cc * d + j];
			topk_insert(score, cls, k, dot, (int32_t)cc);
		}
		/* each pick's score within fp16's reach of the reference's pick at that rank: near-ties
		 * may swap classes, not scores (the products are fp16 on the tensor cores) */
		for (int j = 0; j < k && rc == 0; j++) {
			int32_t g = r->topk[i * ZS_K + j];
			double got = NAN;
			if (g >= 0 && g < c) {
				got = 0;
				for (int64_t q = 0; q < d; q++)
					got += (double)x[q] * text[g * d + q];
			}
			if (!(fabs(got - score[j]) <= 2e-3 + fabs(score[j]) * 2e-3)) {
				snprintf(err, errlen,
					 "the %s result disagrees with the C reference on image row %lld (pick %d: class %d scoring %.4g, "
					 "the reference's class %d scores %.4g): nothing was written; run with --device cpu, and "
					 "report this",
					 r->device ? r->device : "GPU", (long long)i, j + 1, (int)g, got, (int)cls[j], score[j]);
				rc = -1;
			}
		}
	}
	free(x), free(text);
	return rc;
}

int zeroshot_write_json(const char *path, const ZeroshotResult *r, const char *const *class_names, char *err, size_t errlen)
{
	OutFile o;
	if (out_open(&o, path, err, errlen) != 0)
		return -1;
	FILE *f = o.f;
	double mean = 0;
	int64_t present = 0;
	for (int64_t c = 0; c < r->c; c++)
		if (r->class_count[c]) {
			mean += (double)r->class_top1[c] / (double)r->class_count[c];
			present++;
		}
	mean = present ? mean / (double)present : 0;
	double n = r->n ? (double)r->n : 1;
	fprintf(f, "{\n  \"samples\": %lld,\n  \"classes\": %lld,\n", (long long)r->n, (long long)r->c);
	fprintf(f, "  \"top1\": %.6f,\n  \"top5\": %.6f,\n  \"mean_per_class\": %.6f,\n", r->top1 / n, r->top5 / n, mean);
	fprintf(f, "  \"device\": \"%s\",\n  \"seconds\": %.6f,\n  \"per_class\": [", r->device ? r->device : "?", r->seconds);
	for (int64_t c = 0; c < r->c; c++) {
		fprintf(f, "%s\n    {\"class\": %lld, ", c ? "," : "", (long long)c);
		if (class_names && class_names[c])
			fprintf(f, "\"name\": \"%s\", ", class_names[c]);
		fprintf(f, "\"samples\": %lld, \"top1\": %.6f}", (long long)r->class_count[c],
			r->class_count[c] ? (double)r->class_top1[c] / (double)r->class_count[c] : 0.0);
	}
	fprintf(f, "\n  ]\n}\n");
	return out_close(&o, err, errlen);
}
