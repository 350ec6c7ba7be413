/* indexer.c: DeepSeek-V3.2's lightning indexer and the top-k sparse attention it drives, as
 * ops (their CPU kernels are kernels/cpu/indexer.c).
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
 * Work is done per row in chunks of CHUNK queries so that the scratch (scores, selection) is
 * [CHUNK, n_kv] whatever the prompt length.
 */
#include "indexer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend-private.h"
#include "dsocr/dsocr-error.h"
#include "fp8.h"

#define CHUNK 64          /* queries scored and attended at once */
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

struct dsocr_indexer {
  int n_layers, hidden, q_lora, n_heads, head_dim, rope_dim, index_topk;
  guint flags;
  dsocr_indexer_outputs out;

  /* the prepared layer (valid until its last dsocr_indexer_attention) */
  const dsocr_indexer_weights *w;
  int layer;
  dsk_tensor xn, qr;   /* [T, hidden], [T, q_lora] */
};

/* ---- weights ---- */

static const dsocr_tensor *
get_tensor (dsocr_checkpoint *ckpt, const dsocr_config *cfg, int layer, const char *suffix,
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

/* The tensor as the kernels see it (host memory), in @out; FALSE with @error. */
static gboolean
get_weight (dsk_tensor *out, dsocr_checkpoint *ckpt, const dsocr_config *cfg, int layer,
            const char *suffix, int n_dims, int64_t d0, int64_t d1, gboolean fp8_ok,
            GPtrArray *owned, GError **error)
{
  const dsocr_tensor *t = get_tensor (ckpt, cfg, layer, suffix, n_dims, d0, d1, fp8_ok, owned,
                                      error);
  size_t ne[2] = { (size_t) d0, (size_t) d1 };
  if (!t)
    return FALSE;
  *out = dsk_tensor_make (t->data, (dsk_dtype) t->dtype, n_dims, ne,
                          (dsk_device) { DSK_DEVICE_HOST, 0 });
  return TRUE;
}

gboolean
dsocr_indexer_weights_load (dsocr_indexer_weights *w, dsocr_checkpoint *ckpt,
                            const dsocr_config *cfg, int layer, GPtrArray *owned, GError **error)
{
  const dsocr_text_config *t = &cfg->text;
  const int nh = t->index_n_heads, hd = t->index_head_dim;

  memset (w, 0, sizeof *w);
  if (!get_weight (&w->wq_b, ckpt, cfg, layer, "wq_b.weight", 2, (int64_t) nh * hd,
                   t->q_lora_rank, TRUE, owned, error) ||
      !get_weight (&w->wk, ckpt, cfg, layer, "wk.weight", 2, hd, t->hidden_size, TRUE, owned,
                   error) ||
      !get_weight (&w->k_norm_w, ckpt, cfg, layer, "k_norm.weight", 1, hd, 0, FALSE, owned,
                   error) ||
      !get_weight (&w->k_norm_b, ckpt, cfg, layer, "k_norm.bias", 1, hd, 0, FALSE, owned, error))
    return FALSE;
  /* Vector params of one LayerNorm share a dtype in the kernel call. */
  if (w->k_norm_w.dtype != w->k_norm_b.dtype) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: layer %d: indexer k_norm weight and bias have different dtypes (%s, %s)",
                 dsocr_checkpoint_get_path (ckpt), layer,
                 dsocr_dtype_name ((dsocr_dtype) w->k_norm_w.dtype),
                 dsocr_dtype_name ((dsocr_dtype) w->k_norm_b.dtype));
    return FALSE;
  }
  return get_weight (&w->weights_proj, ckpt, cfg, layer, "weights_proj.weight", 2, nh,
                     t->hidden_size, TRUE, owned, error);
}

/* ---- the record of outputs ---- */

dsocr_indexer *
dsocr_indexer_new (const dsocr_config *cfg)
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

/* ---- a forward call ---- */

gboolean
dsocr_indexer_begin (dsocr_indexer *ix, int n_seq, int n_tokens, int n_kv, GError **error)
{
  return begin_record (ix, n_seq, n_tokens, n_kv, error);
}

void
dsocr_indexer_prepare (dsocr_indexer *ix, dsocr_decoder_state *s, const dsocr_indexer_weights *w,
                       int layer, const dsk_tensor *xn, const dsk_tensor *qr)
{
  dsk_backend *be = s->be;
  const dsocr_kv_cache *cache = s->cache;
  const size_t R = (size_t) s->n_seq, N = (size_t) s->n_tokens, T = R * N;
  const size_t D = (size_t) ix->head_dim;
  dsk_tensor keys = dsk_arena_2d (s->scratch, DSK_F32, T, D);   /* [T, D] the new columns' keys */

  dsk_linear (be, &keys, xn, &w->wk, NULL);
  dsk_layernorm (be, &keys, &keys, &w->k_norm_w, &w->k_norm_b, LN_EPS);
  {
    dsk_tensor k3 = dsk_split (&keys, 1, 1, D);   /* [T, 1, D] */
    dsk_tensor vc = dsocr_kv_cache_v (cache, layer, cache->n_past, (int) N);   /* [R, N, D] */
    dsk_tensor kr = dsk_split (&keys, 0, R, N);
    dsk_rope (be, &k3, &s->pos, &s->cos_tab, &s->sin_tab, 0, (size_t) ix->rope_dim,
              DSK_ROPE_HALF);
    dsk_copy (be, &vc, &kr);
  }
  ix->w = w;
  ix->layer = layer;
  ix->xn = *xn;
  ix->qr = *qr;
}

/* Copies @t [n, width] into the host array @dst at row @row0 of a [*, width] table. */
static void
record (dsk_backend *be, const dsk_tensor *t, void *dst, size_t row0)
{
  dsk_tensor_get (be, t, (char *) dst + row0 * dsk_tensor_row_len (t) * dsk_dtype_size (t->dtype));
}

/* The index scores of queries @qr [nc, q_lora] / @xn [nc, hidden] at positions @pos [nc]
 * against the row's cached indexer keys [S, D], and each query's picks: @sc [nc, S],
 * @sel [nc, K]. */
static void
select_keys (dsocr_indexer *ix, dsocr_decoder_state *s, const dsk_tensor *qr,
             const dsk_tensor *xn, const dsk_tensor *pos, const dsk_tensor *keys,
             const dsk_attention_desc *desc, const dsk_tensor *sc, const dsk_tensor *sel)
{
  dsk_backend *be = s->be;
  const size_t nc = qr->ne[0], nH = (size_t) ix->n_heads, D = (size_t) ix->head_dim;
  const float wscale = (float) (1.0 / sqrt ((double) nH) / sqrt ((double) D));
  dsk_tensor qi = dsk_arena_3d (s->scratch, DSK_F32, nc, nH, D);   /* [nc, nH, D] */
  dsk_tensor wi = dsk_arena_2d (s->scratch, DSK_F32, nc, nH);      /* [nc, nH] */
  dsk_tensor qi2 = dsk_merge (&qi, 1);

  /* indexer queries and head weights of these columns */
  dsk_linear (be, &qi2, qr, &ix->w->wq_b, NULL);
  dsk_linear (be, &wi, xn, &ix->w->weights_proj, NULL);
  dsk_rope (be, &qi, pos, &s->cos_tab, &s->sin_tab, 0, (size_t) ix->rope_dim, DSK_ROPE_HALF);
  dsk_index_scores (be, sc, &qi, &wi, keys, desc, wscale);
  /* a query that sees at most index_topk keys keeps them all */
  dsk_topk (be, sel, sc);
}

/* The outputs asked for, of queries [row0, row0 + nc) of the layer: scores, picks, and the
 * KL target (the head-summed attention probabilities of the chunk). */
static void
record_outputs (dsocr_indexer *ix, dsocr_decoder_state *s, size_t row0, const dsk_tensor *sc,
                const dsk_tensor *sel, size_t K, const dsk_tensor *q, const dsk_tensor *k,
                const dsk_attention_desc *desc)
{
  dsk_backend *be = s->be;
  dsocr_indexer_outputs *o = &ix->out;

  if (o->flags & DSOCR_INDEXER_SCORES)
    record (be, sc, o->scores[ix->layer], row0);
  if (o->flags & DSOCR_INDEXER_TOPK) {
    dsk_tensor picks = dsk_narrow (sel, 1, 0, K);
    record (be, &picks, o->topk[ix->layer], row0);
  }
  if (o->flags & DSOCR_INDEXER_KL_TARGET) {
    dsk_tensor target = dsk_arena_2d (s->scratch, DSK_F32, sc->ne[0], sc->ne[1]);  /* [nc, S] */
    dsk_attention_probs (be, &target, q, k, desc, sel);
    record (be, &target, o->kl_target[ix->layer], row0);
  }
}

gboolean
dsocr_indexer_attention (dsocr_indexer *ix, dsocr_decoder_state *s, int row, const dsk_tensor *out,
                         const dsk_tensor *q, const dsk_tensor *k, const dsk_tensor *v,
                         const dsk_attention_desc *desc, GError **error)
{
  dsk_backend *be = s->be;
  const size_t T = q->ne[1], S = k->ne[1];
  const size_t K = (size_t) MIN (ix->index_topk, (int) S), KS = MAX (K, 1);
  const dsk_tensor cache_v = dsocr_kv_cache_v (s->cache, ix->layer, 0, (int) S);   /* [R, S, D] */
  const dsk_tensor keys = dsk_select (&cache_v, 0, (size_t) row);                  /* [S, D] */
  const dsk_tensor pos = dsk_narrow (&s->pos, 0, (size_t) row * T, T);
  const size_t row0 = (size_t) row * T;

  /* chunks of queries, so that the scores and picks stay [CHUNK, S] whatever the prompt */
  for (size_t t0 = 0; t0 < T; t0 += CHUNK) {
    const size_t nc = MIN ((size_t) CHUNK, T - t0);
    dsk_tensor sc = dsk_arena_2d (s->scratch, DSK_F32, nc, S);       /* [nc, S] scores */
    dsk_tensor sel = dsk_arena_2d (s->scratch, DSK_I32, nc, KS);     /* [nc, K] picks */
    dsk_tensor qr = dsk_narrow (&ix->qr, 0, row0 + t0, nc);
    dsk_tensor xn = dsk_narrow (&ix->xn, 0, row0 + t0, nc);
    dsk_tensor pc = dsk_narrow (&pos, 0, t0, nc);
    dsk_tensor q_c = dsk_narrow (q, 1, t0, nc), out_c = dsk_narrow (out, 1, t0, nc);
    dsk_attention_desc dc = *desc;

    dc.q_pos0 = desc->q_pos0 + t0;
    select_keys (ix, s, &qr, &xn, &pc, &keys, &dc, &sc, &sel);
    dsk_attention_sparse (be, &out_c, &q_c, k, v, &dc, &sel);
    record_outputs (ix, s, row0 + t0, &sc, &sel, K, &q_c, k, &dc);
    if (!dsocr_backend_check (be, "sparse attention", error))
      return FALSE;
  }
  if (ix->layer == ix->n_layers - 1 && row == s->n_seq - 1)
    ix->out.complete = TRUE;
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
