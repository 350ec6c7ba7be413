/* gstdsocrmodelcache.c: the process-wide table of loaded model directories. */
#include "gstdsocrmodelcache.h"

#include <errno.h>
#include <stdlib.h>

#include <dsocr/dsocr-checkpoint.h>
#include <dsocr/dsocr-error.h>

GST_DEBUG_CATEGORY_STATIC (gst_dsocr_model_cache_debug);
#define GST_CAT_DEFAULT gst_dsocr_model_cache_debug

struct _GstDsocrModel
{
  gint ref_count;               /* changed under cache_lock only */
  gchar *path;                  /* resolved directory: the cache key (owned) */

  GMutex lock;                  /* held while parts are loaded */
  dsocr_config *config;         /* read with the first part */
  dsocr_checkpoint *ckpt;
  dsocr_model *decoder;
  dsocr_vision *vision;
  dsocr_tokenizer *tokenizer;
  dsocr_ocr *ocr;               /* holds its own tokenizer */
};

static GMutex cache_lock;
static GHashTable *cache;       /* path -> GstDsocrModel (borrowed: entries remove themselves) */

static void
debug_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (gst_dsocr_model_cache_debug, "dsocrmodelcache", 0,
        "Shared DeepSeek-OCR models");
    g_once_init_leave (&done, 1);
  }
}

static void
model_free (GstDsocrModel * m)
{
  GST_DEBUG ("releasing %s", m->path);
  dsocr_ocr_unref (m->ocr);
  dsocr_tokenizer_free (m->tokenizer);
  dsocr_vision_unref (m->vision);
  dsocr_model_unref (m->decoder);
  dsocr_checkpoint_unref (m->ckpt);
  dsocr_config_free (m->config);
  g_mutex_clear (&m->lock);
  g_free (m->path);
  g_free (m);
}

GstDsocrModel *
gst_dsocr_model_ref (GstDsocrModel * model)
{
  g_mutex_lock (&cache_lock);
  model->ref_count++;
  g_mutex_unlock (&cache_lock);
  return model;
}

void
gst_dsocr_model_unref (GstDsocrModel * model)
{
  gboolean last;

  if (!model)
    return;
  /* under the cache lock, so that no acquire can find an entry on its way out */
  g_mutex_lock (&cache_lock);
  last = --model->ref_count == 0;
  if (last)
    g_hash_table_remove (cache, model->path);
  g_mutex_unlock (&cache_lock);
  if (last)
    model_free (model);
}

/* The real path of the directory @location (transfer full), or NULL with a FILE error. */
static gchar *
resolve_dir (const gchar * location, GError ** error)
{
  gchar *real = realpath (location, NULL);
  gchar *out;

  if (!real) {
    int e = errno;

    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: %s", location,
        g_strerror (e));
    return NULL;
  }
  if (!g_file_test (real, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE,
        "%s: not a directory (a model directory holds config.json and the "
        "safetensors files)", location);
    free (real);
    return NULL;
  }
  out = g_strdup (real);
  free (real);
  return out;
}

/* Loads what @parts needs and is not loaded yet. Called with m->lock held. */
static gboolean
load_parts (GstDsocrModel * m, GstDsocrModelParts parts, GError ** error)
{
  if (parts & GST_DSOCR_MODEL_PART_OCR)
    parts |= GST_DSOCR_MODEL_PART_DECODER | GST_DSOCR_MODEL_PART_VISION;

  if (!m->config && !(m->config = dsocr_config_load (m->path, error)))
    return FALSE;
  if ((parts & (GST_DSOCR_MODEL_PART_DECODER | GST_DSOCR_MODEL_PART_VISION)) &&
      !m->ckpt && !(m->ckpt = dsocr_checkpoint_open (m->path, error)))
    return FALSE;

  if ((parts & GST_DSOCR_MODEL_PART_DECODER) && !m->decoder) {
    /* the model takes ownership of its config: give it its own copy */
    dsocr_config *cfg = dsocr_config_load (m->path, error);

    if (!cfg)
      return FALSE;
    m->decoder = dsocr_model_new_from_checkpoint (m->ckpt, cfg, error);
    if (!m->decoder)
      return FALSE;
  }

  if ((parts & GST_DSOCR_MODEL_PART_VISION) && !m->vision) {
    if (m->config->kind != DSOCR_MODEL_DEEPSEEK_OCR) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
          "%s holds a %s model, which has no vision tower", m->path,
          dsocr_model_kind_name (m->config->kind));
      return FALSE;
    }
    m->vision = dsocr_vision_new (m->ckpt, m->config, error);
    if (!m->vision)
      return FALSE;
  }

  if ((parts & GST_DSOCR_MODEL_PART_OCR) && !m->ocr) {
    /* the OCR pipeline owns its tokenizer; it serves the tokenizer part too */
    dsocr_tokenizer *tok = dsocr_tokenizer_load (m->path, error);

    if (!tok)
      return FALSE;
    m->ocr = dsocr_ocr_new (m->decoder, m->vision, tok, error);
    if (!m->ocr)
      return FALSE;
  }

  if ((parts & GST_DSOCR_MODEL_PART_TOKENIZER) && !m->tokenizer && !m->ocr) {
    m->tokenizer = dsocr_tokenizer_load (m->path, error);
    if (!m->tokenizer)
      return FALSE;
  }
  return TRUE;
}

GstDsocrModel *
gst_dsocr_model_cache_acquire (const gchar * location, GstDsocrModelParts parts,
    gboolean * shared, GError ** error)
{
  GstDsocrModel *m;
  gchar *path;
  gboolean found, ok;

  debug_init ();
  path = resolve_dir (location, error);
  if (!path)
    return NULL;

  g_mutex_lock (&cache_lock);
  if (!cache)
    cache = g_hash_table_new (g_str_hash, g_str_equal);
  m = g_hash_table_lookup (cache, path);
  found = m != NULL;
  if (m) {
    m->ref_count++;
    g_free (path);
  } else {
    m = g_new0 (GstDsocrModel, 1);
    m->ref_count = 1;
    m->path = path;
    g_mutex_init (&m->lock);
    g_hash_table_insert (cache, m->path, m);
  }
  g_mutex_unlock (&cache_lock);

  g_mutex_lock (&m->lock);
  ok = load_parts (m, parts, error);
  g_mutex_unlock (&m->lock);
  if (!ok) {
    gst_dsocr_model_unref (m);
    return NULL;
  }
  GST_DEBUG ("%s: %s", m->path, found ? "shared" : "loaded");
  if (shared)
    *shared = found;
  return m;
}

const gchar *
gst_dsocr_model_get_path (const GstDsocrModel * model)
{
  return model->path;
}

/* Parts never change once loaded, so reading them needs no lock; the pointer itself is
 * published under m->lock by the acquire that loaded it, before that acquire returned. */
const dsocr_config *
gst_dsocr_model_get_config (GstDsocrModel * model)
{
  return model->config;
}

dsocr_model *
gst_dsocr_model_get_decoder (GstDsocrModel * model)
{
  return model->decoder;
}

dsocr_vision *
gst_dsocr_model_get_vision (GstDsocrModel * model)
{
  return model->vision;
}

const dsocr_tokenizer *
gst_dsocr_model_get_tokenizer (GstDsocrModel * model)
{
  if (model->tokenizer)
    return model->tokenizer;
  return model->ocr ? dsocr_ocr_get_tokenizer (model->ocr) : NULL;
}

dsocr_ocr *
gst_dsocr_model_get_ocr (GstDsocrModel * model)
{
  return model->ocr;
}

guint
gst_dsocr_model_cache_n_loaded (void)
{
  guint n;

  g_mutex_lock (&cache_lock);
  n = cache ? g_hash_table_size (cache) : 0;
  g_mutex_unlock (&cache_lock);
  return n;
}

GType
gst_dsocr_device_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_DEVICE_CPU, "CPU", "cpu"},
    {GST_DSOCR_DEVICE_CUDA, "NVIDIA GPU (CUDA)", "cuda"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrDevice", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

void
gst_dsocr_model_post_error (GstElement * element, const gchar * location,
    const GError * error)
{
  if (!location || !*location) {
    GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
        ("No model: set the model-location property to a model directory."),
        (NULL));
    return;
  }
  if (!error || error->domain != DSOCR_ERROR) {
    GST_ELEMENT_ERROR (element, LIBRARY, INIT,
        ("Could not load the model in %s.", location),
        ("%s", error ? error->message : "unknown error"));
    return;
  }
  switch (error->code) {
    case DSOCR_ERROR_FILE:
      GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
          ("Could not read the model in %s: %s. Set model-location to a directory "
              "holding config.json and the model's safetensors files.", location,
              error->message), (NULL));
      break;
    case DSOCR_ERROR_FORMAT:
    case DSOCR_ERROR_SHAPE:
    case DSOCR_ERROR_CONFIG:
      GST_ELEMENT_ERROR (element, RESOURCE, READ,
          ("The model in %s is damaged or incomplete: %s", location,
              error->message), (NULL));
      break;
    case DSOCR_ERROR_UNSUPPORTED:
    case DSOCR_ERROR_INVALID:
      GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS,
          ("The model in %s cannot be used by this element: %s", location,
              error->message), (NULL));
      break;
    case DSOCR_ERROR_NOMEM:
      GST_ELEMENT_ERROR (element, RESOURCE, NO_SPACE_LEFT,
          ("Not enough memory to load the model in %s.", location),
          ("%s", error->message));
      break;
    default:
      GST_ELEMENT_ERROR (element, LIBRARY, INIT,
          ("Could not load the model in %s: %s", location, error->message),
          (NULL));
      break;
  }
}

gboolean
gst_dsocr_model_check_device (GstElement * element, GstDsocrDevice device)
{
  if (device == GST_DSOCR_DEVICE_CPU)
    return TRUE;
  /* the engine's model, session and vision APIs take no device yet: everything runs on
   * the CPU */
  GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS,
      ("The engine cannot run models on CUDA yet: set device=cpu."), (NULL));
  return FALSE;
}

void
gst_dsocr_model_post_loaded (GstElement * element, GstDsocrModel * model,
    GstDsocrModelParts parts, gboolean shared, GstClockTime load_time)
{
  GString *names = g_string_new (NULL);
  GstStructure *s;

  if (parts & GST_DSOCR_MODEL_PART_DECODER)
    g_string_append (names, "decoder ");
  if (parts & GST_DSOCR_MODEL_PART_VISION)
    g_string_append (names, "vision ");
  if (parts & GST_DSOCR_MODEL_PART_TOKENIZER)
    g_string_append (names, "tokenizer ");
  if (names->len)
    g_string_truncate (names, names->len - 1);
  s = gst_structure_new ("dsocr-model",
      "location", G_TYPE_STRING, gst_dsocr_model_get_path (model),
      "parts", G_TYPE_STRING, names->str,
      "shared", G_TYPE_BOOLEAN, shared,
      "load-time", G_TYPE_UINT64, (guint64) load_time, NULL);
  g_string_free (names, TRUE);
  gst_element_post_message (element,
      gst_message_new_element (GST_OBJECT (element), s));
}
