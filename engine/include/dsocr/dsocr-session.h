/* dsocr-session.h: one stream of decoder work: its KV cache and scratch memory.
 *
 *   dsocr_session *s = dsocr_session_new (model, NULL, &error);
 *   int32_t prompt[5] = { 0, 4587, 8, 2930, 13 };
 *   dsocr_batch b = { .n_seq = 1, .n_tokens = 5, .ids = prompt };
 *   float *logits = g_new (float, dsocr_model_get_n_vocab (model));
 *   if (!dsocr_session_forward (s, &b, DSOCR_LOGITS_LAST, logits, &error))   // prefill
 *     ...;
 *   int32_t next = dsocr_logits_argmax (logits, dsocr_model_get_n_vocab (model));
 *   dsocr_batch step = { .n_seq = 1, .n_tokens = 1, .ids = &next };
 *   dsocr_session_forward (s, &step, DSOCR_LOGITS_LAST, logits, &error);     // one decode step
 *   dsocr_session_free (s);
 *
 * A session holds a batch of rows (sequences) that advance together, exactly like a padded
 * transformers batch: every forward call appends the same number of columns to every row, and
 * the cache has one length for all rows. Padding columns are marked in the attention mask; they
 * are cached too but no query ever attends to them. A query attends to the cached columns up to
 * and including its own (causality follows the column, not the position id, as in
 * transformers' cache_position).
 *
 * The cache is the reference's: MHA layers keep post-RoPE keys and values per KV head; MLA
 * layers keep the compressed latent c (kv_lora_rank, after kv_a_layernorm) and the shared
 * rotated key k_pe (qk_rope_head_dim) per column, plus the sparse-attention indexer's key
 * (index_head_dim) for DeepSeek-V3.2 (dsocr-indexer.h). It grows on demand up to n_ctx columns.
 *
 * Activations are float32; weights stay in the checkpoint's dtype and are widened on the fly.
 * The session computes on its backend (dsocr-backend.h): the one its params name, shared with
 * whoever else holds it, or else a CPU backend of its own with n_threads threads.
 *
 * A session is not thread-safe: use one per thread (they may share the model, and a backend
 * if they never compute at the same time).
 */
#ifndef DSOCR_SESSION_H
#define DSOCR_SESSION_H

#include <glib.h>
#include <stdint.h>

#include <dsocr/dsocr-backend.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

typedef struct dsocr_session dsocr_session;

/* How MLA layers compute attention scores. Both give the reference's result; they differ in
 * cost. EXPANDED decompresses keys and values of every cached column (what transformers does);
 * ABSORBED folds kv_b_proj into the query and the output (the reference's decode form) and
 * reads the compressed cache directly. AUTO picks ABSORBED when the call adds few columns to a
 * longer cache (decode) and EXPANDED otherwise (prefill). MHA layers ignore this. */
typedef enum {
  DSOCR_MLA_AUTO = 0,
  DSOCR_MLA_EXPANDED,
  DSOCR_MLA_ABSORBED,
} dsocr_mla_form;

typedef struct {
  int n_seq_max;            /* most rows a batch may have; 0: 1 (the default) */
  int n_ctx;                /* most columns a row may cache (prompt + generated); 0: the
                             * config's max_position_embeddings */
  int n_threads;            /* threads of the session's own CPU backend (when @backend is
                             * NULL); 0: all processors */
  dsocr_mla_form mla_form;  /* default AUTO */
  dsocr_backend *backend;   /* (transfer none) where to compute; the session takes a
                             * reference. NULL: a CPU backend of its own */
  dsocr_precision precision; /* how the weights are held (dsocr-backend.h); DEFAULT: the
                              * documented default */
} dsocr_session_params;

/* Fills @params with the defaults above (a zeroed struct means the same). */
void dsocr_session_params_init (dsocr_session_params *params);

/* One forward call's input: n_seq rows of n_tokens new columns each.
 *
 * Token input, one of:
 * - ids only: [n_seq, n_tokens] token ids, looked up in embed_tokens;
 * - embeds only (ids NULL): [n_seq, n_tokens, n_embd] input embeddings (transformers'
 *   inputs_embeds);
 * - ids, embeds and embeds_mask: the ids are looked up, then the columns whose embeds_mask is
 *   1 are overwritten, in row-major order, by consecutive rows of embeds [count, n_embd]
 *   (DeepSeek-OCR's masked_scatter of the image features into the <image> positions).
 *
 * positions: [n_seq, n_tokens] RoPE position ids, or NULL for n_past + column (transformers'
 * default when no position_ids are given).
 * attention_mask: [n_seq, n_tokens], 1 for a real token and 0 for padding, or NULL for all 1.
 * Everything is borrowed for the duration of the call. */
typedef struct {
  int n_seq;
  int n_tokens;
  const int32_t *ids;
  const float *embeds;
  const uint8_t *embeds_mask;
  const int32_t *positions;
  const uint8_t *attention_mask;
} dsocr_batch;

/* Which logits a forward call writes. */
typedef enum {
  DSOCR_LOGITS_NONE = 0,  /* none (a prefill whose logits are not needed, or a model
                           * without lm_head) */
  DSOCR_LOGITS_LAST,      /* [n_seq, n_vocab]: each row's last column */
  DSOCR_LOGITS_ALL,       /* [n_seq, n_tokens, n_vocab] */
} dsocr_logits_mode;

/* Called during a forward pass with intermediate tensors, for comparing a run with the
 * reference's activations. @t (transfer none) is valid during the call only; t->name is one
 * of "embeddings" (input of layer 0, @layer -1), "hidden" (output of layer @layer, before the
 * final norm), "final_norm" (@layer -1), all F32 [n_seq, n_tokens, n_embd], and for MoE layers
 * "router.topk_idx" (I32) and "router.topk_weight" (F32), both [n_seq, n_tokens, top_k] with
 * each token's experts in ascending id order and their final weights. */
typedef void (*dsocr_tensor_callback) (const dsocr_tensor *t, int layer, gpointer user_data);

/* Creates a session on @model (which it references). @params may be NULL for the defaults.
 * Returns: (transfer full) the session, or NULL with @error set (DSOCR_ERROR_INVALID for bad
 * params, DSOCR_ERROR_NOMEM). Free with dsocr_session_free(). */
dsocr_session *dsocr_session_new (dsocr_model *model, const dsocr_session_params *params,
                                  GError **error);

/* Frees @session and its cache; drops its model reference. NULL is a no-op. */
void dsocr_session_free (dsocr_session *session);

/* Empties the cache: the next forward starts new sequences (with any number of rows). */
void dsocr_session_reset (dsocr_session *session);

/* The model (transfer none). */
dsocr_model *dsocr_session_get_model (const dsocr_session *session);
/* The backend it computes on (transfer none). */
dsocr_backend *dsocr_session_get_backend (const dsocr_session *session);
/* The precision it computes at (DEFAULT resolved). */
dsocr_precision dsocr_session_get_precision (const dsocr_session *session);
/* Bytes of the decoder weights it computes with, as prepared for its device and precision
 * (shared with every session of the same pair): what the precision costs in memory. */
gsize dsocr_session_get_weight_bytes (const dsocr_session *session);
/* Cached columns per row (0 after _new or _reset). */
int dsocr_session_get_n_past (const dsocr_session *session);
/* Rows of the current sequences (0 while the cache is empty). */
int dsocr_session_get_n_seq (const dsocr_session *session);
/* The position id of each row's last cached column, or -1 for an empty cache.
 * Returns: (transfer none) [n_seq] values, valid until the next forward or reset. */
const int32_t *dsocr_session_get_last_positions (const dsocr_session *session);

/* Installs (or with NULL removes) the intermediate-tensor callback. */
void dsocr_session_set_tensor_callback (dsocr_session *session, dsocr_tensor_callback callback,
                                        gpointer user_data);

/* Runs the decoder over @batch, appending its columns to the cache, and writes the logits
 * @mode asks for into @logits (which must hold that many floats; NULL with
 * DSOCR_LOGITS_NONE). @batch->n_seq must equal the rows already cached, unless the cache is
 * empty (then at most n_seq_max).
 * Fails, leaving the cache as it was, with DSOCR_ERROR_INVALID (bad batch: sizes, an id out
 * of range, logits asked of a model without lm_head, the cache would exceed n_ctx) or
 * DSOCR_ERROR_NOMEM. */
gboolean dsocr_session_forward (dsocr_session *session, const dsocr_batch *batch,
                                dsocr_logits_mode mode, float *logits, GError **error);

/* The final-norm hidden states of the last forward call, [n_seq, n_tokens, n_embd] (transfer
 * none), valid until the next forward, reset or free; NULL before the first call.
 * @shape: (out) (optional) receives {n_seq, n_tokens, n_embd}. */
const float *dsocr_session_get_hidden (const dsocr_session *session, int64_t shape[3]);

/* transformers' causal-LM loss (ForCausalLMLoss): runs @batch forward (as
 * dsocr_session_forward) and returns the mean over rows r and columns t < n_tokens - 1 of
 * cross_entropy(logits[r, t], labels[r, t + 1]), skipping labels equal to -100. @labels is
 * [n_seq, n_tokens]. With every label ignored the result is NaN, as in torch.
 * Fails as dsocr_session_forward, or with DSOCR_ERROR_INVALID for a label outside
 * [0, n_vocab) other than -100. */
gboolean dsocr_session_lm_loss (dsocr_session *session, const dsocr_batch *batch,
                                const int64_t *labels, double *loss, GError **error);

G_END_DECLS

#endif /* DSOCR_SESSION_H */
