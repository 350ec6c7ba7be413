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

  ok = gst_dsocr_model_load_parts (m, parts, error);
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
 * published under m->lock by the acquire (or gst_dsocr_model_load_parts) that loaded it,
 * before that call returned to the element that asked for the part. */
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

gboolean
gst_dsocr_model_load_parts (GstDsocrModel * model, GstDsocrModelParts parts,
    GError ** error)
{
  gboolean ok;

  g_mutex_lock (&model->lock);
  ok = load_parts (model, parts, error);
  g_mutex_unlock (&model->lock);
  return ok;
}

gchar *
gst_dsocr_model_cache_resolve (const gchar * location, GError ** error)
{
  return resolve_dir (location, error);
}

GType
gst_dsocr_model_get_type (void)
{
  static GType type = 0;

  if (g_once_init_enter (&type)) {
    GType t = g_boxed_type_register_static ("GstDsocrModel",
        (GBoxedCopyFunc) gst_dsocr_model_ref,
        (GBoxedFreeFunc) gst_dsocr_model_unref);
    g_once_init_leave (&type, t);
  }
  return type;
}
