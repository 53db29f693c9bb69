/* progress.h — progress reported from inside a task. Every attempt gets KILN_PROGRESS, a
 * file path; a task that writes "done/total" lines there (the last complete line counts)
 * has them shown with a rate (over the last minute) and an ETA, on the status line and,
 * on plain output, in a line every 10 s. map{} items report on their own (shards.c). */
#ifndef KILN_PROGRESS_H
#define KILN_PROGRESS_H

#include <stdint.h>

#include "../../base/util.h"
#include "../exec/exec.h"
#include "status.h"

typedef struct Progress Progress;

/* The progress file of the attempt whose log is log_path ("<log>.progress"), removed if a
 * previous attempt left one; malloc'd. */
char *progress_path_for(const char *log_path);
/* The latest reading of the attempt of t whose log is log_path: its progress file's last
 * "done/total" line, else its log_progress in the end of its log; 1 if there is one. For
 * `kiln status`, of an attempt running with no kiln watching it. */
int progress_reading(const Task *t, const char *log_path, long long *done, long long *total);
/* The attempt ended: its file goes, its readings too. */
void progress_end(Job *job);
/* Reads every running job's progress file (those that changed); appends "task 45/100,
 * 3.2/s, ETA 17s" for each job with a reading to line, and prints them on plain output
 * when 10 s have passed since *printed_ns. */
void progress_poll_jobs(Job *running, Status *st, Buf *line, int64_t *printed_ns);

#endif
