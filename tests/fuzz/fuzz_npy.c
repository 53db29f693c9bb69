/* fuzz_npy.c — libFuzzer harness for the .npy reader: any bytes must parse or fail with
 * a message, and a parsed array must lie wholly inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/kernels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Npy a;
	memset(&a, 0, sizeof a);
	char err[256];
	if (npy_parse(data, size, "fuzz.npy", &a, err, sizeof err) == 0) {
		const uint8_t *p = a.data;
		if (p < data || a.nbytes > size || (size_t)(p - data) > size - a.nbytes)
			abort(); /* the promised bytes would be read past the input */
		volatile uint8_t sink = 0;
		if (a.nbytes)
			sink ^= p[0] ^ p[a.nbytes - 1];
		(void)sink;
	}
	return 0;
}
