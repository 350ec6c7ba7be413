/* dsocr-image.h: 8-bit RGB images, borrowed views of them, and PNG/JPEG loading.
 *
 *   GError *err = NULL;
 *   dsocr_image *img = dsocr_image_load ("page.jpg", NULL, &err);  // EXIF orientation applied
 *   if (!img) {
 *     g_printerr ("%s\n", err->message);   // "page.jpg: JPEG: data is truncated"
 *     g_clear_error (&err);
 *   } else {
 *     dsocr_image_view v = dsocr_image_get_view (img);
 *     ... dsocr_preprocess (&v, &params, &err) ...
 *     dsocr_image_free (img);
 *   }
 *
 * A decoded file becomes exactly what the reference's
 * `ImageOps.exif_transpose(Image.open(f)).convert("RGB")` gives with Pillow: alpha is dropped
 * (not composited), 16-bit PNG samples keep their high byte except 16-bit grey, which Pillow
 * clips to 255, palettes are looked up (indices past the palette are black), CMYK JPEGs use
 * Pillow's inverted-Adobe CMYK->RGB rule. PNG output is byte-exact; JPEG output equals Pillow's
 * wherever both use the same libjpeg-turbo IDCT (see tests/engine/test-image.c for the bound).
 *
 * Pixel data is always R, G, B bytes, 3 per pixel, rows top to bottom.
 */
#ifndef DSOCR_IMAGE_H
#define DSOCR_IMAGE_H

#include <glib.h>

G_BEGIN_DECLS

/* Largest accepted image: no side above DSOCR_IMAGE_MAX_SIDE pixels and no more than
 * DSOCR_IMAGE_MAX_PIXELS pixels in all. Larger inputs fail with DSOCR_ERROR_UNSUPPORTED
 * before any pixel memory is allocated. */
#define DSOCR_IMAGE_MAX_SIDE 32768
#define DSOCR_IMAGE_MAX_PIXELS (1 << 28)

/* A borrowed RGB8 picture, e.g. a mapped GStreamer video frame: nothing is copied and nothing
 * is freed; the caller keeps @data alive for the length of the call it is passed to. */
typedef struct {
  const guint8 *data; /* [height, stride] bytes; the first 3 * width of each row are R,G,B */
  int width;
  int height;
  gsize stride;       /* bytes from one row to the next, >= 3 * width */
} dsocr_image_view;

/* An RGB8 image owning its pixels. */
typedef struct {
  guint8 *data;       /* [height, width, 3] */
  int width;
  int height;
  gsize stride;       /* always 3 * width */
} dsocr_image;

typedef enum {
  DSOCR_IMAGE_FORMAT_PNG = 1,
  DSOCR_IMAGE_FORMAT_JPEG = 2,
} dsocr_image_format;

/* What a decode found out besides the pixels. */
typedef struct {
  dsocr_image_format format;
  int file_width;     /* size as stored, before the orientation was applied */
  int file_height;
  int orientation;    /* EXIF orientation applied, 1 (none) .. 8 */
  int channels;       /* colour channels in the file: 1 grey, 2 grey+alpha, 3, 4 (RGBA/CMYK) */
  int bit_depth;      /* bits per sample in the file: 1, 2, 4, 8 or 16 */
  gboolean palette;
} dsocr_image_info;

/* Returns (transfer full): a zero-filled @width x @height image, or NULL with
 * DSOCR_ERROR_INVALID (a side <= 0), DSOCR_ERROR_UNSUPPORTED (over the size limits) or
 * DSOCR_ERROR_NOMEM. */
dsocr_image *dsocr_image_new (int width, int height, GError **error);

/* Frees @image and its pixels. NULL is a no-op. */
void dsocr_image_free (dsocr_image *image);

/* Returns a view of @image's pixels (transfer none: valid while @image lives). */
dsocr_image_view dsocr_image_get_view (const dsocr_image *image);

/* Returns (transfer full): a packed copy of @view, or NULL with the error of
 * dsocr_image_view_check(). */
dsocr_image *dsocr_image_copy (const dsocr_image_view *view, GError **error);

/* Checks that @view is usable: data set, sides in 1..DSOCR_IMAGE_MAX_SIDE, at most
 * DSOCR_IMAGE_MAX_PIXELS pixels, stride >= 3 * width. @what names the image in the message. */
gboolean dsocr_image_view_check (const dsocr_image_view *view, const char *what, GError **error);

/* Decodes a PNG or JPEG file held in memory, applies its EXIF orientation (JPEG APP1 Exif,
 * PNG eXIf; XMP tiff:Orientation when EXIF has none) the way Pillow's
 * ImageOps.exif_transpose does, and converts it to RGB as Pillow's convert("RGB") does.
 * @name names the data in error messages. @info (out, nullable) receives what was found.
 * Returns (transfer full) the image, or NULL with DSOCR_ERROR_UNSUPPORTED (not PNG/JPEG, too
 * large), DSOCR_ERROR_FORMAT (malformed, truncated, zero size) or DSOCR_ERROR_NOMEM; the
 * message starts with @name. */
dsocr_image *dsocr_image_decode (const void *data, gsize size, const char *name,
                                 dsocr_image_info *info, GError **error);

/* Reads @path and decodes it as dsocr_image_decode() does. Fails with DSOCR_ERROR_FILE when
 * the file cannot be read. Returns (transfer full). */
dsocr_image *dsocr_image_load (const char *path, dsocr_image_info *info, GError **error);

/* Returns (transfer full) @view transposed as EXIF @orientation asks (2: mirror, 3: rotate
 * 180, 4: flip, 5: transpose, 6: rotate 90 clockwise, 7: transverse, 8: rotate 90
 * counter-clockwise; 1 or any other value: a plain copy), or NULL with the error of
 * dsocr_image_view_check(). */
dsocr_image *dsocr_image_orient (const dsocr_image_view *view, int orientation,
                                 GError **error);

G_END_DECLS

#endif /* DSOCR_IMAGE_H */
