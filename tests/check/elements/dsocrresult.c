/* dsocrresult.c: GstHarness tests of the result output element. The result metas are made
 * here, as dsocrdecode makes them, on small frames. */
#include "dsocrcheck.h"

#define SEPARATOR "\n<--- Page Split --->\n"

/* A 16x16 RGB frame at @pts carrying a result meta with @markdown and @json (either may be
 * NULL to leave the field out); no meta at all when both are NULL. (transfer full) */
static GstBuffer *
result_frame (GstClockTime pts, const gchar * markdown, const gchar * json)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 16 * 16 * 3, NULL);

  gst_buffer_memset (buf, 0, 255, 16 * 16 * 3);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND;
  if (markdown || json) {
    GstCustomMeta *meta = gst_buffer_add_custom_meta (buf, "DsocrResultMeta");
    GstStructure *s;

    fail_unless (meta != NULL, "the plugin did not register DsocrResultMeta");
    s = gst_custom_meta_get_structure (meta);
    if (markdown)
      gst_structure_set (s, "markdown", G_TYPE_STRING, markdown, NULL);
    if (json)
      gst_structure_set (s, "json", G_TYPE_STRING, json, NULL);
    gst_structure_set (s, "flags", GST_TYPE_DSOCR_RESULT_FLAGS_CHECK, 0, NULL);
  }
  return buf;
}

static gchar *
buffer_text (GstBuffer * buf)
{
  GstMapInfo map;
  gchar *text;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  text = g_strndup ((const gchar *) map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return text;
}

static void
expect_text (GstHarness * h, const gchar * want, GstClockTime pts)
{
  GstBuffer *buf = gst_harness_pull (h);
  gchar *text;

  fail_unless (buf != NULL);
  text = buffer_text (buf);
  fail_unless_equals_string (text, want);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), pts);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), GST_SECOND);
  g_free (text);
  gst_buffer_unref (buf);
}

static GstHarness *
result_harness (const gchar * desc, GstBus ** bus)
{
  GstHarness *h = check_harness (desc, bus);

  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=16,height=16,framerate=1/1");
  return h;
}

GST_START_TEST (test_markdown)
{
  GstHarness *h;
  GstBus *bus;
  GstEvent *ev;
  GstCaps *caps, *want;
  GstEventType expected[] = {
    GST_EVENT_STREAM_START, GST_EVENT_CAPS, GST_EVENT_SEGMENT, GST_EVENT_GAP,
    GST_EVENT_EOS
  };
  guint i;

  h = result_harness ("dsocrresult", &bus);
  fail_unless_equals_int (gst_harness_push (h, result_frame (0, "# Title\n\ntext",
              "{}")), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, result_frame (GST_SECOND, NULL,
              NULL)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, result_frame (2 * GST_SECOND,
              "page two", "{}")), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 2);
  expect_text (h, "# Title\n\ntext", 0);
  expect_text (h, SEPARATOR "page two", 2 * GST_SECOND);

  for (i = 0; i < G_N_ELEMENTS (expected); i++) {
    ev = gst_harness_pull_event (h);
    fail_unless_equals_string (GST_EVENT_TYPE_NAME (ev),
        gst_event_type_get_name (expected[i]));
    if (GST_EVENT_TYPE (ev) == GST_EVENT_GAP) {
      GstClockTime ts, dur;

      gst_event_parse_gap (ev, &ts, &dur);
      fail_unless_equals_uint64 (ts, GST_SECOND);
      fail_unless_equals_uint64 (dur, GST_SECOND);
    }
    gst_event_unref (ev);
  }
  caps = gst_pad_get_current_caps (h->sinkpad);
  want = gst_caps_from_string ("text/x-raw,format=utf8");
  fail_unless (gst_caps_is_equal (caps, want));
  gst_caps_unref (want);
  gst_caps_unref (caps);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_json_lines)
{
  GstHarness *h;
  GstBus *bus;
  GstCaps *caps, *want;

  h = result_harness ("dsocrresult format=json", &bus);
  fail_unless_equals_int (gst_harness_push (h, result_frame (0, "a",
              "{\"page\":0}")), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, result_frame (GST_SECOND, "b",
              "{\"page\":1}")), GST_FLOW_OK);
  expect_text (h, "{\"page\":0}\n", 0);
  expect_text (h, "{\"page\":1}\n", GST_SECOND);
  caps = gst_pad_get_current_caps (h->sinkpad);
  want = gst_caps_from_string ("application/x-json");
  fail_unless (gst_caps_is_equal (caps, want));
  gst_caps_unref (want);
  gst_caps_unref (caps);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_separator_and_flush)
{
  GstHarness *h;
  GstBus *bus;
  GstSegment seg;

  h = result_harness ("dsocrresult page-separator=---", &bus);
  fail_unless_equals_int (gst_harness_push (h, result_frame (0, "a", NULL)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, result_frame (GST_SECOND, "b",
              NULL)), GST_FLOW_OK);
  expect_text (h, "a", 0);
  expect_text (h, "---b", GST_SECOND);
  /* after a flush the next page is a first page again */
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  fail_unless_equals_int (gst_harness_push (h, result_frame (0, "c", NULL)),
      GST_FLOW_OK);
  expect_text (h, "c", 0);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_missing_field)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = result_harness ("dsocrresult format=json", &bus);
  fail_unless_equals_int (gst_harness_push (h, result_frame (0, "only markdown",
              NULL)), GST_FLOW_ERROR);
  text = check_expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT);
  fail_unless (strstr (text, "json") != NULL, "%s", text);
  g_free (text);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_not_negotiated)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = check_harness ("dsocrresult format=markdown", &bus);
  gst_harness_set_sink_caps_str (h, "application/x-json");
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=16,height=16,framerate=1/1");
  fail_unless_equals_int (gst_harness_push (h, result_frame (0, "x", "{}")),
      GST_FLOW_NOT_NEGOTIATED);
  text = check_expect_error (bus, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION);
  fail_unless (strstr (text, "text/x-raw") != NULL, "%s", text);
  g_free (text);
  check_teardown (h, bus);
}

GST_END_TEST;

/* appsrc frames with results -> dsocrresult -> filesink: the file is the document */
GST_START_TEST (test_filesink)
{
  GError *err = NULL;
  gchar *path = NULL, *contents = NULL, *desc;
  gint fd = g_file_open_tmp ("dsocrresult-XXXXXX.md", &path, &err);
  GstElement *pipe, *src;
  GstBus *bus;
  GstMessage *msg;
  gint i;

  fail_unless (fd >= 0);
  g_close (fd, NULL);
  desc = g_strdup_printf ("appsrc name=src format=time caps=video/x-raw,"
      "format=RGB,width=16,height=16,framerate=1/1 ! dsocrresult ! "
      "filesink location=\"%s\"", path);
  pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  src = gst_bin_get_by_name (GST_BIN (pipe), "src");
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  for (i = 0; i < 3; i++) {
    gchar *md = g_strdup_printf ("page %d", i + 1);
    GstFlowReturn ret;

    g_signal_emit_by_name (src, "push-buffer",
        result_frame (i * GST_SECOND, md, "{}"), &ret);
    g_free (md);
  }
  {
    GstFlowReturn ret;

    g_signal_emit_by_name (src, "end-of-stream", &ret);
  }
  bus = gst_element_get_bus (pipe);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_string (GST_MESSAGE_TYPE_NAME (msg), "eos");
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  fail_unless_equals_string (contents,
      "page 1" SEPARATOR "page 2" SEPARATOR "page 3");
  g_free (contents);
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (pipe);
  g_unlink (path);
  g_free (path);
  g_free (desc);
}

GST_END_TEST;

static Suite *
dsocrresult_suite (void)
{
  Suite *s = suite_create ("dsocrresult");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_markdown);
  tcase_add_test (tc, test_json_lines);
  tcase_add_test (tc, test_separator_and_flush);
  tcase_add_test (tc, test_missing_field);
  tcase_add_test (tc, test_not_negotiated);
  tcase_add_test (tc, test_filesink);
  return s;
}

GST_CHECK_MAIN (dsocrresult);
