/* clip.c: CLIP-L as DeepSeek-OCR uses it (deepencoder VitModel), as ops.
 *
 * Its patch convolution is never run: SAM's output tokens take the place of the patch
 * embeddings.
 *   t = [cls ; sam tokens] + pos                 [g*g + 1, W]  (pos resampled for g != 16)
 *   t = LN_pre(t)
 *   layers: t += out_proj(attn(LN1(t))) ; t += fc2(quick_gelu(fc1(LN2(t))))
 * No final LayerNorm; the CLS row is returned and dropped by the projector. */
#include "vision.h"

#include <math.h>

#define CLIP_LN_EPS 1e-5f

void
vis_clip_positions (dsocr_vision_session *vs, int g, const dsk_tensor *out)
{
  const dsocr_vision *v = vs->vision;
  const dsk_tensor *pos = &vs->w->clip_pos;   /* [G*G + 1, W] */
  const size_t W = (size_t) v->clip_width, G = (size_t) v->clip_grid;
  if (g == v->clip_grid) {
    dsk_copy (vs->be, out, pos);
    return;
  }
  /* the CLS row is kept, the grid rows are resampled as one [G, G, W] image */
  dsk_tensor cls_src = dsk_narrow (pos, 0, 0, 1), cls_dst = dsk_narrow (out, 0, 0, 1);
  dsk_tensor grid_src = dsk_narrow (pos, 0, 1, G * G);
  dsk_tensor grid_dst = dsk_narrow (out, 0, 1, (size_t) g * (size_t) g);
  dsk_copy (vs->be, &cls_dst, &cls_src);
  grid_src = dsk_split (&grid_src, 0, G, G);                    /* [G, G, W] */
  grid_dst = dsk_split (&grid_dst, 0, (size_t) g, (size_t) g);  /* [g, g, W] */
  (void) W;
  dsk_resize_bicubic_aa (vs->be, &grid_dst, &grid_src);
}

void
vis_clip (dsocr_vision_session *vs, const dsk_tensor *sam, int n_views, int g,
          const dsk_tensor *out)
{
  const dsocr_vision *v = vs->vision;
  const vis_weights *w = vs->w;
  dsk_backend *be = vs->be;
  const size_t W = (size_t) v->clip_width, H = (size_t) v->clip_heads, hd = W / H;
  const size_t n = (size_t) g * (size_t) g, N = n + 1, F = (size_t) v->clip_ffn;
  const size_t B = (size_t) n_views, R = B * N;
  const dsk_tensor *t = out;                                     /* [R, W] residual stream */
  dsk_tensor pos = dsk_arena_2d (vs->batch, DSK_F32, N, W);       /* [N, W] */
  dsk_tensor t3 = dsk_split (t, 0, B, N);                        /* [B, N, W] */

  vis_clip_positions (vs, g, &pos);
  {
    dsk_tensor cls_rows = dsk_narrow (&t3, 1, 0, 1), tok_rows = dsk_narrow (&t3, 1, 1, n);
    dsk_tensor cls = dsk_split (&w->cls, 0, 1, W);               /* [1, W] */
    dsk_tensor sam3 = dsk_split (sam, 0, B, n);                  /* [B, n, W] */
    cls = dsk_split (&cls, 0, 1, 1);                             /* [1, 1, W] */
    cls = dsk_expand (&cls, 0, B);                               /* [B, 1, W] */
    dsk_copy (be, &cls_rows, &cls);
    dsk_copy (be, &tok_rows, &sam3);
    dsk_add (be, &t3, &t3, &pos);
  }
  dsk_layernorm (be, t, t, &w->pre_w, &w->pre_b, CLIP_LN_EPS);

  const dsk_attention_desc desc = { .scale = 1.0f / sqrtf ((float) hd) };
  for (int l = 0; l < v->n_layers; l++) {
    const vis_clip_layer *ly = &w->layers[l];
    dsk_arena_reset (vs->scratch);
    dsk_tensor ln = dsk_arena_2d (vs->scratch, DSK_F32, R, W);        /* [R, W] */
    dsk_tensor qkv = dsk_arena_2d (vs->scratch, DSK_F32, R, 3 * W);   /* [R, 3W] */
    dsk_tensor att = dsk_arena_2d (vs->scratch, DSK_F32, R, W);       /* [R, W] */
    dsk_tensor mlp = dsk_arena_2d (vs->scratch, DSK_F32, R, F);       /* [R, F] */
    dsk_layernorm (be, &ln, t, &ly->ln1_w, &ly->ln1_b, CLIP_LN_EPS);
    dsk_linear (be, &qkv, &ln, &ly->qkv_w, &ly->qkv_b);
    {
      /* attention within each view */
      dsk_tensor q3 = dsk_split (&qkv, 0, B, N), a = dsk_split (&att, 0, B, N);
      dsk_tensor q = dsk_narrow (&q3, 2, 0, W), k = dsk_narrow (&q3, 2, W, W);
      dsk_tensor val = dsk_narrow (&q3, 2, 2 * W, W);
      q = dsk_split (&q, 2, H, hd);
      k = dsk_split (&k, 2, H, hd);
      val = dsk_split (&val, 2, H, hd);
      a = dsk_split (&a, 2, H, hd);
      dsk_attention (be, &a, &q, &k, &val, &desc);
    }
    dsk_linear_acc (be, t, &att, &ly->out_w, &ly->out_b);
    dsk_layernorm (be, &ln, t, &ly->ln2_w, &ly->ln2_b, CLIP_LN_EPS);
    dsk_linear (be, &mlp, &ln, &ly->fc1_w, &ly->fc1_b);
    dsk_quick_gelu (be, &mlp, &mlp);
    dsk_linear_acc (be, t, &mlp, &ly->fc2_w, &ly->fc2_b);
  }
}
