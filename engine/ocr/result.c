/* result.c: what is made from a dsocr_result: its JSON form and the crops of its image regions.
 * Only the public getters of dsocr-result.h are used here; grounding.c builds the result. */
#include "dsocr/dsocr-result.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <jerror.h>
#include <jpeglib.h>
#include <json-glib/json-glib.h>

#include "dsocr/dsocr-error.h"

/* ---- JSON ---- */

/* A grid value as the model wrote it: an integer stays an integer. */
static void
add_grid_value (JsonBuilder *b, double v)
{
  if (v == floor (v) && fabs (v) < 1e15)
    json_builder_add_int_value (b, (gint64) v);
  else
    json_builder_add_double_value (b, v);
}

static void
add_box (JsonBuilder *b, const dsocr_box *box)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "box");
  json_builder_begin_array (b);
  json_builder_add_int_value (b, box->x1);
  json_builder_add_int_value (b, box->y1);
  json_builder_add_int_value (b, box->x2);
  json_builder_add_int_value (b, box->y2);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "box_999");
  json_builder_begin_array (b);
  for (int c = 0; c < 4; c++)
    add_grid_value (b, box->grid[c]);
  json_builder_end_array (b);
  if (box->crop_name) {
    json_builder_set_member_name (b, "crop");
    json_builder_add_string_value (b, box->crop_name);
  }
  json_builder_set_member_name (b, "empty");
  json_builder_add_boolean_value (b, box->empty);
  json_builder_set_member_name (b, "malformed");
  json_builder_add_boolean_value (b, box->malformed);
  json_builder_end_object (b);
}

/* json-glib (1.6 at least) writes U+001F into strings unescaped, which JSON forbids and strict
 * readers refuse. Outside strings the generator never emits that byte, and in UTF-8 it stands
 * only for U+001F, so every 0x1f byte is replaced. Takes and returns (transfer full). */
static char *
escape_unit_separator (char *json)
{
  GString *s;

  if (!strchr (json, '\x1f'))
    return json;
  s = g_string_sized_new (strlen (json) + 16);
  for (const char *p = json; *p; p++) {
    if (*p == '\x1f')
      g_string_append (s, "\\u001f");
    else
      g_string_append_c (s, *p);
  }
  g_free (json);
  return g_string_free (s, FALSE);
}

char *
dsocr_result_to_json (const dsocr_result *result, gboolean pretty)
{
  JsonBuilder *b;
  JsonGenerator *gen;
  JsonNode *root;
  const dsocr_region *regions;
  dsocr_result_flags flags;
  int n_regions;
  char *out;

  g_return_val_if_fail (result != NULL, NULL);
  regions = dsocr_result_get_regions (result, &n_regions);
  flags = dsocr_result_get_flags (result);

  b = json_builder_new ();
  json_builder_begin_object (b);
  if (dsocr_result_get_page (result) >= 0) {
    json_builder_set_member_name (b, "page");
    json_builder_add_int_value (b, dsocr_result_get_page (result));
  }
  json_builder_set_member_name (b, "width");
  json_builder_add_int_value (b, dsocr_result_get_width (result));
  json_builder_set_member_name (b, "height");
  json_builder_add_int_value (b, dsocr_result_get_height (result));

  json_builder_set_member_name (b, "flags");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "hit_token_limit");
  json_builder_add_boolean_value (b, (flags & DSOCR_RESULT_HIT_TOKEN_LIMIT) != 0);
  json_builder_set_member_name (b, "repetition_stopped");
  json_builder_add_boolean_value (b, (flags & DSOCR_RESULT_REPETITION_STOPPED) != 0);
  json_builder_set_member_name (b, "malformed");
  json_builder_add_boolean_value (b, (flags & DSOCR_RESULT_MALFORMED) != 0);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "regions");
  json_builder_begin_array (b);
  for (int i = 0; i < n_regions; i++) {
    const dsocr_region *reg = &regions[i];
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "label");
    json_builder_add_string_value (b, reg->label);
    if (reg->image_name) {
      json_builder_set_member_name (b, "image");
      json_builder_add_string_value (b, reg->image_name);
    }
    json_builder_set_member_name (b, "boxes");
    json_builder_begin_array (b);
    for (int j = 0; j < reg->n_boxes; j++)
      add_box (b, &reg->boxes[j]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "text");
    json_builder_add_string_value (b, reg->text);
    json_builder_set_member_name (b, "span");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, (gint64) reg->start);
    json_builder_add_int_value (b, (gint64) reg->end);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "malformed");
    json_builder_add_boolean_value (b, reg->malformed);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "markdown");
  json_builder_add_string_value (b, dsocr_result_get_markdown (result));
  json_builder_set_member_name (b, "raw");
  json_builder_add_string_value (b, dsocr_result_get_raw_text (result));
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  gen = json_generator_new ();
  json_generator_set_pretty (gen, pretty);
  json_generator_set_indent (gen, 2);
  json_generator_set_root (gen, root);
  out = json_generator_to_data (gen, NULL);
  g_object_unref (gen);
  json_node_unref (root);
  g_object_unref (b);
  return escape_unit_separator (out);
}

/* ---- crops ---- */

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} crop_jpeg_error;

static void
crop_jpeg_on_error (j_common_ptr cinfo)
{
  crop_jpeg_error *err = (crop_jpeg_error *) cinfo->err;
  err->pub.format_message (cinfo, err->message);
  longjmp (err->jump, 1);
}

static void
crop_jpeg_silent (j_common_ptr cinfo)
{
  (void) cinfo;
}

/* Encodes the @w x @h block at (@x, @y) of @image as a baseline JFIF JPEG, libjpeg's defaults
 * (4:2:0, islow DCT, standard Huffman tables) at @quality: what Pillow's save() asks of
 * libjpeg for an RGB image. Returns (transfer full, free()) the file bytes in *@out. */
static gboolean
encode_crop (const dsocr_image_view *image, int x, int y, int w, int h, int quality,
             unsigned char **out, unsigned long *out_len, char *message, gsize message_size)
{
  struct jpeg_compress_struct ci;
  crop_jpeg_error err;
  unsigned char *volatile buf = NULL;
  unsigned long buf_len = 0;

  memset (&ci, 0, sizeof ci);
  ci.err = jpeg_std_error (&err.pub);
  err.pub.error_exit = crop_jpeg_on_error;
  err.pub.output_message = crop_jpeg_silent;
  err.message[0] = '\0';
  if (setjmp (err.jump)) {
    g_strlcpy (message, err.message, message_size);
    jpeg_destroy_compress (&ci);
    free (buf);
    return FALSE;
  }
  jpeg_create_compress (&ci);
  jpeg_mem_dest (&ci, (unsigned char **) &buf, &buf_len);
  ci.image_width = (JDIMENSION) w;
  ci.image_height = (JDIMENSION) h;
  ci.input_components = 3;
  ci.in_color_space = JCS_RGB;
  jpeg_set_defaults (&ci);
  jpeg_set_quality (&ci, quality, TRUE);
  jpeg_start_compress (&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = (JSAMPROW) (image->data + (gsize) (y + (int) ci.next_scanline) * image->stride +
                               (gsize) x * 3);
    jpeg_write_scanlines (&ci, &row, 1);
  }
  jpeg_finish_compress (&ci);
  jpeg_destroy_compress (&ci);
  *out = buf;
  *out_len = buf_len;
  return TRUE;
}

gboolean
dsocr_result_write_crops (const dsocr_result *result, const dsocr_image_view *image,
                          const char *out_dir, int quality, int *n_written, GError **error)
{
  const dsocr_region *regions;
  int n_regions, written = 0;
  gboolean made_dir = FALSE;

  g_return_val_if_fail (result != NULL && out_dir != NULL, FALSE);
  if (n_written)
    *n_written = 0;
  if (!dsocr_image_view_check (image, "crops", error))
    return FALSE;
  if (image->width != dsocr_result_get_width (result) ||
      image->height != dsocr_result_get_height (result)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "crops: the image is %dx%d but the result was made for %dx%d", image->width,
                 image->height, dsocr_result_get_width (result),
                 dsocr_result_get_height (result));
    return FALSE;
  }
  if (quality < 1 || quality > 100) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "crops: JPEG quality %d is outside 1..100", quality);
    return FALSE;
  }

  regions = dsocr_result_get_regions (result, &n_regions);
  for (int i = 0; i < n_regions; i++) {
    for (int j = 0; j < regions[i].n_boxes; j++) {
      const dsocr_box *box = &regions[i].boxes[j];
      unsigned char *jpeg = NULL;
      unsigned long jpeg_len = 0;
      char message[JMSG_LENGTH_MAX];
      char *path;
      GError *werr = NULL;

      if (!box->crop_name)
        continue;      // not an image region, or an empty box: the reference saves nothing
      if (!made_dir) {
        char *dir = g_build_filename (out_dir, "images", NULL);
        if (g_mkdir_with_parents (dir, 0755) != 0) {
          int e = errno;
          g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: cannot create: %s", dir,
                       g_strerror (e));
          g_free (dir);
          return FALSE;
        }
        g_free (dir);
        made_dir = TRUE;
      }
      /* Pillow's crop((x1, y1, x2, y2)): columns x1..x2-1, rows y1..y2-1 */
      if (!encode_crop (image, box->x1, box->y1, box->x2 - box->x1, box->y2 - box->y1, quality,
                        &jpeg, &jpeg_len, message, sizeof message)) {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "%s: JPEG encoding failed: %s",
                     box->crop_name, message);
        return FALSE;
      }
      path = g_build_filename (out_dir, box->crop_name, NULL);
      if (!g_file_set_contents (path, (const char *) jpeg, (gssize) jpeg_len, &werr)) {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s", werr->message);
        g_error_free (werr);
        g_free (path);
        free (jpeg);
        return FALSE;
      }
      g_free (path);
      free (jpeg);
      written++;
      if (n_written)
        *n_written = written;
    }
  }
  return TRUE;
}
