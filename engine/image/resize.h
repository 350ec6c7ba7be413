/* resize.h: Pillow-exact bicubic resampling of RGB8 images (engine internal).
 *
 * The result equals Pillow's `Image.resize((w, h), Image.BICUBIC)` byte for byte (no box, no
 * reducing_gap, as Image.resize and ImageOps.pad call it): a separable Keys cubic (a = -0.5)
 * whose support widens by the downscale factor, coefficients rounded to 22-bit fixed point,
 * one pass along each axis, each rounded and clipped to uint8. An axis whose size does not
 * change is not filtered, so an equal-size resize is a copy.
 *
 * The order of the two passes changes the rounding. Pillow up to 12 always runs the
 * horizontal pass first; Pillow 13 runs the vertical pass first when the height shrinks by
 * more than twice as many pixels as the width (in_h - out_h > 2 (in_w - out_w)).
 */
#ifndef DSOCR_RESIZE_H
#define DSOCR_RESIZE_H

#include "dsocr/dsocr-image.h"

G_BEGIN_DECLS

typedef enum {
  DSOCR_RESIZE_PILLOW13 = 0,   /* Pillow >= 13 pass order */
  DSOCR_RESIZE_PILLOW12,       /* Pillow 9.1 .. 12: horizontal pass first, always */
} dsocr_resize_order;

/* Resamples @src into @dst ([dst_height, dst_stride] bytes, dst_stride >= 3 * dst_width),
 * which must not overlap @src. Fails with DSOCR_ERROR_INVALID/UNSUPPORTED on a bad view or
 * size and DSOCR_ERROR_NOMEM when the scratch memory cannot be had. */
gboolean dsocr_resize_bicubic (const dsocr_image_view *src, guint8 *dst, gsize dst_stride,
                               int dst_width, int dst_height, dsocr_resize_order order,
                               GError **error);

/* Returns (transfer full) @src resampled to @width x @height, or NULL with @error set. */
dsocr_image *dsocr_resize_bicubic_new (const dsocr_image_view *src, int width, int height,
                                       dsocr_resize_order order, GError **error);

G_END_DECLS

#endif /* DSOCR_RESIZE_H */
