/* gstdsocrmodelcontext.c: the "dsocr.model" GstContext: making one, reading one, asking the
 * neighbours and the application for one. */
#include "gstdsocrmodelcontext.h"

/* the core's category, so that GST_DEBUG=GST_CONTEXT:5 shows these steps among the others */
GST_DEBUG_CATEGORY_STATIC (GST_CAT_CONTEXT);
#define GST_CAT_DEFAULT GST_CAT_CONTEXT

static void
debug_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_GET (GST_CAT_CONTEXT, "GST_CONTEXT");
    g_once_init_leave (&done, 1);
  }
}

GstContext *
gst_dsocr_model_context_new (GstDsocrModel * model)
{
  GstContext *context = gst_context_new (GST_DSOCR_MODEL_CONTEXT_TYPE, FALSE);

  gst_structure_set (gst_context_writable_structure (context),
      "model", GST_TYPE_DSOCR_MODEL, model,
      "location", G_TYPE_STRING, gst_dsocr_model_get_path (model), NULL);
  return context;
}

GstDsocrModel *
gst_dsocr_model_context_get_model (GstContext * context)
{
  GstDsocrModel *model = NULL;

  if (!context || !gst_context_has_context_type (context,
          GST_DSOCR_MODEL_CONTEXT_TYPE))
    return NULL;
  if (!gst_structure_get (gst_context_get_structure (context), "model",
          GST_TYPE_DSOCR_MODEL, &model, NULL))
    return NULL;
  return model;
}

/* The model of @context when it is the one in @path (transfer full); otherwise NULL, and
 * the context is logged at @level as ignored. */
static GstDsocrModel *
matching_model (GstElement * element, GstContext * context, const gchar * path,
    const gchar * origin, GstDebugLevel level)
{
  GstDsocrModel *model = gst_dsocr_model_context_get_model (context);

  if (!model) {
    GST_CAT_LEVEL_LOG (GST_CAT_CONTEXT, level, element,
        "ignoring the %s: a dsocr.model context without a model", origin);
    return NULL;
  }
  if (g_strcmp0 (gst_dsocr_model_get_path (model), path) != 0) {
    GST_CAT_LEVEL_LOG (GST_CAT_CONTEXT, level, element,
        "ignoring the %s: its model is in %s, model-location names %s", origin,
        gst_dsocr_model_get_path (model), path);
    gst_dsocr_model_unref (model);
    return NULL;
  }
  GST_CAT_INFO_OBJECT (GST_CAT_CONTEXT, element, "using the model of the %s (%s)",
      origin, path);
  return model;
}

/* The model of the context set on @element, when it is the one in @path (transfer full). */
static GstDsocrModel *
model_of_element (GstElement * element, const gchar * path, const gchar * origin,
    GstDebugLevel level)
{
  GstContext *context = gst_element_get_context (element,
      GST_DSOCR_MODEL_CONTEXT_TYPE);
  GstDsocrModel *model;

  if (!context)
    return NULL;
  model = matching_model (element, context, path, origin, level);
  gst_context_unref (context);
  return model;
}

static gboolean
peer_query (const GValue * item, GValue * answered, gpointer query)
{
  GstPad *pad = g_value_get_object (item);

  if (gst_pad_peer_query (pad, query)) {
    g_value_set_boolean (answered, TRUE);
    return FALSE;               /* stop at the first answer */
  }
  return TRUE;
}

/* Asks the peers of @element's pads in @direction for a context; the model it holds when it
 * is the one in @path (transfer full), and then the context is set on @element too. */
static GstDsocrModel *
ask_peers (GstElement * element, GstPadDirection direction, const gchar * path)
{
  GstQuery *query = gst_query_new_context (GST_DSOCR_MODEL_CONTEXT_TYPE);
  GstIterator *it = direction == GST_PAD_SRC ?
      gst_element_iterate_src_pads (element) :
      gst_element_iterate_sink_pads (element);
  GValue answered = G_VALUE_INIT;
  GstDsocrModel *model = NULL;
  GstContext *context = NULL;

  g_value_init (&answered, G_TYPE_BOOLEAN);
  while (gst_iterator_fold (it, peer_query, &answered, query) ==
      GST_ITERATOR_RESYNC)
    gst_iterator_resync (it);
  gst_iterator_free (it);

  if (g_value_get_boolean (&answered))
    gst_query_parse_context (query, &context);
  if (context) {
    model = matching_model (element, context, path, direction == GST_PAD_SRC ?
        "context of a downstream element" : "context of an upstream element",
        GST_LEVEL_INFO);
    /* kept, as a context found any other way would be: gst_element_get_context() sees it */
    if (model)
      gst_element_set_context (element, context);
  }
  gst_query_unref (query);
  return model;
}

GstDsocrModel *
gst_dsocr_model_context_find (GstElement * element, const gchar * path)
{
  GstDsocrModel *model;

  debug_init ();

  /* set before the element started, by the application or by the bin it is in: a wrong one
   * is worth a warning (a pipeline with two models gets one for the other element) */
  model = model_of_element (element, path, "context set on the element",
      GST_LEVEL_WARNING);
  if (model)
    return model;

  model = ask_peers (element, GST_PAD_SRC, path);
  if (!model)
    model = ask_peers (element, GST_PAD_SINK, path);
  if (model)
    return model;

  /* the application (or a bin that kept a context from HAVE_CONTEXT) may call
   * gst_element_set_context() from here, synchronously */
  GST_CAT_INFO_OBJECT (GST_CAT_CONTEXT, element, "posting need-context for %s",
      path);
  gst_element_post_message (element, gst_message_new_need_context (GST_OBJECT
          (element), GST_DSOCR_MODEL_CONTEXT_TYPE));
  return model_of_element (element, path, "context given for need-context",
      GST_LEVEL_INFO);
}

void
gst_dsocr_model_context_share (GstElement * element, GstDsocrModel * model)
{
  GstContext *context;

  debug_init ();
  context = gst_dsocr_model_context_new (model);
  gst_element_set_context (element, context);
  GST_CAT_INFO_OBJECT (GST_CAT_CONTEXT, element,
      "posting have-context for the model in %s", gst_dsocr_model_get_path (model));
  gst_element_post_message (element, gst_message_new_have_context (GST_OBJECT
          (element), context));
}

gboolean
gst_dsocr_model_context_handle_query (GstElement * element, GstQuery * query,
    GstDsocrModel * model)
{
  const gchar *type = NULL;
  GstContext *context;

  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT || !model)
    return FALSE;
  gst_query_parse_context_type (query, &type);
  if (g_strcmp0 (type, GST_DSOCR_MODEL_CONTEXT_TYPE) != 0)
    return FALSE;

  debug_init ();
  context = gst_dsocr_model_context_new (model);
  gst_query_set_context (query, context);
  gst_context_unref (context);
  GST_CAT_DEBUG_OBJECT (GST_CAT_CONTEXT, element,
      "answered a context query with the model in %s",
      gst_dsocr_model_get_path (model));
  return TRUE;
}
