/* util.h — small shared helpers: checked allocation, growable buffers, an arena,
 * a string-keyed hash map, fatal errors and clocks. Everything here is process-wide. */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>

/* Exit codes used across kiln. */
enum { EXIT_TASK_FAILED = 1, EXIT_USAGE = 2 };

/* Prints "kiln: <message>" to stderr and exits with status 2 (usage/recipe error). */
void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Prints "kiln: warning: <message>" to stderr. */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that never returns NULL: out of memory is fatal. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Returns a malloc'd formatted string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer, always NUL-terminated once anything was put. */
typedef struct {
	char *data;
	size_t len, cap;
} Buf;
void buf_put_grown(Buf *b, const void *p, size_t n); /* buf_put's way when b must grow */
/* Inline, as buf_puts and buf_putc: key texts are built a few bytes at a time, by the
 * million, and a constant's length is then known when compiling. */
static inline void buf_put(Buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 <= b->cap) { /* room for it and the NUL after */
		memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = 0;
	} else {
		buf_put_grown(b, p, n);
	}
}
static inline void buf_puts(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }
/* Appends s with backslash, tab and newline escaped (\\ \t \n): a field of one line of
 * tab-separated text (key components, plot specs). */
void buf_put_escaped(Buf *b, const char *s);
/* Appends s as one word a POSIX shell reads back unchanged: bare when it holds only
 * characters no shell treats specially, else single-quoted (every byte, newlines too). */
void buf_shell_quote(Buf *b, const char *s);
static inline void buf_putc(Buf *b, char c)
{
	if (b->len + 2 <= b->cap) { /* room for it and the NUL after */
		b->data[b->len++] = c;
		b->data[b->len] = 0;
	} else {
		buf_put_grown(b, &c, 1);
	}
}
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(Buf *b); /* empties it, keeps the memory */
void buf_free(Buf *b);
/* Returns the contents (never NULL, "" when empty); valid until the next put. */
const char *buf_str(Buf *b);

/* Large allocations (tables, arena blocks): from 4 MiB up, the 2 MiB pages they fill whole
 * advised as transparent huge pages, so filling them costs few page faults (the last, partly
 * filled, stays in small pages: only what is touched is resident); smaller ones are malloc'd.
 * big_free takes the size given to big_alloc. Contents are not initialised. */
void *big_alloc(size_t n);
void big_free(void *p, size_t n);
/* Advises the 2 MiB pages that [p, p + n) covers whole as transparent huge pages (nothing
 * under 4 MiB): for large blocks malloc made, e.g. a recipe's Lua tables and string table,
 * whose random look-ups would otherwise miss the TLB on nearly every access. */
void advise_huge(void *p, size_t n);

/* An arena: many small allocations freed at once. Used for the graph's strings. */
typedef struct ArenaBlock ArenaBlock;
typedef struct {
	ArenaBlock *head;
} Arena;
void *arena_alloc(Arena *a, size_t n); /* 16-byte aligned */
void *arena_alloc8(Arena *a, size_t n); /* 8-byte aligned: records of int64s and pointers, by the million */
char *arena_chars(Arena *a, size_t n);  /* unaligned: text */
void *arena_ptrs(Arena *a, size_t n);   /* n pointers, pointer-aligned (lists a million tasks hold) */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
void arena_free(Arena *a);

/* Open-addressing hash map from NUL-terminated keys to pointers. Keys are not copied:
 * the caller keeps them alive as long as the map. A slot holds key, value and hash
 * together, so a probe touches one cache line and compares strings only on a hash match. */
typedef struct {
	const char *key;
	void *val;
	uint64_t hash;
} StrMapSlot;
typedef struct {
	StrMapSlot *slots;
	size_t cap, count;
} StrMap;
void *strmap_get(const StrMap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *strmap_put(StrMap *m, const char *key, void *val);
/* For batches of look-ups: with h = hash_str(key) computed ahead, strmap_prefetch(m, h, 0)
 * starts loading the key's first slot, and a later strmap_prefetch(m, h, 1) the key and
 * value that slot points to; strmap_get_hashed then finds them in cache. Lookups issued
 * a few keys ahead overlap their memory latency instead of paying it one after another. */
void strmap_prefetch(const StrMap *m, uint64_t h, int stage);
void *strmap_get_hashed(const StrMap *m, const char *key, uint64_t h);
/* Inserts unless key is present; returns the present value (map unchanged) or NULL. */
void *strmap_put_new(StrMap *m, const char *key, void *val);
/* Makes room for n entries in all, so loading a known number of keys never rehashes. */
void strmap_reserve(StrMap *m, size_t n);
/* Iteration: for (size_t i = 0; strmap_next(m, &i, &key, &val);) visits every entry. */
int strmap_next(const StrMap *m, size_t *i, const char **key, void **val);
void strmap_free(StrMap *m);
/* strmap_free for a map that owns its keys and values (both malloc'd): frees them too. */
void strmap_free_owned(StrMap *m);
uint64_t hash_str(const char *s);

/* Calls fn(ctx, i) for every i < n on `threads` threads (the caller's and helpers; 0: one
 * per core), taking `chunk` indices at a time; runs on the caller's thread alone when n is
 * below two chunks. Work that waits on the disk wants more threads than cores. fn must be
 * safe to run concurrently for distinct i. Helpers block all signals: a Ctrl-C still
 * reaches the caller. */
void parallel_for(size_t n, size_t chunk, int threads, void (*fn)(void *ctx, size_t i), void *ctx);

/* With KILN_TRACE set in the environment, prints "kiln-trace: <ms since start> <what>"
 * to stderr: where a command spends its time, for benchmarks. Otherwise does nothing. */
void trace_mark(const char *what);

/* Wall-clock time in seconds / monotonic time in nanoseconds. */
double now_wall(void);
int64_t now_mono_ns(void);

/* Creates a directory and its parents; returns 0 or -1 with errno set. */
int mkdirs(const char *path, int mode);
/* Creates the parent directories of a file path; returns 0 or -1. */
int mkdirs_parent(const char *path);
/* Opens a file for reading without updating its access time where the owner allows that
 * (O_NOATIME): kiln reading a file to hash or store it is not a use of it, and on ext4 the
 * first read after a write would otherwise write the inode back. -1 with errno on error. */
int open_read(const char *path);
/* Removes a file or a directory tree (symlinks are removed, not followed). 0 when path
 * is gone afterwards (or never was), else -1 with errno set. */
int remove_tree(const char *path);
/* Reads a whole file; returns malloc'd NUL-terminated data or NULL (errno set). */
char *read_file(const char *path, size_t *len);
/* Reads at most the last max bytes of a file (a log's tail: the file may be gigabytes);
 * malloc'd NUL-terminated data, or NULL (errno set). *from, when given: where they began. */
char *read_file_tail(const char *path, size_t max, size_t *len, long long *from);
/* The index of s in the list of n malloc'd strings, appending a copy (and growing the list)
 * when it is not there: first-seen order, for short lists (a linear search). */
int strlist_find_or_add(char ***list, int *n, const char *s);
/* The last complete line (one ending in '\n') of text[0..len) that begins "DONE/TOTAL"
 * (DONE >= 0, TOTAL > 0: a KILN_PROGRESS reading): 1 with them set, or 0 when none does. */
int text_last_fraction(const char *text, size_t len, long long *done, long long *total);
/* Writes a whole file atomically (temp + rename); returns 0 or -1. */
int write_file_atomic(const char *path, const void *data, size_t len);
/* The same with the file's mode (before the umask): 0777 for a script. */
int write_file_atomic_mode(const char *path, const void *data, size_t len, int mode);

/* Parses "30", "90s", "5m", "2h", "1h30m" into seconds; returns -1 when malformed. */
double parse_duration(const char *s);
/* Parses "512" (MiB), "512M", "4G", "1T" into MiB; returns -1 when malformed. */
long long parse_size_mib(const char *s);
/* Formats seconds as "0.4s", "12s", "3m05s", "1h02m" into out. */
void format_duration(double sec, char *out, size_t n);

#endif
