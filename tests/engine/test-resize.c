/* test-resize.c: bicubic resampling against Pillow's Image.resize(BICUBIC), byte for byte. */
#include "resize.h"

#include "image-golden.h"

static void
test_resize_goldens (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "resize");
  GBytes *blob = golden_blob ("resize.u8");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    JsonArray *src = json_object_get_array_member (e, "src");
    JsonArray *dst = json_object_get_array_member (e, "dst");
    int sw = golden_int (src, 0), sh = golden_int (src, 1), seed = golden_int (src, 2);
    int dw = golden_int (dst, 0), dh = golden_int (dst, 1);
    dsocr_image *img = golden_synth (sw, sh, (guint32) seed);
    dsocr_image_view v = dsocr_image_get_view (img);
    GError *err = NULL;
    dsocr_image *out = dsocr_resize_bicubic_new (&v, dw, dh, DSOCR_RESIZE_PILLOW13, &err);
    dsocr_image *old = dsocr_resize_bicubic_new (&v, dw, dh, DSOCR_RESIZE_PILLOW12, &err);
    char what[96];

    g_assert_no_error (err);
    g_snprintf (what, sizeof what, "resize %dx%d -> %dx%d", sw, sh, dw, dh);
    golden_check_bytes (e, blob, "offset", "sha256", out->data, out->stride * (gsize) dh, what);
    g_snprintf (what, sizeof what, "resize %dx%d -> %dx%d (Pillow 12 order)", sw, sh, dw, dh);
    golden_check_bytes (e, blob, "pillow12_offset", "pillow12_sha256", old->data,
                        old->stride * (gsize) dh, what);
    dsocr_image_free (out);
    dsocr_image_free (old);
    dsocr_image_free (img);
  }
  g_bytes_unref (blob);
  g_object_unref (p);
}

/* Padded source and target rows (a GStreamer frame, a window of a canvas) change nothing. */
static void
test_strides (void)
{
  dsocr_image *img = golden_synth (53, 29, 77);
  dsocr_image_view v = dsocr_image_get_view (img);
  const int sizes[][2] = { { 101, 67 }, { 20, 11 }, { 53, 40 }, { 31, 29 } };
  gsize pad_stride = 3 * 53 + 13;
  guint8 *padded = g_malloc0 (pad_stride * 29);
  dsocr_image_view pv = { padded, 53, 29, pad_stride };

  for (int y = 0; y < 29; y++)
    memcpy (padded + y * pad_stride, img->data + y * img->stride, img->stride);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    int w = sizes[i][0], h = sizes[i][1];
    gsize dst_stride = 3 * (gsize) w + 7;
    guint8 *dst = g_malloc (dst_stride * h);
    dsocr_image *want = dsocr_resize_bicubic_new (&v, w, h, DSOCR_RESIZE_PILLOW13, NULL);
    GError *err = NULL;

    memset (dst, 0xAB, dst_stride * h);
    g_assert_true (dsocr_resize_bicubic (&pv, dst, dst_stride, w, h, DSOCR_RESIZE_PILLOW13, &err));
    g_assert_no_error (err);
    for (int y = 0; y < h; y++) {
      g_assert_cmpmem (dst + y * dst_stride, 3 * w, want->data + y * want->stride, 3 * w);
      for (int k = 3 * w; k < (int) dst_stride; k++)
        g_assert_cmpint (dst[y * dst_stride + k], ==, 0xAB); /* the gap is left alone */
    }
    dsocr_image_free (want);
    g_free (dst);
  }
  g_free (padded);
  dsocr_image_free (img);
}

static void
test_bad_sizes (void)
{
  dsocr_image *img = golden_synth (8, 8, 1);
  dsocr_image_view v = dsocr_image_get_view (img);
  guint8 buf[3 * 16];
  GError *err = NULL;

  g_assert_null (dsocr_resize_bicubic_new (&v, 0, 4, DSOCR_RESIZE_PILLOW13, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_null (dsocr_resize_bicubic_new (&v, DSOCR_IMAGE_MAX_SIDE + 1, 1, DSOCR_RESIZE_PILLOW13,
                                           &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  g_assert_false (dsocr_resize_bicubic (&v, buf, 3 * 4 - 1, 4, 4, DSOCR_RESIZE_PILLOW13, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_true (g_str_has_prefix (err->message, "resize target: "));
  g_clear_error (&err);
  v.stride = 2;
  g_assert_false (dsocr_resize_bicubic (&v, buf, 12, 4, 4, DSOCR_RESIZE_PILLOW13, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_true (g_str_has_prefix (err->message, "resize source: "));
  g_clear_error (&err);
  dsocr_image_free (img);
}

/* A 2480x3508 page (A4 at 300 dpi) to the Gundam sizes; reported, never asserted. */
static void
test_speed (void)
{
  dsocr_image *img = golden_synth (2480, 3508, 40);
  dsocr_image_view v = dsocr_image_get_view (img);
  gint64 t0 = g_get_monotonic_time ();
  dsocr_image *a = dsocr_resize_bicubic_new (&v, 724, 1024, DSOCR_RESIZE_PILLOW13, NULL);
  gint64 t1 = g_get_monotonic_time ();
  dsocr_image *b = dsocr_resize_bicubic_new (&v, 1280, 1920, DSOCR_RESIZE_PILLOW13, NULL);
  gint64 t2 = g_get_monotonic_time ();

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_test_message ("2480x3508 -> 724x1024: %.1f ms, -> 1280x1920: %.1f ms", (t1 - t0) / 1e3,
                  (t2 - t1) / 1e3);
  dsocr_image_free (a);
  dsocr_image_free (b);
  dsocr_image_free (img);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/resize/goldens", test_resize_goldens);
  g_test_add_func ("/resize/strides", test_strides);
  g_test_add_func ("/resize/bad-sizes", test_bad_sizes);
  g_test_add_func ("/resize/speed", test_speed);
  return g_test_run ();
}
