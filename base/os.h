/* os.h — what kiln needs from the operating system beyond libc: signal-driven waiting
 * for children, process-group control, and machine facts. */
#ifndef KILN_OS_H
#define KILN_OS_H

#include <stdint.h>

/* Blocks SIGCHLD/SIGINT/SIGTERM/SIGHUP for the process so os_wait_event can take them;
 * children get a clean signal mask back (see exec_local.c). */
void os_block_signals(void);
/* Waits up to timeout_ms (-1: forever) for a signal; returns its number, or 0 on
 * timeout. SIGCHLD means "reap". */
int os_wait_event(int timeout_ms);
/* Whether SIGINT, SIGTERM or SIGHUP arrived and waits (blocked) for os_wait_event: long
 * work before the next wait (hashing a dataset) checks this to stop early. */
int os_stop_requested(void);
/* Makes this process the reaper of its orphaned descendants (Linux), so a task's
 * processes that outlive their parent still report to kiln; 0, or -1 where unsupported. */
int os_become_subreaper(void);
/* Number of online CPUs and physical memory in MiB. */
int os_cpu_count(void);
long long os_memory_mib(void);
/* Whether fd is a terminal. */
int os_isatty(int fd);
/* Returns the hostname (static buffer). */
const char *os_hostname(void);

#endif
