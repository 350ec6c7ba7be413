/* matmul-test.c: dsk_matmul_f32_cpu against a double-precision product, on every path
 * (direct SIMD, direct plain C, BLAS) and every weight dtype. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dsk.h"
#include "dsk-cpu.h"
#include "dsocr-test.h"

static const dsk_dtype wdtypes[3] = { DSK_F32, DSK_BF16, DSK_F16 };

/* Random weights in @dt: values in about [-1, 1], exactly representable in @dt. */
static void *
random_weights (GRand *rng, dsk_dtype dt, size_t n)
{
  if (dt == DSK_F32) {
    float *w = g_new (float, n);
    for (size_t i = 0; i < n; i++)
      w[i] = (float) g_rand_double_range (rng, -1.0, 1.0);
    return w;
  }
  uint16_t *h = g_new (uint16_t, n);
  for (size_t i = 0; i < n; i++) {
    if (dt == DSK_BF16) {
      h[i] = dsk_f32_to_bf16 ((float) g_rand_double_range (rng, -1.0, 1.0));
    } else {
      /* f16: sign, exponent 2^-6 .. 2^0, random mantissa */
      uint16_t sign = (uint16_t) (g_rand_int (rng) & 1u) << 15;
      uint16_t exp = (uint16_t) g_rand_int_range (rng, 9, 16);
      h[i] = sign | (uint16_t) (exp << 10) | (uint16_t) (g_rand_int (rng) & 0x3ffu);
    }
  }
  return h;
}

static float *
random_f32 (GRand *rng, size_t n)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = (float) g_rand_double_range (rng, -1.0, 1.0);
  return x;
}

/* Error bound of an f32 result whose exact value sums K products plus @extra further
 * roundings (bias, scale, accumulate): (K + extra) * FLT_EPSILON * sum |terms|, twice the
 * classic gamma_K bound (see docs/kernels.md). */
static double
bound (size_t k, int extra, double abs_sum)
{
  return (double) (k + (size_t) extra) * FLT_EPSILON * abs_sum + 1e-30;
}

typedef struct {
  const int32_t *x_rows, *y_rows;
  const float *y_scale;
  size_t ldx, ldy;
  int accumulate;
} ref_opts;

/* Runs one product and checks every element against double math; y_init seeds y (for
 * accumulate and for untouched elements). Returns the normwise relative error. */
static double
check_product (size_t n, size_t in, size_t out, size_t x_rows_total, size_t y_rows_total,
               const float *x, const void *w, dsk_dtype wt, const void *bias, dsk_dtype bt,
               const dsk_matmul_opts *o, const float *y_init)
{
  size_t ldx = o && o->ldx ? o->ldx : in, ldy = o && o->ldy ? o->ldy : out;
  size_t y_len = y_rows_total * ldy;
  float *y = g_new (float, y_len);
  double *want = g_new (double, y_len), *abs_sum = g_new0 (double, y_len);
  int *n_terms = g_new0 (int, y_len);
  memcpy (y, y_init, y_len * sizeof (float));
  for (size_t i = 0; i < y_len; i++) {
    want[i] = y_init[i];
    abs_sum[i] = fabs (y_init[i]);
  }
  (void) x_rows_total;

  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, wt, bias, bt, n, in, out, o), ==, DSK_OK);

  for (size_t i = 0; i < n; i++) {
    size_t xr = o && o->x_rows ? (size_t) o->x_rows[i] : i;
    size_t yr = o && o->y_rows ? (size_t) o->y_rows[i] : i;
    double sc = o && o->y_scale ? o->y_scale[i] : 1.0;
    for (size_t c = 0; c < out; c++) {
      double s = 0.0, a = 0.0;
      for (size_t k = 0; k < in; k++) {
        double t = (double) x[xr * ldx + k] * dsk_cpu_weight_at (w, wt, c * in + k);
        s += t;
        a += fabs (t);
      }
      if (bias) {
        double b = dsk_cpu_weight_at (bias, bt, c);
        s += b;
        a += fabs (b);
      }
      size_t at = yr * ldy + c;
      if (o && o->accumulate) {
        want[at] += sc * s;
        abs_sum[at] += fabs (sc) * a;
      } else {
        want[at] = sc * s;
        abs_sum[at] = fabs (sc) * a;
      }
      n_terms[at] += (int) in + 3;
    }
  }

  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < y_len; i++) {
    double d = fabs ((double) y[i] - want[i]);
    if (!(d <= bound ((size_t) n_terms[i], 0, abs_sum[i])))
      g_error ("matmul n=%zu in=%zu out=%zu w=%d: element %zu is %.9g, want %.9g (bound %.3g)",
               n, in, out, wt, i, y[i], want[i], bound ((size_t) n_terms[i], 0, abs_sum[i]));
    max_diff = MAX (max_diff, d);
    max_ref = MAX (max_ref, fabs (want[i]));
  }
  g_free (y);
  g_free (want);
  g_free (abs_sum);
  g_free (n_terms);
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

/* paths: 0 automatic, 1 direct, 2 BLAS; simd on and off */
static void
test_shapes (void)
{
  static const size_t ns[] = { 1, 2, 3, 4, 5, 7, 9, 97, 257 };
  static const size_t dims[] = { 1, 7, 97, 257 };
  GRand *rng = g_rand_new_with_seed (11);

  for (int generic = 0; generic < 2; generic++)
    for (int path = 0; path < 3; path++) {
      dsk_cpu_force_generic (generic);
      dsk_matmul_force_path (path);
      for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
        for (size_t b = 0; b < G_N_ELEMENTS (dims); b++)
          for (size_t c = 0; c < G_N_ELEMENTS (dims); c++)
            for (int d = 0; d < 3; d++) {
              size_t n = ns[a], in = dims[b], out = dims[c];
              /* the large cubes once per path are enough */
              if (n * in * out > 257 * 257 * 97 && d != 1)
                continue;
              float *x = random_f32 (rng, n * in);
              void *w = random_weights (rng, wdtypes[d], out * in);
              void *bias = (a + b + c) % 2 ? random_weights (rng, wdtypes[(d + 1) % 3], out) : NULL;
              float *y0 = random_f32 (rng, n * out);
              double rel = check_product (n, in, out, n, n, x, w, wdtypes[d], bias,
                                          wdtypes[(d + 1) % 3], NULL, y0);
              /* the 1e-5 rule of docs/kernels.md for reductions up to 257 */
              g_assert_cmpfloat (rel, <=, 1e-5);
              g_free (x);
              g_free (w);
              g_free (bias);
              g_free (y0);
            }
    }
  dsk_cpu_force_generic (0);
  dsk_matmul_force_path (0);
  g_rand_free (rng);
}

/* MoE-style use: gathered x rows, scattered y rows with repeats, row scales, accumulate and
 * row strides, on every path. */
static void
test_options (void)
{
  GRand *rng = g_rand_new_with_seed (12);
  const size_t in = 97, out = 131, x_total = 40, y_total = 30;

  for (int generic = 0; generic < 2; generic++)
    for (int path = 0; path < 3; path++)
      for (int d = 0; d < 3; d++)
        for (size_t n = 1; n <= 33; n += 4) {
          dsk_cpu_force_generic (generic);
          dsk_matmul_force_path (path);
          size_t ldx = in + 5, ldy = out + 3;
          float *x = random_f32 (rng, x_total * ldx);
          void *w = random_weights (rng, wdtypes[d], out * in);
          float *bias = random_f32 (rng, out);
          int32_t *xr = g_new (int32_t, n), *yr = g_new (int32_t, n);
          float *sc = random_f32 (rng, n);
          for (size_t i = 0; i < n; i++) {
            xr[i] = g_rand_int_range (rng, 0, (gint32) x_total);
            yr[i] = g_rand_int_range (rng, 0, (gint32) y_total);  /* repeats likely */
          }
          float *y0 = random_f32 (rng, y_total * ldy);
          dsk_matmul_opts o = { .x_rows = xr, .y_rows = yr, .y_scale = sc,
                                .ldx = ldx, .ldy = ldy, .accumulate = 1 };
          check_product (n, in, out, x_total, y_total, x, w, wdtypes[d], bias, DSK_F32, &o, y0);
          /* without accumulate, repeated y rows are not meaningful: use distinct rows */
          for (size_t i = 0; i < n; i++)
            yr[i] = (int32_t) ((i * 7) % y_total);
          if (n <= y_total) {
            dsk_matmul_opts o2 = { .x_rows = xr, .y_rows = yr, .ldy = ldy };
            check_product (n, in, out, x_total, y_total, x, w, wdtypes[d], NULL, DSK_F32, &o2,
                           y0);
          }
          dsk_matmul_opts o3 = { .ldx = ldx, .ldy = ldy, .accumulate = 1 };
          if (n <= y_total)
            check_product (n, in, out, x_total, y_total, x, w, wdtypes[d], bias, DSK_F32, &o3,
                           y0);
          g_free (x);
          g_free (w);
          g_free (bias);
          g_free (xr);
          g_free (yr);
          g_free (sc);
          g_free (y0);
        }
  dsk_cpu_force_generic (0);
  dsk_matmul_force_path (0);
  g_rand_free (rng);
}

/* The decoder's real sizes: hidden 1280 into an expert's 896 rows, decode and prefill. */
static void
test_decoder_shapes (void)
{
  GRand *rng = g_rand_new_with_seed (13);
  const size_t in = 1280, out = 896;
  void *w = random_weights (rng, DSK_BF16, out * in);
  for (size_t n = 1; n <= 40; n += 13) {
    float *x = random_f32 (rng, n * in);
    float *y0 = g_new0 (float, n * out);
    check_product (n, in, out, n, n, x, w, DSK_BF16, NULL, DSK_F32, NULL, y0);
    g_free (x);
    g_free (y0);
  }
  g_free (w);
  g_rand_free (rng);
}

/* The direct path gives the same bits whatever the thread count. */
static void
test_thread_invariance (void)
{
#ifdef _OPENMP
  GRand *rng = g_rand_new_with_seed (14);
  const size_t n = 5, in = 300, out = 1000;
  float *x = random_f32 (rng, n * in);
  void *w = random_weights (rng, DSK_BF16, out * in);
  float *y1 = g_new (float, n * out), *y2 = g_new (float, n * out);
  int saved = omp_get_max_threads ();
  omp_set_num_threads (1);
  g_assert_cmpint (dsk_matmul_f32_cpu (y1, x, w, DSK_BF16, NULL, DSK_F32, n, in, out, NULL), ==, DSK_OK);
  omp_set_num_threads (3);
  g_assert_cmpint (dsk_matmul_f32_cpu (y2, x, w, DSK_BF16, NULL, DSK_F32, n, in, out, NULL), ==, DSK_OK);
  omp_set_num_threads (saved);
  g_assert_cmpint (memcmp (y1, y2, n * out * sizeof (float)), ==, 0);
  g_free (x);
  g_free (w);
  g_free (y1);
  g_free (y2);
  g_rand_free (rng);
#else
  g_test_skip ("built without OpenMP");
#endif
}

static void
test_bad_args (void)
{
  float x[4] = { 0 }, y[4] = { 0 };
  uint16_t w[4] = { 0 };
  int32_t bad_rows[1] = { -1 };
  dsk_matmul_opts o = { .ldx = 1 };
  dsk_matmul_opts o2 = { .x_rows = bad_rows };

  g_assert_cmpint (dsk_matmul_f32_cpu (NULL, x, w, DSK_BF16, NULL, DSK_F32, 1, 2, 2, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, NULL, w, DSK_BF16, NULL, DSK_F32, 1, 2, 2, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, NULL, DSK_BF16, NULL, DSK_F32, 1, 2, 2, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 0, 2, 2, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 1, 0, 2, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 1, 2, 0, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 1, 2, 2, &o), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 1, 2, 2, &o2), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_I64, NULL, DSK_F32, 1, 2, 2, NULL), ==, DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_F8_E4M3, NULL, DSK_F32, 1, 2, 2, NULL), ==, DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, w, DSK_U8, 1, 2, 2, NULL), ==, DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, (dsk_dtype) 99, NULL, DSK_F32, 1, 2, 2, NULL), ==, DSK_ERR_UNSUPPORTED);
}

static void
test_scratch_release (void)
{
  /* a BLAS-path call leaves scratch behind; releasing twice is harmless */
  GRand *rng = g_rand_new_with_seed (15);
  float *x = random_f32 (rng, 20 * 30);
  void *w = random_weights (rng, DSK_BF16, 40 * 30);
  float *y = g_new (float, 20 * 40);
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 20, 30, 40, NULL), ==, DSK_OK);
  dsk_matmul_scratch_release_cpu ();
  dsk_matmul_scratch_release_cpu ();
  g_assert_cmpint (dsk_matmul_f32_cpu (y, x, w, DSK_BF16, NULL, DSK_F32, 20, 30, 40, NULL), ==, DSK_OK);
  g_free (x);
  g_free (w);
  g_free (y);
  g_rand_free (rng);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/matmul/shapes", test_shapes);
  g_test_add_func ("/kernels/matmul/options", test_options);
  g_test_add_func ("/kernels/matmul/decoder-shapes", test_decoder_shapes);
  g_test_add_func ("/kernels/matmul/thread-invariance", test_thread_invariance);
  g_test_add_func ("/kernels/matmul/bad-args", test_bad_args);
  g_test_add_func ("/kernels/matmul/scratch-release", test_scratch_release);
  int ret = g_test_run ();
  /* the scratch of this thread would otherwise live until exit */
  dsk_matmul_scratch_release_cpu ();
  return ret;
}
