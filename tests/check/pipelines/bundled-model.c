/* bundled-model.c: the README's main job, as scripts/run-main.sh runs it, with the default
 * model:
 *
 *   filesrc location=tests/fixtures/sample/reader.pdf ! dsocrpdfdec ! dsocrpreprocess mode=tiny
 *     ! dsocrencode ! dsocrdecode ! dsocrresult format=markdown ! filesink
 *
 * No element names a model-location, so both load dsocr_ocr_default_model_dir(): the bundled
 * dsocr-reader (models/dsocr-reader in the source tree, until meson install puts it under
 * $datadir). The markdown it writes must be the document's text to within the bound the
 * bundled model is held to on its held-out pages (a character error rate of 5%, scored as
 * tests/engine/test-reader.c scores those: tests/reading.h); the text is READER_PAGES of
 * tests/reference/make_sample_documents.py, which wrote the PDF. A tree whose
 * models/dsocr-reader holds no weights skips the test (exit status 77). */
#include "pipelinecheck.h"
#include "reading.h"

#include <dsocr/dsocr.h>

#define SEPARATOR "\n<--- Page Split --->\n"
#define MAX_CER 0.05

static const gchar *reader_pages[] = {
  "Delivery Notice\nOrder 4821 ready\nTotal $129.50 paid\nDue 14 Mar 2025",
  "Meeting Notes\nTeam meeting today\nRoom 12 office\nReview 3 Apr 2026",
};

GST_START_TEST (test_reader_pdf)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-bundled-XXXXXX", NULL);
  gchar *md_path = g_build_filename (tmp, "reader.md", NULL);
  gchar *pdf = pc_source_path ("tests/fixtures/sample/reader.pdf");
  GPtrArray *msgs, *models;
  GstElement *pipe;
  GError *err = NULL;
  gchar *desc, *md, **pages;
  gsize edits = 0, chars = 0;
  guint i;

  desc = g_strdup_printf ("filesrc location=\"%s\" ! dsocrpdfdec ! "
      "dsocrpreprocess mode=tiny ! dsocrencode ! dsocrdecode ! "
      "dsocrresult format=markdown ! filesink location=\"%s\"", pdf, md_path);
  pipe = gst_parse_launch_full (desc, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  msgs = pc_play_to_eos (pipe);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);

  /* the model the elements loaded is the default one */
  models = check_element_messages (msgs, "dsocr-model");
  fail_unless (models->len >= 1);
  for (i = 0; i < models->len; i++)
    fail_unless_equals_string (gst_structure_get_string (g_ptr_array_index (models,
                i), "location"), dsocr_ocr_default_model_dir ());
  g_ptr_array_unref (models);

  md = pc_read_file (md_path);
  pages = g_strsplit (md, SEPARATOR, -1);
  fail_unless_equals_int (g_strv_length (pages), G_N_ELEMENTS (reader_pages));
  for (i = 0; i < G_N_ELEMENTS (reader_pages); i++) {
    gchar *text = reading_text_of (pages[i]);
    gsize d = reading_levenshtein (text, reader_pages[i]);

    GST_INFO ("page %u: %" G_GSIZE_FORMAT " edits: %s", i + 1, d, text);
    edits += d;
    chars += g_utf8_strlen (reader_pages[i], -1);
    g_free (text);
  }
  fail_unless ((double) edits <= MAX_CER * (double) chars,
      "%" G_GSIZE_FORMAT " edits in %" G_GSIZE_FORMAT " characters:\n%s", edits,
      chars, md);

  g_strfreev (pages);
  g_free (md);
  g_ptr_array_unref (msgs);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (pdf);
  g_free (md_path);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

static Suite *
bundled_model_suite (void)
{
  Suite *s = suite_create ("pipeline-bundled-model");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_reader_pdf);
  return s;
}

int
main (int argc, char **argv)
{
  gchar *weights;
  gboolean have;

  /* the default model: no $DSOCR_MODEL (the test environment sets it empty) */
  g_unsetenv ("DSOCR_MODEL");
  weights = g_build_filename (dsocr_ocr_default_model_dir (), "model.safetensors",
      NULL);
  have = g_file_test (weights, G_FILE_TEST_EXISTS);
  g_free (weights);
  if (!have) {
    g_print ("skipped: no bundled model in %s (training/README.md makes one)\n",
        dsocr_ocr_default_model_dir ());
    return 77;
  }
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (bundled_model_suite (), "bundled-model", __FILE__);
}
