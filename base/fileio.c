/* fileio.c — the file helpers declared in util.h: directories made and removed, whole
 * files and their tails read, files replaced atomically. */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mkdirs(const char *path, int mode)
{
	char tmp[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, mode) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int mkdirs_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char dir[4096];
	size_t n = (size_t)(slash - path);
	if (n >= sizeof dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = 0;
	struct stat st;
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return mkdirs(dir, 0777);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

int remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

int open_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM) /* not the file's owner */
		fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd;
}

char *read_file(const char *path, size_t *len)
{
	int fd = open_read(path);
	if (fd < 0)
		return NULL;
	/* one buffer of the file's size, read into directly: no staging copy, no regrowth
	 * (a recipe and its compiled chunk are read on every command); a file that grows
	 * meanwhile (or reports no size) is read on to its end all the same */
	struct stat st;
	size_t cap = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	char *data = xmalloc(cap);
	size_t have = 0;
	ssize_t n;
	for (;;) {
		if (have + 1 == cap)
			data = xrealloc(data, cap *= 2);
		n = read(fd, data + have, cap - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	int err = errno;
	close(fd);
	if (n < 0) {
		free(data);
		errno = err;
		return NULL;
	}
	data[have] = 0;
	if (len)
		*len = have;
	return data;
}

char *read_file_tail(const char *path, size_t max, size_t *len, long long *from)
{
	int fd = open_read(path);
	if (fd < 0)
		return NULL;
	off_t size = lseek(fd, 0, SEEK_END), start = size > (off_t)max ? size - (off_t)max : 0;
	char *data = xmalloc((size > start ? (size_t)(size - start) : 0) + 1);
	ssize_t n = size > start ? pread(fd, data, (size_t)(size - start), start) : 0;
	int err = errno;
	close(fd);
	if (n < 0 || size < 0) {
		free(data);
		errno = err;
		return NULL;
	}
	data[n] = 0;
	if (len)
		*len = (size_t)n;
	if (from)
		*from = start;
	return data;
}

int write_file_atomic(const char *path, const void *data, size_t len) { return write_file_atomic_mode(path, data, len, 0666); }

int write_file_atomic_mode(const char *path, const void *data, size_t len, int mode)
{
	char *tmp = xasprintf("%s.kiln-tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		free(tmp);
		return -1;
	}
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(tmp);
			free(tmp);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}
