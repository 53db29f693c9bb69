/* test_modules_load.c — every CUDA module this build made loads with all its symbols bound
 * (RTLD_NOW) wherever its libraries are installed, and has its entry point: a module that
 * wants a symbol nobody defines (a C function compiled with C++ linkage, say) fails here,
 * on a machine without a GPU, not first on a GPU machine. A module whose CUDA library is
 * missing here is skipped with the loader's reason; exits 77 when no module was built. */
#include <stdio.h>
#include <string.h>

#include "../../kernels/modules.h"
#include "../unit/check.h"

int main(void)
{
	const char *modules[][2] = {{"libkiln-kernels-cuda.so", "kk_zeroshot_cuda"},
				    {"libkiln-kernels-probe.so", "probe_cuda"},
				    {"libkiln-kernels-cudnn.so", "kk_conv_cudnn"},
				    {"libkiln-kernels-nccl.so", "kk_comm_nccl"}};
	int built = 0;
	for (size_t i = 0; i < sizeof modules / sizeof *modules; i++) {
		char why[1024] = "";
		void *sym = kk_module_symbol(modules[i][0], modules[i][1], why, sizeof why);
		if (!sym && strstr(why, "is not there")) {
			printf("%s: not built\n", modules[i][0]);
			continue;
		}
		built++;
		if (!sym && strstr(why, "cannot open shared object file")) {
			printf("%s: skipped, a library it needs is not installed here: %s\n", modules[i][0], why);
			continue;
		}
		CHECK(sym != NULL);
		printf("%s: %s\n", modules[i][0], sym ? "loads, every symbol bound" : why);
	}
	if (!built) {
		printf("skipped: this build has no CUDA modules\n");
		return 77;
	}
	return check_exit();
}
