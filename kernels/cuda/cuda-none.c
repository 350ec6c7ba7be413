/* cuda-none.c: the CUDA backend of a build without nvcc: there is none, and asking for it
 * says why. */
#include <stdio.h>

#include "backend-impl.h"

int
dsk_backend_cuda_count (void)
{
  return 0;
}

dsk_backend *
dsk_backend_cuda_new (int device, char *err, size_t err_len)
{
  if (err && err_len)
    snprintf (err, err_len, "cuda:%d: this build of gst-dsocr has no CUDA support (nvcc was not "
              "found when it was configured)", device);
  return NULL;
}
