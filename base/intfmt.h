/* intfmt.h — integers to text without printf (intfmt.c, which also wraps the embedded Lua's
 * calls of snprintf "%lld" with it). */
#ifndef KILN_INTFMT_H
#define KILN_INTFMT_H

/* v in decimal at s, which has room for 21 bytes, NUL-terminated; its length. */
int intfmt_lld(char *s, long long v);

#endif
