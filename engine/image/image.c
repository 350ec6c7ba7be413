/* image.c: RGB8 images, PNG (libpng) and JPEG (libjpeg) decoding, EXIF orientation.
 *
 * The target is what the reference feeds the model:
 *   ImageOps.exif_transpose(Image.open(path)).convert("RGB")
 * so every conversion below follows Pillow's rules (PngImagePlugin's mode table, Convert.c,
 * JpegImagePlugin's CMYK handling, Image.getexif's XMP fallback), not libpng's or libjpeg's
 * own colour transforms.
 */
#include "dsocr/dsocr-image.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "dsocr/dsocr-error.h"

/* ---- images and views ---- */

static gboolean
check_size (int width, int height, const char *what, GError **error)
{
  if (width <= 0 || height <= 0) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "%s: image size %dx%d is empty",
                 what, width, height);
    return FALSE;
  }
  if (width > DSOCR_IMAGE_MAX_SIDE || height > DSOCR_IMAGE_MAX_SIDE ||
      (gint64) width * height > DSOCR_IMAGE_MAX_PIXELS) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: image size %dx%d is over the limit (%d px per side, %d pixels)", what,
                 width, height, DSOCR_IMAGE_MAX_SIDE, DSOCR_IMAGE_MAX_PIXELS);
    return FALSE;
  }
  return TRUE;
}

dsocr_image *
dsocr_image_new (int width, int height, GError **error)
{
  dsocr_image *img;

  if (!check_size (width, height, "new image", error))
    return NULL;
  img = g_new0 (dsocr_image, 1);
  img->width = width;
  img->height = height;
  img->stride = (gsize) width * 3;
  img->data = g_try_malloc0 (img->stride * (gsize) height);
  if (!img->data) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "cannot allocate a %dx%d image", width,
                 height);
    g_free (img);
    return NULL;
  }
  return img;
}

void
dsocr_image_free (dsocr_image *image)
{
  if (!image)
    return;
  g_free (image->data);
  g_free (image);
}

dsocr_image_view
dsocr_image_get_view (const dsocr_image *image)
{
  dsocr_image_view v = { image->data, image->width, image->height, image->stride };
  return v;
}

gboolean
dsocr_image_view_check (const dsocr_image_view *view, const char *what, GError **error)
{
  if (!what)
    what = "image";
  if (!view || !view->data) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "%s: no pixel data", what);
    return FALSE;
  }
  if (!check_size (view->width, view->height, what, error))
    return FALSE;
  if (view->stride < (gsize) view->width * 3) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "%s: row stride %" G_GSIZE_FORMAT " is below 3 * width (%d)", what,
                 view->stride, view->width * 3);
    return FALSE;
  }
  return TRUE;
}

dsocr_image *
dsocr_image_copy (const dsocr_image_view *view, GError **error)
{
  dsocr_image *img;

  if (!dsocr_image_view_check (view, "image", error))
    return NULL;
  img = dsocr_image_new (view->width, view->height, error);
  if (!img)
    return NULL;
  for (int y = 0; y < view->height; y++)
    memcpy (img->data + (gsize) y * img->stride, view->data + (gsize) y * view->stride,
            img->stride);
  return img;
}

/* ---- orientation ---- */

dsocr_image *
dsocr_image_orient (const dsocr_image_view *view, int orientation, GError **error)
{
  dsocr_image *out;
  int w, h, ow, oh;
  gboolean swap = orientation >= 5 && orientation <= 8;

  if (!dsocr_image_view_check (view, "image", error))
    return NULL;
  if (orientation < 2 || orientation > 8)
    return dsocr_image_copy (view, error);
  w = view->width;
  h = view->height;
  ow = swap ? h : w;
  oh = swap ? w : h;
  out = dsocr_image_new (ow, oh, error);
  if (!out)
    return NULL;
  /* For each output pixel (x, y), the source pixel (sx, sy) of Pillow's Transpose method:
   * 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270,
   * 7 TRANSVERSE, 8 ROTATE_90 (Pillow's rotations are counter-clockwise). */
  for (int y = 0; y < oh; y++) {
    guint8 *dst = out->data + (gsize) y * out->stride;
    for (int x = 0; x < ow; x++) {
      int sx, sy;
      switch (orientation) {
      case 2: sx = w - 1 - x; sy = y; break;
      case 3: sx = w - 1 - x; sy = h - 1 - y; break;
      case 4: sx = x; sy = h - 1 - y; break;
      case 5: sx = y; sy = x; break;
      case 6: sx = y; sy = h - 1 - x; break;
      case 7: sx = w - 1 - y; sy = h - 1 - x; break;
      default: sx = w - 1 - y; sy = x; break; /* 8 */
      }
      memcpy (dst + 3 * x, view->data + (gsize) sy * view->stride + 3 * (gsize) sx, 3);
    }
  }
  return out;
}

/* ---- EXIF / XMP orientation ---- */

#define ORIENTATION_ABSENT (-1)

static guint32
rd16 (const guint8 *p, gboolean be)
{
  return be ? (guint32) (p[0] << 8 | p[1]) : (guint32) (p[1] << 8 | p[0]);
}

static guint32
rd32 (const guint8 *p, gboolean be)
{
  return be ? ((guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3])
            : ((guint32) p[3] << 24 | (guint32) p[2] << 16 | (guint32) p[1] << 8 | p[0]);
}

/* Orientation tag (0x0112) of IFD0 in an EXIF block ("Exif\0\0" prefixes allowed: Pillow's
 * Exif.load strips up to two). Returns ORIENTATION_ABSENT when there is no such tag, else the
 * transpose to apply (1 for none). Entries are read until the data ends, as Pillow keeps the
 * tags read before a truncation; a later duplicate wins, as in Pillow's dict. A tag with
 * several values or a non-integer type is present but applies no transpose. */
static int
exif_orientation (const guint8 *d, gsize n)
{
  int result = ORIENTATION_ABSENT;
  gboolean be;
  guint32 ifd, count;

  for (int i = 0; i < 2 && n >= 6 && memcmp (d, "Exif\0\0", 6) == 0; i++) {
    d += 6;
    n -= 6;
  }
  if (n < 8)
    return ORIENTATION_ABSENT;
  if (memcmp (d, "II*\0", 4) == 0)
    be = FALSE;
  else if (memcmp (d, "MM\0*", 4) == 0)
    be = TRUE;
  else
    return ORIENTATION_ABSENT;
  ifd = rd32 (d + 4, be);
  if (ifd > n || n - ifd < 2)
    return ORIENTATION_ABSENT;
  count = rd16 (d + ifd, be);
  for (guint32 i = 0; i < count; i++) {
    gsize off = (gsize) ifd + 2 + (gsize) i * 12;
    const guint8 *e = d + off;
    gint64 v;
    if (off + 12 > n)
      break;
    if (rd16 (e, be) != 0x0112 || rd32 (e + 4, be) == 0)
      continue;
    switch (rd32 (e + 4, be) == 1 ? rd16 (e + 2, be) : 0) {
    case 1: v = e[8]; break;                          /* BYTE */
    case 6: v = (gint8) e[8]; break;                  /* SBYTE */
    case 3: v = rd16 (e + 8, be); break;              /* SHORT */
    case 8: v = (gint16) rd16 (e + 8, be); break;     /* SSHORT */
    case 4: v = rd32 (e + 8, be); break;              /* LONG */
    case 9: v = (gint32) rd32 (e + 8, be); break;     /* SLONG */
    default: v = 1; break;
    }
    result = v >= 2 && v <= 8 ? (int) v : 1;
  }
  return result;
}

/* Pillow's XMP fallback: the first match of the regex `tiff:Orientation(="|>)([0-9])`. */
static int
xmp_orientation (const guint8 *d, gsize n)
{
  static const char key[] = "tiff:Orientation";
  const gsize klen = sizeof key - 1;

  for (gsize i = 0; i + klen + 2 <= n; i++) {
    const guint8 *p = d + i + klen;
    if (d[i] != 't' || memcmp (d + i, key, klen) != 0)
      continue;
    if (p[0] == '>' && g_ascii_isdigit (p[1]))
      return p[1] - '0';
    if (p[0] == '=' && i + klen + 3 <= n && p[1] == '"' && g_ascii_isdigit (p[2]))
      return p[2] - '0';
  }
  return ORIENTATION_ABSENT;
}

static int
pick_orientation (const guint8 *exif, gsize exif_len, const guint8 *xmp, gsize xmp_len)
{
  int o = exif ? exif_orientation (exif, exif_len) : ORIENTATION_ABSENT;
  if (o == ORIENTATION_ABSENT && xmp)
    o = xmp_orientation (xmp, xmp_len);
  return o >= 2 && o <= 8 ? o : 1;
}

/* ---- PNG ---- */

typedef struct {
  const char *name;
  png_structp png;
  png_infop info;
  char msg[256];
  int code;                   /* DSOCR_ERROR_* of a failure raised by the callbacks */
  guint32 w, h;
  int bit_depth, color_type, interlaced;
  int channels;               /* samples per pixel */
  int bps;                    /* bytes per sample after png_set_packing: 1 or 2 */
  png_colorp palette;
  int n_palette;
  dsocr_image *out;
  guint8 *native;             /* interlaced only: [h, w * channels * bps] */
  guint32 pass_rows[7];
  guint64 rows_seen;
  guint64 rows_expected;
} png_state;

static void
png_on_error (png_structp png, png_const_charp msg)
{
  png_state *st = png_get_error_ptr (png);
  if (st->msg[0] == '\0')
    g_strlcpy (st->msg, msg, sizeof st->msg);
  png_longjmp (png, 1);
}

static void
png_on_warning (png_structp png, png_const_charp msg)
{
}

/* One row in the file's sample layout (after png_set_packing) to RGB, by Pillow's rules. */
static void
png_row_to_rgb (const png_state *st, const guint8 *in, guint8 *out)
{
  guint32 w = st->w;

  switch (st->color_type) {
  case PNG_COLOR_TYPE_GRAY:
    if (st->bit_depth == 16) {
      /* mode I;16 -> RGB clips at 255 (Convert.c I16_RGB) */
      for (guint32 x = 0; x < w; x++) {
        guint8 v = in[2 * x] ? 255 : in[2 * x + 1];
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
    } else {
      /* 1/2/4-bit grey unpack to full range ("1", "L;2", "L;4" rawmodes) */
      int mul = st->bit_depth == 1 ? 255 : st->bit_depth == 2 ? 85 : st->bit_depth == 4 ? 17 : 1;
      for (guint32 x = 0; x < w; x++) {
        guint8 v = (guint8) (in[x] * mul);
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
    }
    break;
  case PNG_COLOR_TYPE_GRAY_ALPHA: {
    int step = 2 * st->bps;
    for (guint32 x = 0; x < w; x++) {
      guint8 v = in[step * x]; /* the high byte when 16-bit ("LA;16B") */
      out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
    }
    break;
  }
  case PNG_COLOR_TYPE_RGB:
  case PNG_COLOR_TYPE_RGB_ALPHA: {
    int step = st->channels * st->bps;
    if (step == 3) {
      memcpy (out, in, 3 * (gsize) w);
      break;
    }
    for (guint32 x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        out[3 * x + c] = in[step * x + c * st->bps];
    break;
  }
  case PNG_COLOR_TYPE_PALETTE:
    for (guint32 x = 0; x < w; x++) {
      int i = in[x];
      if (i < st->n_palette) {
        out[3 * x] = st->palette[i].red;
        out[3 * x + 1] = st->palette[i].green;
        out[3 * x + 2] = st->palette[i].blue;
      } else {
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = 0;
      }
    }
    break;
  default:
    break;
  }
}

static void
png_fail (png_state *st, int code, const char *msg)
{
  st->code = code;
  g_strlcpy (st->msg, msg, sizeof st->msg);
  png_longjmp (st->png, 1);
}

static void
png_on_info (png_structp png, png_infop info)
{
  png_state *st = png_get_progressive_ptr (png);
  png_uint_32 w, h;
  int bd, ct, il;

  png_get_IHDR (png, info, &w, &h, &bd, &ct, &il, NULL, NULL);
  st->w = w;
  st->h = h;
  st->bit_depth = bd;
  st->color_type = ct;
  st->interlaced = il != PNG_INTERLACE_NONE;
  if (w == 0 || h == 0)
    png_fail (st, DSOCR_ERROR_FORMAT, "image size is zero");
  if (w > DSOCR_IMAGE_MAX_SIDE || h > DSOCR_IMAGE_MAX_SIDE ||
      (guint64) w * h > DSOCR_IMAGE_MAX_PIXELS) {
    char m[200];
    g_snprintf (m, sizeof m, "image size %ux%u is over the limit (%d px per side, %d pixels)",
                (unsigned) w, (unsigned) h, DSOCR_IMAGE_MAX_SIDE, DSOCR_IMAGE_MAX_PIXELS);
    png_fail (st, DSOCR_ERROR_UNSUPPORTED, m);
  }
  st->channels = png_get_channels (png, info);
  st->bps = bd == 16 ? 2 : 1;
  if (bd < 8)
    png_set_packing (png);
  if (ct == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE (png, info, &st->palette, &st->n_palette))
    png_fail (st, DSOCR_ERROR_FORMAT, "palette image without a PLTE chunk");
  png_read_update_info (png, info);

  st->out = dsocr_image_new ((int) w, (int) h, NULL);
  if (!st->out)
    png_fail (st, DSOCR_ERROR_NOMEM, "cannot allocate the image");
  if (st->interlaced) {
    gsize row = (gsize) w * st->channels * st->bps;
    st->native = g_try_malloc (row * h);
    if (!st->native)
      png_fail (st, DSOCR_ERROR_NOMEM, "cannot allocate the de-interlacing buffer");
    st->rows_expected = 0;
    for (int p = 0; p < 7; p++)
      if (PNG_PASS_COLS (w, p) > 0)
        st->rows_expected += PNG_PASS_ROWS (h, p);
  } else {
    st->rows_expected = h;
  }
}

static void
png_on_row (png_structp png, png_bytep row, png_uint_32 row_num, int pass)
{
  png_state *st = png_get_progressive_ptr (png);

  if (!row || !st->out)
    return;
  if (!st->interlaced) {
    if (row_num >= st->h)
      png_fail (st, DSOCR_ERROR_FORMAT, "row number out of range");
    png_row_to_rgb (st, row, st->out->data + (gsize) row_num * st->out->stride);
  } else {
    /* Without libpng's interlace handling each call carries one row of one Adam7 pass,
     * in order; place its pixels into the full-size buffer. */
    gsize px = (gsize) st->channels * st->bps;
    gsize stride = (gsize) st->w * px;
    guint32 idx, y, cols;
    if (pass < 0 || pass > 6)
      png_fail (st, DSOCR_ERROR_FORMAT, "bad interlace pass");
    idx = st->pass_rows[pass]++;
    if (idx >= PNG_PASS_ROWS (st->h, pass))
      png_fail (st, DSOCR_ERROR_FORMAT, "too many rows in an interlace pass");
    y = PNG_ROW_FROM_PASS_ROW (idx, pass);
    cols = PNG_PASS_COLS (st->w, pass);
    for (guint32 i = 0; i < cols; i++)
      memcpy (st->native + y * stride + PNG_COL_FROM_PASS_COL (i, pass) * px, row + i * px, px);
  }
  st->rows_seen++;
}

static void
png_on_end (png_structp png, png_infop info)
{
}

/* libpng's progressive reader skips eXIf, so the chunk list is walked here; as in Pillow's
 * PngStream, the last eXIf chunk wins. */
static const guint8 *
png_find_exif (const guint8 *d, gsize n, gsize *len)
{
  const guint8 *found = NULL;

  *len = 0;
  for (gsize pos = 8; pos + 12 <= n;) {
    guint32 clen = rd32 (d + pos, TRUE);
    if (clen > n - pos - 12)
      break;
    if (memcmp (d + pos + 4, "eXIf", 4) == 0) {
      found = d + pos + 8;
      *len = clen;
    } else if (memcmp (d + pos + 4, "IEND", 4) == 0) {
      break;
    }
    pos += 12 + (gsize) clen;
  }
  return found;
}

/* After the last row: de-interlaces if needed and returns the EXIF orientation (eXIf chunk,
 * else an XMP packet in an "XML:com.adobe.xmp" text chunk) of the PNG @data. */
static int
png_finish (png_state *st, const guint8 *data, gsize size)
{
  gsize exif_len;
  const guint8 *exif = png_find_exif (data, size, &exif_len);
  png_textp text = NULL;
  int n_text = 0;
  const guint8 *xmp = NULL;
  gsize xmp_len = 0;

  if (st->interlaced) {
    gsize row = (gsize) st->w * st->channels * st->bps;
    for (guint32 y = 0; y < st->h; y++)
      png_row_to_rgb (st, st->native + y * row, st->out->data + (gsize) y * st->out->stride);
  }
  png_get_text (st->png, st->info, &text, &n_text);
  for (int i = 0; i < n_text; i++) {
    if (strcmp (text[i].key, "XML:com.adobe.xmp") == 0) {
      xmp = (const guint8 *) text[i].text;
      xmp_len = text[i].compression > 0 ? text[i].itxt_length : text[i].text_length;
    }
  }
  return pick_orientation (exif, exif_len, xmp, xmp_len);
}

/* Returns the EXIF orientation (1..8) of the decoded st->out, or 0 with @error set. */
static int
png_decode (const guint8 *data, gsize size, png_state *st, GError **error)
{
  int orientation;

  st->png = png_create_read_struct (PNG_LIBPNG_VER_STRING, st, png_on_error, png_on_warning);
  if (st->png)
    st->info = png_create_info_struct (st->png);
  if (!st->png || !st->info) {
    png_destroy_read_struct (&st->png, NULL, NULL);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "%s: cannot create a PNG reader",
                 st->name);
    return 0;
  }
  if (setjmp (png_jmpbuf (st->png))) {
    /* Pillow stops reading once every row is decoded and ignores what follows (a missing
     * IEND, junk after the image data), so an error after the last row is no failure. */
    if (st->out && st->rows_expected > 0 && st->rows_seen == st->rows_expected) {
      orientation = png_finish (st, data, size);
      png_destroy_read_struct (&st->png, &st->info, NULL);
      return orientation;
    }
    if (st->code == 0)
      st->code = DSOCR_ERROR_FORMAT;
    g_set_error (error, DSOCR_ERROR, st->code, "%s: PNG: %s", st->name,
                 st->msg[0] ? st->msg : "decoding failed");
    png_destroy_read_struct (&st->png, &st->info, NULL);
    return 0;
  }
#ifdef PNG_SET_OPTION_SUPPORTED
  png_set_option (st->png, PNG_SKIP_sRGB_CHECK_PROFILE, PNG_OPTION_ON);
#endif
  png_set_benign_errors (st->png, 1);
  /* libpng's own limit (1e6 px) would answer first for some sizes; ours is the one to see */
  png_set_user_limits (st->png, 0x7fffffff, 0x7fffffff);
  png_set_progressive_read_fn (st->png, st, png_on_info, png_on_row, png_on_end);
  /* The progressive reader returns quietly when data runs out; completeness is judged by the
   * rows seen. png_process_data takes a non-const pointer but does not write through it. */
  png_process_data (st->png, st->info, (png_bytep) data, size);
  if (!st->out || st->rows_seen < st->rows_expected) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: PNG: data is truncated (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                 " rows decoded)", st->name, st->rows_seen, st->rows_expected);
    png_destroy_read_struct (&st->png, &st->info, NULL);
    return 0;
  }
  orientation = png_finish (st, data, size);
  png_destroy_read_struct (&st->png, &st->info, NULL);
  return orientation;
}

/* ---- JPEG ---- */

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
  int code;
} jpeg_err;

static void
jpeg_on_error (j_common_ptr cinfo)
{
  jpeg_err *e = (jpeg_err *) cinfo->err;
  e->pub.format_message (cinfo, e->msg);
  longjmp (e->jump, 1);
}

static void
jpeg_on_message (j_common_ptr cinfo, int level)
{
  jpeg_err *e = (jpeg_err *) cinfo->err;
  /* Pillow refuses a JPEG whose data ends early (no EOI included); other warnings (corrupt
   * but decodable data) it accepts, and so does this. */
  if (level < 0 && e->pub.msg_code == JWRN_JPEG_EOF) {
    g_strlcpy (e->msg, "data is truncated", sizeof e->msg);
    e->code = DSOCR_ERROR_FORMAT;
    longjmp (e->jump, 1);
  }
}

static void
jpeg_on_output (j_common_ptr cinfo)
{
}

typedef struct {
  struct jpeg_decompress_struct cinfo;
  jpeg_err err;
  dsocr_image *out;
  guint8 *row;                 /* [output_width * components] */
  GByteArray *exif;
  const guint8 *xmp;
  gsize xmp_len;
} jpeg_state;

/* Pillow's cmyk2rgb with MULDIV255, after inverting the samples as rawmode "CMYK;I" does
 * (JpegImagePlugin always assumes Adobe's inverted CMYK). */
static inline guint8
cmyk_channel (int c, int nk)
{
  int tmp = c * nk + 128;
  int v = nk - (((tmp >> 8) + tmp) >> 8);
  return (guint8) CLAMP (v, 0, 255);
}

static int
jpeg_decode (const guint8 *data, gsize size, const char *name, jpeg_state *st,
             dsocr_image_info *info, GError **error)
{
  struct jpeg_decompress_struct *ci = &st->cinfo;
  int comps;

  ci->err = jpeg_std_error (&st->err.pub);
  st->err.pub.error_exit = jpeg_on_error;
  st->err.pub.emit_message = jpeg_on_message;
  st->err.pub.output_message = jpeg_on_output;
  if (setjmp (st->err.jump)) {
    g_set_error (error, DSOCR_ERROR, st->err.code ? st->err.code : DSOCR_ERROR_FORMAT,
                 "%s: JPEG: %s", name, st->err.msg);
    jpeg_destroy_decompress (ci);
    return 0;
  }
  jpeg_create_decompress (ci);
  if (size > G_MAXULONG) {
    g_strlcpy (st->err.msg, "file too large", sizeof st->err.msg);
    st->err.code = DSOCR_ERROR_UNSUPPORTED;
    longjmp (st->err.jump, 1);
  }
  jpeg_mem_src (ci, data, (unsigned long) size);
  jpeg_save_markers (ci, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header (ci, TRUE);

  if (ci->image_width > DSOCR_IMAGE_MAX_SIDE || ci->image_height > DSOCR_IMAGE_MAX_SIDE ||
      (guint64) ci->image_width * ci->image_height > DSOCR_IMAGE_MAX_PIXELS) {
    g_snprintf (st->err.msg, sizeof st->err.msg,
                "image size %ux%u is over the limit (%d px per side, %d pixels)",
                ci->image_width, ci->image_height, DSOCR_IMAGE_MAX_SIDE, DSOCR_IMAGE_MAX_PIXELS);
    st->err.code = DSOCR_ERROR_UNSUPPORTED;
    longjmp (st->err.jump, 1);
  }
  comps = ci->num_components;
  if (comps != 1 && comps != 3 && comps != 4) {
    g_snprintf (st->err.msg, sizeof st->err.msg, "%d colour components are not supported",
                comps);
    st->err.code = DSOCR_ERROR_UNSUPPORTED;
    longjmp (st->err.jump, 1);
  }
  ci->out_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;

  for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
    static const char xmp_id[] = "http://ns.adobe.com/xap/1.0/";
    if (m->marker != JPEG_APP0 + 1)
      continue;
    if (m->data_length >= 6 && memcmp (m->data, "Exif\0\0", 6) == 0) {
      /* JpegImagePlugin joins every Exif segment, dropping the prefix of the later ones */
      if (!st->exif)
        st->exif = g_byte_array_new_take (g_memdup2 (m->data, m->data_length), m->data_length);
      else
        g_byte_array_append (st->exif, m->data + 6, m->data_length - 6);
    } else if (m->data_length >= sizeof xmp_id &&
               memcmp (m->data, xmp_id, sizeof xmp_id) == 0) {
      st->xmp = m->data + sizeof xmp_id;
      st->xmp_len = m->data_length - sizeof xmp_id;
    }
  }
  info->orientation = pick_orientation (st->exif ? st->exif->data : NULL,
                                        st->exif ? st->exif->len : 0, st->xmp, st->xmp_len);

  jpeg_start_decompress (ci);
  if (ci->output_components != comps) {
    g_strlcpy (st->err.msg, "unexpected JPEG output layout", sizeof st->err.msg);
    longjmp (st->err.jump, 1);
  }
  st->out = dsocr_image_new ((int) ci->output_width, (int) ci->output_height, NULL);
  st->row = g_try_malloc ((gsize) ci->output_width * comps);
  if (!st->out || !st->row) {
    g_strlcpy (st->err.msg, "cannot allocate the image", sizeof st->err.msg);
    st->err.code = DSOCR_ERROR_NOMEM;
    longjmp (st->err.jump, 1);
  }
  while (ci->output_scanline < ci->output_height) {
    guint8 *dst = st->out->data + (gsize) ci->output_scanline * st->out->stride;
    JSAMPROW rows[1] = { comps == 3 ? dst : st->row };
    guint32 w = ci->output_width;
    if (jpeg_read_scanlines (ci, rows, 1) != 1)
      break;
    if (comps == 1) {
      for (guint32 x = 0; x < w; x++)
        dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = st->row[x];
    } else if (comps == 4) {
      for (guint32 x = 0; x < w; x++) {
        const guint8 *p = st->row + 4 * x;
        int nk = p[3]; /* 255 - (255 - k) after the inversion */
        dst[3 * x] = cmyk_channel (255 - p[0], nk);
        dst[3 * x + 1] = cmyk_channel (255 - p[1], nk);
        dst[3 * x + 2] = cmyk_channel (255 - p[2], nk);
      }
    }
  }
  jpeg_finish_decompress (ci);
  info->channels = comps;
  info->bit_depth = ci->data_precision;
  jpeg_destroy_decompress (ci);
  return 1;
}

/* ---- entry points ---- */

dsocr_image *
dsocr_image_decode (const void *data, gsize size, const char *name, dsocr_image_info *info,
                    GError **error)
{
  static const guint8 png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  const guint8 *d = data;
  dsocr_image_info tmp = { 0 };
  dsocr_image *img = NULL, *oriented;

  if (!name)
    name = "image";
  if (!info)
    info = &tmp;
  memset (info, 0, sizeof *info);
  if (!d || size == 0) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: empty image data", name);
    return NULL;
  }
  if (size >= 8 && memcmp (d, png_sig, 8) == 0) {
    png_state *st = g_new0 (png_state, 1);
    int orientation;
    st->name = name;
    orientation = png_decode (d, size, st, error);
    img = orientation ? st->out : NULL;
    if (!img)
      dsocr_image_free (st->out);
    else {
      info->format = DSOCR_IMAGE_FORMAT_PNG;
      info->orientation = orientation;
      info->channels = st->color_type == PNG_COLOR_TYPE_PALETTE ? 3 : st->channels;
      info->bit_depth = st->bit_depth;
      info->palette = st->color_type == PNG_COLOR_TYPE_PALETTE;
    }
    g_free (st->native);
    g_free (st);
  } else if (size >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) {
    jpeg_state *st = g_new0 (jpeg_state, 1);
    if (jpeg_decode (d, size, name, st, info, error)) {
      img = st->out;
      info->format = DSOCR_IMAGE_FORMAT_JPEG;
    } else {
      dsocr_image_free (st->out);
    }
    g_free (st->row);
    if (st->exif)
      g_byte_array_unref (st->exif);
    g_free (st);
  } else {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: unsupported image format (only PNG and JPEG are decoded)", name);
    return NULL;
  }
  if (!img)
    return NULL;
  info->file_width = img->width;
  info->file_height = img->height;
  if (info->orientation < 2)
    return img;
  {
    dsocr_image_view v = dsocr_image_get_view (img);
    oriented = dsocr_image_orient (&v, info->orientation, error);
  }
  dsocr_image_free (img);
  if (!oriented)
    g_prefix_error (error, "%s: ", name);
  return oriented;
}

dsocr_image *
dsocr_image_load (const char *path, dsocr_image_info *info, GError **error)
{
  GError *err = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &err);
  dsocr_image *img;

  if (!mf) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: cannot read: %s", path,
                 err->message);
    g_error_free (err);
    return NULL;
  }
  img = dsocr_image_decode (g_mapped_file_get_contents (mf), g_mapped_file_get_length (mf),
                            path, info, error);
  g_mapped_file_unref (mf);
  return img;
}
