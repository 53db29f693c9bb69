/* untar.c — a tar stream unpacked in this process (see untar.h). A block is 512 bytes: a
 * header (name, mode, size, mtime, type, link name, ustar prefix), then the member's data
 * padded to whole blocks. GNU's long names come as a member of type L (K: a long link name)
 * before the one they name; POSIX's as a pax header (x) of "LEN key=value\n" records. */
#define _GNU_SOURCE
#include "untar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 512
/* A long name or a pax header larger than this is no output of ours: refused. */
#define MAX_META (1 << 20)

/* Reads exactly n bytes: n, 0 at the end of the stream, or -1. A short read mid-block is -1. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return got ? -1 : 0;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* A numeric field: octal digits (spaces and NULs around them), or GNU's base-256 for
 * values that do not fit (a first byte with its top bit set). -1 when malformed. */
static long long number(const unsigned char *p, size_t n)
{
	long long v = 0;
	if (p[0] & 0x80) {
		v = p[0] & 0x3f;
		for (size_t i = 1; i < n; i++) {
			if (v > (1LL << 54))
				return -1;
			v = (v << 8) | p[i];
		}
		return v;
	}
	size_t i = 0;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v > (1LL << 58))
			return -1;
		v = v * 8 + (p[i] - '0');
	}
	return i < n && p[i] != 0 && p[i] != ' ' ? -1 : v;
}

static int checksum_ok(const unsigned char *h)
{
	long long want = number(h + 148, 8), sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	return want == sum;
}

/* Whether name may be written: relative, and no component is "..". */
static int safe_name(const char *name)
{
	if (!*name || name[0] == '/')
		return 0;
	for (const char *p = name; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
			return 0;
	return 1;
}

/* A member's data into a malloc'd, NUL-terminated string (long names, pax records). */
static char *read_meta(int fd, long long size)
{
	if (size < 0 || size > MAX_META)
		return NULL;
	size_t padded = ((size_t)size + BLOCK - 1) / BLOCK * BLOCK;
	char *data = xmalloc(padded + 1);
	if (padded && read_full(fd, data, padded) != (ssize_t)padded) {
		free(data);
		return NULL;
	}
	data[size] = 0;
	return data;
}

/* The value of key in pax records ("LEN key=value\n"), malloc'd, or NULL. */
static char *pax_value(const char *recs, const char *key)
{
	size_t klen = strlen(key);
	for (const char *p = recs; *p;) {
		char *end;
		long len = strtol(p, &end, 10);
		if (len <= 0 || *end != ' ' || (size_t)len > strlen(p))
			return NULL;
		const char *kv = end + 1;
		if (!strncmp(kv, key, klen) && kv[klen] == '=')
			return strndup(kv + klen + 1, (size_t)(p + len - 1 - (kv + klen + 1)));
		p += len;
	}
	return NULL;
}

/* Copies size bytes of fd into a new file at path, then skips the padding. */
static int write_member(int fd, const char *path, long long size, int mode, long long mtime)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return -1;
	int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return -1;
	char buf[1 << 16];
	long long left = size;
	int rc = 0;
	while (left > 0 && rc == 0) {
		size_t want = left > (long long)sizeof buf ? sizeof buf : (size_t)left;
		ssize_t r = read_full(fd, buf, want);
		if (r != (ssize_t)want) {
			errno = EIO;
			rc = -1;
			break;
		}
		for (size_t off = 0; off < want && rc == 0;) {
			ssize_t w = write(out, buf + off, want - off);
			if (w < 0 && errno != EINTR)
				rc = -1;
			else if (w > 0)
				off += (size_t)w;
		}
		left -= (long long)want;
	}
	if (rc == 0 && fchmod(out, (mode_t)(mode & 0777)) != 0)
		rc = -1;
	struct timespec times[2] = {{0, UTIME_OMIT}, {(time_t)mtime, 0}}; /* the member's time, as tar keeps it */
	if (rc == 0 && futimens(out, times) != 0)
		rc = -1;
	if (close(out) != 0)
		rc = -1;
	size_t pad = (size_t)((BLOCK - size % BLOCK) % BLOCK);
	if (rc == 0 && pad && read_full(fd, buf, pad) != (ssize_t)pad) {
		errno = EIO;
		rc = -1;
	}
	return rc;
}

int untar_header(const unsigned char *block, long long *size, char *type, char name[101])
{
	int zero = 1;
	for (int i = 0; i < BLOCK && zero; i++)
		zero = !block[i];
	if (zero)
		return 0;
	*size = number(block + 124, 12);
	if (!checksum_ok(block) || *size < 0)
		return -1;
	*type = (char)block[156];
	snprintf(name, 101, "%.100s", (const char *)block);
	return 1;
}

int untar_fd(int fd, const char *dir, Buf *err)
{
	unsigned char h[BLOCK];
	char *long_name = NULL, *long_link = NULL;
	int rc = 0;
	for (;;) {
		ssize_t r = read_full(fd, h, BLOCK);
		if (r == 0)
			break; /* the stream ended without end blocks: what came is all there is */
		if (r < 0) {
			buf_puts(err, "the stream ends inside a header");
			rc = -1;
			break;
		}
		int zero = 1;
		for (int i = 0; i < BLOCK && zero; i++)
			zero = !h[i];
		if (zero)
			break; /* the archive's end */
		if (!checksum_ok(h)) {
			buf_puts(err, "a header's checksum is wrong (the stream is damaged)");
			rc = -1;
			break;
		}
		char type = (char)h[156];
		long long size = number(h + 124, 12), mtime = number(h + 136, 12), mode = number(h + 100, 8);
		if (size < 0 || mtime < 0 || mode < 0) {
			buf_puts(err, "a header's numbers are malformed");
			rc = -1;
			break;
		}
		if (type == 'L' || type == 'K' || type == 'x' || type == 'g') { /* about the next member */
			char *meta = read_meta(fd, size);
			if (!meta) {
				buf_puts(err, "a long name or pax header is cut short or too long");
				rc = -1;
				break;
			}
			if (type == 'L' || type == 'K') {
				char **slot = type == 'L' ? &long_name : &long_link;
				free(*slot);
				*slot = meta;
			} else {
				char *path = type == 'x' ? pax_value(meta, "path") : NULL;
				char *link = type == 'x' ? pax_value(meta, "linkpath") : NULL;
				free(meta);
				if (path)
					free(long_name), long_name = path;
				if (link)
					free(long_link), long_link = link;
			}
			continue;
		}
		char name[BLOCK], linkname[101];
		if (long_name) {
			snprintf(name, sizeof name, "%s", long_name);
		} else if (!memcmp(h + 257, "ustar", 5) && h[345]) { /* prefix/name */
			snprintf(name, sizeof name, "%.155s/%.100s", (char *)h + 345, (char *)h);
		} else {
			snprintf(name, sizeof name, "%.100s", (char *)h);
		}
		snprintf(linkname, sizeof linkname, "%.100s", (char *)h + 157);
		const char *target = long_link ? long_link : linkname;
		size_t n = strlen(name);
		while (n > 1 && name[n - 1] == '/')
			name[--n] = 0;
		if (long_name && strlen(long_name) >= sizeof name) {
			buf_printf(err, "%.60s...: a name longer than kiln unpacks", long_name);
			rc = -1;
			break;
		}
		if (!safe_name(name) || ((type == '1') && !safe_name(target))) {
			buf_printf(err, "%s: refused (an absolute path or one with ..)", name);
			rc = -1;
			break;
		}
		char *path = dir ? xasprintf("%s/%s", dir, name) : xstrdup(name);
		int ok = mkdirs_parent(path) == 0;
		if (ok && type == '5') {
			ok = mkdirs(path, 0755) == 0;
		} else if (ok && (type == '0' || type == 0 || type == '7')) {
			ok = write_member(fd, path, size, (int)mode, mtime) == 0;
			size = 0; /* consumed */
		} else if (ok && type == '2') {
			ok = (unlink(path) == 0 || errno == ENOENT) && symlink(target, path) == 0;
		} else if (ok && type == '1') {
			char *from = dir ? xasprintf("%s/%s", dir, target) : xstrdup(target);
			ok = (unlink(path) == 0 || errno == ENOENT) && link(from, path) == 0;
			free(from);
		} else if (ok) {
			buf_printf(err, "%s: a member of a kind kiln does not unpack (type %c)", name, type ? type : '0');
			free(path);
			rc = -1;
			break;
		}
		if (!ok) {
			buf_printf(err, "%s: %s", name, strerror(errno));
			free(path);
			rc = -1;
			break;
		}
		free(path);
		free(long_name), long_name = NULL;
		free(long_link), long_link = NULL;
		if (size > 0) { /* data of a member that has none to write (a link's, a directory's) */
			char skip[BLOCK];
			for (long long left = (size + BLOCK - 1) / BLOCK; left > 0; left--)
				if (read_full(fd, skip, BLOCK) != BLOCK) {
					buf_puts(err, "the stream ends inside a member");
					rc = -1;
					break;
				}
			if (rc)
				break;
		}
	}
	free(long_name);
	free(long_link);
	return rc;
}
