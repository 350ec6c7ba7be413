/* act.c: elementwise activations, the CPU kernels (f32, libm's expf and erff; GELU's erf
 * vectorised with AVX-512). */
#include "dsk-cpu.h"

#include <math.h>

#if DSK_X86_SIMD
/* GELU (erf form) for 16 lanes (@m: the lanes to write). erf(u), u = x / sqrt 2, is a
 * polynomial in u^2 for |u| <= 1 (erf(u) / u, relative error 1.2e-9) and 1 - erfc(|u|) above,
 * erfc(a) = exp(-a^2) Q(1 / a) (Q fits erfc(a) exp(a^2) on [1, 10] to 1.2e-8 relative, in
 * 1 / a - 0.55 where its coefficients cancel least); exp(-a^2) takes a^2 as a rounded part
 * and its FMA remainder. For x < 0 the factor 1 + erf(u) = erfc(|u|) is formed directly, so
 * the far negative tail keeps its relative accuracy. Both fits were made for this file
 * (weighted least squares on Chebyshev nodes against 40-digit erf); in f32 the result stays
 * within the (4 + 2|x|) ulp of act-test.c. Every lane takes the same path, so a result does not
 * depend on where an element falls in a row. */
static inline __attribute__ ((always_inline, target ("avx512f"))) __m512
gelu16 (__m512 x)
{
  static const float P[] = { 1.128379165732347f, -0.37612625839750863f, 0.11283585270818249f,
                             -0.026853816070161456f, 0.005188334501927579f,
                             -0.0008010247656062135f, 7.854026314863936e-05f };
  static const float Q[] = { 0.27629438277678514f, 0.4088342003686584f, -0.18123511085607696f,
                             0.0337223608051383f, 0.04498590652399421f, -0.06924579532432765f,
                             0.05670841731230661f, -0.026451242512202485f,
                             -0.017762629348526935f, 0.0672134954588207f,
                             -0.05203984301553585f, -0.008419145278610193f };
  const __m512 one = _mm512_set1_ps (1.0f);
  const __m512 u = _mm512_mul_ps (x, _mm512_set1_ps ((float) M_SQRT1_2));
  const __m512 a = _mm512_abs_ps (u);
  /* |u| <= 1 */
  const __m512 z = _mm512_mul_ps (u, u);
  __m512 p = _mm512_set1_ps (P[6]);
  for (int i = 5; i >= 0; i--)
    p = _mm512_fmadd_ps (p, z, _mm512_set1_ps (P[i]));
  const __m512 s_small = _mm512_fmadd_ps (u, p, one);
  /* |u| > 1 (clamped to 10, past which erfc is 0 in f32) */
  const __m512 ac = _mm512_min_ps (_mm512_max_ps (a, one), _mm512_set1_ps (10.0f));
  const __m512 v = _mm512_sub_ps (_mm512_div_ps (one, ac), _mm512_set1_ps (0.55f));
  __m512 q = _mm512_set1_ps (Q[11]);
  for (int i = 10; i >= 0; i--)
    q = _mm512_fmadd_ps (q, v, _mm512_set1_ps (Q[i]));
  const __m512 hi = _mm512_mul_ps (ac, ac), lo = _mm512_fmsub_ps (ac, ac, hi);
  const __m512 e = _mm512_mul_ps (dsk_exp16_avx512 (_mm512_sub_ps (_mm512_setzero_ps (), hi)),
                                  _mm512_sub_ps (one, lo));
  const __m512 c = _mm512_mul_ps (_mm512_mul_ps (e, q),
                                  _mm512_maskz_mov_ps (_mm512_cmp_ps_mask (
                                    a, _mm512_set1_ps (10.0f), _CMP_LE_OQ), one));
  const __mmask16 neg = _mm512_cmp_ps_mask (u, _mm512_setzero_ps (), _CMP_LT_OQ);
  const __m512 s_big = _mm512_mask_mov_ps (_mm512_sub_ps (_mm512_set1_ps (2.0f), c), neg, c);
  const __mmask16 small = _mm512_cmp_ps_mask (a, one, _CMP_LE_OQ);
  const __m512 s = _mm512_mask_mov_ps (s_big, small, s_small);
  return _mm512_mul_ps (_mm512_mul_ps (_mm512_set1_ps (0.5f), x), s);
}

static __attribute__ ((target ("avx512f"))) void
gelu_avx512 (float *y, const float *x, size_t n)
{
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16) ((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps (y + i, m, gelu16 (_mm512_maskz_loadu_ps (m, x + i)));
  }
}
#endif

dsk_status
dsk_silu_f32_cpu (float *y, const float *x, size_t n)
{
  if (!y || !x || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] / (1.0f + expf (-x[i]));
  return DSK_OK;
}

dsk_status
dsk_gelu_f32_cpu (float *y, const float *x, size_t n)
{
  if (!y || !x || n == 0)
    return DSK_ERR_INVALID;
#if DSK_X86_SIMD
  if (dsk_cpu_has_avx512 ()) {
    gelu_avx512 (y, x, n);
    return DSK_OK;
  }
#endif
  for (size_t i = 0; i < n; i++)
    y[i] = 0.5f * x[i] * (1.0f + erff (x[i] * (float) M_SQRT1_2));
  return DSK_OK;
}

dsk_status
dsk_quick_gelu_f32_cpu (float *y, const float *x, size_t n)
{
  if (!y || !x || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] / (1.0f + expf (-1.702f * x[i]));
  return DSK_OK;
}

dsk_status
dsk_swiglu_f32_cpu (float *y, const float *gate, const float *up, size_t n)
{
  if (!y || !gate || !up || n == 0)
    return DSK_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    y[i] = g / (1.0f + expf (-g)) * up[i];
  }
  return DSK_OK;
}
