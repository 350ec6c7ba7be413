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
 * With #GstDsocrEncode:batch-size above 1 the element holds frames until it has that many,
 * then encodes the views of all of them together: views of one size (the tiles of every
 * frame, the global views of one mode) go through the tower as one batch, which keeps the
 * matrix units busy on small views. Frames leave in the order they came; a partial batch is
 * encoded at EOS and before any serialized event (segment, caps, gap, custom), and dropped on
 * flush. The wait adds (batch-size - 1) frame durations to the latency it reports.
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
#include <dsocr/dsocr-ocr.h>
#include <dsocr/dsocr-vision.h>

#include "gstdsocrelements.h"
#include "gstdsocrmeta.h"
#include "gstdsocrmodelcache.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_encode_debug);
#define GST_CAT_DEFAULT gst_dsocr_encode_debug

/* $DSOCR_MODEL, else the bundled dsocr-reader (see dsocr_ocr_default_model_dir()) */
#define DEFAULT_MODEL_LOCATION (dsocr_ocr_default_model_dir ())
#define DEFAULT_DEVICE GST_DSOCR_DEVICE_CPU
#define DEFAULT_BATCH_SIZE 1
#define MAX_BATCH_SIZE 64

enum
{
  PROP_0,
  PROP_MODEL_LOCATION,
  PROP_DEVICE,
  PROP_BATCH_SIZE,
};

struct _GstDsocrEncode
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  gchar *model_location;
  GstDsocrDevice device;
  guint batch_size;

  /* < private > between start and stop */
  GstDsocrModel *model;
  gchar *location;              /* model-location as it was at start */
  guint batch;                  /* batch-size as it was at start */
  GQueue pending;               /* GstBuffer: waiting for their batch, oldest first */
  GQueue ready;                 /* GstBuffer: encoded, waiting to be pushed */
  gint fps_n, fps_d;            /* the sink caps' framerate, 0/1 when unknown */
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
static GstFlowReturn gst_dsocr_encode_submit_input_buffer (GstBaseTransform *
    trans, gboolean is_discont, GstBuffer * input);
static GstFlowReturn gst_dsocr_encode_generate_output (GstBaseTransform * trans,
    GstBuffer ** outbuf);
static gboolean gst_dsocr_encode_sink_event (GstBaseTransform * trans,
    GstEvent * event);
static gboolean gst_dsocr_encode_set_caps (GstBaseTransform * trans,
    GstCaps * incaps, GstCaps * outcaps);
static gboolean gst_dsocr_encode_query (GstBaseTransform * trans,
    GstPadDirection direction, GstQuery * query);

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
   * Directory of a DeepSeek-OCR model (config.json and the safetensors files). Unset or
   * empty: $DSOCR_MODEL, else the bundled dsocr-reader model, made for mode=tiny (see
   * models/README.md).
   */
  g_object_class_install_property (gobject_class, PROP_MODEL_LOCATION,
      g_param_spec_string ("model-location", "Model location",
          "Directory of the DeepSeek-OCR model (config.json, safetensors, "
          "tokenizer.json); empty: the default model ($DSOCR_MODEL, else the bundled "
          "dsocr-reader, made for mode=tiny)",
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

  /**
   * GstDsocrEncode:batch-size:
   *
   * Frames whose views are encoded together. 1 encodes every frame as it comes; more
   * trades latency ((batch-size - 1) frames) for throughput on small views.
   */
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint ("batch-size", "Batch size",
          "Frames whose views are encoded together (adds batch-size - 1 frames of "
          "latency)", 1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR vision encoder", "Filter/Analyzer/Video",
      "Runs the DeepSeek-OCR vision tower on the views of dsocrpreprocess and attaches "
      "the vision embeddings as a meta", "gst-dsocr");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_dsocr_encode_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_dsocr_encode_stop);
  trans_class->submit_input_buffer =
      GST_DEBUG_FUNCPTR (gst_dsocr_encode_submit_input_buffer);
  trans_class->generate_output =
      GST_DEBUG_FUNCPTR (gst_dsocr_encode_generate_output);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_dsocr_encode_sink_event);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_dsocr_encode_set_caps);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_dsocr_encode_query);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DEVICE, 0);
  gst_dsocr_meta_register ();
}

static void
gst_dsocr_encode_init (GstDsocrEncode * self)
{
  self->model_location = g_strdup (DEFAULT_MODEL_LOCATION);
  self->device = DEFAULT_DEVICE;
  self->batch_size = DEFAULT_BATCH_SIZE;
  g_queue_init (&self->pending);
  g_queue_init (&self->ready);
  self->fps_d = 1;
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
  g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
  g_queue_clear_full (&self->ready, (GDestroyNotify) gst_buffer_unref);
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
    case PROP_BATCH_SIZE:
      self->batch_size = g_value_get_uint (value);
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
    case PROP_BATCH_SIZE:
      g_value_set_uint (value, self->batch_size);
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
  self->batch = self->batch_size;
  GST_OBJECT_UNLOCK (self);

  if (!gst_dsocr_model_check_device (GST_ELEMENT (self), device))
    return FALSE;
  if (!self->location || !*self->location) {
    g_free (self->location);
    self->location = g_strdup (dsocr_ocr_default_model_dir ());
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

  g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
  g_queue_clear_full (&self->ready, (GDestroyNotify) gst_buffer_unref);
  g_clear_pointer (&self->model, gst_dsocr_model_unref);
  self->fps_n = 0;
  self->fps_d = 1;
  return TRUE;
}

/* Encodes the pending frames as one batch and moves them, with their embeddings, to the
 * ready queue. */
static GstFlowReturn
gst_dsocr_encode_run_batch (GstDsocrEncode * self)
{
  const guint n = self->pending.length;
  const dsocr_preprocessed **pps;
  dsocr_tensor **embeds;
  GError *err = NULL;
  GstClockTime t0;
  gboolean ok;
  guint i;

  if (n == 0)
    return GST_FLOW_OK;
  pps = g_new (const dsocr_preprocessed *, n);
  embeds = g_new0 (dsocr_tensor *, n);
  i = 0;
  for (GList * l = self->pending.head; l; l = l->next, i++)
    pps[i] = gst_buffer_get_dsocr_tiles_meta (l->data)->tiles->pp;

  t0 = gst_util_get_timestamp ();
  ok = dsocr_vision_encode_batch (gst_dsocr_model_get_vision (self->model), pps,
      (int) n, embeds, &err);
  GST_LOG_OBJECT (self, "encoded %u frame(s) in %" GST_TIME_FORMAT, n,
      GST_TIME_ARGS (gst_util_get_timestamp () - t0));

  for (i = 0; ok && i < n; i++) {
    GstBuffer *buf = gst_buffer_make_writable (g_queue_pop_head (&self->pending));
    GstDsocrTilesMeta *tiles = gst_buffer_get_dsocr_tiles_meta (buf);
    GstDsocrEmbeddingsMeta *old;
    GstDsocrEmbeddings *emb;
    /* boxes refer to the frame the views were made from */
    dsocr_ocr_embeddings *ocr_emb = dsocr_ocr_embeddings_new (embeds[i],
        tiles->tiles->pp->orig_width, tiles->tiles->pp->orig_height, &err);

    embeds[i] = NULL;           /* owned by ocr_emb, or freed, from here */
    g_queue_push_tail (&self->ready, buf);
    if (!ocr_emb) {
      ok = FALSE;
      break;
    }
    while ((old = gst_buffer_get_dsocr_embeddings_meta (buf)))
      gst_buffer_remove_meta (buf, (GstMeta *) old);
    emb = gst_dsocr_embeddings_new (ocr_emb, tiles->tiles);
    gst_buffer_add_dsocr_embeddings_meta (buf, emb);
    gst_dsocr_embeddings_unref (emb);
  }
  for (i = 0; i < n; i++)
    g_clear_pointer (&embeds[i], dsocr_tensor_free);
  g_free (embeds);
  g_free (pps);
  if (ok)
    return GST_FLOW_OK;

  if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM))
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("Not enough memory to encode %u frame(s): lower batch-size or use a smaller "
            "mode.", n), ("%s", err->message));
  else
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("The vision tower could not encode a frame: %s", err->message), (NULL));
  g_clear_error (&err);
  g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
  g_queue_clear_full (&self->ready, (GDestroyNotify) gst_buffer_unref);
  return GST_FLOW_ERROR;
}

static GstFlowReturn
gst_dsocr_encode_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);

  if (!gst_buffer_get_dsocr_tiles_meta (input)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("A frame arrived without the views of dsocrpreprocess: put dsocrpreprocess "
            "before dsocrencode."), ("no GstDsocrTilesMeta on %" GST_PTR_FORMAT,
            input));
    gst_buffer_unref (input);
    return GST_FLOW_ERROR;
  }
  g_queue_push_tail (&self->pending, input);
  if (self->pending.length < self->batch)
    return GST_FLOW_OK;
  return gst_dsocr_encode_run_batch (self);
}

static GstFlowReturn
gst_dsocr_encode_generate_output (GstBaseTransform * trans, GstBuffer ** outbuf)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);

  /* called until it gives no buffer: the whole batch leaves, in order */
  *outbuf = g_queue_pop_head (&self->ready);
  return GST_FLOW_OK;
}

/* Encodes a partial batch and pushes everything encoded, so that an event that follows the
 * frames upstream also follows them downstream. */
static GstFlowReturn
gst_dsocr_encode_drain (GstDsocrEncode * self)
{
  GstFlowReturn ret = gst_dsocr_encode_run_batch (self);
  GstBuffer *buf;

  while ((buf = g_queue_pop_head (&self->ready))) {
    GstFlowReturn r = gst_pad_push (GST_BASE_TRANSFORM_SRC_PAD (self), buf);
    if (ret == GST_FLOW_OK)
      ret = r;
  }
  return ret;
}

static gboolean
gst_dsocr_encode_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
    g_queue_clear_full (&self->ready, (GDestroyNotify) gst_buffer_unref);
  } else if (GST_EVENT_IS_SERIALIZED (event) && self->model) {
    GstFlowReturn ret = gst_dsocr_encode_drain (self);
    if (ret != GST_FLOW_OK)
      GST_DEBUG_OBJECT (self, "draining before %" GST_PTR_FORMAT ": %s", event,
          gst_flow_get_name (ret));
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_dsocr_encode_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);
  GstStructure *s = gst_caps_get_structure (incaps, 0);

  if (!gst_structure_get_fraction (s, "framerate", &self->fps_n, &self->fps_d) ||
      self->fps_d <= 0) {
    self->fps_n = 0;
    self->fps_d = 1;
  }
  return TRUE;
}

static gboolean
gst_dsocr_encode_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (trans);

  if (!GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction, query))
    return FALSE;
  if (direction == GST_PAD_SRC && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY &&
      self->batch > 1 && self->fps_n > 0) {
    gboolean live;
    GstClockTime min, max;
    GstClockTime wait = gst_util_uint64_scale_int ((self->batch - 1) * GST_SECOND,
        self->fps_d, self->fps_n);

    gst_query_parse_latency (query, &live, &min, &max);
    min += wait;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += wait;
    GST_DEBUG_OBJECT (self, "batching adds %" GST_TIME_FORMAT " of latency",
        GST_TIME_ARGS (wait));
    gst_query_set_latency (query, live, min, max);
  }
  return TRUE;
}
