/* ssh_host.c — a host's connection, capacity and health (ssh_host.h). Every command goes
 * through the host's master connection (ControlMaster=auto with ControlPersist), so after
 * the first contact a command costs one round trip, not a handshake. */
#define _GNU_SOURCE
#include "ssh_host.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../base/os.h"
#include "../exec.h"

/* The devices' readings there, and the devices other kilns' jobs there hold: a job's group
 * leader carries "kiln-gpu-lease:IDS:TAG:NVIDIA-SMI" as its last argument (ssh_job.c), TAG
 * its workspace's (RecipeHost.owner_tag; this workspace's own are its leases already), the
 * nvidia-smi path naming whose devices they are (the machine's). Such a device is busy here
 * (gpu.h's "leased" lines) from its job's start, while its model still loads and uses
 * neither memory nor compute, until the job ends. Only the last word of each command line
 * is looked at: the awk and sh running this have other last words. */
static void gpu_query(Buf *b, const SshHost *h)
{
	buf_puts(b, "nvidia-smi --query-gpu=index,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits && "
		    "{ ps -eww -o args= 2>/dev/null | awk -v p=\"$(command -v nvidia-smi)\" -v t=");
	buf_shell_quote(b, h->spec->owner_tag ? h->spec->owner_tag : "");
	buf_puts(b, " '$NF ~ /^kiln-gpu-lease:/ { if (split($NF, f, \":\") == 4 && f[4] == p && f[3] != t) "
		    "print \"leased \" f[2] }'; true; }");
}

/* ssh's flags for h; mode is what to ask of the master connection: "" a command through
 * it (a direct connection if it is gone), "-O" one of its control commands, "-M" start it. */
static char **argv_with(const SshHost *h, const char *mode, const char *remote)
{
	static char *const fixed[] = {"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
				      "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"};
	enum { NFIXED = sizeof fixed / sizeof *fixed };
	char **argv = xmalloc((NFIXED + 12 + (size_t)h->spec->nssh) * sizeof *argv);
	int n = 0;
	for (int i = 0; i < NFIXED; i++)
		argv[n++] = fixed[i];
	argv[n++] = "-o";
	argv[n++] = h->control_path;
	if (!strcmp(mode, "-M")) {
		/* -f: it goes to the background once authenticated, keeping none of our pipes */
		static char *const master[] = {"-o", "ControlMaster=yes", "-o", "ControlPersist=60", "-N", "-f"};
		for (int i = 0; i < 6; i++)
			argv[n++] = master[i];
	} else if (!strcmp(mode, "-O")) {
		argv[n++] = "-O";
		argv[n++] = (char *)remote; /* "check", "exit" */
		remote = NULL;
	} else {
		argv[n++] = "-o";
		argv[n++] = "ControlMaster=no";
	}
	for (int i = 0; i < h->spec->nssh; i++)
		argv[n++] = (char *)h->spec->ssh[i];
	argv[n++] = (char *)h->spec->address;
	if (remote)
		argv[n++] = (char *)remote;
	argv[n] = NULL;
	return argv;
}

char **ssh_argv(const SshHost *h, const char *remote) { return argv_with(h, "", remote); }

/* Waits for a watched child of ours (os_children_watch) to end, reaping as it goes. */
static void wait_child(pid_t pid, int *status)
{
	while (!os_children_take(pid, status)) {
		struct timespec pause = {0, 2000000};
		nanosleep(&pause, NULL);
		os_children_reap();
	}
}

/* Starts h's master connection (its log beside its socket): the local ssh's pid, or -1. */
static pid_t master_start(SshHost *h)
{
	unlink(h->control_path + strlen("ControlPath=")); /* a stale socket of a dead master */
	char *log = xasprintf("%s.log", h->control_path + strlen("ControlPath="));
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	free(log);
	char **argv = argv_with(h, "-M", NULL);
	pid_t pid = fd >= 0 ? ssh_spawn_local(argv, fd, fd) : -1;
	free(argv);
	if (fd >= 0)
		close(fd);
	return pid;
}

/* Waits for the master started as pid: 0 when it runs, or -1 with ssh's complaint in err. */
static int master_started(SshHost *h, pid_t pid, Buf *err)
{
	int status = -1;
	if (pid > 0)
		wait_child(pid, &status);
	if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	char *log = xasprintf("%s.log", h->control_path + strlen("ControlPath="));
	size_t len;
	char *text = read_file(log, &len);
	buf_puts(err, text && *text ? text : "ssh failed");
	while (err->len && (err->data[err->len - 1] == '\n' || err->data[err->len - 1] == '\r'))
		err->data[--err->len] = 0;
	free(text);
	free(log);
	return -1;
}

/* Makes sure h's master connection runs (one handshake per host, reused by every command):
 * 0, or -1 with ssh's complaint in err. */
static int ensure_master(SshHost *h, Buf *err)
{
	char **check = argv_with(h, "-O", "check");
	int rc = ssh_run_local(check, NULL, NULL);
	free(check);
	return rc == 0 ? 0 : master_started(h, master_start(h), err);
}

void ssh_host_close(SshHost *h)
{
	char **argv = argv_with(h, "-O", "exit");
	ssh_run_local(argv, NULL, NULL);
	free(argv);
}

char *ssh_command_text(const SshHost *h)
{
	char **argv = ssh_argv(h, NULL);
	Buf b = {0};
	for (int i = 0; argv[i + 1]; i++) { /* rsync appends the destination itself */
		if (i)
			buf_putc(&b, ' ');
		buf_shell_quote(&b, argv[i]);
	}
	free(argv);
	return b.data;
}

/* The remote shell may be anyone's (bash, zsh, fish): the script runs under sh there. */
static char *wrap_remote(const char *script)
{
	Buf b = {0};
	buf_puts(&b, "exec /bin/sh -c ");
	buf_shell_quote(&b, script);
	return b.data;
}

char *ssh_spawn_text(const SshHost *h, const char *script)
{
	char **argv = ssh_argv(h, NULL), *wrapped = wrap_remote(script);
	Buf b = {0};
	for (int i = 0; argv[i + 1]; i++) { /* the address last, then the script */
		buf_shell_quote(&b, argv[i]);
		buf_putc(&b, ' ');
	}
	buf_puts(&b, "-- ");
	buf_shell_quote(&b, h->spec->address);
	buf_putc(&b, ' ');
	buf_shell_quote(&b, wrapped);
	free(argv);
	free(wrapped);
	return b.data;
}

pid_t ssh_spawn_local(char *const argv[], int out_fd, int err_fd)
{
	pid_t pid;
	/* a group of its own: a kiln started after a kill -9 stops the helpers the dead one
	 * left (by the workspace marker they carry, exec_ssh_new) without touching anything else */
	OsSpawn spawn = {.argv = argv, .stdin_null = 1, .out_fd = out_fd, .err_fd = err_fd, .new_group = 1};
	if (os_spawn(&spawn, &pid) != 0)
		return -1;
	os_children_watch(pid);
	return pid;
}

/* Runs (out/err given: to its end) or spawns (to the fds) remote there under sh. */
static long long remote_command(SshHost *h, const char *remote, int out_fd, int err_fd, Buf *out, Buf *err, int wait)
{
	char *wrapped = wrap_remote(remote);
	char **argv = ssh_argv(h, wrapped);
	long long rc = wait ? ssh_run_local(argv, out, err) : ssh_spawn_local(argv, out_fd, err_fd);
	free(argv);
	free(wrapped);
	return rc;
}

pid_t ssh_spawn(SshHost *h, const char *remote, int out_fd, int err_fd)
{
	return (pid_t)remote_command(h, remote, out_fd, err_fd, NULL, NULL, 0);
}

int ssh_run_local(char *const argv[], Buf *out, Buf *err) { return os_run(argv, 1, out, err); }

int ssh_run(SshHost *h, const char *remote, Buf *out, Buf *err)
{
	return (int)remote_command(h, remote, -1, -1, out, err, 1);
}

void ssh_run_each(SshHost **hosts, char **scripts, int n)
{
	pid_t *pids = xcalloc((size_t)n + 1, sizeof *pids);
	for (int i = 0; i < n; i++)
		pids[i] = scripts[i] ? ssh_spawn(hosts[i], scripts[i], -1, -1) : -1;
	for (int i = 0; i < n; i++) {
		int status;
		if (pids[i] > 0)
			wait_child(pids[i], &status);
	}
	free(pids);
}

/* The GPU readings' text on each refresh (gpu.h's reader): the first contact's, then those of
 * the reading the refresh before started, and the next reading starts. A refresh never waits
 * on the host: a round trip there (a slow network, a host gone silent: up to ssh's 15 s of
 * keep-alives) held up every other host's starts and ends, and with a few dozen hosts the
 * refreshes of one placement pass took longer than the second between them. Until a reading
 * is in, the last ones stand (a lease is kiln's own; only foreign load is read). */
static int read_gpus(void *ctx, Buf *out)
{
	SshHost *h = ctx;
	if (h->gpus_first) { /* the first contact's readings, read moments ago */
		buf_puts(out, h->gpus_first);
		free(h->gpus_first);
		h->gpus_first = NULL;
		return 0;
	}
	int rc = ssh_reader_take(&h->gpu_read, out);
	if (rc == 1)
		return -1;
	if (!h->down) {
		Buf query = {0};
		gpu_query(&query, h);
		ssh_reader_ask(h, &h->gpu_read, buf_str(&query));
		buf_free(&query);
	}
	return rc;
}

void ssh_host_failed(SshHost *h, const char *why)
{
	snprintf(h->last_error, sizeof h->last_error, "%.*s", (int)strcspn(why, "\r\n"), why);
	h->failures_in_a_row++;
	if (h->failures_in_a_row < HOST_DOWN_AFTER && h->connected)
		return;
	int backoff = HOST_RETRY_FIRST_SEC;
	for (int i = HOST_DOWN_AFTER; i < h->failures_in_a_row && backoff < HOST_RETRY_MAX_SEC; i++)
		backoff *= 2;
	if (backoff > HOST_RETRY_MAX_SEC)
		backoff = HOST_RETRY_MAX_SEC;
	if (h->stale_jobs.len && backoff > HOST_RETRY_STALE_SEC)
		backoff = HOST_RETRY_STALE_SEC;
	h->failed_ns = now_mono_ns();
	if (!h->down)
		h->down_since_ns = h->failed_ns;
	h->down = 1;
	h->retry_at_ns = now_mono_ns() + (int64_t)backoff * 1000000000LL;
}

void ssh_host_ok(SshHost *h) { h->failures_in_a_row = 0; }

/* The first contact's script: the workdir made, its absolute path, CPUs, memory, kiln's
 * tools there, the GPUs, and (once a run) the jobs an earlier kiln left. malloc'd. */
static char *contact_script(const SshHost *h)
{
	Buf script = {0};
	/* a relative workdir is under $HOME (cd's own), wherever sshd's command starts */
	buf_puts(&script, "cd 2>/dev/null; mkdir -p ");
	buf_shell_quote(&script, h->spec->workdir);
	buf_puts(&script, " && cd ");
	buf_shell_quote(&script, h->spec->workdir);
	buf_puts(&script, " && mkdir -p .kiln/jobs .kiln/bin && ");
	/* whose copy it holds: the first workspace to use it, said in .kiln/owner. Another's is
	 * refused before anything there is looked at: its jobs would be this workspace's to stop
	 * (no attempt here names them), and its tasks' outputs this one's to overwrite */
	buf_puts(&script, "o=");
	buf_shell_quote(&script, h->spec->owner ? h->spec->owner : "");
	buf_puts(&script, "; if [ -s .kiln/owner ]; then IFS= read -r w < .kiln/owner; else w=$o; printf '%s\n' \"$o\" > .kiln/owner; fi; "
			  "[ \"$w\" = \"$o\" ] || { printf 'workdir %s holds the copy of workspace %s: give each its own (hosts{} workdir = "
			  "\"/data/{workspace}\", as the default is), or remove .kiln/owner there if that one moved here\\n' \"$PWD\" \"$w\" >&2; "
			  "exit 3; } && { ");
	ssh_host_stop_stale(h, &script, 1); /* their work went elsewhere: which ran on or finished */
	/* kiln's tee first on the jobs' PATH there (exec.h); without it, the host's own */
	buf_puts(&script, "{ printf '%s' ");
	buf_shell_quote(&script, exec_tee_shim());
	buf_puts(&script, " > .kiln/bin/tee.new && chmod 755 .kiln/bin/tee.new && mv -f .kiln/bin/tee.new .kiln/bin/tee; } "
			  "2>/dev/null; ");
	buf_puts(&script, "true; } && pwd && (nproc 2>/dev/null || echo 1) && "
			  "(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null || echo 0) && "
			  /* kiln's tools there, as rsync's quick check sees them: a run copies them only if changed */
			  "{ printf 'tools '; (cd .kiln/bin && stat -c '%n:%s:%Y' -- * 2>/dev/null) | tr '\\n' ' '; echo; } && "
			  "{ { ");
	gpu_query(&script, h);
	buf_puts(&script, "; } 2>/dev/null || true; }");
	if (h->stale_jobs.len)
		buf_puts(&script, " && echo \"KILN-STALE$S\"");
	if (h->listing_script && !h->listing) { /* the recorded copies there (ssh_place.c) */
		buf_puts(&script, " && { echo KILN-LISTING; ");
		buf_puts(&script, h->listing_script);
		buf_puts(&script, "true; }");
	}
	if (!h->swept) { /* the jobs an earlier kiln left there, listed in the same command */
		buf_puts(&script, " && { echo KILN-SWEEP; ");
		buf_puts(&script, ssh_sweep_listing);
		buf_puts(&script, "; }");
	}
	return script.data;
}

/* What the first contact (exit status rc) printed: 0, or -1 when it failed (counted
 * against the host, said in err). */
static int contact_read(SshHost *h, int rc, Buf *out, Buf *errout, double busy_mem, double busy_util, Buf *err)
{
	if (rc != 0) {
		char why[512];
		snprintf(why, sizeof why, "%s", errout->len ? buf_str(errout) : rc == 255 ? "ssh failed" : "cannot make the workdir");
		ssh_host_failed(h, why);
		buf_printf(err, "%s: %s", h->spec->name, h->last_error);
		buf_free(out);
		buf_free(errout);
		return -1;
	}
	buf_free(errout);
	char *sweep = out->data ? strstr(out->data, "KILN-SWEEP\n") : NULL;
	if (sweep) {
		free(h->sweep_found);
		h->sweep_found = xstrdup(sweep + 11);
		*sweep = 0;
	}
	char *listed = out->data ? strstr(out->data, "KILN-LISTING\n") : NULL;
	if (listed) {
		if (!h->listing)
			h->listing = xstrdup(listed + 13);
		*listed = 0;
	}
	char *stale = out->data ? strstr(out->data, "KILN-STALE") : NULL;
	if (stale) { /* " ID ...": the executor settles them (ssh_settle_kept) */
		buf_printf(&h->stale_kept, "%.*s", (int)strcspn(stale + 10, "\n"), stale + 10);
		*stale = 0;
	}
	free(h->listing_script); /* asked (no answer: read later with a command of its own) */
	h->listing_script = NULL;
	char *lines = out->data, *save = NULL;
	char *home = strtok_r(lines, "\n", &save), *nproc = strtok_r(NULL, "\n", &save), *mem = strtok_r(NULL, "\n", &save);
	char *tools = strtok_r(NULL, "\n", &save);
	char *gpu_text = save && *save ? save : NULL;
	free(h->tools_there);
	h->tools_there = tools && !strncmp(tools, "tools ", 6) ? xasprintf(" %s ", tools + 6) : NULL;
	free(h->home_workdir);
	h->home_workdir = xstrdup(home ? home : h->spec->workdir);
	if (!h->connected) { /* capacity, once: a host that comes back keeps its counts */
		int cores = nproc ? atoi(nproc) : 1;
		h->cpus = h->spec->cpus ? h->spec->cpus : cores > 0 ? cores : 1;
		h->mem_mib = h->spec->mem_mib ? h->spec->mem_mib : mem ? atoll(mem) : 0;
		if (gpu_text) {
			h->gpus_first = xstrdup(gpu_text);
			h->gpus = gpu_pool_from_reader(read_gpus, h, h->spec->name, err);
		}
		else if (h->spec->gpus)
			h->gpus = gpu_pool_from_list(h->spec->gpus, err);
		if (h->gpus && h->spec->gpus && gpu_text && gpu_pool_restrict(h->gpus, h->spec->gpus, "hosts{} gpus", err) != 0) {
			gpu_pool_free(h->gpus);
			h->gpus = NULL;
		}
		if (h->gpus)
			gpu_set_busy_threshold(h->gpus, busy_mem, busy_util);
		h->jobs = h->spec->jobs ? h->spec->jobs : h->cpus + gpu_count(h->gpus);
		h->free_jobs = h->jobs;
		h->free_cpus = h->cpus;
		h->free_mem = h->mem_mib;
	}
	buf_free(out);
	h->connected = 1;
	h->down = 0;
	h->down_since_ns = 0;
	buf_reset(&h->stale_jobs); /* stopped by the script just run, or found finished (stale_kept) */
	buf_reset(&h->stale_logged);
	h->failures_in_a_row = 0;
	return 0;
}


void ssh_hosts_connect(SshHost **hosts, int n, double busy_mem, double busy_util)
{
	pid_t *pid = xcalloc((size_t)n + 1, sizeof *pid);
	int *up = xcalloc((size_t)n + 1, sizeof *up);
	int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
	for (int i = 0; i < n; i++) { /* the masters checked, then those not running started */
		char **check = argv_with(hosts[i], "-O", "check");
		pid[i] = ssh_spawn_local(check, quiet, quiet);
		free(check);
	}
	int64_t first_in = 0; /* when the first master was found or made */
	for (int i = 0; i < n; i++) {
		int status = -1;
		if (pid[i] > 0)
			wait_child(pid[i], &status);
		up[i] = pid[i] > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
		pid[i] = up[i] ? 0 : master_start(hosts[i]);
		if (up[i] && !first_in)
			first_in = now_mono_ns();
	}
	if (quiet >= 0)
		close(quiet);
	/* the new masters' answers; a host still silent a second after the first one is in goes
	 * on connecting in the background (ssh_host_connect takes its answer) while the run
	 * starts on the others: one that drops packets would hold every start for ssh's 5 s */
	for (int pending = 1; pending;) {
		pending = 0;
		os_children_reap();
		for (int i = 0; i < n; i++) {
			int status = -1;
			if (up[i] || pid[i] == 0)
				continue;
			if (pid[i] > 0 && !os_children_take(pid[i], &status)) {
				pending = 1;
				continue;
			}
			up[i] = pid[i] > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
			pid[i] = 0;
			Buf why = {0};
			if (up[i] && !first_in)
				first_in = now_mono_ns();
			else if (!up[i] && master_started(hosts[i], -1, &why))
				ssh_host_failed(hosts[i], buf_str(&why));
			buf_free(&why);
		}
		if (pending && first_in && now_mono_ns() - first_in > 1000000000LL) {
			for (int i = 0; i < n; i++)
				if (!up[i] && pid[i] > 0) {
					hosts[i]->probe_pid = pid[i];
					pid[i] = 0;
				}
			pending = 0;
		} else if (pending) {
			struct timespec pause = {0, 2000000};
			nanosleep(&pause, NULL);
		}
	}
	char **paths = xcalloc(2 * (size_t)n + 1, sizeof *paths); /* each contact's stdout and stderr */
	for (int i = 0; i < n; i++) {
		pid[i] = -1;
		if (!up[i])
			continue;
		paths[2 * i] = xasprintf("%s.out", hosts[i]->control_path + strlen("ControlPath="));
		paths[2 * i + 1] = xasprintf("%s.err", hosts[i]->control_path + strlen("ControlPath="));
		int out = open(paths[2 * i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int err = open(paths[2 * i + 1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		char *script = contact_script(hosts[i]);
		pid[i] = out >= 0 && err >= 0 ? ssh_spawn(hosts[i], script, out, err) : -1;
		free(script);
		if (out >= 0)
			close(out);
		if (err >= 0)
			close(err);
	}
	for (int i = 0; i < n; i++) {
		if (!up[i])
			continue;
		int status = -1;
		if (pid[i] > 0)
			wait_child(pid[i], &status);
		Buf out = {0}, errout = {0}, err = {0};
		size_t len;
		char *text = read_file(paths[2 * i], &len), *complaint = read_file(paths[2 * i + 1], &len);
		buf_puts(&out, text ? text : "");
		buf_puts(&errout, complaint ? complaint : "");
		free(text);
		free(complaint);
		int rc = pid[i] > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : 255;
		contact_read(hosts[i], rc, &out, &errout, busy_mem, busy_util, &err);
		buf_free(&err);
	}
	for (int i = 0; i < 2 * n; i++)
		free(paths[i]);
	free(paths);
	free(pid);
	free(up);
}

/* A down host's retry, in the background: 1 while its master connection is being made, 0
 * when it runs, -1 when it failed (ssh's complaint in err). */
static int probe(SshHost *h, Buf *err)
{
	if (h->probe_pid <= 0) {
		char **check = argv_with(h, "-O", "check"); /* a local question to a master still there */
		int rc = ssh_run_local(check, NULL, NULL);
		free(check);
		if (rc == 0)
			return 0;
		h->probe_pid = master_start(h);
		return h->probe_pid > 0 ? 1 : master_started(h, -1, err);
	}
	int status;
	os_children_reap();
	if (!os_children_take(h->probe_pid, &status))
		return 1;
	h->probe_pid = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return master_started(h, -1, err);
}

int ssh_host_connect(SshHost *h, double busy_mem, double busy_util, Buf *err)
{
	if (h->connected && !h->down)
		return 0;
	if (h->down && now_mono_ns() < h->retry_at_ns)
		return -1;
	Buf out = {0}, errout = {0};
	int tried = h->down || h->probe_pid > 0 ? probe(h, &errout) : ensure_master(h, &errout);
	if (tried == 1) { /* still trying: it stays down meanwhile */
		buf_printf(err, "%s: %s", h->spec->name, h->last_error);
		return -1;
	}
	if (tried != 0) {
		ssh_host_failed(h, buf_str(&errout));
		buf_printf(err, "%s: %s", h->spec->name, h->last_error);
		buf_free(&errout);
		return -1;
	}
	char *script = contact_script(h);
	int rc = ssh_run(h, script, &out, &errout);
	free(script);
	return contact_read(h, rc, &out, &errout, busy_mem, busy_util, err);
}

int ssh_host_connect_soon(SshHost *h, double busy_mem, double busy_util, Buf *err)
{
	if (!h->connected && !h->down && h->probe_pid <= 0) { /* its first contact: started, not waited for */
		Buf why = {0};
		int tried = probe(h, &why);
		if (tried != 0) {
			if (tried < 0)
				ssh_host_failed(h, buf_str(&why));
			buf_printf(err, "%s: %s", h->spec->name, tried < 0 ? h->last_error : "connecting");
			buf_free(&why);
			return -1;
		}
		buf_free(&why); /* a master already there: the contact itself follows */
	}
	return ssh_host_connect(h, busy_mem, busy_util, err);
}

int ssh_host_connect_wait(SshHost *h, double busy_mem, double busy_util, Buf *err)
{
	int rc;
	while ((rc = ssh_host_connect(h, busy_mem, busy_util, err)) != 0 && h->probe_pid > 0) {
		struct timespec pause = {0, 5000000};
		nanosleep(&pause, NULL);
		buf_reset(err);
	}
	return rc;
}

static const char *word_at(const Buf *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list->data ? list->data : ""; (p = strstr(p, word)); p += n)
		if (p > list->data && p[-1] == ' ' && (p[n] == ' ' || !p[n]))
			return p;
	return NULL;
}

int ssh_word_in(const Buf *list, const char *word) { return word_at(list, word) != NULL; }

void ssh_word_drop(Buf *list, const char *word)
{
	const char *p = word_at(list, word);
	if (!p)
		return;
	size_t at = (size_t)(p - 1 - list->data), n = strlen(word) + 1; /* with its space */
	memmove(list->data + at, list->data + at + n, list->len - at - n + 1);
	list->len -= n;
}

void ssh_kill_job(Buf *b, const char *sig, const char *id, int id_len)
{
	buf_printf(b, "kiln_kill %s \"$(cat .kiln/jobs/%.*s/pid 2>/dev/null)\"; ", sig, id_len, id);
}

void ssh_host_stop_stale(const SshHost *h, Buf *script, int ask)
{
	if (h->stale_jobs.len || (!ask && h->stale_kept.len)) /* a statement of a { } list */
		buf_puts(script, EXEC_KILL_FN);
	if (ask && h->stale_jobs.len)
		buf_puts(script, "S=; ");
	for (const char *p = h->stale_jobs.data ? h->stale_jobs.data : ""; *p == ' ';) {
		int n = (int)strcspn(p + 1, " ");
		char id[64];
		snprintf(id, sizeof id, "%.*s", n, p + 1);
		/* one whose progress can be compared (its KILN_PROGRESS, or its log's when its task
		 * reads progress there) is kept running for ssh_settle_kept to decide */
		const char *progress = ssh_word_in(&h->stale_logged, id) ? "-s $J/progress -o -s $J/log" : "-s $J/progress";
		if (ask) /* J: the job's folder; p: its process group, where it runs on */
			buf_printf(script, "J=.kiln/jobs/%.*s; if [ -f $J/exit ] && read rc < $J/exit && [ \"$rc\" = 0 ]; then "
					   "S=\"$S %.*s\"; elif [ %s ] && read p 2>/dev/null < $J/pid && kill -0 -$p "
					   "2>/dev/null; then S=\"$S live:%.*s\"; else ", n, p + 1, n, p + 1, progress, n, p + 1);
		ssh_kill_job(script, "TERM", p + 1, n);
		if (ask)
			buf_puts(script, "fi; ");
		p += 1 + n;
	}
	for (const char *p = h->stale_kept.data ? h->stale_kept.data : ""; !ask && *p == ' ';) {
		int n = (int)strcspn(p + 1, " ");
		if (!strncmp(p + 1, "live:", 5)) /* not settled yet: stopped all the same */
			ssh_kill_job(script, "TERM", p + 6, n - 5);
		p += 1 + n;
	}
}

void ssh_host_free(SshHost *h)
{
	if (h->probe_pid > 0) /* a retry still connecting: the run is over */
		kill(h->probe_pid, SIGKILL);
	ssh_reader_stop(&h->gpu_read); /* a reading no refresh took */
	ssh_reader_stop(&h->progress_read);
	gpu_pool_free(h->gpus);
	free(h->control_path);
	free(h->home_workdir);
	free(h->listing);
	free(h->listing_script);
	free(h->tools_there);
	free(h->sweep_found);
	free(h->gpus_first);
	buf_free(&h->ended_jobs);
	buf_free(&h->stale_jobs);
	buf_free(&h->stale_logged);
	buf_free(&h->stale_kept);
	strmap_free_owned(&h->copied);
	strmap_free_owned(&h->made);
	strmap_free_owned(&h->in_flight);
}

int ssh_host_allows(const SshHost *h, const Task *t)
{
	if (!t->opts->nhosts)
		return 1;
	for (int i = 0; i < t->opts->nhosts; i++)
		if (!strcmp(t->opts->hosts[i], h->spec->name))
			return 1;
	return 0;
}

int ssh_host_task_cpus(const Task *t, const SshHost *h) { return t->opts->cpus < h->cpus ? t->opts->cpus : h->cpus; }

void ssh_host_print_summary(const SshHost *h, int held)
{
	char gpu_time[32];
	format_duration(h->gpu_sec, gpu_time, sizeof gpu_time);
	printf("kiln: host %s: %d done, %d failed", h->spec->name, h->ran, h->failed);
	if (h->unplaced)
		printf(", %d failed waiting for it (host-down)", h->unplaced);
	if (h->lost && !h->taken_up)
		printf(", %d lost with it and run again", h->lost);
	else if (h->lost && h->lost == h->taken_up)
		printf(", %d lost with it and taken up again (%s on there)", h->lost, h->lost == 1 ? "it ran" : "they ran");
	else if (h->lost)
		printf(", %d lost with it: %d taken up again (they ran on there), %d run again", h->lost, h->taken_up,
		       h->lost - h->taken_up);
	if (h->taken_up_earlier)
		printf(", %d lost with it before the last kiln was killed and taken up (%s on there)", h->taken_up_earlier,
		       h->taken_up_earlier == 1 ? "it ran" : "they ran");
	if (h->stopped)
		printf(", %d stopped", h->stopped);
	if (h->gpu_sec > 0)
		printf(", GPU time %s", gpu_time);
	printf(", holds %d path%s kiln copied or left there", held, held == 1 ? "" : "s");
	if (h->down)
		printf("; DOWN: %s", h->last_error);
	printf("\n");
}
