/* table_write.c — a metrics table (plots/table.h) printed: aligned text for a terminal,
 * Markdown, TSV, JSON, or a LaTeX tabular for a paper. Cells arrive as the text they print
 * as ("0.8123 ± 0.0040", "1.85×", "0.81 (+0.01)"); each format only dresses them. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

/* Columns a cell takes on a terminal: UTF-8 continuation bytes (of ± and ×) take none. */
static int text_width(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static int is_best(const Table *t, int r, int c) { return t->best && t->best[r * t->ncols + c]; }

static void write_aligned(FILE *out, const Table *t, int md)
{
	int *w = xcalloc((size_t)t->ncols + 1, sizeof *w);
	for (int r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++) {
			int len = text_width(table_cell(t, r, c)) + 4 * is_best(t, r, c); /* **bold** */
			w[c] = len > w[c] ? len : w[c];
		}
	for (int r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *s = table_cell(t, r, c), *stars = is_best(t, r, c) ? "**" : "";
			int pad = w[c] - text_width(s) - 2 * (int)strlen(stars),
			    left = c == 0 || r == 0; /* names left, numbers right */
			fputs(md ? "| " : c ? "  " : "", out);
			if (!left)
				fprintf(out, "%*s", pad, "");
			fprintf(out, "%s%s%s", stars, s, stars);
			if (left && (md || c + 1 < t->ncols))
				fprintf(out, "%*s", pad, "");
			if (md)
				fputc(' ', out);
		}
		fputs(md ? "|\n" : "\n", out);
		if (md && r == 0) {
			for (int c = 0; c < t->ncols; c++) {
				fputs(c == 0 ? "|:" : "|-", out);
				for (int k = 0; k < w[c]; k++)
					fputc('-', out);
				fputs(c == 0 ? "-" : ":", out);
			}
			fputs("|\n", out);
		}
	}
	free(w);
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void write_json(FILE *out, const Table *t)
{
	fputs("[", out);
	for (int r = 1; r < t->nrows; r++) {
		fputs(r > 1 ? ",\n  {" : "\n  {", out);
		for (int c = 0; c < t->ncols; c++) {
			fputs(c ? ", " : "", out);
			json_str(out, table_cell(t, 0, c));
			const char *v = table_cell(t, r, c);
			char *end;
			double d = strtod(v, &end);
			fputs(": ", out);
			if (*v && !*end && isfinite(d))
				fputs(v, out);
			else
				json_str(out, v);
		}
		int nbest = 0; /* --best: the row's best columns, by name */
		for (int c = 0; c < t->ncols; c++)
			if (is_best(t, r, c)) {
				fputs(nbest++ ? ", " : ", \"best\": [", out);
				json_str(out, table_cell(t, 0, c));
			}
		fputs(nbest ? "]}" : "}", out);
	}
	fputs("\n]\n", out);
}

/* s as LaTeX text: its special characters escaped, ± and × in math mode, a minus sign as
 * one (not a hyphen) where a number starts. */
static void latex_text(FILE *out, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (!strncmp(p, "±", strlen("±"))) {
			fputs("$\\pm$", out);
			p += strlen("±") - 1;
		} else if (!strncmp(p, "×", strlen("×"))) {
			fputs("$\\times$", out);
			p += strlen("×") - 1;
		} else if (*p == '-' && p[1] >= '0' && p[1] <= '9' && (p == s || p[-1] == ' ' || p[-1] == '(')) {
			fputs("$-$", out);
		} else if (strchr("&%$#_{}", *p)) {
			fprintf(out, "\\%c", *p);
		} else if (*p == '\\') {
			fputs("\\textbackslash{}", out);
		} else if (*p == '~') {
			fputs("\\textasciitilde{}", out);
		} else if (*p == '^') {
			fputs("\\textasciicircum{}", out);
		} else {
			fputc(*p, out);
		}
	}
}

/* A column is set right when every cell under its header that holds anything starts with
 * a number, else left (names, tags). */
static int numeric_column(const Table *t, int c)
{
	for (int r = 1; r < t->nrows; r++) {
		const char *s = table_cell(t, r, c);
		char *end;
		if (*s && (strtod(s, &end), end == s))
			return 0;
	}
	return c > 0;
}

/* A booktabs tabular (\usepackage{booktabs}): header, rule, rows, the row of means below
 * a rule of its own; best cells \textbf. */
static void write_latex(FILE *out, const Table *t)
{
	fputs("% kiln metrics; needs \\usepackage{booktabs}\n\\begin{tabular}{", out);
	for (int c = 0; c < t->ncols; c++)
		fputc(numeric_column(t, c) ? 'r' : 'l', out);
	fputs("}\n\\toprule\n", out);
	for (int r = 0; r < t->nrows; r++) {
		if (r > 1 && r == t->mean_row)
			fputs("\\midrule\n", out);
		for (int c = 0; c < t->ncols; c++) {
			fputs(c ? " & " : "", out);
			if (is_best(t, r, c))
				fputs("\\textbf{", out);
			latex_text(out, table_cell(t, r, c));
			if (is_best(t, r, c))
				fputc('}', out);
		}
		fputs(" \\\\\n", out);
		if (r == 0)
			fputs("\\midrule\n", out);
	}
	fputs("\\bottomrule\n\\end{tabular}\n", out);
}

void table_write(FILE *out, const Table *t, const char *format)
{
	if (!format || !strcmp(format, "text") || !strcmp(format, "md")) {
		write_aligned(out, t, format && !strcmp(format, "md"));
	} else if (!strcmp(format, "tsv")) {
		for (int r = 0; r < t->nrows; r++)
			for (int c = 0; c < t->ncols; c++)
				fprintf(out, "%s%c", table_cell(t, r, c), c + 1 < t->ncols ? '\t' : '\n');
	} else if (!strcmp(format, "latex")) {
		write_latex(out, t);
	} else { /* json: one object per row, keyed by the header */
		write_json(out, t);
	}
}

const char *table_format_of_path(const char *path)
{
	static const char *const ext[][2] = {{".tex", "latex"}, {".md", "md"}, {".tsv", "tsv"}, {".json", "json"}};
	size_t n = path ? strlen(path) : 0;
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		size_t e = strlen(ext[i][0]);
		if (n > e && !strcmp(path + n - e, ext[i][0]))
			return ext[i][1];
	}
	return NULL;
}
