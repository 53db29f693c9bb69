/* exec_plot.c — the built-in executor: a plot{} task's chart is rendered in this process
 * from its typed spec (no command line to encode and parse back), with an attempt log like
 * any task's. Rendering waits for gnuplot, so it holds the scheduler for that long. */
#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../plots/plot.h"

typedef struct {
	char *db_path;
	Job **ended; /* rendered, reported by the next reap */
	int nended, cap;
} PlotExec;

static int plot_start(Executor *ex, Job *job)
{
	PlotExec *pe = ex->impl;
	job->started_ns = now_mono_ns();
	job->end = JOB_EXITED;
	job->exit_code = 1;
	int fd = exec_open_log(job);
	if (fd < 0) {
		job->end = JOB_START_FAILED;
		fprintf(stderr, "kiln: cannot open log %s: %s\n", job->log_path, strerror(errno));
	} else {
		exec_write_log_header(fd, job);
		Buf err = {0};
		const PlotSpec *spec = job->task->opts->plot;
		if (plot_render(spec, pe->db_path, fd, &err) == 0) {
			dprintf(fd, "kiln: rendered %s.svg, .png and .pdf%s\n", spec->out,
				plot_has_table(spec) ? ", its table as .tex" : "");
			job->exit_code = 0;
		} else {
			dprintf(fd, "kiln: plot: %s\n", buf_str(&err));
		}
		buf_free(&err);
		close(fd);
	}
	job->ended_ns = now_mono_ns();
	exec_push_job(&pe->ended, &pe->nended, &pe->cap, job);
	return job->end == JOB_START_FAILED ? -1 : 0;
}

static int plot_reap(Executor *ex, Job **out, int max)
{
	PlotExec *pe = ex->impl;
	int n = 0;
	while (pe->nended > 0 && n < max)
		out[n++] = pe->ended[--pe->nended];
	return n;
}

static void plot_signal(Executor *ex, Job *job, int sig) { (void)ex, (void)job, (void)sig; } /* done on return */

static int plot_poll_ms(Executor *ex) { return ((PlotExec *)ex->impl)->nended ? 0 : -1; }

static void plot_destroy(Executor *ex)
{
	PlotExec *pe = ex->impl;
	free(pe->db_path);
	free(pe->ended);
	free(pe);
	free(ex);
}

Executor *exec_plot_new(const char *db_path)
{
	Executor *ex = xmalloc(sizeof *ex);
	PlotExec *pe = xcalloc(1, sizeof *pe);
	pe->db_path = xstrdup(db_path);
	*ex = (Executor){
		.name = "plot",
		.title = "built-in",
		.local_slots = 1,
		.reads_state = 1,
		.start = plot_start,
		.reap = plot_reap,
		.signal = plot_signal,
		.poll_ms = plot_poll_ms,
		.destroy = plot_destroy,
		.impl = pe,
	};
	return ex;
}
