/* verbs_results.c — the verbs that read recorded results: kiln metrics (tables), kiln plot
 * (re-rendering charts) and kiln report (the HTML page). */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plots/plot.h"
#include "../../plots/report.h"
#include "../../plots/table.h"
#include "cli.h"

int verb_metrics(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	MetricsQuery q = {.db_path = KILN_DIR "/state.db", .tasks = o->targets, .ntasks = o->ntargets, .rows = o->rows,
			  .cols = o->cols, .value = o->value, .format = o->format, .vs_run = o->vs_run, .mean_row = o->mean,
			  .baseline = o->baseline, .best = o->best};
	if (!q.format)
		q.format = table_format_of_path(o->out);
	FILE *out = o->out ? fopen(o->out, "w") : stdout;
	if (!out)
		fatal("cannot write %s: %s", o->out, strerror(errno));
	Buf err = {0};
	int rc = metrics_print(&q, out, &err);
	if (o->out)
		fclose(out);
	if (rc != 0)
		fatal("%s", buf_str(&err));
	return 0;
}

int verb_plot(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = new_graph();
	char **names = o->targets;
	int nnames = o->ntargets;
	o->ntargets = 0; /* every task loads; the names pick plots below */
	load_graph(o, g);
	int rendered = 0, failed = 0;
	for (int i = 0; i < g->ntasks; i++) {
		Task *t = g->tasks[i];
		const PlotSpec *spec = t->opts->plot;
		if (!spec)
			continue;
		int wanted = nnames == 0;
		for (int k = 0; k < nnames && !wanted; k++)
			wanted = !strcmp(names[k], spec->name) || !strcmp(names[k], t->name) || !fnmatch(names[k], spec->name, 0);
		if (wanted) {
			Buf err = {0};
			if (plot_render(spec, KILN_DIR "/state.db", -1, &err) == 0) {
				printf("%s: %s.svg, .png, .pdf%s\n", t->name, spec->out, plot_has_table(spec) ? ", .tex" : "");
				rendered++;
			} else {
				fprintf(stderr, "kiln: %s: %s\n", t->name, buf_str(&err));
				failed++;
			}
			buf_free(&err);
		}
	}
	if (!rendered && !failed) {
		Buf names_there = {0}; /* what there is to ask for */
		for (int i = 0; i < g->ntasks; i++)
			if (g->tasks[i]->opts->plot)
				buf_printf(&names_there, "%s%s", names_there.len ? ", " : "", g->tasks[i]->opts->plot->name);
		if (!names_there.len)
			fatal("no plot{} in the recipe");
		fatal("no plot{} named %s in the recipe (its plots: %s)", names[0], buf_str(&names_there));
	}
	graph_free(g);
	return failed ? EXIT_TASK_FAILED : 0;
}

int verb_report(Options *o, int argc, char **argv)
{
	(void)argc, (void)argv;
	Graph *g = load_graph(o, new_graph());
	PlotSpec *specs = xcalloc((size_t)g->ntasks + 1, sizeof *specs);
	int n = 0;
	for (int i = 0; i < g->ntasks; i++)
		if (g->tasks[i]->opts->plot)
			specs[n++] = *g->tasks[i]->opts->plot;
	const char *out = o->out ? o->out : "report.html";
	const char *recipe = o->recipe ? o->recipe : "kiln.lua";
	const char *base = strrchr(recipe, '/');
	char *title = xasprintf("kiln report: %s", base ? base + 1 : recipe);
	Buf err = {0};
	ReportOptions ro = {.path = out, .db_path = KILN_DIR "/state.db", .title = title, .version = kiln_version,
			    .recipe = recipe, .plots = specs, .nplots = n,
			    .graph = g, .vs_run = o->vs_run, .threshold = o->threshold >= 0 ? o->threshold : 0.01};
	int rc = report_write(&ro, &err);
	free(specs);
	free(title);
	graph_free(g);
	if (rc != 0)
		fatal("%s", buf_str(&err));
	printf("kiln: wrote %s (%d chart%s)\n", out, n, n == 1 ? "" : "s");
	if (o->open) { /* where a browser finds it */
		char *abs = realpath(out, NULL);
		printf("file://%s\n", abs ? abs : out);
		free(abs);
	}
	return 0;
}

