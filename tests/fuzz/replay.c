/* replay.c — runs a fuzz harness without libFuzzer: each file named on the command line
 * goes through LLVMFuzzerTestOneInput once. ctest builds every harness with it and replays
 * the seeds (tests/fuzz/seeds, recipes/), so a harness that stops compiling or linking, or
 * a seed that now crashes or trips a sanitizer, fails the suite, not the next fuzzing run
 * (scripts/fuzz.sh needs clang, which CI does not install). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE...  (each file is one input to the harness)\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		size_t cap = 1 << 16, len = 0, got;
		uint8_t *data = malloc(cap);
		while (data && (got = fread(data + len, 1, cap - len, f)) > 0)
			if ((len += got) == cap)
				data = realloc(data, cap *= 2);
		fclose(f);
		if (!data) {
			fprintf(stderr, "%s: out of memory\n", argv[i]);
			return 1;
		}
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		printf("ok  %s (%zu bytes)\n", argv[i], len);
	}
	return 0;
}
