/* maplogs.c — where a map{}'s items' logs are. Items have no attempts of their own: their
 * shard's attempts ran them, each from a list kiln wrote. Two kinds of list tell which:
 * beside each attempt's log, .kiln/logs/SHARD@N.items (that attempt's items; kiln gc prunes
 * it with its log), and .kiln/maps/SHARD.items (the latest attempt's, rewritten by each; all
 * there is in a workspace from before the first kind). SHARD is MAP:shard-K, and a map's
 * name may hold '/': map "eval/cap" keeps its lists in the folders eval/ of both. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Whether the list at path has the line item (ilen bytes). */
static int lists(const char *path, const char *item, size_t ilen)
{
	size_t len;
	char *list = read_file(path, &len);
	int found = 0;
	for (char *line = list, *end; line && *line && !found; line = end + 1) {
		end = strchrnul(line, '\n');
		found = (size_t)(end - line) == ilen && memcmp(line, item, ilen) == 0;
		if (!*end)
			break;
	}
	free(list);
	return found;
}

/* The newest list naming an item, so far. */
typedef struct {
	char *shard;
	int attempt;
	struct timespec at;
} Newest;

/* Looks through the lists in folder `top` (logs or maps) for map `map`'s shards: those
 * "<base>:shard-K@N.items" when numbered, else "<base>:shard-K.items", base being map's last
 * part. Returns how many there are; with item, keeps in *best the newest that names it. */
static int look(const char *top, const char *map, int numbered, const char *item, Newest *best)
{
	const char *slash = strrchr(map, '/'), *base = slash ? slash + 1 : map;
	char *dir = slash ? xasprintf("%s/%.*s", top, (int)(slash - map), map) : xstrdup(top);
	size_t blen = strlen(base);
	int count = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		const char *n = e->d_name;
		size_t len = strlen(n);
		if (len < blen + 14 || strncmp(n, base, blen) != 0 || strncmp(n + blen, ":shard-", 7) != 0 ||
		    strcmp(n + len - 6, ".items") != 0)
			continue;
		const char *k = n + blen + 7, *at = strchr(k, '@'); /* K@N: the map's own name may hold '@' */
		if (numbered ? !at : at != NULL)
			continue;
		const char *kend = numbered ? at : n + len - 6;
		if (kend == k || strspn(k, "0123456789") != (size_t)(kend - k))
			continue;
		count++;
		if (!item)
			continue;
		char *path = xasprintf("%s/%s", dir, n);
		struct stat st;
		if (stat(path, &st) == 0 && (!best->shard || st.st_mtim.tv_sec > best->at.tv_sec ||
					     (st.st_mtim.tv_sec == best->at.tv_sec && st.st_mtim.tv_nsec > best->at.tv_nsec)) &&
		    lists(path, item, strlen(item))) {
			free(best->shard);
			best->shard = xasprintf("%s:shard-%.*s", map, (int)(kend - k), k);
			best->attempt = numbered ? atoi(at + 1) : 0;
			best->at = st.st_mtim;
		}
		free(path);
	}
	if (d)
		closedir(d);
	free(dir);
	return count;
}

ShardScan scan_shards(const char *name)
{
	ShardScan s = {0};
	s.nshards = look(KILN_DIR "/maps", name, 0, NULL, NULL);
	/* name is MAP/ITEM for some '/' in it (items may hold '/' too): the last split first */
	for (const char *cut = strrchr(name, '/'); cut && !s.shard; cut = cut > name ? memrchr(name, '/', (size_t)(cut - name)) : NULL) {
		char *map = strndup(name, (size_t)(cut - name));
		Newest best = {0};
		int shards = look(KILN_DIR "/maps", map, 0, NULL, NULL);
		if (shards) {
			look(KILN_DIR "/logs", map, 1, cut + 1, &best);
			if (!best.shard) /* lists from before attempts had their own */
				look(KILN_DIR "/maps", map, 0, cut + 1, &best);
			if (!s.map)
				s.map = xstrdup(map);
		}
		s.shard = best.shard;
		s.attempt = best.attempt;
		free(map);
	}
	return s;
}
