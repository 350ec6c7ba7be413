/* quant.c: the Q8 and Q4 weight formats, activation quantization and the dot products of
 * quant.h. */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "dsk-cpu.h"

#define QB 32   /* weights per block */

static inline size_t
round64 (size_t n)
{
  return (n + 63) / 64 * 64;
}

/* The position of weight @j of block @b within its row's codes, in quads of 4 weights per
 * block and group of 16 blocks (quant.h): the byte (Q8, and the activations' order) and, for
 * Q4, the byte and nibble. */
static inline size_t
quad_pos (size_t nb, size_t b, int j)
{
  const size_t g0 = b / 16 * 16, ng = nb - g0 < 16 ? nb - g0 : 16;
  return g0 * QB + (size_t) (j / 4) * 4 * ng + (b - g0) * 4 + (size_t) (j % 4);
}

static inline size_t
q4_pos (size_t nb, size_t b, int j, int *high)
{
  const size_t g0 = b / 16 * 16, ng = nb - g0 < 16 ? nb - g0 : 16;
  const int k = j / 4;
  *high = k >= 4;
  return g0 * 16 + (size_t) (k % 4) * 4 * ng + (b - g0) * 4 + (size_t) (j % 4);
}

/* ---- weights ---- */

/* The weights of a group of up to 16 blocks are quantized together, one block per lane:
 * x[j][l] is weight j of block l. Every step is elementwise over the lanes, so the compiler
 * vectorises the loops over l; the bodies are inlined into a plain and an AVX-512 build
 * (quant_group_generic, quant_group_avx512), the latter rounding scales to f16 with F16C. */

/* libm's fminf / fmaxf are calls (NaN rules) that stop the vectorizer; the values here are
 * finite (checked by the caller) */
#define MINF(a, b) ((a) < (b) ? (a) : (b))
#define MAXF(a, b) ((a) > (b) ? (a) : (b))
#define ABSF(a) ((a) < 0.0f ? -(a) : (a))

typedef struct {
  float x[QB][16];
  float q[QB][16];           /* the codes, as floats while they are chosen */
  uint16_t dh[16], mh[16];   /* f16 scale and (Q4) minimum */
} qgroup;

/* bits[l] = @v[l] rounded to f16, r[l] = that value back in f32. */
typedef void (*f16_round_fn) (const float v[16], uint16_t bits[16], float r[16]);

static inline void
f16_round_generic (const float v[16], uint16_t bits[16], float r[16])
{
  for (int l = 0; l < 16; l++) {
    bits[l] = dsk_f32_to_f16 (v[l]);
    r[l] = dsk_f16_to_f32 (bits[l]);
  }
}

/* Q8: the scale from each block's largest magnitude, codes round (x / d) in [-127, 127].
 * (A least-squares refit of the scale changed the error by under 0.1 %.) */
static inline __attribute__ ((always_inline)) void
q8_group_body (qgroup *g, f16_round_fn f16_round)
{
  float amax[16] = { 0 }, v[16], d[16];
  for (int j = 0; j < QB; j++)
    for (int l = 0; l < 16; l++)
      amax[l] = MAXF (amax[l], ABSF (g->x[j][l]));
  for (int l = 0; l < 16; l++)
    v[l] = amax[l] / 127.0f;
  f16_round (v, g->dh, d);
  for (int l = 0; l < 16; l++)
    v[l] = d[l] > 0.0f ? 1.0f / d[l] : 0.0f;
  for (int j = 0; j < QB; j++)
    for (int l = 0; l < 16; l++)
      g->q[j][l] = MINF (MAXF (rintf (g->x[j][l] * v[l]), -127.0f), 127.0f);
}

/* Q4 codes round ((x - m) / d) in [0, 15] and the squared error of the block they give. */
static inline __attribute__ ((always_inline)) void
q4_codes (const qgroup *g, const float d[16], const float m[16], float q[QB][16],
          float err[16])
{
  float inv[16];
  for (int l = 0; l < 16; l++) {
    inv[l] = d[l] > 0.0f ? 1.0f / d[l] : 0.0f;
    err[l] = 0.0f;
  }
  for (int j = 0; j < QB; j++)
    for (int l = 0; l < 16; l++) {
      const float c = MINF (MAXF (rintf ((g->x[j][l] - m[l]) * inv[l]), 0.0f), 15.0f);
      const float r = d[l] * c + m[l] - g->x[j][l];
      q[j][l] = c;
      err[l] += r * r;
    }
}

/* Q4: scale and minimum from each block's range, then up to four rounds of the least-squares
 * line through (code, value) with the codes reassigned, each kept while it lowers the block's
 * squared error (the idea of llama.cpp's k-quants: the range is rarely the best grid for 16
 * levels). */
static inline __attribute__ ((always_inline)) void
q4_group_body (qgroup *g, f16_round_fn f16_round)
{
  float lo[16], hi[16], d[16], m[16], err[16], v[16];
  float q2[QB][16];
  int active[16];
  for (int l = 0; l < 16; l++)
    lo[l] = hi[l] = g->x[0][l];
  for (int j = 1; j < QB; j++)
    for (int l = 0; l < 16; l++) {
      lo[l] = MINF (lo[l], g->x[j][l]);
      hi[l] = MAXF (hi[l], g->x[j][l]);
    }
  for (int l = 0; l < 16; l++) {
    v[l] = (hi[l] - lo[l]) / 15.0f;
    active[l] = 1;
  }
  f16_round (v, g->dh, d);
  f16_round (lo, g->mh, m);
  q4_codes (g, d, m, g->q, err);
  for (int it = 0; it < 4; it++) {
    float sq[16] = { 0 }, sv[16] = { 0 }, sqq[16] = { 0 }, sqv[16] = { 0 }, e2[16];
    float d2[16], m2[16], dd[16], mm[16];
    uint16_t dh2[16], mh2[16];
    for (int j = 0; j < QB; j++)
      for (int l = 0; l < 16; l++) {
        const float c = g->q[j][l], x = g->x[j][l];
        sq[l] += c;
        sv[l] += x;
        sqq[l] += c * c;
        sqv[l] += c * x;
      }
    int any = 0;
    for (int l = 0; l < 16; l++) {
      const float den = QB * sqq[l] - sq[l] * sq[l];
      dd[l] = den > 0.0f ? (QB * sqv[l] - sq[l] * sv[l]) / den : 0.0f;
      active[l] &= dd[l] > 0.0f && err[l] > 0.0f;
      if (!active[l])
        dd[l] = 0.0f;
      mm[l] = active[l] ? (sv[l] - dd[l] * sq[l]) / QB : 0.0f;
      any |= active[l];
    }
    if (!any)
      break;
    f16_round (dd, dh2, d2);
    f16_round (mm, mh2, m2);
    q4_codes (g, d2, m2, q2, e2);
    for (int l = 0; l < 16; l++) {
      active[l] &= e2[l] < err[l];
      if (!active[l])
        continue;
      err[l] = e2[l];
      g->dh[l] = dh2[l];
      g->mh[l] = mh2[l];
    }
    for (int j = 0; j < QB; j++)
      for (int l = 0; l < 16; l++)
        g->q[j][l] = active[l] ? q2[j][l] : g->q[j][l];
  }
}

static void
quant_group_generic (qgroup *g, dsk_dtype q)
{
  if (q == DSK_Q8)
    q8_group_body (g, f16_round_generic);
  else
    q4_group_body (g, f16_round_generic);
}

#if DSK_X86_SIMD
/* The same two bodies written out in AVX-512 (the compiler does not vectorise the lane logic
 * of the plain ones well): one register holds weight j of the 16 blocks. */
#define QUANT_TARGET "avx512f,avx512vl,avx512bw,avx512dq,f16c,fma"

static inline __attribute__ ((always_inline, target (QUANT_TARGET))) __m512
f16_round_v (__m512 v, __m256i *bits)
{
  *bits = _mm512_cvtps_ph (v, _MM_FROUND_TO_NEAREST_INT);
  return _mm512_cvtph_ps (*bits);
}

static inline __attribute__ ((always_inline, target (QUANT_TARGET))) __m512
clamp_round (__m512 v, float lo, float hi)
{
  v = _mm512_roundscale_ps (v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_min_ps (_mm512_max_ps (v, _mm512_set1_ps (lo)), _mm512_set1_ps (hi));
}

static inline __attribute__ ((always_inline, target (QUANT_TARGET))) __m512
safe_inv (__m512 d)
{
  return _mm512_maskz_div_ps (_mm512_cmp_ps_mask (d, _mm512_setzero_ps (), _CMP_GT_OQ),
                              _mm512_set1_ps (1.0f), d);
}

/* Q4 codes for (d, m) into q and the blocks' squared errors. */
static inline __attribute__ ((always_inline, target (QUANT_TARGET))) __m512
q4_codes_v (const __m512 x[QB], __m512 d, __m512 m, __m512 q[QB])
{
  const __m512 inv = safe_inv (d);
  __m512 err = _mm512_setzero_ps ();
  for (int j = 0; j < QB; j++) {
    q[j] = clamp_round (_mm512_mul_ps (_mm512_sub_ps (x[j], m), inv), 0.0f, 15.0f);
    const __m512 r = _mm512_sub_ps (_mm512_fmadd_ps (d, q[j], m), x[j]);
    err = _mm512_fmadd_ps (r, r, err);
  }
  return err;
}

static __attribute__ ((target (QUANT_TARGET))) void
quant_group_avx512 (qgroup *g, dsk_dtype qt)
{
  __m512 x[QB], q[QB];
  __m256i dh, mh;
  for (int j = 0; j < QB; j++)
    x[j] = _mm512_loadu_ps (g->x[j]);
  if (qt == DSK_Q8) {
    __m512 amax = _mm512_setzero_ps ();
    for (int j = 0; j < QB; j++)
      amax = _mm512_max_ps (amax, _mm512_abs_ps (x[j]));
    const __m512 inv = safe_inv (f16_round_v (_mm512_div_ps (amax, _mm512_set1_ps (127.0f)),
                                              &dh));
    for (int j = 0; j < QB; j++)
      _mm512_storeu_ps (g->q[j], clamp_round (_mm512_mul_ps (x[j], inv), -127.0f, 127.0f));
    _mm256_storeu_si256 ((__m256i *) g->dh, dh);
    return;
  }
  __m512 lo = x[0], hi = x[0];
  for (int j = 1; j < QB; j++) {
    lo = _mm512_min_ps (lo, x[j]);
    hi = _mm512_max_ps (hi, x[j]);
  }
  __m512 d = f16_round_v (_mm512_div_ps (_mm512_sub_ps (hi, lo), _mm512_set1_ps (15.0f)), &dh);
  __m512 m = f16_round_v (lo, &mh);
  __m512 err = q4_codes_v (x, d, m, q);
  __mmask16 active = _mm512_cmp_ps_mask (err, _mm512_setzero_ps (), _CMP_GT_OQ);
  const __m512 n = _mm512_set1_ps ((float) QB);
  for (int it = 0; it < 4 && active; it++) {
    __m512 sq = _mm512_setzero_ps (), sv = sq, sqq = sq, sqv = sq, q2[QB];
    for (int j = 0; j < QB; j++) {
      sq = _mm512_add_ps (sq, q[j]);
      sv = _mm512_add_ps (sv, x[j]);
      sqq = _mm512_fmadd_ps (q[j], q[j], sqq);
      sqv = _mm512_fmadd_ps (q[j], x[j], sqv);
    }
    const __m512 den = _mm512_fmsub_ps (n, sqq, _mm512_mul_ps (sq, sq));
    const __m512 dd = _mm512_div_ps (_mm512_fmsub_ps (n, sqv, _mm512_mul_ps (sq, sv)), den);
    active &= _mm512_cmp_ps_mask (den, _mm512_setzero_ps (), _CMP_GT_OQ) &
              _mm512_cmp_ps_mask (dd, _mm512_setzero_ps (), _CMP_GT_OQ);
    const __m512 ddm = _mm512_maskz_mov_ps (active, dd);
    __m256i dh2, mh2;
    const __m512 d2 = f16_round_v (ddm, &dh2);
    const __m512 m2 = f16_round_v (_mm512_maskz_mov_ps (active, _mm512_div_ps (
                                     _mm512_fnmadd_ps (ddm, sq, sv), n)), &mh2);
    const __m512 e2 = q4_codes_v (x, d2, m2, q2);
    active &= _mm512_cmp_ps_mask (e2, err, _CMP_LT_OQ);
    err = _mm512_mask_mov_ps (err, active, e2);
    dh = _mm256_mask_mov_epi16 (dh, active, dh2);
    mh = _mm256_mask_mov_epi16 (mh, active, mh2);
    for (int j = 0; j < QB; j++)
      q[j] = _mm512_mask_mov_ps (q[j], active, q2[j]);
  }
  for (int j = 0; j < QB; j++)
    _mm512_storeu_ps (g->q[j], q[j]);
  _mm256_storeu_si256 ((__m256i *) g->dh, dh);
  _mm256_storeu_si256 ((__m256i *) g->mh, mh);
}
#endif

/* Whether the f16 value @h is finite. */
static inline int
f16_finite (uint16_t h)
{
  return (h & 0x7c00u) != 0x7c00u;
}

int
dsk_quant_row (void *dst, dsk_dtype q, const void *src, dsk_dtype src_dtype, size_t cols)
{
  const size_t nb = cols / QB;
  uint8_t *codes = dst;
  uint16_t *scales = (uint16_t *) (codes + (q == DSK_Q8 ? cols : cols / 2));
  float row[16 * QB];
  qgroup g;
  int ok = 1;

  for (size_t b0 = 0; b0 < nb; b0 += 16) {
    const size_t ng = nb - b0 < 16 ? nb - b0 : 16;
    dsk_convert_to_f32_cpu (row, (const char *) src + b0 * QB * dsk_dtype_size (src_dtype),
                            src_dtype, ng * QB);
    for (size_t l = 0; l < 16; l++)
      for (int j = 0; j < QB; j++) {
        const float v = l < ng ? row[l * QB + (size_t) j] : 0.0f;
        ok &= isfinite (v) != 0;
        g.x[j][l] = v;
      }
#if DSK_X86_SIMD
    if (dsk_cpu_has_avx512 ())
      quant_group_avx512 (&g, q);
    else
#endif
      quant_group_generic (&g, q);
    for (size_t l = 0; l < ng; l++) {
      const size_t b = b0 + l;
      scales[b] = g.dh[l];
      ok &= f16_finite (g.dh[l]);
      if (q == DSK_Q4) {
        scales[nb + b] = g.mh[l];
        ok &= f16_finite (g.mh[l]);
      }
      for (int j = 0; j < QB; j++) {
        if (q == DSK_Q8) {
          codes[quad_pos (nb, b, j)] = (uint8_t) ((int) g.q[j][l] + 128);
        } else if (j < 16) {   /* weights j and j + 16 share a byte */
          int high;
          codes[q4_pos (nb, b, j, &high)] = (uint8_t) ((int) g.q[j][l] |
                                                       (int) g.q[j + 16][l] << 4);
        }
      }
    }
  }
  return ok;
}

#if DSK_X86_SIMD
/* A block's codes are 8 (Q8) or 4 (Q4) dwords, ng dwords apart within the group: one gather
 * each, then widened, offset and scaled 8 at a time. */
static DSK_TARGET_AVX2 void
dequant_row_avx2 (float *dst, const uint8_t *codes, const uint16_t *scales, dsk_dtype q,
                  size_t cols)
{
  const size_t nb = cols / QB;
  for (size_t b0 = 0; b0 < nb; b0 += 16) {
    const int ng = nb - b0 < 16 ? (int) (nb - b0) : 16;
    const int *base = (const int *) (codes + b0 * (q == DSK_Q8 ? QB : QB / 2));
    for (int l = 0; l < ng; l++) {
      const size_t b = b0 + (size_t) l;
      const __m256 d = _mm256_set1_ps (dsk_f16_to_f32 (scales[b]));
      float *o = dst + b * QB;
      if (q == DSK_Q8) {
        const __m256i idx = _mm256_add_epi32 (_mm256_mullo_epi32 (
          _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32 (ng)),
          _mm256_set1_epi32 (l));
        const __m256i v = _mm256_i32gather_epi32 (base, idx, 4);   /* codes 0 .. 31 */
        for (int h = 0; h < 4; h++) {
          const __m128i part = h < 2 ? _mm256_castsi256_si128 (v) : _mm256_extracti128_si256 (v, 1);
          const __m256i c = _mm256_cvtepu8_epi32 (h % 2 ? _mm_srli_si128 (part, 8) : part);
          const __m256 f = _mm256_cvtepi32_ps (_mm256_sub_epi32 (c, _mm256_set1_epi32 (128)));
          _mm256_storeu_ps (o + 8 * h, _mm256_mul_ps (d, f));
        }
      } else {
        const __m256 m = _mm256_set1_ps (dsk_f16_to_f32 (scales[nb + b]));
        const __m128i idx = _mm_add_epi32 (_mm_mullo_epi32 (_mm_setr_epi32 (0, 1, 2, 3),
                                                            _mm_set1_epi32 (ng)),
                                           _mm_set1_epi32 (l));
        const __m128i v = _mm_i32gather_epi32 (base, idx, 4);
        const __m128i nib = _mm_set1_epi8 (0x0f);
        const __m128i lo = _mm_and_si128 (v, nib), hi = _mm_and_si128 (_mm_srli_epi16 (v, 4), nib);
        for (int h = 0; h < 4; h++) {
          const __m128i part = h < 2 ? lo : hi;   /* weights 0 .. 15, then 16 .. 31 */
          const __m256i c = _mm256_cvtepu8_epi32 (h % 2 ? _mm_srli_si128 (part, 8) : part);
          _mm256_storeu_ps (o + 8 * h, _mm256_fmadd_ps (d, _mm256_cvtepi32_ps (c), m));
        }
      }
    }
  }
}
#endif

static void
dequant_row_generic (float *dst, const void *src, dsk_dtype q, size_t cols)
{
  const size_t nb = cols / QB;
  const uint8_t *codes = src;
  const uint16_t *scales = (const uint16_t *) (codes + (q == DSK_Q8 ? cols : cols / 2));

  for (size_t b = 0; b < nb; b++) {
    const float d = dsk_f16_to_f32 (scales[b]);
    float *o = dst + b * QB;
    if (q == DSK_Q8) {
      for (int j = 0; j < QB; j++)
        o[j] = d * (float) (codes[quad_pos (nb, b, j)] - 128);   /* exact */
    } else {
      const float m = dsk_f16_to_f32 (scales[nb + b]);
      for (int j = 0; j < QB; j++) {
        int high;
        const uint8_t byte = codes[q4_pos (nb, b, j, &high)];
        o[j] = d * (float) (high ? byte >> 4 : byte & 15) + m;
      }
    }
  }
}

void
dsk_dequant_row (float *dst, const void *src, dsk_dtype q, size_t cols)
{
#if DSK_X86_SIMD
  if (dsk_cpu_has_avx2 ()) {
    dequant_row_avx2 (dst, src, (const uint16_t *) ((const uint8_t *) src +
                                                    (q == DSK_Q8 ? cols : cols / 2)), q, cols);
    return;
  }
#endif
  dequant_row_generic (dst, src, q, cols);
}

/* ---- activations ---- */

size_t
dsk_qx_row_bytes (size_t cols)
{
  return round64 (cols) + round64 (2 * sizeof (float) * (cols / QB));
}

void
dsk_qx_quantize (void *dst, const float *x, size_t cols)
{
  const size_t nb = cols / QB;
  int8_t *codes = dst;
  float *dx = (float *) ((char *) dst + round64 (cols)), *sx = dx + nb;

  for (size_t b = 0; b < nb; b++) {
    const float *v = x + b * QB;
    float amax = 0.0f;
    for (int j = 0; j < QB; j++)
      amax = fabsf (v[j]) > amax ? fabsf (v[j]) : amax;
    const float d = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QB; j++) {
      const int c = (int) rintf (v[j] * inv);   /* |c| <= 127 by construction */
      codes[quad_pos (nb, b, j)] = (int8_t) c;
      sum += c;
    }
    dx[b] = d;
    sx[b] = d * (float) sum;
  }
}

/* ---- dot products ---- */

static void
qdot_generic (const void *const *w, int n_rows, const void *xqv, size_t cols, dsk_dtype q,
              float *out)
{
  const size_t nb = cols / QB, code_bytes = q == DSK_Q8 ? cols : cols / 2;
  const int8_t *xq = xqv;
  const float *dx = (const float *) ((const char *) xqv + round64 (cols)), *sx = dx + nb;

  for (int r = 0; r < n_rows; r++) {
    const uint8_t *codes = w[r];
    const uint16_t *scales = (const uint16_t *) (codes + code_bytes);
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++) {
      int32_t isum = 0;
      for (int j = 0; j < QB; j++) {
        int code, high;
        if (q == DSK_Q8) {
          code = codes[quad_pos (nb, b, j)];
        } else {
          const uint8_t byte = codes[q4_pos (nb, b, j, &high)];
          code = high ? byte >> 4 : byte & 15;
        }
        isum += code * xq[quad_pos (nb, b, j)];
      }
      const float d = dsk_f16_to_f32 (scales[b]);
      const float m = q == DSK_Q8 ? -128.0f * d : dsk_f16_to_f32 (scales[nb + b]);
      acc += d * dx[b] * (float) isum + m * sx[b];
    }
    out[r] = acc;
  }
}

#if DSK_X86_SIMD

#define VNNI_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma"

/* Per group of up to 16 blocks (one 32-bit lane each): the group's quads, 64 bytes of codes a
 * vpdpbusd per row (Q4: a 64-byte load gives quads k and k + 4 as low and high nibbles),
 * accumulate each block's integer sum in its lane; then one conversion and one multiply-add
 * by the blocks' d * dx, and one multiply-add of the minimum terms m * s (Q8: -128 d * s). */
static inline __attribute__ ((always_inline, target (VNNI_TARGET))) void
qdot_vnni_body (const void *const *w, const int R, const void *next, const void *xqv,
                size_t cols, dsk_dtype q, float *out)
{
  const size_t nb = cols / QB, code_bytes = q == DSK_Q8 ? cols : cols / 2;
  const size_t row_bytes = dsk_quant_row_bytes (q, cols);
  const int8_t *xq = xqv;
  const float *dx = (const float *) ((const char *) xqv + round64 (cols)), *sx = dx + nb;
  const __m512i nib = _mm512_set1_epi8 (0x0f);
  __m512 acc[8];

  for (int r = 0; r < R; r++)
    acc[r] = _mm512_setzero_ps ();
  for (size_t b0 = 0; b0 < nb; b0 += 16) {
    const int ng = nb - b0 < 16 ? (int) (nb - b0) : 16;
    const __mmask16 gm = (__mmask16) (ng == 16 ? 0xffffu : (1u << ng) - 1u);
    const __mmask64 qm = ng == 16 ? ~(__mmask64) 0 : ((__mmask64) 1 << (4 * ng)) - 1;
    const size_t quad = 4 * (size_t) ng;   /* bytes of one quad of the group */
    const int8_t *xg = xq + b0 * QB;
    __m512i xv[8], isum[8];
    for (int k = 0; k < 8; k++)
      xv[k] = _mm512_maskz_loadu_epi8 (qm, xg + (size_t) k * quad);
    for (int r = 0; r < R; r++) {
      const uint8_t *cg = (const uint8_t *) w[r] + b0 * (q == DSK_Q8 ? QB : QB / 2);
      __m512i a = _mm512_setzero_si512 ();
      if (q == DSK_Q8) {
        for (int k = 0; k < 8; k++)
          a = _mm512_dpbusd_epi32 (a, _mm512_maskz_loadu_epi8 (qm, cg + (size_t) k * quad),
                                   xv[k]);
      } else {
        for (int k = 0; k < 4; k++) {
          const __m512i v = _mm512_maskz_loadu_epi8 (qm, cg + (size_t) k * quad);
          a = _mm512_dpbusd_epi32 (a, _mm512_and_si512 (v, nib), xv[k]);
          a = _mm512_dpbusd_epi32 (a, _mm512_and_si512 (_mm512_srli_epi16 (v, 4), nib),
                                   xv[k + 4]);
        }
      }
      isum[r] = a;
      if (next)   /* the next rows' codes of this group, while these are summed */
        for (size_t off = 0; off < (q == DSK_Q8 ? 8 : 4) * quad; off += 64)
          _mm_prefetch ((const char *) next + (size_t) r * row_bytes +
                        (size_t) (cg - (const uint8_t *) w[r]) + off, _MM_HINT_T0);
    }
    const __m512 dxv = _mm512_maskz_loadu_ps (gm, dx + b0);
    const __m512 sxv = _mm512_maskz_loadu_ps (gm, sx + b0);
    for (int r = 0; r < R; r++) {
      const uint16_t *dw = (const uint16_t *) ((const uint8_t *) w[r] + code_bytes) + b0;
      const __m512 dwv = _mm512_cvtph_ps (_mm256_maskz_loadu_epi16 (gm, dw));
      const __m512 mv = q == DSK_Q8 ? _mm512_mul_ps (dwv, _mm512_set1_ps (-128.0f))
                                    : _mm512_cvtph_ps (_mm256_maskz_loadu_epi16 (gm, dw + nb));
      acc[r] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (isum[r]), _mm512_mul_ps (dwv, dxv), acc[r]);
      acc[r] = _mm512_fmadd_ps (mv, sxv, acc[r]);
    }
  }
  for (int r = 0; r < R; r++)
    out[r] = _mm512_reduce_add_ps (acc[r]);
}

/* Four or eight rows per call: eight keep more reads in flight and load the activations'
 * codes half as often. */
static __attribute__ ((target (VNNI_TARGET))) void
qdot4_vnni (const void *const *w, const void *next, const void *xq, size_t cols, dsk_dtype q,
            float *out)
{
  qdot_vnni_body (w, 4, next, xq, cols, q, out);
}

static __attribute__ ((target (VNNI_TARGET))) void
qdot8_vnni (const void *const *w, const void *next, const void *xq, size_t cols, dsk_dtype q,
            float *out)
{
  qdot_vnni_body (w, 8, next, xq, cols, q, out);
}

#endif /* DSK_X86_SIMD */

int
dsk_quant_has_vnni (void)
{
  return dsk_cpu_has_avx512_vnni ();
}

void
dsk_qdot (const void *const *w, int n_rows, const void *next, const void *xq, size_t cols,
          dsk_dtype q, float *out)
{
#if DSK_X86_SIMD
  if (dsk_quant_has_vnni () && (n_rows == 4 || n_rows == 8)) {
    if (n_rows == 8)
      qdot8_vnni (w, next, xq, cols, q, out);
    else
      qdot4_vnni (w, next, xq, cols, q, out);
    return;
  }
#endif
  (void) next;
  qdot_generic (w, n_rows, xq, cols, q, out);
}
