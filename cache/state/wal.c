/* wal.c — what SQLite passes over in silence about state.db, looked at before it opens the
 * file: a write-ahead log whose committed frames fail their checksums (SQLite drops them
 * and everything after), a log deleted while it still held a killed kiln's records, and an
 * empty database in a workspace that has run tasks. The log's format is SQLite's
 * (https://www.sqlite.org/fileformat.html#the_write_ahead_log): a 32-byte header, then
 * frames of a 24-byte header and one page, each checksummed over everything before it. */
#define _GNU_SOURCE
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t big_endian(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t little_endian(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* SQLite's WAL checksum, continued from s over n bytes (n a multiple of 8). */
static void checksum(const unsigned char *p, size_t n, int big, uint32_t s[2])
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint32_t x0 = big ? big_endian(p + i) : little_endian(p + i);
		uint32_t x1 = big ? big_endian(p + i + 4) : little_endian(p + i + 4);
		s[0] += x0 + s[1];
		s[1] += x1 + s[0];
	}
}

int wal_damage(const unsigned char *wal, size_t len, Buf *why)
{
	if (len == 0)
		return 0; /* checkpointed and truncated: nothing in it */
	if (len < 32) {
		buf_printf(why, "its header is cut short (%zu bytes)", len);
		return 1;
	}
	uint32_t magic = big_endian(wal);
	if (magic != 0x377f0682 && magic != 0x377f0683) {
		buf_puts(why, "it does not start as a write-ahead log does");
		return 1;
	}
	int big = magic & 1;
	uint32_t page = big_endian(wal + 8), s[2] = {0, 0};
	if (page == 1)
		page = 65536;
	checksum(wal, 24, big, s);
	if (page < 512 || page > 65536 || (page & (page - 1)) || s[0] != big_endian(wal + 24) ||
	    s[1] != big_endian(wal + 28)) {
		buf_puts(why, "its header fails its checksum");
		return 1;
	}
	uint32_t salt1 = big_endian(wal + 16), salt2 = big_endian(wal + 20);
	size_t frame = 24 + (size_t)page;
	long n = 0;
	for (size_t at = 32; at + frame <= len; at += frame, n++) {
		const unsigned char *f = wal + at;
		if (big_endian(f + 8) != salt1 || big_endian(f + 12) != salt2)
			return 0; /* a frame of an earlier, checkpointed generation: the log ends here */
		checksum(f, 8, big, s);
		checksum(f + 24, page, big, s);
		if (s[0] != big_endian(f + 16) || s[1] != big_endian(f + 20)) {
			buf_printf(why, "frame %ld fails its checksum", n + 1);
			return 1;
		}
	}
	return 0;
}

/* Whether dir holds anything but . and .. */
static int has_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	while (d && !found && (e = readdir(d)))
		found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return found;
}

int wal_inspect(const char *db_path, int unclean, Buf *say)
{
	int findings = 0;
	char *wal_path = xasprintf("%s-wal", db_path), *shm_path = xasprintf("%s-shm", db_path);
	char *dir = xstrdup(db_path), *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	char *logs = xasprintf("%s/logs", dir);
	struct stat db_st, wal_st;
	int have_db = stat(db_path, &db_st) == 0, have_wal = stat(wal_path, &wal_st) == 0;
	/* after a clean exit the log holds no success (kiln folds it in on close: cache.c), at most
	 * the rows of no-op runs: it is read only when the last kiln was killed */
	size_t len = have_wal ? (size_t)wal_st.st_size : 0;
	unsigned char *wal = unclean && len > 0 ? (unsigned char *)read_file(wal_path, &len) : NULL;
	Buf why = {0};
	if (wal && wal_damage(wal, len, &why)) {
		buf_printf(say, "%s is damaged (%s): SQLite passes over it from there on, so the successes recorded "
				"after that point are lost and those tasks run again\n", wal_path, buf_str(&why));
		findings++;
	} else if (unclean && !have_wal && access(shm_path, F_OK) == 0 && have_db) {
		/* a killed kiln never folds its log into the database: its records were there */
		buf_printf(say, "%s is missing, though the kiln before was killed with its latest records in it: the "
				"successes it recorded since its last checkpoint are lost, so those tasks run again\n",
			   wal_path);
		findings++;
	}
	if ((!have_db || db_st.st_size == 0) && len == 0 && has_entries(logs)) {
		buf_printf(say, "%s is %s, though tasks have run in this workspace (their logs are in %s): the record "
				"of earlier successes is gone (damaged, truncated or deleted), so every task runs again\n",
			   db_path, have_db ? "empty" : "missing", logs);
		findings++;
	}
	buf_free(&why);
	free(wal);
	free(logs);
	free(dir);
	free(wal_path);
	free(shm_path);
	return findings;
}
