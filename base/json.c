/* json.c — recursive-descent JSON parsing (RFC 8259) into a malloc'd tree, depth-limited,
 * with the position of the first error. */
#define _GNU_SOURCE
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *s, *end, *start;
	Buf *err;
	int depth;
} Parser;

static void fail(Parser *p, const char *what)
{
	if (p->err->len)
		return;
	int line = 1, col = 1;
	for (const char *c = p->start; c < p->s && c < p->end; c++) {
		if (*c == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	buf_printf(p->err, "line %d, column %d: %s", line, col, what);
}

static void skip_ws(Parser *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static Json *node(JsonType t)
{
	Json *j = xcalloc(1, sizeof *j);
	j->type = t;
	return j;
}

static void push(Json *parent, Json *child)
{
	parent->items = xrealloc(parent->items, (size_t)(parent->count + 1) * sizeof *parent->items);
	parent->items[parent->count++] = child;
}

static void put_utf8(Buf *b, unsigned cp)
{
	if (cp < 0x80) {
		buf_putc(b, (char)cp);
	} else if (cp < 0x800) {
		buf_putc(b, (char)(0xc0 | cp >> 6));
		buf_putc(b, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		buf_putc(b, (char)(0xe0 | cp >> 12));
		buf_putc(b, (char)(0x80 | (cp >> 6 & 0x3f)));
		buf_putc(b, (char)(0x80 | (cp & 0x3f)));
	} else {
		buf_putc(b, (char)(0xf0 | cp >> 18));
		buf_putc(b, (char)(0x80 | (cp >> 12 & 0x3f)));
		buf_putc(b, (char)(0x80 | (cp >> 6 & 0x3f)));
		buf_putc(b, (char)(0x80 | (cp & 0x3f)));
	}
}

static char *parse_string(Parser *p)
{
	p->s++; /* opening quote */
	Buf b = {0};
	while (p->s < p->end && *p->s != '"') {
		unsigned char c = (unsigned char)*p->s;
		if (c < 0x20) {
			fail(p, "control character in string");
			buf_free(&b);
			return NULL;
		}
		if (c != '\\') {
			buf_putc(&b, (char)c);
			p->s++;
			continue;
		}
		if (++p->s >= p->end)
			break;
		char e = *p->s++;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (simple && e) {
			buf_putc(&b, "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]);
		} else if (e == 'u' && p->end - p->s >= 4) {
			char hex[5] = {p->s[0], p->s[1], p->s[2], p->s[3], 0};
			char *endp;
			unsigned cp = (unsigned)strtoul(hex, &endp, 16);
			if (*endp) {
				fail(p, "bad \\u escape");
				buf_free(&b);
				return NULL;
			}
			p->s += 4;
			put_utf8(&b, cp);
		} else {
			fail(p, "bad escape in string");
			buf_free(&b);
			return NULL;
		}
	}
	if (p->s >= p->end) {
		fail(p, "unterminated string");
		buf_free(&b);
		return NULL;
	}
	p->s++;
	return b.data ? b.data : xstrdup("");
}

static Json *parse_value(Parser *p);

static Json *parse_container(Parser *p, int object)
{
	Json *j = node(object ? J_OBJECT : J_ARRAY);
	p->s++;
	skip_ws(p);
	if (p->s < p->end && *p->s == (object ? '}' : ']')) {
		p->s++;
		return j;
	}
	for (;;) {
		char *key = NULL;
		skip_ws(p);
		if (object) {
			if (p->s >= p->end || *p->s != '"') {
				fail(p, "expected a \"key\"");
				goto bad;
			}
			if (!(key = parse_string(p)))
				goto bad;
			skip_ws(p);
			if (p->s >= p->end || *p->s != ':') {
				free(key);
				fail(p, "expected ':' after the key");
				goto bad;
			}
			p->s++;
		}
		Json *v = parse_value(p);
		if (!v) {
			free(key);
			goto bad;
		}
		v->key = key;
		push(j, v);
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == (object ? '}' : ']')) {
			p->s++;
			return j;
		}
		fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
		goto bad;
	}
bad:
	json_free(j);
	return NULL;
}

static Json *parse_value(Parser *p)
{
	skip_ws(p);
	if (p->s >= p->end) {
		fail(p, "unexpected end of input");
		return NULL;
	}
	if (++p->depth > 64) {
		fail(p, "nesting deeper than 64");
		return NULL;
	}
	Json *j = NULL;
	char c = *p->s;
	if (c == '{' || c == '[') {
		j = parse_container(p, c == '{');
	} else if (c == '"') {
		char *s = parse_string(p);
		if (s) {
			j = node(J_STRING);
			j->string = s;
		}
	} else if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
		j = node(J_BOOL);
		j->number = c == 't';
		p->s += c == 't' ? 4 : 5;
	} else if (!strncmp(p->s, "null", 4)) {
		j = node(J_NULL);
		p->s += 4;
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		char *endp;
		double v = strtod(p->s, &endp);
		if (endp == p->s || !isfinite(v)) {
			fail(p, "bad number");
		} else {
			j = node(J_NUMBER);
			j->number = v;
			p->s = endp;
		}
	} else if (!strncmp(p->s, "NaN", 3) || !strncmp(p->s, "Infinity", 8) || !strncmp(p->s, "-Infinity", 9)) {
		fail(p, "NaN and Infinity are not JSON (write null, or leave the metric out)");
	} else {
		fail(p, "unexpected character");
	}
	p->depth--;
	return j;
}

Json *json_parse(const char *text, size_t len, Buf *err)
{
	Parser p = {text, text + len, text, err, 0};
	Json *j = parse_value(&p);
	if (j) {
		skip_ws(&p);
		if (p.s < p.end) {
			fail(&p, "extra text after the JSON value");
			json_free(j);
			return NULL;
		}
	}
	return j;
}

void json_free(Json *j)
{
	if (!j)
		return;
	for (int i = 0; i < j->count; i++)
		json_free(j->items[i]);
	free(j->items);
	free(j->string);
	free(j->key);
	free(j);
}

const Json *json_get(const Json *obj, const char *key)
{
	if (!obj || obj->type != J_OBJECT)
		return NULL;
	for (int i = 0; i < obj->count; i++)
		if (obj->items[i]->key && !strcmp(obj->items[i]->key, key))
			return obj->items[i];
	return NULL;
}
