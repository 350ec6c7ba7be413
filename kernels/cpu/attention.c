/* attention.c: multi-head attention with GQA, causal and padding masks and additive biases,
 * the CPU kernel.
 *
 * Streaming ("online") softmax: keys are visited in blocks of KB; each query keeps its
 * running maximum m, running sum l and unnormalised output, rescaled when m grows. No
 * [T, S] score matrix is ever stored, so memory does not grow with the sequence, and the
 * result is the same for any thread count (a query's keys are always visited in order by one
 * thread). Queries go in blocks of QB so that a key block loaded into L1 serves QB queries. */
#include "dsk-cpu.h"

#include "dsocr-build-config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if DSOCR_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "linear.h"

#define QB 32
#define KB 64
#define DV_MAX 512
/* Query rows per block of the BLAS path, and per item of the packed path (which packs the
 * head's keys and values once per item). */
#define BLAS_QROWS 256
#define PACKED_QROWS 512
/* The BLAS path pays for materialising logits once T * S is this large and T is not tiny. */
#define BLAS_MIN_TS (512.0 * 512.0)
#define BLAS_MIN_T 64

static int force_path;

void
dsk_attention_force_path (int path)
{
  force_path = path;
}

/* The problem with defaults resolved. */
typedef struct {
  const float *q, *k, *v;
  float *out;
  size_t T, S, H, group, dqk, dv;
  size_t qs, ks, vs, os, qhs, khs, vhs, ohs;
  float scale;
  int causal;
  size_t pos0;
  const uint8_t *valid;
  const float *bias;
  size_t bias_heads, bias_ld, bias_hs;
  const float *rel_h, *rel_w;
  size_t kv_h, kv_w;
} att;

/* ---- q·k for a query tile against a key block ---- */

static void
dots_generic (const float *const *qr, int nq, const float *k0, size_t ks, int nk, size_t d,
              float sc[QB][KB])
{
  for (int r = 0; r < nq; r++)
    for (int j = 0; j < nk; j++) {
      const float *kr = k0 + (size_t) j * ks;
      float s = 0.0f;
      for (size_t i = 0; i < d; i++)
        s += qr[r][i] * kr[i];
      sc[r][j] = s;
    }
}

#if DSK_X86_SIMD

static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 float
hsum8 (__m256 v)
{
  __m128 s = _mm_add_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
  s = _mm_add_ps (s, _mm_movehl_ps (s, s));
  s = _mm_add_ss (s, _mm_shuffle_ps (s, s, 0x55));
  return _mm_cvtss_f32 (s);
}

/* R queries x C keys, R * C accumulators */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 void
dot_tile (const float *const *qr, const float *k0, size_t ks, size_t d, float *out, size_t ld,
          const int R, const int C)
{
  __m256 acc[4][4];
  #pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      acc[r][c] = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 kv[4];
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      kv[c] = _mm256_loadu_ps (k0 + (size_t) c * ks + i);
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      __m256 qv = _mm256_loadu_ps (qr[r] + i);
      #pragma GCC unroll 8
      for (int c = 0; c < C; c++)
        acc[r][c] = _mm256_fmadd_ps (qv, kv[c], acc[r][c]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
      float s = hsum8 (acc[r][c]);
      for (size_t ii = i; ii < d; ii++)
        s += qr[r][ii] * k0[(size_t) c * ks + ii];
      out[(size_t) r * ld + (size_t) c] = s;
    }
}

#define DOTS(R, C) \
  static DSK_TARGET_AVX2 void dots_##R##x##C (const float *const *qr, const float *k0, \
                                              size_t ks, size_t d, float *out) \
  { dot_tile (qr, k0, ks, d, out, KB, R, C); }
DOTS (1, 4) DOTS (1, 1) DOTS (2, 4) DOTS (2, 1) DOTS (3, 2) DOTS (3, 1) DOTS (4, 2) DOTS (4, 1)

typedef void (*dots_fn) (const float *const *, const float *, size_t, size_t, float *);
static const dots_fn dots_tab[4][2] = {
  { dots_1x4, dots_1x1 }, { dots_2x4, dots_2x1 }, { dots_3x2, dots_3x1 }, { dots_4x2, dots_4x1 } };
static const int dots_cols[5] = { 0, 4, 4, 2, 2 };

static DSK_TARGET_AVX2 void
dots_avx2 (const float *const *qr, int nq, const float *k0, size_t ks, int nk, size_t d,
           float sc[QB][KB])
{
  for (int r0 = 0; r0 < nq; r0 += 4) {
    int R = nq - r0 < 4 ? nq - r0 : 4, C = dots_cols[R], j = 0;
    for (; j + C <= nk; j += C)
      dots_tab[R - 1][0] (qr + r0, k0 + (size_t) j * ks, ks, d, &sc[r0][j]);
    for (; j < nk; j++)
      dots_tab[R - 1][1] (qr + r0, k0 + (size_t) j * ks, ks, d, &sc[r0][j]);
  }
}

/* acc[r][i0 : i0 + 8 C] += sum_j p[r][j] v[j][i0 : i0 + 8 C] for R queries: R * C
 * accumulators stay in registers over the whole key block. */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 void
pv_tile (float acc[QB][DV_MAX], float p[QB][KB], int r0, const float *v0, size_t vs, int nk,
         size_t i0, const int R, const int C)
{
  __m256 a[4][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      a[r][c] = _mm256_loadu_ps (&acc[r0 + r][i0 + 8 * (size_t) c]);
  for (int j = 0; j < nk; j++) {
    __m256 vv[2];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      vv[c] = _mm256_loadu_ps (v0 + (size_t) j * vs + i0 + 8 * (size_t) c);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      __m256 b = _mm256_broadcast_ss (&p[r0 + r][j]);
#pragma GCC unroll 8
      for (int c = 0; c < C; c++)
        a[r][c] = _mm256_fmadd_ps (b, vv[c], a[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      _mm256_storeu_ps (&acc[r0 + r][i0 + 8 * (size_t) c], a[r][c]);
}

#define PV(R, C) \
  static DSK_TARGET_AVX2 void pv_##R##x##C (float acc[QB][DV_MAX], float p[QB][KB], int r0, \
                                            const float *v0, size_t vs, int nk, size_t i0) \
  { pv_tile (acc, p, r0, v0, vs, nk, i0, R, C); }
PV (1, 2) PV (1, 1) PV (2, 2) PV (2, 1) PV (3, 2) PV (3, 1) PV (4, 2) PV (4, 1)

typedef void (*pv_fn) (float (*)[DV_MAX], float (*)[KB], int, const float *, size_t, int, size_t);
static const pv_fn pv_tab[4][2] = {
  { pv_1x1, pv_1x2 }, { pv_2x1, pv_2x2 }, { pv_3x1, pv_3x2 }, { pv_4x1, pv_4x2 } };

static DSK_TARGET_AVX2 void
pv_avx2 (float acc[QB][DV_MAX], float p[QB][KB], int nq, const float *v0, size_t vs, int nk,
         size_t dv)
{
  for (int r0 = 0; r0 < nq; r0 += 4) {
    const int R = nq - r0 < 4 ? nq - r0 : 4;
    size_t i = 0;
    for (; i + 16 <= dv; i += 16)
      pv_tab[R - 1][1] (acc, p, r0, v0, vs, nk, i);
    for (; i + 8 <= dv; i += 8)
      pv_tab[R - 1][0] (acc, p, r0, v0, vs, nk, i);
    for (; i < dv; i++)
      for (int r = r0; r < r0 + R; r++) {
        float t = acc[r][i];
        for (int j = 0; j < nk; j++)
          t += p[r][j] * v0[(size_t) j * vs + i];
        acc[r][i] = t;
      }
  }
}

/* p[:nk_pad] = exp(p - m), masked (-inf) entries give 0 */
static DSK_TARGET_AVX2 float
exp_row_avx2 (float *p, int nk_pad, float m)
{
  __m256 mv = _mm256_set1_ps (m), sum = _mm256_setzero_ps ();
  for (int j = 0; j < nk_pad; j += 8) {
    __m256 e = dsk_exp8_avx2 (_mm256_sub_ps (_mm256_loadu_ps (p + j), mv));
    _mm256_storeu_ps (p + j, e);
    sum = _mm256_add_ps (sum, e);
  }
  return hsum8 (sum);
}

#endif /* DSK_X86_SIMD */

static void
pv_generic (float acc[QB][DV_MAX], float p[QB][KB], int nq, const float *v0, size_t vs, int nk,
            size_t dv)
{
  for (int r = 0; r < nq; r++)
    for (int j = 0; j < nk; j++) {
      const float *vr = v0 + (size_t) j * vs;
      float pj = p[r][j];
      if (pj == 0.0f)
        continue;
      for (size_t i = 0; i < dv; i++)
        acc[r][i] += pj * vr[i];
    }
}

static float
exp_row_generic (float *p, int nk_pad, float m)
{
  float sum = 0.0f;
  for (int j = 0; j < nk_pad; j++) {
    p[j] = p[j] == -INFINITY ? 0.0f : expf (p[j] - m);
    sum += p[j];
  }
  return sum;
}

/* Turns raw dots x[n] of query t (head h) against keys s0 .. s0 + n - 1 into logits in place:
 * scale, biases, masked keys -inf. Returns the largest logit (-inf when all are masked). */
static float
logits (const att *a, size_t h, size_t t, size_t s0, float *x, size_t n)
{
  const float *br = a->bias ? a->bias + (a->bias_heads == 1 ? 0 : h) * a->bias_hs + t * a->bias_ld
                            : NULL;
  const float *rh = a->rel_h ? a->rel_h + (h * a->T + t) * a->kv_h : NULL;
  const float *rw = a->rel_w ? a->rel_w + (h * a->T + t) * a->kv_w : NULL;
  const size_t vis_end = a->causal ? a->pos0 + t + 1 : SIZE_MAX;  /* keys s < vis_end */
  float mb = -INFINITY;

  if (!br && !rh && !a->valid && s0 + n <= vis_end) {
    for (size_t j = 0; j < n; j++) {
      float v = x[j] * a->scale;
      x[j] = v;
      mb = v > mb ? v : mb;
    }
    return mb;
  }
  /* key s sits at row sh = s / kv_w, column sw = s % kv_w of the rel-pos grid */
  size_t sh = rh ? s0 / a->kv_w : 0, sw = rh ? s0 % a->kv_w : 0;
  for (size_t j = 0; j < n; j++) {
    const size_t s = s0 + j;
    float v;
    if (s >= vis_end || (a->valid && !a->valid[s])) {
      v = -INFINITY;
    } else {
      v = x[j] * a->scale;
      if (br)
        v += br[s];
      if (rh)
        v += rh[sh] + rw[sw];   /* the reference materialises rel_h + rel_w, then adds */
    }
    if (rh && ++sw == a->kv_w) {
      sw = 0;
      sh++;
    }
    x[j] = v;
    mb = v > mb ? v : mb;
  }
  return mb;
}

/* x[n] = exp(x - m) (masked entries 0); returns the sum, accumulated in double per KB. */
static double
exp_row (float *x, size_t n, float m, int simd)
{
  double sum = 0.0;
  size_t j = 0;
#if DSK_X86_SIMD
  if (simd)
    for (; j + KB <= n; j += KB)
      sum += exp_row_avx2 (x + j, KB, m);
#endif
  (void) simd;
  for (; j < n; j++) {
    x[j] = x[j] == -INFINITY ? 0.0f : expf (x[j] - m);
    sum += x[j];
  }
  return sum;
}

/* Queries t0 .. t0 + nq - 1 of head h, streaming over key blocks. */
static void
attend (const att *a, size_t h, size_t t0, int nq, int simd)
{
  const size_t hk = h / a->group;
  const float *qr[QB];
  float acc[QB][DV_MAX];
  float sc[QB][KB];
  float m[QB];
  double l[QB];

  for (int r = 0; r < nq; r++) {
    qr[r] = a->q + (t0 + (size_t) r) * a->qs + h * a->qhs;
    memset (acc[r], 0, a->dv * sizeof (float));
    m[r] = -INFINITY;
    l[r] = 0.0;
  }

  size_t s_end = a->S;
  if (a->causal && a->pos0 + t0 + (size_t) nq < s_end)
    s_end = a->pos0 + t0 + (size_t) nq;

  const float *kbase = a->k + hk * a->khs, *vbase = a->v + hk * a->vhs;
  for (size_t s0 = 0; s0 < s_end; s0 += KB) {
    const int nk = (int) (s_end - s0 < KB ? s_end - s0 : KB);
    const int nk_pad = (nk + 7) & ~7;
#if DSK_X86_SIMD
    if (simd)
      dots_avx2 (qr, nq, kbase + s0 * a->ks, a->ks, nk, a->dqk, sc);
    else
#endif
      dots_generic (qr, nq, kbase + s0 * a->ks, a->ks, nk, a->dqk, sc);

    int any = 0;
    for (int r = 0; r < nq; r++) {
      float mb = logits (a, h, t0 + (size_t) r, s0, sc[r], (size_t) nk);
      for (int j = nk; j < nk_pad; j++)
        sc[r][j] = -INFINITY;
      if (mb == -INFINITY) {
        /* nothing visible in this block: contributes nothing */
        memset (sc[r], 0, (size_t) nk_pad * sizeof (float));
        continue;
      }
      any = 1;
      const float mn = mb > m[r] ? mb : m[r];
      float lsum;
#if DSK_X86_SIMD
      if (simd)
        lsum = exp_row_avx2 (sc[r], nk_pad, mn);
      else
#endif
        lsum = exp_row_generic (sc[r], nk_pad, mn);
      if (mn != m[r]) {
        /* rescale what was gathered under the old maximum (nothing when it was -inf) */
        const float corr = m[r] == -INFINITY ? 0.0f : expf (m[r] - mn);
        for (size_t i = 0; i < a->dv; i++)
          acc[r][i] *= corr;
        l[r] *= corr;
        m[r] = mn;
      }
      l[r] += lsum;
    }
    if (!any)
      continue;
#if DSK_X86_SIMD
    if (simd)
      pv_avx2 (acc, sc, nq, vbase + s0 * a->vs, a->vs, nk, a->dv);
    else
#endif
      pv_generic (acc, sc, nq, vbase + s0 * a->vs, a->vs, nk, a->dv);
  }

  for (int r = 0; r < nq; r++) {
    float *o = a->out + (t0 + (size_t) r) * a->os + h * a->ohs;
    const float inv = l[r] > 0.0 ? (float) (1.0 / l[r]) : 0.0f;
    for (size_t i = 0; i < a->dv; i++)
      o[i] = acc[r][i] * inv;
  }
}

#if DSOCR_HAVE_OPENBLAS

/* Large problems (SAM's global blocks: 4096 x 4096 per head) as two sgemm per block of
 * query rows, with the logits of the block materialised in scratch: OpenBLAS's packed kernels
 * run several times faster than the streaming tiles above. @P: [nq, S] floats. */
static void
attend_blas (const att *a, size_t h, size_t t0, size_t nq, float *P, int simd)
{
  const size_t hk = h / a->group;
  size_t s_end = a->S;
  if (a->causal && a->pos0 + t0 + nq < s_end)
    s_end = a->pos0 + t0 + nq;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) nq, (int) s_end, (int) a->dqk,
               1.0f, a->q + t0 * a->qs + h * a->qhs, (int) a->qs, a->k + hk * a->khs,
               (int) a->ks, 0.0f, P, (int) s_end);
  for (size_t r = 0; r < nq; r++) {
    float *row = P + r * s_end;
    float mb = logits (a, h, t0 + r, 0, row, s_end);
    if (mb == -INFINITY) {
      /* no visible key: a zero row gives the zero output */
      memset (row, 0, s_end * sizeof (float));
      continue;
    }
    const float inv = (float) (1.0 / exp_row (row, s_end, mb, simd));
    for (size_t j = 0; j < s_end; j++)
      row[j] *= inv;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) nq, (int) a->dv, (int) s_end,
               1.0f, P, (int) s_end, a->v + hk * a->vhs, (int) a->vs, 0.0f,
               a->out + t0 * a->os + h * a->ohs, (int) a->os);
}

#endif

#if DSK_X86_SIMD

/* The softmax of one panel of logits in place, for every query of the panel at once:
 * pp [s_end][pw] holds q_t · k_s for the @n queries t0 .. t0 + n - 1 (columns past n are
 * padding); they become the normalised probabilities, zero where masked (and for a query that
 * sees no key). @tab: (kv_h + kv_w) * 32 floats for the transposed relative-position terms. */
static __attribute__ ((target ("avx512f,avx2,fma,f16c"))) void
panel_softmax (const att *a, size_t h, size_t t0, int n, int pw, float *pp, size_t s_end,
               float *tab)
{
  const int nv = pw / 16;
  __m512 m[2], l[2];
  const __m512 scale = _mm512_set1_ps (a->scale);
  const int plain = !a->bias && !a->valid && (!a->causal || a->pos0 + t0 + 1 >= s_end);

  if (plain) {
    const float *rh = NULL, *rw = NULL;
    if (a->rel_h) {
      /* rhT[sh][t] and rwT[sw][t]: the rows each key reads, as vectors over the queries */
      float *rhT = tab, *rwT = tab + a->kv_h * 32;
      for (int t = 0; t < pw; t++) {
        const float *sh = a->rel_h + (h * a->T + t0 + (size_t) t) * a->kv_h;
        const float *sw = a->rel_w + (h * a->T + t0 + (size_t) t) * a->kv_w;
        for (size_t i = 0; i < a->kv_h; i++)
          rhT[i * 32 + (size_t) t] = t < n ? sh[i] : 0.0f;
        for (size_t i = 0; i < a->kv_w; i++)
          rwT[i * 32 + (size_t) t] = t < n ? sw[i] : 0.0f;
      }
      rh = rhT;
      rw = rwT;
    }
    m[0] = m[1] = _mm512_set1_ps (-INFINITY);
    size_t sh = 0, sw = 0;
    for (size_t s = 0; s < s_end; s++) {
      for (int v = 0; v < nv; v++) {
        __m512 x = _mm512_mul_ps (_mm512_loadu_ps (pp + s * pw + 16 * v), scale);
        if (rh)   /* the reference materialises rel_h + rel_w, then adds */
          x = _mm512_add_ps (x, _mm512_add_ps (_mm512_loadu_ps (rh + sh * 32 + 16 * v),
                                               _mm512_loadu_ps (rw + sw * 32 + 16 * v)));
        _mm512_storeu_ps (pp + s * pw + 16 * v, x);
        m[v] = _mm512_max_ps (m[v], x);
      }
      if (rh && ++sw == a->kv_w) {
        sw = 0;
        sh++;
      }
    }
  } else {
    /* masks or an additive bias: element by element, through logits() one query at a time */
    float *row = tab;   /* [s_end] */
    for (int t = 0; t < pw; t++) {
      if (t >= n) {
        for (size_t s = 0; s < s_end; s++)
          pp[s * pw + (size_t) t] = -INFINITY;
        continue;
      }
      for (size_t s = 0; s < s_end; s++)
        row[s] = pp[s * pw + (size_t) t];
      logits (a, h, t0 + (size_t) t, 0, row, s_end);
      for (size_t s = 0; s < s_end; s++)
        pp[s * pw + (size_t) t] = row[s];
    }
    m[0] = m[1] = _mm512_set1_ps (-INFINITY);
    for (size_t s = 0; s < s_end; s++)
      for (int v = 0; v < nv; v++)
        m[v] = _mm512_max_ps (m[v], _mm512_loadu_ps (pp + s * pw + 16 * v));
  }

  /* exp(x - m) and the column sums; a query that sees nothing keeps m = -inf and gets 0 */
  __mmask16 none[2];
  for (int v = 0; v < nv; v++) {
    none[v] = _mm512_cmp_ps_mask (m[v], _mm512_set1_ps (-INFINITY), _CMP_EQ_OQ);
    m[v] = _mm512_mask_mov_ps (m[v], none[v], _mm512_setzero_ps ());
    l[v] = _mm512_setzero_ps ();
  }
  for (size_t s = 0; s < s_end; s++)
    for (int v = 0; v < nv; v++) {
      const __m512 e = dsk_exp16_avx512 (_mm512_sub_ps (_mm512_loadu_ps (pp + s * pw + 16 * v),
                                                        m[v]));
      _mm512_storeu_ps (pp + s * pw + 16 * v, e);
      l[v] = _mm512_add_ps (l[v], e);
    }
  for (int v = 0; v < nv; v++) {
    const __m512 inv = _mm512_maskz_div_ps (~none[v] & _mm512_cmp_ps_mask (
                                              l[v], _mm512_setzero_ps (), _CMP_GT_OQ),
                                            _mm512_set1_ps (1.0f), l[v]);
    l[v] = inv;
  }
  for (size_t s = 0; s < s_end; s++)
    for (int v = 0; v < nv; v++)
      _mm512_storeu_ps (pp + s * pw + 16 * v,
                        _mm512_mul_ps (_mm512_loadu_ps (pp + s * pw + 16 * v), l[v]));
}

/* Floats of scratch attend_packed needs. */
static size_t
packed_scratch_floats (const att *a)
{
  const size_t s8 = (a->S + 7) / 8 * 8, dv8 = (a->dv + 7) / 8 * 8;
  const size_t tab = a->S > (a->kv_h + a->kv_w) * 32 ? a->S : (a->kv_h + a->kv_w) * 32;
  return s8 * a->dqk + dv8 * a->S + a->S * 32 + a->dqk * 32 + tab;
}

/* Large problems (SAM's global blocks: 4096 x 4096 per head; a long prefill) on the packed
 * product kernel (linear.h): the head's keys and its values' columns are packed once per
 * item; then per panel of 32 queries, the logits P [S][32] = K q^T, the softmax down each
 * column (all 32 queries at once), and out = P^T V, each output element summed in key
 * order. Both products run at the kernel's rate on memory laid out for it. */
static void
attend_packed (const att *a, size_t h, size_t t0, size_t nq, float *scratch)
{
  const size_t hk = h / a->group, S = a->S, s8 = (S + 7) / 8 * 8, dv8 = (a->dv + 7) / 8 * 8;
  float *kp = scratch, *vp = kp + s8 * a->dqk, *pp = vp + dv8 * S, *qp = pp + S * 32;
  float *tab = qp + a->dqk * 32;
  size_t s_item = S;

  if (a->causal && a->pos0 + t0 + nq < s_item)
    s_item = a->pos0 + t0 + nq;
  dsk_mm_pack_rows (kp, a->k + hk * a->khs, a->ks, (int) s_item, a->dqk);
  dsk_mm_pack_cols (vp, a->v + hk * a->vhs, a->vs, (int) a->dv, s_item);
  for (size_t p0 = 0; p0 < nq; p0 += 32) {
    const int n = (int) (nq - p0 < 32 ? nq - p0 : 32), pw = n > 16 ? 32 : 16;
    size_t s_end = s_item;
    if (a->causal && a->pos0 + t0 + p0 + (size_t) n < s_end)
      s_end = a->pos0 + t0 + p0 + (size_t) n;
    dsk_mm_pack_panels (qp, a->q + (t0 + p0) * a->qs + h * a->qhs, a->qs, n, a->dqk);
    dsk_mm_packed (kp, a->dqk, (int) s_end, qp, pw, pw, a->dqk, pp, (size_t) pw, 1);
    panel_softmax (a, h, t0 + p0, n, pw, pp, s_end, tab);
    dsk_mm_packed (vp, s_item, (int) a->dv, pp, pw, n, s_end,
                   a->out + (t0 + p0) * a->os + h * a->ohs, 1, a->os);
  }
}

#endif /* DSK_X86_SIMD */

/* Checks @p and resolves its defaults into @a (pointers left NULL). */
static dsk_status
resolve (const dsk_attention_params *p, att *a)
{
  if (!p)
    return DSK_ERR_INVALID;
  if (p->n_q == 0 || p->n_kv == 0 || p->n_heads == 0 || p->n_kv_heads == 0 || p->d_qk == 0 ||
      p->d_v == 0 || p->n_heads % p->n_kv_heads)
    return DSK_ERR_INVALID;
  if (p->d_v > DV_MAX)
    return DSK_ERR_UNSUPPORTED;
  if (p->bias && p->bias_heads != 1 && p->bias_heads != p->n_heads)
    return DSK_ERR_INVALID;
  if (p->bias && p->bias_ld && p->bias_ld < p->n_kv)
    return DSK_ERR_INVALID;
  if (!p->rel_h != !p->rel_w ||
      (p->rel_h && (p->kv_h == 0 || p->kv_w == 0 || p->kv_h * p->kv_w != p->n_kv)))
    return DSK_ERR_INVALID;

  *a = (att) {
    .T = p->n_q, .S = p->n_kv, .H = p->n_heads, .group = p->n_heads / p->n_kv_heads,
    .dqk = p->d_qk, .dv = p->d_v,
    .qs = p->q_stride ? p->q_stride : p->n_heads * p->d_qk,
    .ks = p->k_stride ? p->k_stride : p->n_kv_heads * p->d_qk,
    .vs = p->v_stride ? p->v_stride : p->n_kv_heads * p->d_v,
    .os = p->out_stride ? p->out_stride : p->n_heads * p->d_v,
    .qhs = p->q_head_stride ? p->q_head_stride : p->d_qk,
    .khs = p->k_head_stride ? p->k_head_stride : p->d_qk,
    .vhs = p->v_head_stride ? p->v_head_stride : p->d_v,
    .ohs = p->out_head_stride ? p->out_head_stride : p->d_v,
    .scale = p->scale, .causal = p->causal != 0, .pos0 = p->q_pos0,
    .valid = p->key_valid, .bias = p->bias, .bias_heads = p->bias_heads,
    .bias_ld = p->bias_rows_shared ? 0 : p->bias_ld ? p->bias_ld : p->n_kv,
    .rel_h = p->rel_h, .rel_w = p->rel_w, .kv_h = p->kv_h, .kv_w = p->kv_w,
  };
  a->bias_hs = p->bias_head_stride ? p->bias_head_stride : p->n_q * a->bias_ld;
  return DSK_OK;
}

/* Whether @a takes the BLAS path: T >= 64 and T * S >= 512^2, when built with OpenBLAS and
 * the sizes fit cblas' ints. */
static int
use_blas (const att *a)
{
#if DSOCR_HAVE_OPENBLAS
  if (a->S > INT32_MAX || a->qs > INT32_MAX || a->ks > INT32_MAX || a->vs > INT32_MAX ||
      a->os > INT32_MAX)
    return 0;
  return force_path == 2 ||
         (force_path == 0 && a->T >= BLAS_MIN_T && (double) a->T * (double) a->S >= BLAS_MIN_TS);
#else
  (void) a;
  return 0;
#endif
}

/* Whether @a takes the packed path: on CPUs with the packed product kernel (AVX-512), for the
 * problems the BLAS path would take, and for bidirectional ones of at least 64 queries and
 * keys (SAM's 14 x 14 windows, CLIP's 257 tokens), where packing a head's keys and values
 * costs little beside its products. Causal problems below the BLAS size (a decoder prompt)
 * keep the streaming kernel. force_path 3 forces it where it can run. */
static int
use_packed (const att *a)
{
  if (!dsk_mm_packed_ok ())
    return 0;
  if (force_path)
    return force_path == 3;
  return a->T >= BLAS_MIN_T &&
         ((double) a->T * (double) a->S >= BLAS_MIN_TS || (!a->causal && a->S >= BLAS_MIN_T));
}

dsk_status
dsk_attention_plan_cpu (const dsk_attention_params *p, size_t *n_items, size_t *scratch_floats)
{
  att a;
  dsk_status st = resolve (p, &a);
  if (st != DSK_OK)
    return st;
  if (use_packed (&a)) {
#if DSK_X86_SIMD
    const size_t tb = a.T < PACKED_QROWS ? a.T : PACKED_QROWS;
    *n_items = a.H * ((a.T + tb - 1) / tb);
    *scratch_floats = packed_scratch_floats (&a);
#endif
  } else if (use_blas (&a)) {
    const size_t tb = a.T < BLAS_QROWS ? a.T : BLAS_QROWS;
    *n_items = a.H * ((a.T + tb - 1) / tb);
    *scratch_floats = tb * a.S;
  } else {
    *n_items = a.H * ((a.T + QB - 1) / QB);
    *scratch_floats = 0;
  }
  return DSK_OK;
}

void
dsk_attention_item_cpu (float *out, const float *q, const float *k, const float *v,
                        const dsk_attention_params *p, size_t item, float *scratch)
{
  att a;
  if (resolve (p, &a) != DSK_OK)
    return;
  a.q = q;
  a.k = k;
  a.v = v;
  a.out = out;
  const int simd = dsk_cpu_has_avx2 ();
#if DSK_X86_SIMD
  if (use_packed (&a)) {
    /* heads outermost, as the streaming items */
    const size_t tb = a.T < PACKED_QROWS ? a.T : PACKED_QROWS, n_tb = (a.T + tb - 1) / tb;
    const size_t h = item / n_tb, t0 = (item % n_tb) * tb;
    attend_packed (&a, h, t0, a.T - t0 < tb ? a.T - t0 : tb, scratch);
    return;
  }
#endif
#if DSOCR_HAVE_OPENBLAS
  if (use_blas (&a)) {
    /* heads outermost, as the streaming items: a head's blocks run back to back */
    const size_t tb = a.T < BLAS_QROWS ? a.T : BLAS_QROWS, n_tb = (a.T + tb - 1) / tb;
    const size_t h = item / n_tb, t0 = (item % n_tb) * tb;
    attend_blas (&a, h, t0, a.T - t0 < tb ? a.T - t0 : tb, scratch, simd);
    return;
  }
#endif
  (void) scratch;
  const size_t n_qb = (a.T + QB - 1) / QB;
  const size_t h = item / n_qb, t0 = (item % n_qb) * QB;
  attend (&a, h, t0, (int) (a.T - t0 < QB ? a.T - t0 : QB), simd);
}

dsk_status
dsk_attention_f32_cpu (float *out, const float *q, const float *k, const float *v,
                       const dsk_attention_params *p)
{
  size_t n_items, n_scratch;
  float *scratch = NULL;
  if (!out || !q || !k || !v)
    return DSK_ERR_INVALID;
  dsk_status st = dsk_attention_plan_cpu (p, &n_items, &n_scratch);
  if (st != DSK_OK)
    return st;
  if (n_scratch && !(scratch = malloc (n_scratch * sizeof (float))))
    return DSK_ERR_NOMEM;
  for (size_t i = 0; i < n_items; i++)
    dsk_attention_item_cpu (out, q, k, v, p, i, scratch);
  free (scratch);
  return DSK_OK;
}
