/* exec_slurm.c — the Slurm executor: each attempt becomes a batch job whose script does
 * exactly what the local executor does (same working directory, environment and command,
 * every word single-quoted so values with spaces, quotes, $ or backticks arrive unchanged),
 * then writes its own exit-code file. Status comes from one batched squeue per poll, with
 * back-off; a failing squeue (controller restart) is retried and never fails a job. */
#define _GNU_SOURCE
#include "exec.h"
#include "../recipe/launch.h"
#include "../recipe/lblock.h"
#include <lauxlib.h>
#include "../../base/os.h"
#include "../recipe/torchrun.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The recipe's slurm{} block: where Slurm tasks go. */
typedef struct {
	const char *partition, *account, *qos, *constraint;
	const char **extra; /* further sbatch flags */
	int nextra;
} RecipeSlurm;

typedef struct {
	ExecSetup cfg;
	RecipeSlurm recipe;
	char workspace[4096];
	Job **active;
	int nactive, cap;
	Job **ended;
	int nended, ended_cap;
	AdoptedJob *adopted;
	int nadopted;
	int64_t next_poll_ns;
	int interval_ms;
} SlurmExec;

/* s for this attempt ({gpus}: the devices asked of Slurm), shell-quoted; {rdzv} becomes
 * the script's "$KILN_RDZV", outside the quotes. */
static void quote_expanded(Buf *b, const char *s, const Job *job)
{
	if (launch_wraps(job->task) && !job->nports && !strncmp(s, "{port", 5) && s[strlen(s) - 1] == '}') {
		buf_puts(b, "\"$KILN_PORT\""); /* the ranks' rendezvous: found on the first node */
		return;
	}
	const char *r = strstr(s, "{rdzv}");
	if (r) {
		char *before = strndup(s, (size_t)(r - s));
		if (*before)
			quote_expanded(b, before, job);
		buf_puts(b, "\"$KILN_RDZV\"");
		if (r[6])
			quote_expanded(b, r + 6, job);
		free(before);
		return;
	}
	char *x = exec_expand_attempt(s, job);
	buf_shell_quote(b, x ? x : s);
	free(x);
}

/* torchrun on Slurm: the rendezvous lives on the job's first node (where this script
 * runs), on a port found free there by binding; every node runs one launcher (srun). */
static void torchrun_preamble(Buf *b, const Task *t)
{
	buf_puts(b, "KILN_HEAD=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
		    "[ -n \"$KILN_HEAD\" ] || KILN_HEAD=$(hostname)\n"
		    "KILN_PORT=$(");
	buf_shell_quote(b, t->opts->torchrun->python);
	buf_puts(b, " -c 'import socket; s = socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])') || "
		    "{ echo 'kiln: cannot find a free port for the rendezvous on the first node' >&2; exit 1; }\n"
		    "KILN_RDZV=$KILN_HEAD:$KILN_PORT; export KILN_HEAD KILN_PORT KILN_RDZV\n"
		    "echo \"# kiln: torchrun rendezvous at $KILN_RDZV\"\n");
	buf_printf(b, "srun --nodes=%d --ntasks=%d --ntasks-per-node=1 --kill-on-bad-exit=1 ", t->opts->torchrun->nnodes,
		   t->opts->torchrun->nnodes);
}

/* ranks on Slurm: the rendezvous on the job's first node (where this script runs), on a
 * port kiln's launcher finds free there; with nnodes, one launcher per node (srun). */
static void ranks_preamble(Buf *b, const Task *t)
{
	buf_puts(b, "KILN_HEAD=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
		    "[ -n \"$KILN_HEAD\" ] || KILN_HEAD=$(hostname)\n"
		    "KILN_PORT=$(");
	buf_shell_quote(b, exec_self());
	buf_puts(b, " launch --free-port) || { echo 'kiln: cannot find a free port for the ranks on the first node' >&2; "
		    "exit 1; }\n"
		    "export KILN_HEAD KILN_PORT\n"
		    "echo \"# kiln: ranks meet at $KILN_HEAD:$KILN_PORT\"\n");
	if (t->opts->rank_nodes > 1)
		buf_printf(b, "srun --nodes=%d --ntasks=%d --ntasks-per-node=1 --kill-on-bad-exit=1 ", t->opts->rank_nodes,
			   t->opts->rank_nodes);
}

char *exec_job_script(const Job *job, const char *workspace, const char *exit_path, int remote)
{
	const Task *t = job->task;
	Buf b = {0};
	buf_puts(&b, "#!/bin/sh\n# written by kiln for task ");
	buf_puts(&b, t->name);
	buf_puts(&b, "\ncd ");
	buf_shell_quote(&b, workspace);
	buf_puts(&b, " || exit 1\n");
	/* the command starts in its cwd; the exit file stays where kiln looks (the workspace) */
	const char *top = t->opts->cwd ? "\"$kiln_top\"/" : "";
	if (t->opts->cwd) {
		buf_puts(&b, "kiln_top=$PWD\nmkdir -p -- ");
		buf_shell_quote(&b, t->opts->cwd);
		buf_puts(&b, " && cd -- ");
		buf_shell_quote(&b, t->opts->cwd);
		buf_puts(&b, " || exit 1\n");
	}
	for (char **e = job->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		buf_printf(&b, "%.*s=", (int)(eq - *e), *e);
		if (t->opts->cwd && !strncmp(*e, "KILN_PROGRESS=", 14) && eq[1] != '/')
			buf_puts(&b, top); /* a host's own path (ssh): from the workspace there */
		buf_shell_quote(&b, eq + 1);
		buf_printf(&b, "; export %.*s\n", (int)(eq - *e), *e);
	}
	int task_sets_path = 0;
	for (int i = 0; i < t->nenv; i++) {
		buf_printf(&b, "%s=", t->env[i].key);
		quote_expanded(&b, t->env[i].value, job);
		buf_printf(&b, "; export %s\n", t->env[i].key);
		task_sets_path |= !strcmp(t->env[i].key, "PATH");
	}
	if (!task_sets_path && remote) { /* kiln's tools were copied beside the workspace there */
		buf_puts(&b, "PATH=\"$PWD/.kiln/bin:$PATH\"; export PATH\n");
	} else if (!task_sets_path) {
		buf_puts(&b, "PATH=");
		buf_shell_quote(&b, exec_path_entry() + 5);
		buf_puts(&b, "; export PATH\n");
	}
	if (t->opts->torchrun)
		torchrun_preamble(&b, t);
	if (launch_wraps(t))
		ranks_preamble(&b, t);
	if (t->shell) {
		buf_puts(&b, "/bin/sh -c ");
		quote_expanded(&b, t->shell, job);
	} else {
		for (int i = 0; i < t->argc; i++) {
			if (i)
				buf_putc(&b, ' ');
			quote_expanded(&b, exec_argv_word(t, i), job);
		}
	}
	buf_puts(&b, " </dev/null\nrc=$?\nprintf '%s\\n' \"$rc\" > ");
	buf_puts(&b, top);
	if (remote) { /* read only once the job's group is gone (exec_ssh.c): no rename needed */
		buf_shell_quote(&b, exit_path);
		buf_puts(&b, "\nexit $rc\n");
		return b.data;
	}
	char *tmp = xasprintf("%s.tmp", exit_path);
	buf_shell_quote(&b, tmp);
	buf_puts(&b, " && mv -f ");
	buf_puts(&b, top);
	buf_shell_quote(&b, tmp);
	buf_putc(&b, ' ');
	buf_puts(&b, top);
	buf_shell_quote(&b, exit_path);
	buf_puts(&b, "\nexit $rc\n");
	free(tmp);
	return b.data;
}

/* Runs a Slurm command; its stdout into out (when given). Returns the exit status, or -1. */
static int run_tool(char *const argv[], Buf *out, Buf *errout) { return os_run(argv, 0, out, errout); }

static char *exit_path_of(const SlurmExec *se, const Job *job)
{
	return xasprintf("%s/%s@%d.exit", se->cfg.state_dir, job->task->name, job->attempt);
}

static void poll_soon(SlurmExec *se)
{
	se->interval_ms = 100;
	se->next_poll_ns = now_mono_ns() + 100000000LL;
}

static int slurm_start(Executor *ex, Job *job)
{
	SlurmExec *se = ex->impl;
	const Task *t = job->task;
	job->started_ns = now_mono_ns();
	job->end = JOB_RUNNING;
	/* re-attach: a previous kiln's job for this task and key is still ours */
	for (int i = 0; i < se->nadopted; i++) {
		AdoptedJob *a = &se->adopted[i];
		if (a->used || strcmp(a->task, t->name))
			continue;
		a->used = 1;
		if (!strcmp(a->key, job->key)) {
			exec_attach(job, a);
			exec_push_job(&se->active, &se->nactive, &se->cap, job);
			poll_soon(se);
			return 0;
		}
		char *cancel[] = {"scancel", a->job_id, NULL}; /* its recipe changed: that job is stale */
		run_tool(cancel, NULL, NULL);
	}
	int fd = exec_open_log(job);
	if (fd >= 0) {
		exec_write_log_header(fd, job);
		close(fd);
	}
	char *exit_path = exit_path_of(se, job), *script_path = xasprintf("%s/%s@%d.sh", se->cfg.state_dir, t->name, job->attempt);
	char *script = exec_job_script(job, se->workspace, exit_path, 0);
	unlink(exit_path);
	mkdirs_parent(script_path);
	int wrote = write_file_atomic(script_path, script, strlen(script));
	free(script);
	char *abs_log = job->log_path[0] == '/' ? xstrdup(job->log_path) : xasprintf("%s/%s", se->workspace, job->log_path);
	enum { FIXED_ARGS = 18 }; /* sbatch, its own flags and the script: 16 at most */
	char **args = xmalloc((size_t)(FIXED_ARGS + se->recipe.nextra) * sizeof *args);
	char *owned[FIXED_ARGS];
	int n = 0, nowned = 0;
#define OWN(x) (owned[nowned++] = (x))
	args[n++] = "sbatch";
	args[n++] = "--parsable";
	args[n++] = OWN(xasprintf("--job-name=kiln-%lld-%s", se->cfg.run_id, t->name));
	args[n++] = OWN(xasprintf("--output=%s", abs_log));
	args[n++] = "--open-mode=append";
	args[n++] = OWN(xasprintf("--chdir=%s", se->workspace));
	if (t->opts->torchrun || t->opts->rank_nodes) { /* one launcher per node, each with the task's CPUs and GPUs */
		args[n++] = OWN(xasprintf("--nodes=%d", t->opts->torchrun ? t->opts->torchrun->nnodes : t->opts->rank_nodes));
		args[n++] = "--ntasks-per-node=1";
	}
	if (t->cpus > 0)
		args[n++] = OWN(xasprintf("--cpus-per-task=%d", t->cpus));
	if (t->mem_mib > 0)
		args[n++] = OWN(xasprintf("--mem=%lldM", t->mem_mib));
	if (t->gpus > 0)
		args[n++] = OWN(xasprintf("--gres=gpu:%d", t->gpus));
	if (t->opts->timeout_sec > 0)
		args[n++] = OWN(xasprintf("--time=%d", (int)((t->opts->timeout_sec + 59) / 60)));
	if (se->recipe.partition)
		args[n++] = OWN(xasprintf("--partition=%s", se->recipe.partition));
	if (se->recipe.account)
		args[n++] = OWN(xasprintf("--account=%s", se->recipe.account));
	if (se->recipe.qos)
		args[n++] = OWN(xasprintf("--qos=%s", se->recipe.qos));
	if (se->recipe.constraint)
		args[n++] = OWN(xasprintf("--constraint=%s", se->recipe.constraint));
	for (int i = 0; i < se->recipe.nextra; i++)
		args[n++] = (char *)se->recipe.extra[i];
	args[n++] = script_path;
	args[n] = NULL;
#undef OWN
	Buf out = {0}, err = {0};
	int rc = wrote == 0 ? run_tool(args, &out, &err) : -1;
	for (int i = 0; i < nowned; i++)
		free(owned[i]);
	free(args);
	free(abs_log);
	free(exit_path);
	free(script_path);
	const char *id = buf_str(&out);
	if (rc != 0 || !*id) {
		int lfd = open(job->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (lfd >= 0) {
			dprintf(lfd, "kiln: sbatch failed: %s\n", wrote ? "cannot write the job script" : buf_str(&err));
			close(lfd);
		}
		snprintf(job->reason, sizeof job->reason, "sbatch failed: %.70s", err.len ? buf_str(&err) : "no job id");
		job->reason[strcspn(job->reason, "\n")] = 0;
		job->end = JOB_START_FAILED;
		job->exit_code = 127;
		job->ended_ns = now_mono_ns();
		exec_push_job(&se->ended, &se->nended, &se->ended_cap, job);
		buf_free(&out);
		buf_free(&err);
		return -1;
	}
	/* --parsable prints "id" or "id;cluster" */
	snprintf(job->job_id, sizeof job->job_id, "%.*s", (int)strcspn(id, ";\n"), id);
	buf_free(&out);
	buf_free(&err);
	exec_push_job(&se->active, &se->nactive, &se->cap, job);
	poll_soon(se);
	return 0;
}

/* Decides a finished job's outcome from its Slurm state and its own exit-code file. */
static void finish(SlurmExec *se, Job *job, const char *state)
{
	char *exit_path = exit_path_of(se, job);
	size_t len;
	char *text = read_file(exit_path, &len);
	free(exit_path);
	job->ended_ns = now_mono_ns();
	if (!strcmp(state, "COMPLETED") || (text && (!strcmp(state, "FAILED") || !strcmp(state, "GONE")))) {
		/* the command's own exit status, as the job script recorded it */
		job->end = JOB_EXITED;
		job->exit_code = text ? atoi(text) : 0;
	} else {
		/* TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE, FAILED */
		job->end = JOB_EXITED;
		job->exit_code = text ? atoi(text) : 1;
		if (!strcmp(state, "TIMEOUT"))
			job->timed_out = 1;
		snprintf(job->reason, sizeof job->reason, "Slurm job %.32s ended %s", job->job_id,
			 !strcmp(state, "GONE") ? "(no longer known to Slurm, no exit code)" : state);
		if (job->exit_code == 0)
			job->exit_code = 1;
	}
	free(text);
}

static int is_final(const char *state)
{
	static const char *const finals[] = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL",
					     "PREEMPTED", "BOOT_FAIL", "DEADLINE", NULL};
	for (int i = 0; finals[i]; i++)
		if (!strncmp(state, finals[i], strlen(finals[i])))
			return 1;
	return 0;
}

static void poll_queue(SlurmExec *se)
{
	Buf ids = {0}, out = {0}, err = {0};
	for (int i = 0; i < se->nactive; i++)
		buf_printf(&ids, "%s%s", i ? "," : "", se->active[i]->job_id);
	/* one query for all of this run's jobs; -t all keeps finished ones for MinJobAge */
	char *argv[] = {"squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", (char *)buf_str(&ids), NULL};
	int rc = run_tool(argv, &out, &err);
	int changed = 0;
	if (rc == 0) {
		for (int i = 0; i < se->nactive; i++) {
			Job *job = se->active[i];
			const char *state = NULL;
			char want[48];
			snprintf(want, sizeof want, "%.46s|", job->job_id);
			for (const char *line = buf_str(&out); *line;) {
				if (!strncmp(line, want, strlen(want)))
					state = line + strlen(want);
				line = strchr(line, '\n');
				if (!line)
					break;
				line++;
			}
			char st[32] = "GONE"; /* not listed any more: decided by its exit-code file */
			if (state)
				snprintf(st, sizeof st, "%.*s", (int)strcspn(state, "\n"), state);
			if (!state || is_final(st)) {
				finish(se, job, st);
				exec_push_job(&se->ended, &se->nended, &se->ended_cap, job);
				se->active[i--] = se->active[--se->nactive];
				changed = 1;
			}
		}
	}
	/* a failing squeue (controller restart, accounting outage) is just tried again later */
	if (changed || rc != 0)
		se->interval_ms = changed ? 100 : se->interval_ms;
	else
		se->interval_ms = se->interval_ms * 3 / 2 > 2000 ? 2000 : se->interval_ms * 3 / 2;
	se->next_poll_ns = now_mono_ns() + (int64_t)se->interval_ms * 1000000;
	buf_free(&ids);
	buf_free(&out);
	buf_free(&err);
}

static int slurm_reap(Executor *ex, Job **out, int max)
{
	SlurmExec *se = ex->impl;
	if (se->nended == 0 && se->nactive > 0 && now_mono_ns() >= se->next_poll_ns)
		poll_queue(se);
	int n = 0;
	while (se->nended > 0 && n < max)
		out[n++] = se->ended[--se->nended];
	return n;
}

static void slurm_signal(Executor *ex, Job *job, int sig)
{
	SlurmExec *se = ex->impl;
	if (!job->job_id[0] || (se->cfg.detach && job->interrupted))
		return;
	/* Slurm sends SIGTERM, then SIGKILL after its KillWait: one scancel does both */
	if (sig == SIGTERM || sig == SIGKILL || sig == SIGINT) {
		char *argv[] = {"scancel", job->job_id, NULL};
		run_tool(argv, NULL, NULL);
		poll_soon(se);
	}
}

static int slurm_poll_ms(Executor *ex)
{
	SlurmExec *se = ex->impl;
	if (se->nended)
		return 0;
	if (!se->nactive)
		return -1;
	int64_t ms = (se->next_poll_ns - now_mono_ns()) / 1000000;
	return ms < 0 ? 0 : (int)ms + 1;
}

static int slurm_has_room(Executor *ex, const Task *t)
{
	(void)t;
	SlurmExec *se = ex->impl;
	return se->cfg.max_jobs <= 0 || se->nactive < se->cfg.max_jobs;
}

static int slurm_detach(Executor *ex, Job *job, int hangup)
{
	SlurmExec *se = ex->impl;
	if (!se->cfg.detach && !hangup)
		return 0;
	for (int i = 0; i < se->nactive; i++) /* it runs on in the queue; this kiln forgets it */
		if (se->active[i] == job)
			se->active[i] = se->active[--se->nactive];
	return 1;
}

static void slurm_destroy(Executor *ex)
{
	SlurmExec *se = ex->impl;
	exec_adopted_free(se->adopted, se->nadopted);
	free(se->active);
	free(se->ended);
	free(se);
	free(ex);
}

static int slurm_adoptable(Executor *ex, const Task *t, const char *key_hex, Lease *held)
{
	SlurmExec *se = ex->impl;
	(void)held; /* Slurm's own to lease */
	return exec_adopted_matches(se->adopted, se->nadopted, t, key_hex);
}

static void slurm_adopt(Executor *ex, const OpenAttempt *a)
{
	SlurmExec *se = ex->impl;
	exec_adopted_add(&se->adopted, &se->nadopted, a);
}

/* slurm{}: where Slurm tasks go (partition, account, qos, constraint, extra sbatch flags). */
static int slurm_read_block(lua_State *L)
{
	Graph *g = lk_block_graph(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	RecipeSlurm *sl = arena_alloc(&g->arena, sizeof *sl);
	*sl = (RecipeSlurm){0};
	lua_settop(L, 1);
	static const char *const fields[] = {"partition", "account", "qos", "constraint", "extra", NULL};
	lk_check_fields(L, "slurm{}", fields);
	const char **slots[] = {&sl->partition, &sl->account, &sl->qos, &sl->constraint};
	const char *names[] = {"partition", "account", "qos", "constraint"};
	for (int i = 0; i < 4; i++) {
		if (lua_getfield(L, 1, names[i]) != LUA_TNIL)
			*slots[i] = lk_value_string(L, g, -1, names[i], 0);
		lua_pop(L, 1);
	}
	if (lua_getfield(L, 1, "extra") != LUA_TNIL)
		sl->extra = lk_string_list(L, g, -1, "extra", &sl->nextra, 0);
	lua_pop(L, 1);
	graph_set_block(g, "slurm", sl);
	return 0;
}

static int slurm_refuses(const Task *t, Buf *why)
{
	if (t->opts->ports > (t->opts->torchrun != NULL || launch_wraps(t)))
		buf_puts(why, "uses {port}: ports are reserved on this machine, and this kiln does not yet reserve them on "
			      "a Slurm node (run it with executor = \"local\"; torchrun = {...} finds its rendezvous port "
			      "on the first node itself)");
	return why->len > 0;
}

static Executor *slurm_new(const ExecSetup *cfg, Buf *err)
{
	const char *tools[] = {"sbatch", "squeue", "scancel"};
	for (int i = 0; i < 3; i++) {
		char *argv[] = {(char *)tools[i], "--version", NULL};
		if (run_tool(argv, NULL, NULL) != 0) {
			buf_printf(err, "the Slurm executor needs %s on PATH (is this a Slurm login node? Debian: slurm-client)",
				   tools[i]);
			return NULL;
		}
	}
	SlurmExec *se = xcalloc(1, sizeof *se);
	se->cfg = *cfg;
	const RecipeSlurm *block = graph_block(cfg->g, "slurm");
	if (block)
		se->recipe = *block;
	if (!getcwd(se->workspace, sizeof se->workspace))
		strcpy(se->workspace, ".");
	se->interval_ms = 100;
	Executor *ex = xmalloc(sizeof *ex);
	*ex = (Executor){
		.name = "slurm",
		.title = "Slurm",
		.local_slots = 0,
		.reattaches = 1,
		.detach = slurm_detach,
		.start = slurm_start,
		.reap = slurm_reap,
		.signal = slurm_signal,
		.poll_ms = slurm_poll_ms,
		.has_room = slurm_has_room,
		.destroy = slurm_destroy,
		.adopt = slurm_adopt,
		.adoptable = slurm_adoptable,
		.impl = se,
	};
	return ex;
}

extern const ExecutorKind exec_slurm_kind;
const ExecutorKind exec_slurm_kind = {.name = "slurm", .about = "a Slurm cluster: one batch job per attempt (slurm{} says where)",
				      .block = "slurm", .read_block = slurm_read_block, .refuses = slurm_refuses,
				      .make = slurm_new};
