/* gstdsocrresult.c: dsocrresult, the result metas of recognised frames as text buffers. */

/**
 * SECTION:element-dsocrresult
 * @title: dsocrresult
 *
 * Takes the frames dsocrdecode recognised and sends their results downstream as text: the
 * markdown of each page (`text/x-raw, format=utf8`, pages separated by
 * #GstDsocrResult:page-separator) or one line of JSON per page (`application/x-json`, JSON
 * lines), for filesink, appsink, fdsink or a text overlay. The frames themselves are not
 * passed on (use a tee to keep the video); a frame without a result becomes a gap event so
 * that live sinks keep running.
 *
 * Each output buffer has the timestamps of its frame.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=doc.pdf ! dsocrpdfdec ! dsocrpreprocess ! \
 *     dsocrencode model-location=/models/DeepSeek-OCR ! \
 *     dsocrdecode model-location=/models/DeepSeek-OCR ! dsocrresult format=json ! \
 *     filesink location=doc.jsonl
 * ]|
 *
 * Since: 0.1
 */

#include "gstdsocrresult.h"

#include <string.h>

#include "gstdsocrelements.h"
#include "gstdsocrmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_result_debug);
#define GST_CAT_DEFAULT gst_dsocr_result_debug

#define MARKDOWN_CAPS "text/x-raw, format = (string) utf8"
#define JSON_CAPS "application/x-json"

#define DEFAULT_FORMAT GST_DSOCR_RESULT_FORMAT_MARKDOWN
/* what the DeepSeek-OCR PDF script puts between the pages of a document */
#define DEFAULT_PAGE_SEPARATOR "\n<--- Page Split --->\n"

enum
{
  PROP_0,
  PROP_FORMAT,
  PROP_PAGE_SEPARATOR,
};

struct _GstDsocrResult
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties, under the object lock */
  GstDsocrResultFormat format;
  gchar *page_separator;

  /* < private > streaming state, under the sink pad's stream lock */
  GstDsocrResultFormat out_format;      /* fixed from READY to PAUSED */
  gboolean caps_sent;
  gboolean first_page;          /* no separator before the first page */
  gboolean discont;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS_ANY);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (MARKDOWN_CAPS "; " JSON_CAPS));

#define gst_dsocr_result_parent_class parent_class
G_DEFINE_TYPE (GstDsocrResult, gst_dsocr_result, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (dsocrresult, "dsocrresult", GST_RANK_NONE,
    GST_TYPE_DSOCR_RESULT);

static void gst_dsocr_result_finalize (GObject * object);
static void gst_dsocr_result_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_result_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static GstStateChangeReturn gst_dsocr_result_change_state (GstElement * element,
    GstStateChange transition);
static GstFlowReturn gst_dsocr_result_chain (GstPad * pad, GstObject * parent,
    GstBuffer * buffer);
static gboolean gst_dsocr_result_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event);
static gboolean gst_dsocr_result_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query);
static gboolean gst_dsocr_result_src_query (GstPad * pad, GstObject * parent,
    GstQuery * query);

GType
gst_dsocr_result_format_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_RESULT_FORMAT_MARKDOWN, "Markdown text (text/x-raw, format=utf8)",
        "markdown"},
    {GST_DSOCR_RESULT_FORMAT_JSON, "JSON lines (application/x-json)", "json"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrResultFormat", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
gst_dsocr_result_class_init (GstDsocrResultClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_result_debug, "dsocrresult", 0,
      "DeepSeek-OCR result output");

  gobject_class->finalize = gst_dsocr_result_finalize;
  gobject_class->set_property = gst_dsocr_result_set_property;
  gobject_class->get_property = gst_dsocr_result_get_property;

  /**
   * GstDsocrResult:format:
   *
   * What the output buffers hold: markdown (text/x-raw, format=utf8) or JSON lines
   * (application/x-json). It decides the src caps, so it is set in NULL or READY.
   */
  g_object_class_install_property (gobject_class, PROP_FORMAT,
      g_param_spec_enum ("format", "Format",
          "Output: markdown text (text/x-raw) or JSON lines (application/x-json). Set "
          "in NULL or READY", GST_TYPE_DSOCR_RESULT_FORMAT,
          DEFAULT_FORMAT, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstDsocrResult:page-separator:
   *
   * Text put between the markdown of consecutive pages (markdown format only). The default
   * is the separator of the DeepSeek-OCR PDF script.
   */
  g_object_class_install_property (gobject_class, PROP_PAGE_SEPARATOR,
      g_param_spec_string ("page-separator", "Page separator",
          "Text between the markdown of consecutive pages (markdown format). May "
          "change while playing (from the next page)", DEFAULT_PAGE_SEPARATOR,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR result output", "Converter/Text",
      "Sends the markdown or JSON results of recognised frames downstream as text",
      "gst-dsocr");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_dsocr_result_change_state);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_RESULT_FORMAT, 0);
  gst_dsocr_meta_register ();
}

static void
gst_dsocr_result_init (GstDsocrResult * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_result_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_result_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_result_sink_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_result_src_query));
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->format = DEFAULT_FORMAT;
  self->page_separator = g_strdup (DEFAULT_PAGE_SEPARATOR);
}

static void
gst_dsocr_result_finalize (GObject * object)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (object);

  g_free (self->page_separator);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_result_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_FORMAT:
      self->format = g_value_get_enum (value);
      break;
    case PROP_PAGE_SEPARATOR:
      g_free (self->page_separator);
      self->page_separator = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dsocr_result_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_FORMAT:
      g_value_set_enum (value, self->format);
      break;
    case PROP_PAGE_SEPARATOR:
      g_value_set_string (value, self->page_separator);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstCaps *
gst_dsocr_result_out_caps (GstDsocrResultFormat format)
{
  return gst_caps_from_string (format == GST_DSOCR_RESULT_FORMAT_JSON ?
      JSON_CAPS : MARKDOWN_CAPS);
}

static GstStateChangeReturn
gst_dsocr_result_change_state (GstElement * element, GstStateChange transition)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (element);

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    GST_OBJECT_LOCK (self);
    self->out_format = self->format;
    GST_OBJECT_UNLOCK (self);
    self->caps_sent = FALSE;
    self->first_page = TRUE;
    self->discont = TRUE;
  }
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static gboolean
gst_dsocr_result_send_caps (GstDsocrResult * self)
{
  GstCaps *caps = gst_dsocr_result_out_caps (self->out_format);
  gboolean ret = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));

  gst_caps_unref (caps);
  self->caps_sent = ret;
  return ret;
}

static GstFlowReturn
gst_dsocr_result_chain (GstPad * pad, GstObject * parent, GstBuffer * buffer)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (parent);
  const GstStructure *s = gst_buffer_get_dsocr_result (buffer);
  const gchar *text;
  GString *out;
  GstBuffer *outbuf;
  GstFlowReturn ret;

  if (!s) {
    /* nothing recognised on this frame: tell downstream time went on */
    if (GST_BUFFER_PTS_IS_VALID (buffer))
      gst_pad_push_event (self->srcpad,
          gst_event_new_gap (GST_BUFFER_PTS (buffer),
              GST_BUFFER_DURATION (buffer)));
    gst_buffer_unref (buffer);
    return GST_FLOW_OK;
  }

  if (!self->caps_sent && !gst_dsocr_result_send_caps (self)) {
    gst_buffer_unref (buffer);
    goto not_negotiated;
  }

  out = g_string_new (NULL);
  if (self->out_format == GST_DSOCR_RESULT_FORMAT_JSON) {
    text = gst_structure_get_string (s, "json");
    if (!text)
      goto bad_meta;
    g_string_append (out, text);
    g_string_append_c (out, '\n');
  } else {
    text = gst_structure_get_string (s, "markdown");
    if (!text)
      goto bad_meta;
    if (!self->first_page) {
      GST_OBJECT_LOCK (self);
      g_string_append (out, self->page_separator ? self->page_separator : "");
      GST_OBJECT_UNLOCK (self);
    }
    g_string_append (out, text);
  }
  self->first_page = FALSE;

  outbuf = gst_buffer_new_wrapped (g_strdup (out->str), out->len);
  g_string_free (out, TRUE);
  gst_buffer_copy_into (outbuf, buffer, GST_BUFFER_COPY_TIMESTAMPS, 0, -1);
  if (self->discont) {
    GST_BUFFER_FLAG_SET (outbuf, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }
  gst_buffer_unref (buffer);
  ret = gst_pad_push (self->srcpad, outbuf);
  if (ret == GST_FLOW_NOT_NEGOTIATED)
    goto not_negotiated;
  return ret;

  /* ERRORS */
not_negotiated:
  {
    if (GST_PAD_IS_FLUSHING (self->srcpad))
      return GST_FLOW_FLUSHING;
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept %s.",
            self->out_format == GST_DSOCR_RESULT_FORMAT_JSON ? JSON_CAPS :
            MARKDOWN_CAPS), ("set the format property to what downstream takes"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
bad_meta:
  {
    g_string_free (out, TRUE);
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("A frame's result meta has no %s field.",
            self->out_format == GST_DSOCR_RESULT_FORMAT_JSON ? "json" :
            "markdown"), (NULL));
    return GST_FLOW_ERROR;
  }
}

static gboolean
gst_dsocr_result_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:
      /* the frames' caps stop here; ours go out before the segment that follows */
      gst_event_unref (event);
      return self->caps_sent ? TRUE : gst_dsocr_result_send_caps (self);
    case GST_EVENT_FLUSH_STOP:
      self->first_page = TRUE;
      self->discont = TRUE;
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_dsocr_result_sink_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *filter, *caps;

      /* any frames: the results ride on metas */
      gst_query_parse_caps (query, &filter);
      caps = filter ? gst_caps_ref (filter) : gst_caps_new_any ();
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    case GST_QUERY_ALLOCATION:
      /* downstream takes text: its allocator means nothing to the frames' producer */
      return FALSE;
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

static gboolean
gst_dsocr_result_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDsocrResult *self = GST_DSOCR_RESULT (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    GstDsocrResultFormat format;
    GstCaps *filter, *caps;

    GST_OBJECT_LOCK (self);
    format = self->format;
    GST_OBJECT_UNLOCK (self);
    caps = gst_dsocr_result_out_caps (format);
    gst_query_parse_caps (query, &filter);
    if (filter) {
      GstCaps *tmp = gst_caps_intersect_full (filter, caps,
          GST_CAPS_INTERSECT_FIRST);

      gst_caps_unref (caps);
      caps = tmp;
    }
    gst_query_set_caps_result (query, caps);
    gst_caps_unref (caps);
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}
