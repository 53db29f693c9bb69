/* statfloor.c — the floor under a map{} no-op: the time a bare C loop takes to stat each
 * item's input and output (leaf/I.txt, out/I.txt in bench/compare.py's map workspace), on
 * every core, with nothing else done. A no-op must at least stat every file it depends on
 * (a file rewritten in place changes no directory), so this is what no tool can go under on
 * the machine at hand; bench/compare.py and noop_shapes.py print it beside kiln's figure.
 *
 * usage: statfloor DIR ITEMS [THREADS]   prints the seconds of the best of three rounds
 * (built by the benchmark scripts with cc -O2 -pthread) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	long from, to, missing;
} Share;

static void *stat_share(void *arg)
{
	Share *s = arg;
	char path[64];
	struct stat st;
	for (long i = s->from; i < s->to; i++) {
		snprintf(path, sizeof path, "leaf/%ld.txt", i);
		s->missing += stat(path, &st) != 0;
		snprintf(path, sizeof path, "out/%ld.txt", i);
		s->missing += stat(path, &st) != 0;
	}
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3 || chdir(argv[1]) != 0) {
		fprintf(stderr, "usage: statfloor DIR ITEMS [THREADS]\n");
		return 2;
	}
	long items = atol(argv[2]);
	int threads = argc > 3 ? atoi(argv[3]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1 || threads > 256)
		threads = 1;
	double best = 1e9;
	for (int round = 0; round < 3; round++) {
		pthread_t tid[256];
		Share share[256];
		double t0 = now();
		for (int k = 0; k < threads; k++) {
			share[k] = (Share){items * k / threads, items * (k + 1) / threads, 0};
			pthread_create(&tid[k], NULL, stat_share, &share[k]);
		}
		long missing = 0;
		for (int k = 0; k < threads; k++) {
			pthread_join(tid[k], NULL);
			missing += share[k].missing;
		}
		double took = now() - t0;
		if (missing) {
			fprintf(stderr, "statfloor: %ld of %ld files missing in %s\n", missing, 2 * items, argv[1]);
			return 1;
		}
		if (took < best)
			best = took;
	}
	printf("%.3f\n", best);
	return 0;
}
