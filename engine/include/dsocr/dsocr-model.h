/* dsocr-model.h: the decoder's weights, loaded once and shared.
 *
 *   GError *error = NULL;
 *   dsocr_model *model = dsocr_model_load ("/models/DeepSeek-OCR", &error);
 *   if (!model) {
 *     g_printerr ("%s\n", error->message);
 *     g_error_free (error);
 *     return;
 *   }
 *   dsocr_session *a = dsocr_session_new (model, NULL, &error);   // one per stream
 *   dsocr_session *b = dsocr_session_new (model, NULL, &error);   // may run on another thread
 *   ...
 *   dsocr_session_free (a);
 *   dsocr_session_free (b);
 *   dsocr_model_unref (model);
 *
 * A model is the language half of a DeepSeek-V2-family checkpoint (DeepSeek-OCR, DeepSeek-V2,
 * DeepSeek-V3, DeepSeek-V3.2 with its sparse attention, dsocr-indexer.h): token embeddings,
 * the decoder layers (MHA or MLA attention, dense or MoE feed-forward), the final norm and the
 * head the config's architecture asks for (lm_head for a causal LM, score for sequence
 * classification, none for a bare model). Weights are borrowed
 * views into the mapped checkpoint: nothing is converted or copied, so the resident size is
 * what the pages touched so far cost (the real DeepSeek-OCR decoder maps 6.7 GB of bf16).
 *
 * A model is immutable once loaded: any number of sessions, on any threads, may use it at the
 * same time. It lives until its last reference is dropped; sessions hold one.
 *
 * Weight dtypes: BF16 (the released checkpoints), F16 or F32. FP8 e4m3 weights with block
 * scales (DeepSeek-V3 / V3.2 releases: quantization_config quant_method "fp8", each weight W
 * with a `W_scale_inv` [ceil(out / 128), ceil(in / 128)]) are the exception to "nothing is
 * copied": they are dequantised at load, W * scale per block, into memory the model owns (BF16
 * when that is exact, as with ue8m0 scales, else F32).
 */
#ifndef DSOCR_MODEL_H
#define DSOCR_MODEL_H

#include <glib.h>
#include <stdint.h>

#include <dsocr/dsocr-checkpoint.h>
#include <dsocr/dsocr-config.h>

G_BEGIN_DECLS

typedef struct dsocr_model dsocr_model;

/* Loads @dir: config.json plus model.safetensors (or a sharded index) in the same directory.
 * Every tensor the config implies is looked up and its shape and dtype checked up front, so a
 * later forward pass cannot fail on a missing or misshapen weight.
 * Returns: (transfer full) a model with one reference, or NULL with @error set
 * (DSOCR_ERROR_FILE / _FORMAT / _CONFIG / _SHAPE / _UNSUPPORTED, naming the file and tensor). */
dsocr_model *dsocr_model_load (const char *dir, GError **error);

/* Builds a model on an already open checkpoint and parsed config (the DeepSeek-OCR pipeline
 * opens the checkpoint once for the vision tower and the decoder, and reads the vision fields
 * back with dsocr_model_get_config()).
 * @ckpt: (transfer none) the model takes its own reference.
 * @config: (transfer full) the model owns it from now on, also when this call fails.
 * Returns: (transfer full) the model, or NULL with @error set. */
dsocr_model *dsocr_model_new_from_checkpoint (dsocr_checkpoint *ckpt, dsocr_config *config,
                                              GError **error);

/* Returns @model with one more reference (transfer full). Thread-safe. */
dsocr_model *dsocr_model_ref (dsocr_model *model);
/* Drops a reference; the last one releases the weights. NULL is a no-op. Thread-safe. */
void dsocr_model_unref (dsocr_model *model);

/* The parsed config (transfer none), valid while @model lives. */
const dsocr_config *dsocr_model_get_config (const dsocr_model *model);
/* The checkpoint the weights are borrowed from (transfer none). */
dsocr_checkpoint *dsocr_model_get_checkpoint (const dsocr_model *model);

/* Sizes, read from the config. */
int dsocr_model_get_n_embd (const dsocr_model *model);   /* hidden_size */
int dsocr_model_get_n_vocab (const dsocr_model *model);  /* vocab_size: rows of embed/lm_head */
int dsocr_model_get_n_layers (const dsocr_model *model);

/* Whether the model has an lm_head (causal LM; also true with tied embeddings) or a score head
 * (sequence classification, dsocr_model_get_n_labels() outputs). */
gboolean dsocr_model_has_lm_head (const dsocr_model *model);
gboolean dsocr_model_has_score_head (const dsocr_model *model);
int dsocr_model_get_n_labels (const dsocr_model *model);

/* Looks up @n_ids token ids in embed_tokens: @out receives [n_ids, n_embd] floats. This is the
 * first step of the DeepSeek-OCR prompt, whose image positions are then overwritten with vision
 * embeddings (or use dsocr_batch.embeds_mask to let the session do both).
 * Fails with DSOCR_ERROR_INVALID naming the offending id when one is outside [0, n_vocab). */
gboolean dsocr_model_embed (const dsocr_model *model, const int32_t *ids, gsize n_ids, float *out,
                            GError **error);

G_END_DECLS

#endif /* DSOCR_MODEL_H */
