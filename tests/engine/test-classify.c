/* test-classify.c: DeepseekV2ForSequenceClassification against transformers' goldens
 * (tests/fixtures/tiny-v2-cls: three rows with right padding, left padding, and the pad id
 * inside the text; pooled logits, per-position score logits and the four losses). */
#include <string.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-classify.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>

#include "dsocr-test.h"

#define RTOL 1e-4

typedef struct {
  dsocr_model *model;
  dsocr_session *session;
  dsocr_safetensors *golden;
  int n_seq, L, n_labels, n_embd;
  int32_t *ids;     // [n_seq, L]
  uint8_t *mask;    // [n_seq, L]
} cls;

static const dsocr_tensor *
golden (const cls *c, const char *name)
{
  const dsocr_tensor *t = dsocr_safetensors_get (c->golden, name);
  if (!t)
    g_error ("golden tensor '%s' missing", name);
  return t;
}

static const float *
golden_f32 (const cls *c, const char *name)
{
  const dsocr_tensor *t = golden (c, name);
  g_assert_cmpint (t->dtype, ==, DSOCR_DTYPE_F32);
  return t->data;
}

static void
cls_open (cls *c)
{
  GError *err = NULL;
  g_autofree char *dir = dsocr_test_fixture ("tiny-v2-cls");
  g_autofree char *gpath = g_build_filename (dir, "golden.safetensors", NULL);
  const dsocr_tensor *ids, *mask;

  c->model = dsocr_model_load (dir, &err);
  g_assert_no_error (err);
  c->golden = dsocr_safetensors_open (gpath, &err);
  g_assert_no_error (err);
  ids = golden (c, "input_ids");
  mask = golden (c, "attention_mask");
  c->n_seq = (int) ids->shape[0];
  c->L = (int) ids->shape[1];
  c->n_labels = dsocr_model_get_n_labels (c->model);
  c->n_embd = dsocr_model_get_n_embd (c->model);
  c->ids = g_new (int32_t, c->n_seq * c->L);
  c->mask = g_new (uint8_t, c->n_seq * c->L);
  for (int i = 0; i < c->n_seq * c->L; i++) {
    c->ids[i] = (int32_t) ((const int64_t *) ids->data)[i];
    c->mask[i] = (uint8_t) ((const int64_t *) mask->data)[i];
  }
  c->session = dsocr_session_new (c->model, &(dsocr_session_params) {
                                    .n_seq_max = c->n_seq, .precision = DSOCR_PRECISION_F32 },
                                  &err);
  g_assert_no_error (err);
}

static void
cls_close (cls *c)
{
  dsocr_session_free (c->session);
  dsocr_model_unref (c->model);
  dsocr_safetensors_unref (c->golden);
  g_free (c->ids);
  g_free (c->mask);
}

static dsocr_batch
cls_batch (const cls *c)
{
  return (dsocr_batch) { .n_seq = c->n_seq, .n_tokens = c->L, .ids = c->ids,
                         .attention_mask = c->mask };
}

/* Compares [n_seq, L, dim] activations with a golden whose padded rows are zeroed. */
typedef struct {
  const cls *c;
  int n_checked;
} capture;

static void
check_valid_rows (const dsocr_tensor *t, int layer, gpointer user_data)
{
  capture *cap = user_data;
  const cls *c = cap->c;
  g_autofree char *name = NULL;
  const int dim = (int) t->shape[2];

  if (g_str_has_prefix (t->name, "router."))
    name = g_strdup_printf ("router.%d.%s", layer, t->name + strlen ("router."));
  else if (g_str_equal (t->name, "hidden"))
    name = g_strdup_printf ("hidden.%d", layer);
  else
    name = g_strdup (t->name);
  for (int i = 0; i < c->n_seq * c->L; i++) {
    g_autofree char *what = g_strdup_printf ("%s row %d", name, i);
    if (!c->mask[i])
      continue;
    if (t->dtype == DSOCR_DTYPE_I32) {
      const int64_t *want = golden (c, name)->data;
      for (int j = 0; j < dim; j++)
        g_assert_cmpint (((const int32_t *) t->data)[i * dim + j], ==, want[i * dim + j]);
    } else {
      dsocr_test_assert_close ((const float *) t->data + (gsize) i * dim,
                               golden_f32 (c, name) + (gsize) i * dim, (gsize) dim, RTOL, what);
    }
  }
  cap->n_checked++;
}

static void
test_logits (void)
{
  cls c;
  GError *err = NULL;
  dsocr_batch b;
  g_autofree float *logits = NULL;
  int pooled[8];
  capture cap = { &c, 0 };
  const int64_t *want_index;

  cls_open (&c);
  b = cls_batch (&c);
  logits = g_new (float, c.n_seq * c.n_labels);
  dsocr_session_set_tensor_callback (c.session, check_valid_rows, &cap);
  dsocr_classify (c.session, &b, DSOCR_POOL_LAST_NON_PAD, logits, pooled, &err);
  g_assert_no_error (err);
  g_assert_cmpint (cap.n_checked, >=, 4);
  want_index = golden (&c, "pooled_index")->data;
  for (int r = 0; r < c.n_seq; r++)
    g_assert_cmpint (pooled[r], ==, want_index[r]);
  dsocr_test_assert_close (logits, golden_f32 (&c, "logits"), (gsize) c.n_seq * c.n_labels, RTOL,
                           "pooled logits");
  cls_close (&c);
}

/* The hub's rule pools the column before the first pad: rows 0 (right padding) and 1 (left
 * padding, wraps to the last column) agree with the current rule, row 2 (pad id at column 4
 * inside the text) pools column 3. The golden's per-position logits give the expected rows. */
static void
test_first_pad_rule (void)
{
  cls c;
  GError *err = NULL;
  dsocr_batch b;
  float logits[3 * 3];
  int pooled[3];
  const float *all;
  const int want[3] = { 7, 11, 3 };

  cls_open (&c);
  g_assert_cmpint (c.n_seq, ==, 3);
  g_assert_cmpint (c.n_labels, ==, 3);
  b = cls_batch (&c);
  dsocr_classify (c.session, &b, DSOCR_POOL_BEFORE_FIRST_PAD, logits, pooled, &err);
  g_assert_no_error (err);
  all = golden_f32 (&c, "logits_all");
  for (int r = 0; r < 3; r++) {
    g_assert_cmpint (pooled[r], ==, want[r]);
    dsocr_test_assert_close (logits + r * 3, all + ((gsize) r * c.L + want[r]) * 3, 3, RTOL,
                             "first-pad pooled logits");
  }
  cls_close (&c);
}

static void
test_losses (void)
{
  cls c;
  GError *err = NULL;
  dsocr_batch b;
  float logits[3 * 3], one[3], got;
  int pooled[3];
  double loss;
  dsocr_problem_type used;
  const dsocr_tensor *single;

  cls_open (&c);
  b = cls_batch (&c);
  dsocr_classify (c.session, &b, DSOCR_POOL_LAST_NON_PAD, logits, pooled, &err);
  g_assert_no_error (err);

  /* int64 labels with an ignored row: single-label cross-entropy is inferred */
  single = golden (&c, "labels_single");
  dsocr_classify_loss (logits, 3, 3, DSOCR_PROBLEM_NONE,
                       &(dsocr_labels) { .is_integer = TRUE, .ids = single->data }, &loss, &used,
                       &err);
  g_assert_no_error (err);
  g_assert_cmpint (used, ==, DSOCR_PROBLEM_SINGLE_LABEL);
  got = (float) loss;
  dsocr_test_assert_close (&got, golden_f32 (&c, "loss_single"), 1, RTOL, "loss_single");

  /* float targets: multi-label BCE (inferred too) */
  dsocr_classify_loss (logits, 3, 3, DSOCR_PROBLEM_NONE,
                       &(dsocr_labels) { .values = golden_f32 (&c, "labels_multi") }, &loss, &used,
                       &err);
  g_assert_no_error (err);
  g_assert_cmpint (used, ==, DSOCR_PROBLEM_MULTI_LABEL);
  got = (float) loss;
  dsocr_test_assert_close (&got, golden_f32 (&c, "loss_multi"), 1, RTOL, "loss_multi");

  /* regression over three outputs, as configured */
  dsocr_classify_loss (logits, 3, 3, DSOCR_PROBLEM_REGRESSION,
                       &(dsocr_labels) { .values = golden_f32 (&c, "labels_regression") }, &loss,
                       &used, &err);
  g_assert_no_error (err);
  got = (float) loss;
  dsocr_test_assert_close (&got, golden_f32 (&c, "loss_regression"), 1, RTOL, "loss_regression");

  /* one label: the reference's 1-label head is row 0 of this score head, so its logits are
   * column 0; regression is inferred */
  for (int r = 0; r < 3; r++)
    one[r] = logits[r * 3];
  dsocr_test_assert_close (one, golden_f32 (&c, "logits_1label"), 3, RTOL, "logits_1label");
  dsocr_classify_loss (one, 3, 1, DSOCR_PROBLEM_NONE,
                       &(dsocr_labels) { .values = golden_f32 (&c, "labels_regression_1label") },
                       &loss, &used, &err);
  g_assert_no_error (err);
  g_assert_cmpint (used, ==, DSOCR_PROBLEM_REGRESSION);
  got = (float) loss;
  dsocr_test_assert_close (&got, golden_f32 (&c, "loss_regression_1label"), 1, RTOL,
                           "loss_regression_1label");

  /* errors: a class id out of range, float labels for single-label, ints for multi-label */
  {
    const int64_t bad[3] = { 0, 3, 1 };
    g_assert_false (dsocr_classify_loss (logits, 3, 3, DSOCR_PROBLEM_NONE,
                                         &(dsocr_labels) { .is_integer = TRUE, .ids = bad },
                                         &loss, NULL, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
    g_assert_false (dsocr_classify_loss (logits, 3, 3, DSOCR_PROBLEM_SINGLE_LABEL,
                                         &(dsocr_labels) { .values = one }, &loss, NULL, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
    g_assert_false (dsocr_classify_loss (logits, 3, 3, DSOCR_PROBLEM_MULTI_LABEL,
                                         &(dsocr_labels) { .is_integer = TRUE, .ids = bad },
                                         &loss, NULL, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
  }
  cls_close (&c);
}

/* Each row alone (batch of one, no padding columns of other rows) pools the same logits. */
static void
test_rows_alone (void)
{
  cls c;
  GError *err = NULL;
  float logits[3];
  int pooled;

  cls_open (&c);
  for (int r = 0; r < c.n_seq; r++) {
    dsocr_batch b = { .n_seq = 1, .n_tokens = c.L, .ids = c.ids + r * c.L,
                      .attention_mask = c.mask + r * c.L };
    g_autofree char *what = g_strdup_printf ("row %d alone", r);
    dsocr_classify (c.session, &b, DSOCR_POOL_LAST_NON_PAD, logits, &pooled, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (logits, golden_f32 (&c, "logits") + r * 3, 3, RTOL, what);
  }
  cls_close (&c);
}

static void
test_no_score_head (void)
{
  GError *err = NULL;
  g_autofree char *dir = dsocr_test_fixture ("tiny-ocr-decoder");
  dsocr_model *m = dsocr_model_load (dir, &err);
  dsocr_session *s;
  int32_t ids[2] = { 0, 5 };
  float logits[4];

  g_assert_no_error (err);
  g_assert_false (dsocr_model_has_score_head (m));
  s = dsocr_session_new (m, NULL, &err);
  g_assert_no_error (err);
  g_assert_false (dsocr_classify (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 2, .ids = ids },
                                  DSOCR_POOL_LAST_NON_PAD, logits, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_session_free (s);
  dsocr_model_unref (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/classify/logits", test_logits);
  g_test_add_func ("/classify/first-pad-rule", test_first_pad_rule);
  g_test_add_func ("/classify/losses", test_losses);
  g_test_add_func ("/classify/rows-alone", test_rows_alone);
  g_test_add_func ("/classify/no-score-head", test_no_score_head);
  return g_test_run ();
}
