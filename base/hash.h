/* hash.h — 128-bit content hashes (XXH3-128 from libxxhash) of bytes and files. */
#ifndef KILN_HASH_H
#define KILN_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint64_t lo, hi;
} Hash;

Hash hash_bytes(const void *data, size_t len);
/* Hashes a regular file's content; returns 0, or -1 with errno set. */
int hash_file(const char *path, Hash *out);
int hash_equal(Hash a, Hash b);
/* What an optional output that was not made is recorded as: all zero bits, which no
 * content hashes to in practice. */
#define HASH_ABSENT ((Hash){0, 0})
static inline int hash_is_absent(Hash h) { return !h.lo && !h.hi; }
/* Writes 32 lowercase hex digits and a NUL. */
void hash_hex(Hash h, char out[33]);
/* Parses 32 hex digits; returns 0 or -1. */
int hash_parse(const char *hex, Hash *out);

#endif
