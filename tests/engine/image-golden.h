/* image-golden.h: helpers shared by test-image.c, test-resize.c and test-preprocess.c:
 * the synthetic source pictures of tests/reference/make_preprocess_goldens.py and access to
 * tests/fixtures/images/ (goldens.json and its .u8 blobs). */
#ifndef DSOCR_IMAGE_GOLDEN_H
#define DSOCR_IMAGE_GOLDEN_H

#include <json-glib/json-glib.h>
#include <string.h>

#include <dsocr/dsocr.h>

#include "dsocr-test.h"

/* synth(w, h, seed) of the golden script: noise, gradients and hard edges in 8x8 blocks. */
static inline dsocr_image *
golden_synth (int w, int h, guint32 seed)
{
  dsocr_image *img = dsocr_image_new (w, h, NULL);

  g_assert_nonnull (img);
  for (guint32 y = 0; y < (guint32) h; y++) {
    for (guint32 x = 0; x < (guint32) w; x++) {
      guint32 region = ((x >> 3) + (y >> 3) + seed) & 3u;
      for (guint32 c = 0; c < 3; c++) {
        guint32 v = x * 0x9E3779B1u + y * 0x85EBCA77u + (c * 0xC2B2AE3Du + seed * 0x27D4EB2Fu);
        guint32 val;
        v ^= v >> 15;
        v *= 0x2C1B3C6Du;
        v ^= v >> 12;
        switch (region) {
        case 0: val = v >> 24; break;
        case 1: val = (x * 255u / (guint32) MAX (w - 1, 1) + c * 40u) & 255u; break;
        case 2: val = (y * 255u / (guint32) MAX (h - 1, 1) + c * 80u) & 255u; break;
        default: val = ((x ^ y) & 4u) ? 255u : 0u; break;
        }
        img->data[(gsize) y * img->stride + 3 * x + c] = (guint8) val;
      }
    }
  }
  return img;
}

/* The parsed goldens.json (transfer full: g_object_unref). */
static inline JsonParser *
golden_index (void)
{
  char *path = dsocr_test_fixture ("images/goldens.json");
  JsonParser *p = json_parser_new ();
  GError *err = NULL;

  json_parser_load_from_file (p, path, &err);
  g_assert_no_error (err);
  g_free (path);
  return p;
}

static inline JsonArray *
golden_array (JsonParser *p, const char *key)
{
  JsonObject *root = json_node_get_object (json_parser_get_root (p));
  g_assert_true (json_object_has_member (root, key));
  return json_object_get_array_member (root, key);
}

/* Contents of fixtures/images/@name (transfer full: g_bytes_unref). */
static inline GBytes *
golden_blob (const char *name)
{
  char *rel = g_build_filename ("images", name, NULL);
  char *path = dsocr_test_fixture (rel);
  char *data = NULL;
  gsize len = 0;
  GError *err = NULL;

  g_file_get_contents (path, &data, &len, &err);
  g_assert_no_error (err);
  g_free (rel);
  g_free (path);
  return g_bytes_new_take (data, len);
}

static inline char *
golden_sha256 (const void *data, gsize len)
{
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
}

static inline int
golden_int (JsonArray *a, guint i)
{
  return (int) json_array_get_int_element (a, i);
}

/* Compares @len bytes of @got with the golden: a raw slice of @blob at member @offset_key
 * (nullable) when stored, else the digest in member @sha_key. Reports the first differing
 * byte. */
static inline void
golden_check_bytes (JsonObject *e, GBytes *blob, const char *offset_key, const char *sha_key,
                    const guint8 *got, gsize len, const char *what)
{
  gint64 off = offset_key && json_object_has_member (e, offset_key)
                   ? json_object_get_int_member (e, offset_key) : -1;
  if (off >= 0) {
    gsize blen;
    const guint8 *want = g_bytes_get_data (blob, &blen);
    g_assert_cmpuint ((gsize) off + len, <=, blen);
    want += off;
    for (gsize i = 0; i < len; i++)
      if (got[i] != want[i])
        g_error ("%s: byte %" G_GSIZE_FORMAT " (pixel %" G_GSIZE_FORMAT ", channel %d) is %d, "
                 "Pillow has %d", what, i, i / 3, (int) (i % 3), got[i], want[i]);
  } else {
    char *sha = golden_sha256 (got, len);
    const char *want = json_object_get_string_member (e, sha_key);
    if (g_strcmp0 (sha, want) != 0)
      g_error ("%s: SHA-256 %s differs from the golden %s", what, sha, want);
    g_free (sha);
  }
}

#endif /* DSOCR_IMAGE_GOLDEN_H */
