/* indexer.h (internal): DeepSeek-V3.2's lightning indexer and the sparse attention it drives.
 *
 * decoder.c and attention-mla.c call, per forward call and per MLA layer with an indexer:
 *   dsocr_indexer_begin ()       once per forward call: starts a new record of outputs;
 *   dsocr_indexer_prepare ()     after the query latent is known: the new columns' indexer keys
 *                                go to the cache (v, index_head_dim floats per column);
 *   dsocr_indexer_attention ()   instead of dsk_attention for each row: scores the row's
 *                                queries against its cached indexer keys, keeps the index_topk
 *                                best visible keys per query, attends over those, and records
 *                                the outputs asked for (dsocr-indexer.h).
 * The math (reference sheet 10.2, transformers' DeepseekV32Indexer) is in the backend's ops
 * index_scores, topk, attention_sparse and attention_probs.
 */
#ifndef DSOCR_ENGINE_INDEXER_H
#define DSOCR_ENGINE_INDEXER_H

#include <glib.h>
#include <stdint.h>

#include "decoder.h"
#include "dsocr/dsocr-checkpoint.h"
#include "dsocr/dsocr-config.h"
#include "dsocr/dsocr-indexer.h"

G_BEGIN_DECLS

/* Looks up "model.layers.<layer>.self_attn.indexer.*" in @ckpt and checks shapes and dtypes
 * (BF16, F16, F32; wq_b and wk may be F8_E4M3 with weight_scale_inv when @cfg has an FP8
 * quantization_config: they are dequantised, the new tensors appended to @owned). The result
 * holds host views. */
gboolean dsocr_indexer_weights_load (dsocr_indexer_weights *w, dsocr_checkpoint *ckpt,
                                     const dsocr_config *cfg, int layer, GPtrArray *owned,
                                     GError **error);

/* The runtime of one decoder state, for a model whose config has use_sparse_attention (NULL
 * otherwise). (transfer full) */
dsocr_indexer *dsocr_indexer_new (const dsocr_config *cfg);
void dsocr_indexer_free (dsocr_indexer *ix);

/* Sets the outputs to record (dsocr_indexer_flags); see dsocr_session_set_indexer_outputs. */
gboolean dsocr_indexer_set_flags (dsocr_indexer *ix, guint flags, GError **error);
/* The outputs of the last completed forward call, or NULL. (transfer none) */
const dsocr_indexer_outputs *dsocr_indexer_get_outputs (const dsocr_indexer *ix);
/* Forgets the recorded outputs (a session reset). */
void dsocr_indexer_forget (dsocr_indexer *ix);

/* A forward call of @n_seq rows of @n_tokens new columns over @n_kv columns in all: sizes the
 * record of outputs. FALSE with @error (DSOCR_ERROR_NOMEM). */
gboolean dsocr_indexer_begin (dsocr_indexer *ix, int n_seq, int n_tokens, int n_kv,
                              GError **error);
/* Layer @layer of the call in progress on @s: @xn [T, hidden] the attention-normed input,
 * @qr [T, q_lora] the query latent q_a_layernorm(q_a_proj(xn)). Writes the new columns'
 * indexer keys to the cache; @xn and @qr (views) must stay valid until the layer's last
 * dsocr_indexer_attention(). */
void dsocr_indexer_prepare (dsocr_indexer *ix, dsocr_decoder_state *s,
                            const dsocr_indexer_weights *w, int layer, const dsk_tensor *xn,
                            const dsk_tensor *qr);
/* The sparse attention of row @row of the prepared layer, with @out, @q, @k, @v and @desc as
 * dsk_attention takes them for that row (B = 1, causal, q_pos0 = n_past, key_valid = the
 * row's mask). Queries that see more than index_topk keys attend to their top index_topk only.
 * The last row of the last layer completes the call's outputs. FALSE with @error when an op
 * failed. */
gboolean dsocr_indexer_attention (dsocr_indexer *ix, dsocr_decoder_state *s, int row,
                                  const dsk_tensor *out, const dsk_tensor *q, const dsk_tensor *k,
                                  const dsk_tensor *v, const dsk_attention_desc *desc,
                                  GError **error);

G_END_DECLS

#endif /* DSOCR_ENGINE_INDEXER_H */
