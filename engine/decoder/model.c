/* model.c: loading the decoder's weights as borrowed views of the checkpoint (FP8 weights
 * are dequantised into tensors the model owns), and preparing them once per device. */
#include "dsocr/dsocr-model.h"

#include <string.h>

#include "backend-private.h"
#include "decoder.h"
#include "mapping.h"
#include "dsocr/dsocr-error.h"
#include "fp8.h"
#include "indexer.h"
#include "weight-sets.h"

/* A checkpoint tensor as the kernels see it: a host view of its data. */
static dsk_tensor
host_tensor (const dsocr_tensor *t)
{
  size_t ne[DSK_MAX_DIMS];
  for (int i = 0; i < t->n_dims && i < DSK_MAX_DIMS; i++)
    ne[i] = (size_t) t->shape[i];
  return dsk_tensor_make (t->data, (dsk_dtype) t->dtype, t->n_dims, ne,
                          (dsk_device) { DSK_DEVICE_HOST, 0 });
}

/* Looks up one weight by its hub name, checks shape and dtype; FP8 weights are dequantised
 * (fp8.c) into tensors the model owns. */
static const dsocr_tensor *
weight (dsocr_model *m, const char *name, int n_dims, int64_t d0, int64_t d1, GError **error)
{
  dsocr_checkpoint *ckpt = m->ckpt;
  const int64_t shape[2] = { d0, d1 };
  const dsocr_tensor *t = dsocr_checkpoint_get_checked (ckpt, name, DSOCR_DTYPE_N, n_dims, shape,
                                                        error);
  if (!t)
    return NULL;
  if (t->dtype == DSOCR_DTYPE_F8_E4M3)
    return dsocr_fp8_weight (ckpt, m->config, t, m->owned, error);
  if (t->dtype != DSOCR_DTYPE_BF16 && t->dtype != DSOCR_DTYPE_F16 && t->dtype != DSOCR_DTYPE_F32) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': dtype %s, expected BF16, F16 or F32",
                 dsocr_checkpoint_get_path (ckpt), name, dsocr_dtype_name (t->dtype));
    return NULL;
  }
  return t;
}

/* "<prefix>.weight" [n_out, n_in] and, when @bias, "<prefix>.bias" [n_out]. */
static gboolean
linear (dsocr_model *m, dsocr_linear *lin, const char *prefix, int n_out, int n_in,
        gboolean bias, GError **error)
{
  char *name = g_strconcat (prefix, ".weight", NULL);
  const dsocr_tensor *w = weight (m, name, 2, n_out, n_in, error), *b = NULL;

  g_free (name);
  if (!w)
    return FALSE;
  memset (lin, 0, sizeof *lin);
  lin->w = host_tensor (w);
  if (bias) {
    name = g_strconcat (prefix, ".bias", NULL);
    b = weight (m, name, 1, n_out, 0, error);
    g_free (name);
    if (!b)
      return FALSE;
    lin->b = host_tensor (b);
  }
  return TRUE;
}

static gboolean
vector (dsocr_model *m, dsk_tensor *out, const char *name, int n, GError **error)
{
  const dsocr_tensor *t = weight (m, name, 1, n, 0, error);
  if (t)
    *out = host_tensor (t);
  return t != NULL;
}

/* A bare [n_out, n_in] weight (experts, the router). */
static gboolean
matrix (dsocr_model *m, dsk_tensor *out, const char *name, int n_out, int n_in, GError **error)
{
  const dsocr_tensor *t = weight (m, name, 2, n_out, n_in, error);
  if (t)
    *out = host_tensor (t);
  return t != NULL;
}

static gboolean
load_attention (dsocr_model *m, dsocr_layer *ly, const char *p, GError **error)
{
  const dsocr_text_config *t = &m->config->text;
  const int H = t->hidden_size, nh = t->num_attention_heads;
  const gboolean bias = t->attention_bias;
  char *name = NULL;
  gboolean ok;

#define LIN(field, suffix, n_out, n_in, has_bias)                                           \
  (g_free (name), name = g_strdup_printf ("%s.self_attn." suffix, p),                       \
   linear (m, &ly->field, name, (n_out), (n_in), (has_bias), error))
#define VEC(field, suffix, n)                                                               \
  (g_free (name), name = g_strdup_printf ("%s.self_attn." suffix, p),                       \
   vector (m, &ly->field, name, (n), error))

  if (!t->use_mla) {
    const int hd = t->head_dim, nkv = t->num_key_value_heads;
    ok = LIN (q, "q_proj", nh * hd, H, bias) && LIN (k, "k_proj", nkv * hd, H, bias) &&
         LIN (v, "v_proj", nkv * hd, H, bias) && LIN (o, "o_proj", H, nh * hd, bias);
  } else {
    const int qk = t->qk_nope_head_dim + t->qk_rope_head_dim;
    ok = TRUE;
    if (t->q_lora_rank > 0)
      ok = LIN (q_a, "q_a_proj", t->q_lora_rank, H, bias) &&
           VEC (q_a_norm, "q_a_layernorm.weight", t->q_lora_rank) &&
           LIN (q_b, "q_b_proj", nh * qk, t->q_lora_rank, FALSE);
    else
      ok = LIN (q, "q_proj", nh * qk, H, FALSE);
    ok = ok && LIN (kv_a, "kv_a_proj_with_mqa", t->kv_lora_rank + t->qk_rope_head_dim, H, bias) &&
         VEC (kv_a_norm, "kv_a_layernorm.weight", t->kv_lora_rank) &&
         LIN (kv_b, "kv_b_proj", nh * (t->qk_nope_head_dim + t->v_head_dim), t->kv_lora_rank,
              FALSE) &&
         LIN (o, "o_proj", H, nh * t->v_head_dim, bias);
  }
#undef LIN
#undef VEC
  g_free (name);
  return ok;
}

/* DeepSeek-V3.2: the layer's lightning indexer (indexer.c). */
static gboolean
load_indexer (dsocr_model *m, dsocr_layer *ly, int l, GError **error)
{
  if (!m->config->text.use_sparse_attention)
    return TRUE;
  ly->indexer = g_new0 (dsocr_indexer_weights, 1);
  return dsocr_indexer_weights_load (ly->indexer, m->ckpt, m->config, l, m->owned, error);
}

/* gate/up/down of a SwiGLU MLP under "<p>" with width @inter. */
static gboolean
load_mlp (dsocr_model *m, const char *p, int inter, dsk_tensor *gate, dsk_tensor *up,
          dsk_tensor *down, GError **error)
{
  const int H = m->config->text.hidden_size;
  char *g = g_strconcat (p, ".gate_proj.weight", NULL),
       *u = g_strconcat (p, ".up_proj.weight", NULL),
       *d = g_strconcat (p, ".down_proj.weight", NULL);
  gboolean ok = matrix (m, gate, g, inter, H, error) && matrix (m, up, u, inter, H, error) &&
                matrix (m, down, d, H, inter, error);
  g_free (g);
  g_free (u);
  g_free (d);
  return ok;
}

static gboolean
load_ffn (dsocr_model *m, dsocr_layer *ly, int l, const char *p, GError **error)
{
  const dsocr_text_config *t = &m->config->text;
  const int E = t->n_routed_experts, H = t->hidden_size;
  gboolean ok = TRUE;
  char *name;

  ly->is_moe = dsocr_text_config_layer_is_moe (t, l);
  if (!ly->is_moe) {
    name = g_strconcat (p, ".mlp", NULL);
    memset (&ly->gate, 0, sizeof ly->gate);
    memset (&ly->up, 0, sizeof ly->up);
    memset (&ly->down, 0, sizeof ly->down);
    ok = load_mlp (m, name, t->intermediate_size, &ly->gate.w, &ly->up.w, &ly->down.w, error);
    g_free (name);
    return ok;
  }

  name = g_strconcat (p, ".mlp.gate.weight", NULL);
  ok = matrix (m, &ly->router, name, E, H, error);
  g_free (name);
  if (!ok)
    return FALSE;
  if (t->topk_method == DSOCR_TOPK_NOAUX_TC) {
    name = g_strconcat (p, ".mlp.gate.e_score_correction_bias", NULL);
    ok = vector (m, &ly->router_bias, name, E, error);
    g_free (name);
    if (!ok)
      return FALSE;
  }
  ly->exp_gate = g_new0 (dsk_tensor, E);
  ly->exp_up = g_new0 (dsk_tensor, E);
  ly->exp_down = g_new0 (dsk_tensor, E);
  for (int e = 0; e < E && ok; e++) {
    name = g_strdup_printf ("%s.mlp.experts.%d", p, e);
    ok = load_mlp (m, name, t->moe_intermediate_size, &ly->exp_gate[e], &ly->exp_up[e],
                   &ly->exp_down[e], error);
    g_free (name);
  }
  if (ok && t->n_shared_experts > 0) {
    name = g_strconcat (p, ".mlp.shared_experts", NULL);
    ly->has_shared = TRUE;
    ok = load_mlp (m, name, t->moe_intermediate_size * t->n_shared_experts, &ly->sh_gate,
                   &ly->sh_up, &ly->sh_down, error);
    g_free (name);
  }
  return ok;
}

/* Fields the decoder cannot run without, beyond what the config parser checks. */
static gboolean
check_config (const dsocr_config *cfg, GError **error)
{
  const dsocr_text_config *t = &cfg->text;
  const char *bad = NULL;

  if (t->num_key_value_heads <= 0 || t->num_attention_heads % t->num_key_value_heads != 0)
    bad = "num_attention_heads must be a multiple of num_key_value_heads";
  else if (t->use_mla && (t->kv_lora_rank <= 0 || t->qk_rope_head_dim <= 0 ||
                          t->qk_rope_head_dim % 2 != 0 || t->v_head_dim <= 0))
    bad = "MLA needs kv_lora_rank, an even qk_rope_head_dim and v_head_dim";
  else if (!t->use_mla && (t->head_dim <= 0 || t->head_dim % 2 != 0))
    bad = "MHA needs an even head_dim";
  else if (t->n_routed_experts > 0 &&
           (t->num_experts_per_tok <= 0 || t->num_experts_per_tok > t->n_routed_experts))
    bad = "num_experts_per_tok must be in [1, n_routed_experts]";
  else if (t->n_routed_experts > 0 && t->n_group > 0 && t->n_routed_experts % t->n_group != 0)
    bad = "n_group must divide n_routed_experts";
  if (bad) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED, "%s: %s", cfg->path, bad);
    return FALSE;
  }
  return TRUE;
}

/* Inverse frequencies of the rotary embedding (transformers' rope init functions: default,
 * linear, yarn) and the multiplier of cos/sin (yarn's attention factor, else 1). */
static gboolean
rope_tables (dsocr_model *m, GError **error)
{
  const dsocr_text_config *t = &m->config->text;
  const dsocr_rope_config *r = &t->rope;
  const int half = t->rope_dim / 2;
  dsk_rope_yarn yarn = {
    .factor = (float) r->factor,
    .original_max_position = (size_t) r->original_max_position_embeddings,
    .beta_fast = (float) (r->beta_fast > 0 ? r->beta_fast : 32.0),
    .beta_slow = (float) (r->beta_slow > 0 ? r->beta_slow : 1.0),
    .mscale = (float) r->mscale,
    .mscale_all_dim = (float) r->mscale_all_dim,
  };

  m->rope_inv_freq = g_new (float, half);
  m->rope_scale = r->type == DSOCR_ROPE_YARN ? (float) r->attention_factor : 1.0f;
  if (dsk_rope_inv_freq (m->rope_inv_freq, (size_t) t->rope_dim, (float) r->theta,
                             r->type == DSOCR_ROPE_YARN ? &yarn : NULL) != DSK_OK) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG,
                 "%s: rope: cannot build the frequencies (rope dim %d, theta %g, factor %g, "
                 "original_max_position_embeddings %d)", m->config->path, t->rope_dim, r->theta,
                 r->factor, r->original_max_position_embeddings);
    return FALSE;
  }
  if (r->type == DSOCR_ROPE_LINEAR) {
    for (int i = 0; i < half; i++)
      m->rope_inv_freq[i] = m->rope_inv_freq[i] / (float) r->factor;
  }
  return TRUE;
}

/* ---- weights per device (weight-sets.h) ---- */

/* Calls @fn on every tensor of @set (the layers' expert arrays and indexers included), each
 * with its role for the precisions: the matrices of the products a decode step reads
 * (attention, MLPs, experts, lm_head) are DSOCR_WEIGHT_MATRIX. kv_b stays as stored: the
 * absorbed MLA form reads it untransposed (dsk_matmul), and so do the indexer's small
 * projections and the classification head, whose bytes hardly count. */
static void
weights_for_each (gpointer set, dsocr_tensor_fn fn, gpointer data, gconstpointer owner)
{
  const dsocr_weight_role M = DSOCR_WEIGHT_MATRIX, O = DSOCR_WEIGHT_OTHER;
  dsocr_decoder_weights *w = set;
  const int n_experts = ((const dsocr_model *) owner)->config->text.n_routed_experts;
  dsk_tensor *top[] = { &w->embed, &w->norm, &w->score.w, &w->rope_inv_freq };
  for (gsize i = 0; i < G_N_ELEMENTS (top); i++)
    fn (top[i], O, data);
  fn (&w->lm_head.w, M, data);
  for (int l = 0; l < w->n_layers; l++) {
    dsocr_layer *ly = &w->layers[l];
    dsocr_linear *lins[] = { &ly->q, &ly->k, &ly->v, &ly->o, &ly->q_a, &ly->q_b, &ly->kv_a,
                             &ly->kv_b, &ly->gate, &ly->up, &ly->down };
    dsk_tensor *vecs[] = { &ly->attn_norm, &ly->ffn_norm, &ly->q_a_norm, &ly->kv_a_norm,
                           &ly->router, &ly->router_bias };
    dsk_tensor *mats[] = { &ly->sh_gate, &ly->sh_up, &ly->sh_down };
    for (gsize i = 0; i < G_N_ELEMENTS (lins); i++) {
      fn (&lins[i]->w, lins[i] == &ly->kv_b ? O : M, data);
      fn (&lins[i]->b, O, data);
    }
    for (gsize i = 0; i < G_N_ELEMENTS (vecs); i++)
      fn (vecs[i], O, data);
    for (gsize i = 0; i < G_N_ELEMENTS (mats); i++)
      fn (mats[i], M, data);
    for (int e = 0; ly->exp_gate && e < n_experts; e++) {
      fn (&ly->exp_gate[e], M, data);
      fn (&ly->exp_up[e], M, data);
      fn (&ly->exp_down[e], M, data);
    }
    if (ly->indexer) {
      dsocr_indexer_weights *ix = ly->indexer;
      dsk_tensor *its[] = { &ix->wq_b, &ix->wk, &ix->k_norm_w, &ix->k_norm_b,
                            &ix->weights_proj };
      for (gsize i = 0; i < G_N_ELEMENTS (its); i++)
        fn (its[i], O, data);
    }
  }
}

/* A copy of @host's structure (layers, expert arrays, indexers) with the same tensors. */
static gpointer
weights_copy (gconstpointer host, gconstpointer owner)
{
  const dsocr_decoder_weights *src = host;
  const int n_experts = ((const dsocr_model *) owner)->config->text.n_routed_experts;
  dsocr_decoder_weights *w = g_new (dsocr_decoder_weights, 1);
  *w = *src;
  w->layers = g_memdup2 (src->layers, sizeof (dsocr_layer) * (gsize) MAX (src->n_layers, 1));
  for (int l = 0; l < w->n_layers; l++) {
    dsocr_layer *ly = &w->layers[l];
    if (ly->exp_gate) {
      ly->exp_gate = g_memdup2 (ly->exp_gate, sizeof (dsk_tensor) * (gsize) n_experts);
      ly->exp_up = g_memdup2 (ly->exp_up, sizeof (dsk_tensor) * (gsize) n_experts);
      ly->exp_down = g_memdup2 (ly->exp_down, sizeof (dsk_tensor) * (gsize) n_experts);
    }
    if (ly->indexer)
      ly->indexer = g_memdup2 (ly->indexer, sizeof (dsocr_indexer_weights));
  }
  return w;
}

/* Frees what weights_copy() or loading allocated (the structure, not the tensors' data). */
static void
weights_clear (dsocr_decoder_weights *w)
{
  for (int l = 0; w->layers && l < w->n_layers; l++) {
    g_free (w->layers[l].indexer);
    g_free (w->layers[l].exp_gate);
    g_free (w->layers[l].exp_up);
    g_free (w->layers[l].exp_down);
  }
  g_free (w->layers);
  w->layers = NULL;
}

static void
weights_free (gpointer set)
{
  weights_clear (set);
  g_free (set);
}

/* A quantized copy replaced a host tensor: its mapped pages go back to the kernel, so that a
 * q8 / q4 model does not also keep the checkpoint's bf16 pages resident. */
static void
weights_release (gconstpointer owner, const dsk_tensor *host)
{
  const dsocr_model *m = owner;
  dsocr_checkpoint_drop_pages (m->ckpt, host->data,
                               dsk_dtype_bytes (host->dtype, dsk_tensor_n_elements (host)));
}

static const dsocr_weight_set_class weights_class = {
  weights_copy, weights_for_each, weights_free, weights_release,
};

const dsocr_decoder_weights *
dsocr_model_weights (dsocr_model *m, dsk_backend *be, dsocr_precision precision, gsize *bytes,
                     GError **error)
{
  return dsocr_weight_sets_get (m->sets, &m->host, be, precision, bytes,
                                "preparing the decoder weights", error);
}

static void
model_free (dsocr_model *m)
{
  dsocr_weight_sets_free (m->sets);
  weights_clear (&m->host);
  g_free (m->rope_inv_freq);
  if (m->owned)
    g_ptr_array_unref (m->owned);
  dsocr_checkpoint_unref (m->ckpt);
  dsocr_config_free (m->config);
  g_free (m);
}

dsocr_model *
dsocr_model_new_from_checkpoint (dsocr_checkpoint *ckpt, dsocr_config *config, GError **error)
{
  dsocr_model *m = g_new0 (dsocr_model, 1);
  dsocr_decoder_weights *w = &m->host;
  const dsocr_text_config *t = &config->text;
  const int H = t->hidden_size, V = t->vocab_size;
  const dsocr_tensor *embed;

  g_atomic_ref_count_init (&m->ref);
  m->config = config;
  m->ckpt = dsocr_checkpoint_ref (ckpt);
  m->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) dsocr_tensor_free);
  m->sets = dsocr_weight_sets_new (&weights_class, m);
  if (!check_config (config, error))
    goto fail;

  embed = weight (m, "model.embed_tokens.weight", 2, V, H, error);
  if (!embed || !vector (m, &w->norm, "model.norm.weight", H, error))
    goto fail;
  w->embed = host_tensor (embed);
  if (config->architecture == DSOCR_ARCH_CAUSAL_LM) {
    if (t->tie_word_embeddings) {
      w->lm_head = (dsocr_linear) { .w = w->embed };
    } else if (!linear (m, &w->lm_head, "lm_head", V, H, FALSE, error)) {
      goto fail;
    }
  } else if (config->architecture == DSOCR_ARCH_SEQUENCE_CLASSIFICATION) {
    if (!linear (m, &w->score, "score", config->num_labels, H, FALSE, error))
      goto fail;
  }

  w->n_layers = t->num_hidden_layers;
  w->layers = g_new0 (dsocr_layer, MAX (w->n_layers, 1));
  for (int l = 0; l < w->n_layers; l++) {
    dsocr_layer *ly = &w->layers[l];
    char *p = g_strdup_printf ("model.layers.%d", l), *name;
    gboolean ok;

    name = g_strconcat (p, ".input_layernorm.weight", NULL);
    ok = vector (m, &ly->attn_norm, name, H, error);
    g_free (name);
    name = g_strconcat (p, ".post_attention_layernorm.weight", NULL);
    ok = ok && vector (m, &ly->ffn_norm, name, H, error);
    g_free (name);
    ok = ok && load_attention (m, ly, p, error) && load_indexer (m, ly, l, error) &&
         load_ffn (m, ly, l, p, error);
    g_free (p);
    if (!ok)
      goto fail;
  }
  if (!rope_tables (m, error))
    goto fail;
  w->rope_inv_freq = dsk_tensor_host_1d (m->rope_inv_freq, DSK_F32, (size_t) t->rope_dim / 2);
  return m;

fail:
  model_free (m);
  return NULL;
}

dsocr_model *
dsocr_model_load (const char *dir, GError **error)
{
  dsocr_config *config;
  dsocr_checkpoint *ckpt;
  dsocr_model *m;

  config = dsocr_config_load (dir, error);
  if (!config)
    return NULL;
  ckpt = dsocr_checkpoint_open (dir, error);
  if (!ckpt) {
    dsocr_config_free (config);
    return NULL;
  }
  m = dsocr_model_new_from_checkpoint (ckpt, config, error);
  dsocr_checkpoint_unref (ckpt);
  return m;
}

dsocr_model *
dsocr_model_ref (dsocr_model *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_atomic_ref_count_inc (&model->ref);
  return model;
}

void
dsocr_model_unref (dsocr_model *model)
{
  if (model && g_atomic_ref_count_dec (&model->ref))
    model_free (model);
}

const dsocr_config *
dsocr_model_get_config (const dsocr_model *model)
{
  return model->config;
}

dsocr_checkpoint *
dsocr_model_get_checkpoint (const dsocr_model *model)
{
  return model->ckpt;
}

int
dsocr_model_get_n_embd (const dsocr_model *model)
{
  return model->config->text.hidden_size;
}

int
dsocr_model_get_n_vocab (const dsocr_model *model)
{
  return model->config->text.vocab_size;
}

int
dsocr_model_get_n_layers (const dsocr_model *model)
{
  return model->host.n_layers;
}

gboolean
dsocr_model_has_lm_head (const dsocr_model *model)
{
  return model->host.lm_head.w.data != NULL;
}

gboolean
dsocr_model_has_score_head (const dsocr_model *model)
{
  return model->host.score.w.data != NULL;
}

int
dsocr_model_get_n_labels (const dsocr_model *model)
{
  return model->host.score.w.data ? (int) model->host.score.w.ne[0] : 0;
}

gboolean
dsocr_model_embed (const dsocr_model *model, const int32_t *ids, gsize n_ids, float *out,
                   GError **error)
{
  const dsk_tensor *e = &model->host.embed;
  const int H = model->config->text.hidden_size, V = model->config->text.vocab_size;
  const gsize row_bytes = (gsize) H * dsk_dtype_size (e->dtype);

  for (gsize i = 0; i < n_ids; i++) {
    if (ids[i] < 0 || ids[i] >= V) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "token id %d at index %" G_GSIZE_FORMAT " is outside the vocabulary [0, %d)",
                   ids[i], i, V);
      return FALSE;
    }
    dsk_convert_to_f32 (out + i * H, (const char *) e->data + (gsize) ids[i] * row_bytes,
                        e->dtype, (size_t) H);
  }
  return TRUE;
}
