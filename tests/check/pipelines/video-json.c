/* video-json.c: a video pipeline end to end with JSON out, on the tiny DeepSeek-OCR fixture:
 *
 *   videotestsrc num-buffers=3 ! video/x-raw,width=320,height=240 ! dsocrpreprocess mode=tiny
 *     ! dsocrencode ! dsocrdecode max-new-tokens=8 ! dsocrresult format=json ! fakesink
 *
 * Every frame must come out as one JSON line (docs/result-json.md) for a 320 x 240 page, in
 * order, with the frame's timestamp, and match the dsocr-result message posted for it. */
#include "pipelinecheck.h"

#define N_FRAMES 3

static void
on_line (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer user_data)
{
  GPtrArray *lines = user_data;
  GstCaps *caps = gst_pad_get_current_caps (pad);

  fail_unless (caps != NULL);
  fail_unless (gst_structure_has_name (gst_caps_get_structure (caps, 0),
          "application/x-json"));
  gst_caps_unref (caps);
  g_ptr_array_add (lines, gst_buffer_ref (buf));
}

static void
run_video (const gchar * format)
{
  gchar *model = check_fixture ("tiny-ocr-e2e");
  GPtrArray *lines = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  GPtrArray *msgs, *results;
  GstElement *pipe, *sink;
  GError *err = NULL;
  gchar *desc;
  guint i;

  desc = g_strdup_printf ("videotestsrc num-buffers=%d ! "
      "video/x-raw,width=320,height=240%s%s ! dsocrpreprocess mode=tiny ! "
      "dsocrencode model-location=\"%s\" ! "
      "dsocrdecode model-location=\"%s\" max-new-tokens=8 ! "
      "dsocrresult format=json ! fakesink name=sink signal-handoffs=true",
      N_FRAMES, format ? ",format=" : "", format ? format : "", model, model);
  pipe = gst_parse_launch_full (desc, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  g_signal_connect (sink, "handoff", G_CALLBACK (on_line), lines);
  msgs = pc_play_to_eos (pipe);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);

  results = check_element_messages (msgs, "dsocr-result");
  fail_unless_equals_int (lines->len, N_FRAMES);
  fail_unless_equals_int (results->len, N_FRAMES);
  for (i = 0; i < N_FRAMES; i++) {
    GstBuffer *buf = g_ptr_array_index (lines, i);
    const GstStructure *res = g_ptr_array_index (results, i);
    GstClockTime want_pts = gst_util_uint64_scale (i, GST_SECOND, 30);
    guint64 ts = 0;
    GstMapInfo map;
    gchar *text;
    JsonNode *node;
    JsonObject *o;

    /* videotestsrc runs at 30/1 by default */
    fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), want_pts);
    fail_unless (gst_structure_get_uint64 (res, "timestamp", &ts));
    fail_unless_equals_uint64 (ts, want_pts);
    fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
    fail_unless (map.size > 1 && map.data[map.size - 1] == '\n');
    text = g_strndup ((const gchar *) map.data, map.size - 1);
    gst_buffer_unmap (buf, &map);
    fail_unless (strchr (text, '\n') == NULL, "more than one line: %s", text);
    fail_unless_equals_string (text, gst_structure_get_string (res, "json"));

    node = pc_parse_json (text);
    o = json_node_get_object (node);
    fail_unless_equals_int (json_object_get_int_member (o, "width"), 320);
    fail_unless_equals_int (json_object_get_int_member (o, "height"), 240);
    fail_unless (json_object_has_member (o, "markdown"));
    fail_unless (json_object_has_member (o, "regions"));
    /* not a document page: no page number */
    fail_if (json_object_has_member (o, "page"));
    json_node_unref (node);
    g_free (text);
  }

  g_ptr_array_unref (results);
  g_ptr_array_unref (msgs);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_ptr_array_unref (lines);
  g_free (desc);
  g_free (model);
}

/* whatever format videotestsrc and dsocrpreprocess agree on */
GST_START_TEST (test_video_to_json)
{
  run_video (NULL);
}

GST_END_TEST;

/* the camera formats: dsocrpreprocess converts YUV itself */
GST_START_TEST (test_video_to_json_yuv)
{
  run_video ("NV12");
}

GST_END_TEST;

static Suite *
video_json_suite (void)
{
  Suite *s = suite_create ("pipeline-video-json");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_video_to_json);
  tcase_add_test (tc, test_video_to_json_yuv);
  return s;
}

GST_CHECK_MAIN (video_json);
