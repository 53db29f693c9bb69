/* executors.c — the table of executors. Each kind (its name, help line, recipe block, the
 * tasks it claims or refuses, a check after load, its constructor) is defined in its own
 * file; a new executor is that file and one row here. The command line reads the table to
 * load recipes (the names and blocks), to route each task and to make the executors a run
 * needs; nothing else names an executor. */
#include "exec.h"

#include <stdio.h>
#include <string.h>

extern const ExecutorKind exec_local_kind, exec_slurm_kind, exec_ssh_kind;

const ExecutorKind *const exec_kinds[] = {&exec_local_kind, &exec_slurm_kind, &exec_ssh_kind, NULL};

const ExecutorKind *exec_kind(const char *name)
{
	for (int i = 0; exec_kinds[i]; i++)
		if (!strcmp(exec_kinds[i]->name, name))
			return exec_kinds[i];
	return NULL;
}

/* Both are computed once, then read-only: the table does not change. */
const char *exec_kind_names(void)
{
	static char names[256];
	if (!names[0]) {
		size_t len = 0;
		for (int i = 0; exec_kinds[i] && len < sizeof names; i++)
			len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
						i == 0 ? "" : exec_kinds[i + 1] ? ", " : " or ", exec_kinds[i]->name);
	}
	return names;
}

const char *const *exec_kind_list(void)
{
	static const char *list[16];
	if (!list[0])
		for (int i = 0; exec_kinds[i] && i < 15; i++)
			list[i] = exec_kinds[i]->name;
	return list;
}
