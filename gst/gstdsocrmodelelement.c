/* gstdsocrmodelelement.c: GstDsocrModelElement, the base of the elements that run a model. */

/**
 * SECTION:gstdsocrmodelelement
 * @title: GstDsocrModelElement
 * @short_description: base class of the dsocr elements that run a model
 *
 * dsocrencode, dsocrdecode and dsclassify derive from this abstract element. It holds what
 * they share:
 *
 * - one always sink pad and one always src pad, made from the subclass's "sink" and "src"
 *   pad templates. The frames pass through: caps and allocation queries go to the peers,
 *   events are forwarded in order, and a subclass that holds frames back drains them
 *   before every serialized event;
 * - the properties #GstDsocrModelElement:model-location, #GstDsocrModelElement:device,
 *   #GstDsocrModelElement:n-threads and #GstDsocrModelElement:precision;
 * - at READY to PAUSED: the device check, the element's own backend (on the CPU, a thread
 *   pool of n-threads threads that does all of the element's computing), and the model,
 *   taken from a "dsocr.model" #GstContext when one holds this directory (see
 *   gstdsocrmodelcontext.h) and otherwise from the process-wide cache, then shared with the
 *   rest of the pipeline in a context; then the subclass prepares the weights it computes
 *   with for the device and the precision; the "dsocr-model" element message says which
 *   model, backend, precision and weight size the element got;
 * - at PAUSED to READY, once the pads are deactivated: the release of both.
 *
 * Each element computes on its own backend, so the elements of a pipeline compute in
 * parallel without sharing threads; they share the model's weights, which the engine
 * prepares once per device.
 */

#include "gstdsocrmodelelement.h"

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-ocr.h>

#include "gstdsocrmodelcontext.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_model_element_debug);
#define GST_CAT_DEFAULT gst_dsocr_model_element_debug

#define DEFAULT_DEVICE GST_DSOCR_DEVICE_CPU
#define DEFAULT_N_THREADS 0
/* the engine's documented default (dsocr-backend.h, docs/numerics.md), whichever it is */
#define DEFAULT_PRECISION ((GstDsocrPrecision) DSOCR_PRECISION_DEFAULT_IS)

/* the property's values are the engine's, DEFAULT (0) excepted */
G_STATIC_ASSERT (DSOCR_PRECISION_DEFAULT_IS != DSOCR_PRECISION_DEFAULT);
G_STATIC_ASSERT (DSOCR_PRECISION_DEFAULT_IS >= DSOCR_PRECISION_F32 &&
    DSOCR_PRECISION_DEFAULT_IS <= DSOCR_PRECISION_Q4);

enum
{
  PROP_0,
  PROP_MODEL_LOCATION,
  PROP_DEVICE,
  PROP_N_THREADS,
  PROP_PRECISION,
};

struct _GstDsocrModelElementPrivate
{
  /* properties, under the object lock */
  gchar *model_location;
  GstDsocrDevice device;
  gint n_threads;
  GstDsocrPrecision precision;

  /* from start until stop; @model and @backend are set and cleared under the object lock,
   * because context queries read them from other elements' threads */
  GstDsocrModel *model;
  dsocr_backend *backend;
  gchar *location;
  dsocr_precision run_precision;        /* the precision property at start */
  const gchar *weights_what;    /* set by the subclass's start: its prepared weights */
  gsize weights_bytes;
  gboolean started;             /* the subclass's start succeeded */
};

static GstElementClass *parent_class = NULL;
static gint private_offset = 0;

static void gst_dsocr_model_element_class_init (GstDsocrModelElementClass * klass,
    gpointer data);
static void gst_dsocr_model_element_init (GstDsocrModelElement * self,
    GstDsocrModelElementClass * klass);
static void gst_dsocr_model_element_finalize (GObject * object);
static void gst_dsocr_model_element_set_property (GObject * object,
    guint prop_id, const GValue * value, GParamSpec * pspec);
static void gst_dsocr_model_element_get_property (GObject * object,
    guint prop_id, GValue * value, GParamSpec * pspec);
static GstStateChangeReturn gst_dsocr_model_element_change_state (GstElement *
    element, GstStateChange transition);
static gboolean gst_dsocr_model_element_query (GstElement * element,
    GstQuery * query);
static gboolean gst_dsocr_model_element_handle_context_query (GstDsocrModelElement
    * self, GstQuery * query);
static gboolean gst_dsocr_model_element_default_sink_event (GstDsocrModelElement
    * self, GstEvent * event);
static gboolean gst_dsocr_model_element_default_sink_query (GstDsocrModelElement
    * self, GstQuery * query);
static gboolean gst_dsocr_model_element_default_src_query (GstDsocrModelElement *
    self, GstQuery * query);

/* Registered by hand rather than with G_DEFINE_TYPE: the instance init needs the
 * subclass's class to find its pad templates (as GstBaseTransform does). */
GType
gst_dsocr_model_element_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type)) {
    static const GTypeInfo info = {
      sizeof (GstDsocrModelElementClass),
      NULL,
      NULL,
      (GClassInitFunc) gst_dsocr_model_element_class_init,
      NULL,
      NULL,
      sizeof (GstDsocrModelElement),
      0,
      (GInstanceInitFunc) gst_dsocr_model_element_init,
    };
    GType t = g_type_register_static (GST_TYPE_ELEMENT, "GstDsocrModelElement",
        &info, G_TYPE_FLAG_ABSTRACT);

    private_offset = g_type_add_instance_private (t,
        sizeof (GstDsocrModelElementPrivate));
    g_once_init_leave (&type, t);
  }
  return type;
}

static inline GstDsocrModelElementPrivate *
gst_dsocr_model_element_get_instance_private (GstDsocrModelElement * self)
{
  return G_STRUCT_MEMBER_P (self, private_offset);
}

GType
gst_dsocr_device_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_DEVICE_CPU, "The CPU, on the element's own thread pool", "cpu"},
    {GST_DSOCR_DEVICE_CUDA,
        "The first NVIDIA GPU (CUDA; the models do not run there yet)", "cuda"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrDevice", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_dsocr_precision_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_PRECISION_F32,
        "Weights as the checkpoint stores them, products in f32: the reference's "
          "numbers, the most memory", "f32"},
    {GST_DSOCR_PRECISION_BF16,
        "The same as f32 on CPUs (reserved for devices with bf16 matrix units)",
        "bf16"},
    {GST_DSOCR_PRECISION_Q8,
        "Decoder matrices in 8-bit blocks made at start (8.5 bits a weight, about half "
          "of BF16): less memory and fewer bytes read per token; output may differ "
          "slightly", "q8"},
    {GST_DSOCR_PRECISION_Q4,
        "Decoder matrices in 4-bit blocks with a minimum (5 bits a weight, about a "
          "third of BF16): the least memory; output differs more", "q4"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrPrecision", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
gst_dsocr_model_element_class_init (GstDsocrModelElementClass * klass,
    gpointer data)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  parent_class = g_type_class_peek_parent (klass);
  if (private_offset != 0)
    g_type_class_adjust_private_offset (klass, &private_offset);

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_model_element_debug, "dsocrmodelelement", 0,
      "Base of the dsocr model elements");

  gobject_class->finalize = gst_dsocr_model_element_finalize;
  gobject_class->set_property = gst_dsocr_model_element_set_property;
  gobject_class->get_property = gst_dsocr_model_element_get_property;

  /**
   * GstDsocrModelElement:model-location:
   *
   * The model directory: config.json, the weights (model.safetensors, or the shards of
   * model.safetensors.index.json) and tokenizer.json. Unset or empty: dsocrencode and
   * dsocrdecode use the default model ($DSOCR_MODEL when set, else the bundled
   * dsocr-reader, made for mode=tiny); dsclassify has no default and fails to start.
   * Elements naming one directory (by real path) share one loaded model, through a
   * "dsocr.model" #GstContext or the process-wide cache. Read at READY to PAUSED.
   */
  g_object_class_install_property (gobject_class, PROP_MODEL_LOCATION,
      g_param_spec_string ("model-location", "Model location",
          "Model directory (config.json, safetensors, tokenizer.json). Unset or empty: "
          "the default model ($DSOCR_MODEL, else the bundled dsocr-reader, made for "
          "mode=tiny) for dsocrencode and dsocrdecode; dsclassify has none. Elements "
          "naming one directory share one loaded model. Read at READY to PAUSED",
          NULL, flags));

  /**
   * GstDsocrModelElement:device:
   *
   * Where the model computes: cpu, on the element's own thread pool
   * (#GstDsocrModelElement:n-threads), or cuda, the first NVIDIA GPU. The engine does not
   * run whole models on CUDA yet, so device=cuda fails to start with an error saying so
   * (and why, when the build or the machine has no CUDA). Read at READY to PAUSED.
   */
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device",
          "Where the model computes: cpu (this element's own thread pool) or cuda (the "
          "first NVIDIA GPU; the engine does not run the models there yet, so the "
          "element fails to start). Read at READY to PAUSED", GST_TYPE_DSOCR_DEVICE,
          DEFAULT_DEVICE, flags));

  /**
   * GstDsocrModelElement:n-threads:
   *
   * Threads of the element's CPU thread pool, which does all of its computing (no other
   * threads compute: OpenBLAS runs single-threaded inside the pool's work). 0 starts one
   * per processor; at most 1024. Each element has a pool of its own, made at READY to
   * PAUSED and kept until READY, so two elements of a pipeline compute at the same time
   * on their own threads; give each a share of the processors when they are busy
   * together. Read at READY to PAUSED.
   */
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Threads",
          "Threads of this element's own CPU thread pool, which does all of its "
          "computing (0 = one per processor). Each element has its own pool; elements "
          "on one model share its weights. Read at READY to PAUSED", 0,
          DSOCR_BACKEND_MAX_THREADS, DEFAULT_N_THREADS, flags));

  /**
   * GstDsocrModelElement:precision:
   *
   * How the model's weights are held and its matrix products computed (the engine's
   * dsocr_precision, dsocr-backend.h; docs/numerics.md measures each against f32):
   *
   * - f32: every weight as the checkpoint stores it (BF16), products in f32: the
   *   reference's numbers;
   * - bf16: the same as f32 on CPUs, whose f32 products outrun their bf16 ones (reserved
   *   for devices with bf16 matrix units);
   * - q8: the decoder's matrices (attention, dense and expert MLPs, shared experts,
   *   lm_head) in 8-bit blocks (8.5 bits a weight), about half the memory of the stored
   *   BF16 weights, and decoding reads about half the bytes per token; the greedy output
   *   (and a classifier's scores) may differ from f32;
   * - q4: the same in 4-bit blocks with a minimum (5 bits a weight), about a third of the
   *   memory; the output differs more.
   *
   * Embeddings, norms, the router, MLA's kv_b and a classifier's score head always stay as
   * stored. dsocrdecode and dsclassify
   * prepare their decoder's weights at this precision at READY to PAUSED (q8 and q4
   * quantize the matrices then, a few seconds for the full model) and share them with
   * every element on the same model, device and precision. dsocrencode has the property
   * for uniformity, but the vision tower is never quantized: every precision encodes with
   * the weights as stored, and the embeddings do not change.
   *
   * The default is the engine's documented default, DSOCR_PRECISION_DEFAULT_IS (f32 in this
   * version), chosen from the measurements of docs/numerics.md: the fastest precision whose
   * greedy output agrees with f32 on the goldens and the bundled model. Read at READY to
   * PAUSED.
   */
  g_object_class_install_property (gobject_class, PROP_PRECISION,
      g_param_spec_enum ("precision", "Precision",
          "How the weights are held and products computed. dsocrdecode, dsclassify: f32 "
          "keeps the decoder's weights as stored (the reference's numbers); bf16 is the "
          "same on CPUs; q8 holds the decoder's matrices in 8-bit blocks (about half the "
          "memory and bytes read per token), q4 in 4-bit blocks (about a third), made at "
          "READY to PAUSED and shared by the elements on the model; q8 and q4 may change "
          "the output. dsocrencode: no effect, the vision tower keeps its weights as "
          "stored. Default: the engine's (docs/numerics.md). Read at READY to PAUSED",
          GST_TYPE_DSOCR_PRECISION, DEFAULT_PRECISION, flags));

  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_change_state);
  element_class->query = GST_DEBUG_FUNCPTR (gst_dsocr_model_element_query);

  klass->sink_event =
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_default_sink_event);
  klass->sink_query =
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_default_sink_query);
  klass->src_query = GST_DEBUG_FUNCPTR (gst_dsocr_model_element_default_src_query);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_MODEL_ELEMENT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DEVICE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_PRECISION, 0);
}

/* ---- pads ---- */

static GstFlowReturn
gst_dsocr_model_element_chain (GstPad * pad, GstObject * parent,
    GstBuffer * buffer)
{
  GstDsocrModelElement *self = GST_DSOCR_MODEL_ELEMENT (parent);
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);

  if (G_UNLIKELY (!gst_pad_has_current_caps (pad))) {
    GST_DEBUG_OBJECT (self, "a buffer before caps");
    gst_buffer_unref (buffer);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (!klass->process)
    return gst_dsocr_model_element_push (self, buffer);
  return klass->process (self, buffer);
}

static gboolean
gst_dsocr_model_element_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstDsocrModelElement *self = GST_DSOCR_MODEL_ELEMENT (parent);

  return GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self)->sink_event (self, event);
}

/* Both pads: the model is the base class's, so context queries are answered here, from
 * either side, before the subclass sees the query. */
static gboolean
gst_dsocr_model_element_pad_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstDsocrModelElement *self = GST_DSOCR_MODEL_ELEMENT (parent);
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);

  if (gst_dsocr_model_element_handle_context_query (self, query))
    return TRUE;
  if (GST_PAD_IS_SINK (pad))
    return klass->sink_query (self, query);
  return klass->src_query (self, query);
}

static void
gst_dsocr_model_element_init (GstDsocrModelElement * self,
    GstDsocrModelElementClass * klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstDsocrModelElementPrivate *priv =
      gst_dsocr_model_element_get_instance_private (self);
  GstPadTemplate *templ;

  self->priv = priv;

  templ = gst_element_class_get_pad_template (element_class, "sink");
  g_return_if_fail (templ != NULL);
  self->sinkpad = gst_pad_new_from_template (templ, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_pad_query));
  /* the frames pass through unchanged: what downstream takes, this element takes */
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  templ = gst_element_class_get_pad_template (element_class, "src");
  g_return_if_fail (templ != NULL);
  self->srcpad = gst_pad_new_from_template (templ, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_model_element_pad_query));
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  priv->model_location = klass->default_model ?
      g_strdup (dsocr_ocr_default_model_dir ()) : NULL;
  priv->device = DEFAULT_DEVICE;
  priv->n_threads = DEFAULT_N_THREADS;
  priv->precision = DEFAULT_PRECISION;
}

static void
gst_dsocr_model_element_finalize (GObject * object)
{
  GstDsocrModelElementPrivate *priv = GST_DSOCR_MODEL_ELEMENT (object)->priv;

  gst_dsocr_model_unref (priv->model);
  dsocr_backend_unref (priv->backend);
  g_free (priv->location);
  g_free (priv->model_location);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_model_element_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrModelElementPrivate *priv = GST_DSOCR_MODEL_ELEMENT (object)->priv;

  GST_OBJECT_LOCK (object);
  /* all of them are read at READY to PAUSED (GST_PARAM_MUTABLE_READY) */
  if (GST_STATE (object) > GST_STATE_READY)
    GST_WARNING_OBJECT (object, "%s set in %s: it applies from the next start (READY "
        "to PAUSED)", pspec->name, gst_element_state_get_name (GST_STATE (object)));
  switch (prop_id) {
    case PROP_MODEL_LOCATION:
      g_free (priv->model_location);
      priv->model_location = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      priv->device = g_value_get_enum (value);
      break;
    case PROP_N_THREADS:
      priv->n_threads = g_value_get_int (value);
      break;
    case PROP_PRECISION:
      priv->precision = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (object);
}

static void
gst_dsocr_model_element_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrModelElementPrivate *priv = GST_DSOCR_MODEL_ELEMENT (object)->priv;

  GST_OBJECT_LOCK (object);
  switch (prop_id) {
    case PROP_MODEL_LOCATION:
      g_value_set_string (value, priv->model_location);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, priv->device);
      break;
    case PROP_N_THREADS:
      g_value_set_int (value, priv->n_threads);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, priv->precision);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (object);
}

/* ---- the model and the backend ---- */

/* Posts the error of an element that cannot get its model: @location NULL or empty (no
 * model-location and no default), or @error from the cache. */
static void
gst_dsocr_model_element_post_model_error (GstDsocrModelElement * self,
    const gchar * location, const GError * error)
{
  if (!location || !*location) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No model: set the model-location property to a model directory."),
        (NULL));
    return;
  }
  if (!error || error->domain != DSOCR_ERROR) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
        ("Could not load the model in %s.", location),
        ("%s", error ? error->message : "unknown error"));
    return;
  }
  switch (error->code) {
    case DSOCR_ERROR_FILE:
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Could not read the model in %s: %s. Set model-location to a directory "
              "holding config.json and the model's safetensors files.", location,
              error->message), (NULL));
      break;
    case DSOCR_ERROR_FORMAT:
    case DSOCR_ERROR_SHAPE:
    case DSOCR_ERROR_CONFIG:
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("The model in %s is damaged or incomplete: %s", location,
              error->message), (NULL));
      break;
    case DSOCR_ERROR_UNSUPPORTED:
    case DSOCR_ERROR_INVALID:
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("The model in %s cannot be used by this element: %s", location,
              error->message), (NULL));
      break;
    case DSOCR_ERROR_NOMEM:
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Not enough memory to load the model in %s.", location),
          ("%s", error->message));
      break;
    default:
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Could not load the model in %s: %s", location, error->message),
          (NULL));
      break;
  }
}

/* The element's backend on @device with @n_threads CPU threads (transfer full), or NULL
 * after posting an error: the device is missing, or cannot run the models yet. */
static dsocr_backend *
gst_dsocr_model_element_open_backend (GstDsocrModelElement * self,
    GstDsocrDevice device, gint n_threads)
{
  const gchar *name = device == GST_DSOCR_DEVICE_CUDA ? "cuda" : "cpu";
  dsocr_backend *backend;
  GError *err = NULL;

  if (device != GST_DSOCR_DEVICE_CPU && !dsocr_device_available (name, &err))
    goto no_device;
  backend = dsocr_backend_new (name, n_threads, &err);
  if (!backend)
    goto no_backend;
  /* a CUDA backend holds the kernels written so far, not yet all that a model needs */
  if (!dsocr_backend_runs_models (backend))
    goto cannot_run;
  GST_INFO_OBJECT (self, "computing on %s", dsocr_backend_get_description (backend));
  return backend;

  /* ERRORS */
no_device:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("CUDA is not available here (%s): set device=cpu.", err->message), (NULL));
    g_clear_error (&err);
    return NULL;
  }
no_backend:
  {
    if (device != GST_DSOCR_DEVICE_CPU)
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("Could not start computing on CUDA (%s): set device=cpu.",
              err->message), (NULL));
    else if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM))
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Not enough memory to start %d computing threads: lower n-threads.",
              n_threads), ("%s", err->message));
    else
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Could not start the CPU thread pool: %s", err->message), (NULL));
    g_clear_error (&err);
    return NULL;
  }
cannot_run:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The engine cannot run models on CUDA yet: its CUDA backend (%s) implements "
            "only some of the operations the models need. Set device=cpu.",
            dsocr_backend_get_description (backend)), (NULL));
    dsocr_backend_unref (backend);
    return NULL;
  }
}

/* Posts the element message "dsocr-model", which tells the application which model the
 * element runs, where it came from, what it computes on, at which precision and with how
 * many bytes of weights. */
static void
gst_dsocr_model_element_post_loaded (GstDsocrModelElement * self,
    gboolean shared, gboolean from_context, GstClockTime load_time)
{
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);
  GstDsocrModelElementPrivate *priv = self->priv;
  GstDsocrModelParts parts = klass->parts;
  GString *names = g_string_new (NULL);
  GstStructure *s;

  /* the OCR pipeline is the three of them */
  if (parts & GST_DSOCR_MODEL_PART_OCR)
    parts |= GST_DSOCR_MODEL_PART_DECODER | GST_DSOCR_MODEL_PART_VISION |
        GST_DSOCR_MODEL_PART_TOKENIZER;
  if (parts & GST_DSOCR_MODEL_PART_DECODER)
    g_string_append (names, "decoder ");
  if (parts & GST_DSOCR_MODEL_PART_VISION)
    g_string_append (names, "vision ");
  if (parts & GST_DSOCR_MODEL_PART_TOKENIZER)
    g_string_append (names, "tokenizer ");
  if (names->len)
    g_string_truncate (names, names->len - 1);
  s = gst_structure_new ("dsocr-model",
      "location", G_TYPE_STRING, gst_dsocr_model_get_path (priv->model),
      "parts", G_TYPE_STRING, names->str,
      "shared", G_TYPE_BOOLEAN, shared,
      "context", G_TYPE_BOOLEAN, from_context,
      "backend", G_TYPE_STRING, dsocr_backend_get_description (priv->backend),
      "precision", G_TYPE_STRING, dsocr_precision_to_string (priv->run_precision),
      "load-time", G_TYPE_UINT64, (guint64) load_time, NULL);
  if (priv->weights_what)
    gst_structure_set (s, "weight-bytes", G_TYPE_UINT64,
        (guint64) priv->weights_bytes, NULL);
  g_string_free (names, TRUE);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
}

/* Releases what start set up: the subclass's state, then the model and the backend. */
static void
gst_dsocr_model_element_stop (GstDsocrModelElement * self)
{
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);
  GstDsocrModelElementPrivate *priv = self->priv;
  GstDsocrModel *model;
  dsocr_backend *backend;

  if (priv->started && klass->stop)
    klass->stop (self);
  priv->started = FALSE;
  GST_OBJECT_LOCK (self);
  model = g_steal_pointer (&priv->model);
  backend = g_steal_pointer (&priv->backend);
  GST_OBJECT_UNLOCK (self);
  gst_dsocr_model_unref (model);
  dsocr_backend_unref (backend);
  g_clear_pointer (&priv->location, g_free);
  priv->weights_what = NULL;
  priv->weights_bytes = 0;
}

static gboolean
gst_dsocr_model_element_start (GstDsocrModelElement * self)
{
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);
  GstDsocrModelElementPrivate *priv = self->priv;
  GstDsocrDevice device;
  gint n_threads;
  gchar *location, *path;
  dsocr_backend *backend;
  GstDsocrModel *model;
  GError *err = NULL;
  gboolean shared = FALSE, from_context;
  GstClockTime t0;

  GST_OBJECT_LOCK (self);
  location = g_strdup (priv->model_location);
  device = priv->device;
  n_threads = priv->n_threads;
  priv->run_precision = dsocr_precision_resolve ((dsocr_precision) priv->precision);
  GST_OBJECT_UNLOCK (self);
  priv->weights_what = NULL;
  priv->weights_bytes = 0;

  backend = gst_dsocr_model_element_open_backend (self, device, n_threads);
  if (!backend)
    goto failed;
  if ((!location || !*location) && klass->default_model) {
    g_free (location);
    location = g_strdup (dsocr_ocr_default_model_dir ());
  }
  if (!location || !*location)
    goto no_model;

  t0 = gst_util_get_timestamp ();
  path = gst_dsocr_model_cache_resolve (location, &err);
  if (!path)
    goto model_error;
  /* a model handed over in a context first; the cache, which loads, otherwise */
  model = gst_dsocr_model_context_find (GST_ELEMENT (self), path);
  g_free (path);
  from_context = model != NULL;
  if (model) {
    shared = TRUE;
    if (!gst_dsocr_model_load_parts (model, klass->parts, &err)) {
      gst_dsocr_model_unref (model);
      goto model_error;
    }
  } else {
    model = gst_dsocr_model_cache_acquire (location, klass->parts, &shared, &err);
    if (!model)
      goto model_error;
  }

  GST_OBJECT_LOCK (self);
  priv->model = model;
  priv->backend = backend;
  GST_OBJECT_UNLOCK (self);
  priv->location = location;
  if (klass->start && !klass->start (self)) {
    gst_dsocr_model_element_stop (self);
    return FALSE;
  }
  priv->started = TRUE;
  if (!from_context)
    gst_dsocr_model_context_share (GST_ELEMENT (self), model);
  gst_dsocr_model_element_post_loaded (self, shared, from_context,
      gst_util_get_timestamp () - t0);
  return TRUE;

  /* ERRORS */
no_model:
  {
    gst_dsocr_model_element_post_model_error (self, location, NULL);
    goto failed;
  }
model_error:
  {
    gst_dsocr_model_element_post_model_error (self, location, err);
    g_clear_error (&err);
    goto failed;
  }
failed:
  {
    dsocr_backend_unref (backend);
    g_free (location);
    return FALSE;
  }
}

static GstStateChangeReturn
gst_dsocr_model_element_change_state (GstElement * element,
    GstStateChange transition)
{
  GstDsocrModelElement *self = GST_DSOCR_MODEL_ELEMENT (element);
  GstStateChangeReturn ret;

  /* before the pads are activated: the model is there when the first buffer comes */
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED &&
      !gst_dsocr_model_element_start (self))
    return GST_STATE_CHANGE_FAILURE;

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  /* after the pads were deactivated: no streaming thread uses the model any more */
  if ((transition == GST_STATE_CHANGE_READY_TO_PAUSED &&
          ret == GST_STATE_CHANGE_FAILURE) ||
      transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    gst_dsocr_model_element_stop (self);
  return ret;
}

/* ---- events and queries ---- */

/* Answers a "dsocr.model" context query with the model, while there is one. */
static gboolean
gst_dsocr_model_element_handle_context_query (GstDsocrModelElement * self,
    GstQuery * query)
{
  GstDsocrModel *model = NULL;
  gboolean ret;

  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT)
    return FALSE;
  GST_OBJECT_LOCK (self);
  if (self->priv->model)
    model = gst_dsocr_model_ref (self->priv->model);
  GST_OBJECT_UNLOCK (self);
  ret = gst_dsocr_model_context_handle_query (GST_ELEMENT (self), query, model);
  gst_dsocr_model_unref (model);
  return ret;
}

static gboolean
gst_dsocr_model_element_query (GstElement * element, GstQuery * query)
{
  GstDsocrModelElement *self = GST_DSOCR_MODEL_ELEMENT (element);

  if (gst_dsocr_model_element_handle_context_query (self, query))
    return TRUE;
  return GST_ELEMENT_CLASS (parent_class)->query (element, query);
}

static gboolean
gst_dsocr_model_element_default_sink_event (GstDsocrModelElement * self,
    GstEvent * event)
{
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    if (klass->flush)
      klass->flush (self);
  } else if (GST_EVENT_IS_SERIALIZED (event) && klass->drain) {
    /* the frames that came before the event go before it */
    GstFlowReturn ret = klass->drain (self);

    if (ret != GST_FLOW_OK)
      GST_DEBUG_OBJECT (self, "draining before %" GST_PTR_FORMAT ": %s", event,
          gst_flow_get_name (ret));
  }

  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS && klass->set_caps) {
    GstCaps *caps;

    gst_event_parse_caps (event, &caps);
    if (!klass->set_caps (self, caps)) {
      GST_WARNING_OBJECT (self, "refused %" GST_PTR_FORMAT, caps);
      gst_event_unref (event);
      return FALSE;
    }
  }
  return gst_pad_event_default (self->sinkpad, GST_OBJECT (self), event);
}

static gboolean
gst_dsocr_model_element_default_sink_query (GstDsocrModelElement * self,
    GstQuery * query)
{
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);

  if (GST_QUERY_TYPE (query) == GST_QUERY_DRAIN && klass->drain)
    klass->drain (self);
  return gst_pad_query_default (self->sinkpad, GST_OBJECT (self), query);
}

static gboolean
gst_dsocr_model_element_default_src_query (GstDsocrModelElement * self,
    GstQuery * query)
{
  GstDsocrModelElementClass *klass = GST_DSOCR_MODEL_ELEMENT_GET_CLASS (self);

  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY && klass->get_latency) {
    GstClockTime min, max, our_min = 0, our_max = 0;
    gboolean live;

    if (!gst_pad_peer_query (self->sinkpad, query))
      return FALSE;
    gst_query_parse_latency (query, &live, &min, &max);
    klass->get_latency (self, &our_min, &our_max);
    min += our_min;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += our_max;
    GST_DEBUG_OBJECT (self, "latency: live %d, min %" GST_TIME_FORMAT ", max %"
        GST_TIME_FORMAT, live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
    gst_query_set_latency (query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default (self->srcpad, GST_OBJECT (self), query);
}

/* ---- for subclasses ---- */

GstDsocrModel *
gst_dsocr_model_element_get_model (GstDsocrModelElement * self)
{
  return self->priv->model;
}

dsocr_backend *
gst_dsocr_model_element_get_backend (GstDsocrModelElement * self)
{
  return self->priv->backend;
}

const gchar *
gst_dsocr_model_element_get_location (GstDsocrModelElement * self)
{
  return self->priv->location;
}

dsocr_precision
gst_dsocr_model_element_get_precision (GstDsocrModelElement * self)
{
  return self->priv->run_precision;
}

void
gst_dsocr_model_element_set_weights (GstDsocrModelElement * self,
    const gchar * what, gboolean at_precision, gsize bytes)
{
  GstDsocrModelElementPrivate *priv = self->priv;
  const gchar *precision = dsocr_precision_to_string (priv->run_precision);
  gchar *size, *form;

  priv->weights_what = what;
  priv->weights_bytes = bytes;
  if (bytes >= ((gsize) 1 << 30))
    size = g_strdup_printf ("%.2f GiB", (gdouble) bytes / (1 << 30));
  else if (bytes >= ((gsize) 1 << 20))
    size = g_strdup_printf ("%.2f MiB", (gdouble) bytes / (1 << 20));
  else
    size = g_strdup_printf ("%.2f KiB", (gdouble) bytes / (1 << 10));
  form = at_precision ? g_strdup (precision) :
      g_strdup_printf ("as stored (precision=%s does not apply to them)", precision);
  GST_INFO_OBJECT (self, "%s weights: %s, %s on %s", what, form, size,
      dsocr_backend_get_description (priv->backend));
  g_free (form);
  g_free (size);
}

void
gst_dsocr_model_element_post_prepare_error (GstDsocrModelElement * self,
    const gchar * what, const GError * error)
{
  GstDsocrModelElementPrivate *priv = self->priv;
  const gchar *precision = dsocr_precision_to_string (priv->run_precision);
  const gchar *location = priv->location ? priv->location : "";
  const gchar *message = error ? error->message : "unknown error";
  gint code = error && error->domain == DSOCR_ERROR ? error->code : -1;

  switch (code) {
    case DSOCR_ERROR_NOMEM:
      /* what to change depends on what is left to save */
      if (priv->run_precision == DSOCR_PRECISION_Q4)
        GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
            ("Not enough memory for the %s weights of %s at precision=q4, the smallest: "
                "free memory or use a smaller model.", what, location),
            ("%s", message));
      else
        GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
            ("Not enough memory for the %s weights of %s at precision=%s: set "
                "precision=%s to hold them in less memory, or free memory.", what,
                location, precision,
                priv->run_precision == DSOCR_PRECISION_Q8 ? "q4" : "q8 or q4"),
            ("%s", message));
      break;
    case DSOCR_ERROR_DEVICE:
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("Could not prepare the %s weights of %s on %s: %s. Set device=cpu.", what,
              location, dsocr_backend_get_description (priv->backend), message),
          (NULL));
      break;
    case DSOCR_ERROR_UNSUPPORTED:
    case DSOCR_ERROR_INVALID:
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
          ("Could not prepare the %s weights of %s at precision=%s on %s: %s. Set "
              "precision=f32.", what, location, precision,
              dsocr_backend_get_description (priv->backend), message), (NULL));
      break;
    default:
      GST_ELEMENT_ERROR (self, LIBRARY, INIT,
          ("Could not prepare the %s weights of %s at precision=%s: %s", what,
              location, precision, message), (NULL));
      break;
  }
}

GstFlowReturn
gst_dsocr_model_element_push (GstDsocrModelElement * self, GstBuffer * buffer)
{
  return gst_pad_push (self->srcpad, buffer);
}
