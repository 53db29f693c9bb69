/* os_fake.c — base/os.h with nothing real behind it (os_fake.h says what it scripts). */
#define _GNU_SOURCE
#include "os_fake.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../runner/exec/keeper.h"

int (*fake_attempt_status)(const FakeAttempt *a);
int (*fake_run)(char *const argv[], Buf *out, Buf *err);

/* Everything below is shared with the keeper thread: under the lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
typedef struct {
	pid_t pid;
	int watched, ended, status;
} Child;
static Child children[4096];
static int nchildren;
static FakeAttempt attempts[1024];
static int nattempts;
static pid_t next_pid = 40000;
static int pending;               /* an end to report: os_wait_event returns SIGCHLD */
static int signal_next;           /* a signal to report, once */
static Buf run_log, signal_log;

static pid_t new_child(int ended, int status)
{
	pthread_mutex_lock(&lock);
	pid_t pid = next_pid++;
	if (nchildren < (int)(sizeof children / sizeof *children))
		children[nchildren++] = (Child){pid, 0, ended, status};
	pending |= ended;
	pthread_mutex_unlock(&lock);
	return pid;
}

static void end_child(pid_t pid, int status)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < nchildren; i++)
		if (children[i].pid == pid) {
			children[i].ended = 1;
			children[i].status = status;
		}
	pending = 1;
	pthread_mutex_unlock(&lock);
}

void os_block_signals(void) {}
int os_stop_requested(void) { return 0; }
int os_notify_readable(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 ? 0 : -1; }

void fake_signal_next(int sig)
{
	pthread_mutex_lock(&lock);
	signal_next = sig;
	pthread_mutex_unlock(&lock);
}

int os_wait_event(int timeout_ms)
{
	for (int waited = 0; timeout_ms < 0 || waited <= timeout_ms; waited++) {
		pthread_mutex_lock(&lock);
		int sig = signal_next, now = sig ? 0 : pending; /* an end waits for the next call */
		signal_next = 0;
		pending = sig ? pending : 0;
		pthread_mutex_unlock(&lock);
		if (sig)
			return sig;
		if (now)
			return SIGCHLD;
		if (waited >= 200)
			return 0; /* the caller looks again: no real signal will come */
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	return 0;
}

/* ---- the keeper: a thread on the socket kiln gave kiln-keeper as its stdin ---- */

/* The NUL-terminated string at *p (within end), advancing past it; "" at the end. */
static char *next_string(const char **p, const char *end)
{
	size_t n = strnlen(*p, (size_t)(end - *p));
	char *s = strndup(*p, n);
	*p += n + (*p + n < end);
	return s;
}

static void *keeper_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t size = KEEPER_MAX_MESSAGE + 4096;
	char *msg = malloc(size);
	for (;;) {
		ssize_t n = recv(fd, msg, size, 0);
		if (n <= 0 || msg[0] == 'B')
			break;
		if (msg[0] != 'S' || n < (ssize_t)sizeof(KeeperStart))
			continue; /* 'C': ends recorded; nothing to keep */
		KeeperStart head;
		memcpy(&head, msg, sizeof head);
		const char *p = msg + sizeof head, *end = msg + n;
		FakeAttempt a = {0};
		a.log = next_string(&p, end);
		free(next_string(&p, end)); /* the exit file */
		a.cwd = next_string(&p, end);
		a.program = next_string(&p, end);
		a.argv = calloc(head.nargv + 1, sizeof *a.argv);
		for (uint32_t i = 0; i < head.nargv; i++)
			a.argv[i] = next_string(&p, end);
		a.env = calloc(head.nenv + 1, sizeof *a.env);
		for (uint32_t i = 0; i < head.nenv; i++)
			a.env[i] = next_string(&p, end);
		a.pid = new_child(0, 0);
		pthread_mutex_lock(&lock);
		if (nattempts < (int)(sizeof attempts / sizeof *attempts))
			attempts[nattempts++] = a;
		pthread_mutex_unlock(&lock);
		KeeperStarted started = {'P', head.token, (int32_t)a.pid, 1000 + a.pid};
		send(fd, &started, sizeof started, MSG_NOSIGNAL);
		int status = fake_attempt_status ? fake_attempt_status(&a) : 0;
		end_child(a.pid, status);
		KeeperEnd over = {'E', head.token, status};
		send(fd, &over, sizeof over, MSG_NOSIGNAL);
	}
	free(msg);
	close(fd);
	return NULL;
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && !strcmp(s + n - t, tail);
}

/* An asking shell (runner/exec/ssh/ssh_ask.c): each question read from its stdin runs as
 * os_run would say, as if it were the ssh's remote command, and goes back answered (its
 * output and the mark line in one write: a reader sees all of it or none). */
typedef struct {
	int in, out;
	pid_t pid;
	char **argv; /* the ssh's argv; its last entry replaced by each question */
	char mark[64];
} Asker;

static void *asker_main(void *arg)
{
	Asker *a = arg;
	FILE *in = fdopen(a->in, "r");
	size_t n;
	while (in && fscanf(in, "%zu", &n) == 1 && fgetc(in) == '\n') {
		char *question = calloc(n + 1, 1);
		if (fread(question, 1, n, in) != n) {
			free(question);
			break;
		}
		int last = 0;
		while (a->argv[last + 1])
			last++;
		char *was = a->argv[last];
		a->argv[last] = question;
		Buf out = {0}, err = {0};
		int rc = os_run(a->argv, 1, &out, &err);
		a->argv[last] = was;
		buf_printf(&out, "%s%s %d\n", out.len && out.data[out.len - 1] != '\n' ? "\n" : "", a->mark, rc < 0 ? 127 : rc);
		if (write(a->out, out.data, out.len) < 0)
			rc = -1;
		buf_free(&out);
		buf_free(&err);
		free(question);
		pthread_mutex_lock(&lock);
		pending = 1; /* an answer wakes the loop, as os_notify_readable's signal would */
		pthread_mutex_unlock(&lock);
	}
	if (in)
		fclose(in);
	close(a->out);
	end_child(a->pid, 0);
	for (int i = 0; a->argv[i]; i++)
		free(a->argv[i]);
	free(a->argv);
	free(a);
	return NULL;
}

static int start_asker(const OsSpawn *s, const char *mark, pid_t *pid)
{
	Asker *a = calloc(1, sizeof *a);
	size_t len = strcspn(mark, " \"'");
	snprintf(a->mark, sizeof a->mark, "%.*s", (int)len, mark);
	int n = 0;
	while (s->argv[n])
		n++;
	a->argv = calloc((size_t)n + 1, sizeof *a->argv);
	for (int i = 0; i < n; i++)
		a->argv[i] = strdup(s->argv[i]);
	signal(SIGPIPE, SIG_IGN); /* an answer to a reader stopped meanwhile goes nowhere */
	a->in = dup(s->in_fd); /* kiln closes its ends of the pipes once spawned */
	a->out = dup(s->out_fd);
	a->pid = *pid = new_child(0, 0);
	pthread_t thread;
	if (a->in < 0 || a->out < 0 || pthread_create(&thread, NULL, asker_main, a) != 0)
		return EAGAIN;
	pthread_detach(thread);
	return 0;
}

int os_spawn(const OsSpawn *s, pid_t *pid)
{
	const char *program = s->program ? s->program : s->argv[0];
	const char *mark;
	for (int i = 0; s->argv[i]; i++)
		if (!s->argv[i + 1] && (mark = strstr(s->argv[i], "KILN-ANSWER-")))
			return start_asker(s, mark, pid);
	if (ends_with(program, "kiln-keeper")) {
		int fd = dup(s->in_fd); /* kiln closes its end of the pair once spawned */
		pthread_t thread;
		if (fd < 0 || pthread_create(&thread, NULL, keeper_main, (void *)(intptr_t)fd) != 0)
			return EAGAIN;
		pthread_detach(thread);
		*pid = new_child(0, 0);
		return 0;
	}
	/* anything else runs as os_run would say, its output written where it goes */
	Buf out = {0}, err = {0};
	int rc = os_run(s->argv, s->new_group, &out, &err);
	if (s->out_fd >= 0 && out.len && write(s->out_fd, out.data, out.len) < 0)
		rc = 1;
	if (s->err_fd >= 0 && err.len && write(s->err_fd, err.data, err.len) < 0)
		rc = 1;
	buf_free(&out);
	buf_free(&err);
	*pid = new_child(1, (rc < 0 ? 127 : rc) << 8);
	return 0;
}

void os_children_watch(pid_t pid)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < nchildren; i++)
		if (children[i].pid == pid)
			children[i].watched = 1;
	pthread_mutex_unlock(&lock);
}

void os_children_reap(void) {}

int os_children_adopt(pid_t pid)
{
	os_children_watch(pid);
	return 1;
}

int os_children_take(pid_t pid, int *status)
{
	int taken = 0;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < nchildren; i++)
		if (children[i].pid == pid && children[i].watched && children[i].ended) {
			*status = children[i].status;
			children[i] = children[--nchildren];
			taken = 1;
			break;
		}
	pthread_mutex_unlock(&lock);
	return taken;
}

int os_run(char *const argv[], int new_group, Buf *out, Buf *err)
{
	(void)new_group;
	pthread_mutex_lock(&lock);
	for (int i = 0; argv[i]; i++)
		buf_printf(&run_log, "%s%s", i ? " " : "", argv[i]);
	buf_putc(&run_log, '\n');
	pthread_mutex_unlock(&lock);
	return fake_run ? fake_run(argv, out, err) : 0;
}

int os_signal(pid_t pid, int sig)
{
	pthread_mutex_lock(&lock);
	buf_printf(&signal_log, "%d:%d ", (int)pid, sig);
	pthread_mutex_unlock(&lock);
	if (sig == 0) { /* "is it there?": a fake group never is once its attempt ended */
		errno = ESRCH;
		return -1;
	}
	return 0;
}

int os_signal_attempt(pid_t leader, int sig) { return os_signal(-leader, sig); }
int os_attempt_alive(pid_t leader, pid_t *hint) { (void)hint; return os_signal(-leader, 0) == 0; }
int os_become_subreaper(void) { return 0; }
int os_program_found(const char *name) { (void)name; return 1; }
int os_attempt_freeze(pid_t leader, int timeout_ms) { (void)leader, (void)timeout_ms; return -1; }
/* fake processes hold no files: "cannot tell", so a stopped shard's last item is redone */
int os_attempt_uses(pid_t leader, const char *const *paths, int npaths) { (void)leader, (void)paths, (void)npaths; return -1; }

long long os_process_start(pid_t pid)
{
	long long start = -1;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < nchildren; i++)
		if (children[i].pid == pid && !children[i].ended)
			start = 1000 + pid;
	pthread_mutex_unlock(&lock);
	return start;
}

int os_cpu_count(void) { return 4; }
long long os_memory_mib(void) { return 16384; }
int os_isatty(int fd) { (void)fd; return 0; }
const char *os_hostname(void) { return "fakehost"; }

pid_t fake_live_process(void) { return new_child(0, 0); }

int fake_attempt_count(void)
{
	pthread_mutex_lock(&lock);
	int n = nattempts;
	pthread_mutex_unlock(&lock);
	return n;
}

const FakeAttempt *fake_attempt(int i) { return i >= 0 && i < fake_attempt_count() ? &attempts[i] : NULL; }

const char *fake_attempt_env(const FakeAttempt *a, const char *name)
{
	size_t n = strlen(name);
	for (char **e = a->env; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

const char *fake_run_log(void) { return buf_str(&run_log); }
const char *fake_signal_log(void) { return buf_str(&signal_log); }

void fake_reset(void)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < nattempts; i++) {
		FakeAttempt *a = &attempts[i];
		for (char **w = a->argv; w && *w; w++)
			free(*w);
		for (char **e = a->env; e && *e; e++)
			free(*e);
		free(a->argv), free(a->env), free(a->log), free(a->program), free(a->cwd);
	}
	nattempts = nchildren = pending = signal_next = 0;
	buf_reset(&run_log);
	buf_reset(&signal_log);
	pthread_mutex_unlock(&lock);
	fake_attempt_status = NULL;
	fake_run = NULL;
}
