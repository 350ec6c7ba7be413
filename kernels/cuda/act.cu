/* act.cu: elementwise activations on the GPU; judged against act.c by act-test.c. */
#include "dsk-cuda.cuh"

enum { ACT_SILU, ACT_GELU, ACT_QUICK_GELU };

template <int K>
__device__ __forceinline__ float
act (float x)
{
  if (K == ACT_SILU)
    return x / (1.0f + expf (-x));
  if (K == ACT_GELU)
    return 0.5f * x * (1.0f + erff (x * 0.70710678118654752f));
  return x / (1.0f + expf (-1.702f * x));
}

template <int K>
__global__ void
act_kernel (float *y, const float *x, size_t n)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    y[i] = act<K> (x[i]);
}

__global__ void
swiglu_kernel (float *y, const float *gate, const float *up, size_t n)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
       i += (size_t) gridDim.x * blockDim.x)
    y[i] = act<ACT_SILU> (gate[i]) * up[i];
}

template <int K>
static dsk_status
launch (float *y, const float *x, size_t n, void *stream)
{
  if (!y || !x)
    return DSK_ERR_INVALID;
  if (n == 0)
    return DSK_OK;
  act_kernel<K><<<dsk_cuda_blocks (n, 256), 256, 0, (cudaStream_t) stream>>> (y, x, n);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}

extern "C" dsk_status
dsk_silu_f32_cuda (float *y, const float *x, size_t n, void *stream)
{
  return launch<ACT_SILU> (y, x, n, stream);
}

extern "C" dsk_status
dsk_gelu_f32_cuda (float *y, const float *x, size_t n, void *stream)
{
  return launch<ACT_GELU> (y, x, n, stream);
}

extern "C" dsk_status
dsk_quick_gelu_f32_cuda (float *y, const float *x, size_t n, void *stream)
{
  return launch<ACT_QUICK_GELU> (y, x, n, stream);
}

extern "C" dsk_status
dsk_swiglu_f32_cuda (float *y, const float *gate, const float *up, size_t n, void *stream)
{
  if (!y || !gate || !up)
    return DSK_ERR_INVALID;
  if (n == 0)
    return DSK_OK;
  swiglu_kernel<<<dsk_cuda_blocks (n, 256), 256, 0, (cudaStream_t) stream>>> (y, gate, up, n);
  DSK_CUDA_CHECK_LAUNCH ();
  return DSK_OK;
}
