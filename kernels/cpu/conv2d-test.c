/* conv2d-test.c: the im2col gather (dsk_im2col_cpu) against direct indexing, and whole
 * convolutions through the CPU backend (im2col + its pooled product) against a direct
 * double-precision convolution, for the shapes the vision tower uses (patch embedding, 1x1,
 * 3x3 padded, 3x3 stride 2) at small and odd sizes, every weight dtype, strided output. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "backend.h"
#include "dsk.h"
#include "dsk-cpu.h"

typedef struct {
  dsk_conv2d_desc d;
  size_t c_out;
  size_t ldy;          /* floats between output pixels; 0: c_out */
  dsk_dtype wt;
  gboolean bias;
} conv_case;

static const conv_case cases[] = {
  /* patch embedding: NCHW pixels, kernel = stride, bias */
  { { 3, 32, 48, DSK_LAYOUT_NCHW, 16, 16, 16, 0 }, 8, 0, DSK_BF16, TRUE },
  { { 3, 20, 12, DSK_LAYOUT_NCHW, 4, 4, 4, 0 }, 5, 0, DSK_F32, TRUE },
  /* neck: 1x1 (the product itself) and 3x3 padded over channels-last tokens */
  { { 12, 9, 7, DSK_LAYOUT_NHWC, 1, 1, 1, 0 }, 6, 0, DSK_BF16, FALSE },
  { { 6, 9, 7, DSK_LAYOUT_NHWC, 3, 3, 1, 1 }, 6, 0, DSK_F16, FALSE },
  /* net_2 / net_3: 3x3 stride 2 pad 1, even and odd sizes */
  { { 6, 10, 10, DSK_LAYOUT_NHWC, 3, 3, 2, 1 }, 9, 0, DSK_BF16, FALSE },
  { { 5, 7, 5, DSK_LAYOUT_NHWC, 3, 3, 2, 1 }, 4, 0, DSK_F32, TRUE },
  /* NCHW with padding and stride, non-square kernel, strided output */
  { { 4, 6, 9, DSK_LAYOUT_NCHW, 3, 2, 2, 1 }, 3, 7, DSK_F16, TRUE },
  /* 1x1 on NCHW input still unfolds */
  { { 4, 3, 5, DSK_LAYOUT_NCHW, 1, 1, 1, 0 }, 2, 0, DSK_BF16, TRUE },
  /* padding larger than the kernel reach: whole rows of zeros at the borders */
  { { 2, 5, 4, DSK_LAYOUT_NHWC, 2, 2, 1, 3 }, 3, 5, DSK_F32, TRUE },
  /* more than one block of 1024 unfolded pixels (1600), and the BLAS-sized product */
  { { 3, 80, 80, DSK_LAYOUT_NCHW, 4, 4, 2, 1 }, 8, 0, DSK_BF16, TRUE },
  /* a pointwise conv of 1600 pixels: one product of 1600 rows, strided output */
  { { 12, 40, 40, DSK_LAYOUT_NHWC, 1, 1, 1, 0 }, 6, 9, DSK_F16, TRUE },
};

static float
rnd (GRand *r)
{
  return (float) g_rand_double_range (r, -1.0, 1.0);
}

/* Stores @v in @dt at index @i of @buf and returns the value it now holds. */
static float
put (void *buf, dsk_dtype dt, size_t i, float v)
{
  if (dt == DSK_BF16) {
    ((uint16_t *) buf)[i] = dsk_f32_to_bf16 (v);
    return dsk_bf16_to_f32 (((uint16_t *) buf)[i]);
  }
  if (dt == DSK_F16) {
    ((uint16_t *) buf)[i] = dsk_f32_to_f16 (v);
    return dsk_f16_to_f32 (((uint16_t *) buf)[i]);
  }
  ((float *) buf)[i] = v;
  return v;
}

/* The input value of channel @c at (@iy, @ix), 0 outside the image. */
static float
x_at (const float *x, const dsk_conv2d_desc *d, size_t c, long iy, long ix)
{
  if (iy < 0 || ix < 0 || iy >= (long) d->h || ix >= (long) d->w)
    return 0.0f;
  return d->in_layout == DSK_LAYOUT_NCHW
           ? x[(c * d->h + (size_t) iy) * d->w + (size_t) ix]
           : x[((size_t) iy * d->w + (size_t) ix) * d->c_in + c];
}

/* Output sizes of the model's convolutions, and of ones that do not fit (0). */
static void
test_out_size (void)
{
  /* net_2: 3x3 stride 2 pad 1 over SAM's 64 x 64 grid */
  g_assert_cmpuint (dsk_conv2d_out_size (64, 3, 2, 1), ==, 32);
  /* SAM's patch embedding: 16x16 stride 16 over 1024 pixels */
  g_assert_cmpuint (dsk_conv2d_out_size (1024, 16, 16, 0), ==, 64);
  /* the neck's 1x1 and 3x3 padded keep the size */
  g_assert_cmpuint (dsk_conv2d_out_size (64, 1, 1, 0), ==, 64);
  g_assert_cmpuint (dsk_conv2d_out_size (64, 3, 1, 1), ==, 64);
  g_assert_cmpuint (dsk_conv2d_out_size (7, 3, 2, 1), ==, 4);
  /* a kernel larger than the padded input, and a zero stride */
  g_assert_cmpuint (dsk_conv2d_out_size (2, 5, 1, 0), ==, 0);
  g_assert_cmpuint (dsk_conv2d_out_size (4, 3, 0, 1), ==, 0);
}

/* im2col of every case, whole and in odd blocks of pixels (as the backend's items take them),
 * matches the input read directly at each (c, ky, kx) of each output pixel, zeros outside;
 * nothing past the n rows asked for is written. */
static void
test_im2col (void)
{
  static const size_t blocks[] = { 1, 3, 7, 64, 0 };   /* pixels per call; 0: all at once */
  GRand *r = g_rand_new_with_seed (11);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const dsk_conv2d_desc *d = &cases[ci].d;
    const size_t oh = dsk_conv2d_out_size (d->h, d->kh, d->stride, d->pad);
    const size_t ow = dsk_conv2d_out_size (d->w, d->kw, d->stride, d->pad);
    const size_t pixels = oh * ow, k = d->c_in * d->kh * d->kw, nx = d->c_in * d->h * d->w;
    float *x = g_new (float, nx);
    float *col = g_new (float, (pixels + 1) * k);
    g_assert_cmpuint (pixels, >, 0);
    for (size_t i = 0; i < nx; i++)
      x[i] = rnd (r);
    for (size_t bi = 0; bi < G_N_ELEMENTS (blocks); bi++) {
      const size_t block = blocks[bi] ? MIN (blocks[bi], pixels) : pixels;
      for (size_t pix0 = 0; pix0 < pixels; pix0 += block) {
        const size_t n = MIN (block, pixels - pix0);
        for (size_t i = 0; i < (n + 1) * k; i++)
          col[i] = NAN;
        dsk_im2col_cpu (col, x, d, ow, pix0, n);
        for (size_t p = 0; p < n; p++) {
          const long oy = (long) ((pix0 + p) / ow), ox = (long) ((pix0 + p) % ow);
          const long iy0 = oy * (long) d->stride - (long) d->pad;
          const long ix0 = ox * (long) d->stride - (long) d->pad;
          for (size_t c = 0; c < d->c_in; c++)
            for (size_t ky = 0; ky < d->kh; ky++)
              for (size_t kx = 0; kx < d->kw; kx++) {
                const float want = x_at (x, d, c, iy0 + (long) ky, ix0 + (long) kx);
                const float got = col[p * k + (c * d->kh + ky) * d->kw + kx];
                if (memcmp (&got, &want, sizeof got) != 0)
                  g_error ("im2col case %zu pixel %zu (c %zu, ky %zu, kx %zu): %.9g, want %.9g",
                           ci, pix0 + p, c, ky, kx, got, want);
              }
        }
        for (size_t i = n * k; i < (n + 1) * k; i++)
          g_assert_true (isnan (col[i]));
      }
    }
    g_free (x);
    g_free (col);
  }
  g_rand_free (r);
}

/* Runs case @cc on @be and checks every output element against the direct double
 * convolution, within (K + 2) eps of the sum of |terms| (K = c_in kh kw products and the
 * bias). Returns the output [oh * ow, ldy] (transfer full) for comparisons between backends. */
static float *
run_case (dsk_backend *be, const conv_case *cc, GRand *r)
{
  const dsk_conv2d_desc *d = &cc->d;
  const size_t oh = dsk_conv2d_out_size (d->h, d->kh, d->stride, d->pad);
  const size_t ow = dsk_conv2d_out_size (d->w, d->kw, d->stride, d->pad);
  const size_t pixels = oh * ow, k = d->c_in * d->kh * d->kw;
  const size_t nx = d->c_in * d->h * d->w, nw = cc->c_out * k;
  const size_t ldy = cc->ldy ? cc->ldy : cc->c_out;
  const dsk_device host = { DSK_DEVICE_HOST, 0 };
  float *x = g_new (float, nx);
  float *wf = g_new (float, nw), *bf = g_new0 (float, cc->c_out);
  void *w = g_malloc (nw * 4), *b = g_malloc (cc->c_out * 4);
  float *y = g_new (float, pixels * ldy);

  for (size_t i = 0; i < nx; i++)
    x[i] = rnd (r);
  for (size_t i = 0; i < nw; i++)
    wf[i] = put (w, cc->wt, i, rnd (r));
  for (size_t i = 0; i < cc->c_out; i++)
    bf[i] = put (b, cc->wt, i, rnd (r));
  for (size_t i = 0; i < pixels * ldy; i++)
    y[i] = 12345.0f;

  const size_t x_ne[3] = { d->in_layout == DSK_LAYOUT_NCHW ? d->c_in : d->h,
                           d->in_layout == DSK_LAYOUT_NCHW ? d->h : d->w,
                           d->in_layout == DSK_LAYOUT_NCHW ? d->w : d->c_in };
  const size_t w_ne[4] = { cc->c_out, d->c_in, d->kh, d->kw };
  dsk_tensor xt = dsk_tensor_make (x, DSK_F32, 3, x_ne, host);
  dsk_tensor wt = dsk_tensor_make (w, cc->wt, 4, w_ne, host);
  dsk_tensor bt = dsk_tensor_host_1d (b, cc->wt, cc->c_out);
  dsk_tensor yfull = dsk_tensor_host_2d (y, DSK_F32, pixels, ldy);
  dsk_tensor yt = dsk_narrow (&yfull, 1, 0, cc->c_out);
  dsk_conv2d (be, &yt, &xt, &wt, cc->bias ? &bt : NULL, d);
  if (dsk_backend_failed (be))
    g_error ("conv2d: %s", dsk_backend_error (be));

  for (size_t oy = 0; oy < oh; oy++)
    for (size_t ox = 0; ox < ow; ox++)
      for (size_t co = 0; co < cc->c_out; co++) {
        double s = cc->bias ? bf[co] : 0.0, a = fabs (s);
        for (size_t c = 0; c < d->c_in; c++)
          for (size_t ky = 0; ky < d->kh; ky++)
            for (size_t kx = 0; kx < d->kw; kx++) {
              const long iy = (long) (oy * d->stride + ky) - (long) d->pad;
              const long ix = (long) (ox * d->stride + kx) - (long) d->pad;
              const double t = (double) x_at (x, d, c, iy, ix) *
                               wf[((co * d->c_in + c) * d->kh + ky) * d->kw + kx];
              s += t;
              a += fabs (t);
            }
        const double got = y[(oy * ow + ox) * ldy + co];
        const double tol = (double) (k + 2) * FLT_EPSILON * a + 1e-30;
        if (!(fabs (got - s) <= tol))
          g_error ("conv2d %zux%zux%zu k%zux%zu s%zu p%zu: (%zu, %zu, %zu) is %.9g, want %.9g",
                   d->c_in, d->h, d->w, d->kh, d->kw, d->stride, d->pad, oy, ox, co, got, s);
      }
  /* the gap between output pixels of a strided y is left alone */
  for (size_t i = 0; i < pixels; i++)
    for (size_t c = cc->c_out; c < ldy; c++)
      g_assert_cmpfloat (y[i * ldy + c], ==, 12345.0f);

  g_free (x);
  g_free (wf);
  g_free (bf);
  g_free (w);
  g_free (b);
  return y;
}

/* Every case through a 2-thread CPU backend against double math, and the same bits from a
 * 1-thread backend (the pool's thread count does not change a result). */
static void
test_backend (void)
{
  char err[256] = "";
  dsk_backend *be2 = dsk_backend_new ("cpu", 2, err, sizeof err);
  dsk_backend *be1 = dsk_backend_new ("cpu", 1, err, sizeof err);
  g_assert_nonnull (be2);
  g_assert_nonnull (be1);
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    const dsk_conv2d_desc *d = &cases[i].d;
    const size_t ldy = cases[i].ldy ? cases[i].ldy : cases[i].c_out;
    const size_t n = dsk_conv2d_out_size (d->h, d->kh, d->stride, d->pad) *
                     dsk_conv2d_out_size (d->w, d->kw, d->stride, d->pad) * ldy;
    /* the same seed for both, so the same inputs */
    GRand *r2 = g_rand_new_with_seed (12 + (guint32) i);
    GRand *r1 = g_rand_new_with_seed (12 + (guint32) i);
    float *y2 = run_case (be2, &cases[i], r2), *y1 = run_case (be1, &cases[i], r1);
    g_assert_cmpmem (y1, n * sizeof (float), y2, n * sizeof (float));
    g_free (y1);
    g_free (y2);
    g_rand_free (r1);
    g_rand_free (r2);
  }
  dsk_backend_unref (be1);
  dsk_backend_unref (be2);
}

/* The backend refuses descriptors and shapes that do not fit (sticky error, nothing written):
 * a zero stride, a kernel larger than the padded input, a weight of the wrong c_in, an output
 * of the wrong size, an unsupported weight dtype. */
static void
test_invalid (void)
{
  char err[256] = "";
  dsk_backend *be = dsk_backend_new ("cpu", 2, err, sizeof err);
  float x[16] = { 0 }, y[16], w[16] = { 0 };
  int64_t wi[9] = { 0 };
  const dsk_device host = { DSK_DEVICE_HOST, 0 };
  const size_t w_ne[4] = { 1, 1, 3, 3 }, w2_ne[4] = { 1, 2, 3, 3 }, w5_ne[4] = { 1, 1, 5, 5 };
  const dsk_conv2d_desc good = { 1, 4, 4, DSK_LAYOUT_NHWC, 3, 3, 1, 1 };
  dsk_tensor xt = dsk_tensor_host_1d (x, DSK_F32, 16);
  dsk_tensor yt = dsk_tensor_host_2d (y, DSK_F32, 16, 1);
  dsk_tensor y9 = dsk_tensor_host_2d (y, DSK_F32, 9, 1);
  dsk_tensor wt = dsk_tensor_make (w, DSK_F32, 4, w_ne, host);
  dsk_tensor w2 = dsk_tensor_make (w, DSK_F32, 4, w2_ne, host);
  dsk_tensor w5 = dsk_tensor_make (w, DSK_F32, 4, w5_ne, host);
  dsk_tensor wbad = dsk_tensor_make (wi, DSK_I64, 4, w_ne, host);
  dsk_conv2d_desc d;
  g_assert_nonnull (be);

  dsk_conv2d (be, &yt, &xt, &wt, NULL, &good);
  g_assert_false (dsk_backend_failed (be));
  for (int i = 0; i < 16; i++)
    g_assert_cmpfloat (y[i], ==, 0.0f);

  d = good;
  d.stride = 0;
  dsk_conv2d (be, &yt, &xt, &wt, NULL, &d);
  g_assert_cmpint (dsk_backend_status (be), ==, DSK_ERR_INVALID);
  dsk_backend_clear_error (be);

  d = good;
  d.pad = 0;
  d.h = d.w = 2;      /* 5x5 over a 2x2 image */
  dsk_conv2d (be, &yt, &xt, &w5, NULL, &d);
  g_assert_cmpint (dsk_backend_status (be), ==, DSK_ERR_INVALID);
  dsk_backend_clear_error (be);

  dsk_conv2d (be, &yt, &xt, &w2, NULL, &good);
  g_assert_cmpint (dsk_backend_status (be), ==, DSK_ERR_INVALID);
  dsk_backend_clear_error (be);

  for (int i = 0; i < 16; i++)
    y[i] = 7.0f;
  dsk_conv2d (be, &y9, &xt, &wt, NULL, &good);
  g_assert_cmpint (dsk_backend_status (be), ==, DSK_ERR_INVALID);
  dsk_backend_clear_error (be);

  dsk_conv2d (be, &yt, &xt, &wbad, NULL, &good);
  g_assert_cmpint (dsk_backend_status (be), ==, DSK_ERR_UNSUPPORTED);
  dsk_backend_clear_error (be);
  for (int i = 0; i < 16; i++)
    g_assert_cmpfloat (y[i], ==, 7.0f);

  dsk_backend_unref (be);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/conv2d/out-size", test_out_size);
  g_test_add_func ("/kernels/conv2d/im2col", test_im2col);
  g_test_add_func ("/kernels/conv2d/backend", test_backend);
  g_test_add_func ("/kernels/conv2d/invalid", test_invalid);
  return g_test_run ();
}
