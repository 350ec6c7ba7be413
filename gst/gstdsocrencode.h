/* gstdsocrencode.h: dsocrencode, runs the DeepSeek-OCR vision tower on the views of
 * dsocrpreprocess and attaches the vision embeddings to the frames. */
#ifndef __GST_DSOCR_ENCODE_H__
#define __GST_DSOCR_ENCODE_H__

#include <gst/gst.h>

#include "gstdsocrmodelelement.h"

G_BEGIN_DECLS

#define GST_TYPE_DSOCR_ENCODE (gst_dsocr_encode_get_type ())
G_DECLARE_FINAL_TYPE (GstDsocrEncode, gst_dsocr_encode, GST, DSOCR_ENCODE,
    GstDsocrModelElement);

G_END_DECLS

#endif /* __GST_DSOCR_ENCODE_H__ */
