/* thread.h — starting kiln's helper threads (the state loader, the directory lister, the
 * store's writer, hashing workers) so that they run at once. */
#ifndef KILN_THREAD_H
#define KILN_THREAD_H

#include <pthread.h>

/* Starts fn(arg) on a new thread with every signal blocked (signals stay with the caller's
 * thread). Linux puts a new thread on its creator's core and moves it to an idle one only
 * at the next load balancing, up to a scheduler tick (4 ms here) later, while the creator
 * keeps its core busy: so the thread is placed first on any core but the caller's, then
 * given back the process's whole CPU set as it starts. 0, or an errno value. */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
