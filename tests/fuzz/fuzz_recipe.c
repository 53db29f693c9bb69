/* fuzz_recipe.c — libFuzzer harness for the recipe loader with its sandbox on: any text,
 * run as a recipe, must load or fail with a message, without crashes, leaks, writes or
 * endless loads (the load watch stops one after 0.3 s; Lua may hold 256 MiB); what loads is
 * then resolved (indexes, edges, inputs stat'ed, cycles), which must succeed or say why. The recipe
 * lies in a directory of its own (its require() path); the harness stays where libFuzzer
 * started it, whose corpus paths are relative. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runner/recipe/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/kiln-fuzz-recipe-XXXXXX";
static char path[sizeof dir + 16];

/* the recipe file and its directory go when the process ends */
static void remove_dir(void)
{
	remove(path);
	remove(dir);
}

static int two_gpus(void *ctx)
{
	(void)ctx;
	return 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int made; /* not dir's last letter: mkdtemp may leave an X there */
	if (!made) {
		if (!mkdtemp(dir)) {
			perror(dir);
			abort();
		}
		made = 1;
		snprintf(path, sizeof path, "%s/kiln.lua", dir);
		atexit(remove_dir);
	}
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		perror(path); /* no finding of the loader's: the harness could not write its input */
		abort();
	}
	Graph *g = graph_new(dir);
	Buf err = {0};
	RecipeLoad lo = {.count_gpus = two_gpus, .timeout_sec = 0.3, .max_bytes = 256u << 20, .wait_when_stuck = 1};
	int rc = recipe_load(g, path, &lo, &err);
	if (rc != 0 && !err.len)
		abort(); /* a failure always says why */
	if (rc == 0 && graph_resolve(g, NULL, NULL, &err) != 0 && !err.len)
		abort();
	buf_free(&err);
	graph_free(g);
	return 0;
}
