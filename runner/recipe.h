/* recipe.h — loading a Lua 5.4 recipe into a Graph. Loading only declares tasks: no
 * process runs, no clock is read, nothing is written. */
#ifndef KILN_RECIPE_H
#define KILN_RECIPE_H

#include "../base/graph.h"

/* Command-line parameter overrides "name=value". */
typedef struct {
	char **names, **values;
	int count;
} ParamOverrides;

/* Splits argv-style "name=value" words into overrides; other words go to rest
 * (caller-provided array of at least n entries). Returns the number of rest words. */
int params_split(char **words, int n, ParamOverrides *ov, char **rest);
void params_free(ParamOverrides *ov);

/* Loads the recipe at `path` into g (tasks added, not yet resolved). Returns 0, or -1
 * with "file:line: message" in err, or -2 when a stop was requested (Ctrl-C) while it
 * loaded. `path` is used as the chunk name in messages. gpus_known is what the recipe's
 * gpus_available() returns. A load still running after load_timeout seconds (<= 0: two
 * minutes) is stopped with an error naming the line it was at. */
int recipe_load(Graph *g, const char *path, const ParamOverrides *ov, int gpus_known, double load_timeout, Buf *err);

#endif
