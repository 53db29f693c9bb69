/* nocuda.c — the CUDA entry points of the program: calls into libkiln-kernels-cuda.so,
 * loaded on first use. Where it is missing (a build without the toolkit) or cannot load (a
 * machine without the CUDA runtime), CUDA is unavailable and says why; the C back end runs. */
#include <stdio.h>

#include "../kernels.h"
#include "../modules.h"

typedef int (*AvailableFn)(char *, size_t);
typedef int (*ZeroshotFn)(const ZeroshotInput *, ZeroshotResult *, char *, size_t);

int cuda_available(char *why, size_t whylen)
{
	AvailableFn fn = (AvailableFn)kk_module_symbol("libkiln-kernels-cuda.so", "kk_cuda_available", why, whylen);
	return fn ? fn(why, whylen) : 0;
}

int zeroshot_cuda(const ZeroshotInput *in, ZeroshotResult *r, char *err, size_t errlen)
{
	ZeroshotFn fn = (ZeroshotFn)kk_module_symbol("libkiln-kernels-cuda.so", "kk_zeroshot_cuda", err, errlen);
	return fn ? fn(in, r, err, errlen) : -1;
}
