/* nocuda.c — the CUDA entry points when kiln-kernels is built without the toolkit. */
#include <stdio.h>

#include "../kernels.h"

int cuda_available(char *why, size_t whylen)
{
	snprintf(why, whylen, "kiln-kernels was built without CUDA");
	return 0;
}

int zeroshot_cuda(const ZeroshotInput *in, ZeroshotResult *r, char *err, size_t errlen)
{
	(void)in, (void)r;
	snprintf(err, errlen, "kiln-kernels was built without CUDA");
	return -1;
}
