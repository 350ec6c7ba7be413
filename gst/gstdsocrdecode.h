/* gstdsocrdecode.h: dsocrdecode, runs DeepSeek-OCR generation on its own thread and attaches
 * the page's markdown, JSON and grounding boxes to the frames. */
#ifndef __GST_DSOCR_DECODE_H__
#define __GST_DSOCR_DECODE_H__

#include <gst/gst.h>

#include "gstdsocrmodelelement.h"

G_BEGIN_DECLS

#define GST_TYPE_DSOCR_DECODE (gst_dsocr_decode_get_type ())
G_DECLARE_FINAL_TYPE (GstDsocrDecode, gst_dsocr_decode, GST, DSOCR_DECODE,
    GstDsocrModelElement);

/**
 * GstDsocrDecodeLeaky:
 * @GST_DSOCR_DECODE_LEAKY_NONE: a full queue blocks upstream
 * @GST_DSOCR_DECODE_LEAKY_UPSTREAM: a full queue drops the frame arriving
 * @GST_DSOCR_DECODE_LEAKY_DOWNSTREAM: a full queue drops its oldest waiting frame
 *
 * What happens to a frame that finds the queue full (the names of queue's leaky property).
 */
typedef enum
{
  GST_DSOCR_DECODE_LEAKY_NONE,
  GST_DSOCR_DECODE_LEAKY_UPSTREAM,
  GST_DSOCR_DECODE_LEAKY_DOWNSTREAM,
} GstDsocrDecodeLeaky;

#define GST_TYPE_DSOCR_DECODE_LEAKY (gst_dsocr_decode_leaky_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_decode_leaky_get_type (void);

G_END_DECLS

#endif /* __GST_DSOCR_DECODE_H__ */
