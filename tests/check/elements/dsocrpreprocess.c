/* dsocrpreprocess.c: GstHarness tests of the preprocessing element. The pictures are the
 * synthetic sources of tests/reference/make_preprocess_goldens.py, so the views the element
 * attaches are checked against the reference's (Pillow + torchvision) SHA-256 digests. */
#include "dsocrcheck.h"

#include "engine/image-golden.h"

/* The golden cases used here (tests/fixtures/images/goldens.json "preprocess"): */
typedef struct
{
  gint w, h, seed;
  const gchar *mode;
  gint max_tiles;
} GoldenCase;

static const GoldenCase golden_cases[] = {
  {300, 200, 31, "gundam", 9},  /* no tiles */
  {700, 560, 32, "gundam", 9},  /* 2 x 2 tiles */
  {641, 500, 37, "gundam", 6},  /* 3 x 2 tiles, odd width: padded RGB rows */
  {333, 777, 39, "base", 9},    /* padded global view, odd width */
  {512, 512, 38, "tiny", 9},
};

/* The golden entry for @c (borrowed from @p). */
static JsonObject *
find_golden (JsonParser * p, const GoldenCase * c)
{
  JsonArray *cases = golden_array (p, "preprocess");
  guint i;

  for (i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    JsonArray *src = json_object_get_array_member (e, "src");

    if (golden_int (src, 0) == c->w && golden_int (src, 1) == c->h &&
        golden_int (src, 2) == c->seed &&
        json_object_get_int_member (e, "max_tiles") == c->max_tiles &&
        json_object_get_int_member (e, "pillow") == 13 &&
        g_strcmp0 (json_object_get_string_member (e, "mode"), c->mode) == 0)
      return e;
  }
  fail ("no golden for %dx%d %s", c->w, c->h, c->mode);
  return NULL;
}

static void
check_sha (JsonObject * e, const gchar * key, const dsocr_tensor * t,
    const gchar * what)
{
  gchar *sha = golden_sha256 (t->data, t->nbytes);

  fail_unless_equals_string (sha, json_object_get_string_member (e, key));
  GST_DEBUG ("%s: %s matches", what, key);
  g_free (sha);
}

/* Runs golden case @c through dsocrpreprocess with @format frames and checks the views
 * (by digest when @exact, which holds for the RGB layouts; by shape otherwise). */
static void
run_golden (JsonParser * p, const GoldenCase * c, GstVideoFormat format,
    gboolean bf16, gboolean exact)
{
  JsonObject *e = find_golden (p, c);
  JsonArray *grid = json_object_get_array_member (e, "grid");
  dsocr_image *img = golden_synth (c->w, c->h, (guint32) c->seed);
  gchar *desc = g_strdup_printf ("dsocrpreprocess mode=%s max-crops=%d%s",
      c->mode, c->max_tiles, bf16 ? " pixel-format=bf16" : "");
  gchar *caps = check_video_caps (format, c->w, c->h);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *in, *out;
  GstDsocrTilesMeta *meta;
  const dsocr_preprocessed *pp;
  dsocr_mode mode;
  GstMemory *mem;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h, caps);
  in = check_frame_from_rgb (format, c->w, c->h, img->data);
  /* the frame passes through: the same memory, pixels untouched */
  mem = gst_memory_ref (gst_buffer_peek_memory (in, 0));
  out = gst_harness_push_and_pull (h, in);
  fail_unless (out != NULL);
  fail_unless (gst_buffer_peek_memory (out, 0) == mem);
  gst_memory_unref (mem);
  meta = check_get_tiles_meta (out);
  fail_unless (meta != NULL);
  pp = meta->tiles->pp;
  fail_unless (dsocr_mode_from_name (c->mode, &mode));
  fail_unless_equals_int (meta->tiles->mode, mode);
  fail_unless_equals_int (pp->grid_cols, golden_int (grid, 0));
  fail_unless_equals_int (pp->grid_rows, golden_int (grid, 1));
  fail_unless_equals_int (pp->n_tiles, json_object_get_int_member (e,
          "n_tiles"));
  fail_unless_equals_int (pp->n_image_tokens, json_object_get_int_member (e,
          "tokens"));
  fail_unless_equals_int (pp->view_size, json_object_get_int_member (e,
          "view_size"));
  fail_unless_equals_int (pp->orig_width, c->w);
  fail_unless_equals_int (pp->orig_height, c->h);
  fail_unless_equals_int (pp->global->dtype,
      bf16 ? DSOCR_DTYPE_BF16 : DSOCR_DTYPE_F32);
  if (exact) {
    check_sha (e, bf16 ? "global_bf16_sha256" : "global_f32_sha256",
        pp->global, gst_video_format_to_string (format));
    if (pp->n_tiles && !bf16)
      check_sha (e, "tiles_f32_sha256", pp->tiles,
          gst_video_format_to_string (format));
  }
  if (pp->n_tiles) {
    fail_unless_equals_int (pp->tiles->shape[0], pp->n_tiles);
    fail_unless_equals_int (pp->tiles->shape[2], DSOCR_TILE_SIZE);
  } else {
    fail_unless (pp->tiles == NULL);
  }

  gst_buffer_unref (out);
  check_teardown (h, bus);
  dsocr_image_free (img);
  g_free (caps);
  g_free (desc);
}

GST_START_TEST (test_goldens_rgb)
{
  JsonParser *p = golden_index ();
  guint i;

  for (i = 0; i < G_N_ELEMENTS (golden_cases); i++)
    run_golden (p, &golden_cases[i], GST_VIDEO_FORMAT_RGB, FALSE, TRUE);
  run_golden (p, &golden_cases[1], GST_VIDEO_FORMAT_RGB, TRUE, TRUE);
  g_object_unref (p);
}

GST_END_TEST;

GST_START_TEST (test_goldens_rgb_layouts)
{
  /* the same pixels in other byte orders must give exactly the reference's views */
  static const GstVideoFormat formats[] = {
    GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGRA,
    GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_xRGB,
    GST_VIDEO_FORMAT_xBGR, GST_VIDEO_FORMAT_ARGB, GST_VIDEO_FORMAT_ABGR,
  };
  JsonParser *p = golden_index ();
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++)
    run_golden (p, &golden_cases[2], formats[i], FALSE, TRUE);
  g_object_unref (p);
}

GST_END_TEST;

GST_START_TEST (test_yuv_and_gray)
{
  JsonParser *p = golden_index ();

  /* converted pixels differ from the RGB source by the YUV rounding: shapes and grid only */
  run_golden (p, &golden_cases[1], GST_VIDEO_FORMAT_NV12, FALSE, FALSE);
  run_golden (p, &golden_cases[1], GST_VIDEO_FORMAT_I420, FALSE, FALSE);
  run_golden (p, &golden_cases[3], GST_VIDEO_FORMAT_GRAY8, FALSE, FALSE);
  g_object_unref (p);
}

GST_END_TEST;

/* A GRAY8 frame is the RGB picture with the grey value in every channel (Pillow's
 * convert("RGB") of an "L" image): compare with the engine on that picture. */
GST_START_TEST (test_gray_replicates)
{
  const gint w = 203, hgt = 150;
  guint8 *rgb = g_malloc ((gsize) w * hgt * 3);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *in, *out;
  GstVideoFrame f;
  GstVideoInfo info;
  dsocr_image_view v;
  dsocr_preprocess_params params;
  dsocr_preprocessed *want;
  GstDsocrTilesMeta *meta;
  gchar *caps = check_video_caps (GST_VIDEO_FORMAT_GRAY8, w, hgt);
  gint x, y;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, w, hgt);
  in = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&f, &info, in, GST_MAP_WRITE));
  for (y = 0; y < hgt; y++)
    for (x = 0; x < w; x++) {
      guint8 g = (guint8) ((x * 7 + y * 13) & 255);

      ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0))[y *
          GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0) + x] = g;
      memset (rgb + ((gsize) y * w + x) * 3, g, 3);
    }
  gst_video_frame_unmap (&f);

  h = check_harness ("dsocrpreprocess mode=base", &bus);
  gst_harness_set_src_caps_str (h, caps);
  out = gst_harness_push_and_pull (h, in);
  meta = check_get_tiles_meta (out);
  fail_unless (meta != NULL);

  v.data = rgb;
  v.width = w;
  v.height = hgt;
  v.stride = (gsize) w *3;
  dsocr_preprocess_params_init (&params);
  params.mode = DSOCR_MODE_BASE;
  want = dsocr_preprocess (&v, &params, NULL);
  fail_unless (want != NULL);
  fail_unless_equals_int (meta->tiles->pp->global->nbytes, want->global->nbytes);
  fail_unless (memcmp (meta->tiles->pp->global->data, want->global->data,
          want->global->nbytes) == 0);

  dsocr_preprocessed_free (want);
  gst_buffer_unref (out);
  check_teardown (h, bus);
  g_free (caps);
  g_free (rgb);
}

GST_END_TEST;

GST_START_TEST (test_size_changes)
{
  /* frames of different sizes in one stream, with caps in between: each gets its own grid */
  static const struct
  {
    gint w, h, cols, rows;
  } sizes[] = {
    {300, 200, 1, 1}, {1191, 1684, 2, 3}, {2000, 1000, 4, 2}, {640, 640, 1, 1},
  };
  GstHarness *h;
  GstBus *bus;
  guint i;

  h = check_harness ("dsocrpreprocess", &bus);
  for (i = 0; i < G_N_ELEMENTS (sizes); i++) {
    gchar *caps = check_video_caps (GST_VIDEO_FORMAT_BGRx, sizes[i].w,
        sizes[i].h);
    GstBuffer *out;
    GstDsocrTilesMeta *meta;

    gst_harness_set_src_caps_str (h, caps);
    out = gst_harness_push_and_pull (h,
        check_solid_frame (GST_VIDEO_FORMAT_BGRx, sizes[i].w, sizes[i].h, 200,
            100, 50));
    meta = check_get_tiles_meta (out);
    fail_unless (meta != NULL);
    fail_unless_equals_int (meta->tiles->pp->orig_width, sizes[i].w);
    fail_unless_equals_int (meta->tiles->pp->orig_height, sizes[i].h);
    fail_unless_equals_int (meta->tiles->pp->grid_cols, sizes[i].cols);
    fail_unless_equals_int (meta->tiles->pp->grid_rows, sizes[i].rows);
    gst_buffer_unref (out);
    g_free (caps);
  }
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_events_and_caps)
{
  GstHarness *h;
  GstBus *bus;
  GstEvent *ev;
  GstCaps *caps;
  GstEventType expected[] = {
    GST_EVENT_STREAM_START, GST_EVENT_CAPS, GST_EVENT_SEGMENT, GST_EVENT_EOS
  };
  guint i;

  h = check_harness ("dsocrpreprocess mode=tiny", &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=NV12,width=64,height=48,framerate=30/1");
  gst_buffer_unref (gst_harness_push_and_pull (h,
          check_solid_frame (GST_VIDEO_FORMAT_NV12, 64, 48, 10, 20, 30)));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  for (i = 0; i < G_N_ELEMENTS (expected); i++) {
    ev = gst_harness_pull_event (h);
    fail_unless_equals_string (GST_EVENT_TYPE_NAME (ev),
        gst_event_type_get_name (expected[i]));
    gst_event_unref (ev);
  }
  /* caps pass unchanged */
  caps = gst_pad_get_current_caps (h->sinkpad);
  {
    GstCaps *want = gst_caps_from_string
        ("video/x-raw,format=NV12,width=64,height=48,framerate=30/1");

    fail_unless (gst_caps_is_equal (caps, want));
    gst_caps_unref (want);
  }
  gst_caps_unref (caps);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_meta_refcount)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *in, *out, *copy;
  GstDsocrTilesMeta *meta, *copy_meta;
  GstMemory *mem_in;

  h = check_harness ("dsocrpreprocess mode=small", &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGBA,width=100,height=80,framerate=0/1");
  in = check_solid_frame (GST_VIDEO_FORMAT_RGBA, 100, 80, 1, 2, 3);
  mem_in = gst_buffer_peek_memory (in, 0);
  /* a shared (not writable) input: the element must not copy the pixels to add its meta */
  out = gst_harness_push_and_pull (h, gst_buffer_ref (in));
  fail_unless (out != in);
  fail_unless (gst_buffer_peek_memory (out, 0) == mem_in);
  fail_unless (check_get_tiles_meta (in) == NULL);
  meta = check_get_tiles_meta (out);
  fail_unless (meta != NULL);

  /* a copy of the buffer shares the views by reference */
  copy = gst_buffer_copy (out);
  copy_meta = check_get_tiles_meta (copy);
  fail_unless (copy_meta != NULL);
  fail_unless (copy_meta->tiles == meta->tiles);
  gst_buffer_unref (copy);
  /* one meta per buffer, also when it goes through twice */
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_ref (out)),
      GST_FLOW_OK);
  copy = gst_harness_pull (h);
  {
    gpointer state = NULL;
    guint n = 0;

    while (gst_buffer_iterate_meta_filtered (copy, &state,
            g_type_from_name ("GstDsocrTilesMetaAPI")))
      n++;
    fail_unless_equals_int (n, 1);
  }
  gst_buffer_unref (copy);
  gst_buffer_unref (out);
  ASSERT_BUFFER_REFCOUNT (in, "in", 1);
  gst_buffer_unref (in);
  check_teardown (h, bus);
}

GST_END_TEST;

/* videoscale and videoconvert keep the views (they describe the page, not the pixels) */
GST_START_TEST (test_meta_survives_scaling)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out;
  GstDsocrTilesMeta *meta;

  h = check_harness ("dsocrpreprocess mode=tiny ! videoscale ! videoconvert", &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=300,height=200,framerate=0/1");
  gst_harness_set_sink_caps_str (h,
      "video/x-raw,format=BGRx,width=150,height=100,framerate=0/1");
  out = gst_harness_push_and_pull (h,
      check_solid_frame (GST_VIDEO_FORMAT_RGB, 300, 200, 9, 9, 9));
  meta = check_get_tiles_meta (out);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->tiles->pp->orig_width, 300);
  gst_buffer_unref (out);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_bad_crops)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = check_harness ("dsocrpreprocess min-crops=6 max-crops=4", &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=64,height=64,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h,
          check_solid_frame (GST_VIDEO_FORMAT_RGB, 64, 64, 0, 0, 0)),
      GST_FLOW_ERROR);
  text = check_expect_error (bus, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (strstr (text, "max-crops") != NULL, "%s", text);
  g_free (text);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_unsupported_caps)
{
  GstHarness *h;
  GstBus *bus;
  GstCaps *caps;

  h = check_harness ("dsocrpreprocess", &bus);
  caps = gst_caps_from_string ("video/x-raw,format=YUY2,width=64,height=64");
  fail_if (gst_pad_peer_query_accept_caps (h->srcpad, caps));
  gst_caps_unref (caps);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=YUY2,width=64,height=64,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_allocate (NULL, 64 * 64 * 2, NULL)),
      GST_FLOW_NOT_NEGOTIATED);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  GstElement *pipe;
  GstBus *bus;
  gint i;

  pipe = gst_parse_launch ("videotestsrc num-buffers=3 ! "
      "video/x-raw,format=I420,width=320,height=240 ! dsocrpreprocess mode=tiny ! "
      "fakesink", NULL);
  fail_unless (pipe != NULL);
  bus = gst_element_get_bus (pipe);
  for (i = 0; i < 6; i++) {
    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    if (i % 2 == 0) {
      GstMessage *msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
          GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

      fail_unless (msg != NULL);
      fail_unless_equals_string (GST_MESSAGE_TYPE_NAME (msg), "eos");
      gst_message_unref (msg);
    }
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

GST_END_TEST;

static Suite *
dsocrpreprocess_suite (void)
{
  Suite *s = suite_create ("dsocrpreprocess");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_goldens_rgb);
  tcase_add_test (tc, test_goldens_rgb_layouts);
  tcase_add_test (tc, test_yuv_and_gray);
  tcase_add_test (tc, test_gray_replicates);
  tcase_add_test (tc, test_size_changes);
  tcase_add_test (tc, test_events_and_caps);
  tcase_add_test (tc, test_meta_refcount);
  tcase_add_test (tc, test_meta_survives_scaling);
  tcase_add_test (tc, test_bad_crops);
  tcase_add_test (tc, test_unsupported_caps);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (dsocrpreprocess);
