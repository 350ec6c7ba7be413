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

  dsocr_ocr_embeddings_unref (emb->emb);
}

GstDsocrEmbeddings *
gst_dsocr_embeddings_new (dsocr_ocr_embeddings * ocr_emb,
    const GstDsocrTiles * tiles)
{
  GstDsocrEmbeddings *emb = g_atomic_rc_box_new0 (GstDsocrEmbeddings);

  emb->emb = ocr_emb;
  emb->embeds = dsocr_ocr_embeddings_get_tensor (ocr_emb);
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

/* ---- results as metas ---- */

GstStructure *
gst_dsocr_result_fields_new (const dsocr_result * r, guint n_tokens, gint page)
{
  gchar *json = dsocr_result_to_json (r, FALSE);
  gint n_regions = 0;
  GstStructure *s;

  dsocr_result_get_regions (r, &n_regions);
  s = gst_structure_new (GST_DSOCR_RESULT_STRUCTURE_NAME,
      "markdown", G_TYPE_STRING, dsocr_result_get_markdown (r),
      "json", G_TYPE_STRING, json,
      "raw-text", G_TYPE_STRING, dsocr_result_get_raw_text (r),
      "flags", GST_TYPE_DSOCR_RESULT_FLAGS,
      (guint) dsocr_result_get_flags (r),
      "width", G_TYPE_INT, dsocr_result_get_width (r),
      "height", G_TYPE_INT, dsocr_result_get_height (r),
      "n-regions", G_TYPE_INT, n_regions,
      "n-tokens", G_TYPE_UINT, n_tokens, "page", G_TYPE_INT, page, NULL);
  g_free (json);
  return s;
}

guint
gst_buffer_add_dsocr_regions (GstBuffer * buffer, const dsocr_result * r)
{
  gint n_regions = 0, i, j;
  const dsocr_region *regions = dsocr_result_get_regions (r, &n_regions);
  guint n = 0;

  for (i = 0; i < n_regions; i++) {
    const dsocr_region *reg = &regions[i];

    for (j = 0; j < reg->n_boxes; j++) {
      const dsocr_box *box = &reg->boxes[j];
      GstVideoRegionOfInterestMeta *roi;
      GstStructure *params;

      if (box->empty)
        continue;
      roi = gst_buffer_add_video_region_of_interest_meta (buffer, reg->label,
          box->x1, box->y1, box->x2 - box->x1, box->y2 - box->y1);
      params = gst_structure_new (GST_DSOCR_REGION_PARAMS_NAME,
          "text", G_TYPE_STRING, reg->text ? reg->text : "",
          "region", G_TYPE_INT, i, "box", G_TYPE_INT, j,
          "malformed", G_TYPE_BOOLEAN, reg->malformed || box->malformed, NULL);
      if (reg->image_name)
        gst_structure_set (params, "image", G_TYPE_STRING, reg->image_name,
            NULL);
      gst_video_region_of_interest_meta_add_param (roi, params);
      n++;
    }
  }
  return n;
}

void
gst_dsocr_copy_result_metas (GstBuffer * dest, GstBuffer * src)
{
  const GstMetaInfo *result_info = gst_dsocr_result_meta_get_info ();
  GstMetaTransformCopy copy = { FALSE, 0, (gsize) - 1 };
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta (src, &state))) {
    if (meta->info != result_info &&
        meta->info->api != GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)
      continue;
    meta->info->transform_func (dest, meta, src, _gst_meta_transform_copy,
        &copy);
  }
}

/* The value of element @i of the CPU pixel tensor @t (F32 or BF16). */
static inline gfloat
pixel_at (const dsocr_tensor * t, gsize i)
{
  if (t->dtype == DSOCR_DTYPE_BF16) {
    union
    {
      guint32 u;
      gfloat f;
    } v;

    v.u = (guint32) ((const guint16 *) t->data)[i] << 16;
    return v.f;
  }
  return ((const gfloat *) t->data)[i];
}

void
gst_dsocr_tiles_signature (const GstDsocrTiles * tiles, gfloat * sig)
{
  const dsocr_tensor *g = tiles->pp->global;    /* [3, S, S] in [-1, 1] */
  gint side = (gint) g->shape[2], n = GST_DSOCR_SIGNATURE_SIDE;
  /* a few samples per cell and channel are plenty to see a page change */
  gint step = MAX (1, side / (n * 8));
  gint cy, cx, c, y, x;

  for (cy = 0; cy < n; cy++)
    for (cx = 0; cx < n; cx++) {
      gint y0 = cy * side / n, y1 = (cy + 1) * side / n;
      gint x0 = cx * side / n, x1 = (cx + 1) * side / n;
      gdouble sum = 0;
      gsize count = 0;

      for (c = 0; c < 3; c++)
        for (y = y0; y < y1; y += step)
          for (x = x0; x < x1; x += step) {
            sum += pixel_at (g, ((gsize) c * side + y) * side + x);
            count++;
          }
      sig[cy * n + cx] = count ? (gfloat) ((sum / count + 1.0) * 127.5) : 0.f;
    }
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
