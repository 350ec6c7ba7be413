/* act-test.c: activations against double-precision math. */
#include <float.h>
#include <glib.h>
#include <math.h>

#include "dsk.h"
#include "dsk-cpu.h"

typedef dsk_status (*act_fn) (float *, const float *, size_t);

static double ref_silu (double x) { return x / (1.0 + exp (-x)); }
static double ref_gelu (double x) { return 0.5 * x * (1.0 + erf (x / sqrt (2.0))); }
static double ref_quick_gelu (double x) { return x / (1.0 + exp (-1.702 * x)); }

/* Inputs over [-12, 12] plus edges. The f32 formulas round x (and 1.702x, x/sqrt2) before
 * exp/erf, which moves the result by up to |x| ulp relative; where 1 + erf cancels (gelu at
 * x << 0, @cancel 1) only an absolute bound of |x| ulp(1) holds, as for torch's own f32
 * kernel. */
static void
check_act (const char *name, act_fn f, double (*ref) (double), double cancel)
{
  static const size_t ns[] = { 1, 7, 97, 257, 100003 };
  GRand *rng = g_rand_new_with_seed (51);
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++) {
    size_t n = ns[a];
    float *x = g_new (float, n), *y = g_new (float, n);
    for (size_t i = 0; i < n; i++)
      x[i] = (float) g_rand_double_range (rng, -12.0, 12.0);
    float edges[] = { 0.0f, -0.0f, 1e-30f, -1e-30f, 100.0f, -100.0f, 3e38f, -3e38f };
    for (size_t i = 0; i < n && i < G_N_ELEMENTS (edges); i++)
      x[i] = edges[i];
    g_assert_cmpint (f (y, x, n), ==, DSK_OK);
    for (size_t i = 0; i < n; i++) {
      double want = ref (x[i]);
      double tol = (4.0 + 2.0 * fabs (x[i])) * FLT_EPSILON * fabs (want) +
                   cancel * fabs (x[i]) * FLT_EPSILON + 1e-38;
      if (isnan (want))
        want = 0.0;   /* -3e38 / inf in double: the f32 op gives -0, both mean 0 */
      if (fabs (x[i]) > 1e30)
        tol = fabs (want) * 1e-6 + 1e-30;
      if (!(fabs (y[i] - want) <= tol))
        g_error ("%s(%.9g) = %.9g, want %.9g", name, x[i], y[i], want);
    }
    /* in place */
    g_assert_cmpint (f (x, x, n), ==, DSK_OK);
    for (size_t i = 0; i < n; i++)
      g_assert_true (x[i] == y[i] || (isnan (x[i]) && isnan (y[i])));
    g_free (x);
    g_free (y);
  }
  g_rand_free (rng);
  float v = 1.0f;
  g_assert_cmpint (f (NULL, &v, 1), ==, DSK_ERR_INVALID);
  g_assert_cmpint (f (&v, NULL, 1), ==, DSK_ERR_INVALID);
  g_assert_cmpint (f (&v, &v, 0), ==, DSK_ERR_INVALID);
}

/* silu, gelu (erf form) and quick_gelu within the f32 bounds of check_act. */
static void test_silu (void) { check_act ("silu", dsk_silu_f32_cpu, ref_silu, 0.0); }
static void test_gelu (void) { check_act ("gelu", dsk_gelu_f32_cpu, ref_gelu, 1.0); }
static void test_quick_gelu (void) { check_act ("quick_gelu", dsk_quick_gelu_f32_cpu, ref_quick_gelu, 0.0); }

/* silu(gate) * up against double math, and in place over either input. */
static void
test_swiglu (void)
{
  static const size_t ns[] = { 1, 7, 97, 257, 100003 };
  GRand *rng = g_rand_new_with_seed (52);
  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++) {
    size_t n = ns[a];
    float *g = g_new (float, n), *u = g_new (float, n), *y = g_new (float, n);
    for (size_t i = 0; i < n; i++) {
      g[i] = (float) g_rand_double_range (rng, -12.0, 12.0);
      u[i] = (float) g_rand_double_range (rng, -3.0, 3.0);
    }
    g_assert_cmpint (dsk_swiglu_f32_cpu (y, g, u, n), ==, DSK_OK);
    for (size_t i = 0; i < n; i++) {
      double want = ref_silu (g[i]) * u[i];
      double tol = (6.0 + 2.0 * fabs (g[i])) * FLT_EPSILON * fabs (want) + 1e-30;
      if (!(fabs (y[i] - want) <= tol))
        g_error ("swiglu(%.9g, %.9g) = %.9g, want %.9g", g[i], u[i], y[i], want);
    }
    /* in place over either input */
    g_assert_cmpint (dsk_swiglu_f32_cpu (u, g, u, n), ==, DSK_OK);
    for (size_t i = 0; i < n; i++)
      g_assert_cmpfloat (u[i], ==, y[i]);
    g_free (g);
    g_free (u);
    g_free (y);
  }
  g_rand_free (rng);
  float v = 1.0f;
  g_assert_cmpint (dsk_swiglu_f32_cpu (&v, NULL, &v, 1), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_swiglu_f32_cpu (&v, &v, &v, 0), ==, DSK_ERR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/act/silu", test_silu);
  g_test_add_func ("/kernels/act/gelu", test_gelu);
  g_test_add_func ("/kernels/act/quick-gelu", test_quick_gelu);
  g_test_add_func ("/kernels/act/swiglu", test_swiglu);
  return g_test_run ();
}
