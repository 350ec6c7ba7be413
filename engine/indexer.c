/* indexer.c: DeepSeek-V3.2's lightning indexer and the top-k sparse attention it drives.
 *
 * Reference: transformers 5.23 DeepseekV32Indexer / DeepseekV32Attention (the bf16/fp32 form of
 * DeepSeek's release code, reference sheet 10.2): per layer, with H_I heads of D_I dims,
 *   q(t)   = wq_b · qr(t)                      [H_I, D_I], qr = q_a_layernorm(q_a_proj(x))
 *   k(s)   = LayerNorm_1e-6(wk · x(s))         [D_I], weight and bias
 *   RoPE on dims [0, qk_rope_head_dim) of q and k, half-split pairs (i, i + rope/2), the MLA's
 *   frequencies and positions (the MLA part itself uses interleaved pairs)
 *   w(t)   = weights_proj · x(t) * H_I^-0.5 * D_I^-0.5      [H_I]
 *   I(t,s) = sum_j w(t, j) * ReLU(q(t, j) · k(s))
 * then every query keeps the min(index_topk, visible) visible keys of highest I and the MLA
 * logits of all heads get -inf elsewhere. The release code's Hadamard rotation of q and k is
 * orthogonal (it leaves q·k unchanged) and its FP8 rounding of q, k and the key cache is a
 * precision optimisation; both are left out, as transformers does.
 *
 * Work is done per row in chunks of CHUNK queries so that the scratch (scores, bias) is
 * [CHUNK, n_kv] whatever the prompt length. Products go through the session's dsocr_mm and the
 * per-query / per-head loops are items of its thread pool (decoder-cpu.h), like the rest of the
 * decoder.
 */
#include "indexer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decoder-cpu.h"
#include "dsocr/dsocr-error.h"

#define CHUNK 64          /* queries scored and attended at once */
#define KEY_BLOCK 2048    /* keys per block of the score product */
#define DOT_ROWS 256      /* (query, head) rows per block of the score product */
#define LN_EPS 1e-6f      /* k_norm: nn.LayerNorm(index_head_dim, eps=1e-6) */

struct dsocr_indexer_outputs {
  guint flags;
  int n_layers, n_seq, n_tokens, n_kv, k;
  gboolean complete;   /* every layer of the last forward call was recorded */
  float **scores;      /* [n_layers] -> [n_seq, n_tokens, n_kv] */
  int32_t **topk;      /* [n_layers] -> [n_seq, n_tokens, k] */
  float **kl_target;   /* [n_layers] -> [n_seq, n_tokens, n_kv] */
  gsize cap_scores, cap_topk, cap_target; /* elements allocated in each layer's array */
};

typedef struct {
  float *data;
  gsize cap;
} buffer;

struct dsocr_indexer {
  int n_layers, hidden, q_lora, n_heads, head_dim, rope_dim, index_topk;
  dsocr_pool *pool;  /* borrowed */
  dsocr_mm *mm;      /* borrowed */
  int n_threads;
  guint flags;
  dsocr_indexer_outputs out;

  /* the prepared layer (borrowed) */
  const dsocr_indexer_weights *w;
  int layer;
  const dsocr_kv_cache *cache;
  int n_seq, n_tokens;
  const float *xn, *qr;
  const int32_t *positions;
  const float *cos_tab, *sin_tab;
  size_t n_pos;

  buffer keys;    // [T, head_dim] the new columns' keys
  buffer q;       // [CHUNK, n_heads, head_dim]
  buffer wts;     // [CHUNK, n_heads]
  buffer scores;  // [CHUNK, n_kv]
  buffer bias;    // [CHUNK, n_kv] 0 / -inf
  buffer work;    // [DOT_ROWS (at least n_heads), KEY_BLOCK]
  buffer gather;  // [index_topk, k row] + [index_topk, v row] keys of one decode step
  buffer kl;      // [n_threads, n_kv] one query's logits of one head, per thread
  double *kl_acc; // [n_threads, n_kv] one query's probabilities summed over heads, per thread
  gsize kl_acc_cap;
  int32_t *sel;   // [CHUNK, index_topk] picks (a decode step sorts a copy in row 1)
  gsize sel_cap;
};

static gboolean
ensure (buffer *b, gsize n, GError **error)
{
  float *p;

  if (n <= b->cap)
    return TRUE;
  p = g_try_realloc (b->data, sizeof (float) * n);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "indexer: cannot allocate %" G_GSIZE_FORMAT " floats of scratch", n);
    return FALSE;
  }
  b->data = p;
  b->cap = n;
  return TRUE;
}

/* ---- weights ---- */

static const dsocr_tensor *
get_weight (dsocr_checkpoint *ckpt, const dsocr_config *cfg, int layer, const char *suffix,
            int n_dims, int64_t d0, int64_t d1, gboolean fp8_ok, GPtrArray *owned,
            GError **error)
{
  g_autofree char *name = g_strdup_printf ("model.layers.%d.self_attn.indexer.%s", layer, suffix);
  const int64_t shape[2] = { d0, d1 };
  const dsocr_tensor *t = dsocr_checkpoint_get_checked (ckpt, name, DSOCR_DTYPE_N, n_dims, shape,
                                                        error);
  if (!t)
    return NULL;
  if (fp8_ok && t->dtype == DSOCR_DTYPE_F8_E4M3)
    return dsocr_fp8_weight (ckpt, cfg, t, owned, error);
  if (t->dtype != DSOCR_DTYPE_BF16 && t->dtype != DSOCR_DTYPE_F16 && t->dtype != DSOCR_DTYPE_F32) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': dtype %s, expected BF16, F16 or F32",
                 dsocr_checkpoint_get_path (ckpt), name, dsocr_dtype_name (t->dtype));
    return NULL;
  }
  return t;
}

gboolean
dsocr_indexer_weights_load (dsocr_indexer_weights *w, dsocr_checkpoint *ckpt,
                            const dsocr_config *cfg, int layer, GPtrArray *owned, GError **error)
{
  const dsocr_text_config *t = &cfg->text;
  const int nh = t->index_n_heads, hd = t->index_head_dim;

  memset (w, 0, sizeof *w);
  w->wq_b = get_weight (ckpt, cfg, layer, "wq_b.weight", 2, (int64_t) nh * hd, t->q_lora_rank,
                        TRUE, owned, error);
  if (!w->wq_b)
    return FALSE;
  w->wk = get_weight (ckpt, cfg, layer, "wk.weight", 2, hd, t->hidden_size, TRUE, owned, error);
  if (!w->wk)
    return FALSE;
  w->k_norm_w = get_weight (ckpt, cfg, layer, "k_norm.weight", 1, hd, 0, FALSE, owned, error);
  if (!w->k_norm_w)
    return FALSE;
  w->k_norm_b = get_weight (ckpt, cfg, layer, "k_norm.bias", 1, hd, 0, FALSE, owned, error);
  if (!w->k_norm_b)
    return FALSE;
  /* Vector params of one LayerNorm share a dtype in the kernel call. */
  if (w->k_norm_w->dtype != w->k_norm_b->dtype) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: layer %d: indexer k_norm weight and bias have different dtypes (%s, %s)",
                 dsocr_checkpoint_get_path (ckpt), layer, dsocr_dtype_name (w->k_norm_w->dtype),
                 dsocr_dtype_name (w->k_norm_b->dtype));
    return FALSE;
  }
  w->weights_proj = get_weight (ckpt, cfg, layer, "weights_proj.weight", 2, nh, t->hidden_size,
                                TRUE, owned, error);
  return w->weights_proj != NULL;
}

/* ---- runtime ---- */

dsocr_indexer *
dsocr_indexer_new (const dsocr_config *cfg, dsocr_pool *pool, dsocr_mm *mm)
{
  const dsocr_text_config *t = &cfg->text;
  dsocr_indexer *ix;

  if (!t->use_sparse_attention)
    return NULL;
  ix = g_new0 (dsocr_indexer, 1);
  ix->n_layers = t->num_hidden_layers;
  ix->hidden = t->hidden_size;
  ix->q_lora = t->q_lora_rank;
  ix->n_heads = t->index_n_heads;
  ix->head_dim = t->index_head_dim;
  ix->rope_dim = t->qk_rope_head_dim;
  ix->index_topk = t->index_topk;
  ix->pool = pool;
  ix->mm = mm;
  ix->n_threads = dsocr_pool_n_threads (pool);
  ix->out.n_layers = ix->n_layers;
  ix->out.scores = g_new0 (float *, ix->n_layers);
  ix->out.topk = g_new0 (int32_t *, ix->n_layers);
  ix->out.kl_target = g_new0 (float *, ix->n_layers);
  return ix;
}

void
dsocr_indexer_free (dsocr_indexer *ix)
{
  if (!ix)
    return;
  for (int l = 0; l < ix->n_layers; l++) {
    g_free (ix->out.scores[l]);
    g_free (ix->out.topk[l]);
    g_free (ix->out.kl_target[l]);
  }
  g_free (ix->out.scores);
  g_free (ix->out.topk);
  g_free (ix->out.kl_target);
  g_free (ix->keys.data);
  g_free (ix->q.data);
  g_free (ix->wts.data);
  g_free (ix->scores.data);
  g_free (ix->bias.data);
  g_free (ix->work.data);
  g_free (ix->gather.data);
  g_free (ix->kl.data);
  g_free (ix->kl_acc);
  g_free (ix->sel);
  g_free (ix);
}

gboolean
dsocr_indexer_set_flags (dsocr_indexer *ix, guint flags, GError **error)
{
  if (flags & ~(guint) DSOCR_INDEXER_ALL) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "indexer outputs: unknown flags 0x%x", flags & ~(guint) DSOCR_INDEXER_ALL);
    return FALSE;
  }
  if (flags && !ix) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "indexer outputs: the model has no sparse-attention indexer (not DeepSeek-V3.2, "
                 "or use_sparse_attention is false)");
    return FALSE;
  }
  if (ix)
    ix->flags = flags;
  return TRUE;
}

const dsocr_indexer_outputs *
dsocr_indexer_get_outputs (const dsocr_indexer *ix)
{
  return ix && ix->out.complete && ix->out.flags ? &ix->out : NULL;
}

void
dsocr_indexer_forget (dsocr_indexer *ix)
{
  if (ix)
    ix->out.complete = FALSE;
}

/* Makes every layer's @arrays hold @n elements when @want, else frees them. */
static gboolean
size_arrays (void **arrays, int n_layers, gsize *cap, gboolean want, gsize n, gsize esize)
{
  if (!want || *cap < n) {
    for (int l = 0; l < n_layers; l++)
      g_clear_pointer (&arrays[l], g_free);
    *cap = 0;
  }
  if (!want || *cap >= n)
    return TRUE;
  for (int l = 0; l < n_layers; l++) {
    arrays[l] = g_try_malloc (MAX (n, 1) * esize);
    if (!arrays[l]) {
      for (int m = 0; m < l; m++)
        g_clear_pointer (&arrays[m], g_free);
      return FALSE;
    }
  }
  *cap = n;
  return TRUE;
}

/* Sizes the output arrays for a call of @n_seq x @n_tokens queries over @n_kv keys. */
static gboolean
begin_record (dsocr_indexer *ix, int n_seq, int n_tokens, int n_kv, GError **error)
{
  dsocr_indexer_outputs *o = &ix->out;
  const gsize n_q = (gsize) n_seq * n_tokens;
  const int k = MIN (ix->index_topk, n_kv);
  const guint f = ix->flags;

  o->complete = FALSE;
  o->flags = f;
  o->n_seq = n_seq;
  o->n_tokens = n_tokens;
  o->n_kv = n_kv;
  o->k = k;
  if (!size_arrays ((void **) o->scores, o->n_layers, &o->cap_scores, f & DSOCR_INDEXER_SCORES,
                    n_q * n_kv, sizeof (float)) ||
      !size_arrays ((void **) o->kl_target, o->n_layers, &o->cap_target,
                    f & DSOCR_INDEXER_KL_TARGET, n_q * n_kv, sizeof (float)) ||
      !size_arrays ((void **) o->topk, o->n_layers, &o->cap_topk, f & DSOCR_INDEXER_TOPK, n_q * k,
                    sizeof (int32_t))) {
    o->flags = 0;
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "indexer outputs: cannot allocate %d layers of [%d, %d, %d]", o->n_layers,
                 n_seq, n_tokens, n_kv);
    return FALSE;
  }
  return TRUE;
}

/* y [n, w->rows] = x [n, w->cols] W^T for an f32 or checkpoint-dtype weight tensor. */
static gboolean
linear (dsocr_indexer *ix, float *y, const float *x, size_t n, const dsocr_tensor *w,
        GError **error)
{
  const dsocr_mat m = {
    .data = w->data, .dtype = (dsk_dtype) w->dtype, .rows = (int) w->shape[0],
    .cols = (int) w->shape[1], .ld = (size_t) w->shape[1],
  };
  return dsocr_mm_linear (ix->mm, y, (size_t) m.rows, x, (size_t) m.cols, n, &m, error);
}

gboolean
dsocr_indexer_prepare (dsocr_indexer *ix, const dsocr_indexer_weights *w, int layer,
                       const dsocr_kv_cache *cache, int n_seq, int n_tokens, const float *xn,
                       const float *qr, const int32_t *positions, const float *cos_tab,
                       const float *sin_tab, size_t n_pos, GError **error)
{
  const size_t T = (size_t) n_seq * n_tokens, D = (size_t) ix->head_dim;
  const int n_kv = cache->n_past + n_tokens;
  float *keys;  // [T, D]

  if (layer == 0 && !begin_record (ix, n_seq, n_tokens, n_kv, error))
    return FALSE;
  if (!ensure (&ix->keys, T * D, error))
    return FALSE;
  keys = ix->keys.data;
  if (!linear (ix, keys, xn, T, w->wk, error))
    return FALSE;
  dsk_layernorm_f32_cpu (keys, keys, w->k_norm_w->data, w->k_norm_b->data,
                         (dsk_dtype) w->k_norm_w->dtype, T, D, LN_EPS);
  dsk_rope_f32_cpu (keys, T, 1, D, D, 0, (size_t) ix->rope_dim, positions, cos_tab, sin_tab, n_pos,
                    DSK_ROPE_HALF);
  for (int r = 0; r < n_seq; r++)
    memcpy (dsocr_kv_cache_v (cache, layer, r) + (size_t) cache->n_past * D,
            keys + (size_t) r * n_tokens * D, sizeof (float) * n_tokens * D);

  ix->w = w;
  ix->layer = layer;
  ix->cache = cache;
  ix->n_seq = n_seq;
  ix->n_tokens = n_tokens;
  ix->xn = xn;
  ix->qr = qr;
  ix->positions = positions;
  ix->cos_tab = cos_tab;
  ix->sin_tab = sin_tab;
  ix->n_pos = n_pos;
  return TRUE;
}

/* ---- scoring and selection ---- */

/* I(t, s) = sum_j w(t, j) ReLU(dots[(t, j), s]) for one block of queries and keys. */
typedef struct {
  const float *dots;   /* [ni * n_heads, KEY_BLOCK] */
  const float *w;      /* [ni, n_heads] */
  const uint8_t *vis;  /* [ni, n_kv] at the block's first key */
  float *scores;       /* [ni, n_kv] at the block's first key */
  size_t n_kv, ns, n_heads;
} relu_sum_run;

static void
relu_sum_item (void *ctx, int i, int thread)
{
  const relu_sum_run *c = ctx;
  const float *wi = c->w + (size_t) i * c->n_heads;
  const uint8_t *vis = c->vis + (size_t) i * c->n_kv;
  float *row = c->scores + (size_t) i * c->n_kv;

  for (size_t s = 0; s < c->ns; s++) {
    float acc = 0.0f;
    if (!vis[s]) {
      row[s] = -INFINITY;
      continue;
    }
    for (size_t j = 0; j < c->n_heads; j++) {
      const float d = c->dots[((size_t) i * c->n_heads + j) * KEY_BLOCK + s];
      acc += wi[j] * (d > 0.0f ? d : 0.0f);
    }
    row[s] = acc;
  }
}

/* scores [n_q, n_kv] of @q [n_q, n_heads, head_dim] (rotated) with head weights @w
 * [n_q, n_heads] against @keys [n_kv, head_dim]; -inf where @visible [n_q, n_kv] is 0. */
static gboolean
score_block (dsocr_indexer *ix, float *scores, const float *q, const float *w, const float *keys,
             const uint8_t *visible, size_t n_q, size_t n_kv, GError **error)
{
  const size_t nH = (size_t) ix->n_heads, D = (size_t) ix->head_dim;
  const size_t qb = MAX ((size_t) 1, DOT_ROWS / nH);
  float *dots = ix->work.data;  // [qb * nH, KEY_BLOCK]

  for (size_t i0 = 0; i0 < n_q; i0 += qb) {
    const size_t ni = MIN (qb, n_q - i0);
    for (size_t s0 = 0; s0 < n_kv; s0 += KEY_BLOCK) {
      const size_t ns = MIN ((size_t) KEY_BLOCK, n_kv - s0);
      const dsocr_mat km = { .data = keys + s0 * D, .dtype = DSK_F32, .rows = (int) ns,
                             .cols = (int) D, .ld = D };
      relu_sum_run c = { dots, w + i0 * nH, visible + i0 * n_kv + s0, scores + i0 * n_kv + s0,
                         n_kv, ns, nH };

      /* dots[(i, j), s] = q(i, j) · k(s) */
      if (!dsocr_mm_linear (ix->mm, dots, KEY_BLOCK, q + i0 * nH * D, D, ni * nH, &km, error))
        return FALSE;
      dsocr_pool_run (ix->pool, (int) ni, 2.0 * ni * ns * nH, relu_sum_item, &c);
    }
  }
  return TRUE;
}

static int
compare_i32 (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Whether (score a, index ia) ranks before (b, ib): higher score, then lower index. */
static inline gboolean
before (float a, int32_t ia, float b, int32_t ib)
{
  return a > b || (a == b && ia < ib);
}

int
dsocr_indexer_topk (const float *scores, size_t n, int k, int32_t *idx)
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

/* ---- the attention of a chunk of queries, and its KL target ---- */

/* One query head over the chunk (as the decoder's own attention items). */
typedef struct {
  const dsk_attention_params *p;  /* all heads; bias [n_q, bias_ld] shared by the heads */
  float *out;
  const float *q, *k, *v;
} head_run;

static void
head_item (void *ctx, int h, int thread)
{
  const head_run *c = ctx;
  const dsk_attention_params *p = c->p;
  const size_t d_qk = p->d_qk, d_v = p->d_v;
  const size_t group = p->n_heads / p->n_kv_heads, kvh = (size_t) h / group;
  dsk_attention_params one = *p;

  one.n_heads = 1;
  one.n_kv_heads = 1;
  one.q_stride = p->q_stride ? p->q_stride : p->n_heads * d_qk;
  one.k_stride = p->k_stride ? p->k_stride : p->n_kv_heads * d_qk;
  one.v_stride = p->v_stride ? p->v_stride : p->n_kv_heads * d_v;
  one.out_stride = p->out_stride ? p->out_stride : p->n_heads * d_v;
  one.q_head_stride = one.k_head_stride = one.v_head_stride = one.out_head_stride = 0;
  dsk_attention_f32_cpu (c->out + (size_t) h * (p->out_head_stride ? p->out_head_stride : d_v),
                         c->q + (size_t) h * (p->q_head_stride ? p->q_head_stride : d_qk),
                         c->k + kvh * (p->k_head_stride ? p->k_head_stride : d_qk),
                         c->v + kvh * (p->v_head_stride ? p->v_head_stride : d_v), &one);
}

/* One query's KL target row: the attention probabilities of every head (the same logits as
 * the attention, bias included), summed, then L1-normalised: sum / (sum over keys + 1e-10). */
typedef struct {
  const dsk_attention_params *p;
  const float *q, *k;
  float *dst;        /* [n_q, n_kv] */
  float *logits;     /* [n_threads, n_kv] */
  double *acc;       /* [n_threads, n_kv] */
} target_run;

static void
target_item (void *ctx, int t, int thread)
{
  const target_run *c = ctx;
  const dsk_attention_params *p = c->p;
  const size_t nh = p->n_heads, nkv = p->n_kv_heads, d = p->d_qk, S = p->n_kv;
  const size_t qs = p->q_stride ? p->q_stride : nh * d, qhs = p->q_head_stride ? p->q_head_stride : d;
  const size_t ks = p->k_stride ? p->k_stride : nkv * d, khs = p->k_head_stride ? p->k_head_stride : d;
  const size_t bias_ld = p->bias_ld ? p->bias_ld : S, group = nh / nkv;
  const size_t end = p->causal ? MIN (S, p->q_pos0 + (size_t) t + 1) : S;
  float *logit = c->logits + (size_t) thread * S;
  double *acc = c->acc + (size_t) thread * S, total = 0.0;
  float *dst = c->dst + (size_t) t * S;

  memset (acc, 0, sizeof (double) * S);
  for (size_t h = 0; h < nh; h++) {
    const float *qh = c->q + (size_t) t * qs + h * qhs;
    const float *bias = p->bias ? p->bias + ((p->bias_heads == 1 ? 0 : h) * p->n_q + t) * bias_ld
                                : NULL;
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

/* The attention of one query over the @n keys @sel only: their k and v rows are copied, in
 * ascending key order (@order [n] is scratch), into scratch and attended with no mask. */
static gboolean
attend_gathered (dsocr_indexer *ix, const dsk_attention_params *p, const int32_t *sel,
                 int32_t *order, int n, float *out, const float *q, const float *k, const float *v,
                 GError **error)
{
  const size_t ks = p->k_stride ? p->k_stride : p->n_kv_heads * p->d_qk;
  const size_t vs = p->v_stride ? p->v_stride : p->n_kv_heads * p->d_v;
  const size_t khs = p->k_head_stride ? p->k_head_stride : p->d_qk;
  const size_t vhs = p->v_head_stride ? p->v_head_stride : p->d_v;
  /* the floats of one key row that the heads read (v may start inside a wider row) */
  const size_t k_span = (p->n_kv_heads - 1) * khs + p->d_qk;
  const size_t v_span = (p->n_kv_heads - 1) * vhs + p->d_v;
  float *kg, *vg;  // [n, ks], [n, vs]
  dsk_attention_params pg = *p;

  if (!ensure (&ix->gather, (size_t) n * (ks + vs), error))
    return FALSE;
  kg = ix->gather.data;
  vg = kg + (size_t) n * ks;
  memcpy (order, sel, sizeof (int32_t) * n);
  qsort (order, (size_t) n, sizeof (int32_t), compare_i32);
  for (int j = 0; j < n; j++) {
    memcpy (kg + (size_t) j * ks, k + (size_t) order[j] * ks, sizeof (float) * k_span);
    memcpy (vg + (size_t) j * vs, v + (size_t) order[j] * vs, sizeof (float) * v_span);
  }
  pg.n_kv = (size_t) n;
  pg.causal = 0;
  pg.q_pos0 = 0;
  pg.key_valid = NULL;
  pg.bias = NULL;
  pg.k_stride = ks;
  pg.v_stride = vs;
  {
    head_run hr = { &pg, out, q, kg, vg };
    dsocr_pool_run (ix->pool, (int) p->n_heads, 2.0 * n * p->n_heads * (double) (p->d_qk + p->d_v),
                    head_item, &hr);
  }
  return TRUE;
}

/* ---- the sparse attention of one row ---- */

gboolean
dsocr_indexer_attention (dsocr_indexer *ix, int row, float *out, const float *q, const float *k,
                         const float *v, const dsk_attention_params *p, GError **error)
{
  const size_t T = p->n_q, S = p->n_kv, nH = (size_t) ix->n_heads, D = (size_t) ix->head_dim;
  const size_t qs = p->q_stride ? p->q_stride : p->n_heads * p->d_qk;
  const size_t os = p->out_stride ? p->out_stride : p->n_heads * p->d_v;
  const int K = MIN (ix->index_topk, (int) S), KS = MAX (K, 1);
  const float wscale = (float) (1.0 / sqrt ((double) nH) / sqrt ((double) D));
  const float *keys = dsocr_kv_cache_v (ix->cache, ix->layer, row);  // [S, D]
  dsocr_indexer_outputs *o = &ix->out;
  const guint flags = o->flags;
  const size_t row0 = (size_t) row * ix->n_tokens;
  uint8_t *vis;

  if (!ensure (&ix->q, CHUNK * nH * D, error) || !ensure (&ix->wts, CHUNK * nH, error) ||
      !ensure (&ix->scores, CHUNK * S, error) || !ensure (&ix->bias, CHUNK * S, error) ||
      !ensure (&ix->work, MAX ((size_t) DOT_ROWS, nH) * KEY_BLOCK, error) ||
      ((flags & DSOCR_INDEXER_KL_TARGET) && !ensure (&ix->kl, (gsize) ix->n_threads * S, error)))
    return FALSE;
  if ((flags & DSOCR_INDEXER_KL_TARGET) && ix->kl_acc_cap < (gsize) ix->n_threads * S) {
    double *acc = g_try_renew (double, ix->kl_acc, (gsize) ix->n_threads * S);
    if (!acc) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "indexer: out of memory");
      return FALSE;
    }
    ix->kl_acc = acc;
    ix->kl_acc_cap = (gsize) ix->n_threads * S;
  }
  if (ix->sel_cap < (gsize) CHUNK * KS) {
    int32_t *sel = g_try_renew (int32_t, ix->sel, (gsize) CHUNK * KS);
    if (!sel) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "indexer: out of memory");
      return FALSE;
    }
    ix->sel = sel;
    ix->sel_cap = (gsize) CHUNK * KS;
  }
  /* the visibility mask rides in the bias buffer's bytes while the scores are computed */
  vis = (uint8_t *) ix->bias.data;

  for (size_t t0 = 0; t0 < T; t0 += CHUNK) {
    const size_t nc = MIN ((size_t) CHUNK, T - t0);
    float *qi = ix->q.data, *wi = ix->wts.data, *sc = ix->scores.data;  // [nc, nH, D] [nc, nH] [nc, S]
    int n_sparse = 0, n_vis[CHUNK];
    dsk_attention_params pc = *p;

    /* indexer queries and head weights of these columns */
    if (!linear (ix, qi, ix->qr + (row0 + t0) * ix->q_lora, nc, ix->w->wq_b, error) ||
        !linear (ix, wi, ix->xn + (row0 + t0) * ix->hidden, nc, ix->w->weights_proj, error))
      return FALSE;
    dsk_rope_f32_cpu (qi, nc, nH, nH * D, D, 0, (size_t) ix->rope_dim, ix->positions + row0 + t0,
                      ix->cos_tab, ix->sin_tab, ix->n_pos, DSK_ROPE_HALF);
    for (size_t i = 0; i < nc * nH; i++)
      wi[i] *= wscale;

    /* key s is visible to column t when cached at or before it and not padding */
    for (size_t i = 0; i < nc; i++) {
      const size_t end = MIN (S, p->q_pos0 + t0 + i + 1);
      for (size_t s = 0; s < S; s++)
        vis[i * S + s] = s < end && (!p->key_valid || p->key_valid[s]);
    }
    if (!score_block (ix, sc, qi, wi, keys, vis, nc, S, error))
      return FALSE;

    /* selection: only a query that sees more than index_topk keys is restricted */
    for (size_t i = 0; i < nc; i++) {
      n_vis[i] = 0;
      for (size_t s = 0; s < S; s++)
        n_vis[i] += isfinite (sc[i * S + s]);
      if (n_vis[i] > ix->index_topk || (flags & DSOCR_INDEXER_TOPK))
        dsocr_indexer_topk (sc + i * S, S, K, ix->sel + i * KS);
      n_sparse += n_vis[i] > ix->index_topk;
    }
    if (n_sparse > 0) {
      float *bias = ix->bias.data;  // [nc, S] (the visibility bytes are no longer needed)
      for (size_t i = 0; i < nc; i++) {
        const int32_t *sel = ix->sel + i * KS;
        float *b = bias + i * S;
        if (n_vis[i] > ix->index_topk) {
          for (size_t s = 0; s < S; s++)
            b[s] = -INFINITY;
          for (int j = 0; j < K; j++)
            b[sel[j]] = 0.0f;
        } else {
          memset (b, 0, sizeof (float) * S);
        }
      }
      pc.bias = bias;
      pc.bias_heads = 1;
      pc.bias_ld = S;
    }
    pc.n_q = nc;
    pc.q_pos0 = p->q_pos0 + t0;
    if (nc == 1 && n_sparse == 1) {
      /* one restricted query (a decode step): attend over its K keys gathered in key order,
       * which costs K instead of n_kv */
      if (!attend_gathered (ix, &pc, ix->sel, ix->sel + KS, K, out + t0 * os, q + t0 * qs, k, v,
                            error))
        return FALSE;
    } else {
      head_run hr = { &pc, out + t0 * os, q + t0 * qs, k, v };
      dsocr_pool_run (ix->pool, (int) p->n_heads,
                      2.0 * nc * S * p->n_heads * (double) (p->d_qk + p->d_v), head_item, &hr);
    }

    /* outputs */
    if (flags & DSOCR_INDEXER_SCORES)
      memcpy (o->scores[ix->layer] + (row0 + t0) * S, sc, sizeof (float) * nc * S);
    if (flags & DSOCR_INDEXER_TOPK)
      for (size_t i = 0; i < nc; i++)
        memcpy (o->topk[ix->layer] + (row0 + t0 + i) * K, ix->sel + i * KS, sizeof (int32_t) * K);
    if (flags & DSOCR_INDEXER_KL_TARGET) {
      target_run tr = { &pc, q + t0 * qs, k, o->kl_target[ix->layer] + (row0 + t0) * S,
                        ix->kl.data, ix->kl_acc };
      dsocr_pool_run (ix->pool, (int) nc, 2.0 * nc * S * p->n_heads * (double) p->d_qk,
                      target_item, &tr);
    }
  }
  if (ix->layer == ix->n_layers - 1 && row == ix->n_seq - 1)
    o->complete = TRUE;
  return TRUE;
}

/* ---- outputs ---- */

guint
dsocr_indexer_outputs_get_flags (const dsocr_indexer_outputs *outputs)
{
  return outputs->flags;
}

int
dsocr_indexer_outputs_get_n_layers (const dsocr_indexer_outputs *outputs)
{
  return outputs->n_layers;
}

static const void *
layer_array (const dsocr_indexer_outputs *o, void *const *arrays, guint flag, int layer,
             int64_t last, int64_t shape[3])
{
  if (!(o->flags & flag) || layer < 0 || layer >= o->n_layers)
    return NULL;
  if (shape) {
    shape[0] = o->n_seq;
    shape[1] = o->n_tokens;
    shape[2] = last;
  }
  return arrays[layer];
}

const float *
dsocr_indexer_outputs_get_scores (const dsocr_indexer_outputs *outputs, int layer,
                                  int64_t shape[3])
{
  if (!outputs)
    return NULL;
  return layer_array (outputs, (void *const *) outputs->scores, DSOCR_INDEXER_SCORES, layer,
                      outputs->n_kv, shape);
}

const int32_t *
dsocr_indexer_outputs_get_topk (const dsocr_indexer_outputs *outputs, int layer, int64_t shape[3])
{
  if (!outputs)
    return NULL;
  return layer_array (outputs, (void *const *) outputs->topk, DSOCR_INDEXER_TOPK, layer,
                      outputs->k, shape);
}

const float *
dsocr_indexer_outputs_get_kl_target (const dsocr_indexer_outputs *outputs, int layer,
                                     int64_t shape[3])
{
  if (!outputs)
    return NULL;
  return layer_array (outputs, (void *const *) outputs->kl_target, DSOCR_INDEXER_KL_TARGET,
                      layer, outputs->n_kv, shape);
}

/* KL(p || softmax(I)) of one query row. */
static double
kl_row (const float *I, const float *p, gsize n)
{
  double max = -INFINITY, lse = 0.0, kl = 0.0;

  for (gsize s = 0; s < n; s++)
    if (I[s] > max)
      max = I[s];
  if (max == -INFINITY)
    return 0.0;
  for (gsize s = 0; s < n; s++)
    if (isfinite (I[s]))
      lse += exp ((double) I[s] - max);
  lse = max + log (lse);
  for (gsize s = 0; s < n; s++)
    if (p[s] > 0.0f)
      kl += (double) p[s] * (log ((double) p[s] + 1e-10) - ((double) I[s] - lse));
  return kl;
}

double
dsocr_indexer_compute_kl_loss (const float *const *scores, const float *const *targets,
                               int n_layers, gsize n_queries, gsize n_kv)
{
  double total = 0.0;

  if (n_layers <= 0 || n_queries == 0)
    return NAN;
  for (int l = 0; l < n_layers; l++) {
    double layer = 0.0;
    for (gsize t = 0; t < n_queries; t++)
      layer += kl_row (scores[l] + t * n_kv, targets[l] + t * n_kv, n_kv);
    total += layer / (double) n_queries;
  }
  return total / n_layers;
}

gboolean
dsocr_indexer_kl_loss (const dsocr_indexer_outputs *outputs, double *loss, GError **error)
{
  const guint need = DSOCR_INDEXER_SCORES | DSOCR_INDEXER_KL_TARGET;

  if (!outputs || (outputs->flags & need) != need) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "indexer KL loss: record DSOCR_INDEXER_SCORES and DSOCR_INDEXER_KL_TARGET first");
    return FALSE;
  }
  *loss = dsocr_indexer_compute_kl_loss ((const float *const *) outputs->scores,
                                         (const float *const *) outputs->kl_target,
                                         outputs->n_layers,
                                         (gsize) outputs->n_seq * outputs->n_tokens,
                                         (gsize) outputs->n_kv);
  return TRUE;
}

/* ---- saving (safetensors: 8-byte little-endian header size, JSON header, raw data) ---- */

typedef struct {
  char *name;
  const char *dtype;
  int n_dims;
  int64_t shape[3];
  const void *data;
  gsize nbytes;
} entry;

gboolean
dsocr_indexer_outputs_save (const dsocr_indexer_outputs *o, const char *path, GError **error)
{
  GArray *entries = g_array_new (FALSE, TRUE, sizeof (entry));
  GString *header = g_string_new ("{\"__metadata__\":{\"format\":\"dsocr-indexer\"}");
  const gsize n_q = (gsize) o->n_seq * o->n_tokens;
  float loss_f = 0.0f;
  gsize offset = 0;
  guint64 hlen;
  FILE *f = NULL;
  gboolean ok = FALSE;
  int err = 0;

  for (int l = 0; l < o->n_layers; l++) {
    const struct {
      const char *what;
      guint flag;
      const void *data;
      const char *dtype;
      int64_t last;
      gsize esize;
    } parts[] = {
      { "scores", DSOCR_INDEXER_SCORES, o->scores[l], "F32", o->n_kv, 4 },
      { "topk", DSOCR_INDEXER_TOPK, o->topk[l], "I32", o->k, 4 },
      { "kl_target", DSOCR_INDEXER_KL_TARGET, o->kl_target[l], "F32", o->n_kv, 4 },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (parts); i++) {
      entry e = { 0 };
      if (!(o->flags & parts[i].flag))
        continue;
      e.name = g_strdup_printf ("indexer.%d.%s", l, parts[i].what);
      e.dtype = parts[i].dtype;
      e.n_dims = 3;
      e.shape[0] = o->n_seq;
      e.shape[1] = o->n_tokens;
      e.shape[2] = parts[i].last;
      e.data = parts[i].data;
      e.nbytes = n_q * (gsize) parts[i].last * parts[i].esize;
      g_array_append_val (entries, e);
    }
  }
  if ((o->flags & (DSOCR_INDEXER_SCORES | DSOCR_INDEXER_KL_TARGET)) ==
      (DSOCR_INDEXER_SCORES | DSOCR_INDEXER_KL_TARGET)) {
    double loss = 0.0;
    entry e = { .name = g_strdup ("indexer_kl_loss"), .dtype = "F32", .n_dims = 0,
                .data = &loss_f, .nbytes = 4 };
    dsocr_indexer_kl_loss (o, &loss, NULL);
    loss_f = (float) loss;
    g_array_append_val (entries, e);
  }

  for (guint i = 0; i < entries->len; i++) {
    const entry *e = &g_array_index (entries, entry, i);
    g_string_append_printf (header, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e->name, e->dtype);
    for (int d = 0; d < e->n_dims; d++)
      g_string_append_printf (header, "%s%" G_GINT64_FORMAT, d ? "," : "", e->shape[d]);
    g_string_append_printf (header, "],\"data_offsets\":[%" G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]}",
                            offset, offset + e->nbytes);
    offset += e->nbytes;
  }
  g_string_append_c (header, '}');
  while (header->len % 8 != 0)
    g_string_append_c (header, ' ');

  if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
    err = ENOTSUP;   /* safetensors data is little-endian; the arrays are written as they are */
    goto fail;
  }
  f = fopen (path, "wb");
  if (!f)
    goto fail;
  hlen = GUINT64_TO_LE ((guint64) header->len);
  if (fwrite (&hlen, 8, 1, f) != 1 || fwrite (header->str, 1, header->len, f) != header->len)
    goto fail;
  for (guint i = 0; i < entries->len; i++) {
    const entry *e = &g_array_index (entries, entry, i);
    if (fwrite (e->data, 1, e->nbytes, f) != e->nbytes)
      goto fail;
  }
  if (fclose (f) != 0) {
    f = NULL;
    goto fail;
  }
  f = NULL;
  ok = TRUE;

fail:
  if (!ok) {
    if (!err)
      err = errno;
    if (f)
      fclose (f);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: cannot write the indexer outputs: %s",
                 path, g_strerror (err));
  }
  for (guint i = 0; i < entries->len; i++)
    g_free (g_array_index (entries, entry, i).name);
  g_array_free (entries, TRUE);
  g_string_free (header, TRUE);
  return ok;
}
