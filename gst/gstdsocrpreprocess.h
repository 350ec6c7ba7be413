/* gstdsocrpreprocess.h: dsocrpreprocess, DeepSeek-OCR's tiling and normalisation of video
 * frames, attached to the frames as a GstDsocrTilesMeta. */
#ifndef __GST_DSOCR_PREPROCESS_H__
#define __GST_DSOCR_PREPROCESS_H__

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_DSOCR_PREPROCESS (gst_dsocr_preprocess_get_type ())
G_DECLARE_FINAL_TYPE (GstDsocrPreprocess, gst_dsocr_preprocess, GST,
    DSOCR_PREPROCESS, GstVideoFilter);

/**
 * GstDsocrPixelFormat:
 * @GST_DSOCR_PIXEL_FORMAT_F32: 32-bit floats
 * @GST_DSOCR_PIXEL_FORMAT_BF16: bfloat16 values, half the memory; the vision tower rounds
 *   its input to bfloat16 anyway, so the embeddings are the same
 *
 * How the normalised pixels of the views are stored.
 */
typedef enum
{
  GST_DSOCR_PIXEL_FORMAT_F32,
  GST_DSOCR_PIXEL_FORMAT_BF16,
} GstDsocrPixelFormat;

#define GST_TYPE_DSOCR_PIXEL_FORMAT (gst_dsocr_pixel_format_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_pixel_format_get_type (void);

G_END_DECLS

#endif /* __GST_DSOCR_PREPROCESS_H__ */
