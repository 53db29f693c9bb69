/* modules.c — finding and loading kiln-kernels' CUDA modules. A module is loaded once
 * (dlopen keeps a handle per path) and never unloaded: the CUDA runtime does not like it. */
#define _GNU_SOURCE
#include "modules.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void *kk_module_symbol(const char *file, const char *name, char *why, size_t whylen)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		snprintf(why, whylen, "cannot find this program's directory");
		return NULL;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	char first[8192] = "";
	for (int up = 0; up < 2; up++) {
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", self, file);
		if (access(path, R_OK) == 0) {
			void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
			if (!h) {
				snprintf(why, whylen, "%s", dlerror()); /* e.g. libcudnn.so.9: cannot open shared object file */
				return NULL;
			}
			void *sym = dlsym(h, name);
			if (!sym)
				snprintf(why, whylen, "%s has no %s", path, name);
			return sym;
		}
		if (!first[0])
			snprintf(first, sizeof first, "%s", path);
		slash = strrchr(self, '/');
		if (!slash)
			break;
		*slash = 0;
	}
	snprintf(why, whylen, "%s is not there (kiln-kernels was built without it)", first);
	return NULL;
}
