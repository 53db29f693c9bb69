/* keeper.h — the protocol between kiln (exec_local.c) and kiln-keeper (keeper.c), over a
 * SOCK_SEQPACKET socket that is the keeper's stdin: one message per packet, the first byte
 * its type. kiln sends 'S' (start an attempt) and gets 'P' back; the keeper sends 'E' when
 * an attempt's process group is gone; kiln sends 'C' after each commit of its state and 'B'
 * when it ends. */
#ifndef KILN_KEEPER_H
#define KILN_KEEPER_H

#include <stdint.h>

#define KEEPER_MAX_MESSAGE (1 << 20) /* a start's command and environment, at most */

/* The keeper's name in ps (its argv[0] and its comm): without "kiln" in it, so `pkill kiln`,
 * `pkill -9 kiln` or `pkill -f kiln`, meant for kiln, leave the parent of the running work
 * alone; killed with kiln it took every attempt's exit status with it (work finished while
 * no kiln watched then ran again). The program file stays kiln-keeper, beside kiln. */
#define KEEPER_PROCESS_NAME "attempt-keeper"

/* 'S', followed by NUL-terminated strings: the log (stdout and stderr are appended to it),
 * the exit file, the directory it starts in ("": the keeper's own), the program, nargv argv
 * words, nenv environment entries. It may carry up to 8 fds (SCM_RIGHTS): the machine-wide
 * claims of the attempt's GPUs (gpu.c), which the keeper closes when the attempt ends. */
typedef struct {
	char type;
	uint32_t token;    /* kiln's name for the attempt, echoed in 'P' and 'E' */
	uint32_t grace_ms; /* leftovers of the group: SIGTERM, then SIGKILL after this */
	uint32_t nargv, nenv;
} KeeperStart;

/* 'P': pid > 0, the attempt's leader (its session and group have its id), or -errno. */
typedef struct {
	char type;
	uint32_t token;
	int32_t pid;
	int64_t start; /* its start time (/proc/PID/stat), read before it could be reaped */
} KeeperStarted;

/* 'E': the attempt's group is gone; status is its leader's wait status. */
typedef struct {
	char type;
	uint32_t token;
	int32_t status;
} KeeperEnd;

/* 'C': kiln recorded the first count 'E's it read (in state.db, committed). 'B' (a lone
 * byte): kiln ends; ends it did not confirm go to their exit files. */
typedef struct {
	char type;
	uint32_t count;
} KeeperRecorded;

#endif
