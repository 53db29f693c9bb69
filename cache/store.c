/* store.c — objects are named by content hash. Small ones (up to STORE_PACK_MAX) are rows
 * of one SQLite file, objects/pack.db, so storing an output costs no file creation; larger
 * ones are whole-file copies, written to a temporary name and renamed into place. Either
 * way a crash leaves no half object. */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <xxhash.h>

#include "../runner/util.h"

#define STORE_PACK_MAX (1 << 20)

/* Opens objects_dir/pack.db (created when create), or NULL. One connection per caller. */
static sqlite3 *pack_open(const char *objects_dir, int create)
{
	char *path = xasprintf("%s/pack.db", objects_dir);
	sqlite3 *db = NULL;
	if (!create && access(path, F_OK) != 0) {
		free(path);
		return NULL;
	}
	if (create)
		mkdirs(objects_dir, 0777);
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), NULL);
	free(path);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 10000);
		rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
				      "CREATE TABLE IF NOT EXISTS objects (hash TEXT PRIMARY KEY, data BLOB NOT NULL);",
				  NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* The main thread's connection to the pack, opened on first use. */
static sqlite3 *reader_db;
static char *reader_dir;

static sqlite3 *pack_reader(const char *objects_dir)
{
	if (reader_db && strcmp(reader_dir, objects_dir) == 0)
		return reader_db;
	if (reader_db)
		sqlite3_close(reader_db);
	free(reader_dir);
	reader_dir = xstrdup(objects_dir);
	reader_db = pack_open(objects_dir, 0);
	return reader_db;
}

void store_close(void)
{
	sqlite3_close(reader_db);
	reader_db = NULL;
	free(reader_dir);
	reader_dir = NULL;
}

/* Runs fn(row data, size) for the packed object h; returns 1 if it exists. */
static int pack_get(const char *objects_dir, Hash h, const void **data, int *size, sqlite3_stmt **st)
{
	sqlite3 *db = pack_reader(objects_dir);
	if (!db)
		return 0;
	char hex[33];
	hash_hex(h, hex);
	if (sqlite3_prepare_v2(db, "SELECT data FROM objects WHERE hash = ?1", -1, st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(*st, 1, hex, 32, SQLITE_TRANSIENT);
	if (sqlite3_step(*st) != SQLITE_ROW) {
		sqlite3_finalize(*st);
		*st = NULL;
		return 0;
	}
	*data = sqlite3_column_blob(*st, 0);
	*size = sqlite3_column_bytes(*st, 0);
	return 1;
}

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
	const void *data;
	int size;
	sqlite3_stmt *st = NULL;
	if (!ok && pack_get(objects_dir, h, &data, &size, &st)) {
		ok = 1;
		sqlite3_finalize(st);
	}
	return ok;
}

int store_copy_file(const char *src, const char *dst)
{
	int in = open_read(src);
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
	mkdirs_parent(dest);
	const void *data;
	int size;
	sqlite3_stmt *st = NULL;
	if (pack_get(objects_dir, h, &data, &size, &st)) {
		int rc = write_file_atomic(dest, data, (size_t)size);
		sqlite3_finalize(st);
		return rc;
	}
	char *obj = store_object_path(objects_dir, h);
	int rc = copy_atomic(obj, dest);
	free(obj);
	return rc;
}

/* Copies src into the store as h, hashing while copying; 0 stored, 1 skipped (content
 * no longer matches h), -1 error. */
static int put_verified(const char *objects_dir, const char *src, Hash h)
{
	char *obj = store_object_path(objects_dir, h);
	if (access(obj, F_OK) == 0) {
		free(obj);
		return 0;
	}
	mkdirs_parent(obj);
	char *tmp = xasprintf("%s.kiln-tmp.%d", obj, (int)getpid());
	int in = open_read(src), out = -1, rc = -1;
	struct stat st;
	if (in < 0 || fstat(in, &st) != 0)
		goto done;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
	if (out < 0)
		goto done;
	XXH3_state_t *xs = XXH3_createState();
	XXH3_128bits_reset(xs);
	char buf[1 << 16];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0) {
		XXH3_128bits_update(xs, buf, (size_t)n);
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	}
	XXH128_hash_t got = XXH3_128bits_digest(xs);
	XXH3_freeState(xs);
	if (close(out) != 0 || n < 0)
		goto done;
	out = -1;
	if (got.low64 != h.lo || got.high64 != h.hi) {
		rc = 1;
		goto done;
	}
	rc = rename(tmp, obj);
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	free(obj);
	return rc;
}

typedef struct Item {
	char *path;
	Hash hash;
	struct Item *next;
} Item;

struct StoreQueue {
	char *objects_dir;
	sqlite3 *pack;          /* the writer thread's own connection */
	sqlite3_stmt *insert;
	int pending;            /* rows in the open transaction */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	Item *head, *tail;
	int queued;             /* items in the list */
	int sleeping;           /* the writer waits for a batch */
	int closing, failures;
};

/* The writer wakes for a batch of this many outputs, or after BATCH_WAIT_MS: one wake-up
 * and one commit per output would cost a full run of small tasks more than the copying. */
#define BATCH 64
#define BATCH_WAIT_MS 50

/* Packs a small file as object h: 0 stored, 1 skipped (changed since hashed), 2 too big
 * for the pack (or no pack), -1 error. */
static int put_packed(StoreQueue *q, const char *path, Hash h)
{
	if (!q->pack)
		return 2;
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	if (st.st_size > STORE_PACK_MAX || !S_ISREG(st.st_mode))
		return 2;
	size_t len;
	char *data = read_file(path, &len);
	if (!data)
		return -1;
	Hash got = hash_bytes(data, len);
	int rc = 1;
	if (hash_equal(got, h)) {
		char hex[33];
		hash_hex(h, hex);
		if (!q->pending++)
			sqlite3_exec(q->pack, "BEGIN", NULL, NULL, NULL);
		sqlite3_bind_text(q->insert, 1, hex, 32, SQLITE_TRANSIENT);
		sqlite3_bind_blob(q->insert, 2, data, (int)len, SQLITE_STATIC);
		rc = sqlite3_step(q->insert) == SQLITE_DONE ? 0 : -1;
		sqlite3_reset(q->insert);
	}
	free(data);
	return rc;
}

static void *writer_main(void *arg)
{
	StoreQueue *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (!q->head) {
			if (q->pending) { /* idle: make what was written durable */
				pthread_mutex_unlock(&q->lock);
				sqlite3_exec(q->pack, "COMMIT", NULL, NULL, NULL);
				q->pending = 0;
				pthread_mutex_lock(&q->lock);
			}
			q->sleeping = 1;
			while (!q->head && !q->closing)
				pthread_cond_wait(&q->wake, &q->lock);
			/* the queue was empty: let a batch gather before draining it */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += BATCH_WAIT_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (q->queued < BATCH && !q->closing &&
			       pthread_cond_timedwait(&q->wake, &q->lock, &until) == 0)
				;
			q->sleeping = 0;
		}
		Item *it = q->head;
		if (!it)
			break; /* closing, and nothing left */
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->queued--;
		pthread_mutex_unlock(&q->lock);
		int rc = put_packed(q, it->path, it->hash);
		if (rc == 2)
			rc = put_verified(q->objects_dir, it->path, it->hash);
		if (q->pending >= 256) {
			sqlite3_exec(q->pack, "COMMIT", NULL, NULL, NULL);
			q->pending = 0;
		}
		free(it->path);
		free(it);
		pthread_mutex_lock(&q->lock);
		q->failures += rc < 0;
	}
	pthread_mutex_unlock(&q->lock);
	if (q->pending)
		sqlite3_exec(q->pack, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(q->insert);
	sqlite3_close(q->pack);
	return NULL;
}

StoreQueue *store_queue_start(const char *objects_dir)
{
	StoreQueue *q = xcalloc(1, sizeof *q);
	q->objects_dir = xstrdup(objects_dir);
	q->pack = pack_open(objects_dir, 1);
	if (q->pack && sqlite3_prepare_v2(q->pack, "INSERT OR IGNORE INTO objects VALUES (?1, ?2)", -1, &q->insert, NULL) != SQLITE_OK) {
		sqlite3_close(q->pack);
		q->pack = NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	/* the thread must not take the signals the scheduler waits for */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		sqlite3_finalize(q->insert);
		sqlite3_close(q->pack);
		free(q->objects_dir);
		free(q);
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q;
}

void store_queue_put(StoreQueue *q, const char *path, Hash h)
{
	Item *it = xcalloc(1, sizeof *it);
	it->path = xstrdup(path);
	it->hash = h;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->queued++;
	if (q->sleeping && (q->queued == 1 || q->queued >= BATCH))
		pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

int store_queue_finish(StoreQueue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closing = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	int failures = q->failures;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	free(q->objects_dir);
	free(q);
	return failures;
}

int store_gc_pack(const char *objects_dir, int (*keep)(void *ctx, const char *hex), void *ctx, long long *bytes)
{
	sqlite3 *db = pack_open(objects_dir, 0);
	if (!db)
		return 0;
	sqlite3_stmt *sel, *del;
	int removed = 0;
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, "SELECT hash, length(data) FROM objects", -1, &sel, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "DELETE FROM objects WHERE hash = ?1", -1, &del, NULL) == SQLITE_OK) {
		while (sqlite3_step(sel) == SQLITE_ROW) {
			const char *hex = (const char *)sqlite3_column_text(sel, 0);
			if (keep(ctx, hex))
				continue;
			*bytes += sqlite3_column_int64(sel, 1);
			sqlite3_bind_text(del, 1, hex, -1, SQLITE_TRANSIENT);
			removed += sqlite3_step(del) == SQLITE_DONE;
			sqlite3_reset(del);
		}
		sqlite3_finalize(del);
	}
	sqlite3_finalize(sel);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return removed;
}
