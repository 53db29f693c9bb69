/* exit_file.c — an attempt's end in the file beside its log (exit_file.h). */
#include "exit_file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void exit_file_write(const char *path, int status)
{
	char tmp[4200], text[64];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return;
	if (WIFEXITED(status))
		snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(status));
	else
		snprintf(text, sizeof text, "signal %d\n", WTERMSIG(status));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return;
	int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	if (close(fd) == 0 && ok)
		rename(tmp, path);
	else
		unlink(tmp);
}

int exit_told_group(int status)
{
	if (!WIFSIGNALED(status))
		return 0;
	int sig = WTERMSIG(status);
	return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGUSR1 || sig == SIGUSR2;
}
