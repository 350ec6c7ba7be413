/* gstdsocrmeta.h: what the dsocr elements hang on the buffers that flow through them.
 *
 * The video frame always passes through; the model's intermediate and final results travel
 * with it as metas:
 *
 *   dsocrpreprocess  -> GstDsocrTilesMeta        the prepared views (global view + tiles)
 *   dsocrencode      -> GstDsocrEmbeddingsMeta   the vision embeddings of those views
 *   dsocrdecode      -> "DsocrResultMeta"        markdown, JSON, flags (a GstCustomMeta)
 *                       GstVideoRegionOfInterestMeta, one per grounding box
 *   dsclassify       -> "DsocrClassMeta"         label scores (a GstCustomMeta)
 *
 * The tiles and embeddings metas hold engine tensors by reference (GstDsocrTiles,
 * GstDsocrEmbeddings: immutable once built, atomically ref-counted), so copying a buffer or
 * its metas never copies tensor memory. The result and class metas are GstCustomMetas whose
 * structures hold plain values (strings, numbers, arrays), readable from any language binding
 * with gst_buffer_get_custom_meta() and gst_custom_meta_get_structure().
 *
 * Transforms: the tiles and embeddings metas describe the page content, not its pixels, so
 * they are kept by copies and by scaling (videoscale, videoconvertscale); boxes are mapped to
 * pixels of the frame the decoder sees. The result and class metas are kept by copies only
 * (their JSON holds pixel boxes); region-of-interest metas follow GStreamer's own rules
 * (scaled with the frame).
 */
#ifndef __GST_DSOCR_META_H__
#define __GST_DSOCR_META_H__

#include <gst/gst.h>

#include <dsocr/dsocr-ocr.h>
#include <dsocr/dsocr-preprocess.h>
#include <dsocr/dsocr-result.h>
#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

/* ---- enums shared by the elements' properties and metas ---- */

/**
 * GstDsocrMode:
 * @GST_DSOCR_MODE_TINY: 512 x 512 global view, aspect not kept
 * @GST_DSOCR_MODE_SMALL: 640 x 640 global view, aspect not kept
 * @GST_DSOCR_MODE_BASE: 1024 x 1024 padded global view
 * @GST_DSOCR_MODE_LARGE: 1280 x 1280 padded global view
 * @GST_DSOCR_MODE_GUNDAM: 1024 x 1024 padded global view plus 640 x 640 tiles
 *
 * The DeepSeek-OCR resolution modes; values equal the engine's dsocr_mode.
 */
typedef enum
{
  GST_DSOCR_MODE_TINY = DSOCR_MODE_TINY,
  GST_DSOCR_MODE_SMALL = DSOCR_MODE_SMALL,
  GST_DSOCR_MODE_BASE = DSOCR_MODE_BASE,
  GST_DSOCR_MODE_LARGE = DSOCR_MODE_LARGE,
  GST_DSOCR_MODE_GUNDAM = DSOCR_MODE_GUNDAM,
} GstDsocrMode;

#define GST_TYPE_DSOCR_MODE (gst_dsocr_mode_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_mode_get_type (void);

/**
 * GstDsocrResultFlags:
 * @GST_DSOCR_RESULT_FLAG_NONE: nothing to report
 * @GST_DSOCR_RESULT_FLAG_HIT_TOKEN_LIMIT: generation stopped at max-new-tokens: the page may be
 *   cut short
 * @GST_DSOCR_RESULT_FLAG_REPETITION_STOPPED: generation was stopped because it repeated itself
 * @GST_DSOCR_RESULT_FLAG_MALFORMED: the model's output broke the grounding format somewhere
 *   (kept as text or dropped)
 *
 * Values equal the engine's dsocr_result_flags.
 */
typedef enum
{
  GST_DSOCR_RESULT_FLAG_NONE = 0,
  GST_DSOCR_RESULT_FLAG_HIT_TOKEN_LIMIT = 1 << 0,
  GST_DSOCR_RESULT_FLAG_REPETITION_STOPPED = 1 << 1,
  GST_DSOCR_RESULT_FLAG_MALFORMED = 1 << 2,
} GstDsocrResultFlags;

#define GST_TYPE_DSOCR_RESULT_FLAGS (gst_dsocr_result_flags_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_result_flags_get_type (void);

/* ---- GstDsocrTiles: the prepared views of one frame ---- */

/**
 * GstDsocrTiles:
 * @pp: (transfer full): the engine's preprocessing result: pp->global [3, S, S], pp->tiles
 *   [n_tiles, 3, 640, 640] or NULL, the grid, the original size and the padding of the
 *   global view (content_x/y/width/height)
 * @mode: the mode the views were made in
 *
 * Immutable once made and shared by reference (g_atomic_rc_box): any thread may read it.
 */
typedef struct
{
  dsocr_preprocessed *pp;
  GstDsocrMode mode;
} GstDsocrTiles;

#define GST_TYPE_DSOCR_TILES (gst_dsocr_tiles_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_tiles_get_type (void);

/* Wraps @pp (transfer full: freed with the last reference). Returns (transfer full). */
G_GNUC_INTERNAL GstDsocrTiles *gst_dsocr_tiles_new (dsocr_preprocessed * pp,
    GstDsocrMode mode);
/* Returns @tiles with one more reference (transfer full). */
G_GNUC_INTERNAL GstDsocrTiles *gst_dsocr_tiles_ref (GstDsocrTiles * tiles);
/* Drops a reference; the last one frees the tensors. NULL is a no-op. */
G_GNUC_INTERNAL void gst_dsocr_tiles_unref (GstDsocrTiles * tiles);

/**
 * GstDsocrTilesMeta:
 * @meta: parent
 * @tiles: (transfer full): one reference, dropped with the meta
 *
 * Attached by dsocrpreprocess.
 */
typedef struct
{
  GstMeta meta;
  GstDsocrTiles *tiles;
} GstDsocrTilesMeta;

#define GST_DSOCR_TILES_META_API_TYPE (gst_dsocr_tiles_meta_api_get_type ())
#define GST_DSOCR_TILES_META_INFO (gst_dsocr_tiles_meta_get_info ())
G_GNUC_INTERNAL GType gst_dsocr_tiles_meta_api_get_type (void);
G_GNUC_INTERNAL const GstMetaInfo *gst_dsocr_tiles_meta_get_info (void);

/* Attaches @tiles (transfer none: the meta takes its own reference) to the writable @buffer.
 * Returns (transfer none) the meta. */
G_GNUC_INTERNAL GstDsocrTilesMeta *gst_buffer_add_dsocr_tiles_meta (GstBuffer *
    buffer, GstDsocrTiles * tiles);
/* The tiles meta of @buffer, or NULL. (transfer none) */
#define gst_buffer_get_dsocr_tiles_meta(b) \
  ((GstDsocrTilesMeta *) gst_buffer_get_meta ((b), GST_DSOCR_TILES_META_API_TYPE))

/* ---- GstDsocrEmbeddings: the vision tower's output for one frame ---- */

/**
 * GstDsocrEmbeddings:
 * @emb: (transfer full): one reference to the engine's embeddings
 * @embeds: (transfer none): their rows, borrowed from @emb: F32 [n_image_tokens, n_embd],
 *   the rows that replace the image placeholder tokens of the prompt, in order
 * @mode: the mode of the views they were computed from
 * @grid_cols: tiles across (1 without tiles)
 * @grid_rows: tiles down (1 without tiles)
 * @orig_width: size of the frame the views were made from
 * @orig_height: same
 *
 * Immutable once made and shared by reference (g_atomic_rc_box).
 */
typedef struct
{
  dsocr_ocr_embeddings *emb;
  const dsocr_tensor *embeds;
  GstDsocrMode mode;
  gint grid_cols;
  gint grid_rows;
  gint orig_width;
  gint orig_height;
} GstDsocrEmbeddings;

#define GST_TYPE_DSOCR_EMBEDDINGS (gst_dsocr_embeddings_get_type ())
G_GNUC_INTERNAL GType gst_dsocr_embeddings_get_type (void);

/* Wraps @emb (transfer full) with the geometry of @tiles (transfer none, read only).
 * Returns (transfer full). */
G_GNUC_INTERNAL GstDsocrEmbeddings *gst_dsocr_embeddings_new (dsocr_ocr_embeddings *
    emb, const GstDsocrTiles * tiles);
G_GNUC_INTERNAL GstDsocrEmbeddings *gst_dsocr_embeddings_ref (GstDsocrEmbeddings *
    emb);
G_GNUC_INTERNAL void gst_dsocr_embeddings_unref (GstDsocrEmbeddings * emb);

/**
 * GstDsocrEmbeddingsMeta:
 * @meta: parent
 * @embeddings: (transfer full): one reference, dropped with the meta
 *
 * Attached by dsocrencode.
 */
typedef struct
{
  GstMeta meta;
  GstDsocrEmbeddings *embeddings;
} GstDsocrEmbeddingsMeta;

#define GST_DSOCR_EMBEDDINGS_META_API_TYPE (gst_dsocr_embeddings_meta_api_get_type ())
#define GST_DSOCR_EMBEDDINGS_META_INFO (gst_dsocr_embeddings_meta_get_info ())
G_GNUC_INTERNAL GType gst_dsocr_embeddings_meta_api_get_type (void);
G_GNUC_INTERNAL const GstMetaInfo *gst_dsocr_embeddings_meta_get_info (void);

/* Attaches @emb (transfer none: the meta takes its own reference) to the writable @buffer. */
G_GNUC_INTERNAL GstDsocrEmbeddingsMeta *gst_buffer_add_dsocr_embeddings_meta (GstBuffer
    * buffer, GstDsocrEmbeddings * emb);
#define gst_buffer_get_dsocr_embeddings_meta(b) \
  ((GstDsocrEmbeddingsMeta *) gst_buffer_get_meta ((b), GST_DSOCR_EMBEDDINGS_META_API_TYPE))

/* ---- the result meta (GstCustomMeta) ---- */

/**
 * GST_DSOCR_RESULT_META_NAME:
 *
 * Name of the #GstCustomMeta dsocrdecode attaches to every frame it recognised. Its
 * structure (named "dsocr-result") has:
 * - `markdown` (string): the page as markdown, image regions linked as `![](images/N.jpg)`
 * - `json` (string): the whole result as one line of JSON (docs/result-json.md)
 * - `raw-text` (string): the model's output, grounding tags kept
 * - `flags` (#GstDsocrResultFlags)
 * - `width`, `height` (int): the frame size the pixel boxes refer to
 * - `n-regions` (int): grounding matches (one #GstVideoRegionOfInterestMeta per box)
 * - `n-tokens` (uint): tokens generated
 * - `page` (int): 1-based page number when the frame carried a DsocrPageMeta, else -1
 */
#define GST_DSOCR_RESULT_META_NAME "DsocrResultMeta"
#define GST_DSOCR_RESULT_STRUCTURE_NAME "dsocr-result"

/* Registers the result meta (once per process) and returns its info. (transfer none) */
G_GNUC_INTERNAL const GstMetaInfo *gst_dsocr_result_meta_get_info (void);

/* Attaches a result meta to the writable @buffer holding a copy of @fields (transfer none),
 * whose name must be GST_DSOCR_RESULT_STRUCTURE_NAME. Returns (transfer none) the meta. */
G_GNUC_INTERNAL GstCustomMeta *gst_buffer_add_dsocr_result_meta (GstBuffer * buffer,
    const GstStructure * fields);

/* The structure of @buffer's result meta (transfer none, valid while the buffer is), or
 * NULL when it has none. */
G_GNUC_INTERNAL const GstStructure *gst_buffer_get_dsocr_result (GstBuffer * buffer);

/**
 * GST_DSOCR_REGION_PARAMS_NAME:
 *
 * Name of the parameter structure on each #GstVideoRegionOfInterestMeta of dsocrdecode:
 * `text` (string, the region's text, possibly empty), `region` (int, index of the grounding
 * match on the page), `box` (int, index of the box within the match), `image` (string, the
 * crop file name the markdown links for an image region, absent otherwise), `malformed`
 * (boolean). The meta's roi_type is the label ("title", "text", "table", "image", ...).
 */
#define GST_DSOCR_REGION_PARAMS_NAME "dsocr/region"

/* ---- the classification meta (GstCustomMeta) ---- */

/**
 * GST_DSOCR_CLASS_META_NAME:
 *
 * Name of the #GstCustomMeta dsclassify attaches. Its structure (named "dsocr-class") has
 * `label` (string, the best label), `score` (double, its probability), `labels` (array of
 * strings, every label in the model's order), `scores` (array of doubles, softmax
 * probabilities in that order) and `logits` (array of doubles).
 */
#define GST_DSOCR_CLASS_META_NAME "DsocrClassMeta"
#define GST_DSOCR_CLASS_STRUCTURE_NAME "dsocr-class"

G_GNUC_INTERNAL const GstMetaInfo *gst_dsocr_class_meta_get_info (void);

/* Attaches a class meta holding a copy of @fields (transfer none). */
G_GNUC_INTERNAL GstCustomMeta *gst_buffer_add_dsocr_class_meta (GstBuffer * buffer,
    const GstStructure * fields);

/* The structure of @buffer's class meta (transfer none), or NULL. */
G_GNUC_INTERNAL const GstStructure *gst_buffer_get_dsocr_class (GstBuffer * buffer);

/* The result structure (named GST_DSOCR_RESULT_STRUCTURE_NAME, fields as documented above)
 * of the engine result @r (transfer none, read only), made by @n_tokens generated tokens,
 * for page @page (1-based, -1: none). Returns (transfer full). */
G_GNUC_INTERNAL GstStructure *gst_dsocr_result_fields_new (const dsocr_result * r,
    guint n_tokens, gint page);

/* Attaches one GstVideoRegionOfInterestMeta per non-empty box of @r to the writable @buffer
 * (roi_type: the label; params: GST_DSOCR_REGION_PARAMS_NAME). Returns how many. */
G_GNUC_INTERNAL guint gst_buffer_add_dsocr_regions (GstBuffer * buffer,
    const dsocr_result * r);

/* Copies the result meta and the region-of-interest metas of @src (and no other meta) to
 * the writable @dest. */
G_GNUC_INTERNAL void gst_dsocr_copy_result_metas (GstBuffer * dest, GstBuffer * src);

/* A coarse picture of the page @tiles shows: @sig receives [GST_DSOCR_SIGNATURE_SIDE^2]
 * mean grey levels (0..255) of the global view, for telling unchanged pages apart. */
#define GST_DSOCR_SIGNATURE_SIDE 16
G_GNUC_INTERNAL void gst_dsocr_tiles_signature (const GstDsocrTiles * tiles,
    gfloat * sig);

/* Registers every meta and type above; called by each element's class_init. */
G_GNUC_INTERNAL void gst_dsocr_meta_register (void);

G_END_DECLS

#endif /* __GST_DSOCR_META_H__ */
