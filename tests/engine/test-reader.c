/* test-reader.c: the bundled model, models/dsocr-reader, reads the held-out pages.
 *
 * tests/fixtures/reader-eval/ holds pages rendered by training/synthpages.py from seeds the
 * training never saw (truth.json: their text) and the reference's reading of them
 * (reference.json, written by training/eval_reader.py: transformers' greedy generate() on the
 * official DeepSeek-OCR vision modules, tiny mode, no_repeat_ngram_size 20).
 *
 * For every page and both prompts the engine must generate exactly the reference's tokens,
 * and the character error rate of its text against the truth (grounding tags and "# " removed,
 * lines stripped, empty lines dropped; Levenshtein distance over characters, summed over the
 * pages, divided by the truth's characters) must stay within 5%. Without the model (a tree
 * whose models/dsocr-reader holds no weights) the page test is skipped. */
#include <string.h>

#include <dsocr/dsocr.h>
#include <json-glib/json-glib.h>

#include "dsocr-build-config.h"
#include "dsocr-test.h"
#include "reading.h"

#define MAX_CER 0.05

typedef struct {
  GArray *ids;   /* int32_t */
} collected;

static gboolean
collect (int32_t token, const char *text, gsize len, gpointer user_data)
{
  (void) text;
  (void) len;
  g_array_append_val (((collected *) user_data)->ids, token);
  return TRUE;
}

static void
test_text_of (void)
{
  g_autofree char *a =
      reading_text_of ("<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n# Terms\n\n"
                       "<|ref|>text<|/ref|><|det|>[[5, 6, 7, 8]]<|/det|>\n a b \nc\n\n");
  g_assert_cmpstr (a, ==, "Terms\na b\nc");
  g_assert_cmpuint (reading_levenshtein ("kitten", "sitting"), ==, 3);
  g_assert_cmpuint (reading_levenshtein ("", "abc"), ==, 3);
  g_assert_cmpuint (reading_levenshtein ("\xc3\xa9t\xc3\xa9", "ete"), ==, 2);
}

static JsonObject *
load_json (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  JsonParser *p = json_parser_new ();
  GError *err = NULL;
  json_parser_load_from_file (p, path, &err);
  g_assert_no_error (err);
  JsonObject *o = json_object_ref (json_node_get_object (json_parser_get_root (p)));
  g_object_unref (p);
  return o;
}

static void
test_held_out_pages (void)
{
  GError *err = NULL;
  const char *model_dir = DSOCR_SOURCE_DIR "/models/dsocr-reader";
  g_autofree char *set = dsocr_test_fixture ("reader-eval");
  g_autofree char *cfg = g_build_filename (model_dir, "config.json", NULL);
  if (!g_file_test (cfg, G_FILE_TEST_EXISTS)) {
    g_test_skip ("no bundled model in models/dsocr-reader (training/README.md makes one)");
    return;
  }
  dsocr_ocr *ocr = dsocr_ocr_load (model_dir, &err);
  g_assert_no_error (err);
  JsonObject *truth = load_json (set, "truth.json");
  JsonObject *ref = load_json (set, "reference.json");
  JsonObject *summary = json_object_get_object_member (ref, "summary");
  JsonObject *prompts = json_object_get_object_member (summary, "prompts");
  JsonArray *tpages = json_object_get_array_member (truth, "pages");
  JsonArray *rpages = json_object_get_array_member (ref, "pages");
  const char *kinds[2] = { "free", "grounding" };
  gsize edits[2] = { 0, 0 }, chars = 0;
  const guint n_pages = json_array_get_length (tpages);

  /* a quick run (sanitizers) reads every fourth page, and checks the tokens only: the 5% bound
   * is the whole set's */
  const guint step = g_getenv ("DSOCR_QUICK") ? 4 : 1;
  g_assert_cmpuint (json_array_get_length (rpages), ==, n_pages);
  g_assert_cmpuint (n_pages, >=, 20);

  dsocr_ocr_params params;
  dsocr_ocr_params_init (&params);
  params.mode = DSOCR_MODE_TINY;
  params.max_new_tokens = (int) json_object_get_int_member (summary, "max_new_tokens");
  params.ngram_size = (int) json_object_get_int_member (summary, "no_repeat_ngram_size");

  for (guint i = 0; i < n_pages; i += step) {
    JsonObject *tp = json_array_get_object_element (tpages, i);
    JsonObject *rp = json_array_get_object_element (rpages, i);
    const char *file = json_object_get_string_member (tp, "file");
    g_assert_cmpstr (file, ==, json_object_get_string_member (rp, "file"));
    g_autofree char *png = g_build_filename (set, file, NULL);
    dsocr_image *img = dsocr_image_load (png, NULL, &err);
    g_assert_no_error (err);
    dsocr_image_view view = dsocr_image_get_view (img);
    dsocr_preprocessed *pp = dsocr_ocr_preprocess (&view, &params, &err);
    g_assert_no_error (err);
    dsocr_ocr_embeddings *emb = dsocr_ocr_encode (ocr, pp, NULL, &err);
    g_assert_no_error (err);
    const char *want_text = json_object_get_string_member (tp, "text");
    chars += (gsize) g_utf8_strlen (want_text, -1);

    for (int k = 0; k < 2; k++) {
      JsonObject *run = json_object_get_object_member (rp, kinds[k]);
      JsonArray *want = json_object_get_array_member (run, "tokens");
      collected got = { g_array_new (FALSE, FALSE, sizeof (int32_t)) };
      params.prompt = json_object_get_string_member (prompts, kinds[k]);
      dsocr_result *r = dsocr_ocr_generate (ocr, emb, NULL, &params, collect, &got, &err);
      g_assert_no_error (err);

      /* the reference's greedy tokens, exactly */
      if (got.ids->len != json_array_get_length (want))
        g_test_message ("%s %s: %u tokens, the reference %u", file, kinds[k], got.ids->len,
                        json_array_get_length (want));
      g_assert_cmpuint (got.ids->len, ==, json_array_get_length (want));
      for (guint t = 0; t < got.ids->len; t++)
        g_assert_cmpint (g_array_index (got.ids, int32_t, t), ==,
                         json_array_get_int_element (want, t));

      g_autofree char *text = reading_text_of (dsocr_result_get_raw_text (r));
      const gsize d = reading_levenshtein (text, want_text);
      g_assert_cmpuint (d, ==, (gsize) json_object_get_int_member (run, "edits"));
      edits[k] += d;
      dsocr_result_free (r);
      g_array_unref (got.ids);
    }
    dsocr_ocr_embeddings_unref (emb);
    dsocr_preprocessed_free (pp);
    dsocr_image_free (img);
  }
  params.prompt = NULL;

  for (int k = 0; k < 2; k++) {
    const double cer = (double) edits[k] / (double) chars;
    g_test_message ("%s prompt: CER %.4f (%zu edits / %zu characters)", kinds[k], cer,
                    edits[k], chars);
    if (step == 1)
      g_assert_cmpfloat (cer, <=, MAX_CER);
  }
  json_object_unref (truth);
  json_object_unref (ref);
  dsocr_ocr_unref (ocr);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/reader/text-of", test_text_of);
  g_test_add_func ("/engine/reader/held-out-pages", test_held_out_pages);
  return g_test_run ();
}
