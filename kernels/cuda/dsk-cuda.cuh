/* dsk-cuda.cuh: helpers shared by the .cu files (never included by C code). */
#ifndef DSK_CUDA_CUH
#define DSK_CUDA_CUH

#include <math.h>

#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include "dsk-cuda.h"

/* Records @err with file:line for dsk_last_error(); returns DSK_ERR_DEVICE. */
dsk_status dsk_cuda_set_error (cudaError_t err, const char *what, const char *file, int line);

/* Turn a CUDA error into a returned dsk_status; never abort: an element must not take its
 * host application down. */
#define DSK_CUDA_TRY(expr)                                                      \
  do {                                                                          \
    cudaError_t dsk_err_ = (expr);                                              \
    if (dsk_err_ != cudaSuccess)                                                \
      return dsk_cuda_set_error (dsk_err_, #expr, __FILE__, __LINE__);          \
  } while (0)

/* After a launch: catches bad configurations (the kernel itself runs asynchronously). */
#define DSK_CUDA_CHECK_LAUNCH() DSK_CUDA_TRY (cudaGetLastError ())

static inline unsigned
dsk_cuda_blocks (size_t n, unsigned threads)
{
  size_t b = (n + threads - 1) / threads;
  return (unsigned) (b > 65535u * 32u ? 65535u * 32u : b);
}

/* Sum (or, with @is_max, maximum) of @v over the block, returned to every thread. @shared
 * holds 32 floats; every thread of the block must call it. */
static __device__ __forceinline__ float
dsk_block_reduce (float v, float *shared, bool is_max)
{
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync (0xffffffffu, v, o);
    v = is_max ? fmaxf (v, w) : v + w;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads ();   /* an earlier call may still be reading @shared */
  if (lane == 0)
    shared[warp] = v;
  __syncthreads ();
  const int n_warps = (blockDim.x + 31) >> 5;
  v = lane < n_warps ? shared[lane] : (is_max ? -INFINITY : 0.0f);
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync (0xffffffffu, v, o);
    v = is_max ? fmaxf (v, w) : v + w;
  }
  return v;
}

#endif /* DSK_CUDA_CUH */
