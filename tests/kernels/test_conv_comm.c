/* test_conv_comm.c — the C references of `conv` and `comm`. Convolution: the forward pass
 * against an independent naive loop (NCHW indexing, written separately), and the three
 * passes against each other by the adjoint identities <conv(x, w), dy> = <x, dx(dy, w)> =
 * <w, dw(x, dy)> on shapes with stride, padding and 1x1/3x3/7x7 kernels; a different thread
 * count must give the same numbers; ResNet shapes match torchvision's. Communication:
 * every pattern gives every rank the exact sum for 1..7 ranks and buffer lengths that do
 * not split evenly (1, 3, 9, ... floats); bus-bandwidth factors follow nccl-tests. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/comm.h"
#include "../../kernels/conv.h"
#include "../unit/check.h"

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* y[n][k][p][q] by the textbook formula, reading x (NHWC) and w (KRSC) through their offsets */
static double naive_output(const ConvShape *s, const float *x, const float *w, int n, int k, int p, int q)
{
	double acc = 0;
	for (int c = 0; c < s->c; c++)
		for (int r = 0; r < s->r; r++)
			for (int t = 0; t < s->s; t++) {
				int h = p * s->stride + r - s->pad, ww = q * s->stride + t - s->pad;
				if (h >= 0 && h < s->h && ww >= 0 && ww < s->w)
					acc += (double)x[(size_t)n * s->h * s->w * s->c + ((size_t)h * s->w + ww) * s->c + c] *
					       w[(size_t)k * s->r * s->s * s->c + ((size_t)r * s->s + t) * s->c + c];
			}
	return acc;
}

static void conv_case(int n, int c, int h, int k, int r, int stride, int pad)
{
	ConvShape s = {n, c, h, h, k, r, r, stride, pad, (h + 2 * pad - r) / stride + 1, (h + 2 * pad - r) / stride + 1};
	size_t nx = (size_t)n * h * h * c, nw = (size_t)k * r * r * c, ny = (size_t)n * s.p * s.q * k;
	float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *y1 = malloc(ny * 4), *dy = malloc(ny * 4),
	      *dx = malloc(nx * 4), *dw = malloc(nw * 4);
	conv_fill(x, nx, 11), conv_fill(w, nw, 12), conv_fill(dy, ny, 13);
	for (size_t i = 0; i < nx; i++) /* poison: a pass that skips elements cannot pass */
		dx[i] = NAN;
	for (size_t i = 0; i < nw; i++)
		dw[i] = NAN;
	conv_forward_cpu(&s, x, w, y, 3);
	conv_forward_cpu(&s, x, w, y1, 1);
	conv_backward_data_cpu(&s, dy, w, dx, 2);
	conv_backward_filter_cpu(&s, x, dy, dw, 5);
	CHECK(memcmp(y, y1, ny * 4) == 0);
	double worst = 0;
	for (int i = 0; i < n; i++)
		for (int kk = 0; kk < k; kk++)
			for (int p = 0; p < s.p; p++)
				for (int q = 0; q < s.q; q++) {
					double want = naive_output(&s, x, w, i, kk, p, q);
					double got = y[(((size_t)i * s.p + p) * s.q + q) * k + kk];
					worst = fmax(worst, fabs(got - want));
				}
	CHECK(worst < 1e-4 * c * r * r);
	double a = dot(y, dy, ny), b = dot(x, dx, nx), d = dot(w, dw, nw);
	double tol = 1e-4 * (fabs(a) + 1) * sqrt((double)c * r * r);
	CHECK(fabs(a - b) < tol);
	CHECK(fabs(a - d) < tol);
	if (fabs(a - b) >= tol || fabs(a - d) >= tol || worst >= 1e-4 * c * r * r)
		fprintf(stderr, "conv n%d c%d h%d k%d r%d s%d p%d: <y,dy> %.6g <x,dx> %.6g <w,dw> %.6g, forward error %.3g\n", n,
			c, h, k, r, stride, pad, a, b, d, worst);
	free(x), free(w), free(y), free(y1), free(dy), free(dx), free(dw);
}

static void comm_case(int ranks, CommPattern p)
{
	CommSpec s = {.ranks = ranks, .min_bytes = 4, .max_bytes = 4 * 729, .factor = 3, .warmup = 1, .iters = 2};
	s.patterns[p] = 1;
	CommResult r;
	char err[256];
	CHECK(comm_cpu(&s, &r, err, sizeof err) == 0);
	CHECK(r.correct);
	if (!r.correct)
		fprintf(stderr, "%d ranks: %s\n", ranks, r.check);
	CHECK(r.npoints == 7); /* 1, 3, 9, ..., 729 floats */
	for (int i = 0; i < r.npoints; i++)
		CHECK(r.points[i].seconds > 0 && r.points[i].algbw > 0);
	comm_result_free(&r);
}

int main(void)
{
	conv_case(2, 3, 9, 4, 3, 1, 1);
	conv_case(1, 5, 11, 6, 3, 2, 1);
	conv_case(3, 8, 8, 16, 1, 1, 0);
	conv_case(2, 16, 9, 8, 1, 2, 0);
	conv_case(1, 3, 23, 8, 7, 2, 3);
	conv_case(1, 7, 5, 3, 3, 1, 0);

	const ConvLayer *l;
	int n = conv_layers("resnet50", &l), uses = 0;
	CHECK(n == 24);
	for (int i = 0; i < n; i++)
		uses += l[i].count;
	CHECK(uses == 53); /* torchvision's resnet50 has 53 convolutions */
	ConvShape s = conv_shape(&l[0], 8, 224);
	CHECK(s.p == 112 && s.q == 112);
	s = conv_shape(&l[n - 1], 8, 224); /* l4.down: 1024 -> 2048, 14 -> 7 */
	CHECK(s.h == 14 && s.p == 7 && s.k == 2048);
	n = conv_layers("resnet18", &l), uses = 0;
	for (int i = 0; i < n; i++)
		uses += l[i].count;
	CHECK(uses == 20);
	CHECK(conv_layers("vgg", &l) == -1);
	ConvSpec spec = {.net = "resnet50", .layers = "l2.conv3,conv1"};
	const ConvLayer *sel[4];
	char err[256];
	CHECK(conv_select(&spec, sel, 4, err, sizeof err) == 2 && !strcmp(sel[0]->name, "l2.conv3"));
	spec.layers = "l9.x";
	CHECK(conv_select(&spec, sel, 4, err, sizeof err) == -1);
	CHECK_CONTAINS(err, "l9.x");

	for (int ranks = 1; ranks <= 7; ranks++)
		for (int p = 0; p < COMM_PATTERNS; p++)
			comm_case(ranks, (CommPattern)p);
	CHECK(comm_bus_factor(COMM_ALLREDUCE, 4) == 1.5);
	CHECK(comm_bus_factor(COMM_ALLREDUCE, 1) == 0);
	CHECK(comm_bus_factor(COMM_PS, 8) == 2);
	CHECK(comm_bus_factor(COMM_P2P, 8) == 7);
	return check_exit();
}
