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
 * The model (#GstDsocrModelElement:model-location) is loaded at READY to PAUSED and shared
 * with the other elements naming its directory (dsocrencode maps the same checkpoint),
 * through a "dsocr.model" #GstContext or the process-wide cache. Generation computes on the
 * element's own thread pool (#GstDsocrModelElement:n-threads), made at READY to PAUSED
 * and kept for every frame: each frame gets a fresh decoder session (its KV cache) on it.
 * The decoder's weights are prepared at READY to PAUSED for the device and
 * #GstDsocrModelElement:precision (q8 and q4 quantize its matrices then, once per model,
 * device and precision, not on the first frame); the "dsocr-model" message gives their size.
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

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_decode_debug);
#define GST_CAT_DEFAULT gst_dsocr_decode_debug

#define DEFAULT_PROMPT DSOCR_OCR_DEFAULT_PROMPT
/* the transformers reference (infer()): 8192 new tokens, no_repeat_ngram_size 20 over the
 * whole sequence */
#define DEFAULT_MAX_NEW_TOKENS DSOCR_OCR_MAX_NEW_TOKENS
#define DEFAULT_NGRAM_SIZE DSOCR_OCR_NGRAM_HF
#define DEFAULT_NGRAM_WINDOW 0
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
  PROP_PROMPT,
  PROP_MAX_NEW_TOKENS,
  PROP_NGRAM_SIZE,
  PROP_NGRAM_WINDOW,
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
  GstDsocrModelElement parent;

  /* properties, under the object lock */
  gchar *prompt;
  guint max_new_tokens;
  guint ngram_size;
  guint ngram_window;
  guint max_pending;
  GstDsocrDecodeLeaky leaky;
  guint interval;
  gboolean skip_unchanged;
  gdouble change_threshold;
  GstClockTime latency;
  gboolean post_messages;
  GstClockTime longest;         /* longest generation so far (object lock) */
  GstClockTime latency_posted;  /* what the last latency message was for */

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
G_DEFINE_TYPE (GstDsocrDecode, gst_dsocr_decode, GST_TYPE_DSOCR_MODEL_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (dsocrdecode, "dsocrdecode", GST_RANK_NONE,
    GST_TYPE_DSOCR_DECODE);

static void gst_dsocr_decode_finalize (GObject * object);
static void gst_dsocr_decode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_dsocr_decode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static GstStateChangeReturn gst_dsocr_decode_change_state (GstElement *
    element, GstStateChange transition);
static gboolean gst_dsocr_decode_start (GstDsocrModelElement * base);
static GstFlowReturn gst_dsocr_decode_process (GstDsocrModelElement * base,
    GstBuffer * buffer);
static gboolean gst_dsocr_decode_sink_event (GstDsocrModelElement * base,
    GstEvent * event);
static gboolean gst_dsocr_decode_sink_query (GstDsocrModelElement * base,
    GstQuery * query);
static void gst_dsocr_decode_get_latency (GstDsocrModelElement * base,
    GstClockTime * min, GstClockTime * max);
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
  GstDsocrModelElementClass *model_class = GST_DSOCR_MODEL_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_dsocr_decode_debug, "dsocrdecode", 0,
      "DeepSeek-OCR generation");

  gobject_class->finalize = gst_dsocr_decode_finalize;
  gobject_class->set_property = gst_dsocr_decode_set_property;
  gobject_class->get_property = gst_dsocr_decode_get_property;

  /**
   * GstDsocrDecode:prompt:
   *
   * The request, with exactly one "<image>" where the page's embeddings go; the text is
   * stripped and encoded as the reference's infer() does. Checked against the model at
   * READY to PAUSED; may change while playing (from the next frame; a prompt without
   * exactly one "<image>" then fails that frame).
   */
  g_object_class_install_property (gobject_class, PROP_PROMPT,
      g_param_spec_string ("prompt", "Prompt",
          "The request, with exactly one <image> where the page goes. Checked at READY "
          "to PAUSED; may change while playing (from the next frame)", DEFAULT_PROMPT,
          rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:max-new-tokens:
   *
   * Most tokens generated for one frame, 1 to G_MAXINT (8192: the reference's
   * max_new_tokens); a page cut there gets the hit-token-limit flag. As in the reference,
   * the model's max_position_embeddings is not enforced. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_MAX_NEW_TOKENS,
      g_param_spec_uint ("max-new-tokens", "Maximum new tokens",
          "Most tokens generated for one frame; a page cut there is flagged "
          "hit-token-limit. May change while playing (from the next frame)",
          1, G_MAXINT, DEFAULT_MAX_NEW_TOKENS, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:no-repeat-ngram-size:
   *
   * The n-gram guard: a token that would repeat an n-gram of this many tokens is banned
   * (0 turns the guard off; at most 1024). 20 is the reference's infer(); the vLLM scripts
   * use 30 with #GstDsocrDecode:no-repeat-ngram-window 90. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_NGRAM_SIZE,
      g_param_spec_uint ("no-repeat-ngram-size", "No-repeat n-gram size",
          "Ban tokens that would repeat an n-gram of this many tokens (0 = off). May "
          "change while playing (from the next frame)", 0,
          1024, DEFAULT_NGRAM_SIZE, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:no-repeat-ngram-window:
   *
   * Where the guard looks for n-grams: 0, in the whole prompt and output (transformers'
   * no_repeat_ngram_size, the HF reference); N, in the last N generated tokens only, with
   * "<td>" and "</td>" exempt (DeepSeek-OCR's vLLM guard, N = 90). In tokens. May change
   * while playing.
   */
  g_object_class_install_property (gobject_class, PROP_NGRAM_WINDOW,
      g_param_spec_uint ("no-repeat-ngram-window", "No-repeat n-gram window",
          "0: n-grams of the whole prompt and output (transformers); N: of the last N "
          "generated tokens, <td> and </td> exempt (DeepSeek-OCR's vLLM guard). May "
          "change while playing (from the next frame)", 0,
          G_MAXINT, DEFAULT_NGRAM_WINDOW, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:max-pending:
   *
   * Frames that may wait for the generation thread, 1 to 1024. When that many wait, the
   * next frame blocks upstream or, with #GstDsocrDecode:leaky, a frame is dropped. Also
   * bounds the maximum latency reported. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_MAX_PENDING,
      g_param_spec_uint ("max-pending", "Maximum pending frames",
          "Frames waiting for the generation thread before upstream blocks or frames "
          "are dropped (leaky). May change while playing",
          1, 1024, DEFAULT_MAX_PENDING, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:leaky:
   *
   * What a frame that finds #GstDsocrDecode:max-pending frames waiting does: none blocks
   * upstream until there is room, upstream drops the arriving frame, downstream drops the
   * oldest waiting frame (live sources: the freshest pages are recognised). Dropped
   * frames do not go downstream. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_LEAKY,
      g_param_spec_enum ("leaky", "Leaky",
          "What a full queue does: none blocks upstream, upstream drops the arriving "
          "frame, downstream the oldest waiting one (for live sources). May change while "
          "playing", GST_TYPE_DSOCR_DECODE_LEAKY, DEFAULT_LEAKY,
          rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:interval:
   *
   * Frames passed on unrecognised (without a result) after each recognised one: 0
   * recognises every frame, N every (N + 1)-th. Counted again from the start of each
   * stream and after a flush. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Frames passed on without recognition after each recognised one (0 = "
          "recognise every frame). May change while playing", 0,
          G_MAXINT, DEFAULT_INTERVAL, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:skip-unchanged:
   *
   * Whether a frame whose page did not change since the last recognised one (see
   * #GstDsocrDecode:change-threshold) gets that result again, marked reused=TRUE,
   * instead of being recognised. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_SKIP_UNCHANGED,
      g_param_spec_boolean ("skip-unchanged", "Skip unchanged",
          "Give a frame whose page did not change (change-threshold) the last result, "
          "marked reused, instead of recognising it. May change while playing",
          DEFAULT_SKIP_UNCHANGED, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:change-threshold:
   *
   * With #GstDsocrDecode:skip-unchanged: the mean absolute grey-level difference, 0 to
   * 255, between 16x16 thumbnails of the global views of a frame and of the last
   * recognised one above which the page counts as changed. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_CHANGE_THRESHOLD,
      g_param_spec_double ("change-threshold", "Change threshold",
          "With skip-unchanged: mean grey-level difference (0-255) of 16x16 thumbnails "
          "above which a page counts as changed. May change while playing", 0.0, 255.0,
          DEFAULT_CHANGE_THRESHOLD, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:latency:
   *
   * The processing latency to report, in nanoseconds: added to the minimum latency, and
   * (max-pending + 1) times to the maximum. 0 reports the longest generation so far, and
   * a latency message is posted when that grows by a quarter. May change while playing
   * (the next latency query sees it).
   */
  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint64 ("latency", "Latency",
          "Processing latency to report, in nanoseconds (0 = the longest generation "
          "so far, updated as it grows). May change while playing", 0, G_MAXUINT64,
          DEFAULT_LATENCY, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsocrDecode:post-messages:
   *
   * Whether to post a "dsocr-result" element message (the result fields, timestamp,
   * inference-time) for every recognised frame. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a dsocr-result element message for every recognised frame. May change "
          "while playing", DEFAULT_POST_MESSAGES, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-OCR decoder", "Filter/Analyzer/Video",
      "Generates the text of each frame's page with DeepSeek-OCR and attaches markdown, "
      "JSON and grounding boxes", "gst-dsocr");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_dsocr_decode_change_state);

  model_class->parts = GST_DSOCR_MODEL_PART_OCR;
  model_class->default_model = TRUE;
  model_class->start = GST_DEBUG_FUNCPTR (gst_dsocr_decode_start);
  model_class->process = GST_DEBUG_FUNCPTR (gst_dsocr_decode_process);
  model_class->sink_event = GST_DEBUG_FUNCPTR (gst_dsocr_decode_sink_event);
  model_class->sink_query = GST_DEBUG_FUNCPTR (gst_dsocr_decode_sink_query);
  model_class->get_latency = GST_DEBUG_FUNCPTR (gst_dsocr_decode_get_latency);

  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DECODE_LEAKY, 0);
  gst_dsocr_meta_register ();
}

static void
gst_dsocr_decode_init (GstDsocrDecode * self)
{
  self->prompt = g_strdup (DEFAULT_PROMPT);
  self->max_new_tokens = DEFAULT_MAX_NEW_TOKENS;
  self->ngram_size = DEFAULT_NGRAM_SIZE;
  self->ngram_window = DEFAULT_NGRAM_WINDOW;
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

/* A bad prompt fails the start rather than the first frame; the decoder's weights are
 * prepared for the element's device and precision now (q8 / q4 quantize them), not by the
 * first frame. */
static gboolean
gst_dsocr_decode_start (GstDsocrModelElement * base)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (base);
  dsocr_ocr *ocr = gst_dsocr_model_get_ocr (gst_dsocr_model_element_get_model (base));
  dsocr_precision precision = gst_dsocr_model_element_get_precision (base);
  dsocr_ocr_prompt *check;
  GError *err = NULL;
  gchar *prompt;
  gsize decoder_bytes = 0;
  GstClockTime t0;

  GST_OBJECT_LOCK (self);
  prompt = g_strdup (self->prompt);
  GST_OBJECT_UNLOCK (self);
  check = dsocr_ocr_prompt_new (ocr, prompt, 1, &err);
  g_free (prompt);
  if (!check) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The prompt property is not usable: %s", err->message), (NULL));
    g_clear_error (&err);
    return FALSE;
  }
  dsocr_ocr_prompt_free (check);

  t0 = gst_util_get_timestamp ();
  if (!dsocr_ocr_prepare (ocr, gst_dsocr_model_element_get_backend (base), precision,
          &decoder_bytes, NULL, &err)) {
    gst_dsocr_model_element_post_prepare_error (base, "decoder", err);
    g_clear_error (&err);
    return FALSE;
  }
  GST_DEBUG_OBJECT (self, "decoder weights prepared in %" GST_TIME_FORMAT,
      GST_TIME_ARGS (gst_util_get_timestamp () - t0));
  gst_dsocr_model_element_set_weights (base, "decoder", TRUE, decoder_bytes);
  return TRUE;
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
  *post_messages = self->post_messages;
  GST_OBJECT_UNLOCK (self);
  p->prompt = *prompt;
  /* the element's pool, kept between pages: a page starts no threads */
  p->backend = gst_dsocr_model_element_get_backend (GST_DSOCR_MODEL_ELEMENT (self));
  /* the weights prepared at start */
  p->precision = gst_dsocr_model_element_get_precision (GST_DSOCR_MODEL_ELEMENT (self));
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
  res = dsocr_ocr_generate (gst_dsocr_model_get_ocr
      (gst_dsocr_model_element_get_model (GST_DSOCR_MODEL_ELEMENT (self))),
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
gst_dsocr_decode_handle_item (GstDsocrDecode * self, Item * item)
{
  GstPad *srcpad = GST_DSOCR_MODEL_ELEMENT_SRC_PAD (self);
  GstFlowReturn ret = GST_FLOW_OK;
  GstBuffer *buf;

  switch (item->kind) {
    case ITEM_EVENT:
      gst_pad_push_event (srcpad, g_steal_pointer (&item->event));
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
  return gst_pad_push (srcpad, buf);
}

static void
gst_dsocr_decode_loop (GstDsocrDecode * self)
{
  GstPad *srcpad = GST_DSOCR_MODEL_ELEMENT_SRC_PAD (self);
  GstFlowReturn ret;
  Item *item;

  g_mutex_lock (&self->qlock);
  while (!self->flushing && g_queue_is_empty (&self->items))
    g_cond_wait (&self->qcond, &self->qlock);
  if (self->flushing) {
    g_mutex_unlock (&self->qlock);
    gst_pad_pause_task (srcpad);
    return;
  }
  item = g_queue_pop_head (&self->items);
  if (item->kind != ITEM_EVENT)
    self->n_frames--;
  self->busy = TRUE;
  g_cond_broadcast (&self->qcond);
  g_mutex_unlock (&self->qlock);

  ret = gst_dsocr_decode_handle_item (self, item);
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
    gst_pad_push_event (srcpad, gst_event_new_eos ());
  }
  gst_pad_pause_task (srcpad);
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

/* Queues a frame for the worker (transfer full), deciding now whether it is to be
 * recognised, given the last result, or passed on. */
static GstFlowReturn
gst_dsocr_decode_process (GstDsocrModelElement * base, GstBuffer * buffer)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (base);
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
  return gst_pad_start_task (GST_DSOCR_MODEL_ELEMENT_SRC_PAD (self),
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

/* Events keep their place among the frames: the serialized ones go through the queue. */
static gboolean
gst_dsocr_decode_sink_event (GstDsocrModelElement * base, GstEvent * event)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (base);
  GstPad *srcpad = GST_DSOCR_MODEL_ELEMENT_SRC_PAD (self);
  Item *item;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      /* downstream first, so that a push in progress returns at once */
      gst_pad_push_event (srcpad, event);
      gst_dsocr_decode_set_flushing (self);
      gst_pad_pause_task (srcpad);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:{
      GstCaps *caps, *src_caps;

      gst_dsocr_decode_unset_flushing (self);
      gst_dsocr_decode_reset_stream (self);
      gst_clear_buffer (&self->last_result);
      gst_pad_push_event (srcpad, event);
      /* caps that were still queued went with the flush: send the current ones again */
      caps = gst_pad_get_current_caps (GST_DSOCR_MODEL_ELEMENT_SINK_PAD (self));
      src_caps = gst_pad_get_current_caps (srcpad);
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
    return gst_pad_push_event (srcpad, event);

  item = g_new0 (Item, 1);
  item->kind = ITEM_EVENT;
  item->event = event;
  return gst_dsocr_decode_enqueue (self, item) == GST_FLOW_OK;
}

static gboolean
gst_dsocr_decode_sink_query (GstDsocrModelElement * base, GstQuery * query)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (base);

  /* a serialized query must see downstream as the frames queued before it will */
  if (GST_QUERY_IS_SERIALIZED (query) && !gst_dsocr_decode_wait_drained (self))
    return FALSE;
  return GST_DSOCR_MODEL_ELEMENT_CLASS (parent_class)->sink_query (base, query);
}

/* The generation time, once for the frame itself and, at most, once for every frame that
 * may wait before it and the one in progress. */
static void
gst_dsocr_decode_get_latency (GstDsocrModelElement * base, GstClockTime * min,
    GstClockTime * max)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (base);
  GstClockTime ours;
  guint pending;

  GST_OBJECT_LOCK (self);
  ours = self->latency ? self->latency : self->longest;
  pending = self->max_pending;
  GST_OBJECT_UNLOCK (self);
  *min = ours;
  *max = ours * (pending + 1);
}

static GstStateChangeReturn
gst_dsocr_decode_change_state (GstElement * element, GstStateChange transition)
{
  GstDsocrDecode *self = GST_DSOCR_DECODE (element);
  GstStateChangeReturn ret;

  /* the base class opens the model (READY to PAUSED, before the pads) and releases it
   * (PAUSED to READY, after them); the queue and the worker go around that */
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      gst_dsocr_decode_unset_flushing (self);
      gst_dsocr_decode_reset_stream (self);
      self->width = self->height = 0;
      GST_OBJECT_LOCK (self);
      self->longest = 0;
      self->latency_posted = 0;
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* before the pads: a chain function waiting for room in the queue wakes up */
      gst_dsocr_decode_set_flushing (self);
      gst_pad_stop_task (GST_DSOCR_MODEL_ELEMENT_SRC_PAD (self));
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (ret == GST_STATE_CHANGE_FAILURE) {
        gst_dsocr_decode_set_flushing (self);
        return ret;
      }
      if (!gst_dsocr_decode_start_task (self)) {
        gst_dsocr_decode_set_flushing (self);
        gst_pad_stop_task (GST_DSOCR_MODEL_ELEMENT_SRC_PAD (self));
        /* back to READY: the pads and the model go */
        GST_ELEMENT_CLASS (parent_class)->change_state (element,
            GST_STATE_CHANGE_PAUSED_TO_READY);
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      g_mutex_lock (&self->qlock);
      gst_dsocr_decode_clear_queue (self);
      g_mutex_unlock (&self->qlock);
      gst_clear_buffer (&self->last_result);
      break;
    default:
      break;
  }
  return ret;
}
