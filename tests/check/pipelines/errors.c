/* errors.c: failures inside a whole document pipeline (the line of
 * pipelines/pdf-to-markdown.sh on the tiny DeepSeek-OCR fixture) must reach the application
 * as one ERROR message from the element at fault, naming the problem or the property to
 * change, and the pipeline must still shut down cleanly. */
#include "pipelinecheck.h"

typedef struct
{
  GError *error;
  gchar *debug;
  gchar *source;                /* the element that posted it */
  GstStateChangeReturn start;   /* what set_state (PLAYING) returned */
} Failure;

static void
failure_clear (Failure * f)
{
  g_clear_error (&f->error);
  g_free (f->debug);
  g_free (f->source);
}

/* Runs the document pipeline on @pdf with @model until its first error, which must come;
 * no end-of-stream before it. */
static void
run_failing (const gchar * pdf, const gchar * model, Failure * f)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-errors-XXXXXX", NULL);
  gchar *md = g_build_filename (tmp, "doc.md", NULL);
  gchar *desc = g_strdup_printf ("filesrc location=\"%s\" ! dsocrpdfdec ! "
      "dsocrpreprocess mode=tiny ! dsocrencode model-location=\"%s\" ! "
      "dsocrdecode model-location=\"%s\" max-new-tokens=8 ! "
      "dsocrresult format=markdown ! filesink location=\"%s\"",
      pdf, model, model, md);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch_full (desc, NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &err);
  GstBus *bus;
  GPtrArray *msgs;
  GstMessage *last;

  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  bus = gst_element_get_bus (pipe);
  memset (f, 0, sizeof *f);
  f->start = gst_element_set_state (pipe, GST_STATE_PLAYING);
  msgs = check_wait_eos (bus, PC_TIMEOUT);
  last = g_ptr_array_index (msgs, msgs->len - 1);
  fail_unless_equals_string (check_last_type (msgs), "error");
  gst_message_parse_error (last, &f->error, &f->debug);
  f->source = g_strdup (GST_MESSAGE_SRC_NAME (last));
  GST_INFO ("%s: %s (%s)", f->source, f->error->message, f->debug);
  g_ptr_array_unref (msgs);

  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (md);
  pc_remove_tree (tmp);
  g_free (tmp);
}

static gchar *
write_file (const gchar * dir, const gchar * name, gconstpointer data, gsize len)
{
  gchar *path = g_build_filename (dir, name, NULL);

  fail_unless (g_file_set_contents (path, data, len, NULL));
  return path;
}

/* not a PDF at all: dsocrpdfdec says it cannot open the document */
GST_START_TEST (test_corrupt_pdf)
{
  static const gchar junk[] = "%PDF-1.4\nthis is not a PDF document\n%%EOF\n";
  gchar *tmp = g_dir_make_tmp ("dsocr-errors-XXXXXX", NULL);
  gchar *pdf = write_file (tmp, "bad.pdf", junk, sizeof junk - 1);
  gchar *model = check_fixture ("tiny-ocr-e2e");
  Failure f;

  run_failing (pdf, model, &f);
  fail_unless_equals_string (f.source, "dsocrpdfdec0");
  fail_unless (g_error_matches (f.error, GST_STREAM_ERROR,
          GST_STREAM_ERROR_DECODE), "%s", f.error->message);
  fail_unless (strstr (f.error->message, "PDF document") != NULL, "%s",
      f.error->message);
  failure_clear (&f);
  g_free (model);
  g_free (pdf);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

/* a document cut in half on its way: no page can be found in what is left */
GST_START_TEST (test_truncated_pdf)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-errors-XXXXXX", NULL);
  GBytes *whole = pc_make_pdf ();
  gsize len;
  gconstpointer data = g_bytes_get_data (whole, &len);
  gchar *pdf = write_file (tmp, "cut.pdf", data, 64);
  gchar *model = check_fixture ("tiny-ocr-e2e");
  Failure f;

  fail_unless (len > 64);
  run_failing (pdf, model, &f);
  fail_unless_equals_string (f.source, "dsocrpdfdec0");
  fail_unless (f.error->domain == GST_STREAM_ERROR, "%s", f.error->message);
  fail_unless (strstr (f.error->message, "PDF document") != NULL, "%s",
      f.error->message);
  failure_clear (&f);
  g_free (model);
  g_free (pdf);
  g_bytes_unref (whole);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

/* an empty file: nothing to render */
GST_START_TEST (test_empty_file)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-errors-XXXXXX", NULL);
  gchar *pdf = write_file (tmp, "empty.pdf", "", 0);
  gchar *model = check_fixture ("tiny-ocr-e2e");
  Failure f;

  run_failing (pdf, model, &f);
  fail_unless_equals_string (f.source, "dsocrpdfdec0");
  fail_unless (g_error_matches (f.error, GST_STREAM_ERROR,
          GST_STREAM_ERROR_DECODE), "%s", f.error->message);
  failure_clear (&f);
  g_free (model);
  g_free (pdf);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

/* a model directory that does not exist: the pipeline does not start, and the model
 * element says which property to fix */
GST_START_TEST (test_missing_model)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-errors-XXXXXX", NULL);
  gchar *pdf = pc_write_pdf (tmp, "doc.pdf");
  gchar *model = g_build_filename (tmp, "no-such-model", NULL);
  Failure f;

  run_failing (pdf, model, &f);
  fail_unless_equals_int (f.start, GST_STATE_CHANGE_FAILURE);
  fail_unless (g_str_equal (f.source, "dsocrencode0")
      || g_str_equal (f.source, "dsocrdecode0"), "error from %s", f.source);
  fail_unless (g_error_matches (f.error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_NOT_FOUND), "%s", f.error->message);
  fail_unless (strstr (f.error->message, "model-location") != NULL, "%s",
      f.error->message);
  fail_unless (strstr (f.error->message, model) != NULL, "%s",
      f.error->message);
  failure_clear (&f);
  g_free (model);
  g_free (pdf);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

/* a directory that is not a model (the PDF's own folder) */
GST_START_TEST (test_not_a_model)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-errors-XXXXXX", NULL);
  gchar *pdf = pc_write_pdf (tmp, "doc.pdf");
  Failure f;

  run_failing (pdf, tmp, &f);
  fail_unless_equals_int (f.start, GST_STATE_CHANGE_FAILURE);
  fail_unless (g_str_equal (f.source, "dsocrencode0")
      || g_str_equal (f.source, "dsocrdecode0"), "error from %s", f.source);
  fail_unless (f.error->domain == GST_RESOURCE_ERROR, "%s", f.error->message);
  fail_unless (strstr (f.error->message, "model-location") != NULL, "%s",
      f.error->message);
  failure_clear (&f);
  g_free (pdf);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

static Suite *
errors_suite (void)
{
  Suite *s = suite_create ("pipeline-errors");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_corrupt_pdf);
  tcase_add_test (tc, test_truncated_pdf);
  tcase_add_test (tc, test_empty_file);
  tcase_add_test (tc, test_missing_model);
  tcase_add_test (tc, test_not_a_model);
  return s;
}

GST_CHECK_MAIN (errors);
