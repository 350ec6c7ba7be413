/* gstdsocrencode.c: dsocrencode, the DeepSeek-OCR vision tower as an element. */

/**
 * SECTION:element-dsocrencode
 * @title: dsocrencode
 *
 * Runs the vision tower of a DeepSeek-OCR model (SAM, CLIP and the projector) on the views
 * that dsocrpreprocess attached to each frame, and attaches the resulting embeddings, the
 * rows that replace the image placeholders of the prompt, as a #GstDsocrEmbeddingsMeta. The
 * frame passes through untouched; the views stay attached.
 *
 * Elements that name the same #GstDsocrEncode:model-location share one loaded model (with
 * dsocrdecode, the checkpoint is mapped once). The model is loaded when the element goes
 * from READY to PAUSED and released when it goes back to READY.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=page.png ! pngdec ! videoconvert ! dsocrpreprocess ! \
 *     dsocrencode model-location=/models/DeepSeek-OCR ! \
 *     dsocrdecode model-location=/models/DeepSeek-OCR ! dsocrresult ! fdsink
 * ]|
 *
 * Since: 0.1
 */

#include "gstdsocrencode.h"

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-vision.h>

#include "gstdsocrelements.h"
#include "gstdsocrmeta.h"
#include "gstdsocrmodelcache.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_encode_debug);
#define GST_CAT_DEFAULT gst_dsocr_encode_debug

#define DEFAULT_MODEL_LOCATION NULL
#define DEFAULT_DEVICE GST_DSOCR_DEVICE_CPU

enum
{
  PROP_0,
  PROP_MODEL_LOCATION,
  PROP_DEVICE,
};

struct _GstDsocrEncode
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  gchar *model_location;
  GstDsocrDevice device;

  /* < private > between start and stop */
  GstDsocrModel *model;
  gchar *location;              /* model-location as it was at start */
};

/* Frames of any kind: only their metas are read. */
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw(ANY)"));

#define gst_dsocr_encode_parent_class parent_class
G_DEFINE_TYPE (GstDsocrEncode, gst_dsocr_encode, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (dsocrencode, "dsocrencode", GST_RANK_NONE,
    GST_TYPE_DSOCR_ENCODE);

static void gst_dsocr_encode_finalize (GObject * object);
static void gst_dsocr_encode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_encode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_dsocr_encode_start (GstBaseTransform * trans);
static gboolean gst_dsocr_encode_stop (GstBaseTransform * trans);
static GstFlowReturn gst_dsocr_encode_transform_ip (GstBaseTransform * trans,
    GstBuffer * buf);

static void
gst_dsocr_encode_class_init (GstDsocrEncodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_encode_debug, "dsocrencode", 0,
      "DeepSeek-OCR vision tower");

  gobject_class->finalize = gst_dsocr_encode_finalize;
  gobject_class->set_property = gst_dsocr_encode_set_property;
  gobject_class->get_property = gst_dsocr_encode_get_property;

  /**
   * GstDsocrEncode:model-location:
   *
   * Directory of a DeepSeek-OCR model (config.json and the safetensors files).
   */
  g_object_class_install_property (gobject_class, PROP_MODEL_LOCATION,
      g_param_spec_string ("model-location", "Model location",
          "Directory of the DeepSeek-OCR model (config.json + safetensors)",
          DEFAULT_MODEL_LOCATION, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstDsocrEncode:device:
   *
   * Where the vision tower runs. Only the CPU is available in this version.
   */
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device", "Where the model runs",
          GST_TYPE_DSOCR_DEVICE, DEFAULT_DEVICE, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR vision encoder", "Filter/Analyzer/Video",
      "Runs the DeepSeek-OCR vision tower on the views of dsocrpreprocess and attaches "
      "the vision embeddings as a meta", "gst-dsocr");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_dsocr_encode_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_dsocr_encode_stop);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_dsocr_encode_transform_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DEVICE, 0);
  gst_dsocr_meta_register ();
}

static void
gst_dsocr_encode_init (GstDsocrEncode * self)
{
  self->model_location = g_strdup (DEFAULT_MODEL_LOCATION);
  self->device = DEFAULT_DEVICE;
  /* the frame is not touched: only a meta is added */
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_dsocr_encode_finalize (GObject * object)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (object);

  g_free (self->model_location);
  g_free (self->location);
  gst_dsocr_model_unref (self->model);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_encode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_LOCATION:
      g_free (self->model_location);
      self->model_location = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      self->device = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dsocr_encode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_LOCATION:
      g_value_set_string (value, self->model_location);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, self->device);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_dsocr_encode_start (GstBaseTransform * trans)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);
  GstDsocrDevice device;
  GError *err = NULL;
  gboolean shared = FALSE;
  GstClockTime t0;

  GST_OBJECT_LOCK (self);
  g_free (self->location);
  self->location = g_strdup (self->model_location);
  device = self->device;
  GST_OBJECT_UNLOCK (self);

  if (!gst_dsocr_model_check_device (GST_ELEMENT (self), device))
    return FALSE;
  if (!self->location || !*self->location) {
    gst_dsocr_model_post_error (GST_ELEMENT (self), self->location, NULL);
    return FALSE;
  }
  t0 = gst_util_get_timestamp ();
  self->model = gst_dsocr_model_cache_acquire (self->location,
      GST_DSOCR_MODEL_PART_VISION, &shared, &err);
  if (!self->model) {
    gst_dsocr_model_post_error (GST_ELEMENT (self), self->location, err);
    g_clear_error (&err);
    return FALSE;
  }
  gst_dsocr_model_post_loaded (GST_ELEMENT (self), self->model,
      GST_DSOCR_MODEL_PART_VISION, shared, gst_util_get_timestamp () - t0);
  return TRUE;
}

static gboolean
gst_dsocr_encode_stop (GstBaseTransform * trans)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);

  g_clear_pointer (&self->model, gst_dsocr_model_unref);
  return TRUE;
}

static GstFlowReturn
gst_dsocr_encode_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);
  GstDsocrTilesMeta *tiles = gst_buffer_get_dsocr_tiles_meta (buf);
  GstDsocrEmbeddingsMeta *old;
  GstDsocrEmbeddings *emb;
  dsocr_ocr_embeddings *ocr_emb;
  dsocr_tensor *embeds;
  GError *err = NULL;
  GstClockTime t0;

  if (!tiles)
    goto no_tiles;

  t0 = gst_util_get_timestamp ();
  embeds = dsocr_vision_encode (gst_dsocr_model_get_vision (self->model),
      tiles->tiles->pp, &err);
  if (!embeds)
    goto encode_failed;
  GST_LOG_OBJECT (self, "%" G_GINT64_FORMAT " embeddings of %" G_GINT64_FORMAT
      " in %" GST_TIME_FORMAT, embeds->shape[0], embeds->shape[1],
      GST_TIME_ARGS (gst_util_get_timestamp () - t0));

  /* boxes refer to the frame the views were made from */
  ocr_emb = dsocr_ocr_embeddings_new (embeds, tiles->tiles->pp->orig_width,
      tiles->tiles->pp->orig_height, &err);
  if (!ocr_emb)
    goto encode_failed;

  while ((old = gst_buffer_get_dsocr_embeddings_meta (buf)))
    gst_buffer_remove_meta (buf, (GstMeta *) old);
  emb = gst_dsocr_embeddings_new (ocr_emb, tiles->tiles);
  gst_buffer_add_dsocr_embeddings_meta (buf, emb);
  gst_dsocr_embeddings_unref (emb);
  return GST_FLOW_OK;

  /* ERRORS */
no_tiles:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("A frame arrived without the views of dsocrpreprocess: put dsocrpreprocess "
            "before dsocrencode."), ("no GstDsocrTilesMeta on %" GST_PTR_FORMAT,
            buf));
    return GST_FLOW_ERROR;
  }
encode_failed:
  {
    if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM))
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Not enough memory to encode a frame."), ("%s", err->message));
    else
      GST_ELEMENT_ERROR (self, STREAM, FAILED,
          ("The vision tower could not encode a frame: %s", err->message),
          (NULL));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
}
