/* thread.c — see thread.h. */
#define _GNU_SOURCE
#include "thread.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>

#include "util.h"

typedef struct {
	void *(*fn)(void *);
	void *arg;
	cpu_set_t cpus; /* the process's: the thread gets it back as it starts */
} Start;

static void *placed_start(void *p)
{
	Start s = *(Start *)p;
	free(p);
	sched_setaffinity(0, sizeof s.cpus, &s.cpus); /* a failure leaves it where it runs */
	return s.fn(s.arg);
}

int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	Start *s = xmalloc(sizeof *s);
	s->fn = fn;
	s->arg = arg;
	int here = sched_getcpu(), placed = 0;
	if (here >= 0 && sched_getaffinity(0, sizeof s->cpus, &s->cpus) == 0 && CPU_COUNT(&s->cpus) > 1 &&
	    CPU_ISSET(here, &s->cpus)) {
		cpu_set_t elsewhere = s->cpus;
		CPU_CLR(here, &elsewhere);
		placed = pthread_attr_setaffinity_np(&attr, sizeof elsewhere, &elsewhere) == 0;
	}
	int rc = pthread_create(t, &attr, placed ? placed_start : fn, placed ? (void *)s : arg);
	if (rc != 0 || !placed)
		free(s);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}
