/* decoder.c: the DeepSeek-V2-family layer loop, run as ops on the session's backend.
 *
 * The attention variants are in attention-mha.c and attention-mla.c, the MoE feed-forward in
 * moe.c, DeepSeek-V3.2's sparse attention in indexer.c; this file holds what every layer
 * shares: norms, the residual stream, the dense MLP, the RoPE tables and the heads.
 */
#include "decoder.h"

#include <string.h>

#include "backend-private.h"
#include "dsocr/dsocr-error.h"
#include "indexer.h"

/* What a cache column holds is the attention variant's choice. */
void
dsocr_attention_cache_widths (const dsocr_text_config *t, int *k_width, int *v_width)
{
  if (t->use_mla)
    dsocr_attention_mla_cache_widths (t, k_width, v_width);
  else
    dsocr_attention_mha_cache_widths (t, k_width, v_width);
}

dsocr_decoder_state *
dsocr_decoder_state_new (dsocr_model *model, dsk_backend *be, dsocr_precision precision,
                         dsocr_mla_form mla_form, GError **error)
{
  gsize bytes = 0;
  const dsocr_decoder_weights *w = dsocr_model_weights (model, be, precision, &bytes, error);
  dsocr_decoder_state *s;

  if (!w)
    return NULL;
  s = g_new0 (dsocr_decoder_state, 1);
  s->model = model;
  s->w = w;
  s->weight_bytes = bytes;
  s->be = dsk_backend_ref (be);
  s->pass = dsk_arena_new (be);
  s->scratch = dsk_arena_new (be);
  s->mla_form = mla_form;
  s->indexer = dsocr_indexer_new (model->config);
  return s;
}

void
dsocr_decoder_state_free (dsocr_decoder_state *s)
{
  if (!s)
    return;
  dsocr_indexer_free (s->indexer);
  dsk_buffer_free (s->rope_buf);
  dsk_arena_free (s->pass);
  dsk_arena_free (s->scratch);
  dsk_backend_unref (s->be);
  g_free (s);
}

/* Makes the cos/sin tables cover positions [0, max_pos]. */
static void
ensure_rope (dsocr_decoder_state *s, int32_t max_pos)
{
  const size_t half = (size_t) s->model->config->text.rope_dim / 2;
  size_t n_pos;

  if ((size_t) max_pos < s->n_pos)
    return;
  n_pos = MAX ((size_t) max_pos + 1, s->n_pos * 2);
  n_pos = MAX (n_pos, 256);
  dsk_buffer_free (s->rope_buf);
  s->n_pos = 0;
  s->rope_buf = dsk_buffer_new (s->be, 2 * n_pos * half * sizeof (float));
  if (!s->rope_buf)
    return;
  {
    const size_t ne[2] = { n_pos, half };
    s->cos_tab = dsk_buffer_tensor (s->rope_buf, 0, DSK_F32, 2, ne);
    s->sin_tab = dsk_buffer_tensor (s->rope_buf, n_pos * half * sizeof (float), DSK_F32, 2, ne);
  }
  dsk_rope_tables (s->be, &s->cos_tab, &s->sin_tab, &s->w->rope_inv_freq, s->model->rope_scale);
  s->n_pos = n_pos;
}

void
dsocr_decoder_emit (dsocr_decoder_state *s, const char *name, int layer, const dsk_tensor *t)
{
  dsocr_tensor ht = { .name = name };
  const size_t width = dsk_tensor_row_len (t);
  const int64_t shape[3] = { s->n_seq, s->n_tokens, (int64_t) width };
  void *host;

  if (!s->callback || dsk_backend_failed (s->be))
    return;
  dsocr_tensor_init (&ht, t->dtype == DSK_I32 ? DSOCR_DTYPE_I32 : DSOCR_DTYPE_F32, 3, shape,
                     NULL);
  host = g_malloc (dsk_tensor_n_elements (t) * dsk_dtype_size (t->dtype));
  dsk_tensor_get (s->be, t, host);
  ht.data = host;
  if (!dsk_backend_failed (s->be))
    s->callback (&ht, layer, s->user_data);
  g_free (host);
}

/* out [T, H] = down (silu (gate xn) * up xn). */
static void
swiglu_mlp (dsocr_decoder_state *s, const dsocr_layer *ly, const dsk_tensor *xn,
            const dsk_tensor *out)
{
  dsk_backend *be = s->be;
  const size_t T = xn->ne[0], inter = ly->gate.w.ne[0];
  dsk_tensor gate = dsk_arena_2d (s->scratch, DSK_F32, T, inter);   /* [T, inter] */
  dsk_tensor up = dsk_arena_2d (s->scratch, DSK_F32, T, inter);     /* [T, inter] */

  dsk_linear (be, &gate, xn, &ly->gate.w, NULL);
  dsk_linear (be, &up, xn, &ly->up.w, NULL);
  dsk_swiglu (be, &gate, &gate, &up);
  dsk_linear (be, out, &gate, &ly->down.w, NULL);
}

/* One layer: both residual blocks. */
static gboolean
layer_forward (dsocr_decoder_state *s, int l, const dsk_tensor *x, GError **error)
{
  dsk_backend *be = s->be;
  const dsocr_text_config *t = &s->model->config->text;
  const dsocr_layer *ly = &s->w->layers[l];
  const size_t T = x->ne[0], H = x->ne[1];
  const float eps = (float) t->rms_norm_eps;
  dsk_tensor xn, proj;

  dsk_arena_reset (s->scratch);
  xn = dsk_arena_2d (s->scratch, DSK_F32, T, H);     /* [T, H] normed input of a block */
  proj = dsk_arena_2d (s->scratch, DSK_F32, T, H);   /* [T, H] block output */
  dsk_rmsnorm (be, &xn, x, &ly->attn_norm, eps);
  if (t->use_mla) {
    if (!dsocr_attention_mla (s, ly, l, &xn, &proj, error))
      return FALSE;
  } else {
    dsocr_attention_mha (s, ly, l, &xn, &proj);
  }
  dsk_add (be, x, x, &proj);

  dsk_arena_reset (s->scratch);
  xn = dsk_arena_2d (s->scratch, DSK_F32, T, H);
  proj = dsk_arena_2d (s->scratch, DSK_F32, T, H);
  dsk_rmsnorm (be, &xn, x, &ly->ffn_norm, eps);
  if (ly->is_moe)
    dsocr_moe_forward (s, ly, l, &xn, &proj);
  else
    swiglu_mlp (s, ly, &xn, &proj);
  dsk_add (be, x, x, &proj);
  dsocr_decoder_emit (s, "hidden", l, x);
  return dsocr_backend_check (be, "decoder", error);
}

gboolean
dsocr_decoder_forward (dsocr_decoder_state *s, dsocr_kv_cache *cache, int n_seq, int n_tokens,
                       const dsk_tensor *x, const int32_t *positions, const dsk_tensor *out,
                       dsocr_tensor_callback callback, gpointer user_data, GError **error)
{
  dsk_backend *be = s->be;
  const size_t T = (size_t) n_seq * n_tokens;
  int32_t max_pos = 0;

  for (size_t i = 0; i < T; i++)
    max_pos = MAX (max_pos, positions[i]);
  dsk_arena_reset (s->pass);
  ensure_rope (s, max_pos);
  s->cache = cache;
  s->n_seq = n_seq;
  s->n_tokens = n_tokens;
  s->callback = callback;
  s->user_data = user_data;
  s->pos = dsk_arena_1d (s->pass, DSK_I32, T);   /* [T] */
  dsk_tensor_set (be, &s->pos, positions);
  if (s->indexer && !dsocr_indexer_begin (s->indexer, n_seq, n_tokens, cache->n_past + n_tokens,
                                          error))
    return FALSE;

  dsocr_decoder_emit (s, "embeddings", -1, x);
  if (!dsocr_backend_check (be, "decoder", error))
    return FALSE;
  for (int l = 0; l < s->w->n_layers; l++)
    if (!layer_forward (s, l, x, error))
      return FALSE;
  dsk_rmsnorm (be, out, x, &s->w->norm, (float) s->model->config->text.rms_norm_eps);
  dsocr_decoder_emit (s, "final_norm", -1, out);
  return dsocr_backend_check (be, "decoder", error);
}

void
dsocr_decoder_lm_head (dsocr_decoder_state *s, const dsk_tensor *h, const dsk_tensor *logits)
{
  dsk_linear (s->be, logits, h, &s->w->lm_head.w, NULL);
}

void
dsocr_decoder_score (dsocr_decoder_state *s, const dsk_tensor *h, const dsk_tensor *logits)
{
  dsk_linear (s->be, logits, h, &s->w->score.w, NULL);
}
