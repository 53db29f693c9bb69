/* wal.h — looking at state.db and its write-ahead log before SQLite opens them, for the
 * losses SQLite would pass over in silence (wal.c). */
#ifndef KILN_WAL_H
#define KILN_WAL_H

#include <stddef.h>

#include "../../base/util.h"

/* Whether the write-ahead log in wal[0..len) is damaged: a header that is not a log's or
 * fails its checksum, or a frame of the current generation that fails its checksum. Says
 * which in why. An empty log, a torn last frame and frames of an earlier generation are
 * not damage. */
int wal_damage(const unsigned char *wal, size_t len, Buf *why);
/* Looks at db_path, db_path-wal and the workspace's logs (beside db_path) and appends a
 * line to say for each loss found: a damaged log or a missing one, when the last writer was
 * killed (unclean) with records in it (after a clean exit the log holds no success); an
 * empty or missing database where tasks have run. Returns how many. */
int wal_inspect(const char *db_path, int unclean, Buf *say);

#endif
