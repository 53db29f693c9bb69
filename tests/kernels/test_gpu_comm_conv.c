/* test_gpu_comm_conv.c — `comm` and `conv` on a GPU: NCCL over every visible GPU gives every
 * rank the exact sum in each pattern (sizes that do not split evenly included), more ranks
 * than GPUs is an error naming both; cuDNN's three passes on ResNet-50 layers (stem, strided
 * 3x3, 1x1 downsample) in fp16 and bf16 agree with the C reference and report an algorithm.
 * Exits 77 (skipped) where no GPU is usable. */
#include <stdio.h>
#include <string.h>

#include "../../kernels/comm.h"
#include "../../kernels/conv.h"
#include "../../kernels/kernels.h"
#include "../unit/check.h"

int main(void)
{
	char why[512];
	if (!cuda_available(why, sizeof why)) {
		printf("skipped: %s\n", why);
		return 77;
	}
	CommSpec cs = {.ranks = 0, .min_bytes = 4, .max_bytes = 4 << 20, .factor = 7, .warmup = 1, .iters = 3,
		       .patterns = {1, 1, 1}};
	CommResult cr;
	CHECK(comm_cuda(&cs, &cr, why, sizeof why) == 0);
	CHECK(cr.correct);
	printf("comm: %d ranks, %d points: %s\n", cr.ranks, cr.npoints, cr.check);
	CHECK(cr.npoints == 3 * comm_sizes(&cs));
	for (int i = 0; i < cr.npoints; i++)
		CHECK(cr.points[i].seconds > 0);
	int ranks = cr.ranks;
	comm_result_free(&cr);
	cs.ranks = ranks + 1;
	CHECK(comm_cuda(&cs, &cr, why, sizeof why) == -1);
	CHECK_CONTAINS(why, "GPUs are visible");

	const char *dtypes[] = {"fp16", "bf16"};
	for (int d = 0; d < 2; d++) {
		ConvSpec s = {.net = "resnet50", .batch = 8, .image_size = 224, .warmup = 1, .iters = 2, .threads = 8,
			      .passes = {1, 1, 1}, .dtype = dtypes[d], .layers = "conv1,l3.conv3s2,l2.down,l4.expand"};
		ConvResult r;
		int rc = conv_cuda(&s, &r, why, sizeof why);
		CHECK(rc == 0);
		if (rc != 0) { /* r holds nothing to look at */
			printf("conv %s: %s\n", dtypes[d], why);
			continue;
		}
		CHECK(r.correct);
		printf("conv %s: max relative error %.3g: %s\n", dtypes[d], r.max_rel_err, r.check);
		CHECK(r.npoints == 4);
		for (int i = 0; i < r.npoints; i++)
			for (int p = 0; p < CONV_PASSES; p++)
				CHECK(r.points[i].seconds[p] > 0 && r.points[i].algo[p][0]);
		conv_result_free(&r);
	}
	return check_exit();
}
