/* backend.h — what libkiln-kernels-probe.so exports to `kiln-kernels probe` (found by
 * name through modules.h; built only when CMake finds the CUDA toolkit). */
#ifndef KILN_CUDA_BACKEND_H
#define KILN_CUDA_BACKEND_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the probe's CUDA members ("cuda", "copy", "matmul", "cudnn", "nccl", each with a
 * status) as JSON object members to out; returns 1 if all that ran passed. */
int probe_cuda(FILE *out);

#ifdef __cplusplus
}
#endif

#endif
