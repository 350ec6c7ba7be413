/* bench-precision.c: how far each precision moves the decoder from f32 (docs/numerics.md).
 *
 *   bench-precision goldens DIR...                  tiny fixtures: greedy tokens vs the goldens
 *   bench-precision decoder --model DIR [--steps N]  a full-size model: logits and tokens vs f32
 *   bench-precision reader --model DIR --pages DIR   the bundled model's held-out pages: CER
 *
 * goldens: for each decoder fixture (a tests/fixtures/tiny-* directory with golden.safetensors
 * holding input_ids and greedy_tokens, as transformers generated them in f32), the greedy
 * tokens at every precision: how many of them match the golden's, and the first that does not.
 *
 * decoder: a prompt of --prompt-len ids (bench-decoder's), then --steps greedy tokens at f32.
 * Every other precision is then fed the same tokens one decode step at a time (teacher
 * forcing, so every step is compared on the same input) and its logits compared with f32's:
 * the relative error max |l - l_f32| / max |l_f32| per step (mean and largest over the
 * steps) and the share of steps whose argmax agrees. Each precision also generates freely
 * from the prompt: the first step where its greedy tokens leave f32's.
 *
 * reader: the held-out pages of tests/fixtures/reader-eval read by the bundled model in tiny
 * mode with both prompts (as tests/engine/test-reader.c does at f32): per precision, the
 * readings whose tokens equal f32's exactly, the tokens in agreement up to the first
 * difference, and the character error rate against the pages' truth (tests/reading.h).
 *
 * Prints one JSON line per (fixture or model, precision). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <dsocr/dsocr.h>
#include <json-glib/json-glib.h>

#include "reading.h"

static const dsocr_precision precisions[] = {
  DSOCR_PRECISION_F32, DSOCR_PRECISION_BF16, DSOCR_PRECISION_Q8, DSOCR_PRECISION_Q4,
};

static int threads = 2;

/* ---- goldens ---- */

static int32_t *
golden_ids (dsocr_safetensors *g, const char *name, gsize *n)
{
  const dsocr_tensor *t = dsocr_safetensors_get (g, name);
  if (!t)
    return NULL;
  *n = (gsize) dsocr_shape_numel (t->n_dims, t->shape);
  int32_t *out = g_new (int32_t, *n);
  for (gsize i = 0; i < *n; i++)
    out[i] = t->dtype == DSOCR_DTYPE_I64 ? (int32_t) ((const int64_t *) t->data)[i]
                                         : ((const int32_t *) t->data)[i];
  return out;
}

static int
run_goldens (char **dirs)
{
  for (int d = 0; dirs[d]; d++) {
    GError *err = NULL;
    g_autofree char *gpath = g_build_filename (dirs[d], "golden.safetensors", NULL);
    dsocr_safetensors *g = dsocr_safetensors_open (gpath, &err);
    dsocr_model *m = g ? dsocr_model_load (dirs[d], &err) : NULL;
    gsize L = 0, n_want = 0;
    g_autofree int32_t *ids = g ? golden_ids (g, "input_ids", &L) : NULL;
    g_autofree int32_t *want = g ? golden_ids (g, "greedy_tokens", &n_want) : NULL;
    if (!m || !ids || !want) {
      g_printerr ("bench-precision: %s: %s\n", dirs[d],
                  err ? err->message : "no input_ids / greedy_tokens in golden.safetensors");
      g_clear_error (&err);
      dsocr_safetensors_unref (g);
      dsocr_model_unref (m);
      continue;
    }
    for (gsize pi = 0; pi < G_N_ELEMENTS (precisions); pi++) {
      dsocr_session *s = dsocr_session_new (m, &(dsocr_session_params) {
                                              .n_threads = threads,
                                              .precision = precisions[pi] }, &err);
      dsocr_generate_params p;
      dsocr_generate_result *r = NULL;
      dsocr_generate_params_init (&p);
      p.max_new_tokens = (int) n_want;
      if (!s || !dsocr_generate (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L,
                                                     .ids = ids }, &p, &r, &err)) {
        g_printerr ("bench-precision: %s: %s\n", dirs[d], err->message);
        g_clear_error (&err);
        dsocr_session_free (s);
        continue;
      }
      int same = 0, first = -1;
      for (gsize i = 0; i < n_want; i++) {
        const gboolean ok = (int) i < r->n_tokens[0] && r->tokens[i] == want[i];
        same += ok;
        if (!ok && first < 0)
          first = (int) i;
      }
      g_autofree char *name = g_path_get_basename (dirs[d]);
      printf ("{\"set\": \"goldens\", \"fixture\": \"%s\", \"precision\": \"%s\", "
              "\"tokens\": %" G_GSIZE_FORMAT ", \"same\": %d, \"first_difference\": %d}\n",
              name, dsocr_precision_to_string (precisions[pi]), n_want, same, first);
      dsocr_generate_result_free (r);
      dsocr_session_free (s);
    }
    dsocr_safetensors_unref (g);
    dsocr_model_unref (m);
  }
  return 0;
}

/* ---- a full-size decoder ---- */

static int32_t
bench_id (int i, int vocab)
{
  /* bench-decoder's ids */
  const int span = MIN (vocab, 120000) - 3;
  return 3 + (int32_t) (((guint64) i * 2654435761u & 0xffffffffu) % (guint64) span);
}

static int
argmax (const float *l, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (l[i] > l[best])
      best = i;
  return best;
}

static int
run_decoder (const char *dir, int prompt_len, int steps)
{
  GError *err = NULL;
  dsocr_model *m = dsocr_model_load (dir, &err);
  if (!m) {
    g_printerr ("bench-precision: %s\n", err->message);
    return 1;
  }
  const int V = dsocr_model_get_n_vocab (m);
  int32_t *prompt = g_new (int32_t, prompt_len), *seq = g_new (int32_t, steps);
  float *ref = g_new (float, (gsize) steps * V), *l = g_new (float, V);
  for (int i = 0; i < prompt_len; i++)
    prompt[i] = i == 0 ? 0 : bench_id (i, V);

  for (gsize pi = 0; pi < G_N_ELEMENTS (precisions); pi++) {
    const gboolean is_ref = pi == 0;
    dsocr_session *s = dsocr_session_new (m, &(dsocr_session_params) {
                                            .n_ctx = prompt_len + steps + 1,
                                            .n_threads = threads,
                                            .precision = precisions[pi] }, &err);
    if (!s)
      break;
    double err_sum = 0.0, err_max = 0.0;
    int agree = 0, first_free = -1;
    /* teacher-forced: f32 greedy tokens (made in the first pass) fed one step at a time */
    if (!dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = prompt_len,
                                                    .ids = prompt }, DSOCR_LOGITS_LAST, l, &err))
      break;
    for (int t = 0; t < steps; t++) {
      if (t > 0 && !dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 1,
                                                               .ids = &seq[t - 1] },
                                           DSOCR_LOGITS_LAST, l, &err))
        break;
      float *r = ref + (gsize) t * V;
      if (is_ref) {
        memcpy (r, l, sizeof (float) * V);
        seq[t] = argmax (l, V);
        continue;
      }
      double dmax = 0.0, rmax = 0.0;
      for (int v = 0; v < V; v++) {
        dmax = MAX (dmax, fabs ((double) l[v] - r[v]));
        rmax = MAX (rmax, fabs ((double) r[v]));
      }
      const double e = dmax / MAX (rmax, 1e-30);
      err_sum += e;
      err_max = MAX (err_max, e);
      agree += argmax (l, V) == seq[t];
    }
    if (err)
      break;
    /* free-running greedy from the prompt */
    if (!is_ref) {
      dsocr_generate_params p;
      dsocr_generate_result *res = NULL;
      dsocr_session_reset (s);
      dsocr_generate_params_init (&p);
      p.max_new_tokens = steps;
      p.ignore_eos = TRUE;
      if (!dsocr_generate (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = prompt_len,
                                               .ids = prompt }, &p, &res, &err))
        break;
      for (int t = 0; t < steps && first_free < 0; t++)
        if (t >= res->n_tokens[0] || res->tokens[t] != seq[t])
          first_free = t;
      dsocr_generate_result_free (res);
    }
    printf ("{\"set\": \"decoder\", \"model\": \"%s\", \"precision\": \"%s\", "
            "\"weights_gib\": %.3f, \"prompt_len\": %d, \"steps\": %d, "
            "\"logit_rel_err_mean\": %.3g, \"logit_rel_err_max\": %.3g, "
            "\"argmax_agree\": %.4f, \"free_first_difference\": %d}\n",
            dir, dsocr_precision_to_string (precisions[pi]),
            (double) dsocr_session_get_weight_bytes (s) / (1 << 30), prompt_len, steps,
            is_ref ? 0.0 : err_sum / steps, err_max, is_ref ? 1.0 : (double) agree / steps,
            first_free);
    fflush (stdout);
    dsocr_session_free (s);
  }
  if (err)
    g_printerr ("bench-precision: %s\n", err->message);
  g_free (prompt);
  g_free (seq);
  g_free (ref);
  g_free (l);
  dsocr_model_unref (m);
  return err ? 1 : 0;
}

/* ---- the bundled model's held-out pages ---- */

static gboolean
collect (int32_t token, const char *text, gsize len, gpointer user_data)
{
  (void) text;
  (void) len;
  g_array_append_val ((GArray *) user_data, token);
  return TRUE;
}

static JsonObject *
load_json (const char *dir, const char *name, JsonParser **parser, GError **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  *parser = json_parser_new ();
  if (!json_parser_load_from_file (*parser, path, error))
    return NULL;
  return json_node_get_object (json_parser_get_root (*parser));
}

static int
run_reader (const char *model_dir, const char *pages)
{
  GError *err = NULL;
  JsonParser *tp = NULL, *rp = NULL;
  JsonObject *truth = load_json (pages, "truth.json", &tp, &err);
  JsonObject *ref = truth ? load_json (pages, "reference.json", &rp, &err) : NULL;
  dsocr_ocr *ocr = ref ? dsocr_ocr_load (model_dir, &err) : NULL;
  if (!ocr) {
    g_printerr ("bench-precision: %s\n", err->message);
    return 1;
  }
  JsonObject *summary = json_object_get_object_member (ref, "summary");
  JsonObject *prompts = json_object_get_object_member (summary, "prompts");
  JsonArray *tpages = json_object_get_array_member (truth, "pages");
  const guint n_pages = json_array_get_length (tpages);
  const char *kinds[2] = { "free", "grounding" };
  GPtrArray *f32_runs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  dsocr_backend *be = dsocr_backend_new ("cpu", threads, &err);

  for (gsize pi = 0; pi < G_N_ELEMENTS (precisions) && be; pi++) {
    dsocr_ocr_params params;
    dsocr_ocr_params_init (&params);
    params.mode = DSOCR_MODE_TINY;
    params.max_new_tokens = (int) json_object_get_int_member (summary, "max_new_tokens");
    params.ngram_size = (int) json_object_get_int_member (summary, "no_repeat_ngram_size");
    params.backend = be;
    params.precision = precisions[pi];
    gsize edits = 0, chars = 0, tokens = 0, agreed = 0;
    int identical = 0, runs = 0;
    for (guint i = 0; i < n_pages && !err; i++) {
      JsonObject *page = json_array_get_object_element (tpages, i);
      g_autofree char *png = g_build_filename (pages, json_object_get_string_member (page,
                                                                                     "file"),
                                               NULL);
      const char *want = json_object_get_string_member (page, "text");
      dsocr_image *img = dsocr_image_load (png, NULL, &err);
      if (!img)
        break;
      dsocr_image_view view = dsocr_image_get_view (img);
      dsocr_preprocessed *pp = dsocr_ocr_preprocess (&view, &params, &err);
      dsocr_ocr_embeddings *emb = pp ? dsocr_ocr_encode (ocr, pp, be, &err) : NULL;
      for (int k = 0; k < 2 && emb; k++, runs++) {
        GArray *got = g_array_new (FALSE, FALSE, sizeof (int32_t));
        params.prompt = json_object_get_string_member (prompts, kinds[k]);
        dsocr_result *r = dsocr_ocr_generate (ocr, emb, NULL, &params, collect, got, &err);
        if (!r) {
          g_array_unref (got);
          break;
        }
        g_autofree char *text = reading_text_of (dsocr_result_get_raw_text (r));
        edits += reading_levenshtein (text, want);
        chars += (gsize) g_utf8_strlen (want, -1);
        if (pi == 0) {
          g_ptr_array_add (f32_runs, got);
        } else {
          const GArray *f = g_ptr_array_index (f32_runs, (guint) runs);
          guint t = 0;
          while (t < got->len && t < f->len &&
                 g_array_index (got, int32_t, t) == g_array_index (f, int32_t, t))
            t++;
          identical += t == got->len && t == f->len;
          agreed += t;
          tokens += f->len;
          g_array_unref (got);
        }
        dsocr_result_free (r);
      }
      dsocr_ocr_embeddings_unref (emb);
      dsocr_preprocessed_free (pp);
      dsocr_image_free (img);
    }
    if (err)
      break;
    printf ("{\"set\": \"reader\", \"precision\": \"%s\", \"readings\": %d, "
            "\"identical_to_f32\": %d, \"tokens_before_first_difference\": %.4f, "
            "\"cer\": %.4f}\n",
            dsocr_precision_to_string (precisions[pi]), runs, pi == 0 ? runs : identical,
            pi == 0 ? 1.0 : (double) agreed / MAX (tokens, 1), (double) edits / MAX (chars, 1));
    fflush (stdout);
  }
  if (err)
    g_printerr ("bench-precision: %s\n", err->message);
  g_ptr_array_unref (f32_runs);
  dsocr_backend_unref (be);
  dsocr_ocr_unref (ocr);
  g_clear_object (&tp);
  g_clear_object (&rp);
  return err ? 1 : 0;
}

int
main (int argc, char **argv)
{
  g_autofree char *model = NULL, *pages = NULL;
  int steps = 256, prompt_len = 64;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "Model directory", "DIR" },
    { "pages", 0, 0, G_OPTION_ARG_FILENAME, &pages, "reader: tests/fixtures/reader-eval", "DIR" },
    { "steps", 'n', 0, G_OPTION_ARG_INT, &steps, "decoder: greedy steps compared (256)", "N" },
    { "prompt-len", 'p', 0, G_OPTION_ARG_INT, &prompt_len, "decoder: prompt ids (64)", "P" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads (2)", "T" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("goldens DIR... | decoder | reader");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc < 2 || steps < 1 ||
      prompt_len < 1 || threads < 1) {
    g_printerr ("bench-precision: %s\n", error ? error->message : "see --help");
    return 2;
  }
  if (g_str_equal (argv[1], "goldens"))
    return run_goldens (argv + 2);
  if (g_str_equal (argv[1], "decoder") && model)
    return run_decoder (model, prompt_len, steps);
  if (g_str_equal (argv[1], "reader") && model && pages)
    return run_reader (model, pages);
  g_printerr ("bench-precision: see --help\n");
  return 2;
}
