/* norm.cu: RMSNorm and LayerNorm on the GPU; judged against norm.c by norm-test.c.
 * One block per row: the row is read once into registers' worth of partial sums, reduced in
 * shared memory, then written. f32 math as the CPU path (sums in f32 per thread, the block
 * reduction in f32), so results agree to rounding, not bit for bit. */
#include <cuda_fp16.h>

#include "dsk-cuda.cuh"

#define NORM_THREADS 256

template <typename T>
__device__ __forceinline__ float wval (const T *w, size_t i);
template <>
__device__ __forceinline__ float wval<float> (const float *w, size_t i) { return w[i]; }
template <>
__device__ __forceinline__ float wval<__nv_bfloat16> (const __nv_bfloat16 *w, size_t i) { return __bfloat162float (w[i]); }
template <>
__device__ __forceinline__ float wval<__half> (const __half *w, size_t i) { return __half2float (w[i]); }

template <typename T>
__global__ void
rmsnorm_kernel (float *y, size_t ldy, const float *x, size_t ldx, const T *w, size_t dim,
                float eps)
{
  __shared__ float shared[32];
  const float *xr = x + blockIdx.x * ldx;
  float *yr = y + blockIdx.x * ldy;
  float ss = 0.0f;
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x)
    ss += xr[i] * xr[i];
  const float r = rsqrtf (dsk_block_reduce (ss, shared, false) / (float) dim + eps);
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = xr[i] * r * wval (w, i);
}

template <typename T>
__global__ void
layernorm_kernel (float *y, const float *x, const T *w, const T *b, size_t dim, float eps)
{
  __shared__ float shared[32];
  const float *xr = x + blockIdx.x * dim;
  float *yr = y + blockIdx.x * dim;
  float s = 0.0f;
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x)
    s += xr[i];
  const float mean = dsk_block_reduce (s, shared, false) / (float) dim;
  float v = 0.0f;
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float d = xr[i] - mean;
    v += d * d;
  }
  const float r = rsqrtf (dsk_block_reduce (v, shared, false) / (float) dim + eps);
  for (size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float xn = (xr[i] - mean) * r;
    yr[i] = xn * (w ? wval (w, i) : 1.0f) + (b ? wval (b, i) : 0.0f);
  }
}

template <typename T>
static dsk_status
rmsnorm_cuda (float *y, size_t ldy, const float *x, size_t ldx, const void *w, size_t n,
              size_t dim, float eps, cudaStream_t s)
{
  rmsnorm_kernel<T><<<(unsigned) n, NORM_THREADS, 0, s>>> (y, ldy, x, ldx, (const T *) w, dim,
                                                            eps);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}

template <typename T>
static dsk_status
layernorm_cuda (float *y, const float *x, const void *w, const void *b, size_t n, size_t dim,
                float eps, cudaStream_t s)
{
  layernorm_kernel<T><<<(unsigned) n, NORM_THREADS, 0, s>>> (y, x, (const T *) w,
                                                              (const T *) b, dim, eps);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}

extern "C" dsk_status
dsk_rmsnorm_f32_cuda (float *y, size_t ldy, const float *x, size_t ldx, const void *w,
                      dsk_dtype w_dtype, size_t n, size_t dim, float eps, void *stream)
{
  if (!y || !x || !w || dim == 0 || n > 0x7fffffffu)
    return DSK_ERR_INVALID;
  if (n == 0)
    return DSK_OK;
  ldy = ldy ? ldy : dim;
  ldx = ldx ? ldx : dim;
  cudaStream_t s = (cudaStream_t) stream;
  switch (w_dtype) {
    case DSK_F32: return rmsnorm_cuda<float> (y, ldy, x, ldx, w, n, dim, eps, s);
    case DSK_BF16: return rmsnorm_cuda<__nv_bfloat16> (y, ldy, x, ldx, w, n, dim, eps, s);
    case DSK_F16: return rmsnorm_cuda<__half> (y, ldy, x, ldx, w, n, dim, eps, s);
    default: return DSK_ERR_UNSUPPORTED;
  }
}

extern "C" dsk_status
dsk_layernorm_f32_cuda (float *y, const float *x, const void *w, const void *b,
                        dsk_dtype wb_dtype, size_t n, size_t dim, float eps, void *stream)
{
  if (!y || !x || dim == 0 || n > 0x7fffffffu)
    return DSK_ERR_INVALID;
  if (n == 0)
    return DSK_OK;
  cudaStream_t s = (cudaStream_t) stream;
  switch (wb_dtype) {
    case DSK_F32: return layernorm_cuda<float> (y, x, w, b, n, dim, eps, s);
    case DSK_BF16: return layernorm_cuda<__nv_bfloat16> (y, x, w, b, n, dim, eps, s);
    case DSK_F16: return layernorm_cuda<__half> (y, x, w, b, n, dim, eps, s);
    default: return DSK_ERR_UNSUPPORTED;
  }
}
