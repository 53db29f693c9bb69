/* store.c — objects are whole-file copies named by content hash; every write goes to a
 * temporary name first and is renamed into place, so a crash leaves no half object. */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runner/util.h"

char *store_object_path(const char *objects_dir, Hash h)
{
	char hex[33];
	hash_hex(h, hex);
	return xasprintf("%s/%.2s/%s", objects_dir, hex, hex + 2);
}

int store_has(const char *objects_dir, Hash h)
{
	char *p = store_object_path(objects_dir, h);
	int ok = access(p, F_OK) == 0;
	free(p);
	return ok;
}

int store_copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	struct stat st;
	if (fstat(in, &st) != 0) {
		close(in);
		return -1;
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
	if (out < 0) {
		close(in);
		return -1;
	}
	int rc = 0;
	if (ioctl(out, FICLONE, in) != 0) {
		off_t left = st.st_size;
		while (left > 0) {
			ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
				static char buf[1 << 16];
				n = read(in, buf, sizeof buf);
				if (n > 0 && write(out, buf, (size_t)n) != n)
					n = -1;
			}
			if (n <= 0) {
				rc = n < 0 ? -1 : 0;
				break;
			}
			left -= n;
		}
	}
	fchmod(out, st.st_mode & 0777);
	if (close(out) != 0)
		rc = -1;
	close(in);
	return rc;
}

/* Copies src to a temp name beside dst, then renames it over dst. */
static int copy_atomic(const char *src, const char *dst)
{
	static unsigned counter;
	char *tmp = xasprintf("%s.kiln-tmp.%d.%u", dst, (int)getpid(), counter++);
	int rc = store_copy_file(src, tmp);
	if (rc == 0)
		rc = rename(tmp, dst);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

int store_put(const char *objects_dir, const char *path, Hash h)
{
	char *obj = store_object_path(objects_dir, h);
	int rc = 0;
	if (access(obj, F_OK) != 0) {
		mkdirs_parent(obj);
		rc = copy_atomic(path, obj);
	}
	free(obj);
	return rc;
}

int store_restore(const char *objects_dir, Hash h, const char *dest)
{
	char *obj = store_object_path(objects_dir, h);
	mkdirs_parent(dest);
	int rc = copy_atomic(obj, dest);
	free(obj);
	return rc;
}
