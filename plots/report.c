/* report.c — the HTML report: run summary (runs and attempts, through cache/state.h), then for
 * each chart its table (x by series of y) and the chart itself, inlined. */
#define _GNU_SOURCE
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../cache/state.h"
#include "table.h"

static void html(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

typedef struct {
	FILE *f;
	int rows;
} Out;

static void outcome_row(void *ctx, const char *outcome, int count, double sec)
{
	Out *o = ctx;
	o->rows++;
	fprintf(o->f, "<tr><td>%s</td><td class=\"n\">%d</td><td class=\"n\">%.1f s</td></tr>\n", outcome, count, sec);
}

static void slow_row(void *ctx, const char *task, double sec, const char *outcome, const char *log)
{
	Out *o = ctx;
	if (!o->rows++)
		fprintf(o->f, "<h3>Slowest tasks</h3>\n<table class=\"small\"><tr><th>task</th><th>time</th><th>outcome</th>"
			      "<th>log</th></tr>\n");
	fprintf(o->f, "<tr><td>");
	html(o->f, task);
	fprintf(o->f, "</td><td class=\"n\">%.2f s</td><td>", sec);
	html(o->f, outcome);
	fprintf(o->f, "</td><td><code>");
	html(o->f, log);
	fprintf(o->f, "</code></td></tr>\n");
}

static void summary(FILE *f, State *state)
{
	StateRun run;
	Buf command = {0};
	if (!state_last_run(state, &run, &command)) {
		buf_free(&command);
		return;
	}
	time_t started = (time_t)run.started;
	char when[64];
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&started));
	fprintf(f, "<h2>Last run</h2>\n<p>Run %lld started %s, %s in %.1f s: <code>", (long long)run.id, when,
		run.finished ? run.outcome : "did not finish", run.ended - run.started);
	html(f, buf_str(&command));
	fprintf(f, "</code></p>\n");
	buf_free(&command);
	fprintf(f, "<table class=\"small\"><tr><th>outcome</th><th>attempts</th><th>total time</th></tr>\n");
	Out o = {f, 0};
	state_each_outcome(state, run.id, outcome_row, &o);
	if (!o.rows)
		fprintf(f, "<tr><td colspan=\"3\">nothing ran: every task was up to date or restored</td></tr>\n");
	fprintf(f, "</table>\n");
	o.rows = 0;
	state_each_slowest(state, run.id, 10, slow_row, &o);
	if (o.rows)
		fprintf(f, "</table>\n");
}

static void table_html(FILE *f, const Table *t)
{
	fprintf(f, "<table>\n");
	for (int r = 0; r < t->nrows; r++) {
		fprintf(f, "<tr>");
		for (int c = 0; c < t->ncols; c++) {
			const char *tag = r == 0 ? "th" : "td";
			fprintf(f, "<%s%s>", tag, r && c ? " class=\"n\"" : "");
			html(f, table_cell(t, r, c));
			fprintf(f, "</%s>", tag);
		}
		fprintf(f, "</tr>\n");
	}
	fprintf(f, "</table>\n");
}

static void inline_svg(FILE *f, const char *path)
{
	size_t len;
	char *svg = read_file(path, &len);
	if (!svg) {
		fprintf(f, "<p class=\"missing\">chart not rendered yet (<code>");
		html(f, path);
		fprintf(f, "</code>): run <code>kiln plot</code></p>\n");
		return;
	}
	const char *start = strstr(svg, "<svg");
	fprintf(f, "<div class=\"chart\">%s</div>\n", start ? start : "");
	free(svg);
}

int report_write(const char *path, const char *db_path, const char *title, const PlotSpec *plots, int nplots, Buf *err)
{
	State *state = access(db_path, F_OK) == 0 ? state_open(db_path, 1, err) : NULL;
	if (!state) {
		if (!err->len)
			buf_printf(err, "cannot read %s (has `kiln run` run here?)", db_path);
		return -1;
	}
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		buf_printf(err, "cannot write %s", path);
		free(tmp);
		state_close(state);
		return -1;
	}
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
	html(f, title);
	fprintf(f, "</title>\n<style>\n"
		   "body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1400px;color:#222;padding:0 1em}\n"
		   "h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}\n"
		   "table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em}\n"
		   "th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
		   "tr:nth-child(even) td{background:#fafafa}.chart svg{max-width:100%%;height:auto}\n"
		   "code{font-size:.9em}.missing{color:#a33}\n</style></head><body>\n<h1>");
	html(f, title);
	fprintf(f, "</h1>\n");
	summary(f, state);
	state_close(state);
	Buf shown = {0}; /* tables already printed: a heatmap of the same data adds no new table */
	for (int i = 0; i < nplots; i++) {
		const PlotSpec *p = &plots[i];
		fprintf(f, "<h2>");
		html(f, p->title ? p->title : p->name);
		fprintf(f, "</h2>\n");
		char *svg = xasprintf("%s.svg", p->out);
		inline_svg(f, svg);
		free(svg);
		int heat = !strcmp(p->type, "heatmap");
		const char *rows = heat ? p->series : p->x, *cols = heat ? p->x : p->series;
		char *id = xasprintf("\n%s|%s|%s|%s|%s\n", p->nfrom ? p->from[0] : "", p->nfrom > 1 ? "+" : "",
				     rows ? rows : "", cols ? cols : "", p->y);
		int repeat = strstr(buf_str(&shown), id) != NULL;
		buf_puts(&shown, id);
		free(id);
		if (!repeat && strcmp(p->type, "lines") && strcmp(p->type, "scatter")) {
			MetricsQuery q = {.db_path = db_path, .tasks = (char **)p->from, /* read only */ .ntasks = p->nfrom, .value = p->y,
					  .rows = rows, .cols = cols, .mean_row = !p->baseline, .baseline = p->baseline};
			Table t;
			Buf terr = {0};
			if (metrics_table(&q, &t, &terr) == 0) {
				table_html(f, &t);
				table_free(&t);
			}
			buf_free(&terr);
		}
	}
	buf_free(&shown);
	fprintf(f, "<p style=\"color:#888;font-size:.8em\">Written by kiln report.</p>\n</body></html>\n");
	int rc = ferror(f) | fclose(f);
	if (rc || rename(tmp, path) != 0) {
		buf_printf(err, "cannot write %s", path);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}
