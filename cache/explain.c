/* explain.c — field-level differences between key components. A component line is
 * "kind\tfield...\tvalue"; lines with the same identity (kind and fields) are compared
 * by value, so a message can say "input a.txt changed" or "param batch: 64 → 32". */
#define _GNU_SOURCE
#include "explain.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *line;
	size_t len, id_len; /* identity = line[0..id_len), value = the rest after a tab */
} Line;

static Line *split_lines(const char *text, int *count)
{
	int cap = 16, n = 0;
	Line *lines = xmalloc((size_t)cap * sizeof *lines);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (n == cap)
			lines = xrealloc(lines, (size_t)(cap *= 2) * sizeof *lines);
		Line *l = &lines[n++];
		l->line = p;
		l->len = len;
		if (!strncmp(p, "cmd\t", 4) || !strncmp(p, "v\t", 2)) {
			l->id_len = (size_t)(strchr(p, '\t') - p);
		} else if (!strncmp(p, "out\t", 4) || (!strncmp(p, "dep\t", 4) && !memchr(p + 4, '\t', len - 4))) {
			l->id_len = len;
		} else {
			const char *tab = memrchr(p, '\t', len);
			l->id_len = tab ? (size_t)(tab - p) : len;
		}
		p += len + (nl != NULL);
	}
	*count = n;
	return lines;
}

static const char *value_of(const Line *l) { return l->id_len < l->len ? l->line + l->id_len + 1 : ""; }
static int value_len(const Line *l) { return l->id_len < l->len ? (int)(l->len - l->id_len - 1) : 0; }

/* Lines by identity, so a diff of n lines costs n look-ups, not n^2 comparisons (a plot
 * over a 10k grid has 10k dependency lines). */
typedef struct {
	StrMap by_id; /* identity (a malloc'd copy) -> Line* (the first with it) */
} IdIndex;

static IdIndex index_lines(const Line *lines, int n)
{
	IdIndex ix = {{0}};
	strmap_reserve(&ix.by_id, (size_t)n);
	for (int i = 0; i < n; i++) {
		char *id = strndup(lines[i].line, lines[i].id_len);
		if (strmap_get(&ix.by_id, id))
			free(id);
		else
			strmap_put(&ix.by_id, id, (void *)&lines[i]);
	}
	return ix;
}

static void index_free(IdIndex *ix)
{
	const char *key;
	for (size_t i = 0; strmap_next(&ix->by_id, &i, &key, NULL);)
		free((char *)key);
	strmap_free(&ix->by_id);
}

static const Line *find_same_id(IdIndex *ix, const Line *l)
{
	char stack[256];
	char *id = l->id_len < sizeof stack ? stack : xmalloc(l->id_len + 1);
	memcpy(id, l->line, l->id_len);
	id[l->id_len] = 0;
	const Line *found = strmap_get(&ix->by_id, id);
	if (id != stack)
		free(id);
	return found;
}

/* Second field of the identity, e.g. the path of "in\tpath". */
static void subject(const Line *l, const char **s, int *n)
{
	const char *tab = memchr(l->line, '\t', l->id_len);
	*s = tab ? tab + 1 : l->line;
	*n = tab ? (int)(l->line + l->id_len - *s) : (int)l->id_len;
}

/* Command lines differ: name the differing argv words when the shapes match. */
static void describe_command(const Line *o, const Line *n, Buf *out, int full)
{
	int ow = 0, nw = 0;
	const char *ov = value_of(o), *nv = value_of(n);
	for (int i = 0; i < value_len(o); i++)
		ow += ov[i] == '\t';
	for (int i = 0; i < value_len(n); i++)
		nw += nv[i] == '\t';
	if (value_len(o) >= 5 && value_len(n) >= 5 && !memcmp(ov, "argv\t", 5) && !memcmp(nv, "argv\t", 5) && ow == nw) {
		buf_puts(out, "command changed:");
		const char *a = ov + 5, *b = nv + 5;
		for (int word = 1; word <= ow; word++) {
			size_t al = strcspn(a, "\t\n"), bl = strcspn(b, "\t\n");
			if (al != bl || strncmp(a, b, al))
				buf_printf(out, " argument %d: %.*s → %.*s;", word - 1, (int)al, a, (int)bl, b);
			a += al + (a[al] == '\t');
			b += bl + (b[bl] == '\t');
		}
		out->data[--out->len] = 0;
		return;
	}
	int limit = full ? 100000 : 60, ol = value_len(o), nl = value_len(n);
	/* long commands: both shown from a little before where they first differ, so the change
	 * is in view ("sleep 0.4" -> "sleep 0.5" deep in a shell line) */
	int same = 0;
	while (same < ol && same < nl && ov[same] == nv[same])
		same++;
	int from = (ol > limit || nl > limit) && same > 20 ? same - 20 : 0;
	buf_printf(out, "command changed: %s%.*s%s → %s%.*s%s", from ? "…" : "", ol - from < limit ? ol - from : limit,
		   ov + from, ol - from > limit ? "…" : "", from ? "…" : "", nl - from < limit ? nl - from : limit, nv + from,
		   nl - from > limit ? "…" : "");
}

static void describe(const Line *o, const Line *n, Buf *out, int full)
{
	const Line *l = n ? n : o;
	const char *s;
	int sl;
	subject(l, &s, &sl);
	const char *what = !strncmp(l->line, "in\t", 3)    ? "input"
			   : !strncmp(l->line, "env\t", 4) ? "env"
			   : !strncmp(l->line, "tag\t", 4) ? "param/tag"
			   : !strncmp(l->line, "out\t", 4) ? "declared output"
			   : !strncmp(l->line, "dep\t", 4) ? "dependency"
			   : !strncmp(l->line, "param\t", 6) ? "param"
							   : "component";
	if (!strncmp(l->line, "v\t", 2)) {
		buf_puts(out, "kiln's key format changed");
	} else if (o && n && !strncmp(l->line, "deps\t", 5)) { /* a big group's (key.c: DEPS_AS_DIGEST) */
		buf_puts(out, "its dependencies or their outputs changed");
	} else if (o && n && !strncmp(l->line, "cmd\t", 4)) {
		describe_command(o, n, out, full);
	} else if (!o) {
		buf_printf(out, "%s %.*s added", what, sl, s);
	} else if (!n) {
		buf_printf(out, "%s %.*s removed", what, sl, s);
	} else if (!strncmp(l->line, "in\t", 3) || !strncmp(l->line, "dep\t", 4)) {
		int hex = full ? 32 : 8;
		const char *ov = value_of(o), *nv = value_of(n);
		int is_input = !strncmp(l->line, "in\t", 3);
		const char *tab = memchr(s, '\t', (size_t)sl); /* dep: "name\tpath" */
		int nl = tab && !is_input ? (int)(tab - s) : sl;
		if (value_len(n) == 7 && !strncmp(nv, "missing", 7))
			buf_printf(out, "input %.*s is missing", sl, s);
		else if (value_len(n) == 7 && !strncmp(nv, "pending", 7) && is_input)
			buf_printf(out, "input %.*s will be rewritten by a task that runs first", sl, s);
		else if (value_len(n) == 7 && !strncmp(nv, "pending", 7))
			buf_printf(out, "dependency %.*s will run first", nl, s);
		else if (is_input)
			buf_printf(out, "input %.*s changed (%.*s → %.*s)", sl, s, hex, ov, hex, nv);
		else
			buf_printf(out, "output %.*s of dependency %.*s changed (%.*s → %.*s)", sl - nl - 1, s + nl + 1, nl, s,
				   hex, ov, hex, nv);
	} else {
		buf_printf(out, "%s %.*s: %.*s → %.*s", what, sl, s, value_len(o), value_of(o), value_len(n), value_of(n));
	}
}

void explain_diff(const char *old, const char *new, Buf *out, int full)
{
	int no, nn, changes = 0;
	Line *ol = split_lines(old, &no), *nl = split_lines(new, &nn);
	Buf first = {0};
	int first_is_param = 0;
	IdIndex oi = index_lines(ol, no), ni = index_lines(nl, nn);
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: lines of the new text (changed or added); pass 1: removed lines */
		int count = pass ? no : nn;
		for (int i = 0; i < count; i++) {
			const Line *l = pass ? &ol[i] : &nl[i];
			const Line *other = find_same_id(pass ? &ni : &oi, l);
			if (pass && other)
				continue;
			if (!pass && other && other->len == l->len && !strncmp(other->line, l->line, l->len))
				continue;
			/* a param hint that appears or goes says nothing (a value matched a word) */
			int param = !strncmp(l->line, "param\t", 6);
			if (param && !(other && !pass))
				continue;
			changes++;
			if (full) {
				describe(pass ? l : other, pass ? NULL : l, out, 1);
				buf_putc(out, '\n');
			} else if (changes == 1 || (param && !first_is_param)) {
				/* the short reason names a param rather than the argv word it became */
				buf_reset(&first);
				describe(pass ? l : other, pass ? NULL : l, &first, 0);
				first_is_param = param;
			}
		}
	}
	index_free(&oi);
	index_free(&ni);
	if (!full) {
		buf_puts(out, changes ? buf_str(&first) : "the key changed");
		if (changes > 1)
			buf_printf(out, " (and %d more change%s)", changes - 1, changes > 2 ? "s" : "");
	}
	buf_free(&first);
	free(ol);
	free(nl);
}
