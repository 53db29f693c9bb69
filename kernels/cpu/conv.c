/* conv.c — ResNet convolution shapes and the C reference of `kiln-kernels conv`: a direct
 * NHWC/KRSC convolution in fp32, forward, backward-data and backward-filter, each split
 * over threads so that no two threads write the same element (rows of the output, rows of
 * the input gradient, output channels of the filter gradient). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../conv.h"
#include "../kernels.h"

const char *const conv_pass_names[CONV_PASSES] = {"fwd", "bwd_data", "bwd_filter"};

/* torchvision's ResNet-50 (v1.5: the stride sits in the 3x3 of each stage's first block) */
static const ConvLayer resnet50[] = {
	{"conv1", 3, 64, 7, 2, 3, 0, 1},
	{"l1.reduce0", 64, 64, 1, 1, 0, 1, 1},      {"l1.reduce", 256, 64, 1, 1, 0, 1, 2},
	{"l1.conv3", 64, 64, 3, 1, 1, 1, 3},        {"l1.expand", 64, 256, 1, 1, 0, 1, 3},
	{"l1.down", 64, 256, 1, 1, 0, 1, 1},
	{"l2.reduce0", 256, 128, 1, 1, 0, 1, 1},    {"l2.conv3s2", 128, 128, 3, 2, 1, 1, 1},
	{"l2.reduce", 512, 128, 1, 1, 0, 2, 3},     {"l2.conv3", 128, 128, 3, 1, 1, 2, 3},
	{"l2.expand", 128, 512, 1, 1, 0, 2, 4},     {"l2.down", 256, 512, 1, 2, 0, 1, 1},
	{"l3.reduce0", 512, 256, 1, 1, 0, 2, 1},    {"l3.conv3s2", 256, 256, 3, 2, 1, 2, 1},
	{"l3.reduce", 1024, 256, 1, 1, 0, 3, 5},    {"l3.conv3", 256, 256, 3, 1, 1, 3, 5},
	{"l3.expand", 256, 1024, 1, 1, 0, 3, 6},    {"l3.down", 512, 1024, 1, 2, 0, 2, 1},
	{"l4.reduce0", 1024, 512, 1, 1, 0, 3, 1},   {"l4.conv3s2", 512, 512, 3, 2, 1, 3, 1},
	{"l4.reduce", 2048, 512, 1, 1, 0, 4, 2},    {"l4.conv3", 512, 512, 3, 1, 1, 4, 2},
	{"l4.expand", 512, 2048, 1, 1, 0, 4, 3},    {"l4.down", 1024, 2048, 1, 2, 0, 3, 1},
};

/* torchvision's ResNet-18 (basic blocks) */
static const ConvLayer resnet18[] = {
	{"conv1", 3, 64, 7, 2, 3, 0, 1},         {"l1.conv3", 64, 64, 3, 1, 1, 1, 4},
	{"l2.conv3s2", 64, 128, 3, 2, 1, 1, 1},  {"l2.conv3", 128, 128, 3, 1, 1, 2, 3},
	{"l2.down", 64, 128, 1, 2, 0, 1, 1},     {"l3.conv3s2", 128, 256, 3, 2, 1, 2, 1},
	{"l3.conv3", 256, 256, 3, 1, 1, 3, 3},   {"l3.down", 128, 256, 1, 2, 0, 2, 1},
	{"l4.conv3s2", 256, 512, 3, 2, 1, 3, 1}, {"l4.conv3", 512, 512, 3, 1, 1, 4, 3},
	{"l4.down", 256, 512, 1, 2, 0, 3, 1},
};

int conv_layers(const char *net, const ConvLayer **layers)
{
	if (!strcmp(net, "resnet50")) {
		*layers = resnet50;
		return (int)(sizeof resnet50 / sizeof *resnet50);
	}
	if (!strcmp(net, "resnet18")) {
		*layers = resnet18;
		return (int)(sizeof resnet18 / sizeof *resnet18);
	}
	return -1;
}

static int out_size(int in, int r, int stride, int pad) { return (in + 2 * pad - r) / stride + 1; }

ConvShape conv_shape(const ConvLayer *l, int batch, int image_size)
{
	int res[5];
	res[0] = image_size;
	res[1] = out_size(out_size(image_size, 7, 2, 3), 3, 2, 1); /* the stem: conv1, then max-pool */
	for (int i = 2; i < 5; i++)
		res[i] = out_size(res[i - 1], 3, 2, 1);
	ConvShape s = {batch, l->c, res[l->stage], res[l->stage], l->k, l->r, l->r, l->stride, l->pad, 0, 0};
	s.p = out_size(s.h, s.r, s.stride, s.pad);
	s.q = out_size(s.w, s.s, s.stride, s.pad);
	return s;
}

double conv_flops(const ConvShape *s) { return 2.0 * s->n * s->k * s->p * s->q * (double)s->c * s->r * s->s; }

void conv_fill(float *a, size_t n, unsigned long long seed)
{
	unsigned long long x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		a[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 2 - 1);
	}
}

/* ---- a parallel for: [0, total) in contiguous blocks, one per thread ---- */

typedef struct {
	const ConvShape *s;
	const float *a, *b;
	float *out;
	void (*body)(const ConvShape *, const float *, const float *, float *, long lo, long hi);
	long lo, hi;
} Slice;

static void *slice_main(void *arg)
{
	Slice *sl = arg;
	sl->body(sl->s, sl->a, sl->b, sl->out, sl->lo, sl->hi);
	return NULL;
}

static void parallel(const ConvShape *s, const float *a, const float *b, float *out, long total, int threads,
		     void (*body)(const ConvShape *, const float *, const float *, float *, long, long))
{
	if (threads > 64)
		threads = 64;
	if (threads > total)
		threads = (int)total;
	if (threads < 1)
		threads = 1;
	pthread_t th[64];
	Slice sl[64];
	int started[64] = {0};
	for (int t = 0; t < threads; t++) {
		sl[t] = (Slice){s, a, b, out, body, total * t / threads, total * (t + 1) / threads};
		started[t] = t > 0 && pthread_create(&th[t], NULL, slice_main, &sl[t]) == 0;
	}
	body(s, a, b, out, sl[0].lo, sl[0].hi);
	for (int t = 1; t < threads; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		else /* no thread: this one does the slice itself */
			body(s, a, b, out, sl[t].lo, sl[t].hi);
	}
}

/* element offsets of x[n][h][w][0], y[n][p][q][0] and w[k][r][t][0] */
#define X_AT(sh, n_, h_, w_) (((size_t)((n_) * (sh)->h + (h_)) * (sh)->w + (w_)) * (sh)->c)
#define Y_AT(sh, n_, p_, q_) (((size_t)((n_) * (sh)->p + (p_)) * (sh)->q + (q_)) * (sh)->k)
#define W_AT(sh, k_, r_, t_) (((size_t)((k_) * (sh)->r + (r_)) * (sh)->s + (t_)) * (sh)->c)

/* rows [lo, hi) of the output, a row being one (n, p) */
static void forward_rows(const ConvShape *s, const float *x, const float *w, float *y, long lo, long hi)
{
	for (long row = lo; row < hi; row++) {
		int n = (int)(row / s->p), p = (int)(row % s->p);
		for (int q = 0; q < s->q; q++) {
			float *out = y + Y_AT(s, n, p, q);
			for (int k = 0; k < s->k; k++) {
				float acc = 0;
				for (int r = 0; r < s->r; r++) {
					int h = p * s->stride - s->pad + r;
					if (h < 0 || h >= s->h)
						continue;
					for (int t = 0; t < s->s; t++) {
						int ww = q * s->stride - s->pad + t;
						if (ww < 0 || ww >= s->w)
							continue;
						const float *xs = x + X_AT(s, n, h, ww), *ws = w + W_AT(s, k, r, t);
						for (int c = 0; c < s->c; c++)
							acc += xs[c] * ws[c];
					}
				}
				out[k] = acc;
			}
		}
	}
}

/* rows [lo, hi) of the input gradient, a row being one (n, h) */
static void backward_data_rows(const ConvShape *s, const float *dy, const float *w, float *dx, long lo, long hi)
{
	for (long row = lo; row < hi; row++) {
		int n = (int)(row / s->h), h = (int)(row % s->h);
		for (int ww = 0; ww < s->w; ww++) {
			float *out = dx + X_AT(s, n, h, ww);
			memset(out, 0, (size_t)s->c * sizeof *out);
			for (int r = 0; r < s->r; r++) {
				int ph = h + s->pad - r;
				if (ph < 0 || ph % s->stride || ph / s->stride >= s->p)
					continue;
				for (int t = 0; t < s->s; t++) {
					int qw = ww + s->pad - t;
					if (qw < 0 || qw % s->stride || qw / s->stride >= s->q)
						continue;
					const float *g = dy + Y_AT(s, n, ph / s->stride, qw / s->stride);
					for (int k = 0; k < s->k; k++) {
						const float *ws = w + W_AT(s, k, r, t);
						float a = g[k];
						for (int c = 0; c < s->c; c++)
							out[c] += a * ws[c];
					}
				}
			}
		}
	}
}

/* output channels [lo, hi) of the filter gradient */
static void backward_filter_channels(const ConvShape *s, const float *x, const float *dy, float *dw, long lo, long hi)
{
	size_t per_k = (size_t)s->r * s->s * s->c;
	memset(dw + lo * per_k, 0, (size_t)(hi - lo) * per_k * sizeof *dw);
	for (int n = 0; n < s->n; n++)
		for (int p = 0; p < s->p; p++)
			for (int q = 0; q < s->q; q++) {
				const float *g = dy + Y_AT(s, n, p, q);
				for (long k = lo; k < hi; k++) {
					float a = g[k];
					for (int r = 0; r < s->r; r++) {
						int h = p * s->stride - s->pad + r;
						if (h < 0 || h >= s->h)
							continue;
						for (int t = 0; t < s->s; t++) {
							int ww = q * s->stride - s->pad + t;
							if (ww < 0 || ww >= s->w)
								continue;
							const float *xs = x + X_AT(s, n, h, ww);
							float *out = dw + W_AT(s, k, r, t);
							for (int c = 0; c < s->c; c++)
								out[c] += a * xs[c];
						}
					}
				}
			}
}

void conv_forward_cpu(const ConvShape *s, const float *x, const float *w, float *y, int threads)
{
	parallel(s, x, w, y, (long)s->n * s->p, threads, forward_rows);
}

void conv_backward_data_cpu(const ConvShape *s, const float *dy, const float *w, float *dx, int threads)
{
	parallel(s, dy, w, dx, (long)s->n * s->h, threads, backward_data_rows);
}

void conv_backward_filter_cpu(const ConvShape *s, const float *x, const float *dy, float *dw, int threads)
{
	parallel(s, x, dy, dw, s->k, threads, backward_filter_channels);
}
