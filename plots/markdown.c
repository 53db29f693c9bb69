/* markdown.c — a task's Markdown as escaped HTML (see markdown.h). Line by line: a block
 * is open (paragraph, list, table, code) until a line that cannot continue it. */
#include "markdown.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"

enum Block { NONE, PARA, UL, OL, TABLE, CODE };

/* Escaped text of s[0..n) with `code`, **bold** and *emphasis*; [text](url) keeps its text
 * (a link from a task's file is not followed from the page). */
static void inline_html(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *end;
		if (s[i] == '`' && (end = memchr(s + i + 1, '`', n - i - 1))) {
			fputs("<code>", f);
			for (const char *c = s + i + 1; c < end; c++)
				*c == '<' ? fputs("&lt;", f) : *c == '>' ? fputs("&gt;", f) : *c == '&' ? fputs("&amp;", f) : fputc(*c, f);
			fputs("</code>", f);
			i = (size_t)(end - s);
		} else if (s[i] == '*' && i + 1 < n && s[i + 1] == '*' && (end = strstr(s + i + 2, "**")) && end < s + n) {
			fputs("<strong>", f);
			inline_html(f, s + i + 2, (size_t)(end - s - i - 2));
			fputs("</strong>", f);
			i = (size_t)(end - s) + 1;
		} else if (s[i] == '*' && i + 1 < n && s[i + 1] != ' ' && (end = memchr(s + i + 1, '*', n - i - 1))) {
			fputs("<em>", f);
			inline_html(f, s + i + 1, (size_t)(end - s - i - 1));
			fputs("</em>", f);
			i = (size_t)(end - s);
		} else if (s[i] == '[' && (end = memchr(s + i, ']', n - i)) && end + 1 < s + n && end[1] == '(' &&
			   memchr(end, ')', (size_t)(s + n - end))) {
			inline_html(f, s + i + 1, (size_t)(end - s - i - 1));
			i = (size_t)((const char *)memchr(end, ')', (size_t)(s + n - end)) - s);
		} else {
			char c[2] = {s[i], 0};
			html_text(f, c);
		}
	}
}

/* A table row's cells: "| a | b |" -> "a", "b"; emits them as <th> or <td>. */
static void table_row(FILE *f, const char *s, size_t n, int header)
{
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n && s[0] == '|')
		s++, n--;
	if (n && s[n - 1] == '|')
		n--;
	fputs("<tr>", f);
	while (1) {
		const char *bar = memchr(s, '|', n);
		size_t len = bar ? (size_t)(bar - s) : n;
		const char *c = s;
		size_t m = len;
		while (m && isspace((unsigned char)*c))
			c++, m--;
		while (m && isspace((unsigned char)c[m - 1]))
			m--;
		/* a number (1.85×, 0.8123 ± 0.0100, 12 %) is right-aligned */
		char *num_end;
		int number = m && (strtod(c, &num_end), num_end != c);
		fprintf(f, header ? "<th>" : number ? "<td class=\"n\">" : "<td>");
		inline_html(f, c, m);
		fputs(header ? "</th>" : "</td>", f);
		if (!bar)
			break;
		n -= len + 1;
		s = bar + 1;
	}
	fputs("</tr>\n", f);
}

/* "|---|:--:|": the line under a table's header. */
static int is_rule(const char *s, size_t n)
{
	int dashes = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '-')
			dashes++;
		else if (!strchr("|: \t", s[i]))
			return 0;
	}
	return dashes >= 3 && memchr(s, '|', n) != NULL;
}

static void close_block(FILE *f, enum Block b)
{
	static const char *const ends[] = {"", "</p>\n", "</ul>\n", "</ol>\n", "</table></div>\n", "</code></pre>\n"};
	fputs(ends[b], f);
}

void markdown_html(FILE *f, const char *text, size_t len)
{
	enum Block open = NONE;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *next = nl ? nl + 1 : end;
		if (n && p[n - 1] == '\r')
			n--;
		size_t indent = 0;
		while (indent < n && p[indent] == ' ')
			indent++;
		const char *s = p + indent;
		size_t m = n - indent;
		if (open == CODE) {
			if (m >= 3 && !strncmp(s, "```", 3)) {
				close_block(f, open);
				open = NONE;
			} else {
				char *line = strndup(p, n);
				html_text(f, line);
				fputc('\n', f);
				free(line);
			}
		} else if (m >= 3 && !strncmp(s, "```", 3)) {
			close_block(f, open);
			fputs("<pre class=\"md\"><code>", f);
			open = CODE;
		} else if (m == 0) {
			close_block(f, open);
			open = NONE;
		} else if (s[0] == '#') {
			int level = 0;
			while (level < (int)m && s[level] == '#')
				level++;
			close_block(f, open);
			open = NONE;
			int h = level + 2 > 6 ? 6 : level + 2; /* under the report's own h2 */
			const char *t = s + level;
			while (t < s + m && *t == ' ')
				t++;
			fprintf(f, "<h%d>", h);
			inline_html(f, t, (size_t)(s + m - t));
			fprintf(f, "</h%d>\n", h);
		} else if (s[0] == '|' && (open == TABLE || (next < end && is_rule(next, strcspn(next, "\n"))))) {
			if (open != TABLE) {
				close_block(f, open);
				fputs("<div class=\"scroll\"><table class=\"md\">\n", f);
				table_row(f, s, m, 1);
				open = TABLE;
				next += strcspn(next, "\n"); /* the rule under the header */
				next += next < end;
			} else {
				table_row(f, s, m, 0);
			}
		} else if ((m > 1 && strchr("-*+", s[0]) && s[1] == ' ') ||
			   (isdigit((unsigned char)s[0]) && strspn(s, "0123456789") < m && s[strspn(s, "0123456789")] == '.')) {
			enum Block kind = isdigit((unsigned char)s[0]) ? OL : UL;
			if (open != kind) {
				close_block(f, open);
				fputs(kind == UL ? "<ul>\n" : "<ol>\n", f);
				open = kind;
			}
			const char *t = kind == UL ? s + 2 : s + strspn(s, "0123456789") + 1;
			while (t < s + m && *t == ' ')
				t++;
			fputs("<li>", f);
			inline_html(f, t, (size_t)(s + m - t));
			fputs("</li>\n", f);
		} else {
			if (open != PARA) {
				close_block(f, open);
				fputs("<p>", f);
				open = PARA;
			} else {
				fputc(' ', f);
			}
			inline_html(f, s, m);
		}
		p = next;
	}
	close_block(f, open);
}
