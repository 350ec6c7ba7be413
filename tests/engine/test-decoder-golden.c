/* test-decoder-golden.c: the decoder against transformers' goldens
 * (tests/fixtures/tiny-*-/golden.safetensors, written by tests/reference/make_decoder_fixtures.py).
 *
 * Every causal fixture is checked for: the per-layer hidden states, router decisions, final
 * norm and logits of a forward pass; the inputs_embeds path; the causal-LM loss; chunked
 * prefill through the cache; 64 greedy tokens with the KV cache (and the raw logits of each
 * step); greedy decoding under no_repeat_ngram_size 3; for MLA fixtures, both attention forms;
 * for the OCR fixture, a left-padded batch of two prompts. */
#include "dsk.h"
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-generate.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>

#include "linear.h"
#include "pool.h"
#include "decoder.h"
#include "dsocr-test.h"

#define RTOL 1e-4

typedef struct {
  char *dir;
  dsocr_model *model;
  dsocr_safetensors *golden;
} fixture;

static void
fixture_open (fixture *fx, const char *name)
{
  GError *err = NULL;
  g_autofree char *golden = NULL;

  fx->dir = dsocr_test_fixture (name);
  fx->model = dsocr_model_load (fx->dir, &err);
  g_assert_no_error (err);
  golden = g_build_filename (fx->dir, "golden.safetensors", NULL);
  fx->golden = dsocr_safetensors_open (golden, &err);
  g_assert_no_error (err);
}

static void
fixture_close (fixture *fx)
{
  dsocr_model_unref (fx->model);
  dsocr_safetensors_unref (fx->golden);
  g_free (fx->dir);
}

static const dsocr_tensor *
golden (const fixture *fx, const char *name)
{
  const dsocr_tensor *t = dsocr_safetensors_get (fx->golden, name);
  if (!t)
    g_error ("%s: golden tensor '%s' missing", fx->dir, name);
  return t;
}

static gsize
numel (const dsocr_tensor *t)
{
  return (gsize) dsocr_shape_numel (t->n_dims, t->shape);
}

static const float *
golden_f32 (const fixture *fx, const char *name)
{
  const dsocr_tensor *t = golden (fx, name);
  g_assert_cmpint (t->dtype, ==, DSOCR_DTYPE_F32);
  return t->data;
}

/* An I64 golden narrowed to int32 (transfer full). */
static int32_t *
golden_i32 (const fixture *fx, const char *name, gsize *n)
{
  const dsocr_tensor *t = golden (fx, name);
  const int64_t *src = t->data;
  int32_t *out = g_new (int32_t, numel (t));

  g_assert_cmpint (t->dtype, ==, DSOCR_DTYPE_I64);
  for (gsize i = 0; i < numel (t); i++)
    out[i] = (int32_t) src[i];
  if (n)
    *n = numel (t);
  return out;
}

static dsocr_session *
session_new (const fixture *fx, int n_seq, dsocr_mla_form form)
{
  GError *err = NULL;
  dsocr_session_params p;
  dsocr_session *s;

  dsocr_session_params_init (&p);
  p.n_seq_max = n_seq;
  p.mla_form = form;
  p.precision = DSOCR_PRECISION_F32;   /* the goldens are the reference's f32 numbers */
  s = dsocr_session_new (fx->model, &p, &err);
  g_assert_no_error (err);
  return s;
}

/* ---- forward pass with the intermediate tensors ---- */

typedef struct {
  const fixture *fx;
  int n_checked;
} capture;

static void
check_intermediate (const dsocr_tensor *t, int layer, gpointer user_data)
{
  capture *cap = user_data;
  g_autofree char *name = NULL;

  if (g_str_equal (t->name, "hidden"))
    name = g_strdup_printf ("hidden.%d", layer);
  else if (g_str_has_prefix (t->name, "router."))
    name = g_strdup_printf ("router.%d.%s", layer, t->name + strlen ("router."));
  else
    name = g_strdup (t->name);

  if (t->dtype == DSOCR_DTYPE_I32) {
    gsize n;
    g_autofree int32_t *want = golden_i32 (cap->fx, name, &n);
    g_assert_cmpuint (n, ==, numel (t));
    for (gsize i = 0; i < n; i++)
      g_assert_cmpint (((const int32_t *) t->data)[i], ==, want[i]);
  } else {
    g_assert_cmpuint (numel (t), ==, numel (golden (cap->fx, name)));
    dsocr_test_assert_close ((const float *) t->data, golden_f32 (cap->fx, name), numel (t), RTOL,
                             name);
  }
  cap->n_checked++;
}

static void
test_forward (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  dsocr_session *s;
  capture cap = { &fx, 0 };
  const dsocr_text_config *t;

  fixture_open (&fx, data);
  t = &dsocr_model_get_config (fx.model)->text;
  ids = golden_i32 (&fx, "input_ids", &L);

  /* The reference's constants: RoPE frequencies, cos/sin factor and softmax scale. */
  dsocr_test_assert_close (fx.model->rope_inv_freq, golden_f32 (&fx, "rope_inv_freq"),
                           numel (golden (&fx, "rope_inv_freq")), 1e-6, "rope_inv_freq");
  g_assert_cmpfloat_with_epsilon (fx.model->rope_scale, *golden_f32 (&fx, "rope_attention_scaling"),
                                  1e-6);
  g_assert_cmpfloat_with_epsilon (t->softmax_scale, *golden_f32 (&fx, "attn_softmax_scale"), 1e-7);

  s = session_new (&fx, 1, DSOCR_MLA_AUTO);
  dsocr_session_set_tensor_callback (s, check_intermediate, &cap);
  logits = g_new (float, L * t->vocab_size);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         DSOCR_LOGITS_ALL, logits, &err);
  g_assert_no_error (err);
  /* embeddings + one hidden per layer + final_norm + two router tensors per MoE layer */
  g_assert_cmpint (cap.n_checked, >=, t->num_hidden_layers + 2);
  g_test_message ("%s: logits relative error %.3g", (const char *) data,
                  dsocr_test_rel_error (logits, golden_f32 (&fx, "logits"), L * t->vocab_size));
  dsocr_test_assert_close (logits, golden_f32 (&fx, "logits"), L * t->vocab_size, RTOL, "logits");
  g_assert_cmpint (dsocr_session_get_n_past (s), ==, (int) L);
  dsocr_session_free (s);
  fixture_close (&fx);
}

/* The prompt in two chunks (5 columns, then the rest through the cache) gives the same logits
 * for the second chunk. */
static void
test_chunked_prefill (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  dsocr_session *s;
  int V;
  const int first = 5;

  fixture_open (&fx, data);
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "input_ids", &L);
  logits = g_new (float, L * V);
  for (int form = DSOCR_MLA_EXPANDED; form <= DSOCR_MLA_ABSORBED; form++) {
    s = session_new (&fx, 1, form);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = first, .ids = ids },
                           DSOCR_LOGITS_ALL, logits, &err);
    g_assert_no_error (err);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L - first,
                                               .ids = ids + first },
                           DSOCR_LOGITS_ALL, logits + (gsize) first * V, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (logits, golden_f32 (&fx, "logits"), L * V, RTOL, "chunked logits");
    dsocr_session_free (s);
  }
  fixture_close (&fx);
}

typedef struct {
  const float *want;  // [L, H] expected layer-0 input
  gsize n;
  gboolean seen;
} embeds_check;

static void
check_embeddings (const dsocr_tensor *t, int layer, gpointer user_data)
{
  embeds_check *c = user_data;

  if (!g_str_equal (t->name, "embeddings"))
    return;
  g_assert_cmpuint (numel (t), ==, c->n);
  g_assert_cmpmem (t->data, c->n * sizeof (float), c->want, c->n * sizeof (float));
  c->seen = TRUE;
}

/* inputs_embeds instead of ids; and ids + embeds + an all-ones embeds_mask, the OCR path's
 * masked_scatter, gives the same. */
static void
test_embeds (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  g_autofree uint8_t *mask = NULL;
  dsocr_session *s;
  int V;

  fixture_open (&fx, data);
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "input_ids", &L);
  logits = g_new (float, L * V);
  mask = g_new (uint8_t, L);
  memset (mask, 1, L);
  s = session_new (&fx, 1, DSOCR_MLA_AUTO);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L,
                                             .embeds = golden_f32 (&fx, "inputs_embeds") },
                         DSOCR_LOGITS_ALL, logits, &err);
  g_assert_no_error (err);
  dsocr_test_assert_close (logits, golden_f32 (&fx, "logits_embeds"), L * V, RTOL, "logits_embeds");

  dsocr_session_reset (s);
  memset (logits, 0, sizeof (float) * L * V);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids,
                                             .embeds = golden_f32 (&fx, "inputs_embeds"),
                                             .embeds_mask = mask },
                         DSOCR_LOGITS_ALL, logits, &err);
  g_assert_no_error (err);
  dsocr_test_assert_close (logits, golden_f32 (&fx, "logits_embeds"), L * V, RTOL,
                           "logits of ids + embeds_mask");

  /* Every other column from embeds (taken in order), the rest looked up: the layer-0 input is
   * inputs_embeds at the masked columns and the ids' embeddings elsewhere. */
  {
    const int H = dsocr_model_get_n_embd (fx.model);
    const float *src = golden_f32 (&fx, "inputs_embeds");
    g_autofree float *packed = g_new (float, L * H);
    g_autofree float *want = g_new (float, L * H);
    embeds_check chk = { want, L * H, FALSE };
    gsize k = 0;

    for (gsize i = 0; i < L; i++) {
      mask[i] = i % 2;
      if (mask[i])
        memcpy (packed + (k++) * H, src + i * H, sizeof (float) * H);
      memcpy (want + i * H, (mask[i] ? src : golden_f32 (&fx, "embeddings")) + i * H,
              sizeof (float) * H);
    }
    dsocr_session_reset (s);
    dsocr_session_set_tensor_callback (s, check_embeddings, &chk);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids,
                                               .embeds = packed, .embeds_mask = mask },
                           DSOCR_LOGITS_NONE, NULL, &err);
    g_assert_no_error (err);
    g_assert_true (chk.seen);
  }
  dsocr_session_free (s);
  fixture_close (&fx);
}

static void
test_loss (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  const dsocr_tensor *labels;
  dsocr_session *s;
  double loss = 0.0;
  float got;

  fixture_open (&fx, data);
  ids = golden_i32 (&fx, "input_ids", &L);
  labels = golden (&fx, "labels");
  s = session_new (&fx, 1, DSOCR_MLA_AUTO);
  dsocr_session_lm_loss (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         labels->data, &loss, &err);
  g_assert_no_error (err);
  got = (float) loss;
  dsocr_test_assert_close (&got, golden_f32 (&fx, "loss"), 1, RTOL, "loss");
  dsocr_session_free (s);
  fixture_close (&fx);
}

/* ---- generation ---- */

typedef struct {
  const float *want;  // [steps, V] raw logits of each greedy step
  int V;
  int n_steps;
} step_check;

static gboolean
check_step_logits (int row, int step, int32_t token, const float *logits, gpointer user_data)
{
  step_check *c = user_data;
  g_autofree char *what = g_strdup_printf ("greedy step %d logits", step);

  g_assert_cmpint (row, ==, 0);
  dsocr_test_assert_close (logits, c->want + (gsize) step * c->V, (gsize) c->V, RTOL, what);
  c->n_steps++;
  return TRUE;
}

static void
run_greedy (const fixture *fx, dsocr_mla_form form, int no_repeat_ngram, const char *want_name,
            gboolean check_logits)
{
  GError *err = NULL;
  gsize L, n_want;
  g_autofree int32_t *ids = golden_i32 (fx, "input_ids", &L);
  g_autofree int32_t *want = golden_i32 (fx, want_name, &n_want);
  dsocr_session *s = session_new (fx, 1, form);
  dsocr_generate_params p;
  dsocr_generate_result *r = NULL;
  step_check c = { golden_f32 (fx, "greedy_step_logits"), dsocr_model_get_n_vocab (fx->model), 0 };

  dsocr_generate_params_init (&p);
  p.max_new_tokens = (int) n_want;
  p.no_repeat_ngram_size = no_repeat_ngram;
  if (check_logits) {
    p.callback = check_step_logits;
    p.user_data = &c;
  }
  dsocr_generate (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids }, &p, &r, &err);
  g_assert_no_error (err);
  g_assert_cmpint (r->n_steps, ==, (int) n_want);
  g_assert_cmpint (r->n_tokens[0], ==, (int) n_want);
  g_assert_cmpint (r->finish[0], ==, DSOCR_FINISH_LENGTH);
  for (gsize i = 0; i < n_want; i++)
    if (r->tokens[i] != want[i])
      g_error ("%s: token %" G_GSIZE_FORMAT " is %d, transformers gives %d", want_name, i,
               r->tokens[i], want[i]);
  if (check_logits)
    g_assert_cmpint (c.n_steps, ==, (int) n_want);
  g_assert_cmpint (dsocr_session_get_n_past (s), ==, (int) (L + n_want - 1));
  dsocr_generate_result_free (r);
  dsocr_session_free (s);
}

static void
test_greedy (gconstpointer data)
{
  fixture fx;

  fixture_open (&fx, data);
  run_greedy (&fx, DSOCR_MLA_AUTO, 0, "greedy_tokens", TRUE);
  if (dsocr_model_get_config (fx.model)->text.use_mla) {
    run_greedy (&fx, DSOCR_MLA_EXPANDED, 0, "greedy_tokens", TRUE);
    run_greedy (&fx, DSOCR_MLA_ABSORBED, 0, "greedy_tokens", TRUE);
  }
  fixture_close (&fx);
}

static void
test_no_repeat_ngram (gconstpointer data)
{
  fixture fx;

  fixture_open (&fx, data);
  run_greedy (&fx, DSOCR_MLA_AUTO, 3, "nrng_tokens", FALSE);
  fixture_close (&fx);
}

/* Left-padded batch of two prompts: prefill logits at the last column and 64 greedy tokens
 * per row, with generate()'s position ids. */
static void
test_batch (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize n, n_want;
  g_autofree int32_t *ids = NULL, *mask32 = NULL, *want = NULL, *pos = NULL;
  g_autofree uint8_t *mask = NULL;
  g_autofree float *logits = NULL;
  dsocr_session *s;
  dsocr_generate_params p;
  dsocr_generate_result *r = NULL;
  const int n_seq = 2;
  int L, V;

  fixture_open (&fx, data);
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "batch_input_ids", &n);
  mask32 = golden_i32 (&fx, "batch_attention_mask", NULL);
  want = golden_i32 (&fx, "greedy_tokens_batch", &n_want);
  L = (int) n / n_seq;
  mask = g_new (uint8_t, n);
  pos = g_new (int32_t, n);
  for (int row = 0; row < n_seq; row++) {
    int c = -1;
    for (int t = 0; t < L; t++) {
      gsize i = (gsize) row * L + t;
      mask[i] = (uint8_t) mask32[i];
      c += mask[i];
      pos[i] = mask[i] ? c : 0;
    }
  }

  s = session_new (&fx, n_seq, DSOCR_MLA_AUTO);
  logits = g_new (float, (gsize) n_seq * V);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = n_seq, .n_tokens = L, .ids = ids,
                                             .positions = pos, .attention_mask = mask },
                         DSOCR_LOGITS_LAST, logits, &err);
  g_assert_no_error (err);
  dsocr_test_assert_close (logits, golden_f32 (&fx, "batch_last_logits"), (gsize) n_seq * V, RTOL,
                           "batch_last_logits");

  dsocr_session_reset (s);
  dsocr_generate_params_init (&p);
  p.max_new_tokens = (int) n_want / n_seq;
  p.pad_token_id = 2;
  dsocr_generate (s, &(dsocr_batch) { .n_seq = n_seq, .n_tokens = L, .ids = ids,
                                      .attention_mask = mask }, &p, &r, &err);
  g_assert_no_error (err);
  g_assert_cmpint (r->n_steps * n_seq, ==, (int) n_want);
  for (gsize i = 0; i < n_want; i++)
    if (r->tokens[i] != want[i])
      g_error ("greedy_tokens_batch: row %d token %d is %d, transformers gives %d",
               (int) (i / r->n_steps), (int) (i % r->n_steps), r->tokens[i], want[i]);
  dsocr_generate_result_free (r);
  dsocr_session_free (s);
  fixture_close (&fx);
}

/* Writes @src's tensors to @path as @dtype (F32 or F16): a safetensors header, then the data. */
static void
write_converted (const dsocr_safetensors *src, const char *path, dsocr_dtype dtype)
{
  g_autoptr (GString) header = g_string_new ("{");
  g_autoptr (GByteArray) data = g_byte_array_new ();
  GError *err = NULL;
  FILE *f;
  guint64 len;

  for (gsize i = 0; i < dsocr_safetensors_n_tensors (src); i++) {
    const dsocr_tensor *t = dsocr_safetensors_get_nth (src, i);
    gsize n = (gsize) dsocr_shape_numel (t->n_dims, t->shape), begin = data->len;
    g_autofree float *v = g_new (float, MAX (n, 1));

    g_assert_true (dsocr_tensor_to_f32 (t, v, &err));
    for (gsize j = 0; j < n; j++) {
      if (dtype == DSOCR_DTYPE_F32) {
        g_byte_array_append (data, (const guint8 *) &v[j], 4);
      } else {
        /* bf16 values of the fixture are exact in f16 unless tiny; round to nearest */
        guint16 h = dsk_f32_to_f16 (v[j]);
        g_byte_array_append (data, (const guint8 *) &h, 2);
      }
    }
    g_string_append_printf (header, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                            t->name, dsocr_dtype_name (dtype));
    for (int d = 0; d < t->n_dims; d++)
      g_string_append_printf (header, "%s%" G_GINT64_FORMAT, d ? "," : "", t->shape[d]);
    g_string_append_printf (header, "],\"data_offsets\":[%" G_GSIZE_FORMAT ",%u]}", begin,
                            data->len);
  }
  g_string_append (header, "}");
  while (header->len % 8)
    g_string_append_c (header, ' ');
  f = fopen (path, "wb");
  g_assert_nonnull (f);
  len = GUINT64_TO_LE (header->len);
  g_assert_cmpuint (fwrite (&len, 8, 1, f), ==, 1);
  g_assert_cmpuint (fwrite (header->str, 1, header->len, f), ==, header->len);
  g_assert_cmpuint (fwrite (data->data, 1, data->len, f), ==, data->len);
  fclose (f);
}

/* The same weights stored as F32 (exact) and F16 (exact for all but the tiniest values) give
 * transformers' logits: the F32 and F16 paths of every product. */
static void
test_weight_dtypes (void)
{
  fixture fx;
  GError *err = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("dsocr-dtypes-XXXXXX", &err);
  g_autofree char *src_path = NULL, *cfg_src = NULL, *cfg_dst = NULL, *st_dst = NULL;
  g_autofree char *cfg_text = NULL;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  dsocr_safetensors *src;
  gsize L, cfg_len;
  int V;

  g_assert_no_error (err);
  fixture_open (&fx, "tiny-ocr-decoder");
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "input_ids", &L);
  logits = g_new (float, L * V);
  src_path = g_build_filename (fx.dir, "model.safetensors", NULL);
  src = dsocr_safetensors_open (src_path, &err);
  g_assert_no_error (err);
  cfg_src = g_build_filename (fx.dir, "config.json", NULL);
  cfg_dst = g_build_filename (tmp, "config.json", NULL);
  st_dst = g_build_filename (tmp, "model.safetensors", NULL);
  g_assert_true (g_file_get_contents (cfg_src, &cfg_text, &cfg_len, NULL));
  g_assert_true (g_file_set_contents (cfg_dst, cfg_text, (gssize) cfg_len, NULL));

  for (int pass = 0; pass < 3; pass++) {
    const dsocr_dtype dtype = pass == 0 ? DSOCR_DTYPE_F32 : DSOCR_DTYPE_F16;
    dsocr_model *m;
    dsocr_session *s;

    write_converted (src, st_dst, dtype);
    m = dsocr_model_load (tmp, &err);
    g_assert_no_error (err);
    s = dsocr_session_new (m, &(dsocr_session_params) { .precision = DSOCR_PRECISION_F32 },
                           &err);
    g_assert_no_error (err);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                           DSOCR_LOGITS_ALL, logits, &err);
    g_assert_no_error (err);
    g_test_message ("%s weights: logits relative error %.3g", dsocr_dtype_name (dtype),
                    dsocr_test_rel_error (logits, golden_f32 (&fx, "logits"), L * V));
    dsocr_test_assert_close (logits, golden_f32 (&fx, "logits"), L * V, RTOL,
                             dsocr_dtype_name (dtype));
    dsocr_session_free (s);
    dsocr_model_unref (m);
  }
  dsocr_safetensors_unref (src);
  g_unlink (st_dst);
  g_unlink (cfg_dst);
  g_rmdir (tmp);
  fixture_close (&fx);
}

/* The AVX2 and the plain C kernels (used where AVX-512 / AVX2 are missing) give the same
 * logits. */
static void
test_other_kernels (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  dsocr_session *s;
  int V;

  fixture_open (&fx, data);
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "input_ids", &L);
  logits = g_new (float, L * V);
  for (int which = DSK_MM_KERNELS_AVX2; which <= DSK_MM_KERNELS_GENERIC; which++) {
    dsk_mm_force_kernels ((dsk_mm_kernels) which);
    s = session_new (&fx, 1, DSOCR_MLA_AUTO);
    dsk_mm_force_kernels (DSK_MM_KERNELS_AUTO);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                           DSOCR_LOGITS_ALL, logits, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (logits, golden_f32 (&fx, "logits"), L * V, RTOL,
                             which == DSK_MM_KERNELS_AVX2 ? "AVX2 kernels" : "plain C kernels");
    dsocr_session_free (s);
  }
  fixture_close (&fx);
}

/* Every product through the packed kernel (many-token products use it; here even single
 * tokens do), prefill and greedy decoding. */
static void
test_packed_kernel (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  dsocr_session *s;
  int V;

  fixture_open (&fx, data);
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "input_ids", &L);
  logits = g_new (float, L * V);
  dsk_mm_set_pack_min (1);
  s = session_new (&fx, 1, DSOCR_MLA_AUTO);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         DSOCR_LOGITS_ALL, logits, &err);
  g_assert_no_error (err);
  dsocr_test_assert_close (logits, golden_f32 (&fx, "logits"), L * V, RTOL, "packed kernel");
  run_greedy (&fx, DSOCR_MLA_AUTO, 0, "greedy_tokens", TRUE);
  dsk_mm_set_pack_min (0);
  dsocr_session_free (s);
  fixture_close (&fx);
}

/* Every run spread over a pool of more threads than the machine may have, with the tiles, then
 * with the packed kernel everywhere, then with OpenBLAS for every product of more than 8 rows:
 * forward logits and greedy tokens unchanged. */
static void
test_threads (gconstpointer data)
{
  fixture fx;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = NULL;
  g_autofree float *logits = NULL;
  int V;

  fixture_open (&fx, data);
  V = dsocr_model_get_n_vocab (fx.model);
  ids = golden_i32 (&fx, "input_ids", &L);
  logits = g_new (float, L * V);
  dsk_pool_set_parallel_min (0.0);
  for (int pass = 0; pass < 3; pass++) {
    dsocr_session *s;
    dsocr_generate_params p;
    dsocr_generate_result *r = NULL;
    gsize n_want;
    g_autofree int32_t *want = golden_i32 (&fx, "greedy_tokens", &n_want);

    dsk_mm_set_pack_min (pass == 0 ? 1000 : 1);
    dsk_mm_force_path (pass == 2 ? 2 : 0);
    s = dsocr_session_new (fx.model, &(dsocr_session_params) {
                             .n_threads = 3, .precision = DSOCR_PRECISION_F32 }, &err);
    g_assert_no_error (err);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                           DSOCR_LOGITS_ALL, logits, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (logits, golden_f32 (&fx, "logits"), L * V, RTOL, "3 threads");
    dsocr_session_reset (s);
    dsocr_generate_params_init (&p);
    p.max_new_tokens = (int) n_want;
    dsocr_generate (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids }, &p, &r,
                    &err);
    g_assert_no_error (err);
    g_assert_cmpmem (r->tokens, n_want * sizeof (int32_t), want, n_want * sizeof (int32_t));
    dsocr_generate_result_free (r);
    dsocr_session_free (s);
  }
  dsk_mm_set_pack_min (0);
  dsk_mm_force_path (0);
  dsk_pool_set_parallel_min (-1.0);
  fixture_close (&fx);
}

/* Misuse is reported, not crashed on. */
static void
test_errors (void)
{
  fixture fx;
  GError *err = NULL;
  dsocr_session *s;
  int32_t bad = 100000, ok[2] = { 0, 5 };
  float logits[320 * 2];

  fixture_open (&fx, "tiny-ocr-decoder");
  s = session_new (&fx, 1, DSOCR_MLA_AUTO);
  g_assert_false (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 1,
                                                             .ids = &bad },
                                         DSOCR_LOGITS_LAST, logits, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_cmpint (dsocr_session_get_n_past (s), ==, 0);
  g_assert_false (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 2, .n_tokens = 1,
                                                             .ids = ok },
                                         DSOCR_LOGITS_LAST, logits, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 0,
                                                             .ids = ok },
                                         DSOCR_LOGITS_LAST, logits, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 1 },
                                         DSOCR_LOGITS_LAST, logits, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_true (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 2,
                                                            .ids = ok },
                                        DSOCR_LOGITS_ALL, logits, &err));
  g_assert_no_error (err);
  dsocr_session_free (s);

  /* the cache is bounded by n_ctx */
  s = dsocr_session_new (fx.model, &(dsocr_session_params) { .n_ctx = 3 }, &err);
  g_assert_no_error (err);
  g_assert_true (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 2,
                                                            .ids = ok },
                                        DSOCR_LOGITS_NONE, NULL, &err));
  g_assert_false (dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 2,
                                                             .ids = ok },
                                         DSOCR_LOGITS_NONE, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_cmpint (dsocr_session_get_n_past (s), ==, 2);
  dsocr_session_free (s);

  g_assert_null (dsocr_model_load ("/nonexistent/model", &err));
  g_assert_nonnull (err);
  g_clear_error (&err);
  fixture_close (&fx);
}

int
main (int argc, char **argv)
{
  static const char *const causal[] = { "tiny-ocr-decoder", "tiny-v2-mla-yarn",
                                        "tiny-v2-mla-group", "tiny-v3-noaux" };
  static const struct {
    const char *name;
    GTestDataFunc func;
  } cases[] = {
    { "forward", test_forward },
    { "chunked-prefill", test_chunked_prefill },
    { "embeds", test_embeds },
    { "loss", test_loss },
    { "greedy", test_greedy },
    { "no-repeat-ngram", test_no_repeat_ngram },
  };

  g_test_init (&argc, &argv, NULL);
  for (gsize f = 0; f < G_N_ELEMENTS (causal); f++) {
    for (gsize c = 0; c < G_N_ELEMENTS (cases); c++) {
      g_autofree char *path = g_strdup_printf ("/decoder/%s/%s", causal[f], cases[c].name);
      g_test_add_data_func (path, causal[f], cases[c].func);
    }
    {
      g_autofree char *path = g_strdup_printf ("/decoder/%s/packed-kernel", causal[f]);
      g_autofree char *path2 = g_strdup_printf ("/decoder/%s/threads", causal[f]);
      g_test_add_data_func (path, causal[f], test_packed_kernel);
      g_test_add_data_func (path2, causal[f], test_threads);
    }
  }
  g_test_add_data_func ("/decoder/tiny-ocr-decoder/batch", "tiny-ocr-decoder", test_batch);
  g_test_add_func ("/decoder/tiny-ocr-decoder/weight-dtypes", test_weight_dtypes);
  g_test_add_data_func ("/decoder/tiny-v3-noaux/other-kernels", "tiny-v3-noaux",
                        test_other_kernels);
  g_test_add_func ("/decoder/errors", test_errors);
  return g_test_run ();
}
