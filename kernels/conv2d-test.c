/* conv2d-test.c: the im2col convolution against a direct double-precision convolution, for
 * the shapes the vision tower uses (patch embedding, 1x1, 3x3 padded, 3x3 stride 2) at small
 * and odd sizes, every weight dtype, blocked and unblocked workspaces, strided output. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"

typedef struct {
  dsk_conv2d_params p;
  dsk_dtype wt;
  gboolean bias;
} conv_case;

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
    uint16_t h = dsk_f32_to_bf16 (v);
    ((uint16_t *) buf)[i] = h;
    return dsk_bf16_to_f32 (h);
  }
  if (dt == DSK_F16) {
    /* values in [-1, 1] with 10 mantissa bits: build the half from a rounded float */
    float q = roundf (v * 1024.0f) / 1024.0f;
    uint16_t h = 0;
    if (q != 0.0f) {
      int e;
      float m = frexpf (fabsf (q), &e);          /* q = m * 2^e, m in [0.5, 1) */
      int exp = e - 1 + 15;
      uint16_t man = (uint16_t) lrintf ((m * 2.0f - 1.0f) * 1024.0f);
      if (exp <= 0) {
        q = 0.0f;                                 /* too small for this test: flush */
      } else {
        if (man == 1024) {
          man = 0;
          exp++;
        }
        h = (uint16_t) ((q < 0 ? 0x8000 : 0) | (exp << 10) | man);
      }
    }
    ((uint16_t *) buf)[i] = h;
    return dsk_f16_to_f32 (h);
  }
  ((float *) buf)[i] = v;
  return v;
}

static void
run_case (const conv_case *cc, size_t work_floats, GRand *r)
{
  const dsk_conv2d_params *p = &cc->p;
  const size_t oh = dsk_conv2d_out_h (p), ow = dsk_conv2d_out_w (p);
  const size_t nx = p->c_in * p->h * p->w, nw = p->c_out * p->c_in * p->kh * p->kw;
  const size_t ldy = p->ldy ? p->ldy : p->c_out;
  float *x = g_new (float, nx);
  float *wf = g_new (float, nw), *bf = g_new0 (float, p->c_out);
  void *w = g_malloc (nw * 4), *b = g_malloc (p->c_out * 4);
  float *y = g_new (float, oh * ow * ldy);
  float *work = work_floats ? g_new (float, work_floats) : NULL;

  for (size_t i = 0; i < nx; i++)
    x[i] = rnd (r);
  for (size_t i = 0; i < nw; i++)
    wf[i] = put (w, cc->wt, i, rnd (r));
  for (size_t i = 0; i < p->c_out; i++)
    bf[i] = put (b, cc->wt, i, rnd (r));
  for (size_t i = 0; i < oh * ow * ldy; i++)
    y[i] = 12345.0f;

  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, cc->wt, cc->bias ? b : NULL, cc->wt, p, work,
                                       work_floats), ==, DSK_OK);

  double max_err = 0.0, max_ref = 0.0;
  for (size_t oy = 0; oy < oh; oy++)
    for (size_t ox = 0; ox < ow; ox++)
      for (size_t co = 0; co < p->c_out; co++) {
        double s = cc->bias ? bf[co] : 0.0;
        for (size_t c = 0; c < p->c_in; c++)
          for (size_t ky = 0; ky < p->kh; ky++)
            for (size_t kx = 0; kx < p->kw; kx++) {
              long iy = (long) (oy * p->stride + ky) - (long) p->pad;
              long ix = (long) (ox * p->stride + kx) - (long) p->pad;
              if (iy < 0 || ix < 0 || iy >= (long) p->h || ix >= (long) p->w)
                continue;
              size_t xi = p->in_layout == DSK_LAYOUT_NCHW
                            ? (c * p->h + (size_t) iy) * p->w + (size_t) ix
                            : ((size_t) iy * p->w + (size_t) ix) * p->c_in + c;
              s += (double) x[xi] * wf[((co * p->c_in + c) * p->kh + ky) * p->kw + kx];
            }
        double got = y[(oy * ow + ox) * ldy + co];
        max_err = fmax (max_err, fabs (got - s));
        max_ref = fmax (max_ref, fabs (s));
      }
  g_assert_cmpfloat (max_err, <=, 1e-5 * fmax (max_ref, 1.0));
  /* the gap between output pixels of a strided y is left alone */
  for (size_t i = 0; i < oh * ow; i++)
    for (size_t c = p->c_out; c < ldy; c++)
      g_assert_cmpfloat (y[i * ldy + c], ==, 12345.0f);

  g_free (x);
  g_free (wf);
  g_free (bf);
  g_free (w);
  g_free (b);
  g_free (y);
  g_free (work);
}

static const conv_case cases[] = {
  /* patch embedding: NCHW pixels, kernel = stride, bias */
  { { 3, 32, 48, DSK_LAYOUT_NCHW, 8, 16, 16, 16, 0, 0 }, DSK_BF16, TRUE },
  { { 3, 20, 12, DSK_LAYOUT_NCHW, 5, 4, 4, 4, 0, 0 }, DSK_F32, TRUE },
  /* neck: 1x1 and 3x3 padded over channels-last tokens */
  { { 12, 9, 7, DSK_LAYOUT_NHWC, 6, 1, 1, 1, 0, 0 }, DSK_BF16, FALSE },
  { { 6, 9, 7, DSK_LAYOUT_NHWC, 6, 3, 3, 1, 1, 0 }, DSK_F16, FALSE },
  /* net_2 / net_3: 3x3 stride 2 pad 1, even and odd sizes */
  { { 6, 10, 10, DSK_LAYOUT_NHWC, 9, 3, 3, 2, 1, 0 }, DSK_BF16, FALSE },
  { { 5, 7, 5, DSK_LAYOUT_NHWC, 4, 3, 3, 2, 1, 0 }, DSK_F32, TRUE },
  /* NCHW with padding and stride, strided output */
  { { 4, 6, 9, DSK_LAYOUT_NCHW, 3, 3, 2, 2, 1, 7 }, DSK_F16, TRUE },
  /* 1x1 on NCHW input still unfolds */
  { { 4, 3, 5, DSK_LAYOUT_NCHW, 2, 1, 1, 1, 0, 0 }, DSK_BF16, TRUE },
};

static void
test_full_workspace (void)
{
  GRand *r = g_rand_new_with_seed (11);
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    run_case (&cases[i], dsk_conv2d_workspace_floats (&cases[i].p), r);
  g_rand_free (r);
}

static void
test_blocked_workspace (void)
{
  /* room for 1, 3 and 5 unfolded pixels: the last block is partial */
  GRand *r = g_rand_new_with_seed (12);
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    const dsk_conv2d_params *p = &cases[i].p;
    if (dsk_conv2d_workspace_floats (p) == 0)
      continue;
    size_t k = p->c_in * p->kh * p->kw;
    for (size_t n = 1; n <= 5; n += 2)
      run_case (&cases[i], n * k + (n == 3 ? k - 1 : 0), r);
  }
  g_rand_free (r);
}

static void
test_sizes_and_invalid (void)
{
  dsk_conv2d_params p = { 256, 64, 64, DSK_LAYOUT_NHWC, 512, 3, 3, 2, 1, 0 };
  g_assert_cmpuint (dsk_conv2d_out_h (&p), ==, 32);
  g_assert_cmpuint (dsk_conv2d_out_w (&p), ==, 32);
  g_assert_cmpuint (dsk_conv2d_workspace_floats (&p), ==, 1024 * 256 * 9);
  dsk_conv2d_params q = { 3, 1024, 1024, DSK_LAYOUT_NCHW, 768, 16, 16, 16, 0, 0 };
  g_assert_cmpuint (dsk_conv2d_out_h (&q), ==, 64);
  dsk_conv2d_params pw = { 768, 64, 64, DSK_LAYOUT_NHWC, 256, 1, 1, 1, 0, 0 };
  g_assert_cmpuint (dsk_conv2d_workspace_floats (&pw), ==, 0);

  float x[16] = { 0 }, y[16], w[16] = { 0 }, work[64];
  dsk_conv2d_params s = { 1, 4, 4, DSK_LAYOUT_NHWC, 1, 3, 3, 1, 1, 0 };
  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, DSK_F32, NULL, DSK_F32, &s, work, 64), ==,
                   DSK_OK);
  /* no workspace, or less than one unfolded pixel */
  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, DSK_F32, NULL, DSK_F32, &s, NULL, 0), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, DSK_F32, NULL, DSK_F32, &s, work, 8), ==,
                   DSK_ERR_INVALID);
  /* a kernel larger than the padded input */
  dsk_conv2d_params big = { 1, 2, 2, DSK_LAYOUT_NHWC, 1, 5, 5, 1, 0, 0 };
  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, DSK_F32, NULL, DSK_F32, &big, work, 64), ==,
                   DSK_ERR_INVALID);
  dsk_conv2d_params zero = s;
  zero.stride = 0;
  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, DSK_F32, NULL, DSK_F32, &zero, work, 64), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_conv2d_f32_cpu (y, x, w, DSK_I64, NULL, DSK_F32, &s, work, 64), ==,
                   DSK_ERR_UNSUPPORTED);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/conv2d/full-workspace", test_full_workspace);
  g_test_add_func ("/kernels/conv2d/blocked-workspace", test_blocked_workspace);
  g_test_add_func ("/kernels/conv2d/sizes-invalid", test_sizes_and_invalid);
  return g_test_run ();
}
