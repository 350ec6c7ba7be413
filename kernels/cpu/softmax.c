/* softmax.c: softmax over the last dim with an optional additive bias, the CPU kernel. */
#include "dsk-cpu.h"

#include <math.h>

dsk_status
dsk_softmax_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx, const float *bias,
                     size_t bias_ld, size_t n, size_t dim)
{
  if (!y || !x || n == 0 || dim == 0)
    return DSK_ERR_INVALID;
  if ((bias && bias_ld && bias_ld < dim) || (ldx && ldx < dim) || (ldy && ldy < dim))
    return DSK_ERR_INVALID;
  if (!ldx)
    ldx = dim;
  if (!ldy)
    ldy = dim;

  for (size_t i = 0; i < n; i++) {
    const float *xr = x + i * ldx;
    const float *br = bias ? bias + i * bias_ld : NULL;
    float *yr = y + i * ldy;
    float m = -INFINITY;
    for (size_t j = 0; j < dim; j++) {
      float v = br ? xr[j] + br[j] : xr[j];
      yr[j] = v;
      if (v > m)
        m = v;
    }
    if (m == -INFINITY) {
      /* nothing unmasked: zeros rather than torch's NaNs, so a fully masked (padding) row
       * cannot poison what it is later multiplied with */
      for (size_t j = 0; j < dim; j++)
        yr[j] = 0.0f;
      continue;
    }
    double sum = 0.0;
    for (size_t j = 0; j < dim; j++) {
      float e = expf (yr[j] - m);
      yr[j] = e;
      sum += e;
    }
    float inv = (float) (1.0 / sum);
    for (size_t j = 0; j < dim; j++)
      yr[j] *= inv;
  }
  return DSK_OK;
}
