/* vision.h: internals of the DeepSeek-OCR vision tower (vision.c, sam.c, clip.c,
 * projector.c), shared with the engine's tests.
 *
 * Activations are f32 and channels-last: a SAM feature map of side g is [g * g, channels],
 * tokens row-major, which is also the order in which the reference flattens it
 * (flatten(2).permute(0, 2, 1)). Weights stay in their checkpoint dtype; LayerNorm parameters
 * and the learned tables are widened to f32 at load. Every tensor of a weight set lives on the
 * device the set was prepared for. */
#ifndef DSOCR_VISION_INTERNAL_H
#define DSOCR_VISION_INTERNAL_H

#include <glib.h>

#include "backend.h"
#include "dsocr/dsocr-vision.h"

G_BEGIN_DECLS

typedef struct {
  dsk_tensor norm1_w, norm1_b, norm2_w, norm2_b;   /* [width] F32 */
  dsk_tensor qkv_w, qkv_b;      /* [3 * width, width], [3 * width]: q | k | v, heads inside */
  dsk_tensor proj_w, proj_b;    /* [width, width], [width] */
  dsk_tensor lin1_w, lin1_b;    /* [mlp, width], [mlp] */
  dsk_tensor lin2_w, lin2_b;    /* [width, mlp], [width] */
  dsk_tensor rel_h, rel_w;      /* [rel_len, head_dim] F32 */
  int rel_len;                  /* 2 * window - 1, or 2 * pos_grid - 1 for a global block */
  int window;                   /* 0: global attention */
} vis_sam_block;

typedef struct {
  dsk_tensor ln1_w, ln1_b, ln2_w, ln2_b;   /* [width] F32 */
  dsk_tensor qkv_w, qkv_b;      /* [3 * width, width], [3 * width] */
  dsk_tensor out_w, out_b;      /* [width, width], [width] */
  dsk_tensor fc1_w, fc1_b;      /* [ffn, width], [ffn] */
  dsk_tensor fc2_w, fc2_b;      /* [width, ffn], [width] */
} vis_clip_layer;

/* The tower's weights on one device. */
typedef struct {
  /* SAM ViT-B */
  dsk_tensor patch_w, patch_b;  /* [width, 3, patch, patch], [width] */
  dsk_tensor sam_pos;           /* [pos_grid, pos_grid, width] F32 */
  vis_sam_block *blocks;        /* [n_blocks] */
  dsk_tensor neck_conv1;        /* [out_chans, width, 1, 1] */
  dsk_tensor neck_ln1_w, neck_ln1_b;
  dsk_tensor neck_conv2;        /* [out_chans, out_chans, 3, 3] */
  dsk_tensor neck_ln2_w, neck_ln2_b;
  dsk_tensor down[DSOCR_CONFIG_MAX_DOWNSAMPLE]; /* net_2, net_3: [c_i, c_{i-1}, 3, 3] */
  /* CLIP-L */
  dsk_tensor cls;               /* [clip_width] F32 */
  dsk_tensor clip_pos;          /* [clip_grid^2 + 1, clip_width] F32, row 0: CLS */
  dsk_tensor pre_w, pre_b;
  vis_clip_layer *layers;       /* [n_layers] */
  /* projector and the special embeddings */
  dsk_tensor proj_w, proj_b;    /* [n_embed, clip_width + sam_out], [n_embed] */
  dsk_tensor newline;           /* [n_embed] F32 image_newline */
  dsk_tensor separator;         /* [n_embed] F32 view_seperator */
} vis_weights;

struct dsocr_vision {
  gint ref_count;
  dsocr_checkpoint *ckpt;       /* host weights are borrowed from it */
  GPtrArray *owned;             /* aligned copies and f32 tables, freed with the tower */

  /* SAM ViT-B */
  int sam_width, sam_heads, sam_mlp, patch, window, out_chans;
  int pos_grid;                 /* side of pos_embed: image_size / patch (64) */
  int n_blocks;
  int n_down;                   /* stride-2 3x3 convs after the neck (2) */
  int down_ch[DSOCR_CONFIG_MAX_DOWNSAMPLE];
  int sam_out;                  /* channels of the SAM output */
  /* CLIP-L */
  int clip_width, clip_heads, clip_ffn, n_layers;
  int clip_grid;                /* side of the position grid: image_size / patch (16) */
  /* projector */
  int n_embed;

  vis_weights host;             /* as loaded */
  struct dsocr_weight_sets *sets;  /* host prepared per device (weight-sets.h) */
};

struct dsocr_vision_session {
  dsocr_vision *vision;         /* a reference */
  const vis_weights *w;         /* prepared for be's device */
  gsize weight_bytes;           /* what they take */
  dsk_backend *be;              /* a reference */
  dsk_arena *pass;              /* tensors of one call: the encoded views, the packed images */
  dsk_arena *batch;             /* tensors of one batch of views (SAM, CLIP activations) */
  dsk_arena *scratch;           /* tensors of one block, reset per block */
  /* the window partition of a g x g grid of B views (sam.c), kept for the next call */
  dsk_buffer *win_buf;
  int win_g, win_b;
  dsk_tensor win_gather;        /* [B * nw^2 * w^2] I32: grid row of each window token, or -1 */
  dsk_tensor win_scatter;       /* [B * g^2] I32: window row of each grid token */
};

/* Side of the SAM output grid for a view of @size pixels (the patch grid halved, rounding up,
 * by each stride-2 conv), 0 when @size is not a positive multiple of the patch size. */
int vis_grid_side (const dsocr_vision *v, int size);

/* ---- stages on the session's backend ---- */

/* SAM on @n_views views: @pixels [n_views * 3 * size * size] (bf16-rounded) ->
 * @out [n_views * g * g, sam_out], g = vis_grid_side(). The linear layers run over the rows of
 * all views together; attention batches the views; convolutions go view by view. */
void vis_sam (dsocr_vision_session *vs, const dsk_tensor *pixels, int n_views, int size,
              const dsk_tensor *out);
/* SAM's absolute positions for a @grid x @grid patch grid: @out [grid, grid, sam_width]. */
void vis_sam_positions (dsocr_vision_session *vs, int grid, const dsk_tensor *out);
/* Block @b's relative-position tables for a @size x @size attention:
 * @out_h, @out_w [2 * size - 1, head_dim], linearly resampled when the stored length differs. */
void vis_sam_rel (dsocr_vision_session *vs, int b, int size, const dsk_tensor *out_h,
                  const dsk_tensor *out_w);
/* CLIP on @n_views views: @sam [n_views * g * g, clip_width] -> @out [n_views * (g*g + 1),
 * clip_width], row 0 of each view the CLS token. */
void vis_clip (dsocr_vision_session *vs, const dsk_tensor *sam, int n_views, int g,
               const dsk_tensor *out);
/* CLIP's position table for a @g x @g grid: @out [g * g + 1, clip_width] (row 0: CLS). */
void vis_clip_positions (dsocr_vision_session *vs, int g, const dsk_tensor *out);
/* Projector: @out [n_views * n, n_embed] = Linear(cat(@clip rows 1..n of each view
 * [n_views * (n + 1), clip_width], @sam [n_views * n, sam_out])). */
void vis_projector (dsocr_vision_session *vs, const dsk_tensor *clip, const dsk_tensor *sam,
                    int n_views, int n, const dsk_tensor *out);
/* Packing (dsocr_vision_pack): @global [n * n, E], @tiles [rows * cols, m * m, E] or NULL ->
 * @out [dsocr_vision_pack_n_tokens (), E], with @newline, @separator [E]. */
void vis_pack (dsk_backend *be, const dsk_tensor *global, int n, const dsk_tensor *tiles, int m,
               int cols, int rows, const dsk_tensor *newline, const dsk_tensor *separator,
               const dsk_tensor *out);

/* ---- the same stages on host arrays, for the golden tests ---- */

gboolean vis_sam_forward (dsocr_vision_session *vs, const float *pixels, int n_views, int size,
                          float *out, GError **error);
gboolean vis_sam_pos (dsocr_vision_session *vs, int grid, float *out, GError **error);
gboolean vis_sam_rel_tables (dsocr_vision_session *vs, int b, int size, float *out_h,
                             float *out_w, GError **error);
gboolean vis_clip_forward (dsocr_vision_session *vs, const float *sam, int n_views, int g,
                           float *out, GError **error);
gboolean vis_clip_pos (dsocr_vision_session *vs, int g, float *out, GError **error);
gboolean vis_project (dsocr_vision_session *vs, const float *clip, const float *sam,
                      int n_views, int n, float *out, GError **error);

G_END_DECLS

#endif /* DSOCR_VISION_INTERNAL_H */
