/* convert-test.c: dtype widening against exact values, and the CUDA op against the CPU op. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"

static void
test_bf16_roundtrip (void)
{
  /* every bf16 bit pattern widens and narrows back to itself (NaNs stay NaN) */
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = dsk_bf16_to_f32 ((uint16_t) h);
    if (isnan (f))
      g_assert_true (isnan (dsk_bf16_to_f32 (dsk_f32_to_bf16 (f))));
    else
      g_assert_cmpuint (dsk_f32_to_bf16 (f), ==, h);
  }
  /* ties round to even: 1 + 2^-8 lies halfway between two bf16 values */
  g_assert_cmpuint (dsk_f32_to_bf16 (1.0f + 1.0f / 256.0f), ==, 0x3f80);
  g_assert_cmpuint (dsk_f32_to_bf16 (1.0f + 3.0f / 256.0f), ==, 0x3f82);
}

static void
test_f16_values (void)
{
  g_assert_cmpfloat (dsk_f16_to_f32 (0x3c00), ==, 1.0f);
  g_assert_cmpfloat (dsk_f16_to_f32 (0xc000), ==, -2.0f);
  g_assert_cmpfloat (dsk_f16_to_f32 (0x7bff), ==, 65504.0f);
  g_assert_cmpfloat (dsk_f16_to_f32 (0x0001), ==, ldexpf (1.0f, -24));
  g_assert_true (isinf (dsk_f16_to_f32 (0x7c00)));
  g_assert_true (isnan (dsk_f16_to_f32 (0x7e00)));
}

static void
test_f16_roundtrip (void)
{
  /* every finite half widens and narrows back to itself */
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = dsk_f16_to_f32 ((uint16_t) h);
    if (isnan (f))
      g_assert_true (isnan (dsk_f16_to_f32 (dsk_f32_to_f16 (f))));
    else
      g_assert_cmpuint (dsk_f32_to_f16 (f), ==, h);
  }
  /* halfway cases round to even; overflow and the subnormal range */
  g_assert_cmpuint (dsk_f32_to_f16 (1.0f + ldexpf (1.0f, -11)), ==, 0x3c00);
  g_assert_cmpuint (dsk_f32_to_f16 (1.0f + 3 * ldexpf (1.0f, -11)), ==, 0x3c02);
  g_assert_cmpuint (dsk_f32_to_f16 (65520.0f), ==, 0x7c00);
  g_assert_cmpuint (dsk_f32_to_f16 (65519.0f), ==, 0x7bff);
  g_assert_cmpuint (dsk_f32_to_f16 (ldexpf (1.0f, -25)), ==, 0x0000);
  g_assert_cmpuint (dsk_f32_to_f16 (ldexpf (3.0f, -26)), ==, 0x0001);
  g_assert_cmpuint (dsk_f32_to_f16 (-0.0f), ==, 0x8000);
}

static void
test_f8_values (void)
{
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0x38), ==, 1.0f);
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0x7e), ==, 448.0f);
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0xfe), ==, -448.0f);
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0x01), ==, ldexpf (1.0f, -9));
  g_assert_true (isnan (dsk_f8_e4m3_to_f32 (0x7f)));
}

static void
test_cpu_convert (void)
{
  uint16_t src[3] = { 0x3f80, 0xc000, 0x0000 };
  float dst[3];
  g_assert_cmpint (dsk_convert_to_f32_cpu (dst, src, DSK_BF16, 3), ==, DSK_OK);
  g_assert_cmpfloat (dst[0], ==, 1.0f);
  g_assert_cmpfloat (dst[1], ==, -2.0f);
  g_assert_cmpint (dsk_convert_to_f32_cpu (dst, src, DSK_I64, 1), ==, DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_convert_to_f32_cpu (NULL, src, DSK_BF16, 1), ==, DSK_ERR_INVALID);
}

static void
test_cuda_matches_cpu (void)
{
  if (!dsk_cuda_available ()) {
    g_test_skip ("no CUDA device");
    return;
  }
  /* every bf16 and f8 pattern (NaNs included) through both paths */
  const size_t n = 0x10000;
  uint16_t *src = g_new (uint16_t, n);
  void *d_src = NULL, *d_dst = NULL;
  for (size_t i = 0; i < n; i++)
    src[i] = (uint16_t) i;
  g_assert_cmpint (dsk_cuda_malloc (&d_src, n * 2), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_malloc (&d_dst, n * 4), ==, DSK_OK);
  g_assert_cmpint (dsk_cuda_upload (d_src, src, n * 2, NULL), ==, DSK_OK);
  for (int pass = 0; pass < 2; pass++) {
    dsk_dtype dt = pass == 0 ? DSK_BF16 : DSK_F8_E4M3;
    size_t m = pass == 0 ? n : n * 2;   /* f8: the same bytes read as 2n values */
    float *w = g_new (float, m), *g = g_new (float, m);
    g_assert_cmpint (dsk_convert_to_f32_cpu (w, src, dt, m), ==, DSK_OK);
    if (pass == 1) {
      void *d2 = NULL;
      g_assert_cmpint (dsk_cuda_malloc (&d2, m * 4), ==, DSK_OK);
      g_assert_cmpint (dsk_convert_to_f32_cuda (d2, d_src, dt, m, NULL), ==, DSK_OK);
      g_assert_cmpint (dsk_cuda_download (g, d2, m * 4, NULL), ==, DSK_OK);
      dsk_cuda_free (d2);
    } else {
      g_assert_cmpint (dsk_convert_to_f32_cuda (d_dst, d_src, dt, m, NULL), ==, DSK_OK);
      g_assert_cmpint (dsk_cuda_download (g, d_dst, m * 4, NULL), ==, DSK_OK);
    }
    for (size_t i = 0; i < m; i++)
      g_assert_true ((isnan (w[i]) && isnan (g[i])) || w[i] == g[i]);
    g_free (w);
    g_free (g);
  }
  dsk_cuda_free (d_src);
  dsk_cuda_free (d_dst);
  g_free (src);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/convert/bf16-roundtrip", test_bf16_roundtrip);
  g_test_add_func ("/kernels/convert/f16-values", test_f16_values);
  g_test_add_func ("/kernels/convert/f16-roundtrip", test_f16_roundtrip);
  g_test_add_func ("/kernels/convert/f8-values", test_f8_values);
  g_test_add_func ("/kernels/convert/cpu", test_cpu_convert);
  g_test_add_func ("/kernels/convert/cuda-matches-cpu", test_cuda_matches_cpu);
  return g_test_run ();
}
