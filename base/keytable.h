/* keytable.h — a string-keyed table of entries the caller allocates, each carrying its key
 * (a `const char *` as its first member, or the key's text at a fixed offset:
 * KeyTable.key_at). Entries are numbered in the order they are added and kept in chunks
 * that never move, so entry i stays where it is while more are added; the index is open
 * addressing over 8-byte slots (32 bits of the key's hash and the entry's number + 1), at
 * most three quarters full. A million files' memo entries take 11 to 16 bytes each of index
 * (and 8 of chunk) instead of 48 to 96 as a StrMap's key, value and hash slots would.
 *
 * One thread adds and looks up; others may read entries [0, n) through ktable_at while it
 * adds more, once n was published to them (the caller's release store after the adds). */
#ifndef KILN_KEYTABLE_H
#define KILN_KEYTABLE_H

#include <stddef.h>
#include <stdint.h>

#define KTABLE_CHUNK_BITS 16
#define KTABLE_CHUNKS 16384 /* of 65536 entries: a billion in all */

/* The slots this table and the graph's indexes (taskindex.h) probe alike: linear probing
 * over an array of any size kept at most three quarters full (a power of two at most half
 * full would take 16 to 32 bytes a key; this takes 11 to 16). A key's first slot is its
 * hash's high bits scaled to the size. */
typedef struct {
	uint32_t hash; /* low half of hash_str(key) */
	uint32_t id;   /* entry number + 1; 0: empty */
} KeyTableSlot;

/* The slot a key with hash h probes first, of cap. */
static inline size_t slots_home(uint32_t h, size_t cap) { return (size_t)(((uint64_t)h * cap) >> 32); }

/* The slot probed after j, of cap. */
static inline size_t slots_next(size_t j, size_t cap) { return j + 1 == cap ? 0 : j + 1; }

/* Whether cap slots holding n keys must grow before one more is added. */
static inline int slots_full(size_t n, size_t cap) { return (n + 1) * 4 > cap * 3; }

/* The capacity (cap when it is enough, or at least 64) that holds n keys at most three
 * quarters full. */
static inline size_t slots_capacity(size_t cap, size_t n)
{
	if (n < 48)
		n = 48;
	if (!slots_full(n, cap))
		return cap;
	return ((n + 1) * 4 / 3 + 8) & ~(size_t)7; /* whole cache lines of slots */
}

/* The first empty slot from hash h's own on: where a key known to be absent goes. */
static inline size_t slots_free_at(const KeyTableSlot *slots, size_t cap, uint32_t h)
{
	size_t j = slots_home(h, cap);
	while (slots[j].id)
		j = slots_next(j, cap);
	return j;
}

typedef struct {
	KeyTableSlot *slots;
	size_t cap;
	size_t count;
	/* 0: an entry's key is its first member (a const char *); else the key's text itself
	 * lies this many bytes into the entry (right behind a fixed-size record: no pointer) */
	size_t key_at;
	/* ktable_append's entries numbered and stored but not yet in the index: their slots are
	 * being prefetched */
#define KTABLE_PENDING 16
	KeyTableSlot pending[KTABLE_PENDING]; /* a ring: npending from pending_head on */
	unsigned npending, pending_head;
	void **chunks[KTABLE_CHUNKS];
} KeyTable;

/* The entry whose key is key (h = hash_str(key)), or NULL. */
void *ktable_get(const KeyTable *t, const char *key);
void *ktable_get_hashed(const KeyTable *t, const char *key, uint64_t h);
/* For batches of look-ups, as strmap_prefetch: stage 0 loads the key's first slot, a later
 * stage 1 the entry and key that slot points to. */
void ktable_prefetch(const KeyTable *t, uint64_t h, int stage);
/* The key of entry (one of t's). */
static inline const char *ktable_key(const KeyTable *t, const void *entry)
{
	return t->key_at ? (const char *)entry + t->key_at : *(const char *const *)entry;
}
/* Adds entry (whose key is as KeyTable.key_at says; h = hash_str(key)) unless an entry with an
 * equal key is there: returns that one (the table unchanged), else NULL. Past a billion
 * entries kiln stops with a message (a fatal error). */
void *ktable_add(KeyTable *t, void *entry, uint64_t h);
/* For a table filled with keys known to be distinct (rows read back from a table keyed by
 * them): numbers and stores entry at once, as ktable_add would, and puts it in the index a
 * few appends later, once its slot was prefetched (a million adds then wait on no cache
 * miss each). Entries are readable by number at once (ktable_at); no look-up or add may
 * come before ktable_append_done, which indexes the rest. */
void ktable_append(KeyTable *t, void *entry, uint64_t h);
void ktable_append_done(KeyTable *t);
/* Entry number i (< count). */
static inline void *ktable_at(const KeyTable *t, size_t i)
{
	return t->chunks[i >> KTABLE_CHUNK_BITS][i & ((1u << KTABLE_CHUNK_BITS) - 1)];
}
/* Makes room for n entries in all: adding a known number never rehashes. */
void ktable_reserve(KeyTable *t, size_t n);
/* Frees the index and chunks (not the entries) and empties the table (key_at stays). */
void ktable_free(KeyTable *t);

#endif
