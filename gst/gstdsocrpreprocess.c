/* gstdsocrpreprocess.c: dsocrpreprocess, prepares frames for the DeepSeek-OCR vision tower. */

/**
 * SECTION:element-dsocrpreprocess
 * @title: dsocrpreprocess
 *
 * Turns each video frame into the views the DeepSeek-OCR vision tower takes, exactly as the
 * reference's preprocessing does (resize or pad the global view, cut 640x640 tiles in gundam
 * mode, normalise to [-1, 1]), and attaches them to the frame as a #GstDsocrTilesMeta. The
 * frame itself passes through untouched.
 *
 * Any frame size is accepted and the size may change between buffers. RGB frames are read
 * in place; the other RGB layouts and GRAY8 are converted to RGB by reordering bytes (alpha is
 * dropped, grey is replicated, as Pillow's convert("RGB") does) and NV12/I420 with a
 * #GstVideoConverter using the caps' colorimetry.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=doc.pdf ! dsocrpdfdec ! dsocrpreprocess mode=gundam ! \
 *     dsocrencode model-location=/models/DeepSeek-OCR ! \
 *     dsocrdecode model-location=/models/DeepSeek-OCR ! dsocrresult ! filesink location=doc.md
 * ]|
 *
 * Since: 0.1
 */

#include "gstdsocrpreprocess.h"

#include <gst/video/video.h>

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-preprocess.h>

#include "gstdsocrelements.h"
#include "gstdsocrmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_preprocess_debug);
#define GST_CAT_DEFAULT gst_dsocr_preprocess_debug

#define VIDEO_FORMATS "{ RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, xBGR, ARGB, ABGR, " \
  "NV12, I420, GRAY8 }"

#define DEFAULT_MODE GST_DSOCR_MODE_GUNDAM
#define DEFAULT_MIN_CROPS 2
#define DEFAULT_MAX_CROPS DSOCR_MAX_TILES_HF
#define DEFAULT_PIXEL_FORMAT GST_DSOCR_PIXEL_FORMAT_F32

enum
{
  PROP_0,
  PROP_MODE,
  PROP_MIN_CROPS,
  PROP_MAX_CROPS,
  PROP_PIXEL_FORMAT,
};

/* How a negotiated format becomes the RGB8 picture the engine reads. */
typedef enum
{
  TO_RGB_NONE,                  /* already RGB: the frame is read in place */
  TO_RGB_REORDER,               /* packed 8-bit RGB layouts: pick R, G, B bytes */
  TO_RGB_GRAY,                  /* GRAY8: replicate */
  TO_RGB_CONVERTER,             /* YUV: GstVideoConverter */
} ToRgb;

struct _GstDsocrPreprocess
{
  GstVideoFilter parent;

  /* properties, under the object lock */
  GstDsocrMode mode;
  gint min_crops;
  gint max_crops;
  GstDsocrPixelFormat pixel_format;

  /* < private > set in set_info, used by the streaming thread */
  ToRgb to_rgb;
  GstVideoInfo rgb_info;        /* the RGB picture for every path but TO_RGB_NONE */
  GstBuffer *rgb;               /* its pixels */
  GstVideoConverter *converter;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));

#define gst_dsocr_preprocess_parent_class parent_class
G_DEFINE_TYPE (GstDsocrPreprocess, gst_dsocr_preprocess, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (dsocrpreprocess, "dsocrpreprocess", GST_RANK_NONE,
    GST_TYPE_DSOCR_PREPROCESS);

static void gst_dsocr_preprocess_finalize (GObject * object);
static void gst_dsocr_preprocess_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_preprocess_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_dsocr_preprocess_stop (GstBaseTransform * trans);
static GstFlowReturn gst_dsocr_preprocess_transform_ip (GstBaseTransform * trans,
    GstBuffer * buf);
static gboolean gst_dsocr_preprocess_set_info (GstVideoFilter * filter,
    GstCaps * incaps, GstVideoInfo * in_info, GstCaps * outcaps,
    GstVideoInfo * out_info);

GType
gst_dsocr_pixel_format_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_PIXEL_FORMAT_F32, "32-bit float", "f32"},
    {GST_DSOCR_PIXEL_FORMAT_BF16, "bfloat16 (half the memory, same embeddings)",
        "bf16"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrPixelFormat", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
gst_dsocr_preprocess_class_init (GstDsocrPreprocessClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_preprocess_debug, "dsocrpreprocess", 0,
      "DeepSeek-OCR preprocessing");

  gobject_class->finalize = gst_dsocr_preprocess_finalize;
  gobject_class->set_property = gst_dsocr_preprocess_set_property;
  gobject_class->get_property = gst_dsocr_preprocess_get_property;

  /**
   * GstDsocrPreprocess:mode:
   *
   * Resolution mode: the size of the global view and whether tiles are cut.
   */
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
          "Resolution mode: tiny 512 and small 640 (squashed), base 1024 and large 1280 "
          "(padded), gundam 1024 padded plus 640x640 tiles. May change while playing "
          "(from the next frame)",
          GST_TYPE_DSOCR_MODE, DEFAULT_MODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPreprocess:min-crops:
   *
   * Fewest tiles of a tiled frame (gundam mode; the reference uses 2).
   */
  g_object_class_install_property (gobject_class, PROP_MIN_CROPS,
      g_param_spec_int ("min-crops", "Minimum crops",
          "Fewest tiles of a tiled frame in gundam mode. May change while playing "
          "(from the next frame)", 2,
          DSOCR_MAX_TILES_LIMIT, DEFAULT_MIN_CROPS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPreprocess:max-crops:
   *
   * Most tiles of a frame in gundam mode: 9 in the transformers reference, 6 in the vLLM
   * scripts. Must not be below min-crops.
   */
  g_object_class_install_property (gobject_class, PROP_MAX_CROPS,
      g_param_spec_int ("max-crops", "Maximum crops",
          "Most tiles of a frame in gundam mode (9: transformers, 6: vLLM scripts), "
          "not below min-crops. May change while playing (from the next frame)",
          2, DSOCR_MAX_TILES_LIMIT, DEFAULT_MAX_CROPS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrPreprocess:pixel-format:
   *
   * Storage of the normalised pixels: f32, or bf16, which halves the memory and gives
   * the same embeddings (the vision tower rounds its input to bf16). Like the other
   * properties, it may change while playing and applies from the next frame.
   */
  g_object_class_install_property (gobject_class, PROP_PIXEL_FORMAT,
      g_param_spec_enum ("pixel-format", "Pixel format",
          "Storage of the normalised pixels (bf16 halves the memory, same embeddings). "
          "May change while playing (from the next frame)",
          GST_TYPE_DSOCR_PIXEL_FORMAT, DEFAULT_PIXEL_FORMAT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR preprocessing", "Filter/Analyzer/Video",
      "Tiles and normalises frames for the DeepSeek-OCR vision tower, attaching the views "
      "as a meta", "gst-dsocr");

  trans_class->stop = GST_DEBUG_FUNCPTR (gst_dsocr_preprocess_stop);
  trans_class->transform_ip =
      GST_DEBUG_FUNCPTR (gst_dsocr_preprocess_transform_ip);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_dsocr_preprocess_set_info);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_PIXEL_FORMAT, 0);
  gst_dsocr_meta_register ();
}

static void
gst_dsocr_preprocess_init (GstDsocrPreprocess * self)
{
  self->mode = DEFAULT_MODE;
  self->min_crops = DEFAULT_MIN_CROPS;
  self->max_crops = DEFAULT_MAX_CROPS;
  self->pixel_format = DEFAULT_PIXEL_FORMAT;
  /* The frame is only read: the in-place path must not ask for writable memory, which
   * would copy the pixels of a shared frame. */
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_dsocr_preprocess_clear_scratch (GstDsocrPreprocess * self)
{
  gst_clear_buffer (&self->rgb);
  g_clear_pointer (&self->converter, gst_video_converter_free);
  self->to_rgb = TO_RGB_NONE;
}

static void
gst_dsocr_preprocess_finalize (GObject * object)
{
  gst_dsocr_preprocess_clear_scratch (GST_DSOCR_PREPROCESS (object));
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_preprocess_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrPreprocess *self = GST_DSOCR_PREPROCESS (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODE:
      self->mode = g_value_get_enum (value);
      break;
    case PROP_MIN_CROPS:
      self->min_crops = g_value_get_int (value);
      break;
    case PROP_MAX_CROPS:
      self->max_crops = g_value_get_int (value);
      break;
    case PROP_PIXEL_FORMAT:
      self->pixel_format = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dsocr_preprocess_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrPreprocess *self = GST_DSOCR_PREPROCESS (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODE:
      g_value_set_enum (value, self->mode);
      break;
    case PROP_MIN_CROPS:
      g_value_set_int (value, self->min_crops);
      break;
    case PROP_MAX_CROPS:
      g_value_set_int (value, self->max_crops);
      break;
    case PROP_PIXEL_FORMAT:
      g_value_set_enum (value, self->pixel_format);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_dsocr_preprocess_stop (GstBaseTransform * trans)
{
  gst_dsocr_preprocess_clear_scratch (GST_DSOCR_PREPROCESS (trans));
  return TRUE;
}

static gboolean
gst_dsocr_preprocess_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstDsocrPreprocess *self = GST_DSOCR_PREPROCESS (filter);
  const GstVideoFormatInfo *finfo = in_info->finfo;
  GstVideoFormat format = GST_VIDEO_INFO_FORMAT (in_info);
  gint width = GST_VIDEO_INFO_WIDTH (in_info);
  gint height = GST_VIDEO_INFO_HEIGHT (in_info);

  gst_dsocr_preprocess_clear_scratch (self);

  if (format == GST_VIDEO_FORMAT_RGB) {
    self->to_rgb = TO_RGB_NONE;
  } else if (GST_VIDEO_FORMAT_INFO_IS_GRAY (finfo)) {
    self->to_rgb = TO_RGB_GRAY;
  } else if (GST_VIDEO_FORMAT_INFO_IS_RGB (finfo)) {
    self->to_rgb = TO_RGB_REORDER;
  } else {
    self->to_rgb = TO_RGB_CONVERTER;
  }

  if (self->to_rgb == TO_RGB_NONE)
    return TRUE;

  gst_video_info_set_format (&self->rgb_info, GST_VIDEO_FORMAT_RGB, width,
      height);
  self->rgb = gst_buffer_new_allocate (NULL,
      GST_VIDEO_INFO_SIZE (&self->rgb_info), NULL);
  if (!self->rgb)
    goto no_memory;

  if (self->to_rgb == TO_RGB_CONVERTER) {
    /* full-range RGB as Pillow sees images; the converter reads the input's matrix and
     * range from the caps */
    self->rgb_info.colorimetry.range = GST_VIDEO_COLOR_RANGE_0_255;
    /* the converter insists that everything but the pixels agrees */
    GST_VIDEO_INFO_FPS_N (&self->rgb_info) = GST_VIDEO_INFO_FPS_N (in_info);
    GST_VIDEO_INFO_FPS_D (&self->rgb_info) = GST_VIDEO_INFO_FPS_D (in_info);
    GST_VIDEO_INFO_PAR_N (&self->rgb_info) = GST_VIDEO_INFO_PAR_N (in_info);
    GST_VIDEO_INFO_PAR_D (&self->rgb_info) = GST_VIDEO_INFO_PAR_D (in_info);
    GST_VIDEO_INFO_INTERLACE_MODE (&self->rgb_info) =
        GST_VIDEO_INFO_INTERLACE_MODE (in_info);
    self->converter = gst_video_converter_new (in_info, &self->rgb_info, NULL);
    if (!self->converter)
      goto no_converter;
  }
  GST_DEBUG_OBJECT (self, "%s %dx%d, to RGB by %d",
      gst_video_format_to_string (format), width, height, self->to_rgb);
  return TRUE;

  /* ERRORS */
no_memory:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("Could not allocate an RGB copy of a %dx%d frame.", width, height),
        (NULL));
    return FALSE;
  }
no_converter:
  {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Cannot convert %s frames to RGB.", gst_video_format_to_string (format)),
        ("gst_video_converter_new failed for %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
}

/* Writes the RGB8 picture of @frame into @rgb (RGB, rgb_info). */
static void
to_rgb_reorder (const GstVideoFrame * frame, GstVideoFrame * rgb, gboolean gray)
{
  const GstVideoFormatInfo *finfo = frame->info.finfo;
  gint width = GST_VIDEO_FRAME_WIDTH (frame);
  gint height = GST_VIDEO_FRAME_HEIGHT (frame);
  gint src_stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  gint dst_stride = GST_VIDEO_FRAME_PLANE_STRIDE (rgb, 0);
  const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  guint8 *dst = GST_VIDEO_FRAME_PLANE_DATA (rgb, 0);
  guint pstride = GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, 0);
  guint r = GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 0);
  guint g = gray ? r : GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 1);
  guint b = gray ? r : GST_VIDEO_FORMAT_INFO_POFFSET (finfo, 2);
  gint x, y;

  for (y = 0; y < height; y++) {
    const guint8 *s = src + (gsize) y * src_stride;   /* [width, pstride] */
    guint8 *d = dst + (gsize) y * dst_stride; /* [width, 3] */

    for (x = 0; x < width; x++, s += pstride, d += 3) {
      d[0] = s[r];
      d[1] = s[g];
      d[2] = s[b];
    }
  }
}

static GstFlowReturn
gst_dsocr_preprocess_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstDsocrPreprocess *self = GST_DSOCR_PREPROCESS (trans);
  GstVideoFilter *filter = GST_VIDEO_FILTER (trans);
  dsocr_preprocess_params params;
  dsocr_image_view view;
  dsocr_preprocessed *pp;
  GstVideoFrame frame, rgb;
  gboolean have_rgb = FALSE;
  GstDsocrTilesMeta *old;
  GstDsocrTiles *tiles;
  GstDsocrMode mode;
  GError *err = NULL;

  if (!filter->negotiated)
    goto not_negotiated;

  dsocr_preprocess_params_init (&params);
  GST_OBJECT_LOCK (self);
  mode = self->mode;
  params.mode = (dsocr_mode) self->mode;
  params.min_tiles = self->min_crops;
  params.max_tiles = self->max_crops;
  params.pixels = self->pixel_format == GST_DSOCR_PIXEL_FORMAT_BF16 ?
      DSOCR_PIXELS_BF16 : DSOCR_PIXELS_F32;
  GST_OBJECT_UNLOCK (self);
  if (params.max_tiles < params.min_tiles)
    goto bad_crops;

  /* read only: writing would copy the pixels of a frame shared with another branch */
  if (!gst_video_frame_map (&frame, &filter->in_info, buf, GST_MAP_READ))
    goto map_failed;

  if (self->to_rgb != TO_RGB_NONE) {
    if (!gst_video_frame_map (&rgb, &self->rgb_info, self->rgb, GST_MAP_WRITE)) {
      gst_video_frame_unmap (&frame);
      goto map_failed;
    }
    have_rgb = TRUE;
    if (self->to_rgb == TO_RGB_CONVERTER)
      gst_video_converter_frame (self->converter, &frame, &rgb);
    else
      to_rgb_reorder (&frame, &rgb, self->to_rgb == TO_RGB_GRAY);
    view.data = GST_VIDEO_FRAME_PLANE_DATA (&rgb, 0);
    view.stride = GST_VIDEO_FRAME_PLANE_STRIDE (&rgb, 0);
  } else {
    view.data = GST_VIDEO_FRAME_PLANE_DATA (&frame, 0);
    view.stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
  }
  view.width = GST_VIDEO_FRAME_WIDTH (&frame);
  view.height = GST_VIDEO_FRAME_HEIGHT (&frame);

  pp = dsocr_preprocess (&view, &params, &err);

  if (have_rgb)
    gst_video_frame_unmap (&rgb);
  gst_video_frame_unmap (&frame);
  if (!pp)
    goto preprocess_failed;

  GST_LOG_OBJECT (self, "%dx%d frame: %s view %d, %d x %d tiles, %d image tokens",
      pp->orig_width, pp->orig_height, dsocr_mode_name (params.mode),
      pp->view_size, pp->grid_cols, pp->grid_rows, pp->n_image_tokens);

  /* a second preprocess in the chain (another mode) replaces the first's views */
  while ((old = gst_buffer_get_dsocr_tiles_meta (buf)))
    gst_buffer_remove_meta (buf, (GstMeta *) old);
  tiles = gst_dsocr_tiles_new (pp, mode);
  gst_buffer_add_dsocr_tiles_meta (buf, tiles);
  gst_dsocr_tiles_unref (tiles);
  return GST_FLOW_OK;

  /* ERRORS */
not_negotiated:
  {
    GST_ELEMENT_ERROR (self, CORE, NOT_IMPLEMENTED, (NULL),
        ("a buffer arrived before caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
bad_crops:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The max-crops property (%d) is below min-crops (%d).",
            params.max_tiles, params.min_tiles), (NULL));
    return GST_FLOW_ERROR;
  }
map_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Could not read a video frame."),
        ("mapping the frame failed"));
    return GST_FLOW_ERROR;
  }
preprocess_failed:
  {
    if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM)) {
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Not enough memory to prepare a %dx%d frame.", view.width,
              view.height), ("%s", err->message));
    } else if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG)) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("The mode, min-crops and max-crops properties are not usable together."),
          ("%s", err->message));
    } else {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT,
          ("Could not prepare a %dx%d frame for the model.", view.width,
              view.height), ("%s", err->message));
    }
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
}
