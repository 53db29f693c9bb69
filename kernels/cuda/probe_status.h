// probe_status.h — one probe part as a JSON object member, shared by the probe modules.
#ifndef KILN_PROBE_STATUS_H
#define KILN_PROBE_STATUS_H

#include <stdio.h>

static inline void kk_probe_status(FILE *out, const char *part, const char *st, const char *reason, const char *extra)
{
	fprintf(out, "  \"%s\": {\"status\": \"%s\"", part, st);
	if (reason && *reason)
		fprintf(out, ", \"reason\": \"%s\"", reason);
	if (extra && *extra)
		fprintf(out, ", %s", extra);
	fprintf(out, "},\n");
}

#endif
