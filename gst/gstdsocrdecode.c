/* gstdsocrdecode.c: dsocrdecode, DeepSeek-OCR generation on a worker thread. */

/**
 * SECTION:element-dsocrdecode
 * @title: dsocrdecode
 *
 * Recognises the page shown by each frame: generates the DeepSeek-OCR model's output for the
 * frame's vision embeddings (attached by dsocrencode) and #GstDsocrDecode:prompt, parses it
 * (markdown, grounding boxes in the frame's pixels) and attaches the result to the frame: a
 * #GstCustomMeta "DsocrResultMeta" (markdown, JSON, flags) and one
 * #GstVideoRegionOfInterestMeta per grounding box. The frame passes through.
 *
 * Generation runs on the element's own thread. Frames wait in a queue of at most
 * #GstDsocrDecode:max-pending frames; upstream blocks only when it is full (or, with
 * #GstDsocrDecode:leaky, frames are dropped instead). Events stay in order with the frames:
 * end-of-stream goes downstream after every queued frame was recognised, caps changes apply
 * to the frames that follow them (the model is not reloaded), a flush cancels the generation
 * in progress and empties the queue. The latency query adds the generation time.
 *
 * For live sources, #GstDsocrDecode:interval recognises only every (interval + 1)-th frame,
 * #GstDsocrDecode:skip-unchanged reuses the last result while the page does not change, and
 * #GstDsocrDecode:leaky drops frames that would wait too long.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=doc.pdf ! dsocrpdfdec ! dsocrpreprocess ! \
 *     dsocrencode model-location=/models/DeepSeek-OCR ! \
 *     dsocrdecode model-location=/models/DeepSeek-OCR max-new-tokens=4096 ! \
 *     dsocrresult ! filesink location=doc.md
 * ]|
 *
 * Since: 0.1
 */

#include "gstdsocrdecode.h"

#include <math.h>
#include <string.h>

#include <gst/video/video.h>

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-ocr.h>
#include <dsocr/dsocr-result.h>

#include "gstdsocrelements.h"
#include "gstdsocrmeta.h"
#include "gstdsocrmodelcache.h"

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_decode_debug);
#define GST_CAT_DEFAULT gst_dsocr_decode_debug

#define DEFAULT_PROMPT DSOCR_OCR_DEFAULT_PROMPT
/* $DSOCR_MODEL, else the bundled dsocr-reader (see dsocr_ocr_default_model_dir()) */
#define DEFAULT_MODEL_LOCATION (dsocr_ocr_default_model_dir ())
#define DEFAULT_DEVICE GST_DSOCR_DEVICE_CPU
/* the transformers reference (infer()): 8192 new tokens, no_repeat_ngram_size 20 over the
 * whole sequence */
#define DEFAULT_MAX_NEW_TOKENS DSOCR_OCR_MAX_NEW_TOKENS
#define DEFAULT_NGRAM_SIZE DSOCR_OCR_NGRAM_HF
#define DEFAULT_NGRAM_WINDOW 0
#define DEFAULT_N_THREADS 0
#define DEFAULT_MAX_PENDING 2
#define DEFAULT_LEAKY GST_DSOCR_DECODE_LEAKY_NONE
#define DEFAULT_INTERVAL 0
#define DEFAULT_SKIP_UNCHANGED FALSE
#define DEFAULT_CHANGE_THRESHOLD 2.0
#define DEFAULT_LATENCY 0
#define DEFAULT_POST_MESSAGES TRUE

enum
{
  PROP_0,
  PROP_MODEL_LOCATION,
  PROP_DEVICE,
  PROP_PROMPT,
  PROP_MAX_NEW_TOKENS,
  PROP_NGRAM_SIZE,
  PROP_NGRAM_WINDOW,
  PROP_N_THREADS,
  PROP_MAX_PENDING,
  PROP_LEAKY,
  PROP_INTERVAL,
  PROP_SKIP_UNCHANGED,
  PROP_CHANGE_THRESHOLD,
  PROP_LATENCY,
  PROP_POST_MESSAGES,
};

/* What the worker does with a queued item. */
typedef enum
{
  ITEM_EVENT,                   /* push the event */
  ITEM_RECOGNIZE,               /* generate, attach the result, push */
  ITEM_REUSE,                   /* the page did not change: attach the last result, push */
  ITEM_PASS,                    /* not due (interval): push as it is */
} ItemKind;

typedef struct
{
  ItemKind kind;
  GstEvent *event;              /* ITEM_EVENT */
  GstBuffer *buffer;            /* the others: the writable frame */
  GstDsocrEmbeddings *emb;      /* ITEM_RECOGNIZE (ref) */
  gint width, height;           /* frame size: the boxes' pixels */
  gint page;                    /* 1-based page from DsocrPageMeta, -1 */
} Item;

struct _GstDsocrDecode
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties, under the object lock */
  gchar *model_location;
  GstDsocrDevice device;
  gchar *prompt;
  guint max_new_tokens;
  guint ngram_size;
  guint ngram_window;
  gint n_threads;
  guint max_pending;
  GstDsocrDecodeLeaky leaky;
  guint interval;
  gboolean skip_unchanged;
  gdouble change_threshold;
  GstClockTime latency;
  gboolean post_messages;
  GstClockTime longest;         /* longest generation so far (object lock) */
  GstClockTime latency_posted;  /* what the last latency message was for */

  /* < private > from READY to PAUSED until back to READY */
  GstDsocrModel *model;

  /* the queue, under qlock */
  GMutex qlock;
  GCond qcond;
  GQueue items;                 /* Item */
  guint n_frames;               /* frame items in @items */
  gboolean busy;                /* the worker holds an item */
  gboolean flushing;
  GstFlowReturn srcresult;      /* last push result of the worker */
  gint cancel;                  /* atomic: stop the generation in progress */

  /* chain side, under the sink stream lock */
  gint width, height;
  guint since_recognized;
  gboolean have_recognized;
  gfloat last_sig[GST_DSOCR_SIGNATURE_SIDE * GST_DSOCR_SIGNATURE_SIDE];
  gboolean have_sig;

  /* worker side */
  GstBuffer *last_result;       /* an empty buffer carrying the last result's metas */
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw(ANY)"));

#define gst_dsocr_decode_parent_class parent_class
G_DEFINE_TYPE (GstDsocrDecode, gst_dsocr_decode, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (dsocrdecode, "dsocrdecode", GST_RANK_NONE,
    GST_TYPE_DSOCR_DECODE);

static void gst_dsocr_decode_finalize (GObject * object);
static void gst_dsocr_decode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_decode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static GstStateChangeReturn gst_dsocr_decode_change_state (GstElement *
    element, GstStateChange transition);
static GstFlowReturn gst_dsocr_decode_chain (GstPad * pad, GstObject * parent,
    GstBuffer * buffer);
static gboolean gst_dsocr_decode_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event);
static gboolean gst_dsocr_decode_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query);
static gboolean gst_dsocr_decode_src_query (GstPad * pad, GstObject * parent,
    GstQuery * query);
static void gst_dsocr_decode_loop (GstDsocrDecode * self);

GType
gst_dsocr_decode_leaky_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_DECODE_LEAKY_NONE, "Not leaky: a full queue blocks upstream", "none"},
    {GST_DSOCR_DECODE_LEAKY_UPSTREAM, "Drop the arriving frame", "upstream"},
    {GST_DSOCR_DECODE_LEAKY_DOWNSTREAM, "Drop the oldest waiting frame",
        "downstream"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrDecodeLeaky", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
gst_dsocr_decode_class_init (GstDsocrDecodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_decode_debug, "dsocrdecode", 0,
      "DeepSeek-OCR generation");

  gobject_class->finalize = gst_dsocr_decode_finalize;
  gobject_class->set_property = gst_dsocr_decode_set_property;
  gobject_class->get_property = gst_dsocr_decode_get_property;

  g_object_class_install_property (gobject_class, PROP_MODEL_LOCATION,
      g_param_spec_string ("model-location", "Model location",
          "Directory of the DeepSeek-OCR model (config.json, safetensors, "
          "tokenizer.json); empty: the default model ($DSOCR_MODEL, else the bundled "
          "dsocr-reader, made for mode=tiny)", DEFAULT_MODEL_LOCATION,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device", "Where the model runs",
          GST_TYPE_DSOCR_DEVICE, DEFAULT_DEVICE, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt",
          "The request; <image> marks where the page goes", DEFAULT_PROMPT,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_NEW_TOKENS,
      g_param_spec_uint ("max-new-tokens", "Maximum new tokens",
          "Most tokens generated for one frame",
          1, G_MAXINT, DEFAULT_MAX_NEW_TOKENS, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_NGRAM_SIZE,
      g_param_spec_uint ("no-repeat-ngram-size", "No-repeat n-gram size",
          "Ban tokens that would repeat an n-gram of this size (0 = off)", 0,
          1024, DEFAULT_NGRAM_SIZE, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_NGRAM_WINDOW,
      g_param_spec_uint ("no-repeat-ngram-window", "No-repeat n-gram window",
          "0: n-grams of the whole prompt and output (transformers); N: of the last N "
          "generated tokens, <td> and </td> exempt (DeepSeek-OCR's vLLM guard)", 0,
          G_MAXINT, DEFAULT_NGRAM_WINDOW, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Threads",
          "Threads for the decoder's matrix products (0 = all processors)", 0,
          1024, DEFAULT_N_THREADS, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint ("max-pending", "Maximum pending frames",
          "Frames waiting for the worker before upstream blocks or frames are dropped",
          1, 1024, DEFAULT_MAX_PENDING, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_LEAKY,
      g_param_spec_enum ("leaky", "Leaky",
          "What a full queue does with frames (live sources: downstream)",
          GST_TYPE_DSOCR_DECODE_LEAKY, DEFAULT_LEAKY,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Frames passed on without recognition after each recognised one", 0,
          G_MAXINT, DEFAULT_INTERVAL, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SKIP_UNCHANGED,
      g_param_spec_boolean ("skip-unchanged", "Skip unchanged",
          "Reuse the last result while the page does not change",
          DEFAULT_SKIP_UNCHANGED, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_CHANGE_THRESHOLD,
      g_param_spec_double ("change-threshold", "Change threshold",
          "Mean grey-level difference (0-255) of a 16x16 thumbnail above which a page "
          "counts as changed", 0.0, 255.0, DEFAULT_CHANGE_THRESHOLD,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint64 ("latency", "Latency",
          "Processing latency to report in nanoseconds (0 = the longest generation "
          "seen so far)", 0, G_MAXUINT64, DEFAULT_LATENCY,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a dsocr-result element message for every recognised frame",
          DEFAULT_POST_MESSAGES, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR decoder", "Filter/Analyzer/Video",
      "Generates the text of each frame's page with DeepSeek-OCR and attaches markdown, "
      "JSON and grounding boxes", "gst-dsocr");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_dsocr_decode_change_state);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DECODE_LEAKY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DEVICE, 0);
  gst_dsocr_meta_register ();
}

static void
gst_dsocr_decode_init (GstDsocrDecode * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_decode_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_decode_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_decode_sink_query));
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dsocr_decode_src_query));
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->model_location = g_strdup (DEFAULT_MODEL_LOCATION);
  self->device = DEFAULT_DEVICE;
  self->prompt = g_strdup (DEFAULT_PROMPT);
  self->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
  self->ngram_size = DEFAULT_NGRAM_SIZE;
  self->ngram_window = DEFAULT_NGRAM_WINDOW;
  self->n_threads = DEFAULT_N_THREADS;
  self->max_pending = DEFAULT_MAX_PENDING;
  self->leaky = DEFAULT_LEAKY;
  self->interval = DEFAULT_INTERVAL;
  self->skip_unchanged = DEFAULT_SKIP_UNCHANGED;
  self->change_threshold = DEFAULT_CHANGE_THRESHOLD;
  self->latency = DEFAULT_LATENCY;
  self->post_messages = DEFAULT_POST_MESSAGES;

  g_mutex_init (&self->qlock);
  g_cond_init (&self->qcond);
  g_queue_init (&self->items);
  self->srcresult = GST_FLOW_FLUSHING;
  self->flushing = TRUE;
}

static void
item_free (Item * item)
{
  gst_clear_event (&item->event);
  gst_clear_buffer (&item->buffer);
  g_clear_pointer (&item->emb, gst_dsocr_embeddings_unref);
  g_free (item);
}

/* Empties the queue. Called with qlock held. */
static void
gst_dsocr_decode_clear_queue (GstDsocrDecode * self)
{
  Item *item;

  while ((item = g_queue_pop_head (&self->items)))
    item_free (item);
  self->n_frames = 0;
}

static void
gst_dsocr_decode_finalize (GObject * object)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (object);

  gst_dsocr_decode_clear_queue (self);
  g_mutex_clear (&self->qlock);
  g_cond_clear (&self->qcond);
  gst_clear_buffer (&self->last_result);
  gst_dsocr_model_unref (self->model);
  g_free (self->model_location);
  g_free (self->prompt);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_dsocr_decode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_LOCATION:
      g_free (self->model_location);
      self->model_location = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      self->device = g_value_get_enum (value);
      break;
    case PROP_PROMPT:
      g_free (self->prompt);
      self->prompt = g_value_dup_string (value);
      break;
    case PROP_MAX_NEW_TOKENS:
      self->max_new_tokens = g_value_get_uint (value);
      break;
    case PROP_NGRAM_SIZE:
      self->ngram_size = g_value_get_uint (value);
      break;
    case PROP_NGRAM_WINDOW:
      self->ngram_window = g_value_get_uint (value);
      break;
    case PROP_N_THREADS:
      self->n_threads = g_value_get_int (value);
      break;
    case PROP_MAX_PENDING:
      self->max_pending = g_value_get_uint (value);
      break;
    case PROP_LEAKY:
      self->leaky = g_value_get_enum (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint (value);
      break;
    case PROP_SKIP_UNCHANGED:
      self->skip_unchanged = g_value_get_boolean (value);
      break;
    case PROP_CHANGE_THRESHOLD:
      self->change_threshold = g_value_get_double (value);
      break;
    case PROP_LATENCY:
      self->latency = g_value_get_uint64 (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
  /* a longer queue may be waited for */
  if (prop_id == PROP_MAX_PENDING || prop_id == PROP_LEAKY) {
    g_mutex_lock (&self->qlock);
    g_cond_broadcast (&self->qcond);
    g_mutex_unlock (&self->qlock);
  }
}

static void
gst_dsocr_decode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_LOCATION:
      g_value_set_string (value, self->model_location);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, self->device);
      break;
    case PROP_PROMPT:
      g_value_set_string (value, self->prompt);
      break;
    case PROP_MAX_NEW_TOKENS:
      g_value_set_uint (value, self->max_new_tokens);
      break;
    case PROP_NGRAM_SIZE:
      g_value_set_uint (value, self->ngram_size);
      break;
    case PROP_NGRAM_WINDOW:
      g_value_set_uint (value, self->ngram_window);
      break;
    case PROP_N_THREADS:
      g_value_set_int (value, self->n_threads);
      break;
    case PROP_MAX_PENDING:
      g_value_set_uint (value, self->max_pending);
      break;
    case PROP_LEAKY:
      g_value_set_enum (value, self->leaky);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->interval);
      break;
    case PROP_SKIP_UNCHANGED:
      g_value_set_boolean (value, self->skip_unchanged);
      break;
    case PROP_CHANGE_THRESHOLD:
      g_value_set_double (value, self->change_threshold);
      break;
    case PROP_LATENCY:
      g_value_set_uint64 (value, self->latency);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- model ---- */

static gboolean
gst_dsocr_decode_open (GstDsocrDecode * self)
{
  GstDsocrDevice device;
  gchar *location, *prompt;
  dsocr_ocr_prompt *check;
  GError *err = NULL;
  gboolean shared = FALSE;
  GstClockTime t0;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->model_location);
  prompt = g_strdup (self->prompt);
  device = self->device;
  GST_OBJECT_UNLOCK (self);

  if (!gst_dsocr_model_check_device (GST_ELEMENT (self), device))
    goto failed;
  if (!location || !*location) {
    g_free (location);
    location = g_strdup (dsocr_ocr_default_model_dir ());
  }
  t0 = gst_util_get_timestamp ();
  self->model = gst_dsocr_model_cache_acquire (location,
      GST_DSOCR_MODEL_PART_OCR, &shared, &err);
  if (!self->model) {
    gst_dsocr_model_post_error (GST_ELEMENT (self), location, err);
    goto failed;
  }
  /* a bad prompt fails now rather than on the first frame */
  check = dsocr_ocr_prompt_new (gst_dsocr_model_get_ocr (self->model), prompt, 1,
      &err);
  if (!check) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The prompt property is not usable: %s", err->message), (NULL));
    goto failed;
  }
  dsocr_ocr_prompt_free (check);
  gst_dsocr_model_post_loaded (GST_ELEMENT (self), self->model,
      GST_DSOCR_MODEL_PART_OCR, shared, gst_util_get_timestamp () - t0);
  g_free (prompt);
  g_free (location);
  return TRUE;

failed:
  g_clear_error (&err);
  g_clear_pointer (&self->model, gst_dsocr_model_unref);
  g_free (prompt);
  g_free (location);
  return FALSE;
}

static void
gst_dsocr_decode_close (GstDsocrDecode * self)
{
  g_clear_pointer (&self->model, gst_dsocr_model_unref);
}

/* ---- generation (worker thread) ---- */

typedef struct
{
  GstDsocrDecode *self;
  guint n_tokens;
} TokenCount;

static gboolean
on_token (int32_t token, const char *text, gsize len, gpointer user_data)
{
  TokenCount *count = user_data;

  count->n_tokens++;
  return !g_atomic_int_get (&count->self->cancel);
}

/* The OCR parameters of the properties, read once per frame; @prompt receives the prompt
 * text they point to (transfer full). */
static void
gst_dsocr_decode_get_params (GstDsocrDecode * self, dsocr_ocr_params * p,
    gchar ** prompt, gboolean * post_messages)
{
  dsocr_ocr_params_init (p);
  GST_OBJECT_LOCK (self);
  *prompt = g_strdup (self->prompt ? self->prompt : "");
  p->max_new_tokens = self->max_new_tokens;
  if (self->ngram_size == 0) {
    p->ngram_guard = DSOCR_NGRAM_GUARD_NONE;
  } else if (self->ngram_window == 0) {
    p->ngram_guard = DSOCR_NGRAM_GUARD_HF;
    p->ngram_size = self->ngram_size;
  } else {
    p->ngram_guard = DSOCR_NGRAM_GUARD_WINDOW;
    p->ngram_size = self->ngram_size;
    p->ngram_window = self->ngram_window;
  }
  p->n_threads = self->n_threads;
  *post_messages = self->post_messages;
  GST_OBJECT_UNLOCK (self);
  p->prompt = *prompt;
}

/* Posts "dsocr-result" for @buffer's result @fields. */
static void
gst_dsocr_decode_post_result (GstDsocrDecode * self, GstBuffer * buffer,
    const GstStructure * fields, GstClockTime took)
{
  GstStructure *s = gst_structure_copy (fields);

  gst_structure_set_name (s, "dsocr-result");
  gst_structure_set (s, "timestamp", G_TYPE_UINT64, GST_BUFFER_PTS (buffer),
      "inference-time", G_TYPE_UINT64, took, NULL);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
}

/* Remembers the generation time; posts a latency message when the longest grew. */
static void
gst_dsocr_decode_note_time (GstDsocrDecode * self, GstClockTime took)
{
  gboolean post = FALSE;

  GST_OBJECT_LOCK (self);
  if (took > self->longest) {
    self->longest = took;
    /* not for every few percent: each message makes the pipeline reconfigure */
    if (self->latency == 0 && took > self->latency_posted + self->latency_posted / 4) {
      self->latency_posted = took;
      post = TRUE;
    }
  }
  GST_OBJECT_UNLOCK (self);
  if (post)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
}

/* Recognises @item and attaches the result. GST_FLOW_OK, GST_FLOW_FLUSHING when cancelled,
 * GST_FLOW_ERROR after posting an error. */
static GstFlowReturn
gst_dsocr_decode_recognize (GstDsocrDecode * self, Item * item)
{
  dsocr_ocr_params params;
  dsocr_result *res;
  TokenCount count = { self, 0 };
  GstStructure *fields;
  GError *err = NULL;
  gchar *prompt;
  gboolean post_messages;
  gint w, h;
  GstClockTime t0 = gst_util_get_timestamp (), took;

  gst_dsocr_decode_get_params (self, &params, &prompt, &post_messages);
  if (item->page >= 1)
    params.result.page = item->page - 1;
  res = dsocr_ocr_generate (gst_dsocr_model_get_ocr (self->model),
      item->emb->emb, NULL, &params, on_token, &count, &err);
  g_free (prompt);
  if (g_atomic_int_get (&self->cancel)) {
    dsocr_result_free (res);
    g_clear_error (&err);
    return GST_FLOW_FLUSHING;
  }
  if (!res)
    goto failed;

  /* the boxes are in the size of the frame the views were made from; a scaler in between
   * changed it: map them to this frame */
  dsocr_ocr_embeddings_get_image_size (item->emb->emb, &w, &h);
  if (w != item->width || h != item->height) {
    dsocr_result *scaled =
        dsocr_result_new_from_text (dsocr_result_get_raw_text (res),
        item->width, item->height, &params.result, &err);

    if (!scaled) {
      dsocr_result_free (res);
      goto failed;
    }
    dsocr_result_set_flag (scaled, dsocr_result_get_flags (res), TRUE);
    dsocr_result_free (res);
    res = scaled;
  }

  fields = gst_dsocr_result_fields_new (res, count.n_tokens, item->page);
  gst_buffer_add_dsocr_result_meta (item->buffer, fields);
  gst_buffer_add_dsocr_regions (item->buffer, res);
  dsocr_result_free (res);

  /* kept for the unchanged frames that follow */
  gst_clear_buffer (&self->last_result);
  self->last_result = gst_buffer_new ();
  gst_dsocr_copy_result_metas (self->last_result, item->buffer);

  took = gst_util_get_timestamp () - t0;
  GST_DEBUG_OBJECT (self, "%u tokens in %" GST_TIME_FORMAT, count.n_tokens,
      GST_TIME_ARGS (took));
  gst_dsocr_decode_note_time (self, took);
  if (post_messages)
    gst_dsocr_decode_post_result (self, item->buffer, fields, took);
  gst_structure_free (fields);
  return GST_FLOW_OK;

failed:
  if (g_error_matches (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM))
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("Not enough memory to recognise a frame."), ("%s", err->message));
  else
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Could not recognise a frame: %s", err->message), (NULL));
  g_clear_error (&err);
  return GST_FLOW_ERROR;
}

/* Copies the last result onto an unchanged frame, marked as reused. */
static void
gst_dsocr_decode_reuse (GstDsocrDecode * self, Item * item)
{
  GstCustomMeta *meta;

  if (!self->last_result)
    return;
  gst_dsocr_copy_result_metas (item->buffer, self->last_result);
  meta = gst_buffer_get_custom_meta (item->buffer, GST_DSOCR_RESULT_META_NAME);
  if (meta)
    gst_structure_set (gst_custom_meta_get_structure (meta), "reused",
        G_TYPE_BOOLEAN, TRUE, NULL);
}

static GstFlowReturn
gst_dsocr_decode_process (GstDsocrDecode * self, Item * item)
{
  GstFlowReturn ret = GST_FLOW_OK;
  GstBuffer *buf;

  switch (item->kind) {
    case ITEM_EVENT:
      gst_pad_push_event (self->srcpad, g_steal_pointer (&item->event));
      return GST_FLOW_OK;
    case ITEM_RECOGNIZE:
      ret = gst_dsocr_decode_recognize (self, item);
      break;
    case ITEM_REUSE:
      gst_dsocr_decode_reuse (self, item);
      break;
    case ITEM_PASS:
      break;
  }
  if (ret != GST_FLOW_OK)
    return ret;
  buf = g_steal_pointer (&item->buffer);
  return gst_pad_push (self->srcpad, buf);
}

static void
gst_dsocr_decode_loop (GstDsocrDecode * self)
{
  GstFlowReturn ret;
  Item *item;

  g_mutex_lock (&self->qlock);
  while (!self->flushing && g_queue_is_empty (&self->items))
    g_cond_wait (&self->qcond, &self->qlock);
  if (self->flushing) {
    g_mutex_unlock (&self->qlock);
    gst_pad_pause_task (self->srcpad);
    return;
  }
  item = g_queue_pop_head (&self->items);
  if (item->kind != ITEM_EVENT)
    self->n_frames--;
  self->busy = TRUE;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);

  ret = gst_dsocr_decode_process (self, item);
  item_free (item);

  g_mutex_lock (&self->qlock);
  self->busy = FALSE;
  if (ret != GST_FLOW_OK && self->srcresult == GST_FLOW_OK)
    self->srcresult = ret;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);

  if (ret == GST_FLOW_OK)
    return;
  GST_DEBUG_OBJECT (self, "pausing: %s", gst_flow_get_name (ret));
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    if (ret != GST_FLOW_ERROR)  /* recognition errors were posted already */
      GST_ELEMENT_FLOW_ERROR (self, ret);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
  gst_pad_pause_task (self->srcpad);
}

/* ---- queueing (streaming thread) ---- */

/* Drops the oldest queued frame. Called with qlock held and at least one frame queued. */
static void
gst_dsocr_decode_drop_oldest (GstDsocrDecode * self)
{
  GList *l;

  for (l = self->items.head; l; l = l->next) {
    Item *item = l->data;
    GList *n;

    if (item->kind == ITEM_EVENT)
      continue;
    /* a frame reusing this one's result must be recognised itself */
    if (item->kind == ITEM_RECOGNIZE) {
      for (n = l->next; n; n = n->next) {
        Item *next = n->data;

        if (next->kind == ITEM_RECOGNIZE)
          break;
        if (next->kind == ITEM_REUSE) {
          next->kind = ITEM_RECOGNIZE;
          next->emb = g_steal_pointer (&item->emb);
          break;
        }
      }
    }
    GST_DEBUG_OBJECT (self, "dropping the queued frame at %" GST_TIME_FORMAT,
        GST_TIME_ARGS (GST_BUFFER_PTS (item->buffer)));
    g_queue_delete_link (&self->items, l);
    item_free (item);
    self->n_frames--;
    return;
  }
}

/* Queues @item (transfer full), waiting for room as the leaky setting says. */
static GstFlowReturn
gst_dsocr_decode_enqueue (GstDsocrDecode * self, Item * item)
{
  GstFlowReturn ret;

  g_mutex_lock (&self->qlock);
  for (;;) {
    guint max_pending;
    GstDsocrDecodeLeaky leaky;

    if (self->flushing || self->srcresult != GST_FLOW_OK) {
      ret = self->flushing ? GST_FLOW_FLUSHING : self->srcresult;
      g_mutex_unlock (&self->qlock);
      item_free (item);
      return ret;
    }
    if (item->kind == ITEM_EVENT)
      break;
    GST_OBJECT_LOCK (self);
    max_pending = self->max_pending;
    leaky = self->leaky;
    GST_OBJECT_UNLOCK (self);
    if (self->n_frames < max_pending)
      break;
    if (leaky == GST_DSOCR_DECODE_LEAKY_UPSTREAM) {
      GST_DEBUG_OBJECT (self, "queue full, dropping the frame at %"
          GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (item->buffer)));
      g_mutex_unlock (&self->qlock);
      item_free (item);
      return GST_FLOW_OK;
    }
    if (leaky == GST_DSOCR_DECODE_LEAKY_DOWNSTREAM) {
      gst_dsocr_decode_drop_oldest (self);
      continue;
    }
    g_cond_wait (&self->qcond, &self->qlock);
  }
  g_queue_push_tail (&self->items, item);
  if (item->kind != ITEM_EVENT)
    self->n_frames++;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);
  return GST_FLOW_OK;
}

/* Whether the page of @tiles differs from the last recognised one; remembers it if so. */
static gboolean
gst_dsocr_decode_page_changed (GstDsocrDecode * self, GstDsocrTilesMeta * tiles,
    gdouble threshold)
{
  gfloat sig[G_N_ELEMENTS (self->last_sig)];
  gdouble diff = 0;
  guint i;

  if (!tiles)
    return TRUE;
  gst_dsocr_tiles_signature (tiles->tiles, sig);
  if (self->have_sig) {
    for (i = 0; i < G_N_ELEMENTS (sig); i++)
      diff += fabs (sig[i] - self->last_sig[i]);
    diff /= G_N_ELEMENTS (sig);
    GST_LOG_OBJECT (self, "page difference %.2f", diff);
    if (diff <= threshold)
      return FALSE;
  }
  memcpy (self->last_sig, sig, sizeof sig);
  self->have_sig = TRUE;
  return TRUE;
}

static GstFlowReturn
gst_dsocr_decode_chain (GstPad * pad, GstObject * parent, GstBuffer * buffer)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (parent);
  GstDsocrEmbeddingsMeta *em = gst_buffer_get_dsocr_embeddings_meta (buffer);
  GstCustomMeta *page_meta;
  guint interval;
  gboolean skip_unchanged;
  gdouble threshold;
  Item *item;

  if (!em)
    goto no_embeddings;

  GST_OBJECT_LOCK (self);
  interval = self->interval;
  skip_unchanged = self->skip_unchanged;
  threshold = self->change_threshold;
  GST_OBJECT_UNLOCK (self);

  item = g_new0 (Item, 1);
  item->width = self->width;
  item->height = self->height;
  item->page = -1;
  page_meta = gst_buffer_get_custom_meta (buffer, "DsocrPageMeta");
  if (page_meta)
    gst_structure_get_int (gst_custom_meta_get_structure (page_meta), "page",
        &item->page);

  if (self->have_recognized && self->since_recognized < interval) {
    item->kind = ITEM_PASS;
    self->since_recognized++;
  } else if (skip_unchanged && self->have_recognized &&
      !gst_dsocr_decode_page_changed (self,
          gst_buffer_get_dsocr_tiles_meta (buffer), threshold)) {
    item->kind = ITEM_REUSE;
    self->since_recognized = 0;
  } else {
    if (skip_unchanged && !self->have_recognized)
      gst_dsocr_decode_page_changed (self,
          gst_buffer_get_dsocr_tiles_meta (buffer), threshold);
    item->kind = ITEM_RECOGNIZE;
    item->emb = gst_dsocr_embeddings_ref (em->embeddings);
    self->have_recognized = TRUE;
    self->since_recognized = 0;
  }
  item->buffer = gst_buffer_make_writable (buffer);
  return gst_dsocr_decode_enqueue (self, item);

  /* ERRORS */
no_embeddings:
  {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("A frame arrived without vision embeddings: put dsocrpreprocess and "
            "dsocrencode before dsocrdecode."), (NULL));
    return GST_FLOW_ERROR;
  }
}

/* Waits until every queued item went downstream. FALSE when flushing. */
static gboolean
gst_dsocr_decode_wait_drained (GstDsocrDecode * self)
{
  gboolean ok;

  g_mutex_lock (&self->qlock);
  while (!self->flushing && self->srcresult == GST_FLOW_OK &&
      (!g_queue_is_empty (&self->items) || self->busy))
    g_cond_wait (&self->qcond, &self->qlock);
  ok = !self->flushing;
  g_mutex_unlock (&self->qlock);
  return ok;
}

static void
gst_dsocr_decode_reset_stream (GstDsocrDecode * self)
{
  self->since_recognized = 0;
  self->have_recognized = FALSE;
  self->have_sig = FALSE;
}

static gboolean
gst_dsocr_decode_start_task (GstDsocrDecode * self)
{
  return gst_pad_start_task (self->srcpad,
      (GstTaskFunction) gst_dsocr_decode_loop, self, NULL);
}

/* Stops the worker: cancels the generation in progress and wakes every waiter. */
static void
gst_dsocr_decode_set_flushing (GstDsocrDecode * self)
{
  g_mutex_lock (&self->qlock);
  self->flushing = TRUE;
  self->srcresult = GST_FLOW_FLUSHING;
  g_atomic_int_set (&self->cancel, 1);
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);
}

static void
gst_dsocr_decode_unset_flushing (GstDsocrDecode * self)
{
  g_mutex_lock (&self->qlock);
  gst_dsocr_decode_clear_queue (self);
  self->flushing = FALSE;
  self->srcresult = GST_FLOW_OK;
  g_atomic_int_set (&self->cancel, 0);
  g_mutex_unlock (&self->qlock);
}

static gboolean
gst_dsocr_decode_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (parent);
  Item *item;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      /* downstream first, so that a push in progress returns at once */
      gst_pad_push_event (self->srcpad, event);
      gst_dsocr_decode_set_flushing (self);
      gst_pad_pause_task (self->srcpad);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:{
      GstCaps *caps, *src_caps;

      gst_dsocr_decode_unset_flushing (self);
      gst_dsocr_decode_reset_stream (self);
      gst_clear_buffer (&self->last_result);
      gst_pad_push_event (self->srcpad, event);
      /* caps that were still queued went with the flush: send the current ones again */
      caps = gst_pad_get_current_caps (self->sinkpad);
      src_caps = gst_pad_get_current_caps (self->srcpad);
      if (caps && (!src_caps || !gst_caps_is_equal (caps, src_caps))) {
        item = g_new0 (Item, 1);
        item->kind = ITEM_EVENT;
        item->event = gst_event_new_caps (caps);
        gst_dsocr_decode_enqueue (self, item);
      }
      gst_clear_caps (&caps);
      gst_clear_caps (&src_caps);
      return gst_dsocr_decode_start_task (self);
    }
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      GstVideoInfo info;

      /* frames queued before keep their size; the ones after take this one */
      gst_event_parse_caps (event, &caps);
      if (gst_video_info_from_caps (&info, caps)) {
        self->width = GST_VIDEO_INFO_WIDTH (&info);
        self->height = GST_VIDEO_INFO_HEIGHT (&info);
      } else {
        GstStructure *s = gst_caps_get_structure (caps, 0);

        if (!gst_structure_get_int (s, "width", &self->width) ||
            !gst_structure_get_int (s, "height", &self->height)) {
          GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
              ("The frames' caps give no size."), ("%" GST_PTR_FORMAT, caps));
          gst_event_unref (event);
          return FALSE;
        }
      }
      break;
    }
    case GST_EVENT_STREAM_START:
      gst_dsocr_decode_reset_stream (self);
      break;
    default:
      break;
  }

  if (!GST_EVENT_IS_SERIALIZED (event))
    return gst_pad_push_event (self->srcpad, event);

  item = g_new0 (Item, 1);
  item->kind = ITEM_EVENT;
  item->event = event;
  return gst_dsocr_decode_enqueue (self, item) == GST_FLOW_OK;
}

static gboolean
gst_dsocr_decode_sink_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (parent);

  /* a serialized query must see downstream as the frames queued before it will */
  if (GST_QUERY_IS_SERIALIZED (query) && !gst_dsocr_decode_wait_drained (self))
    return FALSE;
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_dsocr_decode_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (parent);

  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GstClockTime min, max, ours;
    gboolean live;
    guint pending;

    if (!gst_pad_peer_query (self->sinkpad, query))
      return FALSE;
    gst_query_parse_latency (query, &live, &min, &max);
    GST_OBJECT_LOCK (self);
    ours = self->latency ? self->latency : self->longest;
    pending = self->max_pending;
    GST_OBJECT_UNLOCK (self);
    /* a frame may wait for the frames queued before it and the one in progress */
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += ours * (pending + 1);
    GST_DEBUG_OBJECT (self, "latency: live %d, min %" GST_TIME_FORMAT ", max %"
        GST_TIME_FORMAT, live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
    gst_query_set_latency (query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_dsocr_decode_change_state (GstElement * element, GstStateChange transition)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!gst_dsocr_decode_open (self))
        return GST_STATE_CHANGE_FAILURE;
      gst_dsocr_decode_unset_flushing (self);
      gst_dsocr_decode_reset_stream (self);
      self->width = self->height = 0;
      GST_OBJECT_LOCK (self);
      self->longest = 0;
      self->latency_posted = 0;
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_dsocr_decode_set_flushing (self);
      gst_pad_stop_task (self->srcpad);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (ret == GST_STATE_CHANGE_FAILURE || !gst_dsocr_decode_start_task (self)) {
        gst_dsocr_decode_set_flushing (self);
        gst_pad_stop_task (self->srcpad);
        gst_dsocr_decode_close (self);
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      g_mutex_lock (&self->qlock);
      gst_dsocr_decode_clear_queue (self);
      g_mutex_unlock (&self->qlock);
      gst_clear_buffer (&self->last_result);
      gst_dsocr_decode_close (self);
      break;
    default:
      break;
  }
  return ret;
}
