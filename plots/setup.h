/* setup.h — two sections of the report in their own file: the setup a result came from
 * (kiln's version, the recipe and its params, the results of tasks no chart draws and that
 * carry no tags: an environment check's torch and CUDA versions, world size ...) and the
 * Markdown files tasks wrote (a performance report), embedded as HTML. */
#ifndef KILN_SETUP_H
#define KILN_SETUP_H

#include <stdio.h>

#include "report.h"

/* command: the latest run's command line (the params it gave), or NULL. */
void report_setup(FILE *f, const ReportOptions *o, const char *command);
/* Whether any task of the recipe has a Markdown output on disk (the nav links it). */
int report_has_documents(const ReportOptions *o);
void report_documents(FILE *f, const ReportOptions *o);

#endif
