/* fuzz_metrics.c — libFuzzer harness for a task's metrics JSON: any bytes must parse
 * into rows or fail with a message, without leaks or out-of-bounds reads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cache/state/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1); /* metrics_parse reads text as read_file gives it */
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	Metrics m;
	Buf err = {0};
	if (metrics_parse(text, size, "fuzz.json", &m, &err) == 0) {
		for (int i = 0; i < m.count; i++)
			if (!m.rows[i].key)
				abort();
		metrics_free(&m);
	} else if (!err.len) {
		abort(); /* a failure always says why */
	}
	buf_free(&err);
	free(text);
	return 0;
}
