/* norm-test.c: RMSNorm and LayerNorm against double-precision math. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"
#include "dsk-cpu.h"

static const dsk_dtype wdtypes[3] = { DSK_F32, DSK_BF16, DSK_F16 };
static const size_t ns[] = { 1, 7, 97, 257 };
static const size_t dims[] = { 1, 2, 7, 97, 257, 1280 };

/* [n] weights in @dt around @center, exactly representable */
static void *
random_weights (GRand *rng, dsk_dtype dt, size_t n, double center)
{
  void *w = g_malloc (n * dsk_dtype_size (dt));
  for (size_t i = 0; i < n; i++) {
    float v = (float) (center + g_rand_double_range (rng, -0.5, 0.5));
    if (dt == DSK_F32)
      ((float *) w)[i] = v;
    else if (dt == DSK_BF16)
      ((uint16_t *) w)[i] = dsk_f32_to_bf16 (v);
    else {
      /* f16 from the bf16 pattern's top bits would lose range; build from exponent/mantissa */
      int e;
      double m = frexp (v, &e);  /* v = m 2^e, 0.5 <= |m| < 1 */
      uint16_t sign = v < 0 ? 0x8000 : 0;
      uint16_t man = (uint16_t) ((fabs (m) * 2.0 - 1.0) * 1024.0);
      ((uint16_t *) w)[i] = fabsf (v) < 1e-3f ? 0 : sign | (uint16_t) ((e - 1 + 15) << 10) | man;
    }
  }
  return w;
}

static float *
random_f32 (GRand *rng, size_t n, double center, double spread)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = (float) (center + g_rand_double_range (rng, -spread, spread));
  return x;
}

/* RMSNorm for every weight dtype on packed rows, strided rows and in place. */
static void
test_rmsnorm (void)
{
  GRand *rng = g_rand_new_with_seed (31);
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
    for (size_t b = 0; b < G_N_ELEMENTS (dims); b++)
      for (int d = 0; d < 3; d++)
        for (int layout = 0; layout < 3; layout++) {
          /* 0: packed, 1: strided rows, 2: in place */
          size_t n = ns[a], dim = dims[b];
          size_t ldx = layout == 1 ? dim + 3 : dim, ldy = layout == 1 ? dim + 5 : dim;
          float *x = random_f32 (rng, n * ldx, 0.0, 2.0);
          void *w = random_weights (rng, wdtypes[d], dim, 1.0);
          float *y = layout == 2 ? x : g_new0 (float, n * ldy);
          float *x0 = g_memdup2 (x, n * ldx * sizeof (float));
          const float eps = 1e-6f;
          g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, layout == 1 ? ldy : 0, x, layout == 1 ? ldx : 0,
                                                w, wdtypes[d], n, dim, eps), ==, DSK_OK);
          for (size_t i = 0; i < n; i++) {
            double ss = 0.0;
            for (size_t j = 0; j < dim; j++)
              ss += (double) x0[i * ldx + j] * x0[i * ldx + j];
            double r = 1.0 / sqrt (ss / (double) dim + eps);
            for (size_t j = 0; j < dim; j++) {
              double want = x0[i * ldx + j] * r * dsk_cpu_weight_at (w, wdtypes[d], j);
              /* statistics in double: only the last few roundings remain (docs/kernels.md) */
              if (fabs (y[i * ldy + j] - want) > 8.0 * FLT_EPSILON * fabs (want) + 1e-30)
                g_error ("rmsnorm n=%zu dim=%zu: %.9g want %.9g", n, dim, y[i * ldy + j], want);
            }
          }
          if (layout != 2)
            g_free (y);
          g_free (x);
          g_free (x0);
          g_free (w);
        }
  g_rand_free (rng);
}

/* double LayerNorm of @count values @stride apart */
static void
ref_layernorm (double *out, const float *x, size_t count, size_t stride, const void *w,
               const void *b, dsk_dtype dt, double eps)
{
  double m = 0.0, v = 0.0;
  for (size_t j = 0; j < count; j++)
    m += x[j * stride];
  m /= (double) count;
  for (size_t j = 0; j < count; j++)
    v += (x[j * stride] - m) * (x[j * stride] - m);
  v /= (double) count;
  for (size_t j = 0; j < count; j++) {
    double h = (x[j * stride] - m) / sqrt (v + eps);
    if (w)
      h *= dsk_cpu_weight_at (w, dt, j);
    if (b)
      h += dsk_cpu_weight_at (b, dt, j);
    out[j] = h;
  }
}

/* Statistics and x - mean are formed in double, so an output element is a few f32 roundings
 * of O(1) values (|xn| < 4 for these rows, |w| < 1.5, |b| < 0.5). */
static void
check_ln (const float *got, const double *want, size_t n, double scale, const char *what)
{
  for (size_t i = 0; i < n; i++)
    if (fabs (got[i] - want[i]) > 16.0 * FLT_EPSILON * scale)
      g_error ("%s: element %zu is %.9g, want %.9g", what, i, got[i], want[i]);
}

/* LayerNorm with and without w and b, every weight dtype, rows far from zero mean (center 10),
 * on packed rows, strided rows (ldx, ldy wider than the row, the gaps left alone) and in place
 * (the same bits as out of place). */
static void
test_layernorm (void)
{
  GRand *rng = g_rand_new_with_seed (32);
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
    for (size_t bi = 0; bi < G_N_ELEMENTS (dims); bi++)
      for (int d = 0; d < 3; d++)
        for (int affine = 0; affine < 3; affine++) {
          size_t n = ns[a], dim = dims[bi], ldx = dim + 3, ldy = dim + 5;
          double center = (a + bi) % 2 ? 10.0 : 0.0;
          float *x = random_f32 (rng, n * dim, center, 1.0);
          void *w = affine ? random_weights (rng, wdtypes[d], dim, 1.0) : NULL;
          void *b = affine == 2 ? random_weights (rng, wdtypes[d], dim, 0.0) : NULL;
          float *y = g_new (float, n * dim);
          double *want = g_new (double, dim);
          char *what = g_strdup_printf ("layernorm n=%zu dim=%zu dt=%d affine=%d", n, dim,
                                        wdtypes[d], affine);
          g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 0, w, b, wdtypes[d], n, dim, 1e-5f),
                           ==, DSK_OK);
          for (size_t i = 0; i < n; i++) {
            ref_layernorm (want, x + i * dim, dim, 1, w, b, wdtypes[d], 1e-5f);
            /* |w| < 1.5, |b| < 0.5; a dim-1 row is all mean: eps dominates */
            check_ln (y + i * dim, want, dim, 8.0, what);
          }
          /* strided rows: the same bits per row, the gaps untouched */
          float *xs = g_new (float, n * ldx), *ys = g_new (float, n * ldy);
          for (size_t i = 0; i < n * ldx; i++)
            xs[i] = -7.0f;
          for (size_t i = 0; i < n * ldy; i++)
            ys[i] = 12345.0f;
          for (size_t i = 0; i < n; i++)
            memcpy (xs + i * ldx, x + i * dim, dim * sizeof (float));
          g_assert_cmpint (dsk_layernorm_f32_cpu (ys, ldy, xs, ldx, w, b, wdtypes[d], n, dim,
                                                  1e-5f), ==, DSK_OK);
          for (size_t i = 0; i < n; i++) {
            g_assert_cmpmem (ys + i * ldy, dim * sizeof (float), y + i * dim,
                             dim * sizeof (float));
            for (size_t j = dim; j < ldy; j++)
              g_assert_cmpfloat (ys[i * ldy + j], ==, 12345.0f);
          }
          /* in place, strided, gives the same bits */
          g_assert_cmpint (dsk_layernorm_f32_cpu (xs, ldx, xs, ldx, w, b, wdtypes[d], n, dim,
                                                  1e-5f), ==, DSK_OK);
          for (size_t i = 0; i < n; i++) {
            g_assert_cmpmem (xs + i * ldx, dim * sizeof (float), y + i * dim,
                             dim * sizeof (float));
            for (size_t j = dim; j < ldx; j++)
              g_assert_cmpfloat (xs[i * ldx + j], ==, -7.0f);
          }
          g_free (what);
          g_free (xs);
          g_free (ys);
          g_free (x);
          g_free (w);
          g_free (b);
          g_free (y);
          g_free (want);
        }
  g_rand_free (rng);
}

/* NULL arrays, zero sizes, short row strides and unknown dtypes are refused. */
static void
test_bad_args (void)
{
  float x[4] = { 1, 2, 3, 4 }, y[4];
  float w[4] = { 1, 1, 1, 1 };
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (NULL, 0, x, 0, w, DSK_F32, 1, 4, 1e-6f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, 0, NULL, 0, w, DSK_F32, 1, 4, 1e-6f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, 0, x, 0, NULL, DSK_F32, 1, 4, 1e-6f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, 0, x, 0, w, DSK_F32, 0, 4, 1e-6f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, 0, x, 0, w, DSK_F32, 1, 0, 1e-6f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, 2, x, 0, w, DSK_F32, 1, 4, 1e-6f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rmsnorm_f32_cpu (y, 0, x, 0, w, DSK_I32, 1, 4, 1e-6f), ==, DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_layernorm_f32_cpu (NULL, 0, x, 0, w, w, DSK_F32, 1, 4, 1e-6f), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, NULL, 0, w, w, DSK_F32, 1, 4, 1e-6f), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 0, w, w, DSK_F32, 0, 4, 1e-6f), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 0, w, w, DSK_F32, 1, 0, 1e-6f), ==,
                   DSK_ERR_INVALID);
  /* a row stride shorter than the row */
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 3, x, 0, w, w, DSK_F32, 1, 4, 1e-6f), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 2, w, w, DSK_F32, 1, 4, 1e-6f), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 0, w, w, DSK_F8_E4M3, 1, 4, 1e-6f), ==,
                   DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 0, NULL, w, DSK_U8, 1, 4, 1e-6f), ==,
                   DSK_ERR_UNSUPPORTED);
  /* no affine: the dtype is not looked at */
  g_assert_cmpint (dsk_layernorm_f32_cpu (y, 0, x, 0, NULL, NULL, DSK_U8, 1, 4, 1e-6f), ==,
                   DSK_OK);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/norm/rmsnorm", test_rmsnorm);
  g_test_add_func ("/kernels/norm/layernorm", test_layernorm);
  g_test_add_func ("/kernels/norm/bad-args", test_bad_args);
  return g_test_run ();
}
