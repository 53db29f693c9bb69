/* packed.h — the rows every no-op run reads whole, packed so SQLite decodes one blob a row
 * (packed.c): the file-hash memo's and the last successes'. state.h declares what the cache
 * calls (state_each_memo, state_put_memo, state_each_last, state_set_last, the counts);
 * this is what state.c's migrations need. */
#ifndef KILN_STATE_PACKED_H
#define KILN_STATE_PACKED_H

#include <sqlite3.h>

#include "../../base/util.h"

/* Schema version 11: copies every row of the version-10 table `files` (six columns) into
 * `memo`, packed, and drops `files`; inside the caller's transaction. 0, or -1 with why. */
int memo_migrate(sqlite3 *db, Buf *err);
/* Schema version 12: every last success's outputs text packed (state_each_last's form) in
 * a new last_success table, which replaces the old; inside the caller's transaction. */
int last_migrate(sqlite3 *db, Buf *err);

#endif
