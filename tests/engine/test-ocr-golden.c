/* test-ocr-golden.c: DeepSeek-OCR end to end against the reference
 * (tests/fixtures/tiny-ocr-e2e/, written by tests/reference/make_ocr_fixtures.py, whose
 * docstring says how each golden was computed: Pillow preprocessing, the official deepencoder
 * modules and packing, transformers' decoder and generate()).
 *
 * For every mode, on page.png: the prompt ids (exact), rows of the packed image embeddings and
 * of the prefill logits (1e-4 relative), the greedy tokens with infer()'s no_repeat_ngram_size
 * 20 (exact), the decoded text, and the result flags; for small also the vLLM windowed guard.
 * Then the whole-image call, a callback that stops early, error paths and the dsocr tool. */
#include <string.h>
#include <sys/wait.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-generate.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "dsocr-test.h"

#define RTOL 1e-4

typedef struct {
  char *dir;
  dsocr_ocr *ocr;
  dsocr_image *page;
  dsocr_safetensors *golden;
  JsonParser *facts;
} fixture;

static fixture fx;

static void
fixture_open (void)
{
  GError *err = NULL;
  g_autofree char *png = NULL, *golden = NULL, *facts = NULL;

  if (fx.ocr)
    return;
  fx.dir = dsocr_test_fixture ("tiny-ocr-e2e");
  fx.ocr = dsocr_ocr_load (fx.dir, &err);
  g_assert_no_error (err);
  png = g_build_filename (fx.dir, "page.png", NULL);
  fx.page = dsocr_image_load (png, NULL, &err);
  g_assert_no_error (err);
  golden = g_build_filename (fx.dir, "golden-ocr.safetensors", NULL);
  fx.golden = dsocr_safetensors_open (golden, &err);
  g_assert_no_error (err);
  facts = g_build_filename (fx.dir, "golden-ocr.json", NULL);
  fx.facts = json_parser_new ();
  json_parser_load_from_file (fx.facts, facts, &err);
  g_assert_no_error (err);
}

static void
fixture_close (void)
{
  dsocr_ocr_unref (fx.ocr);
  dsocr_image_free (fx.page);
  dsocr_safetensors_unref (fx.golden);
  g_clear_object (&fx.facts);
  g_free (fx.dir);
}

static JsonObject *
facts_root (void)
{
  return json_node_get_object (json_parser_get_root (fx.facts));
}

static JsonObject *
mode_facts (const char *mode)
{
  return json_object_get_object_member (json_object_get_object_member (facts_root (), "modes"),
                                        mode);
}

/* A golden tensor's elements, copied (the file may leave them unaligned). (transfer full) */
static gpointer
golden_copy (const char *name, dsocr_dtype dtype, gsize *n)
{
  const dsocr_tensor *t = dsocr_safetensors_get (fx.golden, name);
  if (!t)
    g_error ("golden tensor '%s' missing", name);
  g_assert_cmpint (t->dtype, ==, dtype);
  *n = (gsize) dsocr_shape_numel (t->n_dims, t->shape);
  return g_memdup2 (t->data, t->nbytes);
}

static void
params_for (dsocr_ocr_params *p, dsocr_mode mode)
{
  dsocr_ocr_params_init (p);
  p->mode = mode;
  p->precision = DSOCR_PRECISION_F32;   /* the goldens are the reference's f32 numbers */
  p->prompt = json_object_get_string_member (facts_root (), "prompt");
  p->max_new_tokens = (int) json_object_get_int_member (facts_root (), "max_new_tokens");
}

typedef struct {
  GArray *tokens;   /* int32_t */
  GString *text;
  int stop_after;   /* 0: never stop */
} collected;

static gboolean
collect (int32_t token, const char *text, gsize len, gpointer user_data)
{
  collected *c = user_data;
  g_array_append_val (c->tokens, token);
  g_string_append_len (c->text, text, (gssize) len);
  return c->stop_after == 0 || (int) c->tokens->len < c->stop_after;
}

static void
collected_init (collected *c, int stop_after)
{
  c->tokens = g_array_new (FALSE, FALSE, sizeof (int32_t));
  c->text = g_string_new (NULL);
  c->stop_after = stop_after;
}

static void
collected_clear (collected *c)
{
  g_array_unref (c->tokens);
  g_string_free (c->text, TRUE);
}

static void
assert_tokens (const collected *c, const char *golden_name)
{
  gsize n;
  g_autofree int64_t *want = golden_copy (golden_name, DSOCR_DTYPE_I64, &n);
  g_assert_cmpuint (c->tokens->len, ==, n);
  for (gsize i = 0; i < n; i++)
    if (g_array_index (c->tokens, int32_t, i) != want[i])
      g_error ("%s: token %" G_GSIZE_FORMAT " is %d, the reference's %" G_GINT64_FORMAT,
               golden_name, i, g_array_index (c->tokens, int32_t, i), want[i]);
}

/* The result's flags as the reference run implies them: the token limit was hit unless it
 * ended with EOS, and the repetition flag when the guard decided one of the last n steps. */
static void
assert_flags (const dsocr_result *r, JsonObject *run, int n_tokens, int ngram)
{
  JsonArray *steps = json_object_get_array_member (run, "guard_override_steps");
  guint n_steps = json_array_get_length (steps);
  gboolean repeating = n_steps > 0 &&
                       n_tokens - 1 - json_array_get_int_element (steps, n_steps - 1) < ngram;
  gboolean eos = json_object_get_boolean_member_with_default (run, "ends_with_eos", FALSE);
  dsocr_result_flags f = dsocr_result_get_flags (r);
  g_assert_cmpint (!!(f & DSOCR_RESULT_HIT_TOKEN_LIMIT), ==, !eos);
  g_assert_cmpint (!!(f & DSOCR_RESULT_REPETITION_STOPPED), ==, repeating);
}

static void
test_mode (gconstpointer data)
{
  const dsocr_mode mode = GPOINTER_TO_INT (data);
  const char *name = dsocr_mode_name (mode);
  dsocr_model *model;
  int n_vocab;
  JsonObject *facts;
  GError *err = NULL;
  dsocr_ocr_params p;
  dsocr_image_view view;
  char key[64];
  gsize n;

  fixture_open ();
  facts = mode_facts (name);
  model = dsocr_ocr_get_model (fx.ocr);
  n_vocab = dsocr_model_get_n_vocab (model);
  params_for (&p, mode);
  view = dsocr_image_get_view (fx.page);

  /* step 1 + 3: preprocessing and the packed image embeddings */
  dsocr_preprocessed *pp = dsocr_ocr_preprocess (&view, &p, &err);
  g_assert_no_error (err);
  JsonArray *grid = json_object_get_array_member (facts, "grid");
  g_assert_cmpint (pp->grid_cols, ==, json_array_get_int_element (grid, 0));
  g_assert_cmpint (pp->grid_rows, ==, json_array_get_int_element (grid, 1));
  g_assert_cmpint (pp->n_image_tokens, ==, json_object_get_int_member (facts, "n_image_tokens"));
  dsocr_ocr_embeddings *emb = dsocr_ocr_encode (fx.ocr, pp, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpint (dsocr_ocr_embeddings_get_n_tokens (emb), ==, pp->n_image_tokens);
  {
    const dsocr_tensor *t = dsocr_ocr_embeddings_get_tensor (emb);
    const gsize E = (gsize) t->shape[1];
    g_snprintf (key, sizeof key, "%s.embeds_rows", name);
    g_autofree int64_t *rows = golden_copy (key, DSOCR_DTYPE_I64, &n);
    g_snprintf (key, sizeof key, "%s.embeds", name);
    gsize n_want;
    g_autofree float *want = golden_copy (key, DSOCR_DTYPE_F32, &n_want);
    g_assert_cmpuint (n_want, ==, n * E);
    for (gsize i = 0; i < n; i++)
      dsocr_test_assert_close ((const float *) t->data + rows[i] * E, want + i * E, E, RTOL,
                               "packed image embeddings");
  }

  /* step 2: the prompt, exactly */
  dsocr_ocr_prompt *prompt = dsocr_ocr_prompt_new (fx.ocr, p.prompt, pp->n_image_tokens, &err);
  g_assert_no_error (err);
  {
    gsize n_ids;
    const int32_t *ids = dsocr_ocr_prompt_get_ids (prompt, &n_ids);
    g_snprintf (key, sizeof key, "%s.input_ids", name);
    g_autofree int64_t *want = golden_copy (key, DSOCR_DTYPE_I64, &n);
    g_assert_cmpuint (n_ids, ==, n);
    for (gsize i = 0; i < n; i++)
      g_assert_cmpint (ids[i], ==, want[i]);
    g_assert_cmpint (dsocr_ocr_prompt_get_n_image_tokens (prompt), ==, pp->n_image_tokens);

    /* the same prompt given as ids */
    dsocr_ocr_prompt *again = dsocr_ocr_prompt_new_from_ids (fx.ocr, ids, n_ids, &err);
    g_assert_no_error (err);
    g_assert_cmpint (dsocr_ocr_prompt_get_n_image_tokens (again), ==, pp->n_image_tokens);
    dsocr_ocr_prompt_free (again);
  }

  /* step 4: the prefill logits at the golden's positions */
  {
    dsocr_batch b;
    g_assert_true (dsocr_ocr_prompt_fill_batch (prompt, emb, &b, &err));
    g_assert_no_error (err);
    dsocr_session *s = dsocr_session_new (model, &(dsocr_session_params) {
                                            .n_ctx = b.n_tokens,
                                            .precision = DSOCR_PRECISION_F32 }, &err);
    g_assert_no_error (err);
    g_autofree float *logits = g_new (float, (gsize) b.n_tokens * n_vocab);
    g_assert_true (dsocr_session_forward (s, &b, DSOCR_LOGITS_ALL, logits, &err));
    g_assert_no_error (err);
    g_snprintf (key, sizeof key, "%s.logits_rows", name);
    g_autofree int64_t *rows = golden_copy (key, DSOCR_DTYPE_I64, &n);
    g_snprintf (key, sizeof key, "%s.logits", name);
    gsize n_want;
    g_autofree float *want = golden_copy (key, DSOCR_DTYPE_F32, &n_want);
    g_assert_cmpuint (n_want, ==, n * (gsize) n_vocab);
    for (gsize i = 0; i < n; i++) {
      g_assert_cmpint (rows[i], <, b.n_tokens);
      g_autofree char *what = g_strdup_printf ("%s: prefill logits at %" G_GINT64_FORMAT, name,
                                               rows[i]);
      double rel = dsocr_test_rel_error (logits + rows[i] * n_vocab, want + i * n_vocab,
                                         (gsize) n_vocab);
      g_test_message ("%s: relative error %.3g", what, rel);
      dsocr_test_assert_close (logits + rows[i] * n_vocab, want + i * n_vocab, (gsize) n_vocab,
                               RTOL, what);
    }
    dsocr_session_free (s);
  }

  /* steps 4-6: greedy tokens with the HF guard, the text, the flags */
  {
    collected c;
    collected_init (&c, 0);
    dsocr_result *r = dsocr_ocr_generate (fx.ocr, emb, prompt, &p, collect, &c, &err);
    g_assert_no_error (err);
    g_snprintf (key, sizeof key, "%s.tokens", name);
    assert_tokens (&c, key);
    /* the streamed pieces add up to the decoded text; the result holds infer()'s text */
    g_autofree char *full = dsocr_tokenizer_decode (dsocr_ocr_get_tokenizer (fx.ocr),
                                                    (const int32_t *) c.tokens->data,
                                                    c.tokens->len, FALSE, &n);
    g_assert_cmpuint (c.text->len, ==, n);
    g_assert_true (memcmp (c.text->str, full, n) == 0);
    g_assert_cmpstr (dsocr_result_get_raw_text (r), ==,
                     json_object_get_string_member (facts, "raw_text"));
    int w, h;
    dsocr_ocr_embeddings_get_image_size (emb, &w, &h);
    g_assert_cmpint (dsocr_result_get_width (r), ==, fx.page->width);
    g_assert_cmpint (dsocr_result_get_height (r), ==, h);
    g_assert_cmpint (w, ==, fx.page->width);
    assert_flags (r, facts, p.max_new_tokens, DSOCR_OCR_NGRAM_HF);
    dsocr_result_free (r);
    collected_clear (&c);
  }

  /* the vLLM scripts' guard: n 30 within 90 generated tokens, <td> </td> exempt */
  if (json_object_has_member (facts, "window")) {
    JsonObject *win = json_object_get_object_member (facts, "window");
    collected c;
    collected_init (&c, 0);
    p.ngram_guard = DSOCR_NGRAM_GUARD_WINDOW;
    p.max_new_tokens = (int) json_object_get_int_member (win, "n_tokens");
    g_assert_cmpint (json_object_get_int_member (win, "ngram_size"), ==, DSOCR_OCR_NGRAM_WINDOW);
    g_assert_cmpint (json_object_get_int_member (win, "window"), ==,
                     DSOCR_OCR_NGRAM_WINDOW_SIZE);
    dsocr_result *r = dsocr_ocr_generate (fx.ocr, emb, prompt, &p, collect, &c, &err);
    g_assert_no_error (err);
    g_snprintf (key, sizeof key, "%s.tokens_window", name);
    assert_tokens (&c, key);
    assert_flags (r, win, p.max_new_tokens, DSOCR_OCR_NGRAM_WINDOW);
    dsocr_result_free (r);
    collected_clear (&c);
  }

  dsocr_ocr_prompt_free (prompt);
  dsocr_ocr_embeddings_unref (emb);
  dsocr_preprocessed_free (pp);
}

/* dsocr_ocr_run() is the steps chained; a callback may stop it early. */
static void
test_run (void)
{
  GError *err = NULL;
  dsocr_ocr_params p;
  collected c;

  fixture_open ();
  params_for (&p, DSOCR_MODE_TINY);
  dsocr_image_view view = dsocr_image_get_view (fx.page);
  collected_init (&c, 0);
  dsocr_result *r = dsocr_ocr_run (fx.ocr, &view, &p, collect, &c, &err);
  g_assert_no_error (err);
  assert_tokens (&c, "tiny.tokens");
  g_assert_cmpstr (dsocr_result_get_raw_text (r), ==,
                   json_object_get_string_member (mode_facts ("tiny"), "raw_text"));
  dsocr_result_free (r);
  collected_clear (&c);

  collected_init (&c, 5);
  r = dsocr_ocr_run (fx.ocr, &view, &p, collect, &c, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (c.tokens->len, ==, 5);
  g_assert_false (dsocr_result_get_flags (r) & DSOCR_RESULT_HIT_TOKEN_LIMIT);
  dsocr_result_free (r);
  collected_clear (&c);

  /* no tokens asked for: an empty page */
  p.max_new_tokens = 0;
  r = dsocr_ocr_run (fx.ocr, &view, &p, NULL, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (dsocr_result_get_markdown (r), ==, "");
  dsocr_result_free (r);

  /* the model is shared by reference */
  dsocr_ocr *ref = dsocr_ocr_ref (fx.ocr);
  g_assert_true (ref == fx.ocr);
  dsocr_ocr_unref (ref);
  dsocr_ocr_unref (NULL);
  g_assert_cmpint (dsocr_ocr_get_image_token_id (fx.ocr), ==,
                   json_object_get_int_member (facts_root (), "image_token_id"));
}

static void
test_errors (void)
{
  GError *err = NULL;
  dsocr_ocr_params p;

  fixture_open ();
  const int32_t img = dsocr_ocr_get_image_token_id (fx.ocr);

  /* prompts need exactly one <image> and valid UTF-8 */
  const char *bad_prompts[] = { "Free OCR.", "<image><image>\nFree OCR.", "\xff<image>" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad_prompts); i++) {
    g_assert_null (dsocr_ocr_prompt_new (fx.ocr, bad_prompts[i], 10, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
  }
  g_assert_null (dsocr_ocr_prompt_new (fx.ocr, NULL, 0, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);

  /* stripping: whitespace around the prompt does not change it (Python's str.strip) */
  {
    dsocr_ocr_prompt *a = dsocr_ocr_prompt_new (fx.ocr, "<image>\nFree OCR.", 3, &err);
    g_assert_no_error (err);
    dsocr_ocr_prompt *b = dsocr_ocr_prompt_new (fx.ocr, " \t\xe3\x80\x80<image>\nFree OCR.\n ",
                                                3, &err);
    g_assert_no_error (err);
    gsize na, nb;
    const int32_t *ia = dsocr_ocr_prompt_get_ids (a, &na), *ib = dsocr_ocr_prompt_get_ids (b, &nb);
    g_assert_cmpuint (na, ==, nb);
    g_assert_true (memcmp (ia, ib, na * sizeof *ia) == 0);
    g_assert_cmpint (ia[0], ==, 0);
    g_assert_cmpint (ia[1], ==, img);
    g_assert_cmpint (ia[3], ==, img);
    g_assert_cmpint (ia[4], !=, img);

    /* a prompt whose image count does not match the embeddings */
    const int64_t shape[2] = { 4, dsocr_model_get_n_embd (dsocr_ocr_get_model (fx.ocr)) };
    dsocr_ocr_embeddings *emb =
      dsocr_ocr_embeddings_new (dsocr_tensor_new (DSOCR_DTYPE_F32, 2, shape, NULL), 10, 10,
                                &err);
    g_assert_no_error (err);
    dsocr_batch batch;
    g_assert_false (dsocr_ocr_prompt_fill_batch (a, emb, &batch, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
    g_assert_null (dsocr_ocr_generate (fx.ocr, emb, a, NULL, NULL, NULL, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
    dsocr_ocr_embeddings_unref (dsocr_ocr_embeddings_ref (emb));
    dsocr_ocr_embeddings_unref (emb);
    dsocr_ocr_prompt_free (a);
    dsocr_ocr_prompt_free (b);
  }

  /* embeddings of the wrong kind */
  {
    const int64_t shape[2] = { 4, 8 };
    g_assert_null (dsocr_ocr_embeddings_new (dsocr_tensor_new (DSOCR_DTYPE_BF16, 2, shape, NULL),
                                             10, 10, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
    g_assert_null (dsocr_ocr_embeddings_new (dsocr_tensor_new (DSOCR_DTYPE_F32, 2, shape, NULL),
                                             0, 10, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
  }

  /* ids outside the vocabulary */
  {
    const int32_t ids[3] = { 0, img, 1 << 20 };
    g_assert_null (dsocr_ocr_prompt_new_from_ids (fx.ocr, ids, 3, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
    g_assert_null (dsocr_ocr_prompt_new_from_ids (fx.ocr, ids, 0, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
    g_clear_error (&err);
  }

  /* bad parameters fail before any work */
  dsocr_image_view view = dsocr_image_get_view (fx.page);
  dsocr_ocr_params_init (&p);
  p.max_new_tokens = -1;
  g_assert_null (dsocr_ocr_run (fx.ocr, &view, &p, NULL, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_ocr_params_init (&p);
  p.ngram_guard = DSOCR_NGRAM_GUARD_WINDOW;
  p.n_ngram_whitelist = 2;
  g_assert_null (dsocr_ocr_run (fx.ocr, &view, &p, NULL, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_ocr_params_init (&p);
  p.max_tiles = 1;
  g_assert_null (dsocr_ocr_run (fx.ocr, &view, &p, NULL, NULL, &err));
  g_assert_nonnull (err);
  g_clear_error (&err);
  dsocr_ocr_params_init (&p);
  p.prompt = "no image here";
  g_assert_null (dsocr_ocr_run (fx.ocr, &view, &p, NULL, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
}

/* One model, several decoder sessions at once: each thread gets the reference's tokens. */
typedef struct {
  const dsocr_ocr_embeddings *emb;
  const dsocr_ocr_prompt *prompt;
  const dsocr_ocr_params *params;
  collected c;
  GError *err;
} worker;

static gpointer
work (gpointer data)
{
  worker *w = data;
  dsocr_result *r = dsocr_ocr_generate (fx.ocr, w->emb, w->prompt, w->params, collect, &w->c,
                                        &w->err);
  dsocr_result_free (r);
  return NULL;
}

static void
test_threads (void)
{
  GError *err = NULL;
  dsocr_ocr_params p;
  worker w[3];
  GThread *t[3];

  fixture_open ();
  params_for (&p, DSOCR_MODE_TINY);
  p.n_threads = 1;
  dsocr_image_view view = dsocr_image_get_view (fx.page);
  dsocr_preprocessed *pp = dsocr_ocr_preprocess (&view, &p, &err);
  g_assert_no_error (err);
  dsocr_ocr_embeddings *emb = dsocr_ocr_encode (fx.ocr, pp, NULL, &err);
  g_assert_no_error (err);
  dsocr_ocr_prompt *prompt = dsocr_ocr_prompt_new (fx.ocr, p.prompt, pp->n_image_tokens, &err);
  g_assert_no_error (err);
  for (int i = 0; i < 3; i++) {
    w[i] = (worker) { emb, prompt, &p, { 0 }, NULL };
    collected_init (&w[i].c, 0);
    t[i] = g_thread_new ("ocr", work, &w[i]);
  }
  for (int i = 0; i < 3; i++) {
    g_thread_join (t[i]);
    g_assert_no_error (w[i].err);
    assert_tokens (&w[i].c, "tiny.tokens");
    collected_clear (&w[i].c);
  }
  dsocr_ocr_prompt_free (prompt);
  dsocr_ocr_embeddings_unref (emb);
  dsocr_preprocessed_free (pp);
}

/* Loading names what is wrong with a directory. */
static void
test_load_errors (void)
{
  struct {
    const char *fixture;
    int code;
    const char *needle;
  } cases[] = {
    { "no-such-model", DSOCR_ERROR_FILE, "no such model directory" },
    { "tiny-v2-mla-yarn", DSOCR_ERROR_UNSUPPORTED, "not DeepSeek-OCR" },
    { "tiny-ocr-decoder", DSOCR_ERROR_SHAPE, "model.sam_model" },   /* no vision weights */
    { "tiny-ocr", DSOCR_ERROR_FILE, "tokenizer.json" },             /* no tokenizer */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *dir = dsocr_test_fixture (cases[i].fixture);
    GError *err = NULL;
    g_assert_null (dsocr_ocr_load (dir, &err));
    g_assert_nonnull (err);
    g_test_message ("%s: %s", cases[i].fixture, err->message);
    g_assert_error (err, DSOCR_ERROR, cases[i].code);
    g_assert_nonnull (strstr (err->message, cases[i].needle));
    g_clear_error (&err);
  }
}

/* ---- the dsocr tool ---- */

typedef struct {
  int status;
  char *out;
  char *err;
} spawned;

static void
spawn_tool (spawned *s, const char *const *args)
{
  const char *tool = g_getenv ("DSOCR_TOOL");
  GPtrArray *argv = g_ptr_array_new ();
  GError *err = NULL;
  int wait_status = 0;

  g_ptr_array_add (argv, (gpointer) tool);
  for (; *args; args++)
    g_ptr_array_add (argv, (gpointer) *args);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &s->out, &s->err,
                &wait_status, &err);
  g_assert_no_error (err);
  g_ptr_array_unref (argv);
  /* A signal (a crash) is never an acceptable way to fail. */
  g_assert_true (WIFEXITED (wait_status));
  s->status = WEXITSTATUS (wait_status);
  g_test_message ("exit %d, stderr: %s", s->status, s->err);
}

static void
spawned_clear (spawned *s)
{
  g_free (s->out);
  g_free (s->err);
}

static void
remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    GDir *d = g_dir_open (path, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d))) {
      g_autofree char *child = g_build_filename (path, name, NULL);
      remove_tree (child);
    }
    if (d)
      g_dir_close (d);
  }
  g_remove (path);
}

static void
test_cli (void)
{
  if (!g_getenv ("DSOCR_TOOL")) {
    g_test_skip ("DSOCR_TOOL is not set (run through meson test)");
    return;
  }
  g_autofree char *dir = dsocr_test_fixture ("tiny-ocr-e2e");
  g_autofree char *png = g_build_filename (dir, "page.png", NULL);
  g_autofree char *bad = dsocr_test_fixture ("no-such-model");
  g_autofree char *missing = g_build_filename (dir, "no-such-page.png", NULL);
  g_autofree char *tmp = g_dir_make_tmp ("dsocr-cli-XXXXXX", NULL);
  spawned s;

  /* markdown of one page */
  spawn_tool (&s, (const char *const[]) { "--model", dir, "--mode", "tiny", "--max-new-tokens",
                                          "12", png, NULL });
  g_assert_cmpint (s.status, ==, 0);
  g_assert_cmpuint (strlen (s.out), >, 1);
  spawned_clear (&s);

  /* JSON, one object per image and line, crops folder */
  spawn_tool (&s, (const char *const[]) { "--model", dir, "--mode", "tiny", "--max-new-tokens",
                                          "12", "--json", "--output-dir", tmp, png, png, NULL });
  g_assert_cmpint (s.status, ==, 0);
  {
    g_auto (GStrv) lines = g_strsplit (g_strchomp (s.out), "\n", -1);
    g_assert_cmpuint (g_strv_length (lines), ==, 2);
    for (int i = 0; i < 2; i++) {
      g_autoptr (JsonParser) parser = json_parser_new ();
      GError *err = NULL;
      json_parser_load_from_data (parser, lines[i], -1, &err);
      g_assert_no_error (err);
      g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
    }
  }
  spawned_clear (&s);

  /* a bad model directory: exit 1 and the directory named */
  spawn_tool (&s, (const char *const[]) { "--model", bad, png, NULL });
  g_assert_cmpint (s.status, ==, 1);
  g_assert_nonnull (strstr (s.err, "no-such-model"));
  g_assert_cmpstr (s.out, ==, "");
  spawned_clear (&s);

  /* no --model: the default model, here $DSOCR_MODEL naming nothing; the error says how to
   * name one */
  g_setenv ("DSOCR_MODEL", "/nonexistent/dsocr-default-model", TRUE);
  spawn_tool (&s, (const char *const[]) { png, NULL });
  g_unsetenv ("DSOCR_MODEL");
  g_assert_cmpint (s.status, ==, 1);
  g_assert_nonnull (strstr (s.err, "/nonexistent/dsocr-default-model"));
  g_assert_nonnull (strstr (s.err, "--model"));
  g_assert_cmpstr (s.out, ==, "");
  spawned_clear (&s);

  /* no --model and no $DSOCR_MODEL: the bundled model where the tree has it (read in tiny
   * mode, as it was trained), else an error naming where it was looked for */
  g_autofree char *bundled = g_build_filename (dsocr_ocr_default_model_dir (), "config.json",
                                               NULL);
  spawn_tool (&s, (const char *const[]) { "--max-new-tokens", "4", png, NULL });
  if (g_file_test (bundled, G_FILE_TEST_EXISTS)) {
    g_assert_cmpint (s.status, ==, 0);
    g_assert_cmpuint (strlen (s.out), >, 1);
  } else {
    g_assert_cmpint (s.status, ==, 1);
    g_assert_nonnull (strstr (s.err, dsocr_ocr_default_model_dir ()));
  }
  spawned_clear (&s);

  /* a directory that is not DeepSeek-OCR */
  g_autofree char *v2 = dsocr_test_fixture ("tiny-v2-mla-yarn");
  spawn_tool (&s, (const char *const[]) { "--model", v2, png, NULL });
  g_assert_cmpint (s.status, ==, 1);
  g_assert_nonnull (strstr (s.err, "not DeepSeek-OCR"));
  spawned_clear (&s);

  /* a missing image: exit 1, the other image still done */
  spawn_tool (&s, (const char *const[]) { "--model", dir, "--mode", "tiny", "--max-new-tokens",
                                          "4", missing, png, NULL });
  g_assert_cmpint (s.status, ==, 1);
  g_assert_nonnull (strstr (s.err, "no-such-page.png"));
  g_assert_cmpuint (strlen (s.out), >, 1);
  spawned_clear (&s);

  /* bad usage */
  const char *const *usage[] = {
    (const char *const[]) { "--model", dir, NULL },
    (const char *const[]) { "--model", dir, "--mode", "huge", png, NULL },
    (const char *const[]) { "--model", dir, "--ngram", "maybe", png, NULL },
    (const char *const[]) { "--model", dir, "--max-new-tokens", "-3", png, NULL },
    (const char *const[]) { "--model", dir, "--no-such-option", png, NULL },
    (const char *const[]) { "--model", dir, "--prompt", "no image", png, NULL },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (usage); i++) {
    spawn_tool (&s, usage[i]);
    g_assert_cmpint (s.status, ==, 1);
    g_assert_cmpuint (strlen (s.err), >, 0);
    spawned_clear (&s);
  }
  remove_tree (tmp);
}

int
main (int argc, char **argv)
{
  static const dsocr_mode modes[] = { DSOCR_MODE_TINY, DSOCR_MODE_SMALL, DSOCR_MODE_BASE,
                                      DSOCR_MODE_LARGE, DSOCR_MODE_GUNDAM };
  int status;

  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++) {
    g_autofree char *path = g_strdup_printf ("/engine/ocr/mode/%s", dsocr_mode_name (modes[i]));
    g_test_add_data_func (path, GINT_TO_POINTER (modes[i]), test_mode);
  }
  g_test_add_func ("/engine/ocr/run", test_run);
  g_test_add_func ("/engine/ocr/threads", test_threads);
  g_test_add_func ("/engine/ocr/errors", test_errors);
  g_test_add_func ("/engine/ocr/load-errors", test_load_errors);
  g_test_add_func ("/engine/ocr/cli", test_cli);
  status = g_test_run ();
  fixture_close ();
  return status;
}
