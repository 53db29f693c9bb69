/* memo.h — the file-hash memo's rows in state.db (memo.c): each a path and one packed
 * record of its stat and hash. state.h declares what the cache calls (state_each_memo,
 * state_put_memo, state_memo_count); this is what state.c's migration needs. */
#ifndef KILN_STATE_MEMO_H
#define KILN_STATE_MEMO_H

#include <sqlite3.h>

#include "../../base/util.h"

/* Schema version 11: copies every row of the version-10 table `files` (six columns) into
 * `memo`, packed, and drops `files`; inside the caller's transaction. 0, or -1 with why. */
int memo_migrate(sqlite3 *db, Buf *err);

#endif
