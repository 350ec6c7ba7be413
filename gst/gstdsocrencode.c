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
 * The model (#GstDsocrModelElement:model-location) is loaded when the element goes from
 * READY to PAUSED and released when it goes back to READY; elements that name the same
 * directory share it (with dsocrdecode, the checkpoint is mapped once), through a
 * "dsocr.model" #GstContext or the process-wide cache. Encoding runs on the streaming
 * thread and computes on the element's own thread pool (#GstDsocrModelElement:n-threads),
 * with one vision session, whose scratch memory is sized by the first frames and kept,
 * from READY to PAUSED until back to READY.
 *
 * #GstDsocrModelElement:precision is there for uniformity with the other model elements,
 * but has no effect here: the engine never quantizes the vision tower (it is bound by
 * arithmetic, not by reading its weights), so every precision encodes with the weights as
 * stored and gives the same embeddings.
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

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_encode_debug);
#define GST_CAT_DEFAULT gst_dsocr_encode_debug

#define DEFAULT_BATCH_SIZE 1
#define MAX_BATCH_SIZE 64

enum
{
  PROP_0,
  PROP_BATCH_SIZE,
};

struct _GstDsocrEncode
{
  GstDsocrModelElement parent;

  /* properties, under the object lock */
  guint batch_size;

  /* < private > between start and stop, streaming thread */
  dsocr_vision_session *session;        /* on the element's backend */
  guint batch;                  /* batch-size as it was at start */
  GQueue pending;               /* GstBuffer: waiting for their batch, oldest first */
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
G_DEFINE_TYPE (GstDsocrEncode, gst_dsocr_encode, GST_TYPE_DSOCR_MODEL_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (dsocrencode, "dsocrencode", GST_RANK_NONE,
    GST_TYPE_DSOCR_ENCODE);

static void gst_dsocr_encode_finalize (GObject * object);
static void gst_dsocr_encode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_encode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_dsocr_encode_start (GstDsocrModelElement * base);
static void gst_dsocr_encode_stop (GstDsocrModelElement * base);
static gboolean gst_dsocr_encode_set_caps (GstDsocrModelElement * base,
    GstCaps * caps);
static GstFlowReturn gst_dsocr_encode_process (GstDsocrModelElement * base,
    GstBuffer * buffer);
static GstFlowReturn gst_dsocr_encode_drain (GstDsocrModelElement * base);
static void gst_dsocr_encode_flush (GstDsocrModelElement * base);
static void gst_dsocr_encode_get_latency (GstDsocrModelElement * base,
    GstClockTime * min, GstClockTime * max);

static void
gst_dsocr_encode_class_init (GstDsocrEncodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstDsocrModelElementClass *model_class = GST_DSOCR_MODEL_ELEMENT_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_encode_debug, "dsocrencode", 0,
      "DeepSeek-OCR vision tower");

  gobject_class->finalize = gst_dsocr_encode_finalize;
  gobject_class->set_property = gst_dsocr_encode_set_property;
  gobject_class->get_property = gst_dsocr_encode_get_property;

  /**
   * GstDsocrEncode:batch-size:
   *
   * Frames whose views are encoded together, 1 to 64. 1 encodes every frame as it comes;
   * N holds frames until there are N (or a serialized event comes), which adds
   * (batch-size - 1) frame durations of latency and pays on small views. Read at READY
   * to PAUSED.
   */
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint ("batch-size", "Batch size",
          "Frames whose views are encoded together; more than 1 holds frames back and "
          "adds (batch-size - 1) frame durations of latency. Read at READY to PAUSED",
          1, MAX_BATCH_SIZE, DEFAULT_BATCH_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR vision encoder", "Filter/Analyzer/Video",
      "Runs the DeepSeek-OCR vision tower on the views of dsocrpreprocess and attaches "
      "the vision embeddings as a meta", "gst-dsocr");

  model_class->parts = GST_DSOCR_MODEL_PART_VISION;
  model_class->default_model = TRUE;
  model_class->start = GST_DEBUG_FUNCPTR (gst_dsocr_encode_start);
  model_class->stop = GST_DEBUG_FUNCPTR (gst_dsocr_encode_stop);
  model_class->set_caps = GST_DEBUG_FUNCPTR (gst_dsocr_encode_set_caps);
  model_class->process = GST_DEBUG_FUNCPTR (gst_dsocr_encode_process);
  model_class->drain = GST_DEBUG_FUNCPTR (gst_dsocr_encode_drain);
  model_class->flush = GST_DEBUG_FUNCPTR (gst_dsocr_encode_flush);
  model_class->get_latency = GST_DEBUG_FUNCPTR (gst_dsocr_encode_get_latency);

  gst_dsocr_meta_register ();
}

static void
gst_dsocr_encode_init (GstDsocrEncode * self)
{
  self->batch_size = DEFAULT_BATCH_SIZE;
  g_queue_init (&self->pending);
  self->fps_d = 1;
}

static void
gst_dsocr_encode_finalize (GObject * object)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (object);

  dsocr_vision_session_free (self->session);
  g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_encode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
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
gst_dsocr_encode_start (GstDsocrModelElement * base)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  self->batch = self->batch_size;
  GST_OBJECT_UNLOCK (self);

  /* kept until stop: its scratch memory stays sized for the frames that come */
  self->session = dsocr_vision_session_new (gst_dsocr_model_get_vision
      (gst_dsocr_model_element_get_model (base)),
      gst_dsocr_model_element_get_backend (base), &err);
  if (!self->session) {
    if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM))
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Not enough memory to set up the vision tower of %s.",
              gst_dsocr_model_element_get_location (base)), ("%s", err->message));
    else
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Could not set up the vision tower of %s: %s",
              gst_dsocr_model_element_get_location (base), err->message), (NULL));
    g_clear_error (&err);
    return FALSE;
  }
  /* the precision property has no effect here: every precision keeps the tower's weights
   * as stored (the session prepared them for the device) */
  gst_dsocr_model_element_set_weights (base, "vision tower", FALSE,
      dsocr_vision_session_get_weight_bytes (self->session));
  return TRUE;
}

static void
gst_dsocr_encode_stop (GstDsocrModelElement * base)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);

  g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
  g_clear_pointer (&self->session, dsocr_vision_session_free);
  self->fps_n = 0;
  self->fps_d = 1;
}

/* Encodes the pending frames as one batch and attaches their embeddings. On failure the
 * frames are dropped and an error is posted. */
static GstFlowReturn
gst_dsocr_encode_run_batch (GstDsocrEncode * self)
{
  const guint n = self->pending.length;
  const dsocr_preprocessed **pps;
  dsocr_tensor **embeds;
  GError *err = NULL;
  GstClockTime t0;
  gboolean ok;
  GList *l;
  guint i;

  if (n == 0)
    return GST_FLOW_OK;
  pps = g_new (const dsocr_preprocessed *, n);
  embeds = g_new0 (dsocr_tensor *, n);
  i = 0;
  for (l = self->pending.head; l; l = l->next, i++)
    pps[i] = gst_buffer_get_dsocr_tiles_meta (l->data)->tiles->pp;

  t0 = gst_util_get_timestamp ();
  ok = dsocr_vision_encode_batch (self->session, pps, (int) n, embeds, &err);
  GST_LOG_OBJECT (self, "encoded %u frame(s) in %" GST_TIME_FORMAT, n,
      GST_TIME_ARGS (gst_util_get_timestamp () - t0));

  for (l = self->pending.head, i = 0; ok && l; l = l->next, i++) {
    GstBuffer *buf = gst_buffer_make_writable (l->data);
    GstDsocrTilesMeta *tiles = gst_buffer_get_dsocr_tiles_meta (buf);
    GstDsocrEmbeddingsMeta *old;
    GstDsocrEmbeddings *emb;
    /* boxes refer to the frame the views were made from */
    dsocr_ocr_embeddings *ocr_emb = dsocr_ocr_embeddings_new (embeds[i],
        tiles->tiles->pp->orig_width, tiles->tiles->pp->orig_height, &err);

    l->data = buf;
    embeds[i] = NULL;           /* owned by ocr_emb, or freed, from here */
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
  return GST_FLOW_ERROR;
}

/* Encodes a partial batch and pushes every frame held, in order, so that an event that
 * follows the frames upstream also follows them downstream. */
static GstFlowReturn
gst_dsocr_encode_drain (GstDsocrModelElement * base)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);
  GstFlowReturn ret = gst_dsocr_encode_run_batch (self);
  GstBuffer *buf;

  /* after a failed push the rest of the batch cannot go either */
  while ((buf = g_queue_pop_head (&self->pending))) {
    if (ret == GST_FLOW_OK)
      ret = gst_dsocr_model_element_push (base, buf);
    else
      gst_buffer_unref (buf);
  }
  return ret;
}

static GstFlowReturn
gst_dsocr_encode_process (GstDsocrModelElement * base, GstBuffer * buffer)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);

  if (!gst_buffer_get_dsocr_tiles_meta (buffer)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("A frame arrived without the views of dsocrpreprocess: put dsocrpreprocess "
            "before dsocrencode."), ("no GstDsocrTilesMeta on %" GST_PTR_FORMAT,
            buffer));
    gst_buffer_unref (buffer);
    return GST_FLOW_ERROR;
  }
  g_queue_push_tail (&self->pending, buffer);
  if (self->pending.length < self->batch)
    return GST_FLOW_OK;
  return gst_dsocr_encode_drain (base);
}

static void
gst_dsocr_encode_flush (GstDsocrModelElement * base)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);

  g_queue_clear_full (&self->pending, (GDestroyNotify) gst_buffer_unref);
}

static gboolean
gst_dsocr_encode_set_caps (GstDsocrModelElement * base, GstCaps * caps)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);
  GstStructure *s = gst_caps_get_structure (caps, 0);

  if (!gst_structure_get_fraction (s, "framerate", &self->fps_n, &self->fps_d) ||
      self->fps_d <= 0) {
    self->fps_n = 0;
    self->fps_d = 1;
  }
  return TRUE;
}

/* A frame waits for the batch-size - 1 frames after it. */
static void
gst_dsocr_encode_get_latency (GstDsocrModelElement * base, GstClockTime * min,
    GstClockTime * max)
{
  GstDsocrEncode *self = GST_DSOCR_ENCODE (base);
  GstClockTime wait;

  if (self->batch <= 1 || self->fps_n <= 0)
    return;
  wait = gst_util_uint64_scale_int ((self->batch - 1) * GST_SECOND, self->fps_d,
      self->fps_n);
  GST_DEBUG_OBJECT (self, "batching adds %" GST_TIME_FORMAT " of latency",
      GST_TIME_ARGS (wait));
  *min = *max = wait;
}
