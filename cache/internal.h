/* internal.h — what the cache's own files share: struct Cache and its per-file and
 * per-task records (cache.c decides and records, files.c hashes and stats). */
#ifndef KILN_CACHE_INTERNAL_H
#define KILN_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../base/keytable.h"
#include "cache.h"
#include "sizehint.h"
#include "state/state.h"
#include "store.h"

/* A file modified within this window before it was hashed may change again without its
 * timestamp moving (timestamps are coarse): such a memo entry is re-checked next time. */
#define RACY_NS 50000000LL

/* The directory listings a plan answers "does this input exist?" from (dirs.c). */
typedef struct DirInfo DirInfo;
typedef struct {
	StrMap map;        /* directory -> DirInfo* */
#define DIRS_RECENT 64
	DirInfo *recent[DIRS_RECENT]; /* directories asked about lately, by hash */
	DirInfo *queue;    /* waiting for the lister thread */
	int started;       /* the lister thread: 1 running, -1 could not start, 0 not yet */
	int stop;
	pthread_t lister;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a listing finished, a directory was queued, or stop */
	/* After dirs_settle: per input of the graph's tasks, in their order, a bit set when
	 * its listing does not say it exists (stat asks then); the listings are gone. The
	 * cursor finds an input's bit from the last one asked: a plan asks in order. */
	const Graph *settled;
	uint64_t *ask_stat;
	int cursor_task;
	size_t cursor_bit;
} Dirs;

/* A task's last success. Its name follows it, NUL-terminated (last_task): the key in
 * Cache.last, with no pointer to it. Of the recorded outputs only their hashes are kept:
 * the key names the outputs (their paths, in declared order), so a matching key means the
 * recorded paths are the declared ones. */
typedef struct {
	Hash key;
	const unsigned char *outputs; /* a count, then a hash per output (cache_pack_outputs; the
					 state keeps them so: STATE_PACKED_SIZE), or NULL */
} LastSuccess;

/* The task name of last success l. */
static inline const char *last_task(const LastSuccess *l) { return (const char *)(l + 1); }

/* The hashes of packed outputs (cache_pack_outputs; not NULL), by output. */
static inline const Hash *packed_hashes(const unsigned char *packed) { return (const Hash *)(packed + 8); }

/* A file's memo entry: the stat its hash was taken at, and what this command saw of it.
 * Its path follows it, NUL-terminated (memo_path): the key in Cache.memo, with no pointer
 * to it. A million files' memo is a million of these, so only what is asked is kept: of the
 * stat its size and the rest mixed into one word, of the row's hashed_ns whether it came
 * late enough after the mtime (settled), of this command's stat whether it matched (a file
 * whose stat differs is stat'ed again right before it is hashed, for the new entry's
 * fields), whether the path exists and its mode: 48 bytes. */
typedef struct {
	int64_t size;
	uint64_t stamp; /* the rest of that stat, mixed (stat_stamp) */
	Hash hash;
	unsigned s_mode;
	/* bytes, not bit fields: threads that stat and hash different entries must not share
	 * a word */
	unsigned char settled;    /* hashed more than RACY_NS after its mtime: a matching stat
				     is trusted (else the file may have changed within a tick) */
	unsigned char present;    /* the path exists */
	unsigned char hashed;     /* the hash is checked */
	unsigned char statted;    /* present, s_mode and current are this command's stat */
	unsigned char current;    /* that stat matched, and the entry is settled */
	unsigned char queued;     /* in cache_prepare's list already */
	unsigned char prehashed;  /* cache_prepare hashed it: the state needs the new entry */
} Memo;

/* A stat's mtime, inode and ctime mixed into 64 bits: what a memo entry compares a new stat
 * with beside the size (the state keeps each). Two stats of a changed file, their sizes
 * equal, that mix alike: one in 2^64. */
static inline uint64_t stat_stamp(int64_t mtime_ns, int64_t ino, int64_t ctime_ns)
{
	uint64_t h = (uint64_t)mtime_ns;
	h = (h ^ (h >> 31) ^ (uint64_t)ino) * 0x9e3779b97f4a7c15ULL;
	h = (h ^ (h >> 29) ^ (uint64_t)ctime_ns) * 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

/* The path of memo entry m. */
static inline const char *memo_path(const Memo *m) { return (const char *)(m + 1); }

typedef struct {
	Hash key;
	char *components; /* malloc'd while the task may still need recording */
	Hash *out_hashes; /* one per declared output, once the task is done (NULL before); an
			     up-to-date task's are its last success's (out_shared): read only */
	Memo **in_memo;   /* per input, then per output (from in_memo + ninputs): bind_tasks() */
	LastSuccess *last;          /* NULL: no success recorded */
	/* bytes: a million of these make a plan */
	unsigned char key_known;    /* key is this command's (a task never recorded is checked without it) */
	unsigned char outputs_known, will_run;
	unsigned char rewrote;      /* its outputs were written (run or restored) in this command */
	unsigned char out_shared;   /* out_hashes are its last success's: out_hashes_of copies them first */
	unsigned char key_ahead;    /* key was computed by cache_keys_ahead (its text not kept): 1, or 2
				       when its outputs were found as its last success recorded them */
} TaskCache;

struct Cache {
	Graph *g;
	State *state;
	CacheOptions opt;
	char *objects_dir;
	char *resume_dir;   /* the copies of resume files (resume.c) */
	Store *store;            /* this thread's look-ups in the store */
	Arena arena;
	KeyTable memo; /* path -> Memo; numbered in the order read, the state's rows first */
	Dirs dirs;    /* a plan's directory listings (dirs.c) */
	KeyTable last; /* task name -> LastSuccess, until bind_tasks() gives each task its own
			  (TaskCache.last) and frees it (last_of) */
	Buf key_text; /* cache_check's key text, reused: an up-to-date task keeps none */
	/* what a plan's tasks never recorded point to instead of a record each (a million-task
	 * first plan needs none): will_run, nothing else; task_cache() replaces it by a record
	 * of the task's own before anything is written */
	TaskCache planned_run;
	/* per task (Task.index): its record, or NULL; made at the first record (the tasks
	 * themselves do not carry the pointer: a million-task plan's peak is theirs) */
	TaskCache **records;
	int nrecords;
	/* per task, a bit: it points to planned_run (when it has no record of its own) */
	uint64_t *planned;
	int nplanned; /* bits it has room for (a multiple of 64) */
	int bound;    /* bind_tasks() ran */
	int lock_fd;
	char *lock_path;         /* kiln_dir/lock, in write mode */
	int unclean;  /* the lock file named a kiln that did not exit cleanly */
	int recorded; /* an attempt or a success was written: the log is folded in on close */
	int64_t run_id;       /* 0 until the run records something (cache_run_id writes its row) */
	char *run_command;    /* cache_begin_run's: NULL outside a run */
	double run_started;
	StoreQueue *store_queue; /* started lazily by the first success */
	int64_t committed_ns;
	pthread_t loader;        /* reads memo and last successes while the recipe loads */
	int loading;
	/* The loader then stats every memo entry; a caller that needs the cache before it is
	 * done takes a share of those stats instead of waiting idle. */
	pthread_mutex_t loaded_lock;
	pthread_cond_t loaded_cond;
	int loaded;         /* maps filled: the stats below are all that is left */
	char *db_path;
	char *sizes_path;   /* kiln_dir/sizes (sizehint.h) */
	SizeHint hint;      /* what it said when the loader read it */
	size_t nlast_read;  /* last successes the loader read */
	Buf open_error;     /* why the loader could not open the database */
	/* The memo entries the loader has read are stat'ed by number: a waiting caller stats
	 * the first ones while later ones are still being read. */
	_Atomic size_t nto_stat;  /* entries [0, nto_stat) are whole (published with release) */
	_Atomic int read_all;     /* nto_stat is final */
	_Atomic int stats_stopped; /* the loader is forgetting what it read: claim nothing */
	_Atomic int statting;      /* threads inside stat_a_chunk */
	_Atomic size_t next_stat; /* the first entry not yet claimed by a thread */
};

/* A recorded outputs text ("<hex> <path>\n" per output) packed in a: a 4-byte count and 4
 * spare bytes, then per output its hash (packed_hashes). A third of the text's bytes, a
 * check reads no hex, and an up-to-date task's output hashes are these, not a copy. NULL
 * when the text does not parse (then no check matches it). */
const unsigned char *cache_pack_outputs(Arena *a, const char *text);
/* A last success for task (its name copied behind it) in c's arena, not yet in Cache.last. */
LastSuccess *cache_new_last(Cache *c, const char *task);

/* Takes the workspace lock kiln_dir/lock for c (lock.c): 0, or -1 with who holds it in err. */
int cache_take_lock(Cache *c, const char *kiln_dir, Buf *err);
/* The canonical text of t's key components (key.c), one line per component, into text
 * (emptied first); the key is the hash of its first *key_len bytes (what follows are hints
 * for explanations). */
void cache_key_text(Cache *c, Task *t, Buf *text, size_t *key_len);
/* The same, malloc'd. */
char *cache_key_components(Cache *c, Task *t, size_t *key_len);
/* Computes, on all cores, the keys of the needed tasks that depend on nothing and whose
 * inputs are hashed (key.c): cache_prepare's last step. */
void cache_keys_ahead(Cache *c);
/* Waits for the loader thread; every entry point calls this before touching state. */
void cache_ready(Cache *c);
/* cache_ready, then binds every task to its memo entries once (see files.c). */
void bind_tasks(Cache *c);
/* The loader thread's body: opens the state, reads it, stats what it names. */
void *cache_loader_main(void *arg);
/* The task's record, made on first use. */
TaskCache *task_cache(Cache *c, Task *t);
/* t's record as it is: NULL when none was made, maybe &c->planned_run. */
static inline TaskCache *record_of(const Cache *c, const Task *t)
{
	TaskCache *tc = t->index < c->nrecords ? c->records[t->index] : NULL;
	if (!tc && t->index < c->nplanned && c->planned[t->index / 64] >> (t->index % 64) & 1)
		return (TaskCache *)&c->planned_run;
	return tc;
}
void set_record(Cache *c, const Task *t, TaskCache *tc);
/* The memo entry of path, made (unknown hash) when new. */
Memo *memo_entry(Cache *c, const char *path);
/* Content hash of a file or directory through the memo: 0, or -1 when it cannot be read. */
int hash_memo(Cache *c, Memo *m, Hash *out);
int hash_path(Cache *c, const char *path, Hash *out);
/* Told of each task as the recipe declares it (Graph.on_task_added) during a plan: starts
 * listing the directories that hold many inputs (dirs.c). */
void dirs_note_task(void *cache, const Task *t);
/* Once the recipe is loaded, before the graph is indexed: answers from the listings
 * (waiting for them) whether each input of g's tasks exists, keeps the answers as a bit
 * each, stops the lister thread and frees the listings, so the plan's peak (the graph's
 * indexes) is not also theirs. A task added later undoes it (stat answers then). */
void dirs_settle(Dirs *dirs, const Graph *g);
/* Whether input j of task t exists: from its directory's listing when it has one (or had
 * one, settled), else by stat. */
int dirs_input_exists(Dirs *dirs, const Task *t, int j);
/* Stops the lister thread and frees every listing. */
void dirs_free(Dirs *dirs);
/* Hashes the directory output at path into *out and, when the store can hold it (regular
 * files and directories only, store_max_mib in all), queues its files and trees for the
 * store. 0, or -1 when it cannot be read. */
int cache_hash_output_dir(Cache *c, const char *path, Hash *out);
/* The store's background writer, started on first use; NULL if it cannot start. */
StoreQueue *cache_store_queue(Cache *c);
/* Forgets this command's view of path (it is about to be rewritten). */
void forget_path(Cache *c, const char *path);

State *cache_state(Cache *c);
const char *cache_objects_dir(Cache *c);
Store *cache_store(Cache *c);

#endif
