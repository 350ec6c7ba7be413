/* gstdsocrpdfdec.c: dsocrpdfdec, renders the pages of a PDF document with poppler-glib. */

/**
 * SECTION:element-dsocrpdfdec
 * @title: dsocrpdfdec
 *
 * Decodes a PDF document into raw video frames, one frame per page, rendered with
 * poppler-glib and cairo on a white background (as PDF viewers show pages).
 *
 * A PDF needs random access, so the element collects the whole document from upstream and
 * renders it when end-of-stream arrives; then it pushes the pages in order and forwards
 * end-of-stream. The frame size follows each page: pages of different sizes renegotiate the
 * caps. A page of W x H points becomes ceil(W * dpi / 72 - 0.001) x ceil(H * dpi / 72 - 0.001)
 * pixels, the rounding MuPDF uses, so the default 144 dpi gives the frame sizes of the
 * DeepSeek-OCR reference pipeline (PyMuPDF at 144 dpi).
 *
 * Every page buffer has PTS = n * #GstDsocrPdfDec:page-duration (n counts the pages pushed,
 * from 0), that duration, offset = the 1-based page number, and a #GstCustomMeta named
 * "DsocrPageMeta" with the fields `page`, `page-count` and `dpi`. A tag event before each
 * page carries `dsocr-page` and `dsocr-page-count` (and the document title and author).
 *
 * The element posts element messages: `dsocr-pdf-document` (page-count, first-page,
 * last-page, title, author) once the document is open, and `dsocr-pdf-progress` (page,
 * page-count) for every page just before it is pushed.
 *
 * Seeking is not supported. Flushing discards the document collected so far and stops a
 * rendering in progress.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=doc.pdf ! dsocrpdfdec dpi=144 ! videoconvert ! pngenc ! multifilesink location=page-%03d.png
 * ]| Writes every page of doc.pdf as a PNG file.
 *
 * Since: 0.1
 */

#include "gstdsocrpdfdec.h"

#include <math.h>

#include <cairo.h>
#include <gio/gio.h>
#include <gst/base/gstadapter.h>
#include <gst/video/video.h>
#include <poppler.h>

#include "gstdsocrelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_pdf_dec_debug);
#define GST_CAT_DEFAULT gst_dsocr_pdf_dec_debug

/* cairo's RGB24 is a native-endian 32-bit xRGB word: these are its bytes in memory, so the
 * pages are rendered straight into the output buffers. */
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
#define PDF_DEC_FORMAT GST_VIDEO_FORMAT_BGRx
#define PDF_DEC_FORMAT_STR "BGRx"
#else
#define PDF_DEC_FORMAT GST_VIDEO_FORMAT_xRGB
#define PDF_DEC_FORMAT_STR "xRGB"
#endif

/* cairo image surfaces are limited to 32767 pixels a side. */
#define PDF_DEC_MAX_SIDE 32767

#define DEFAULT_DPI 144.0
#define DEFAULT_FIRST_PAGE 1
#define DEFAULT_LAST_PAGE -1
#define DEFAULT_PASSWORD NULL
#define DEFAULT_PAGE_DURATION GST_SECOND
/* an hour a page keeps page_index * duration far from overflowing */
#define MAX_PAGE_DURATION (3600 * GST_SECOND)

enum
{
  PROP_0,
  PROP_DPI,
  PROP_FIRST_PAGE,
  PROP_LAST_PAGE,
  PROP_PASSWORD,
  PROP_PAGE_DURATION,
};

struct _GstDsocrPdfDec
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties, under the object lock */
  gdouble dpi;
  gint first_page;
  gint last_page;
  gchar *password;
  GstClockTime page_duration;
  /* for duration queries: the pages of the open document that will be pushed (0 = no
   * document yet) and their duration */
  gint n_out_pages;
  GstClockTime out_page_duration;

  /* < private > streaming state, under the sink pad's stream lock */
  GstAdapter *adapter;          /* the document received so far */
  GstTagList *upstream_tags;    /* stream tags from upstream, merged into each page's tags */
  GstVideoInfo vinfo;           /* caps sent downstream; width 0 = none yet */
  gboolean need_segment;
  guint32 segment_seqnum;
  GstAllocator *allocator;      /* from downstream's allocation answer; NULL = default */
  GstAllocationParams params;

  gint flushing;                /* atomic: between FLUSH_START and FLUSH_STOP */
};

/* The properties, read once per document so a change mid-document cannot mix settings. */
typedef struct
{
  gdouble dpi;
  gint first_page;
  gint last_page;
  gchar *password;
  GstClockTime page_duration;
} PdfDecSettings;

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("application/pdf"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) " PDF_DEC_FORMAT_STR ", "
        "width = (int) [ 1, 32767 ], height = (int) [ 1, 32767 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));

#define gst_dsocr_pdf_dec_parent_class parent_class
G_DEFINE_TYPE (GstDsocrPdfDec, gst_dsocr_pdf_dec, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (dsocrpdfdec, "dsocrpdfdec", GST_RANK_NONE,
    GST_TYPE_DSOCR_PDF_DEC);

static void gst_dsocr_pdf_dec_finalize (GObject * object);
static void gst_dsocr_pdf_dec_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_pdf_dec_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static GstStateChangeReturn gst_dsocr_pdf_dec_change_state (GstElement *
    element, GstStateChange transition);
static GstFlowReturn gst_dsocr_pdf_dec_chain (GstPad * pad, GstObject * parent,
    GstBuffer * buffer);
static gboolean gst_dsocr_pdf_dec_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event);
static gboolean gst_dsocr_pdf_dec_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event);
static gboolean gst_dsocr_pdf_dec_src_query (GstPad * pad, GstObject * parent,
    GstQuery * query);

const GstMetaInfo *
gst_dsocr_page_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter (&info)) {
    /* No tags: the page number stays true whatever is done to the pixels, so transforms
     * (videoconvert, videoscale, copies) keep the meta. */
    static const gchar *tags[] = { NULL };
    const GstMetaInfo *registered =
        gst_meta_register_custom (GST_DSOCR_PAGE_META_NAME, tags, NULL, NULL,
        NULL);
    g_once_init_leave (&info, registered);
  }
  return info;
}

static void
gst_dsocr_pdf_dec_class_init (GstDsocrPdfDecClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_pdf_dec_debug, "dsocrpdfdec", 0,
      "PDF page renderer");

  gobject_class->finalize = gst_dsocr_pdf_dec_finalize;
  gobject_class->set_property = gst_dsocr_pdf_dec_set_property;
  gobject_class->get_property = gst_dsocr_pdf_dec_get_property;

  /**
   * GstDsocrPdfDec:dpi:
   *
   * Rendering resolution in dots per inch: a page of W points becomes about W * dpi / 72
   * pixels wide.
   */
  g_object_class_install_property (gobject_class, PROP_DPI,
      g_param_spec_double ("dpi", "DPI",
          "Rendering resolution in dots per inch (72 = one pixel per PDF point). Read "
          "when a document is opened: a change applies to the next document",
          1.0, 2400.0, DEFAULT_DPI,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPdfDec:first-page:
   *
   * First page to render (1-based). A value past the last page of the document is an error.
   * Like the other properties, read when a document is opened (at its end-of-stream): a
   * change applies to the next document.
   */
  g_object_class_install_property (gobject_class, PROP_FIRST_PAGE,
      g_param_spec_int ("first-page", "First page",
          "First page to render (1-based; past the document's end is an error). Read "
          "when a document is opened", 1, G_MAXINT, DEFAULT_FIRST_PAGE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPdfDec:last-page:
   *
   * Last page to render (1-based, inclusive); -1 (any value below 1) renders to the end of
   * the document. A value past the last page, or below first-page, is an error.
   */
  g_object_class_install_property (gobject_class, PROP_LAST_PAGE,
      g_param_spec_int ("last-page", "Last page",
          "Last page to render (1-based, inclusive; -1 = the last page of the document). "
          "Read when a document is opened",
          -1, G_MAXINT, DEFAULT_LAST_PAGE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPdfDec:password:
   *
   * Password that opens an encrypted document (the user or the owner password).
   */
  g_object_class_install_property (gobject_class, PROP_PASSWORD,
      g_param_spec_string ("password", "Password",
          "Password of an encrypted document (user or owner password). Read when a "
          "document is opened",
          DEFAULT_PASSWORD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPdfDec:page-duration:
   *
   * Duration of each page frame, which also spaces the timestamps: the n-th page pushed
   * (from 0) has PTS n * page-duration.
   */
  g_object_class_install_property (gobject_class, PROP_PAGE_DURATION,
      g_param_spec_uint64 ("page-duration", "Page duration",
          "Duration of each page frame, and the spacing of their timestamps, in "
          "nanoseconds. Read when a document is opened", 1, MAX_PAGE_DURATION,
          DEFAULT_PAGE_DURATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "PDF page renderer",
      "Codec/Decoder/Image",
      "Renders the pages of a PDF document as video frames (poppler)",
      "gst-dsocr");

  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_dsocr_pdf_dec_change_state);

  gst_tag_register (GST_DSOCR_TAG_PAGE, GST_TAG_FLAG_META, G_TYPE_UINT,
      "page", "1-based page number in the document", gst_tag_merge_use_first);
  gst_tag_register (GST_DSOCR_TAG_PAGE_COUNT, GST_TAG_FLAG_META, G_TYPE_UINT,
      "page count", "number of pages in the document", gst_tag_merge_use_first);
  gst_dsocr_page_meta_get_info ();
}

static void
gst_dsocr_pdf_dec_init (GstDsocrPdfDec * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_pdf_dec_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_pdf_dec_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_event_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_pdf_dec_src_event));
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_pdf_dec_src_query));
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->dpi = DEFAULT_DPI;
  self->first_page = DEFAULT_FIRST_PAGE;
  self->last_page = DEFAULT_LAST_PAGE;
  self->password = g_strdup (DEFAULT_PASSWORD);
  self->page_duration = DEFAULT_PAGE_DURATION;

  self->adapter = gst_adapter_new ();
  gst_video_info_init (&self->vinfo);
  gst_allocation_params_init (&self->params);
  self->need_segment = TRUE;
}

static void
gst_dsocr_pdf_dec_finalize (GObject * object)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (object);

  g_free (self->password);
  g_object_unref (self->adapter);
  gst_clear_tag_list (&self->upstream_tags);
  gst_clear_object (&self->allocator);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_pdf_dec_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DPI:
      self->dpi = g_value_get_double (value);
      break;
    case PROP_FIRST_PAGE:
      self->first_page = g_value_get_int (value);
      break;
    case PROP_LAST_PAGE:
      self->last_page = g_value_get_int (value);
      break;
    case PROP_PASSWORD:
      g_free (self->password);
      self->password = g_value_dup_string (value);
      break;
    case PROP_PAGE_DURATION:
      self->page_duration = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dsocr_pdf_dec_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DPI:
      g_value_set_double (value, self->dpi);
      break;
    case PROP_FIRST_PAGE:
      g_value_set_int (value, self->first_page);
      break;
    case PROP_LAST_PAGE:
      g_value_set_int (value, self->last_page);
      break;
    case PROP_PASSWORD:
      g_value_set_string (value, self->password);
      break;
    case PROP_PAGE_DURATION:
      g_value_set_uint64 (value, self->page_duration);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Forgets the document collected so far. Called with the stream lock held or with the pads
 * inactive. */
static void
gst_dsocr_pdf_dec_reset (GstDsocrPdfDec * self)
{
  gst_adapter_clear (self->adapter);
  gst_clear_tag_list (&self->upstream_tags);
  self->need_segment = TRUE;
  GST_OBJECT_LOCK (self);
  self->n_out_pages = 0;
  GST_OBJECT_UNLOCK (self);
}

static GstStateChangeReturn
gst_dsocr_pdf_dec_change_state (GstElement * element, GstStateChange transition)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      gst_dsocr_pdf_dec_reset (self);
      gst_video_info_init (&self->vinfo);
      g_atomic_int_set (&self->flushing, 0);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* the pads are inactive now: no streaming thread touches the state */
      gst_dsocr_pdf_dec_reset (self);
      gst_video_info_init (&self->vinfo);
      gst_clear_object (&self->allocator);
      break;
    default:
      break;
  }
  return ret;
}

static GstFlowReturn
gst_dsocr_pdf_dec_chain (GstPad * pad, GstObject * parent, GstBuffer * buffer)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (parent);

  gst_adapter_push (self->adapter, buffer);
  return GST_FLOW_OK;
}

/* Pixels for @points at @dpi, rounded like MuPDF's fz_round_rect (outwards, with a 0.001
 * pixel tolerance). FALSE when the page cannot be rendered at that size. */
static gboolean
page_pixels (gdouble points, gdouble dpi, gint * pixels)
{
  gdouble px = ceil (points * dpi / 72.0 - 0.001);

  if (!(px >= 1.0 && px <= PDF_DEC_MAX_SIDE))
    return FALSE;
  *pixels = (gint) px;
  return TRUE;
}

/* Sends caps for a @width x @height frame and asks downstream how to allocate it. Returns
 * GST_FLOW_NOT_NEGOTIATED when downstream refuses the caps, GST_FLOW_FLUSHING when it takes
 * nothing at the moment (flushing, or at its end). */
static GstFlowReturn
gst_dsocr_pdf_dec_set_caps (GstDsocrPdfDec * self, gint width, gint height)
{
  GstVideoInfo info;
  GstCaps *caps;
  GstQuery *query;

  gst_video_info_set_format (&info, PDF_DEC_FORMAT, width, height);
  /* stills: no fixed frame rate */
  GST_VIDEO_INFO_FPS_N (&info) = 0;
  GST_VIDEO_INFO_FPS_D (&info) = 1;
  caps = gst_video_info_to_caps (&info);
  GST_DEBUG_OBJECT (self, "page caps %" GST_PTR_FORMAT, caps);

  if (!gst_pad_push_event (self->srcpad, gst_event_new_caps (gst_caps_ref (caps)))) {
    gboolean accepted = GST_PAD_IS_FLUSHING (self->srcpad)
        || gst_pad_peer_query_accept_caps (self->srcpad, caps);

    GST_DEBUG_OBJECT (self, "caps event refused (%s)",
        accepted ? "flushing" : "not accepted");
    gst_caps_unref (caps);
    return accepted ? GST_FLOW_FLUSHING : GST_FLOW_NOT_NEGOTIATED;
  }
  self->vinfo = info;

  gst_clear_object (&self->allocator);
  gst_allocation_params_init (&self->params);
  query = gst_query_new_allocation (caps, FALSE);
  if (gst_pad_peer_query (self->srcpad, query) &&
      gst_query_get_n_allocation_params (query) > 0)
    gst_query_parse_nth_allocation_param (query, 0, &self->allocator,
        &self->params);
  gst_query_unref (query);
  gst_caps_unref (caps);
  /* pixman wants at least 4-byte aligned rows and reads faster from 16-byte aligned ones */
  self->params.align |= 15;
  return GST_FLOW_OK;
}

static void
gst_dsocr_pdf_dec_push_segment (GstDsocrPdfDec * self)
{
  GstSegment segment;
  GstEvent *event;

  gst_segment_init (&segment, GST_FORMAT_TIME);
  event = gst_event_new_segment (&segment);
  if (self->segment_seqnum != GST_SEQNUM_INVALID)
    gst_event_set_seqnum (event, self->segment_seqnum);
  gst_pad_push_event (self->srcpad, event);
  self->need_segment = FALSE;
}

static void
gst_dsocr_pdf_dec_push_tags (GstDsocrPdfDec * self, gint page, gint n_pages,
    const gchar * title, const gchar * author)
{
  GstTagList *tags;

  tags = gst_tag_list_new (GST_DSOCR_TAG_PAGE, (guint) page,
      GST_DSOCR_TAG_PAGE_COUNT, (guint) n_pages, NULL);
  if (title)
    gst_tag_list_add (tags, GST_TAG_MERGE_REPLACE, GST_TAG_TITLE, title, NULL);
  if (author)
    gst_tag_list_add (tags, GST_TAG_MERGE_REPLACE, GST_TAG_ARTIST, author,
        NULL);
  if (self->upstream_tags)
    gst_tag_list_insert (tags, self->upstream_tags, GST_TAG_MERGE_KEEP);
  gst_pad_push_event (self->srcpad, gst_event_new_tag (tags));
}

/* Renders page @page_no (1-based) into a new buffer, or returns NULL after posting an error.
 * The caps for its size must already be set. */
static GstBuffer *
gst_dsocr_pdf_dec_render_page (GstDsocrPdfDec * self, PopplerPage * page,
    gint page_no, gdouble dpi)
{
  GstBuffer *buffer;
  GstMapInfo map;
  cairo_surface_t *surface;
  cairo_t *cr;
  cairo_status_t status;

  buffer = gst_buffer_new_allocate (self->allocator,
      GST_VIDEO_INFO_SIZE (&self->vinfo), &self->params);
  if (!buffer)
    goto no_memory;
  if (!gst_buffer_map (buffer, &map, GST_MAP_WRITE)) {
    gst_buffer_unref (buffer);
    goto no_memory;
  }

  surface = cairo_image_surface_create_for_data (map.data, CAIRO_FORMAT_RGB24,
      GST_VIDEO_INFO_WIDTH (&self->vinfo), GST_VIDEO_INFO_HEIGHT (&self->vinfo),
      GST_VIDEO_INFO_PLANE_STRIDE (&self->vinfo, 0));
  cr = cairo_create (surface);
  /* PDF pages are transparent; viewers show them on white paper */
  cairo_set_source_rgb (cr, 1.0, 1.0, 1.0);
  cairo_paint (cr);
  cairo_scale (cr, dpi / 72.0, dpi / 72.0);
  poppler_page_render (page, cr);
  status = cairo_status (cr);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  cairo_surface_destroy (surface);
  gst_buffer_unmap (buffer, &map);

  if (status != CAIRO_STATUS_SUCCESS)
    goto render_failed;
  return buffer;

  /* ERRORS */
no_memory:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not allocate a %dx%d frame for page %d.",
            GST_VIDEO_INFO_WIDTH (&self->vinfo),
            GST_VIDEO_INFO_HEIGHT (&self->vinfo), page_no), (NULL));
    return NULL;
  }
render_failed:
  {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Could not render page %d of the PDF document.", page_no),
        ("cairo: %s", cairo_status_to_string (status)));
    return NULL;
  }
}

/* Renders and pushes page @page_no (1-based) as the @index-th output frame. */
static GstFlowReturn
gst_dsocr_pdf_dec_push_page (GstDsocrPdfDec * self, PopplerDocument * doc,
    gint page_no, gint n_pages, guint index, const PdfDecSettings * s,
    const gchar * title, const gchar * author)
{
  PopplerPage *page;
  GstBuffer *buffer;
  GstCustomMeta *meta;
  GstFlowReturn ret;
  gdouble w_pt = 0.0, h_pt = 0.0;
  gint width, height;

  page = poppler_document_get_page (doc, page_no - 1);
  if (!page)
    goto no_page;
  poppler_page_get_size (page, &w_pt, &h_pt);
  if (!page_pixels (w_pt, s->dpi, &width)
      || !page_pixels (h_pt, s->dpi, &height))
    goto bad_size;

  if (width != GST_VIDEO_INFO_WIDTH (&self->vinfo) ||
      height != GST_VIDEO_INFO_HEIGHT (&self->vinfo)) {
    ret = gst_dsocr_pdf_dec_set_caps (self, width, height);
    if (ret != GST_FLOW_OK) {
      g_object_unref (page);
      if (ret == GST_FLOW_NOT_NEGOTIATED)
        goto not_negotiated;
      return ret;
    }
  }
  if (self->need_segment)
    gst_dsocr_pdf_dec_push_segment (self);

  buffer = gst_dsocr_pdf_dec_render_page (self, page, page_no, s->dpi);
  g_object_unref (page);
  if (!buffer)
    return GST_FLOW_ERROR;

  GST_BUFFER_PTS (buffer) = index * s->page_duration;
  GST_BUFFER_DURATION (buffer) = s->page_duration;
  GST_BUFFER_OFFSET (buffer) = page_no;
  GST_BUFFER_OFFSET_END (buffer) = page_no + 1;
  if (index == 0)
    GST_BUFFER_FLAG_SET (buffer, GST_BUFFER_FLAG_DISCONT);

  meta = gst_buffer_add_custom_meta (buffer, GST_DSOCR_PAGE_META_NAME);
  gst_structure_set (gst_custom_meta_get_structure (meta),
      "page", G_TYPE_INT, page_no, "page-count", G_TYPE_INT, n_pages,
      "dpi", G_TYPE_DOUBLE, s->dpi, NULL);

  gst_dsocr_pdf_dec_push_tags (self, page_no, n_pages, title, author);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("dsocr-pdf-progress", "page", G_TYPE_INT, page_no,
              "page-count", G_TYPE_INT, n_pages, NULL)));

  GST_LOG_OBJECT (self, "pushing page %d/%d (%dx%d)", page_no, n_pages, width,
      height);
  ret = gst_pad_push (self->srcpad, buffer);
  /* a refused caps event shows here: sticky events report their failures with the data */
  if (ret == GST_FLOW_NOT_NEGOTIATED)
    goto not_negotiated;
  return ret;

  /* ERRORS */
no_page:
  {
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Could not read page %d of the PDF document.", page_no), (NULL));
    return GST_FLOW_ERROR;
  }
bad_size:
  {
    g_object_unref (page);
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Page %d (%.1f x %.1f pt) cannot be rendered at %g dpi: each side must be 1 to %d pixels.",
            page_no, w_pt, h_pt, s->dpi, PDF_DEC_MAX_SIDE),
        ("set the dpi property lower for large pages"));
    return GST_FLOW_ERROR;
  }
not_negotiated:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept %dx%d " PDF_DEC_FORMAT_STR " frames.",
            width, height), ("page %d", page_no));
    return GST_FLOW_ERROR;
  }
}

static gchar *
non_empty (gchar * s)
{
  if (s && !*s) {
    g_free (s);
    return NULL;
  }
  return s;
}

/* Opens the document collected so far and pushes the selected pages. Returns GST_FLOW_OK,
 * a downstream flow return, or GST_FLOW_ERROR after posting an error message. */
static GstFlowReturn
gst_dsocr_pdf_dec_drain (GstDsocrPdfDec * self)
{
  PdfDecSettings s;
  PopplerDocument *doc;
  GBytes *bytes;
  GInputStream *stream;
  GError *err = NULL;
  GstFlowReturn ret = GST_FLOW_OK;
  gchar *title, *author;
  gsize size;
  gint n_pages, first, last, p;

  GST_OBJECT_LOCK (self);
  s.dpi = self->dpi;
  s.first_page = self->first_page;
  s.last_page = self->last_page;
  s.password = g_strdup (self->password);
  s.page_duration = self->page_duration;
  GST_OBJECT_UNLOCK (self);

  size = gst_adapter_available (self->adapter);
  if (size == 0)
    goto no_data;
  bytes = g_bytes_new_take (gst_adapter_take (self->adapter, size), size);
  /* Through a stream, not poppler_document_new_from_bytes/_data: on a wrong password those
   * retry with a NULL stream and crash in poppler-glib 22.12. The document keeps its own
   * reference to the stream, and the stream to the bytes. */
  stream = g_memory_input_stream_new_from_bytes (bytes);
  doc = poppler_document_new_from_stream (stream, size,
      s.password && *s.password ? s.password : NULL, NULL, &err);
  g_object_unref (stream);
  g_bytes_unref (bytes);
  if (!doc)
    goto open_failed;

  n_pages = poppler_document_get_n_pages (doc);
  if (n_pages < 1)
    goto no_pages;
  first = s.first_page;
  last = s.last_page < 1 ? n_pages : s.last_page;
  if (first > n_pages || last > n_pages || first > last)
    goto bad_range;

  title = non_empty (poppler_document_get_title (doc));
  author = non_empty (poppler_document_get_author (doc));
  GST_INFO_OBJECT (self, "document of %" G_GSIZE_FORMAT " bytes, %d pages; "
      "rendering %d to %d at %g dpi", size, n_pages, first, last, s.dpi);

  GST_OBJECT_LOCK (self);
  self->n_out_pages = last - first + 1;
  self->out_page_duration = s.page_duration;
  GST_OBJECT_UNLOCK (self);

  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("dsocr-pdf-document",
              "page-count", G_TYPE_INT, n_pages,
              "first-page", G_TYPE_INT, first,
              "last-page", G_TYPE_INT, last,
              "title", G_TYPE_STRING, title,
              "author", G_TYPE_STRING, author, NULL)));

  for (p = first; p <= last; p++) {
    /* a flush stops the rendering between pages; the push itself returns FLUSHING too */
    if (g_atomic_int_get (&self->flushing)) {
      ret = GST_FLOW_FLUSHING;
      break;
    }
    ret = gst_dsocr_pdf_dec_push_page (self, doc, p, n_pages, p - first, &s,
        title, author);
    if (ret != GST_FLOW_OK) {
      GST_DEBUG_OBJECT (self, "stopping at page %d: %s", p,
          gst_flow_get_name (ret));
      break;
    }
  }

  g_free (title);
  g_free (author);
  g_object_unref (doc);
  g_free (s.password);
  return ret;

  /* ERRORS */
no_data:
  {
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("No PDF data was received before the end of the stream."), (NULL));
    g_free (s.password);
    return GST_FLOW_ERROR;
  }
open_failed:
  {
    if (g_error_matches (err, POPPLER_ERROR, POPPLER_ERROR_ENCRYPTED)) {
      if (s.password && *s.password)
        GST_ELEMENT_ERROR (self, STREAM, DECRYPT_NOKEY,
            ("The PDF document is encrypted and the password property does not open it."),
            ("poppler: %s", err->message));
      else
        GST_ELEMENT_ERROR (self, STREAM, DECRYPT_NOKEY,
            ("The PDF document is encrypted: set the password property."),
            ("poppler: %s", err->message));
    } else {
      GST_ELEMENT_ERROR (self, STREAM, DECODE,
          ("Could not open the PDF document: %s",
              err ? err->message : "unknown error"),
          ("%" G_GSIZE_FORMAT " bytes received", size));
    }
    g_clear_error (&err);
    g_free (s.password);
    return GST_FLOW_ERROR;
  }
no_pages:
  {
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("The PDF document has no pages."), (NULL));
    g_object_unref (doc);
    g_free (s.password);
    return GST_FLOW_ERROR;
  }
bad_range:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Pages %d to %d are not in the PDF document, which has %d pages.",
            first, last, n_pages),
        ("first-page=%d last-page=%d", s.first_page, s.last_page));
    g_object_unref (doc);
    g_free (s.password);
    return GST_FLOW_ERROR;
  }
}

static gboolean
gst_dsocr_pdf_dec_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (parent);

  GST_LOG_OBJECT (self, "event %" GST_PTR_FORMAT, event);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:
      /* a new document: send caps again even if its first page has the old size */
      gst_dsocr_pdf_dec_reset (self);
      gst_video_info_init (&self->vinfo);
      break;
    case GST_EVENT_CAPS:
    case GST_EVENT_GAP:
      /* they describe the byte stream; the pages get their own caps */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_SEGMENT:
      self->segment_seqnum = gst_event_get_seqnum (event);
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_TAG:{
      GstTagList *tags;

      gst_event_parse_tag (event, &tags);
      if (gst_tag_list_get_scope (tags) == GST_TAG_SCOPE_STREAM) {
        /* sent with each page's tags, after the page caps */
        gst_clear_tag_list (&self->upstream_tags);
        self->upstream_tags = gst_tag_list_copy (tags);
        gst_event_unref (event);
        return TRUE;
      }
      break;
    }
    case GST_EVENT_FLUSH_START:
      g_atomic_int_set (&self->flushing, 1);
      break;
    case GST_EVENT_FLUSH_STOP:
      gst_dsocr_pdf_dec_reset (self);
      g_atomic_int_set (&self->flushing, 0);
      break;
    case GST_EVENT_EOS:{
      GstFlowReturn ret = gst_dsocr_pdf_dec_drain (self);

      /* the duration stays known until the next stream or flush */
      gst_adapter_clear (self->adapter);
      if (ret == GST_FLOW_OK || ret == GST_FLOW_EOS)
        break;
      if (ret == GST_FLOW_NOT_LINKED || ret == GST_FLOW_NOT_NEGOTIATED)
        GST_ELEMENT_FLOW_ERROR (self, ret);
      gst_event_unref (event);
      return FALSE;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_dsocr_pdf_dec_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_SEEK) {
    GST_DEBUG_OBJECT (parent, "seeking is not supported");
    gst_event_unref (event);
    return FALSE;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_dsocr_pdf_dec_src_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstDsocrPdfDec *self = GST_DSOCR_PDF_DEC (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_SEEKING:{
      GstFormat format;

      gst_query_parse_seeking (query, &format, NULL, NULL, NULL);
      gst_query_set_seeking (query, format, FALSE, 0, -1);
      return TRUE;
    }
    case GST_QUERY_DURATION:{
      GstFormat format;
      gint n;
      GstClockTime page_duration;

      gst_query_parse_duration (query, &format, NULL);
      GST_OBJECT_LOCK (self);
      n = self->n_out_pages;
      page_duration = self->out_page_duration;
      GST_OBJECT_UNLOCK (self);
      /* known once the document is open; upstream's duration is in bytes */
      if (n == 0)
        return FALSE;
      if (format == GST_FORMAT_TIME)
        gst_query_set_duration (query, format, n * page_duration);
      else if (format == GST_FORMAT_DEFAULT)
        gst_query_set_duration (query, format, n);
      else
        return FALSE;
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}
