/* json.h — a small JSON reader for metrics files: parses into a tree, reports errors
 * with line:column. Library code: never exits. */
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include "util.h"

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } JsonType;

typedef struct Json Json;
struct Json {
	JsonType type;
	double number;     /* J_NUMBER, J_BOOL (0/1) */
	char *string;      /* J_STRING; the key for members of an object */
	char *key;
	Json **items;      /* J_ARRAY, J_OBJECT */
	int count;
};

/* Parses text; returns a tree (free with json_free) or NULL with "line L, column C: ..." in err. */
Json *json_parse(const char *text, size_t len, Buf *err);
void json_free(Json *j);
/* Member of an object by key, or NULL. */
const Json *json_get(const Json *obj, const char *key);

#endif
