/* exit_file.h — how a local attempt ended, in the file beside its log ("<log>.exit"): written
 * by the run's keeper when kiln was not there to hear it (keeper.c), or by kiln itself for
 * the attempts of a keeper killed on its own (exec_local.c); read by a later kiln that
 * re-attaches (exec_local_attach.c). Plain libc: kiln-keeper links it too. */
#ifndef KILN_EXIT_FILE_H
#define KILN_EXIT_FILE_H

/* Writes a leader's wait status to path, "exit N" or "signal N", through a temporary name
 * renamed over it (a reader never sees half of it). Silent on failure: the reader then
 * finds none, and the attempt is lost (run again), never wrongly done. */
void exit_file_write(const char *path, int status);

/* Whether a leader's wait status says its group was told to stop with it: a stop signal
 * (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) ended it — kiln's Ctrl-C or timeout,
 * scancel, a terminal's Ctrl-C all signal the whole group. Its leftovers are then not told
 * again: `python train.py | tee log` or `python train.py; echo done` under sh, the sh gone
 * at the signal, would have the trainer's handler run a second time inside its first, its
 * save cut. A leader a crash or SIGKILL (the OOM killer) ended: its leftovers were told
 * nothing yet. */
int exit_told_group(int status);

#endif
