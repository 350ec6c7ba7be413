/* plugin.c: the dsocr plugin: registers every element, nothing else. */
#include <gst/gst.h>

#include "gstdsocrelements.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (dsocrpreprocess, plugin);
  ret |= GST_ELEMENT_REGISTER (dsocrresult, plugin);
  ret |= GST_ELEMENT_REGISTER (dsocrencode, plugin);
  ret |= GST_ELEMENT_REGISTER (dsocrdecode, plugin);
  ret |= GST_ELEMENT_REGISTER (dsclassify, plugin);
#if DSOCR_HAVE_CAIRO
  ret |= GST_ELEMENT_REGISTER (dsocroverlay, plugin);
#endif

#if DSOCR_HAVE_POPPLER
  ret |= GST_ELEMENT_REGISTER (dsocrpdfdec, plugin);
#endif

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR,
    GST_VERSION_MINOR,
    dsocr,
    "DeepSeek-OCR document recognition and PDF rendering",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
