/* test_cuda_vs_cpu.c — the CUDA back end against the C reference on fresh random inputs
 * (float16 and float32, several shapes; the seed is printed, KILN_SEED repeats a run), with
 * the output buffer poisoned first so a kernel that skips rows cannot pass. Every output
 * element is compared: each of the k predictions of every sample by its cosine score,
 * within tol + |ref|·eps of the reference's (near-ties may swap classes, not scores); each
 * shape also in small chunks and blocks, and a NaN row must be named. Exits 77 (skipped) where no GPU is usable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../kernels/kernels.h"
#include "../unit/check.h"

/* Cosine similarity of image row i and class c, in double, from the values the kernels saw. */
static double score(const float *img, const float *txt, int64_t d, int64_t i, int64_t c)
{
	double dot = 0, ni = 0, nc = 0;
	for (int64_t j = 0; j < d; j++) {
		double a = img[i * d + j], b = txt[c * d + j];
		dot += a * b, ni += a * a, nc += b * b;
	}
	return ni > 0 && nc > 0 ? dot / sqrt(ni * nc) : 0;
}

/* Every prediction of gpu: a valid class whose score matches the reference's k-th score. */
static void check_picks(const ZeroshotInput *in, const float *img, const float *txt, const ZeroshotResult *ref_r,
			const ZeroshotResult *gpu_r, int fp16, int mode)
{
	int64_t n = in->n, c = in->c, d = in->d;
	/* the kernel multiplies in fp16 on the tensor cores whatever the input (fp32 rows are
	 * rounded on the GPU), so fp32 input is held to fp16's tolerance: on an H200 near-ties
	 * of d=512 rows differed by up to 4e-5 */
	double tol = 2e-3, eps = 2e-3, worst = 0;
	int64_t differ = 0, bad = 0, kk = c < ZS_K ? c : ZS_K;
	for (int64_t i = 0; i < n; i++)
		for (int64_t k = 0; k < kk; k++) {
			int32_t g = gpu_r->topk[i * ZS_K + k], r = ref_r->topk[i * ZS_K + k];
			if (g < 0 || g >= c) {
				bad++;
				continue;
			}
			double want = score(img, txt, d, i, r), got = score(img, txt, d, i, g);
			double off = fabs(got - want), limit = tol + fabs(want) * eps;
			worst = off > worst ? off : worst;
			bad += off > limit;
			differ += g != r;
		}
	CHECK(bad == 0);
	CHECK(llabs(gpu_r->top1 - ref_r->top1) <= n / 200 + 1); /* counts follow from the picks */
	printf("n=%lld c=%lld d=%lld %s%s: top-1 cpu %lld cuda %lld; %lld of %lld picks differ in class, "
	       "worst score gap %.2e, %lld beyond tolerance\n",
	       (long long)n, (long long)c, (long long)d, fp16 ? "fp16" : "fp32",
	       mode ? " (1000-row chunks, 300 rows per product)" : "", (long long)ref_r->top1, (long long)gpu_r->top1,
	       (long long)differ, (long long)(n * kk), worst, (long long)bad);
}

int main(void)
{
	char why[256];
	if (!cuda_available(why, sizeof why)) {
		printf("skipped: %s\n", why);
		return 77;
	}
	const char *seed_env = getenv("KILN_SEED");
	unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
	printf("seed %u (KILN_SEED=%u repeats this run)\n", seed, seed);
	srand(seed);
	int64_t shapes[][3] = {{1, 1, 8}, {777, 3, 64}, {5000, 1000, 512}, {20000, 37, 1024}, {3, 4000, 40}, {3001, 7, 37}, {0, 3, 8}};
	for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
		for (int fp16 = 0; fp16 <= 1; fp16++) {
			int64_t n = shapes[s][0], c = shapes[s][1], d = shapes[s][2];
			float *img = malloc((size_t)(n * d) * 4), *txt = malloc((size_t)(c * d) * 4);
			uint16_t *himg = malloc((size_t)(n * d) * 2), *htxt = malloc((size_t)(c * d) * 2);
			int64_t *lab = malloc((size_t)n * 8);
			for (int64_t i = 0; i < c * d; i++)
				txt[i] = (float)rand() / RAND_MAX - 0.5f;
			for (int64_t i = 0; i < n; i++) {
				lab[i] = rand() % c;
				for (int64_t j = 0; j < d; j++)
					img[i * d + j] = txt[lab[i] * d + j] * 0.4f + (float)rand() / RAND_MAX - 0.5f;
			}
			for (int64_t i = 0; i < n * d; i++)
				himg[i] = float_to_half(img[i]);
			for (int64_t i = 0; i < c * d; i++)
				htxt[i] = float_to_half(txt[i]);
			if (fp16) { /* score what the kernels see: the rounded values */
				for (int64_t i = 0; i < n * d; i++)
					img[i] = half_to_float(himg[i]);
				for (int64_t i = 0; i < c * d; i++)
					txt[i] = half_to_float(htxt[i]);
			}
			Npy I = {.dtype = fp16 ? DT_F16 : DT_F32, .ndim = 2, .shape = {n, d}, .data = fp16 ? (void *)himg : img};
			Npy T = {.dtype = fp16 ? DT_F16 : DT_F32, .ndim = 2, .shape = {c, d}, .data = fp16 ? (void *)htxt : txt};
			Npy L = {.dtype = DT_I64, .ndim = 1, .shape = {n}, .data = lab};
			ZeroshotInput in;
			ZeroshotResult ref, gpu;
			char err[256];
			CHECK(zeroshot_prepare(&I, &T, &L, &in, err, sizeof err) == 0);
			zeroshot_result_init(&ref, n, c, 1);
			CHECK(zeroshot_cpu(&in, 8, &ref, err, sizeof err) == 0);
			/* mode 0: as a user runs it; mode 1: chunks of 1000 rows scored 300 at a time (the
			 * streams, chunk and block edges; rows past a block's end) */
			for (int mode = 0; mode <= 1; mode++) {
				if (mode)
					setenv("KILN_ZS_SCORE_ROWS", "300", 1);
				else
					unsetenv("KILN_ZS_SCORE_ROWS");
				in.batch = mode ? 1000 : 0;
				zeroshot_result_init(&gpu, n, c, 1);
				for (int64_t i = 0; i < n * ZS_K; i++)
					gpu.topk[i] = -12345; /* poison */
				int rc = zeroshot_cuda(&in, &gpu, err, sizeof err);
				CHECK(rc == 0);
				if (rc != 0)
					fprintf(stderr, "cuda: %s\n", err);
				check_picks(&in, img, txt, &ref, &gpu, fp16, mode);
				zeroshot_result_free(&gpu);
			}
			if (n >= 5000) { /* NaN (fp16) or infinity (fp32) in one image row is an error naming
					  * that row (chunked as mode 1) */
				float *row = fp16 ? NULL : img + 4321 * d;
				if (row)
					row[7] = INFINITY;
				else
					himg[4321 * d + 7] = 0x7e00;
				zeroshot_result_init(&gpu, n, c, 1);
				int rc = zeroshot_cuda(&in, &gpu, err, sizeof err);
				CHECK(rc == -1 && strstr(err, "row 4321"));
				printf("%s in row 4321: %s\n", fp16 ? "NaN" : "infinity", rc ? err : "(not noticed)");
				zeroshot_result_free(&gpu);
			}
			zeroshot_result_free(&ref);
			zeroshot_input_free(&in);
			free(img), free(txt), free(himg), free(htxt), free(lab);
		}
	}
	return check_exit();
}
