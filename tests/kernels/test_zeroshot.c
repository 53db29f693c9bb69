/* test_zeroshot.c — the C reference against hand-computed cases: ties go to the lower
 * class, k larger than the class count, a single class, float16 input, per-class and
 * mean-per-class counts, NaN and label errors; the spot check of a GPU result; .npy round
 * trips and half conversion. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../kernels/kernels.h"
#include "../unit/check.h"

static Npy matrix(DType t, int64_t rows, int64_t cols, const void *data)
{
	Npy a = {.dtype = t, .ndim = cols ? 2 : 1, .shape = {rows, cols}, .data = data};
	return a;
}

static int run(Npy *img, Npy *txt, Npy *lab, ZeroshotResult *r, int threads, char *err)
{
	ZeroshotInput in;
	if (zeroshot_prepare(img, txt, lab, &in, err, 256) != 0)
		return -1;
	zeroshot_result_init(r, in.n, in.c, 1);
	int rc = zeroshot_cpu(&in, threads, r, err, 256);
	zeroshot_input_free(&in);
	return rc;
}

int main(void)
{
	char err[256];
	ZeroshotResult r;

	/* 4 samples, 3 classes in 2-D. Class 1 and 2 have the same direction (a tie). */
	float text[] = {1, 0, 0, 2, 0, 5}; /* normalised: (1,0), (0,1), (0,1) */
	float img[] = {3, 0.1f, 0.2f, 4, -1, 0, 0.1f, 0.1f};
	int64_t lab[] = {0, 2, 0, 1};
	Npy I = matrix(DT_F32, 4, 2, img), T = matrix(DT_F32, 3, 2, text), L = matrix(DT_I64, 4, 0, lab);
	CHECK(run(&I, &T, &L, &r, 1, err) == 0);
	CHECK(r.topk[0] == 0);                       /* (3, .1) is closest to class 0 */
	CHECK(r.topk[ZS_K * 1] == 1);                /* tie between 1 and 2: lower index first */
	CHECK(r.topk[ZS_K * 1 + 1] == 2);
	CHECK(r.topk[ZS_K * 1 + 3] == -1);           /* k > C: only C predictions */
	/* sample 2 (-1, 0): best are classes 1 and 2 (score 0) then 0 (score -1) */
	CHECK(r.topk[ZS_K * 2 + 0] == 1 && r.topk[ZS_K * 2 + 1] == 2 && r.topk[ZS_K * 2 + 2] == 0);
	/* sample 3 (.1, .1): 45 degrees, tie between 0 and 1/2 in exact arithmetic */
	/* sample 3 (.1, .1) scores class 0 and class 1 equally: the tie goes to class 0, so
	 * it is wrong (label 1); samples 0 and 1 are right (1 is labelled 2 but predicts 1) */
	CHECK(r.topk[ZS_K * 3] == 0);
	CHECK(r.top1 == 1);
	CHECK(r.top5 == 4);                          /* with 3 classes every label is in the top 5 */
	CHECK(r.class_count[0] == 2 && r.class_count[1] == 1 && r.class_count[2] == 1);
	/* the spot check a GPU result goes through: the reference's own picks pass, a tie's
	 * classes swapped pass (same score), a wrong pick in a sampled row fails naming it */
	{
		ZeroshotInput in;
		CHECK(zeroshot_prepare(&I, &T, &L, &in, err, 256) == 0);
		CHECK(zeroshot_spot_check(&in, &r, 4, err, 256) == 0);
		r.topk[ZS_K * 1] = 2, r.topk[ZS_K * 1 + 1] = 1; /* sample 1's tie, the other way round */
		CHECK(zeroshot_spot_check(&in, &r, 4, err, 256) == 0);
		r.topk[ZS_K * 2 + 2] = 1; /* sample 2's third pick: class 1 (score 0) where class 0 scores -1 */
		CHECK(zeroshot_spot_check(&in, &r, 4, err, 256) == -1 && strstr(err, "image row 2 (pick 3: class 1"));
		CHECK(zeroshot_spot_check(&in, &r, 1, err, 256) == 0); /* one sample: row 0 alone is looked at */
		r.topk[0] = 7; /* not a class at all */
		CHECK(zeroshot_spot_check(&in, &r, 1, err, 256) == -1 && strstr(err, "image row 0 (pick 1: class 7"));
		zeroshot_input_free(&in);
	}
	zeroshot_result_free(&r);

	/* one class: everything predicts it */
	float one_text[] = {0.3f, -0.2f};
	int32_t zeros[] = {0, 0, 0, 0};
	Npy T1 = matrix(DT_F32, 1, 2, one_text), L1 = matrix(DT_I32, 4, 0, zeros);
	CHECK(run(&I, &T1, &L1, &r, 2, err) == 0);
	CHECK(r.top1 == 4 && r.top5 == 4);
	CHECK(r.topk[0] == 0 && r.topk[1] == -1);
	zeroshot_result_free(&r);

	/* float16 input gives the same predictions as float32 on well-separated data */
	int64_t n = 300, c = 7, d = 16;
	float *fi = malloc((size_t)(n * d) * sizeof(float)), *ft = malloc((size_t)(c * d) * sizeof(float));
	uint16_t *hi = malloc((size_t)(n * d) * 2), *ht = malloc((size_t)(c * d) * 2);
	int64_t *labels = malloc((size_t)n * 8);
	srand(3);
	for (int64_t i = 0; i < c * d; i++)
		ft[i] = (float)(rand() % 200 - 100) / 50.0f;
	for (int64_t i = 0; i < n; i++) {
		labels[i] = i % c;
		for (int64_t j = 0; j < d; j++)
			fi[i * d + j] = ft[(i % c) * d + j] * 3 + (float)(rand() % 100 - 50) / 100.0f;
	}
	for (int64_t i = 0; i < n * d; i++)
		hi[i] = float_to_half(fi[i]);
	for (int64_t i = 0; i < c * d; i++)
		ht[i] = float_to_half(ft[i]);
	Npy I32 = matrix(DT_F32, n, d, fi), T32 = matrix(DT_F32, c, d, ft), I16 = matrix(DT_F16, n, d, hi),
	    T16 = matrix(DT_F16, c, d, ht), Ln = matrix(DT_I64, n, 0, labels);
	ZeroshotResult r16;
	CHECK(run(&I32, &T32, &Ln, &r, 4, err) == 0);
	CHECK(run(&I16, &T16, &Ln, &r16, 1, err) == 0);
	int same = 0;
	for (int64_t i = 0; i < n; i++)
		same += r.topk[i * ZS_K] == r16.topk[i * ZS_K];
	CHECK(same >= n - 3);
	CHECK(r.top1 > n * 9 / 10); /* separable data is mostly right */
	zeroshot_result_free(&r);
	zeroshot_result_free(&r16);

	/* NaN in a feature row is an error naming the row */
	fi[5 * d + 2] = NAN;
	CHECK(run(&I32, &T32, &Ln, &r, 2, err) == -1);
	CHECK_CONTAINS(err, "row 5 contains NaN");
	zeroshot_result_free(&r);
	fi[5 * d + 2] = 0;

	/* labels out of range, shape mismatches */
	labels[9] = c;
	ZeroshotInput in;
	CHECK(zeroshot_prepare(&I32, &T32, &Ln, &in, err, sizeof err) == -1);
	CHECK_CONTAINS(err, "label 7 of sample 9 is out of range");
	labels[9] = 0;
	Npy Tbad = matrix(DT_F32, c, d - 1, ft);
	CHECK(zeroshot_prepare(&I32, &Tbad, &Ln, &in, err, sizeof err) == -1);
	CHECK_CONTAINS(err, "dimension mismatch");
	Npy Lshort = matrix(DT_I64, n - 1, 0, labels);
	CHECK(zeroshot_prepare(&I32, &T32, &Lshort, &in, err, sizeof err) == -1);
	CHECK_CONTAINS(err, "count mismatch");

	/* .npy round trip */
	double values_for_f8[2] = {1, 2};
	char path[] = "/tmp/kiln-npy-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	int64_t shape[2] = {c, d};
	CHECK(npy_save(path, DT_F16, 2, shape, ht, err, sizeof err) == 0);
	Npy back;
	CHECK(npy_load(path, &back, err, sizeof err) == 0);
	CHECK(back.dtype == DT_F16 && back.ndim == 2 && back.shape[0] == c && back.shape[1] == d);
	CHECK(memcmp(back.data, ht, (size_t)(c * d) * 2) == 0);
	npy_free(&back);
	const char *hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n";
	FILE *f = fopen(path, "wb");
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc((int)strlen(hdr), f);
	fputc(0, f);
	fputs(hdr, f);
	fwrite(values_for_f8, 8, 2, f);
	fclose(f);
	CHECK(npy_load(path, &back, err, sizeof err) == -1);
	CHECK_CONTAINS(err, "unsupported dtype");
	unlink(path);

	/* half conversion */
	float values[] = {0, 1, -2.5f, 65504, 6.1035156e-05f, 5.9604645e-08f, 0.1f};
	for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
		float back_f = half_to_float(float_to_half(values[i]));
		CHECK(fabsf(back_f - values[i]) <= fabsf(values[i]) * 1e-3f);
	}
	CHECK(isinf(half_to_float(float_to_half(1e6f))));
	CHECK(isnan(half_to_float(float_to_half(NAN))));

	free(fi), free(ft), free(hi), free(ht), free(labels);
	return check_exit();
}
