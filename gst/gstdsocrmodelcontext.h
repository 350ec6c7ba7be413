/* gstdsocrmodelcontext.h: a loaded model handed between elements and to the application
 * through a GstContext.
 *
 * The context type is "dsocr.model" (GST_DSOCR_MODEL_CONTEXT_TYPE). Its structure holds
 *   "model"     GstDsocrModel (GST_TYPE_DSOCR_MODEL, boxed): a reference on the model
 *   "location"  gchararray: the model's directory as a real path
 * A context holds its model alive: an application that keeps one keeps the model loaded,
 * and an element given one uses that model instead of loading its directory again.
 *
 *   GstDsocrModel *m = gst_dsocr_model_context_find (element, path);    // at start
 *   if (!m) {
 *     m = gst_dsocr_model_cache_acquire (path, parts, &shared, &err);
 *     gst_dsocr_model_context_share (element, m);    // set on itself, HAVE_CONTEXT posted
 *   }
 *   ...
 *   gst_dsocr_model_context_handle_query (element, query, m);   // in the query functions
 *
 * The search follows GStreamer's context protocol: a context already set on the element
 * (by the application or by its bin), then a CONTEXT query downstream and upstream (elements
 * holding a model answer), then GST_MESSAGE_NEED_CONTEXT to the application. A context is
 * taken only when its model is the element's own model directory; one for another
 * directory is ignored (a model-location always decides what an element runs).
 *
 * The contexts the elements make are not persistent: GStreamer drops them from the elements
 * and bins when they go back to READY, so that a pipeline that stops releases its models.
 * An application that wants a model to outlive a pipeline keeps a reference on the context
 * (from the HAVE_CONTEXT message, or gst_element_get_context()) and sets it on the next
 * pipeline, or answers NEED_CONTEXT with it.
 */
#ifndef __GST_DSOCR_MODEL_CONTEXT_H__
#define __GST_DSOCR_MODEL_CONTEXT_H__

#include <gst/gst.h>

#include "gstdsocrmodelcache.h"

G_BEGIN_DECLS

#define GST_DSOCR_MODEL_CONTEXT_TYPE "dsocr.model"

/* A new, not persistent, context holding @model (transfer none: it takes a reference).
 * Returns (transfer full). */
G_GNUC_INTERNAL GstContext *gst_dsocr_model_context_new (GstDsocrModel * model);

/* The model @context holds (transfer full), or NULL when @context is not a "dsocr.model"
 * context with a model. */
G_GNUC_INTERNAL GstDsocrModel *gst_dsocr_model_context_get_model (GstContext *
    context);

/* Looks for a model whose directory is @path (a real path, see
 * gst_dsocr_model_cache_resolve()) in the contexts around @element, as described above.
 * Returns (transfer full) the model, or NULL when nobody offered it. */
G_GNUC_INTERNAL GstDsocrModel *gst_dsocr_model_context_find (GstElement * element,
    const gchar * path);

/* Tells the pipeline that @element holds @model: sets a context for it on @element and posts
 * GST_MESSAGE_HAVE_CONTEXT, which the bins keep for elements that ask later. */
G_GNUC_INTERNAL void gst_dsocr_model_context_share (GstElement * element,
    GstDsocrModel * model);

/* Answers @query when it is a CONTEXT query for "dsocr.model" and @model (nullable) is
 * set. Returns TRUE when it answered. */
G_GNUC_INTERNAL gboolean gst_dsocr_model_context_handle_query (GstElement * element,
    GstQuery * query, GstDsocrModel * model);

G_END_DECLS

#endif /* __GST_DSOCR_MODEL_CONTEXT_H__ */
