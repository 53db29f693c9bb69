/* metrics.c — flattening a metrics JSON object: numbers and booleans are scalars, strings
 * are text, objects nest as a.b.c, an array of numbers is a series over its index, and an
 * array of objects is a series per numeric member, stepped by the element's "step",
 * "epoch" or "iteration" when it has one (else by its index). */
#define _GNU_SOURCE
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "../../base/json.h"

static void add(Metrics *m, const char *key, int series, double step, double value, const char *text)
{
	if (m->count == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->rows = xrealloc(m->rows, (size_t)m->cap * sizeof *m->rows);
	}
	m->rows[m->count++] = (MetricRow){xstrdup(key), series, step, value, text ? xstrdup(text) : NULL};
}

static char *join(const char *prefix, const char *key)
{
	return *prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
}

static const char *const step_names[] = {"step", "epoch", "iteration", NULL};

static int flatten(Metrics *m, const Json *j, const char *prefix, int series, double step, Buf *err)
{
	switch (j->type) {
	case J_NULL:
		return 0;
	case J_BOOL:
	case J_NUMBER:
		add(m, prefix, series, step, j->number, NULL);
		return 0;
	case J_STRING:
		if (!series)
			add(m, prefix, 0, 0, 0, j->string);
		return 0;
	case J_OBJECT:
		for (int i = 0; i < j->count; i++) {
			const Json *v = j->items[i];
			int is_step = 0;
			for (int s = 0; series && step_names[s]; s++)
				is_step |= !strcmp(v->key, step_names[s]);
			if (is_step)
				continue;
			char *key = join(prefix, v->key);
			int rc = flatten(m, v, key, series, step, err);
			free(key);
			if (rc)
				return rc;
		}
		return 0;
	case J_ARRAY:
		if (series) {
			buf_printf(err, "%s: arrays inside a series element are not supported", prefix);
			return -1;
		}
		for (int i = 0; i < j->count; i++) {
			const Json *e = j->items[i];
			double at = i;
			if (e->type == J_OBJECT) {
				for (int s = 0; step_names[s]; s++) {
					const Json *st = json_get(e, step_names[s]);
					if (st && st->type == J_NUMBER) {
						at = st->number;
						break;
					}
				}
			} else if (e->type != J_NUMBER && e->type != J_NULL) {
				buf_printf(err, "%s[%d]: series arrays hold numbers or objects", prefix, i);
				return -1;
			}
			if (flatten(m, e, prefix, 1, at, err))
				return -1;
		}
		return 0;
	}
	return 0;
}

int metrics_parse(const char *text, size_t len, const char *path, Metrics *m, Buf *err)
{
	memset(m, 0, sizeof *m);
	Buf why = {0};
	Json *j = json_parse(text, len, &why);
	int rc = -1;
	if (!j) {
		buf_printf(err, "metrics file %s is not valid JSON: %s", path, buf_str(&why));
	} else if (j->type != J_OBJECT) {
		buf_printf(err, "metrics file %s must hold a JSON object ({\"name\": value, ...})", path);
	} else if (flatten(m, j, "", 0, 0, &why) != 0) {
		buf_printf(err, "metrics file %s: %s", path, buf_str(&why));
	} else {
		rc = 0;
	}
	json_free(j);
	buf_free(&why);
	if (rc)
		metrics_free(m);
	return rc;
}

int metrics_read(const char *path, Metrics *m, Buf *err)
{
	memset(m, 0, sizeof *m);
	size_t len;
	char *text = read_file(path, &len);
	if (!text) {
		buf_printf(err, "metrics file %s cannot be read (did the task write it?)", path);
		return -1;
	}
	int rc = metrics_parse(text, len, path, m, err);
	free(text);
	return rc;
}

void metrics_free(Metrics *m)
{
	for (int i = 0; i < m->count; i++) {
		free(m->rows[i].key);
		free(m->rows[i].text);
	}
	free(m->rows);
	memset(m, 0, sizeof *m);
}
