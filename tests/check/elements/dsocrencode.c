/* dsocrencode.c: GstHarness tests of the vision encoder element on the tiny DeepSeek-OCR
 * fixture (tests/fixtures/tiny-ocr). The embeddings are checked against the reference's
 * (golden-vision.safetensors, made by tests/reference/make_vision_fixtures.py from the
 * official DeepSeek-OCR modules): the views dsocrpreprocess attached are overwritten with the
 * reference's synthetic views before encoding. */
#include "dsocrcheck.h"

#include <dsocr/dsocr.h>

#include "dsocr-test.h"

/* View @seed of side @size as the golden script draws it: [3, size, size], bf16 values. */
static void
synth_view (gint size, guint32 seed, float *p)
{
  guint32 c, y, x;

  for (c = 0; c < 3; c++)
    for (y = 0; y < (guint32) size; y++)
      for (x = 0; x < (guint32) size; x++) {
        guint32 h = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u) ^
            (seed * 2654435761u);
        guint32 u8;
        union
        {
          float f;
          guint32 u;
        } v;

        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        u8 = (x * 192 / (guint32) size + y * 64 / (guint32) size + c * 40 +
            (h & 63)) & 255;
        v.f = ((float) u8 / 255.0f - 0.5f) / 0.5f;
        /* round to bf16, nearest even, as the reference's cast */
        v.u = (v.u + 0x7fffu + ((v.u >> 16) & 1)) & 0xffff0000u;
        p[((gsize) c * size + y) * size + x] = v.f;
      }
}

static gchar *
tiny_ocr_dir (void)
{
  return check_fixture ("tiny-ocr");
}

/* Runs a @w x @h frame through "dsocrpreprocess mode=@mode", replaces its views with the
 * reference's (global: seed @global_seed; tiles: seeds 10, 11, ...) and encodes it with
 * "dsocrencode @props". Returns the encoded buffer (transfer full). */
static GstBuffer *
encode_synthetic_props (const gchar * mode, gint w, gint h, guint32 global_seed,
    const gchar * props, GstBus ** bus_out, GstHarness ** enc_out)
{
  gchar *pre_desc = g_strdup_printf ("dsocrpreprocess mode=%s", mode);
  gchar *dir = tiny_ocr_dir ();
  gchar *enc_desc = g_strdup_printf ("dsocrencode model-location=\"%s\" %s", dir,
      props);
  gchar *caps = check_video_caps (GST_VIDEO_FORMAT_RGB, w, h);
  GstHarness *pre, *enc;
  GstBus *pre_bus, *bus;
  GstBuffer *buf, *out;
  GstDsocrTilesMeta *tm;
  dsocr_preprocessed *pp;
  gint k;

  pre = check_harness (pre_desc, &pre_bus);
  gst_harness_set_src_caps_str (pre, caps);
  buf = gst_harness_push_and_pull (pre,
      check_solid_frame (GST_VIDEO_FORMAT_RGB, w, h, 128, 128, 128));
  tm = check_get_tiles_meta (buf);
  fail_unless (tm != NULL);
  pp = tm->tiles->pp;
  fail_unless_equals_int (pp->global->dtype, DSOCR_DTYPE_F32);
  synth_view (pp->view_size, global_seed, pp->global->data);
  for (k = 0; k < pp->n_tiles; k++)
    synth_view (DSOCR_TILE_SIZE, 10 + k, (float *) pp->tiles->data +
        (gsize) k * 3 * DSOCR_TILE_SIZE * DSOCR_TILE_SIZE);
  check_teardown (pre, pre_bus);

  enc = check_harness (enc_desc, &bus);
  gst_harness_set_src_caps_str (enc, caps);
  out = gst_harness_push_and_pull (enc, buf);
  fail_unless (out != NULL);
  *bus_out = bus;
  *enc_out = enc;
  g_free (caps);
  g_free (enc_desc);
  g_free (dir);
  g_free (pre_desc);
  return out;
}

static GstBuffer *
encode_synthetic (const gchar * mode, gint w, gint h, guint32 global_seed,
    GstBus ** bus_out, GstHarness ** enc_out)
{
  return encode_synthetic_props (mode, w, h, global_seed, "", bus_out, enc_out);
}

static void
check_packed (GstBuffer * out, const gchar * golden_name, gint n_tokens)
{
  gchar *path = check_fixture ("tiny-ocr/golden-vision.safetensors");
  dsocr_safetensors *st = dsocr_safetensors_open (path, NULL);
  const dsocr_tensor *want;
  GstDsocrEmbeddingsMeta *em = check_get_embeddings_meta (out);
  const dsocr_tensor *got;
  double err;

  fail_unless (st != NULL);
  want = dsocr_safetensors_get (st, golden_name);
  fail_unless (want != NULL);
  fail_unless (em != NULL);
  got = em->embeddings->embeds;
  fail_unless_equals_int (got->dtype, DSOCR_DTYPE_F32);
  fail_unless_equals_int (got->shape[0], n_tokens);
  fail_unless_equals_int (got->shape[0], want->shape[0]);
  fail_unless_equals_int (got->shape[1], want->shape[1]);
  err = dsocr_test_rel_error (got->data, want->data,
      (gsize) want->shape[0] * want->shape[1]);
  fail_unless (err < 1e-4, "%s: relative error %g", golden_name, err);
  GST_INFO ("%s: relative error %g", golden_name, err);
  /* the views stay attached */
  fail_unless (check_get_tiles_meta (out) != NULL);
  dsocr_safetensors_unref (st);
  g_free (path);
}

GST_START_TEST (test_golden_tiny)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *out = encode_synthetic ("tiny", 300, 200, 1, &bus, &h);
  GstDsocrEmbeddingsMeta *em = check_get_embeddings_meta (out);

  check_packed (out, "tiny.packed", 73);
  fail_unless_equals_int (em->embeddings->mode, GST_DSOCR_MODE_TINY);
  fail_unless_equals_int (em->embeddings->grid_cols, 1);
  fail_unless_equals_int (em->embeddings->orig_width, 300);
  fail_unless_equals_int (em->embeddings->orig_height, 200);
  gst_buffer_unref (out);
  check_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_golden_gundam)
{
  GstHarness *h;
  GstBus *bus;
  /* 2 columns x 3 rows of tiles, the reference's grid */
  GstBuffer *out = encode_synthetic ("gundam", 1280, 1920, 3, &bus, &h);
  GstDsocrEmbeddingsMeta *em = check_get_embeddings_meta (out);

  check_packed (out, "gundam.packed", 903);
  fail_unless_equals_int (em->embeddings->grid_cols, 2);
  fail_unless_equals_int (em->embeddings->grid_rows, 3);
  gst_buffer_unref (out);
  check_teardown (h, bus);
}

GST_END_TEST;

/* A @w x @h RGB frame with a gradient that depends on @k, timestamped k * 100 ms. */
static GstBuffer *
batch_frame (gint w, gint h, gint k)
{
  guint8 *rgb = g_malloc ((gsize) w * h * 3);
  GstBuffer *buf;
  gint i;

  for (i = 0; i < w * h * 3; i++)
    rgb[i] = (guint8) ((i * (3 + k) + (i / (3 * w)) * 7 * (k + 1)) & 255);
  buf = check_frame_from_rgb (GST_VIDEO_FORMAT_RGB, w, h, rgb);
  g_free (rgb);
  GST_BUFFER_PTS (buf) = k * 100 * GST_MSECOND;
  GST_BUFFER_DURATION (buf) = 100 * GST_MSECOND;
  return buf;
}

static GstHarness *
batch_harness (gint batch, const gchar * mode, GstBus ** bus)
{
  gchar *dir = tiny_ocr_dir ();
  gchar *desc = g_strdup_printf ("dsocrpreprocess mode=%s ! dsocrencode "
      "model-location=\"%s\" batch-size=%d", mode, dir, batch);
  GstHarness *h = check_harness (desc, bus);

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=160,height=120,"
      "framerate=10/1");
  g_free (desc);
  g_free (dir);
  return h;
}

static void
assert_same_embeddings (GstBuffer * a, GstBuffer * b)
{
  const dsocr_tensor *x = check_get_embeddings_meta (a)->embeddings->embeds;
  const dsocr_tensor *y = check_get_embeddings_meta (b)->embeddings->embeds;
  double err;

  fail_unless_equals_int (x->shape[0], y->shape[0]);
  fail_unless_equals_int (x->shape[1], y->shape[1]);
  err = dsocr_test_rel_error (x->data, y->data, (gsize) x->shape[0] * x->shape[1]);
  fail_unless (err < 1e-5, "batched embeddings differ: relative error %g", err);
}

/* batch-size 3: frames wait for their batch, leave in order with the embeddings each gets
 * alone; EOS encodes a partial batch first; a flush drops what waits; the latency grows by
 * two frames. Tiny and gundam mode (tiles of several frames in one batch). */
GST_START_TEST (test_batching)
{
  const gchar *modes[2] = { "tiny", "gundam" };
  gint mi, k;

  for (mi = 0; mi < 2; mi++) {
    GstBus *bus1, *bus3;
    GstHarness *one = batch_harness (1, modes[mi], &bus1);
    GstHarness *three = batch_harness (3, modes[mi], &bus3);
    GstBuffer *alone[4], *out;
    GstEvent *ev;

    for (k = 0; k < 4; k++)
      alone[k] = gst_harness_push_and_pull (one, batch_frame (160, 120, k));

    fail_unless_equals_int (gst_harness_push (three, batch_frame (160, 120, 0)),
        GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_push (three, batch_frame (160, 120, 1)),
        GST_FLOW_OK);
    fail_unless (gst_harness_try_pull (three) == NULL);
    fail_unless_equals_int (gst_harness_push (three, batch_frame (160, 120, 2)),
        GST_FLOW_OK);
    for (k = 0; k < 3; k++) {
      out = gst_harness_try_pull (three);
      fail_unless (out != NULL, "frame %d of the batch did not come out", k);
      fail_unless_equals_uint64 (GST_BUFFER_PTS (out), k * 100 * GST_MSECOND);
      assert_same_embeddings (out, alone[k]);
      gst_buffer_unref (out);
    }

    /* EOS: the fourth frame comes out before it */
    fail_unless_equals_int (gst_harness_push (three, batch_frame (160, 120, 3)),
        GST_FLOW_OK);
    fail_unless (gst_harness_try_pull (three) == NULL);
    while ((ev = gst_harness_try_pull_event (three)))
      gst_event_unref (ev);
    fail_unless (gst_harness_push_event (three, gst_event_new_eos ()));
    out = gst_harness_try_pull (three);
    fail_unless (out != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 300 * GST_MSECOND);
    assert_same_embeddings (out, alone[3]);
    gst_buffer_unref (out);
    ev = gst_harness_try_pull_event (three);
    fail_unless (ev != NULL && GST_EVENT_TYPE (ev) == GST_EVENT_EOS);
    gst_event_unref (ev);

    /* latency: two frames of 100 ms wait for the third */
    fail_unless_equals_uint64 (gst_harness_query_latency (three), 200 * GST_MSECOND);

    for (k = 0; k < 4; k++)
      gst_buffer_unref (alone[k]);
    check_teardown (one, bus1);
    check_teardown (three, bus3);
  }
}

GST_END_TEST;

/* A flush drops the frames waiting for their batch. */
GST_START_TEST (test_batching_flush)
{
  GstBus *bus;
  GstHarness *h = batch_harness (3, "tiny", &bus);
  gint k;

  fail_unless_equals_int (gst_harness_push (h, batch_frame (160, 120, 0)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, batch_frame (160, 120, 1)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  }
  fail_unless (gst_harness_try_pull (h) == NULL);
  for (k = 2; k < 5; k++)
    fail_unless_equals_int (gst_harness_push (h, batch_frame (160, 120, k)), GST_FLOW_OK);
  for (k = 2; k < 5; k++) {
    GstBuffer *out = gst_harness_try_pull (h);
    fail_unless (out != NULL);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), k * 100 * GST_MSECOND);
    gst_buffer_unref (out);
  }
  fail_unless (gst_harness_try_pull (h) == NULL);
  check_teardown (h, bus);
}

GST_END_TEST;

/* Starts "@element @props" (READY to PAUSED, which must fail) and returns the error it
 * posted (transfer full). */
static gchar *
start_error_of (const gchar * element, const gchar * props, GQuark domain,
    gint code)
{
  gchar *desc = g_strdup_printf ("%s %s", element, props);
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

static gchar *
start_error (const gchar * props, GQuark domain, gint code)
{
  return start_error_of ("dsocrencode", props, domain, code);
}

GST_START_TEST (test_no_model)
{
  GstElement *e;
  gchar *location, *text;

  /* unset, model-location names the default model: the bundled dsocr-reader */
  g_unsetenv ("DSOCR_MODEL");
  e = gst_element_factory_make ("dsocrencode", NULL);
  g_object_get (e, "model-location", &location, NULL);
  fail_unless (g_str_has_suffix (location, "models/dsocr-reader"), "%s", location);
  g_free (location);
  gst_object_unref (e);

  /* $DSOCR_MODEL moves it; a directory without a model is an error that names it */
  g_setenv ("DSOCR_MODEL", "/nonexistent/dsocr-default-model", TRUE);
  text = start_error ("", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  g_unsetenv ("DSOCR_MODEL");
  fail_unless (strstr (text, "model-location") != NULL, "%s", text);
  fail_unless (strstr (text, "/nonexistent/dsocr-default-model") != NULL, "%s", text);
  g_free (text);
  text = start_error ("model-location=/nonexistent/dsocr-model",
      GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  fail_unless (strstr (text, "/nonexistent/dsocr-model") != NULL, "%s", text);
  g_free (text);
}

GST_END_TEST;

GST_START_TEST (test_corrupt_model)
{
  gchar *dir = g_dir_make_tmp ("dsocr-corrupt-XXXXXX", NULL);
  gchar *src = check_fixture ("tiny-ocr/config.json");
  gchar *cfg = g_build_filename (dir, "config.json", NULL);
  gchar *st = g_build_filename (dir, "model.safetensors", NULL);
  gchar *contents, *props, *text;
  gsize len;

  fail_unless (g_file_get_contents (src, &contents, &len, NULL));
  fail_unless (g_file_set_contents (cfg, contents, len, NULL));
  g_free (contents);
  /* a safetensors header that promises more than the file holds */
  fail_unless (g_file_set_contents (st, "\x40\0\0\0\0\0\0\0{\"a\":", 13, NULL));
  props = g_strdup_printf ("model-location=\"%s\"", dir);
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
  fail_unless (strstr (text, "damaged") != NULL, "%s", text);
  g_free (text);

  /* a config.json that is not JSON */
  fail_unless (g_file_set_contents (cfg, "{ not json", -1, NULL));
  text = start_error (props, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
  fail_unless (strstr (text, "config.json") != NULL, "%s", text);
  g_free (text);

  g_free (props);
  check_remove_dir (dir);
  g_free (st);
  g_free (cfg);
  g_free (src);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_text_only_model)
{
  gchar *dir = check_fixture ("tiny-v2-cls");
  gchar *props = g_strdup_printf ("model-location=\"%s\"", dir);
  gchar *text = start_error (props, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_SETTINGS);

  fail_unless (strstr (text, "vision") != NULL, "%s", text);
  g_free (text);
  g_free (props);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_cuda_refused)
{
  gchar *dir = tiny_ocr_dir ();
  gchar *props = g_strdup_printf ("model-location=\"%s\" device=cuda", dir);
  gchar *text = start_error (props, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_SETTINGS);

  fail_unless (strstr (text, "device=cpu") != NULL, "%s", text);
  g_free (text);
  g_free (props);
  g_free (dir);
}

GST_END_TEST;

/* n-threads sizes the element's own thread pool, which the dsocr-model message names. */
GST_START_TEST (test_n_threads)
{
  gchar *dir = tiny_ocr_dir ();
  GstElement *e = gst_element_factory_make ("dsocrencode", NULL);
  GstBus *bus = gst_bus_new ();
  GPtrArray *msgs, *models;
  const gchar *backend;
  gint n = -1;

  fail_unless (e != NULL);
  g_object_get (e, "n-threads", &n, NULL);
  fail_unless_equals_int (n, 0);
  g_object_set (e, "model-location", dir, "n-threads", 2, NULL);
  g_object_get (e, "n-threads", &n, NULL);
  fail_unless_equals_int (n, 2);
  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
  msgs = check_bus_messages (bus);
  models = check_element_messages (msgs, "dsocr-model");
  fail_unless_equals_int (models->len, 1);
  backend = gst_structure_get_string (g_ptr_array_index (models, 0), "backend");
  fail_unless (backend != NULL);
  fail_unless (g_str_has_prefix (backend, "cpu (2 threads"), "%s", backend);
  g_ptr_array_unref (models);
  g_ptr_array_unref (msgs);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (e);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_precision_property)
{
  check_precision_property ("dsocrencode");
}

GST_END_TEST;

/* The vision tower is never quantized: at every precision the element encodes with the
 * weights as stored (the same size in the dsocr-model message) and gives the reference's
 * embeddings. */
GST_START_TEST (test_precision_no_effect)
{
  gchar *dir = tiny_ocr_dir ();
  GstElement *e = gst_element_factory_make ("dsocrencode", NULL);
  gchar *precision = NULL;
  guint64 bytes_f32 = 0, bytes = 0;
  guint i;

  g_object_set (e, "model-location", dir, NULL);
  gst_util_set_object_arg (G_OBJECT (e), "precision", "f32");
  check_start_weights (e, &precision, &bytes_f32);
  fail_unless_equals_string (precision, "f32");
  g_free (precision);
  for (i = 0; i < G_N_ELEMENTS (check_precisions); i++) {
    /* changed in READY, read at the next start */
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_READY),
        GST_STATE_CHANGE_SUCCESS);
    gst_util_set_object_arg (G_OBJECT (e), "precision", check_precisions[i]);
    check_start_weights (e, &precision, &bytes);
    fail_unless_equals_string (precision, check_precisions[i]);
    fail_unless_equals_uint64 (bytes, bytes_f32);
    g_free (precision);
  }
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (e);
  g_free (dir);

  for (i = 0; i < G_N_ELEMENTS (check_precisions); i++) {
    gchar *props = g_strdup_printf ("precision=%s", check_precisions[i]);
    GstHarness *h;
    GstBus *bus;
    GstBuffer *out = encode_synthetic_props ("tiny", 300, 200, 1, props, &bus, &h);
    GPtrArray *msgs = check_bus_messages (bus);

    check_packed (out, "tiny.packed", 73);
    fail_unless_equals_int (check_count_errors (msgs), 0);
    g_ptr_array_unref (msgs);
    gst_buffer_unref (out);
    check_teardown (h, bus);
    g_free (props);
  }
}

GST_END_TEST;

GST_START_TEST (test_unsupported_caps)
{
  GstElement *e = gst_element_factory_make ("dsocrencode", NULL);
  GstPad *sink = gst_element_get_static_pad (e, "sink");
  GstCaps *caps;

  /* any video frames, nothing else */
  caps = gst_caps_from_string ("audio/x-raw,format=S16LE,rate=8000,channels=1");
  fail_if (gst_pad_query_accept_caps (sink, caps));
  gst_caps_unref (caps);
  caps = gst_caps_from_string ("video/x-raw(memory:CUDAMemory),format=NV12");
  fail_unless (gst_pad_query_accept_caps (sink, caps));
  gst_caps_unref (caps);
  gst_object_unref (sink);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_missing_tiles)
{
  gchar *dir = tiny_ocr_dir ();
  gchar *desc = g_strdup_printf ("dsocrencode model-location=\"%s\"", dir);
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=8,height=8,framerate=0/1");
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_allocate (NULL,
              8 * 8 * 3, NULL)), GST_FLOW_ERROR);
  text = check_expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  fail_unless (strstr (text, "dsocrpreprocess") != NULL, "%s", text);
  g_free (text);
  check_teardown (h, bus);
  g_free (desc);
  g_free (dir);
}

GST_END_TEST;

/* Two encoders on one directory (one through a symbolic link) load it once. */
GST_START_TEST (test_shared_model)
{
  gchar *dir = tiny_ocr_dir ();
  gchar *link_dir = g_dir_make_tmp ("dsocr-link-XXXXXX", NULL);
  gchar *link = g_build_filename (link_dir, "model", NULL);
  gchar *desc;
  GstElement *pipe;
  GstBus *bus;
  GPtrArray *msgs;
  guint loaded, shared, round;

  fail_unless (symlink (dir, link) == 0);
  desc = g_strdup_printf ("videotestsrc num-buffers=2 ! "
      "video/x-raw,format=RGB,width=64,height=48 ! dsocrpreprocess mode=tiny ! "
      "tee name=t ! queue ! dsocrencode model-location=\"%s\" ! fakesink "
      "t. ! queue ! dsocrencode model-location=\"%s\" ! fakesink", dir, link);
  pipe = gst_parse_launch (desc, NULL);
  fail_unless (pipe != NULL);
  bus = gst_element_get_bus (pipe);
  /* twice: going to NULL releases the model, so the second run loads it again */
  for (round = 0; round < 2; round++) {
    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    msgs = check_wait_eos (bus, 120 * GST_SECOND);
    fail_unless_equals_string (check_last_type (msgs), "eos");
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    check_model_messages (msgs, &loaded, &shared);
    fail_unless_equals_int (loaded, 1);
    fail_unless_equals_int (shared, 1);
    g_ptr_array_unref (msgs);
  }
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_unlink (link);
  g_rmdir (link_dir);
  g_free (link);
  g_free (link_dir);
  g_free (desc);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  gchar *dir = tiny_ocr_dir ();
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=1 ! "
      "video/x-raw,format=NV12,width=96,height=64 ! dsocrpreprocess mode=tiny ! "
      "dsocrencode model-location=\"%s\" ! fakesink", dir);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  gint i;

  for (i = 0; i < 4; i++) {
    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    if (i % 2 == 0) {
      GstMessage *msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
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
  g_free (desc);
  g_free (dir);
}

GST_END_TEST;

static Suite *
dsocrencode_suite (void)
{
  Suite *s = suite_create ("dsocrencode");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_golden_tiny);
  tcase_add_test (tc, test_golden_gundam);
  tcase_add_test (tc, test_batching);
  tcase_add_test (tc, test_batching_flush);
  tcase_add_test (tc, test_no_model);
  tcase_add_test (tc, test_corrupt_model);
  tcase_add_test (tc, test_text_only_model);
  tcase_add_test (tc, test_cuda_refused);
  tcase_add_test (tc, test_n_threads);
  tcase_add_test (tc, test_precision_property);
  tcase_add_test (tc, test_precision_no_effect);
  tcase_add_test (tc, test_unsupported_caps);
  tcase_add_test (tc, test_missing_tiles);
  tcase_add_test (tc, test_shared_model);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (dsocrencode);
