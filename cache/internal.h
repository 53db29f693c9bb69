/* internal.h — accessors shared by the cache's own files (cache.c owns struct Cache). */
#ifndef KILN_CACHE_INTERNAL_H
#define KILN_CACHE_INTERNAL_H

#include "cache.h"
#include "state.h"

State *cache_state(Cache *c);
const char *cache_objects_dir(Cache *c);
int64_t cache_run_id(Cache *c);

#endif
