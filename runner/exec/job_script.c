/* job_script.c — the shell script that runs an attempt exactly as the local executor would
 * (same working directory, environment and command, every word single-quoted so values
 * with spaces, quotes, $ or backticks arrive unchanged), then writes its own exit-code
 * file: a Slurm batch job's script, and an ssh host's. On Slurm, the words a job finds on
 * its node (torchrun's and the ranks' rendezvous, {port}) are shell variables its preamble
 * sets there. */
#define _GNU_SOURCE
#include "exec.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../recipe/launch.h"
#include "../recipe/torchrun.h"

/* s for this attempt ({gpus}: the devices asked of Slurm), shell-quoted; {rdzv} becomes
 * the script's "$KILN_RDZV", outside the quotes. shell: s is a shell string (eval'd). */
static void quote_expanded(Buf *b, const char *s, const Job *job, int shell)
{
	if (launch_wraps(job->task) && !job->nports && !strncmp(s, "{port", 5) && s[strlen(s) - 1] == '}') {
		buf_puts(b, "\"$KILN_PORT\""); /* the ranks' rendezvous: found on the first node */
		return;
	}
	/* {port} and {portK} of a job whose ports its node finds (Slurm): the preamble's */
	const char *w = !job->nports && job->task->opts->ports ? strstr(s, "{port") : NULL;
	char *end = NULL;
	long k = w && w[5] == '}' ? 0 : w && w[5] >= '1' && w[5] <= '9' ? strtol(w + 5, &end, 10) : -1;
	if (w && k >= 0 && (k == 0 || *end == '}')) {
		const char *after = k == 0 ? w + 6 : end + 1;
		char *before = strndup(s, (size_t)(w - s));
		if (*before)
			quote_expanded(b, before, job, shell);
		if (k == 0)
			buf_puts(b, "\"$KILN_PORT\"");
		else
			buf_printf(b, "\"$KILN_PORT_%ld\"", k);
		if (*after)
			quote_expanded(b, after, job, shell);
		free(before);
		return;
	}
	const char *r = job->nports ? NULL : strstr(s, "{rdzv}"); /* reserved here (ssh): expanded below */
	if (r) {
		char *before = strndup(s, (size_t)(r - s));
		if (*before)
			quote_expanded(b, before, job, shell);
		buf_puts(b, "\"$KILN_RDZV\"");
		if (r[6])
			quote_expanded(b, r + 6, job, shell);
		free(before);
		return;
	}
	char *x = exec_expand_attempt(s, job, shell);
	buf_shell_quote(b, x ? x : s);
	free(x);
}

/* {port}s on a Slurm node: kiln's launcher finds them free there, the job records them
 * beside its exit file (kiln reads them into the attempt's record) and in its log. */
static void ports_preamble(Buf *b, const Task *t, const char *exit_path, const char *top)
{
	buf_puts(b, "KILN_PORTS=$(");
	buf_shell_quote(b, exec_self());
	buf_printf(b, " launch --free-port %d) || { echo 'kiln: cannot find %d free ports on this node' >&2; exit 1; }\n",
		   t->opts->ports, t->opts->ports);
	buf_puts(b, "KILN_PORT=${KILN_PORTS%%,*}\nkiln_ifs=$IFS; IFS=,; set -- $KILN_PORTS; IFS=$kiln_ifs\n");
	for (int k = 1; k < t->opts->ports; k++) /* exported: a command run by sh -c reads them */
		buf_printf(b, "KILN_PORT_%d=$%d; export KILN_PORT_%d\n", k, k + 1, k);
	buf_puts(b, "export KILN_PORT KILN_PORTS\nprintf '%s\\n' \"$KILN_PORTS\" > ");
	size_t n = strlen(exit_path);
	char *ports = xasprintf("%.*s.ports", (int)(n > 5 && !strcmp(exit_path + n - 5, ".exit") ? n - 5 : n), exit_path);
	buf_puts(b, top);
	buf_shell_quote(b, ports);
	free(ports);
	buf_puts(b, "\necho \"# kiln: {port} is $KILN_PORTS on $(hostname)\"\n");
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
}

/* The launcher on every node of a torchrun task on Slurm: the command's first words. */
static void torchrun_srun(Buf *b, const Task *t)
{
	buf_printf(b, "srun --nodes=%d --ntasks=%d --ntasks-per-node=1 --kill-on-bad-exit=1 ", t->opts->torchrun->nnodes,
		   t->opts->torchrun->nnodes);
	if (t->opts->torchrun->nnodes > 1) /* each launcher's --node_rank: its static rendezvous (torchrun.c) */
		buf_puts(b, "/bin/sh -c 'PET_NODE_RANK=$SLURM_NODEID; export PET_NODE_RANK; exec \"$@\"' kiln-node ");
}

/* ranks on Slurm: the rendezvous on the job's first node (where this script runs), on a
 * port kiln's launcher finds free there. */
static void ranks_preamble(Buf *b)
{
	buf_puts(b, "KILN_HEAD=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
		    "[ -n \"$KILN_HEAD\" ] || KILN_HEAD=$(hostname)\n"
		    "KILN_PORT=$(");
	buf_shell_quote(b, exec_self());
	buf_puts(b, " launch --free-port) || { echo 'kiln: cannot find a free port for the ranks on the first node' >&2; "
		    "exit 1; }\n"
		    "export KILN_HEAD KILN_PORT\n"
		    "echo \"# kiln: ranks meet at $KILN_HEAD:$KILN_PORT\"\n");
}

/* With nnodes, one launcher per node of a ranks task on Slurm: the command's first words. */
static void ranks_srun(Buf *b, const Task *t)
{
	if (t->opts->rank_nodes > 1)
		buf_printf(b, "srun --nodes=%d --ntasks=%d --ntasks-per-node=1 --kill-on-bad-exit=1 ", t->opts->rank_nodes,
			   t->opts->rank_nodes);
}

/* Resume path i of t and its copy's (.kiln/resume/TASK@I, from the workspace), shell-quoted. */
static void resume_words(const Task *t, int i, Buf *path, Buf *copy)
{
	char *c = xasprintf(".kiln/resume/%s@%d", t->name, i);
	buf_shell_quote(path, t->opts->resume[i]);
	buf_shell_quote(copy, c);
	free(c);
}

/* kiln_series DIR: as cache/resume_folder.c does here, a Hugging Face checkpoint-N in the
 * resume folder DIR holding training_args.bin but not trainer_state.json, a folder of
 * .distcp files without torch.distributed.checkpoint's .metadata, and the latest
 * checkpoint folder of a numbered series (checkpoint-500: its name's digit runs compared as
 * numbers) that lacks a file each other one of its series holds (three levels down), were
 * stopped between their files, and are removed. Names with other characters than
 * [A-Za-z0-9._=+-] are left out: one awk reads every folder's listing. */
static void series_words(Buf *b)
{
	buf_puts(b, "kiln_series() { for e in \"$1\"/checkpoint-*; do n=${e##*/}; case ${n#checkpoint-} in ''|*[!0-9]*) "
		    "continue;; esac; [ -d \"$e\" ] && [ ! -L \"$e\" ] && [ -f \"$e/training_args.bin\" ] && "
		    "[ ! -f \"$e/trainer_state.json\" ] && rm -rf -- \"$e\" && echo \"kiln: \\\"$e\\\" holds "
		    "\\\"training_args.bin\\\" but no \\\"trainer_state.json\\\", which the Hugging Face Trainer writes last (an "
		    "attempt was stopped between its files): removed, so this attempt continues from the whole checkpoints "
		    "beside it, or starts afresh\" >&2; done\n"
		    "for e in \"$1\"/*; do [ -d \"$e\" ] && [ ! -L \"$e\" ] && [ ! -f \"$e/.metadata\" ] || continue; "
		    "for f in \"$e\"/*.distcp; do [ -f \"$f\" ] && rm -rf -- \"$e\" && echo \"kiln: \\\"$e\\\" holds "
		    "\\\".distcp\\\" files but no \\\".metadata\\\", which torch.distributed.checkpoint writes last (an attempt "
		    "was stopped between its files): removed, so this attempt continues from the whole checkpoints beside it, "
		    "or starts afresh\" >&2; break; done; done\n"
		    "for e in \"$1\"/*; do n=${e##*/}; case $n in *[!A-Za-z0-9._=+-]*) continue;; esac; "
		    "[ -d \"$e\" ] && [ ! -L \"$e\" ] || continue; printf '%s\\t\\n' \"$n\"; "
		    "(cd \"$e\" && find . -maxdepth 3 -type f) | sed \"s|^\\./|$n\t|\"; done | awk -F '\\t' '\n"
		    "function key(n,  t, k, d) { t = n; k = \"k\"; while (match(t, /[0-9]+/)) { d = substr(t, RSTART, RLENGTH); "
		    "sub(/^0+/, \"\", d); k = k substr(\"000000000000000000000000\", 1, 24 - length(d)) d \".\"; "
		    "t = substr(t, RSTART + RLENGTH) } return k }\n"
		    "{ s = $1; gsub(/[0-9]+/, \"#\", s); if (s == $1) next; if ($2 == \"\") { m[s]++; in_s[$1] = s; "
		    "if (!(s in last) || key($1) > key(last[s])) last[s] = $1; next } has[$1, $2] = 1; names[s, $2] = 1 }\n"
		    "END { for (sx in names) { split(sx, p, SUBSEP); s = p[1]; x = p[2]; if (m[s] < 2 || ((last[s], x) in has)) "
		    "continue; c = 0; for (e in in_s) if (in_s[e] == s && e != last[s] && ((e, x) in has)) c++; "
		    "if (c == m[s] - 1 && (!(s in lacks) || x < lacks[s])) lacks[s] = x }\n"
		    "for (s in lacks) print last[s] \"\\t\" lacks[s] }' | while IFS=$(printf '\\t') read -r n x; do "
		    "rm -rf -- \"$1/$n\" && echo \"kiln: \\\"$1/$n\\\" lacks \\\"$x\\\", which every checkpoint before it "
		    "holds (an attempt was stopped between its files): removed, so this attempt continues from the whole "
		    "checkpoints beside it\" >&2; done; }\n");
}

/* A checkpoint cut short (cache/resume.h) where kiln's own watch cannot act: the job script
 * does it. kiln_cut tells a file cut short (empty, a zip archive whose last 64 KiB hold
 * no end record, a .safetensors file shorter than its header says, a .json file whose last
 * byte but white space is no '}' or ']'). On an ssh host (remote): before an attempt that continues, each resume
 * file cut short is put back from its copy (.kiln/resume/TASK@I in the host's workdir) or
 * removed, and in a resume folder each checkpoint holding a file cut short is removed
 * (kiln_cut_in: an empty file counts only when named as a checkpoint), and so is the
 * latest of a series lacking a file the others hold (kiln_series); while the command runs, a watcher in the job's process group copies each resume
 * file once its stat held for a second and it is whole, where the disk has room for the
 * next save and a GiB besides, and stops copying a file replaced whole at each save (a new
 * inode); needs GNU stat (%.9Y), without which nothing is copied. On Slurm, kiln watches and
 * mends as locally, but a job Slurm requeued (preemption) starts again without kiln: its
 * script mends from kiln's copies then (SLURM_RESTART_COUNT). */
static void resume_guard(Buf *b, const Job *job, int remote)
{
	const Task *t = job->task;
	if (!remote)
		buf_puts(b, "if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then\n");
	buf_puts(b, "kiln_cut() { [ -f \"$1\" ] || return 1; [ -s \"$1\" ] || return 0\n"
		    "case $1 in *.safetensors) kiln_st_cut \"$1\"; return;; *.json) kiln_json_cut \"$1\"; return;; esac\n"
		    "[ \"$(head -c 4 \"$1\" | od -An -tx1 | tr -d ' \\n')\" = 504b0304 ] || return 1\n"
		    "! tail -c 65557 \"$1\" | od -An -v -tx1 | tr -d ' \\n' | grep -q 504b0506; }\n"
		    /* a JSON file: whole when its last byte but white space closes its top value */
		    "kiln_json_cut() { kst_j=$(tail -c 64 \"$1\" | tr -d ' \\t\\r\\n' | tail -c 1); "
		    "[ \"$kst_j\" != '}' ] && [ \"$kst_j\" != ']' ]; }\n"
		    /* a safetensors file: its 8-byte little-endian header length, the header (JSON,
		     * at most 64 MiB, '{' first), and the data its largest data_offsets end says;
		     * its variables named apart from the callers' (a shell's are global) */
		    "kiln_st_cut() { kst_s=$(wc -c < \"$1\" | tr -d ' '); [ \"$kst_s\" -ge 9 ] || return 0\n"
		    "kst_n=$(od -An -tu8 -N8 \"$1\" | tr -d ' '); [ \"$(od -An -c -j8 -N1 \"$1\" | tr -d ' ')\" = '{' ] || return 1\n"
		    "case $kst_n in *[!0-9]*|????????????*) return 1;; esac; [ \"$kst_n\" -le 67108864 ] || return 1\n"
		    "[ \"$kst_n\" -le $((kst_s - 8)) ] || return 0\n"
		    "kst_e=$(head -c $((8 + kst_n)) \"$1\" | tail -c +9 | tr -d ' \\n\\t' | grep -o '\"data_offsets\":\\[[0-9]*,[0-9]*' | "
		    "sed 's/.*,//' | sort -n | tail -n 1)\n"
		    "[ \"$kst_s\" -lt $((8 + kst_n + ${kst_e:-0})) ]; }\n");
	for (int i = 0; i < t->opts->nresume; i++) {
		Buf p = {0}, c = {0};
		resume_words(t, i, &p, &c);
		if (remote && !job->resume_kept) /* the state is cleared: its copy with it */
			buf_printf(b, "rm -f %s %s.tmp\n", c.data, c.data);
		else
			buf_printf(b, "if kiln_cut %s; then if [ -f %s ] && ! kiln_cut %s && cp -p %s %s.kiln-mend && mv -f "
				   "%s.kiln-mend %s; then echo \"kiln: \"%s\" was cut short (an attempt was stopped while "
				   "writing it): put back its last whole copy, saved at $(date -r %s '+%%H:%%M:%%S')\" >&2; "
				   "else rm -f %s; echo \"kiln: \"%s\" was cut short (an attempt was stopped while writing it) "
				   "and kiln holds no whole copy of it: removed, so this attempt starts it afresh\" >&2; fi; fi\n",
				   p.data, c.data, c.data, c.data, p.data, p.data, p.data, p.data, c.data, p.data, p.data);
		if ((!remote || job->resume_kept) && i == 0)
			series_words(b);
		if (!remote || job->resume_kept) /* a folder of checkpoints: those holding a cut file go
						     (an empty file only if named as a checkpoint: else a marker) */
			buf_printf(b, "kiln_cut_in() { [ -s \"$1\" ] || case \"$1\" in *.pt|*.pth|*.ckpt|*.bin|*.safetensors|*.npz|*.json) ;; "
				      "*) return 1;; esac; kiln_cut \"$1\"; }\n"
				      "if [ -d %s ] && [ ! -L %s ]; then for e in %s/*; do c=; "
				      "if [ -L \"$e\" ]; then :; elif [ -f \"$e\" ]; then kiln_cut_in \"$e\" && c=$e; "
				      "elif [ -d \"$e\" ]; then c=$(find \"$e\" -maxdepth 2 -type f | "
				      "while IFS= read -r f; do kiln_cut_in \"$f\" && { echo \"$f\"; break; }; done); fi; "
				      "[ -n \"$c\" ] && rm -rf -- \"$e\" && echo \"kiln: \\\"$c\\\" was cut short (an attempt was "
				      "stopped while writing it): \\\"$e\\\" removed, so this attempt continues from the whole "
				      "checkpoints beside it\" >&2; done; kiln_series %s; fi\n",
				   p.data, p.data, p.data, p.data);
		buf_free(&p);
		buf_free(&c);
	}
	if (!remote) {
		buf_puts(b, "fi\n");
		return;
	}
	/* the watcher ends with the shell that runs the command, however that ends: one a stop
	 * signal ended before its `kill` (SIGINT and SIGQUIT, which a process started with &
	 * ignores, never reach the watcher) must not hold the job's group open */
	buf_puts(b, "read kiln_me kiln_rest < /proc/self/stat 2>/dev/null; mkdir -p .kiln/resume && (\n");
	for (int i = 0; i < t->opts->nresume; i++) { /* l: last look, d: copied, n: inode settled, a: atomic */
		Buf p = {0}, c = {0}, d = {0};
		resume_words(t, i, &p, &c);
		char *dir = xasprintf(".kiln/resume/%s", t->name); /* the copy's folder */
		*strrchr(dir, '/') = 0;
		buf_shell_quote(&d, dir);
		buf_printf(b, "mkdir -p %s; l%d=; a%d=; n%d=$(stat -c %%i -- %s 2>/dev/null); d%d=; "
			   "[ \"$(stat -c '%%s %%.9Y' -- %s 2>/dev/null)\" = \"$(stat -c '%%s %%.9Y' -- %s 2>/dev/null)\" ] && "
			   "d%d=$(stat -c '%%i %%s %%.9Y' -- %s 2>/dev/null)\n",
			   d.data, i, i, i, p.data, i, p.data, c.data, i, p.data);
		free(dir);
		buf_free(&d);
		buf_free(&p);
		buf_free(&c);
	}
	/* its nap is a child it waits for, killed with it: the `kill $kiln_watch` at the
	 * command's end left a `sleep 1` running there for up to a second after the job */
	buf_puts(b, "trap 'kill $kiln_nap 2>/dev/null; exit 0' TERM\n"
		    "while sleep 1 & kiln_nap=$!; wait $kiln_nap; do\n"
		    "[ -z \"$kiln_me\" ] || kill -0 \"$kiln_me\" 2>/dev/null || exit 0\n");
	for (int i = 0; i < t->opts->nresume; i++) {
		Buf p = {0}, c = {0};
		resume_words(t, i, &p, &c);
		const char *P = p.data, *C = c.data;
		buf_printf(b, "[ -z \"$a%d\" ] && s=$(stat -c '%%i %%s %%.9Y' -- %s 2>/dev/null) && "
			   "if [ \"$s\" != \"$l%d\" ]; then l%d=$s; elif [ \"$s\" != \"$d%d\" ]; then "
			   "if [ -n \"$n%d\" ] && [ \"${s%%%% *}\" != \"$n%d\" ]; then a%d=1; rm -f %s; "
			   "else n%d=${s%%%% *}; z=${s#* }; z=${z%%%% *}; "
			   "f=$(df -Pk .kiln/resume | awk 'NR==2 {print $4}'); "
			   "if ! kiln_cut %s && [ \"${f:-0}\" -ge $((z / 512 + 1048576)) ] && cp -p %s %s.tmp && "
			   "[ \"$(stat -c '%%i %%s %%.9Y' -- %s)\" = \"$s\" ] && ! kiln_cut %s.tmp && mv -f %s.tmp %s; "
			   "then d%d=$s; else rm -f %s.tmp; d%d=$s; fi; fi; fi\n",
			   i, P, i, i, i, i, i, i, C, i, P, P, C, P, C, C, C, i, C, i);
		buf_free(&p);
		buf_free(&c);
	}
	buf_puts(b, "done ) </dev/null >/dev/null 2>&1 3>&- &\nkiln_watch=$!\n");
}

/* A Slurm job of a map shard copies kiln's item list to its own ({items}); started again
 * by Slurm (a requeue), it makes only the items of its list whose output is not there — and
 * the last one made before it stopped, its output removed, unless the map's outputs appear
 * whole (atomic_outputs) — as kiln's next attempt would, instead of every item again. An
 * item made after one that failed (no output) is kept too: the command works through its
 * list in order, so only the last output there can be half written. */
static void map_requeue_preamble(Buf *b, const Job *job)
{
	Buf listed = {0}, copy = {0}, outs = {0};
	char *outputs = exec_map_outputs_path(job->items_listed);
	buf_shell_quote(&listed, job->items_listed);
	buf_shell_quote(&copy, job->items_path);
	buf_shell_quote(&outs, outputs);
	free(outputs);
	buf_printf(b, "if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then\n"
		      "n=0; l=0; m=; while IFS= read -r o; do n=$((n + 1)); [ -n \"$o\" ] && [ -e \"$o\" ] && l=$n; done < %s\n",
		   outs.data);
	if (!job->task->more->shard->atomic_outputs) /* the last one there may be half written */
		buf_printf(b, "if [ $l -gt 0 ]; then rm -rf -- \"$(sed -n \"${l}p\" %s)\"; m=\" (item $l of the list, the last made, is made "
			      "again: its output may be half written)\"; fi\n", outs.data);
	buf_printf(b, "k=0; while IFS= read -r it; do IFS= read -r o <&8; if [ -n \"$o\" ] && [ -e \"$o\" ]; then "
		      "k=$((k + 1)); else printf '%%s\\n' \"$it\"; fi; done < %s 8< %s > %s.tmp && mv -f %s.tmp %s || exit 1\n"
		      "echo \"kiln: Slurm started this job again: $k of the $n items of its list were made before it stopped "
		      "and are kept$m; it makes the other $((n - k))\" >&2\n"
		      "else cp %s %s || exit 1; fi\n",
		   listed.data, outs.data, copy.data, copy.data, copy.data, listed.data, copy.data);
	buf_free(&listed);
	buf_free(&copy);
	buf_free(&outs);
}

static const struct {
	const char *name;
	int sig;
} stop_signals[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
		    {"USR2", SIGUSR2}};

void exec_stop_traps(Buf *b, int record)
{
	for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++) {
		int code = 128 + stop_signals[i].sig;
		if (record)
			buf_printf(b, "trap 'kiln_end \"%d stopped\"; exit %d' %s; ", code, code, stop_signals[i].name);
		else
			buf_printf(b, "trap 'exit %d' %s; ", code, stop_signals[i].name);
	}
}

const char *exec_signal_name(int sig)
{
	for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++)
		if (stop_signals[i].sig == sig)
			return stop_signals[i].name;
	return sig == SIGKILL ? "KILL" : "TERM";
}

/* A Slurm job's exit file, written whole (a rename) by kiln_end: its command's status, and
 * " stopped" where a stop's signal (scancel, a time limit, preemption) came in. Slurm calls
 * a cancelled job ended at once while its processes still have KillWait to quit: a stop
 * that lands before the command ends the script here, said so; once the command runs, the
 * signal is only noted, and the script waits for it (the command's save lands before the
 * exit file, which kiln waits for before it calls the job ended: slurm_queue.c). */
static void stop_traps(Buf *b, const char *exit_path)
{
	Buf e = {0}, tmp = {0};
	buf_shell_quote(&e, exit_path);
	char *t = xasprintf("%s.tmp", exit_path);
	buf_shell_quote(&tmp, t);
	free(t);
	buf_printf(b, "kiln_top=$PWD\nkiln_end() { printf '%%s\\n' \"$1\" > \"$kiln_top\"/%s && mv -f \"$kiln_top\"/%s "
		      "\"$kiln_top\"/%s; }\n",
		   tmp.data, tmp.data, e.data);
	exec_stop_traps(b, 1);
	buf_putc(b, '\n');
	buf_free(&e);
	buf_free(&tmp);
}

int exec_script_passes_stops(const Task *t)
{
	return !t->opts->torchrun && !(launch_wraps(t) && t->opts->rank_nodes > 1);
}

/* The end of a Slurm job script that passes its stops on (exec_script_passes_stops): the
 * command in a session of its own (its SIGINT and SIGQUIT at their defaults), this shell
 * waiting for it; a stop's signal, sent to this shell alone (scancel --batch), is passed
 * to each of the command's processes once by kiln_kill, as a local attempt's stop is
 * (os_signal_attempt): a torchrun's workers, a timeout, a pipe's filters and a Python
 * trainer's DataLoader workers left to what tells them. Sent to every process of the job
 * (a plain scancel), a trainer's DataLoader worker died of it and PyTorch raised that
 * inside the trainer's save handler: the checkpoint lost. The shell then waits on for the
 * command's end, which is the job's, marked stopped. */
static void passed_stop_command(Buf *b, const Job *job)
{
	const Task *t = job->task;
	buf_puts(b, EXEC_KILL_FN EXEC_DFL_SETUP "kiln_stop=; kiln_sig=; ");
	for (const char *s = EXEC_STOP_SIGNALS; *s;) {
		size_t n = strcspn(s, " ");
		buf_printf(b, "trap 'kiln_stop=\" stopped\"; kiln_sig=%.*s' %.*s; ", (int)n, s, (int)n, s);
		s += n + (s[n] == ' ');
	}
	buf_puts(b, "\nsetsid $kiln_dfl ");
	if (task_shell(t)) { /* its sh outlives the signal, waits for its command, then ends:
			       * a command that saves when told to stop is waited for */
		Buf inner = {0};
		exec_stop_traps(&inner, 0);
		buf_puts(&inner, "eval ");
		quote_expanded(&inner, task_shell(t), job, 1);
		buf_shell_quote(b, task_shell_program(t));
		buf_puts(b, " -c ");
		buf_shell_quote(b, buf_str(&inner));
		buf_free(&inner);
	} else {
		for (int i = 0; task_word(t, i); i++) {
			if (i)
				buf_putc(b, ' ');
			quote_expanded(b, exec_argv_word(t, i), job, 0);
		}
	}
	/* wait ends at the command's end, or early at a trapped signal: then passed on, and
	 * waited for again (a signal after the command ended finds it done: its end stands) */
	buf_puts(b, " </dev/null &\nkiln_cmd=$!\n"
		    "while :; do wait $kiln_cmd; rc=$?; [ -n \"$kiln_sig\" ] && kill -0 $kiln_cmd 2>/dev/null || break; "
		    "kiln_kill $kiln_sig $kiln_cmd; kiln_sig=; done\n"
		    "trap '' " EXEC_STOP_SIGNALS "\nkiln_end \"$rc$kiln_stop\"\nexit $rc\n");
}

char *exec_job_script(const Job *job, const char *workspace, const char *exit_path, int remote, const char *prelude,
		      const char *go_path)
{
	const Task *t = job->task;
	Buf b = {0};
	buf_puts(&b, "#!/bin/sh\n# written by kiln for task ");
	buf_puts(&b, t->name);
	buf_puts(&b, "\ncd ");
	buf_shell_quote(&b, workspace);
	buf_puts(&b, " || exit 1\n");
	if (!remote) /* Slurm: a stop before the command records itself (slurm_queue.c waits for it) */
		stop_traps(&b, exit_path);
	if (go_path) { /* before anything: without it no kiln knows this job (exec.h) */
		buf_puts(&b, "kiln_i=0; until [ -e ");
		buf_shell_quote(&b, go_path);
		buf_puts(&b, " ]; do if [ $kiln_i -ge 1200 ]; then echo 'kiln: no kiln recorded this job (killed right after it "
			     "submitted it): it ends without running' >&2; exit 0; fi; kiln_i=$((kiln_i + 1)); sleep 0.1; done\n");
	}
	if (!remote) { /* a job Slurm started again (requeued) ends with an exit file of its own */
		buf_puts(&b, "rm -f \"$kiln_top\"/");
		buf_shell_quote(&b, exit_path);
		buf_putc(&b, '\n');
	}
	if (job->items_listed && !remote)
		map_requeue_preamble(&b, job);
	int guard = remote && t->opts->nresume > 0; /* a watcher to stop with the command */
	if (t->opts->nresume > 0)
		resume_guard(&b, job, remote);
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
		/* a host's own paths (ssh): from the workspace there, by their full paths, as a
		 * command that changes directory finds them (sched_job.c) */
		if ((!strncmp(*e, "KILN_PROGRESS=", 14) || !strncmp(*e, "PET_LOG_DIR=", 12)) && eq[1] != '/')
			buf_puts(&b, "\"${kiln_top:-$PWD}\"/");
		buf_shell_quote(&b, eq + 1);
		buf_printf(&b, "; export %.*s\n", (int)(eq - *e), *e);
	}
	int task_sets_path = 0;
	for (int i = 0; i < t->more->nenv; i++) {
		buf_printf(&b, "%s=", t->more->env[i].key);
		quote_expanded(&b, t->more->env[i].value, job, 0);
		buf_printf(&b, "; export %s\n", t->more->env[i].key);
		task_sets_path |= !strcmp(t->more->env[i].key, "PATH");
	}
	if (!task_sets_path && remote) { /* kiln's tools were copied beside the workspace there */
		buf_puts(&b, "PATH=\"$PWD/.kiln/bin:$PATH\"; export PATH\n");
	} else if (!task_sets_path) {
		buf_puts(&b, "PATH=");
		buf_shell_quote(&b, exec_path_entry() + 5);
		buf_puts(&b, "; export PATH\n");
	}
	if (prelude && *prelude) { /* the host's environment first ("source X" is sh's ". X") */
		const char *text = !strncmp(prelude, "source ", 7) ? prelude + 7 : prelude;
		buf_printf(&b, "%s%s\n[ $? = 0 ] || { echo 'kiln: the prelude failed: '", text == prelude ? "" : ". ", text);
		buf_shell_quote(&b, prelude);
		buf_puts(&b, " >&2; exit 1; }\n");
	}
	if (!remote && !job->nports && t->opts->ports && !t->opts->torchrun && !launch_wraps(t))
		ports_preamble(&b, t, exit_path, top);
	/* the rendezvous found on a Slurm node; on an ssh host it is the port kiln reserved */
	if (t->opts->torchrun && !remote)
		torchrun_preamble(&b, t);
	if (launch_wraps(t) && !remote)
		ranks_preamble(&b);
	if (!remote && exec_script_passes_stops(t)) {
		passed_stop_command(&b, job);
		return b.data;
	}
	if (!remote) /* from here a stop's signal waits for the command: its save lands first */
		buf_puts(&b, "kiln_stop=; trap 'kiln_stop=\" stopped\"' " EXEC_STOP_SIGNALS "\n");
	if (t->opts->torchrun && !remote)
		torchrun_srun(&b, t);
	if (launch_wraps(t) && !remote)
		ranks_srun(&b, t);
	if (task_shell(t)) { /* a subshell of this sh, as `sh -c` would run it, one exec fewer a job.
					  * A stop's SIGTERM ends it once its command has ended: a command
					  * that saves its state when told to stop is waited for, not left
					  * writing behind a job that looks ended (a loop of the text's own
					  * stops after the step under way) */
		Buf inner = {0};
		exec_stop_traps(&inner, 0);
		buf_puts(&inner, "eval ");
		quote_expanded(&inner, task_shell(t), job, 1);
		if (t->opts->shell) { /* shell = "bash": its own process, the same traps (POSIX) */
			buf_shell_quote(&b, t->opts->shell);
			buf_puts(&b, " -c ");
			buf_shell_quote(&b, buf_str(&inner));
		} else {
			buf_printf(&b, "( %s )", buf_str(&inner));
		}
		buf_free(&inner);
	} else {
		for (int i = 0; task_word(t, i); i++) {
			if (i)
				buf_putc(&b, ' ');
			/* @kiln on an ssh host: the kiln copied there, first on its PATH (ssh_place.c) */
			quote_expanded(&b, remote && i == 0 && exec_runs_kiln(t) ? "kiln" : exec_argv_word(t, i), job, 0);
		}
	}
	/* fd 3 on an ssh host is the agent's FIFO (ssh_agent.c): the job script's, not the command's */
	/* on Slurm a signal after the command has ended finds it done: the end written is its
	 * own, unmarked (one that came while it ran marked it, its trap run before rc=) */
	buf_puts(&b, remote ? " 3>&- </dev/null\nrc=$?\n" : " </dev/null\nrc=$?; trap '' " EXEC_STOP_SIGNALS "\n");
	if (guard) /* the watcher goes with the command */
		buf_puts(&b, "kill $kiln_watch 2>/dev/null\n");
	if (remote) { /* read only once the job's group is gone (exec_ssh.c): no rename needed */
		buf_puts(&b, "printf '%s\\n' \"$rc\" > ");
		buf_puts(&b, top);
		buf_shell_quote(&b, exit_path);
		buf_puts(&b, "\nexit $rc\n");
		return b.data;
	}
	buf_puts(&b, "kiln_end \"$rc$kiln_stop\"\nexit $rc\n");
	return b.data;
}

