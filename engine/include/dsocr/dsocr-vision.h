/* dsocr-vision.h: DeepSeek-OCR's vision tower on the CPU: SAM ViT-B, CLIP-L fed by SAM's
 * features, the linear projector, and the packing of the views into the embedding sequence
 * that replaces the image placeholder tokens of the prompt.
 *
 *   dsocr_vision *vis = dsocr_vision_new (ckpt, cfg, &error);        // DeepSeek-OCR only
 *   dsocr_vision_session *vs = dsocr_vision_session_new (vis, NULL, &error);   // per stream
 *   dsocr_preprocessed *pp = dsocr_preprocess (&view, &params, &error);
 *   dsocr_tensor *emb = dsocr_vision_encode (vs, pp, &error);
 *   // emb: [pp->n_image_tokens, n_embed] f32, written over the placeholders in order
 *   dsocr_tensor_free (emb);
 *   dsocr_preprocessed_free (pp);
 *   dsocr_vision_session_free (vs);
 *   dsocr_vision_unref (vis);
 *
 * What it computes (the reference is deepencoder/ and DeepseekOCRForCausalLM.
 * _pixel_values_to_embedding of the official DeepSeek-OCR code, in f32 from the stored
 * weights):
 *   view (S x S pixels, S a multiple of 16; 512, 640, 1024, 1280 in the released modes)
 *     -> SAM: 16x16 patches + absolute positions, ViT blocks (windowed 14x14 or global, with
 *        decomposed relative positions), neck, two stride-2 convs -> [n * n, 1024], n = S / 64
 *     -> CLIP: CLS + those tokens + positions, pre-LayerNorm, 24 blocks -> [n * n + 1, 1024]
 *     -> projector: Linear(cat(CLIP without CLS, SAM)) -> [n * n, n_embed]
 *   Positions tables are resampled for sizes other than 1024 as the reference does (bicubic
 *   with antialias, linear for the relative tables). Pixels are rounded to bf16 first, the
 *   cast the reference applies before SAM, so F32 and F32_BF16 preprocessing give the same
 *   result.
 *   packing: the local tiles as one (10 rows) x (10 cols) grid with image_newline closing each
 *   row, then the global view's n x n grid the same way, then view_seperator:
 *   rows * 10 * (cols * 10 + 1) + n * (n + 1) + 1 embeddings.
 *
 * Ownership: the tower borrows its weights from the checkpoint, on which it holds a
 * reference; it is immutable once built and shared by any number of vision sessions. A vision
 * session encodes on one backend (dsocr-backend.h) with its own scratch memory, sized by its
 * first views and kept for the next: one session per thread that encodes.
 * Errors are DSOCR_ERROR_SHAPE (missing or misshapen tensor, named), DSOCR_ERROR_UNSUPPORTED
 * (a weight dtype other than F32/BF16/F16, a config that is not DeepSeek-OCR),
 * DSOCR_ERROR_INVALID (a bad view size or tile grid) and DSOCR_ERROR_NOMEM.
 */
#ifndef DSOCR_VISION_H
#define DSOCR_VISION_H

#include <glib.h>

#include <dsocr/dsocr-backend.h>
#include <dsocr/dsocr-checkpoint.h>
#include <dsocr/dsocr-config.h>
#include <dsocr/dsocr-preprocess.h>
#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

typedef struct dsocr_vision dsocr_vision;
typedef struct dsocr_vision_session dsocr_vision_session;

/* Builds the tower from @ckpt (model.sam_model.*, model.vision_model.*, model.projector.*,
 * model.image_newline, model.view_seperator, or their transformers-native names) with the
 * sizes of @cfg->vision; every tensor's shape and dtype is checked here.
 * @ckpt, @cfg: (transfer none); the tower takes a reference on @ckpt and copies what it needs
 * from @cfg.
 * Returns: (transfer full) the tower with one reference, or NULL with @error set. */
dsocr_vision *dsocr_vision_new (dsocr_checkpoint *ckpt, const dsocr_config *cfg, GError **error);

/* Returns @vision with one more reference (transfer full). Thread-safe. */
dsocr_vision *dsocr_vision_ref (dsocr_vision *vision);
/* Drops a reference; the last one frees the tower. NULL is a no-op. Thread-safe. */
void dsocr_vision_unref (dsocr_vision *vision);

/* Width of the embeddings produced (projector n_embed = the decoder's hidden size). */
int dsocr_vision_get_n_embed (const dsocr_vision *vision);

/* Side n of the feature grid of a @size x @size view (size / 64 for multiples of 64), or 0
 * when @size is not a positive multiple of SAM's patch size (16). */
int dsocr_vision_grid_side (const dsocr_vision *vision, int size);

/* A session encoding with @vision (referenced) on @backend (referenced; NULL: a CPU backend
 * of its own using every processor). Returns (transfer full) the session, or NULL with @error
 * (DSOCR_ERROR_DEVICE, DSOCR_ERROR_NOMEM when the weights cannot be prepared there). */
dsocr_vision_session *dsocr_vision_session_new (dsocr_vision *vision, dsocr_backend *backend,
                                                GError **error);
void dsocr_vision_session_free (dsocr_vision_session *session);
/* The tower and the backend (transfer none). */
dsocr_vision *dsocr_vision_session_get_vision (const dsocr_vision_session *session);
dsocr_backend *dsocr_vision_session_get_backend (const dsocr_vision_session *session);
/* Bytes of the tower's weights as prepared for the session's device (every precision keeps
 * them as stored: the tower is bound by arithmetic, not by reading weights). */
gsize dsocr_vision_session_get_weight_bytes (const dsocr_vision_session *session);

/* Most views dsocr_vision_encode_views() takes in one call. */
#define DSOCR_VISION_MAX_VIEWS 256
/* Views of one size dsocr_vision_encode() and _encode_batch() encode per call of
 * dsocr_vision_encode_views() (the activations grow with the batch). */
#define DSOCR_VISION_BATCH 8

/* Encodes one view: @pixels [3, size, size] normalised as dsocr_preprocess() writes them ->
 * @out [n * n, n_embed], n = dsocr_vision_grid_side(). @pixels and @out are (transfer none).
 * FALSE with DSOCR_ERROR_INVALID for a bad size, or DSOCR_ERROR_NOMEM. */
gboolean dsocr_vision_encode_view (dsocr_vision_session *session, const float *pixels,
                                   int size, float *out, GError **error);

/* Encodes @n_views views of one size as a batch: @pixels [n_views, 3, size, size] ->
 * @out [n_views, n * n, n_embed]. The linear layers run once over the tokens of all views,
 * which keeps the matrix units busy on small views; attention stays within each view, so
 * view i's rows equal dsocr_vision_encode_view() on it. Memory for activations grows with
 * @n_views (1 .. DSOCR_VISION_MAX_VIEWS). Errors as dsocr_vision_encode_view(), plus
 * DSOCR_ERROR_INVALID for @n_views out of range. */
gboolean dsocr_vision_encode_views (dsocr_vision_session *session, const float *pixels,
                                    int n_views, int size, float *out, GError **error);

/* Number of embeddings dsocr_vision_pack() writes: n (n + 1) + 1, plus (m rows)(m cols + 1)
 * when there are tiles (@cols * @rows > 0; pass 0, 0 for none). -1 for negative arguments. */
int dsocr_vision_pack_n_tokens (int n, int m, int cols, int rows);

/* Packs encoded views in the reference order.
 * @global: [n * n, n_embed]; @tiles: [cols * rows, m * m, n_embed] with tile k at grid row
 * k / cols, column k % cols, or NULL with @cols = @rows = 0.
 * @out: [dsocr_vision_pack_n_tokens (n, m, cols, rows), n_embed]. */
gboolean dsocr_vision_pack (const dsocr_vision *vision, const float *global, int n,
                            const float *tiles, int m, int cols, int rows, float *out,
                            GError **error);

/* The whole image: encodes @pp's global view and tiles (F32 or BF16 pixel tensors) and packs
 * them. Returns (transfer full) an F32 tensor [n_tokens, n_embed] with n_tokens equal to
 * @pp->n_image_tokens, or NULL with @error set. */
dsocr_tensor *dsocr_vision_encode (dsocr_vision_session *session, const dsocr_preprocessed *pp,
                                   GError **error);

/* Encodes @n_images images as one batch: the views of all images (their tiles and global
 * views) are grouped by size and encoded DSOCR_VISION_BATCH at a time, then packed per image.
 * @pps: (array length=n_images) (transfer none); @out: (array length=n_images) receives
 * (transfer full) one tensor per image, equal to dsocr_vision_encode() of it.
 * On failure every out[i] is NULL and @error is set. */
gboolean dsocr_vision_encode_batch (dsocr_vision_session *session,
                                    const dsocr_preprocessed *const *pps, int n_images,
                                    dsocr_tensor **out, GError **error);

G_END_DECLS

#endif /* DSOCR_VISION_H */
