/* explain.h — turning two key-component texts into reasons a person can read. */
#ifndef KILN_EXPLAIN_H
#define KILN_EXPLAIN_H

#include "../base/util.h"

/* Appends the differences between old and new component texts to out: with full, one
 * line per difference with full hashes; otherwise one line, the first difference plus
 * "(and N more changes)". */
void explain_diff(const char *old, const char *new, Buf *out, int full);

#endif
