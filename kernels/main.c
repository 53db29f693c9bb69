/* main.c — the kiln-kernels command line: zeroshot, synth, probe. Exit status: 0 done,
 * 1 a runtime failure (or an unusable machine for probe), 2 bad usage or bad input. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"

static int usage(void)
{
	fprintf(stderr,
		"usage:\n"
		"  kiln-kernels zeroshot --images X.npy --text T.npy --labels Y.npy --out R.json\n"
		"                        [--topk-out P.npy] [--device auto|cpu|cuda] [--threads N] [--batch ROWS]\n"
		"  kiln-kernels synth --classes C --dim D --samples N --seed S --quality Q [--fp32] --out DIR\n"
		"  kiln-kernels probe [--out F.json]\n");
	return 2;
}

static int fail(int code, const char *msg)
{
	fprintf(stderr, "kiln-kernels: %s\n", msg);
	return code;
}

static int cmd_zeroshot(int argc, char **argv)
{
	static const struct option opts[] = {{"images", 1, 0, 'i'}, {"text", 1, 0, 't'},   {"labels", 1, 0, 'l'},
					     {"out", 1, 0, 'o'},    {"topk-out", 1, 0, 'k'}, {"device", 1, 0, 'd'},
					     {"threads", 1, 0, 'j'}, {"batch", 1, 0, 'b'}, {0, 0, 0, 0}};
	const char *images = NULL, *text = NULL, *labels = NULL, *out = NULL, *topk_out = NULL, *device = "auto";
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	long long batch = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': images = optarg; break;
		case 't': text = optarg; break;
		case 'l': labels = optarg; break;
		case 'o': out = optarg; break;
		case 'k': topk_out = optarg; break;
		case 'd': device = optarg; break;
		case 'j': threads = strtol(optarg, NULL, 10); break;
		case 'b':
			batch = strtoll(optarg, NULL, 10);
			if (batch < 1)
				return fail(2, "--batch takes a positive number of rows");
			break;
		default: return usage();
		}
	}
	if (!images || !text || !labels || !out)
		return usage();
	if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
		return fail(2, "--device takes auto, cpu or cuda");
	char err[512];
	Npy a = {0}, b = {0}, y = {0};
	ZeroshotInput in;
	ZeroshotResult r;
	int rc = 2;
	if (npy_load(images, &a, err, sizeof err) || npy_load(text, &b, err, sizeof err) ||
	    npy_load(labels, &y, err, sizeof err) || zeroshot_prepare(&a, &b, &y, &in, err, sizeof err)) {
		fail(2, err);
		goto out;
	}
	in.batch = batch;
	if (zeroshot_result_init(&r, in.n, in.c, 1) != 0) {
		rc = fail(1, "out of memory");
		goto out_in;
	}
	char why[256] = "";
	int use_cuda = !strcmp(device, "cuda") || (!strcmp(device, "auto") && cuda_available(why, sizeof why));
	if (!strcmp(device, "cuda") && !cuda_available(why, sizeof why)) {
		snprintf(err, sizeof err, "--device cuda: %s", why);
		rc = fail(1, err);
		goto out_r;
	}
	if (!strcmp(device, "auto") && !use_cuda)
		fprintf(stderr, "kiln-kernels: %s: using the C back end\n", why);
	int run = use_cuda ? zeroshot_cuda(&in, &r, err, sizeof err) : zeroshot_cpu(&in, (int)threads, &r, err, sizeof err);
	if (run != 0) {
		rc = fail(strstr(err, "NaN") ? 2 : 1, err);
		goto out_r;
	}
	int64_t shape[2] = {in.n, ZS_K};
	if (zeroshot_write_json(out, &r, NULL, err, sizeof err) ||
	    (topk_out && npy_save(topk_out, DT_I32, 2, shape, r.topk, err, sizeof err))) {
		rc = fail(1, err);
		goto out_r;
	}
	printf("kiln-kernels: zeroshot on %s: %lld samples, %lld classes: top-1 %.2f%%, top-5 %.2f%% (%.3fs)\n", r.device,
	       (long long)r.n, (long long)r.c, 100.0 * r.top1 / (r.n ? r.n : 1), 100.0 * r.top5 / (r.n ? r.n : 1), r.seconds);
	rc = 0;
out_r:
	zeroshot_result_free(&r);
out_in:
	zeroshot_input_free(&in);
out:
	npy_free(&a);
	npy_free(&b);
	npy_free(&y);
	return rc;
}

static int cmd_synth(int argc, char **argv)
{
	static const struct option opts[] = {{"classes", 1, 0, 'c'}, {"dim", 1, 0, 'd'},     {"samples", 1, 0, 'n'},
					     {"seed", 1, 0, 's'},    {"quality", 1, 0, 'q'}, {"fp32", 0, 0, 'f'},
					     {"out", 1, 0, 'o'},     {0, 0, 0, 0}};
	SynthSpec s = {.classes = 10, .dim = 64, .samples = 500, .seed = 1, .quality = 0.5, .fp16 = 1};
	const char *out = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': s.classes = strtoll(optarg, NULL, 10); break;
		case 'd': s.dim = strtoll(optarg, NULL, 10); break;
		case 'n': s.samples = strtoll(optarg, NULL, 10); break;
		case 's': s.seed = strtoull(optarg, NULL, 10); break;
		case 'q': s.quality = strtod(optarg, NULL); break;
		case 'f': s.fp16 = 0; break;
		case 'o': out = optarg; break;
		default: return usage();
		}
	}
	if (!out)
		return usage();
	char err[512];
	if (synth_write(&s, out, err, sizeof err) != 0)
		return fail(2, err);
	return 0;
}

static int cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = {{"out", 1, 0, 'o'}, {0, 0, 0, 0}};
	const char *path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'o')
			return usage();
		path = optarg;
	}
	FILE *out = path ? fopen(path, "w") : stdout;
	if (!out)
		return fail(1, "cannot write the probe's output file");
	int usable = probe_run(out);
	if (path)
		fclose(out);
	return usable ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return usage();
	const char *cmd = argv[1];
	argv[1] = argv[0];
	if (!strcmp(cmd, "zeroshot"))
		return cmd_zeroshot(argc - 1, argv + 1);
	if (!strcmp(cmd, "synth"))
		return cmd_synth(argc - 1, argv + 1);
	if (!strcmp(cmd, "probe"))
		return cmd_probe(argc - 1, argv + 1);
	fprintf(stderr, "kiln-kernels: unknown command \"%s\"\n", cmd);
	return usage();
}
