/* setup.c — the report's setup and documents sections (see setup.h). */
#define _GNU_SOURCE
#include "setup.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "html.h"
#include "markdown.h"
#include "mview.h"

/* Rows an environment table shows, and the largest Markdown file embedded whole. */
#define SETUP_MAX_ROWS 60
#define DOCUMENT_MAX_BYTES (256 * 1024)

static void row(FILE *f, const char *key, const char *value)
{
	fprintf(f, "<tr><th>");
	html_text(f, key);
	fprintf(f, "</th><td>");
	html_text(f, value);
	fprintf(f, "</td></tr>\n");
}

/* Whether some plot draws from task (its `from` globs match it). */
static int charted(const ReportOptions *o, const char *task)
{
	for (int i = 0; i < o->nplots; i++)
		for (int k = 0; k < o->plots[i].nfrom; k++)
			if (!fnmatch(o->plots[i].from[k], task, 0))
				return 1;
	return 0;
}

/* The value the run's command line gave param key ("epochs=2"), or NULL; malloc'd. (The
 * report loads the recipe without the run's arguments, so its params are the defaults.) */
static char *given(const char *command, const char *key)
{
	size_t n = strlen(key);
	for (const char *p = command; p && *p; p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == '=')
			return strndup(p + n + 1, strcspn(p + n + 1, " "));
	return NULL;
}

static int by_key(const void *a, const void *b)
{
	return strcmp((*(const KeyValue *const *)a)->key, (*(const KeyValue *const *)b)->key);
}

void report_setup(FILE *f, const ReportOptions *o, const char *command)
{
	fprintf(f, "<h2 id=\"setup\">Setup</h2>\n<table class=\"setup\">\n");
	row(f, "kiln", o->version ? o->version : "?");
	if (o->recipe)
		row(f, "recipe", o->recipe);
	/* by name: a params{} table has no order of its own (Lua's) */
	int n = o->graph ? o->graph->nparams : 0;
	const KeyValue **params = xcalloc((size_t)n + 1, sizeof *params);
	for (int i = 0; i < n; i++)
		params[i] = &o->graph->params[i];
	qsort(params, (size_t)n, sizeof *params, by_key);
	for (int i = 0; i < n; i++) {
		char *key = xasprintf("param %s", params[i]->key);
		char *value = given(command, params[i]->key), *shown = NULL;
		if (value && strcmp(value, params[i]->value))
			shown = xasprintf("%s (the recipe's default: %s)", value, params[i]->value);
		row(f, key, shown ? shown : value ? value : params[i]->value);
		free(shown);
		free(value);
		free(key);
	}
	free(params);
	fprintf(f, "</table>\n");
	/* results no chart shows and no grid holds (no tags): an environment check's */
	Buf err = {0};
	MView *v = mview_open(o->db_path, 0, NULL, 0, &err);
	buf_free(&err);
	for (int i = 0; v && i < mview_count(v); i++) {
		const MTask *m = mview_task(v, i);
		if (m->ntags || !m->scalars.count || charted(o, m->task))
			continue;
		fprintf(f, "<h3>");
		html_text(f, m->task);
		fprintf(f, "%s</h3>\n<table class=\"setup\">\n", m->stale ? " (stale: its latest attempt failed)" : "");
		for (int k = 0; k < m->scalars.count && k < SETUP_MAX_ROWS; k++) {
			const MetricRow *r = &m->scalars.rows[k];
			char num[64];
			snprintf(num, sizeof num, "%.6g", r->value);
			row(f, r->key, r->text ? r->text : num);
		}
		if (m->scalars.count > SETUP_MAX_ROWS)
			fprintf(f, "<tr><td colspan=\"2\">… %d more (kiln metrics %s)</td></tr>\n",
				m->scalars.count - SETUP_MAX_ROWS, m->task);
		fprintf(f, "</table>\n");
	}
	if (v)
		mview_close(v);
}

static int is_markdown(const char *path)
{
	size_t n = strlen(path);
	return n > 3 && !strcmp(path + n - 3, ".md");
}

int report_has_documents(const ReportOptions *o)
{
	for (int i = 0; o->graph && i < o->graph->ntasks; i++)
		for (int k = 0; k < o->graph->tasks[i]->noutputs; k++)
			if (is_markdown(o->graph->tasks[i]->outputs[k]) && access(o->graph->tasks[i]->outputs[k], F_OK) == 0)
				return 1;
	return 0;
}

void report_documents(FILE *f, const ReportOptions *o)
{
	fprintf(f, "<h2 id=\"documents\">Documents</h2>\n");
	for (int i = 0; o->graph && i < o->graph->ntasks; i++) {
		const Task *t = o->graph->tasks[i];
		for (int k = 0; k < t->noutputs; k++) {
			size_t len;
			char *text = is_markdown(t->outputs[k]) ? read_file(t->outputs[k], &len) : NULL;
			if (!text)
				continue;
			fprintf(f, "<h3><code>");
			html_text(f, t->outputs[k]);
			fprintf(f, "</code> <span class=\"by\">written by ");
			html_text(f, t->name);
			fprintf(f, "</span></h3>\n<div class=\"md\">\n");
			if (len > DOCUMENT_MAX_BYTES)
				fprintf(f, "<p>%.1f MiB: too long to embed; open the file.</p>\n", len / 1048576.0);
			else
				markdown_html(f, text, len);
			fprintf(f, "</div>\n");
			free(text);
		}
	}
}
