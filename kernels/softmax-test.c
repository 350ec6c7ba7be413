/* softmax-test.c: softmax with bias and masks against double-precision math. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"

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

static void
test_shapes (void)
{
  static const size_t ns[] = { 1, 7, 97, 257 };
  static const size_t dims[] = { 1, 2, 7, 97, 257, 4096 };
  GRand *rng = g_rand_new_with_seed (41);
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
    for (size_t bi = 0; bi < G_N_ELEMENTS (dims); bi++)
      for (int mode = 0; mode < 4; mode++) {
        /* 0: no bias, 1: one shared bias row, 2: a bias row per row (padded), 3: in place */
        size_t n = ns[a], dim = dims[bi], bld = mode == 2 ? dim + 3 : 0;
        float *x = g_new (float, n * dim), *y = g_new (float, n * dim);
        float *bias = NULL;
        for (size_t i = 0; i < n * dim; i++)
          x[i] = (float) g_rand_double_range (rng, -20.0, 20.0);
        if (mode == 1 || mode == 2) {
          size_t rows = mode == 1 ? 1 : n;
          bias = g_new (float, rows * (bld ? bld : dim));
          for (size_t i = 0; i < rows * (bld ? bld : dim); i++)
            bias[i] = g_rand_int_range (rng, 0, 8) == 0 ? -INFINITY : (float) g_rand_double_range (rng, -5.0, 5.0);
        }
        float *x0 = g_memdup2 (x, n * dim * sizeof (float));
        float *out = mode == 3 ? x : y;
        g_assert_cmpint (dsk_softmax_f32_cpu (out, x, bias, bld, n, dim), ==, DSK_OK);
        double *want = g_new (double, dim);
        for (size_t i = 0; i < n; i++) {
          const float *br = bias ? bias + i * bld : NULL;
          ref_softmax (want, x0 + i * dim, br, dim);
          check_row (out + i * dim, want, x0 + i * dim, br, dim, "softmax");
        }
        g_free (want);
        g_free (x);
        g_free (x0);
        g_free (y);
        g_free (bias);
      }
  g_rand_free (rng);
}

static void
test_masked_rows (void)
{
  float x[6] = { 1, 2, 3, 4, 5, 6 };
  float mask[6] = { -INFINITY, -INFINITY, -INFINITY, 0, -INFINITY, 0 };
  float y[6];
  /* row 0 fully masked: zeros; row 1: the two unmasked entries share everything */
  g_assert_cmpint (dsk_softmax_f32_cpu (y, x, mask, 3, 2, 3), ==, DSK_OK);
  g_assert_cmpfloat (y[0] + y[1] + y[2], ==, 0.0f);
  g_assert_cmpfloat (y[4], ==, 0.0f);
  g_assert_cmpfloat_with_epsilon (y[3], 1.0 / (1.0 + exp (2.0)), 1e-7);
  g_assert_cmpfloat_with_epsilon (y[5], 1.0 / (1.0 + exp (-2.0)), 1e-7);
  /* large logits do not overflow */
  float big[2] = { 1e30f, 1e30f };
  g_assert_cmpint (dsk_softmax_f32_cpu (y, big, NULL, 0, 1, 2), ==, DSK_OK);
  g_assert_cmpfloat (y[0], ==, 0.5f);
}

static void
test_bad_args (void)
{
  float x[4] = { 0 }, y[4];
  g_assert_cmpint (dsk_softmax_f32_cpu (NULL, x, NULL, 0, 1, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, NULL, NULL, 0, 1, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, x, NULL, 0, 0, 4), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, x, NULL, 0, 1, 0), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_softmax_f32_cpu (y, x, x, 2, 1, 4), ==, DSK_ERR_INVALID);
}

/* The CUDA twin against the CPU path: rows with a bias row each, masked entries and a fully
 * masked row. */
static void
test_cuda_matches_cpu (void)
{
  if (!dsk_cuda_available ()) {
    g_test_skip ("no CUDA device");
    return;
  }
  const size_t n = 37, dim = 1031;
  float *x = g_new (float, n * dim), *b = g_new (float, n * dim);
  float *want = g_new (float, n * dim), *got = g_new (float, n * dim);
  void *dx = NULL, *db = NULL, *dy = NULL;
  for (size_t i = 0; i < n * dim; i++) {
    x[i] = (float) ((i * 2654435761u) % 2000) / 100.0f - 10.0f;
    b[i] = (i % 13 == 0 || i / dim == 5) ? -INFINITY : (float) (i % 7) * 0.5f;
  }
  g_assert_cmpint (dsk_cuda_malloc (&dx, n * dim * 4), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_malloc (&db, n * dim * 4), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_malloc (&dy, n * dim * 4), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_upload (dx, x, n * dim * 4, NULL), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_upload (db, b, n * dim * 4, NULL), ==, DSK_OK);
  g_assert_cmpint (dsk_softmax_f32_cpu (want, x, b, dim, n, dim), ==, DSK_OK);
  g_assert_cmpint (dsk_softmax_f32_cuda (dy, dx, db, dim, n, dim, NULL), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_download (got, dy, n * dim * 4, NULL), ==, DSK_OK);
  for (size_t i = 0; i < n * dim; i++)
    g_assert_cmpfloat (fabsf (got[i] - want[i]), <=, 1e-7f + 1e-5f * want[i]);
  dsk_cuda_free (dx);
  dsk_cuda_free (db);
  dsk_cuda_free (dy);
  g_free (x);
  g_free (b);
  g_free (want);
  g_free (got);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/softmax/shapes", test_shapes);
  g_test_add_func ("/kernels/softmax/masked-rows", test_masked_rows);
  g_test_add_func ("/kernels/softmax/bad-args", test_bad_args);
  g_test_add_func ("/kernels/softmax/cuda-matches-cpu", test_cuda_matches_cpu);
  return g_test_run ();
}
