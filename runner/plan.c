/* plan.c — `kiln run -n` and `kiln status`: what a run would do, with a reason for each
 * task, from the cache's verdicts; nothing runs. */
#include "sched.h"

typedef struct {
	FILE *out;
	int all;
} PlanPrint;

static void print_verdict(void *ctx, const Task *t, enum Verdict v, const char *reason)
{
	PlanPrint *p = ctx;
	if (v == VERDICT_RUN)
		fprintf(p->out, "run       %s: %s\n", t->name, reason);
	else if (v == VERDICT_RESTORED)
		fprintf(p->out, "restore   %s: %s\n", t->name, reason);
	else if (p->all)
		fprintf(p->out, "ok        %s\n", t->name);
}

int sched_plan(Graph *g, Cache *c, FILE *out, int all)
{
	PlanPrint p = {out, all};
	return cache_plan(c, g, print_verdict, &p);
}
