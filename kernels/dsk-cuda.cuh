/* dsk-cuda.cuh: helpers shared by the .cu files (never included by C code). */
#ifndef DSK_CUDA_CUH
#define DSK_CUDA_CUH

#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include "dsk.h"

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

#endif /* DSK_CUDA_CUH */
