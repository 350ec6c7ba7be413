/* model.c: loading the decoder's weights as borrowed views of the checkpoint (FP8 weights
 * are dequantised into tensors the model owns). */
#include "dsocr/dsocr-model.h"

#include <string.h>

#include "decoder.h"
#include "dsk.h"
#include "dsocr/dsocr-error.h"

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

  lin->n_out = n_out;
  lin->n_in = n_in;
  lin->w = weight (m, name, 2, n_out, n_in, error);
  g_free (name);
  if (!lin->w)
    return FALSE;
  lin->b = NULL;
  if (bias) {
    name = g_strconcat (prefix, ".bias", NULL);
    lin->b = weight (m, name, 1, n_out, 0, error);
    g_free (name);
    if (!lin->b)
      return FALSE;
  }
  return TRUE;
}

static gboolean
vector (dsocr_model *m, const dsocr_tensor **out, const char *name, int n, GError **error)
{
  *out = weight (m, name, 1, n, 0, error);
  return *out != NULL;
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
load_mlp (dsocr_model *m, const char *p, int inter, dsocr_linear *gate, dsocr_linear *up,
          dsocr_linear *down, GError **error)
{
  const int H = m->config->text.hidden_size;
  char *g = g_strconcat (p, ".gate_proj", NULL), *u = g_strconcat (p, ".up_proj", NULL),
       *d = g_strconcat (p, ".down_proj", NULL);
  gboolean ok = linear (m, gate, g, inter, H, FALSE, error) &&
                linear (m, up, u, inter, H, FALSE, error) &&
                linear (m, down, d, H, inter, FALSE, error);
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
    ok = load_mlp (m, name, t->intermediate_size, &ly->gate, &ly->up, &ly->down, error);
    g_free (name);
    return ok;
  }

  name = g_strconcat (p, ".mlp.gate.weight", NULL);
  ly->router = weight (m, name, 2, E, H, error);
  g_free (name);
  if (!ly->router)
    return FALSE;
  if (t->topk_method == DSOCR_TOPK_NOAUX_TC) {
    name = g_strconcat (p, ".mlp.gate.e_score_correction_bias", NULL);
    ok = vector (m, &ly->router_bias, name, E, error);
    g_free (name);
    if (!ok)
      return FALSE;
  }
  ly->exp_gate = g_new0 (dsocr_linear, E);
  ly->exp_up = g_new0 (dsocr_linear, E);
  ly->exp_down = g_new0 (dsocr_linear, E);
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
  if (dsk_rope_inv_freq_cpu (m->rope_inv_freq, (size_t) t->rope_dim, (float) r->theta,
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

static void
model_free (dsocr_model *m)
{
  if (m->layers) {
    for (int l = 0; l < m->n_layers; l++) {
      g_free (m->layers[l].indexer);
      g_free (m->layers[l].exp_gate);
      g_free (m->layers[l].exp_up);
      g_free (m->layers[l].exp_down);
    }
  }
  g_free (m->layers);
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
  const dsocr_text_config *t = &config->text;
  const int H = t->hidden_size, V = t->vocab_size;

  g_atomic_ref_count_init (&m->ref);
  m->config = config;
  m->ckpt = dsocr_checkpoint_ref (ckpt);
  m->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) dsocr_tensor_free);
  if (!check_config (config, error))
    goto fail;

  m->embed = weight (m, "model.embed_tokens.weight", 2, V, H, error);
  if (!m->embed || !vector (m, &m->norm, "model.norm.weight", H, error))
    goto fail;
  if (config->architecture == DSOCR_ARCH_CAUSAL_LM) {
    if (t->tie_word_embeddings) {
      m->lm_head = (dsocr_linear) { .w = m->embed, .n_out = V, .n_in = H };
    } else if (!linear (m, &m->lm_head, "lm_head", V, H, FALSE, error)) {
      goto fail;
    }
  } else if (config->architecture == DSOCR_ARCH_SEQUENCE_CLASSIFICATION) {
    if (!linear (m, &m->score, "score", config->num_labels, H, FALSE, error))
      goto fail;
  }

  m->n_layers = t->num_hidden_layers;
  m->layers = g_new0 (dsocr_layer, m->n_layers);
  for (int l = 0; l < m->n_layers; l++) {
    dsocr_layer *ly = &m->layers[l];
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
  return model->n_layers;
}

gboolean
dsocr_model_has_lm_head (const dsocr_model *model)
{
  return model->lm_head.w != NULL;
}

gboolean
dsocr_model_has_score_head (const dsocr_model *model)
{
  return model->score.w != NULL;
}

int
dsocr_model_get_n_labels (const dsocr_model *model)
{
  return model->score.w ? model->score.n_out : 0;
}

gboolean
dsocr_model_embed (const dsocr_model *model, const int32_t *ids, gsize n_ids, float *out,
                   GError **error)
{
  const int H = model->config->text.hidden_size, V = model->config->text.vocab_size;
  const gsize row_bytes = (gsize) H * dsocr_dtype_size (model->embed->dtype);

  for (gsize i = 0; i < n_ids; i++) {
    dsocr_tensor row;
    const int64_t shape[1] = { H };

    if (ids[i] < 0 || ids[i] >= V) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "token id %d at index %" G_GSIZE_FORMAT " is outside the vocabulary [0, %d)",
                   ids[i], i, V);
      return FALSE;
    }
    memset (&row, 0, sizeof row);
    row.name = model->embed->name;
    dsocr_tensor_init (&row, model->embed->dtype, 1, shape, NULL);
    row.data = (char *) model->embed->data + (gsize) ids[i] * row_bytes;
    if (!dsocr_tensor_to_f32 (&row, out + i * H, error))
      return FALSE;
  }
  return TRUE;
}
