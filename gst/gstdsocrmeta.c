/* gstdsocrmeta.c: the metas of the dsocr elements (see gstdsocrmeta.h). */
#include "gstdsocrmeta.h"

#include <gst/video/video.h>

/* ---- enums ---- */

GType
gst_dsocr_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DSOCR_MODE_TINY, "Tiny: 512x512, aspect not kept (64 vision tokens)", "tiny"},
    {GST_DSOCR_MODE_SMALL, "Small: 640x640, aspect not kept (100 vision tokens)",
        "small"},
    {GST_DSOCR_MODE_BASE, "Base: padded to 1024x1024 (256 vision tokens)", "base"},
    {GST_DSOCR_MODE_LARGE, "Large: padded to 1280x1280 (400 vision tokens)", "large"},
    {GST_DSOCR_MODE_GUNDAM,
        "Gundam: padded 1024x1024 global view plus 640x640 tiles", "gundam"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDsocrMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_dsocr_result_flags_get_type (void)
{
  static GType type = 0;
  static const GFlagsValue values[] = {
    {GST_DSOCR_RESULT_FLAG_HIT_TOKEN_LIMIT, "Generation stopped at max-new-tokens",
        "hit-token-limit"},
    {GST_DSOCR_RESULT_FLAG_REPETITION_STOPPED,
        "Generation was stopped for repeating itself", "repetition-stopped"},
    {GST_DSOCR_RESULT_FLAG_MALFORMED,
        "The output broke the grounding format", "malformed"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_flags_register_static ("GstDsocrResultFlags", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ---- GstDsocrTiles ---- */

static void
tiles_clear (gpointer data)
{
  GstDsocrTiles *tiles = data;

  dsocr_preprocessed_free (tiles->pp);
}

GstDsocrTiles *
gst_dsocr_tiles_new (dsocr_preprocessed * pp, GstDsocrMode mode)
{
  GstDsocrTiles *tiles = g_atomic_rc_box_new0 (GstDsocrTiles);

  tiles->pp = pp;
  tiles->mode = mode;
  return tiles;
}

GstDsocrTiles *
gst_dsocr_tiles_ref (GstDsocrTiles * tiles)
{
  return g_atomic_rc_box_acquire (tiles);
}

void
gst_dsocr_tiles_unref (GstDsocrTiles * tiles)
{
  if (tiles)
    g_atomic_rc_box_release_full (tiles, tiles_clear);
}

G_DEFINE_BOXED_TYPE (GstDsocrTiles, gst_dsocr_tiles, gst_dsocr_tiles_ref,
    gst_dsocr_tiles_unref);

/* ---- GstDsocrEmbeddings ---- */

static void
embeddings_clear (gpointer data)
{
  GstDsocrEmbeddings *emb = data;

  dsocr_tensor_free (emb->embeds);
}

GstDsocrEmbeddings *
gst_dsocr_embeddings_new (dsocr_tensor * embeds, const GstDsocrTiles * tiles)
{
  GstDsocrEmbeddings *emb = g_atomic_rc_box_new0 (GstDsocrEmbeddings);

  emb->embeds = embeds;
  emb->mode = tiles->mode;
  emb->grid_cols = tiles->pp->grid_cols;
  emb->grid_rows = tiles->pp->grid_rows;
  emb->orig_width = tiles->pp->orig_width;
  emb->orig_height = tiles->pp->orig_height;
  return emb;
}

GstDsocrEmbeddings *
gst_dsocr_embeddings_ref (GstDsocrEmbeddings * emb)
{
  return g_atomic_rc_box_acquire (emb);
}

void
gst_dsocr_embeddings_unref (GstDsocrEmbeddings * emb)
{
  if (emb)
    g_atomic_rc_box_release_full (emb, embeddings_clear);
}

G_DEFINE_BOXED_TYPE (GstDsocrEmbeddings, gst_dsocr_embeddings,
    gst_dsocr_embeddings_ref, gst_dsocr_embeddings_unref);

/* ---- shared meta plumbing: a GstMeta holding one ref-counted pointer ---- */

/* The tiles and embeddings describe page content, not pixels: copies and scaling keep them
 * (by reference, never copying tensors) and any other transform drops them. */
static gboolean
content_meta_transform_kept (GQuark type)
{
  return GST_META_TRANSFORM_IS_COPY (type) || GST_VIDEO_META_TRANSFORM_IS_SCALE (type);
}

/* tiles */

GType
gst_dsocr_tiles_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstDsocrTilesMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
tiles_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  ((GstDsocrTilesMeta *) meta)->tiles = NULL;
  return TRUE;
}

static void
tiles_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  GstDsocrTilesMeta *m = (GstDsocrTilesMeta *) meta;

  g_clear_pointer (&m->tiles, gst_dsocr_tiles_unref);
}

static gboolean
tiles_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  GstDsocrTilesMeta *m = (GstDsocrTilesMeta *) meta;

  if (!content_meta_transform_kept (type))
    return FALSE;
  /* a buffer holds at most one: a later copy replaces nothing, it is skipped */
  if (gst_buffer_get_dsocr_tiles_meta (dest))
    return TRUE;
  return gst_buffer_add_dsocr_tiles_meta (dest, m->tiles) != NULL;
}

const GstMetaInfo *
gst_dsocr_tiles_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter (&info)) {
    const GstMetaInfo *i = gst_meta_register (GST_DSOCR_TILES_META_API_TYPE,
        "GstDsocrTilesMeta", sizeof (GstDsocrTilesMeta), tiles_meta_init,
        tiles_meta_free, tiles_meta_transform);
    g_once_init_leave (&info, i);
  }
  return info;
}

GstDsocrTilesMeta *
gst_buffer_add_dsocr_tiles_meta (GstBuffer * buffer, GstDsocrTiles * tiles)
{
  GstDsocrTilesMeta *m;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (tiles != NULL, NULL);

  m = (GstDsocrTilesMeta *) gst_buffer_add_meta (buffer,
      GST_DSOCR_TILES_META_INFO, NULL);
  if (m)
    m->tiles = gst_dsocr_tiles_ref (tiles);
  return m;
}

/* embeddings */

GType
gst_dsocr_embeddings_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstDsocrEmbeddingsMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
embeddings_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  ((GstDsocrEmbeddingsMeta *) meta)->embeddings = NULL;
  return TRUE;
}

static void
embeddings_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  GstDsocrEmbeddingsMeta *m = (GstDsocrEmbeddingsMeta *) meta;

  g_clear_pointer (&m->embeddings, gst_dsocr_embeddings_unref);
}

static gboolean
embeddings_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  GstDsocrEmbeddingsMeta *m = (GstDsocrEmbeddingsMeta *) meta;

  if (!content_meta_transform_kept (type))
    return FALSE;
  if (gst_buffer_get_dsocr_embeddings_meta (dest))
    return TRUE;
  return gst_buffer_add_dsocr_embeddings_meta (dest, m->embeddings) != NULL;
}

const GstMetaInfo *
gst_dsocr_embeddings_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter (&info)) {
    const GstMetaInfo *i = gst_meta_register (GST_DSOCR_EMBEDDINGS_META_API_TYPE,
        "GstDsocrEmbeddingsMeta", sizeof (GstDsocrEmbeddingsMeta),
        embeddings_meta_init, embeddings_meta_free, embeddings_meta_transform);
    g_once_init_leave (&info, i);
  }
  return info;
}

GstDsocrEmbeddingsMeta *
gst_buffer_add_dsocr_embeddings_meta (GstBuffer * buffer,
    GstDsocrEmbeddings * emb)
{
  GstDsocrEmbeddingsMeta *m;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (emb != NULL, NULL);

  m = (GstDsocrEmbeddingsMeta *) gst_buffer_add_meta (buffer,
      GST_DSOCR_EMBEDDINGS_META_INFO, NULL);
  if (m)
    m->embeddings = gst_dsocr_embeddings_ref (emb);
  return m;
}

/* ---- custom metas: result and class ---- */

static const GstMetaInfo *
register_custom (const gchar * name)
{
  /* No tags: plain copies keep them; the default custom transform copies the structure on
   * copies and drops the meta on any other transform, which is what pixel boxes need. */
  static const gchar *tags[] = { NULL };

  return gst_meta_register_custom (name, tags, NULL, NULL, NULL);
}

const GstMetaInfo *
gst_dsocr_result_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter (&info)) {
    const GstMetaInfo *i = register_custom (GST_DSOCR_RESULT_META_NAME);
    g_once_init_leave (&info, i);
  }
  return info;
}

const GstMetaInfo *
gst_dsocr_class_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter (&info)) {
    const GstMetaInfo *i = register_custom (GST_DSOCR_CLASS_META_NAME);
    g_once_init_leave (&info, i);
  }
  return info;
}

static gboolean
copy_field (GQuark field, const GValue * value, gpointer dest)
{
  gst_structure_id_set_value (dest, field, value);
  return TRUE;
}

static GstCustomMeta *
add_custom_meta (GstBuffer * buffer, const gchar * name,
    const gchar * struct_name, const GstStructure * fields)
{
  GstCustomMeta *meta;
  GstStructure *s;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (fields != NULL, NULL);
  g_return_val_if_fail (gst_structure_has_name (fields, struct_name), NULL);

  meta = gst_buffer_add_custom_meta (buffer, name);
  if (!meta)
    return NULL;
  s = gst_custom_meta_get_structure (meta);
  gst_structure_set_name (s, struct_name);
  gst_structure_foreach (fields, copy_field, s);
  return meta;
}

GstCustomMeta *
gst_buffer_add_dsocr_result_meta (GstBuffer * buffer,
    const GstStructure * fields)
{
  gst_dsocr_result_meta_get_info ();
  return add_custom_meta (buffer, GST_DSOCR_RESULT_META_NAME,
      GST_DSOCR_RESULT_STRUCTURE_NAME, fields);
}

GstCustomMeta *
gst_buffer_add_dsocr_class_meta (GstBuffer * buffer, const GstStructure * fields)
{
  gst_dsocr_class_meta_get_info ();
  return add_custom_meta (buffer, GST_DSOCR_CLASS_META_NAME,
      GST_DSOCR_CLASS_STRUCTURE_NAME, fields);
}

static const GstStructure *
get_custom (GstBuffer * buffer, const gchar * name)
{
  GstCustomMeta *meta = gst_buffer_get_custom_meta (buffer, name);

  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

const GstStructure *
gst_buffer_get_dsocr_result (GstBuffer * buffer)
{
  return get_custom (buffer, GST_DSOCR_RESULT_META_NAME);
}

const GstStructure *
gst_buffer_get_dsocr_class (GstBuffer * buffer)
{
  return get_custom (buffer, GST_DSOCR_CLASS_META_NAME);
}

void
gst_dsocr_meta_register (void)
{
  gst_dsocr_mode_get_type ();
  gst_dsocr_result_flags_get_type ();
  gst_dsocr_tiles_get_type ();
  gst_dsocr_embeddings_get_type ();
  gst_dsocr_tiles_meta_get_info ();
  gst_dsocr_embeddings_meta_get_info ();
  gst_dsocr_result_meta_get_info ();
  gst_dsocr_class_meta_get_info ();
}
