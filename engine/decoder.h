/* decoder.h (internal): the DeepSeek-V2-family decoder's weights and its layer loop.
 *
 * model.c fills struct dsocr_model (weights borrowed from the checkpoint); decoder.c runs the
 * layers on float32 activations for session.c. Per layer (pre-norm, as the reference):
 *   h = h + Attn(RMSNorm(h))        Attn = MHA (rotate-half RoPE) or MLA (latent KV)
 *   h = h + FFN(RMSNorm(h))         FFN  = dense SwiGLU or MoE (routed experts + shared)
 * and after the last layer the final RMSNorm and a head (lm_head or score).
 */
#ifndef DSOCR_DECODER_H
#define DSOCR_DECODER_H

#include <glib.h>
#include <stdint.h>

#include "dsocr/dsocr-checkpoint.h"
#include "dsocr/dsocr-config.h"
#include "dsocr/dsocr-model.h"
#include "dsocr/dsocr-session.h"
#include "dsocr/dsocr-tensor.h"
#include "indexer.h"
#include "kv-cache.h"

G_BEGIN_DECLS

/* y = x W^T (+ b): W [out, in] in the checkpoint's dtype, b [out] or NULL. */
typedef struct {
  const dsocr_tensor *w;
  const dsocr_tensor *b;
  int n_out, n_in;
} dsocr_linear;

typedef struct {
  const dsocr_tensor *attn_norm;   /* [n_embd] input_layernorm */
  const dsocr_tensor *ffn_norm;    /* [n_embd] post_attention_layernorm */

  /* MHA (use_mla false): q [n_head * head_dim], k/v [n_kv_head * head_dim], o back to n_embd. */
  dsocr_linear q, k, v, o;
  /* MLA: q (when q_lora_rank is 0) or q_a -> q_a_norm -> q_b, each giving
   * [n_head * (qk_nope + qk_rope)]; kv_a [kv_lora_rank + qk_rope] -> kv_a_norm on the latent;
   * kv_b [n_head * (qk_nope + v_head), kv_lora_rank]; o [n_embd, n_head * v_head]. */
  dsocr_linear q_a, q_b, kv_a, kv_b;
  const dsocr_tensor *q_a_norm;    /* [q_lora_rank] */
  const dsocr_tensor *kv_a_norm;   /* [kv_lora_rank] */
  dsocr_indexer_weights *indexer;  /* DeepSeek-V3.2 sparse attention (owned), NULL without */

  gboolean is_moe;
  dsocr_linear gate, up, down;     /* dense SwiGLU: [inter, n_embd] x2, [n_embd, inter] */
  const dsocr_tensor *router;      /* [n_experts, n_embd] mlp.gate.weight */
  const dsocr_tensor *router_bias; /* [n_experts] e_score_correction_bias (noaux_tc), or NULL */
  dsocr_linear *exp_gate, *exp_up, *exp_down;   /* [n_experts] each (owned arrays) */
  gboolean has_shared;
  dsocr_linear sh_gate, sh_up, sh_down;         /* shared experts, one fused MLP */
} dsocr_layer;

struct dsocr_model {
  gatomicrefcount ref;
  dsocr_config *config;            /* owned */
  dsocr_checkpoint *ckpt;          /* one reference; every tensor below is borrowed from it */
  const dsocr_tensor *embed;       /* [n_vocab, n_embd] */
  const dsocr_tensor *norm;        /* [n_embd] */
  dsocr_linear lm_head;            /* [n_vocab, n_embd] (embed when tied); w NULL if absent */
  dsocr_linear score;              /* [n_labels, n_embd]; w NULL if absent */
  dsocr_layer *layers;             /* [n_layers] */
  int n_layers;
  float *rope_inv_freq;            /* [rope_dim / 2] */
  float rope_scale;                /* cos/sin multiplier (yarn attention_factor, else 1) */
  GPtrArray *owned;                /* dsocr_tensor: FP8 weights dequantised at load (fp8.c) */
};

/* Scratch memory and state of one session's forward passes (decoder.c). */
typedef struct dsocr_decoder_state dsocr_decoder_state;

dsocr_decoder_state *dsocr_decoder_state_new (const dsocr_model *model, int n_threads,
                                              dsocr_mla_form mla_form);
void dsocr_decoder_state_free (dsocr_decoder_state *state);
/* The state's DSA indexer (indexer.h), NULL when the model has none. (transfer none) */
dsocr_indexer *dsocr_decoder_get_indexer (dsocr_decoder_state *state);

/* Runs every layer and the final norm.
 * @x: [n_seq, n_tokens, n_embd] input embeddings; overwritten (the residual stream).
 * @positions: [n_seq, n_tokens]. The new columns' mask has already been written to
 * @cache->mask at columns [n_past, n_past + n_tokens) and room reserved; the keys and values
 * are written there and cache->n_past is left for the caller to advance.
 * @out: [n_seq, n_tokens, n_embd] the final-norm hidden states.
 * Returns FALSE with @error only on an allocation failure. */
gboolean dsocr_decoder_forward (dsocr_decoder_state *state, dsocr_kv_cache *cache, int n_seq,
                                int n_tokens, float *x, const int32_t *positions, float *out,
                                dsocr_tensor_callback callback, gpointer user_data,
                                GError **error);

/* logits [n, n_vocab] = h [n, n_embd] lm_head^T. FALSE only when scratch cannot be had. */
gboolean dsocr_decoder_lm_head (dsocr_decoder_state *state, const float *h, int n, float *logits,
                                GError **error);
/* logits [n, n_labels] = h [n, n_embd] score^T (single-threaded; the head is tiny). */
void dsocr_decoder_score (const dsocr_model *model, const float *h, int n, float *logits);

G_END_DECLS

#endif /* DSOCR_DECODER_H */
