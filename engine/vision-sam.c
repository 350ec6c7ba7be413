/* vision-sam.c: SAM ViT-B as DeepSeek-OCR uses it (deepencoder ImageEncoderViT), f32 on the
 * CPU.
 *
 *   x = conv16x16(pixels) + pos                 [g*g, D], g = S / 16
 *   blocks: x += proj(attn(LN1(x))) ; x += lin2(gelu(lin1(LN2(x))))
 *   y = LN2d(conv3x3(LN2d(conv1x1(x)))) ; y = net_3(net_2(y))    [(g/4)^2, 1024]
 *
 * Attention adds the decomposed relative-position bias of ViTDet: for query (qy, qx) and key
 * (ky, kx), q · Rh[qy - ky + size - 1] + q · Rw[qx - kx + size - 1] with the UNSCALED q, on
 * top of the scaled q · k. Windowed blocks pad the normed grid with zero tokens up to a
 * multiple of the window, so a padded key is the qkv bias alone; the reference does not mask
 * those keys and neither does this. */
#include "vision.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"

#define SAM_LN_EPS 1e-6f

gboolean
vis_sam_pos (const dsocr_vision *v, int grid, float *out, GError **error)
{
  const size_t D = (size_t) v->sam_width, G = (size_t) v->pos_grid;
  if (grid == v->pos_grid) {
    memcpy (out, v->sam_pos, G * G * D * sizeof (float));
    return TRUE;
  }
  const size_t work_n = G * (size_t) grid * D;
  float *work = vis_alloc (work_n, "the position resampling", error);   // [G, grid, D]
  if (!work)
    return FALSE;
  gboolean ok = vis_check (dsk_resize_bicubic_aa_f32_cpu (out, v->sam_pos, G, G, (size_t) grid,
                                                          (size_t) grid, D, work, work_n),
                           "SAM position resampling", error);
  g_free (work);
  return ok;
}

gboolean
vis_sam_rel_tables (const dsocr_vision *v, int b, int size, float *out_h, float *out_w,
                    GError **error)
{
  const vis_sam_block *blk = &v->blocks[b];
  const size_t hd = (size_t) (v->sam_width / v->sam_heads), len = (size_t) (2 * size - 1);
  if ((int) len == blk->rel_len) {
    memcpy (out_h, blk->rel_h, len * hd * sizeof (float));
    memcpy (out_w, blk->rel_w, len * hd * sizeof (float));
    return TRUE;
  }
  return vis_check (dsk_resize_linear_f32_cpu (out_h, blk->rel_h, (size_t) blk->rel_len, len,
                                               hd), "SAM relative-position resampling", error) &&
         vis_check (dsk_resize_linear_f32_cpu (out_w, blk->rel_w, (size_t) blk->rel_len, len,
                                               hd), "SAM relative-position resampling", error);
}

/* Decomposed relative-position terms of one attention over a size x size grid of tokens:
 * q [size*size, heads, hd] at row stride @qs; tables [2*size-1, hd];
 * rel_h, rel_w [heads, size*size, size]. */
static void
rel_terms (const float *q, size_t qs, size_t heads, size_t hd, size_t size, const float *tab_h,
           const float *tab_w, float *rel_h, float *rel_w)
{
  const size_t n = size * size;

#pragma omp parallel for schedule(static) if (n * heads * size * hd > 65536)
  for (size_t t = 0; t < n; t++) {
    const size_t qy = t / size, qx = t % size;
    for (size_t h = 0; h < heads; h++) {
      const float *qv = q + t * qs + h * hd;
      float *oh = rel_h + (h * n + t) * size, *ow = rel_w + (h * n + t) * size;
      for (size_t k = 0; k < size; k++) {
        const float *rh = tab_h + (qy + size - 1 - k) * hd;
        const float *rw = tab_w + (qx + size - 1 - k) * hd;
        float sh = 0.0f, sw = 0.0f;
        for (size_t c = 0; c < hd; c++) {
          sh += qv[c] * rh[c];
          sw += qv[c] * rw[c];
        }
        oh[k] = sh;
        ow[k] = sw;
      }
    }
  }
}

/* Scratch of one forward, sized for the largest block. */
typedef struct {
  float *ln;      // [B*T, D]
  float *qkv;     // [B*T, 3D], the grids' tokens
  float *win;     // [n_win * L, 3D] windowed tokens with padding
  float *att;     // [n_win * L, D] one view's window outputs
  float *rel_h;   // global: [heads, T, g]; windowed: [n_win, heads, L, w]
  float *rel_w;   // same
  float *tab_h;   // [2 * max(g, w) - 1, hd]
  float *tab_w;
  float *mlp;     // [B*T, mlp]
  float *bias;    // [3D] a windowed block's qkv bias in f32
} sam_scratch;

static void
scratch_free (sam_scratch *s)
{
  g_free (s->ln);
  g_free (s->qkv);
  g_free (s->win);
  g_free (s->att);
  g_free (s->rel_h);
  g_free (s->rel_w);
  g_free (s->tab_h);
  g_free (s->tab_w);
  g_free (s->mlp);
  g_free (s->bias);
}

static gboolean
attend (const dsocr_vision *v, const float *q, const float *k, const float *val, size_t qs,
        size_t n, size_t kv_side, const float *rel_h, const float *rel_w, float *out,
        GError **error)
{
  const size_t D = (size_t) v->sam_width, H = (size_t) v->sam_heads, hd = D / H;
  dsk_attention_params p = {
    .n_q = n, .n_kv = n, .n_heads = H, .n_kv_heads = H, .d_qk = hd, .d_v = hd,
    .q_stride = qs, .k_stride = qs, .v_stride = qs, .out_stride = D,
    .scale = 1.0f / sqrtf ((float) hd),
    .rel_h = rel_h, .rel_w = rel_w, .kv_h = kv_side, .kv_w = kv_side,
  };
  return vis_check (dsk_attention_f32_cpu (out, q, k, val, &p), "SAM attention", error);
}

/* Self-attention of one view: qkv [g*g, 3D] in grid order -> out [g*g, D] in grid order. */
static gboolean
view_attention (const dsocr_vision *v, int b, size_t g, const float *qkv, float *out,
                sam_scratch *s, GError **error)
{
  const vis_sam_block *blk = &v->blocks[b];
  const size_t D = (size_t) v->sam_width, H = (size_t) v->sam_heads, hd = D / H;
  const size_t T = g * g, D3 = 3 * D;

  if (blk->window == 0) {
    rel_terms (qkv, D3, H, hd, g, s->tab_h, s->tab_w, s->rel_h, s->rel_w);
    return attend (v, qkv, qkv + D, qkv + 2 * D, D3, T, g, s->rel_h, s->rel_w, out, error);
  }

  const size_t w = (size_t) blk->window, L = w * w, nw = (g + w - 1) / w;
  const float *bias = s->bias;   // qkv of a zero (padding) token: the bias alone
  /* gather the windows, row-major over windows and within each */
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < nw * nw * L; r++) {
    const size_t wi = r / L, t = r % L;
    const size_t gy = (wi / nw) * w + t / w, gx = (wi % nw) * w + t % w;
    const float *src = gy < g && gx < g ? qkv + (gy * g + gx) * D3 : bias;
    memcpy (s->win + r * D3, src, D3 * sizeof (float));
  }
  /* one window per thread: the windows are many and alike, while the ops' own parallel
   * loops over a single 14x14 window would be short and join often */
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t wi = 0; wi < nw * nw; wi++) {
    const float *base = s->win + wi * L * D3;
    float *rh = s->rel_h + wi * H * L * w, *rw = s->rel_w + wi * H * L * w;
    rel_terms (base, D3, H, hd, w, s->tab_h, s->tab_w, rh, rw);
    if (!attend (v, base, base + D, base + 2 * D, D3, L, w, rh, rw, s->att + wi * L * D,
                 NULL)) {
#pragma omp atomic write
      failed = 1;
    }
  }
  if (failed)
    return vis_check (DSK_ERR_INVALID, "SAM window attention", error);
  /* scatter the real tokens back to grid order */
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < nw * nw * L; r++) {
    const size_t wi = r / L, t = r % L;
    const size_t gy = (wi / nw) * w + t / w, gx = (wi % nw) * w + t % w;
    if (gy < g && gx < g)
      memcpy (out + (gy * g + gx) * D, s->att + r * D, D * sizeof (float));
  }
  return TRUE;
}

/* x [B*g*g, D] += attention part of block @b for @B views (their input already normed into
 * s->ln). The projections run once over the rows of all views; attention runs view by view. */
static gboolean
block_attention (const dsocr_vision *v, int b, size_t B, size_t g, float *x, sam_scratch *s,
                 GError **error)
{
  const vis_sam_block *blk = &v->blocks[b];
  const size_t D = (size_t) v->sam_width, H = (size_t) v->sam_heads, hd = D / H;
  const size_t T = g * g, D3 = 3 * D;

  if (!vis_check (dsk_matmul_f32_cpu (s->qkv, s->ln, blk->qkv_w.data, blk->qkv_w.dtype,
                                      blk->qkv_b.data, blk->qkv_b.dtype, B * T, D, D3, NULL),
                  "SAM qkv", error))
    return FALSE;
  if (blk->window == 0) {
    if (!vis_sam_rel_tables (v, b, (int) g, s->tab_h, s->tab_w, error))
      return FALSE;
  } else {
    const size_t w = (size_t) blk->window;
    dsk_convert_to_f32_cpu (s->bias, blk->qkv_b.data, blk->qkv_b.dtype, D3);
    memcpy (s->tab_h, blk->rel_h, (2 * w - 1) * hd * sizeof (float));
    memcpy (s->tab_w, blk->rel_w, (2 * w - 1) * hd * sizeof (float));
  }
  /* the attention outputs go to ln, free once qkv is computed */
  for (size_t i = 0; i < B; i++)
    if (!view_attention (v, b, g, s->qkv + i * T * D3, s->ln + i * T * D, s, error))
      return FALSE;

  dsk_matmul_opts acc = { .accumulate = 1 };
  return vis_check (dsk_matmul_f32_cpu (x, s->ln, blk->proj_w.data, blk->proj_w.dtype,
                                        blk->proj_b.data, blk->proj_b.dtype, B * T, D, D, &acc),
                    "SAM attention projection", error);
}

static gboolean
block_forward (const dsocr_vision *v, int b, size_t B, size_t g, float *x, sam_scratch *s,
               GError **error)
{
  const vis_sam_block *blk = &v->blocks[b];
  const size_t D = (size_t) v->sam_width, T = B * g * g, M = (size_t) v->sam_mlp;
  dsk_matmul_opts acc = { .accumulate = 1 };

  return vis_check (dsk_layernorm_f32_cpu (s->ln, x, blk->norm1_w.data, blk->norm1_b.data,
                                           blk->norm1_w.dtype, T, D, SAM_LN_EPS),
                    "SAM norm1", error) &&
         block_attention (v, b, B, g, x, s, error) &&
         vis_check (dsk_layernorm_f32_cpu (s->ln, x, blk->norm2_w.data, blk->norm2_b.data,
                                           blk->norm2_w.dtype, T, D, SAM_LN_EPS),
                    "SAM norm2", error) &&
         vis_check (dsk_matmul_f32_cpu (s->mlp, s->ln, blk->lin1_w.data, blk->lin1_w.dtype,
                                        blk->lin1_b.data, blk->lin1_b.dtype, T, D, M, NULL),
                    "SAM lin1", error) &&
         vis_check (dsk_gelu_f32_cpu (s->mlp, s->mlp, T * M), "SAM gelu", error) &&
         vis_check (dsk_matmul_f32_cpu (x, s->mlp, blk->lin2_w.data, blk->lin2_w.dtype,
                                        blk->lin2_b.data, blk->lin2_b.dtype, T, M, D, &acc),
                    "SAM lin2", error);
}

/* y [oh*ow, c_out] = conv of the channels-last x [side*side, c_in]; returns the output side. */
static gboolean
conv_nhwc (float *y, const float *x, size_t side, size_t c_in, const vis_weight *w,
           size_t c_out, size_t k, size_t stride, size_t *out_side, GError **error)
{
  dsk_conv2d_params p = {
    .c_in = c_in, .h = side, .w = side, .in_layout = DSK_LAYOUT_NHWC, .c_out = c_out,
    .kh = k, .kw = k, .stride = stride, .pad = k / 2,
  };
  const size_t wn = dsk_conv2d_workspace_floats (&p);
  float *work = NULL;
  if (wn && !(work = vis_alloc (wn, "the convolution workspace", error)))
    return FALSE;
  gboolean ok = vis_check (dsk_conv2d_f32_cpu (y, x, w->data, w->dtype, NULL, DSK_F32, &p,
                                               work, wn), "SAM neck convolution", error);
  g_free (work);
  *out_side = dsk_conv2d_out_h (&p);
  return ok;
}

/* Neck and downsampling: x [g*g, D] -> out [side*side, sam_out]. */
static gboolean
neck_forward (const dsocr_vision *v, const float *x, size_t g, float *out, GError **error)
{
  const size_t D = (size_t) v->sam_width, oc = (size_t) v->out_chans, T = g * g;
  size_t side = g, c = oc, max_c = oc;
  for (int i = 0; i < v->n_down; i++)
    max_c = MAX (max_c, (size_t) v->down_ch[i]);
  float *a = vis_alloc (T * max_c, "the SAM neck", error);   // [T, <= max_c]
  float *b = a ? vis_alloc (T * max_c, "the SAM neck", error) : NULL;   // [T, <= max_c]
  gboolean ok = b &&
    conv_nhwc (a, x, g, D, &v->neck_conv1, oc, 1, 1, &side, error) &&
    vis_check (dsk_layernorm_f32_cpu (a, a, v->neck_ln1_w.data, v->neck_ln1_b.data,
                                      v->neck_ln1_w.dtype, T, oc, SAM_LN_EPS),
               "SAM neck norm", error) &&
    conv_nhwc (b, a, g, oc, &v->neck_conv2, oc, 3, 1, &side, error) &&
    vis_check (dsk_layernorm_f32_cpu (b, b, v->neck_ln2_w.data, v->neck_ln2_b.data,
                                      v->neck_ln2_w.dtype, T, oc, SAM_LN_EPS),
               "SAM neck norm", error);
  float *cur = b, *next = a;
  for (int i = 0; ok && i < v->n_down; i++) {
    size_t ns;
    float *dst = i == v->n_down - 1 ? out : next;
    ok = conv_nhwc (dst, cur, side, c, &v->down[i], (size_t) v->down_ch[i], 3, 2, &ns, error);
    side = ns;
    c = (size_t) v->down_ch[i];
    next = cur;
    cur = dst;
  }
  if (ok && v->n_down == 0)
    memcpy (out, b, T * oc * sizeof (float));
  g_free (a);
  g_free (b);
  return ok;
}

gboolean
vis_sam_forward (const dsocr_vision *v, const float *pixels, int n_views, int size, float *out,
                 GError **error)
{
  const size_t D = (size_t) v->sam_width, H = (size_t) v->sam_heads, hd = D / H;
  const size_t P = (size_t) v->patch, g = (size_t) size / P, T = g * g, B = (size_t) n_views;
  const size_t w = (size_t) v->window, nw = (g + w - 1) / w, L = w * w;
  const size_t side = MAX (g, w), n_rel = MAX (H * T * g, nw * nw * H * L * w);
  const size_t n_px = 3 * (size_t) size * (size_t) size;
  const size_t n_out = vis_grid_side (v, size) * (size_t) vis_grid_side (v, size) *
                       (size_t) v->sam_out;
  sam_scratch s = { 0 };
  gboolean ok = FALSE;

  float *x = vis_alloc (B * T * D, "the SAM tokens", error);   // [B*T, D] residual stream
  if (!x)
    return FALSE;
  if (!(s.ln = vis_alloc (B * T * D, "SAM", error)) ||
      !(s.qkv = vis_alloc (B * T * 3 * D, "SAM", error)) ||
      !(s.win = vis_alloc (nw * nw * L * 3 * D, "SAM", error)) ||
      !(s.att = vis_alloc (nw * nw * L * D, "SAM", error)) ||
      !(s.rel_h = vis_alloc (n_rel, "SAM", error)) ||
      !(s.rel_w = vis_alloc (n_rel, "SAM", error)) ||
      !(s.tab_h = vis_alloc ((2 * side - 1) * hd, "SAM", error)) ||
      !(s.tab_w = vis_alloc ((2 * side - 1) * hd, "SAM", error)) ||
      !(s.mlp = vis_alloc (B * T * (size_t) v->sam_mlp, "SAM", error)) ||
      !(s.bias = vis_alloc (3 * D, "SAM", error)))
    goto out;

  /* patch embedding: NCHW pixels -> channels-last tokens, view by view */
  dsk_conv2d_params pe = {
    .c_in = 3, .h = (size_t) size, .w = (size_t) size, .in_layout = DSK_LAYOUT_NCHW,
    .c_out = D, .kh = P, .kw = P, .stride = P,
  };
  const size_t wn = dsk_conv2d_workspace_floats (&pe);
  float *work = vis_alloc (wn, "the patch embedding", error);   // [block, 3 * P * P]
  if (!work)
    goto out;
  ok = TRUE;
  for (size_t i = 0; ok && i < B; i++)
    ok = vis_check (dsk_conv2d_f32_cpu (x + i * T * D, pixels + i * n_px, v->patch_w.data,
                                        v->patch_w.dtype, v->patch_b.data, v->patch_b.dtype,
                                        &pe, work, wn),
                    "SAM patch embedding", error);
  g_free (work);
  /* absolute positions (resampled into s.ln first), the same for every view */
  if (!ok || !(ok = vis_sam_pos (v, (int) g, s.ln, error)))
    goto out;
  for (size_t i = 0; i < B; i++)
    for (size_t j = 0; j < T * D; j++)
      x[i * T * D + j] += s.ln[j];

  for (int b = 0; ok && b < v->n_blocks; b++)
    ok = block_forward (v, b, B, g, x, &s, error);
  for (size_t i = 0; ok && i < B; i++)
    ok = neck_forward (v, x + i * T * D, g, out + i * n_out, error);
out:
  scratch_free (&s);
  g_free (x);
  return ok;
}
