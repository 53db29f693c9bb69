/* timeline.c — the run's timeline and the grids' outcome maps. Both are drawn here as
 * plain SVG / HTML (no gnuplot): they are pictures of the run's own record, and the
 * report stays one self-contained file. */
#define _GNU_SOURCE
#include "timeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../cache/state/history.h"
#include "html.h"

/* Outcome colours (Okabe & Ito, as the charts): done, restored, failed, unfinished. */
static const char *outcome_colour(const char *outcome)
{
	if (!outcome)
		return "#F0E442";
	if (!strcmp(outcome, "ok"))
		return "#009E73";
	if (!strcmp(outcome, "restored") || !strcmp(outcome, "accepted"))
		return "#56B4E9";
	if (!strcmp(outcome, "interrupted"))
		return "#999999";
	return "#D55E00";
}

typedef struct {
	char *task, *lane, *outcome;
	int attempt;
	double started, ended;
	double waited; /* seconds it waited for its GPUs before started */
} Bar;

typedef struct {
	Bar *bars;
	int n, cap;
	double now;
} Bars;

static void add_bar(Bars *b, const HistoryAttempt *a, const char *lane, double ended)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->bars = xrealloc(b->bars, (size_t)b->cap * sizeof *b->bars);
	}
	b->bars[b->n++] = (Bar){xstrdup(a->task), xstrdup(lane), a->outcome ? xstrdup(a->outcome) : NULL, a->attempt,
				a->started, ended, a->waited};
}

static void collect(void *ctx, const HistoryAttempt *a)
{
	Bars *b = ctx;
	if (a->outcome && (!strcmp(a->outcome, "restored") || !strcmp(a->outcome, "accepted")))
		return; /* no process ran */
	double ended = a->outcome ? a->ended : b->now;
	char host[80] = ""; /* lanes of an ssh host are its own: "v800: gpu 0" */
	if (a->host && *a->host)
		snprintf(host, sizeof host, "%.60s: ", a->host);
	if (a->gpus && *a->gpus) { /* one bar on each device it leased */
		char *list = xstrdup(a->gpus);
		for (char *save, *id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
			char lane[128];
			snprintf(lane, sizeof lane, "%sgpu %s", host, id);
			add_bar(b, a, lane, ended);
		}
		free(list);
	} else {
		add_bar(b, a, host, ended); /* a slot lane (of that host) is chosen below */
	}
}

/* A lane's name after its host ("v800: gpu 0" -> "gpu 0"), and the host part's length. */
static const char *lane_kind(const char *lane, size_t *host_len)
{
	const char *sep = strstr(lane, ": ");
	*host_len = sep ? (size_t)(sep - lane) : 0;
	return sep ? sep + 2 : lane;
}

/* A bar still without a lane: its lane is "" or a host part ("v800: "). */
static int needs_slot(const char *lane)
{
	size_t n = strlen(lane);
	return n == 0 || (n >= 2 && !strcmp(lane + n - 2, ": "));
}

static int is_gpu_lane(const char *lane)
{
	size_t n;
	return !strncmp(lane_kind(lane, &n), "gpu ", 4);
}

static int compare_lane(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t hx, hy;
	const char *kx = lane_kind(x, &hx), *ky = lane_kind(y, &hy);
	if (hx != hy || strncmp(x, y, hx)) { /* this machine's lanes first, then each host's by name */
		if (!hx || !hy)
			return (int)hx - (int)hy;
		int c = strncmp(x, y, hx < hy ? hx : hy);
		return c ? c : (int)hx - (int)hy;
	}
	x = kx, y = ky;
	int gx = !strncmp(x, "gpu ", 4), gy = !strncmp(y, "gpu ", 4);
	if (gx != gy)
		return gy - gx; /* GPUs first */
	if (gx)
		return atoi(x + 4) - atoi(y + 4);
	return atoi(x + 5) - atoi(y + 5);
}

int timeline_write(FILE *f, State *state, const StateRun *run)
{
	Bars b = {.now = run->finished ? run->ended : now_wall()};
	history_each_attempt(state, run->id, collect, &b);
	if (!b.n) {
		fprintf(f, "<p>No process ran in this run (everything was up to date or restored).</p>\n");
		return 0;
	}
	/* attempts without a GPU go on slot lanes of their host, first fit in start order (bars
	 * come sorted); their lane holds the host part ("" or "v800: ") until then */
	for (int i = 0; i < b.n; i++) {
		if (!needs_slot(b.bars[i].lane))
			continue; /* a GPU lane, or a slot given with an earlier bar of its host */
		char *host = xstrdup(b.bars[i].lane);
		double *slot_free = NULL;
		int nslots = 0;
		for (int j = i; j < b.n; j++) {
			if (strcmp(b.bars[j].lane, host))
				continue;
			int k = 0;
			while (k < nslots && slot_free[k] > b.bars[j].started + 1e-6)
				k++;
			if (k == nslots) {
				slot_free = xrealloc(slot_free, (size_t)(nslots + 1) * sizeof *slot_free);
				nslots++;
			}
			slot_free[k] = b.bars[j].ended;
			free(b.bars[j].lane);
			b.bars[j].lane = xasprintf("%sslot %d", host, k + 1);
		}
		free(slot_free);
		free(host);
	}
	char **lanes = NULL;
	int nlanes = 0, ngpu = 0;
	double t0 = INFINITY, t1 = -INFINITY, gpu_busy = 0, busy = 0;
	for (int i = 0; i < b.n; i++) {
		Bar *x = &b.bars[i];
		strlist_find_or_add(&lanes, &nlanes, x->lane);
		t0 = fmin(t0, x->started - x->waited), t1 = fmax(t1, x->ended);
		double d = fmax(0, x->ended - x->started);
		if (is_gpu_lane(x->lane))
			gpu_busy += d;
		busy += d;
	}
	qsort(lanes, (size_t)nlanes, sizeof *lanes, compare_lane);
	for (int i = 0; i < nlanes; i++)
		ngpu += is_gpu_lane(lanes[i]);
	double span = fmax(t1 - t0, 1e-3);
	const int left = 80, width = 1100, lane_h = 22, top = 8;
	int height = top + nlanes * lane_h + 34;
	fprintf(f, "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
		   "height=\"%d\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"12\">\n",
		left + width + 40, height, left + width + 40, height);
	fprintf(f, "<defs><pattern id=\"waiting\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
		   "patternTransform=\"rotate(45)\"><rect width=\"3\" height=\"6\" fill=\"#999\"/></pattern></defs>\n");
	for (int l = 0; l < nlanes; l++) {
		int y = top + l * lane_h;
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>", left, y, width, lane_h,
			l % 2 ? "#ffffff" : "#f4f4f4");
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, y + 15);
		html_text(f, lanes[l]);
		fprintf(f, "</text>\n");
	}
	for (int i = 0; i < b.n; i++) {
		Bar *x = &b.bars[i];
		int l = 0;
		while (strcmp(lanes[l], x->lane))
			l++;
		double bx = left + (x->started - t0) / span * width, bw = fmax(1.5, (x->ended - x->started) / span * width);
		if (x->waited > 0) { /* the wait for its GPUs, hatched, just before it on its lane */
			double wx = left + (x->started - x->waited - t0) / span * width, ww = x->waited / span * width;
			fprintf(f, "<rect class=\"wait\" data-task=\"");
			html_text(f, x->task);
			fprintf(f, "\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"url(#waiting)\"><title>", wx,
				top + l * lane_h + 7, ww, lane_h - 14);
			html_text(f, x->task);
			fprintf(f, " waited %.1f s for a GPU</title></rect>\n", x->waited);
		}
		fprintf(f, "<rect class=\"attempt\" data-task=\"");
		html_text(f, x->task);
		fprintf(f, "\" data-attempt=\"%d\" data-lane=\"", x->attempt);
		html_text(f, x->lane);
		/* a retry is outlined and dashed, so repeated work stands out */
		fprintf(f, "\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"%s><title>", bx, top + l * lane_h + 3,
			bw, lane_h - 6, outcome_colour(x->outcome),
			x->attempt > 1 ? " stroke=\"#000\" stroke-width=\"1.5\" stroke-dasharray=\"3,2\"" : "");
		html_text(f, x->task);
		fprintf(f, " attempt %d: ", x->attempt); /* the outcome names the failure's class */
		html_text(f, x->outcome ? x->outcome : "unfinished");
		fprintf(f, ", %.2f s</title></rect>\n", x->ended - x->started);
		if (bw >= 6.5 * (double)strlen(x->task) + 8) { /* its name on it where it fits */
			fprintf(f, "<text class=\"bar\" x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#000\">", bx + 4,
				top + l * lane_h + 15);
			html_text(f, x->task);
			fprintf(f, "</text>\n");
		}
	}
	int axis_y = top + nlanes * lane_h;
	/* round ticks: the smallest step of 1, 2 or 5 (or minutes, hours) giving at most 6 */
	static const double steps[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400};
	double step = steps[sizeof steps / sizeof *steps - 1];
	for (size_t k = 0; k < sizeof steps / sizeof *steps; k++)
		if (span / steps[k] <= 6) {
			step = steps[k];
			break;
		}
	for (int k = 0; k * step <= span + 1e-9; k++) {
		double x = left + width * (k * step) / span;
		char label[32];
		if (step < 1)
			snprintf(label, sizeof label, "%.1f s", k * step);
		else if (step < 60)
			snprintf(label, sizeof label, "%.0f s", k * step);
		else
			format_duration(k * step, label, sizeof label);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#888\"/>"
			   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
			x, axis_y, x, axis_y + 5, x, axis_y + 20, label);
	}
	fprintf(f, "</svg>\n<p class=\"legend\"><span style=\"background:#009E73\"></span>done "
		   "<span style=\"background:#D55E00\"></span>failed <span style=\"background:#999999\"></span>interrupted "
		   "<span style=\"background:#F0E442\"></span>unfinished; dashed outline: a retry; hatched: waiting for a GPU. ");
	if (ngpu)
		fprintf(f, "<b>GPU utilisation: %.0f %%</b> (%.1f busy GPU-seconds of %.1f on %d GPU%s).</p>\n",
			100 * gpu_busy / (ngpu * span), gpu_busy, ngpu * span, ngpu, ngpu == 1 ? "" : "s");
	else
		fprintf(f, "No GPU was leased; on average %.2f attempts ran at once over %.1f s.</p>\n", busy / span, span);
	for (int i = 0; i < b.n; i++) {
		free(b.bars[i].task);
		free(b.bars[i].lane);
		free(b.bars[i].outcome);
	}
	free(b.bars);
	for (int i = 0; i < nlanes; i++)
		free(lanes[i]);
	free(lanes);
	return b.n;
}

/* ---- outcome maps ---- */

typedef struct {
	StrMap latest; /* task -> TaskOutcome* */
} Latest;

static void remember(void *ctx, int64_t run_id, const HistoryAttempt *a)
{
	Latest *l = ctx;
	TaskOutcome *o = xcalloc(1, sizeof *o);
	o->outcome = a->outcome ? xstrdup(a->outcome) : NULL;
	o->failure = a->failure ? xstrdup(a->failure) : NULL;
	o->log = a->log ? xstrdup(a->log) : NULL;
	o->run_id = run_id;
	strmap_put(&l->latest, xstrdup(a->task), o);
}

/* The cell's word and colour: what the task did in run_id, or before it. */
static const char *cell_state(const TaskOutcome *o, int64_t run_id, const char **colour)
{
	if (!o || !o->outcome) {
		*colour = o ? "#F0E442" : "#dddddd";
		return o ? "unfinished" : "not run";
	}
	int now = o->run_id == run_id, ok = !strcmp(o->outcome, "ok"), restored = !strcmp(o->outcome, "restored");
	if (ok || restored || !strcmp(o->outcome, "accepted")) {
		*colour = now ? outcome_colour(o->outcome) : "#cde9dd";
		return now ? (ok ? "done" : restored ? "restored" : "accepted") : "up to date";
	}
	*colour = now ? outcome_colour(o->outcome) : "#f3c4a8";
	return now ? "failed" : "failed earlier";
}

static void log_tail(FILE *f, const char *path)
{
	size_t len;
	char *text = path ? read_file_tail(path, 64 * 1024, &len, NULL) : NULL; /* 30 lines of a log of any size */
	if (!text) {
		fprintf(f, "(log not found)");
		return;
	}
	const char *start = text;
	int lines = 0;
	for (const char *p = text + len; p > text; p--) /* the last 30 lines */
		if (p[-1] == '\n' && ++lines > 30) {
			start = p;
			break;
		}
	html_text(f, start);
	free(text);
}

/* Distinct values of key over tasks[0..n), in order of first appearance. */
static int distinct(const Task *const *tasks, int n, const char *key, const char ***out)
{
	int k = 0;
	*out = xmalloc((size_t)(n + 1) * sizeof **out);
	for (int i = 0; i < n; i++) {
		const char *v = task_tag(tasks[i], key);
		int seen = 0;
		for (int j = 0; j < k && !seen; j++)
			seen = !strcmp((*out)[j], v);
		if (!seen)
			(*out)[k++] = v;
	}
	return k;
}

static int same_keys(const Task *a, const Task *b)
{
	if (a->ntags != b->ntags)
		return 0;
	for (int i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i].key, b->tags[i].key))
			return 0;
	return 1;
}

/* A failed cell's attempt, whose log tail follows the maps. */
typedef struct {
	const char *task;
	const TaskOutcome *o;
} FailedCell;

static void one_map(FILE *f, const Task *const *tasks, int n, Latest *l, int64_t run_id, FailedCell **failed_cells,
		    int *nfailed)
{
	const Task *first = tasks[0];
	const char *row_key = NULL, *col_key = NULL;
	int best = 0, second = 0;
	for (int i = 0; i < first->ntags; i++) { /* the two tags with the most values */
		const char **vals;
		int m = distinct(tasks, n, first->tags[i].key, &vals);
		free(vals);
		if (m > best)
			second = best, col_key = row_key, best = m, row_key = first->tags[i].key;
		else if (m > second)
			second = m, col_key = first->tags[i].key;
	}
	if (!row_key || !col_key || second < 2)
		return;
	const char **rows, **cols;
	int nr = distinct(tasks, n, row_key, &rows), nc = distinct(tasks, n, col_key, &cols);
	fprintf(f, "<h3>");
	html_text(f, row_key);
	fprintf(f, " &times; ");
	html_text(f, col_key);
	fprintf(f, " (%d tasks)</h3>\n<div class=\"scroll\"><table class=\"map\"><tr><th></th>", n);
	for (int c = 0; c < nc; c++) {
		fprintf(f, "<th>");
		html_text(f, cols[c]);
		fprintf(f, "</th>");
	}
	fprintf(f, "</tr>\n");
	for (int r = 0; r < nr; r++) {
		fprintf(f, "<tr><th>");
		html_text(f, rows[r]);
		fprintf(f, "</th>");
		for (int c = 0; c < nc; c++) {
			/* a cell may hold several tasks (a third tag, e.g. seeds): it shows the worst */
			const Task *shown = NULL;
			const char *word = NULL, *colour = "#ffffff";
			int count = 0, failed = 0, nfail = 0;
			for (int i = 0; i < n; i++) {
				const Task *t = tasks[i];
				if (strcmp(task_tag(t, row_key), rows[r]) || strcmp(task_tag(t, col_key), cols[c]))
					continue;
				const char *col;
				const char *w = cell_state(strmap_get(&l->latest, t->name), run_id, &col);
				int is_failed = !strncmp(w, "failed", 6);
				if (!shown || (is_failed && !failed) || (!failed && !strcmp(w, "not run")))
					shown = t, word = w, colour = col;
				failed |= is_failed;
				nfail += is_failed;
				count++;
			}
			if (!shown) {
				fprintf(f, "<td></td>");
				continue;
			}
			const TaskOutcome *o = strmap_get(&l->latest, shown->name);
			fprintf(f, "<td style=\"background:%s\" title=\"", colour);
			html_text(f, shown->name);
			fprintf(f, "\">");
			if (failed && o) {
				*failed_cells = xrealloc(*failed_cells, (size_t)(*nfailed + 1) * sizeof **failed_cells);
				(*failed_cells)[(*nfailed)++] = (FailedCell){shown->name, o};
				fprintf(f, "<a href=\"#log-%d\">%s", *nfailed, word);
				if (o->failure) {
					fprintf(f, " [");
					html_text(f, o->failure);
					fprintf(f, "]");
				}
				fprintf(f, "</a>");
			} else {
				fprintf(f, "%s", word);
			}
			if (count > 1 && failed) /* a cell over seeds: how many of them failed, not the worst alone */
				fprintf(f, " <small>%d of %d</small>", nfail, count);
			else if (count > 1)
				fprintf(f, " <small>&times;%d</small>", count);
			fprintf(f, "</td>");
		}
		fprintf(f, "</tr>\n");
	}
	fprintf(f, "</table></div>\n");
	free(rows);
	free(cols);
}

int outcome_maps_write(FILE *f, State *state, const Graph *g, int64_t run_id)
{
	Latest l = {0};
	history_each_latest(state, remember, &l);
	const Task **group = xmalloc(((size_t)g->ntasks + 1) * sizeof *group);
	char *done = xcalloc((size_t)g->ntasks + 1, 1);
	FailedCell *failed = NULL;
	int maps = 0, nfailed = 0;
	for (int i = 0; i < g->ntasks; i++) {
		const Task *t = g->tasks[i];
		if (done[i] || t->ntags < 2)
			continue;
		int n = 0;
		for (int j = i; j < g->ntasks; j++)
			if (!done[j] && same_keys(t, g->tasks[j])) {
				group[n++] = g->tasks[j];
				done[j] = 1;
			}
		if (n >= 4) { /* a grid, not a pair of tasks */
			one_map(f, group, n, &l, run_id, &failed, &nfailed);
			maps++;
		}
	}
	for (int i = 0; i < nfailed; i++) { /* each failed cell's log tail, behind its link */
		const TaskOutcome *o = failed[i].o;
		fprintf(f, "<details id=\"log-%d\" class=\"log\"><summary>", i + 1);
		html_text(f, failed[i].task);
		fprintf(f, ": ");
		html_text(f, o->outcome ? o->outcome : "unfinished"); /* the reason, with its class */
		fprintf(f, ", log <a href=\"");
		html_text(f, o->log ? o->log : "");
		fprintf(f, "\"><code>");
		html_text(f, o->log ? o->log : "");
		fprintf(f, "</code></a></summary><pre>");
		log_tail(f, o->log);
		fprintf(f, "</pre></details>\n");
	}
	free(failed);
	free(group);
	free(done);
	void *val;
	for (size_t i = 0; strmap_next(&l.latest, &i, NULL, &val);) {
		TaskOutcome *o = val;
		free((char *)o->outcome);
		free((char *)o->failure);
		free((char *)o->log);
	}
	strmap_free_owned(&l.latest);
	return maps;
}
