/* test_gpu.c — GPU leasing: distinct devices, release, foreign load, memory minimum,
 * re-reading an injected description file. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../runner/gpu.h"
#include "check.h"

int main(void)
{
	Buf err = {0};
	GpuPool *p = gpu_pool_from_list("0,1,3", &err);
	CHECK(p && gpu_count(p) == 3);
	int ids[4];
	CHECK(gpu_lease(p, 2, 0, ids) == 0);
	CHECK(ids[0] == 0 && ids[1] == 1);
	int more[4];
	CHECK(gpu_lease(p, 2, 0, more) == -1); /* only device 3 is left: all or nothing */
	CHECK(gpu_lease(p, 1, 0, more) == 0 && more[0] == 3);
	CHECK(gpu_lease(p, 1, 0, more) == -1);
	gpu_release(p, ids, 2);
	CHECK(gpu_lease(p, 2, 0, more) == 0 && more[0] == 0 && more[1] == 1);
	gpu_pool_free(p);
	CHECK(gpu_pool_from_list("0,x", &err) == NULL);
	CHECK(strstr(buf_str(&err), "--gpus takes device ids") != NULL);
	buf_reset(&err);

	char path[] = "/tmp/kiln-gpus-XXXXXX";
	int fd = mkstemp(path);
	dprintf(fd, "0, 80000, 60000\n1, 80000, 1000\n2, 40000, 100\n");
	close(fd);
	p = gpu_pool_from_file(path, &err);
	CHECK(p && gpu_count(p) == 3);
	CHECK(gpu_busy_count(p) == 1);
	CHECK(gpu_lease(p, 1, 50000, ids) == 0 && ids[0] == 1); /* 0 busy; 2 too small */
	CHECK(gpu_lease(p, 1, 50000, ids) == -1);
	gpu_set_busy_threshold(p, 0.9);
	CHECK(gpu_lease(p, 1, 0, ids) == 0 && ids[0] == 0); /* 75% used is under 90% */
	FILE *f = fopen(path, "w");
	fprintf(f, "2, 40000, 39000\n");
	fclose(f);
	gpu_refresh(p, 1);
	CHECK(gpu_lease(p, 1, 0, ids) == -1); /* device 2 is now busy */
	f = fopen(path, "w");
	fprintf(f, "not a gpu line\n");
	fclose(f);
	gpu_pool_free(p);
	CHECK(gpu_pool_from_file(path, &err) == NULL);
	CHECK(strstr(buf_str(&err), ":1: expected") != NULL);
	buf_free(&err);
	unlink(path);
	return check_exit();
}
