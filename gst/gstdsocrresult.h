/* gstdsocrresult.h: dsocrresult, turns the result metas of recognised frames into markdown
 * text or JSON lines buffers. */
#ifndef __GST_DSOCR_RESULT_H__
#define __GST_DSOCR_RESULT_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_DSOCR_RESULT (gst_dsocr_result_get_type ())
G_DECLARE_FINAL_TYPE (GstDsocrResult, gst_dsocr_result, GST, DSOCR_RESULT,
    GstElement);

/**
 * GstDsocrResultFormat:
 * @GST_DSOCR_RESULT_FORMAT_MARKDOWN: `text/x-raw, format=utf8`: each page's markdown, pages
 *   separated by #GstDsocrResult:page-separator
 * @GST_DSOCR_RESULT_FORMAT_JSON: `application/x-json`: one JSON object per line, one line per
 *   page
 */
typedef enum
{
  GST_DSOCR_RESULT_FORMAT_MARKDOWN,
  GST_DSOCR_RESULT_FORMAT_JSON,
} GstDsocrResultFormat;

#define GST_TYPE_DSOCR_RESULT_FORMAT (gst_dsocr_result_format_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_result_format_get_type (void);

G_END_DECLS

#endif /* __GST_DSOCR_RESULT_H__ */
