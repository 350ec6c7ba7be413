/* conv2d.c: the gather of a 2-D convolution computed as a product (im2col), the CPU kernel.
 *
 * Vision convolutions are few and large (a 16x16 stride-16 patch embedding, 1x1 and 3x3
 * convs over a 64x64 grid), so the products are the cost and the gather is cheap: the CPU
 * backend unfolds blocks of output pixels into rows in the weight's own (c_in, ky, kx) order
 * and hands them to its linear product, which reads the weight in its stored dtype. A 1x1
 * stride-1 unpadded conv on channels-last input needs no unfolding at all: it is the product
 * itself. */
#include "dsk-cpu.h"

#include <string.h>

/* Unfolds output pixels [pix0, pix0 + n) into col[n, c_in * kh * kw]. */
void
dsk_im2col_cpu (float *col, const float *x, const dsk_conv2d_desc *p, size_t ow, size_t pix0,
                size_t n)
{
  const size_t k = p->c_in * p->kh * p->kw;
  const long h = (long) p->h, w = (long) p->w;

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
