/* norm.c: RMSNorm and LayerNorm over rows, the CPU kernels.
 *
 * Row statistics are summed in double: a norm costs a few flops per element next to the
 * matmuls around it, and the double sums make the result independent of summation order
 * (torch's own f32 reductions differ from one build to the next in the last bits anyway). The
 * normalised value and the affine step are f32, in the order torch applies them. */
#include "dsk-cpu.h"

#include <math.h>

dsk_status
dsk_rmsnorm_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx,
                     const void *w, dsk_dtype w_dtype, size_t n, size_t dim, float eps)
{
  if (!y || !x || !w || n == 0 || dim == 0)
    return DSK_ERR_INVALID;
  if ((ldx && ldx < dim) || (ldy && ldy < dim))
    return DSK_ERR_INVALID;
  if (!dsk_cpu_weight_dtype_ok (w_dtype))
    return DSK_ERR_UNSUPPORTED;
  if (!ldx)
    ldx = dim;
  if (!ldy)
    ldy = dim;

  for (size_t i = 0; i < n; i++) {
    const float *xr = x + i * ldx;
    float *yr = y + i * ldy;
    double ss = 0.0;
    for (size_t j = 0; j < dim; j++)
      ss += (double) xr[j] * xr[j];
    /* torch: variance = mean(x^2) in f32, then rsqrt(variance + eps) in f32 */
    float var = (float) (ss / (double) dim);
    float r = (float) (1.0 / sqrt ((double) (var + eps)));
    for (size_t j = 0; j < dim; j++) {
      float h = xr[j] * r;
      yr[j] = h * dsk_cpu_weight_at (w, w_dtype, j);
    }
  }
  return DSK_OK;
}

/* mean and 1/sqrt(var + eps) of @count values @stride apart, kept in double: x - mean is
 * then formed in double too, so a row with a large mean and a small spread does not lose its
 * low bits to the rounding of an f32 mean. */
static void
moments (const float *x, size_t count, size_t stride, float eps, double *mean, double *rstd)
{
  double s = 0.0, v = 0.0;
  for (size_t j = 0; j < count; j++)
    s += x[j * stride];
  double m = s / (double) count;
  for (size_t j = 0; j < count; j++) {
    double d = x[j * stride] - m;
    v += d * d;
  }
  *mean = m;
  *rstd = 1.0 / sqrt (v / (double) count + (double) eps);
}

static int
affine_ok (const void *w, const void *b, dsk_dtype dt)
{
  return (!w && !b) || dsk_cpu_weight_dtype_ok (dt);
}

dsk_status
dsk_layernorm_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx, const void *w,
                       const void *b, dsk_dtype wb_dtype, size_t n, size_t dim, float eps)
{
  if (!y || !x || n == 0 || dim == 0)
    return DSK_ERR_INVALID;
  if ((ldx && ldx < dim) || (ldy && ldy < dim))
    return DSK_ERR_INVALID;
  if (!affine_ok (w, b, wb_dtype))
    return DSK_ERR_UNSUPPORTED;
  if (!ldx)
    ldx = dim;
  if (!ldy)
    ldy = dim;

  for (size_t i = 0; i < n; i++) {
    const float *xr = x + i * ldx;
    float *yr = y + i * ldy;
    double mean, rstd;
    moments (xr, dim, 1, eps, &mean, &rstd);
    for (size_t j = 0; j < dim; j++) {
      float h = (float) ((xr[j] - mean) * rstd);
      if (w)
        h = h * dsk_cpu_weight_at (w, wb_dtype, j);
      if (b)
        h = h + dsk_cpu_weight_at (b, wb_dtype, j);
      yr[j] = h;
    }
  }
  return DSK_OK;
}
