/* cuda-common.cu: error text and device probing for the CUDA kernels. */
#include <stdio.h>

#include "dsk-cuda.cuh"

static thread_local char last_error[512];

extern "C" const char *
dsk_last_error (void)
{
  return last_error;
}

dsk_status
dsk_cuda_set_error (cudaError_t err, const char *what, const char *file, int line)
{
  snprintf (last_error, sizeof last_error, "%s:%d: %s: %s", file, line, what,
            cudaGetErrorString (err));
  return DSK_ERR_DEVICE;
}

extern "C" int
dsk_cuda_device_count (void)
{
  int n = 0;
  if (cudaGetDeviceCount (&n) != cudaSuccess) {
    cudaGetLastError ();  /* clear the sticky "no device" error */
    return 0;
  }
  return n;
}

extern "C" dsk_status
dsk_cuda_malloc (void **ptr, size_t nbytes)
{
  if (!ptr)
    return DSK_ERR_INVALID;
  *ptr = NULL;
  DSK_CUDA_TRY (cudaMalloc (ptr, nbytes ? nbytes : 1));
  return DSK_OK;
}

extern "C" dsk_status
dsk_cuda_free (void *ptr)
{
  if (ptr)
    DSK_CUDA_TRY (cudaFree (ptr));
  return DSK_OK;
}

extern "C" dsk_status
dsk_cuda_upload (void *dst_device, const void *src_host, size_t nbytes, void *stream)
{
  DSK_CUDA_TRY (cudaMemcpyAsync (dst_device, src_host, nbytes, cudaMemcpyHostToDevice,
                                 (cudaStream_t) stream));
  return DSK_OK;
}

extern "C" dsk_status
dsk_cuda_download (void *dst_host, const void *src_device, size_t nbytes, void *stream)
{
  DSK_CUDA_TRY (cudaMemcpyAsync (dst_host, src_device, nbytes, cudaMemcpyDeviceToHost,
                                 (cudaStream_t) stream));
  DSK_CUDA_TRY (cudaStreamSynchronize ((cudaStream_t) stream));
  return DSK_OK;
}

extern "C" dsk_status
dsk_cuda_sync (void *stream)
{
  DSK_CUDA_TRY (cudaStreamSynchronize ((cudaStream_t) stream));
  return DSK_OK;
}
