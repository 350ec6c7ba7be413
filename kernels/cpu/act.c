/* act.c: elementwise activations, the CPU kernels (f32, libm's expf and erff). */
#include "dsk-cpu.h"

#include <math.h>

dsk_status
dsk_silu_f32_cpu (float *y, const float *x, size_t n)
{
  if (!y || !x || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] / (1.0f + expf (-x[i]));
  return DSK_OK;
}

dsk_status
dsk_gelu_f32_cpu (float *y, const float *x, size_t n)
{
  if (!y || !x || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    y[i] = 0.5f * x[i] * (1.0f + erff (x[i] * (float) M_SQRT1_2));
  return DSK_OK;
}

dsk_status
dsk_quick_gelu_f32_cpu (float *y, const float *x, size_t n)
{
  if (!y || !x || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] / (1.0f + expf (-1.702f * x[i]));
  return DSK_OK;
}

dsk_status
dsk_swiglu_f32_cpu (float *y, const float *gate, const float *up, size_t n)
{
  if (!y || !gate || !up || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    y[i] = g / (1.0f + expf (-g)) * up[i];
  }
  return DSK_OK;
}
