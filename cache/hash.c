/* hash.c — XXH3-128 over bytes and over file contents, read in large chunks. */
#define _GNU_SOURCE
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

Hash hash_bytes(const void *data, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(data, len);
	return (Hash){h.low64, h.high64};
}

int hash_file(const char *path, Hash *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	static char chunk[1 << 17];
	XXH3_state_t *st = XXH3_createState();
	XXH3_128bits_reset(st);
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			XXH3_freeState(st);
			close(fd);
			errno = err;
			return -1;
		}
		XXH3_128bits_update(st, chunk, (size_t)n);
	}
	XXH128_hash_t h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	close(fd);
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
	unsigned long long hi = 0, lo = 0;
	for (int i = 0; i < 32; i++) {
		char c = hex[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		if (i < 16)
			hi = hi << 4 | (unsigned)v;
		else
			lo = lo << 4 | (unsigned)v;
	}
	*out = (Hash){lo, hi};
	return 0;
}
