/* test_util.c — parsing of durations and sizes, buffers, the string map, hashes, paths,
 * the small-block pool. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../base/hash.h"
#include "../../base/keytable.h"
#include "../../base/os.h"
#include "../../base/graph.h"
#include "../../base/pool.h"
#include "../../base/untar.h"
#include "../../base/util.h"
#include "check.h"
#include <limits.h>
#include <stdarg.h>

int __wrap___snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...);

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static void count_visit(void *ctx, size_t i) { atomic_fetch_add(&((_Atomic int *)ctx)[i], 1); }

/* The pool under Lua's usage: blocks made, grown, shrunk across the small/large boundary
 * and freed in a random order, each filled with its own byte: a block that two callers
 * share, or a resize that loses bytes, shows as a wrong byte. */
static int pool_keeps_blocks_apart(void)
{
	enum { SLOTS = 512, STEPS = 200000 };
	Pool pool = {0};
	unsigned char *block[SLOTS] = {0};
	size_t size[SLOTS] = {0};
	unsigned seed = 12345, wrong = 0;
	for (int step = 0; step < STEPS; step++) {
		seed = seed * 1103515245u + 12345u;
		int i = (int)((seed >> 8) % SLOTS);
		size_t want = (seed >> 20) % 5 == 0 ? 0 : 1 + (seed >> 12) % (POOL_SMALL + 200);
		for (size_t k = 0; k < size[i]; k++) /* its bytes are still its own */
			wrong += block[i][k] != (unsigned char)i;
		block[i] = pool_realloc(&pool, block[i], size[i], want);
		if (want && !block[i])
			return -1;
		for (size_t k = 0; k < want && k < size[i]; k++) /* kept across the resize */
			wrong += block[i][k] != (unsigned char)i;
		if (want)
			memset(block[i], i, want);
		size[i] = want;
	}
	for (int i = 0; i < SLOTS; i++)
		pool_realloc(&pool, block[i], size[i], 0);
	pool_free(&pool);
	return (int)wrong;
}

/* A million-item recipe's worth: small blocks over chunks that grow to 4 MiB (huge pages)
 * and a large block grown by doubling past 4 MiB, as Lua's string table is; every block
 * keeps its bytes, and pool_free gives chunks of every size back (ASan: no leak). */
static int pool_grows_chunks_and_large_blocks(void)
{
	enum { SMALL = 300000 };
	Pool pool = {0};
	unsigned char **small = malloc(SMALL * sizeof *small);
	unsigned wrong = 0;
	size_t big_size = 1024;
	unsigned char *big = pool_realloc(&pool, NULL, 0, big_size);
	memset(big, 7, big_size);
	for (int i = 0; i < SMALL; i++) {
		size_t n = 16 + (size_t)(i % 5) * 16;
		small[i] = pool_realloc(&pool, NULL, 0, n);
		memset(small[i], i & 0xff, n);
		if ((i & (i - 1)) == 0 && big_size < (16u << 20)) { /* doubling, as tables grow */
			big = pool_realloc(&pool, big, big_size, big_size * 2);
			memset(big + big_size, 7, big_size);
			big_size *= 2;
		}
	}
	for (int i = 0; i < SMALL; i++)
		for (size_t k = 0; k < 16 + (size_t)(i % 5) * 16; k++)
			wrong += small[i][k] != (unsigned char)(i & 0xff);
	for (size_t k = 0; k < big_size; k++)
		wrong += big[k] != 7;
	for (int i = 0; i < SMALL; i++)
		pool_realloc(&pool, small[i], 16 + (size_t)(i % 5) * 16, 0);
	pool_realloc(&pool, big, big_size, 0);
	pool_free(&pool);
	free(small);
	return big_size >= (8u << 20) ? (int)wrong : -1;
}

/* What `tar cf` (GNU tar, its default format) makes, unpacked here: long names, a directory,
 * links, an empty and a large file, the members' times; then a stream with a member that
 * climbs out (refused, nothing written), and a damaged one. */
static void test_untar(void)
{
	char dir[] = "/tmp/kiln-untar-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *cmd = xasprintf(
	    "cd %s && mkdir -p src/sub/a-directory-name-that-is-rather-long-to-pass-one-hundred-bytes-of-path-x/deep && "
	    "cd src && printf hello > sub/a.txt && : > empty && head -c 300000 /dev/urandom > big && "
	    "printf long > sub/a-directory-name-that-is-rather-long-to-pass-one-hundred-bytes-of-path-x/deep/f.txt && "
	    "ln -s a.txt sub/link && ln big hard && touch -d '2001-02-03 04:05:06' sub/a.txt && "
	    "tar cf ../t.tar sub empty big hard && printf '../escape' > ../evil.name", dir);
	CHECK(system(cmd) == 0);
	free(cmd);
	char *tarpath = xasprintf("%s/t.tar", dir), *out = xasprintf("%s/out", dir);
	int fd = open(tarpath, O_RDONLY);
	Buf err = {0};
	CHECK(fd >= 0 && untar_fd(fd, out, &err) == 0);
	if (err.len)
		fprintf(stderr, "untar: %s\n", buf_str(&err));
	close(fd);
	cmd = xasprintf("cd %s && cmp src/big out/big && cmp src/sub/a.txt out/sub/a.txt && [ -f out/empty ] && "
			"[ ! -s out/empty ] && [ \"$(readlink out/sub/link)\" = a.txt ] && cmp out/hard out/big && "
			"cmp src/sub/a-directory-name-that-is-rather-long-to-pass-one-hundred-bytes-of-path-x/deep/f.txt "
			"out/sub/a-directory-name-that-is-rather-long-to-pass-one-hundred-bytes-of-path-x/deep/f.txt", dir);
	CHECK(system(cmd) == 0);
	free(cmd);
	char *a = xasprintf("%s/out/sub/a.txt", dir);
	struct stat st;
	CHECK(stat(a, &st) == 0 && st.st_mtime == 981173106); /* 2001-02-03 04:05:06 UTC */
	free(a);
	/* a hand-made header naming ../escape: refused before anything is written */
	unsigned char h[1024] = {0};
	memcpy(h, "../escape", 9);
	memcpy(h + 100, "0000644", 7);
	memcpy(h + 124, "00000000005", 11);
	memcpy(h + 136, "00000000000", 11);
	h[156] = '0';
	memcpy(h + 257, "ustar", 5);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	memcpy(h + 512, "boom!", 5);
	char *evil = xasprintf("%s/evil.tar", dir);
	CHECK(write_file_atomic(evil, h, sizeof h) == 0);
	fd = open(evil, O_RDONLY);
	buf_reset(&err);
	CHECK(fd >= 0 && untar_fd(fd, out, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "refused");
	close(fd);
	char *escaped = xasprintf("%s/escape", dir);
	CHECK(access(escaped, F_OK) != 0);
	/* one flipped byte in a header: the checksum says so */
	h[0] = '.', h[1] = 'x';
	CHECK(write_file_atomic(evil, h, sizeof h) == 0);
	fd = open(evil, O_RDONLY);
	buf_reset(&err);
	CHECK(fd >= 0 && untar_fd(fd, out, &err) == -1);
	CHECK_CONTAINS(buf_str(&err), "checksum");
	close(fd);
	buf_free(&err);
	free(escaped);
	free(evil);
	free(tarpath);
	free(out);
	remove_tree(dir);
}

/* A stop reaches each process of a group once. A group led by a torchrun agent (here a
 * script called torchrun, forwarding SIGTERM to its two workers as torchrun does): the
 * workers are left to it, each told once, not twice (once by it, once by the group). */
static void test_signal_group(void)
{
	char dir[] = "/tmp/kiln-unit-sig-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *agent = xasprintf("%s/torchrun", dir), *worker = xasprintf("%s/worker", dir);
	const char *agent_text = "trap 'kill -TERM $a $b' TERM\n"
				 "sh \"$(dirname \"$0\")/worker\" a & a=$!\nsh \"$(dirname \"$0\")/worker\" b & b=$!\n"
				 "while kill -0 $a 2>/dev/null || kill -0 $b 2>/dev/null; do sleep 0.02; done\n";
	const char *worker_text = "cd \"$(dirname \"$0\")\"; trap 'echo term >> told.$1' TERM; touch ready.$1\n"
				  "while :; do sleep 0.02; done\n";
	CHECK(write_file_atomic(agent, agent_text, strlen(agent_text)) == 0);
	CHECK(write_file_atomic(worker, worker_text, strlen(worker_text)) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", agent, (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0);
	char *ready_a = xasprintf("%s/ready.a", dir), *ready_b = xasprintf("%s/ready.b", dir);
	for (int i = 0; i < 500 && (access(ready_a, F_OK) || access(ready_b, F_OK)); i++)
		usleep(10000);
	CHECK(os_signal_attempt(pid, SIGTERM) == 0);
	char *told_a = xasprintf("%s/told.a", dir), *told_b = xasprintf("%s/told.b", dir);
	for (int i = 0; i < 500 && (access(told_a, F_OK) || access(told_b, F_OK)); i++)
		usleep(10000); /* each worker's trap has run (on a loaded machine, in a while) */
	free(told_a), free(told_b);
	usleep(500000); /* and a second one would have too */
	for (const char *w = "ab"; *w; w++) {
		char *told = xasprintf("%s/told.%c", dir, *w);
		size_t len = 0;
		char *text = read_file(told, &len);
		CHECK(text && !strcmp(text, "term\n"));
		free(text);
		free(told);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	free(ready_a), free(ready_b), free(agent), free(worker);
	remove_tree(dir);
}

/* An attempt is its leader's session: a process that moved to a group of its own inside it
 * (as GNU timeout does with its command) is still the attempt's — alive, and killed with
 * it — and a subreaper finds it among its children. */
static void test_attempt_is_its_session(void)
{
	CHECK(os_become_subreaper() == 0);
	int ready[2];
	CHECK(pipe(ready) == 0);
	pid_t leader = fork();
	if (leader == 0) { /* the leader: a session, a child in a group of its own, then gone */
		setsid();
		close(ready[0]);
		if (fork() == 0) {
			setpgid(0, 0);
			CHECK(write(ready[1], "x", 1) == 1);
			for (;;)
				pause();
		}
		_exit(0);
	}
	close(ready[1]);
	char c;
	CHECK(read(ready[0], &c, 1) == 1);
	close(ready[0]);
	CHECK(waitpid(leader, NULL, 0) == leader);
	CHECK(kill(-leader, 0) != 0); /* the leader's group is gone: by groups, it ended */
	pid_t hint = 0;
	CHECK(os_attempt_alive(leader, &hint) == 1);
	CHECK(hint > 0 && hint != leader);
	CHECK(os_children_in_session(leader) == 1); /* orphaned: this subreaper's child */
	CHECK(os_signal_attempt(leader, SIGKILL) == 0);
	CHECK(waitpid(hint, NULL, 0) == hint);
	CHECK(os_attempt_alive(leader, &hint) == 0);
	CHECK(os_children_in_session(leader) == 0);
	CHECK(os_signal_attempt(leader, SIGTERM) == -1 && errno == ESRCH);
}

int main(void)
{
	test_untar();
	test_signal_group();
	test_attempt_is_its_session();
	CHECK(parse_duration("30") == 30);
	CHECK(parse_duration("90s") == 90);
	CHECK(parse_duration("5m") == 300);
	CHECK(parse_duration("1h30m") == 5400);
	CHECK(parse_duration("2h") == 7200);
	CHECK(parse_duration("soon") < 0);
	CHECK(parse_duration("5x") < 0);
	CHECK(parse_duration("") < 0);
	CHECK(parse_duration("1h30") < 0);

	CHECK(parse_size_mib("512") == 512);
	CHECK(parse_size_mib("512M") == 512);
	CHECK(parse_size_mib("16G") == 16384);
	CHECK(parse_size_mib("1e308G") == -1); /* past any machine: refused, not converted (UB) */
	CHECK(parse_size_mib("nan") == -1);
	CHECK(parse_size_mib("inf") == -1);
	CHECK(parse_size_mib("1T") == 1048576);
	CHECK(parse_size_mib("1.5G") == 1536);
	CHECK(parse_size_mib("lots") < 0);

	/* a KILN_PROGRESS file's last complete reading: an unfinished last line (its writer is
	 * mid-way, "12/1" of "12/16") and lines of other words do not count */
	long long done = -1, total = -1;
	const char *progress = "1/16\n2/16 loss 0.5\nloading\n12/1";
	CHECK(text_last_fraction(progress, strlen(progress), &done, &total) && done == 2 && total == 16);
	CHECK(!text_last_fraction("12/16", 5, &done, &total));
	CHECK(!text_last_fraction("x\n0/0\n-1/5\n", 12, &done, &total));
	CHECK(text_last_fraction("0/5\n\n", 5, &done, &total) && done == 0 && total == 5);

	Buf b = {0};
	CHECK_STR(buf_str(&b), "");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	CHECK(b.len == strlen(b.data));
	CHECK_CONTAINS(b.data, "999,");
	buf_free(&b);

	StrMap m = {0};
	char keys[2000][8];
	for (int i = 0; i < 2000; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		strmap_put(&m, keys[i], (void *)(long)(i + 1));
	}
	CHECK(m.count == 2000);
	CHECK(strmap_get(&m, "k1234") == (void *)1235L);
	CHECK(strmap_get(&m, "nope") == NULL);
	CHECK(strmap_put(&m, "k5", (void *)7L) == (void *)6L);
	CHECK(m.count == 2000);
	CHECK(strmap_put_new(&m, "k5", (void *)9L) == (void *)7L); /* present: kept */
	CHECK(strmap_get(&m, "k5") == (void *)7L);
	CHECK(strmap_put_new(&m, "new", (void *)9L) == NULL);
	CHECK(strmap_get(&m, "new") == (void *)9L && m.count == 2001);
	size_t seen = 0, at = 0;
	const char *key;
	void *val;
	while (strmap_next(&m, &at, &key, &val))
		seen += strmap_get(&m, key) == val;
	CHECK(seen == 2001);
	strmap_free(&m);
	strmap_reserve(&m, 5000); /* no rehash while filling */
	size_t cap = m.cap;
	for (int i = 0; i < 2000; i++)
		strmap_put(&m, keys[i], keys[i]);
	CHECK(m.cap == cap && strmap_get(&m, "k1999") == keys[1999]);
	strmap_free(&m);

	/* a key table: entries numbered as added, found by the key they carry; past 65536
	 * entries a second chunk, whose first entries stay where they were */
	typedef struct {
		const char *key;
		int n;
	} Entry;
	enum { NENTRIES = 70000 };
	KeyTable *kt = calloc(1, sizeof *kt);
	Entry *entries = calloc(NENTRIES + 1, sizeof *entries);
	char (*names)[12] = calloc(NENTRIES + 1, sizeof *names);
	ktable_reserve(kt, 100);
	for (int i = 0; i < NENTRIES; i++) {
		snprintf(names[i], sizeof names[i], "e%d", i);
		entries[i] = (Entry){names[i], i};
		CHECK(ktable_add(kt, &entries[i], hash_str(names[i])) == NULL);
	}
	CHECK(kt->count == NENTRIES && ktable_at(kt, 0) == &entries[0] && ktable_at(kt, 65537) == &entries[65537]);
	Entry *found = ktable_get(kt, "e65999");
	CHECK(found && found->n == 65999);
	CHECK(ktable_get(kt, "e70000") == NULL && ktable_get(kt, "") == NULL);
	entries[NENTRIES] = (Entry){"e12", -1}; /* an equal key: the present entry, table unchanged */
	CHECK(ktable_add(kt, &entries[NENTRIES], hash_str("e12")) == &entries[12] && kt->count == NENTRIES);
	ktable_prefetch(kt, hash_str("e7"), 0);
	ktable_prefetch(kt, hash_str("e7"), 1);
	CHECK(ktable_get_hashed(kt, "e7", hash_str("e7")) == &entries[7]);
	ktable_free(kt);
	CHECK(kt->count == 0 && ktable_get(kt, "e7") == NULL);
	/* appended (keys known distinct), with the key's text right behind each record: numbered
	 * and readable at once, found once the appends are done, from no reserve (it grows
	 * while entries are pending), every one of them */
	typedef struct {
		int n;
		char key[12]; /* at key_at */
	} Inline;
	Inline *inl = calloc(NENTRIES, sizeof *inl);
	kt->key_at = offsetof(Inline, key);
	for (int i = 0; i < NENTRIES; i++) {
		inl[i].n = i;
		snprintf(inl[i].key, sizeof inl[i].key, "e%d", i);
		ktable_append(kt, &inl[i], hash_str(inl[i].key));
		CHECK(ktable_at(kt, (size_t)i) == &inl[i]);
	}
	ktable_append_done(kt);
	int all = kt->count == NENTRIES;
	for (int i = 0; i < NENTRIES; i++)
		all &= ktable_get(kt, inl[i].key) == &inl[i];
	CHECK(all && ktable_get(kt, "e70000") == NULL);
	Inline dup = {-1, "e5"}; /* an equal key found through the text behind the record */
	CHECK(ktable_add(kt, &dup, hash_str(dup.key)) == &inl[5] && kt->count == NENTRIES);
	ktable_free(kt);
	free(inl);
	free(kt);
	free(entries);
	free(names);

	/* base/intfmt.c: "%lld" written digit by digit is what printf writes; anything else
	 * (another format, too little room) is printf's own answer */
	long long values[] = {0, 7, -7, 9, 10, -10, 11, 99, -99, 100, 101, -100, 999, 1000, 99999, 100000, 1234567890123LL,
			      1000000000000000000LL, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
	for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
		char fast[44], slow[44];
		int nf = __wrap___snprintf_chk(fast, sizeof fast, 1, sizeof fast, "%lld", values[i]);
		int ns = snprintf(slow, sizeof slow, "%lld", values[i]);
		CHECK(nf == ns && !strcmp(fast, slow));
	}
	char small[8], num[44];
	CHECK(__wrap___snprintf_chk(small, sizeof small, 1, sizeof small, "%lld", 123456789012LL) == 12 &&
	      !strcmp(small, "1234567")); /* truncated as snprintf truncates */
	CHECK(__wrap___snprintf_chk(num, sizeof num, 1, sizeof num, "%.14g", 0.1) == 3 && !strcmp(num, "0.1"));
	CHECK(__wrap___snprintf_chk(num, sizeof num, 1, sizeof num, "%5lld", 42LL) == 5 && !strcmp(num, "   42"));

	Hash h = hash_bytes("kiln", 4), back;
	char hex[33];
	hash_hex(h, hex);
	CHECK(hash_parse(hex, &back) == 0 && hash_equal(h, back));
	CHECK(hash_parse("0123456789abcdef0123456789abcdeg", &back) == -1); /* not hex */
	CHECK(hash_parse("0123456789ABCDEF0123456789abcdef", &back) == -1); /* upper case is not ours */
	CHECK(hash_parse("0123", &back) == -1);                              /* short */
	CHECK(hash_parse("000000000000000100000000000000ff", &back) == 0 && back.hi == 1 && back.lo == 255);
	hash_hex((Hash){.hi = 0x0123456789abcdefULL, .lo = 0xfedcba9876543210ULL}, hex); /* hi first, every digit */
	CHECK(!strcmp(hex, "0123456789abcdeffedcba9876543210"));
	hash_hex((Hash){.hi = 0, .lo = 0xff00ULL}, hex);
	CHECK(!strcmp(hex, "0000000000000000000000000000ff00"));

	/* a file hashes as its bytes, whether it fits one read or streams through several */
	static char big[300000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7 + i / 1000);
	char path[] = "/tmp/kiln-test-hash-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	for (size_t len = 0; fd >= 0 && len <= sizeof big; len = len ? len * 4 : 1) {
		size_t n = len > sizeof big ? sizeof big : len;
		CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, big, n, 0) == (ssize_t)n);
		Hash file;
		CHECK(hash_file(path, &file) == 0 && hash_equal(file, hash_bytes(big, n)));
	}
	CHECK(pwrite(fd, big, 65536, 0) == 65536 && ftruncate(fd, 65536) == 0); /* exactly one buffer */
	CHECK(hash_file(path, &back) == 0 && hash_equal(back, hash_bytes(big, 65536)));
	unlink(path);
	close(fd);
	CHECK(hash_file(path, &back) == -1);

	/* remove_tree removes a tree, and a symlink in it without following it */
	char top[] = "/tmp/kiln-test-tree-XXXXXX";
	CHECK(mkdtemp(top) != NULL);
	char *sub = xasprintf("%s/a/b", top), *f = xasprintf("%s/a/b/f", top), *keep = xasprintf("%s.keep", top),
	     *link = xasprintf("%s/a/l", top);
	CHECK(mkdirs(sub, 0777) == 0 && write_file_atomic(f, "x", 1) == 0 && write_file_atomic(keep, "k", 1) == 0);
	CHECK(symlink(keep, link) == 0);
	CHECK(remove_tree(top) == 0);
	CHECK(access(top, F_OK) != 0 && access(keep, F_OK) == 0);
	CHECK(remove_tree(top) == 0); /* already gone */
	CHECK(remove_tree(keep) == 0 && access(keep, F_OK) != 0);
	free(sub), free(f), free(keep), free(link);

	/* read_file_tail: the last bytes of a file, where they began, all of a short one */
	char tailf[] = "/tmp/kiln-test-tail-XXXXXX";
	int tfd = mkstemp(tailf);
	CHECK(tfd >= 0 && write(tfd, "0123456789", 10) == 10);
	size_t tlen;
	long long tfrom;
	char *tail = read_file_tail(tailf, 4, &tlen, &tfrom);
	CHECK(tail && tlen == 4 && !strcmp(tail, "6789") && tfrom == 6);
	free(tail);
	tail = read_file_tail(tailf, 64, &tlen, &tfrom);
	CHECK(tail && tlen == 10 && !strcmp(tail, "0123456789") && tfrom == 0);
	free(tail);
	close(tfd);
	unlink(tailf);
	CHECK(read_file_tail(tailf, 4, &tlen, NULL) == NULL && errno == ENOENT);

	/* parallel_for visits every index exactly once */
	static _Atomic int visits[10000];
	parallel_for(10000, 7, 5, count_visit, visits);
	int once = 0;
	for (int i = 0; i < 10000; i++)
		once += visits[i] == 1;
	CHECK(once == 10000);

	Graph *g = graph_new("/work/space");
	CHECK_STR(graph_norm_path(g, "./a//b/"), "a/b");
	CHECK_STR(graph_norm_path(g, "a/./b/../c"), "a/c");
	CHECK_STR(graph_norm_path(g, "/work/space/x/y"), "x/y");
	CHECK_STR(graph_norm_path(g, "/work/spacey/x"), "/work/spacey/x");
	CHECK_STR(graph_norm_path(g, "../up/x"), "../up/x");
	CHECK_STR(graph_norm_path(g, "a/../../b"), "../b");
	CHECK_STR(graph_norm_path(g, "/work/space"), ".");
	/* a path called normal is one graph_norm_path leaves as it is (some it leaves are
	 * not called so: "../up/x" goes the long way) */
	const char *paths[] = {"a", "a/b.txt", "leaf/12.txt", "/abs/x", "/", "", ".", "..", "./a", "a/.", "a/..",
			       "a//b", "a/b/", "/work/space", "/work/space/x", "/work/spacey", ".a/b", "a/..b", "a/.b/c"};
	int normal[] = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		CHECK(graph_path_is_normal(g, paths[i]) == normal[i]);
		if (normal[i])
			CHECK_STR(graph_norm_path(g, paths[i]), paths[i]);
	}
	graph_free(g);

	CHECK(pool_keeps_blocks_apart() == 0);
	CHECK(pool_grows_chunks_and_large_blocks() == 0);

	char d[32];
	format_duration(0.42, d, sizeof d);
	CHECK_STR(d, "0.4s");
	format_duration(185, d, sizeof d);
	CHECK_STR(d, "3m05s");
	return check_exit();
}
