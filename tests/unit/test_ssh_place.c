/* test_ssh_place.c — the ssh executor's host choice over the fake os layer (os_fake.c):
 * hosts answer scripted ssh commands (their workdir, cores, memory and nvidia-smi
 * readings, or a refused connection), and placement must lease a free device on a host
 * that answers, pass over a busy device and a down host, and say so in its counts; a
 * refresh takes the readings the one before started (it never waits on the host), and
 * none is asked for while every device there is leased. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../cache/cache.h"
#include "../../runner/exec/exec.h"
#include "../../runner/exec/ssh/ssh_host.h"
#include "../../runner/exec/ssh/ssh_place.h"
#include "../../runner/recipe/recipe.h"
#include "check.h"
#include "os_fake.h"

static const char recipe[] =
	"hosts { v800 = { address = 'u@v800' }, v801 = { address = 'u@v801' } }\n"
	"task { name = 'one', run = 'train', gpus = 1 }\n"
	"task { name = 'two', run = 'train', gpus = 2 }\n"
	"task { name = 'pinned', run = 'train', gpus = 1, host = 'v801' }\n";

/* v800: 16 cores, 64 GB, device 0 busy (95 % utilised), device 1 idle (until a test fills
 * its memory). v801 refuses. */
/* Waits (2 s at most) until the answer to r's question can be read. */
static void answered(const SshReader *r)
{
	struct pollfd p = {r->out_fd, POLLIN, 0};
	poll(&p, 1, 2000);
}

static const char *readings = "0, 81559, 75000, 95\n1, 81559, 100, 0\n";
static int answer(char *const argv[], Buf *out, Buf *err)
{
	int n = 0;
	while (argv[n])
		n++;
	int v801 = 0, control = 0;
	for (int i = 0; i < n; i++) {
		v801 |= !strcmp(argv[i], "u@v801");
		control |= !strcmp(argv[i], "-O");
	}
	if (v801) {
		if (err)
			buf_puts(err, "ssh: connect to host v801 port 22: Connection refused\n");
		return 255;
	}
	if (control)
		return 0; /* the master connection is up */
	const char *remote = argv[n - 1];
	if (out && strstr(remote, "mkdir -p"))
		buf_printf(out, "/home/u/kiln-work\n16\n64000\ntools \n%s", readings); /* no tools there yet */
	else if (out && strstr(remote, "nvidia-smi"))
		buf_puts(out, readings);
	return 0;
}

static int count_of(const char *s, const char *word)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, word)); p += strlen(word))
		n++;
	return n;
}

int main(void)
{
	char dir[] = "/tmp/kiln-place-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	CHECK(chdir(dir) == 0);
	fake_reset();
	fake_run = answer;
	Graph *g = graph_new(dir);
	Buf err = {0};
	CHECK(write_file_atomic("kiln.lua", recipe, strlen(recipe)) == 0);
	const ExecutorKind *ssh = exec_kind("ssh");
	RecipeBlock blocks[] = {{ssh->block, ssh->read_block}, {NULL, NULL}};
	RecipeLoad lo = {.executors = exec_kind_list(), .blocks = blocks};
	CHECK(recipe_load(g, "kiln.lua", &lo, &err) == 0);
	CHECK(graph_resolve(g, NULL, NULL, &err) == 0);
	CHECK(ssh->check(g, &err) == 0);
	const RecipeHosts *block = graph_block(g, "hosts");
	CHECK(block && block->n == 2 && !strcmp(block->hosts[0].name, "v800"));
	CacheOptions copt = {.store_max_mib = 16};
	Cache *c = cache_open(".kiln", g, &copt, &err);
	CHECK(c && cache_loaded(c, &err) == 0);
	SshHost hosts[2] = {{0}};
	for (int i = 0; i < 2; i++) {
		hosts[i].spec = &block->hosts[i];
		hosts[i].control_path = xasprintf("ControlPath=%s/%s.sock", dir, block->hosts[i].name);
	}

	/* v800's first contact reads its devices; while kiln leases every one of them no reading
	 * can make room, so none is asked for (its refresh is due: none has been made) */
	const Task *one = graph_find(g, "one"), *two = graph_find(g, "two"), *pinned = graph_find(g, "pinned");
	int reachable = 0, big = 0, ids[64], both[2] = {0, 1};
	SshHost *first = &hosts[0];
	ssh_hosts_connect(&first, 1, 0.5, 0.7);
	CHECK(gpu_count(hosts[0].gpus) == 2);
	gpu_lease_ids(hosts[0].gpus, both, 2);
	int asked = count_of(fake_run_log(), "nvidia-smi");
	CHECK(!place_fits(&hosts[0], one, ids));
	CHECK(count_of(fake_run_log(), "nvidia-smi") == asked && !ssh_reader_busy(&hosts[0].gpu_read));
	gpu_release(hosts[0].gpus, both, 2);

	/* one device: v800, device 1 (0 is busy); v801 does not answer */
	SshHost *h = place_choose(c, hosts, 2, one, 0.5, 0.7, &reachable, &big);
	CHECK(h == &hosts[0]);
	CHECK(reachable == 1 && big == 1);
	CHECK(hosts[0].cpus == 16 && hosts[0].mem_mib == 64000 && gpu_count(hosts[0].gpus) == 2);
	CHECK_STR(hosts[0].home_workdir, "/home/u/kiln-work");
	CHECK(hosts[1].failures_in_a_row == 1);
	CHECK_CONTAINS(hosts[1].last_error, "Connection refused");
	CHECK(h && place_fits(h, one, ids) && ids[0] == 1);

	/* two devices: v800 has two, but one is busy and the other now leased: nowhere */
	reachable = big = 0;
	CHECK(place_choose(c, hosts, 2, two, 0.5, 0.7, &reachable, &big) == NULL);
	CHECK(big == 1);
	gpu_release(hosts[0].gpus, ids, 1);

	/* a refresh takes the reading the refresh before started in the background, and starts
	 * the next: device 1's memory filled by someone else shows one refresh later */
	readings = "0, 81559, 75000, 95\n1, 81559, 80000, 0\n";
	gpu_refresh(hosts[0].gpus, 1);
	CHECK(ssh_reader_busy(&hosts[0].gpu_read));
	CHECK(place_fits(&hosts[0], one, ids) && ids[0] == 1); /* the readings before */
	gpu_release(hosts[0].gpus, ids, 1);
	pid_t shell = hosts[0].gpu_read.pid;
	answered(&hosts[0].gpu_read);
	gpu_refresh(hosts[0].gpus, 1);
	CHECK(!place_fits(&hosts[0], one, ids));
	readings = "0, 81559, 75000, 95\n1, 81559, 100, 0\n";
	answered(&hosts[0].gpu_read); /* the reading asked before the change */
	gpu_refresh(hosts[0].gpus, 1);
	answered(&hosts[0].gpu_read);
	gpu_refresh(hosts[0].gpus, 1);
	/* every reading went to the one shell kept there: no ssh command of its own */
	CHECK(hosts[0].gpu_read.pid == shell && shell > 0);
	CHECK(place_fits(&hosts[0], one, ids) && ids[0] == 1);

	gpu_release(hosts[0].gpus, ids, 1);

	/* pinned to the host that refuses: nowhere, and no host it may use answered */
	reachable = big = 0;
	CHECK(place_choose(c, hosts, 2, pinned, 0.5, 0.7, &reachable, &big) == NULL);
	CHECK(reachable == 0);
	CHECK(hosts[1].down == 1); /* refused twice in a row: down, with a back-off */

	/* every ssh went through the os layer, to the addresses of hosts{} */
	CHECK_CONTAINS(fake_run_log(), "u@v800");
	CHECK_CONTAINS(fake_run_log(), "u@v801");
	for (int i = 0; i < 2; i++)
		ssh_host_free(&hosts[i]);
	cache_close(c);
	graph_free(g);
	buf_free(&err);
	CHECK(chdir("/") == 0);
	remove_tree(dir);
	return check_exit();
}
