/* decoder.h (internal): the DeepSeek-V2-family decoder: its weights and its layer loop.
 *
 * model.c loads the weights as host tensors borrowed from the checkpoint and prepares them once
 * per device (dsocr_model_weights); decoder.c runs the layers for session.c through a backend.
 * Per layer (pre-norm, as the reference):
 *   h = h + Attn(RMSNorm(h))        Attn = MHA (attention-mha.c) or MLA (attention-mla.c),
 *                                   with DeepSeek-V3.2's sparse top-k (indexer.c)
 *   h = h + FFN(RMSNorm(h))         FFN  = dense SwiGLU or MoE (moe.c)
 * and after the last layer the final RMSNorm and a head (lm_head or score).
 *
 * Every tensor below lives on the device its weight set was prepared for; a comment gives its
 * shape, outermost first.
 */
#ifndef DSOCR_DECODER_H
#define DSOCR_DECODER_H

#include <glib.h>
#include <stdint.h>

#include "backend.h"
#include "dsocr/dsocr-checkpoint.h"
#include "dsocr/dsocr-config.h"
#include "dsocr/dsocr-model.h"
#include "dsocr/dsocr-session.h"
#include "dsocr/dsocr-tensor.h"
#include "kv-cache.h"

G_BEGIN_DECLS

/* y = x W^T (+ b): W [out, in] in its stored dtype; b [out], or b.data NULL without bias. */
typedef struct {
  dsk_tensor w;
  dsk_tensor b;
} dsocr_linear;

static inline const dsk_tensor *
dsocr_linear_bias (const dsocr_linear *l)
{
  return l->b.data ? &l->b : NULL;
}

/* One layer's DeepSeek-V3.2 lightning indexer. */
typedef struct {
  dsk_tensor wq_b;          /* [n_heads * head_dim, q_lora_rank] */
  dsk_tensor wk;            /* [head_dim, hidden] */
  dsk_tensor k_norm_w;      /* [head_dim] LayerNorm weight */
  dsk_tensor k_norm_b;      /* [head_dim] LayerNorm bias */
  dsk_tensor weights_proj;  /* [n_heads, hidden] */
} dsocr_indexer_weights;

typedef struct {
  dsk_tensor attn_norm;            /* [n_embd] input_layernorm */
  dsk_tensor ffn_norm;             /* [n_embd] post_attention_layernorm */

  /* MHA (use_mla false): q [n_head * head_dim], k/v [n_kv_head * head_dim], o back to n_embd. */
  dsocr_linear q, k, v, o;
  /* MLA: q (when q_lora_rank is 0) or q_a -> q_a_norm -> q_b, each giving
   * [n_head * (qk_nope + qk_rope)]; kv_a [kv_lora_rank + qk_rope] -> kv_a_norm on the latent;
   * kv_b [n_head * (qk_nope + v_head), kv_lora_rank]; o [n_embd, n_head * v_head]. */
  dsocr_linear q_a, q_b, kv_a, kv_b;
  dsk_tensor q_a_norm;             /* [q_lora_rank] */
  dsk_tensor kv_a_norm;            /* [kv_lora_rank] */
  dsocr_indexer_weights *indexer;  /* DeepSeek-V3.2 sparse attention (owned), NULL without */

  gboolean is_moe;
  dsocr_linear gate, up, down;     /* dense SwiGLU: [inter, n_embd] x2, [n_embd, inter] */
  dsk_tensor router;               /* [n_experts, n_embd] mlp.gate.weight */
  dsk_tensor router_bias;          /* [n_experts] e_score_correction_bias (noaux_tc), or none */
  dsk_tensor *exp_gate, *exp_up, *exp_down;   /* [n_experts] each (owned arrays) */
  gboolean has_shared;
  dsk_tensor sh_gate, sh_up, sh_down;         /* shared experts, one fused MLP */
} dsocr_layer;

/* The decoder's weights on one device. */
typedef struct {
  dsk_tensor embed;                /* [n_vocab, n_embd] */
  dsk_tensor norm;                 /* [n_embd] */
  dsocr_linear lm_head;            /* [n_vocab, n_embd] (embed when tied); w.data NULL if none */
  dsocr_linear score;              /* [n_labels, n_embd]; w.data NULL if none */
  dsocr_layer *layers;             /* [n_layers] */
  int n_layers;
  dsk_tensor rope_inv_freq;        /* [rope_dim / 2] F32 */
} dsocr_decoder_weights;

struct dsocr_model {
  gatomicrefcount ref;
  dsocr_config *config;            /* owned */
  dsocr_checkpoint *ckpt;          /* one reference; host weights are borrowed from it */
  GPtrArray *owned;                /* dsocr_tensor: FP8 weights dequantised at load (fp8.c) */
  float *rope_inv_freq;            /* [rope_dim / 2] */
  float rope_scale;                /* cos/sin multiplier (yarn attention_factor, else 1) */
  dsocr_decoder_weights host;      /* as loaded: views of the checkpoint */
  struct dsocr_weight_sets *sets;  /* host prepared per device (weight-sets.h) */
};

/* The weights of @model prepared for @be's device at @precision: made on the first call for
 * that pair and shared by every later caller (thread-safe); @bytes (nullable) gets what they
 * take. (transfer none) valid while @model lives; NULL with @error when the device cannot hold
 * them. */
const dsocr_decoder_weights *dsocr_model_weights (dsocr_model *model, dsk_backend *be,
                                                  dsocr_precision precision, gsize *bytes,
                                                  GError **error);

/* Widths of a KV-cache column for @t's attention, decided by the attention code
 * (attention-mha.c, attention-mla.c): MHA keeps post-RoPE keys and values per KV head; MLA the
 * latent c plus the shared rotated k_pe in k, and DeepSeek-V3.2's indexer keys in v. */
void dsocr_attention_cache_widths (const dsocr_text_config *t, int *k_width, int *v_width);
void dsocr_attention_mha_cache_widths (const dsocr_text_config *t, int *k_width, int *v_width);
void dsocr_attention_mla_cache_widths (const dsocr_text_config *t, int *k_width, int *v_width);

/* ---- the forward pass ---- */

typedef struct dsocr_indexer dsocr_indexer;

/* One session's decoder state: its backend, weights, scratch arenas and tables. */
typedef struct {
  const dsocr_model *model;
  const dsocr_decoder_weights *w;  /* prepared for be's device and the precision */
  gsize weight_bytes;              /* what they take */
  dsk_backend *be;                 /* a reference */
  dsk_arena *pass;                 /* tensors of one forward call */
  dsk_arena *scratch;              /* tensors of one layer's block, reset per block */
  dsocr_mla_form mla_form;
  dsocr_indexer *indexer;          /* DeepSeek-V3.2 sparse attention (indexer.c), or NULL */

  dsk_buffer *rope_buf;            /* the tables below */
  dsk_tensor cos_tab, sin_tab;     /* [n_pos, rope_dim / 2] */
  size_t n_pos;

  /* the forward call in progress */
  dsocr_kv_cache *cache;
  int n_seq, n_tokens;
  dsk_tensor pos;                  /* [n_seq * n_tokens] I32 position ids */
  dsocr_tensor_callback callback;
  gpointer user_data;
} dsocr_decoder_state;

/* A state on @be (referenced) for @model's weights prepared there at @precision. NULL with
 * @error. */
dsocr_decoder_state *dsocr_decoder_state_new (dsocr_model *model, dsk_backend *be,
                                              dsocr_precision precision,
                                              dsocr_mla_form mla_form, GError **error);
void dsocr_decoder_state_free (dsocr_decoder_state *state);

/* Runs every layer and the final norm.
 * @x: [n_seq * n_tokens, n_embd] input embeddings, overwritten (the residual stream).
 * @positions: [n_seq * n_tokens] (host). The new columns' mask has already been written to
 * the cache at columns [n_past, n_past + n_tokens) and room reserved; the keys and values are
 * written there and cache->n_past is left for the caller to advance.
 * @out: [n_seq * n_tokens, n_embd] the final-norm hidden states.
 * FALSE with @error when an op fails (memory, a device error). */
gboolean dsocr_decoder_forward (dsocr_decoder_state *state, dsocr_kv_cache *cache, int n_seq,
                                int n_tokens, const dsk_tensor *x, const int32_t *positions,
                                const dsk_tensor *out, dsocr_tensor_callback callback,
                                gpointer user_data, GError **error);

/* logits [n, n_vocab] = h [n, n_embd] lm_head^T, and score likewise. */
void dsocr_decoder_lm_head (dsocr_decoder_state *state, const dsk_tensor *h,
                            const dsk_tensor *logits);
void dsocr_decoder_score (dsocr_decoder_state *state, const dsk_tensor *h,
                          const dsk_tensor *logits);

/* ---- pieces of a layer (decoder.c calls them; they run ops on state->be) ---- */

/* out [T, n_embd] = the attention block of layer @il on the normed input xn [T, n_embd]. */
void dsocr_attention_mha (dsocr_decoder_state *s, const dsocr_layer *ly, int il,
                          const dsk_tensor *xn, const dsk_tensor *out);
gboolean dsocr_attention_mla (dsocr_decoder_state *s, const dsocr_layer *ly, int il,
                              const dsk_tensor *xn, const dsk_tensor *out, GError **error);
/* out [T, n_embd] = the MoE feed-forward of layer @il on xn [T, n_embd]. */
void dsocr_moe_forward (dsocr_decoder_state *s, const dsocr_layer *ly, int il,
                        const dsk_tensor *xn, const dsk_tensor *out);

/* Sends @t (on the backend) to the state's tensor callback under @name, as a host tensor of
 * dtype @dtype [n_seq, n_tokens, width]. */
void dsocr_decoder_emit (dsocr_decoder_state *s, const char *name, int layer, const dsk_tensor *t);

G_END_DECLS

#endif /* DSOCR_DECODER_H */
