/* hash.c — XXH3-128 over bytes and over file contents, read in large chunks. */
#define _GNU_SOURCE
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "util.h"

Hash hash_bytes(const void *data, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(data, len);
	return (Hash){h.low64, h.high64};
}

/* Safe to call from several threads at once (the stat and hash phases run in parallel). */
int hash_file(const char *path, Hash *out)
{
	int fd = open_read(path); /* no access-time update: that would cost more than the read */
	if (fd < 0)
		return -1;
	char chunk[1 << 16];
	XXH3_state_t *st = NULL;
	ssize_t n;
	size_t first = 0;
	int failed = 0;
	while ((n = read(fd, chunk + first, sizeof chunk - first)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			failed = errno;
			break;
		}
		if (!st && first + (size_t)n < sizeof chunk) { /* still fits: most files are small */
			first += (size_t)n;
			continue;
		}
		if (!st) {
			st = XXH3_createState();
			XXH3_128bits_reset(st);
			XXH3_128bits_update(st, chunk, first + (size_t)n);
			first = 0;
		} else {
			XXH3_128bits_update(st, chunk, (size_t)n);
		}
	}
	close(fd);
	XXH128_hash_t h = {0, 0};
	if (!failed)
		h = st ? XXH3_128bits_digest(st) : XXH3_128bits(chunk, first);
	XXH3_freeState(st);
	if (failed) {
		errno = failed;
		return -1;
	}
	*out = (Hash){h.low64, h.high64};
	return 0;
}

int hash_equal(Hash a, Hash b) { return a.lo == b.lo && a.hi == b.hi; }

void hash_hex(Hash h, char out[33])
{
	/* two digits per byte from one table: a key's text holds one hash per input */
	static const char pairs[513] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
				       "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
				       "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
				       "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
				       "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
				       "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
				       "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
				       "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
	for (int i = 0; i < 8; i++) {
		unsigned hi = (unsigned)(h.hi >> (56 - 8 * i)) & 255, lo = (unsigned)(h.lo >> (56 - 8 * i)) & 255;
		memcpy(out + 2 * i, pairs + 2 * hi, 2);
		memcpy(out + 16 + 2 * i, pairs + 2 * lo, 2);
	}
	out[32] = 0;
}

int hash_parse(const char *hex, Hash *out)
{
	/* digit value + 1; 0 marks a byte that is no lowercase hex digit */
	static const unsigned char value[256] = {
		['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
		['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	};
	if (strnlen(hex, 32) < 32)
		return -1; /* never read past a short string's end */
	uint64_t hi = 0, lo = 0;
	unsigned bad = 0;
	for (int i = 0; i < 16; i++) { /* each recorded output's hash is parsed on every no-op */
		unsigned a = value[(unsigned char)hex[i]], b = value[(unsigned char)hex[16 + i]];
		bad |= (a == 0) | (b == 0);
		hi = hi << 4 | ((a - 1) & 15);
		lo = lo << 4 | ((b - 1) & 15);
	}
	if (bad)
		return -1;
	*out = (Hash){lo, hi};
	return 0;
}
