/* dsk-cpu.h: the CPU kernels (internal to kernels/cpu/; the engine reaches them through a
 * backend, backend.h).
 *
 * Each kernel is single-threaded and deterministic: the CPU backend (backend-cpu.c) splits an
 * op into pool items (rows, heads, blocks of weight rows) and calls a kernel per item, so a
 * result never depends on the thread count. Activations are f32; a weight keeps its stored
 * dtype (F32, BF16, F16) and is passed with a dsk_dtype. Sizes are size_t; a zero size or a
 * NULL array gives DSK_ERR_INVALID, an unhandled dtype DSK_ERR_UNSUPPORTED. "ld" arguments are
 * row strides in elements, 0 meaning packed.
 *
 * SIMD code is compiled per function with __attribute__((target)) and chosen at run time, so
 * one binary runs everywhere: dsk_cpu_has_avx2() says whether the AVX2+FMA+F16C variants may
 * run, dsk_cpu_has_avx512() the AVX-512F ones. Every kernel also has a plain C path, which is
 * what non-x86 builds use. */
#ifndef DSK_CPU_H
#define DSK_CPU_H

#include "backend.h"
#include "dsk.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DSK_X86_SIMD 1
#include <immintrin.h>
#define DSK_TARGET_AVX2 __attribute__ ((target ("avx2,fma,f16c")))
#else
#define DSK_X86_SIMD 0
#endif

/* ---- CPU features (features.c) ---- */

/* Nonzero when the CPU runs AVX2, FMA and F16C and the plain path is not forced. */
int dsk_cpu_has_avx2 (void);
/* Nonzero when it also runs AVX-512F (and the plain path is not forced). */
int dsk_cpu_has_avx512 (void);
/* Nonzero when it also runs AVX-512 BW, VL and VNNI (the integer products of quant.c). */
int dsk_cpu_has_avx512_vnni (void);
/* "avx512", "avx2" or "generic": what the kernels use. */
const char *dsk_cpu_simd_name (void);

/* Test and benchmark hooks, not for the engine: force the plain C paths (@on nonzero); the
 * attention path (0 automatic, 1 streaming kernel, 2 BLAS, which falls back to 1 without
 * OpenBLAS, 3 the packed product kernel, falling back to 1 or 2 without AVX-512). Not
 * thread-safe: set before running ops. */
void dsk_cpu_force_generic (int on);
void dsk_attention_force_path (int path);

/* Whether @dt is a weight dtype the f32 kernels read (F32, BF16, F16). */
static inline int
dsk_cpu_weight_dtype_ok (dsk_dtype dt)
{
  return dt == DSK_F32 || dt == DSK_BF16 || dt == DSK_F16;
}

/* Element @i of a weight array of dtype @dt (one of the above) as f32. */
static inline float
dsk_cpu_weight_at (const void *w, dsk_dtype dt, size_t i)
{
  switch (dt) {
    case DSK_BF16: return dsk_bf16_to_f32 (((const uint16_t *) w)[i]);
    case DSK_F16: return dsk_f16_to_f32 (((const uint16_t *) w)[i]);
    default: return ((const float *) w)[i];
  }
}

/* ---- convert (convert.c) ---- */

/* dst[n] (f32) = src[n] (src_dtype). src may be F32, F16, BF16 or F8_E4M3. */
dsk_status dsk_convert_to_f32_cpu (float *dst, const void *src, dsk_dtype src_dtype, size_t n);

/* ---- norm (norm.c): rows of f32, row statistics summed in double ---- */

/* y[n, dim] = x * rsqrt(mean(x^2) + eps) * w[dim]. @w in F32/BF16/F16; y may equal x. */
dsk_status dsk_rmsnorm_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx,
                                const void *w, dsk_dtype w_dtype,
                                size_t n, size_t dim, float eps);
/* y[n, dim] = (x - mean) / sqrt(var + eps) * w + b per row, biased variance (torch
 * nn.LayerNorm). @w, @b: [dim] in @wb_dtype, each may be NULL (1 and 0). y may equal x. */
dsk_status dsk_layernorm_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx,
                                  const void *w, const void *b, dsk_dtype wb_dtype,
                                  size_t n, size_t dim, float eps);

/* ---- rope (rope.c) ---- */

/* get_mscale(s, mscale) / get_mscale(s, mscale_all_dim): the cos/sin multiplier of YaRN
 * (1 for @yarn NULL), for the tests that build tables without a config. */
float dsk_rope_yarn_cos_sin_factor (const dsk_rope_yarn *yarn);

/* cos, sin [n_pos, rot_dim/2]: angle p * inv_freq[i] in f32 for p = p0 .. p0 + n_pos - 1 (rows
 * of the tables from row p0), then times @attn_factor. */
dsk_status dsk_rope_tables_cpu (float *cos_tab, float *sin_tab, const float *inv_freq,
                                size_t rot_dim, size_t p0, size_t n_pos, float attn_factor);

/* In place on x: for token t, head h, the rot_dim floats at
 * x + t * token_stride + h * head_stride + rot_offset are rotated by the angles of row
 * positions[t] of the tables. @positions: [n_tokens], each in [0, n_pos), checked before
 * anything is written. */
dsk_status dsk_rope_f32_cpu (float *x, size_t n_tokens, size_t n_heads,
                             size_t token_stride, size_t head_stride,
                             size_t rot_offset, size_t rot_dim,
                             const int32_t *positions, const float *cos_tab,
                             const float *sin_tab, size_t n_pos, dsk_rope_mode mode);

/* ---- softmax (softmax.c) ---- */

/* y[n, dim] = softmax(x + bias) per row, max-subtracted, f32. @bias: NULL, or row i at
 * bias + i * bias_ld (bias_ld 0: one [dim] row for all). -INFINITY entries mask; a row with
 * every entry -INFINITY gives zeros (torch gives NaN). y may equal x. */
dsk_status dsk_softmax_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx,
                                const float *bias, size_t bias_ld, size_t n, size_t dim);

/* ---- activations (act.c), elementwise, y may equal the input ---- */

dsk_status dsk_silu_f32_cpu (float *y, const float *x, size_t n);        /* x * sigmoid(x) */
dsk_status dsk_gelu_f32_cpu (float *y, const float *x, size_t n);        /* exact erf form */
dsk_status dsk_quick_gelu_f32_cpu (float *y, const float *x, size_t n);  /* x*sigmoid(1.702x) */
/* y[n] = silu(gate[n]) * up[n]; y may equal gate or up. */
dsk_status dsk_swiglu_f32_cpu (float *y, const float *gate, const float *up, size_t n);

/* ---- attention (attention.c) ---- */

/* One attention problem; strides are in floats, 0 means packed. */
typedef struct {
  size_t n_q;          /* T: query tokens */
  size_t n_kv;         /* S: key/value tokens (cache included) */
  size_t n_heads;      /* query heads */
  size_t n_kv_heads;   /* key/value heads, divides n_heads; query head h reads kv head
                        * h / (n_heads / n_kv_heads) (GQA/MQA) */
  size_t d_qk;         /* q/k head dim (MLA: 192) */
  size_t d_v;          /* v/out head dim (MLA: 128), at most 512 */
  /* token (row) strides; 0: n_heads * d_qk for q, n_kv_heads * d_qk for k,
   * n_kv_heads * d_v for v, n_heads * d_v for out */
  size_t q_stride, k_stride, v_stride, out_stride;
  /* head strides; 0: d_qk for q and k, d_v for v and out */
  size_t q_head_stride, k_head_stride, v_head_stride, out_head_stride;
  float scale;         /* on q.k, e.g. 1/sqrt(d_qk) */
  int causal;          /* query t sees keys s <= q_pos0 + t */
  size_t q_pos0;       /* cache index of query 0 (past length when decoding) */
  const uint8_t *key_valid;  /* [n_kv] 0: key masked for every query (left padding); NULL */
  /* additive bias on the scaled logits, NULL: none. Head h reads
   * bias + (bias_heads == 1 ? 0 : h) * bias_head_stride + t * bias_ld; bias_ld 0 means n_kv,
   * bias_head_stride 0 means n_q * bias_ld. */
  const float *bias;   /* [bias_heads, n_q, bias_ld] */
  size_t bias_heads;   /* 1 or n_heads */
  size_t bias_ld;
  size_t bias_head_stride;
  int bias_rows_shared;  /* nonzero: one bias row for every query (bias_ld ignored) */
  /* decomposed 2-D relative-position bias (SAM): keys form a kv_h x kv_w grid (row-major),
   * bias(h, t, s) = rel_h[h, t, s / kv_w] + rel_w[h, t, s % kv_w]; NULL: none. Adds to @bias.
   * Both are packed: head h's rows start at h * n_q * kv_h, resp. h * n_q * kv_w. */
  const float *rel_h;  /* [n_heads, n_q, kv_h] */
  const float *rel_w;  /* [n_heads, n_q, kv_w] */
  size_t kv_h, kv_w;   /* kv_h * kv_w == n_kv */
} dsk_attention_params;

/* The work of one problem is split into items (head, block of queries); an item's result does
 * not depend on which thread runs it or in what order. */
typedef struct dsk_attention_plan dsk_attention_plan;
/* Checks @p and plans it: the item count, and the scratch floats one item needs (the BLAS
 * path's logits block; 0 for the streaming kernel). DSK_OK or the error. */
dsk_status dsk_attention_plan_cpu (const dsk_attention_params *p, size_t *n_items,
                                   size_t *scratch_floats);
/* Runs item @item of @p (planned with the same @p) with @scratch of the planned size. */
void dsk_attention_item_cpu (float *out, const float *q, const float *k, const float *v,
                             const dsk_attention_params *p, size_t item, float *scratch);
/* The whole problem on the calling thread (tests; scratch from the heap). */
dsk_status dsk_attention_f32_cpu (float *out, const float *q, const float *k, const float *v,
                                  const dsk_attention_params *p);

/* ---- conv2d (conv2d.c): im2col, the gather of a convolution as a product ---- */

/* Unfolds output pixels [pix0, pix0 + n) of @d (whose output width is @ow) into
 * col[n, c_in * kh * kw] in the weight's (c_in, ky, kx) order; zeros outside the image. */
void dsk_im2col_cpu (float *col, const float *x, const dsk_conv2d_desc *d, size_t ow,
                     size_t pix0, size_t n);

/* ---- interp (interp.c): resampling of position tables (align_corners=False) ---- */

/* y[h_out, w_out, channels] = x[h_in, w_in, channels] resized as torch's
 * F.interpolate(mode="bicubic", antialias=True) does each channel plane in f32: Keys kernel
 * a = -0.5 stretched by in/out when shrinking, taps cut at the borders and renormalised,
 * width pass then height pass. @work: at least h_in * w_out * channels floats. */
dsk_status dsk_resize_bicubic_aa_f32_cpu (float *y, const float *x, size_t h_in, size_t w_in,
                                          size_t h_out, size_t w_out, size_t channels,
                                          float *work, size_t work_floats);
/* y[l_out, channels] = x[l_in, channels] resized along its rows as torch's
 * F.interpolate(mode="linear") does each channel. y must not overlap x. */
dsk_status dsk_resize_linear_f32_cpu (float *y, const float *x, size_t l_in, size_t l_out,
                                      size_t channels);

#if DSK_X86_SIMD
/* exp of 8 floats (Cephes' polynomial, about 2 ulp over the range; inputs below -87.3
 * give 0, which is what masked scores need). */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 __m256
dsk_exp8_avx2 (__m256 x)
{
  const __m256 lo = _mm256_set1_ps (-87.3365447505531f), hi = _mm256_set1_ps (88.0f);
  __m256 under = _mm256_cmp_ps (x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps (_mm256_max_ps (x, lo), hi);
  __m256 fx = _mm256_round_ps (_mm256_mul_ps (x, _mm256_set1_ps (1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  /* x - fx * ln2 in two parts, so the reduced argument keeps its low bits */
  x = _mm256_fnmadd_ps (fx, _mm256_set1_ps (0.693359375f), x);
  x = _mm256_fnmadd_ps (fx, _mm256_set1_ps (-2.12194440e-4f), x);
  __m256 p = _mm256_set1_ps (1.9875691500e-4f);
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (1.3981999507e-3f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (8.3334519073e-3f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (4.1665795894e-2f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (1.6666665459e-1f));
  p = _mm256_fmadd_ps (p, x, _mm256_set1_ps (5.0000001201e-1f));
  p = _mm256_fmadd_ps (p, _mm256_mul_ps (x, x), _mm256_add_ps (x, _mm256_set1_ps (1.0f)));
  __m256i e = _mm256_slli_epi32 (_mm256_add_epi32 (_mm256_cvtps_epi32 (fx), _mm256_set1_epi32 (127)), 23);
  __m256 r = _mm256_mul_ps (p, _mm256_castsi256_ps (e));
  return _mm256_andnot_ps (under, r);
}

/* The same for 16 floats with AVX-512F. */
static inline __attribute__ ((always_inline, target ("avx512f"))) __m512
dsk_exp16_avx512 (__m512 x)
{
  const __m512 lo = _mm512_set1_ps (-87.3365447505531f), hi = _mm512_set1_ps (88.0f);
  const __mmask16 under = _mm512_cmp_ps_mask (x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps (_mm512_max_ps (x, lo), hi);
  __m512 fx = _mm512_roundscale_ps (_mm512_mul_ps (x, _mm512_set1_ps (1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps (fx, _mm512_set1_ps (0.693359375f), x);
  x = _mm512_fnmadd_ps (fx, _mm512_set1_ps (-2.12194440e-4f), x);
  __m512 p = _mm512_set1_ps (1.9875691500e-4f);
  p = _mm512_fmadd_ps (p, x, _mm512_set1_ps (1.3981999507e-3f));
  p = _mm512_fmadd_ps (p, x, _mm512_set1_ps (8.3334519073e-3f));
  p = _mm512_fmadd_ps (p, x, _mm512_set1_ps (4.1665795894e-2f));
  p = _mm512_fmadd_ps (p, x, _mm512_set1_ps (1.6666665459e-1f));
  p = _mm512_fmadd_ps (p, x, _mm512_set1_ps (5.0000001201e-1f));
  p = _mm512_fmadd_ps (p, _mm512_mul_ps (x, x), _mm512_add_ps (x, _mm512_set1_ps (1.0f)));
  __m512i e = _mm512_slli_epi32 (_mm512_add_epi32 (_mm512_cvtps_epi32 (fx),
                                                   _mm512_set1_epi32 (127)), 23);
  return _mm512_maskz_mov_ps (~under, _mm512_mul_ps (p, _mm512_castsi512_ps (e)));
}
#endif

#endif /* DSK_CPU_H */
