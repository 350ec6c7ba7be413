/* dsocr-classify.h: DeepseekV2ForSequenceClassification: a score head on one pooled token.
 *
 *   dsocr_model *m = dsocr_model_load ("/models/dsv2-sentiment", &error);  // has score.weight
 *   dsocr_session *s = dsocr_session_new (m, &(dsocr_session_params) { .n_seq_max = 2 }, &error);
 *   dsocr_batch b = { .n_seq = 2, .n_tokens = L, .ids = ids, .attention_mask = mask };
 *   float *logits = g_new (float, 2 * dsocr_model_get_n_labels (m));
 *   dsocr_classify (s, &b, DSOCR_POOL_LAST_NON_PAD, logits, NULL, &error);
 *
 * The score head (Linear(hidden, num_labels), no bias) is applied to the final-norm hidden
 * state of one column per row, chosen by the pooling rule:
 * - DSOCR_POOL_LAST_NON_PAD (current transformers, GenericForSequenceClassification): the
 *   rightmost column whose id is not pad_token_id; a row of only padding pools column 0. Works
 *   for left and right padding.
 * - DSOCR_POOL_BEFORE_FIRST_PAD (the hub's modeling_deepseekv2.py): the column before the
 *   first pad id, wrapping to the last column when the row has no pad or starts with one.
 * Without pad_token_id in the config the last column is pooled and a batch of more than one
 * row is refused (transformers raises the same); with inputs_embeds instead of ids the last
 * column is pooled too.
 */
#ifndef DSOCR_CLASSIFY_H
#define DSOCR_CLASSIFY_H

#include <glib.h>
#include <stdint.h>

#include <dsocr/dsocr-config.h>
#include <dsocr/dsocr-session.h>

G_BEGIN_DECLS

typedef enum {
  DSOCR_POOL_LAST_NON_PAD = 0,
  DSOCR_POOL_BEFORE_FIRST_PAD,
} dsocr_pooling;

/* Resets @session, runs @batch through the decoder and writes the pooled logits
 * [n_seq, num_labels] into @logits and, if not NULL, each row's pooled column into
 * @pooled_index [n_seq].
 * Fails with the errors of dsocr_session_forward(), or DSOCR_ERROR_INVALID when the model has
 * no score head or a batch of several rows comes without a pad_token_id. */
gboolean dsocr_classify (dsocr_session *session, const dsocr_batch *batch, dsocr_pooling pooling,
                         float *logits, int *pooled_index, GError **error);

/* Labels of a batch, in transformers' terms: integer class ids (torch.long) or float targets. */
typedef struct {
  gboolean is_integer;
  const int64_t *ids;     /* is_integer: [n_seq] class ids, -100 = ignored */
  const float *values;    /* otherwise: [n_seq] when num_labels is 1, else [n_seq, num_labels] */
} dsocr_labels;

/* transformers' ForSequenceClassificationLoss on pooled @logits [n_seq, n_labels].
 * @problem_type: the config's; DSOCR_PROBLEM_NONE infers it as transformers does: one label ->
 * regression; integer labels -> single-label; else multi-label.
 * regression: MSE, mean over all elements (integer labels are widened to float);
 * single-label: cross-entropy, mean over the labels that are not -100 (NaN if none);
 * multi-label: BCE with logits, mean over n_seq * n_labels (float labels required).
 * @resolved: (out) (optional) the problem type used.
 * Fails with DSOCR_ERROR_INVALID for a class id outside [0, n_labels) other than -100, or a
 * label kind the problem type cannot take. */
gboolean dsocr_classify_loss (const float *logits, int n_seq, int n_labels,
                              dsocr_problem_type problem_type, const dsocr_labels *labels,
                              double *loss, dsocr_problem_type *resolved, GError **error);

G_END_DECLS

#endif /* DSOCR_CLASSIFY_H */
