/* test-generate.c: logits processors and the generation loop.
 *
 * The processors are checked on small hand-worked cases of the rules they reproduce
 * (transformers' NoRepeatNGramLogitsProcessor, TopK/TopP/Temperature warpers, torch.argmax;
 * DeepSeek-OCR's process/ngram_norepeat.py); the loop on the tiny OCR fixture against the
 * greedy tokens transformers generated (tests/fixtures/tiny-ocr-decoder/golden.safetensors). */
#include <math.h>
#include <string.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-generate.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>

#include "dsocr-test.h"

#define V 10

static void
fill (float *logits, float value)
{
  for (int i = 0; i < V; i++)
    logits[i] = value;
}

/* Asserts that exactly the ids in @banned (terminated by -1) are -inf. */
static void
assert_banned (const float *logits, const int *banned)
{
  for (int i = 0; i < V; i++) {
    gboolean want = FALSE;
    for (const int *b = banned; *b >= 0; b++)
      want |= *b == i;
    if (want)
      g_assert_true (isinf (logits[i]) && logits[i] < 0);
    else
      g_assert_false (isinf (logits[i]));
  }
}

static void
test_no_repeat_ngram (void)
{
  float l[V];
  const int32_t ids[] = { 5, 6, 7, 5, 6 };
  const int32_t ids2[] = { 1, 2, 1 };

  /* (5, 6) was followed by 7: completing "5 6 7" again is banned. */
  fill (l, 1.0f);
  dsocr_logits_no_repeat_ngram (l, V, ids, 5, 3);
  assert_banned (l, (const int[]) { 7, -1 });
  /* Shorter than n: nothing to ban. */
  fill (l, 1.0f);
  dsocr_logits_no_repeat_ngram (l, V, ids, 2, 3);
  assert_banned (l, (const int[]) { -1 });
  /* Bigrams: the suffix (1) was followed by 2. */
  fill (l, 1.0f);
  dsocr_logits_no_repeat_ngram (l, V, ids2, 3, 2);
  assert_banned (l, (const int[]) { 2, -1 });
  /* Unigrams: every id seen. */
  fill (l, 1.0f);
  dsocr_logits_no_repeat_ngram (l, V, ids, 5, 1);
  assert_banned (l, (const int[]) { 5, 6, 7, -1 });
  /* Off. */
  fill (l, 1.0f);
  dsocr_logits_no_repeat_ngram (l, V, ids, 5, 0);
  assert_banned (l, (const int[]) { -1 });
}

static void
test_ngram_window (void)
{
  float l[V];
  const int32_t ids[] = { 5, 6, 7, 5, 6 };
  const int32_t whitelist[] = { 7 };

  fill (l, 1.0f);
  dsocr_logits_ngram_window (l, V, ids, 5, 3, 100, NULL, 0);
  assert_banned (l, (const int[]) { 7, -1 });
  /* window 5 still starts at 0; window 4 starts the search at 1, past the only match */
  fill (l, 1.0f);
  dsocr_logits_ngram_window (l, V, ids, 5, 3, 5, NULL, 0);
  assert_banned (l, (const int[]) { 7, -1 });
  fill (l, 1.0f);
  dsocr_logits_ngram_window (l, V, ids, 5, 3, 4, NULL, 0);
  assert_banned (l, (const int[]) { -1 });
  /* window 0 means the reference's default, 100 */
  fill (l, 1.0f);
  dsocr_logits_ngram_window (l, V, ids, 5, 3, 0, NULL, 0);
  assert_banned (l, (const int[]) { 7, -1 });
  /* whitelisted ids may repeat */
  fill (l, 1.0f);
  dsocr_logits_ngram_window (l, V, ids, 5, 3, 100, whitelist, 1);
  assert_banned (l, (const int[]) { -1 });
  /* n = 1: the reference compares with ids[-0:], the whole list; nothing is banned */
  fill (l, 1.0f);
  dsocr_logits_ngram_window (l, V, ids, 5, 1, 100, NULL, 0);
  assert_banned (l, (const int[]) { -1 });
}

static void
test_warpers (void)
{
  float l[V];

  /* top-k keeps the ties of the k-th value */
  fill (l, 0.0f);
  l[1] = 1.0f;
  l[2] = 3.0f;
  l[3] = 3.0f;
  l[4] = 2.0f;
  dsocr_logits_top_k (l, V, 2);
  assert_banned (l, (const int[]) { 0, 1, 4, 5, 6, 7, 8, 9, -1 });
  fill (l, 0.0f);
  l[2] = 3.0f;
  l[3] = 3.0f;
  l[4] = 2.0f;
  dsocr_logits_top_k (l, V, 3);
  assert_banned (l, (const int[]) { 0, 1, 5, 6, 7, 8, 9, -1 });
  fill (l, 0.0f);
  dsocr_logits_top_k (l, V, V);   // k >= vocabulary: off
  assert_banned (l, (const int[]) { -1 });

  /* top-p: probabilities 0.1 0.2 0.3 0.4 on ids 0..3 (others -inf): ascending cumulative
   * 0.1 0.3 0.6 1.0; top_p 0.75 drops cum <= 0.25 (id 0), top_p 0.5 drops cum <= 0.5 */
  for (int pass = 0; pass < 3; pass++) {
    const float top_p[] = { 0.75f, 0.5f, 0.01f };
    const int *want[] = { (const int[]) { 0, 4, 5, 6, 7, 8, 9, -1 },
                          (const int[]) { 0, 1, 4, 5, 6, 7, 8, 9, -1 },
                          (const int[]) { 0, 1, 2, 4, 5, 6, 7, 8, 9, -1 } };
    fill (l, -INFINITY);
    l[0] = logf (0.1f);
    l[1] = logf (0.2f);
    l[2] = logf (0.3f);
    l[3] = logf (0.4f);
    dsocr_logits_top_p (l, V, top_p[pass]);
    assert_banned (l, want[pass]);
  }

  l[0] = 2.0f;
  l[1] = -4.0f;
  dsocr_logits_temperature (l, 2, 2.0f);
  g_assert_cmpfloat (l[0], ==, 1.0f);
  g_assert_cmpfloat (l[1], ==, -2.0f);
}

static void
test_argmax_sample (void)
{
  const float ties[] = { 1.0f, 3.0f, 3.0f, 2.0f };
  const float with_nan[] = { 1.0f, NAN, 3.0f, NAN };
  const float two[] = { 0.0f, 0.0f };
  const float one[] = { -INFINITY, 0.5f, -INFINITY };
  const float none[] = { -INFINITY, -INFINITY };

  g_assert_cmpint (dsocr_logits_argmax (ties, 4), ==, 1);
  g_assert_cmpint (dsocr_logits_argmax (with_nan, 4), ==, 1);
  g_assert_cmpint (dsocr_logits_sample (two, 2, 0.25), ==, 0);
  g_assert_cmpint (dsocr_logits_sample (two, 2, 0.75), ==, 1);
  g_assert_cmpint (dsocr_logits_sample (one, 3, 0.0), ==, 1);
  g_assert_cmpint (dsocr_logits_sample (one, 3, 0.999999), ==, 1);
  g_assert_cmpint (dsocr_logits_sample (none, 2, 0.5), ==, -1);
}

/* ---- the loop, on the tiny OCR decoder ---- */

typedef struct {
  dsocr_model *model;
  dsocr_session *session;
  int32_t *prompt;   // [L]
  int L;
  int32_t *greedy;   // [n_greedy] transformers' greedy continuation
  int n_greedy;
} tiny;

static void
tiny_open (tiny *t)
{
  GError *err = NULL;
  g_autofree char *dir = dsocr_test_fixture ("tiny-ocr-decoder");
  g_autofree char *gpath = g_build_filename (dir, "golden.safetensors", NULL);
  dsocr_safetensors *g;
  const dsocr_tensor *ids, *greedy;

  t->model = dsocr_model_load (dir, &err);
  g_assert_no_error (err);
  t->session = dsocr_session_new (t->model, &(dsocr_session_params) {
                                   .precision = DSOCR_PRECISION_F32 }, &err);
  g_assert_no_error (err);
  g = dsocr_safetensors_open (gpath, &err);
  g_assert_no_error (err);
  ids = dsocr_safetensors_get (g, "input_ids");
  greedy = dsocr_safetensors_get (g, "greedy_tokens");
  g_assert_nonnull (ids);
  g_assert_nonnull (greedy);
  t->L = (int) ids->shape[1];
  t->n_greedy = (int) greedy->shape[1];
  t->prompt = g_new (int32_t, t->L);
  t->greedy = g_new (int32_t, t->n_greedy);
  for (int i = 0; i < t->L; i++)
    t->prompt[i] = (int32_t) ((const int64_t *) ids->data)[i];
  for (int i = 0; i < t->n_greedy; i++)
    t->greedy[i] = (int32_t) ((const int64_t *) greedy->data)[i];
  dsocr_safetensors_unref (g);
}

static void
tiny_close (tiny *t)
{
  dsocr_session_free (t->session);
  dsocr_model_unref (t->model);
  g_free (t->prompt);
  g_free (t->greedy);
}

static dsocr_generate_result *
tiny_generate (tiny *t, const dsocr_generate_params *p)
{
  GError *err = NULL;
  dsocr_generate_result *r = NULL;

  dsocr_session_reset (t->session);
  dsocr_generate (t->session, &(dsocr_batch) { .n_seq = 1, .n_tokens = t->L, .ids = t->prompt },
                  p, &r, &err);
  g_assert_no_error (err);
  g_assert_nonnull (r);
  return r;
}

/* Stops at a chosen EOS id, which is kept in the output. */
static void
test_eos (void)
{
  tiny t;
  dsocr_generate_params p;
  dsocr_generate_result *r;
  int32_t eos;

  tiny_open (&t);
  dsocr_generate_params_init (&p);
  p.max_new_tokens = 32;
  /* the 5th greedy token, provided it did not occur before (else the stop comes earlier) */
  eos = t.greedy[4];
  for (int i = 0; i < 4; i++)
    g_assert_cmpint (t.greedy[i], !=, eos);
  p.eos_ids = &eos;
  p.n_eos_ids = 1;
  r = tiny_generate (&t, &p);
  g_assert_cmpint (r->n_steps, ==, 5);
  g_assert_cmpint (r->n_tokens[0], ==, 5);
  g_assert_cmpint (r->finish[0], ==, DSOCR_FINISH_EOS);
  g_assert_cmpmem (r->tokens, 5 * sizeof (int32_t), t.greedy, 5 * sizeof (int32_t));
  dsocr_generate_result_free (r);

  /* ignore_eos runs to the length limit */
  p.ignore_eos = TRUE;
  p.max_new_tokens = 8;
  r = tiny_generate (&t, &p);
  g_assert_cmpint (r->n_steps, ==, 8);
  g_assert_cmpint (r->finish[0], ==, DSOCR_FINISH_LENGTH);
  g_assert_cmpmem (r->tokens, 8 * sizeof (int32_t), t.greedy, 8 * sizeof (int32_t));
  dsocr_generate_result_free (r);
  tiny_close (&t);
}

typedef struct {
  GArray *seen;
  int stop_after;
} stream;

static gboolean
on_token (int row, int step, int32_t token, const float *logits, gpointer user_data)
{
  stream *st = user_data;
  g_assert_cmpint (row, ==, 0);
  g_assert_cmpint (step, ==, (int) st->seen->len);
  g_assert_cmpint (dsocr_logits_argmax (logits, 320), ==, token);  // greedy, no processor
  g_array_append_val (st->seen, token);
  return st->stop_after <= 0 || (int) st->seen->len < st->stop_after;
}

static void
test_stream_and_stop (void)
{
  tiny t;
  dsocr_generate_params p;
  dsocr_generate_result *r;
  stream st = { g_array_new (FALSE, FALSE, sizeof (int32_t)), 3 };

  tiny_open (&t);
  dsocr_generate_params_init (&p);
  p.max_new_tokens = 16;
  p.callback = on_token;
  p.user_data = &st;
  r = tiny_generate (&t, &p);
  g_assert_cmpint (r->n_steps, ==, 3);
  g_assert_cmpint (r->finish[0], ==, DSOCR_FINISH_STOPPED);
  g_assert_cmpint (st.seen->len, ==, 3);
  g_assert_cmpmem (st.seen->data, 3 * sizeof (int32_t), t.greedy, 3 * sizeof (int32_t));
  g_assert_cmpmem (r->tokens, 3 * sizeof (int32_t), t.greedy, 3 * sizeof (int32_t));
  dsocr_generate_result_free (r);
  g_array_unref (st.seen);
  tiny_close (&t);
}

/* Sampling: top_k 1 is greedy whatever the seed; a seed reproduces its draw. */
static void
test_sampling (void)
{
  tiny t;
  dsocr_generate_params p;
  dsocr_generate_result *a, *b, *c;
  const int n = 24;

  tiny_open (&t);
  dsocr_generate_params_init (&p);
  p.max_new_tokens = n;
  p.do_sample = TRUE;
  p.top_k = 1;
  p.seed = 7;
  a = tiny_generate (&t, &p);
  g_assert_cmpmem (a->tokens, n * sizeof (int32_t), t.greedy, n * sizeof (int32_t));
  dsocr_generate_result_free (a);

  p.top_k = 0;
  p.temperature = 1.5f;
  p.top_p = 0.95f;
  a = tiny_generate (&t, &p);
  b = tiny_generate (&t, &p);
  p.seed = 8;
  c = tiny_generate (&t, &p);
  g_assert_cmpmem (a->tokens, n * sizeof (int32_t), b->tokens, n * sizeof (int32_t));
  g_assert_true (memcmp (a->tokens, c->tokens, n * sizeof (int32_t)) != 0);
  for (int i = 0; i < n; i++)
    g_assert_true (a->tokens[i] >= 0 && a->tokens[i] < 320);
  dsocr_generate_result_free (a);
  dsocr_generate_result_free (b);
  dsocr_generate_result_free (c);
  tiny_close (&t);
}

/* The windowed guard: no n-gram of the output repeats one that starts within the window
 * before it, unless its last id is whitelisted. */
static void
test_window_guard (void)
{
  tiny t;
  dsocr_generate_params p;
  dsocr_generate_result *r;
  const int n = 2, window = 40;
  gboolean changed = FALSE;

  tiny_open (&t);
  dsocr_generate_params_init (&p);
  p.max_new_tokens = 64;
  p.ngram_size = n;
  p.ngram_window = window;
  r = tiny_generate (&t, &p);
  g_assert_cmpint (r->n_steps, ==, 64);
  for (int end = n; end <= r->n_steps; end++) {
    /* the n-gram ending at end - 1 vs the ones the guard scanned when choosing it */
    const int32_t *last = r->tokens + end - n;
    int start = MAX (0, end - 1 - window);
    for (int i = start; i + n <= end - 1; i++)
      g_assert_true (memcmp (r->tokens + i, last, n * sizeof (int32_t)) != 0);
  }
  for (int i = 0; i < 64; i++)
    changed |= r->tokens[i] != t.greedy[i];
  g_test_message ("windowed guard %s the greedy output", changed ? "changed" : "kept");
  dsocr_generate_result_free (r);
  tiny_close (&t);
}

static void
test_bad_params (void)
{
  tiny t;
  dsocr_generate_params p;
  dsocr_generate_result *r = NULL;
  GError *err = NULL;
  int32_t pos[12] = { 0 };

  tiny_open (&t);
  dsocr_generate_params_init (&p);
  p.do_sample = TRUE;
  p.temperature = 0.0f;
  g_assert_false (dsocr_generate (t.session, &(dsocr_batch) { .n_seq = 1, .n_tokens = t.L,
                                                              .ids = t.prompt },
                                  &p, &r, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_generate_params_init (&p);
  g_assert_false (dsocr_generate (t.session, &(dsocr_batch) { .n_seq = 1, .n_tokens = t.L,
                                                              .ids = t.prompt, .positions = pos },
                                  &p, &r, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_null (r);
  tiny_close (&t);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/generate/no-repeat-ngram", test_no_repeat_ngram);
  g_test_add_func ("/generate/ngram-window", test_ngram_window);
  g_test_add_func ("/generate/warpers", test_warpers);
  g_test_add_func ("/generate/argmax-sample", test_argmax_sample);
  g_test_add_func ("/generate/eos", test_eos);
  g_test_add_func ("/generate/stream-and-stop", test_stream_and_stop);
  g_test_add_func ("/generate/sampling", test_sampling);
  g_test_add_func ("/generate/window-guard", test_window_guard);
  g_test_add_func ("/generate/bad-params", test_bad_params);
  return g_test_run ();
}
