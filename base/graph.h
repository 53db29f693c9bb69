/* graph.h — the task graph: tasks as declared by a recipe, the files they read and
 * write, dependency edges, validation and target selection. The graph owns all of its
 * memory (an arena) and lives for the whole command. */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include "taskindex.h"
#include "util.h"

typedef struct Task Task;

/* A key/value pair (env entries, tags). */
typedef struct {
	const char *key, *value;
} KeyValue;

enum TaskState {
	TS_IDLE,       /* not needed by this command, or not yet considered */
	TS_WAITING,    /* needed; some dependency is not finished */
	TS_READY,      /* dependencies finished; not started */
	TS_RUNNING,
	TS_DONE,       /* succeeded, up to date or restored */
	TS_FAILED,
	TS_SKIPPED,    /* not run: an upstream task failed, or the run was stopped */
};

/* task{ slurm = {...} }: where this task's Slurm jobs go. Each field given replaces the
 * recipe's slurm{} one; extra flags follow the block's; gpu_type makes --gres=gpu:TYPE:N. */
typedef struct TaskSlurm {
	const char *partition, *account, *qos, *constraint, *gpu_type;
	const char **extra;
	int nextra;
} TaskSlurm;

/* What a task asks beyond its command, inputs and outputs that grids usually ask alike:
 * tasks declared with the same options share one TaskOpts (a million-cell sweep keeps one
 * copy, not a million), so it is written only while its task is being declared, and a
 * task that changes its options afterwards takes a copy first (graph_task_opts). */
typedef struct TaskOpts {
	const char *file;     /* recipe file of the task{} call (the line is the task's own) */
	long long mem_mib;    /* memory it holds while it runs, 0: none asked */
	int cpus;             /* CPU slots it holds (0 for a map item: its shard's runner holds them) */
	short gpus;           /* at most 64 (a lease's devices) */
	short retries;        /* at most 1000 */
	const struct PlotSpec *plot; /* built-in work: plot{}'s chart (plots/plot.h), rendered by kiln */
	const char *spec;     /* a built-in task's work as canonical text (hashed as its command) */
	const char **dep_patterns; /* globs over task names (plot{} from = ...) */
	int ndep_patterns;
	int ports;            /* TCP ports reserved per attempt: {port}, {port1}, ... (KILN_PORT) */
	int threads;          /* OMP_NUM_THREADS for each of its processes: the cpus it declares over
				 the processes it starts on a node; 0: it declares none (none set) */
	const char *executor; /* "local", "slurm", "ssh" or NULL (the command line decides) */
	const char **hosts;   /* ssh: the hosts it may run on (host = "v802" pins one), or NULL: any */
	unsigned char *stays; /* ssh: per output, 1 when it stays on its host (a pointer file here), or NULL */
	int nhosts;
	unsigned retry_on;    /* failure classes (runner/recipe/failure.h bits) a retry is spent on */
	long long gpu_mem_mib;
	double timeout_sec;   /* 0: none */
	double kill_grace_sec; /* SIGTERM to SIGKILL when kiln stops it (a timeout, a Ctrl-C): < 0 --kill-grace's */
	int stop_signal;      /* the signal kiln stops it with (stop_signal: SIGINT for a script that
				 saves on KeyboardInterrupt); 0: SIGTERM */
	double gpu_wait_sec;  /* how long to wait for busy GPUs: < 0 the command line's, 0 no bound */
	int gpu_wait_fail;    /* after that wait: 1 fail (class gpu-busy), 0 take the least busy */
	const struct Torchrun *torchrun; /* run under torchrun (runner/recipe/torchrun.h), or NULL */
	const char **resume;  /* paths the command reads back to continue (checkpoints): kept for
				 the next attempt of the same key, deleted otherwise; never recorded
				 unless also outputs. A task's own, so tasks with them share no opts */
	int nresume;
	const char *shell;    /* the program a command string runs under (shell = "bash": `bash -c`),
				 or NULL: /bin/sh */
	const char *cwd;      /* where the command starts, workspace-relative (made if missing), or
				 NULL: the workspace. Placeholders in run then name paths from there */
	unsigned char *optional; /* per output, 1 when the command may leave it unmade
				    (optional_outputs: recorded as absent then), or NULL */
	int rank_nodes;       /* ranks = N over this many nodes (nnodes; Slurm), 0: not a ranks task */
	const KeyValue *log_metrics; /* metric name -> Lua pattern over the attempt's output */
	int nlog_metrics;
	const char *log_progress; /* a Lua pattern whose last match in a running attempt's output
				     is its progress: (done)(total), or (done) with log_progress_total */
	long long log_progress_total; /* 0: the pattern's second capture */
	const TaskSlurm *slurm; /* Slurm: its own partition, constraint, GPU type ..., or NULL */
} TaskOpts;

/* What most tasks of a big graph have none of, or have alike (a map's items): behind one
 * pointer, so a million-task plan does not carry them a task. A task without any points at
 * Graph.no_more; a map's items share their shard's; graph_task_more gives a task its own
 * before anything is written. */
typedef struct TaskMore {
	KeyValue *env;
	int nenv;
	int ndep_names;
	const char **dep_names;
	Task **dep_tasks;       /* and dependencies known as tasks already (map{}'s group: its items) */
	int ndep_tasks;
	int nexplicit_deps;     /* of Task.deps, the explicit ones (names, tasks, patterns): graph_resolve */
	const char *metrics;    /* path of a metrics JSON file, or NULL */
	struct MapShard *shard; /* map{}: the shard an item task belongs to, or that a runner runs */
	int shared;             /* other tasks point at it too: written only through a copy */
} TaskMore;

struct Task {
	const char *name;
	int line;         /* recipe line of the task{} call (its file is opts->file) */
	int index;        /* position in declaration order */
	TaskOpts *opts;    /* never NULL; maybe shared with other tasks (see TaskOpts): what the
			      task asks beyond its command and files, its resources included */

	/* The command, read through task_argv and task_shell: argv (NULL-terminated words,
	 * spawned directly; no count kept), or a shell string through /bin/sh -c
	 * (shell_command), or neither (built in: opts->plot). One pointer: a million tasks
	 * make a plan. */
	union {
		const char **argv;
		const char *shell;
	} command;
	KeyValue *tags;       /* ntags of them, sorted by key */
	const char **inputs;  /* workspace-relative (or absolute outside it), globs expanded */
	const char **outputs;
	int ninputs;
	int noutputs;
	TaskMore *more;   /* never NULL; maybe shared (see TaskMore): env, deps, metrics, shard */

	/* Edges, resolved by graph_resolve(): explicit deps (names and patterns) first, then
	 * producers of inputs. A key hashes the outputs of explicit deps only: for the others
	 * it hashes the input files themselves, the files the task actually reads. The
	 * arrays are in the graph's arena (a map's million items would be a malloc each).
	 * When some input has a producer (has_producers), deps[ndeps + j] is input j's producer
	 * or NULL (a source file): task_input_producer. */
	Task **deps;
	Task **dependents;
	int ndeps;        /* explicit ones first: more->nexplicit_deps of them */
	int ndependents;
	int ntags;        /* of tags (here, four ints in a row, it pads nothing: 112 bytes a task) */

	/* Scheduling state, owned by the scheduler. */
	int pending_deps;
	short attempt;        /* retries + 1, and a few lost with their host, at most */
	unsigned char state;  /* an enum TaskState (a byte: a million tasks make a plan) */
	unsigned char needed;
	unsigned char forced; /* --force: runs even when up to date */
	unsigned char lost;   /* attempts lost with their host (ssh), not counted as attempts */
	unsigned char shell_command; /* command.shell is the command, not command.argv */
	unsigned char has_producers; /* some input is another task's output (see deps) */
};

/* The task producing t's input j, or NULL when it is a source file (graph_resolve). */
static inline Task *task_input_producer(const Task *t, int j) { return t->has_producers ? t->deps[t->ndeps + j] : NULL; }

/* The task's shell command, or NULL when it has none (argv, or built in). */
static inline const char *task_shell(const Task *t) { return t->shell_command ? t->command.shell : NULL; }
/* What runs a command string: /bin/sh, or the task's shell (a program on PATH or a path). */
static inline const char *task_shell_program(const Task *t) { return t->opts->shell ? t->opts->shell : "/bin/sh"; }
/* Its argv (NULL-terminated), or NULL when it has none (shell, or built in). */
static inline const char **task_argv(const Task *t) { return t->shell_command ? NULL : t->command.argv; }
/* Word i of its argv (i at most its count), or NULL: past the last word, or no argv. */
static inline const char *task_word(const Task *t, int i) { return task_argv(t) ? task_argv(t)[i] : NULL; }
/* The words of its argv (0: a shell command, or built in); counted, so not in a loop's test. */
static inline int task_argc(const Task *t)
{
	int n = 0;
	while (task_word(t, n))
		n++;
	return n;
}
static inline void task_set_shell(Task *t, const char *shell)
{
	t->command.shell = shell;
	t->shell_command = shell != NULL;
}
static inline void task_set_argv(Task *t, const char **argv)
{
	t->command.argv = argv;
	t->shell_command = 0;
}

/* map{}: every item is a task of its own (its key, its output, its record), run in
 * batches by one process per shard. The shard's runner task ("<map>:shard-<k>") holds the
 * command and the resources; it is not scheduled itself, its items are. */
typedef struct MapShard {
	const char *map;
	int index, count;      /* shard index (1-based) of count */
	Task *runner;
	int first, nitems;     /* its items, in the order the shard's command gets them: map{}
				  declares a map's items one after the other and deals them round-robin,
				  so item j is Graph.tasks[first + j * count] (shard_item), no list */
	int id;                /* position in Graph.shards */
	int atomic_outputs;    /* map{ atomic_outputs = true }: each output appears whole (renamed
				  into place), so one there when the shard is stopped is finished */
} MapShard;

/* Whether t is a shard's runner (not scheduled; its items are). */
#define task_is_runner(t) ((t)->more->shard && (t)->more->shard->runner == (t))

typedef struct {
	Arena arena;
	Task **tasks;
	int ntasks, cap;
	int indexed;      /* by_name, by_output and output_roots hold every task */
	int outputs_forgotten; /* by_output and output_roots were freed (graph_forget_outputs) */
	TaskIndex by_name;   /* name -> Task */
	TaskIndex by_output; /* output path -> Task */
	StrMap output_roots; /* first path component of every output: an input under no such
				root cannot lie inside a directory output, so no parent lookups */
	int output_root_any; /* "" is one of them (a root too long to keep): every path may */
#define FEW_ROOTS 8
	const char *few_roots[FEW_ROOTS]; /* the roots, when there are this few (nfew_roots): */
	int nfew_roots;      /* compared in place, no key made; -1: more, the map answers */
	const char *workspace; /* absolute path of the workspace (the current directory) */
	/* executors' recipe blocks (slurm{}, hosts{}): what each executor's reader
	 * (runner/exec/) made of its block, by the block's name; the graph only keeps them */
#define GRAPH_BLOCKS 8
	struct {
		const char *name;
		const void *value; /* in the arena */
	} blocks[GRAPH_BLOCKS];
	int nblocks;
	MapShard **shards;     /* every map{} shard, in declaration order */
	int nshards;
	TaskOpts default_opts; /* what graph_new_task's tasks share */
	TaskMore no_more;      /* and their rare fields: none */
#define RECENT_OPTS 8
	TaskOpts *recent_opts[RECENT_OPTS]; /* graph_share_opts' candidates, newest first */
	int keep_going;        /* settings { keep_going = true }: as -k, failures stop nothing else */
	const char *default_shell; /* settings { shell = "bash" }: for the command strings of the tasks
				      declared after it (a task's own shell = stands over it), or NULL */
	int hosts_named;       /* some task gave host or hosts (each is checked against hosts{}) */
	int plots;             /* plot{} tasks declared: without, nothing walks the graph for them */
	KeyValue *params;      /* params{} after command-line overrides, in declaration order, */
	int nparams;           /* values as text: kiln why names them ("param batch: 64 → 32") */
	/* told of each task graph_add_task appends (NULL: nobody): a plan's cache lists the
	 * directories inputs lie in while the recipe is still declaring them */
	void (*on_task_added)(void *ctx, const Task *t);
	void *on_task_added_ctx;
} Graph;

/* Item j (< s->nitems) of map shard s of g. */
static inline Task *shard_item(const Graph *g, const MapShard *s, int j) { return g->tasks[s->first + j * s->count]; }

/* Creates an empty graph for the workspace at `workspace` (absolute path, copied). */
Graph *graph_new(const char *workspace);
/* An executor's recipe block by name: what its reader stored, or NULL (never declared).
 * Setting it again replaces it (a later hosts{}, or --hosts FILE). */
const void *graph_block(const Graph *g, const char *name);
void graph_set_block(Graph *g, const char *name, const void *value);
void graph_free(Graph *g);

/* Allocates a zeroed task in the graph's arena (default options); not yet added. */
Task *graph_new_task(Graph *g);
/* t's options, made its own first (a copy in the arena) if t may share them: what a caller
 * that changes a declared task's options writes to. */
TaskOpts *graph_task_opts(Graph *g, Task *t);
/* t's rare fields (TaskMore), made its own first when it shares them (Graph.no_more, a
 * shard's items'): what a caller writes env, deps, metrics or shard to. */
TaskMore *graph_task_more(Graph *g, Task *t);
/* After t's options were written in place (t->opts pointing at scratch), makes t share an
 * equal TaskOpts declared lately, or keeps a copy of its own in the arena. */
void graph_share_opts(Graph *g, Task *t);
/* Appends a task. Names and outputs are indexed (and checked for clashes) by
 * graph_resolve, all at once: a batch of look-ups is much cheaper than one per call. */
void graph_add_task(Graph *g, Task *t);
Task *graph_find(const Graph *g, const char *name);
/* Indexes names and outputs (base/taskindex.c), unless indexed already: 0, or -1 with a
 * message in err when a name or output is declared twice or an output lies in another. */
int graph_index(Graph *g, Buf *err);
/* The task whose declared output is path, or is a directory holding path; NULL if none. */
Task *graph_producer(const Graph *g, const char *path);
/* Frees the output index once its edges are resolved (graph_resolve; a run again once its
 * targets are matched): a million outputs' index is 16 MiB of a run's peak. Output-path
 * targets index the graph again; graph_producer stops kiln (an internal error). */
void graph_forget_outputs(Graph *g);

/* Makes `path` workspace-relative and normal ("./a//b" -> "a/b"); arena string. */
const char *graph_norm_path(Graph *g, const char *path);
/* Whether graph_norm_path would return p unchanged (so an arena copy can be kept as is). */
int graph_path_is_normal(const Graph *g, const char *p);

/* Tells whether input number `input` of t exists (a cache may remember the answer for
 * later hashing). */
typedef int (*InputExists)(void *ctx, Task *t, int input);

/* Indexes names and outputs (a name declared twice, or an output declared by two tasks,
 * is an error), resolves dependencies, adds edges from inputs to their producers, checks
 * for unknown dependencies, cycles and missing inputs (through exists, or stat when
 * NULL). On error returns -1 and writes a message ("file:line: ...") into err. */
int graph_resolve(Graph *g, InputExists exists, void *exists_ctx, Buf *err);

/* Marks the tasks that the targets need (all tasks when ntargets == 0); targets are
 * names, glob patterns over names, or output paths. Returns the number of needed tasks,
 * or -1 with a message in err when a target matches nothing. */
int graph_select(Graph *g, char **targets, int ntargets, Buf *err);
/* Calls fn for each task the targets name themselves (no dependencies): 0, or -1 with a
 * message in err when a target matches nothing. */
int graph_match(Graph *g, char **targets, int ntargets, void (*fn)(void *ctx, Task *t), void *ctx, Buf *err);

/* Walks from root over dependencies (downstream: over dependents), calling visit on each
 * neighbour; the walk goes on from those for which visit returns 1 (visit marks them, so a
 * task is entered once). Iterative. */
void graph_reach(Task *root, int downstream, int (*visit)(void *ctx, Task *t), void *ctx);
/* Fills out (g->ntasks entries) with the needed tasks in a dependency order that keeps
 * declaration order where it can. Returns the count. */
int graph_topo_order(const Graph *g, Task **out);
/* The same order without a copy where it can: g->tasks itself when every task is needed
 * and declared after its dependencies (most graphs; a million-task plan then fills no
 * list), else a malloc'd graph_topo_order. *n: the count. graph_topo_free gives it back. */
Task **graph_topo_tasks(const Graph *g, int *n);
void graph_topo_free(const Graph *g, Task **order);

/* Returns the task's command as one printable line; malloc'd, caller frees. */
char *task_command_line(const Task *t);
/* Whether t (resolved) reads an input that its producer may leave unmade (optional_outputs)
 * and that is not there: then why says so, in words (replacing what it held). */
int graph_unmade_input(const Task *t, Buf *why);
/* The value of t's tag key, or NULL. */
const char *task_tag(const Task *t, const char *key);
/* The value of t's tag number i (< t->ntags). A map{} item's tag item is the end of its
 * name: the items share one tag list, whose item value is NULL. */
const char *task_tag_value(const Task *t, int i);
/* Whether t has work of its own (a command or built-in work); without, it groups its deps. */
int task_has_work(const Task *t);

#endif
