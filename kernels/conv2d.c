/* conv2d.c: 2-D convolution as im2col + matmul, the CPU reference.
 *
 * Vision convolutions are few and large (a 16x16 stride-16 patch embedding, 1x1 and 3x3
 * convs over a 64x64 grid), so the products are the cost and the gather is cheap: blocks of
 * output pixels are unfolded into rows of the caller's workspace in the weight's own
 * (c_in, ky, kx) order and handed to dsk_matmul_f32_cpu, which reads the weight in its
 * checkpoint dtype. A 1x1 stride-1 unpadded conv on channels-last input needs no unfolding at
 * all: it is the product itself. */
#include "dsk.h"

#include <string.h>

static size_t
out_size (size_t in, size_t k, size_t stride, size_t pad)
{
  if (in + 2 * pad < k)
    return 0;
  return (in + 2 * pad - k) / stride + 1;
}

static int
is_pointwise (const dsk_conv2d_params *p)
{
  return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0 &&
         p->in_layout == DSK_LAYOUT_NHWC;
}

size_t
dsk_conv2d_out_h (const dsk_conv2d_params *p)
{
  return p && p->stride ? out_size (p->h, p->kh, p->stride, p->pad) : 0;
}

size_t
dsk_conv2d_out_w (const dsk_conv2d_params *p)
{
  return p && p->stride ? out_size (p->w, p->kw, p->stride, p->pad) : 0;
}

size_t
dsk_conv2d_workspace_floats (const dsk_conv2d_params *p)
{
  if (!p || is_pointwise (p))
    return 0;
  size_t pixels = dsk_conv2d_out_h (p) * dsk_conv2d_out_w (p);
  size_t rows = pixels < DSK_CONV2D_BLOCK_PIXELS ? pixels : DSK_CONV2D_BLOCK_PIXELS;
  return rows * p->c_in * p->kh * p->kw;
}

/* Unfolds output pixels [pix0, pix0 + n) into col[n, c_in * kh * kw]. */
static void
im2col (float *col, const float *x, const dsk_conv2d_params *p, size_t ow, size_t pix0,
        size_t n)
{
  const size_t k = p->c_in * p->kh * p->kw;
  const long h = (long) p->h, w = (long) p->w;

#pragma omp parallel for schedule(static) if (n * k > 65536)
  for (size_t r = 0; r < n; r++) {
    size_t pix = pix0 + r;
    long oy = (long) (pix / ow), ox = (long) (pix % ow);
    long iy0 = oy * (long) p->stride - (long) p->pad;
    long ix0 = ox * (long) p->stride - (long) p->pad;
    float *dst = col + r * k;
    for (size_t c = 0; c < p->c_in; c++)
      for (size_t ky = 0; ky < p->kh; ky++) {
        long iy = iy0 + (long) ky;
        float *d = dst + (c * p->kh + ky) * p->kw;
        if (iy < 0 || iy >= h) {
          memset (d, 0, p->kw * sizeof (float));
          continue;
        }
        for (size_t kx = 0; kx < p->kw; kx++) {
          long ix = ix0 + (long) kx;
          if (ix < 0 || ix >= w)
            d[kx] = 0.0f;
          else if (p->in_layout == DSK_LAYOUT_NCHW)
            d[kx] = x[(c * (size_t) h + (size_t) iy) * (size_t) w + (size_t) ix];
          else
            d[kx] = x[((size_t) iy * (size_t) w + (size_t) ix) * p->c_in + c];
        }
      }
  }
}

dsk_status
dsk_conv2d_f32_cpu (float *y, const float *x, const void *w, dsk_dtype w_dtype,
                    const void *bias, dsk_dtype bias_dtype, const dsk_conv2d_params *p,
                    float *work, size_t work_floats)
{
  if (!y || !x || !w || !p || !p->c_in || !p->h || !p->w || !p->c_out || !p->kh || !p->kw ||
      !p->stride)
    return DSK_ERR_INVALID;
  if (p->in_layout != DSK_LAYOUT_NCHW && p->in_layout != DSK_LAYOUT_NHWC)
    return DSK_ERR_INVALID;
  const size_t oh = dsk_conv2d_out_h (p), ow = dsk_conv2d_out_w (p);
  if (!oh || !ow)
    return DSK_ERR_INVALID;
  const size_t pixels = oh * ow, k = p->c_in * p->kh * p->kw;
  dsk_matmul_opts mo = { .ldy = p->ldy };

  if (is_pointwise (p))
    return dsk_matmul_f32_cpu (y, x, w, w_dtype, bias, bias_dtype, pixels, k, p->c_out, &mo);

  size_t block = work ? work_floats / k : 0;
  if (block == 0)
    return DSK_ERR_INVALID;
  if (block > pixels)
    block = pixels;
  const size_t ldy = p->ldy ? p->ldy : p->c_out;
  for (size_t pix0 = 0; pix0 < pixels; pix0 += block) {
    size_t n = pixels - pix0 < block ? pixels - pix0 : block;
    im2col (work, x, p, ow, pix0, n);
    dsk_status st = dsk_matmul_f32_cpu (y + pix0 * ldy, work, w, w_dtype, bias, bias_dtype, n,
                                        k, p->c_out, &mo);
    if (st != DSK_OK)
      return st;
  }
  return DSK_OK;
}
