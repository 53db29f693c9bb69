/* report.c — the HTML report: run summary from the runs and attempts tables, then for
 * each chart its table (x by series of y) and the chart itself, inlined. */
#define _GNU_SOURCE
#include "report.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static void summary(FILE *f, sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t run = 0;
	if (sqlite3_prepare_v2(db, "SELECT id, started, ended, outcome, command FROM runs ORDER BY id DESC LIMIT 1", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		run = sqlite3_column_int64(st, 0);
		time_t started = (time_t)sqlite3_column_double(st, 1);
		char when[64];
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&started));
		fprintf(f, "<h2>Last run</h2>\n<p>Run %lld started %s, %s in %.1f s: <code>", (long long)run, when,
			sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "did not finish",
			sqlite3_column_double(st, 2) - sqlite3_column_double(st, 1));
		html(f, (const char *)sqlite3_column_text(st, 4));
		fprintf(f, "</code></p>\n");
	}
	sqlite3_finalize(st);
	if (!run)
		return;
	fprintf(f, "<table class=\"small\"><tr><th>outcome</th><th>attempts</th><th>total time</th></tr>\n");
	sqlite3_prepare_v2(db, "SELECT CASE WHEN outcome = 'ok' THEN 'ok' WHEN outcome IS NULL THEN 'unfinished' ELSE 'failed' END o, "
			       "count(*), sum(ended - started) FROM attempts WHERE run_id = ?1 GROUP BY o ORDER BY o DESC",
			   -1, &st, NULL);
	sqlite3_bind_int64(st, 1, run);
	int any = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		any = 1;
		fprintf(f, "<tr><td>%s</td><td class=\"n\">%d</td><td class=\"n\">%.1f s</td></tr>\n", sqlite3_column_text(st, 0),
			sqlite3_column_int(st, 1), sqlite3_column_double(st, 2));
	}
	if (!any)
		fprintf(f, "<tr><td colspan=\"3\">nothing ran: every task was up to date or restored</td></tr>\n");
	fprintf(f, "</table>\n");
	sqlite3_finalize(st);
	sqlite3_prepare_v2(db, "SELECT task, ended - started, outcome, log FROM attempts WHERE run_id = ?1 AND ended IS NOT NULL "
			       "ORDER BY ended - started DESC LIMIT 10", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, run);
	int header = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (!header++)
			fprintf(f, "<h3>Slowest tasks</h3>\n<table class=\"small\"><tr><th>task</th><th>time</th><th>outcome</th><th>log</th></tr>\n");
		fprintf(f, "<tr><td>");
		html(f, (const char *)sqlite3_column_text(st, 0));
		fprintf(f, "</td><td class=\"n\">%.2f s</td><td>", sqlite3_column_double(st, 1));
		html(f, (const char *)sqlite3_column_text(st, 2));
		fprintf(f, "</td><td><code>");
		html(f, (const char *)sqlite3_column_text(st, 3));
		fprintf(f, "</code></td></tr>\n");
	}
	if (header)
		fprintf(f, "</table>\n");
	sqlite3_finalize(st);
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
	sqlite3 *db;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		buf_printf(err, "cannot read %s (has `kiln run` run here?)", db_path);
		sqlite3_close(db);
		return -1;
	}
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		buf_printf(err, "cannot write %s", path);
		free(tmp);
		sqlite3_close(db);
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
	summary(f, db);
	sqlite3_close(db);
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
			MetricsQuery q = {.db_path = db_path, .tasks = p->from, .ntasks = p->nfrom, .value = p->y,
					  .rows = rows, .cols = cols, .mean_row = 1};
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
