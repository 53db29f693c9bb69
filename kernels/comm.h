/* comm.h — `kiln-kernels comm`: how fast gradients move between workers, measured the
 * nccl-tests way (time per operation at each message size, algorithm and bus bandwidth)
 * for the three patterns the training recipes compare: an all-reduce (DDP and the
 * hand-written ring), a parameter server built from collectives (reduce to rank 0, then
 * broadcast) and a parameter server built from point-to-point messages (every worker sends
 * to rank 0, rank 0 sums and sends the sum back). The CUDA back end runs them with NCCL over
 * the visible (leased) GPUs, one rank per GPU; the C reference runs them with threads over
 * shared memory, the same algorithms on the CPU. Both check the sum before timing. */
#ifndef KILN_COMM_H
#define KILN_COMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { COMM_ALLREDUCE, COMM_PS, COMM_P2P, COMM_PATTERNS } CommPattern;

/* "allreduce", "ps", "p2p" */
extern const char *const comm_pattern_names[COMM_PATTERNS];

typedef struct {
	int ranks;                   /* workers (threads, or GPUs with CUDA) */
	size_t min_bytes, max_bytes; /* message sizes: min, min*factor, ... up to max */
	int factor;
	int warmup, iters;           /* per size: untimed, then timed operations */
	int patterns[COMM_PATTERNS]; /* which to run */
} CommSpec;

typedef struct {
	CommPattern pattern;
	size_t bytes;       /* the message (one worker's gradient buffer) */
	double seconds;     /* mean time of one operation */
	double algbw, busbw; /* GB/s (1e9): bytes / seconds, and algbw times comm_bus_factor */
} CommPoint;

typedef struct {
	const char *device; /* "cpu" or "cuda" */
	int ranks;
	int correct;        /* every pattern gave every rank the right sum */
	char check[160];    /* what was checked, or the first wrong value */
	CommPoint *points;  /* owned */
	int npoints;
} CommResult;

/* The bus-bandwidth factor of pattern over ranks (nccl-tests' convention: how many message
 * sizes the busiest link carries per operation, so busbw compares with the hardware's link
 * speed): all-reduce 2(n-1)/n; the collective parameter server 2 (a reduce and a broadcast,
 * each factor 1); point to point n-1 (rank 0's link carries n-1 messages each way). 0 for
 * one rank: nothing moves. */
double comm_bus_factor(CommPattern p, int ranks);
/* Number of message sizes the spec walks. */
int comm_sizes(const CommSpec *s);
/* The C reference with threads; 0, or -1 with err. */
int comm_cpu(const CommSpec *s, CommResult *r, char *err, size_t errlen);
/* NCCL over the visible GPUs (libkiln-kernels-nccl.so); -1 with err when unavailable. */
int comm_cuda(const CommSpec *s, CommResult *r, char *err, size_t errlen);
/* The result as JSON: {"device", "ranks", "correct", "patterns": {"allreduce": [{"step":
 * bytes, "bytes", "time_us", "algbw_gbs", "busbw_gbs"}, ...]}, "peak_busbw_gbs": {...}} —
 * when one pattern ran, its points are also top-level "sizes" (what a lines plot reads). */
int comm_write_json(const char *path, const CommSpec *s, const CommResult *r, char *err, size_t errlen);
void comm_result_free(CommResult *r);

#ifdef __cplusplus
}
#endif

#endif
