/* pool.h — a small-block allocator for callers that know each block's size when they
 * free or resize it (as Lua's allocator interface does): blocks up to POOL_SMALL bytes come
 * from free lists per 16-byte size class, carved from chunks of 64 KiB doubling to 4 MiB
 * (those in huge pages); larger ones are malloc'd, and from 4 MiB up advised as huge pages
 * (advise_huge). A recipe's Lua makes and drops a dozen small tables and strings per
 * task{}, which malloc serves at several times the cost. One thread only. */
#ifndef KILN_POOL_H
#define KILN_POOL_H

#include <stddef.h>

#define POOL_SMALL 256
#define POOL_CLASSES (POOL_SMALL / 16)

typedef struct PoolChunk PoolChunk;
typedef struct {
	void *free_list[POOL_CLASSES]; /* per class, blocks given back */
	PoolChunk *chunks;             /* every chunk, for pool_free */
	char *carve, *carve_end;       /* the newest chunk's part not yet handed out */
} Pool;

/* realloc with the old size told: ptr NULL makes a block (old_size is ignored); new_size 0
 * frees ptr and returns NULL; NULL otherwise only when out of memory (ptr kept), and
 * never for a shrink. */
void *pool_realloc(Pool *p, void *ptr, size_t old_size, size_t new_size);
/* Frees every chunk; blocks over POOL_SMALL must have been freed by the caller. */
void pool_free(Pool *p);

#endif
