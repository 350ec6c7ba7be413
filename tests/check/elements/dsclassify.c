/* dsclassify.c: GstHarness tests of the page classifier on tests/fixtures/tiny-v2-cls, a
 * DeepseekV2ForSequenceClassification with labels negative / neutral / positive.
 *
 * The fixture has no tokenizer: the tests write one in which the characters "abcdefgh" are
 * the ids of row 0 of the fixture's golden batch, so the page text "abcdefgh" must get the
 * reference's logits for that row (golden.safetensors "logits", transformers in f32). */
#include "dsocrcheck.h"

#include <dsocr/dsocr.h>

#include "dsocr-test.h"

/* row 0 of golden input_ids, before its padding */
static const gint row0_ids[] = { 277, 251, 91, 62, 264, 174, 119, 69 };

#define ROW0_TEXT "abcdefgh"

static gchar *
classifier_dir (void)
{
  static const CheckAddedToken specials[] = {
    {"<｜begin▁of▁sentence｜>", 0}, {"<｜end▁of▁sentence｜>", 1},
    {"<｜▁pad▁｜>", 2},
  };
  gchar *dir = check_model_dir ("tiny-v2-cls");

  /* no tokenizer_config.json: no BOS is added, as the golden rows have none */
  check_write_tokenizer (dir, ROW0_TEXT, row0_ids, specials,
      G_N_ELEMENTS (specials), 320);
  return dir;
}

/* The reference logits of row 0 (transfer none, valid while @st lives). */
static const gfloat *
golden_row0 (dsocr_safetensors ** st)
{
  gchar *path = check_fixture ("tiny-v2-cls/golden.safetensors");
  const dsocr_tensor *t;

  *st = dsocr_safetensors_open (path, NULL);
  g_free (path);
  fail_unless (*st != NULL);
  t = dsocr_safetensors_get (*st, "logits");
  fail_unless (t != NULL && t->shape[1] == 3);
  return t->data;
}

static void
check_class (const GstStructure * s, const gfloat * want)
{
  const GValue *logits = gst_structure_get_value (s, "logits");
  const GValue *scores = gst_structure_get_value (s, "scores");
  const GValue *labels = gst_structure_get_value (s, "labels");
  static const gchar *names[] = { "negative", "neutral", "positive" };
  gfloat got[3];
  gdouble sum = 0, best_score = 0;
  guint i, best = 0;

  fail_unless (logits && scores && labels);
  fail_unless_equals_int (gst_value_array_get_size (logits), 3);
  for (i = 0; i < 3; i++) {
    got[i] = g_value_get_double (gst_value_array_get_value (logits, i));
    sum += g_value_get_double (gst_value_array_get_value (scores, i));
    fail_unless_equals_string (g_value_get_string (gst_value_array_get_value
            (labels, i)), names[i]);
    if (want[i] > want[best])
      best = i;
  }
  fail_unless (dsocr_test_rel_error (got, want, 3) < 1e-4,
      "logits %g %g %g, reference %g %g %g", got[0], got[1], got[2], want[0],
      want[1], want[2]);
  fail_unless (fabs (sum - 1.0) < 1e-6);
  fail_unless_equals_string (gst_structure_get_string (s, "label"),
      names[best]);
  fail_unless (gst_structure_get_double (s, "score", &best_score));
  fail_unless (best_score > 1.0 / 3);
}

static GstBuffer *
text_buffer (const gchar * text)
{
  return gst_buffer_new_memdup (text, strlen (text));
}

GST_START_TEST (test_golden_text)
{
  gchar *dir = classifier_dir ();
  gchar *desc = g_strdup_printf ("dsclassify model-location=\"%s\"", dir);
  dsocr_safetensors *st;
  const gfloat *want = golden_row0 (&st);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;
  GPtrArray *msgs, *cls;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h, "text/x-raw,format=utf8");
  out = gst_harness_push_and_pull (h, text_buffer (ROW0_TEXT));
  check_class (check_get_custom (out, "DsocrClassMeta"), want);
  gst_buffer_unref (out);

  msgs = check_bus_messages (bus);
  cls = check_element_messages (msgs, "dsocr-class");
  fail_unless_equals_int (cls->len, 1);
  check_class (g_ptr_array_index (cls, 0), want);
  g_ptr_array_unref (cls);
  g_ptr_array_unref (msgs);

  check_teardown (h, bus);
  dsocr_safetensors_unref (st);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

/* A frame with a result meta (as dsocrdecode attaches it) is classified by its markdown. */
static GstBuffer *
page_frame (const gchar * markdown)
{
  GstBuffer *buf = check_solid_frame (GST_VIDEO_FORMAT_RGB, 16, 16, 255, 255,
      255);

  if (markdown) {
    GstCustomMeta *m = gst_buffer_add_custom_meta (buf, "DsocrResultMeta");

    fail_unless (m != NULL);
    gst_structure_set (gst_custom_meta_get_structure (m), "markdown",
        G_TYPE_STRING, markdown, NULL);
  }
  return buf;
}

GST_START_TEST (test_golden_result_meta)
{
  gchar *dir = classifier_dir ();
  gchar *desc = g_strdup_printf ("dsclassify model-location=\"%s\"", dir);
  dsocr_safetensors *st;
  const gfloat *want = golden_row0 (&st);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=16,height=16,framerate=0/1");
  out = gst_harness_push_and_pull (h, page_frame (ROW0_TEXT));
  check_class (check_get_custom (out, "DsocrClassMeta"), want);
  gst_buffer_unref (out);
  /* the same text again: the same scores */
  out = gst_harness_push_and_pull (h, page_frame (ROW0_TEXT));
  check_class (check_get_custom (out, "DsocrClassMeta"), want);
  gst_buffer_unref (out);
  check_teardown (h, bus);
  dsocr_safetensors_unref (st);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_pass_labels)
{
  gchar *dir = classifier_dir ();
  dsocr_safetensors *st;
  const gfloat *want = golden_row0 (&st);
  const gchar *names[] = { "negative", "neutral", "positive" };
  guint best = 0, i;
  gchar *desc;
  GstHarness *h;
  GstBus *bus;

  for (i = 1; i < 3; i++)
    if (want[i] > want[best])
      best = i;

  /* the best label is in the list: passed */
  desc = g_strdup_printf ("dsclassify model-location=\"%s\" pass-labels=\"x, %s\"",
      dir, names[best]);
  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h, "text/x-raw,format=utf8");
  fail_unless_equals_int (gst_harness_push (h, text_buffer (ROW0_TEXT)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
  check_teardown (h, bus);
  g_free (desc);

  /* it is not: dropped */
  desc = g_strdup_printf ("dsclassify model-location=\"%s\" pass-labels=%s",
      dir, names[(best + 1) % 3]);
  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h, "text/x-raw,format=utf8");
  fail_unless_equals_int (gst_harness_push (h, text_buffer (ROW0_TEXT)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  check_teardown (h, bus);
  g_free (desc);

  dsocr_safetensors_unref (st);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_precision_property)
{
  check_precision_property ("dsclassify");
}

GST_END_TEST;

/* Classifies ROW0_TEXT with "dsclassify @props" and checks that it gave scores for the
 * three labels without an error; with @want, that they are the reference's. */
static void
classify_row0 (const gchar * dir, const gchar * props, const gfloat * want)
{
  static const gchar *names[] = { "negative", "neutral", "positive" };
  gchar *desc = g_strdup_printf ("dsclassify model-location=\"%s\" %s", dir, props);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;
  const GstStructure *s;
  const GValue *scores;
  GPtrArray *msgs, *cls;
  const gchar *label;
  gdouble sum = 0;
  guint i, n_tokens = 0;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h, "text/x-raw,format=utf8");
  out = gst_harness_push_and_pull (h, text_buffer (ROW0_TEXT));
  s = check_get_custom (out, "DsocrClassMeta");
  fail_unless (s != NULL, "%s: no class meta", props);
  if (want) {
    check_class (s, want);
  } else {
    scores = gst_structure_get_value (s, "scores");
    fail_unless (scores != NULL);
    fail_unless_equals_int (gst_value_array_get_size (scores), 3);
    for (i = 0; i < 3; i++) {
      gdouble p = g_value_get_double (gst_value_array_get_value (scores, i));

      fail_unless (isfinite (p) && p >= 0 && p <= 1, "%s: score %g", props, p);
      sum += p;
    }
    fail_unless (fabs (sum - 1.0) < 1e-6, "%s: scores add up to %g", props, sum);
    label = gst_structure_get_string (s, "label");
    fail_unless (label != NULL);
    fail_unless (g_strv_contains (names, label), "%s", label);
  }
  fail_unless (gst_structure_get_uint (s, "n-tokens", &n_tokens));
  fail_unless_equals_int (n_tokens, strlen (ROW0_TEXT));
  gst_buffer_unref (out);

  msgs = check_bus_messages (bus);
  fail_unless_equals_int (check_count_errors (msgs), 0);
  cls = check_element_messages (msgs, "dsocr-class");
  fail_unless_equals_int (cls->len, 1);
  g_ptr_array_unref (cls);
  g_ptr_array_unref (msgs);
  check_teardown (h, bus);
  g_free (desc);
}

/* q8 and q4 classify (their scores may differ from the reference's: not compared); f32 gives
 * the reference's. The session holds the weights at the precision: the dsocr-model message
 * names it, and the quantized weights are smaller. */
GST_START_TEST (test_precision_runs)
{
  gchar *dir = classifier_dir ();
  dsocr_safetensors *st;
  const gfloat *want = golden_row0 (&st);
  GstElement *e;
  gchar *precision = NULL;
  guint64 bytes[G_N_ELEMENTS (check_precisions)] = { 0 };
  guint i;

  classify_row0 (dir, "precision=f32", want);
  classify_row0 (dir, "precision=q8", NULL);
  classify_row0 (dir, "precision=q4", NULL);

  e = gst_element_factory_make ("dsclassify", NULL);
  g_object_set (e, "model-location", dir, NULL);
  for (i = 0; i < G_N_ELEMENTS (check_precisions); i++) {
    /* set in NULL or READY, read at the next start */
    gst_util_set_object_arg (G_OBJECT (e), "precision", check_precisions[i]);
    check_start_weights (e, &precision, &bytes[i]);
    fail_unless_equals_string (precision, check_precisions[i]);
    g_free (precision);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_READY),
        GST_STATE_CHANGE_SUCCESS);
  }
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (e);
  GST_INFO ("classifier weights: f32 %" G_GUINT64_FORMAT ", bf16 %" G_GUINT64_FORMAT
      ", q8 %" G_GUINT64_FORMAT ", q4 %" G_GUINT64_FORMAT, bytes[0], bytes[1],
      bytes[2], bytes[3]);
  /* bf16 holds what f32 holds on the CPU; each block format is smaller than the last */
  fail_unless (bytes[1] <= bytes[0]);
  fail_unless (bytes[2] < bytes[0]);
  fail_unless (bytes[3] < bytes[2]);

  dsocr_safetensors_unref (st);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

static gchar *
start_error (const gchar * props, GQuark domain, gint code)
{
  gchar *desc = g_strdup_printf ("dsclassify %s", props);
  GstElement *e = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_bus_new ();
  gchar *text;

  fail_unless (e != NULL);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  text = check_expect_error (bus, domain, code);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (e);
  g_free (desc);
  return text;
}

GST_START_TEST (test_model_errors)
{
  gchar *dir, *props, *text;

  text = start_error ("", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  fail_unless (strstr (text, "model-location") != NULL, "%s", text);
  g_free (text);

  /* a causal LM has no score head */
  dir = check_model_dir ("tiny-ocr-decoder");
  check_write_tokenizer (dir, NULL, NULL, NULL, 0, 320);
  props = g_strdup_printf ("model-location=\"%s\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (strstr (text, "classifier") != NULL, "%s", text);
  g_free (text);
  g_free (props);
  check_remove_dir (dir);
  g_free (dir);

  /* a truncated checkpoint */
  dir = check_model_dir ("tiny-v2-cls");
  {
    gchar *st = g_build_filename (dir, "model.safetensors", NULL);

    g_unlink (st);
    fail_unless (g_file_set_contents (st, "\x10\0\0\0\0\0\0\0{}", 10, NULL));
    g_free (st);
  }
  check_write_tokenizer (dir, NULL, NULL, NULL, 0, 320);
  props = g_strdup_printf ("model-location=\"%s\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
  g_free (text);
  g_free (props);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_missing_result)
{
  gchar *dir = classifier_dir ();
  gchar *desc = g_strdup_printf ("dsclassify model-location=\"%s\"", dir);
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=16,height=16,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h, page_frame (NULL)),
      GST_FLOW_ERROR);
  text = check_expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  fail_unless (strstr (text, "dsocrdecode") != NULL, "%s", text);
  g_free (text);
  check_teardown (h, bus);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_unsupported_caps)
{
  gchar *dir = classifier_dir ();
  gchar *desc = g_strdup_printf ("dsclassify model-location=\"%s\"", dir);
  GstHarness *h;
  GstBus *bus;
  GstCaps *caps;

  h = check_harness (desc, &bus);
  caps = gst_caps_from_string ("application/x-json");
  fail_if (gst_pad_peer_query_accept_caps (h->srcpad, caps));
  gst_caps_unref (caps);
  check_teardown (h, bus);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  gchar *dir = classifier_dir ();
  gchar *desc = g_strdup_printf ("appsrc name=src caps=text/x-raw,format=utf8 ! "
      "dsclassify model-location=\"%s\" ! fakesink", dir);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipe), "src");
  GstBus *bus = gst_element_get_bus (pipe);
  gint i;

  for (i = 0; i < 4; i++) {
    GstFlowReturn ret;
    GstBuffer *buf = text_buffer (ROW0_TEXT);

    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    /* the action signal takes a reference of its own */
    g_signal_emit_by_name (src, "push-buffer", buf, &ret);
    gst_buffer_unref (buf);
    g_signal_emit_by_name (src, "end-of-stream", &ret);
    if (i % 2 == 0) {
      GPtrArray *msgs = check_wait_eos (bus, 60 * GST_SECOND);

      fail_unless_equals_string (check_last_type (msgs), "eos");
      g_ptr_array_unref (msgs);
    }
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (pipe);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

static Suite *
dsclassify_suite (void)
{
  Suite *s = suite_create ("dsclassify");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_golden_text);
  tcase_add_test (tc, test_golden_result_meta);
  tcase_add_test (tc, test_pass_labels);
  tcase_add_test (tc, test_precision_property);
  tcase_add_test (tc, test_precision_runs);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_missing_result);
  tcase_add_test (tc, test_unsupported_caps);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (dsclassify);
