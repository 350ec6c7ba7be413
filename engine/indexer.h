/* indexer.h (internal): DeepSeek-V3.2's lightning indexer, the sparse attention it drives, and
 * the FP8 block dequantisation of V3/V3.2 release checkpoints.
 *
 * decoder.c calls, per MLA layer that has an indexer:
 *   dsocr_indexer_prepare ()     after the query latent is known: the new columns' indexer keys
 *                                go to the cache (cache->v, index_head_dim floats per column);
 *   dsocr_indexer_attention ()   instead of dsk_attention_f32_cpu for each row: scores the
 *                                row's queries against its cached indexer keys, keeps the
 *                                index_topk best visible keys per query (a -inf/0 additive bias
 *                                on the MLA logits), attends, and records the outputs asked for
 *                                (dsocr-indexer.h).
 * The math (reference sheet 10.2, transformers' DeepseekV32Indexer) is in indexer.c.
 */
#ifndef DSOCR_ENGINE_INDEXER_H
#define DSOCR_ENGINE_INDEXER_H

#include <glib.h>
#include <stdint.h>

#include "decoder-cpu.h"
#include "dsk.h"
#include "dsocr/dsocr-checkpoint.h"
#include "dsocr/dsocr-config.h"
#include "dsocr/dsocr-indexer.h"
#include "kv-cache.h"

G_BEGIN_DECLS

/* One layer's indexer weights; borrowed from the checkpoint, or dequantised FP8 tensors owned
 * by the array given to dsocr_indexer_weights_load(). */
typedef struct {
  const dsocr_tensor *wq_b;          /* [n_heads * head_dim, q_lora_rank] */
  const dsocr_tensor *wk;            /* [head_dim, hidden] */
  const dsocr_tensor *k_norm_w;      /* [head_dim] LayerNorm weight */
  const dsocr_tensor *k_norm_b;      /* [head_dim] LayerNorm bias */
  const dsocr_tensor *weights_proj;  /* [n_heads, hidden] */
} dsocr_indexer_weights;

/* Looks up "model.layers.<layer>.self_attn.indexer.*" in @ckpt and checks shapes and dtypes
 * (BF16, F16, F32; wq_b and wk may be F8_E4M3 with weight_scale_inv when @cfg has an FP8
 * quantization_config: they are dequantised, the new tensors appended to @owned). */
gboolean dsocr_indexer_weights_load (dsocr_indexer_weights *w, dsocr_checkpoint *ckpt,
                                     const dsocr_config *cfg, int layer, GPtrArray *owned,
                                     GError **error);

/* ---- runtime (one per decoder state) ---- */

typedef struct dsocr_indexer dsocr_indexer;

/* For a model whose config has use_sparse_attention (returns NULL otherwise); products and
 * loops run on @mm and @pool (decoder-cpu.h), borrowed for the indexer's life.
 * (transfer full) */
dsocr_indexer *dsocr_indexer_new (const dsocr_config *cfg, dsocr_pool *pool, dsocr_mm *mm);
void dsocr_indexer_free (dsocr_indexer *ix);

/* Sets the outputs to record (dsocr_indexer_flags); see dsocr_session_set_indexer_outputs. */
gboolean dsocr_indexer_set_flags (dsocr_indexer *ix, guint flags, GError **error);
/* The outputs of the last completed forward call, or NULL. (transfer none) */
const dsocr_indexer_outputs *dsocr_indexer_get_outputs (const dsocr_indexer *ix);
/* Forgets the recorded outputs (a session reset). */
void dsocr_indexer_forget (dsocr_indexer *ix);

/* Layer @layer of a forward call over @n_seq rows of @n_tokens new columns each:
 * @xn: [n_seq * n_tokens, hidden] the attention-normed input; @qr: [n_seq * n_tokens, q_lora]
 * the query latent q_a_layernorm(q_a_proj(xn)); @positions: [n_seq * n_tokens]; @cos_tab,
 * @sin_tab: [n_pos, qk_rope_head_dim / 2] the MLA RoPE tables (yarn factor included).
 * Writes the new indexer keys [index_head_dim] of row r at columns [n_past, n_past + n_tokens)
 * of dsocr_kv_cache_v (cache, layer, r), which must have room for them. @xn, @qr, @positions
 * and the tables are borrowed until the layer's last dsocr_indexer_attention() call.
 * Layer 0 starts a new record of outputs. FALSE with @error on an allocation failure. */
gboolean dsocr_indexer_prepare (dsocr_indexer *ix, const dsocr_indexer_weights *w, int layer,
                                const dsocr_kv_cache *cache, int n_seq, int n_tokens,
                                const float *xn, const float *qr, const int32_t *positions,
                                const float *cos_tab, const float *sin_tab, size_t n_pos,
                                GError **error);

/* The sparse attention of row @row of the prepared layer: @p, @out, @q, @k, @v exactly as
 * dsk_attention_f32_cpu takes them for that row (n_q = n_tokens, n_kv = n_past + n_tokens,
 * causal, q_pos0 = n_past, key_valid = the row's mask; p->bias must be NULL). Queries that see
 * more than index_topk keys attend to their top index_topk only. FALSE with @error on an
 * allocation failure. The last row of the last layer completes the call's outputs. */
gboolean dsocr_indexer_attention (dsocr_indexer *ix, int row, float *out, const float *q,
                                  const float *k, const float *v,
                                  const dsk_attention_params *p, GError **error);

/* ---- selection, exposed for the unit tests ---- */

/* Picks from @scores [n] the @k largest finite entries (by score, descending; lower index
 * first on ties) into @idx [k], padding with -1; returns how many were picked. */
int dsocr_indexer_topk (const float *scores, size_t n, int k, int32_t *idx);

/* ---- FP8 e4m3 block dequantisation (fp8.c) ---- */

/* @w [rows, cols] F8_E4M3 and @scale_inv [ceil(rows / block_rows), ceil(cols / block_cols)]
 * F32 (the release's `weight_scale_inv`; edge blocks may be partial): returns w * scale per
 * block as BF16 when every product is exactly a bf16 value (as with the power-of-two ue8m0
 * scales of the releases), else as F32. The new tensor's name is @w's. (transfer full) NULL with @error
 * (DSOCR_ERROR_SHAPE naming @w for a scale grid of the wrong shape or dtype, DSOCR_ERROR_NOMEM). */
dsocr_tensor *dsocr_fp8_dequantize (const dsocr_tensor *w, const dsocr_tensor *scale_inv,
                                    int block_rows, int block_cols, GError **error);

/* @t as the decoder can use it: @t itself unless it is F8_E4M3, in which case @cfg must have an
 * FP8 quantization_config and @ckpt a "<t->name>_scale_inv" tensor; the dequantised tensor is
 * appended to @owned and returned. (transfer none) NULL with @error
 * (DSOCR_ERROR_UNSUPPORTED for an FP8 tensor without quantization_config or scales). */
const dsocr_tensor *dsocr_fp8_weight (dsocr_checkpoint *ckpt, const dsocr_config *cfg,
                                      const dsocr_tensor *t, GPtrArray *owned, GError **error);

G_END_DECLS

#endif /* DSOCR_ENGINE_INDEXER_H */
