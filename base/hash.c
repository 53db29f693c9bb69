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
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[i] = digits[(h.hi >> (60 - 4 * i)) & 15];
		out[16 + i] = digits[(h.lo >> (60 - 4 * i)) & 15];
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
	unsigned long long half[2] = {0, 0};
	unsigned bad = 0;
	for (int i = 0; i < 32; i++) {
		unsigned v = value[(unsigned char)hex[i]];
		bad |= v == 0;
		half[i >> 4] = half[i >> 4] << 4 | ((v - 1) & 15);
		if (!hex[i])
			return -1; /* never read past a short string's end */
	}
	if (bad)
		return -1;
	*out = (Hash){half[1], half[0]};
	return 0;
}
