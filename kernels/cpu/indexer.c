/* indexer.c: DeepSeek-V3.2's lightning indexer and top-k sparse attention on the CPU backend.
 *
 * Reference: transformers 5.23 DeepseekV32Indexer / DeepseekV32Attention (reference sheet
 * 10.2): I(t,s) = sum_j w(t, j) * ReLU(q(t, j) . k(s)); every query keeps the
 * min(index_topk, visible) visible keys of highest I, and the MLA logits of all heads get -inf
 * elsewhere. A decode step (one restricted query) attends over its K keys gathered in key
 * order, which costs K instead of the whole cache. */
#include "backend-cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BLOCK 2048    /* keys per block of the score product */
#define DOT_ROWS 256      /* (query, head) rows per block of the score product */

/* Whether query t of @d sees key s (causal, padding). */
static inline int
visible (const dsk_attention_desc *d, size_t t, size_t s)
{
  if (d->causal && s > d->q_pos0 + t)
    return 0;
  return !d->key_valid || ((const uint8_t *) d->key_valid->data)[s];
}

/* How many keys of @S query t sees. */
static size_t
n_visible (const dsk_attention_desc *d, size_t t, size_t S)
{
  size_t n = 0;
  for (size_t s = 0; s < S; s++)
    n += (size_t) visible (d, t, s);
  return n;
}

/* ---- scores ---- */

/* I(t, s) for one block of queries and keys, from the dot products of every (query, head). */
typedef struct {
  const float *dots;   /* [ni * n_heads, KEY_BLOCK] */
  const dsk_tensor *w, *scores;
  const dsk_attention_desc *desc;
  size_t i0, s0, ns, n_heads;
  float scale;
} relu_sum_run;

static void
relu_sum_item (void *ctx, int i, int thread)
{
  const relu_sum_run *c = ctx;
  const size_t t = c->i0 + (size_t) i;
  const float *wi = dsk_cpu_f32 (c->w, t, 0, 0, 0);
  float *row = dsk_cpu_f32 (c->scores, t, c->s0, 0, 0);
  (void) thread;

  for (size_t s = 0; s < c->ns; s++) {
    float acc = 0.0f;
    if (!visible (c->desc, t, c->s0 + s)) {
      row[s] = -INFINITY;
      continue;
    }
    for (size_t j = 0; j < c->n_heads; j++) {
      const float d = c->dots[((size_t) i * c->n_heads + j) * KEY_BLOCK + s];
      acc += wi[j] * c->scale * (d > 0.0f ? d : 0.0f);
    }
    row[s] = acc;
  }
}

void
dsk_cpu_index_scores (dsk_backend *be, const dsk_tensor *scores, const dsk_tensor *q,
                      const dsk_tensor *w, const dsk_tensor *keys, const dsk_attention_desc *desc,
                      float scale)
{
  dsk_cpu *cpu = dsk_cpu_of (be);
  const size_t n_q = q->ne[0], nH = q->ne[1], D = q->ne[2], n_kv = keys->ne[0];
  const size_t qb = DOT_ROWS / nH ? DOT_ROWS / nH : 1;
  const size_t dot_rows = qb * nH;

  const int packed_q = q->st[1] == D && q->st[0] == nH * D;
  /* work: the dot products of a block, then (a strided q) q packed as [n_q, nH, D] */
  float *dots = dsk_cpu_work (be, (dot_rows * KEY_BLOCK + (packed_q ? 0 : n_q * nH * D)) *
                                  sizeof (float));  /* [qb*nH, KEY_BLOCK] */
  if (!dots)
    return;
  const float *qp = q->data;
  if (!packed_q) {
    float *pack = dots + dot_rows * KEY_BLOCK;
    for (size_t t = 0; t < n_q; t++)
      for (size_t j = 0; j < nH; j++)
        memcpy (pack + (t * nH + j) * D, dsk_cpu_f32 (q, t, j, 0, 0), D * sizeof (float));
    qp = pack;
  }
  for (size_t i0 = 0; i0 < n_q; i0 += qb) {
    const size_t ni = n_q - i0 < qb ? n_q - i0 : qb;
    for (size_t s0 = 0; s0 < n_kv; s0 += KEY_BLOCK) {
      const size_t ns = n_kv - s0 < KEY_BLOCK ? n_kv - s0 : KEY_BLOCK;
      const dsk_mat km = { .data = dsk_cpu_f32 (keys, s0, 0, 0, 0), .dtype = DSK_F32,
                           .rows = (int) ns, .cols = (int) D, .ld = keys->st[0] };
      relu_sum_run c = { dots, w, scores, desc, i0, s0, ns, nH, scale };

      /* dots[(i, j), s] = q(i, j) . k(s) */
      if (!dsk_mm_linear (cpu->mm, dots, KEY_BLOCK, qp + i0 * nH * D, D, ni * nH, &km, 0)) {
        dsk_backend_fail (be, DSK_ERR_NOMEM, "index_scores: out of memory for scratch");
        return;
      }
      dsk_pool_run (cpu->pool, (int) ni, 2.0 * ni * ns * nH, relu_sum_item, &c);
    }
  }
}

/* ---- selection ---- */

static int
compare_i32 (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Whether (score a, index ia) ranks before (b, ib): higher score, then lower index. */
static inline int
before (float a, int32_t ia, float b, int32_t ib)
{
  return a > b || (a == b && ia < ib);
}

int
dsk_topk_cpu (const float *scores, size_t n, int k, int32_t *idx)
{
  int m = 0;  /* heap size: idx[0] is the worst of the kept */

  for (size_t s = 0; s < n; s++) {
    const float v = scores[s];
    int i;
    if (!isfinite (v))
      continue;
    if (m < k) {
      /* sift up */
      i = m++;
      while (i > 0) {
        int parent = (i - 1) / 2;
        if (!before (scores[idx[parent]], idx[parent], v, (int32_t) s))
          break;
        idx[i] = idx[parent];
        i = parent;
      }
      idx[i] = (int32_t) s;
    } else if (k > 0 && before (v, (int32_t) s, scores[idx[0]], idx[0])) {
      /* replace the worst, sift down */
      i = 0;
      for (;;) {
        int c = 2 * i + 1;
        if (c >= m)
          break;
        if (c + 1 < m && before (scores[idx[c]], idx[c], scores[idx[c + 1]], idx[c + 1]))
          c++;
        if (!before (v, (int32_t) s, scores[idx[c]], idx[c]))
          break;
        idx[i] = idx[c];
        i = c;
      }
      idx[i] = (int32_t) s;
    }
  }
  /* heap sort: repeatedly move the worst to the end */
  for (int end = m - 1; end > 0; end--) {
    int32_t worst = idx[0], last = idx[end];
    int i = 0;
    idx[end] = worst;
    for (;;) {
      int c = 2 * i + 1;
      if (c >= end)
        break;
      if (c + 1 < end && before (scores[idx[c]], idx[c], scores[idx[c + 1]], idx[c + 1]))
        c++;
      if (!before (scores[last], last, scores[idx[c]], idx[c]))
        break;
      idx[i] = idx[c];
      i = c;
    }
    idx[i] = last;
  }
  for (int j = m; j < k; j++)
    idx[j] = -1;
  return m;
}

typedef struct {
  const dsk_tensor *idx, *scores;
} topk_run;

static void
topk_item (void *ctx, int t, int thread)
{
  const topk_run *c = ctx;
  (void) thread;
  dsk_topk_cpu (dsk_cpu_f32 (c->scores, (size_t) t, 0, 0, 0), c->scores->ne[1],
                (int) c->idx->ne[1], (int32_t *) c->idx->data + (size_t) t * c->idx->st[0]);
}

void
dsk_cpu_topk (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *scores)
{
  topk_run c = { idx, scores };
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) scores->ne[0],
                4.0 * (double) scores->ne[0] * scores->ne[1], topk_item, &c);
}

/* ---- sparse attention ---- */

/* The additive bias of a chunk: rows of queries that see more than K keys get -inf except
 * at their selected keys, the others 0 (visibility itself is the attention's own mask).
 * Returns how many queries are restricted; @n_vis [T] receives each query's visible count. */
static size_t
restrict_bias (const dsk_attention_desc *d, const dsk_tensor *sel, size_t T, size_t S,
               float *bias, size_t *n_vis)
{
  const size_t K = sel->ne[1];
  size_t n_sparse = 0;
  for (size_t t = 0; t < T; t++) {
    n_vis[t] = n_visible (d, t, S);
    n_sparse += n_vis[t] > K;
  }
  if (n_sparse == 0 || !bias)
    return n_sparse;
  for (size_t t = 0; t < T; t++) {
    float *b = bias + t * S;
    const int32_t *st = (const int32_t *) sel->data + t * sel->st[0];
    if (n_vis[t] > K) {
      for (size_t s = 0; s < S; s++)
        b[s] = -INFINITY;
      for (size_t j = 0; j < K; j++)
        if (st[j] >= 0 && (size_t) st[j] < S)
          b[st[j]] = 0.0f;
    } else {
      memset (b, 0, sizeof (float) * S);
    }
  }
  return n_sparse;
}

typedef struct {
  const dsk_attention_params *p;
  float *out;
  const float *q, *k, *v;
  dsk_pool *pool;
} head_run;

static void
head_items (void *ctx, int item, int thread)
{
  const head_run *c = ctx;
  dsk_attention_item_cpu (c->out, c->q, c->k, c->v, c->p, (size_t) item,
                          dsk_pool_scratch (c->pool, thread, 0));
}

static int
run_heads (dsk_backend *be, const dsk_attention_params *p, float *out, const float *q,
           const float *k, const float *v)
{
  dsk_cpu *cpu = dsk_cpu_of (be);
  size_t n_items, n_scratch;
  head_run c = { p, out, q, k, v, cpu->pool };
  if (dsk_attention_plan_cpu (p, &n_items, &n_scratch) != DSK_OK) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "attention_sparse: the kernel refused the problem");
    return 0;
  }
  if (n_scratch && !dsk_pool_reserve_scratch (cpu->pool, n_scratch)) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "attention_sparse: out of memory for scratch");
    return 0;
  }
  dsk_pool_run (cpu->pool, (int) n_items,
                2.0 * p->n_q * p->n_kv * p->n_heads * (double) (p->d_qk + p->d_v), head_items, &c);
  return 1;
}

void
dsk_cpu_attention_sparse (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q,
                          const dsk_tensor *k, const dsk_tensor *v, const dsk_attention_desc *desc,
                          const dsk_tensor *sel)
{
  const size_t T = q->ne[1], S = k->ne[1], K = sel->ne[1];
  dsk_attention_params p;
  if (!dsk_cpu_attention_strides_ok (q, k, v)) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "attention_sparse: q, k or v broadcast over "
                      "tokens, or only one of k and v broadcast over heads");
    return;
  }
  dsk_cpu_attention_params (&p, out, q, k, v, desc, 0);

  /* work: n_vis [T], then the bias [T, S] or the gathered keys and values */
  const size_t gather_floats = K * p.n_kv_heads * (p.d_qk + p.d_v) + K;
  const size_t need = sizeof (size_t) * T + sizeof (float) * (T * S > gather_floats ? T * S
                                                                                     : gather_floats);
  char *work = dsk_cpu_work (be, need + 64);
  if (!work)
    return;
  size_t *n_vis = (size_t *) work;
  float *rest = (float *) (((uintptr_t) (n_vis + T) + 63) & ~(uintptr_t) 63);
  const size_t n_sparse = restrict_bias (desc, sel, T, S, T == 1 ? NULL : rest, n_vis);

  if (T == 1 && n_sparse == 1) {
    /* one restricted query (a decode step): its K keys gathered in ascending key order, each
     * key's kv heads packed ([n, Hkv, d]) whatever the layout of k and v */
    const size_t Hkv = p.n_kv_heads, dqk = p.d_qk, dv = p.d_v;
    float *kg = rest, *vg = kg + K * Hkv * dqk;   /* [n, Hkv, dqk], [n, Hkv, dv] */
    int32_t *order = (int32_t *) (vg + K * Hkv * dv);
    size_t n = 0;
    for (size_t j = 0; j < K; j++) {
      /* a selection may name keys the query does not see: those stay masked */
      const int32_t s = ((const int32_t *) sel->data)[j];
      if (s >= 0 && (size_t) s < S && visible (desc, 0, (size_t) s))
        order[n++] = s;
    }
    qsort (order, n, sizeof (int32_t), compare_i32);
    for (size_t j = 0; j < n; j++)
      for (size_t h = 0; h < Hkv; h++) {
        memcpy (kg + (j * Hkv + h) * dqk, (const float *) k->data + (size_t) order[j] * p.k_stride +
                h * p.k_head_stride, sizeof (float) * dqk);
        memcpy (vg + (j * Hkv + h) * dv, (const float *) v->data + (size_t) order[j] * p.v_stride +
                h * p.v_head_stride, sizeof (float) * dv);
      }
    p.n_kv = n;
    p.causal = 0;
    p.q_pos0 = 0;
    p.key_valid = NULL;
    p.k_stride = Hkv * dqk;
    p.k_head_stride = dqk;
    p.v_stride = Hkv * dv;
    p.v_head_stride = dv;
    if (n > 0)
      run_heads (be, &p, out->data, q->data, kg, vg);
    else
      dsk_fill (be, out, 0.0f);   /* nothing visible selected: zeros, as attention gives */
    return;
  }
  if (n_sparse > 0) {
    p.bias = rest;
    p.bias_heads = 1;
    p.bias_ld = S;
    p.bias_head_stride = T * S;
  }
  run_heads (be, &p, out->data, q->data, k->data, v->data);
}

/* ---- the KL target: head-summed attention probabilities ---- */

/* One query's row: the attention probabilities of every head (the same logits as the
 * attention, bias included), summed, then L1-normalised: sum / (sum over keys + 1e-10). */
typedef struct {
  const dsk_attention_params *p;
  const float *q, *k;
  const dsk_tensor *dst;
  dsk_pool *pool;
} target_run;

static void
target_item (void *ctx, int t, int thread)
{
  const target_run *c = ctx;
  const dsk_attention_params *p = c->p;
  const size_t nh = p->n_heads, nkv = p->n_kv_heads, d = p->d_qk, S = p->n_kv;
  const size_t qs = p->q_stride, qhs = p->q_head_stride;
  const size_t ks = p->k_stride, khs = p->k_head_stride;
  const size_t bias_ld = p->bias_ld ? p->bias_ld : S, group = nh / nkv;
  const size_t end = p->causal ? (S < p->q_pos0 + (size_t) t + 1 ? S : p->q_pos0 + (size_t) t + 1)
                               : S;
  float *logit = dsk_pool_scratch (c->pool, thread, 0);   /* reserved: S floats + S doubles */
  double *acc = (double *) (logit + ((S + 15) & ~(size_t) 15)), total = 0.0;
  float *dst = dsk_cpu_f32 (c->dst, (size_t) t, 0, 0, 0);

  memset (acc, 0, sizeof (double) * S);
  for (size_t h = 0; h < nh; h++) {
    const float *qh = c->q + (size_t) t * qs + h * qhs;
    const float *bias = p->bias ? p->bias + (size_t) t * bias_ld : NULL;
    float max = -INFINITY;
    double sum = 0.0;
    for (size_t s = 0; s < end; s++) {
      const float *kv = c->k + s * ks + (h / group) * khs;
      float dot = 0.0f, v;
      if (p->key_valid && !p->key_valid[s]) {
        logit[s] = -INFINITY;
        continue;
      }
      for (size_t j = 0; j < d; j++)
        dot += qh[j] * kv[j];
      v = dot * p->scale + (bias ? bias[s] : 0.0f);
      logit[s] = v;
      max = v > max ? v : max;
    }
    if (max == -INFINITY)
      continue;
    for (size_t s = 0; s < end; s++)
      if (logit[s] != -INFINITY)
        sum += exp ((double) logit[s] - max);
    for (size_t s = 0; s < end; s++)
      if (logit[s] != -INFINITY)
        acc[s] += exp ((double) logit[s] - max) / sum;
  }
  for (size_t s = 0; s < S; s++)
    total += acc[s];
  for (size_t s = 0; s < S; s++)
    dst[s] = (float) (acc[s] / (total + 1e-10));
}

void
dsk_cpu_attention_probs (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *q,
                         const dsk_tensor *k, const dsk_attention_desc *desc,
                         const dsk_tensor *sel)
{
  dsk_cpu *cpu = dsk_cpu_of (be);
  const size_t T = q->ne[1], S = k->ne[1];
  dsk_attention_params p;
  if (!dsk_cpu_attention_strides_ok (q, k, NULL)) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "attention_probs: q or k broadcast over tokens");
    return;
  }
  dsk_cpu_attention_params (&p, NULL, q, k, NULL, desc, 0);

  if (sel) {
    char *work = dsk_cpu_work (be, sizeof (size_t) * T + sizeof (float) * T * S + 64);
    if (!work)
      return;
    size_t *n_vis = (size_t *) work;
    float *bias = (float *) (((uintptr_t) (n_vis + T) + 63) & ~(uintptr_t) 63);
    if (restrict_bias (desc, sel, T, S, bias, n_vis) > 0) {
      p.bias = bias;
      p.bias_heads = 1;
      p.bias_ld = S;
    }
  }
  if (!dsk_pool_reserve_scratch (cpu->pool, ((S + 15) & ~(size_t) 15) + 2 * S)) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "attention_probs: out of memory for scratch");
    return;
  }
  target_run c = { &p, q->data, k->data, dst, cpu->pool };
  dsk_pool_run (cpu->pool, (int) T, 2.0 * T * S * p.n_heads * (double) p.d_qk, target_item, &c);
}
