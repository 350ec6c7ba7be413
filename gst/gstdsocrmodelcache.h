/* gstdsocrmodelcache.h: one loaded model per model directory, shared by every dsocr element
 * whose model-location names that directory.
 *
 *   GError *err = NULL;
 *   GstDsocrModel *m = gst_dsocr_model_cache_acquire ("/models/DeepSeek-OCR",
 *       GST_DSOCR_MODEL_PART_VISION, NULL, &err);          // in start()
 *   dsocr_vision *vis = gst_dsocr_model_get_vision (m);    // borrowed while m is held
 *   ...
 *   gst_dsocr_model_unref (m);                              // in stop()
 *
 * A GstDsocrModel holds the checkpoint mapped once and, loaded on first request, the parts
 * of it that elements ask for: the decoder (dsocr_model: causal LM or sequence classifier),
 * the vision tower (dsocr_vision), the tokenizer, and the OCR pipeline (dsocr_ocr) built on
 * that decoder and vision tower. Directories are told apart by their
 * real path (symbolic links resolved), so two spellings of one directory share a model. The
 * last reference frees everything and removes the directory from the cache, so a pipeline
 * that goes to NULL releases its memory.
 *
 * Thread-safe: acquiring, getting parts and unreffing may happen on any thread; loading a
 * part blocks other acquirers of the same directory until it is done (it is loaded once).
 *
 * Elements reach this cache through their base class, GstDsocrModelElement, which first looks
 * for a model handed over in a GstContext (gstdsocrmodelcontext.h).
 */
#ifndef __GST_DSOCR_MODEL_CACHE_H__
#define __GST_DSOCR_MODEL_CACHE_H__

#include <gst/gst.h>

#include <dsocr/dsocr-config.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-ocr.h>
#include <dsocr/dsocr-tokenizer.h>
#include <dsocr/dsocr-vision.h>

G_BEGIN_DECLS

typedef struct _GstDsocrModel GstDsocrModel;

typedef enum
{
  GST_DSOCR_MODEL_PART_DECODER = 1 << 0,        /* dsocr_model */
  GST_DSOCR_MODEL_PART_VISION = 1 << 1, /* dsocr_vision (DeepSeek-OCR checkpoints only) */
  GST_DSOCR_MODEL_PART_TOKENIZER = 1 << 2,      /* tokenizer.json in the directory */
  GST_DSOCR_MODEL_PART_OCR = 1 << 3,    /* dsocr_ocr: decoder + vision + tokenizer */
} GstDsocrModelParts;

/* Returns (transfer full) the model of directory @location with at least @parts loaded, or
 * NULL with @error set (DSOCR_ERROR domain: FILE for a missing directory or file, FORMAT /
 * SHAPE / CONFIG for a damaged model, UNSUPPORTED for a model without the part, e.g. vision
 * from a text-only checkpoint). @shared (out, nullable): TRUE when the directory was already
 * loaded by someone else. */
G_GNUC_INTERNAL GstDsocrModel *gst_dsocr_model_cache_acquire (const gchar * location,
    GstDsocrModelParts parts, gboolean * shared, GError ** error);

/* Returns @model with one more reference (transfer full). */
G_GNUC_INTERNAL GstDsocrModel *gst_dsocr_model_ref (GstDsocrModel * model);
/* Drops a reference; the last one frees the model. NULL is a no-op. */
G_GNUC_INTERNAL void gst_dsocr_model_unref (GstDsocrModel * model);

/* The directory as given first and as resolved (transfer none). */
G_GNUC_INTERNAL const gchar *gst_dsocr_model_get_path (const GstDsocrModel * model);

/* Parts (transfer none, valid while @model is held); NULL when no acquire or
 * gst_dsocr_model_load_parts() asked for them. */
G_GNUC_INTERNAL const dsocr_config *gst_dsocr_model_get_config (GstDsocrModel * model);
G_GNUC_INTERNAL dsocr_model *gst_dsocr_model_get_decoder (GstDsocrModel * model);
G_GNUC_INTERNAL dsocr_vision *gst_dsocr_model_get_vision (GstDsocrModel * model);
G_GNUC_INTERNAL const dsocr_tokenizer *gst_dsocr_model_get_tokenizer (GstDsocrModel *
    model);
G_GNUC_INTERNAL dsocr_ocr *gst_dsocr_model_get_ocr (GstDsocrModel * model);

/* Directories loaded right now (for tests and debugging). */
G_GNUC_INTERNAL guint gst_dsocr_model_cache_n_loaded (void);

/* Loads what @parts needs into @model, which came from the cache or from a GstContext,
 * when it is not loaded yet. FALSE with @error as gst_dsocr_model_cache_acquire(). */
G_GNUC_INTERNAL gboolean gst_dsocr_model_load_parts (GstDsocrModel * model,
    GstDsocrModelParts parts, GError ** error);

/* The key the cache files @location under: its real path (transfer full), or NULL with a
 * DSOCR_ERROR_FILE @error when it is not a directory. */
G_GNUC_INTERNAL gchar *gst_dsocr_model_cache_resolve (const gchar * location,
    GError ** error);

/**
 * GstDsocrModel:
 *
 * A loaded model directory, shared by reference. Registered as a boxed type so that a
 * #GstStructure, and so a #GstContext, can hold it: copying the boxed value takes a
 * reference, freeing it drops one.
 */
#define GST_TYPE_DSOCR_MODEL (gst_dsocr_model_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_model_get_type (void);

G_END_DECLS

#endif /* __GST_DSOCR_MODEL_CACHE_H__ */
