/* softmax.cu: row softmax on the GPU; judged against softmax.c by softmax-test.c.
 * One block per row: max, then sum of exponentials (f32 per thread, f32 block reduction; the
 * CPU sums in double), then the scaled write. A row with every entry -INFINITY gives zeros,
 * as on the CPU. */
#include "dsk-cuda.cuh"

#define SOFTMAX_THREADS 256

__global__ void
softmax_kernel (float *y, const float *x, const float *bias, size_t bias_ld, size_t dim)
{
  __shared__ float shared[32];
  const float *xr = x + blockIdx.x * dim;
  const float *br = bias ? bias + blockIdx.x * bias_ld : NULL;
  float *yr = y + blockIdx.x * dim;
  float m = -INFINITY;
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float v = br ? xr[j] + br[j] : xr[j];
    yr[j] = v;
    m = fmaxf (m, v);
  }
  m = dsk_block_reduce (m, shared, true);
  if (m == -INFINITY) {
    for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
      yr[j] = 0.0f;
    return;
  }
  float s = 0.0f;
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float e = expf (yr[j] - m);
    yr[j] = e;
    s += e;
  }
  const float inv = 1.0f / dsk_block_reduce (s, shared, false);
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x)
    yr[j] *= inv;
}

extern "C" dsk_status
dsk_softmax_f32_cuda (float *y, const float *x, const float *bias, size_t bias_ld, size_t n,
                      size_t dim, void *stream)
{
  if (!y || !x || n == 0 || dim == 0 || n > 0x7fffffffu)
    return DSK_ERR_INVALID;
  if (bias && bias_ld && bias_ld < dim)
    return DSK_ERR_INVALID;
  softmax_kernel<<<(unsigned) n, SOFTMAX_THREADS, 0, (cudaStream_t) stream>>> (y, x, bias,
                                                                                bias_ld, dim);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}
