/* main.c — the kiln-kernels command line: zeroshot, synth, probe, comm, conv. Exit status: 0 done,
 * 1 a runtime failure (or an unusable machine for probe), 2 bad usage or bad input. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "conv.h"
#include "kernels.h"

static int usage(void)
{
	fprintf(stderr,
		"usage:\n"
		"  kiln-kernels zeroshot --images X.npy --text T.npy --labels Y.npy --out R.json\n"
		"                        [--topk-out P.npy] [--device auto|cpu|cuda] [--threads N] [--batch ROWS]\n"
		"  kiln-kernels synth --classes C --dim D --samples N --seed S --quality Q [--fp32] --out DIR\n"
		"  kiln-kernels probe [--out F.json]\n"
		"  kiln-kernels comm [--patterns allreduce,ps,p2p] [--ranks N] [--min-bytes 1K] [--max-bytes 64M]\n"
		"                    [--factor 4] [--iters N] [--warmup N] [--device auto|cpu|cuda] [--out F.json]\n"
		"  kiln-kernels conv [--net resnet50|resnet18] [--batch N] [--size PX] [--passes fwd,bwd_data,bwd_filter]\n"
		"                    [--layers NAME,...] [--dtype fp16|bf16] [--iters N] [--warmup N] [--threads N]\n"
		"                    [--device auto|cpu|cuda] [--out F.json] [--dump DIR] [--graph-api]\n");
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

/* "64M", "1K", "4096": bytes; 0 when malformed */
static size_t parse_bytes(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	size_t mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1024 * 1024, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1024ull * 1024 * 1024, end++;
	if (*end == 'B' || *end == 'b')
		end++;
	return *end || v < 1 ? 0 : (size_t)(v * mul);
}

/* Which of names[0..n) the comma-separated list picks (flags), or -1 naming the unknown one. */
static int parse_list(const char *list, const char *const *names, int n, int *flags, const char *what)
{
	memset(flags, 0, (size_t)n * sizeof *flags);
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		int found = 0;
		for (int i = 0; i < n; i++)
			if (strlen(names[i]) == len && !strncmp(names[i], p, len))
				flags[i] = found = 1;
		if (!found) {
			fprintf(stderr, "kiln-kernels: unknown %s \"%.*s\" (known:", what, (int)len, p);
			for (int i = 0; i < n; i++)
				fprintf(stderr, " %s", names[i]);
			fprintf(stderr, ")\n");
			return -1;
		}
		p += len + (p[len] == ',');
	}
	return 0;
}

/* auto: CUDA when usable, else the C back end with one line saying why; 1 CUDA, 0 C, -1 failed */
static int choose_device(const char *device)
{
	char why[256] = "";
	if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda")) {
		fail(2, "--device takes auto, cpu or cuda");
		return -1;
	}
	if (!strcmp(device, "cpu"))
		return 0;
	if (cuda_available(why, sizeof why))
		return 1;
	if (!strcmp(device, "cuda")) {
		fprintf(stderr, "kiln-kernels: --device cuda: %s\n", why);
		return -1;
	}
	fprintf(stderr, "kiln-kernels: %s: using the C back end\n", why);
	return 0;
}

static int cmd_comm(int argc, char **argv)
{
	static const struct option opts[] = {{"patterns", 1, 0, 'p'}, {"ranks", 1, 0, 'r'},  {"min-bytes", 1, 0, 'b'},
					     {"max-bytes", 1, 0, 'e'}, {"factor", 1, 0, 'f'}, {"iters", 1, 0, 'n'},
					     {"warmup", 1, 0, 'w'},    {"device", 1, 0, 'd'}, {"out", 1, 0, 'o'},
					     {0, 0, 0, 0}};
	CommSpec s = {.ranks = 0, .min_bytes = 1024, .max_bytes = 0, .factor = 4, .warmup = -1, .iters = -1};
	const char *patterns = "allreduce,ps,p2p", *device = "auto", *out = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': patterns = optarg; break;
		case 'r': s.ranks = (int)strtol(optarg, NULL, 10); break;
		case 'b': s.min_bytes = parse_bytes(optarg); break;
		case 'e': s.max_bytes = parse_bytes(optarg); break;
		case 'f': s.factor = (int)strtol(optarg, NULL, 10); break;
		case 'n': s.iters = (int)strtol(optarg, NULL, 10); break;
		case 'w': s.warmup = (int)strtol(optarg, NULL, 10); break;
		case 'd': device = optarg; break;
		case 'o': out = optarg; break;
		default: return usage();
		}
	}
	if (optind < argc)
		return usage();
	if (parse_list(patterns, comm_pattern_names, COMM_PATTERNS, s.patterns, "pattern") != 0)
		return 2;
	int cuda = choose_device(device);
	if (cuda < 0)
		return strcmp(device, "cuda") ? 2 : 1;
	if (!s.max_bytes)
		s.max_bytes = cuda ? 256u << 20 : 16u << 20; /* nccl-tests goes to 128M-8G on GPUs */
	int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (!s.ranks)
		s.ranks = cuda ? 0 : cpus < 2 ? 2 : cpus > 8 ? 8 : cpus; /* CUDA: every visible GPU */
	if (s.iters < 0)
		s.iters = cuda ? 20 : 5;
	if (s.warmup < 0)
		s.warmup = cuda ? 5 : 1;
	if (!s.min_bytes || s.min_bytes > s.max_bytes || s.factor < 1 || s.iters < 1)
		return fail(2, "--min-bytes and --max-bytes take sizes like 1K, 64M (min <= max), --factor and --iters positive numbers");
	char err[512];
	CommResult r;
	if ((cuda ? comm_cuda(&s, &r, err, sizeof err) : comm_cpu(&s, &r, err, sizeof err)) != 0)
		return fail(1, err);
	int rc = 0;
	if (out && comm_write_json(out, &s, &r, err, sizeof err) != 0)
		rc = fail(1, err);
	printf("# kiln-kernels comm on %s, %d ranks, %d iterations per size (GB/s = 1e9 B/s)\n", r.device, r.ranks, s.iters);
	printf("%-10s %12s %12s %12s %12s\n", "pattern", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s");
	for (int i = 0; i < r.npoints; i++)
		printf("%-10s %12zu %12.2f %12.3f %12.3f\n", comm_pattern_names[r.points[i].pattern], r.points[i].bytes,
		       r.points[i].seconds * 1e6, r.points[i].algbw, r.points[i].busbw);
	printf("# check: %s\n", r.check);
	if (r.ranks == 1)
		printf("# one rank: nothing crosses a link, so bus bandwidth is 0 and algbw only times the call "
		       "(nccl-tests' figures need two GPUs or more)\n");
	if (!r.correct)
		rc = fail(1, "a pattern gave a wrong sum: its figures mean nothing");
	comm_result_free(&r);
	return rc;
}

static int cmd_conv(int argc, char **argv)
{
	static const struct option opts[] = {{"net", 1, 0, 'm'},    {"batch", 1, 0, 'b'},  {"size", 1, 0, 's'},
					     {"passes", 1, 0, 'p'}, {"layers", 1, 0, 'l'}, {"dtype", 1, 0, 't'},
					     {"iters", 1, 0, 'n'},  {"warmup", 1, 0, 'w'}, {"threads", 1, 0, 'j'},
					     {"device", 1, 0, 'd'}, {"out", 1, 0, 'o'},    {"dump", 1, 0, 'D'},
					     {"graph-api", 0, 0, 'g'}, {0, 0, 0, 0}};
	ConvSpec s = {.net = "resnet50", .batch = 0, .image_size = 224, .warmup = -1, .iters = -1,
		      .threads = (int)sysconf(_SC_NPROCESSORS_ONLN), .dtype = "fp16"};
	const char *passes = "fwd,bwd_data,bwd_filter", *device = "auto", *out = NULL, *dump = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': s.net = optarg; break;
		case 'b': s.batch = (int)strtol(optarg, NULL, 10); break;
		case 's': s.image_size = (int)strtol(optarg, NULL, 10); break;
		case 'p': passes = optarg; break;
		case 'l': s.layers = optarg; break;
		case 't': s.dtype = optarg; break;
		case 'n': s.iters = (int)strtol(optarg, NULL, 10); break;
		case 'w': s.warmup = (int)strtol(optarg, NULL, 10); break;
		case 'j': s.threads = (int)strtol(optarg, NULL, 10); break;
		case 'd': device = optarg; break;
		case 'o': out = optarg; break;
		case 'D': dump = optarg; break;
		case 'g': s.graph_api = 1; break;
		default: return usage();
		}
	}
	if (optind < argc)
		return usage();
	if (parse_list(passes, conv_pass_names, CONV_PASSES, s.passes, "pass") != 0)
		return 2;
	if (strcmp(s.dtype, "fp16") && strcmp(s.dtype, "bf16"))
		return fail(2, "--dtype takes fp16 or bf16 (the C reference computes in fp32)");
	if (s.image_size < 32 || s.image_size > 4096 || s.batch < 0 || s.batch > 4096)
		return fail(2, "--size takes 32 to 4096 pixels, --batch 1 to 4096 images");
	char err[512];
	if (dump) {
		s.batch = s.batch ? s.batch : 1;
		if (conv_dump(&s, dump, err, sizeof err) != 0)
			return fail(2, err);
		return 0;
	}
	int cuda = choose_device(device);
	if (cuda < 0)
		return strcmp(device, "cuda") ? 2 : 1;
	s.batch = s.batch ? s.batch : cuda ? 64 : 1;
	s.iters = s.iters >= 0 ? s.iters : cuda ? 10 : 1;
	s.warmup = s.warmup >= 0 ? s.warmup : cuda ? 3 : 0;
	ConvResult r;
	if ((cuda ? conv_cuda(&s, &r, err, sizeof err) : conv_cpu(&s, &r, err, sizeof err)) != 0)
		return fail(strstr(err, "unknown") || strstr(err, "has no layer") ? 2 : 1, err);
	int rc = 0;
	if (out && conv_write_json(out, &s, &r, err, sizeof err) != 0)
		rc = fail(1, err);
	printf("# kiln-kernels conv on %s (%s), %s, batch %d, %d px: TFLOP/s per pass\n", r.device, r.dtype, s.net, s.batch,
	       s.image_size);
	printf("%-12s %5s %5s %4s %3s %7s", "layer", "c", "k", "hw", "r", "GFLOP");
	for (int p = 0; p < CONV_PASSES; p++)
		if (s.passes[p])
			printf(" %11s", conv_pass_names[p]);
	printf("\n");
	for (int i = 0; i < r.npoints; i++) {
		const ConvPoint *pt = &r.points[i];
		double gflop = conv_flops(&pt->shape) / 1e9;
		printf("%-12s %5d %5d %4d %3d %7.2f", pt->layer->name, pt->shape.c, pt->shape.k, pt->shape.h, pt->shape.r, gflop);
		for (int p = 0; p < CONV_PASSES; p++)
			if (s.passes[p])
				printf(" %11.3f", pt->seconds[p] > 0 ? gflop / pt->seconds[p] / 1e3 : 0);
		printf("\n");
	}
	printf("# check: %s\n", r.check);
	if (!r.correct)
		rc = fail(1, "cuDNN disagreed with the C reference: its figures mean nothing");
	conv_result_free(&r);
	return rc;
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
	if (!strcmp(cmd, "comm"))
		return cmd_comm(argc - 1, argv + 1);
	if (!strcmp(cmd, "conv"))
		return cmd_conv(argc - 1, argv + 1);
	fprintf(stderr, "kiln-kernels: unknown command \"%s\"\n", cmd);
	return usage();
}
