/* keytable.c — open addressing with linear probing over entries that carry their keys. */
#include "keytable.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *key_of(const KeyTable *t, uint32_t id) { return ktable_key(t, ktable_at(t, id - 1)); }

static size_t find(const KeyTable *t, const char *key, uint32_t h)
{
	size_t i = slots_home(h, t->cap);
	while (t->slots[i].id && (t->slots[i].hash != h || strcmp(key_of(t, t->slots[i].id), key) != 0))
		i = slots_next(i, t->cap);
	return i;
}

static void grow(KeyTable *t, size_t cap)
{
	KeyTableSlot *old = t->slots;
	size_t old_cap = t->cap;
	/* big_alloc + memset, not calloc: see strmap_grow */
	t->slots = big_alloc(cap * sizeof *t->slots);
	memset(t->slots, 0, cap * sizeof *t->slots);
	t->cap = cap;
	for (size_t i = 0; i < old_cap; i++) /* keys are distinct: the first empty slot is theirs */
		if (old[i].id)
			t->slots[slots_free_at(t->slots, cap, old[i].hash)] = old[i];
	big_free(old, old_cap * sizeof *old);
}

void ktable_reserve(KeyTable *t, size_t n)
{
	size_t cap = slots_capacity(t->cap, n);
	if (cap != t->cap)
		grow(t, cap);
}

void *ktable_get_hashed(const KeyTable *t, const char *key, uint64_t h)
{
	if (!t->count)
		return NULL;
	size_t i = find(t, key, (uint32_t)h);
	return t->slots[i].id ? ktable_at(t, t->slots[i].id - 1) : NULL;
}

void *ktable_get(const KeyTable *t, const char *key) { return ktable_get_hashed(t, key, hash_str(key)); }

void ktable_prefetch(const KeyTable *t, uint64_t h, int stage)
{
	if (!t->cap)
		return;
	const KeyTableSlot *s = &t->slots[slots_home((uint32_t)h, t->cap)];
	if (stage == 0) {
		__builtin_prefetch(s);
	} else if (s->id) {
		const void *entry = ktable_at(t, s->id - 1);
		__builtin_prefetch(entry);
		__builtin_prefetch(ktable_key(t, entry));
	}
}

/* Stores entry as number count (the caller grew the index for it): its id. */
static uint32_t store(KeyTable *t, void *entry)
{
	size_t n = t->count, chunk = n >> KTABLE_CHUNK_BITS;
	if (chunk >= KTABLE_CHUNKS)
		fatal("more than %zu files or tasks in one workspace's records: split the workspace",
		      (size_t)KTABLE_CHUNKS << KTABLE_CHUNK_BITS);
	if (!t->chunks[chunk])
		t->chunks[chunk] = xmalloc(sizeof(void *) << KTABLE_CHUNK_BITS);
	t->chunks[chunk][n & ((1u << KTABLE_CHUNK_BITS) - 1)] = entry;
	t->count = n + 1;
	return (uint32_t)(n + 1);
}

void *ktable_add(KeyTable *t, void *entry, uint64_t h)
{
	if (slots_full(t->count, t->cap))
		grow(t, slots_capacity(0, t->count * 2));
	const char *key = ktable_key(t, entry);
	size_t i = find(t, key, (uint32_t)h);
	if (t->slots[i].id)
		return ktable_at(t, t->slots[i].id - 1);
	t->slots[i] = (KeyTableSlot){(uint32_t)h, store(t, entry)};
	return NULL;
}

/* Indexes the oldest pending entry (its key new to the table: the first free slot). */
static void index_pending(KeyTable *t)
{
	KeyTableSlot p = t->pending[t->pending_head];
	t->pending_head = (t->pending_head + 1) % KTABLE_PENDING;
	t->npending--;
	t->slots[slots_free_at(t->slots, t->cap, p.hash)] = p;
}

void ktable_append(KeyTable *t, void *entry, uint64_t h)
{
	if (slots_full(t->count, t->cap))
		grow(t, slots_capacity(0, t->count * 2)); /* the pending ones are not in it: indexed later */
	__builtin_prefetch(&t->slots[slots_home((uint32_t)h, t->cap)]);
	if (t->npending == KTABLE_PENDING)
		index_pending(t);
	t->pending[(t->pending_head + t->npending++) % KTABLE_PENDING] = (KeyTableSlot){(uint32_t)h, store(t, entry)};
}

void ktable_append_done(KeyTable *t)
{
	while (t->npending)
		index_pending(t);
}

void ktable_free(KeyTable *t)
{
	big_free(t->slots, t->cap * sizeof *t->slots);
	t->slots = NULL;
	t->cap = t->count = 0;
	t->npending = t->pending_head = 0;
	for (size_t k = 0; k < KTABLE_CHUNKS && t->chunks[k]; k++) {
		free(t->chunks[k]);
		t->chunks[k] = NULL;
	}
}
