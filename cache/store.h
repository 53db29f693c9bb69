/* store.h — the content-addressed output store under .kiln/objects: outputs of
 * successful tasks are kept by hash so an earlier configuration's results can be put
 * back instead of recomputed. Objects are copies (or reflinks), never hard links, so a
 * later task writing in place cannot change a stored result. */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <stdatomic.h>

#include "../base/hash.h"

/* The caller's handle on the store at objects_dir (its look-ups are prepared once, on
 * first use); one per thread. */
typedef struct Store Store;
Store *store_open(const char *objects_dir);
void store_free(Store *st);
const char *store_dir(const Store *st);
/* Deletes packed objects and trees for which keep(ctx, hex) is 0; returns the count,
 * adds bytes. */
int store_gc_pack(Store *st, int (*keep)(void *ctx, const char *hex), void *ctx, long long *bytes);

/* Directory outputs are kept as trees: a listing, one "<f|d> <octal mode> <hash> <name>"
 * line per entry in name order, stored under the directory's hash (the Merkle hash
 * files.c computes: "dir\n" then "<name>\t<hash>\n" per entry), while the files in it are
 * ordinary objects. store_has, store_restore and store_gc understand both. */

/* Path of the (unpacked) object for h under objects_dir; malloc'd. */
char *store_object_path(const char *objects_dir, Hash h);
/* Whether h can be restored: a file object, or a tree whose every entry can be. */
int store_has(Store *st, Hash h);
/* Copies the file at path into the store as h (atomically; no-op if present). 0 or -1. */
int store_put(Store *st, const char *path, Hash h);
/* Puts object h at dest atomically (built under a temp name, then renamed over dest,
 * which may be a file or a directory), keeping modes. Every object is re-hashed first:
 * one that no longer matches its hash is dropped from the store and -1 returned with
 * errno EBADMSG (dest untouched). 0 or -1. */
int store_restore(Store *st, Hash h, const char *dest);
/* Copies src to dst: reflink where the file system can, else a byte copy. 0 or -1. */
int store_copy_file(const char *src, const char *dst);
/* The same, checking *stop between 64 MiB chunks: -1 with errno ECANCELED once it is set. */
int store_copy_file_until(const char *src, const char *dst, atomic_int *stop);

/* A background writer: store_queue_put() returns at once and a thread copies the file
 * into the store, hashing the bytes as it copies; a file that no longer has hash h (it
 * changed after it was hashed) is not stored. The scheduler keeps going meanwhile. */
typedef struct StoreQueue StoreQueue;
StoreQueue *store_queue_start(const char *objects_dir);
void store_queue_put(StoreQueue *q, const char *path, Hash h);
/* Queues the tree listing for directory hash h (stored only if the listing hashes to h). */
void store_queue_put_tree(StoreQueue *q, Hash h, const char *listing);
/* If h is a stored tree, calls fn for the hash of every entry below it (files and
 * subtrees, depth first) and returns 1; else returns 0. */
int store_tree_walk(Store *st, Hash h, void (*fn)(void *ctx, Hash h), void *ctx);
/* The Merkle hash of a tree listing (see above), or -1 when the listing is malformed. */
int store_tree_hash(const char *listing, Hash *out);
/* Waits for every queued copy, stops the thread and frees q; returns how many failed. */
int store_queue_finish(StoreQueue *q);

#endif
