/* gstdsclassify.c: dsclassify, labels pages with a DeepSeek-V2 sequence classifier. */

/**
 * SECTION:element-dsclassify
 * @title: dsclassify
 *
 * Classifies the text of each page with a DeepseekV2ForSequenceClassification model: the
 * markdown of the frames recognised by dsocrdecode (their "DsocrResultMeta"), or the text of
 * `text/x-raw, format=utf8` buffers. It attaches the label scores as a #GstCustomMeta
 * "DsocrClassMeta", posts them in a `dsocr-class` element message and, when
 * #GstDsClassify:pass-labels is set, passes on only the pages whose best label is in that
 * list.
 *
 * Video frames that dsocrdecode did not recognise (interval, dropped) pass unclassified, or
 * are dropped when pass-labels is set. A page whose text equals the previous page's reuses
 * its scores.
 *
 * Classification runs on the streaming thread, in one decoder session kept from READY to
 * PAUSED until back to READY, and computes on the element's own thread pool
 * (#GstDsocrModelElement:n-threads), with the weights held at
 * #GstDsocrModelElement:precision (prepared, for q8 and q4 quantized, when the session is
 * made at READY to PAUSED). #GstDsocrModelElement:model-location has no default: it must
 * name the classifier's directory.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=doc.pdf ! dsocrpdfdec ! dsocrpreprocess ! \
 *     dsocrencode model-location=/models/DeepSeek-OCR ! \
 *     dsocrdecode model-location=/models/DeepSeek-OCR ! \
 *     dsclassify model-location=/models/doc-classifier pass-labels=invoice,receipt ! \
 *     dsocrresult format=json ! filesink location=invoices.jsonl
 * ]|
 *
 * Since: 0.1
 */

#include "gstdsclassify.h"

#include <math.h>
#include <string.h>

#include <dsocr/dsocr-classify.h>
#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-session.h>
#include <dsocr/dsocr-tokenizer.h>

#include "gstdsocrelements.h"
#include "gstdsocrmeta.h"
#include "gstdsocrmodelcache.h"

GST_DEBUG_CATEGORY_STATIC (gst_ds_classify_debug);
#define GST_CAT_DEFAULT gst_ds_classify_debug

#define DEFAULT_PASS_LABELS NULL
#define DEFAULT_POOLING GST_DS_CLASSIFY_POOLING_LAST_NON_PAD
#define DEFAULT_MAX_LENGTH 0
#define DEFAULT_POST_MESSAGES TRUE

enum
{
  PROP_0,
  PROP_PASS_LABELS,
  PROP_POOLING,
  PROP_MAX_LENGTH,
  PROP_POST_MESSAGES,
};

struct _GstDsClassify
{
  GstDsocrModelElement parent;

  /* properties, under the object lock */
  gchar **pass_labels;          /* NULL: pass everything */
  GstDsClassifyPooling pooling;
  guint max_length;
  gboolean post_messages;

  /* < private > between start and stop, streaming thread */
  dsocr_session *session;       /* on the element's backend */
  gboolean is_text;             /* text/x-raw input */
  gchar *last_text;             /* the text last classified */
  GstStructure *last_class;     /* and its scores */
};

#define ALLOWED_CAPS "video/x-raw(ANY); text/x-raw, format = (string) utf8"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (ALLOWED_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (ALLOWED_CAPS));

#define gst_ds_classify_parent_class parent_class
G_DEFINE_TYPE (GstDsClassify, gst_ds_classify, GST_TYPE_DSOCR_MODEL_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (dsclassify, "dsclassify", GST_RANK_NONE,
    GST_TYPE_DS_CLASSIFY);

static void gst_ds_classify_finalize (GObject * object);
static void gst_ds_classify_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_ds_classify_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_ds_classify_start (GstDsocrModelElement * base);
static void gst_ds_classify_stop (GstDsocrModelElement * base);
static gboolean gst_ds_classify_set_caps (GstDsocrModelElement * base,
    GstCaps * caps);
static GstFlowReturn gst_ds_classify_process (GstDsocrModelElement * base,
    GstBuffer * buf);

GType
gst_ds_classify_pooling_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DS_CLASSIFY_POOLING_LAST_NON_PAD,
        "Last token that is not padding (transformers)", "last-non-pad"},
    {GST_DS_CLASSIFY_POOLING_BEFORE_FIRST_PAD,
        "Token before the first padding token (hub modeling_deepseekv2.py)",
        "before-first-pad"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsClassifyPooling", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
gst_ds_classify_class_init (GstDsClassifyClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstDsocrModelElementClass *model_class = GST_DSOCR_MODEL_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_ds_classify_debug, "dsclassify", 0,
      "DeepSeek-V2 page classifier");

  gobject_class->finalize = gst_ds_classify_finalize;
  gobject_class->set_property = gst_ds_classify_set_property;
  gobject_class->get_property = gst_ds_classify_get_property;

  /**
   * GstDsClassify:pass-labels:
   *
   * Comma-separated labels (spaces around them and empty items are ignored). When set,
   * only the pages whose best label is one of them go on; the others, and frames that
   * dsocrdecode left without a result, are dropped. Unset or empty: every page goes on.
   * May change while playing; applies from the next page.
   */
  g_object_class_install_property (gobject_class, PROP_PASS_LABELS,
      g_param_spec_string ("pass-labels", "Pass labels",
          "Comma-separated labels: pass on only the pages whose best label is one of "
          "them, drop the others (unset: pass every page). May change while playing",
          DEFAULT_PASS_LABELS, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsClassify:pooling:
   *
   * The token whose hidden state the score head reads: last-non-pad, the last token that
   * is not the padding token (current transformers), or before-first-pad, the token
   * before the first padding token (the hub's modeling_deepseekv2.py). They differ only
   * when the text holds the padding token. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_POOLING,
      g_param_spec_enum ("pooling", "Pooling",
          "Which token the score head reads: last-non-pad (transformers) or "
          "before-first-pad (the hub's modeling_deepseekv2.py). May change while "
          "playing", GST_TYPE_DS_CLASSIFY_POOLING,
          DEFAULT_POOLING, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsClassify:max-length:
   *
   * Tokens of a page read at most, counted from its start (the tokenizer's
   * truncation=True); 0 or more than the model's max_position_embeddings reads up to
   * max_position_embeddings. May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_MAX_LENGTH,
      g_param_spec_uint ("max-length", "Maximum length",
          "Tokens of a page read at most, from its start (0 = the model's context, "
          "max_position_embeddings). May change while playing",
          0, G_MAXINT, DEFAULT_MAX_LENGTH, rw | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDsClassify:post-messages:
   *
   * Whether to post a "dsocr-class" element message for every classified page (its class
   * fields, timestamp and whether it passed). May change while playing.
   */
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a dsocr-class element message for every classified page. May change "
          "while playing", DEFAULT_POST_MESSAGES, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-V2 page classifier", "Filter/Analyzer",
      "Labels the text of recognised pages with a DeepseekV2ForSequenceClassification "
      "model and can pass on only some labels", "gst-dsocr");

  model_class->parts = GST_DSOCR_MODEL_PART_DECODER | GST_DSOCR_MODEL_PART_TOKENIZER;
  model_class->start = GST_DEBUG_FUNCPTR (gst_ds_classify_start);
  model_class->stop = GST_DEBUG_FUNCPTR (gst_ds_classify_stop);
  model_class->set_caps = GST_DEBUG_FUNCPTR (gst_ds_classify_set_caps);
  model_class->process = GST_DEBUG_FUNCPTR (gst_ds_classify_process);

  gst_type_mark_as_plugin_api (GST_TYPE_DS_CLASSIFY_POOLING, 0);
  gst_dsocr_meta_register ();
}

static void
gst_ds_classify_init (GstDsClassify * self)
{
  self->pooling = DEFAULT_POOLING;
  self->max_length = DEFAULT_MAX_LENGTH;
  self->post_messages = DEFAULT_POST_MESSAGES;
}

static void
gst_ds_classify_clear (GstDsClassify * self)
{
  g_clear_pointer (&self->session, dsocr_session_free);
  g_clear_pointer (&self->last_text, g_free);
  g_clear_pointer (&self->last_class, gst_structure_free);
}

static void
gst_ds_classify_finalize (GObject * object)
{
  GstDsClassify *self = GST_DS_CLASSIFY (object);

  gst_ds_classify_clear (self);
  g_strfreev (self->pass_labels);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* "a, b,,c " -> {"a", "b", "c"}; NULL for no label. (transfer full) */
static gchar **
parse_labels (const gchar * list)
{
  gchar **parts, **p;
  GPtrArray *out;

  if (!list)
    return NULL;
  parts = g_strsplit (list, ",", -1);
  out = g_ptr_array_new ();
  for (p = parts; *p; p++) {
    g_strstrip (*p);
    if (**p)
      g_ptr_array_add (out, g_strdup (*p));
  }
  g_strfreev (parts);
  if (!out->len) {
    g_ptr_array_free (out, TRUE);
    return NULL;
  }
  g_ptr_array_add (out, NULL);
  return (gchar **) g_ptr_array_free (out, FALSE);
}

static void
gst_ds_classify_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDsClassify *self = GST_DS_CLASSIFY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_PASS_LABELS:
      g_strfreev (self->pass_labels);
      self->pass_labels = parse_labels (g_value_get_string (value));
      break;
    case PROP_POOLING:
      self->pooling = g_value_get_enum (value);
      break;
    case PROP_MAX_LENGTH:
      self->max_length = g_value_get_uint (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ds_classify_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDsClassify *self = GST_DS_CLASSIFY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_PASS_LABELS:
      g_value_take_string (value, self->pass_labels ?
          g_strjoinv (",", self->pass_labels) : NULL);
      break;
    case PROP_POOLING:
      g_value_set_enum (value, self->pooling);
      break;
    case PROP_MAX_LENGTH:
      g_value_set_uint (value, self->max_length);
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

static gboolean
gst_ds_classify_start (GstDsocrModelElement * base)
{
  GstDsClassify *self = GST_DS_CLASSIFY (base);
  dsocr_model *model =
      gst_dsocr_model_get_decoder (gst_dsocr_model_element_get_model (base));
  const gchar *location = gst_dsocr_model_element_get_location (base);
  dsocr_session_params params;
  GError *err = NULL;

  if (!dsocr_model_has_score_head (model)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The model in %s is not a sequence classifier (it has no score head): set "
            "model-location to a DeepseekV2ForSequenceClassification model.",
            location), (NULL));
    return FALSE;
  }
  dsocr_session_params_init (&params);
  params.backend = gst_dsocr_model_element_get_backend (base);
  params.precision = gst_dsocr_model_element_get_precision (base);
  /* the session prepares the weights for the device and precision (q8 / q4 quantize them)
   * now, not the first page */
  self->session = dsocr_session_new (model, &params, &err);
  if (!self->session) {
    gst_dsocr_model_element_post_prepare_error (base, "classifier", err);
    g_clear_error (&err);
    return FALSE;
  }
  gst_dsocr_model_element_set_weights (base, "classifier", TRUE,
      dsocr_session_get_weight_bytes (self->session));
  return TRUE;
}

static void
gst_ds_classify_stop (GstDsocrModelElement * base)
{
  gst_ds_classify_clear (GST_DS_CLASSIFY (base));
}

static gboolean
gst_ds_classify_set_caps (GstDsocrModelElement * base, GstCaps * caps)
{
  GstDsClassify *self = GST_DS_CLASSIFY (base);

  self->is_text = gst_structure_has_name (gst_caps_get_structure (caps, 0),
      "text/x-raw");
  return TRUE;
}

/* The class structure (GST_DSOCR_CLASS_STRUCTURE_NAME) of @text, or NULL for a text without
 * tokens; FALSE with @error when the model fails. */
static gboolean
gst_ds_classify_run (GstDsClassify * self, const gchar * text,
    GstStructure ** out, GError ** error)
{
  GstDsocrModel *m =
      gst_dsocr_model_element_get_model (GST_DSOCR_MODEL_ELEMENT (self));
  dsocr_model *model = gst_dsocr_model_get_decoder (m);
  const dsocr_config *cfg = dsocr_model_get_config (model);
  gint n_labels = dsocr_model_get_n_labels (model);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  GValue labels = G_VALUE_INIT, scores = G_VALUE_INIT, logits_v = G_VALUE_INIT;
  GstDsClassifyPooling pooling;
  guint max_length;
  dsocr_batch batch = { 0 };
  gfloat *logits = NULL;
  gdouble max_logit, sum = 0;
  gint i, best = 0;
  gboolean ok = FALSE;

  *out = NULL;
  GST_OBJECT_LOCK (self);
  pooling = self->pooling;
  max_length = self->max_length;
  GST_OBJECT_UNLOCK (self);
  if (max_length == 0 || max_length > (guint) cfg->text.max_position_embeddings)
    max_length = cfg->text.max_position_embeddings;

  if (!dsocr_tokenizer_encode (gst_dsocr_model_get_tokenizer (m),
          text, -1, DSOCR_TOKENIZE_ADD_SPECIAL, ids, error))
    goto done;
  if (ids->len == 0) {
    ok = TRUE;
    goto done;
  }
  /* truncation keeps the start of the page, as the tokenizer's truncation=True does */
  if (ids->len > max_length)
    g_array_set_size (ids, max_length);

  logits = g_new (gfloat, n_labels);
  batch.n_seq = 1;
  batch.n_tokens = ids->len;
  batch.ids = (const int32_t *) ids->data;
  if (!dsocr_classify (self->session, &batch,
          pooling == GST_DS_CLASSIFY_POOLING_BEFORE_FIRST_PAD ?
          DSOCR_POOL_BEFORE_FIRST_PAD : DSOCR_POOL_LAST_NON_PAD, logits, NULL,
          error))
    goto done;

  g_value_init (&labels, GST_TYPE_ARRAY);
  g_value_init (&scores, GST_TYPE_ARRAY);
  g_value_init (&logits_v, GST_TYPE_ARRAY);
  max_logit = logits[0];
  for (i = 0; i < n_labels; i++) {
    if (logits[i] > logits[best])
      best = i;
    max_logit = MAX (max_logit, logits[i]);
  }
  for (i = 0; i < n_labels; i++)
    sum += exp (logits[i] - max_logit);
  for (i = 0; i < n_labels; i++) {
    GValue v = G_VALUE_INIT;
    gdouble p;

    /* what the head was trained with: sigmoid per label for multi-label problems */
    if (cfg->problem_type == DSOCR_PROBLEM_MULTI_LABEL)
      p = 1.0 / (1.0 + exp (-(gdouble) logits[i]));
    else if (cfg->problem_type == DSOCR_PROBLEM_REGRESSION)
      p = logits[i];
    else
      p = exp (logits[i] - max_logit) / sum;
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, cfg->id2label[i]);
    gst_value_array_append_and_take_value (&labels, &v);
    g_value_init (&v, G_TYPE_DOUBLE);
    g_value_set_double (&v, p);
    gst_value_array_append_and_take_value (&scores, &v);
    g_value_init (&v, G_TYPE_DOUBLE);
    g_value_set_double (&v, logits[i]);
    gst_value_array_append_and_take_value (&logits_v, &v);
  }
  *out = gst_structure_new (GST_DSOCR_CLASS_STRUCTURE_NAME,
      "label", G_TYPE_STRING, cfg->id2label[best],
      "score", G_TYPE_DOUBLE, g_value_get_double (gst_value_array_get_value
          (&scores, best)), "n-tokens", G_TYPE_UINT, ids->len, NULL);
  gst_structure_take_value (*out, "labels", &labels);
  gst_structure_take_value (*out, "scores", &scores);
  gst_structure_take_value (*out, "logits", &logits_v);
  ok = TRUE;

done:
  g_free (logits);
  g_array_unref (ids);
  return ok;
}

/* The page text of @buf (transfer full), or NULL when it has none. */
static gchar *
gst_ds_classify_page_text (GstDsClassify * self, GstBuffer * buf,
    gboolean * no_decoder)
{
  const GstStructure *result;
  GstMapInfo map;
  gchar *text;

  *no_decoder = FALSE;
  if (self->is_text) {
    if (!gst_buffer_map (buf, &map, GST_MAP_READ))
      return NULL;
    /* the tokenizer takes only valid UTF-8 */
    text = g_utf8_make_valid ((const gchar *) map.data, map.size);
    gst_buffer_unmap (buf, &map);
    return text;
  }
  result = gst_buffer_get_dsocr_result (buf);
  if (result)
    return g_strdup (gst_structure_get_string (result, "markdown"));
  /* frames dsocrdecode skipped still carry the embeddings it read */
  *no_decoder = !gst_buffer_get_dsocr_embeddings_meta (buf);
  return NULL;
}

static gboolean
label_passes (gchar ** pass, const GstStructure * cls)
{
  const gchar *label = cls ? gst_structure_get_string (cls, "label") : NULL;

  if (!pass)
    return TRUE;
  return label && g_strv_contains ((const gchar * const *) pass, label);
}

/* Classifies @buf's page (transfer full), attaches the scores, then passes the page on or
 * drops it. */
static GstFlowReturn
gst_ds_classify_process (GstDsocrModelElement * base, GstBuffer * buf)
{
  GstDsClassify *self = GST_DS_CLASSIFY (base);
  GstStructure *cls = NULL;
  gboolean no_decoder, post, pass;
  GError *err = NULL;
  gchar *text = gst_ds_classify_page_text (self, buf, &no_decoder);

  if (no_decoder)
    goto no_result;

  if (text && self->last_text && strcmp (text, self->last_text) == 0) {
    cls = self->last_class ? gst_structure_copy (self->last_class) : NULL;
  } else if (text) {
    if (!gst_ds_classify_run (self, text, &cls, &err))
      goto failed;
    g_free (self->last_text);
    self->last_text = g_strdup (text);
    g_clear_pointer (&self->last_class, gst_structure_free);
    self->last_class = cls ? gst_structure_copy (cls) : NULL;
  }
  g_free (text);

  GST_OBJECT_LOCK (self);
  post = self->post_messages;
  pass = label_passes (self->pass_labels, cls);
  GST_OBJECT_UNLOCK (self);

  if (cls) {
    buf = gst_buffer_make_writable (buf);
    gst_buffer_add_dsocr_class_meta (buf, cls);
    if (post) {
      GstStructure *s = gst_structure_copy (cls);

      gst_structure_set (s, "timestamp", G_TYPE_UINT64, GST_BUFFER_PTS (buf),
          "passed", G_TYPE_BOOLEAN, pass, NULL);
      gst_element_post_message (GST_ELEMENT (self),
          gst_message_new_element (GST_OBJECT (self), s));
    }
    gst_structure_free (cls);
  }
  if (!pass) {
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }
  return gst_dsocr_model_element_push (base, buf);

  /* ERRORS */
no_result:
  {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("A frame arrived without page text: put dsocrdecode before dsclassify, or "
            "give it text/x-raw buffers."), (NULL));
    return GST_FLOW_ERROR;
  }
failed:
  {
    g_free (text);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Could not classify a page: %s", err->message), (NULL));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
}
