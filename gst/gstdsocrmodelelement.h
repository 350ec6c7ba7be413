/* gstdsocrmodelelement.h: GstDsocrModelElement, the abstract base of the elements that run a
 * model (dsocrencode, dsocrdecode, dsclassify): one sink and one src pad that pass the
 * frames through, the properties model-location, device, n-threads and precision, the model
 * (shared through a GstContext or the process-wide cache) and the element's own backend,
 * held from READY to PAUSED until back to READY.
 *
 *   static GstFlowReturn
 *   my_process (GstDsocrModelElement * base, GstBuffer * buf)
 *   {
 *     GstDsocrModel *m = gst_dsocr_model_element_get_model (base);     // borrowed
 *     dsocr_backend *be = gst_dsocr_model_element_get_backend (base);  // borrowed
 *     ...                                 // compute on be, attach a meta to buf
 *     return gst_dsocr_model_element_push (base, buf);
 *   }
 *
 *   // class_init: the pad templates "sink" and "src", then
 *   base_class->parts = GST_DSOCR_MODEL_PART_VISION;
 *   base_class->process = my_process;
 */
#ifndef __GST_DSOCR_MODEL_ELEMENT_H__
#define __GST_DSOCR_MODEL_ELEMENT_H__

#include <gst/gst.h>

#include <dsocr/dsocr-backend.h>

#include "gstdsocrmodelcache.h"

G_BEGIN_DECLS

/**
 * GstDsocrDevice:
 * @GST_DSOCR_DEVICE_CPU: the CPU, on the element's own thread pool
 * @GST_DSOCR_DEVICE_CUDA: the first NVIDIA GPU
 *
 * Where a model computes.
 */
typedef enum
{
  GST_DSOCR_DEVICE_CPU,
  GST_DSOCR_DEVICE_CUDA,
} GstDsocrDevice;

#define GST_TYPE_DSOCR_DEVICE (gst_dsocr_device_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_device_get_type (void);

/**
 * GstDsocrPrecision:
 * @GST_DSOCR_PRECISION_F32: every weight as the checkpoint stores it, products in f32: the
 *   reference's numbers
 * @GST_DSOCR_PRECISION_BF16: the same as f32 on CPUs (reserved for devices with bf16 matrix
 *   units)
 * @GST_DSOCR_PRECISION_Q8: the decoder's matrices in 8-bit blocks made at start (8.5 bits a
 *   weight)
 * @GST_DSOCR_PRECISION_Q4: the decoder's matrices in 4-bit blocks with a minimum (5 bits a
 *   weight)
 *
 * How a model's weights are held and its products computed: the engine's dsocr_precision
 * (dsocr-backend.h, measured in docs/numerics.md), whose values these are. The engine's
 * DSOCR_PRECISION_DEFAULT has no value here: the property's default is the precision it
 * resolves to, DSOCR_PRECISION_DEFAULT_IS.
 */
typedef enum
{
  GST_DSOCR_PRECISION_F32 = DSOCR_PRECISION_F32,
  GST_DSOCR_PRECISION_BF16 = DSOCR_PRECISION_BF16,
  GST_DSOCR_PRECISION_Q8 = DSOCR_PRECISION_Q8,
  GST_DSOCR_PRECISION_Q4 = DSOCR_PRECISION_Q4,
} GstDsocrPrecision;

#define GST_TYPE_DSOCR_PRECISION (gst_dsocr_precision_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_precision_get_type (void);

#define GST_TYPE_DSOCR_MODEL_ELEMENT (gst_dsocr_model_element_get_type ())
#define GST_DSOCR_MODEL_ELEMENT(obj) \
    (G_TYPE_CHECK_INSTANCE_CAST ((obj), GST_TYPE_DSOCR_MODEL_ELEMENT, GstDsocrModelElement))
#define GST_DSOCR_MODEL_ELEMENT_CLASS(klass) \
    (G_TYPE_CHECK_CLASS_CAST ((klass), GST_TYPE_DSOCR_MODEL_ELEMENT, \
        GstDsocrModelElementClass))
#define GST_DSOCR_MODEL_ELEMENT_GET_CLASS(obj) \
    (G_TYPE_INSTANCE_GET_CLASS ((obj), GST_TYPE_DSOCR_MODEL_ELEMENT, \
        GstDsocrModelElementClass))
#define GST_IS_DSOCR_MODEL_ELEMENT(obj) \
    (G_TYPE_CHECK_INSTANCE_TYPE ((obj), GST_TYPE_DSOCR_MODEL_ELEMENT))
#define GST_DSOCR_MODEL_ELEMENT_CAST(obj) ((GstDsocrModelElement *) (obj))

/* The pads, for subclasses (gst_pad_push on the src pad, tasks, current caps). */
#define GST_DSOCR_MODEL_ELEMENT_SINK_PAD(obj) (GST_DSOCR_MODEL_ELEMENT_CAST (obj)->sinkpad)
#define GST_DSOCR_MODEL_ELEMENT_SRC_PAD(obj) (GST_DSOCR_MODEL_ELEMENT_CAST (obj)->srcpad)

typedef struct _GstDsocrModelElement GstDsocrModelElement;
typedef struct _GstDsocrModelElementClass GstDsocrModelElementClass;
typedef struct _GstDsocrModelElementPrivate GstDsocrModelElementPrivate;

/**
 * GstDsocrModelElement:
 *
 * The base of the model elements. Its pads are made from the subclass's "sink" and "src"
 * pad templates; caps and allocation queries go through to the peers (the frames pass
 * through), so the two templates are usually the same.
 */
struct _GstDsocrModelElement
{
  GstElement element;

  /*< protected >*/
  GstPad *sinkpad;
  GstPad *srcpad;

  /*< private >*/
  GstDsocrModelElementPrivate *priv;
};

/**
 * GstDsocrModelElementClass:
 * @parent_class: the parent class
 * @parts: what the element needs of its model directory (set in class_init)
 * @default_model: whether an unset or empty model-location means the default OCR model,
 *   dsocr_ocr_default_model_dir() (otherwise it is an error)
 * @start: called at READY to PAUSED once the model and the backend are there, before the
 *   pads are activated: set up what the stream needs (sessions, checks). Returns FALSE
 *   after posting an error.
 * @stop: called at PAUSED to READY after the pads were deactivated (no streaming thread
 *   runs), and after a failed start of the pads: free what @start made. Not called when
 *   @start failed.
 * @set_caps: the caps of the sink pad (CAPS event, before it goes downstream).
 * @process: a buffer (transfer full) from the sink pad, on the streaming thread. Push it,
 *   now or later, with gst_dsocr_model_element_push(), or drop it. Unset: pushed as it is.
 * @drain: push everything held back; called before every serialized event but flushes,
 *   and for a drain query. Unset: nothing is held back.
 * @flush: drop everything held back (FLUSH_STOP).
 * @get_latency: the latency the element adds to what upstream reports: @min is added to
 *   the minimum, @max to the maximum (when upstream's is bounded). Unset: none.
 * @sink_event: events of the sink pad. The default drains or flushes, calls @set_caps and
 *   forwards the event with gst_pad_event_default().
 * @sink_query: queries of the sink pad but "dsocr.model" context queries, which the base
 *   class answers. The default drains for a drain query and forwards the queries with
 *   gst_pad_query_default().
 * @src_query: queries of the src pad but context queries. The default answers latency
 *   queries (with @get_latency) and forwards the rest with gst_pad_query_default().
 */
struct _GstDsocrModelElementClass
{
  GstElementClass parent_class;

  /*< public >*/
  GstDsocrModelParts parts;
  gboolean default_model;

  gboolean (*start) (GstDsocrModelElement * self);
  void (*stop) (GstDsocrModelElement * self);
  gboolean (*set_caps) (GstDsocrModelElement * self, GstCaps * caps);
  GstFlowReturn (*process) (GstDsocrModelElement * self, GstBuffer * buffer);
  GstFlowReturn (*drain) (GstDsocrModelElement * self);
  void (*flush) (GstDsocrModelElement * self);
  void (*get_latency) (GstDsocrModelElement * self, GstClockTime * min,
      GstClockTime * max);

  gboolean (*sink_event) (GstDsocrModelElement * self, GstEvent * event);
  gboolean (*sink_query) (GstDsocrModelElement * self, GstQuery * query);
  gboolean (*src_query) (GstDsocrModelElement * self, GstQuery * query);
};

G_GNUC_INTERNAL GType gst_dsocr_model_element_get_type (void);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GstDsocrModelElement, gst_object_unref);

/* The model (transfer none): from @start until @stop returns, NULL otherwise. */
G_GNUC_INTERNAL GstDsocrModel *gst_dsocr_model_element_get_model (GstDsocrModelElement
    * self);

/* The element's backend (transfer none), its own thread pool for the CPU: from @start until
 * @stop returns, NULL otherwise. One call at a time computes on it. */
G_GNUC_INTERNAL dsocr_backend *gst_dsocr_model_element_get_backend
    (GstDsocrModelElement * self);

/* model-location as it was at start, the default model's directory when it was unset
 * (transfer none): from @start until @stop returns. For error messages. */
G_GNUC_INTERNAL const gchar *gst_dsocr_model_element_get_location
    (GstDsocrModelElement * self);

/* The precision property as it was at start (never DSOCR_PRECISION_DEFAULT): from @start
 * until @stop returns. What the element's decoder sessions and OCR runs compute at. */
G_GNUC_INTERNAL dsocr_precision gst_dsocr_model_element_get_precision
    (GstDsocrModelElement * self);

/* For @start, once the weights the element computes with are prepared: @bytes of them, as
 * the engine holds them for the element's device, @what they are ("decoder", "vision
 * tower"), and whether they are held at the precision property (@at_precision) or as stored
 * whatever it says (the vision tower). Logs them (INFO) and puts their size in the
 * "dsocr-model" message. */
G_GNUC_INTERNAL void gst_dsocr_model_element_set_weights (GstDsocrModelElement * self,
    const gchar * what, gboolean at_precision, gsize bytes);

/* For @start: posts the error of weights the engine could not prepare (@error from
 * dsocr_ocr_prepare(), dsocr_session_new() or dsocr_vision_session_new()) for @what
 * ("decoder", "classifier", "vision tower"), with what to change. */
G_GNUC_INTERNAL void gst_dsocr_model_element_post_prepare_error
    (GstDsocrModelElement * self, const gchar * what, const GError * error);

/* Pushes @buffer (transfer full) on the src pad. */
G_GNUC_INTERNAL GstFlowReturn gst_dsocr_model_element_push (GstDsocrModelElement *
    self, GstBuffer * buffer);

G_END_DECLS

#endif /* __GST_DSOCR_MODEL_ELEMENT_H__ */
