/* untar.h — unpacking a tar stream in this process, as `tar xf - --no-same-owner` would
 * for what hosts send back (GNU tar's and POSIX ustar/pax formats): regular files,
 * directories, symbolic and hard links, long names. A member whose path is absolute or
 * climbs out with ".." is refused, never written. An existing file a member names is
 * replaced (unlinked first, as tar does); directories are kept and merged into. */
#ifndef KILN_UNTAR_H
#define KILN_UNTAR_H

#include "util.h"

/* Unpacks the tar that fd holds from its current offset to its end (or the archive's end
 * blocks) under dir (NULL: the current directory). 0, or -1 with "MEMBER: what went wrong"
 * in err; members before the bad one stay written (the caller removes what it must). */
int untar_fd(int fd, const char *dir, Buf *err);
/* One 512-byte block read as a header, for a reader that walks a stream itself (an ssh
 * host's agent sends tars between lines): 0 an end block (all zeros), 1 a member (its
 * size, its type and its name's first 100 bytes filled in), -1 a damaged header. */
int untar_header(const unsigned char *block, long long *size, char *type, char name[101]);

#endif
