/* fuzz-grounding.c: libFuzzer target for the grounding post-processing (dsocr-result.h).
 * Input: a 5-byte header, then the model text (any bytes: NULs, broken UTF-8, broken tags).
 *   bytes 0-1: image width - 1 (little endian), 2-3: height - 1, both cut to the size limit;
 *   byte 4: bit 0 collapse_newlines, bit 1 set a page, bits 2-7 the page index.
 * Parsing must succeed, and the result must hold its invariants: valid UTF-8 everywhere, boxes
 * inside the image, spans inside the raw text, crop numbers in order, JSON that parses back. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include <dsocr/dsocr.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Past the length of any real page (8192 tokens); the replace chain is quadratic in the worst
 * case, as the reference's is. */
#define MAX_TEXT (64 * 1024)

static void
check (const dsocr_result *r)
{
  int w = dsocr_result_get_width (r), h = dsocr_result_get_height (r), n_regions;
  const char *raw = dsocr_result_get_raw_text (r);
  const dsocr_region *regions = dsocr_result_get_regions (r, &n_regions);
  gsize raw_len = strlen (raw), prev_end = 0;
  int next_crop = 0, next_image = 0;
  JsonParser *p;
  char *json;

  if (!g_utf8_validate (raw, -1, NULL) ||
      !g_utf8_validate (dsocr_result_get_markdown (r), -1, NULL))
    __builtin_trap ();
  for (int i = 0; i < n_regions; i++) {
    const dsocr_region *reg = &regions[i];
    if (reg->start < prev_end || reg->end <= reg->start || reg->end > raw_len ||
        !g_str_has_prefix (raw + reg->start, "<|ref|>") || !g_utf8_validate (reg->label, -1, NULL) ||
        !g_utf8_validate (reg->text, -1, NULL) || reg->n_boxes < 0)
      __builtin_trap ();
    prev_end = reg->end;
    if (reg->image_index >= 0) {
      if (reg->image_index != next_image++ || !reg->image_name)
        __builtin_trap ();
    } else if (reg->image_name) {
      __builtin_trap ();
    }
    for (int b = 0; b < reg->n_boxes; b++) {
      const dsocr_box *box = &reg->boxes[b];
      if (box->x1 < 0 || box->x1 > w || box->x2 < 0 || box->x2 > w || box->y1 < 0 ||
          box->y1 > h || box->y2 < 0 || box->y2 > h)
        __builtin_trap ();
      for (int c = 0; c < 4; c++)
        if (!(box->grid[c] >= 0.0 && box->grid[c] <= 999.0))
          __builtin_trap ();
      if (box->empty != (box->x2 <= box->x1 || box->y2 <= box->y1))
        __builtin_trap ();
      if (strcmp (reg->label, "image") == 0) {
        if (box->crop_index != next_crop++ || (box->crop_name == NULL) != box->empty)
          __builtin_trap ();
      } else if (box->crop_index != -1 || box->crop_name) {
        __builtin_trap ();
      }
    }
  }

  json = dsocr_result_to_json (r, FALSE);
  /* JSON allows no raw control character, and compact output has no newline either */
  for (const char *q = json; *q; q++)
    if ((unsigned char) *q < 0x20)
      __builtin_trap ();
  p = json_parser_new ();
  if (!json_parser_load_from_data (p, json, -1, NULL))
    __builtin_trap ();
  g_object_unref (p);
  g_free (json);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  dsocr_result_options opts;
  dsocr_result *r;
  GError *error = NULL;
  char *copy;
  int w, h;

  if (size < 5 || size - 5 > MAX_TEXT)
    return 0;
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
  w = MIN ((data[0] | data[1] << 8) + 1, DSOCR_IMAGE_MAX_SIDE);
  h = MIN ((data[2] | data[3] << 8) + 1, DSOCR_IMAGE_MAX_SIDE);
  dsocr_result_options_init (&opts);
  opts.collapse_newlines = data[4] & 1;
  opts.page = (data[4] & 2) ? data[4] >> 2 : -1;

  /* an exact-size copy, so that a read past the text is an ASan error */
  copy = g_malloc (size - 5 ? size - 5 : 1);
  memcpy (copy, data + 5, size - 5);
  r = dsocr_result_new_from_text_len (copy, (gssize) (size - 5), w, h, &opts, &error);
  g_free (copy);
  if (!r || error)
    __builtin_trap ();
  check (r);
  dsocr_result_free (r);
  return 0;
}
