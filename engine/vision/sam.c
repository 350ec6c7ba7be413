/* sam.c: SAM ViT-B as DeepSeek-OCR uses it (deepencoder ImageEncoderViT), as ops.
 *
 *   x = conv16x16(pixels) + pos                 [g*g, D], g = S / 16
 *   blocks: x += proj(attn(LN1(x))) ; x += lin2(gelu(lin1(LN2(x))))
 *   y = LN2d(conv3x3(LN2d(conv1x1(x)))) ; y = net_3(net_2(y))    [(g/4)^2, 1024]
 *
 * Attention adds the decomposed relative-position bias of ViTDet: for query (qy, qx) and key
 * (ky, kx), q . Rh[qy - ky + size - 1] + q . Rw[qx - kx + size - 1] with the UNSCALED q, on
 * top of the scaled q . k. Windowed blocks pad the normed grid with zero tokens up to a
 * multiple of the window, so a padded key is the qkv bias alone; the reference does not mask
 * those keys and neither does this. */
#include "vision.h"

#include <math.h>
#include <string.h>

#include "backend-private.h"

#define SAM_LN_EPS 1e-6f

void
vis_sam_positions (dsocr_vision_session *vs, int grid, const dsk_tensor *out)
{
  const dsk_tensor *pos = &vs->w->sam_pos;   /* [G, G, D] */
  if (grid == vs->vision->pos_grid)
    dsk_copy (vs->be, out, pos);
  else
    dsk_resize_bicubic_aa (vs->be, out, pos);
}

void
vis_sam_rel (dsocr_vision_session *vs, int b, int size, const dsk_tensor *out_h,
             const dsk_tensor *out_w)
{
  const vis_sam_block *blk = &vs->w->blocks[b];
  if (2 * size - 1 == blk->rel_len) {
    dsk_copy (vs->be, out_h, &blk->rel_h);
    dsk_copy (vs->be, out_w, &blk->rel_w);
  } else {
    dsk_resize_linear (vs->be, out_h, &blk->rel_h);
    dsk_resize_linear (vs->be, out_w, &blk->rel_w);
  }
}

/* The window partition of @B views of a g x g grid into windows of w x w (sam.c's tables):
 * gather [B * nw^2 * L] = the grid row of window token r (-1: padding), scatter [B * g^2] =
 * the window row of grid token i. Made on the host once per (g, B) and kept. */
static void
ensure_windows (dsocr_vision_session *vs, int g, int B)
{
  const int w = vs->vision->window, nw = (g + w - 1) / w, L = w * w;
  const size_t n_win = (size_t) B * nw * nw * L, n_grid = (size_t) B * g * g;
  int32_t *gather, *scatter;

  if (vs->win_buf && vs->win_g == g && vs->win_b == B)
    return;
  dsk_buffer_free (vs->win_buf);
  vs->win_g = 0;
  vs->win_buf = dsk_buffer_new (vs->be, (n_win + n_grid) * sizeof (int32_t));
  if (!vs->win_buf)
    return;
  gather = g_new (int32_t, n_win);
  scatter = g_new (int32_t, n_grid);
  for (size_t r = 0; r < n_win; r++) {
    /* row-major over views, over windows and within each window */
    const size_t view = r / ((size_t) nw * nw * L), rv = r % ((size_t) nw * nw * L);
    const size_t wi = rv / L, t = rv % L;
    const size_t gy = (wi / nw) * w + t / w, gx = (wi % nw) * w + t % w;
    if (gy < (size_t) g && gx < (size_t) g) {
      gather[r] = (int32_t) (view * g * g + gy * g + gx);
      scatter[view * g * g + gy * g + gx] = (int32_t) r;
    } else {
      gather[r] = -1;
    }
  }
  {
    const size_t ne1[1] = { n_win }, ne2[1] = { n_grid };
    vs->win_gather = dsk_buffer_tensor (vs->win_buf, 0, DSK_I32, 1, ne1);
    vs->win_scatter = dsk_buffer_tensor (vs->win_buf, n_win * sizeof (int32_t), DSK_I32, 1, ne2);
  }
  dsk_tensor_set (vs->be, &vs->win_gather, gather);
  dsk_tensor_set (vs->be, &vs->win_scatter, scatter);
  g_free (gather);
  g_free (scatter);
  vs->win_g = g;
  vs->win_b = B;
}

/* q, k or v of @qkv [n, 3D] (part 0, 1, 2) as [B, n / B, H, hd]. */
static dsk_tensor
qkv_part (const dsk_tensor *qkv, int part, size_t B, size_t D, size_t H)
{
  dsk_tensor t = dsk_narrow (qkv, 1, (size_t) part * D, D);   /* [n, D] */
  t = dsk_split (&t, 0, B, qkv->ne[0] / B);                    /* [B, n/B, D] */
  return dsk_split (&t, 2, H, D / H);                          /* [B, n/B, H, hd] */
}

/* att [B*T, D] = the attention part of block @b on the qkv rows [B*T, 3D] of B views. */
static void
block_attention (dsocr_vision_session *vs, int b, size_t B, size_t g, const dsk_tensor *qkv,
                 const dsk_tensor *att)
{
  const dsocr_vision *v = vs->vision;
  const vis_sam_block *blk = &vs->w->blocks[b];
  dsk_backend *be = vs->be;
  const size_t D = (size_t) v->sam_width, H = (size_t) v->sam_heads, hd = D / H, T = g * g;
  dsk_attention_desc desc = { .scale = 1.0f / sqrtf ((float) hd) };

  if (blk->window == 0) {
    dsk_tensor tab_h = dsk_arena_2d (vs->scratch, DSK_F32, 2 * g - 1, hd);   /* [2g-1, hd] */
    dsk_tensor tab_w = dsk_arena_2d (vs->scratch, DSK_F32, 2 * g - 1, hd);
    dsk_tensor rel_h = dsk_arena_4d (vs->scratch, DSK_F32, B, H, T, g);      /* [B, H, T, g] */
    dsk_tensor rel_w = dsk_arena_4d (vs->scratch, DSK_F32, B, H, T, g);
    dsk_tensor q = qkv_part (qkv, 0, B, D, H), k = qkv_part (qkv, 1, B, D, H);
    dsk_tensor val = qkv_part (qkv, 2, B, D, H), a = dsk_split (att, 0, B, T);
    a = dsk_split (&a, 2, H, hd);                                            /* [B, T, H, hd] */
    vis_sam_rel (vs, b, (int) g, &tab_h, &tab_w);
    dsk_rel_pos (be, &rel_h, &rel_w, &q, &tab_h, &tab_w);
    desc.rel_h = &rel_h;
    desc.rel_w = &rel_w;
    dsk_attention (be, &a, &q, &k, &val, &desc);
    return;
  }

  /* windows: gathered from the grid (padding tokens are the qkv bias alone), attended one
   * window per problem, scattered back */
  const size_t w = (size_t) blk->window, nw = (g + w - 1) / w, L = w * w, NW = B * nw * nw;
  dsk_tensor bias = dsk_arena_1d (vs->scratch, DSK_F32, 3 * D);               /* [3D] */
  dsk_tensor win = dsk_arena_2d (vs->scratch, DSK_F32, NW * L, 3 * D);        /* [NW*L, 3D] */
  dsk_tensor win_att = dsk_arena_2d (vs->scratch, DSK_F32, NW * L, D);        /* [NW*L, D] */
  dsk_tensor rel_h = dsk_arena_4d (vs->scratch, DSK_F32, NW, H, L, w);        /* [NW, H, L, w] */
  dsk_tensor rel_w = dsk_arena_4d (vs->scratch, DSK_F32, NW, H, L, w);
  ensure_windows (vs, (int) g, (int) B);
  dsk_copy (be, &bias, &blk->qkv_b);
  dsk_get_rows (be, &win, qkv, &vs->win_gather, &bias);
  {
    dsk_tensor q = qkv_part (&win, 0, NW, D, H), k = qkv_part (&win, 1, NW, D, H);
    dsk_tensor val = qkv_part (&win, 2, NW, D, H), a = dsk_split (&win_att, 0, NW, L);
    a = dsk_split (&a, 2, H, hd);                                             /* [NW, L, H, hd] */
    dsk_rel_pos (be, &rel_h, &rel_w, &q, &blk->rel_h, &blk->rel_w);
    desc.rel_h = &rel_h;
    desc.rel_w = &rel_w;
    dsk_attention (be, &a, &q, &k, &val, &desc);
  }
  dsk_get_rows (be, att, &win_att, &vs->win_scatter, NULL);
}

/* x [B*T, D] += both residual parts of block @b for B views. */
static void
block_forward (dsocr_vision_session *vs, int b, size_t B, size_t g, const dsk_tensor *x)
{
  const dsocr_vision *v = vs->vision;
  const vis_sam_block *blk = &vs->w->blocks[b];
  dsk_backend *be = vs->be;
  const size_t D = (size_t) v->sam_width, R = B * g * g, M = (size_t) v->sam_mlp;

  dsk_arena_reset (vs->scratch);
  dsk_tensor ln = dsk_arena_2d (vs->scratch, DSK_F32, R, D);        /* [R, D] */
  dsk_tensor qkv = dsk_arena_2d (vs->scratch, DSK_F32, R, 3 * D);   /* [R, 3D] */
  dsk_layernorm (be, &ln, x, &blk->norm1_w, &blk->norm1_b, SAM_LN_EPS);
  dsk_linear (be, &qkv, &ln, &blk->qkv_w, &blk->qkv_b);
  /* the attention outputs go to ln, free once qkv is computed */
  block_attention (vs, b, B, g, &qkv, &ln);
  dsk_linear_acc (be, x, &ln, &blk->proj_w, &blk->proj_b);

  dsk_arena_reset (vs->scratch);
  ln = dsk_arena_2d (vs->scratch, DSK_F32, R, D);                   /* [R, D] */
  dsk_tensor mlp = dsk_arena_2d (vs->scratch, DSK_F32, R, M);       /* [R, M] */
  dsk_layernorm (be, &ln, x, &blk->norm2_w, &blk->norm2_b, SAM_LN_EPS);
  dsk_linear (be, &mlp, &ln, &blk->lin1_w, &blk->lin1_b);
  dsk_gelu (be, &mlp, &mlp);
  dsk_linear_acc (be, x, &mlp, &blk->lin2_w, &blk->lin2_b);
}

/* y [oh * ow, c_out] = a k x k conv (pad k / 2) of the channels-last x [side * side, c_in];
 * returns the output side. */
static size_t
conv_nhwc (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, size_t side, size_t c_in,
           const dsk_tensor *w, size_t k, size_t stride)
{
  const dsk_conv2d_desc d = {
    .c_in = c_in, .h = side, .w = side, .in_layout = DSK_LAYOUT_NHWC,
    .kh = k, .kw = k, .stride = stride, .pad = k / 2,
  };
  dsk_conv2d (be, y, x, w, NULL, &d);
  return dsk_conv2d_out_size (side, k, stride, k / 2);
}

/* Neck and downsampling of one view: x [g*g, D] -> out [side*side, sam_out]. */
static void
neck_forward (dsocr_vision_session *vs, const dsk_tensor *x, size_t g, const dsk_tensor *out)
{
  const dsocr_vision *v = vs->vision;
  const vis_weights *w = vs->w;
  dsk_backend *be = vs->be;
  const size_t D = (size_t) v->sam_width, oc = (size_t) v->out_chans, T = g * g;
  size_t side = g, c = oc;

  dsk_arena_reset (vs->scratch);
  dsk_tensor a = dsk_arena_2d (vs->scratch, DSK_F32, T, oc);   /* [T, oc] */
  dsk_tensor b = dsk_arena_2d (vs->scratch, DSK_F32, T, oc);   /* [T, oc] */
  conv_nhwc (be, &a, x, g, D, &w->neck_conv1, 1, 1);
  dsk_layernorm (be, &a, &a, &w->neck_ln1_w, &w->neck_ln1_b, SAM_LN_EPS);
  conv_nhwc (be, &b, &a, g, oc, &w->neck_conv2, 3, 1);
  dsk_layernorm (be, &b, &b, &w->neck_ln2_w, &w->neck_ln2_b, SAM_LN_EPS);
  if (v->n_down == 0) {
    dsk_copy (be, out, &b);
    return;
  }
  dsk_tensor cur = b;
  for (int i = 0; i < v->n_down; i++) {
    const size_t c_out = (size_t) v->down_ch[i];
    const size_t ns = dsk_conv2d_out_size (side, 3, 2, 1);
    dsk_tensor dst = i == v->n_down - 1 ? *out : dsk_arena_2d (vs->scratch, DSK_F32, ns * ns,
                                                               c_out);
    side = conv_nhwc (be, &dst, &cur, side, c, &w->down[i], 3, 2);
    c = c_out;
    cur = dst;
  }
}

void
vis_sam (dsocr_vision_session *vs, const dsk_tensor *pixels, int n_views, int size,
         const dsk_tensor *out)
{
  const dsocr_vision *v = vs->vision;
  const vis_weights *w = vs->w;
  dsk_backend *be = vs->be;
  const size_t D = (size_t) v->sam_width, P = (size_t) v->patch, g = (size_t) size / P;
  const size_t T = g * g, B = (size_t) n_views, n_px = 3 * (size_t) size * (size_t) size;
  const size_t go = (size_t) vis_grid_side (v, size), n_out = go * go;
  dsk_tensor x = dsk_arena_2d (vs->batch, DSK_F32, B * T, D);    /* [B*T, D] residual stream */
  dsk_tensor pos = dsk_arena_3d (vs->batch, DSK_F32, g, g, D);   /* [g, g, D] */

  /* patch embedding: NCHW pixels -> channels-last tokens, view by view */
  const dsk_conv2d_desc pe = {
    .c_in = 3, .h = (size_t) size, .w = (size_t) size, .in_layout = DSK_LAYOUT_NCHW,
    .kh = P, .kw = P, .stride = P,
  };
  for (size_t i = 0; i < B; i++) {
    dsk_tensor xi = dsk_narrow (&x, 0, i * T, T), pi = dsk_narrow (pixels, 0, i * n_px, n_px);
    dsk_conv2d (be, &xi, &pi, &w->patch_w, &w->patch_b, &pe);
  }
  /* absolute positions, the same for every view */
  vis_sam_positions (vs, (int) g, &pos);
  {
    dsk_tensor x3 = dsk_split (&x, 0, B, T), p2 = dsk_merge (&pos, 0);   /* [B, T, D], [T, D] */
    dsk_add (be, &x3, &x3, &p2);
  }
  for (int b = 0; b < v->n_blocks; b++)
    block_forward (vs, b, B, g, &x);
  for (size_t i = 0; i < B; i++) {
    dsk_tensor xi = dsk_narrow (&x, 0, i * T, T), oi = dsk_narrow (out, 0, i * n_out, n_out);
    neck_forward (vs, &xi, g, &oi);
  }
}
