/* sizehint.c — the loader's table sizes, kept beside the state (see sizehint.h): one line,
 * "memo N last M". */
#include "sizehint.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* a sane bound: a hint past it (a damaged file) is not believed */
#define MOST (1u << 30)

SizeHint sizehint_read(const char *path)
{
	SizeHint h = {0, 0};
	char text[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return h;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return h;
	text[n] = 0;
	unsigned long long memo, last;
	char end;
	/* the newline must be there: a line cut short by a crash is no hint */
	if (sscanf(text, "memo %llu last %llu%c", &memo, &last, &end) == 3 && end == '\n' && memo <= MOST &&
	    last <= MOST)
		h = (SizeHint){(size_t)memo, (size_t)last};
	return h;
}

void sizehint_write(const char *path, SizeHint h)
{
	char text[64];
	int len = snprintf(text, sizeof text, "memo %zu last %zu\n", h.memo, h.last);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return;
	if (write(fd, text, (size_t)len) != len) {
		/* a short write leaves no newline: read as no hint */
	}
	close(fd);
}
