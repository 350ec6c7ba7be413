/* dsocrdecode.c: GstHarness tests of the generation element on the tiny end-to-end
 * DeepSeek-OCR fixture (tests/fixtures/tiny-ocr-e2e: the tiny-ocr model, a byte-level BPE
 * tokenizer and a 400 x 800 page). Its goldens come from tests/reference/make_ocr_fixtures.py:
 * the official preprocessing, vision modules and prompt of the reference, transformers'
 * generate() on the tiny decoder. The element chain dsocrpreprocess ! dsocrencode !
 * dsocrdecode must produce the reference's tokens for the page (golden-ocr.safetensors
 * {mode}.tokens), compared through the text they decode to.
 *
 * The grounding tests use a second tokenizer, written here, in which every id of the golden
 * prompt and output is one printable character and the first generated id is a grounding
 * match, so that the element's region metas can be checked against the reference's pixel
 * rule. */
#include "dsocrcheck.h"

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-ocr.h>

#define PAGE_W 400
#define PAGE_H 800
#define GROUND_TEXT "<|ref|>title<|/ref|><|det|>[[100,200,500,600]]<|/det|>"

static gchar *
e2e_dir (void)
{
  return check_fixture ("tiny-ocr-e2e");
}

static dsocr_safetensors *
golden_open (void)
{
  gchar *path = check_fixture ("tiny-ocr-e2e/golden-ocr.safetensors");
  dsocr_safetensors *st = dsocr_safetensors_open (path, NULL);

  fail_unless (st != NULL);
  g_free (path);
  return st;
}

static const gint64 *
golden_ids (dsocr_safetensors * st, const gchar * name, gint64 * n)
{
  const dsocr_tensor *t = dsocr_safetensors_get (st, name);

  fail_unless (t != NULL && t->dtype == DSOCR_DTYPE_I64, "%s", name);
  *n = t->shape[0];
  return t->data;
}

/* The reference's prompt (golden-ocr.json "prompt"). (transfer full) */
static gchar *
golden_prompt (void)
{
  gchar *path = check_fixture ("tiny-ocr-e2e/golden-ocr.json");
  JsonParser *p = json_parser_new ();
  gchar *prompt;

  fail_unless (json_parser_load_from_file (p, path, NULL));
  prompt = g_strdup (json_object_get_string_member (json_node_get_object
          (json_parser_get_root (p)), "prompt"));
  g_object_unref (p);
  g_free (path);
  return prompt;
}

/* What the reference's tokens @name decode to, parsed for the page. (transfer full) */
static dsocr_result *
golden_result (const gchar * name)
{
  gchar *dir = e2e_dir ();
  dsocr_tokenizer *tok = dsocr_tokenizer_load (dir, NULL);
  dsocr_safetensors *st = golden_open ();
  gint64 n, i;
  const gint64 *ids = golden_ids (st, name, &n);
  int32_t *ids32 = g_new (int32_t, n);
  gchar *text;
  gsize len;
  dsocr_result *r;

  fail_unless (tok != NULL);
  for (i = 0; i < n; i++)
    ids32[i] = (int32_t) ids[i];
  text = dsocr_tokenizer_decode (tok, ids32, n, FALSE, &len);
  r = dsocr_result_new_from_text_len (text, len, PAGE_W, PAGE_H, NULL, NULL);
  fail_unless (r != NULL);
  g_free (text);
  g_free (ids32);
  dsocr_safetensors_unref (st);
  dsocr_tokenizer_free (tok);
  g_free (dir);
  return r;
}

/* The page, as the reference reads it (PNG decoded exactly as Pillow). (transfer full) */
static GstBuffer *
page_frame (GstClockTime pts)
{
  gchar *path = check_fixture ("tiny-ocr-e2e/page.png");
  dsocr_image *img = dsocr_image_load (path, NULL, NULL);
  GstBuffer *buf;

  fail_unless (img != NULL);
  fail_unless_equals_int (img->width, PAGE_W);
  fail_unless_equals_int (img->height, PAGE_H);
  buf = check_frame_from_rgb (GST_VIDEO_FORMAT_RGB, PAGE_W, PAGE_H, img->data);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND;
  dsocr_image_free (img);
  g_free (path);
  return buf;
}

/* dsocrpreprocess mode=@mode ! dsocrencode ! @between ! dsocrdecode @props on the model in
 * @dir, RGB frames of @w x @h. */
static GstHarness *
ocr_harness_full (const gchar * dir, const gchar * mode, const gchar * between,
    const gchar * props, gint w, gint h, GstBus ** bus)
{
  gchar *desc = g_strdup_printf ("dsocrpreprocess mode=%s ! "
      "dsocrencode model-location=\"%s\" ! %s%s dsocrdecode model-location=\"%s\" %s",
      mode, dir, between ? between : "", between ? " !" : "", dir, props);
  gchar *caps = check_video_caps (GST_VIDEO_FORMAT_RGB, w, h);
  GstHarness *harness = check_harness (desc, bus);

  gst_harness_set_src_caps_str (harness, caps);
  g_free (caps);
  g_free (desc);
  return harness;
}

static GstHarness *
ocr_harness (const gchar * props, gint w, gint h, GstBus ** bus)
{
  gchar *dir = e2e_dir ();
  GstHarness *harness = ocr_harness_full (dir, "tiny", NULL, props, w, h, bus);

  g_free (dir);
  return harness;
}

/* A model directory like tiny-ocr-e2e whose tokenizer spells every id of the golden prompt
 * and of @tokens_name as one printable character, except the first generated id, which
 * decodes to GROUND_TEXT. @prompt receives the prompt that gives the golden prompt ids.
 * (transfer full) */
static gchar *
grounding_dir (const gchar * mode, gchar ** prompt)
{
  static const CheckAddedToken specials[] = {
    {"<｜begin▁of▁sentence｜>", 0}, {"<｜end▁of▁sentence｜>", 1},
    {"<｜▁pad▁｜>", 2}, {"<image>", 308},
  };
  CheckAddedToken added[G_N_ELEMENTS (specials) + 1];
  dsocr_safetensors *st = golden_open ();
  gchar *name_ids = g_strdup_printf ("%s.input_ids", mode);
  gchar *name_tokens = g_strdup_printf ("%s.tokens", mode);
  gint64 n_ids, n_tokens, i;
  const gint64 *ids = golden_ids (st, name_ids, &n_ids);
  const gint64 *tokens = golden_ids (st, name_tokens, &n_tokens);
  gchar id_char[320] = { 0 };
  GString *chars = g_string_new (NULL), *p = g_string_new (NULL);
  GArray *char_ids = g_array_new (FALSE, FALSE, sizeof (gint));
  gboolean in_image = FALSE;
  gchar next = '!';
  gchar *src = e2e_dir (), *dir, *cfg_src, *cfg_dst, *contents;
  gsize len;

  for (i = 1; i < n_ids + n_tokens; i++) {
    gint64 id = i < n_ids ? ids[i] : tokens[i - n_ids];

    if (id == 308 || id == tokens[0] || id_char[id])
      continue;
    /* never '<' or '|' (no accidental tags), nor quotes and backslashes (the prompt goes
     * into a launch line) */
    while (next == '<' || next == '|' || next == '"' || next == '\\' || next == '\'')
      next++;
    fail_unless (next <= '~');
    id_char[id] = next;
    g_string_append_c (chars, next);
    g_array_append_val (char_ids, id);
    next++;
  }
  /* the prompt: the text before the image run, <image>, the text after */
  for (i = 1; i < n_ids; i++) {
    if (ids[i] == 308) {
      if (!in_image)
        g_string_append (p, "<image>");
      in_image = TRUE;
      continue;
    }
    in_image = FALSE;
    /* the golden's first output id is also in the prompt ("<|grounding|>") */
    if (ids[i] == tokens[0])
      g_string_append (p, GROUND_TEXT);
    else
      g_string_append_c (p, id_char[ids[i]]);
  }
  memcpy (added, specials, sizeof specials);
  added[G_N_ELEMENTS (specials)].content = GROUND_TEXT;
  added[G_N_ELEMENTS (specials)].id = tokens[0];

  /* the model of the e2e fixture, this tokenizer */
  dir = g_dir_make_tmp ("dsocr-ground-XXXXXX", NULL);
  fail_unless (dir != NULL);
  {
    gchar *a = g_build_filename (src, "model.safetensors", NULL);
    gchar *b = g_build_filename (dir, "model.safetensors", NULL);

    fail_unless (symlink (a, b) == 0);
    g_free (a);
    g_free (b);
  }
  cfg_src = g_build_filename (src, "config.json", NULL);
  cfg_dst = g_build_filename (dir, "config.json", NULL);
  fail_unless (g_file_get_contents (cfg_src, &contents, &len, NULL));
  fail_unless (g_file_set_contents (cfg_dst, contents, len, NULL));
  g_free (contents);
  check_write_tokenizer (dir, chars->str, (const gint *) char_ids->data, added,
      G_N_ELEMENTS (added), 320);

  *prompt = g_string_free (p, FALSE);
  g_free (cfg_src);
  g_free (cfg_dst);
  g_free (src);
  g_array_unref (char_ids);
  g_string_free (chars, TRUE);
  g_free (name_tokens);
  g_free (name_ids);
  dsocr_safetensors_unref (st);
  return dir;
}

static GstBuffer *
frame (gint w, gint h, guint8 shade, GstClockTime pts)
{
  GstBuffer *buf = check_solid_frame (GST_VIDEO_FORMAT_RGB, w, h, shade, shade,
      255 - shade);

  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND;
  return buf;
}

/* The result structure of @buf, which must have one. */
static const GstStructure *
result_of (GstBuffer * buf)
{
  const GstStructure *s = check_get_custom (buf, "DsocrResultMeta");

  fail_unless (s != NULL, "no result on the frame at %" GST_TIME_FORMAT,
      GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
  return s;
}

static guint
flags_of (const GstStructure * s)
{
  const GValue *v = gst_structure_get_value (s, "flags");

  fail_unless (v != NULL);
  return g_value_get_flags (v);
}

/* Recognises the page in @mode with @props and compares it with the reference's tokens
 * @tokens_name, which stopped at the token limit (hit-token-limit); @repetition: the
 * reference's guard overruled the model within the last n-gram size tokens
 * (golden-ocr.json guard_override_steps), which sets repetition-stopped. */
static void
run_golden (const gchar * mode, const gchar * props, const gchar * tokens_name,
    guint n_tokens_want, gboolean repetition)
{
  gchar *dir = e2e_dir ();
  gchar *prompt = golden_prompt ();
  gchar *all = g_strdup_printf ("prompt=\"%s\" %s", prompt, props);
  dsocr_result *want = golden_result (tokens_name);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;
  const GstStructure *s;
  GPtrArray *msgs, *results;
  guint n_tokens = 0;
  gint w = 0, hgt = 0;

  h = ocr_harness_full (dir, mode, NULL, all, PAGE_W, PAGE_H, &bus);
  out = gst_harness_push_and_pull (h, page_frame (0));
  s = result_of (out);
  fail_unless_equals_string (gst_structure_get_string (s, "raw-text"),
      dsocr_result_get_raw_text (want));
  fail_unless_equals_string (gst_structure_get_string (s, "markdown"),
      dsocr_result_get_markdown (want));
  fail_unless (gst_structure_get_uint (s, "n-tokens", &n_tokens));
  fail_unless_equals_int (n_tokens, n_tokens_want);
  /* malformed comes from parsing the text, the others from generation */
  fail_unless_equals_int (flags_of (s), (dsocr_result_get_flags (want) &
          DSOCR_RESULT_MALFORMED) | DSOCR_RESULT_HIT_TOKEN_LIMIT |
      (repetition ? DSOCR_RESULT_REPETITION_STOPPED : 0));
  fail_unless (gst_structure_get_int (s, "width", &w));
  fail_unless (gst_structure_get_int (s, "height", &hgt));
  fail_unless_equals_int (w, PAGE_W);
  fail_unless_equals_int (hgt, PAGE_H);
  /* the frame and the upstream metas pass through */
  fail_unless (check_get_tiles_meta (out) != NULL);
  fail_unless (check_get_embeddings_meta (out) != NULL);
  gst_buffer_unref (out);

  msgs = check_bus_messages (bus);
  fail_unless_equals_int (check_count_errors (msgs), 0);
  results = check_element_messages (msgs, "dsocr-result");
  fail_unless_equals_int (results->len, 1);
  fail_unless_equals_string (gst_structure_get_string (g_ptr_array_index
          (results, 0), "raw-text"), dsocr_result_get_raw_text (want));
  g_ptr_array_unref (results);
  g_ptr_array_unref (msgs);

  check_teardown (h, bus);
  dsocr_result_free (want);
  g_free (all);
  g_free (prompt);
  g_free (dir);
}

GST_START_TEST (test_golden_tiny)
{
  /* no guard override */
  run_golden ("tiny", "max-new-tokens=48", "tiny.tokens", 48, FALSE);
}

GST_END_TEST;

/* precision=f32, set explicitly, is the reference's numbers */
GST_START_TEST (test_golden_tiny_f32)
{
  run_golden ("tiny", "max-new-tokens=48 precision=f32", "tiny.tokens", 48, FALSE);
}

GST_END_TEST;

GST_START_TEST (test_golden_gundam)
{
  /* 1 x 2 tiles; the guard (n 20) overruled the model at step 34 of 48 */
  run_golden ("gundam", "max-new-tokens=48", "gundam.tokens", 48, TRUE);
}

GST_END_TEST;

GST_START_TEST (test_golden_window_guard)
{
  /* the vLLM scripts' guard: n 30 over the last 90 generated tokens, <td> </td> exempt;
   * it overruled the model at step 117 of 120 */
  run_golden ("small", "max-new-tokens=120 no-repeat-ngram-size=30 "
      "no-repeat-ngram-window=90", "small.tokens_window", 120, TRUE);
}

GST_END_TEST;

/* The first generated token decodes to a grounding match: one region of interest in the
 * frame's pixels, the reference's int(v / 999 * size); through a scaler, in the scaled
 * frame's pixels. */
static void
run_grounding (const gchar * between, gint w, gint h)
{
  gchar *prompt = NULL;
  gchar *dir = grounding_dir ("tiny", &prompt);
  gchar *props = g_strdup_printf ("prompt=\"%s\" max-new-tokens=8", prompt);
  GstHarness *harness;
  GstBus *bus;
  GstBuffer *out;
  const GstStructure *s;
  GstVideoRegionOfInterestMeta *roi;
  GstStructure *params;
  gint n = 0;

  harness = ocr_harness_full (dir, "tiny", between, props, PAGE_W, PAGE_H, &bus);
  if (between) {
    gchar *caps = check_video_caps (GST_VIDEO_FORMAT_RGB, w, h);

    gst_harness_set_sink_caps_str (harness, caps);
    g_free (caps);
  }
  out = gst_harness_push_and_pull (harness, page_frame (0));
  s = result_of (out);
  fail_unless (gst_structure_get_int (s, "n-regions", &n));
  fail_unless_equals_int (n, 1);
  fail_unless_equals_int (check_count_rois (out), 1);
  roi = gst_buffer_get_video_region_of_interest_meta (out);
  fail_unless_equals_string (g_quark_to_string (roi->roi_type), "title");
  fail_unless_equals_int (roi->x, (gint) (100 / 999.0 * w));
  fail_unless_equals_int (roi->y, (gint) (200 / 999.0 * h));
  fail_unless_equals_int (roi->x + roi->w, (gint) (500 / 999.0 * w));
  fail_unless_equals_int (roi->y + roi->h, (gint) (600 / 999.0 * h));
  params = gst_video_region_of_interest_meta_get_param (roi, "dsocr/region");
  fail_unless (params != NULL);
  fail_unless (gst_structure_get_string (params, "text") != NULL);
  /* the match is not part of the markdown; the JSON has it */
  fail_if (strstr (gst_structure_get_string (s, "markdown"), "<|ref|>"));
  fail_unless (strstr (gst_structure_get_string (s, "json"), "\"title\""));
  gst_buffer_unref (out);
  check_teardown (harness, bus);
  check_remove_dir (dir);
  g_free (dir);
  g_free (props);
  g_free (prompt);
}

GST_START_TEST (test_grounding_regions)
{
  run_grounding (NULL, PAGE_W, PAGE_H);
  run_grounding ("videoscale", 200, 300);
}

GST_END_TEST;

/* EOS waits for every queued frame; frames and events keep their order; a caps change
 * applies to the frames after it without reloading the model. */
GST_START_TEST (test_eos_drain_and_caps)
{
  GstHarness *h;
  GstBus *bus;
  GstEvent *ev;
  GPtrArray *msgs;
  guint loaded, shared, i, n_caps = 0;
  gint w, hgt;

  h = ocr_harness ("max-new-tokens=16 max-pending=4", 300, 200, &bus);
  fail_unless_equals_int (gst_harness_push (h, frame (300, 200, 10, 0)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, frame (300, 200, 90, GST_SECOND)),
      GST_FLOW_OK);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=120,height=160,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h, frame (120, 160, 200,
              2 * GST_SECOND)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  /* the EOS arrives last, after the three frames */
  ev = gst_harness_pull_event (h);
  while (GST_EVENT_TYPE (ev) != GST_EVENT_EOS) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CAPS)
      n_caps++;
    gst_event_unref (ev);
    ev = gst_harness_pull_event (h);
  }
  gst_event_unref (ev);
  fail_unless_equals_int (n_caps, 2);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  for (i = 0; i < 3; i++) {
    GstBuffer *out = gst_harness_pull (h);
    const GstStructure *s = result_of (out);

    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), i * GST_SECOND);
    fail_unless (gst_structure_get_int (s, "width", &w));
    fail_unless (gst_structure_get_int (s, "height", &hgt));
    fail_unless_equals_int (w, i < 2 ? 300 : 120);
    fail_unless_equals_int (hgt, i < 2 ? 200 : 160);
    gst_buffer_unref (out);
  }
  msgs = check_bus_messages (bus);
  fail_unless_equals_int (check_count_errors (msgs), 0);
  /* the models were loaded before the harness had a bus; a reload for the new caps would
   * have posted another dsocr-model message */
  check_model_messages (msgs, &loaded, &shared);
  fail_unless_equals_int (loaded + shared, 0);
  g_ptr_array_unref (msgs);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_flush)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;
  GstSegment seg;
  gint64 t0;
  guint i;

  /* long generations: the flush must cancel, not wait */
  h = ocr_harness ("max-new-tokens=4000 no-repeat-ngram-size=0 max-pending=8",
      300, 200, &bus);
  for (i = 0; i < 4; i++)
    fail_unless_equals_int (gst_harness_push (h, frame (300, 200, 40 + i,
                i * GST_SECOND)), GST_FLOW_OK);
  g_usleep (G_USEC_PER_SEC / 10);
  t0 = g_get_monotonic_time ();
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  GST_INFO ("flush took %" G_GINT64_FORMAT " us", g_get_monotonic_time () - t0);
  /* cancelled between two tokens, not after 4000 */
  fail_unless (g_get_monotonic_time () - t0 < 5 * G_USEC_PER_SEC);
  while ((out = gst_harness_try_pull (h)))
    gst_buffer_unref (out);

  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  {
    GstElement *dec = gst_harness_find_element (h, "dsocrdecode");

    fail_unless (dec != NULL);
    g_object_set (dec, "max-new-tokens", 4, NULL);
    gst_object_unref (dec);
  }
  out = gst_harness_push_and_pull (h, frame (300, 200, 40, 10 * GST_SECOND));
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 10 * GST_SECOND);
  result_of (out);
  gst_buffer_unref (out);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_latency)
{
  GstHarness *h;
  GstBus *bus;
  GstQuery *q;
  GstClockTime min = 0, max = 0;
  gboolean live;

  h = ocr_harness ("max-new-tokens=8", 300, 200, &bus);
  gst_harness_set_upstream_latency (h, 10 * GST_MSECOND);
  gst_buffer_unref (gst_harness_push_and_pull (h, frame (300, 200, 40, 0)));
  q = gst_query_new_latency ();
  fail_unless (gst_pad_peer_query (h->sinkpad, q));
  gst_query_parse_latency (q, &live, &min, &max);
  /* upstream's 10 ms plus the generation just measured */
  fail_unless (min > 10 * GST_MSECOND, "min latency %" GST_TIME_FORMAT,
      GST_TIME_ARGS (min));
  gst_query_unref (q);
  check_teardown (h, bus);

  /* a fixed latency property is reported as it is */
  h = ocr_harness ("latency=2000000000", 300, 200, &bus);
  gst_harness_set_upstream_latency (h, 0);
  q = gst_query_new_latency ();
  fail_unless (gst_pad_peer_query (h->sinkpad, q));
  gst_query_parse_latency (q, &live, &min, &max);
  fail_unless_equals_uint64 (min, 2 * GST_SECOND);
  gst_query_unref (q);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_interval_and_unchanged)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;
  gboolean reused;
  guint i;

  /* interval=1: every other frame */
  h = ocr_harness ("max-new-tokens=4 interval=1", 300, 200, &bus);
  for (i = 0; i < 4; i++) {
    out = gst_harness_push_and_pull (h, frame (300, 200, 40 * i, i));
    fail_unless_equals_int (check_get_custom (out, "DsocrResultMeta") != NULL,
        i % 2 == 0);
    gst_buffer_unref (out);
  }
  check_teardown (h, bus);

  /* skip-unchanged: the same page twice, then another page */
  h = ocr_harness ("max-new-tokens=4 skip-unchanged=true", 300, 200, &bus);
  out = gst_harness_push_and_pull (h, frame (300, 200, 40, 0));
  reused = FALSE;
  gst_structure_get_boolean (result_of (out), "reused", &reused);
  fail_if (reused);
  gst_buffer_unref (out);
  out = gst_harness_push_and_pull (h, frame (300, 200, 40, 1));
  fail_unless (gst_structure_get_boolean (result_of (out), "reused", &reused));
  fail_unless (reused);
  gst_buffer_unref (out);
  out = gst_harness_push_and_pull (h, frame (300, 200, 220, 2));
  reused = FALSE;
  gst_structure_get_boolean (result_of (out), "reused", &reused);
  fail_if (reused);
  gst_buffer_unref (out);
  check_teardown (h, bus);
}

GST_END_TEST;

/* A full queue drops frames instead of blocking: the newest (downstream) or the arriving
 * (upstream) ones. */
GST_START_TEST (test_leaky)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out, *last = NULL;
  guint i, n = 0;

  h = ocr_harness ("max-new-tokens=200 no-repeat-ngram-size=0 "
      "max-pending=1 leaky=downstream", 300, 200, &bus);
  for (i = 0; i < 8; i++)
    fail_unless_equals_int (gst_harness_push (h, frame (300, 200, 40, i)),
        GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  /* the EOS comes after every frame that was kept */
  {
    GstEvent *ev;

    while ((ev = gst_harness_pull_event (h))
        && GST_EVENT_TYPE (ev) != GST_EVENT_EOS)
      gst_event_unref (ev);
    gst_event_unref (ev);
  }
  while ((out = gst_harness_try_pull (h))) {
    n++;
    gst_clear_buffer (&last);
    last = out;
  }
  fail_unless (n >= 1 && n <= 8);
  /* the newest frame survives */
  fail_unless_equals_uint64 (GST_BUFFER_PTS (last), 7);
  gst_buffer_unref (last);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_precision_property)
{
  check_precision_property ("dsocrdecode");
}

GST_END_TEST;

/* The page through dsocrpreprocess ! dsocrencode ! dsocrdecode @props: a result, without an
 * error (its text is not compared: q8 and q4 may generate other tokens than f32). */
static void
recognize_page (const gchar * props)
{
  GstBus *bus;
  GstHarness *h = ocr_harness (props, PAGE_W, PAGE_H, &bus);
  GstBuffer *out;
  const GstStructure *s;
  GPtrArray *msgs, *results;
  guint n_tokens = 0;

  out = gst_harness_push_and_pull (h, page_frame (0));
  s = result_of (out);
  fail_unless (gst_structure_get_uint (s, "n-tokens", &n_tokens));
  fail_unless (n_tokens >= 1 && n_tokens <= 16, "%s: %u tokens", props, n_tokens);
  fail_unless (gst_structure_get_string (s, "raw-text") != NULL);
  fail_unless (gst_structure_get_string (s, "markdown") != NULL);
  fail_unless (gst_structure_get_string (s, "json") != NULL);
  gst_buffer_unref (out);
  msgs = check_bus_messages (bus);
  fail_unless_equals_int (check_count_errors (msgs), 0);
  results = check_element_messages (msgs, "dsocr-result");
  fail_unless_equals_int (results->len, 1);
  g_ptr_array_unref (results);
  g_ptr_array_unref (msgs);
  check_teardown (h, bus);
}

/* Started with precision=q8 or q4, dsocrdecode recognises pages; its weights are prepared at
 * that precision at start (the dsocr-model message names it and their size, smaller than
 * f32's), and every frame is recognised without an error. */
GST_START_TEST (test_precision_runs)
{
  static const gchar *precisions[] = { "f32", "q8", "q4" };
  gchar *dir = e2e_dir ();
  guint64 bytes[G_N_ELEMENTS (precisions)] = { 0 };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (precisions); i++) {
    gchar *props = g_strdup_printf ("precision=%s max-new-tokens=16",
        precisions[i]);
    gchar *desc;
    GstElement *pipe, *dec;
    GstBus *bus;
    GPtrArray *msgs, *results;
    const GstStructure *s;

    if (i > 0)
      recognize_page (props);

    desc = g_strdup_printf ("videotestsrc num-buffers=2 ! "
        "video/x-raw,format=RGB,width=96,height=64 ! dsocrpreprocess mode=tiny ! "
        "dsocrencode model-location=\"%s\" precision=%s ! "
        "dsocrdecode name=dec model-location=\"%s\" %s ! fakesink", dir,
        precisions[i], dir, props);
    pipe = gst_parse_launch (desc, NULL);
    fail_unless (pipe != NULL);
    dec = gst_bin_get_by_name (GST_BIN (pipe), "dec");
    fail_unless_equals_string (check_get_precision_nick (dec), precisions[i]);
    bus = gst_element_get_bus (pipe);
    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    msgs = check_wait_eos (bus, 120 * GST_SECOND);
    fail_unless_equals_string (check_last_type (msgs), "eos");
    fail_unless_equals_int (check_count_errors (msgs), 0);
    results = check_element_messages (msgs, "dsocr-result");
    fail_unless_equals_int (results->len, 2);
    g_ptr_array_unref (results);
    s = check_model_message_of (msgs, dec);
    fail_unless_equals_string (gst_structure_get_string (s, "precision"),
        precisions[i]);
    fail_unless (gst_structure_get_uint64 (s, "weight-bytes", &bytes[i]));
    fail_unless (bytes[i] > 0);
    g_ptr_array_unref (msgs);
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    gst_object_unref (bus);
    gst_object_unref (dec);
    gst_object_unref (pipe);
    g_free (desc);
    g_free (props);
  }
  GST_INFO ("decoder weights: f32 %" G_GUINT64_FORMAT ", q8 %" G_GUINT64_FORMAT
      ", q4 %" G_GUINT64_FORMAT, bytes[0], bytes[1], bytes[2]);
  fail_unless (bytes[1] < bytes[0]);
  fail_unless (bytes[2] < bytes[1]);
  g_free (dir);
}

GST_END_TEST;

static gchar *
start_error (const gchar * props, GQuark domain, gint code)
{
  gchar *desc = g_strdup_printf ("dsocrdecode %s", props);
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

  /* no model-location: the default model, here a directory that does not exist */
  g_setenv ("DSOCR_MODEL", "/nonexistent/dsocr-default-model", TRUE);
  text = start_error ("", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  g_unsetenv ("DSOCR_MODEL");
  fail_unless (strstr (text, "model-location") != NULL, "%s", text);
  fail_unless (strstr (text, "/nonexistent/dsocr-default-model") != NULL, "%s", text);
  g_free (text);

  /* the fixture itself has no tokenizer.json */
  dir = check_fixture ("tiny-ocr");
  props = g_strdup_printf ("model-location=\"%s\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  fail_unless (strstr (text, "tokenizer") != NULL, "%s", text);
  g_free (text);
  g_free (props);
  g_free (dir);

  /* a sequence classifier has no vision tower */
  dir = check_model_dir ("tiny-v2-cls");
  check_write_tokenizer (dir, NULL, NULL, NULL, 0, 320);
  props = g_strdup_printf ("model-location=\"%s\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (strstr (text, "vision") != NULL, "%s", text);
  g_free (text);
  g_free (props);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_missing_embeddings)
{
  gchar *dir = e2e_dir ();
  gchar *desc;
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  desc = g_strdup_printf ("dsocrdecode model-location=\"%s\"", dir);
  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=8,height=8,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_allocate (NULL,
              8 * 8 * 3, NULL)), GST_FLOW_ERROR);
  text = check_expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  fail_unless (strstr (text, "dsocrencode") != NULL, "%s", text);
  g_free (text);
  check_teardown (h, bus);
  g_free (desc);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_bad_prompt)
{
  gchar *dir = e2e_dir ();
  gchar *props, *text;

  /* the page has to go somewhere: exactly one <image> */
  props = g_strdup_printf ("model-location=\"%s\" prompt=\"Free OCR.\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (strstr (text, "prompt") != NULL, "%s", text);
  g_free (text);
  g_free (props);
  props = g_strdup_printf ("model-location=\"%s\" "
      "prompt=\"<image> and <image>\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS);
  g_free (text);
  g_free (props);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  gchar *dir = e2e_dir ();
  gchar *desc;
  GstElement *pipe;
  GstBus *bus;
  gint i;

  desc = g_strdup_printf ("videotestsrc num-buffers=3 ! "
      "video/x-raw,format=RGB,width=96,height=64 ! dsocrpreprocess mode=tiny ! "
      "dsocrencode model-location=\"%s\" ! dsocrdecode model-location=\"%s\" "
      "max-new-tokens=32 ! fakesink", dir, dir);
  pipe = gst_parse_launch (desc, NULL);
  fail_unless (pipe != NULL);
  bus = gst_element_get_bus (pipe);
  for (i = 0; i < 6; i++) {
    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    /* every other time, stop while frames are queued or being recognised */
    if (i % 2 == 0) {
      GPtrArray *msgs = check_wait_eos (bus, 120 * GST_SECOND);

      fail_unless_equals_string (check_last_type (msgs), "eos");
      g_ptr_array_unref (msgs);
    }
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (dir);
}

GST_END_TEST;

/* The whole chain with the system's elements: JSON lines in a file, boxes drawn on video. */
GST_START_TEST (test_pipeline_outputs)
{
  gchar *path = NULL, *desc, *contents = NULL, **lines;
  GError *err = NULL;
  gint fd;
  GstElement *pipe;
  GstBus *bus;
  GPtrArray *msgs, *results;
  JsonParser *parser = json_parser_new ();
  guint i, loaded, shared;
  gchar *prompt = NULL;
  gchar *dir = grounding_dir ("tiny", &prompt);

  fd = g_file_open_tmp ("dsocrdecode-XXXXXX.jsonl", &path, &err);
  fail_unless (fd >= 0);
  g_close (fd, NULL);
  desc = g_strdup_printf ("videotestsrc num-buffers=2 ! "
      "video/x-raw,format=I420,width=160,height=120 ! dsocrpreprocess mode=tiny ! "
      "dsocrencode model-location=\"%s\" ! dsocrdecode model-location=\"%s\" "
      "prompt=\"%s\" max-new-tokens=8 ! tee name=t "
      "t. ! queue ! dsocrresult format=json ! filesink location=\"%s\" "
      "t. ! queue ! videoconvert ! video/x-raw,format=BGRx ! dsocroverlay ! fakesink",
      dir, dir, prompt, path);
  pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  bus = gst_element_get_bus (pipe);
  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  msgs = check_wait_eos (bus, 120 * GST_SECOND);
  fail_unless_equals_string (check_last_type (msgs), "eos");
  results = check_element_messages (msgs, "dsocr-result");
  fail_unless_equals_int (results->len, 2);
  g_ptr_array_unref (results);
  /* dsocrencode and dsocrdecode share one loaded model */
  check_model_messages (msgs, &loaded, &shared);
  fail_unless_equals_int (loaded, 1);
  fail_unless_equals_int (shared, 1);
  g_ptr_array_unref (msgs);
  gst_element_set_state (pipe, GST_STATE_NULL);

  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), 3);
  fail_unless_equals_string (lines[2], "");
  for (i = 0; i < 2; i++) {
    JsonObject *o;

    fail_unless (json_parser_load_from_data (parser, lines[i], -1, NULL));
    o = json_node_get_object (json_parser_get_root (parser));
    fail_unless_equals_int (json_object_get_int_member (o, "width"), 160);
    fail_unless (strstr (lines[i], "\"title\"") != NULL, "%s", lines[i]);
  }
  g_strfreev (lines);
  g_free (contents);
  g_object_unref (parser);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_unlink (path);
  g_free (path);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
  g_free (prompt);
}

GST_END_TEST;

static Suite *
dsocrdecode_suite (void)
{
  Suite *s = suite_create ("dsocrdecode");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_golden_tiny);
  tcase_add_test (tc, test_golden_tiny_f32);
  tcase_add_test (tc, test_golden_gundam);
  tcase_add_test (tc, test_golden_window_guard);
  tcase_add_test (tc, test_grounding_regions);
  tcase_add_test (tc, test_eos_drain_and_caps);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_interval_and_unchanged);
  tcase_add_test (tc, test_leaky);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_missing_embeddings);
  tcase_add_test (tc, test_bad_prompt);
  tcase_add_test (tc, test_precision_property);
  tcase_add_test (tc, test_precision_runs);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_pipeline_outputs);
  return s;
}

GST_CHECK_MAIN (dsocrdecode);
