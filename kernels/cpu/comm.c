/* comm.c — the C reference of `kiln-kernels comm`: one thread per rank, each owning its
 * gradient buffer, moving data through shared memory with a barrier between steps. The
 * all-reduce is the ring (n-1 reduce-scatter steps, n-1 all-gather steps: what NCCL and the
 * recipes' hand-written all-reduce do); the parameter servers sum on rank 0 as a server does
 * (the collective one reads the workers' buffers, the point-to-point one first has every
 * worker copy its buffer into rank 0's inbox), and the workers then copy the sum back. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../comm.h"
#include "../kernels.h"

const char *const comm_pattern_names[COMM_PATTERNS] = {"allreduce", "ps", "p2p"};

double comm_bus_factor(CommPattern p, int ranks)
{
	if (ranks < 2)
		return 0;
	switch (p) {
	case COMM_ALLREDUCE: return 2.0 * (ranks - 1) / ranks;
	case COMM_PS: return 2.0;
	case COMM_P2P: return ranks - 1.0;
	default: return 0;
	}
}

int comm_sizes(const CommSpec *s)
{
	int n = 0;
	for (size_t b = s->min_bytes; b <= s->max_bytes; b *= (size_t)s->factor) {
		n++;
		if (s->factor < 2)
			break;
	}
	return n;
}

typedef struct {
	CommPattern pattern;
	int ranks;
	size_t count;   /* floats per buffer */
	float **buf;    /* per rank */
	float **inbox;  /* p2p: rank 0's receive buffer for each worker */
	pthread_barrier_t bar;
	pthread_mutex_t gate_lock; /* ranks start once all threads exist (or none run at all) */
	pthread_cond_t gate_open;
	int gate;       /* 0 closed, 1 run, -1 give up: a thread could not be created */
	int ops;        /* operations to run */
	double seconds; /* rank 0: wall time of the ops */
} Shared;

typedef struct {
	Shared *sh;
	int rank;
} Rank;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void add_into(float *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] += src[i];
}

static void ring_allreduce(Shared *sh, int r)
{
	int n = sh->ranks, prev = (r - 1 + n) % n;
	size_t count = sh->count;
#define CHUNK_LO(c) ((size_t)(c) * count / (size_t)n)
#define CHUNK_LEN(c) (CHUNK_LO((c) + 1) - CHUNK_LO(c))
	/* reduce-scatter: at step s rank r adds its predecessor's chunk r-s-1 into its own; the
	 * predecessor is writing chunk r-s-2 meanwhile, so no step reads what another writes */
	for (int s = 0; s < n - 1; s++) {
		int c = ((r - s - 1) % n + n) % n;
		add_into(sh->buf[r] + CHUNK_LO(c), sh->buf[prev] + CHUNK_LO(c), CHUNK_LEN(c));
		pthread_barrier_wait(&sh->bar);
	}
	/* rank r now holds the whole sum of chunk r+1; all-gather passes the sums round */
	for (int s = 0; s < n - 1; s++) {
		int c = ((r - s) % n + n) % n;
		memcpy(sh->buf[r] + CHUNK_LO(c), sh->buf[prev] + CHUNK_LO(c), CHUNK_LEN(c) * sizeof(float));
		pthread_barrier_wait(&sh->bar);
	}
#undef CHUNK_LO
#undef CHUNK_LEN
}

static void parameter_server(Shared *sh, int r, int p2p)
{
	int n = sh->ranks;
	if (p2p && r > 0) /* send: the worker's gradient lands in rank 0's inbox */
		memcpy(sh->inbox[r], sh->buf[r], sh->count * sizeof(float));
	if (p2p)
		pthread_barrier_wait(&sh->bar);
	if (r == 0)
		for (int w = 1; w < n; w++)
			add_into(sh->buf[0], p2p ? sh->inbox[w] : sh->buf[w], sh->count);
	pthread_barrier_wait(&sh->bar);
	if (r > 0) /* broadcast, or the server's sends */
		memcpy(sh->buf[r], sh->buf[0], sh->count * sizeof(float));
	pthread_barrier_wait(&sh->bar);
}

static void *rank_main(void *arg)
{
	Rank *me = arg;
	Shared *sh = me->sh;
	pthread_mutex_lock(&sh->gate_lock);
	while (!sh->gate)
		pthread_cond_wait(&sh->gate_open, &sh->gate_lock);
	int go = sh->gate > 0;
	pthread_mutex_unlock(&sh->gate_lock);
	if (!go)
		return NULL;
	pthread_barrier_wait(&sh->bar);
	double t0 = now();
	for (int i = 0; i < sh->ops; i++) {
		if (sh->pattern == COMM_ALLREDUCE)
			ring_allreduce(sh, me->rank);
		else
			parameter_server(sh, me->rank, sh->pattern == COMM_P2P);
	}
	pthread_barrier_wait(&sh->bar);
	if (me->rank == 0)
		sh->seconds = now() - t0;
	return NULL;
}

/* Runs ops operations of sh->pattern on all ranks; -1 if a thread could not start. */
static int run_ops(Shared *sh, int ops)
{
	pthread_t th[256];
	Rank ranks[256];
	sh->ops = ops;
	sh->gate = 0;
	pthread_barrier_init(&sh->bar, NULL, (unsigned)sh->ranks);
	pthread_mutex_init(&sh->gate_lock, NULL);
	pthread_cond_init(&sh->gate_open, NULL);
	int started = 0;
	for (; started < sh->ranks; started++) {
		ranks[started] = (Rank){sh, started};
		if (pthread_create(&th[started], NULL, rank_main, &ranks[started]) != 0)
			break;
	}
	pthread_mutex_lock(&sh->gate_lock);
	sh->gate = started == sh->ranks ? 1 : -1;
	pthread_cond_broadcast(&sh->gate_open);
	pthread_mutex_unlock(&sh->gate_lock);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&sh->bar);
	pthread_mutex_destroy(&sh->gate_lock);
	pthread_cond_destroy(&sh->gate_open);
	return sh->gate > 0 ? 0 : -1;
}

/* Rank r's test gradient: small whole numbers, so every sum is exact in float. */
static float test_value(int r, size_t i) { return (float)((r + 1) * (int)(i % 7 + 1)); }

static int check_sum(Shared *sh, char *msg, size_t msglen)
{
	int n = sh->ranks;
	for (int r = 0; r < n; r++)
		for (size_t i = 0; i < sh->count; i++) {
			float want = (float)((int)(i % 7 + 1) * n * (n + 1) / 2);
			if (sh->buf[r][i] != want) {
				snprintf(msg, msglen, "%s: rank %d element %zu is %g, not %g", comm_pattern_names[sh->pattern], r, i,
					 sh->buf[r][i], want);
				return -1;
			}
		}
	return 0;
}

int comm_cpu(const CommSpec *s, CommResult *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->device = "cpu";
	r->ranks = s->ranks;
	if (s->ranks < 1 || s->ranks > 256) {
		snprintf(err, errlen, "--ranks takes 1 to 256 threads");
		return -1;
	}
	size_t max_count = s->max_bytes / sizeof(float) + 1;
	Shared sh = {.ranks = s->ranks};
	sh.buf = calloc((size_t)s->ranks, sizeof *sh.buf);
	sh.inbox = calloc((size_t)s->ranks, sizeof *sh.inbox);
	r->points = calloc((size_t)(comm_sizes(s) * COMM_PATTERNS), sizeof *r->points);
	int ok = sh.buf && sh.inbox && r->points;
	for (int i = 0; ok && i < s->ranks; i++) {
		sh.buf[i] = malloc(max_count * sizeof(float));
		sh.inbox[i] = malloc(max_count * sizeof(float));
		ok = sh.buf[i] && sh.inbox[i];
	}
	if (!ok) {
		snprintf(err, errlen, "out of memory for %d buffers of %zu bytes", 2 * s->ranks, s->max_bytes);
		goto fail;
	}
	r->correct = 1;
	snprintf(r->check, sizeof r->check, "every rank held the exact sum of %d ranks after each pattern", s->ranks);
	for (int p = 0; p < COMM_PATTERNS; p++) {
		if (!s->patterns[p])
			continue;
		sh.pattern = (CommPattern)p;
		for (size_t bytes = s->min_bytes; bytes <= s->max_bytes; bytes *= (size_t)s->factor) {
			sh.count = bytes / sizeof(float) ? bytes / sizeof(float) : 1;
			for (int k = 0; k < s->ranks; k++)
				for (size_t i = 0; i < sh.count; i++)
					sh.buf[k][i] = test_value(k, i);
			if (run_ops(&sh, 1) != 0) {
				snprintf(err, errlen, "cannot start %d threads", s->ranks);
				goto fail;
			}
			if (r->correct && check_sum(&sh, r->check, sizeof r->check) != 0)
				r->correct = 0;
			for (int k = 0; k < s->ranks; k++) /* zeros stay zeros: timed sums never overflow */
				memset(sh.buf[k], 0, sh.count * sizeof(float));
			if (run_ops(&sh, s->warmup) != 0 || run_ops(&sh, s->iters) != 0) {
				snprintf(err, errlen, "cannot start %d threads", s->ranks);
				goto fail;
			}
			CommPoint *pt = &r->points[r->npoints++];
			pt->pattern = (CommPattern)p;
			pt->bytes = sh.count * sizeof(float);
			pt->seconds = sh.seconds / (s->iters ? s->iters : 1);
			pt->algbw = pt->seconds > 0 ? pt->bytes / pt->seconds / 1e9 : 0;
			pt->busbw = pt->algbw * comm_bus_factor(pt->pattern, s->ranks);
			if (s->factor < 2)
				break;
		}
	}
	for (int i = 0; i < s->ranks; i++)
		free(sh.buf[i]), free(sh.inbox[i]);
	free(sh.buf);
	free(sh.inbox);
	return 0;
fail:
	for (int i = 0; sh.buf && i < s->ranks; i++)
		free(sh.buf[i]), free(sh.inbox ? sh.inbox[i] : NULL);
	free(sh.buf);
	free(sh.inbox);
	comm_result_free(r);
	return -1;
}

void comm_result_free(CommResult *r)
{
	free(r->points);
	r->points = NULL;
	r->npoints = 0;
}

static void write_points(FILE *f, const CommResult *r, CommPattern p)
{
	int first = 1;
	fputc('[', f);
	for (int i = 0; i < r->npoints; i++) {
		const CommPoint *pt = &r->points[i];
		if (pt->pattern != p)
			continue;
		fprintf(f, "%s\n    {\"step\": %zu, \"bytes\": %zu, \"time_us\": %.6g, \"algbw_gbs\": %.6g, \"busbw_gbs\": %.6g}",
			first ? "" : ",", pt->bytes, pt->bytes, pt->seconds * 1e6, pt->algbw, pt->busbw);
		first = 0;
	}
	fprintf(f, "\n  ]");
}

static double peak(const CommResult *r, CommPattern p, int bus)
{
	double best = 0;
	for (int i = 0; i < r->npoints; i++)
		if (r->points[i].pattern == p) {
			double v = bus ? r->points[i].busbw : r->points[i].algbw;
			best = v > best ? v : best;
		}
	return best;
}

int comm_write_json(const char *path, const CommSpec *s, const CommResult *r, char *err, size_t errlen)
{
	OutFile o;
	if (out_open(&o, path, err, errlen) != 0)
		return -1;
	FILE *f = o.f;
	int ran = 0, only = -1;
	for (int p = 0; p < COMM_PATTERNS; p++)
		if (s->patterns[p])
			ran++, only = p;
	fprintf(f, "{\n  \"device\": \"%s\",\n  \"ranks\": %d,\n  \"correct\": %s,\n  \"check\": \"%s\",\n  \"iters\": %d,\n",
		r->device, r->ranks, r->correct ? "true" : "false", r->check, s->iters);
	fprintf(f, "  \"patterns\": {");
	int first = 1;
	for (int p = 0; p < COMM_PATTERNS; p++) {
		if (!s->patterns[p])
			continue;
		fprintf(f, "%s\n  \"%s\": ", first ? "" : ",", comm_pattern_names[p]);
		write_points(f, r, (CommPattern)p);
		first = 0;
	}
	fprintf(f, "\n  },\n");
	if (ran == 1) {
		fprintf(f, "  \"pattern\": \"%s\",\n  \"sizes\": ", comm_pattern_names[only]);
		write_points(f, r, (CommPattern)only);
		fprintf(f, ",\n  \"peak_algbw_gbs\": %.6g,\n  \"peak_busbw_gbs\": %.6g\n}\n", peak(r, (CommPattern)only, 0),
			peak(r, (CommPattern)only, 1));
	} else {
		fprintf(f, "  \"peak_busbw_gbs\": {");
		first = 1;
		for (int p = 0; p < COMM_PATTERNS; p++)
			if (s->patterns[p]) {
				fprintf(f, "%s\"%s\": %.6g", first ? "" : ", ", comm_pattern_names[p], peak(r, (CommPattern)p, 1));
				first = 0;
			}
		fprintf(f, "}\n}\n");
	}
	return out_close(&o, err, errlen);
}
