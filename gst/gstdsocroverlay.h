/* gstdsocroverlay.h: dsocroverlay, draws the regions of interest of a frame (the grounding
 * boxes of dsocrdecode) with their labels. */
#ifndef __GST_DSOCR_OVERLAY_H__
#define __GST_DSOCR_OVERLAY_H__

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_DSOCR_OVERLAY (gst_dsocr_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstDsocrOverlay, gst_dsocr_overlay, GST, DSOCR_OVERLAY,
    GstVideoFilter);

G_END_DECLS

#endif /* __GST_DSOCR_OVERLAY_H__ */
