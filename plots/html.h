/* html.h — writing text into the report's HTML: escaped for element content and
 * attribute values alike. */
#ifndef KILN_HTML_H
#define KILN_HTML_H

#include <stdio.h>

void html_text(FILE *f, const char *s);

#endif
