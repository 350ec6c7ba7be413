/* softmax-test.c: softmax with bias and masks against double-precision math. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"
#include "dsk-cpu.h"

static void
ref_softmax (double *out, const float *x, const float *b, size_t dim)
{
  double m = -INFINITY, s = 0.0;
  for (size_t j = 0; j < dim; j++) {
    out[j] = (double) x[j] + (b ? (double) b[j] : 0.0);
    m = MAX (m, out[j]);
  }
  if (m == -INFINITY) {
    for (size_t j = 0; j < dim; j++)
      out[j] = 0.0;
    return;
  }
  for (size_t j = 0; j < dim; j++) {
    out[j] = exp (out[j] - m);
    s += out[j];
  }
  for (size_t j = 0; j < dim; j++)
    out[j] /= s;
}

/* x + b and (x + b) - max round in f32, which moves exp() by up to 2 |x + b|max ulp; then
 * expf, the sum's inverse and the product: a few ulp of each output (docs/kernels.md). */
static void
check_row (const float *got, const double *want, const float *x, const float *b, size_t dim,
           const char *what)
{
  double mag = 0.0;
  for (size_t j = 0; j < dim; j++)
    if (!b || isfinite (b[j]))
      mag = MAX (mag, fabs ((double) x[j] + (b ? b[j] : 0.0)));
  for (size_t j = 0; j < dim; j++) {
    double tol = (8.0 + 4.0 * mag) * FLT_EPSILON * want[j] + 1e-38;
    if (!(fabs (got[j] - want[j]) <= tol))
      g_error ("%s: element %zu is %.9g, want %.9g", what, j, got[j], want[j]);
  }
}

/* Every row against double math: no bias, one shared bias row (bias_ld 0), a padded bias row
 * per row, in place, strided x and y rows (the gaps left alone) and strided in place. */
static void
test_shapes (void)
{
  static const size_t ns[] = { 1, 7, 97, 257 };
  static const size_t dims[] = { 1, 2, 7, 97, 257, 4096 };
  GRand *rng = g_rand_new_with_seed (41);
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
    for (size_t bi = 0; bi < G_N_ELEMENTS (dims); bi++)
      for (int mode = 0; mode < 6; mode++) {
        /* 0: no bias, 1: one shared bias row, 2: a bias row per row (padded), 3: in place,
         * 4: strided rows with a bias row each, 5: strided in place */
        const int strided = mode >= 4, in_place = mode == 3 || mode == 5;
        const size_t n = ns[a], dim = dims[bi];
        const size_t bld = mode == 2 || mode == 4 ? dim + 3 : 0;
        const size_t ldx = strided ? dim + 5 : dim;
        const size_t ldy = in_place ? ldx : strided ? dim + 2 : dim;
        float *x = g_new (float, n * ldx), *y = g_new (float, n * ldy);
        float *bias = NULL;
        for (size_t i = 0; i < n * ldx; i++)
          x[i] = (float) g_rand_double_range (rng, -20.0, 20.0);
        for (size_t i = 0; i < n * ldy; i++)
          y[i] = 12345.0f;
        if (mode == 1 || mode == 2 || mode == 4) {
          size_t rows = mode == 1 ? 1 : n;
          bias = g_new (float, rows * (bld ? bld : dim));
          for (size_t i = 0; i < rows * (bld ? bld : dim); i++)
            bias[i] = g_rand_int_range (rng, 0, 8) == 0
                        ? -INFINITY : (float) g_rand_double_range (rng, -5.0, 5.0);
        }
        float *x0 = g_memdup2 (x, n * ldx * sizeof (float));
        float *out = in_place ? x : y;
        g_assert_cmpint (dsk_softmax_f32_cpu (out, strided ? ldy : 0, x, strided ? ldx : 0,
                                              bias, bld, n, dim), ==, DSK_OK);
        double *want = g_new (double, dim);
        for (size_t i = 0; i < n; i++) {
          const float *br = bias ? bias + i * bld : NULL;
          ref_softmax (want, x0 + i * ldx, br, dim);
          check_row (out + i * ldy, want, x0 + i * ldx, br, dim, "softmax");
          /* the gap after a row is not written */
          for (size_t j = dim; j < ldy; j++)
            g_assert_cmpfloat (out[i * ldy + j], ==, in_place ? x0[i * ldx + j] : 12345.0f);
        }
        g_free (want);
        g_free (x);
        g_free (x0);
        g_free (y);
        g_free (bias);
      }
  g_rand_free (rng);
}

/* A fully masked row gives zeros, a partly masked one shares all mass among the rest; huge
 * logits do not overflow. */
static void
test_masked_rows (void)
{
  float x[6] = { 1, 2, 3, 4, 5, 6 };
  float mask[6] = { -INFINITY, -INFINITY, -INFINITY, 0, -INFINITY, 0 };
  float y[6];
  /* row 0 fully masked: zeros; row 1: the two unmasked entries share everything */
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, x, 0, mask, 3, 2, 3), ==, DSK_OK);
  g_assert_cmpfloat (y[0] + y[1] + y[2], ==, 0.0f);
  g_assert_cmpfloat (y[4], ==, 0.0f);
  g_assert_cmpfloat_with_epsilon (y[3], 1.0 / (1.0 + exp (2.0)), 1e-7);
  g_assert_cmpfloat_with_epsilon (y[5], 1.0 / (1.0 + exp (-2.0)), 1e-7);
  /* large logits do not overflow */
  float big[2] = { 1e30f, 1e30f };
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, big, 0, NULL, 0, 1, 2), ==, DSK_OK);
  g_assert_cmpfloat (y[0], ==, 0.5f);
}

/* NULL arrays, zero sizes and row strides shorter than a row are refused. */
static void
test_bad_args (void)
{
  float x[4] = { 0 }, y[4];
  g_assert_cmpint (dsk_softmax_f32_cpu (NULL, 0, x, 0, NULL, 0, 1, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, NULL, 0, NULL, 0, 1, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, x, 0, NULL, 0, 0, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, x, 0, NULL, 0, 1, 0), ==, DSK_ERR_INVALID);
  /* bias, x and y row strides shorter than a row */
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, x, 0, x, 2, 1, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 0, x, 3, NULL, 0, 1, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, 1, x, 0, NULL, 0, 1, 4), ==, DSK_ERR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/softmax/shapes", test_shapes);
  g_test_add_func ("/kernels/softmax/masked-rows", test_masked_rows);
  g_test_add_func ("/kernels/softmax/bad-args", test_bad_args);
  return g_test_run ();
}
