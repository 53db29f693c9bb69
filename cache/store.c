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
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <xxhash.h>

#include "../base/thread.h"
#include "../base/util.h"

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
				      "CREATE TABLE IF NOT EXISTS objects (hash TEXT PRIMARY KEY, data BLOB NOT NULL);"
				      "CREATE TABLE IF NOT EXISTS trees (hash TEXT PRIMARY KEY, listing TEXT NOT NULL);",
				  NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* The caller's view of the store: its directory and a connection to the pack with its
 * look-ups prepared once, opened on first use (a no-op run never needs it). */
struct Store {
	char *dir;
	sqlite3 *db;
	sqlite3_stmt *object, *tree, *drop;
};

Store *store_open(const char *objects_dir)
{
	Store *st = xcalloc(1, sizeof *st);
	st->dir = xstrdup(objects_dir);
	return st;
}

void store_free(Store *st)
{
	if (!st)
		return;
	sqlite3_finalize(st->object);
	sqlite3_finalize(st->tree);
	sqlite3_finalize(st->drop);
	sqlite3_close(st->db);
	free(st->dir);
	free(st);
}

const char *store_dir(const Store *st) { return st->dir; }

/* The pack connection, or NULL when there is no pack yet. */
static sqlite3 *pack_reader(Store *st)
{
	if (!st->db) { /* none yet: the store's writer may create it during the run */
		if ((st->db = pack_open(st->dir, 0)) &&
		    (sqlite3_prepare_v2(st->db, "SELECT data FROM objects WHERE hash = ?1", -1, &st->object, NULL) ||
		     sqlite3_prepare_v2(st->db, "SELECT listing FROM trees WHERE hash = ?1", -1, &st->tree, NULL) ||
		     sqlite3_prepare_v2(st->db, "DELETE FROM objects WHERE hash = ?1", -1, &st->drop, NULL))) {
			sqlite3_finalize(st->object);
			sqlite3_finalize(st->tree);
			st->object = st->tree = NULL;
			sqlite3_close(st->db);
			st->db = NULL;
		}
	}
	return st->db;
}

static sqlite3_stmt *bound(sqlite3_stmt *q, Hash h)
{
	char hex[33];
	hash_hex(h, hex);
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, hex, 32, SQLITE_TRANSIENT);
	return q;
}

/* The packed object h: 1 with its bytes (valid until the next look-up), or 0. */
static int pack_get(Store *st, Hash h, const void **data, int *size)
{
	if (!pack_reader(st) || sqlite3_step(bound(st->object, h)) != SQLITE_ROW)
		return 0;
	*data = sqlite3_column_blob(st->object, 0);
	*size = sqlite3_column_bytes(st->object, 0);
	return 1;
}

/* The listing of tree h (malloc'd), or NULL when h is no stored tree. */
static char *tree_get(Store *st, Hash h)
{
	if (!pack_reader(st) || sqlite3_step(bound(st->tree, h)) != SQLITE_ROW)
		return NULL;
	char *listing = xstrdup((const char *)sqlite3_column_text(st->tree, 0));
	sqlite3_reset(st->tree);
	return listing;
}

typedef struct {
	char kind; /* 'f' or 'd' */
	unsigned mode;
	Hash hash;
	char name[256];
} TreeEntry;

/* Reads the entry at *p and moves past it: 1, 0 at the end, -1 when malformed. */
static int next_entry(const char **p, TreeEntry *e)
{
	if (!**p)
		return 0;
	const char *nl = strchr(*p, '\n');
	char hex[33];
	int name_at = 0;
	if (!nl || sscanf(*p, "%c %o %32s %n", &e->kind, &e->mode, hex, &name_at) != 3 || name_at == 0 ||
	    (e->kind != 'f' && e->kind != 'd') || hash_parse(hex, &e->hash) != 0)
		return -1;
	size_t len = (size_t)(nl - (*p + name_at));
	if (len == 0 || len >= sizeof e->name)
		return -1;
	memcpy(e->name, *p + name_at, len);
	e->name[len] = 0;
	*p = nl + 1;
	return 1;
}

int store_tree_hash(const char *listing, Hash *out)
{
	Buf merkle = {0};
	buf_puts(&merkle, "dir\n");
	TreeEntry e;
	int rc;
	char hex[33];
	for (const char *p = listing; (rc = next_entry(&p, &e)) > 0;) {
		hash_hex(e.hash, hex);
		buf_printf(&merkle, "%s\t%s\n", e.name, hex);
	}
	if (rc == 0)
		*out = hash_bytes(merkle.data, merkle.len);
	buf_free(&merkle);
	return rc;
}

int store_tree_walk(Store *st, Hash h, void (*fn)(void *ctx, Hash h), void *ctx)
{
	char *listing = tree_get(st, h);
	if (!listing)
		return 0;
	TreeEntry e;
	for (const char *p = listing; next_entry(&p, &e) > 0;) {
		fn(ctx, e.hash);
		if (e.kind == 'd')
			store_tree_walk(st, e.hash, fn, ctx);
	}
	free(listing);
	return 1;
}

char *store_object_path(const char *objects_dir, Hash h)
{
	char hex[33];
	hash_hex(h, hex);
	return xasprintf("%s/%.2s/%s", objects_dir, hex, hex + 2);
}

int store_has(Store *st, Hash h)
{
	char *p = store_object_path(st->dir, h);
	int ok = access(p, F_OK) == 0;
	free(p);
	const void *data;
	int size;
	if (!ok && pack_get(st, h, &data, &size)) {
		ok = 1;
		sqlite3_reset(st->object);
	}
	char *listing = ok ? NULL : tree_get(st, h);
	if (listing) { /* a tree: restorable when every entry is */
		TreeEntry e;
		int rc;
		const char *at = listing;
		while ((rc = next_entry(&at, &e)) > 0 && store_has(st, e.hash))
			;
		ok = rc == 0;
		free(listing);
	}
	return ok;
}

int store_copy_file(const char *src, const char *dst) { return store_copy_file_until(src, dst, NULL); }

int store_copy_file_until(const char *src, const char *dst, atomic_int *stop)
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
			if (stop && atomic_load(stop)) { /* asked to give up: a chunk at a time */
				rc = -1;
				errno = ECANCELED;
				break;
			}
			size_t chunk = left > (64 << 20) ? (size_t)64 << 20 : (size_t)left;
			ssize_t n = copy_file_range(in, NULL, out, NULL, chunk, 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
				char buf[1 << 14]; /* the rare file system without copy_file_range */
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

/* A name beside path that no other copy uses: pid, and a counter shared by this
 * process's threads (the store's writer and the main thread both make them). */
static char *temp_name(const char *path)
{
	static _Atomic unsigned counter;
	return xasprintf("%s.kiln-tmp.%d.%u", path, (int)getpid(), counter++);
}

/* Copies src to a temp name beside dst, then renames it over dst. */
static int copy_atomic(const char *src, const char *dst)
{
	char *tmp = temp_name(dst);
	int rc = store_copy_file(src, tmp);
	if (rc == 0)
		rc = rename(tmp, dst);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

int store_put(Store *st, const char *path, Hash h)
{
	char *obj = store_object_path(st->dir, h);
	int rc = 0;
	if (access(obj, F_OK) != 0) {
		mkdirs_parent(obj);
		rc = copy_atomic(path, obj);
	}
	free(obj);
	return rc;
}

/* Builds tree h as a new directory at dest (which must not exist). */
static int restore_tree(Store *st, const char *listing, const char *dest)
{
	if (mkdir(dest, 0777) != 0)
		return -1;
	TreeEntry e;
	int rc;
	for (const char *p = listing; (rc = next_entry(&p, &e)) > 0;) {
		if (strchr(e.name, '/') || !strcmp(e.name, ".") || !strcmp(e.name, ".."))
			return -1; /* a listing names entries of one directory, nothing else */
		char *child = xasprintf("%s/%s", dest, e.name);
		char *sub = e.kind == 'd' ? tree_get(st, e.hash) : NULL;
		int ok = e.kind == 'd' ? sub && restore_tree(st, sub, child) == 0 : store_restore(st, e.hash, child) == 0;
		ok = ok && chmod(child, e.mode & 07777) == 0;
		free(sub);
		free(child);
		if (!ok)
			return -1;
	}
	return rc;
}

/* Drops object h from the store (its file and its packed row): it is damaged. */
static void drop_object(Store *st, Hash h)
{
	char *obj = store_object_path(st->dir, h);
	unlink(obj);
	free(obj);
	if (pack_reader(st)) {
		sqlite3_step(bound(st->drop, h));
		sqlite3_reset(st->drop);
	}
}

static int damaged(Store *st, Hash h)
{
	drop_object(st, h);
	errno = EBADMSG;
	return -1;
}

int store_restore(Store *st, Hash h, const char *dest)
{
	char *listing = tree_get(st, h);
	if (listing) { /* a directory: built beside dest, then swapped in */
		Hash listed;
		if (store_tree_hash(listing, &listed) != 0 || !hash_equal(listed, h)) {
			free(listing);
			return damaged(st, h);
		}
		char *tmp = temp_name(dest);
		mkdirs_parent(dest);
		remove_tree(tmp);
		int rc = restore_tree(st, listing, tmp);
		int saved = errno;
		if (rc == 0 && remove_tree(dest) == 0 && rename(tmp, dest) == 0)
			rc = 0;
		else
			rc = -1;
		if (rc != 0) {
			remove_tree(tmp);
			errno = saved;
		}
		free(tmp);
		free(listing);
		return rc;
	}
	mkdirs_parent(dest);
	const void *data;
	int size;
	if (pack_get(st, h, &data, &size)) {
		/* every object is checked against its name before it is put back */
		int ok = hash_equal(hash_bytes(data, (size_t)size), h);
		int rc = ok ? write_file_atomic(dest, data, (size_t)size) : -1;
		sqlite3_reset(st->object);
		return ok ? rc : damaged(st, h);
	}
	char *obj = store_object_path(st->dir, h);
	char *tmp = temp_name(dest);
	Hash got;
	int rc = store_copy_file(obj, tmp);
	if (rc == 0 && (hash_file(tmp, &got) != 0 || !hash_equal(got, h))) {
		unlink(tmp);
		free(tmp);
		free(obj);
		return damaged(st, h);
	}
	if (rc == 0)
		rc = rename(tmp, dest);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
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
	char *tmp = temp_name(obj);
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
	char *path;    /* a file to store as hash ... */
	char *listing; /* ... or a tree listing */
	Hash hash;
	struct Item *next;
} Item;

struct StoreQueue {
	char *objects_dir;
	sqlite3 *pack;          /* the writer thread's own connection */
	sqlite3_stmt *insert, *tree_insert;
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

/* Stores a tree listing under h once it checks out: 0, 1 when it does not hash to h. */
static int put_tree(StoreQueue *q, const char *listing, Hash h)
{
	Hash got;
	if (!q->pack || store_tree_hash(listing, &got) != 0 || !hash_equal(got, h))
		return 1;
	if (!q->tree_insert &&
	    sqlite3_prepare_v2(q->pack, "INSERT OR IGNORE INTO trees VALUES (?1, ?2)", -1, &q->tree_insert, NULL) != SQLITE_OK)
		return -1;
	if (!q->pending)
		sqlite3_exec(q->pack, "BEGIN", NULL, NULL, NULL);
	char hex[33];
	hash_hex(h, hex);
	sqlite3_bind_text(q->tree_insert, 1, hex, 32, SQLITE_TRANSIENT);
	sqlite3_bind_text(q->tree_insert, 2, listing, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q->tree_insert) == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(q->tree_insert);
	q->pending++;
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
		int rc = it->listing ? put_tree(q, it->listing, it->hash) : put_packed(q, it->path, it->hash);
		if (rc == 2)
			rc = put_verified(q->objects_dir, it->path, it->hash);
		if (q->pending >= 256) {
			sqlite3_exec(q->pack, "COMMIT", NULL, NULL, NULL);
			q->pending = 0;
		}
		free(it->path);
		free(it->listing);
		free(it);
		pthread_mutex_lock(&q->lock);
		q->failures += rc < 0;
	}
	pthread_mutex_unlock(&q->lock);
	if (q->pending)
		sqlite3_exec(q->pack, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(q->insert);
	sqlite3_finalize(q->tree_insert);
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
	if (thread_start(&q->thread, writer_main, q) != 0) {
		sqlite3_finalize(q->insert);
		sqlite3_close(q->pack);
		free(q->objects_dir);
		free(q);
		return NULL;
	}
	return q;
}

static void enqueue(StoreQueue *q, Item *it)
{
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

void store_queue_put(StoreQueue *q, const char *path, Hash h)
{
	Item *it = xcalloc(1, sizeof *it);
	it->path = xstrdup(path);
	it->hash = h;
	enqueue(q, it);
}

void store_queue_put_tree(StoreQueue *q, Hash h, const char *listing)
{
	Item *it = xcalloc(1, sizeof *it);
	it->listing = xstrdup(listing);
	it->hash = h;
	enqueue(q, it);
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

/* Deletes the rows of table (objects or trees) whose hash keep() rejects. */
static int gc_table(sqlite3 *db, const char *table, int (*keep)(void *ctx, const char *hex), void *ctx,
		    long long *bytes)
{
	char *sel_sql = xasprintf("SELECT hash, length(%s) FROM %s", strcmp(table, "trees") ? "data" : "listing", table);
	char *del_sql = xasprintf("DELETE FROM %s WHERE hash = ?1", table);
	sqlite3_stmt *sel = NULL, *del = NULL;
	int removed = 0;
	if (sqlite3_prepare_v2(db, sel_sql, -1, &sel, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, del_sql, -1, &del, NULL) == SQLITE_OK) {
		while (sqlite3_step(sel) == SQLITE_ROW) {
			const char *hex = (const char *)sqlite3_column_text(sel, 0);
			if (keep(ctx, hex))
				continue;
			*bytes += sqlite3_column_int64(sel, 1);
			sqlite3_bind_text(del, 1, hex, -1, SQLITE_TRANSIENT);
			removed += sqlite3_step(del) == SQLITE_DONE;
			sqlite3_reset(del);
		}
	}
	sqlite3_finalize(del);
	sqlite3_finalize(sel);
	free(sel_sql);
	free(del_sql);
	return removed;
}

int store_gc_pack(Store *st, int (*keep)(void *ctx, const char *hex), void *ctx, long long *bytes)
{
	sqlite3 *db = pack_open(st->dir, 0);
	if (!db)
		return 0;
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	int removed = gc_table(db, "objects", keep, ctx, bytes) + gc_table(db, "trees", keep, ctx, bytes);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return removed;
}
