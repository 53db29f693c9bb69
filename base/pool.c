/* pool.c — size-class free lists over chunks of 64 KiB up to 4 MiB (see pool.h). A block
 * given back holds the free list's next pointer in its first bytes. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifdef __SANITIZE_ADDRESS__ /* under ASan a block is addressable only while handed out */
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Chunks double from 64 KiB to 4 MiB, as arena blocks do: a small recipe's Lua stays
 * small, and a million items' strings live in huge pages (big_alloc), where the string
 * table's random look-ups find them without a TLB miss each (a 1M-item list built with
 * tostring: 479 -> 366 ms, medians of 5). */
#define FIRST_CHUNK (64 * 1024)
#define LAST_CHUNK (4 * 1024 * 1024)

struct PoolChunk {
	PoolChunk *next;
	size_t cap; /* bytes after the header */
	_Alignas(16) char bytes[];
};

/* The class of a small size (1..POOL_SMALL): blocks of 16, 32, ... bytes. */
static size_t class_of(size_t n) { return (n - 1) / 16; }

/* A block of class cls given back earlier, or NULL. */
static inline void *pop_free(Pool *p, size_t cls, size_t n)
{
	void *block = p->free_list[cls];
	if (block) {
		UNPOISON(block, sizeof(void *));
		memcpy(&p->free_list[cls], block, sizeof(void *)); /* the next free block */
		POISON(block, sizeof(void *));
		UNPOISON(block, n);
	}
	return block;
}

static void *small_alloc(Pool *p, size_t cls, size_t n)
{
	void *block = pop_free(p, cls, n);
	if (block)
		return block;
	size_t bytes = (cls + 1) * 16;
	if ((size_t)(p->carve_end - p->carve) < bytes) {
		size_t size = p->chunks ? (sizeof *p->chunks + p->chunks->cap) * 2 : FIRST_CHUNK;
		if (size > LAST_CHUNK)
			size = LAST_CHUNK;
		/* under 4 MiB a failure is Lua's "not enough memory"; big_alloc's mmap failing
		 * falls back to malloc, and only that failing too ends kiln */
		PoolChunk *c = size < LAST_CHUNK ? malloc(size) : big_alloc(size);
		if (!c)
			return NULL;
		c->next = p->chunks;
		c->cap = size - sizeof *c;
		p->chunks = c;
		p->carve = c->bytes; /* what was left of the last chunk is under 256 bytes */
		p->carve_end = c->bytes + c->cap;
		POISON(c->bytes, c->cap);
	}
	block = p->carve;
	p->carve += bytes;
	UNPOISON(block, n);
	return block;
}

static void small_free(Pool *p, void *block, size_t cls)
{
	UNPOISON(block, sizeof(void *));
	memcpy(block, &p->free_list[cls], sizeof(void *));
	POISON(block, (cls + 1) * 16);
	p->free_list[cls] = block;
}

/* What pool_realloc's fast cases leave: a new block when its class has none free, a
 * resize, a big block. Apart, so that those cases save no registers (a recipe's Lua calls
 * the allocator some 26 times a task{}). */
static __attribute__((noinline)) void *realloc_slow(Pool *p, void *ptr, size_t old_size, size_t new_size)
{
	int was_small = old_size > 0 && old_size <= POOL_SMALL, small = new_size <= POOL_SMALL;
	if (was_small && small && class_of(old_size) == class_of(new_size)) {
		POISON(ptr, (class_of(old_size) + 1) * 16);
		UNPOISON(ptr, new_size);
		return ptr;
	}
	/* a shrink never fails (Lua counts on it): when no new block comes, the old one, big
	 * enough, serves, and is taken back later as a block of the smaller size */
	void *fresh;
	if (!was_small && !small && old_size > 0) {
		fresh = realloc(ptr, new_size);
		if (fresh && new_size > old_size)
			advise_huge(fresh, new_size);
		return fresh ? fresh : new_size <= old_size ? ptr : NULL;
	}
	fresh = small ? small_alloc(p, class_of(new_size), new_size) : malloc(new_size);
	if (!fresh)
		return new_size <= old_size ? ptr : NULL;
	if (!small)
		advise_huge(fresh, new_size);
	if (old_size > 0) {
		memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
		if (was_small)
			small_free(p, ptr, class_of(old_size));
		else
			free(ptr);
	}
	return fresh;
}

void *pool_realloc(Pool *p, void *ptr, size_t old_size, size_t new_size)
{
	if (!ptr)
		old_size = 0;
	if (new_size == 0) { /* a free (of NULL too: Lua frees tables' empty parts) */
		if (old_size - 1 < POOL_SMALL) /* 1..POOL_SMALL: 0 wraps around */
			small_free(p, ptr, class_of(old_size));
		else if (ptr)
			free(ptr);
		return NULL;
	}
	void *block;
	if (old_size == 0 && new_size <= POOL_SMALL && (block = pop_free(p, class_of(new_size), new_size)))
		return block; /* a new block, from its class's free list */
	return realloc_slow(p, ptr, old_size, new_size);
}

void pool_free(Pool *p)
{
	for (PoolChunk *c = p->chunks, *next; c; c = next) {
		next = c->next;
		UNPOISON(c->bytes, c->cap);
		big_free(c, sizeof *c + c->cap);
	}
	memset(p, 0, sizeof *p);
}
