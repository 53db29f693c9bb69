/* lock.c — the workspace lock (.kiln/lock): one writing kiln per workspace. The holder's
 * pid and host are in the file while it runs ("PID HOST\n"; an older kiln wrote "PID\n")
 * and the file is emptied on a clean exit, so a pid found on taking the lock says the last
 * kiln was killed (Cache.unclean). A workspace on a file system hosts share (NFS) may be
 * held by a kiln on another host: its pid means nothing here, its host says where it is. */
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

#include "../base/os.h"
#include "internal.h"

/* The holder the lock file's text names: its pid (0: none) and host ("" when an older
 * kiln wrote it: this host's). */
static int parse_holder(const char *text, char *host, size_t host_len)
{
	int pid = 0, used = 0;
	host[0] = 0;
	if (sscanf(text, "%d%n", &pid, &used) != 1 || pid <= 0)
		return 0;
	const char *h = text + used;
	while (*h == ' ')
		h++;
	size_t n = strcspn(h, " \n");
	if (n >= host_len)
		n = host_len - 1;
	memcpy(host, h, n);
	host[n] = 0;
	return pid;
}

static int elsewhere(const char *host) { return host[0] && strcmp(host, os_hostname()) != 0; }

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
		if (errno != EWOULDBLOCK) { /* not held: not to be had on this file system */
			buf_printf(err, "cannot lock %s: %s; kiln keeps one writer per workspace by flock(2), which "
					"this file system does not give (Lustre: mount it with -o flock): put the workspace "
					"on one that does", path, strerror(errno));
			close(c->lock_fd);
			c->lock_fd = -1;
			return -1;
		}
		char text[320] = "", host[256];
		ssize_t n = pread(c->lock_fd, text, sizeof text - 1, 0);
		text[n > 0 ? n : 0] = 0;
		holder = parse_holder(text, host, sizeof host);
		int refused = 1;
		if (holder > 0 && elsewhere(host)) /* a file system shared with that host: it holds the lock there */
			buf_printf(err, "another kiln (pid %d on %s) is running in this workspace; wait for it to finish, "
					"or stop it on %s", holder, host, host);
		else if (holder > 0 && kill(holder, 0) == 0)
			buf_printf(err, "another kiln (pid %d) is running in this workspace; wait for it to finish or stop it",
				   holder);
		else if (tries == 50)
			buf_puts(err, "another kiln is starting in this workspace; wait for it to finish or stop it");
		else
			refused = 0;
		if (refused) {
			/* not ours: cache_close must not empty the holder's text ("exited cleanly") */
			close(c->lock_fd);
			c->lock_fd = -1;
			return -1;
		}
		struct timespec pause = {0, 10000000};
		nanosleep(&pause, NULL);
	}
	char old[320] = "", old_host[256];
	ssize_t old_len = pread(c->lock_fd, old, sizeof old - 1, 0);
	old[old_len > 0 ? old_len : 0] = 0;
	c->unclean = parse_holder(old, old_host, sizeof old_host) > 0;
	char pid[320];
	int n = snprintf(pid, sizeof pid, "%d %s\n", (int)getpid(), os_hostname());
	if (ftruncate(c->lock_fd, 0) != 0 || pwrite(c->lock_fd, pid, (size_t)n, 0) != n)
		warn("cannot write %s", path);
	return 0;
}

int cache_lock_holder_at(const char *kiln_dir, char *host, size_t host_len)
{
	char *path = xasprintf("%s/lock", kiln_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC), holder = 0;
	free(path);
	host[0] = 0;
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) { /* held: by whom */
		char text[320] = "";
		ssize_t n = pread(fd, text, sizeof text - 1, 0);
		text[n > 0 ? n : 0] = 0;
		holder = parse_holder(text, host, host_len);
		if (holder > 0 && !elsewhere(host) && kill(holder, 0) != 0 && errno == ESRCH)
			holder = 0;
	}
	close(fd); /* a shared lock taken is let go with it */
	if (!elsewhere(host))
		host[0] = 0;
	return holder;
}

int cache_lock_holder(const Cache *c)
{
	const char *slash = strrchr(c->db_path, '/');
	char *dir = xasprintf("%.*s", slash ? (int)(slash - c->db_path) : 1, slash ? c->db_path : ".");
	char host[256];
	int holder = cache_lock_holder_at(dir, host, sizeof host);
	free(dir);
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
