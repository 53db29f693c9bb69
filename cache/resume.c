/* resume.c — a task's resume state (resume.h): kept or removed before an attempt, each
 * file's last whole copy taken while it runs and put back when the next attempt would
 * continue from a file cut short. */
#define _GNU_SOURCE
#include "resume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../base/thread.h"
#include "internal.h"
#include "state/history.h"
#include "store.h"

/* What a stat says of a file's content, as far as telling a rewrite goes. */
typedef struct {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns, ctime_ns;
} FileSig;

static int sig_of(const char *path, FileSig *s)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	*s = (FileSig){st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
		       st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
	return 0;
}

static int sig_same(const FileSig *a, const FileSig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns;
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* A safetensors file (Hugging Face's weights): an 8-byte little-endian length N, N bytes of
 * JSON giving each tensor's "data_offsets": [begin, end] in the data after it. A finished
 * file holds all of that data; one shorter is cut. 0 for what does not parse as one. */
static int safetensors_cut(int fd, off_t size)
{
	unsigned char head[9];
	if (size < 9 || pread(fd, head, 9, 0) != 9)
		return 1;
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | head[i];
	if (head[8] != '{' || n > (64u << 20))
		return 0;
	if (n > (uint64_t)size - 8)
		return 1; /* stopped within its header */
	char *json = xmalloc(n + 1);
	uint64_t data_end = 0;
	if (pread(fd, json, n, 8) == (ssize_t)n) {
		json[n] = 0;
		for (char *p = json; (p = strstr(p, "\"data_offsets\"")) != NULL;) {
			p = strchr(p, '[');
			if (!p)
				break;
			char *after;
			strtoull(p + 1, &after, 10);
			uint64_t end = strtoull(after + strspn(after, " ,"), &p, 10);
			data_end = end > data_end ? end : data_end;
		}
	}
	free(json);
	return (uint64_t)size < 8 + n + data_end;
}

/* A JSON file (trainer_state.json, config.json): a finished one ends with its top value's
 * closing '}' or ']' (and maybe white space); one stopped mid-write does not. */
static int json_cut(int fd, off_t size)
{
	char tail[64];
	size_t n = size < (off_t)sizeof tail ? (size_t)size : sizeof tail;
	if (pread(fd, tail, n, size - (off_t)n) != (ssize_t)n)
		return 0;
	while (n > 0 && (tail[n - 1] == ' ' || tail[n - 1] == '\t' || tail[n - 1] == '\r' || tail[n - 1] == '\n'))
		n--;
	return n == 0 || (tail[n - 1] != '}' && tail[n - 1] != ']');
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && !strcmp(s + n - k, suffix);
}

int resume_file_cut(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	int cut = 0;
	unsigned char head[4];
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cut = 0;
	} else if (st.st_size == 0) {
		cut = 1; /* truncated by the save's open, and stopped before a byte was written */
	} else if (ends_with(path, ".safetensors")) {
		cut = safetensors_cut(fd, st.st_size);
	} else if (ends_with(path, ".json")) {
		cut = json_cut(fd, st.st_size);
	} else if (pread(fd, head, 4, 0) == 4 && le32(head) == 0x04034b50) { /* "PK\3\4": a zip archive */
		/* a finished archive ends with its end-of-central-directory record: 22 bytes and
		 * a comment of at most 64 KiB, the comment's length in the record's last field */
		size_t tail = st.st_size < 22 + 65535 ? (size_t)st.st_size : 22 + 65535;
		unsigned char *b = xmalloc(tail);
		cut = 1;
		if (tail >= 22 && pread(fd, b, tail, st.st_size - (off_t)tail) == (ssize_t)tail)
			for (size_t p = tail - 22 + 1; p-- > 0;)
				if (le32(b + p) == 0x06054b50 && p + 22 + (b[p + 20] | b[p + 21] << 8) == tail) {
					cut = 0;
					break;
				}
		free(b);
	}
	close(fd);
	return cut;
}

/* Where the copy of t's resume path i lives: RESUME_DIR/TASK@I; malloc'd. */
static char *copy_path(const char *resume_dir, const Task *t, int i) { return xasprintf("%s/%s@%d", resume_dir, t->name, i); }

/* A copy on the helper thread: src to dst (through a temp name beside it), kept only when
 * src did not change meanwhile and the copy is whole. */
typedef struct {
	char *src, *dst;
	FileSig sig;      /* src's, when it was found settled */
	atomic_int stop;  /* set by resume_watch_end: give up */
	atomic_int done;  /* the thread is finished */
	int kept;         /* the copy is in place */
	pthread_t thread;
} Copy;

static void *copy_main(void *arg)
{
	Copy *cp = arg;
	char *tmp = xasprintf("%s.tmp", cp->dst);
	FileSig after;
	int fd = -1;
	if (mkdirs_parent(cp->dst) == 0 && store_copy_file_until(cp->src, tmp, &cp->stop) == 0 &&
	    sig_of(cp->src, &after) == 0 && sig_same(&after, &cp->sig) && !resume_file_cut(tmp) &&
	    (fd = open(tmp, O_WRONLY | O_CLOEXEC)) >= 0) {
		/* the copy carries the file's time (when it was saved) and is on disk before it is
		 * put in place: a crash leaves the previous copy or this one, whole */
		struct timespec times[2] = {{0, UTIME_OMIT}, {cp->sig.mtime_ns / 1000000000LL, cp->sig.mtime_ns % 1000000000LL}};
		cp->kept = futimens(fd, times) == 0 && fsync(fd) == 0 && rename(tmp, cp->dst) == 0;
	}
	if (fd >= 0)
		close(fd);
	if (!cp->kept)
		unlink(tmp);
	free(tmp);
	atomic_store(&cp->done, 1);
	return NULL;
}

typedef struct {
	const char *path;
	FileSig seen;     /* its stat at the last look */
	int64_t seen_since_ns; /* since when it has been so; 0: not a file */
	FileSig copied;   /* what the copy in place was taken from (or is known to match) */
	int has_copied;
	FileSig failed;   /* a state whose copy failed (a full disk): not tried again */
	int has_failed;
	ino_t settled_ino; /* the file's at its last settled state (0: none yet) */
	int atomic;       /* it was replaced whole (a new inode) since: written atomically, needs no copy */
} Watched;

struct ResumeWatch {
	const Task *task;
	char *dir;        /* the copies' */
	Watched *files;
	int n;
	int64_t next_look_ns;
	Copy *copy;       /* in flight, or NULL */
	int copying;      /* of files[copying] */
};

ResumeWatch *resume_watch_new(Cache *c, const Task *t)
{
	if (!t->opts->nresume)
		return NULL;
	ResumeWatch *w = xcalloc(1, sizeof *w);
	w->task = t;
	w->dir = xstrdup(c->resume_dir);
	w->n = t->opts->nresume;
	w->files = xcalloc((size_t)w->n, sizeof *w->files);
	for (int i = 0; i < w->n; i++) {
		Watched *f = &w->files[i];
		f->path = t->opts->resume[i];
		/* the copy an earlier attempt made of this very state needs no second one: a copy
		 * carries its file's size and time */
		char *cp = copy_path(w->dir, t, i);
		struct stat a, b;
		if (stat(f->path, &b) == 0)
			f->settled_ino = b.st_ino; /* the state this attempt starts from */
		if (stat(cp, &a) == 0 && sig_of(f->path, &f->copied) == 0 && stat(f->path, &b) == 0 &&
		    a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec)
			f->has_copied = 1;
		free(cp);
	}
	return w;
}

/* Collects the finished copy, if any: 1 when none is in flight any more. */
static int copy_collected(ResumeWatch *w)
{
	Copy *cp = w->copy;
	if (!cp)
		return 1;
	if (!atomic_load(&cp->done))
		return 0;
	pthread_join(cp->thread, NULL);
	Watched *f = &w->files[w->copying];
	if (cp->kept)
		f->copied = cp->sig, f->has_copied = 1;
	else if (!atomic_load(&cp->stop) && sig_of(f->path, &f->failed) == 0 && sig_same(&f->failed, &cp->sig))
		f->has_failed = 1; /* the file held still and the copy failed anyway: not again */
	free(cp->src);
	free(cp->dst);
	free(cp);
	w->copy = NULL;
	return 1;
}

/* Whether a copy of size bytes leaves room on dir's file system for the trainer's next
 * save of the same size and a GiB besides: the copy must never be what fills the disk
 * under the work it protects. */
static int room_for_copy(const char *dir, off_t size)
{
	struct statvfs fs;
	if (mkdirs(dir, 0777) != 0 || statvfs(dir, &fs) != 0)
		return 0;
	unsigned long long avail = (unsigned long long)fs.f_bavail * fs.f_frsize;
	return avail >= 2ULL * (unsigned long long)size + (1ULL << 30);
}

void resume_watch_poll(ResumeWatch *w)
{
	int64_t now = now_mono_ns();
	if (!w || now < w->next_look_ns)
		return;
	w->next_look_ns = now + 500000000LL;
	if (!copy_collected(w))
		return;
	int64_t wall_ns = (int64_t)(now_wall() * 1e9);
	for (int i = 0; i < w->n; i++) {
		Watched *f = &w->files[i];
		FileSig s;
		if (sig_of(f->path, &s) != 0) {
			f->seen_since_ns = 0;
			continue;
		}
		if (!f->seen_since_ns || !sig_same(&s, &f->seen)) {
			f->seen = s, f->seen_since_ns = now;
			continue;
		}
		/* settled: unchanged for a second, its last write a second old */
		if (f->atomic || now - f->seen_since_ns < 1000000000LL || wall_ns - s.mtime_ns < 1000000000LL)
			continue;
		if (f->settled_ino && f->settled_ino != s.ino) {
			/* saved by writing a new file and renaming it over the old one: never cut
			 * short, so the copy is only disk spent */
			f->atomic = 1;
			char *cp = copy_path(w->dir, w->task, i);
			unlink(cp);
			free(cp);
			continue;
		}
		f->settled_ino = s.ino;
		if ((f->has_copied && sig_same(&s, &f->copied)) || (f->has_failed && sig_same(&s, &f->failed)) ||
		    resume_file_cut(f->path))
			continue;
		if (!room_for_copy(w->dir, s.size))
			continue;
		Copy *cp = xcalloc(1, sizeof *cp);
		cp->src = xstrdup(f->path);
		cp->dst = copy_path(w->dir, w->task, i);
		cp->sig = s;
		if (thread_start(&cp->thread, copy_main, cp) != 0) {
			free(cp->src);
			free(cp->dst);
			free(cp);
			return;
		}
		w->copy = cp;
		w->copying = i;
		return; /* one copy at a time */
	}
}

void resume_watch_end(ResumeWatch *w)
{
	if (!w)
		return;
	if (w->copy) {
		atomic_store(&w->copy->stop, 1);
		while (!copy_collected(w)) {
			struct timespec pause = {0, 5000000};
			nanosleep(&pause, NULL);
		}
	}
	free(w->files);
	free(w->dir);
	free(w);
}

/* "12:03:11" (today) or "2026-12-03 12:03:11" for then. */
static void time_words(time_t then, char *out, size_t n)
{
	time_t now = time(NULL);
	struct tm a, b;
	localtime_r(&then, &a);
	localtime_r(&now, &b);
	strftime(out, n, a.tm_yday == b.tm_yday && a.tm_year == b.tm_year ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &a);
}

int resume_cut_with_copy(Cache *c, const Task *t, int i, char *saved_at, size_t n)
{
	if (i >= t->opts->nresume || !resume_file_cut(t->opts->resume[i]))
		return 0;
	char *cp = copy_path(c->resume_dir, t, i);
	struct stat st;
	int ok = stat(cp, &st) == 0 && S_ISREG(st.st_mode) && !resume_file_cut(cp);
	if (ok)
		time_words(st.st_mtim.tv_sec, saved_at, n);
	free(cp);
	return ok;
}

/* Before an attempt continues from t's resume state: each resume file cut short is put
 * back from its last whole copy, or removed when there is none (the attempt then starts
 * afresh rather than fail on a file it cannot load); in a resume directory, each checkpoint
 * cut short is removed (resume_mend_folder). A sentence per file mended is appended
 * to note. */
static void mend(Cache *c, const Task *t, Buf *note)
{
	for (int i = 0; i < t->opts->nresume; i++) {
		const char *path = t->opts->resume[i];
		struct stat own;
		if (lstat(path, &own) == 0 && S_ISDIR(own.st_mode)) {
			resume_mend_folder(path, note);
			continue;
		}
		if (lstat(path, &own) != 0 || !S_ISREG(own.st_mode) || !resume_file_cut(path))
			continue; /* a link is left as it is: what it points at is not kiln's to replace */
		char when[32];
		if (resume_cut_with_copy(c, t, i, when, sizeof when)) {
			char *cp = copy_path(c->resume_dir, t, i), *tmp = xasprintf("%s.kiln-mend", path);
			int ok = store_copy_file(cp, tmp) == 0 && rename(tmp, path) == 0, err = errno;
			if (!ok)
				unlink(tmp);
			if (ok) {
				/* its time too, so the attempt's watch knows the copy holds it */
				struct stat st;
				if (stat(cp, &st) == 0)
					utimensat(AT_FDCWD, path, (struct timespec[2]){{0, UTIME_OMIT}, st.st_mtim}, 0);
				buf_printf(note, "%s%s was cut short (an attempt was stopped while writing it): put back its last "
					   "whole copy, saved at %s", note->len ? "; " : "", path, when);
			} else {
				buf_printf(note, "%s%s was cut short and its last whole copy (saved at %s) could not be put back: %s",
					   note->len ? "; " : "", path, when, strerror(err));
			}
			free(cp);
			free(tmp);
		} else if (unlink(path) == 0) {
			buf_printf(note, "%s%s was cut short (an attempt was stopped while writing it) and kiln holds no whole "
				   "copy of it: removed, so this attempt starts it afresh", note->len ? "; " : "", path);
		}
	}
}

void resume_forget(Cache *c, const Task *t)
{
	for (int i = 0; i < t->opts->nresume; i++) {
		char *cp = copy_path(c->resume_dir, t, i), *tmp = xasprintf("%s.tmp", cp);
		unlink(cp);
		unlink(tmp); /* a copy a killed kiln left half made */
		free(cp);
		free(tmp);
	}
}

/* Removes path (a directory whole, a link to one: the link only) before an attempt of t. */
static void remove_before(Cache *c, const Task *t, const char *path)
{
	forget_path(c, path);
	struct stat st;
	if (lstat(path, &st) == 0 && (S_ISDIR(st.st_mode) ? remove_tree(path) : unlink(path)) != 0)
		warn("cannot remove %s before running %s: %s", path, t->name, strerror(errno));
}

static int is_resume_path(const Task *t, const char *path)
{
	for (int i = 0; i < t->opts->nresume; i++)
		if (!strcmp(t->opts->resume[i], path))
			return 1;
	return 0;
}

void cache_clear_outputs(Cache *c, Task *t)
{
	cache_ready(c);
	for (int i = 0; i < t->noutputs; i++)
		remove_before(c, t, t->outputs[i]);
}

int cache_checkpoints_left(Cache *c, const Task *t, const char *key_hex, Buf *what, Buf *names)
{
	char last_key[33], key[33];
	int last_ok = 0, asked = 0, unfinished = 0, n = 0;
	for (int i = 0; !t->opts->nresume && i < t->noutputs; i++) {
		Buf newest = {0};
		if (resume_holds_checkpoints(t->outputs[i], &newest)) {
			if (!asked++) {
				if (!key_hex)
					cache_key_hex(c, t, key), key_hex = key;
				unfinished = key_hex[0] && !t->forced &&
					     history_last_attempt(c->state, t->name, last_key, &last_ok) && !last_ok &&
					     !strcmp(last_key, key_hex);
			}
			if (unfinished) {
				buf_printf(what, "%s%s (%s)", n ? ", " : "", t->outputs[i], buf_str(&newest));
				buf_printf(names, "%s\"%s\"", n ? ", " : "", t->outputs[i]);
				n++;
			}
		}
		buf_free(&newest);
	}
	return n;
}

/* t names no resume state: outputs holding checkpoints that an unfinished attempt of the
 * same work left (a Hugging Face output_dir) are about to be deleted with the others. Said,
 * with what keeps them: the trainer starting afresh is not left unexplained. */
static void say_checkpoints_deleted(Cache *c, const Task *t, const char *key_hex, Buf *note)
{
	Buf what = {0}, names = {0};
	if (cache_checkpoints_left(c, t, key_hex, &what, &names))
		buf_printf(note, "%s%s, holding checkpoints an unfinished attempt left, deleted with the task's outputs: "
			   "this attempt starts afresh (resume = { %s } keeps them for the next one to continue from)",
			   note->len ? "; " : "", buf_str(&what), buf_str(&names));
	buf_free(&what);
	buf_free(&names);
}

int cache_prepare_attempt(Cache *c, Task *t, const char *key_hex, Buf *note)
{
	cache_ready(c);
	char last_key[33];
	int last_ok = 0, keep = 0, unfinished = 0;
	if (t->opts->nresume && key_hex[0] && history_last_attempt(c->state, t->name, last_key, &last_ok))
		unfinished = !last_ok;
	keep = unfinished && !t->forced && !strcmp(last_key, key_hex); /* the same work, left unfinished */
	Buf dropped = {0}; /* work left unfinished that this attempt does not continue: said, never silent */
	for (int i = 0; !keep && unfinished && i < t->opts->nresume; i++) {
		struct stat st;
		if (lstat(t->opts->resume[i], &st) == 0)
			buf_printf(&dropped, "%s%s", dropped.len ? ", " : "", t->opts->resume[i]);
	}
	if (dropped.len)
		buf_printf(note, "%sits resume state (%s), left unfinished by %s, is removed: this attempt starts afresh",
			   note->len ? "; " : "", buf_str(&dropped),
			   t->forced ? "an earlier attempt (--force)" : "an attempt of the task as it was (its key changed)");
	buf_free(&dropped);
	say_checkpoints_deleted(c, t, key_hex, note);
	for (int i = 0; i < t->noutputs; i++)
		if (!keep || !is_resume_path(t, t->outputs[i]))
			remove_before(c, t, t->outputs[i]);
	if (keep)
		mend(c, t, note);
	else
		resume_forget(c, t);
	int there = 0;
	for (int i = 0; i < t->opts->nresume; i++) {
		struct stat st;
		if (!keep)
			remove_before(c, t, t->opts->resume[i]);
		else if (lstat(t->opts->resume[i], &st) == 0)
			there = 1;
	}
	return keep ? 1 + there : 0;
}

int cache_resume_host(Cache *c, const Task *t, char host[128])
{
	cache_ready(c);
	char last_key[33], key[33], executor[16];
	int last_ok = 0;
	if (!t->opts->nresume || t->forced ||
	    !history_last_attempt_host(c->state, t->name, last_key, &last_ok, executor, host) || last_ok ||
	    strcmp(executor, "ssh") || !host[0])
		return 0;
	cache_key_hex(c, t, key);
	return !strcmp(last_key, key);
}

double cache_resume_seconds(Cache *c, const Task *t)
{
	cache_ready(c);
	char key[33];
	cache_key_hex(c, t, key);
	return key[0] ? history_unfinished_seconds(c->state, t->name, key, now_wall()) : 0;
}

int cache_accept_unfinished(Cache *c, Task *t, int outputs_there, int dry, Buf *what)
{
	cache_ready(c);
	char last_key[33], key[33];
	int last_ok = 0, open = 0, there = 0;
	int64_t id = 0;
	if (!history_last_attempt_row(c->state, t->name, last_key, &last_ok, &id, &open) || (last_ok && !open))
		return ACCEPT_NONE;
	cache_key_hex(c, t, key);
	if (open && !strcmp(key, last_key))
		return ACCEPT_RUNNING_ALREADY;
	if (!open && (outputs_there || !key[0] || !strcmp(key, last_key)))
		return ACCEPT_NONE; /* nothing left unfinished to take, or it is this key's already */
	for (int i = 0; !open && i < t->opts->nresume; i++) {
		struct stat st;
		if (lstat(t->opts->resume[i], &st) == 0)
			buf_printf(what, "%s%s", there++ ? ", " : "", t->opts->resume[i]);
	}
	if (!open && !there)
		return ACCEPT_NONE;
	if (!dry && state_attempt_key(c->state, id, key) != 0) {
		buf_reset(what);
		buf_puts(what, state_error(c->state));
		return -1;
	}
	return open ? ACCEPT_RUNNING : ACCEPT_RESUME;
}

int cache_resume_plan(Cache *c, const Task *t, Buf *what)
{
	char last_key[33], key[33], executor[16], host[128];
	int last_ok = 0, n = 0;
	if (!t->opts->nresume || !history_last_attempt_host(c->state, t->name, last_key, &last_ok, executor, host) ||
	    last_ok)
		return RESUME_NONE;
	int there = !strcmp(executor, "ssh") && host[0]; /* kept in that host's workdir, not here */
	for (int i = 0; i < t->opts->nresume; i++) {
		struct stat st;
		if (there || lstat(t->opts->resume[i], &st) == 0)
			buf_printf(what, "%s%s", n++ ? ", " : "", t->opts->resume[i]);
	}
	if (there && n) { /* a multi-node job's: its nodes' hosts, each with its own part */
		buf_printf(what, " on host%s ", strchr(host, '+') ? "s" : "");
		for (const char *p = host; *p; p++)
			buf_puts(what, *p == '+' ? ", " : (char[]){*p, 0});
	}
	if (!n)
		return RESUME_NONE;
	cache_key_hex(c, t, key);
	return !key[0] ? RESUME_NONE : strcmp(key, last_key) ? RESUME_DROPPED : t->forced ? RESUME_DROPPED : RESUME_CONTINUES;
}

/* One file under the copies' folder (a copy "TASK@I", or a half-made "TASK@I.tmp"): gone
 * unless its task's latest attempt is unfinished, so the copy may still be put back. */
static void gc_copy(Cache *c, const char *path, long long *bytes, int *n)
{
	const char *name = path + strlen(c->resume_dir) + 1, *at = strrchr(name, '@');
	char key[33];
	int ok = 0, keep = 0;
	if (at && !strstr(at, ".tmp")) {
		char *task = strndup(name, (size_t)(at - name));
		keep = history_last_attempt(c->state, task, key, &ok) && !ok;
		free(task);
	}
	struct stat st;
	if (!keep && lstat(path, &st) == 0 && unlink(path) == 0) {
		*bytes += st.st_size;
		(*n)++;
	}
}

static void gc_walk(Cache *c, const char *dir, long long *bytes, int *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			gc_walk(c, path, bytes, n);
			rmdir(path); /* when emptied */
		} else {
			gc_copy(c, path, bytes, n);
		}
		free(path);
	}
	if (d)
		closedir(d);
}

int cache_gc_resume(Cache *c, long long *bytes)
{
	cache_ready(c);
	int n = 0;
	*bytes = 0;
	gc_walk(c, c->resume_dir, bytes, &n);
	return n;
}
