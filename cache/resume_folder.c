/* resume_folder.c — a resume directory's checkpoints mended before an attempt continues
 * (resume.h: resume_mend_folder): a checkpoint holding a file cut short, missing a file
 * that the checkpoints of its series all hold, or one missing the file its framework
 * writes last (Hugging Face's Trainer, torch.distributed.checkpoint), is removed. */
#define _GNU_SOURCE
#include "resume.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether a file in a checkpoint folder is cut short: as resume_file_cut, but an empty file
 * only when named as a checkpoint is (another may be a marker a trainer leaves empty). */
static int folder_file_cut(const char *path, const struct stat *st)
{
	static const char *const named[] = {".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npz", ".json"};
	if (st->st_size > 0)
		return resume_file_cut(path);
	size_t len = strlen(path);
	for (size_t i = 0; i < sizeof named / sizeof *named; i++)
		if (len > strlen(named[i]) && !strcmp(path + len - strlen(named[i]), named[i]))
			return 1;
	return 0;
}

/* One checkpoint folder of a series (checkpoint-500, epoch_7): its name with each run of
 * digits as '#' (the series), those runs' numbers (which save), and the files it holds. */
typedef struct {
	char *path, *series;
	unsigned long long nums[8];
	int nnums;
	char **files; /* relative paths, sorted */
	size_t nfiles;
} Checkpoint;

static void name_series(const char *name, Checkpoint *c)
{
	Buf s = {0};
	for (const char *p = name; *p;) {
		if (*p >= '0' && *p <= '9') {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);
			if (c->nnums < 8)
				c->nums[c->nnums++] = v;
			buf_putc(&s, '#');
			p = end;
		} else {
			buf_putc(&s, *p++);
		}
	}
	c->series = xstrdup(buf_str(&s));
	buf_free(&s);
}

/* The regular files under dir (depth more levels down, links not followed), as paths from
 * the checkpoint's own folder (prefix). */
static void list_files(Checkpoint *c, const char *dir, const char *prefix, int depth)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name), *rel = xasprintf("%s%s", prefix, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			c->files = xrealloc(c->files, (c->nfiles + 1) * sizeof *c->files);
			c->files[c->nfiles++] = rel;
			rel = NULL;
		} else if (depth > 0 && S_ISDIR(st.st_mode)) {
			char *sub = xasprintf("%s/", rel);
			list_files(c, p, sub, depth - 1);
			free(sub);
		}
		free(rel);
		free(p);
	}
	closedir(d);
}

static void checkpoint_free(Checkpoint *c)
{
	for (size_t f = 0; f < c->nfiles; f++)
		free(c->files[f]);
	free(c->files);
	free(c->path);
	free(c->series);
	*c = (Checkpoint){0};
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int holds(const Checkpoint *c, const char *file)
{
	return bsearch(&file, c->files, c->nfiles, sizeof *c->files, cmp_str) != NULL;
}

/* Which of two checkpoints of one series is the later save: the greater numbers, in order. */
static int later(const Checkpoint *a, const Checkpoint *b)
{
	for (int i = 0; i < a->nnums && i < b->nnums; i++)
		if (a->nums[i] != b->nums[i])
			return a->nums[i] > b->nums[i];
	return 0;
}

/* A trainer writes a checkpoint's files one after another (Hugging Face's Trainer: the
 * weights, optimizer.pt, scheduler.pt, rng_state.pth, then trainer_state.json), and one
 * stopped between two leaves a folder whose files are each whole but which lacks the last
 * ones: loaded, it fails, or worse, continues with a fresh optimizer from step 0. So the
 * latest checkpoint of a numbered series (the save in flight when an attempt stopped) that
 * lacks a file every other checkpoint of the series holds is cut short too. Removed; its
 * path and the first file it lacks go in note. Needs a checkpoint before it to compare. */
static void mend_series(Checkpoint *cps, size_t n, Buf *note)
{
	for (size_t i = 0; i < n; i++) {
		Checkpoint *last = &cps[i];
		int first_of_series = 1, alone = 1;
		for (size_t j = 0; j < n && first_of_series; j++)
			if (j != i && !strcmp(cps[j].series, last->series)) {
				alone = 0;
				first_of_series = j > i; /* the series is judged once, from its first member */
				if (later(&cps[j], last))
					last = &cps[j];
			}
		if (alone || !first_of_series || !last->nnums)
			continue;
		const char *lacks = NULL; /* a file of the first other checkpoint every other one holds */
		const Checkpoint *first = NULL;
		for (size_t j = 0; j < n && !first; j++)
			if (&cps[j] != last && !strcmp(cps[j].series, last->series))
				first = &cps[j];
		for (size_t f = 0; f < first->nfiles && !lacks; f++) {
			if (holds(last, first->files[f]))
				continue;
			int everywhere = 1;
			for (size_t j = 0; j < n && everywhere; j++)
				if (&cps[j] != last && !strcmp(cps[j].series, last->series))
					everywhere = holds(&cps[j], first->files[f]);
			if (everywhere)
				lacks = first->files[f];
		}
		if (lacks && remove_tree(last->path) == 0)
			buf_printf(note, "%s%s lacks %s, which every checkpoint before it holds (an attempt was stopped "
				   "between its files): removed, so this attempt continues from the whole checkpoints beside it",
				   note->len ? "; " : "", last->path, lacks);
	}
}

/* Whether c (named name) is a checkpoint whose save was stopped between its files, by the
 * names a framework gives them, since the first save of a run has no checkpoint before it
 * for mend_series to compare with: what it holds and lacks, as a sentence's middle, or NULL.
 * The Hugging Face Trainer's checkpoint-N holds training_args.bin (written after the
 * weights) before trainer_state.json (after the optimizer's and scheduler's files); loaded
 * without it, it continues from step 0, or fails. torch.distributed.checkpoint writes each
 * rank's .distcp files, then .metadata, without which it cannot load. */
static const char *save_stopped(const char *name, const Checkpoint *c)
{
	const char *n = name + strlen("checkpoint-");
	if (!strncmp(name, "checkpoint-", strlen("checkpoint-")) && *n && strspn(n, "0123456789") == strlen(n) &&
	    holds(c, "training_args.bin") && !holds(c, "trainer_state.json"))
		return "holds training_args.bin but no trainer_state.json, which the Hugging Face Trainer writes last";
	for (size_t f = 0; f < c->nfiles; f++) {
		size_t len = strlen(c->files[f]);
		if (!strchr(c->files[f], '/') && len > 7 && !strcmp(c->files[f] + len - 7, ".distcp"))
			return holds(c, ".metadata") ? NULL
						     : "holds .distcp files but no .metadata, which "
						       "torch.distributed.checkpoint writes last";
	}
	return NULL;
}

void resume_mend_folder(const char *dir, Buf *note)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char **names = NULL;
	size_t n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = xstrdup(e->d_name);
		}
	closedir(d); /* read whole first: entries are removed below */
	Checkpoint *cps = xcalloc(n ? n : 1, sizeof *cps);
	size_t ncps = 0;
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, names[i]);
		Buf found = {0};
		struct stat st;
		int there = lstat(path, &st) == 0, is_dir = there && S_ISDIR(st.st_mode), cut = 0;
		Checkpoint *c = &cps[ncps];
		if (is_dir) { /* its files, each looked at: one cut short and the folder goes */
			name_series(names[i], c);
			list_files(c, path, "", 2);
			for (size_t f = 0; f < c->nfiles && !cut; f++) {
				char *p = xasprintf("%s/%s", path, c->files[f]);
				struct stat fst;
				if (lstat(p, &fst) == 0 && S_ISREG(fst.st_mode) && (cut = folder_file_cut(p, &fst)))
					buf_puts(&found, p);
				free(p);
			}
		} else if (there && S_ISREG(st.st_mode) && (cut = folder_file_cut(path, &st))) {
			buf_puts(&found, path);
		}
		int removed = cut && (is_dir ? remove_tree(path) : unlink(path)) == 0;
		if (removed)
			buf_printf(note, "%s%s was cut short (an attempt was stopped while writing it): %s%s removed, so this "
				   "attempt continues from the whole checkpoints beside it", note->len ? "; " : "",
				   buf_str(&found), is_dir ? path : "it", is_dir ? "" : " is");
		if (is_dir && !cut)
			qsort(c->files, c->nfiles, sizeof *c->files, cmp_str);
		const char *stopped = is_dir && !cut ? save_stopped(names[i], c) : NULL;
		if (stopped && remove_tree(path) == 0) {
			buf_printf(note, "%s%s %s (an attempt was stopped between its files): removed, so this attempt "
				   "continues from the whole checkpoints beside it, or starts afresh", note->len ? "; " : "", path,
				   stopped);
			checkpoint_free(c);
		} else if (is_dir && !cut) { /* kept: a member of its series */
			c->path = path;
			path = NULL;
			ncps++;
		} else if (is_dir) { /* gone: its listing with it */
			checkpoint_free(c);
		}
		buf_free(&found);
		free(path);
		free(names[i]);
	}
	free(names);
	mend_series(cps, ncps, note);
	for (size_t i = 0; i < ncps; i++)
		checkpoint_free(&cps[i]);
	free(cps);
}

/* Whether a name is a checkpoint's, as trainers name them: checkpoint-400, last.ckpt,
 * epoch_3-ckpt.pt, snapshot.pt. */
static int checkpoint_named(const char *name)
{
	return strcasestr(name, "checkpoint") || strcasestr(name, "ckpt") || strcasestr(name, "snapshot");
}

/* The newest entry under dir (depth more levels down, links not followed) named as a
 * checkpoint: its path into *newest (malloc'd), its time into *when. */
static void newest_checkpoint(const char *dir, int depth, char **newest, struct timespec *when)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(path, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) && checkpoint_named(e->d_name)) {
			if (!*newest || st.st_mtim.tv_sec > when->tv_sec ||
			    (st.st_mtim.tv_sec == when->tv_sec && st.st_mtim.tv_nsec > when->tv_nsec)) {
				free(*newest);
				*newest = path;
				*when = st.st_mtim;
				continue;
			}
		} else if (depth > 0 && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			newest_checkpoint(path, depth - 1, newest, when);
		}
		free(path);
	}
	if (d)
		closedir(d);
}

int resume_holds_checkpoints(const char *path, Buf *newest)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return 0;
	if (S_ISREG(st.st_mode)) {
		if (st.st_size == 0 || !checkpoint_named(path))
			return 0;
		buf_puts(newest, path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	char *found = NULL;
	struct timespec when = {0, 0};
	newest_checkpoint(path, 1, &found, &when);
	if (!found && checkpoint_named(path)) { /* checkpoints/run1: whatever it holds */
		DIR *d = opendir(path);
		for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;)
			if (e->d_name[0] != '.')
				found = xasprintf("%s/%s", path, e->d_name);
		if (d)
			closedir(d);
	}
	if (found)
		buf_puts(newest, found);
	free(found);
	return found != NULL;
}
