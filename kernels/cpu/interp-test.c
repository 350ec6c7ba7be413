/* interp-test.c: position-table resampling against values torch computed.
 *
 * The expected numbers were printed by torch 2.15 (CPU, f32):
 *   F.interpolate(x[1, 1, 4, 5], size, mode="bicubic", antialias=True, align_corners=False)
 *   F.interpolate(r[1, 1, 7], n, mode="linear", align_corners=False)
 * for the x and r below. Shrinking, enlarging and mixed axes are covered; the engine's golden
 * test checks the same ops on the model's real tables. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"
#include "dsk-cpu.h"

static const float img[4 * 5] = {
  0, 1, 4, 9, 16,
  2, 3, -5, 7, 1,
  0.5f, 0.25f, 8, -2, 3,
  1, 1, 1, 1, 1,
};

static const float want_3x2[] = { 1.01688206f, 8.25332737f, 1.50763643f, 1.85142148f,
                                  1.32146263f, 1.27792525f };
static const float want_6x7[] = {
  -0.189831063f, 0.180420682f, 1.71002817f, 4.59210396f, 7.56912708f, 12.8931694f,
  17.4444294f, 0.966876149f, 1.83640194f, 1.15078902f, -1.0f, 6.16043663f, 9.32931423f,
  8.83723736f, 1.88007951f, 2.84531713f, 0.947229743f, -3.875f, 3.63072038f, 4.04182529f,
  0.0829953104f, 0.681409359f, 0.200427294f, 2.27563024f, 6.73611212f, 0.688014865f,
  0.0449314266f, 2.92361212f, 0.687607169f, 0.2654396f, 1.75300145f, 5.05882359f,
  0.425397813f, -0.0187381469f, 2.23358107f, 1.03193665f, 1.07599509f, 0.907980919f,
  0.539472997f, 1.04728043f, 1.09622419f, 0.84925884f };
static const float want_2x9[] = {
  0.867852688f, 1.23193932f, 1.81804967f, 0.938448846f, 0.46280992f, 4.07210875f,
  7.43234062f, 8.05557156f, 8.20593834f, 0.930292726f, 0.833179116f, 0.789687157f,
  2.1465826f, 3.38016534f, 1.52800035f, 0.00205752254f, 0.882018149f, 1.46646154f };

static void
check_close (const float *got, const float *want, size_t n, float atol)
{
  for (size_t i = 0; i < n; i++)
    if (fabsf (got[i] - want[i]) > atol)
      g_error ("element %zu: %.9g, want %.9g", i, got[i], want[i]);
}

/* Resizes img with @channels copies of every value (channel c scaled by c + 1), so the
 * channels-last layout is checked too. */
static void
run_bicubic (size_t ho, size_t wo, const float *want)
{
  const size_t ch = 3;
  float x[4 * 5 * 3], y[9 * 9 * 3], w1[9 * 9 * 3], work[4 * 9 * 3];
  for (size_t i = 0; i < 20; i++)
    for (size_t c = 0; c < ch; c++)
      x[i * ch + c] = img[i] * (float) (c + 1);
  g_assert_cmpint (dsk_resize_bicubic_aa_f32_cpu (y, x, 4, 5, ho, wo, ch, work,
                                                  G_N_ELEMENTS (work)), ==, DSK_OK);
  for (size_t c = 0; c < ch; c++) {
    for (size_t i = 0; i < ho * wo; i++)
      w1[i] = y[i * ch + c] / (float) (c + 1);
    check_close (w1, want, ho * wo, 2e-6f * 17.0f);
  }
}

/* Shrinking both axes: the antialiased (stretched) kernel against torch. */
static void
test_bicubic_shrink (void)
{
  run_bicubic (3, 2, want_3x2);
}

/* Enlarging both axes: the plain Keys kernel with border taps cut, against torch. */
static void
test_bicubic_enlarge (void)
{
  run_bicubic (6, 7, want_6x7);
}

/* One axis shrunk and one enlarged: the two passes pick their kernels independently. */
static void
test_bicubic_mixed (void)
{
  run_bicubic (2, 9, want_2x9);
}

/* Same size is the identity, and a constant plane stays constant at any size. */
static void
test_bicubic_identity_and_constant (void)
{
  float x[4 * 5], y[16 * 16], work[16 * 16];
  g_assert_cmpint (dsk_resize_bicubic_aa_f32_cpu (y, img, 4, 5, 4, 5, 1, work, 20), ==,
                   DSK_OK);
  g_assert_cmpmem (y, sizeof img, img, sizeof img);
  /* the taps are renormalised, so a constant plane stays constant at any size */
  for (int i = 0; i < 20; i++)
    x[i] = 0.75f;
  for (size_t s = 1; s <= 16; s += 3) {
    g_assert_cmpint (dsk_resize_bicubic_aa_f32_cpu (y, x, 4, 5, s, s, 1, work,
                                                    G_N_ELEMENTS (work)), ==, DSK_OK);
    for (size_t i = 0; i < s * s; i++)
      g_assert_cmpfloat (fabsf (y[i] - 0.75f), <=, 1e-6f);
  }
}

/* Linear resampling of rows (two channels) against torch, shrinking, enlarging, identity. */
static void
test_linear (void)
{
  static const float r[7] = { 0, 1, 4, 9, 16, 2, -3 };
  static const float want4[] = { 0.375f, 4.625f, 15.125f, -1.125f };
  static const float want11[] = { 0.0f, 0.454545438f, 1.27272701f, 3.18181825f, 5.81818104f,
                                  9.0f, 13.4545441f, 12.1818218f, 3.27272606f, -0.727272511f,
                                  -3.0f };
  float x[7 * 2], y[11 * 2], c0[11];
  for (int i = 0; i < 7; i++) {
    x[2 * i] = r[i];
    x[2 * i + 1] = -2.0f * r[i];
  }
  g_assert_cmpint (dsk_resize_linear_f32_cpu (y, x, 7, 4, 2), ==, DSK_OK);
  for (int i = 0; i < 4; i++) {
    c0[i] = y[2 * i];
    g_assert_cmpfloat (fabsf (y[2 * i + 1] + 2.0f * y[2 * i]), <=, 1e-5f);
  }
  check_close (c0, want4, 4, 1e-5f);
  g_assert_cmpint (dsk_resize_linear_f32_cpu (y, x, 7, 11, 2), ==, DSK_OK);
  for (int i = 0; i < 11; i++)
    c0[i] = y[2 * i];
  check_close (c0, want11, 11, 1e-5f);
  /* same size: the identity */
  g_assert_cmpint (dsk_resize_linear_f32_cpu (y, x, 7, 7, 2), ==, DSK_OK);
  g_assert_cmpmem (y, 14 * sizeof (float), x, 14 * sizeof (float));
}

/* NULL arrays, zero sizes and a workspace too small are refused. */
static void
test_invalid (void)
{
  float x[4] = { 0 }, y[4], work[4];
  g_assert_cmpint (dsk_resize_bicubic_aa_f32_cpu (NULL, x, 2, 2, 2, 2, 1, work, 4), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_resize_bicubic_aa_f32_cpu (y, x, 2, 2, 2, 2, 0, work, 4), ==,
                   DSK_ERR_INVALID);
  /* too little workspace */
  g_assert_cmpint (dsk_resize_bicubic_aa_f32_cpu (y, x, 2, 2, 1, 4, 1, work, 4), ==,
                   DSK_ERR_INVALID);
  g_assert_cmpint (dsk_resize_linear_f32_cpu (y, x, 0, 2, 1), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_resize_linear_f32_cpu (y, NULL, 2, 2, 1), ==, DSK_ERR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/interp/bicubic-shrink", test_bicubic_shrink);
  g_test_add_func ("/kernels/interp/bicubic-enlarge", test_bicubic_enlarge);
  g_test_add_func ("/kernels/interp/bicubic-mixed", test_bicubic_mixed);
  g_test_add_func ("/kernels/interp/bicubic-identity-constant",
                   test_bicubic_identity_and_constant);
  g_test_add_func ("/kernels/interp/linear", test_linear);
  g_test_add_func ("/kernels/interp/invalid", test_invalid);
  return g_test_run ();
}
