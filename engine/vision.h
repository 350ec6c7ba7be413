/* vision.h: internals of the DeepSeek-OCR vision tower (vision.c, vision-sam.c,
 * vision-clip.c), shared with the engine's tests.
 *
 * Activations are f32 and channels-last: a SAM feature map of side g is [g * g, channels],
 * tokens row-major, which is also the order in which the reference flattens it
 * (flatten(2).permute(0, 2, 1)). Weights stay in their checkpoint dtype. */
#ifndef DSOCR_VISION_INTERNAL_H
#define DSOCR_VISION_INTERNAL_H

#include <glib.h>

#include "dsk.h"
#include "dsocr/dsocr-vision.h"

G_BEGIN_DECLS

/* A weight as the kernels take it: its data in its stored dtype (F32, BF16 or F16), aligned to
 * its element size (borrowed from the checkpoint, or a copy the tower owns when the file left
 * it unaligned). LayerNorm weights and biases are widened to owned F32 copies, since the norm
 * kernel reads both in one dtype. */
typedef struct {
  const void *data;
  dsk_dtype dtype;
} vis_weight;

typedef struct {
  vis_weight norm1_w, norm1_b, norm2_w, norm2_b;
  vis_weight qkv_w, qkv_b;      /* [3 * width, width], [3 * width]: q | k | v, heads inside */
  vis_weight proj_w, proj_b;    /* [width, width], [width] */
  vis_weight lin1_w, lin1_b;    /* [mlp, width], [mlp] */
  vis_weight lin2_w, lin2_b;    /* [width, mlp], [width] */
  float *rel_h, *rel_w;         /* [rel_len, head_dim] f32 (owned) */
  int rel_len;                  /* 2 * window - 1, or 2 * pos_grid - 1 for a global block */
  int window;                   /* 0: global attention */
} vis_sam_block;

typedef struct {
  vis_weight ln1_w, ln1_b, ln2_w, ln2_b;
  vis_weight qkv_w, qkv_b;      /* [3 * width, width], [3 * width] */
  vis_weight out_w, out_b;      /* [width, width], [width] */
  vis_weight fc1_w, fc1_b;      /* [ffn, width], [ffn] */
  vis_weight fc2_w, fc2_b;      /* [width, ffn], [width] */
} vis_clip_layer;

struct dsocr_vision {
  gint ref_count;
  dsocr_checkpoint *ckpt;       /* weights are borrowed from it */
  GPtrArray *owned;             /* aligned copies and f32 tables, freed with the tower */

  /* SAM ViT-B */
  int sam_width, sam_heads, sam_mlp, patch, window, out_chans;
  int pos_grid;                 /* side of pos_embed: image_size / patch (64) */
  int n_blocks;
  int n_down;                   /* stride-2 3x3 convs after the neck (2) */
  int down_ch[DSOCR_CONFIG_MAX_DOWNSAMPLE];
  vis_weight patch_w, patch_b;  /* [width, 3, patch, patch], [width] */
  float *sam_pos;               /* [pos_grid, pos_grid, width] f32 */
  vis_sam_block *blocks;        /* [n_blocks] */
  vis_weight neck_conv1;        /* [out_chans, width, 1, 1] */
  vis_weight neck_ln1_w, neck_ln1_b;
  vis_weight neck_conv2;        /* [out_chans, out_chans, 3, 3] */
  vis_weight neck_ln2_w, neck_ln2_b;
  vis_weight down[DSOCR_CONFIG_MAX_DOWNSAMPLE]; /* net_2, net_3: [c_i, c_{i-1}, 3, 3] */
  int sam_out;                  /* channels of the SAM output */

  /* CLIP-L */
  int clip_width, clip_heads, clip_ffn, n_layers;
  int clip_grid;                /* side of the position grid: image_size / patch (16) */
  float *cls;                   /* [clip_width] */
  float *clip_pos;              /* [clip_grid^2 + 1, clip_width] f32, row 0: CLS */
  vis_weight pre_w, pre_b;
  vis_clip_layer *layers;       /* [n_layers] */

  /* projector and the special embeddings */
  int n_embed;
  vis_weight proj_w, proj_b;    /* [n_embed, clip_width + sam_out], [n_embed] */
  float *newline;               /* [n_embed] image_newline */
  float *separator;             /* [n_embed] view_seperator */
};

/* Sets @error from a kernel status @st of @what (TRUE when DSK_OK). */
gboolean vis_check (dsk_status st, const char *what, GError **error);
/* g_try_malloc of @n floats, DSOCR_ERROR_NOMEM naming @what when it fails. */
float *vis_alloc (gsize n, const char *what, GError **error);

/* Side of the SAM output grid for a view of @size pixels (the patch grid halved, rounding up,
 * by each stride-2 conv), 0 when @size is not a positive multiple of the patch size. */
int vis_grid_side (const dsocr_vision *v, int size);

/* SAM on @n_views views at once: @pixels [n_views, 3, size, size] (already bf16-rounded) ->
 * @out [n_views, g * g, sam_out], g = vis_grid_side(). The linear layers run over the rows of
 * all views together; attention and convolutions view by view. */
gboolean vis_sam_forward (const dsocr_vision *v, const float *pixels, int n_views, int size,
                          float *out, GError **error);

/* SAM's absolute positions for a @grid x @grid patch grid: @out [grid, grid, sam_width]
 * (pos_embed itself, or resampled by antialiased bicubic). */
gboolean vis_sam_pos (const dsocr_vision *v, int grid, float *out, GError **error);

/* Block @b's relative-position tables for a square @size x @size attention (window or patch
 * grid): @out_h, @out_w [2 * size - 1, head_dim], linearly resampled when the stored length
 * differs (get_rel_pos). */
gboolean vis_sam_rel_tables (const dsocr_vision *v, int b, int size, float *out_h, float *out_w,
                             GError **error);

/* CLIP on @n_views views: @sam [n_views, g * g, clip_width] (the SAM output) ->
 * @out [n_views, g * g + 1, clip_width], row 0 of each view the CLS token. */
gboolean vis_clip_forward (const dsocr_vision *v, const float *sam, int n_views, int g,
                           float *out, GError **error);

/* CLIP's position table for a @g x @g grid: @out [g * g + 1, clip_width] (row 0: CLS). */
gboolean vis_clip_pos (const dsocr_vision *v, int g, float *out, GError **error);

/* Projector on @n_views views: @out [n_views, n, n_embed] = Linear(cat(@clip rows 1..n of
 * each view [n_views, n + 1, clip_width], @sam [n_views, n, sam_out])). */
gboolean vis_project (const dsocr_vision *v, const float *clip, const float *sam, int n_views,
                      int n, float *out, GError **error);

G_END_DECLS

#endif /* DSOCR_VISION_INTERNAL_H */
