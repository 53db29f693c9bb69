/* test_gpu.c — GPU leasing: distinct devices, release, foreign load by memory and by
 * utilisation averaged over readings, memory minimum, re-reading an injected description
 * file, --gpus restricting the devices that have readings, the least busy lease, devices
 * another kiln's jobs hold (readings' "leased" lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runner/exec/gpu.h"
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
	CHECK(gpu_pool_from_list("0,99999999999", &err) == NULL); /* not cut to an int: refused */
	buf_reset(&err);
	p = gpu_pool_from_list("0,0,1", &err); /* a device named twice is one device */
	CHECK(p && gpu_count(p) == 2);
	gpu_pool_free(p);

	char path[] = "/tmp/kiln-gpus-XXXXXX";
	int fd = mkstemp(path);
	dprintf(fd, "0, 80000, 60000\n1, 80000, 1000\n2, 40000, 100\n");
	close(fd);
	p = gpu_pool_from_file(path, &err);
	CHECK(p && gpu_count(p) == 3);
	CHECK(gpu_busy_count(p) == 1);
	CHECK(gpu_lease(p, 1, 50000, ids) == 0 && ids[0] == 1); /* 0 busy; 2 too small */
	CHECK(gpu_lease(p, 1, 50000, ids) == -1);
	gpu_set_busy_threshold(p, 0.9, 0.7);
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
	buf_reset(&err);

	/* utilisation: the fourth column, averaged over the recent readings */
	f = fopen(path, "w");
	fprintf(f, "0, 80000, 1000, 95\n1, 80000, 1000, 10\n2, 80000, 1000\n");
	fclose(f);
	p = gpu_pool_from_file(path, &err);
	CHECK(p && gpu_busy_count(p) == 1); /* device 0 is 95 % busy */
	Buf d = {0};
	gpu_describe(p, &d);
	CHECK(strstr(buf_str(&d), "GPU 0 busy 95 % util") && strstr(buf_str(&d), "GPU 1 free"));
	f = fopen(path, "w");
	fprintf(f, "0, 80000, 1000, 20\n1, 80000, 1000, 10\n2, 80000, 1000\n");
	fclose(f);
	gpu_refresh(p, 1);
	CHECK(gpu_busy_count(p) == 0); /* (95 + 20) / 2 = 57 %: under 70 % */
	gpu_set_busy_threshold(p, 0.5, 0.5);
	CHECK(gpu_busy_count(p) == 1); /* but over 50 % */
	CHECK(gpu_lease(p, 3, 0, ids) == -1);
	CHECK(gpu_lease_least_busy(p, 3, ids) == 0); /* after the wait: busy or not */
	CHECK(gpu_lease_least_busy(p, 1, more) == -1); /* all leased by kiln */
	gpu_release(p, ids, 3);
	CHECK(gpu_lease_least_busy(p, 1, more) == 0 && more[0] == 2); /* no reading: the least load */
	gpu_pool_free(p);

	/* "leased" lines: another kiln's jobs hold those devices (an ssh host's processes), idle
	 * as they may look, until a reading without them */
	f = fopen(path, "w");
	fprintf(f, "0, 80000, 100, 0\n1, 80000, 100, 0\n2, 80000, 100, 0\nleased 0,2\n");
	fclose(f);
	p = gpu_pool_from_file(path, &err);
	CHECK(p && gpu_busy_count(p) == 2);
	CHECK(gpu_lease(p, 2, 0, ids) == -1);
	CHECK(gpu_lease(p, 1, 0, ids) == 0 && ids[0] == 1);
	buf_reset(&d);
	gpu_describe(p, &d);
	CHECK(strstr(buf_str(&d), "GPU 0 held by another kiln's job there") && strstr(buf_str(&d), "GPU 1 leased to"));
	CHECK(gpu_lease_least_busy(p, 1, more) == 0); /* after a bounded wait: one of them */
	gpu_release(p, more, 1);
	f = fopen(path, "w");
	fprintf(f, "0, 80000, 100, 0\n1, 80000, 100, 0\n2, 80000, 100, 0\nleased 2\n");
	fclose(f);
	gpu_refresh(p, 1);
	CHECK(gpu_busy_count(p) == 1); /* that job on 0 ended */
	CHECK(gpu_lease(p, 1, 0, more) == 0 && more[0] == 0);
	gpu_pool_free(p);

	/* --gpus with readings keeps the busy test, and only the listed devices */
	f = fopen(path, "w");
	fprintf(f, "0, 80000, 1000, 95\n1, 80000, 1000, 10\n2, 80000, 1000\n");
	fclose(f);
	setenv("KILN_GPU_INFO", path, 1);
	p = gpu_pool_open("1,0", &err);
	CHECK(p && gpu_count(p) == 2);
	gpu_set_busy_threshold(p, 0.5, 0.5);
	CHECK(gpu_lease(p, 2, 0, ids) == -1); /* device 0 is busy; 2 is not ours */
	CHECK(gpu_lease(p, 1, 0, ids) == 0 && ids[0] == 1);
	gpu_pool_free(p);
	CHECK(gpu_pool_open("7", &err) == NULL);
	CHECK(strstr(buf_str(&err), "names device 7") != NULL);
	unsetenv("KILN_GPU_INFO");
	buf_free(&d);
	buf_free(&err);
	unlink(path);
	return check_exit();
}
