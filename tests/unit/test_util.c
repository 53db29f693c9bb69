/* test_util.c — parsing of durations and sizes, buffers, the string map, paths. */
#include <stdlib.h>

#include "../../runner/graph.h"
#include "../../runner/util.h"
#include "check.h"

int main(void)
{
	CHECK(parse_duration("30") == 30);
	CHECK(parse_duration("90s") == 90);
	CHECK(parse_duration("5m") == 300);
	CHECK(parse_duration("1h30m") == 5400);
	CHECK(parse_duration("2h") == 7200);
	CHECK(parse_duration("soon") < 0);
	CHECK(parse_duration("5x") < 0);
	CHECK(parse_duration("") < 0);
	CHECK(parse_duration("1h30") < 0);

	CHECK(parse_size_mib("512") == 512);
	CHECK(parse_size_mib("512M") == 512);
	CHECK(parse_size_mib("16G") == 16384);
	CHECK(parse_size_mib("1T") == 1048576);
	CHECK(parse_size_mib("1.5G") == 1536);
	CHECK(parse_size_mib("lots") < 0);

	Buf b = {0};
	CHECK_STR(buf_str(&b), "");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	CHECK(b.len == strlen(b.data));
	CHECK_CONTAINS(b.data, "999,");
	buf_free(&b);

	StrMap m = {0};
	char keys[2000][8];
	for (int i = 0; i < 2000; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		strmap_put(&m, keys[i], (void *)(long)(i + 1));
	}
	CHECK(m.count == 2000);
	CHECK(strmap_get(&m, "k1234") == (void *)1235L);
	CHECK(strmap_get(&m, "nope") == NULL);
	CHECK(strmap_put(&m, "k5", (void *)7L) == (void *)6L);
	CHECK(m.count == 2000);
	strmap_free(&m);

	Graph *g = graph_new("/work/space");
	CHECK_STR(graph_norm_path(g, "./a//b/"), "a/b");
	CHECK_STR(graph_norm_path(g, "a/./b/../c"), "a/c");
	CHECK_STR(graph_norm_path(g, "/work/space/x/y"), "x/y");
	CHECK_STR(graph_norm_path(g, "/work/spacey/x"), "/work/spacey/x");
	CHECK_STR(graph_norm_path(g, "../up/x"), "../up/x");
	CHECK_STR(graph_norm_path(g, "a/../../b"), "../b");
	CHECK_STR(graph_norm_path(g, "/work/space"), ".");
	graph_free(g);

	char d[32];
	format_duration(0.42, d, sizeof d);
	CHECK_STR(d, "0.4s");
	format_duration(185, d, sizeof d);
	CHECK_STR(d, "3m05s");
	return check_exit();
}
