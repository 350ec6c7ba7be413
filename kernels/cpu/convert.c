/* convert.c: dtype widening on the CPU (the kernel, and the host helper of backend.h). */
#include "dsk-cpu.h"

#include <string.h>

dsk_status
dsk_convert_to_f32_cpu (float *dst, const void *src, dsk_dtype src_dtype, size_t n)
{
  if (!dst || (!src && n))
    return DSK_ERR_INVALID;
  if (n == 0)
    return src_dtype == DSK_F32 || src_dtype == DSK_BF16 || src_dtype == DSK_F16 ||
           src_dtype == DSK_F8_E4M3 ? DSK_OK : DSK_ERR_UNSUPPORTED;

  switch (src_dtype) {
    case DSK_F32:
      memmove (dst, src, n * sizeof (float));
      return DSK_OK;
    case DSK_BF16: {
      const uint16_t *s = src;
      for (size_t i = 0; i < n; i++)
        dst[i] = dsk_bf16_to_f32 (s[i]);
      return DSK_OK;
    }
    case DSK_F16: {
      const uint16_t *s = src;
      for (size_t i = 0; i < n; i++)
        dst[i] = dsk_f16_to_f32 (s[i]);
      return DSK_OK;
    }
    case DSK_F8_E4M3: {
      const uint8_t *s = src;
      for (size_t i = 0; i < n; i++)
        dst[i] = dsk_f8_e4m3_to_f32 (s[i]);
      return DSK_OK;
    }
    default:
      return DSK_ERR_UNSUPPORTED;
  }
}

dsk_status
dsk_convert_to_f32 (float *dst, const void *src, dsk_dtype src_dtype, size_t n)
{
  return dsk_convert_to_f32_cpu (dst, src, src_dtype, n);
}
