/* interp.c: resampling of position tables, the CPU kernels.
 *
 * The vision tower resizes its learned position tables when a view is not the size they were
 * trained for: SAM's absolute [64, 64, C] grid and CLIP's [16, 16, C] grid with torch's
 * F.interpolate(mode="bicubic", antialias=True, align_corners=False), SAM's relative tables
 * [L, C] with F.interpolate(mode="linear", align_corners=False). These reproduce aten's CPU
 * kernels (UpSampleKernel.cpp) in f32: the antialiased path always uses the Keys kernel with
 * a = -0.5 (as Pillow), stretched by the scale when shrinking, its taps cut at the borders
 * (never clamped) and renormalised, applied width first and height second. */
#include "dsk-cpu.h"

#include <math.h>
#include <string.h>

static float
cubic_aa (float x)
{
  const float a = -0.5f;
  x = fabsf (x);
  if (x < 1.0f)
    return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f)
    return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
  return 0.0f;
}

/* The taps of output index @i along an axis of @in_size resized by @scale = in / out.
 * Mirrors aten's _compute_weights_aa, including where it rounds through double. */
typedef struct {
  float scale, support, invscale;
} aa_axis;

static aa_axis
aa_axis_new (size_t in_size, size_t out_size)
{
  aa_axis a;
  a.scale = (float) in_size / (float) out_size;
  a.support = (float) (a.scale >= 1.0f ? 2.0 * a.scale : 2.0);
  a.invscale = (float) (a.scale >= 1.0f ? 1.0 / a.scale : 1.0);
  return a;
}

static void
aa_range (const aa_axis *a, size_t in_size, size_t i, long *xmin, long *xsize, float *center)
{
  float c = (float) (a->scale * ((double) i + 0.5));
  long lo = (long) ((double) (c - a->support) + 0.5);
  long hi = (long) ((double) (c + a->support) + 0.5);
  if (lo < 0)
    lo = 0;
  if (hi > (long) in_size)
    hi = (long) in_size;
  *xmin = lo;
  *xsize = hi > lo ? hi - lo : 0;
  *center = c;
}

static float
aa_tap (const aa_axis *a, long xmin, long j, float center)
{
  double t = ((double) ((float) (j + xmin) - center) + 0.5) * (double) a->invscale;
  return cubic_aa ((float) t);
}

/* Resamples @n_outer blocks of [in_size, inner] rows to [out_size, inner]:
 * y[o, b, :] = sum_j w_j x[o, xmin + j, :] with the normalised taps of b. */
static void
aa_pass (float *y, const float *x, size_t n_outer, size_t in_size, size_t out_size,
         size_t inner)
{
  const aa_axis a = aa_axis_new (in_size, out_size);

  for (size_t b = 0; b < out_size; b++) {
    long xmin, xsize;
    float center;
    aa_range (&a, in_size, b, &xmin, &xsize, &center);
    float total = 0.0f;
    for (long j = 0; j < xsize; j++)
      total += aa_tap (&a, xmin, j, center);
    for (size_t o = 0; o < n_outer; o++) {
      float *dst = y + (o * out_size + b) * inner;
      const float *src = x + (o * in_size + (size_t) xmin) * inner;
      if (xsize == 0) {
        memset (dst, 0, inner * sizeof (float));
        continue;
      }
      for (long j = 0; j < xsize; j++) {
        float wj = aa_tap (&a, xmin, j, center);
        if (total != 0.0f)
          wj /= total;
        const float *s = src + (size_t) j * inner;
        if (j == 0)
          for (size_t c = 0; c < inner; c++)
            dst[c] = s[c] * wj;
        else
          for (size_t c = 0; c < inner; c++)
            dst[c] += s[c] * wj;
      }
    }
  }
}

dsk_status
dsk_resize_bicubic_aa_f32_cpu (float *y, const float *x, size_t h_in, size_t w_in,
                               size_t h_out, size_t w_out, size_t channels, float *work,
                               size_t work_floats)
{
  if (!y || !x || !h_in || !w_in || !h_out || !w_out || !channels)
    return DSK_ERR_INVALID;
  if (!work || work_floats < h_in * w_out * channels)
    return DSK_ERR_INVALID;
  /* an axis of unchanged size is the identity (its taps are 1 at the pixel, 0 elsewhere) */
  if (w_in == w_out)
    memcpy (work, x, h_in * w_in * channels * sizeof (float));
  else
    aa_pass (work, x, h_in, w_in, w_out, channels);
  if (h_in == h_out)
    memcpy (y, work, h_out * w_out * channels * sizeof (float));
  else
    aa_pass (y, work, 1, h_in, h_out, w_out * channels);
  return DSK_OK;
}

dsk_status
dsk_resize_linear_f32_cpu (float *y, const float *x, size_t l_in, size_t l_out,
                           size_t channels)
{
  if (!y || !x || !l_in || !l_out || !channels)
    return DSK_ERR_INVALID;
  const float scale = (float) l_in / (float) l_out;
  for (size_t i = 0; i < l_out; i++) {
    float src = scale * ((float) i + 0.5f) - 0.5f;
    if (src < 0.0f)
      src = 0.0f;
    size_t i0 = (size_t) src;
    if (i0 > l_in - 1)
      i0 = l_in - 1;
    size_t i1 = i0 + (i0 < l_in - 1 ? 1 : 0);
    float l1 = src - (float) i0, l0 = 1.0f - l1;
    const float *a = x + i0 * channels, *b = x + i1 * channels;
    float *d = y + i * channels;
    for (size_t c = 0; c < channels; c++)
      d[c] = l0 * a[c] + l1 * b[c];
  }
  return DSK_OK;
}
