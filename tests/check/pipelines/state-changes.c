/* state-changes.c: whole pipelines taken from NULL to PLAYING and back ten times each, on
 * the tiny DeepSeek-OCR fixture: to end-of-stream, stopped in the middle of a page, and
 * through every state one step at a time. Each cycle must load the model once (shared by
 * dsocrencode and dsocrdecode) and release it at READY, so the next cycle loads it afresh;
 * the cycles that run to the end must give the whole output again. Leaks are caught by the
 * sanitizer build (LeakSanitizer at exit). */
#include "pipelinecheck.h"

#define N_CYCLES 10
#define SEPARATOR "\n<--- Page Split --->\n"

/* Pops the messages of one cycle and checks its model loads. */
static void
check_cycle_models (GstBus * bus, gint cycle)
{
  GPtrArray *msgs = check_bus_messages (bus);
  guint loaded, shared;

  fail_if (check_count_errors (msgs) > 0, "cycle %d: error", cycle);
  check_model_messages (msgs, &loaded, &shared);
  fail_unless (loaded == 1 && shared == 1,
      "cycle %d: %u loads and %u shared uses of the model, want 1 and 1", cycle,
      loaded, shared);
  g_ptr_array_unref (msgs);
}

static void
wait_state (GstElement * pipe, GstState state)
{
  GstStateChangeReturn ret = gst_element_set_state (pipe, state);
  GstState now = GST_STATE_VOID_PENDING;

  fail_if (ret == GST_STATE_CHANGE_FAILURE, "to %s",
      gst_element_state_get_name (state));
  ret = gst_element_get_state (pipe, &now, NULL, PC_TIMEOUT);
  fail_unless (ret == GST_STATE_CHANGE_SUCCESS
      || ret == GST_STATE_CHANGE_NO_PREROLL, "to %s: %s",
      gst_element_state_get_name (state),
      gst_element_state_change_return_get_name (ret));
  fail_unless_equals_int (now, state);
}

/* Ten cycles of @desc; @check_output (nullable) checks what a full run wrote. */
static void
cycle (const gchar * desc, void (*check_output) (gpointer), gpointer data)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch_full (desc, NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &err);
  GstBus *bus;
  gint i;

  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  bus = gst_element_get_bus (pipe);
  for (i = 0; i < N_CYCLES; i++) {
    GPtrArray *msgs = NULL;

    switch (i % 3) {
      case 0:
        /* to the end */
        fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
            GST_STATE_CHANGE_FAILURE);
        check_cycle_models (bus, i);
        msgs = check_wait_eos (bus, PC_TIMEOUT);
        fail_unless_equals_string (check_last_type (msgs), "eos");
        g_ptr_array_unref (msgs);
        break;
      case 1:
        /* stopped at once, while the document is read or a page recognised */
        fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
            GST_STATE_CHANGE_FAILURE);
        check_cycle_models (bus, i);
        break;
      default:
        /* one state at a time, up and down */
        wait_state (pipe, GST_STATE_READY);
        wait_state (pipe, GST_STATE_PAUSED);
        check_cycle_models (bus, i);
        wait_state (pipe, GST_STATE_PLAYING);
        wait_state (pipe, GST_STATE_PAUSED);
        wait_state (pipe, GST_STATE_READY);
        break;
    }
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    if (i % 3 == 0 && check_output)
      check_output (data);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

static void
check_two_pages (gpointer path)
{
  gchar *md = pc_read_file (path);
  gchar **pages = g_strsplit (md, SEPARATOR, -1);

  fail_unless_equals_int (g_strv_length (pages), 2);
  g_strfreev (pages);
  g_free (md);
}

/* the pipeline of pipelines/pdf-to-markdown.sh */
GST_START_TEST (test_document_cycles)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-cycles-XXXXXX", NULL);
  gchar *pdf = pc_write_pdf (tmp, "doc.pdf");
  gchar *md = g_build_filename (tmp, "doc.md", NULL);
  gchar *model = check_fixture ("tiny-ocr-e2e");
  gchar *desc = g_strdup_printf ("filesrc location=\"%s\" ! dsocrpdfdec ! "
      "dsocrpreprocess mode=tiny ! dsocrencode model-location=\"%s\" ! "
      "dsocrdecode model-location=\"%s\" max-new-tokens=8 ! "
      "dsocrresult format=markdown ! filesink location=\"%s\"",
      pdf, model, model, md);

  cycle (desc, check_two_pages, md);
  g_free (desc);
  g_free (model);
  g_free (md);
  g_free (pdf);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

/* the pipeline of pipelines/camera-ocr.sh on a live test source: leaky queues, reused
 * results, a tee to JSON and to the overlay */
GST_START_TEST (test_live_cycles)
{
  gchar *model = check_fixture ("tiny-ocr-e2e");
  gchar *desc = g_strdup_printf ("videotestsrc is-live=true num-buffers=6 ! "
      "video/x-raw,format=RGB,width=160,height=120,framerate=30/1 ! "
      "queue leaky=downstream max-size-buffers=1 ! dsocrpreprocess mode=tiny ! "
      "dsocrencode model-location=\"%s\" ! "
      "dsocrdecode model-location=\"%s\" max-new-tokens=8 leaky=downstream "
      "max-pending=1 skip-unchanged=true ! tee name=results "
      "results. ! queue ! dsocrresult format=json ! fakesink "
      "results. ! queue ! dsocroverlay ! fakesink sync=false", model, model);

  cycle (desc, NULL, NULL);
  g_free (desc);
  g_free (model);
}

GST_END_TEST;

static Suite *
state_changes_suite (void)
{
  Suite *s = suite_create ("pipeline-state-changes");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_document_cycles);
  tcase_add_test (tc, test_live_cycles);
  return s;
}

GST_CHECK_MAIN (state_changes);
