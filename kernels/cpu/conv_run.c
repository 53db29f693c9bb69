/* conv_run.c — `kiln-kernels conv` around the kernels: which layers a spec selects, timing
 * the C reference, the JSON the recipes chart, and the tensors the tests check PyTorch
 * against. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../conv.h"
#include "../kernels.h"

int conv_select(const ConvSpec *spec, const ConvLayer **selected, int max, char *err, size_t errlen)
{
	const ConvLayer *all;
	int n = conv_layers(spec->net, &all);
	if (n < 0) {
		snprintf(err, errlen, "unknown network \"%s\" (known: resnet50, resnet18)", spec->net);
		return -1;
	}
	int kept = 0;
	if (!spec->layers || !*spec->layers) {
		for (int i = 0; i < n && kept < max; i++)
			selected[kept++] = &all[i];
		return kept;
	}
	const char *p = spec->layers;
	while (*p) {
		size_t len = strcspn(p, ",");
		int found = 0;
		for (int i = 0; i < n && !found; i++)
			if (strlen(all[i].name) == len && !strncmp(all[i].name, p, len)) {
				found = 1;
				if (kept < max)
					selected[kept++] = &all[i];
			}
		if (!found) {
			snprintf(err, errlen, "%s has no layer \"%.*s\" (its layers: %s ... %s)", spec->net, (int)len, p,
				 all[0].name, all[n - 1].name);
			return -1;
		}
		p += len + (p[len] == ',');
	}
	return kept;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run_pass(ConvPass pass, const ConvShape *s, float *x, float *w, float *y, int threads)
{
	if (pass == CONV_FWD)
		conv_forward_cpu(s, x, w, y, threads);
	else if (pass == CONV_BWD_DATA)
		conv_backward_data_cpu(s, y, w, x, threads); /* y holds dy, x receives dx */
	else
		conv_backward_filter_cpu(s, x, y, w, threads); /* w receives dw */
}

int conv_cpu(const ConvSpec *spec, ConvResult *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->device = "cpu";
	r->dtype = "fp32";
	const ConvLayer *sel[64];
	int n = conv_select(spec, sel, 64, err, errlen);
	if (n < 0)
		return -1;
	r->points = calloc((size_t)n, sizeof *r->points);
	if (!r->points) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		ConvPoint *pt = &r->points[r->npoints++];
		pt->layer = sel[i];
		pt->shape = conv_shape(sel[i], spec->batch, spec->image_size);
		const ConvShape *s = &pt->shape;
		size_t nx = (size_t)s->n * s->h * s->w * s->c, nw = (size_t)s->k * s->r * s->s * s->c,
		       ny = (size_t)s->n * s->p * s->q * s->k;
		float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *y = malloc(ny * sizeof *y);
		if (!x || !w || !y) {
			free(x), free(w), free(y);
			snprintf(err, errlen, "out of memory for layer %s at batch %d", sel[i]->name, spec->batch);
			conv_result_free(r);
			return -1;
		}
		conv_fill(x, nx, 1), conv_fill(w, nw, 2), conv_fill(y, ny, 3);
		for (int p = 0; p < CONV_PASSES; p++) {
			if (!spec->passes[p])
				continue;
			for (int k = 0; k < spec->warmup; k++)
				run_pass((ConvPass)p, s, x, w, y, spec->threads);
			double t0 = now();
			int iters = spec->iters > 0 ? spec->iters : 1;
			for (int k = 0; k < iters; k++)
				run_pass((ConvPass)p, s, x, w, y, spec->threads);
			pt->seconds[p] = (now() - t0) / iters;
			snprintf(pt->algo[p], sizeof pt->algo[p], "direct");
		}
		free(x), free(w), free(y);
	}
	r->correct = 1;
	snprintf(r->check, sizeof r->check, "the C reference (fp32) is what other back ends are checked against");
	return 0;
}

void conv_result_free(ConvResult *r)
{
	free(r->points);
	r->points = NULL;
	r->npoints = 0;
}

/* Network totals of one pass: seconds per batch with every layer weighted by its count. */
static double net_seconds(const ConvResult *r, ConvPass p, double *flops)
{
	double sec = 0, fl = 0;
	for (int i = 0; i < r->npoints; i++) {
		sec += r->points[i].seconds[p] * r->points[i].layer->count;
		fl += conv_flops(&r->points[i].shape) * r->points[i].layer->count;
	}
	*flops = fl;
	return sec;
}

int conv_write_json(const char *path, const ConvSpec *spec, const ConvResult *r, char *err, size_t errlen)
{
	OutFile o;
	if (out_open(&o, path, err, errlen) != 0)
		return -1;
	FILE *f = o.f;
	int ran = 0, only = 0;
	for (int p = 0; p < CONV_PASSES; p++)
		if (spec->passes[p])
			ran++, only = p;
	fprintf(f, "{\n  \"device\": \"%s\",\n  \"dtype\": \"%s\",\n  \"net\": \"%s\",\n  \"batch\": %d,\n  \"image_size\": %d,\n",
		r->device, r->dtype, spec->net, spec->batch, spec->image_size);
	fprintf(f, "  \"correct\": %s,\n  \"max_rel_err\": %.3g,\n  \"check\": \"%s\",\n  \"layers\": [", r->correct ? "true" : "false",
		r->max_rel_err, r->check);
	for (int i = 0; i < r->npoints; i++) {
		const ConvPoint *pt = &r->points[i];
		const ConvShape *s = &pt->shape;
		double gflop = conv_flops(s) / 1e9;
		fprintf(f, "%s\n    {\"step\": %d, \"name\": \"%s\", \"n\": %d, \"c\": %d, \"h\": %d, \"w\": %d, \"k\": %d, \"r\": %d, "
			"\"stride\": %d, \"count\": %d, \"gflop\": %.6g",
			i ? "," : "", i + 1, pt->layer->name, s->n, s->c, s->h, s->w, s->k, s->r, s->stride, pt->layer->count, gflop);
		for (int p = 0; p < CONV_PASSES; p++)
			if (spec->passes[p])
				fprintf(f, ", \"%s_ms\": %.6g, \"%s_tflops\": %.6g, \"%s_algo\": \"%s\"", conv_pass_names[p],
					pt->seconds[p] * 1e3, conv_pass_names[p],
					pt->seconds[p] > 0 ? gflop / pt->seconds[p] / 1e3 : 0, conv_pass_names[p], pt->algo[p]);
		for (int p = 0; p < CONV_PASSES; p++)
			if (spec->passes[p] && pt->loop_seconds[p] > 0)
				fprintf(f, ", \"%s_loop_ms\": %.6g, \"%s_host_us\": %.6g", conv_pass_names[p],
					pt->loop_seconds[p] * 1e3, conv_pass_names[p], pt->host_seconds[p] * 1e6);
		for (int p = 0; p < CONV_PASSES; p++)
			if (spec->passes[p] && pt->api_seconds[p] > 0)
				fprintf(f, ", \"%s_api_ms\": %.6g, \"%s_api_engine\": %lld, \"%s_api_diff\": %.3g",
					conv_pass_names[p], pt->api_seconds[p] * 1e3, conv_pass_names[p], pt->api_engine[p],
					conv_pass_names[p], pt->api_diff[p]);
		if (ran == 1)
			fprintf(f, ", \"tflops\": %.6g", pt->seconds[only] > 0 ? gflop / pt->seconds[only] / 1e3 : 0);
		fputc('}', f);
	}
	fprintf(f, "\n  ]");
	for (int p = 0; p < CONV_PASSES; p++) {
		if (!spec->passes[p])
			continue;
		double fl, sec = net_seconds(r, (ConvPass)p, &fl);
		fprintf(f, ",\n  \"%s\": {\"ms\": %.6g, \"tflops\": %.6g, \"images_per_s\": %.6g}", conv_pass_names[p], sec * 1e3,
			sec > 0 ? fl / sec / 1e12 : 0, sec > 0 ? spec->batch / sec : 0);
		if (ran == 1)
			fprintf(f, ",\n  \"pass\": \"%s\",\n  \"ms\": %.6g,\n  \"tflops\": %.6g,\n  \"images_per_s\": %.6g",
				conv_pass_names[p], sec * 1e3, sec > 0 ? fl / sec / 1e12 : 0, sec > 0 ? spec->batch / sec : 0);
	}
	fprintf(f, "\n}\n");
	return out_close(&o, err, errlen);
}

int conv_dump(const ConvSpec *spec, const char *dir, char *err, size_t errlen)
{
	const ConvLayer *sel[2];
	int n = conv_select(spec, sel, 2, err, errlen);
	if (n < 0)
		return -1;
	if (n != 1) {
		snprintf(err, errlen, "--dump writes one layer's tensors: name it with --layers");
		return -1;
	}
	if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	ConvShape s = conv_shape(sel[0], spec->batch, spec->image_size);
	int64_t xs[4] = {s.n, s.h, s.w, s.c}, ws[4] = {s.k, s.r, s.s, s.c}, ys[4] = {s.n, s.p, s.q, s.k};
	size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.k * s.r * s.s * s.c, ny = (size_t)s.n * s.p * s.q * s.k;
	float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *dy = malloc(ny * 4), *dx = malloc(nx * 4),
	      *dw = malloc(nw * 4);
	int rc = -1;
	if (!x || !w || !y || !dy || !dx || !dw) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	conv_fill(x, nx, 1), conv_fill(w, nw, 2), conv_fill(dy, ny, 3);
	conv_forward_cpu(&s, x, w, y, spec->threads);
	conv_backward_data_cpu(&s, dy, w, dx, spec->threads);
	conv_backward_filter_cpu(&s, x, dy, dw, spec->threads);
	struct {
		const char *name;
		const int64_t *shape;
		const float *data;
	} files[] = {{"x", xs, x}, {"w", ws, w}, {"y", ys, y}, {"dy", ys, dy}, {"dx", xs, dx}, {"dw", ws, dw}};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s.npy", dir, files[i].name);
		if (npy_save(path, DT_F32, 4, files[i].shape, files[i].data, err, errlen) != 0)
			goto out;
	}
	rc = 0;
out:
	free(x), free(w), free(y), free(dy), free(dx), free(dw);
	return rc;
}
