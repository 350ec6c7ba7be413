/* test-image.c: PNG/JPEG decoding, RGB conversion and EXIF orientation against Pillow
 * (goldens from tests/reference/make_preprocess_goldens.py), and bad input. */
#include "image-golden.h"

/* Both decoders run libjpeg-turbo with its defaults (accurate integer IDCT, fancy upsampling,
 * block smoothing): the system's 2.1 here, 3.x inside Pillow's wheel. Their output was found
 * byte-identical on every fixture (4:2:0, 4:2:2, 4:4:4, progressive, grey, CMYK), so no
 * difference is allowed; a libjpeg with another IDCT would show up here first. */
#define JPEG_MAX_DIFF 0

static char *
image_path (const char *name)
{
  char *rel = g_build_filename ("images", name, NULL);
  char *p = dsocr_test_fixture (rel);
  g_free (rel);
  return p;
}

static void
test_decode_goldens (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "decode");
  GBytes *blob = golden_blob ("decode.u8");
  gsize blen;
  const guint8 *gold = g_bytes_get_data (blob, &blen);
  int n_jpeg_exact = 0, n_jpeg = 0, jpeg_max = 0;

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    const char *name = json_object_get_string_member (e, "file");
    int w = (int) json_object_get_int_member (e, "width");
    int h = (int) json_object_get_int_member (e, "height");
    gsize off = (gsize) json_object_get_int_member (e, "offset");
    gboolean jpeg = json_object_get_boolean_member (e, "jpeg");
    char *path = image_path (name);
    GError *err = NULL;
    dsocr_image_info info;
    dsocr_image *img = dsocr_image_load (path, &info, &err);
    int max_diff = 0;

    g_assert_no_error (err);
    g_assert_nonnull (img);
    if (img->width != w || img->height != h)
      g_error ("%s: decoded %dx%d, Pillow %dx%d", name, img->width, img->height, w, h);
    g_assert_cmpuint (off + (gsize) w * h * 3, <=, blen);
    g_assert_cmpint (info.format, ==, jpeg ? DSOCR_IMAGE_FORMAT_JPEG : DSOCR_IMAGE_FORMAT_PNG);
    for (gsize k = 0; k < (gsize) w * h * 3; k++) {
      int d = abs ((int) img->data[k] - (int) gold[off + k]);
      if (d > max_diff)
        max_diff = d;
      if (!jpeg && d != 0)
        g_error ("%s: byte %" G_GSIZE_FORMAT " is %d, Pillow has %d", name, k, img->data[k],
                 gold[off + k]);
    }
    if (jpeg) {
      n_jpeg++;
      n_jpeg_exact += max_diff == 0;
      jpeg_max = MAX (jpeg_max, max_diff);
      if (max_diff > JPEG_MAX_DIFF)
        g_error ("%s: differs from Pillow by up to %d", name, max_diff);
    }
    dsocr_image_free (img);
    g_free (path);
  }
  g_test_message ("JPEG: %d of %d files byte-identical to Pillow, max difference %d",
                  n_jpeg_exact, n_jpeg, jpeg_max);
  g_bytes_unref (blob);
  g_object_unref (p);
}

static dsocr_image *
load_ok (const char *name, dsocr_image_info *info)
{
  char *path = image_path (name);
  GError *err = NULL;
  dsocr_image *img = dsocr_image_load (path, info, &err);

  g_assert_no_error (err);
  g_free (path);
  return img;
}

static void
assert_same (const dsocr_image *a, const dsocr_image *b, const char *what)
{
  if (a->width != b->width || a->height != b->height)
    g_error ("%s: %dx%d vs %dx%d", what, a->width, a->height, b->width, b->height);
  if (memcmp (a->data, b->data, a->stride * (gsize) a->height) != 0)
    g_error ("%s: pixels differ", what);
}

/* exifN.jpg hold the same JPEG data: decoding exif1.jpg and orienting it must give exactly
 * what decoding exifN.jpg gives (whose size and pixels the golden test checks vs Pillow). */
static void
test_orientation (void)
{
  dsocr_image_info info;
  dsocr_image *base = load_ok ("exif1.jpg", &info);
  dsocr_image_view v = dsocr_image_get_view (base);
  const struct { const char *file; int orientation; } cases[] = {
    { "exif2.jpg", 2 }, { "exif3.jpg", 3 }, { "exif4.jpg", 4 }, { "exif5.jpg", 5 },
    { "exif6.jpg", 6 }, { "exif7.jpg", 7 }, { "exif8.jpg", 8 }, { "exif6-mm.jpg", 6 },
    { "exif5-long.jpg", 5 }, { "exif9.jpg", 1 }, { "xmp6.jpg", 6 }, { "exif1-xmp6.jpg", 1 },
  };

  g_assert_cmpint (info.orientation, ==, 1);
  g_assert_cmpint (info.file_width, ==, 24);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *err = NULL;
    dsocr_image *want = dsocr_image_orient (&v, cases[i].orientation, &err);
    dsocr_image *got = load_ok (cases[i].file, &info);
    g_assert_no_error (err);
    g_assert_cmpint (info.orientation, ==, cases[i].orientation);
    g_assert_cmpint (info.file_width, ==, 24);
    g_assert_cmpint (info.file_height, ==, 16);
    assert_same (got, want, cases[i].file);
    dsocr_image_free (want);
    dsocr_image_free (got);
  }
  /* PNG eXIf (little and big endian) and XMP iTXt */
  {
    dsocr_image *img = load_ok ("rgb8-exif6.png", &info);
    g_assert_cmpint (info.orientation, ==, 6);
    dsocr_image_free (img);
    img = load_ok ("rgb8-exif3-mm.png", &info);
    g_assert_cmpint (info.orientation, ==, 3);
    dsocr_image_free (img);
    img = load_ok ("rgb8-xmp8.png", &info);
    g_assert_cmpint (info.orientation, ==, 8);
    dsocr_image_free (img);
  }
  dsocr_image_free (base);
}

/* Orientation geometry on a tiny picture whose pixels name their position. */
static void
test_orient_geometry (void)
{
  /* 3 x 2 image, pixel value = 10 * y + x in every channel */
  dsocr_image *img = dsocr_image_new (3, 2, NULL);
  /* expected rows for orientations 1..8, as Pillow's transposes give them */
  const int want[9][6] = {
    { 0 }, { 0, 1, 2, 10, 11, 12 }, { 2, 1, 0, 12, 11, 10 }, { 12, 11, 10, 2, 1, 0 },
    { 10, 11, 12, 0, 1, 2 }, { 0, 10, 1, 11, 2, 12 }, { 10, 0, 11, 1, 12, 2 },
    { 12, 2, 11, 1, 10, 0 }, { 2, 12, 1, 11, 0, 10 },
  };
  dsocr_image_view v;

  for (int y = 0; y < 2; y++)
    for (int x = 0; x < 3; x++)
      memset (img->data + y * img->stride + 3 * x, 10 * y + x, 3);
  v = dsocr_image_get_view (img);
  for (int o = 1; o <= 8; o++) {
    dsocr_image *out = dsocr_image_orient (&v, o, NULL);
    g_assert_cmpint (out->width * out->height, ==, 6);
    g_assert_cmpint (out->width, ==, o >= 5 ? 2 : 3);
    for (int k = 0; k < 6; k++)
      g_assert_cmpint (out->data[3 * k], ==, want[o][k]);
    dsocr_image_free (out);
  }
  dsocr_image_free (img);
}

static void
test_decode_errors (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "decode_errors");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    const char *name = json_object_get_string_member (e, "file");
    const char *kind = json_object_get_string_member (e, "error");
    int code = g_str_equal (kind, "FORMAT") ? DSOCR_ERROR_FORMAT : DSOCR_ERROR_UNSUPPORTED;
    char *path = image_path (name);
    GError *err = NULL;
    dsocr_image *img = dsocr_image_load (path, NULL, &err);

    g_assert_null (img);
    g_assert_nonnull (err);
    if (!g_error_matches (err, DSOCR_ERROR, code))
      g_error ("%s: expected a %s error, got: %s", name, kind, err->message);
    g_assert_true (g_str_has_prefix (err->message, path));
    g_test_message ("%s", err->message);
    g_clear_error (&err);
    g_free (path);
  }
  g_object_unref (p);
}

static void
test_bad_calls (void)
{
  GError *err = NULL;
  guint8 px[12] = { 0 };
  dsocr_image_view v = { px, 2, 2, 5 };
  dsocr_image *img;

  img = dsocr_image_load ("/nonexistent/dir/page.png", NULL, &err);
  g_assert_null (img);
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_FILE);
  g_assert_true (g_str_has_prefix (err->message, "/nonexistent/dir/page.png: "));
  g_clear_error (&err);

  img = dsocr_image_decode (NULL, 0, NULL, NULL, &err);
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_FORMAT);
  g_clear_error (&err);
  img = dsocr_image_decode ("\x89PNG", 4, "short", NULL, &err);
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
  g_assert_cmpstr (err->message, ==,
                   "short: unsupported image format (only PNG and JPEG are decoded)");
  g_clear_error (&err);

  /* views: stride below 3 * width, empty, over the limits */
  g_assert_false (dsocr_image_view_check (&v, "frame", &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_cmpstr (err->message, ==, "frame: row stride 5 is below 3 * width (6)");
  g_clear_error (&err);
  v.stride = 6;
  g_assert_true (dsocr_image_view_check (&v, "frame", &err));
  v.width = 0;
  g_assert_false (dsocr_image_view_check (&v, "frame", &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  v.width = DSOCR_IMAGE_MAX_SIDE + 1;
  v.height = 1;
  v.stride = 3 * (gsize) v.width;
  g_assert_false (dsocr_image_view_check (&v, "frame", &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  v.width = 20000;
  v.height = 20000;
  g_assert_false (dsocr_image_view_check (&v, "frame", &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  v.data = NULL;
  g_assert_false (dsocr_image_view_check (&v, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_null (dsocr_image_new (0, 3, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_image_free (NULL);
}

/* Every prefix of a few valid files must fail cleanly or decode, never crash (ASan build). */
static void
test_truncations (void)
{
  const char *names[] = { "rgb8-adam7.png", "pal4.png", "rgba16.png", "progressive.jpg",
                          "ycc420.jpg", "exif6.jpg", "rgb8-exif6.png" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GBytes *b = golden_blob (names[i]);
    gsize len;
    const guint8 *d = g_bytes_get_data (b, &len);
    for (gsize cut = 0; cut < len; cut += 1 + cut / 64) {
      GError *err = NULL;
      /* a private copy, so ASan sees reads past the cut */
      guint8 *copy = g_memdup2 (d, cut ? cut : 1);
      dsocr_image *img = dsocr_image_decode (copy, cut, names[i], NULL, &err);
      g_assert_true ((img == NULL) == (err != NULL));
      if (err)
        g_assert_true (err->domain == DSOCR_ERROR);
      dsocr_image_free (img);
      g_clear_error (&err);
      g_free (copy);
    }
    g_bytes_unref (b);
  }
}

/* Flipped bytes inside valid files: any outcome but a crash or a leak. */
static void
test_corruptions (void)
{
  const char *names[] = { "rgb8-adam7.png", "pal8.png", "ycc420.jpg", "exif6-mm.jpg",
                          "rgb8-exif6.png" };
  guint32 state = 12345;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GBytes *b = golden_blob (names[i]);
    gsize len;
    const guint8 *d = g_bytes_get_data (b, &len);
    for (int trial = 0; trial < 200; trial++) {
      guint8 *copy = g_memdup2 (d, len);
      GError *err = NULL;
      dsocr_image *img;
      for (int k = 0; k < 3; k++) {
        state = state * 1664525u + 1013904223u;
        copy[(state >> 8) % len] ^= (guint8) (1u << (state % 8));
      }
      img = dsocr_image_decode (copy, len, names[i], NULL, &err);
      g_assert_true ((img == NULL) == (err != NULL));
      dsocr_image_free (img);
      g_clear_error (&err);
      g_free (copy);
    }
    g_bytes_unref (b);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/image/decode-goldens", test_decode_goldens);
  g_test_add_func ("/image/orientation", test_orientation);
  g_test_add_func ("/image/orient-geometry", test_orient_geometry);
  g_test_add_func ("/image/decode-errors", test_decode_errors);
  g_test_add_func ("/image/bad-calls", test_bad_calls);
  g_test_add_func ("/image/truncations", test_truncations);
  g_test_add_func ("/image/corruptions", test_corruptions);
  return g_test_run ();
}
