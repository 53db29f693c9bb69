/* util.c — the helpers declared in util.h: allocation, buffers, arena, hash map,
 * clocks and parsing; the file helpers are fileio.c's. */
#define _GNU_SOURCE
#include "util.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void fatal(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("kiln: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

void warn(const char *fmt, ...)
{
	va_list ap;
	fputs("kiln: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void out_of_memory(size_t n)
{
	fprintf(stderr, "kiln: out of memory (asked for %zu bytes)\n", n);
	exit(EXIT_USAGE);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		out_of_memory(n);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		out_of_memory(count * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		out_of_memory(n);
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		out_of_memory(strlen(fmt));
	return s;
}

static void buf_grow(Buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_put_grown(Buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}


void buf_printf(Buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_put_escaped(Buf *b, const char *s)
{
	if (!strpbrk(s, "\\\t\n")) { /* the common case: nothing to escape */
		buf_puts(b, s);
		return;
	}
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(b, "\\\\");
		else if (*s == '\t')
			buf_puts(b, "\\t");
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *s);
	}
}

void buf_shell_quote(Buf *b, const char *s)
{
	if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") == strlen(s)) {
		buf_puts(b, s); /* nothing a shell would read specially (no ~ # space newline ...) */
		return;
	}
	buf_putc(b, '\'');
	for (; *s; s++) /* inside single quotes every byte is literal but the quote itself */
		*s == '\'' ? buf_puts(b, "'\\''") : buf_putc(b, *s);
	buf_putc(b, '\'');
}

void buf_reset(Buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void buf_free(Buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

const char *buf_str(Buf *b) { return b->data ? b->data : ""; }

#define HUGE_PAGE (2u << 20)

void *big_alloc(size_t n)
{
	if (n < 2 * HUGE_PAGE)
		return xmalloc(n);
	/* a mapping of whole 2 MiB pages, advised as huge: a million tasks' worth of memory is
	 * then a few hundred page faults instead of a few hundred thousand */
	size_t len = (n + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	char *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return xmalloc(n);
	size_t lead = (HUGE_PAGE - ((uintptr_t)p & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
	if (lead)
		munmap(p, lead);
	if (HUGE_PAGE - lead)
		munmap(p + lead + len, HUGE_PAGE - lead);
	p += lead;
	advise_huge(p, n);
	return p;
}

void advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
	/* the 2 MiB pages [p, p + n) holds whole; the partly used ones at either end stay in
	 * small pages (a huge one there would be resident whole: an index of 10.7 MB would
	 * hold 12) */
	uintptr_t from = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	uintptr_t to = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE_PAGE - 1);
	if (n >= 2 * HUGE_PAGE && to > from)
		madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
	(void)p, (void)n;
#endif
}

void big_free(void *p, size_t n)
{
	if (!p)
		return;
	if (n < 2 * HUGE_PAGE || ((uintptr_t)p & (HUGE_PAGE - 1))) /* malloc'd (also the mmap-failed case) */
		free(p);
	else
		munmap(p, (n + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1));
}

struct ArenaBlock {
	ArenaBlock *next;
	size_t used, cap;
	max_align_t align[]; /* payload */
};

/* n bytes aligned to align (16, or 1 for strings: a million short paths would otherwise
 * waste a third of their bytes on padding). Blocks double from 64 KiB to 8 MiB, so a small
 * graph stays small and a large one lives in huge pages. */
static void *arena_take(Arena *a, size_t n, size_t align)
{
	ArenaBlock *b = a->head;
	size_t at = b ? (b->used + align - 1) & ~(align - 1) : 0;
	if (!b || at + n > b->cap) {
		size_t size = b ? (sizeof(ArenaBlock) + b->cap) * 2 : 64 * 1024;
		if (size > 2 * 2 * HUGE_PAGE)
			size = 2 * 2 * HUGE_PAGE;
		if (size < sizeof(ArenaBlock) + n)
			size = sizeof(ArenaBlock) + n;
		b = big_alloc(size);
		b->used = 0;
		b->cap = size - sizeof(ArenaBlock);
		b->next = a->head;
		a->head = b;
		at = 0;
	}
	void *p = (char *)b->align + at;
	b->used = at + n;
	return p;
}

void *arena_alloc(Arena *a, size_t n) { return arena_take(a, n, 16); }

void *arena_alloc8(Arena *a, size_t n) { return arena_take(a, n, 8); }

char *arena_chars(Arena *a, size_t n) { return arena_take(a, n, 1); }

void *arena_ptrs(Arena *a, size_t n) { return arena_take(a, (n ? n : 1) * sizeof(void *), sizeof(void *)); }

char *arena_strndup(Arena *a, const char *s, size_t n)
{
	char *p = arena_take(a, n + 1, 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

void arena_free(Arena *a)
{
	for (ArenaBlock *b = a->head, *next; b; b = next) {
		next = b->next;
		big_free(b, sizeof(ArenaBlock) + b->cap);
	}
	a->head = NULL;
}

uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a, then mixed so low bits spread */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

static size_t strmap_slot(const StrMap *m, const char *key, uint64_t h)
{
	size_t i = h & (m->cap - 1);
	while (m->slots[i].key && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *strmap_get(const StrMap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	const StrMapSlot *s = &m->slots[strmap_slot(m, key, hash_str(key))];
	return s->key ? s->val : NULL;
}

void *strmap_get_hashed(const StrMap *m, const char *key, uint64_t h)
{
	if (!m->cap)
		return NULL;
	const StrMapSlot *s = &m->slots[strmap_slot(m, key, h)];
	return s->key ? s->val : NULL;
}

void strmap_prefetch(const StrMap *m, uint64_t h, int stage)
{
	if (!m->cap)
		return;
	const StrMapSlot *s = &m->slots[h & (m->cap - 1)];
	if (stage == 0) {
		__builtin_prefetch(s);
	} else if (s->key) {
		__builtin_prefetch(s->key);
		__builtin_prefetch(s->val);
	}
}

static void strmap_grow(StrMap *m, size_t cap)
{
	StrMap bigger = {0};
	bigger.cap = cap;
	/* malloc + memset rather than calloc: calloc's fresh pages are the shared zero page,
	 * and the first write to each then takes a copy-on-write fault that, with a second
	 * thread running, also flushes the other CPU's TLB */
	bigger.slots = big_alloc(cap * sizeof *bigger.slots);
	memset(bigger.slots, 0, cap * sizeof *bigger.slots);
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			bigger.slots[strmap_slot(&bigger, m->slots[i].key, m->slots[i].hash)] = m->slots[i];
	bigger.count = m->count;
	big_free(m->slots, m->cap * sizeof *m->slots);
	*m = bigger;
}

void strmap_reserve(StrMap *m, size_t n)
{
	size_t cap = m->cap ? m->cap : 64;
	while ((n + 1) * 2 >= cap) /* at most half full: short probe runs */
		cap *= 2;
	if (cap != m->cap)
		strmap_grow(m, cap);
}

static StrMapSlot *strmap_claim(StrMap *m, const char *key)
{
	if ((m->count + 1) * 2 >= m->cap)
		strmap_grow(m, m->cap ? m->cap * 2 : 64);
	uint64_t h = hash_str(key);
	StrMapSlot *s = &m->slots[strmap_slot(m, key, h)];
	s->hash = h;
	return s;
}

void *strmap_put(StrMap *m, const char *key, void *val)
{
	StrMapSlot *s = strmap_claim(m, key);
	void *old = s->key ? s->val : NULL;
	if (!s->key)
		m->count++;
	s->key = key;
	s->val = val;
	return old;
}

void *strmap_put_new(StrMap *m, const char *key, void *val)
{
	StrMapSlot *s = strmap_claim(m, key);
	if (s->key)
		return s->val;
	m->count++;
	s->key = key;
	s->val = val;
	return NULL;
}

void strmap_free_owned(StrMap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key) {
			free((char *)m->slots[i].key);
			free(m->slots[i].val);
		}
	strmap_free(m);
}

int strmap_next(const StrMap *m, size_t *i, const char **key, void **val)
{
	for (; *i < m->cap; ++*i)
		if (m->slots[*i].key) {
			if (key)
				*key = m->slots[*i].key;
			if (val)
				*val = m->slots[*i].val;
			++*i;
			return 1;
		}
	return 0;
}

void strmap_free(StrMap *m)
{
	big_free(m->slots, m->cap * sizeof *m->slots);
	memset(m, 0, sizeof *m);
}

typedef struct {
	size_t n, chunk;
	_Atomic size_t next;
	void (*fn)(void *ctx, size_t i);
	void *ctx;
} ParallelFor;

static void *parallel_worker(void *arg)
{
	ParallelFor *p = arg;
	for (;;) {
		size_t from = atomic_fetch_add(&p->next, p->chunk);
		if (from >= p->n)
			return NULL;
		size_t to = from + p->chunk < p->n ? from + p->chunk : p->n;
		for (size_t i = from; i < to; i++)
			p->fn(p->ctx, i);
	}
}

void parallel_for(size_t n, size_t chunk, int threads, void (*fn)(void *ctx, size_t i), void *ctx)
{
	enum { MAX_THREADS = 16 };
	ParallelFor p = {.n = n, .chunk = chunk ? chunk : 1, .fn = fn, .ctx = ctx};
	if (threads <= 0)
		threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	size_t chunks = (n + p.chunk - 1) / p.chunk;
	int helpers = chunks < 2 ? 0 : (size_t)threads > chunks ? (int)chunks - 1 : threads - 1;
	pthread_t tid[MAX_THREADS];
	int started = 0;
	while (started < helpers && thread_start(&tid[started], parallel_worker, &p) == 0)
		started++;
	parallel_worker(&p);
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

void trace_mark(const char *what)
{
	/* KILN_TRACE and the start time, set by the first call (main's, before any thread
	 * starts) and only read after */
	static int enabled = -1;
	static int64_t start;
	if (enabled < 0) {
		enabled = getenv("KILN_TRACE") != NULL;
		start = now_mono_ns();
	}
	if (enabled) {
		struct rusage self; /* all of kiln's threads, none of its children */
		getrusage(RUSAGE_SELF, &self);
		long pages = 0; /* resident now (ru_maxrss is the peak so far) */
		FILE *f = fopen("/proc/self/statm", "r");
		if (f) {
			if (fscanf(f, "%*s %ld", &pages) != 1)
				pages = 0;
			fclose(f);
		}
		fprintf(stderr, "kiln-trace: %7.2f ms %s (kiln's cpu so far: %.1f ms user, %.1f ms system; %ld MiB resident, peak %ld)\n",
			(now_mono_ns() - start) / 1e6, what, self.ru_utime.tv_sec * 1e3 + self.ru_utime.tv_usec / 1e3,
			self.ru_stime.tv_sec * 1e3 + self.ru_stime.tv_usec / 1e3, pages * (sysconf(_SC_PAGESIZE) / 1024) / 1024,
			self.ru_maxrss / 1024);
	}
}

double now_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int64_t now_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double parse_duration(const char *s)
{
	double total = 0;
	int any = 0;
	while (*s) {
		char *end;
		double v = strtod(s, &end);
		if (end == s || v < 0)
			return -1;
		double unit = 1;
		switch (*end) {
		case 's': unit = 1; end++; break;
		case 'm': unit = 60; end++; break;
		case 'h': unit = 3600; end++; break;
		case 'd': unit = 86400; end++; break;
		case 0: if (any) return -1; break; /* a bare number must stand alone */
		default: return -1;
		}
		total += v * unit;
		any = 1;
		s = end;
	}
	return any ? total : -1;
}

long long parse_size_mib(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return -1;
	double mib;
	if (!*end)
		mib = v;
	else if (!strcmp(end, "K") || !strcmp(end, "KB") || !strcmp(end, "KiB"))
		mib = v / 1024;
	else if (!strcmp(end, "M") || !strcmp(end, "MB") || !strcmp(end, "MiB"))
		mib = v;
	else if (!strcmp(end, "G") || !strcmp(end, "GB") || !strcmp(end, "GiB"))
		mib = v * 1024;
	else if (!strcmp(end, "T") || !strcmp(end, "TB") || !strcmp(end, "TiB"))
		mib = v * 1024 * 1024;
	else
		return -1;
	if (!(mib < 1e15)) /* NaN, inf, or more than any machine: no long long conversion of those */
		return -1;
	return (long long)(mib + 0.999);
}

void format_duration(double sec, char *out, size_t n)
{
	if (sec < 10)
		snprintf(out, n, "%.1fs", sec);
	else if (sec < 60)
		snprintf(out, n, "%.0fs", sec);
	else if (sec < 3600)
		snprintf(out, n, "%dm%02ds", (int)sec / 60, (int)sec % 60);
	else
		snprintf(out, n, "%dh%02dm", (int)sec / 3600, (int)sec % 3600 / 60);
}

int strlist_find_or_add(char ***list, int *n, const char *s)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp((*list)[i], s))
			return i;
	*list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
	(*list)[*n] = xstrdup(s);
	return (*n)++;
}

int text_last_fraction(const char *text, size_t len, long long *done, long long *total)
{
	const char *end = text + len;
	while (end > text && end[-1] != '\n') /* an unfinished last line: its writer is mid-way */
		end--;
	while (end > text) {
		const char *start = end - 1; /* at the line's '\n' */
		while (start > text && start[-1] != '\n')
			start--;
		long long d, t;
		if (sscanf(start, "%lld/%lld", &d, &t) == 2 && d >= 0 && t > 0) {
			*done = d, *total = t;
			return 1;
		}
		end = start;
	}
	return 0;
}
