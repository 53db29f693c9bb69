/* test_cache.c — the cache module on its own: key components and verdicts, the memo, the
 * store (verified restores), the state's write errors and damaged files, recorded outputs,
 * and the error paths of each. Runs in a temp dir it removes. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../../base/graph.h"
#include "../../cache/cache.h"
#include "../../cache/resume.h"
#include "../../cache/sizehint.h"
#include "../../base/hash.h"
#include "../../cache/state/state.h"
#include "../../cache/store.h"
#include "check.h"

static Task *task(Graph *g, const char *name, const char *cmd, const char *out)
{
	Task *t = graph_new_task(g);
	t->name = name;
	graph_task_opts(g, t)->file = "r.lua";
	task_set_shell(t, cmd);
	t->outputs = arena_alloc(&g->arena, sizeof *t->outputs);
	t->outputs[0] = out;
	t->noutputs = 1;
	graph_add_task(g, t);
	return t;
}

static Cache *open_loaded(const char *dir, Graph *g)
{
	CacheOptions opt = {.store_max_mib = 16};
	Buf err = {0};
	Cache *c = cache_open(dir, g, &opt, &err);
	CHECK(c != NULL && cache_loaded(c, &err) == 0);
	buf_free(&err);
	return c;
}

static void write_text(const char *path, const char *text) { CHECK(write_file_atomic(path, text, strlen(text)) == 0); }

static void test_keys_verdicts_and_store(void)
{
	Graph *g = graph_new(".");
	Task *t = task(g, "t", "echo 1 > o.txt", "o.txt");
	Buf err = {0}, why = {0};
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	CHECK(graph_select(g, NULL, 0, &err) == 1);
	Cache *c = open_loaded(".kiln", g);
	CHECK(cache_begin_run(c, "test") == 0 && cache_run_id(c) > 0);
	CHECK(cache_check(c, t, 0, &why) == VERDICT_RUN);
	CHECK_CONTAINS(buf_str(&why), "no successful run recorded");
	/* a success without its declared output is a failure */
	buf_reset(&err);
	CHECK(cache_record_success(c, t, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "did not write its declared output o.txt");
	write_text("o.txt", "one\n");
	char key[33];
	cache_key_hex(c, t, key);
	CHECK(!cache_succeeded_with(c, t, key)); /* a failure records no success */
	buf_reset(&err);
	CHECK(cache_record_success(c, t, &err) == 0);
	CHECK(cache_succeeded_with(c, t, key) && !cache_succeeded_with(c, t, "00000000000000000000000000000000"));
	CHECK(cache_commit(c, 1) == -1 && cache_write_error(c) == NULL);
	cache_close(c);

	/* the next command: up to date; then the output edited by hand is put back */
	c = open_loaded(".kiln", g);
	buf_reset(&why);
	CHECK(cache_check(c, t, 0, &why) == VERDICT_UP_TO_DATE);
	cache_close(c); /* waits for the store's writer: o.txt is kept */
	write_text("o.txt", "edited\n");
	c = open_loaded(".kiln", g);
	buf_reset(&why);
	CHECK(cache_check(c, t, 0, &why) == VERDICT_RESTORED);
	CHECK_CONTAINS(buf_str(&why), "output o.txt was modified");
	size_t len;
	char *back = read_file("o.txt", &len);
	CHECK(back && !strcmp(back, "one\n"));
	free(back);
	cache_close(c);

	/* a changed command: the reason names it */
	task_set_shell(t, "echo 2 > o.txt");
	c = open_loaded(".kiln", g);
	buf_reset(&why);
	CHECK(cache_check(c, t, 1, &why) == VERDICT_RUN);
	CHECK_CONTAINS(buf_str(&why), "command changed");
	Buf full = {0};
	cache_explain(c, t, &full);
	CHECK_CONTAINS(buf_str(&full), "echo 1 > o.txt");
	buf_free(&full);
	cache_close(c);
	graph_free(g);
	buf_free(&err);
	buf_free(&why);
}

static void test_store_verifies_what_it_restores(void)
{
	write_text("src.txt", "payload\n");
	Hash h;
	CHECK(hash_file("src.txt", &h) == 0);
	Store *st = store_open("objs");
	CHECK(!store_has(st, h));
	CHECK(store_restore(st, h, "dest.txt") == -1); /* absent */
	CHECK(store_put(st, "src.txt", h) == 0);
	CHECK(store_has(st, h));
	CHECK(store_restore(st, h, "dest.txt") == 0);
	size_t len;
	char *text = read_file("dest.txt", &len);
	CHECK(text && !strcmp(text, "payload\n"));
	free(text);
	/* damage the object: it is refused (EBADMSG), dropped, and dest is left alone */
	char *obj = store_object_path("objs", h);
	chmod(obj, 0644);
	write_text(obj, "tampered\n");
	write_text("dest.txt", "old\n");
	errno = 0;
	CHECK(store_restore(st, h, "dest.txt") == -1 && errno == EBADMSG);
	CHECK(!store_has(st, h));
	text = read_file("dest.txt", &len);
	CHECK(text && !strcmp(text, "old\n"));
	free(text);
	free(obj);
	/* a tree listing that does not hash to its name is malformed */
	Hash tree;
	CHECK(store_tree_hash("f 644 00000000000000000000000000000000 x\n", &tree) == 0);
	CHECK(store_tree_hash("garbage without fields\n", &tree) == -1);
	store_free(st);
}

static void test_state_errors_and_outputs_text(void)
{
	Buf err = {0}, moved = {0};
	/* not a database: read-only opens say so and name the remedy; a writer moves it aside */
	write_text("bad.db", "this is not SQLite, not even close\n");
	State *s = state_open("bad.db", 1, &err);
	CHECK(s == NULL);
	CHECK_CONTAINS(buf_str(&err), "is damaged");
	CHECK_CONTAINS(buf_str(&err), "kiln run");
	buf_reset(&err);
	s = state_open("bad.db", 0, &err);
	CHECK(s != NULL);
	CHECK(access("bad.db", F_OK) == 0);
	CHECK(state_begin_run(s, now_wall(), "host", 1, "cmd") > 0);
	CHECK(state_commit(s) == 0 && state_error(s) == NULL);
	state_close(s);
	/* recorded outputs: one parser */
	const char *text = "0123456789abcdef0123456789abcdef out/a.txt\n0123456789abcdef0123456789abcdef b\n";
	Hash h;
	const char *path;
	size_t len;
	int n = 0;
	for (const char *p = text; state_outputs_next(&p, &h, &path, &len) > 0;)
		n++;
	CHECK(n == 2);
	const char *broken = "not-a-hash out/a.txt\n";
	CHECK(state_outputs_next(&broken, &h, &path, &len) == -1);
	buf_free(&err);
	buf_free(&moved);
}

/* An attempt found open after a migration, as adopt() would get it. */
static void collect_open(void *ctx, const OpenAttempt *a)
{
	buf_printf(ctx, "%s %s %s %s %s|", a->rec.task, a->rec.executor, a->rec.host, a->rec.gpus, a->rec.job_id);
}

/* Schema 8 kept an ssh attempt's host and devices in its job id ("host:ID/gpus"); 9 has
 * executor and host columns: the migration moves them, in one transaction, and a later
 * kiln adopts the open attempts by those columns. */
static void test_migration_to_host_columns(void)
{
	sqlite3 *db;
	CHECK(sqlite3_open("v8.db", &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
			   "CREATE TABLE attempts (id INTEGER PRIMARY KEY, run_id INTEGER, task TEXT,"
			   "  attempt INTEGER, started REAL, ended REAL, exit_code INTEGER, outcome TEXT, host TEXT,"
			   "  pgid INTEGER, gpus TEXT, log TEXT, job_id TEXT, key TEXT, failure TEXT, waited REAL);"
			   "INSERT INTO attempts (task, attempt, host, gpus, log, job_id, key) VALUES"
			   "  ('eval', 1, 'here', '0,1', 'e.log', 'v800:7.3.1-99/0,1', 'k1'),"
			   "  ('train', 1, 'here', '', 't.log', 'local/here/12/34/56/78/', 'k2'),"
			   "  ('big', 1, 'here', '', 'b.log', '4242', 'k3');"
			   "PRAGMA user_version = 8;",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	Buf err = {0}, open = {0};
	State *s = state_open("v8.db", 0, &err);
	CHECK(s != NULL);
	state_each_open_job(s, collect_open, &open);
	CHECK_CONTAINS(buf_str(&open), "eval ssh v800 0,1 7.3.1-99|");
	CHECK_CONTAINS(buf_str(&open), "train local here  local/here/12/34/56/78/|");
	CHECK_CONTAINS(buf_str(&open), "big slurm  ");
	state_close(s);
	buf_free(&open);
	buf_free(&err);
}

/* A zip archive (torch.save's format) cut anywhere before its end record reads as cut
 * short; whole ones (with or without an archive comment), other formats and missing files
 * do not; an empty file does. */
static void test_checkpoints_cut_short(void)
{
	static const unsigned char local[] = {'P', 'K', 3, 4, 20, 0, 0, 0, 0, 0, 'd', 'a', 't', 'a'};
	unsigned char eocd[22] = {'P', 'K', 5, 6};
	Buf zip = {0};
	buf_put(&zip, (const char *)local, sizeof local);
	for (int i = 0; i < 5000; i++)
		buf_putc(&zip, (char)(i * 7));
	buf_put(&zip, (const char *)eocd, sizeof eocd);
	CHECK(write_file_atomic("whole.pt", zip.data, zip.len) == 0);
	CHECK(!resume_file_cut("whole.pt"));
	for (size_t cut = 4; cut < zip.len; cut += zip.len / 7) { /* the save stopped there */
		CHECK(write_file_atomic("cut.pt", zip.data, cut) == 0);
		CHECK(resume_file_cut("cut.pt"));
	}
	eocd[20] = 5; /* a comment of 5 bytes after the record */
	zip.len -= sizeof eocd;
	buf_put(&zip, (const char *)eocd, sizeof eocd);
	buf_put(&zip, "hello", 5);
	CHECK(write_file_atomic("comment.pt", zip.data, zip.len) == 0);
	CHECK(!resume_file_cut("comment.pt"));
	CHECK(write_file_atomic("comment.pt", zip.data, zip.len - 2) == 0); /* its comment cut: so is it */
	CHECK(resume_file_cut("comment.pt"));
	CHECK(write_file_atomic("empty.pt", "", 0) == 0);
	CHECK(resume_file_cut("empty.pt"));
	/* JSON (trainer_state.json): whole when its top value's bracket closes it */
	CHECK(write_file_atomic("snap.json", "{\"epoch\": 3", 12) == 0);
	CHECK(resume_file_cut("snap.json"));
	CHECK(write_file_atomic("snap.json", "{\"epoch\": 3}\n", 13) == 0);
	CHECK(!resume_file_cut("snap.json"));
	CHECK(write_file_atomic("snap.json", "[1, 2]\n\n ", 9) == 0);
	CHECK(!resume_file_cut("snap.json"));
	CHECK(write_file_atomic("snap.json", "{\"a\": [1,\n", 11) == 0);
	CHECK(resume_file_cut("snap.json"));
	CHECK(write_file_atomic("snap.txt", "epoch 3 of", 10) == 0); /* not a format kiln can judge */
	CHECK(!resume_file_cut("snap.txt"));
	CHECK(!resume_file_cut("missing.pt"));
	CHECK(!resume_file_cut("."));
	buf_free(&zip);
}

/* A safetensors file (an 8-byte header length, the JSON header, the data its tensors'
 * data_offsets reach to) reads as cut short when it stops anywhere before its data's end;
 * the same bytes under another name are not judged. */
static void test_safetensors_cut_short(void)
{
	const char *json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16, 24]}}  ";
	Buf f = {0};
	unsigned char len[8] = {0};
	len[0] = (unsigned char)strlen(json);
	buf_put(&f, (const char *)len, 8);
	buf_puts(&f, json);
	for (int i = 0; i < 24; i++)
		buf_putc(&f, (char)i);
	CHECK(write_file_atomic("model.safetensors", f.data, f.len) == 0);
	CHECK(!resume_file_cut("model.safetensors"));
	for (size_t cut = 1; cut < f.len; cut += 7) {
		CHECK(write_file_atomic("model.safetensors", f.data, cut) == 0);
		CHECK(resume_file_cut("model.safetensors"));
		CHECK(write_file_atomic("model.bin", f.data, cut) == 0);
		CHECK(!resume_file_cut("model.bin"));
	}
	buf_free(&f);
}

/* A resume folder of Hugging Face-style checkpoints: the latest of a numbered series that
 * lacks a file the others all hold (a save stopped between its files) is removed, with a
 * note naming what it lacks; the one before it, a folder of another series, an earlier one
 * lacking a file, and a series of one stay; a checkpoint holding a cut file goes too. */
static void test_folder_checkpoints_cut_between_files(void)
{
	static const char *const full[] = {"model.bin", "optimizer.pt.json", "sub/rng.txt", "trainer_state.json"};
	const char *dirs[] = {"ck", "ck/checkpoint-9", "ck/checkpoint-10", "ck/checkpoint-11", "ck/checkpoint-11/sub",
			      "ck/checkpoint-9/sub", "ck/checkpoint-10/sub", "ck/best", "ck/epoch_1", "ck/cut-2"};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
		CHECK(mkdir(dirs[i], 0755) == 0);
	for (int i = 0; i < 4; i++) {
		char *p = xasprintf("ck/checkpoint-10/%s", full[i]), *q = xasprintf("ck/checkpoint-11/%s", full[i]);
		const char *whole = strstr(full[i], ".json") ? "{}" : "x"; /* a JSON file closes its bracket */
		CHECK(write_file_atomic(p, whole, strlen(whole)) == 0);
		if (i != 3) /* the latest stopped before trainer_state.json */
			CHECK(write_file_atomic(q, whole, strlen(whole)) == 0);
		if (i != 1) { /* an earlier one lacking optimizer.pt.json: it is not asked of the latest */
			free(p);
			p = xasprintf("ck/checkpoint-9/%s", full[i]);
			CHECK(write_file_atomic(p, whole, strlen(whole)) == 0);
		}
		free(p);
		free(q);
	}
	CHECK(write_file_atomic("ck/best/model.bin", "x", 1) == 0); /* another series */
	CHECK(write_file_atomic("ck/epoch_1/w.txt", "x", 1) == 0);         /* a series of one */
	CHECK(write_file_atomic("ck/cut-2/w.pt", "", 0) == 0);             /* cut short itself */
	Buf note = {0};
	resume_mend_folder("ck", &note);
	struct stat st;
	CHECK(stat("ck/checkpoint-11", &st) != 0);
	CHECK(stat("ck/cut-2", &st) != 0);
	CHECK(stat("ck/checkpoint-10/trainer_state.json", &st) == 0 && stat("ck/checkpoint-9", &st) == 0);
	CHECK(stat("ck/best", &st) == 0 && stat("ck/epoch_1", &st) == 0);
	CHECK(strstr(buf_str(&note), "ck/checkpoint-11 lacks trainer_state.json, which every checkpoint before it holds") != NULL);
	CHECK(strstr(buf_str(&note), "ck/cut-2/w.pt was cut short") != NULL);
	/* whole now: a second look removes nothing more, and one whose latest holds more is kept */
	CHECK(write_file_atomic("ck/checkpoint-10/extra.txt", "x", 1) == 0);
	buf_reset(&note);
	resume_mend_folder("ck", &note);
	CHECK(note.len == 0 && stat("ck/checkpoint-10", &st) == 0);
	buf_free(&note);
}

/* The first checkpoint of a run stopped between its files has no other to compare with:
 * the names Hugging Face's Trainer and torch.distributed.checkpoint give their files tell. */
static void test_lone_hf_checkpoint_stopped_between_files(void)
{
	const char *dirs[] = {"hf", "hf/checkpoint-500", "hf/checkpoint-x1", "hf/mine-500", "hfw", "hfw/checkpoint-7",
			      "hf/step-100", "hfw/step-50"};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
		CHECK(mkdir(dirs[i], 0755) == 0);
	CHECK(write_file_atomic("hf/checkpoint-500/config.json", "{}", 2) == 0);
	CHECK(write_file_atomic("hf/checkpoint-500/training_args.bin", "x", 1) == 0);
	CHECK(write_file_atomic("hf/checkpoint-500/optimizer.pt.json", "{}", 2) == 0);
	/* its trainer_state.json stopped mid-write: cut short */
	CHECK(mkdir("hf/checkpoint-600", 0755) == 0);
	CHECK(write_file_atomic("hf/checkpoint-600/training_args.bin", "x", 1) == 0);
	CHECK(write_file_atomic("hf/checkpoint-600/trainer_state.json", "{\n  \"global_step\": 6", 20) == 0);
	/* not the Trainer's names: kept as they are */
	CHECK(write_file_atomic("hf/checkpoint-x1/training_args.bin", "x", 1) == 0);
	CHECK(write_file_atomic("hf/mine-500/training_args.bin", "x", 1) == 0);
	/* torch.distributed.checkpoint: each rank's .distcp, then .metadata */
	CHECK(write_file_atomic("hf/step-100/__0_0.distcp", "x", 1) == 0);
	CHECK(write_file_atomic("hf/step-100/__1_0.distcp", "x", 1) == 0);
	CHECK(write_file_atomic("hfw/step-50/__0_0.distcp", "x", 1) == 0);
	CHECK(write_file_atomic("hfw/step-50/.metadata", "x", 1) == 0);
	Buf note = {0};
	resume_mend_folder("hf", &note);
	struct stat st;
	CHECK(stat("hf/step-100", &st) != 0);
	CHECK(strstr(buf_str(&note), "hf/step-100 holds .distcp files but no .metadata") != NULL);
	CHECK(stat("hf/checkpoint-500", &st) != 0);
	CHECK(stat("hf/checkpoint-x1", &st) == 0 && stat("hf/mine-500", &st) == 0);
	CHECK(strstr(buf_str(&note), "hf/checkpoint-500 holds training_args.bin but no trainer_state.json") != NULL);
	CHECK(stat("hf/checkpoint-600", &st) != 0);
	CHECK(strstr(buf_str(&note), "hf/checkpoint-600/trainer_state.json was cut short") != NULL);
	/* a whole one, alone too, is kept */
	CHECK(write_file_atomic("hfw/checkpoint-7/training_args.bin", "x", 1) == 0);
	CHECK(write_file_atomic("hfw/checkpoint-7/trainer_state.json", "{}", 2) == 0);
	buf_reset(&note);
	resume_mend_folder("hfw", &note);
	CHECK(note.len == 0 && stat("hfw/checkpoint-7", &st) == 0 && stat("hfw/step-50", &st) == 0);
	buf_free(&note);
}

/* The loader's size hint: what was written reads back; a line cut short, garbage, an
 * absurd count or no file at all read as no hint (the tables then grow). */
static void test_size_hint(void)
{
	sizehint_write("sizes", (SizeHint){2000002, 1000003});
	SizeHint h = sizehint_read("sizes");
	CHECK(h.memo == 2000002 && h.last == 1000003);
	const char *bad[] = {"memo 2000002 last 1000003", "memo 12 last", "garbage\n", "memo -5 last 3\n",
			     "memo 99999999999999 last 3\n", ""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		write_text("sizes", bad[i]);
		h = sizehint_read("sizes");
		CHECK(h.memo == 0 && h.last == 0);
	}
	unlink("sizes");
	h = sizehint_read("sizes");
	CHECK(h.memo == 0 && h.last == 0);
}

int main(void)
{
	char dir[] = "/tmp/kiln-cache-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	CHECK(chdir(dir) == 0);
	test_keys_verdicts_and_store();
	test_store_verifies_what_it_restores();
	test_state_errors_and_outputs_text();
	test_migration_to_host_columns();
	test_checkpoints_cut_short();
	test_safetensors_cut_short();
	test_folder_checkpoints_cut_between_files();
	test_lone_hf_checkpoint_stopped_between_files();
	test_size_hint();
	CHECK(chdir("/") == 0);
	remove_tree(dir);
	return check_exit();
}
