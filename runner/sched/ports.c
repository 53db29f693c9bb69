/* ports.c — a free port is one the kernel hands out for a bind to port 0 that no running
 * attempt of this kiln holds; reserved ports are kept until the attempt ends. */
#define _GNU_SOURCE
#include "ports.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct PortPool {
	int *held; /* ports of running attempts */
	int n, cap;
};

PortPool *ports_new(void) { return xcalloc(1, sizeof(PortPool)); }

void ports_free(PortPool *p)
{
	if (!p)
		return;
	free(p->held);
	free(p);
}

static int held(const PortPool *p, int port)
{
	for (int i = 0; i < p->n; i++)
		if (p->held[i] == port)
			return 1;
	return 0;
}

/* A port the kernel says is free now (bound on all addresses, then closed), or -1. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	socklen_t len = sizeof a;
	int port = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0
			   ? ntohs(a.sin_port)
			   : -1;
	close(fd);
	return port;
}

int ports_reserve(PortPool *p, int n, int *out, Buf *err)
{
	for (int i = 0; i < n; i++) {
		int port = -1;
		for (int tries = 0; tries < 64 && port < 0; tries++) {
			int cand = free_port();
			int dup = cand > 0 && held(p, cand);
			for (int j = 0; j < i && !dup; j++)
				dup = out[j] == cand;
			if (cand > 0 && !dup)
				port = cand;
		}
		if (port < 0) {
			buf_printf(err, "no free TCP port could be reserved (%s)", strerror(errno));
			ports_release(p, out, i);
			return -1;
		}
		if (p->n == p->cap)
			p->held = xrealloc(p->held, (size_t)(p->cap = p->cap ? p->cap * 2 : 16) * sizeof *p->held);
		p->held[p->n++] = out[i] = port;
	}
	return 0;
}

void ports_release(PortPool *p, const int *ports, int n)
{
	for (int k = 0; k < n; k++)
		for (int i = 0; i < p->n; i++)
			if (p->held[i] == ports[k]) {
				p->held[i] = p->held[--p->n];
				break;
			}
}
