/* lock.c — the workspace lock (.kiln/lock): one writing kiln per workspace. The holder's
 * pid is in the file while it runs and the file is emptied on a clean exit, so a pid found
 * on taking the lock says the last kiln was killed (Cache.unclean). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int cache_take_lock(Cache *c, const char *kiln_dir, Buf *err)
{
	char *path = c->lock_path = xasprintf("%s/lock", kiln_dir);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (c->lock_fd < 0) {
		buf_printf(err, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	/* The holder writes its pid right after taking the lock and empties the file when it
	 * exits cleanly: a pid found on taking the lock means the last kiln was killed. A
	 * racing holder may not have written its pid yet, so look again for a while. */
	int holder = 0;
	for (int tries = 0;; tries++) {
		if (flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0) {
			/* `kiln clean --all` removes the lock file while it holds the lock: a lock
			 * on a file no longer at path guards nothing, so take the one there now */
			struct stat held, there;
			if (fstat(c->lock_fd, &held) == 0 && stat(path, &there) == 0 && held.st_ino == there.st_ino &&
			    held.st_dev == there.st_dev)
				break;
			close(c->lock_fd);
			if (mkdirs(kiln_dir, 0777) != 0 ||
			    (c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0) {
				buf_printf(err, "cannot open %s: %s", path, strerror(errno));
				return -1;
			}
			continue;
		}
		char text[32] = "";
		ssize_t n = pread(c->lock_fd, text, sizeof text - 1, 0);
		text[n > 0 ? n : 0] = 0;
		holder = atoi(text);
		if ((holder > 0 && kill(holder, 0) == 0) || tries == 50) {
			if (holder > 0 && kill(holder, 0) == 0)
				buf_printf(err, "another kiln (pid %d) is running in this workspace; wait for it to finish or "
						"stop it", holder);
			else
				buf_puts(err, "another kiln is starting in this workspace; wait for it to finish or stop it");
			return -1;
		}
		struct timespec pause = {0, 10000000};
		nanosleep(&pause, NULL);
	}
	char old[32] = "";
	ssize_t old_len = pread(c->lock_fd, old, sizeof old - 1, 0);
	c->unclean = old_len > 0 && atoi(old) > 0;
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(c->lock_fd, 0) != 0 || pwrite(c->lock_fd, pid, (size_t)n, 0) != n)
		warn("cannot write %s", path);
	return 0;
}

int cache_lock_holder(const Cache *c)
{
	const char *slash = strrchr(c->db_path, '/');
	char *path = xasprintf("%.*s/lock", slash ? (int)(slash - c->db_path) : 1, slash ? c->db_path : ".");
	int fd = open(path, O_RDONLY | O_CLOEXEC), holder = 0;
	free(path);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) { /* held: by whom */
		char text[32] = "";
		ssize_t n = pread(fd, text, sizeof text - 1, 0);
		text[n > 0 ? n : 0] = 0;
		holder = atoi(text);
		if (holder > 0 && kill(holder, 0) != 0 && errno == ESRCH)
			holder = 0;
	}
	close(fd); /* a shared lock taken is let go with it */
	return holder;
}

int cache_close_removing(Cache *c, const char *kiln_dir)
{
	int lock_fd = c->lock_fd;
	char *lock_path = c->lock_path ? xstrdup(c->lock_path) : NULL;
	c->lock_fd = -1; /* held until everything else is gone */
	cache_close(c);
	int rc = 0;
	DIR *d = opendir(kiln_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "lock"))
			continue;
		char *p = xasprintf("%s/%s", kiln_dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && (S_ISDIR(st.st_mode) ? remove_tree(p) : unlink(p)) != 0)
			rc = -1;
		free(p);
	}
	if (d)
		closedir(d);
	/* a kiln waiting for the lock finds, once it has it, that the file is gone (take_lock) */
	if (lock_path && unlink(lock_path) != 0)
		rc = -1;
	if (rmdir(kiln_dir) != 0 && errno != ENOENT)
		rc = -1; /* a kiln started meanwhile made a new lock file there: its own */
	if (lock_fd >= 0)
		close(lock_fd);
	free(lock_path);
	return rc;
}
