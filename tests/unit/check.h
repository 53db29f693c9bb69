/* check.h — a minimal unit-test harness: CHECK records failures and keeps going;
 * check_exit() turns them into the exit status ctest reads. */
#ifndef KILN_CHECK_H
#define KILN_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                                                    \
	do {                                                                                           \
		check_count++;                                                                         \
		if (!(cond)) {                                                                         \
			check_failures++;                                                              \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
		}                                                                                      \
	} while (0)
#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0)
#define CHECK_CONTAINS(hay, needle) CHECK(strstr((hay), (needle)) != NULL)

static inline int check_exit(void)
{
	printf("%d checks, %d failed\n", check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
