/* units.c — units and directions read from metric names (see units.h). */
#include "units.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The name's last part: "sizes.busbw_gbs" -> "busbw_gbs". */
static const char *leaf(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? dot + 1 : name;
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);
	return n >= m && !strcmp(s + n - m, tail);
}

const char *metric_unit_of_name(const char *name)
{
	static const struct {
		const char *suffix, *unit;
	} suffixes[] = {
		{"_ms", "ms"},       {"_us", "µs"},       {"_sec", "s"},     {"_secs", "s"},    {"_seconds", "s"},
		{"_s", "s"},         {"_min", "min"},     {"_hours", "h"},   {"_pct", "%"},     {"_percent", "%"},
		{"_gbs", "GB/s"},    {"_gb_s", "GB/s"},   {"_mbs", "MB/s"},  {"_gib", "GiB"},   {"_mib", "MiB"},
		{"_gb", "GB"},       {"_mb", "MB"},       {"tflops", "TFLOP/s"}, {"_bytes", "B"},
	};
	const char *n = leaf(name);
	/* "samples_s", "images_s": a count per second, not seconds */
	static const char *const counted[] = {"samples_s", "images_s", "imgs_s", "items_s", "tokens_s", "examples_s"};
	for (size_t i = 0; i < sizeof counted / sizeof *counted; i++)
		if (ends_with(n, counted[i])) {
			static char unit[16];
			size_t len = strlen(counted[i]) - 2;
			memcpy(unit, counted[i], len);
			strcpy(unit + len, "/s");
			return unit;
		}
	/* "images_per_s" / "items_per_sec": the counted thing per second */
	const char *per = strstr(n, "_per_s");
	if (per && (!strcmp(per, "_per_s") || !strcmp(per, "_per_sec") || !strcmp(per, "_per_second"))) {
		static char unit[64]; /* one caller at a time: tables are built on one thread */
		const char *start = n;
		for (const char *u = n; u < per; u++) /* the last word before _per_s */
			if (*u == '_')
				start = u + 1;
		size_t len = (size_t)(per - start);
		if (len == 0 || len > sizeof unit - 3)
			return "/s";
		memcpy(unit, start, len);
		strcpy(unit + len, "/s");
		return unit;
	}
	for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
		if (ends_with(n, suffixes[i].suffix) && strlen(n) > strlen(suffixes[i].suffix))
			return suffixes[i].unit;
	return NULL;
}

const char *metric_unit(const char *name, const char *declared)
{
	return declared && *declared ? declared : metric_unit_of_name(name);
}

MetricKind metric_kind(const char *name, const char *declared)
{
	const char *unit = metric_unit(name, declared);
	if (unit) {
		if (strstr(unit, "/s") || strstr(unit, "/sec"))
			return METRIC_RATE;
		static const char *const times[] = {"s", "ms", "µs", "min", "h", "seconds", "sec"};
		for (size_t i = 0; i < sizeof times / sizeof *times; i++)
			if (!strcmp(unit, times[i]))
				return METRIC_TIME;
	}
	static const char *const rates[] = {"throughput", "per_s", "bandwidth", "busbw", "algbw", "tflops", "speed",
					    "samples_s", "images_s", "items_s", "tokens_s"};
	static const char *const times[] = {"time", "latency", "duration", "elapsed", "seconds"};
	const char *n = leaf(name);
	for (size_t i = 0; i < sizeof rates / sizeof *rates; i++)
		if (strstr(n, rates[i]))
			return METRIC_RATE;
	for (size_t i = 0; i < sizeof times / sizeof *times; i++)
		if (strstr(n, times[i]))
			return METRIC_TIME;
	return METRIC_PLAIN;
}

int metric_decimals(double maxabs)
{
	if (!(maxabs > 0) || isinf(maxabs))
		return 4;
	int d = 3 - (int)floor(log10(maxabs) + 1e-9);
	return d < 0 ? 0 : d > 6 ? 6 : d;
}
