/* key.c — a task's key: the canonical text of what decides its result (command, env, tags,
 * cwd, outputs declared, every input's content hash, explicit deps' output hashes), whose
 * hash is the key, followed by hints for explanations (params) that are not hashed. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define KEY_VERSION_TEXT "2" /* 2: dep lines for explicit deps only */

static int compare_input(const void *a, const void *b, void *task)
{
	const Task *t = task;
	return strcmp(t->inputs[*(const int *)a], t->inputs[*(const int *)b]);
}
static int compare_task_name(const void *a, const void *b)
{
	return strcmp((*(Task *const *)a)->name, (*(Task *const *)b)->name);
}

/* Whether word appears in shell text with no letter, digit, '.' or '_' on either side. */
static int shell_has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
		int before = p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '_');
		int after = isalnum((unsigned char)p[n]) || p[n] == '.' || p[n] == '_';
		if (!before && !after)
			return 1;
	}
	return 0;
}

/* "dep\tNAME\tPATH\tHASH\n" per output of dep (or "dep\tNAME\n" when it has none),
 * without printf's cost */
static void put_dep_lines(Buf *b, const Cache *c, const Task *dep)
{
	const TaskCache *dc = record_of(c, dep);
	char hex[33];
	if (dep->noutputs == 0) {
		buf_puts(b, "dep\t");
		buf_puts(b, dep->name);
		buf_putc(b, '\n');
	}
	for (int j = 0; j < dep->noutputs; j++) {
		if (dc && dc->outputs_known)
			hash_hex(dc->out_hashes[j], hex);
		else
			strcpy(hex, "pending");
		buf_puts(b, "dep\t");
		buf_puts(b, dep->name);
		buf_putc(b, '\t');
		buf_puts(b, dep->outputs[j]);
		buf_putc(b, '\t');
		buf_puts(b, hex);
		buf_putc(b, '\n');
	}
}

/* A group: no command, no outputs, only dependencies (map{}'s task over its items, an
 * "all" target). Running one does nothing. */
static int is_group(const Task *t) { return !task_shell(t) && !task_word(t, 0) && !t->opts->spec && !t->noutputs; }

/* Past this many, a group's dependencies are keyed as one digest line instead of lines
 * of their own: a million-item map's group would otherwise build, sort and hash 63 MB of
 * dep lines on every command (and record them on every change) to decide a task that does
 * nothing. The digest is the sum of the hashes of each dependency's lines, so it needs no
 * sorting to be independent of order; `kiln why` then says the dependencies changed,
 * without naming which. */
enum { DEPS_AS_DIGEST = 1000 };

static void put_deps_digest(Buf *b, const Cache *c, const Task *t, int ndeps)
{
	Buf line = {0};
	uint64_t lo = 0, hi = 0;
	for (int i = 0; i < ndeps; i++) {
		buf_reset(&line);
		put_dep_lines(&line, c, t->deps[i]);
		Hash h = hash_bytes(line.data, line.len);
		lo += h.lo;
		hi += h.hi + (lo < h.lo); /* 128-bit addition: the carry from the low half */
	}
	buf_free(&line);
	char hex[33];
	hash_hex((Hash){lo, hi}, hex);
	buf_puts(b, "deps\t");
	buf_puts(b, hex);
	buf_putc(b, '\n');
}

char *cache_key_components(Cache *c, Task *t, size_t *key_len)
{
	Buf b = {0};
	cache_key_text(c, t, &b, key_len);
	return b.data;
}

/* The canonical text of t's components, one line per component; the key is the hash of
 * its first *key_len bytes (what follows are hints for explanations only). */
void cache_key_text(Cache *c, Task *t, Buf *text, size_t *key_len)
{
	TaskCache *tc = task_cache(c, t);
	Buf b = *text; /* written here by value: buf_puts inlines best on a local */
	char hex[33];
	buf_reset(&b);
	buf_puts(&b, "v\t" KEY_VERSION_TEXT "\n");
	if (task_shell(t)) {
		buf_puts(&b, "cmd\tsh\t");
		buf_put_escaped(&b, task_shell(t));
	} else if (t->opts->spec) { /* built-in work (plot{}): its spec is its command */
		buf_puts(&b, "cmd\tspec\t");
		buf_put_escaped(&b, t->opts->spec);
	} else {
		buf_puts(&b, task_word(t, 0) ? "cmd\targv" : "cmd\tnone");
		for (int i = 0; task_word(t, i); i++) {
			buf_putc(&b, '\t');
			buf_put_escaped(&b, task_argv(t)[i]);
		}
	}
	buf_putc(&b, '\n');
	if (t->opts->shell && task_shell(t)) { /* only when given, as cwd */
		buf_puts(&b, "shell\t");
		buf_put_escaped(&b, t->opts->shell);
		buf_putc(&b, '\n');
	}
	if (t->opts->cwd) { /* only when given: keys of tasks without one stay as they were */
		buf_puts(&b, "cwd\t");
		buf_put_escaped(&b, t->opts->cwd);
		buf_putc(&b, '\n');
	}
	for (int i = 0; i < t->more->nenv; i++) {
		buf_puts(&b, "env\t");
		buf_put_escaped(&b, t->more->env[i].key);
		buf_putc(&b, '\t');
		buf_put_escaped(&b, t->more->env[i].value);
		buf_putc(&b, '\n');
	}
	for (int i = 0; i < t->ntags; i++) {
		buf_puts(&b, "tag\t");
		buf_put_escaped(&b, t->tags[i].key);
		buf_putc(&b, '\t');
		buf_put_escaped(&b, task_tag_value(t, i));
		buf_putc(&b, '\n');
	}
	for (int i = 0; i < t->noutputs; i++) {
		buf_puts(&b, "out\t");
		buf_puts(&b, t->outputs[i]);
		buf_putc(&b, '\n');
	}
	int few[8], *order = t->ninputs <= 8 ? few : xmalloc((size_t)t->ninputs * sizeof *order); /* path order */
	for (int i = 0; i < t->ninputs; i++)
		order[i] = i;
	if (t->ninputs > 8)
		qsort_r(order, (size_t)t->ninputs, sizeof *order, compare_input, t);
	else /* a few: insertion, without qsort's set-up (most tasks have one to three inputs) */
		for (int i = 1; i < t->ninputs; i++)
			for (int j = i; j > 0 && compare_input(&order[j - 1], &order[j], t) > 0; j--) {
				int swap = order[j];
				order[j] = order[j - 1];
				order[j - 1] = swap;
			}
	for (int k = 0; k < t->ninputs; k++) {
		const char *input = t->inputs[order[k]];
		Hash h;
		Task *producer = task_input_producer(t, order[k]);
		TaskCache *pc = producer ? record_of(c, producer) : NULL;
		if (pc && pc->rewrote && tc->in_memo && pc->in_memo) {
			/* its producer ran or was restored in this command and the input lies inside
			 * one of its directory outputs: what was stat'ed before (by the loader) is out
			 * of date. An input that is an output itself was forgotten when rewritten. */
			Memo *m = tc->in_memo[order[k]];
			int exact = 0;
			for (int o = 0; o < producer->noutputs && !exact; o++)
				exact = pc->in_memo[producer->ninputs + o] == m;
			if (!exact)
				m->hashed = m->statted = 0;
		}
		if (pc && pc->will_run)
			strcpy(hex, "pending"); /* a dry plan: its producer runs first */
		else if ((tc->in_memo ? hash_memo(c, tc->in_memo[order[k]], &h) : hash_path(c, input, &h)) == 0)
			hash_hex(h, hex);
		else
			strcpy(hex, "missing");
		buf_puts(&b, "in\t");
		buf_puts(&b, input);
		buf_putc(&b, '\t');
		buf_puts(&b, hex);
		buf_putc(&b, '\n');
	}
	if (order != few)
		free(order);
	/* explicit deps only: for producers of inputs, the input lines above already hold
	 * the hashes of exactly the files this task reads */
	int ndeps = t->more->nexplicit_deps;
	if (ndeps > DEPS_AS_DIGEST && is_group(t)) {
		put_deps_digest(&b, c, t, ndeps);
	} else {
		Task **deps = ndeps > 1 ? xmalloc((size_t)ndeps * sizeof *deps) : t->deps; /* one: already in order */
		if (ndeps > 1) {
			memcpy(deps, t->deps, (size_t)ndeps * sizeof *deps);
			qsort(deps, (size_t)ndeps, sizeof *deps, compare_task_name);
		}
		for (int i = 0; i < ndeps; i++)
			put_dep_lines(&b, c, deps[i]);
		if (ndeps > 1)
			free(deps);
	}
	*key_len = b.len;
	/* Not hashed: the params whose value is one of the command's words, an env value or a
	 * tag, so `kiln why` can say "param batch: 64 → 32" where the key only holds argv. */
	for (int i = 0; i < c->g->nparams; i++) {
		const KeyValue *p = &c->g->params[i];
		int used = 0;
		for (int k = 0; task_word(t, k) && !used; k++)
			used = !strcmp(task_argv(t)[k], p->value);
		for (int k = 0; k < t->more->nenv && !used; k++)
			used = !strcmp(t->more->env[k].value, p->value);
		for (int k = 0; k < t->ntags && !used; k++)
			used = !strcmp(task_tag_value(t, k), p->value);
		if (!used && task_shell(t) && *p->value)
			used = shell_has_word(task_shell(t), p->value);
		if (used) {
			buf_puts(&b, "param\t");
			buf_put_escaped(&b, p->key);
			buf_putc(&b, '\t');
			buf_put_escaped(&b, p->value);
			buf_putc(&b, '\n');
		}
	}
	*text = b;
}

/* Keys ahead: a task with no dependency (map{} items, the cells of a grid) has its key
 * decided by source files only, and cache_prepare has stat'ed and hashed those, so its key
 * is computed here for all such tasks at once, on every core, before the scheduler checks
 * them one by one, and whether its outputs are those of its last success with that key
 * (key_ahead 2: up to date). cache_check then takes that finding, and builds the key's
 * text only when it needs it (the task runs, or a plan explains it). */
typedef struct {
	Cache *c;
	Task **tasks;
	size_t n;
} KeysAhead;

#define KEYS_A_BLOCK 512

/* Whether t's outputs are those its last success recorded, each found current in the memo
 * (hashed): settle_outputs' finding for an up-to-date task, made without writing. */
static int outputs_as_recorded(const Task *t, const TaskCache *tc)
{
	const unsigned char *packed = tc->last->outputs;
	uint32_t n;
	if (!packed || (memcpy(&n, packed, 4), n != (uint32_t)t->noutputs))
		return 0;
	const Hash *want = packed_hashes(packed);
	for (int i = 0; i < t->noutputs; i++) {
		const Memo *m = tc->in_memo[t->ninputs + i];
		if (!hash_is_absent(want[i]) && !(m->hashed && hash_equal(m->hash, want[i])))
			return 0;
	}
	return 1;
}

static void keys_of_block(void *ctx, size_t block)
{
	KeysAhead *k = ctx;
	Buf text = {0}; /* one per block: a text for each of a million keys is not made and freed */
	size_t end = (block + 1) * KEYS_A_BLOCK < k->n ? (block + 1) * KEYS_A_BLOCK : k->n;
	for (size_t i = block * KEYS_A_BLOCK; i < end; i++) {
		TaskCache *tc = record_of(k->c, k->tasks[i]);
		size_t len;
		cache_key_text(k->c, k->tasks[i], &text, &len); /* reads only: its inputs are hashed */
		tc->key = hash_bytes(text.data, len);
		tc->key_ahead = hash_equal(tc->key, tc->last->key) && outputs_as_recorded(k->tasks[i], tc) ? 2 : 1;
	}
	buf_free(&text);
}

/* A memo entry stat'ed this command, found a regular file that matches it: hashed, as
 * hash_memo would mark it. */
static int known_now(Memo *m)
{
	if (!m->hashed && m->statted && m->present && S_ISREG(m->s_mode) && m->current)
		m->hashed = 1;
	return m->hashed;
}

/* Whether t's key may be computed ahead: needed, recorded, no dependency, and each input a
 * regular file whose hash this command knows. Its outputs' entries that are current are
 * marked hashed too (the others leave the check of the outputs to cache_check). */
static int key_may_go_ahead(Cache *c, Task *t)
{
	TaskCache *tc = record_of(c, t);
	if (!t->needed || t->ndeps || !tc || tc == &c->planned_run || !tc->last || !tc->in_memo)
		return 0;
	for (int j = 0; j < t->ninputs; j++)
		if (!known_now(tc->in_memo[j]))
			return 0;
	for (int j = 0; j < t->noutputs; j++)
		known_now(tc->in_memo[t->ninputs + j]);
	return 1;
}

void cache_keys_ahead(Cache *c)
{
	Graph *g = c->g;
	KeysAhead k = {c, xmalloc(((size_t)g->ntasks + 1) * sizeof *k.tasks), 0};
	for (int i = 0; i < g->ntasks; i++)
		if (key_may_go_ahead(c, g->tasks[i]))
			k.tasks[k.n++] = g->tasks[i];
	/* on one thread (fewer than two blocks) the same work only moves earlier: done all the
	 * same, so every run takes the path a big one does */
	parallel_for((k.n + KEYS_A_BLOCK - 1) / KEYS_A_BLOCK, 1, 0, keys_of_block, &k);
	free(k.tasks);
	trace_mark("keys computed ahead");
}
