/* ports.h — TCP ports reserved for running attempts ({port}, KILN_PORT): each is found
 * free by binding it, and no two running attempts of this kiln get the same one. The
 * socket is closed before the task starts (the task binds the port itself), so another
 * program could take it in between; distributed launchers retry on "address in use". */
#ifndef KILN_PORTS_H
#define KILN_PORTS_H

#include "../../base/util.h"

#define PORTS_MAX 16 /* per task: {port}, {port1} ... {port15} */

typedef struct PortPool PortPool;
PortPool *ports_new(void);
void ports_free(PortPool *p);
/* Reserves n ports into out: 0, or -1 with why in err (no free port could be bound). */
int ports_reserve(PortPool *p, int n, int *out, Buf *err);
/* Returns n reserved ports to the pool. */
void ports_release(PortPool *p, const int *ports, int n);

#endif
