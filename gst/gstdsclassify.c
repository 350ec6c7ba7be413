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

#define DEFAULT_MODEL_LOCATION NULL
#define DEFAULT_DEVICE GST_DSOCR_DEVICE_CPU
#define DEFAULT_PASS_LABELS NULL
#define DEFAULT_POOLING GST_DS_CLASSIFY_POOLING_LAST_NON_PAD
#define DEFAULT_MAX_LENGTH 0
#define DEFAULT_N_THREADS 0
#define DEFAULT_POST_MESSAGES TRUE

enum
{
  PROP_0,
  PROP_MODEL_LOCATION,
  PROP_DEVICE,
  PROP_PASS_LABELS,
  PROP_POOLING,
  PROP_MAX_LENGTH,
  PROP_N_THREADS,
  PROP_POST_MESSAGES,
};

struct _GstDsClassify
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  gchar *model_location;
  GstDsocrDevice device;
  gchar **pass_labels;          /* NULL: pass everything */
  GstDsClassifyPooling pooling;
  guint max_length;
  gint n_threads;
  gboolean post_messages;

  /* < private > between start and stop, streaming thread */
  GstDsocrModel *model;
  dsocr_session *session;
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
G_DEFINE_TYPE (GstDsClassify, gst_ds_classify, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (dsclassify, "dsclassify", GST_RANK_NONE,
    GST_TYPE_DS_CLASSIFY);

static void gst_ds_classify_finalize (GObject * object);
static void gst_ds_classify_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_ds_classify_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_ds_classify_start (GstBaseTransform * trans);
static gboolean gst_ds_classify_stop (GstBaseTransform * trans);
static gboolean gst_ds_classify_set_caps (GstBaseTransform * trans,
    GstCaps * incaps, GstCaps * outcaps);
static GstFlowReturn gst_ds_classify_transform_ip (GstBaseTransform * trans,
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
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_ds_classify_debug, "dsclassify", 0,
      "DeepSeek-V2 page classifier");

  gobject_class->finalize = gst_ds_classify_finalize;
  gobject_class->set_property = gst_ds_classify_set_property;
  gobject_class->get_property = gst_ds_classify_get_property;

  g_object_class_install_property (gobject_class, PROP_MODEL_LOCATION,
      g_param_spec_string ("model-location", "Model location",
          "Directory of the DeepseekV2ForSequenceClassification model (config.json, "
          "safetensors, tokenizer.json)", DEFAULT_MODEL_LOCATION,
          rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_enum ("device", "Device", "Where the model runs",
          GST_TYPE_DSOCR_DEVICE, DEFAULT_DEVICE, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PASS_LABELS,
      g_param_spec_string ("pass-labels", "Pass labels",
          "Comma-separated labels: pass on only the pages whose best label is one of "
          "them (unset: pass every page)", DEFAULT_PASS_LABELS,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_POOLING,
      g_param_spec_enum ("pooling", "Pooling",
          "Which token the score head reads", GST_TYPE_DS_CLASSIFY_POOLING,
          DEFAULT_POOLING, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_LENGTH,
      g_param_spec_uint ("max-length", "Maximum length",
          "Tokens of a page read at most, from its start (0 = the model's context)",
          0, G_MAXINT, DEFAULT_MAX_LENGTH, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Threads",
          "Threads for the model's matrix products (0 = all processors)", 0, 1024,
          DEFAULT_N_THREADS, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post a dsocr-class element message for every classified page",
          DEFAULT_POST_MESSAGES, rw | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DeepSeek-V2 page classifier", "Filter/Analyzer",
      "Labels the text of recognised pages with a DeepseekV2ForSequenceClassification "
      "model and can pass on only some labels", "gst-dsocr");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_ds_classify_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ds_classify_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_ds_classify_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ds_classify_transform_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_DS_CLASSIFY_POOLING, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DSOCR_DEVICE, 0);
  gst_dsocr_meta_register ();
}

static void
gst_ds_classify_init (GstDsClassify * self)
{
  self->model_location = g_strdup (DEFAULT_MODEL_LOCATION);
  self->device = DEFAULT_DEVICE;
  self->pooling = DEFAULT_POOLING;
  self->max_length = DEFAULT_MAX_LENGTH;
  self->n_threads = DEFAULT_N_THREADS;
  self->post_messages = DEFAULT_POST_MESSAGES;
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_ds_classify_clear (GstDsClassify * self)
{
  g_clear_pointer (&self->session, dsocr_session_free);
  g_clear_pointer (&self->model, gst_dsocr_model_unref);
  g_clear_pointer (&self->last_text, g_free);
  g_clear_pointer (&self->last_class, gst_structure_free);
}

static void
gst_ds_classify_finalize (GObject * object)
{
  GstDsClassify *self = GST_DS_CLASSIFY (object);

  gst_ds_classify_clear (self);
  g_free (self->model_location);
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
    case PROP_MODEL_LOCATION:
      g_free (self->model_location);
      self->model_location = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      self->device = g_value_get_enum (value);
      break;
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
    case PROP_N_THREADS:
      self->n_threads = g_value_get_int (value);
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
    case PROP_MODEL_LOCATION:
      g_value_set_string (value, self->model_location);
      break;
    case PROP_DEVICE:
      g_value_set_enum (value, self->device);
      break;
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
    case PROP_N_THREADS:
      g_value_set_int (value, self->n_threads);
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
gst_ds_classify_start (GstBaseTransform * trans)
{
  GstDsClassify *self = GST_DS_CLASSIFY (trans);
  const GstDsocrModelParts parts =
      GST_DSOCR_MODEL_PART_DECODER | GST_DSOCR_MODEL_PART_TOKENIZER;
  dsocr_session_params params;
  GstDsocrDevice device;
  gchar *location;
  GError *err = NULL;
  gboolean shared = FALSE;
  GstClockTime t0;

  dsocr_session_params_init (&params);
  GST_OBJECT_LOCK (self);
  location = g_strdup (self->model_location);
  device = self->device;
  params.n_threads = self->n_threads;
  GST_OBJECT_UNLOCK (self);

  if (!gst_dsocr_model_check_device (GST_ELEMENT (self), device))
    goto failed;
  if (!location || !*location) {
    gst_dsocr_model_post_error (GST_ELEMENT (self), location, NULL);
    goto failed;
  }
  t0 = gst_util_get_timestamp ();
  self->model = gst_dsocr_model_cache_acquire (location, parts, &shared, &err);
  if (!self->model) {
    gst_dsocr_model_post_error (GST_ELEMENT (self), location, err);
    goto failed;
  }
  if (!dsocr_model_has_score_head (gst_dsocr_model_get_decoder (self->model))) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("The model in %s is not a sequence classifier (it has no score head): set "
            "model-location to a DeepseekV2ForSequenceClassification model.",
            location), (NULL));
    goto failed;
  }
  self->session = dsocr_session_new (gst_dsocr_model_get_decoder (self->model),
      &params, &err);
  if (!self->session) {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("Could not set up the classifier in %s.", location), ("%s",
            err->message));
    goto failed;
  }
  gst_dsocr_model_post_loaded (GST_ELEMENT (self), self->model, parts, shared,
      gst_util_get_timestamp () - t0);
  g_free (location);
  return TRUE;

failed:
  g_clear_error (&err);
  gst_ds_classify_clear (self);
  g_free (location);
  return FALSE;
}

static gboolean
gst_ds_classify_stop (GstBaseTransform * trans)
{
  gst_ds_classify_clear (GST_DS_CLASSIFY (trans));
  return TRUE;
}

static gboolean
gst_ds_classify_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstDsClassify *self = GST_DS_CLASSIFY (trans);

  self->is_text = gst_structure_has_name (gst_caps_get_structure (incaps, 0),
      "text/x-raw");
  return TRUE;
}

/* The class structure (GST_DSOCR_CLASS_STRUCTURE_NAME) of @text, or NULL for a text without
 * tokens; FALSE with @error when the model fails. */
static gboolean
gst_ds_classify_run (GstDsClassify * self, const gchar * text,
    GstStructure ** out, GError ** error)
{
  dsocr_model *model = gst_dsocr_model_get_decoder (self->model);
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

  if (!dsocr_tokenizer_encode (gst_dsocr_model_get_tokenizer (self->model),
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

static GstFlowReturn
gst_ds_classify_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstDsClassify *self = GST_DS_CLASSIFY (trans);
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
  return pass ? GST_FLOW_OK : GST_BASE_TRANSFORM_FLOW_DROPPED;

  /* ERRORS */
no_result:
  {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("A frame arrived without page text: put dsocrdecode before dsclassify, or "
            "give it text/x-raw buffers."), (NULL));
    return GST_FLOW_ERROR;
  }
failed:
  {
    g_free (text);
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Could not classify a page: %s", err->message), (NULL));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
}
