/* vision-clip.c: CLIP-L as DeepSeek-OCR uses it (deepencoder VitModel), f32 on the CPU.
 *
 * Its patch convolution is never run: SAM's output tokens take the place of the patch
 * embeddings.
 *   t = [cls ; sam tokens] + pos                 [g*g + 1, W]  (pos resampled for g != 16)
 *   t = LN_pre(t)
 *   layers: t += out_proj(attn(LN1(t))) ; t += fc2(quick_gelu(fc1(LN2(t))))
 * No final LayerNorm; the CLS row is returned and dropped by the projector. */
#include "vision.h"

#include <math.h>
#include <string.h>

#define CLIP_LN_EPS 1e-5f

gboolean
vis_clip_pos (const dsocr_vision *v, int g, float *out, GError **error)
{
  const size_t W = (size_t) v->clip_width, G = (size_t) v->clip_grid;
  if (g == v->clip_grid) {
    memcpy (out, v->clip_pos, (G * G + 1) * W * sizeof (float));
    return TRUE;
  }
  /* the CLS row is kept, the grid rows are resampled as one [G, G, W] image */
  memcpy (out, v->clip_pos, W * sizeof (float));
  const size_t work_n = G * (size_t) g * W;
  float *work = vis_alloc (work_n, "the position resampling", error);   // [G, g, W]
  if (!work)
    return FALSE;
  gboolean ok = vis_check (dsk_resize_bicubic_aa_f32_cpu (out + W, v->clip_pos + W, G, G,
                                                          (size_t) g, (size_t) g, W, work,
                                                          work_n),
                           "CLIP position resampling", error);
  g_free (work);
  return ok;
}

gboolean
vis_clip_forward (const dsocr_vision *v, const float *sam, int n_views, int g, float *out,
                  GError **error)
{
  const size_t W = (size_t) v->clip_width, H = (size_t) v->clip_heads, hd = W / H;
  const size_t N = (size_t) g * (size_t) g + 1, F = (size_t) v->clip_ffn;
  const size_t B = (size_t) n_views, R = B * N;
  float *t = out;                                           // [B*N, W] residual stream
  float *ln = vis_alloc (R * W, "CLIP", error);             // [B*N, W]
  float *qkv = ln ? vis_alloc (R * 3 * W, "CLIP", error) : NULL;   // [B*N, 3W]
  float *att = qkv ? vis_alloc (R * W, "CLIP", error) : NULL;      // [B*N, W]
  float *mlp = att ? vis_alloc (R * F, "CLIP", error) : NULL;      // [B*N, F]
  gboolean ok = mlp && vis_clip_pos (v, g, ln, error);      // positions in ln[0 .. N*W)

  if (ok) {
    for (size_t i = 0; i < B; i++) {
      float *ti = t + i * N * W;
      memcpy (ti, v->cls, W * sizeof (float));
      memcpy (ti + W, sam + i * (N - 1) * W, (N - 1) * W * sizeof (float));
      for (size_t j = 0; j < N * W; j++)
        ti[j] += ln[j];
    }
    ok = vis_check (dsk_layernorm_f32_cpu (t, t, v->pre_w.data, v->pre_b.data, v->pre_w.dtype,
                                           R, W, CLIP_LN_EPS), "CLIP pre-norm", error);
  }

  dsk_matmul_opts acc = { .accumulate = 1 };
  dsk_attention_params ap = {
    .n_q = N, .n_kv = N, .n_heads = H, .n_kv_heads = H, .d_qk = hd, .d_v = hd,
    .q_stride = 3 * W, .k_stride = 3 * W, .v_stride = 3 * W, .out_stride = W,
    .scale = 1.0f / sqrtf ((float) hd),
  };
  for (int l = 0; ok && l < v->n_layers; l++) {
    const vis_clip_layer *ly = &v->layers[l];
    ok = vis_check (dsk_layernorm_f32_cpu (ln, t, ly->ln1_w.data, ly->ln1_b.data,
                                           ly->ln1_w.dtype, R, W, CLIP_LN_EPS),
                    "CLIP layer_norm1", error) &&
         vis_check (dsk_matmul_f32_cpu (qkv, ln, ly->qkv_w.data, ly->qkv_w.dtype,
                                        ly->qkv_b.data, ly->qkv_b.dtype, R, W, 3 * W, NULL),
                    "CLIP qkv", error);
    /* attention within each view; every other op over the rows of all views */
    for (size_t i = 0; ok && i < B; i++) {
      const float *q = qkv + i * N * 3 * W;
      ok = vis_check (dsk_attention_f32_cpu (att + i * N * W, q, q + W, q + 2 * W, &ap),
                      "CLIP attention", error);
    }
    ok = ok &&
         vis_check (dsk_matmul_f32_cpu (t, att, ly->out_w.data, ly->out_w.dtype,
                                        ly->out_b.data, ly->out_b.dtype, R, W, W, &acc),
                    "CLIP out_proj", error) &&
         vis_check (dsk_layernorm_f32_cpu (ln, t, ly->ln2_w.data, ly->ln2_b.data,
                                           ly->ln2_w.dtype, R, W, CLIP_LN_EPS),
                    "CLIP layer_norm2", error) &&
         vis_check (dsk_matmul_f32_cpu (mlp, ln, ly->fc1_w.data, ly->fc1_w.dtype,
                                        ly->fc1_b.data, ly->fc1_b.dtype, R, W, F, NULL),
                    "CLIP fc1", error) &&
         vis_check (dsk_quick_gelu_f32_cpu (mlp, mlp, R * F), "CLIP quick_gelu", error) &&
         vis_check (dsk_matmul_f32_cpu (t, mlp, ly->fc2_w.data, ly->fc2_w.dtype,
                                        ly->fc2_b.data, ly->fc2_b.dtype, R, F, W, &acc),
                    "CLIP fc2", error);
  }
  g_free (ln);
  g_free (qkv);
  g_free (att);
  g_free (mlp);
  return ok;
}
