/* convert.cu: dtype widening on the GPU; judged against convert.c by convert-test.c. */
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "dsk-cuda.cuh"

template <typename T>
__device__ __forceinline__ float to_f32 (T v);

template <>
__device__ __forceinline__ float to_f32<float> (float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16> (__nv_bfloat16 v) { return __bfloat162float (v); }
template <>
__device__ __forceinline__ float to_f32<__half> (__half v) { return __half2float (v); }
template <>
__device__ __forceinline__ float to_f32<__nv_fp8_e4m3> (__nv_fp8_e4m3 v) { return float (v); }

template <typename T>
__global__ void
convert_to_f32_kernel (float *dst, const T *src, size_t n)
{
  /* grid-stride: one launch covers any n */
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    dst[i] = to_f32 (src[i]);
}

template <typename T>
static dsk_status
convert_to_f32_cuda (float *dst, const void *src, size_t n, cudaStream_t stream)
{
  const unsigned threads = 256;
  convert_to_f32_kernel<T><<<dsk_cuda_blocks (n, threads), threads, 0, stream>>> (
      dst, (const T *) src, n);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}

extern "C" dsk_status
dsk_convert_to_f32_cuda (float *dst, const void *src, dsk_dtype src_dtype, size_t n, void *stream)
{
  if (!dst || (!src && n))
    return DSK_ERR_INVALID;
  if (n == 0)
    return DSK_OK;
  cudaStream_t s = (cudaStream_t) stream;
  switch (src_dtype) {
    case DSK_F32: return convert_to_f32_cuda<float> (dst, src, n, s);
    case DSK_BF16: return convert_to_f32_cuda<__nv_bfloat16> (dst, src, n, s);
    case DSK_F16: return convert_to_f32_cuda<__half> (dst, src, n, s);
    case DSK_F8_E4M3: return convert_to_f32_cuda<__nv_fp8_e4m3> (dst, src, n, s);
    default: return DSK_ERR_UNSUPPORTED;
  }
}
