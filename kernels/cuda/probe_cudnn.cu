// probe_cudnn.cu — the probe's cuDNN part (libkiln-kernels-cudnn.so, linked with cuDNN): a
// small convolution checked against a plain C loop.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "probe_status.h"

extern "C" int kk_probe_cudnn(FILE *out)
{
	// 2 images, 3 channels, 8x8; 4 filters 3x3, padding 1: check against a C loop
	const int N = 2, C = 3, H = 8, W = 8, K = 4, R = 3;
	float x[N * C * H * W], w[K * C * R * R], y[N * K * H * W], ref[N * K * H * W];
	for (int i = 0; i < N * C * H * W; i++)
		x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
	for (int i = 0; i < K * C * R * R; i++)
		w[i] = (float)((i * 17) % 7) / 7.0f - 0.5f;
	for (int n = 0; n < N; n++)
		for (int k = 0; k < K; k++)
			for (int i = 0; i < H; i++)
				for (int j = 0; j < W; j++) {
					float s = 0;
					for (int c = 0; c < C; c++)
						for (int p = 0; p < R; p++)
							for (int q = 0; q < R; q++) {
								int ii = i + p - 1, jj = j + q - 1;
								if (ii >= 0 && ii < H && jj >= 0 && jj < W)
									s += x[((n * C + c) * H + ii) * W + jj] * w[((k * C + c) * R + p) * R + q];
							}
					ref[((n * K + k) * H + i) * W + j] = s;
				}
	cudnnHandle_t h;
	if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) {
		kk_probe_status(out, "cudnn", "unavailable", "cudnnCreate failed (library or driver missing)", NULL);
		return 0;
	}
	cudnnTensorDescriptor_t xd, yd;
	cudnnFilterDescriptor_t wd;
	cudnnConvolutionDescriptor_t cd;
	cudnnCreateTensorDescriptor(&xd);
	cudnnCreateTensorDescriptor(&yd);
	cudnnCreateFilterDescriptor(&wd);
	cudnnCreateConvolutionDescriptor(&cd);
	cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, C, H, W);
	cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, N, K, H, W);
	cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, K, C, R, R);
	cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
	float *xg, *wg, *yg;
	cudaMalloc(&xg, sizeof x);
	cudaMalloc(&wg, sizeof w);
	cudaMalloc(&yg, sizeof y);
	cudaMemcpy(xg, x, sizeof x, cudaMemcpyHostToDevice);
	cudaMemcpy(wg, w, sizeof w, cudaMemcpyHostToDevice);
	float one = 1, zero = 0;
	cudnnStatus_t s = cudnnConvolutionForward(h, &one, xd, xg, wd, wg, cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
						  NULL, 0, &zero, yd, yg);
	cudaMemcpy(y, yg, sizeof y, cudaMemcpyDeviceToHost);
	double worst = 0;
	for (int i = 0; i < N * K * H * W; i++)
		worst = fmax(worst, fabs(y[i] - ref[i]) / (1e-3 + fabs(ref[i])));
	int ok = s == CUDNN_STATUS_SUCCESS && worst < 1e-2;
	char extra[96], reason[160];
	snprintf(extra, sizeof extra, "\"version\": %zu, \"max_rel_error\": %.2e", cudnnGetVersion(), worst);
	snprintf(reason, sizeof reason, "%s", s != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(s) : "result differs from the C reference");
	kk_probe_status(out, "cudnn", ok ? "ok" : "failed", ok ? NULL : reason, extra);
	cudaFree(xg), cudaFree(wg), cudaFree(yg);
	cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd);
	cudnnDestroyFilterDescriptor(wd), cudnnDestroyConvolutionDescriptor(cd);
	cudnnDestroy(h);
	return ok;
}

