/* decoder.c: the DeepSeek-V2-family layer loop on the CPU (float32 activations).
 *
 * References reproduced here (transformers 5.23 unless noted):
 * - MHA layers: DeepseekOcr2TextAttention (LlamaAttention: rotate-half RoPE on the whole head)
 * - MLA layers: DeepseekV2Attention / DeepseekV3Attention (latent KV, RoPE on the q_pe/k_pe
 *   part, interleaved pairs unless rope_interleave is false, yarn mscale^2 in the scale)
 * - routers: DeepseekV2TopkRouter (greedy, group_limited_greedy), DeepseekV3TopkRouter
 *   (noaux_tc), with norm_topk_prob as the hub's modeling_deepseekv2.py applies it
 * - experts: DeepseekV2Experts (routed outputs weighted and summed in f32, experts in
 *   ascending id order) plus the shared-expert MLP.
 *
 * Threads: the session's pool (decoder-cpu.h) runs the matrix products, the experts and the
 * attention heads as work items; dsk's element-wise ops (norms, RoPE, softmax) run on the
 * calling thread.
 */
#include "decoder.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "decoder-cpu.h"
#include "dsk.h"
#include "dsocr/dsocr-error.h"

/* A growable float buffer. */
typedef struct {
  float *data;
  gsize cap;
} buffer;

struct dsocr_decoder_state {
  const dsocr_model *model;
  dsocr_pool *pool;
  dsocr_mm *mm;
  dsocr_mla_form mla_form;
  dsocr_indexer *indexer;    // DeepSeek-V3.2 sparse attention (indexer.c), NULL without

  float *cos_tab, *sin_tab;  // [n_pos, rope_dim / 2]
  size_t n_pos;

  buffer xn;       // [T, n_embd] normed input of a block
  buffer q;        // [T, n_head * d_q]: MHA q, MLA q (nope | pe)
  buffer k;        // [T, n_kv_head * head_dim] (MHA new keys) / [T, kv_lora + rope] (MLA)
  buffer v;        // [T, n_kv_head * head_dim] (MHA new values)
  buffer qa;       // [T, q_lora_rank]
  buffer kvb;      // [S, n_head * (nope + v)] expanded keys/values of one row (MLA), or the
                   // absorbed queries [T, n_head, kv_lora + rope]
  buffer kfull;    // [S, n_head, nope + rope] expanded keys of one row (MLA)
  buffer att;      // [T, n_head * d_v] attention output (absorbed: [T, n_head * kv_lora])
  buffer att2;     // [T, n_head * v_head] absorbed: attention output after W_vb
  buffer proj;     // [T, n_embd] block output
  buffer gate;     // [T, inter] dense MLP
  buffer up;       // [T, inter] dense MLP
  buffer logits_r; // [T, n_experts] router logits, then scores
  buffer eout;     // [T * top_k + T, n_embd] expert outputs, one row per (token, choice)
  int32_t *topk_idx;   // [T, top_k]
  float *topk_w;       // [T, top_k]
  int32_t *exp_rows;   // [T * top_k] token ids grouped by expert
  int *exp_count;      // [n_experts + 1] offsets into exp_rows
  int *exp_fill;       // [n_experts] next free slot of each expert while grouping
  int32_t *slot_of;    // [T * top_k] expert-output row of each (token, choice)
  dsocr_expert_job *jobs;  // [n_experts + 1] the experts with tokens, then the shared MLP
  float *bias_f32;     // [n_experts] e_score_correction_bias widened
  float *choice;       // [n_experts] scores a token's experts are chosen by
  float *group_score;  // [n_group]
  int32_t *kept;       // [n_group] groups kept
  gsize route_cap;
};

static gboolean
ensure (buffer *b, gsize n, GError **error)
{
  float *p;

  if (n <= b->cap)
    return TRUE;
  p = g_try_realloc (b->data, sizeof (float) * n);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "decoder: cannot allocate %" G_GSIZE_FORMAT
                 " floats of scratch", n);
    return FALSE;
  }
  b->data = p;
  b->cap = n;
  return TRUE;
}

static inline dsk_dtype
dt (const dsocr_tensor *t)
{
  return (dsk_dtype) t->dtype;
}

static dsocr_mat
mat_of (const dsocr_linear *lin)
{
  return (dsocr_mat) {
    .data = lin->w->data,
    .dtype = dt (lin->w),
    .rows = lin->n_out,
    .cols = lin->n_in,
    .ld = (size_t) lin->n_in,
    .bias = lin->b ? lin->b->data : NULL,
    .bias_dtype = lin->b ? dt (lin->b) : DSK_F32,
  };
}

/* y[n, out] = x[n, in] W^T (+ b), packed rows. */
static gboolean
project (dsocr_decoder_state *s, float *y, const float *x, const dsocr_linear *lin, size_t n,
         GError **error)
{
  const dsocr_mat w = mat_of (lin);
  return dsocr_mm_linear (s->mm, y, (size_t) lin->n_out, x, (size_t) lin->n_in, n, &w, error);
}

static void
rmsnorm (float *y, const float *x, const dsocr_tensor *w, size_t n, size_t dim, size_t ld,
         double eps)
{
  dsk_rmsnorm_f32_cpu (y, ld, x, ld, w->data, dt (w), n, dim, (float) eps);
}

dsocr_decoder_state *
dsocr_decoder_state_new (const dsocr_model *model, int n_threads, dsocr_mla_form mla_form)
{
  dsocr_decoder_state *s = g_new0 (dsocr_decoder_state, 1);
  const int E = MAX (model->config->text.n_routed_experts, 1);
  const int G = MAX (model->config->text.n_group, 1);

  s->model = model;
  s->pool = dsocr_pool_new (MAX (n_threads, 1));
  s->mm = dsocr_mm_new (s->pool);
  s->mla_form = mla_form;
  s->indexer = dsocr_indexer_new (model->config, s->pool, s->mm);
  s->exp_count = g_new0 (int, E + 1);
  s->exp_fill = g_new0 (int, E);
  s->bias_f32 = g_new0 (float, E);
  s->choice = g_new0 (float, E);
  s->group_score = g_new0 (float, G);
  s->kept = g_new0 (int32_t, G);
  s->jobs = g_new0 (dsocr_expert_job, E + 1);
  return s;
}

void
dsocr_decoder_state_free (dsocr_decoder_state *s)
{
  if (!s)
    return;
  {
    buffer *bufs[] = { &s->xn, &s->q, &s->k, &s->v, &s->qa, &s->kvb, &s->kfull, &s->att,
                       &s->att2, &s->proj, &s->gate, &s->up, &s->logits_r, &s->eout };
    for (gsize i = 0; i < G_N_ELEMENTS (bufs); i++)
      g_free (bufs[i]->data);
  }
  dsocr_indexer_free (s->indexer);
  dsocr_mm_free (s->mm);
  dsocr_pool_free (s->pool);
  g_free (s->cos_tab);
  g_free (s->sin_tab);
  g_free (s->topk_idx);
  g_free (s->topk_w);
  g_free (s->exp_rows);
  g_free (s->exp_count);
  g_free (s->exp_fill);
  g_free (s->slot_of);
  g_free (s->jobs);
  g_free (s->bias_f32);
  g_free (s->choice);
  g_free (s->group_score);
  g_free (s->kept);
  g_free (s);
}

dsocr_indexer *
dsocr_decoder_get_indexer (dsocr_decoder_state *s)
{
  return s->indexer;
}

/* Makes the cos/sin tables cover positions [0, max_pos]. */
static gboolean
ensure_rope (dsocr_decoder_state *s, int32_t max_pos, GError **error)
{
  const dsocr_model *m = s->model;
  const size_t half = (size_t) m->config->text.rope_dim / 2;
  size_t n_pos;
  float *c, *sn;

  if ((size_t) max_pos < s->n_pos)
    return TRUE;
  n_pos = MAX ((size_t) max_pos + 1, s->n_pos * 2);
  n_pos = MAX (n_pos, 256);
  c = g_try_new (float, n_pos * half);
  sn = g_try_new (float, n_pos * half);
  if (!c || !sn) {
    g_free (c);
    g_free (sn);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "decoder: cannot allocate RoPE tables for %zu positions", n_pos);
    return FALSE;
  }
  dsk_rope_tables_cpu (c, sn, m->rope_inv_freq, half * 2, n_pos, m->rope_scale);
  g_free (s->cos_tab);
  g_free (s->sin_tab);
  s->cos_tab = c;
  s->sin_tab = sn;
  s->n_pos = n_pos;
  return TRUE;
}


/* ---- attention ---- */

/* Attention of every (row, head) as pool items: each item calls dsk's attention for one query
 * head of one row over that row's cache. Strides and the head mapping describe q, k, v, out. */
typedef struct {
  const dsocr_kv_cache *cache;
  int n_tokens, n_heads, kv_group;        /* query head h reads kv head h / kv_group */
  size_t d_qk, d_v;
  const float *q;                         /* [T, q_stride] head h at h * q_head */
  size_t q_stride, q_head;
  const float *k, *v;                     /* NULL: the row's cache buffers (k, v of the layer) */
  size_t k_stride, k_head, v_stride, v_head, v_off;
  int layer;
  float *out;                             /* [T, out_stride] head h at h * d_v */
  size_t out_stride;
  float scale;
  gboolean k_is_cache_k, v_is_cache_k;    /* k / v read from the cache's k buffer (MLA) */
} attn_run;

static void
attn_item (void *ctx, int item, int thread)
{
  const attn_run *c = ctx;
  const int r = item / c->n_heads, h = item % c->n_heads, kvh = h / c->kv_group;
  const dsocr_kv_cache *cache = c->cache;
  const size_t row0 = (size_t) r * c->n_tokens;
  const float *kb = c->k ? c->k : c->k_is_cache_k ? dsocr_kv_cache_k (cache, c->layer, r)
                                                  : dsocr_kv_cache_v (cache, c->layer, r);
  const float *vb = c->v ? c->v : c->v_is_cache_k ? dsocr_kv_cache_k (cache, c->layer, r)
                                                  : dsocr_kv_cache_v (cache, c->layer, r);
  dsk_attention_params p = {
    .n_q = (size_t) c->n_tokens,
    .n_kv = (size_t) cache->n_past + c->n_tokens,
    .n_heads = 1,
    .n_kv_heads = 1,
    .d_qk = c->d_qk,
    .d_v = c->d_v,
    .q_stride = c->q_stride,
    .k_stride = c->k_stride,
    .v_stride = c->v_stride,
    .out_stride = c->out_stride,
    .scale = c->scale,
    .causal = 1,
    .q_pos0 = (size_t) cache->n_past,
    .key_valid = cache->mask[r],
  };

  dsk_attention_f32_cpu (c->out + row0 * c->out_stride + (size_t) h * c->d_v,
                         c->q + row0 * c->q_stride + (size_t) h * c->q_head,
                         kb + (size_t) kvh * c->k_head, vb + c->v_off + (size_t) kvh * c->v_head,
                         &p);
}

static void
run_attention (dsocr_decoder_state *s, attn_run *c, int n_seq)
{
  const double S = (double) c->cache->n_past + c->n_tokens;
  const double flops = 2.0 * n_seq * c->n_tokens * S * c->n_heads * (double) (c->d_qk + c->d_v);
  dsocr_pool_run (s->pool, n_seq * c->n_heads, flops, attn_item, c);
}

/* DSA layers: the same attention with each query restricted to the keys the indexer picks
 * (indexer.c), row by row; operand row i belongs to cache row @row0 + i. */
static gboolean
run_attention_sparse (dsocr_decoder_state *s, const attn_run *c, int n_seq, int row0,
                      GError **error)
{
  const dsocr_kv_cache *cache = c->cache;

  for (int i = 0; i < n_seq; i++) {
    const size_t t0 = (size_t) i * c->n_tokens;
    const float *kb = c->k ? c->k : c->k_is_cache_k ? dsocr_kv_cache_k (cache, c->layer, i)
                                                    : dsocr_kv_cache_v (cache, c->layer, i);
    const float *vb = c->v ? c->v : c->v_is_cache_k ? dsocr_kv_cache_k (cache, c->layer, i)
                                                    : dsocr_kv_cache_v (cache, c->layer, i);
    dsk_attention_params p = {
      .n_q = (size_t) c->n_tokens,
      .n_kv = (size_t) cache->n_past + c->n_tokens,
      .n_heads = (size_t) c->n_heads,
      .n_kv_heads = (size_t) (c->n_heads / c->kv_group),
      .d_qk = c->d_qk,
      .d_v = c->d_v,
      .q_stride = c->q_stride,
      .k_stride = c->k_stride,
      .v_stride = c->v_stride,
      .out_stride = c->out_stride,
      .q_head_stride = c->q_head,
      .k_head_stride = c->k_head,
      .v_head_stride = c->v_head,
      .out_head_stride = c->d_v,
      .scale = c->scale,
      .causal = 1,
      .q_pos0 = (size_t) cache->n_past,
      .key_valid = cache->mask[i],
    };
    if (!dsocr_indexer_attention (s->indexer, row0 + i, c->out + t0 * c->out_stride,
                                  c->q + t0 * c->q_stride, kb, vb + c->v_off, &p, error))
      return FALSE;
  }
  return TRUE;
}

/* MHA: q, k, v projections, rotate-half RoPE over the whole head, cache append, causal
 * attention over the row's cache, o_proj. @out: [T, n_embd]. */
static gboolean
attention_mha (dsocr_decoder_state *s, const dsocr_layer *ly, int il, dsocr_kv_cache *cache,
               int n_seq, int n_tokens, const int32_t *positions, float *out, GError **error)
{
  const dsocr_text_config *t = &s->model->config->text;
  const size_t T = (size_t) n_seq * n_tokens, nh = t->num_attention_heads,
               nkv = t->num_key_value_heads, hd = t->head_dim;
  const size_t kw = nkv * hd;
  float *q = s->q.data, *k = s->k.data, *v = s->v.data;  // [T, nh*hd], [T, kw], [T, kw]
  attn_run c = {
    .cache = cache, .n_tokens = n_tokens, .n_heads = (int) nh, .kv_group = (int) (nh / nkv),
    .d_qk = hd, .d_v = hd, .q = q, .q_stride = nh * hd, .q_head = hd,
    .k_stride = kw, .k_head = hd, .v_stride = kw, .v_head = hd, .layer = il,
    .out = s->att.data, .out_stride = nh * hd, .scale = (float) t->softmax_scale,
    .k_is_cache_k = TRUE, .v_is_cache_k = FALSE,
  };

  if (!project (s, q, s->xn.data, &ly->q, T, error) ||
      !project (s, k, s->xn.data, &ly->k, T, error) ||
      !project (s, v, s->xn.data, &ly->v, T, error))
    return FALSE;
  dsk_rope_f32_cpu (q, T, nh, nh * hd, hd, 0, hd, positions, s->cos_tab, s->sin_tab, s->n_pos,
                    DSK_ROPE_HALF);
  dsk_rope_f32_cpu (k, T, nkv, kw, hd, 0, hd, positions, s->cos_tab, s->sin_tab, s->n_pos,
                    DSK_ROPE_HALF);
  for (int r = 0; r < n_seq; r++) {
    const size_t row0 = (size_t) r * n_tokens;
    memcpy (dsocr_kv_cache_k (cache, il, r) + (size_t) cache->n_past * kw, k + row0 * kw,
            sizeof (float) * n_tokens * kw);
    memcpy (dsocr_kv_cache_v (cache, il, r) + (size_t) cache->n_past * kw, v + row0 * kw,
            sizeof (float) * n_tokens * kw);
  }
  run_attention (s, &c, n_seq);
  return project (s, out, s->att.data, &ly->o, T, error);
}

/* out[i, 0 .. out_dim) = x[i, 0 .. in_dim) · W for W [in_dim, out_dim] with rows ld_w apart:
 * the absorbed MLA query needs W itself, not W^T. */
static void
matmul_xw (float *y, size_t ldy, const float *x, size_t ldx, const void *w, dsk_dtype w_dtype,
           size_t ld_w, size_t n, size_t in_dim, size_t out_dim)
{
  const size_t esize = dsk_dtype_size (w_dtype);

  for (size_t i = 0; i < n; i++) {
    float *yi = y + i * ldy;
    memset (yi, 0, sizeof (float) * out_dim);
    for (size_t d = 0; d < in_dim; d++) {
      const float a = x[i * ldx + d];
      const char *row = (const char *) w + d * ld_w * esize;
      if (w_dtype == DSK_BF16) {
        const uint16_t *wr = (const uint16_t *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * dsk_bf16_to_f32 (wr[j]);
      } else if (w_dtype == DSK_F16) {
        const uint16_t *wr = (const uint16_t *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * dsk_f16_to_f32 (wr[j]);
      } else {
        const float *wr = (const float *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * wr[j];
      }
    }
  }
}

/* The absorbed query of one head: q~_h = q_nope_h · W_kb_h, then q_pe_h appended. */
typedef struct {
  const dsocr_text_config *t;
  const dsocr_tensor *wkvb;
  const float *q;
  float *qt;
  size_t T;
} absorb_run;

static void
absorb_item (void *ctx, int h, int thread)
{
  const absorb_run *c = ctx;
  const dsocr_text_config *t = c->t;
  const size_t nh = t->num_attention_heads, nope = t->qk_nope_head_dim, rope = t->qk_rope_head_dim,
               vd = t->v_head_dim, kvr = t->kv_lora_rank, qk = nope + rope, cw = kvr + rope;
  const char *wb = c->wkvb->data;

  matmul_xw (c->qt + h * cw, nh * cw, c->q + h * qk, nh * qk,
             wb + (size_t) h * (nope + vd) * kvr * dsocr_dtype_size (c->wkvb->dtype),
             dt (c->wkvb), kvr, c->T, nope, kvr);
  for (size_t i = 0; i < c->T; i++)
    memcpy (c->qt + (i * nh + h) * cw + kvr, c->q + (i * nh + h) * qk + nope,
            sizeof (float) * rope);
}

/* MLA: query (direct or LoRA), latent c + k_pe (cached), then either the expanded form
 * (decompress keys/values of every cached column) or the absorbed one (fold kv_b_proj into
 * the query and the output and attend over the latent directly). @out: [T, n_embd]. */
static gboolean
attention_mla (dsocr_decoder_state *s, const dsocr_layer *ly, int il, dsocr_kv_cache *cache,
               int n_seq, int n_tokens, const int32_t *positions, float *out, GError **error)
{
  const dsocr_text_config *t = &s->model->config->text;
  const size_t T = (size_t) n_seq * n_tokens, nh = t->num_attention_heads;
  const size_t nope = t->qk_nope_head_dim, rope = t->qk_rope_head_dim, vd = t->v_head_dim;
  const size_t qk = nope + rope, kvr = t->kv_lora_rank, cw = kvr + rope;
  const size_t S = (size_t) cache->n_past + n_tokens;
  const dsk_rope_mode mode = t->rope_interleave ? DSK_ROPE_INTERLEAVED : DSK_ROPE_HALF;
  const dsocr_tensor *wkvb = ly->kv_b.w;  // [nh * (nope + vd), kvr]
  const size_t esize = dsocr_dtype_size (wkvb->dtype);
  gboolean absorbed;
  float *q = s->q.data, *c = s->k.data;  // [T, nh * qk], [T, kvr + rope]

  if (t->q_lora_rank > 0) {
    if (!ensure (&s->qa, T * t->q_lora_rank, error) ||
        !project (s, s->qa.data, s->xn.data, &ly->q_a, T, error))
      return FALSE;
    rmsnorm (s->qa.data, s->qa.data, ly->q_a_norm, T, t->q_lora_rank, t->q_lora_rank,
             t->rms_norm_eps);
    if (!project (s, q, s->qa.data, &ly->q_b, T, error))
      return FALSE;
  } else if (!project (s, q, s->xn.data, &ly->q, T, error)) {
    return FALSE;
  }
  if (!project (s, c, s->xn.data, &ly->kv_a, T, error))
    return FALSE;
  rmsnorm (c, c, ly->kv_a_norm, T, kvr, cw, t->rms_norm_eps);
  dsk_rope_f32_cpu (q, T, nh, nh * qk, qk, nope, rope, positions, s->cos_tab, s->sin_tab,
                    s->n_pos, mode);
  dsk_rope_f32_cpu (c, T, 1, cw, cw, kvr, rope, positions, s->cos_tab, s->sin_tab, s->n_pos,
                    mode);
  for (int r = 0; r < n_seq; r++)
    memcpy (dsocr_kv_cache_k (cache, il, r) + (size_t) cache->n_past * cw,
            c + (size_t) r * n_tokens * cw, sizeof (float) * n_tokens * cw);
  if (ly->indexer && !dsocr_indexer_prepare (s->indexer, ly->indexer, il, cache, n_seq, n_tokens,
                                             s->xn.data, s->qa.data, positions, s->cos_tab,
                                             s->sin_tab, s->n_pos, error))
    return FALSE;

  switch (s->mla_form) {
  case DSOCR_MLA_EXPANDED:
    absorbed = FALSE;
    break;
  case DSOCR_MLA_ABSORBED:
    absorbed = TRUE;
    break;
  default:
    /* Expanding costs S * kvr * nh * (nope + vd) per row and layer, absorbing about
     * T * S * nh * 2 * kvr: absorb when few columns join a longer cache. */
    absorbed = cache->n_past > 0 && 2 * (size_t) n_tokens < nope + vd;
    break;
  }

  if (!absorbed) {
    const dsocr_mat w = mat_of (&ly->kv_b);
    if (!ensure (&s->kvb, S * nh * (nope + vd), error) || !ensure (&s->kfull, S * nh * qk, error))
      return FALSE;
    for (int r = 0; r < n_seq; r++) {
      const float *cr = dsocr_kv_cache_k (cache, il, r);  // [S, kvr + rope]
      float *kvb = s->kvb.data, *kf = s->kfull.data;     // [S, nh, nope + vd], [S, nh, qk]
      const size_t row0 = (size_t) r * n_tokens;
      attn_run a = {
        .cache = cache, .n_tokens = n_tokens, .n_heads = (int) nh, .kv_group = 1,
        .d_qk = qk, .d_v = vd, .q = q + row0 * nh * qk, .q_stride = nh * qk, .q_head = qk,
        .k = kf, .k_stride = nh * qk, .k_head = qk,
        .v = kvb, .v_stride = nh * (nope + vd), .v_head = nope + vd, .v_off = nope,
        .layer = il, .out = s->att.data + row0 * nh * vd, .out_stride = nh * vd,
        .scale = (float) t->softmax_scale,
      };

      if (!dsocr_mm_linear (s->mm, kvb, nh * (nope + vd), cr, cw, S, &w, error))
        return FALSE;
      for (size_t j = 0; j < S; j++) {
        for (size_t h = 0; h < nh; h++) {
          memcpy (kf + (j * nh + h) * qk, kvb + (j * nh + h) * (nope + vd), sizeof (float) * nope);
          memcpy (kf + (j * nh + h) * qk + nope, cr + j * cw + kvr, sizeof (float) * rope);
        }
      }
      /* one row at a time: the items of run_attention address row r through the cache; the
       * expanded keys and values here are this row's only */
      {
        dsocr_kv_cache one = *cache;
        one.mask = cache->mask + r;
        a.cache = &one;
        if (!ly->indexer)
          run_attention (s, &a, 1);
        else if (!run_attention_sparse (s, &a, 1, r, error))
          return FALSE;
      }
    }
    return project (s, out, s->att.data, &ly->o, T, error);
  }

  /* Absorbed: q~_h = q_nope_h · W_kb_h (W_kb_h = rows [h (nope+vd), +nope) of kv_b), keys and
   * values are the cached [c | k_pe] (one shared head), and the attended latent goes back
   * through W_vb_h (the next vd rows). */
  if (!ensure (&s->kvb, T * nh * cw, error) || !ensure (&s->att, T * nh * kvr, error) ||
      !ensure (&s->att2, T * nh * vd, error))
    return FALSE;
  {
    absorb_run ab = { t, wkvb, q, s->kvb.data, T };
    attn_run a = {
      .cache = cache, .n_tokens = n_tokens, .n_heads = (int) nh, .kv_group = (int) nh,
      .d_qk = cw, .d_v = kvr, .q = s->kvb.data, .q_stride = nh * cw, .q_head = cw,
      .k_stride = cw, .k_head = 0, .v_stride = cw, .v_head = 0, .layer = il,
      .out = s->att.data, .out_stride = nh * kvr, .scale = (float) t->softmax_scale,
      .k_is_cache_k = TRUE, .v_is_cache_k = TRUE,
    };

    dsocr_pool_run (s->pool, (int) nh, 2.0 * T * nh * nope * kvr, absorb_item, &ab);
    if (!ly->indexer)
      run_attention (s, &a, n_seq);
    else if (!run_attention_sparse (s, &a, n_seq, 0, error))
      return FALSE;
    for (size_t h = 0; h < nh; h++) {
      const dsocr_mat wvb = {
        .data = (const char *) wkvb->data + (h * (nope + vd) + nope) * kvr * esize,
        .dtype = dt (wkvb), .rows = (int) vd, .cols = (int) kvr, .ld = kvr,
      };
      if (!dsocr_mm_linear (s->mm, s->att2.data + h * vd, nh * vd, s->att.data + h * kvr,
                            nh * kvr, T, &wvb, error))
        return FALSE;
    }
    return project (s, out, s->att2.data, &ly->o, T, error);
  }
}

/* ---- feed-forward ---- */

static gboolean
swiglu_mlp (dsocr_decoder_state *s, const dsocr_linear *gate, const dsocr_linear *up,
            const dsocr_linear *down, size_t T, float *out, GError **error)
{
  const size_t inter = (size_t) gate->n_out;
  if (!ensure (&s->gate, T * inter, error) || !ensure (&s->up, T * inter, error) ||
      !project (s, s->gate.data, s->xn.data, gate, T, error) ||
      !project (s, s->up.data, s->xn.data, up, T, error))
    return FALSE;
  dsk_swiglu_f32_cpu (s->gate.data, s->gate.data, s->up.data, T * inter);
  return project (s, out, s->gate.data, down, T, error);
}

/* Picks the top_k largest of @scores[n] into @idx (the lowest id first among equal values:
 * torch.topk leaves their order and choice unspecified). */
static void
top_k (const float *scores, int n, int k, int32_t *idx)
{
  for (int j = 0; j < k; j++) {
    int best = -1;
    for (int e = 0; e < n; e++) {
      gboolean taken = FALSE;
      for (int i = 0; i < j && !taken; i++)
        taken = idx[i] == e;
      if (!taken && (best < 0 || scores[e] > scores[best]))
        best = e;
    }
    idx[j] = best;
  }
}

static int
compare_i32 (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Router of one token: @logits [E] -> @idx [k] (ascending) and @w [k]. */
static void
route_token (dsocr_decoder_state *s, const float *bias_f32, float *logits, int32_t *idx,
             float *w)
{
  const dsocr_text_config *t = &s->model->config->text;
  const int E = t->n_routed_experts, k = t->num_experts_per_tok;
  const int n_group = t->n_group > 0 ? t->n_group : 1, per_group = E / n_group;
  float *choice = s->choice;            // [E] scores used to choose (biased for noaux_tc)
  float *group_score = s->group_score;  // [n_group]
  int32_t *kept = s->kept;              // [topk_group]
  float sum = 0.0f;

  if (t->scoring_func == DSOCR_SCORING_SIGMOID) {
    for (int e = 0; e < E; e++)
      logits[e] = 1.0f / (1.0f + expf (-logits[e]));
  } else {
    dsk_softmax_f32_cpu (logits, logits, NULL, 0, 1, (size_t) E);
  }
  for (int e = 0; e < E; e++)
    choice[e] = logits[e] + (bias_f32 ? bias_f32[e] : 0.0f);

  if (t->topk_method != DSOCR_TOPK_GREEDY && n_group > 1) {
    const int topk_group = t->topk_group > 0 ? t->topk_group : 1;
    for (int g = 0; g < n_group; g++) {
      const float *cg = choice + g * per_group;
      if (t->topk_method == DSOCR_TOPK_NOAUX_TC) {
        int32_t two[2];   // the two best biased scores of the group
        top_k (cg, per_group, MIN (2, per_group), two);
        group_score[g] = cg[two[0]] + (per_group > 1 ? cg[two[1]] : 0.0f);
      } else {
        float best = cg[0];   // group_limited_greedy: the group's best probability
        for (int e = 1; e < per_group; e++)
          best = MAX (best, cg[e]);
        group_score[g] = best;
      }
    }
    top_k (group_score, n_group, topk_group, kept);
    for (int g = 0; g < n_group; g++) {
      gboolean keep = FALSE;
      for (int i = 0; i < topk_group && !keep; i++)
        keep = kept[i] == g;
      /* transformers fills dropped groups with -inf for noaux_tc, 0.0 for
       * group_limited_greedy */
      if (!keep)
        for (int e = 0; e < per_group; e++)
          choice[g * per_group + e] = t->topk_method == DSOCR_TOPK_NOAUX_TC ? -INFINITY : 0.0f;
    }
  }
  top_k (choice, E, k, idx);
  qsort (idx, (size_t) k, sizeof *idx, compare_i32);
  for (int j = 0; j < k; j++) {
    /* group_limited_greedy weighs with the masked scores (0 for a dropped group) */
    w[j] = t->topk_method == DSOCR_TOPK_GROUP_LIMITED_GREEDY ? choice[idx[j]] : logits[idx[j]];
    sum += w[j];
  }
  if (t->norm_topk_prob && (k > 1 || t->topk_method == DSOCR_TOPK_NOAUX_TC)) {
    for (int j = 0; j < k; j++)
      w[j] = w[j] / (sum + 1e-20f);
  }
  for (int j = 0; j < k; j++)
    w[j] = w[j] * (float) t->routed_scaling_factor;
}

/* The routed sum of tokens [16 item, 16 item + 16): f32, experts in ascending id order (the
 * reference's index_add_ loop), then the shared experts. */
typedef struct {
  const dsocr_decoder_state *s;
  size_t T, H;
  int k;
  gboolean shared;
  float *out;
} combine_run;

static void
combine_item (void *ctx, int item, int thread)
{
  const combine_run *c = ctx;
  const dsocr_decoder_state *s = c->s;
  const size_t H = c->H;

  for (size_t i = (size_t) item * 16; i < MIN (c->T, (size_t) item * 16 + 16); i++) {
    float *o = c->out + i * H;
    memset (o, 0, sizeof (float) * H);
    for (int j = 0; j < c->k; j++) {
      const float w = s->topk_w[i * c->k + j];
      const float *e = s->eout.data + (size_t) s->slot_of[i * c->k + j] * H;
      for (size_t col = 0; col < H; col++)
        o[col] = o[col] + e[col] * w;
    }
    if (c->shared) {
      const float *sh = s->eout.data + (c->T * c->k + i) * H;
      for (size_t col = 0; col < H; col++)
        o[col] = o[col] + sh[col];
    }
  }
}

static dsocr_expert_job
job_of (const dsocr_linear *g, const dsocr_linear *u, const dsocr_linear *d, int n,
        const int32_t *rows, size_t slot0)
{
  return (dsocr_expert_job) { mat_of (g), mat_of (u), mat_of (d), n, rows, slot0 };
}

static gboolean
moe (dsocr_decoder_state *s, const dsocr_layer *ly, int il, size_t T, float *out,
     int n_seq, int n_tokens, dsocr_tensor_callback callback, gpointer user_data, GError **error)
{
  const dsocr_text_config *t = &s->model->config->text;
  const int E = t->n_routed_experts, k = t->num_experts_per_tok;
  const size_t H = t->hidden_size;
  const size_t n_slots = T * k + (ly->has_shared ? T : 0);
  const dsocr_linear router = { .w = ly->router, .n_out = E, .n_in = (int) H };
  int n_jobs = 0;
  float *logits;

  if (!ensure (&s->logits_r, T * E, error) || !ensure (&s->eout, n_slots * H, error))
    return FALSE;
  if (s->route_cap < T * k) {
    s->route_cap = T * k;
    s->topk_idx = g_renew (int32_t, s->topk_idx, T * k);
    s->topk_w = g_renew (float, s->topk_w, T * k);
    s->exp_rows = g_renew (int32_t, s->exp_rows, T * k);
    s->slot_of = g_renew (int32_t, s->slot_of, T * k);
  }
  if (ly->router_bias)
    dsk_convert_to_f32_cpu (s->bias_f32, ly->router_bias->data, dt (ly->router_bias),
                            (size_t) E);

  /* Router logits in f32 from the f32 activations and the widened weight. */
  logits = s->logits_r.data;
  if (!project (s, logits, s->xn.data, &router, T, error))
    return FALSE;
  for (size_t i = 0; i < T; i++)
    route_token (s, ly->router_bias ? s->bias_f32 : NULL, logits + i * E, s->topk_idx + i * k,
                 s->topk_w + i * k);

  if (callback) {
    dsocr_tensor ti = { .name = "router.topk_idx" }, tw = { .name = "router.topk_weight" };
    const int64_t shape[3] = { n_seq, n_tokens, k };
    dsocr_tensor_init (&ti, DSOCR_DTYPE_I32, 3, shape, NULL);
    dsocr_tensor_init (&tw, DSOCR_DTYPE_F32, 3, shape, NULL);
    ti.data = s->topk_idx;
    tw.data = s->topk_w;
    callback (&ti, il, user_data);
    callback (&tw, il, user_data);
  }

  /* Group the tokens by expert (ascending within an expert); slot_of maps each (token,
   * choice) to its row of the expert outputs. */
  memset (s->exp_count, 0, sizeof (int) * (E + 1));
  for (size_t i = 0; i < T * k; i++)
    s->exp_count[s->topk_idx[i] + 1]++;
  for (int e = 0; e < E; e++)
    s->exp_count[e + 1] += s->exp_count[e];
  memcpy (s->exp_fill, s->exp_count, sizeof (int) * E);
  for (size_t i = 0; i < T * k; i++) {
    int e = s->topk_idx[i];
    s->exp_rows[s->exp_fill[e]] = (int32_t) (i / k);
    s->slot_of[i] = s->exp_fill[e]++;
  }
  for (int e = 0; e < E; e++) {
    int n = s->exp_count[e + 1] - s->exp_count[e];
    if (n > 0)
      s->jobs[n_jobs++] = job_of (&ly->exp_gate[e], &ly->exp_up[e], &ly->exp_down[e], n,
                                  s->exp_rows + s->exp_count[e], (size_t) s->exp_count[e]);
  }
  if (ly->has_shared)
    s->jobs[n_jobs++] = job_of (&ly->sh_gate, &ly->sh_up, &ly->sh_down, (int) T, NULL, T * k);
  if (!dsocr_mm_experts (s->mm, s->jobs, n_jobs, s->xn.data, H, s->eout.data, error))
    return FALSE;

  {
    combine_run c = { s, T, H, k, ly->has_shared, out };
    dsocr_pool_run (s->pool, (int) ((T + 15) / 16), (double) T * (k + 1) * H * 2, combine_item,
                    &c);
  }
  return TRUE;
}

/* ---- the layer loop ---- */

static void
emit (dsocr_tensor_callback callback, gpointer user_data, const char *name, int layer,
      const float *data, int n_seq, int n_tokens, int n_embd)
{
  dsocr_tensor t = { .name = name };
  const int64_t shape[3] = { n_seq, n_tokens, n_embd };

  if (!callback)
    return;
  dsocr_tensor_init (&t, DSOCR_DTYPE_F32, 3, shape, NULL);
  t.data = (void *) data;
  callback (&t, layer, user_data);
}

static gboolean
forward (dsocr_decoder_state *s, dsocr_kv_cache *cache, int n_seq, int n_tokens, float *x,
         const int32_t *positions, float *out, dsocr_tensor_callback callback,
         gpointer user_data, GError **error)
{
  const dsocr_model *m = s->model;
  const dsocr_text_config *t = &m->config->text;
  const size_t T = (size_t) n_seq * n_tokens, H = t->hidden_size, nh = t->num_attention_heads;
  size_t q_w, att_w;
  int32_t max_pos = 0;

  for (size_t i = 0; i < T; i++)
    max_pos = MAX (max_pos, positions[i]);
  if (!ensure_rope (s, max_pos, error))
    return FALSE;

  /* Scratch sizes of this call. */
  if (t->use_mla) {
    const size_t qk = t->qk_nope_head_dim + t->qk_rope_head_dim;
    q_w = nh * qk;
    att_w = nh * MAX ((size_t) t->v_head_dim, (size_t) t->kv_lora_rank);
    if (!ensure (&s->k, T * (t->kv_lora_rank + t->qk_rope_head_dim), error))
      return FALSE;
  } else {
    q_w = nh * t->head_dim;
    att_w = q_w;
    if (!ensure (&s->k, T * t->num_key_value_heads * t->head_dim, error) ||
        !ensure (&s->v, T * t->num_key_value_heads * t->head_dim, error))
      return FALSE;
  }
  if (!ensure (&s->xn, T * H, error) || !ensure (&s->q, T * q_w, error) ||
      !ensure (&s->att, T * att_w, error) || !ensure (&s->proj, T * H, error))
    return FALSE;

  emit (callback, user_data, "embeddings", -1, x, n_seq, n_tokens, (int) H);
  for (int l = 0; l < m->n_layers; l++) {
    const dsocr_layer *ly = &m->layers[l];
    gboolean ok;

    rmsnorm (s->xn.data, x, ly->attn_norm, T, H, H, t->rms_norm_eps);
    if (t->use_mla)
      ok = attention_mla (s, ly, l, cache, n_seq, n_tokens, positions, s->proj.data, error);
    else
      ok = attention_mha (s, ly, l, cache, n_seq, n_tokens, positions, s->proj.data, error);
    if (!ok)
      return FALSE;
    for (size_t i = 0; i < T * H; i++)
      x[i] = x[i] + s->proj.data[i];

    rmsnorm (s->xn.data, x, ly->ffn_norm, T, H, H, t->rms_norm_eps);
    if (ly->is_moe)
      ok = moe (s, ly, l, T, s->proj.data, n_seq, n_tokens, callback, user_data, error);
    else
      ok = swiglu_mlp (s, &ly->gate, &ly->up, &ly->down, T, s->proj.data, error);
    if (!ok)
      return FALSE;
    for (size_t i = 0; i < T * H; i++)
      x[i] = x[i] + s->proj.data[i];
    emit (callback, user_data, "hidden", l, x, n_seq, n_tokens, (int) H);
  }
  rmsnorm (out, x, m->norm, T, H, H, t->rms_norm_eps);
  emit (callback, user_data, "final_norm", -1, out, n_seq, n_tokens, (int) H);
  return TRUE;
}

gboolean
dsocr_decoder_forward (dsocr_decoder_state *s, dsocr_kv_cache *cache, int n_seq, int n_tokens,
                       float *x, const int32_t *positions, float *out,
                       dsocr_tensor_callback callback, gpointer user_data, GError **error)
{
  gboolean ok;
#ifdef _OPENMP
  /* dsk's element-wise ops stay on this thread (the pool runs everything heavy); the caller's
   * own OpenMP setting is given back afterwards */
  const int saved = omp_get_max_threads ();
  omp_set_num_threads (1);
#endif
  ok = forward (s, cache, n_seq, n_tokens, x, positions, out, callback, user_data, error);
#ifdef _OPENMP
  omp_set_num_threads (saved);
#endif
  return ok;
}

gboolean
dsocr_decoder_lm_head (dsocr_decoder_state *s, const float *h, int n, float *logits,
                       GError **error)
{
  return project (s, logits, h, &s->model->lm_head, (size_t) n, error);
}

void
dsocr_decoder_score (const dsocr_model *model, const float *h, int n, float *logits)
{
  const dsocr_linear *lin = &model->score;
  dsk_matmul_f32_cpu (logits, h, lin->w->data, dt (lin->w), NULL, DSK_F32, (size_t) n,
                      (size_t) lin->n_in, (size_t) lin->n_out, NULL);
}
