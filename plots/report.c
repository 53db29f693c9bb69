/* report.c — the HTML report: the last run (outcomes, timeline of its attempts, slowest
 * tasks), the grids' outcome maps, every chart with links to its files and its table
 * (with deltas against an earlier run, changed cells marked), and the run history. One
 * self-contained page: inline SVG and CSS, no script, no network. */
#define _GNU_SOURCE
#include "report.h"
#include "setup.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../cache/state/history.h"
#include "html.h"
#include "table.h"
#include "timeline.h"

static const char css[] =
	"body{font-family:Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1400px;color:#222;padding:0 1em;"
	"font-size:15px;line-height:1.4}\n"
	"h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}\n"
	"nav a{margin-right:1em}\n"
	"table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em}\n"
	"th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
	"td.up{background:#d8efe4}td.down{background:#f9dccb}\n"
	"table.map td{text-align:center;font-size:.85em;min-width:4.5em}table.map a{color:#000}\n"
	".scroll{overflow-x:auto;max-width:100%}\n"
	".chart svg{display:block;max-width:none}.chart{margin:1em 0;overflow-x:auto;max-width:100%}\n"
	"svg.timeline{height:auto;min-width:640px;max-width:100%}td.n{white-space:nowrap}\n"
	".legend span{display:inline-block;width:.9em;height:.9em;margin:0 .25em 0 .8em;vertical-align:-.1em}\n"
	".files a{margin-right:.8em;font-size:.9em}code{font-size:.9em}.missing{color:#a33}\n"
	"table.setup th{font-weight:normal;color:#555}div.md{max-width:60em}.by{font-size:.7em;color:#777;font-weight:normal}\n"
	"details.log pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em;max-height:30em}\n"
	"@media (max-width:700px){body{font-size:14px;padding:0 .4em}td,th{padding:.2em .3em}}\n"
	"@media print{nav{display:none}.chart,table,svg.timeline{page-break-inside:avoid}details.log{display:none}}\n";

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
		fprintf(o->f, "<h3>Slowest tasks</h3>\n<div class=\"scroll\"><table><tr><th>task</th><th>time</th>"
			      "<th>outcome</th><th>log</th></tr>\n");
	fprintf(o->f, "<tr><td>");
	html_text(o->f, task);
	fprintf(o->f, "</td><td class=\"n\">%.2f s</td><td>", sec);
	html_text(o->f, outcome);
	fprintf(o->f, "</td><td><code>");
	html_text(o->f, log);
	fprintf(o->f, "</code></td></tr>\n");
}

static void when(double t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	strftime(out, n, "%Y-%m-%d %H:%M:%S", localtime(&tt));
}

static void outcome_table(FILE *f, State *state, int64_t run_id)
{
	fprintf(f, "<table><tr><th>outcome</th><th>attempts</th><th>total time</th></tr>\n");
	Out o = {f, 0};
	state_each_outcome(state, run_id, outcome_row, &o);
	if (!o.rows)
		fprintf(f, "<tr><td colspan=\"3\">nothing ran: every task was up to date</td></tr>\n");
	fprintf(f, "</table>\n");
}

typedef struct {
	FILE *f;
	int rows;
	int64_t run_id, last_run;
} HostsOut;

static void host_row(void *ctx, const HistoryHost *h)
{
	HostsOut *o = ctx;
	if (!o->rows++) {
		fprintf(o->f, "<h3 id=\"hosts\">Hosts</h3>\n");
		if (o->run_id != o->last_run)
			fprintf(o->f, "<p>From run %lld, the latest that ran anything on the hosts.</p>\n", (long long)o->run_id);
		fprintf(o->f, "<table><tr><th>host</th><th>done</th><th>failed</th><th>lost (ran again)</th>"
			      "<th>stopped</th><th>GPU time</th><th>paths held</th></tr>\n");
	}
	char gpu[32];
	format_duration(h->gpu_sec, gpu, sizeof gpu);
	fprintf(o->f, "<tr><td>");
	html_text(o->f, h->host);
	fprintf(o->f, "</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td>"
		      "<td class=\"n\">%d</td><td class=\"n\">%s</td><td class=\"n\">%d</td></tr>\n",
		h->done, h->failed, h->lost, h->stopped, gpu, h->holds);
}

/* Per ssh host: what the latest run that used the hosts did there (none without hosts). */
static void hosts_table(FILE *f, State *state, int64_t last_run)
{
	HostsOut o = {f, 0, history_last_host_run(state), last_run};
	if (o.run_id > 0)
		history_each_host(state, o.run_id, host_row, &o);
	if (o.rows)
		fprintf(f, "</table>\n");
}

/* A run's command as typed, kiln's own path shortened to its name: a page people share
 * names no machine's folders. */
static void command_text(FILE *f, const char *command)
{
	size_t first = strcspn(command, " ");
	const char *slash = memrchr(command, '/', first);
	html_text(f, slash ? slash + 1 : command);
}

static void last_run(FILE *f, State *state, const StateRun *run, const char *command)
{
	char started[64];
	when(run->started, started, sizeof started);
	fprintf(f, "<h2 id=\"last\">Last run</h2>\n<p>Run %lld started %s, %s in %.1f s: <code>", (long long)run->id, started,
		run->finished ? run->outcome : "did not finish", run->ended - run->started);
	command_text(f, command);
	fprintf(f, "</code></p>\n");
	outcome_table(f, state, run->id);
	hosts_table(f, state, run->id);
	fprintf(f, "<h3 id=\"timeline\">Timeline</h3>\n<div class=\"scroll\">");
	timeline_write(f, state, run);
	fprintf(f, "</div>\n");
	Out o = {f, 0};
	state_each_slowest(state, run->id, 10, slow_row, &o);
	if (o.rows)
		fprintf(f, "</table></div>\n");
}

/* map{}s: per map, its items, how many are recorded and by which runs (this one, earlier
 * ones), and the first of those not recorded (failed, or not reached), by name. */
typedef struct {
	int64_t run_id;
	int this_run, earlier;
	const Graph *g;
	const char *map;
	unsigned char *recorded; /* by task index */
} MapCounts;

/* An item of this map (in the recipe) with a last success: counted by the run that made it. */
static void note_recorded_item(void *ctx, const char *task, int64_t run_id)
{
	MapCounts *m = ctx;
	Task *t = graph_find(m->g, task);
	if (!t || !t->more->shard || task_is_runner(t) || strcmp(t->more->shard->map, m->map) || m->recorded[t->index])
		return;
	m->recorded[t->index] = 1;
	*(run_id == m->run_id ? &m->this_run : &m->earlier) += 1;
}

#define MAP_MISSING_SHOWN 20

static void maps_table(FILE *f, State *state, const Graph *g, int64_t run_id)
{
	int rows = 0;
	for (int i = 0; i < g->nshards; i++) {
		const MapShard *first = g->shards[i];
		if (first->index != 1)
			continue; /* a map is read from its first shard */
		MapCounts m = {run_id, 0, 0, g, first->map, xcalloc((size_t)g->ntasks + 1, 1)};
		history_each_item_recorded(state, first->map, note_recorded_item, &m);
		int items = 0, recorded = 0, missing = 0;
		Buf names = {0};
		for (int k = i; k < g->nshards && g->shards[k]->map == first->map; k++)
			for (int j = 0; j < g->shards[k]->nitems; j++) {
				const Task *t = shard_item(g, g->shards[k], j);
				items++;
				if (m.recorded[t->index]) {
					recorded++;
				} else if (missing++ < MAP_MISSING_SHOWN) {
					const char *item = task_tag(t, "item");
					buf_printf(&names, "%s%s", names.len ? ", " : "", item ? item : t->name);
				}
			}
		free(m.recorded);
		if (!rows++)
			fprintf(f, "<h3>Maps</h3>\n<div class=\"scroll\"><table><tr><th>map</th><th>items</th><th>recorded</th>"
				   "<th>made in this run</th><th>made earlier</th><th>not recorded</th></tr>\n");
		fprintf(f, "<tr><td>");
		html_text(f, first->map);
		fprintf(f, "</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td>",
			items, recorded, m.this_run, m.earlier);
		if (missing) {
			fprintf(f, "<span class=\"missing\">%d: ", missing);
			html_text(f, buf_str(&names));
			fprintf(f, "%s</span>", missing > MAP_MISSING_SHOWN ? ", ..." : "");
		} else {
			fprintf(f, "none");
		}
		fprintf(f, "</td></tr>\n");
		buf_free(&names);
	}
	if (rows)
		fprintf(f, "</table></div>\n");
}

/* The run history: one row per run, each linking to its own outcome summary below. */
typedef struct {
	FILE *f;
	State *state;
	int64_t *ids;
	int n;
} Runs;

static void count_outcome(void *ctx, const char *outcome, int count, double sec)
{
	(void)sec;
	Buf *b = ctx;
	buf_printf(b, "%s%d %s", b->len ? ", " : "", count, outcome);
}

static void run_row(void *ctx, const StateRun *run, const char *command)
{
	Runs *r = ctx;
	char started[64];
	when(run->started, started, sizeof started);
	Buf counts = {0};
	state_each_outcome(r->state, run->id, count_outcome, &counts);
	fprintf(r->f, "<tr><td><a href=\"#run-%lld\">%lld</a></td><td>%s</td><td class=\"n\">%.1f s</td><td>%s</td><td>%s</td>"
		      "<td><code>", (long long)run->id, (long long)run->id, started, run->ended - run->started,
		run->finished ? run->outcome : "did not finish", counts.len ? buf_str(&counts) : "nothing ran");
	command_text(r->f, command);
	fprintf(r->f, "</code></td></tr>\n");
	buf_free(&counts);
	r->ids = xrealloc(r->ids, (size_t)(r->n + 1) * sizeof *r->ids);
	r->ids[r->n++] = run->id;
}

static void history(FILE *f, State *state)
{
	fprintf(f, "<h2 id=\"runs\">Runs</h2>\n<div class=\"scroll\"><table class=\"runs\"><tr><th>run</th><th>started</th>"
		   "<th>took</th><th>outcome</th><th>attempts</th><th>command</th></tr>\n");
	Runs r = {f, state, NULL, 0};
	history_each_run(state, 50, run_row, &r);
	fprintf(f, "</table></div>\n");
	for (int i = 0; i < r.n; i++) {
		fprintf(f, "<details id=\"run-%lld\"><summary>Run %lld</summary>\n", (long long)r.ids[i], (long long)r.ids[i]);
		outcome_table(f, state, r.ids[i]);
		fprintf(f, "</details>\n");
	}
	free(r.ids);
}

static void table_html(FILE *f, const Table *t)
{
	fprintf(f, "<div class=\"scroll\"><table>\n");
	for (int r = 0; r < t->nrows; r++) {
		fprintf(f, "<tr>");
		for (int c = 0; c < t->ncols; c++) {
			int m = t->marks[r * t->ncols + c];
			const char *tag = r == 0 ? "th" : "td";
			fprintf(f, "<%s%s>%s", tag, !r || !c ? "" : m > 0 ? " class=\"n up\"" : m < 0 ? " class=\"n down\"" : " class=\"n\"",
				t->best[r * t->ncols + c] ? "<b>" : "");
			html_text(f, table_cell(t, r, c));
			fprintf(f, "%s</%s>", t->best[r * t->ncols + c] ? "</b>" : "", tag);
		}
		fprintf(f, "</tr>\n");
	}
	fprintf(f, "</table></div>\n");
}

/* The smallest font size an svg's text is written in (font-size="11.00" or font-size:11),
 * or 0 when it says none. */
static double least_font_size(const char *svg)
{
	double least = 0;
	for (const char *p = svg; (p = strstr(p, "font-size")); p += 9) {
		const char *v = p + 9 + (p[9] == '=' || p[9] == ':');
		v += *v == '"';
		double size = atof(v);
		if (size > 0 && (least == 0 || size < least))
			least = size;
	}
	return least;
}

static void inline_svg(FILE *f, const char *path)
{
	size_t len;
	char *svg = read_file(path, &len);
	if (!svg) {
		fprintf(f, "<p class=\"missing\">chart not rendered yet (<code>");
		html_text(f, path);
		fprintf(f, "</code>): run <code>kiln plot</code></p>\n");
		return;
	}
	/* at its own size (gnuplot's dynamic svg has only a viewBox, so it would stretch to the
	 * page and a heatmap's text would come out twice a bar chart's), shrunk to fit the page
	 * as long as its smallest text stays 11 px or more (a 1300 px bar chart of 13 px text on
	 * a 1280 px screen: no scroll bar for 50 px); a narrower screen scrolls it sideways
	 * instead of shrinking its text further */
	const char *start = strstr(svg, "<svg");
	const char *box = start ? strstr(start, "viewBox=\"0 0 ") : NULL;
	double w, h, least = least_font_size(svg);
	least = least > 0 ? least : 11;
	if (box && sscanf(box + 13, "%lf %lf", &w, &h) == 2 && w > 0 && h > 0)
		fprintf(f, "<div class=\"chart\"><svg width=\"%g\" height=\"%g\" style=\"max-width:100%%;height:auto;"
			   "min-width:%gpx\"%s</div>\n", w, h, ceil(w * fmin(1, 11 / least)), start + 4);
	else
		fprintf(f, "<div class=\"chart\">%s</div>\n", start ? start : "");
	free(svg);
}

/* A link from the report (written at report_path) to a workspace-relative file. */
static char *link_to(const char *report_path, const char *file)
{
	if (report_path[0] == '/') {
		char *cwd = getcwd(NULL, 0);
		char *url = xasprintf("file://%s/%s", cwd ? cwd : ".", file);
		free(cwd);
		return url;
	}
	Buf b = {0};
	for (const char *p = report_path; (p = strchr(p, '/')); p++)
		buf_puts(&b, "../");
	buf_puts(&b, file);
	return b.data;
}

static void chart(FILE *f, const ReportOptions *o, const PlotSpec *p, Buf *shown)
{
	fprintf(f, "<h2 id=\"plot-");
	html_text(f, p->name);
	fprintf(f, "\">");
	html_text(f, p->title ? p->title : p->name);
	fprintf(f, "</h2>\n");
	char *svg = xasprintf("%s.svg", p->out);
	inline_svg(f, svg);
	free(svg);
	fprintf(f, "<p class=\"files\">");
	static const char *const kinds[] = {"svg", "png", "pdf", "tex"}; /* tex: the table, plot_has_table */
	for (int k = 0; k < 3 + plot_has_table(p); k++) {
		char *file = xasprintf("%s.%s", p->out, kinds[k]), *url = link_to(o->path, file);
		fprintf(f, "<a href=\"");
		html_text(f, url);
		fprintf(f, "\">%s</a>", kinds[k]);
		free(file);
		free(url);
	}
	fprintf(f, "</p>\n");
	MetricsQuery q = plot_table_query(p, o->db_path);
	const char *rows = q.rows, *cols = q.cols;
	char *id = xasprintf("\n%s|%s|%s|%s|%s\n", p->nfrom ? p->from[0] : "", p->nfrom > 1 ? "+" : "", rows ? rows : "",
			     cols ? cols : "", p->y);
	int repeat = strstr(buf_str(shown), id) != NULL; /* a heatmap of the same data adds no table */
	buf_puts(shown, id);
	free(id);
	if (repeat || !plot_has_table(p))
		return;
	q.vs_run = o->vs_run ? o->vs_run : -1;
	q.threshold = o->threshold;
	Table t;
	Buf terr = {0};
	if (metrics_table(&q, &t, &terr) == 0) {
		if (t.vs_run)
			fprintf(f, "<p class=\"vs\">Deltas against run %lld; cells that moved by more than %.0f %% are "
				   "shaded.</p>\n", t.vs_run, o->threshold * 100);
		table_html(f, &t);
		table_free(&t);
	}
	buf_free(&terr);
}

int report_write(const ReportOptions *o, Buf *err)
{
	State *state = access(o->db_path, F_OK) == 0 ? state_open(o->db_path, 1, err) : NULL;
	if (!state) {
		if (!err->len)
			buf_printf(err, "cannot read %s (has `kiln run` run here?)", o->db_path);
		return -1;
	}
	char *tmp = xasprintf("%s.tmp", o->path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		buf_printf(err, "cannot write %s: %s", o->path, strerror(errno));
		free(tmp);
		state_close(state);
		return -1;
	}
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
	html_text(f, o->title);
	fprintf(f, "</title>\n<style>\n%s</style></head><body>\n<h1>", css);
	html_text(f, o->title);
	int documents = report_has_documents(o);
	fprintf(f, "</h1>\n<nav><a href=\"#last\">last run</a><a href=\"#timeline\">timeline</a><a href=\"#setup\">setup</a>%s"
		   "<a href=\"#charts\">charts</a>%s<a href=\"#runs\">runs</a></nav>\n",
		o->graph ? "<a href=\"#grids\">grids</a>" : "", documents ? "<a href=\"#documents\">documents</a>" : "");
	StateRun run;
	Buf command = {0};
	int have_run = state_last_run(state, &run, &command);
	if (have_run)
		last_run(f, state, &run, buf_str(&command));
	if (o->graph && have_run)
		maps_table(f, state, o->graph, run.id);
	report_setup(f, o, have_run ? buf_str(&command) : NULL);
	buf_free(&command);
	if (o->graph && have_run) {
		fprintf(f, "<h2 id=\"grids\">Grids</h2>\n");
		if (!outcome_maps_write(f, state, o->graph, run.id))
			fprintf(f, "<p>No grid: no group of tasks shares two tags.</p>\n");
	}
	fprintf(f, "<div id=\"charts\"></div>\n");
	Buf shown = {0};
	for (int i = 0; i < o->nplots; i++)
		chart(f, o, &o->plots[i], &shown);
	buf_free(&shown);
	if (documents)
		report_documents(f, o);
	history(f, state);
	state_close(state);
	fprintf(f, "<p style=\"color:#888;font-size:.8em\">Written by kiln report.</p>\n</body></html>\n");
	int rc = ferror(f) | fclose(f);
	if (rc || rename(tmp, o->path) != 0) {
		buf_printf(err, "cannot write %s: %s", o->path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}
