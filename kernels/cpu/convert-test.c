/* convert-test.c: the scalar dtype conversions against exact values, and the CPU array kernel
 * against the scalar conversions. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"
#include "dsk-cpu.h"

/* bf16 widening is exact and narrowing rounds to nearest even. */
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

/* Known f16 values: one, a negative, the largest finite, the smallest subnormal, inf, NaN. */
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

/* Every f16 survives f32 and back; ties, overflow and subnormals round as IEEE says. */
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

/* Known e4m3 values: one, +-448 (the largest), the smallest subnormal, NaN (no inf). */
static void
test_f8_values (void)
{
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0x38), ==, 1.0f);
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0x7e), ==, 448.0f);
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0xfe), ==, -448.0f);
  g_assert_cmpfloat (dsk_f8_e4m3_to_f32 (0x01), ==, ldexpf (1.0f, -9));
  g_assert_true (isnan (dsk_f8_e4m3_to_f32 (0x7f)));
}

/* The array kernel's plain cases and its refusals (unknown dtype, NULL destination). */
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
  g_assert_cmpint (dsk_convert_to_f32_cpu (dst, NULL, DSK_BF16, 1), ==, DSK_ERR_INVALID);
}

/* Every bf16, f16 and f8 bit pattern through the array kernel (and the host helper of
 * backend.h) gives the scalar conversion's value; f32 is a plain copy. */
static void
test_cpu_all_patterns (void)
{
  const size_t n = 0x10000;
  uint16_t *src = g_new (uint16_t, n);
  float *got = g_new (float, 2 * n), *host = g_new (float, 2 * n);

  for (size_t i = 0; i < n; i++)
    src[i] = (uint16_t) i;
  for (int pass = 0; pass < 3; pass++) {
    const dsk_dtype dt = pass == 0 ? DSK_BF16 : pass == 1 ? DSK_F16 : DSK_F8_E4M3;
    const size_t m = dt == DSK_F8_E4M3 ? 2 * n : n;   /* f8: the same bytes read as 2n values */
    g_assert_cmpint (dsk_convert_to_f32_cpu (got, src, dt, m), ==, DSK_OK);
    g_assert_cmpint (dsk_convert_to_f32 (host, src, dt, m), ==, DSK_OK);
    for (size_t i = 0; i < m; i++) {
      float want = dt == DSK_BF16 ? dsk_bf16_to_f32 (src[i])
                 : dt == DSK_F16  ? dsk_f16_to_f32 (src[i])
                                  : dsk_f8_e4m3_to_f32 (((const uint8_t *) src)[i]);
      if (!((isnan (want) && isnan (got[i])) || memcmp (&want, &got[i], sizeof want) == 0))
        g_error ("dtype %d element %zu: %.9g, want %.9g", dt, i, got[i], want);
      g_assert_true ((isnan (want) && isnan (host[i])) ||
                     memcmp (&want, &host[i], sizeof want) == 0);
    }
  }
  /* f32: the bits unchanged, NaN payloads and -0 included */
  const float f[4] = { -0.0f, 1.5f, NAN, -INFINITY };
  float g[4];
  g_assert_cmpint (dsk_convert_to_f32_cpu (g, f, DSK_F32, 4), ==, DSK_OK);
  g_assert_cmpmem (g, sizeof g, f, sizeof f);
  g_free (src);
  g_free (got);
  g_free (host);
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
  g_test_add_func ("/kernels/convert/cpu-all-patterns", test_cpu_all_patterns);
  return g_test_run ();
}
