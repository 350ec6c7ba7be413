/* gstdsocroverlay.c: dsocroverlay, draws regions of interest and their labels on frames. */

/**
 * SECTION:element-dsocroverlay
 * @title: dsocroverlay
 *
 * Draws every #GstVideoRegionOfInterestMeta of a frame as a rectangle outline with its label
 * (the meta's type: "title", "text", "table", "image", ...) in a filled tag above the box.
 * dsocrdecode attaches one such meta per grounding box, in the frame's pixels; metas from any
 * other element are drawn the same way. Each label gets its own colour, the same in every
 * frame. Labels are rendered with cairo.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 v4l2src ! videoconvert ! dsocrpreprocess mode=small ! \
 *     dsocrencode model-location=/models/DeepSeek-OCR ! \
 *     dsocrdecode model-location=/models/DeepSeek-OCR ! videoconvert ! dsocroverlay ! \
 *     videoconvert ! autovideosink
 * ]|
 *
 * Since: 0.1
 */

#include "gstdsocroverlay.h"

#include <math.h>

#include <cairo.h>
#include <gst/video/video.h>

#include "gstdsocrelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_overlay_debug);
#define GST_CAT_DEFAULT gst_dsocr_overlay_debug

#define VIDEO_FORMATS "{ RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, xBGR, ARGB, ABGR }"

#define DEFAULT_LINE_WIDTH 2
#define DEFAULT_FONT_SIZE 0.0
#define DEFAULT_DRAW_LABELS TRUE

enum
{
  PROP_0,
  PROP_LINE_WIDTH,
  PROP_FONT_SIZE,
  PROP_DRAW_LABELS,
};

struct _GstDsocrOverlay
{
  GstVideoFilter parent;

  /* properties, under the object lock */
  guint line_width;
  gdouble font_size;
  gboolean draw_labels;
};

/* A colour as R, G, B. */
typedef struct
{
  guint8 r, g, b;
} Rgb;

/* Distinct colours, dark enough for white label text. */
static const Rgb palette[] = {
  {230, 25, 75}, {60, 140, 60}, {0, 90, 200}, {200, 100, 0}, {145, 30, 180},
  {0, 130, 130}, {170, 110, 40}, {128, 0, 0}, {0, 0, 128}, {100, 100, 100},
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));

#define gst_dsocr_overlay_parent_class parent_class
G_DEFINE_TYPE (GstDsocrOverlay, gst_dsocr_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (dsocroverlay, "dsocroverlay", GST_RANK_NONE,
    GST_TYPE_DSOCR_OVERLAY);

static void gst_dsocr_overlay_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_overlay_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static GstFlowReturn gst_dsocr_overlay_transform_ip (GstBaseTransform * trans,
    GstBuffer * buf);

static void
gst_dsocr_overlay_class_init (GstDsocrOverlayClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_overlay_debug, "dsocroverlay", 0,
      "Region of interest overlay");

  gobject_class->set_property = gst_dsocr_overlay_set_property;
  gobject_class->get_property = gst_dsocr_overlay_get_property;

  /**
   * GstDsocrOverlay:line-width:
   *
   * Width of the box outlines in pixels, drawn inside the box.
   */
  g_object_class_install_property (gobject_class, PROP_LINE_WIDTH,
      g_param_spec_uint ("line-width", "Line width",
          "Width of the box outlines in pixels, drawn inside the box. May change "
          "while playing (from the next frame)", 1, 64, DEFAULT_LINE_WIDTH,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrOverlay:font-size:
   *
   * Height of the label font in pixels; 0 picks one from the frame height (1/60 of it, at
   * least 10).
   */
  g_object_class_install_property (gobject_class, PROP_FONT_SIZE,
      g_param_spec_double ("font-size", "Font size",
          "Label height in pixels (0 = 1/60 of the frame height, at least 10). May "
          "change while playing (from the next frame)", 0.0, 512.0,
          DEFAULT_FONT_SIZE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrOverlay:draw-labels:
   *
   * Whether to draw the label tags (the outlines are always drawn).
   */
  g_object_class_install_property (gobject_class, PROP_DRAW_LABELS,
      g_param_spec_boolean ("draw-labels", "Draw labels",
          "Draw each box's label tag (the outlines are always drawn). May change "
          "while playing (from the next frame)", DEFAULT_DRAW_LABELS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Region of interest overlay", "Filter/Editor/Video",
      "Draws the regions of interest of frames (DeepSeek-OCR grounding boxes) with their "
      "labels", "gst-dsocr");

  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_dsocr_overlay_transform_ip);
}

static void
gst_dsocr_overlay_init (GstDsocrOverlay * self)
{
  self->line_width = DEFAULT_LINE_WIDTH;
  self->font_size = DEFAULT_FONT_SIZE;
  self->draw_labels = DEFAULT_DRAW_LABELS;
}

static void
gst_dsocr_overlay_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrOverlay *self = GST_DSOCR_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LINE_WIDTH:
      self->line_width = g_value_get_uint (value);
      break;
    case PROP_FONT_SIZE:
      self->font_size = g_value_get_double (value);
      break;
    case PROP_DRAW_LABELS:
      self->draw_labels = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dsocr_overlay_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrOverlay *self = GST_DSOCR_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LINE_WIDTH:
      g_value_set_uint (value, self->line_width);
      break;
    case PROP_FONT_SIZE:
      g_value_set_double (value, self->font_size);
      break;
    case PROP_DRAW_LABELS:
      g_value_set_boolean (value, self->draw_labels);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Where the bytes of a pixel are in a packed 8-bit RGB frame. */
typedef struct
{
  guint8 *data;                 /* [height, stride] */
  gint width, height, stride;
  guint pstride;                /* bytes per pixel: 3 or 4 */
  guint r, g, b;                /* byte offsets within a pixel */
  gint a;                       /* alpha byte offset, -1 without alpha */
} Canvas;

static void
canvas_fill (const Canvas * c, gint x0, gint y0, gint x1, gint y1, Rgb col)
{
  gint x, y;

  x0 = CLAMP (x0, 0, c->width);
  x1 = CLAMP (x1, 0, c->width);
  y0 = CLAMP (y0, 0, c->height);
  y1 = CLAMP (y1, 0, c->height);
  for (y = y0; y < y1; y++) {
    guint8 *p = c->data + (gsize) y * c->stride + (gsize) x0 * c->pstride;

    for (x = x0; x < x1; x++, p += c->pstride) {
      p[c->r] = col.r;
      p[c->g] = col.g;
      p[c->b] = col.b;
      if (c->a >= 0)
        p[c->a] = 255;
    }
  }
}

/* The outline of [x0, x1) x [y0, y1), @lw pixels thick, inside the box. */
static void
canvas_rect (const Canvas * c, gint x0, gint y0, gint x1, gint y1, gint lw,
    Rgb col)
{
  lw = MIN (lw, MAX (1, MIN (x1 - x0, y1 - y0) / 2 + 1));
  canvas_fill (c, x0, y0, x1, y0 + lw, col);
  canvas_fill (c, x0, y1 - lw, x1, y1, col);
  canvas_fill (c, x0, y0, x0 + lw, y1, col);
  canvas_fill (c, x1 - lw, y0, x1, y1, col);
}

/* Copies the opaque cairo ARGB32 @surface onto @c with its top-left corner at (@x, @y). */
static void
canvas_blit (const Canvas * c, cairo_surface_t * surface, gint x, gint y)
{
  const guint8 *src = cairo_image_surface_get_data (surface);
  gint sw = cairo_image_surface_get_width (surface);
  gint sh = cairo_image_surface_get_height (surface);
  gint sstride = cairo_image_surface_get_stride (surface);
  gint i, j;

  for (j = 0; j < sh; j++) {
    if (y + j < 0 || y + j >= c->height)
      continue;
    for (i = 0; i < sw; i++) {
      /* a native-endian 0xAARRGGBB word per pixel */
      guint32 px = ((const guint32 *) (src + (gsize) j * sstride))[i];
      guint8 *p;

      if (x + i < 0 || x + i >= c->width)
        continue;
      p = c->data + (gsize) (y + j) * c->stride + (gsize) (x + i) * c->pstride;
      p[c->r] = (px >> 16) & 0xff;
      p[c->g] = (px >> 8) & 0xff;
      p[c->b] = px & 0xff;
      if (c->a >= 0)
        p[c->a] = 255;
    }
  }
}

/* Renders @label in white on @col, padded; NULL when cairo fails. (transfer full) */
static cairo_surface_t *
render_label (const gchar * label, gdouble font_size, Rgb col)
{
  cairo_surface_t *probe, *surface;
  cairo_text_extents_t ext;
  cairo_font_extents_t fext;
  cairo_t *cr;
  gint pad = MAX (1, (gint) (font_size / 5)), w, h;

  probe = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, 1, 1);
  cr = cairo_create (probe);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL,
      CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, font_size);
  cairo_text_extents (cr, label, &ext);
  cairo_font_extents (cr, &fext);
  cairo_destroy (cr);
  cairo_surface_destroy (probe);

  w = (gint) ceil (ext.x_advance) + 2 * pad;
  h = (gint) ceil (fext.ascent + fext.descent) + 2 * pad;
  surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, MAX (w, 1),
      MAX (h, 1));
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy (surface);
    return NULL;
  }
  cr = cairo_create (surface);
  cairo_set_source_rgb (cr, col.r / 255.0, col.g / 255.0, col.b / 255.0);
  cairo_paint (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL,
      CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, font_size);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_move_to (cr, pad, pad + fext.ascent);
  cairo_show_text (cr, label);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  return surface;
}

static Rgb
label_colour (const gchar * label)
{
  return palette[g_str_hash (label ? label : "") % G_N_ELEMENTS (palette)];
}

static void
gst_dsocr_overlay_draw (GstDsocrOverlay * self, GstVideoFrame * frame)
{
  const GstVideoFormatInfo *finfo = frame->info.finfo;
  GstVideoRegionOfInterestMeta *roi;
  gpointer state = NULL;
  guint line_width;
  gdouble font_size;
  gboolean draw_labels;
  Canvas c;

  GST_OBJECT_LOCK (self);
  line_width = self->line_width;
  font_size = self->font_size;
  draw_labels = self->draw_labels;
  GST_OBJECT_UNLOCK (self);

  c.data = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  c.width = GST_VIDEO_FRAME_WIDTH (frame);
  c.height = GST_VIDEO_FRAME_HEIGHT (frame);
  c.stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  c.pstride = GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, 0);
  c.r = GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 0);
  c.g = GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 1);
  c.b = GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 2);
  c.a = GST_VIDEO_FORMAT_INFO_HAS_ALPHA (finfo) ?
      (gint) GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 3) : -1;
  if (font_size <= 0)
    font_size = MAX (10.0, c.height / 60.0);

  while ((roi = (GstVideoRegionOfInterestMeta *)
          gst_buffer_iterate_meta_filtered (frame->buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    const gchar *label = g_quark_to_string (roi->roi_type);
    Rgb col = label_colour (label);
    gint x0 = roi->x, y0 = roi->y;
    gint x1 = x0 + (gint) roi->w, y1 = y0 + (gint) roi->h;

    if (x1 <= x0 || y1 <= y0)
      continue;
    canvas_rect (&c, x0, y0, x1, y1, line_width, col);

    if (draw_labels && label && *label) {
      cairo_surface_t *tag = render_label (label, font_size, col);
      gint th;

      if (!tag)
        continue;
      th = cairo_image_surface_get_height (tag);
      /* above the box when there is room, else inside its top edge */
      canvas_blit (&c, tag, MAX (x0, 0), y0 - th >= 0 ? y0 - th : MAX (y0, 0));
      cairo_surface_destroy (tag);
    }
  }
}

static GstFlowReturn
gst_dsocr_overlay_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstVideoFilter *filter = GST_VIDEO_FILTER (trans);
  GstVideoFrame frame;

  if (!filter->negotiated) {
    GST_ELEMENT_ERROR (trans, CORE, NOT_IMPLEMENTED, (NULL),
        ("a buffer arrived before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  /* a frame without boxes is not mapped for writing, which would copy shared pixels */
  if (!gst_buffer_get_meta (buf, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    return GST_FLOW_OK;
  if (!gst_video_frame_map (&frame, &filter->in_info, buf, GST_MAP_READWRITE)) {
    GST_ELEMENT_ERROR (trans, RESOURCE, WRITE, ("Could not draw on a video frame."),
        ("mapping the frame for writing failed"));
    return GST_FLOW_ERROR;
  }
  gst_dsocr_overlay_draw (GST_DSOCR_OVERLAY (trans), &frame);
  gst_video_frame_unmap (&frame);
  return GST_FLOW_OK;
}
