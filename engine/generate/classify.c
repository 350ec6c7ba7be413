/* classify.c: the sequence-classification head, its pooling rules and losses. */
#include "dsocr/dsocr-classify.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"
#include "session-private.h"

/* The column a row is pooled at (see dsocr-classify.h). */
static int
pooled_column (const int32_t *ids, int n_tokens, int pad, dsocr_pooling pooling)
{
  if (pooling == DSOCR_POOL_LAST_NON_PAD) {
    int last = 0;
    for (int t = 0; t < n_tokens; t++)
      if (ids[t] != pad)
        last = t;
    return last;
  }
  for (int t = 0; t < n_tokens; t++)
    if (ids[t] == pad)
      return t > 0 ? t - 1 : n_tokens - 1;
  return n_tokens - 1;
}

gboolean
dsocr_classify (dsocr_session *session, const dsocr_batch *batch, dsocr_pooling pooling,
                float *logits, int *pooled_index, GError **error)
{
  dsocr_model *model = dsocr_session_get_model (session);
  const dsocr_config *cfg = dsocr_model_get_config (model);
  const int pad = cfg->text.pad_token_id;
  int32_t *which;  // [n_seq] the pooled column of each row
  gboolean ok;

  if (!dsocr_model_has_score_head (model)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "%s: classify: the model has no score head (architecture is not "
                 "...ForSequenceClassification)", cfg->path);
    return FALSE;
  }
  if (pad < 0 && batch->n_seq > 1) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "%s: classify: a batch of %d rows needs pad_token_id, which the config lacks",
                 cfg->path, batch->n_seq);
    return FALSE;
  }
  dsocr_session_reset (session);
  if (!dsocr_session_forward (session, batch, DSOCR_LOGITS_NONE, NULL, error))
    return FALSE;
  which = g_new (int32_t, batch->n_seq);
  for (int r = 0; r < batch->n_seq; r++) {
    int col = batch->n_tokens - 1;
    if (pad >= 0 && batch->ids)
      col = pooled_column (batch->ids + (gsize) r * batch->n_tokens, batch->n_tokens, pad,
                           pooling);
    if (pooled_index)
      pooled_index[r] = col;
    which[r] = r * batch->n_tokens + col;
  }
  ok = dsocr_session_score_rows (session, which, batch->n_seq, logits, error);
  g_free (which);
  return ok;
}

/* log(1 + exp(x)) without overflow. */
static double
softplus (double x)
{
  return x > 0 ? x + log1p (exp (-x)) : log1p (exp (x));
}

gboolean
dsocr_classify_loss (const float *logits, int n_seq, int n_labels, dsocr_problem_type problem_type,
                     const dsocr_labels *labels, double *loss, dsocr_problem_type *resolved,
                     GError **error)
{
  double sum = 0.0;
  gsize count = 0;

  if (n_seq <= 0 || n_labels <= 0 || !labels ||
      (labels->is_integer ? !labels->ids : !labels->values)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "classify loss: empty logits or missing labels");
    return FALSE;
  }
  if (problem_type == DSOCR_PROBLEM_NONE) {
    if (n_labels == 1)
      problem_type = DSOCR_PROBLEM_REGRESSION;
    else if (labels->is_integer)
      problem_type = DSOCR_PROBLEM_SINGLE_LABEL;
    else
      problem_type = DSOCR_PROBLEM_MULTI_LABEL;
  }

  switch (problem_type) {
  case DSOCR_PROBLEM_REGRESSION:
    /* MSELoss over every element; with one label the squeezed logits [n_seq] meet labels
     * [n_seq]. Integer labels are taken as their values. */
    for (int r = 0; r < n_seq; r++) {
      for (int j = 0; j < n_labels; j++) {
        gsize i = (gsize) r * n_labels + j, li = n_labels == 1 ? (gsize) r : i;
        double y = labels->is_integer ? (double) labels->ids[li] : (double) labels->values[li];
        double d = (double) logits[i] - y;
        sum += d * d;
        count++;
      }
    }
    break;
  case DSOCR_PROBLEM_SINGLE_LABEL:
    if (!labels->is_integer) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "classify loss: single_label_classification needs integer class ids");
      return FALSE;
    }
    for (int r = 0; r < n_seq; r++) {
      const float *row = logits + (gsize) r * n_labels;
      int64_t y = labels->ids[r];
      double max = -INFINITY, lse = 0.0;

      if (y == -100)
        continue;
      if (y < 0 || y >= n_labels) {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                     "classify loss: label %" G_GINT64_FORMAT " of row %d is outside [0, %d)",
                     y, r, n_labels);
        return FALSE;
      }
      for (int j = 0; j < n_labels; j++)
        max = MAX (max, (double) row[j]);
      for (int j = 0; j < n_labels; j++)
        lse += exp ((double) row[j] - max);
      sum += max + log (lse) - (double) row[y];
      count++;
    }
    break;
  case DSOCR_PROBLEM_MULTI_LABEL:
    if (labels->is_integer) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "classify loss: multi_label_classification needs float targets");
      return FALSE;
    }
    /* BCEWithLogits: softplus(x) - x y, averaged over every element. */
    for (gsize i = 0; i < (gsize) n_seq * n_labels; i++) {
      double x = logits[i];
      sum += softplus (x) - x * (double) labels->values[i];
      count++;
    }
    break;
  default:
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "classify loss: invalid problem type %d",
                 (int) problem_type);
    return FALSE;
  }
  *loss = count ? sum / (double) count : NAN;
  if (resolved)
    *resolved = problem_type;
  return TRUE;
}
