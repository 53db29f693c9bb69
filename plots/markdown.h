/* markdown.h — the Markdown a task writes (a performance report, a summary: what
 * `kiln metrics --format md` writes) as HTML inside the report: headings, paragraphs,
 * bullet and numbered lists, pipe tables (numbers right-aligned), fenced code, and inline
 * `code`, **bold** and *emphasis*. Everything else is text, escaped: a task's file can
 * never inject markup or script into the page. */
#ifndef KILN_MARKDOWN_H
#define KILN_MARKDOWN_H

#include <stddef.h>
#include <stdio.h>

void markdown_html(FILE *f, const char *text, size_t len);

#endif
