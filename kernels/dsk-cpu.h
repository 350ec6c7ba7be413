/* dsk-cpu.h: helpers shared by the CPU kernels (internal; the engine includes only dsk.h).
 *
 * SIMD code is compiled per function with __attribute__((target)) and chosen at run time, so
 * one binary runs everywhere: dsk_cpu_has_avx2() says whether the AVX2+FMA+F16C variants may
 * run. Every op also has a plain C path, which is what non-x86 builds use. */
#ifndef DSK_CPU_H
#define DSK_CPU_H

#include "dsk.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DSK_X86_SIMD 1
#include <immintrin.h>
#define DSK_TARGET_AVX2 __attribute__ ((target ("avx2,fma,f16c")))
#else
#define DSK_X86_SIMD 0
#endif

/* Nonzero when the CPU runs AVX2, FMA and F16C and the plain path is not forced. */
int dsk_cpu_has_avx2 (void);

/* Test and benchmark hooks, not for the engine: force the plain C paths (@on nonzero) and
 * pick the matmul path for n > 8 (0: automatic, 1: the direct blocked kernel, 2: widen +
 * BLAS, which falls back to 1 without OpenBLAS). Not thread-safe: set before running ops. */
void dsk_cpu_force_generic (int on);
void dsk_matmul_force_path (int path);
/* Same for attention: 0 automatic, 1 streaming kernel, 2 BLAS (falls back to 1 without it). */
void dsk_attention_force_path (int path);

/* The calling thread's scratch of at least @n_floats: grown as needed, kept for the next call,
 * freed when the thread exits or by dsk_cpu_scratch_release (dsk_matmul_scratch_release_cpu
 * publicly). NULL when memory is short: callers then take a path that needs none. An op must
 * not hold it across a call to another op that uses it. */
float *dsk_cpu_scratch (size_t n_floats);
void dsk_cpu_scratch_release (void);

/* Whether @dt is a weight dtype the f32 ops read (F32, BF16, F16). */
static inline int
dsk_cpu_weight_dtype_ok (dsk_dtype dt)
{
  return dt == DSK_F32 || dt == DSK_BF16 || dt == DSK_F16;
}

/* Element @i of a weight array of dtype @dt (one of the above) as f32. */
static inline float
dsk_cpu_weight_at (const void *w, dsk_dtype dt, size_t i)
{
  switch (dt) {
    case DSK_BF16: return dsk_bf16_to_f32 (((const uint16_t *) w)[i]);
    case DSK_F16: return dsk_f16_to_f32 (((const uint16_t *) w)[i]);
    default: return ((const float *) w)[i];
  }
}


#if DSK_X86_SIMD
/* exp of 8 floats (Cephes' polynomial, about 2 ulp over the range; inputs below -87.3
 * give 0, which is what masked scores need). */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 __m256
dsk_exp8_avx2 (__m256 x)
{
  const __m256 lo = _mm256_set1_ps (-87.3365447505531f), hi = _mm256_set1_ps (88.0f);
  __m256 under = _mm256_cmp_ps (x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps (_mm256_max_ps (x, lo), hi);
  __m256 fx = _mm256_round_ps (_mm256_mul_ps (x, _mm256_set1_ps (1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  /* x - fx * ln2 in two parts, so the reduced argument keeps its low bits */
  x = _mm256_fnmadd_ps (fx, _mm256_set1_ps (0.693359375f), x);
  x = _mm256_fnmadd_ps (fx, _mm256_set1_ps (-2.12194440e-4f), x);
  __m256 p = _mm256_set1_ps (1.9875691500e-4f);
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (1.3981999507e-3f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (8.3334519073e-3f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (4.1665795894e-2f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (1.6666665459e-1f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (5.0000001201e-1f));
  p = _mm256_fmadd_ps (p, _mm256_mul_ps (x, x), _mm256_add_ps (x, _mm256_set1_ps (1.0f)));
  __m256i e = _mm256_slli_epi32 (_mm256_add_epi32 (_mm256_cvtps_epi32 (fx), _mm256_set1_epi32 (127)), 23);
  __m256 r = _mm256_mul_ps (p, _mm256_castsi256_ps (e));
  return _mm256_andnot_ps (under, r);
}
#endif

#endif /* DSK_CPU_H */
