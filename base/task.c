/* task.c — what a declared task says of itself: its tags, whether it has work, its command
 * as one line, an input its producer may leave unmade. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "graph.h"

const char *task_tag_value(const Task *t, int i)
{
	return t->tags[i].value ? t->tags[i].value : t->name + strlen(t->more->shard->map) + 1; /* <map>/<item> */
}

const char *task_tag(const Task *t, const char *key)
{
	for (int i = 0; i < t->ntags; i++)
		if (!strcmp(t->tags[i].key, key))
			return task_tag_value(t, i);
	return NULL;
}

int task_has_work(const Task *t) { return task_shell(t) || task_word(t, 0) || t->opts->spec; }

char *task_command_line(const Task *t)
{
	if (task_shell(t))
		return xstrdup(task_shell(t));
	if (t->opts->spec)
		return xasprintf("(kiln renders) %s", t->opts->spec);
	Buf b = {0};
	for (int i = 0; task_word(t, i); i++) {
		if (i)
			buf_putc(&b, ' ');
		buf_shell_quote(&b, task_argv(t)[i]);
	}
	return b.data ? b.data : xstrdup("");
}

int graph_unmade_input(const Task *t, Buf *why)
{
	for (int i = 0; i < t->ninputs && t->has_producers; i++) {
		const Task *p = task_input_producer(t, i);
		if (!p || !p->opts->optional || access(t->inputs[i], F_OK) == 0)
			continue;
		for (int k = 0; k < p->noutputs; k++)
			if (p->opts->optional[k] && !strcmp(p->outputs[k], t->inputs[i])) {
				buf_reset(why);
				buf_printf(why, "its input %s is an optional output of %s, which did not make it", t->inputs[i],
					   p->name);
				return 1;
			}
	}
	return 0;
}
