/* store.h — the content-addressed output store under .kiln/objects: outputs of
 * successful tasks are kept by hash so an earlier configuration's results can be put
 * back instead of recomputed. Objects are copies (or reflinks), never hard links, so a
 * later task writing in place cannot change a stored result. */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include "hash.h"

/* Path of the object for h under objects_dir; malloc'd. */
char *store_object_path(const char *objects_dir, Hash h);
int store_has(const char *objects_dir, Hash h);
/* Copies the file at path into the store as h (atomically; no-op if present). 0 or -1. */
int store_put(const char *objects_dir, const char *path, Hash h);
/* Copies object h to dest atomically (temp file + rename), keeping its mode. 0 or -1. */
int store_restore(const char *objects_dir, Hash h, const char *dest);
/* Copies src to dst: reflink where the file system can, else a byte copy. 0 or -1. */
int store_copy_file(const char *src, const char *dst);

#endif
