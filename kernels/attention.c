/* attention.c: multi-head attention with GQA, causal and padding masks and additive biases,
 * the CPU reference.
 *
 * Streaming ("online") softmax: keys are visited in blocks of KB; each query keeps its
 * running maximum m, running sum l and unnormalised output, rescaled when m grows. No
 * [T, S] score matrix is ever stored, so memory does not grow with the sequence, and the
 * result is the same for any thread count (a query's keys are always visited in order by one
 * thread). Queries go in blocks of QB so that a key block loaded into L1 serves QB queries. */
#include "dsk.h"
#include "dsk-cpu.h"

#include <math.h>
#include <string.h>

#define QB 8
#define KB 64
#define DV_MAX 512

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
  size_t bias_heads, bias_ld;
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
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++)
      acc[r][c] = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 kv[4];
    for (int c = 0; c < C; c++)
      kv[c] = _mm256_loadu_ps (k0 + (size_t) c * ks + i);
    for (int r = 0; r < R; r++) {
      __m256 qv = _mm256_loadu_ps (qr[r] + i);
      for (int c = 0; c < C; c++)
        acc[r][c] = _mm256_fmadd_ps (qv, kv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; r++)
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

/* acc[r][:dv] += sum_j p[r][j] v[j][:dv] for R queries sharing each v load */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 void
pv_tile (float acc[QB][DV_MAX], float p[QB][KB], int r0, const float *v0, size_t vs, int nk,
         size_t dv, const int R)
{
  size_t i = 0;
  for (; i + 8 <= dv; i += 8) {
    __m256 a[4];
    for (int r = 0; r < R; r++)
      a[r] = _mm256_loadu_ps (&acc[r0 + r][i]);
    for (int j = 0; j < nk; j++) {
      __m256 vv = _mm256_loadu_ps (v0 + (size_t) j * vs + i);
      for (int r = 0; r < R; r++)
        a[r] = _mm256_fmadd_ps (_mm256_broadcast_ss (&p[r0 + r][j]), vv, a[r]);
    }
    for (int r = 0; r < R; r++)
      _mm256_storeu_ps (&acc[r0 + r][i], a[r]);
  }
  for (; i < dv; i++)
    for (int r = 0; r < R; r++) {
      float s = acc[r0 + r][i];
      for (int j = 0; j < nk; j++)
        s += p[r0 + r][j] * v0[(size_t) j * vs + i];
      acc[r0 + r][i] = s;
    }
}

static DSK_TARGET_AVX2 void
pv_avx2 (float acc[QB][DV_MAX], float p[QB][KB], int nq, const float *v0, size_t vs, int nk,
         size_t dv)
{
  for (int r0 = 0; r0 < nq; r0 += 4) {
    switch (nq - r0 < 4 ? nq - r0 : 4) {
      case 1: pv_tile (acc, p, r0, v0, vs, nk, dv, 1); break;
      case 2: pv_tile (acc, p, r0, v0, vs, nk, dv, 2); break;
      case 3: pv_tile (acc, p, r0, v0, vs, nk, dv, 3); break;
      default: pv_tile (acc, p, r0, v0, vs, nk, dv, 4); break;
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

/* Queries t0 .. t0 + nq - 1 of head h. */
static void
attend (const att *a, size_t h, size_t t0, int nq, int simd)
{
  const size_t hk = h / a->group;
  const float *qr[QB];
  float acc[QB][DV_MAX];
  float sc[QB][KB];
  float m[QB], l[QB];

  for (int r = 0; r < nq; r++) {
    qr[r] = a->q + (t0 + (size_t) r) * a->qs + h * a->qhs;
    memset (acc[r], 0, a->dv * sizeof (float));
    m[r] = -INFINITY;
    l[r] = 0.0f;
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
      const size_t t = t0 + (size_t) r;
      const float *br = a->bias ? a->bias + ((a->bias_heads == 1 ? 0 : h) * a->T + t) * a->bias_ld : NULL;
      const float *rh = a->rel_h ? a->rel_h + (h * a->T + t) * a->kv_h : NULL;
      const float *rw = a->rel_w ? a->rel_w + (h * a->T + t) * a->kv_w : NULL;
      float mb = -INFINITY;
      for (int j = 0; j < nk; j++) {
        const size_t s = s0 + (size_t) j;
        float x;
        if ((a->causal && s > a->pos0 + t) || (a->valid && !a->valid[s])) {
          x = -INFINITY;
        } else {
          x = sc[r][j] * a->scale;
          if (br)
            x += br[s];
          if (rh)
            x += rh[s / a->kv_w] + rw[s % a->kv_w];
        }
        sc[r][j] = x;
        if (x > mb)
          mb = x;
      }
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
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    for (size_t i = 0; i < a->dv; i++)
      o[i] = acc[r][i] * inv;
  }
}

dsk_status
dsk_attention_f32_cpu (float *out, const float *q, const float *k, const float *v,
                       const dsk_attention_params *p)
{
  if (!out || !q || !k || !v || !p)
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

  att a = {
    .q = q, .k = k, .v = v, .out = out,
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
    .bias_ld = p->bias_ld ? p->bias_ld : p->n_kv,
    .rel_h = p->rel_h, .rel_w = p->rel_w, .kv_h = p->kv_h, .kv_w = p->kv_w,
  };
  const int simd = dsk_cpu_has_avx2 ();
  const size_t n_qb = (a.T + QB - 1) / QB, items = a.H * n_qb;
  const double work = (double) a.T * (double) a.S * (double) a.H * (double) (a.dqk + a.dv);

  /* dynamic: with a causal mask late query blocks cost more than early ones */
#pragma omp parallel for schedule(dynamic, 1) if (work > 1e5 && items > 1)
  for (size_t it = 0; it < items; it++) {
    size_t h = it / n_qb, t0 = (it % n_qb) * QB;
    int nq = (int) (a.T - t0 < QB ? a.T - t0 : QB);
    attend (&a, h, t0, nq, simd);
  }
  return DSK_OK;
}
