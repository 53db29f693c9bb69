/* nocuda.c — the CUDA entry points of the program: calls into libkiln-kernels-cuda.so,
 * loaded on first use. Where it is missing (a build without the toolkit) or cannot load (a
 * machine without the CUDA runtime), CUDA is unavailable and says why; the C back end runs. */
#include <stdint.h>
#include <stdio.h>

#include "../comm.h"
#include "../conv.h"
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
	if (!fn || fn(in, r, err, errlen) != 0)
		return -1;
	/* a GPU that computes wrongly (a driver, a kernel bug) must not leave a wrong result;
	 * ZS_SPOT_ROWS rows, fewer as each costs more (C x D past 1M; 4 from 8M on, as 21k x 1024) */
	int64_t work = in->c * in->d, rows = work > 0 ? (32LL << 20) / work : ZS_SPOT_ROWS;
	rows = rows > ZS_SPOT_ROWS ? ZS_SPOT_ROWS : rows < 4 ? 4 : rows;
	return r->topk ? zeroshot_spot_check(in, r, rows, err, errlen) : 0;
}

/* NCCL and cuDNN live in modules of their own, so a machine without one still runs the rest */
int comm_cuda(const CommSpec *s, CommResult *r, char *err, size_t errlen)
{
	typedef int (*Fn)(const CommSpec *, CommResult *, char *, size_t);
	Fn fn = (Fn)kk_module_symbol("libkiln-kernels-nccl.so", "kk_comm_nccl", err, errlen);
	return fn ? fn(s, r, err, errlen) : -1;
}

int conv_cuda(const ConvSpec *s, ConvResult *r, char *err, size_t errlen)
{
	typedef int (*Fn)(const ConvSpec *, ConvResult *, char *, size_t);
	Fn fn = (Fn)kk_module_symbol("libkiln-kernels-cudnn.so", "kk_conv_cudnn", err, errlen);
	return fn ? fn(s, r, err, errlen) : -1;
}
