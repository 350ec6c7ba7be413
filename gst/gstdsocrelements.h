/* gstdsocrelements.h: the elements of the dsocr plugin, one GST_ELEMENT_REGISTER_DECLARE
 * each. An element file defines its registration with GST_ELEMENT_REGISTER_DEFINE and
 * plugin.c registers it with GST_ELEMENT_REGISTER. */
#ifndef __GST_DSOCR_ELEMENTS_H__
#define __GST_DSOCR_ELEMENTS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE (dsocrpreprocess);
GST_ELEMENT_REGISTER_DECLARE (dsocrresult);
GST_ELEMENT_REGISTER_DECLARE (dsocrencode);
GST_ELEMENT_REGISTER_DECLARE (dsocrdecode);
GST_ELEMENT_REGISTER_DECLARE (dsclassify);
#if DSOCR_HAVE_CAIRO
GST_ELEMENT_REGISTER_DECLARE (dsocroverlay);
#endif

#if DSOCR_HAVE_POPPLER
GST_ELEMENT_REGISTER_DECLARE (dsocrpdfdec);
#endif

G_END_DECLS

#endif /* __GST_DSOCR_ELEMENTS_H__ */
