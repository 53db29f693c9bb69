/* modules.h — kiln-kernels' CUDA parts are shared modules beside the binary, loaded with
 * dlopen only by the verbs that use them: the C back end and `synth` load no CUDA library,
 * the CUDA zero-shot path loads the CUDA runtime only (libkiln-kernels-cuda.so), and
 * `probe` loads cuBLAS, cuDNN and NCCL each through a module of its own, so the absence of
 * any one is reported rather than stopping the program from starting. */
#ifndef KILN_KERNELS_MODULES_H
#define KILN_KERNELS_MODULES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The symbol name of module file ("libkiln-kernels-cuda.so"), looked for beside this
 * program and one directory up (tests and benchmarks live below the build directory);
 * NULL with why (the loader's message) when the module or a library it needs is missing. */
void *kk_module_symbol(const char *file, const char *name, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif
