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

/* Squared error of the block v[32] coded as d * (code - off) + m with @codes. */
static double
block_err (const float *v, const uint8_t *codes, float d, float m, int off)
{
  double e = 0.0;
  for (int j = 0; j < QB; j++) {
    const double r = (double) d * (codes[j] - off) + m - v[j];
    e += r * r;
  }
  return e;
}

/* Q8: codes for scale @d (already f16-rounded), clamped to [-127, 127], stored + 128. */
static void
q8_codes (const float *v, float d, uint8_t *codes)
{
  const float inv = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < QB; j++) {
    float q = rintf (v[j] * inv);
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    codes[j] = (uint8_t) ((int) q + 128);
  }
}

/* One Q8 block: the scale from the largest magnitude, then once refined to the least-squares
 * scale of the codes it gave (kept when it lowers the error). */
static uint16_t
q8_block (const float *v, uint8_t *codes)
{
  float amax = 0.0f;
  for (int j = 0; j < QB; j++)
    amax = fabsf (v[j]) > amax ? fabsf (v[j]) : amax;
  uint16_t dh = dsk_f32_to_f16 (amax / 127.0f);
  float d = dsk_f16_to_f32 (dh);
  q8_codes (v, d, codes);
  double qv = 0.0, qq = 0.0;
  for (int j = 0; j < QB; j++) {
    const double q = codes[j] - 128;
    qv += q * v[j];
    qq += q * q;
  }
  if (qq > 0.0) {
    uint8_t c2[QB];
    const uint16_t dh2 = dsk_f32_to_f16 ((float) (qv / qq));
    const float d2 = dsk_f16_to_f32 (dh2);
    q8_codes (v, d2, c2);
    if (block_err (v, c2, d2, 0.0f, 128) < block_err (v, codes, d, 0.0f, 128)) {
      memcpy (codes, c2, QB);
      dh = dh2;
    }
  }
  return dh;
}

/* Q4: codes for scale @d and minimum @m (both f16-rounded), clamped to [0, 15]. */
static void
q4_codes (const float *v, float d, float m, uint8_t *codes)
{
  const float inv = d > 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < QB; j++) {
    float q = rintf ((v[j] - m) * inv);
    codes[j] = (uint8_t) (q > 15.0f ? 15.0f : q < 0.0f ? 0.0f : q);
  }
}

/* One Q4 block: scale and minimum from the range, then up to four rounds of the least-squares
 * line through (code, value) with the codes reassigned, keeping the best (the idea of
 * llama.cpp's k-quants: the range is rarely the best grid for 16 levels). */
static void
q4_block (const float *v, uint8_t *codes, uint16_t *dh_out, uint16_t *mh_out)
{
  float lo = v[0], hi = v[0];
  for (int j = 1; j < QB; j++) {
    lo = v[j] < lo ? v[j] : lo;
    hi = v[j] > hi ? v[j] : hi;
  }
  uint16_t dh = dsk_f32_to_f16 ((hi - lo) / 15.0f), mh = dsk_f32_to_f16 (lo);
  float d = dsk_f16_to_f32 (dh), m = dsk_f16_to_f32 (mh);
  q4_codes (v, d, m, codes);
  double best = block_err (v, codes, d, m, 0);
  uint8_t c2[QB];
  memcpy (c2, codes, QB);
  for (int it = 0; it < 4 && best > 0.0; it++) {
    double sq = 0.0, sv = 0.0, sqq = 0.0, sqv = 0.0;
    for (int j = 0; j < QB; j++) {
      sq += c2[j];
      sv += v[j];
      sqq += (double) c2[j] * c2[j];
      sqv += (double) c2[j] * v[j];
    }
    const double den = QB * sqq - sq * sq;
    if (den <= 0.0)
      break;
    const double dd = (QB * sqv - sq * sv) / den;
    if (!(dd > 0.0))
      break;
    const uint16_t dh2 = dsk_f32_to_f16 ((float) dd);
    const uint16_t mh2 = dsk_f32_to_f16 ((float) ((sv - dd * sq) / QB));
    const float d2 = dsk_f16_to_f32 (dh2), m2 = dsk_f16_to_f32 (mh2);
    q4_codes (v, d2, m2, c2);
    const double e = block_err (v, c2, d2, m2, 0);
    if (!(e < best))
      break;
    best = e;
    memcpy (codes, c2, QB);
    dh = dh2;
    mh = mh2;
  }
  *dh_out = dh;
  *mh_out = mh;
}

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
  float v[QB];
  uint8_t c[QB];
  int ok = 1;

  for (size_t b = 0; b < nb; b++) {
    for (int j = 0; j < QB; j++) {
      v[j] = dsk_cpu_weight_at (src, src_dtype, b * QB + (size_t) j);
      ok &= isfinite (v[j]) != 0;
    }
    if (q == DSK_Q8) {
      scales[b] = q8_block (v, c);
      ok &= f16_finite (scales[b]);
      for (int j = 0; j < QB; j++)
        codes[quad_pos (nb, b, j)] = c[j];
    } else {
      q4_block (v, c, &scales[b], &scales[nb + b]);
      ok &= f16_finite (scales[b]) && f16_finite (scales[nb + b]);
      for (int j = 0; j < 16; j++) {   /* weights 4k + i and 4(k + 4) + i = j + 16 share a byte */
        int high;
        codes[q4_pos (nb, b, j, &high)] = (uint8_t) (c[j] | c[j + 16] << 4);
      }
    }
  }
  return ok;
}

void
dsk_dequant_row (float *dst, const void *src, dsk_dtype q, size_t cols)
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
qdot4_generic (const void *const w[4], const void *xqv, size_t cols, dsk_dtype q,
               float out[4])
{
  const size_t nb = cols / QB, code_bytes = q == DSK_Q8 ? cols : cols / 2;
  const int8_t *xq = xqv;
  const float *dx = (const float *) ((const char *) xqv + round64 (cols)), *sx = dx + nb;

  for (int r = 0; r < 4; r++) {
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
static __attribute__ ((target (VNNI_TARGET))) void
qdot4_vnni (const void *const w[4], const void *next, const void *xqv, size_t cols,
            dsk_dtype q, float out[4])
{
  const size_t nb = cols / QB, code_bytes = q == DSK_Q8 ? cols : cols / 2;
  const size_t row_bytes = dsk_quant_row_bytes (q, cols);
  const int8_t *xq = xqv;
  const float *dx = (const float *) ((const char *) xqv + round64 (cols)), *sx = dx + nb;
  const __m512i nib = _mm512_set1_epi8 (0x0f);
  __m512 acc[4];

  for (int r = 0; r < 4; r++)
    acc[r] = _mm512_setzero_ps ();
  for (size_t b0 = 0; b0 < nb; b0 += 16) {
    const int ng = nb - b0 < 16 ? (int) (nb - b0) : 16;
    const __mmask16 gm = (__mmask16) (ng == 16 ? 0xffffu : (1u << ng) - 1u);
    const __mmask64 qm = ng == 16 ? ~(__mmask64) 0 : ((__mmask64) 1 << (4 * ng)) - 1;
    const size_t quad = 4 * (size_t) ng;   /* bytes of one quad of the group */
    const int8_t *xg = xq + b0 * QB;
    __m512i xv[8], isum[4];
    for (int k = 0; k < 8; k++)
      xv[k] = _mm512_maskz_loadu_epi8 (qm, xg + (size_t) k * quad);
    for (int r = 0; r < 4; r++) {
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
    for (int r = 0; r < 4; r++) {
      const uint16_t *dw = (const uint16_t *) ((const uint8_t *) w[r] + code_bytes) + b0;
      const __m512 dwv = _mm512_cvtph_ps (_mm256_maskz_loadu_epi16 (gm, dw));
      const __m512 mv = q == DSK_Q8 ? _mm512_mul_ps (dwv, _mm512_set1_ps (-128.0f))
                                    : _mm512_cvtph_ps (_mm256_maskz_loadu_epi16 (gm, dw + nb));
      acc[r] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (isum[r]), _mm512_mul_ps (dwv, dxv), acc[r]);
      acc[r] = _mm512_fmadd_ps (mv, sxv, acc[r]);
    }
  }
  for (int r = 0; r < 4; r++)
    out[r] = _mm512_reduce_add_ps (acc[r]);
}

#endif /* DSK_X86_SIMD */

int
dsk_quant_has_vnni (void)
{
  return dsk_cpu_has_avx512_vnni ();
}

void
dsk_qdot4 (const void *const w[4], const void *next, const void *xq, size_t cols, dsk_dtype q,
           float out[4])
{
#if DSK_X86_SIMD
  if (dsk_quant_has_vnni ()) {
    qdot4_vnni (w, next, xq, cols, q, out);
    return;
  }
#endif
  (void) next;
  qdot4_generic (w, xq, cols, q, out);
}
