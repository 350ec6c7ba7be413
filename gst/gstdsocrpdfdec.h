/* gstdsocrpdfdec.h: dsocrpdfdec, a PDF document in, one video frame per page out. */
#ifndef __GST_DSOCR_PDF_DEC_H__
#define __GST_DSOCR_PDF_DEC_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_DSOCR_PDF_DEC (gst_dsocr_pdf_dec_get_type ())
G_DECLARE_FINAL_TYPE (GstDsocrPdfDec, gst_dsocr_pdf_dec, GST, DSOCR_PDF_DEC,
    GstElement);

/**
 * GST_DSOCR_PAGE_META_NAME:
 *
 * Name of the #GstCustomMeta that dsocrpdfdec attaches to every page buffer. Its structure
 * holds `page` (gint, 1-based page number in the document), `page-count` (gint, pages in the
 * document) and `dpi` (gdouble, rendering resolution). Downstream elements read it with
 * `gst_buffer_get_custom_meta (buffer, GST_DSOCR_PAGE_META_NAME)`, which returns %NULL when
 * the buffer carries none.
 */
#define GST_DSOCR_PAGE_META_NAME "DsocrPageMeta"

/**
 * GST_DSOCR_TAG_PAGE:
 *
 * Tag (guint): the 1-based page number of the buffers that follow the tag event.
 */
#define GST_DSOCR_TAG_PAGE "dsocr-page"

/**
 * GST_DSOCR_TAG_PAGE_COUNT:
 *
 * Tag (guint): the number of pages in the document.
 */
#define GST_DSOCR_TAG_PAGE_COUNT "dsocr-page-count"

/* Registers the page meta (once per process) and returns its info. (transfer none) */
G_GNUC_INTERNAL
const GstMetaInfo *gst_dsocr_page_meta_get_info (void);

G_END_DECLS

#endif /* __GST_DSOCR_PDF_DEC_H__ */
