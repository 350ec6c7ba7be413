/* dsocr-indexer.h: DeepSeek-V3.2 sparse attention (DSA): what the lightning indexer decided.
 *
 *   dsocr_session *s = dsocr_session_new (model, NULL, &error);     // a deepseek_v32 model
 *   dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_SCORES | DSOCR_INDEXER_KL_TARGET, &error);
 *   dsocr_session_forward (s, &batch, DSOCR_LOGITS_NONE, NULL, &error);
 *   const dsocr_indexer_outputs *o = dsocr_session_get_indexer_outputs (s);
 *   int64_t shape[3];
 *   const float *scores = dsocr_indexer_outputs_get_scores (o, 0, shape);  // layer 0
 *   double kl;
 *   dsocr_indexer_kl_loss (o, &kl, &error);
 *
 * The model. Every attention layer of a DeepSeek-V3.2 checkpoint (config use_sparse_attention,
 * true by default for model_type deepseek_v32) carries an indexer
 * (self_attn.indexer.{wq_b, wk, k_norm, weights_proj}). For query t and key s it scores
 *   I(t, s) = sum_j w(t, j) * ReLU(q(t, j) . k(s))
 * with index_n_heads heads j of index_head_dim dims: q from the MLA query latent
 * (q_a_layernorm(q_a_proj(x))), k = LayerNorm(wk x) (one head, kept in the session's cache next
 * to the MLA latent), both rotated by RoPE on their first qk_rope_head_dim dims in half-split
 * pairs (i, i + d/2) (the MLA part uses interleaved pairs), and
 * w = weights_proj(x) * index_n_heads^-0.5 * index_head_dim^-0.5. Each query then attends only
 * to the index_topk keys of highest score among those it may see (causal, not padding); a query
 * that sees at most index_topk keys attends to all of them, so sequences no longer than
 * index_topk run plain dense attention. This holds in a prefill and in every decode step over
 * the cache. With use_sparse_attention false the model is the plain MLA decoder and has no
 * indexer (the checkpoint's indexer tensors are not read).
 *
 * What can be recorded (per layer, for the last forward call of a session):
 * - scores [n_seq, n_tokens, n_kv] F32: I(t, s) over every cached key s (n_kv = keys cached
 *   before the call + n_tokens), -inf where query t may not see key s (later column, padding).
 *   A prefill from an empty cache gives the [batch, seq, seq] matrix of the reference.
 * - top-k [n_seq, n_tokens, k] I32 with k = min(index_topk, n_kv): the keys each query attends
 *   to, by descending score (lowest key index first among equal scores), then -1 for the
 *   queries that see fewer than k keys.
 * - KL target [n_seq, n_tokens, n_kv] F32: the attention probabilities the layer used (sparse
 *   mask applied) summed over heads and L1-normalised, sum / (sum over keys + 1e-10). Only this
 *   [n_seq, n_tokens, n_kv] array is kept, never [heads, n_tokens, n_kv]. A query that sees no
 *   key (a padding column of a left-padded row) has a zero row.
 * Recording costs memory (n_layers arrays of that size) and, for the KL target, a second pass
 * over the attention logits; nothing is recorded unless asked.
 *
 * Ownership: outputs belong to the session (transfer none); they stay valid until its next
 * forward call, reset or free.
 */
#ifndef DSOCR_INDEXER_H
#define DSOCR_INDEXER_H

#include <glib.h>
#include <stdint.h>

#include <dsocr/dsocr-session.h>

G_BEGIN_DECLS

/* What dsocr_session_set_indexer_outputs() records; OR-ed together. */
typedef enum {
  DSOCR_INDEXER_SCORES = 1 << 0,     /* I(t, s), the reference's output_indexer_scores */
  DSOCR_INDEXER_TOPK = 1 << 1,       /* the selected keys */
  DSOCR_INDEXER_KL_TARGET = 1 << 2,  /* the reference's output_indexer_kl_target */
} dsocr_indexer_flags;

#define DSOCR_INDEXER_ALL (DSOCR_INDEXER_SCORES | DSOCR_INDEXER_TOPK | DSOCR_INDEXER_KL_TARGET)

typedef struct dsocr_indexer_outputs dsocr_indexer_outputs;

/* Asks @session to record @flags (0: nothing, the default) during its following forward calls.
 * Fails with DSOCR_ERROR_INVALID when @flags is not 0 and the model has no indexer (not
 * DeepSeek-V3.2, or use_sparse_attention false), or has bits outside DSOCR_INDEXER_ALL. */
gboolean dsocr_session_set_indexer_outputs (dsocr_session *session, guint flags, GError **error);

/* The outputs of @session's last successful forward call, or NULL when nothing was recorded
 * (no flags, no indexer, no forward yet, or after a reset). (transfer none) */
const dsocr_indexer_outputs *dsocr_session_get_indexer_outputs (const dsocr_session *session);

/* The flags the outputs were recorded with. */
guint dsocr_indexer_outputs_get_flags (const dsocr_indexer_outputs *outputs);
/* Layers recorded (every decoder layer). */
int dsocr_indexer_outputs_get_n_layers (const dsocr_indexer_outputs *outputs);

/* Layer @layer's arrays (transfer none), NULL when not recorded or @layer is out of range.
 * @shape: (out) (optional) receives {n_seq, n_tokens, n_kv} (scores, KL target) or
 * {n_seq, n_tokens, k} (top-k). */
const float *dsocr_indexer_outputs_get_scores (const dsocr_indexer_outputs *outputs, int layer,
                                               int64_t shape[3]);
const int32_t *dsocr_indexer_outputs_get_topk (const dsocr_indexer_outputs *outputs, int layer,
                                               int64_t shape[3]);
const float *dsocr_indexer_outputs_get_kl_target (const dsocr_indexer_outputs *outputs,
                                                  int layer, int64_t shape[3]);

/* The reference's compute_indexer_kl_loss: for each layer the mean over the n_seq * n_tokens
 * queries of KL(p(t, :) || softmax(I(t, :))) = sum_s p (log(p + 1e-10) - log_softmax(I)_s)
 * (keys with p = 0 add nothing; a query that sees no key adds 0 but is counted), then the mean
 * over layers. Computed in double. Needs outputs recorded with DSOCR_INDEXER_SCORES and
 * DSOCR_INDEXER_KL_TARGET; fails with DSOCR_ERROR_INVALID otherwise. */
gboolean dsocr_indexer_kl_loss (const dsocr_indexer_outputs *outputs, double *loss,
                                GError **error);

/* The same loss on caller-held arrays: @scores and @targets hold @n_layers pointers to
 * [n_queries, n_kv] arrays (scores with -inf at masked keys, targets L1-normalised rows). */
double dsocr_indexer_compute_kl_loss (const float *const *scores, const float *const *targets,
                                      int n_layers, gsize n_queries, gsize n_kv);

/* Writes the recorded arrays to a .safetensors file at @path: "indexer.<layer>.scores" and
 * "indexer.<layer>.kl_target" (F32 [n_seq, n_tokens, n_kv]), "indexer.<layer>.topk"
 * (I32 [n_seq, n_tokens, k]) as recorded, and "indexer_kl_loss" (F32 scalar) when both scores
 * and targets were recorded. Fails with DSOCR_ERROR_FILE naming @path. */
gboolean dsocr_indexer_outputs_save (const dsocr_indexer_outputs *outputs, const char *path,
                                     GError **error);

G_END_DECLS

#endif /* DSOCR_INDEXER_H */
