/* test_cuda_vs_cpu.c — the CUDA back end against the C reference on fresh random inputs
 * (float16 and float32, several shapes), with the output buffer poisoned first so a kernel
 * that skips rows cannot pass. Exits 77 (skipped) where no GPU is usable. */
#include <stdlib.h>
#include <time.h>

#include "../../kernels/kernels.h"
#include "../unit/check.h"

int main(void)
{
	char why[256];
	if (!cuda_available(why, sizeof why)) {
		printf("skipped: %s\n", why);
		return 77;
	}
	srand((unsigned)time(NULL));
	int64_t shapes[][3] = {{1, 1, 8}, {777, 3, 64}, {5000, 1000, 512}, {20000, 37, 1024}, {3, 4000, 40}};
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
			Npy I = {.dtype = fp16 ? DT_F16 : DT_F32, .ndim = 2, .shape = {n, d}, .data = fp16 ? (void *)himg : img};
			Npy T = {.dtype = fp16 ? DT_F16 : DT_F32, .ndim = 2, .shape = {c, d}, .data = fp16 ? (void *)htxt : txt};
			Npy L = {.dtype = DT_I64, .ndim = 1, .shape = {n}, .data = lab};
			ZeroshotInput in;
			ZeroshotResult ref, gpu;
			char err[256];
			CHECK(zeroshot_prepare(&I, &T, &L, &in, err, sizeof err) == 0);
			zeroshot_result_init(&ref, n, c, 1);
			zeroshot_result_init(&gpu, n, c, 1);
			for (int64_t i = 0; i < n * ZS_K; i++)
				gpu.topk[i] = -12345; /* poison */
			CHECK(zeroshot_cpu(&in, 8, &ref, err, sizeof err) == 0);
			int rc = zeroshot_cuda(&in, &gpu, err, sizeof err);
			CHECK(rc == 0);
			if (rc != 0)
				fprintf(stderr, "cuda: %s\n", err);
			/* fp16 products can reorder near-ties: allow a tiny share of top-1 differences */
			int64_t differ = 0, poisoned = 0;
			for (int64_t i = 0; i < n; i++) {
				differ += gpu.topk[i * ZS_K] != ref.topk[i * ZS_K];
				poisoned += gpu.topk[i * ZS_K] == -12345;
			}
			CHECK(poisoned == 0);
			CHECK(differ <= n / 200 + 1);
			CHECK(llabs(gpu.top1 - ref.top1) <= n / 200 + 1);
			printf("n=%lld c=%lld d=%lld %s: top-1 cpu %lld cuda %lld, %lld differ\n", (long long)n, (long long)c,
			       (long long)d, fp16 ? "fp16" : "fp32", (long long)ref.top1, (long long)gpu.top1, (long long)differ);
			zeroshot_result_free(&ref);
			zeroshot_result_free(&gpu);
			zeroshot_input_free(&in);
			free(img), free(txt), free(himg), free(htxt), free(lab);
		}
	}
	return check_exit();
}
