/* synth.c — deterministic, class-structured demo features. Each class has a random unit
 * prototype; its text embedding is the prototype plus a little noise, and each sample is
 * its class prototype blended with a confusable class and noise. quality moves the blend,
 * so models (qualities) and datasets (seeds, class counts) get distinct, believable
 * accuracies. The same spec always writes the same bytes. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels.h"

static uint64_t next_u64(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) / 9007199254740992.0; }

static double gaussian(uint64_t *s)
{
	double u = uniform(s), v = uniform(s);
	return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static void unit(float *v, int64_t d)
{
	double ss = 0;
	for (int64_t j = 0; j < d; j++)
		ss += (double)v[j] * v[j];
	float inv = ss > 0 ? (float)(1 / sqrt(ss)) : 0;
	for (int64_t j = 0; j < d; j++)
		v[j] *= inv;
}

static int save_matrix(const char *dir, const char *name, const float *m, int64_t rows, int64_t cols, int fp16,
		       char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int64_t shape[2] = {rows, cols};
	if (!fp16)
		return npy_save(path, DT_F32, 2, shape, m, err, errlen);
	uint16_t *h = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *h);
	for (int64_t i = 0; i < rows * cols; i++)
		h[i] = float_to_half(m[i]);
	int rc = npy_save(path, DT_F16, 2, shape, h, err, errlen);
	free(h);
	return rc;
}

int synth_write(const SynthSpec *s, const char *dir, char *err, size_t errlen)
{
	if (s->classes < 1 || s->dim < 2 || s->samples < 1 || s->quality < 0 || s->quality > 1) {
		snprintf(err, errlen, "synth needs classes >= 1, dim >= 2, samples >= 1 and quality in [0, 1]");
		return -1;
	}
	if (mkdir(dir, 0777) != 0 && access(dir, W_OK) != 0) {
		snprintf(err, errlen, "cannot create %s", dir);
		return -1;
	}
	int64_t c = s->classes, d = s->dim, n = s->samples;
	/* prototypes and text depend on the dataset seed only (the low 32 bits); samples on
	 * the whole seed, so models on one dataset share its classes */
	uint64_t data_rng = (s->seed & 0xffffffffULL) * 2654435761ULL + 1, rng = s->seed * 0x9e3779b97f4a7c15ULL + 7;
	float *proto = malloc((size_t)(c * d) * sizeof(float)), *text = malloc((size_t)(c * d) * sizeof(float));
	float *img = malloc((size_t)(n * d) * sizeof(float));
	int64_t *labels = malloc((size_t)n * sizeof(int64_t));
	for (int64_t i = 0; i < c * d; i++)
		proto[i] = (float)gaussian(&data_rng);
	for (int64_t k = 0; k < c; k++)
		unit(proto + k * d, d);
	for (int64_t i = 0; i < c * d; i++)
		text[i] = proto[i] + 0.35f * (float)gaussian(&data_rng) / sqrtf((float)d);
	/* labels belong to the dataset: every model sees the same samples' classes */
	for (int64_t i = 0; i < n; i++)
		labels[i] = (int64_t)(next_u64(&data_rng) % (uint64_t)c);
	/* how hard the dataset is: more classes, more confusion */
	double signal = 0.12 + 0.75 * s->quality, noise = 1.0;
	for (int64_t i = 0; i < n; i++) {
		int64_t y = labels[i];
		int64_t other = (int64_t)(next_u64(&rng) % (uint64_t)c);
		float *x = img + i * d;
		double confuse = 0.6 * uniform(&rng);
		for (int64_t j = 0; j < d; j++)
			x[j] = (float)(signal * proto[y * d + j] + confuse * proto[other * d + j] +
				       noise * gaussian(&rng) / sqrt((double)d) * 2.2);
	}
	int rc = save_matrix(dir, "images.npy", img, n, d, s->fp16, err, errlen);
	if (rc == 0)
		rc = save_matrix(dir, "text.npy", text, c, d, s->fp16, err, errlen);
	if (rc == 0) {
		char path[4096];
		snprintf(path, sizeof path, "%s/labels.npy", dir);
		rc = npy_save(path, DT_I64, 1, &n, labels, err, errlen);
	}
	free(proto);
	free(text);
	free(img);
	free(labels);
	return rc;
}
