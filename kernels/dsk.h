/* dsk.h: the ops of gst-dsocr, CPU reference and CUDA side by side.
 *
 * This is the only header the engine includes from kernels/. It is plain C: no GLib, no
 * GStreamer, no CUDA types (a stream is a `void *`, a `cudaStream_t` underneath).
 *
 * Conventions
 * - An op `foo` lives in foo.c (CPU, the reference the CUDA code is judged by), foo.cu (CUDA,
 *   only built when nvcc is found) and foo-test.c (compares the two, or checks the CPU op
 *   against plain double-precision math).
 * - Entry points are `dsk_<op>_<dtype>_{cpu,cuda}`; they never allocate, never log and never
 *   abort: they return a dsk_status.
 * - Shapes are written outermost first, like torch: a [n, d] array has d contiguous floats per
 *   row. Weights follow the checkpoint's [out, in] layout (y = x W^T).
 */
#ifndef DSK_H
#define DSK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  DSK_OK = 0,
  DSK_ERR_INVALID = 1,     /* bad arguments: a NULL pointer, a zero or negative size */
  DSK_ERR_UNSUPPORTED = 2, /* a dtype or shape this op does not handle */
  DSK_ERR_DEVICE = 3,      /* a CUDA error; dsk_last_error() has the text */
} dsk_status;

/* Element types of weights and activations, the safetensors set. */
typedef enum {
  DSK_F32 = 0,
  DSK_F16,
  DSK_BF16,
  DSK_F8_E4M3,
  DSK_I64,
  DSK_I32,
  DSK_U8,
  DSK_BOOL,
  DSK_N_DTYPES
} dsk_dtype;

/* Size in bytes of one element of @dtype, 0 for an unknown value. */
size_t dsk_dtype_size (dsk_dtype dtype);

/* Human-readable text of the last DSK_ERR_DEVICE on this thread ("" when none). */
const char *dsk_last_error (void);

/* ---- scalar conversions (exact, round-to-nearest-even where narrowing) ---- */

static inline float
dsk_bf16_to_f32 (uint16_t h)
{
  union { uint32_t u; float f; } v = { .u = (uint32_t) h << 16 };
  return v.f;
}

static inline uint16_t
dsk_f32_to_bf16 (float f)
{
  union { uint32_t u; float f; } v = { .f = f };
  if ((v.u & 0x7fffffffu) > 0x7f800000u)   /* NaN: keep it a quiet NaN */
    return (uint16_t) ((v.u >> 16) | 0x40u);
  v.u += 0x7fffu + ((v.u >> 16) & 1u);     /* round to nearest, ties to even */
  return (uint16_t) (v.u >> 16);
}

float dsk_f16_to_f32 (uint16_t h);
/* f32 -> IEEE half, round to nearest even; overflow gives inf, NaN stays NaN. */
uint16_t dsk_f32_to_f16 (float f);
float dsk_f8_e4m3_to_f32 (uint8_t b);

/* ---- convert: widen any float dtype to f32 ----
 * dst[n] (f32) = src[n] (src_dtype). src may be F32, F16, BF16 or F8_E4M3. */
dsk_status dsk_convert_to_f32_cpu (float *dst, const void *src, dsk_dtype src_dtype, size_t n);
dsk_status dsk_convert_to_f32_cuda (float *dst, const void *src, dsk_dtype src_dtype, size_t n,
                                    void *stream);

/* ---- device memory (CUDA builds; elsewhere they return DSK_ERR_UNSUPPORTED) ----
 * Plain cudaMalloc'd memory: never managed memory (it can hang a shared GPU). */

/* Whether a CUDA device can be used by this build (0: no CUDA build, or no device). */
int dsk_cuda_available (void);
dsk_status dsk_cuda_malloc (void **ptr, size_t nbytes);
dsk_status dsk_cuda_free (void *ptr);
dsk_status dsk_cuda_upload (void *dst_device, const void *src_host, size_t nbytes, void *stream);
dsk_status dsk_cuda_download (void *dst_host, const void *src_device, size_t nbytes, void *stream);
/* Waits for all work queued on @stream (NULL: the legacy default stream). */
dsk_status dsk_cuda_sync (void *stream);


/* ==== CPU ops on f32 activations (matmul, norm, rope, softmax, act, attention) ====
 * Naming: dsk_<op>_<activation dtype>_<backend>. Activations are f32 here; a weight keeps its
 * checkpoint dtype (F32, BF16 or F16) and is passed with a dsk_dtype argument, so a later
 * dsk_<op>_f32_cuda twin takes the same arguments plus a stream. Sizes are size_t; a zero size
 * or a NULL array that the op needs gives DSK_ERR_INVALID, an unhandled weight dtype
 * DSK_ERR_UNSUPPORTED. "ld" arguments are row strides in elements; 0 means "packed" (the row
 * length). Ops parallelise with OpenMP when the build has it. */

/* ---- matmul: y = x W^T (+ bias), W in the checkpoint's [out, in] layout ---- */

/* Options of dsk_matmul_f32_cpu; a zeroed struct (or NULL) is a plain packed product.
 * Row i of the product reads x row x_rows[i] and lands in y row y_rows[i], which lets a MoE
 * layer run one expert over its tokens without copying them: x_rows = the token ids routed to
 * the expert, y_rows = the same ids, y_scale = their routing weights, accumulate = 1. */
typedef struct {
  const int32_t *x_rows;  /* [n] row of x read for product row i; NULL: row i */
  const int32_t *y_rows;  /* [n] row of y written for product row i; NULL: row i. Repeated
                           * rows are only meaningful with accumulate (summed in order). */
  const float *y_scale;   /* [n] factor on product row i (bias included); NULL: 1 */
  size_t ldx;             /* floats between rows of x; 0: in */
  size_t ldy;             /* floats between rows of y; 0: out */
  int accumulate;         /* nonzero: y += product instead of y = product */
} dsk_matmul_opts;

/* y[n, out] (=|+=) y_scale * (x[n, in] · W[out, in]^T + bias[out]).
 * @w: [out, in] in @w_dtype (F32, BF16, F16). @bias: [out] in @bias_dtype (F32, BF16, F16) or
 * NULL. @opts: NULL for a plain packed product. y must not overlap x.
 * Results are deterministic for a given n (each output element is reduced in a fixed order by
 * one thread, whatever the thread count); a row's value may differ in the last bits between a
 * small-n call (the GEMV path, n <= 8) and a large-n call (the blocked GEMM path).
 * Large-n calls with a BF16/F16 weight widen it in row blocks into a scratch buffer that
 * belongs to the calling thread; it is kept for the next call and released when the thread
 * exits or by dsk_matmul_scratch_release_cpu. */
dsk_status dsk_matmul_f32_cpu (float *y, const float *x, const void *w, dsk_dtype w_dtype,
                               const void *bias, dsk_dtype bias_dtype,
                               size_t n, size_t in, size_t out, const dsk_matmul_opts *opts);

/* Frees the calling thread's kernel scratch (matmul's widened weight blocks, attention's
 * logits); a later call makes a new one. Threads that exit free theirs by themselves. */
void dsk_matmul_scratch_release_cpu (void);

/* ---- norm: RMSNorm and LayerNorm, f32 math ---- */

/* y[n, dim] = x * rsqrt(mean(x^2) + eps) * w[dim]. @w in F32/BF16/F16; y may equal x.
 * @ldx, @ldy: row strides (0: dim), e.g. to normalise the first 512 of 576 columns. */
dsk_status dsk_rmsnorm_f32_cpu (float *y, size_t ldy, const float *x, size_t ldx,
                                const void *w, dsk_dtype w_dtype,
                                size_t n, size_t dim, float eps);

/* y[n, dim] = (x - mean) / sqrt(var + eps) * w + b per row, biased variance (torch
 * nn.LayerNorm). @w, @b: [dim] in @wb_dtype (F32/BF16/F16), each may be NULL (1 and 0).
 * y may equal x. Channels-last LayerNorm2d (NHWC) is this op with n = pixels. */
dsk_status dsk_layernorm_f32_cpu (float *y, const float *x, const void *w, const void *b,
                                  dsk_dtype wb_dtype, size_t n, size_t dim, float eps);

/* LayerNorm2d on channels-first data: x, y [batch, channels, hw]; every pixel is normalised
 * over its @channels values (stride hw), then y = xn * w[c] + b[c]. y may equal x. */
dsk_status dsk_layernorm2d_f32_cpu (float *y, const float *x, const void *w, const void *b,
                                    dsk_dtype wb_dtype, size_t batch, size_t channels,
                                    size_t hw, float eps);

/* CUDA twins (device pointers, queued on @stream): same arguments and results to f32
 * rounding (one block reduces a row; the CPU reduces in another order). */
dsk_status dsk_rmsnorm_f32_cuda (float *y, size_t ldy, const float *x, size_t ldx,
                                 const void *w, dsk_dtype w_dtype,
                                 size_t n, size_t dim, float eps, void *stream);
dsk_status dsk_layernorm_f32_cuda (float *y, const float *x, const void *w, const void *b,
                                   dsk_dtype wb_dtype, size_t n, size_t dim, float eps,
                                   void *stream);

/* ---- rope: rotary position embedding ---- */

typedef enum {
  DSK_ROPE_HALF = 0,        /* "rotate_half" / neox: pairs (i, i + rot_dim/2) */
  DSK_ROPE_INTERLEAVED = 1, /* complex / gpt-j: pairs (2i, 2i + 1) */
} dsk_rope_mode;

/* DeepSeek YaRN parameters (config rope_scaling with type "yarn"). */
typedef struct {
  float factor;                  /* scaling factor s, e.g. 40 */
  size_t original_max_position;  /* original_max_position_embeddings, e.g. 4096 */
  float beta_fast;               /* 32 */
  float beta_slow;               /* 1 */
  float mscale;                  /* 0.707 (V2-Lite), 1 (V3) */
  float mscale_all_dim;          /* same convention */
} dsk_rope_yarn;

/* yarn_get_mscale: 0.1 * m * ln(s) + 1 for s > 1, else 1. */
float dsk_rope_yarn_get_mscale (float scale, float mscale);

/* inv_freq[rot_dim/2] for @theta (rot_dim even), computed in f32 as torch does:
 * 1 / theta^(2i/rot_dim); with @yarn (NULL: plain) blended between the extrapolated and the
 * interpolated frequency by DeepSeek's linear ramp over the correction range. */
dsk_status dsk_rope_inv_freq_cpu (float *inv_freq, size_t rot_dim, float theta,
                                  const dsk_rope_yarn *yarn);

/* cos, sin [n_pos, rot_dim/2]: angle p * inv_freq[i] in f32 for p = 0..n_pos-1, then
 * cos/sin times @attn_factor (1 for plain RoPE; for YaRN get_mscale(s, mscale) /
 * get_mscale(s, mscale_all_dim), which dsk_rope_yarn_cos_sin_factor gives). */
dsk_status dsk_rope_tables_cpu (float *cos_tab, float *sin_tab, const float *inv_freq,
                                size_t rot_dim, size_t n_pos, float attn_factor);
float dsk_rope_yarn_cos_sin_factor (const dsk_rope_yarn *yarn);

/* In place on x: for token t, head h, the rot_dim floats at
 * x + t * token_stride + h * head_stride + rot_offset are rotated by the angles of row
 * positions[t] of the tables (a [n_tokens, n_heads, head_dim] array has token_stride =
 * n_heads * head_dim, head_stride = head_dim; MLA's q_pe sits at rot_offset = qk_nope).
 * @positions: [n_tokens], each in [0, n_pos), checked before anything is written. */
dsk_status dsk_rope_f32_cpu (float *x, size_t n_tokens, size_t n_heads,
                             size_t token_stride, size_t head_stride,
                             size_t rot_offset, size_t rot_dim,
                             const int32_t *positions, const float *cos_tab,
                             const float *sin_tab, size_t n_pos, dsk_rope_mode mode);
/* CUDA twin: every pointer on the device, queued on @stream. The positions cannot be checked
 * from the host: the caller keeps them in [0, n_pos). */
dsk_status dsk_rope_f32_cuda (float *x, size_t n_tokens, size_t n_heads,
                              size_t token_stride, size_t head_stride,
                              size_t rot_offset, size_t rot_dim,
                              const int32_t *positions, const float *cos_tab,
                              const float *sin_tab, size_t n_pos, dsk_rope_mode mode,
                              void *stream);

/* ---- softmax over the last dim ---- */

/* y[n, dim] = softmax(x + bias) per row, max-subtracted, f32. @bias: NULL, or row i at
 * bias + i * bias_ld (bias_ld 0: one [dim] row for all). -INFINITY entries mask; a row with
 * every entry -INFINITY gives zeros (torch gives NaN). y may equal x. */
dsk_status dsk_softmax_f32_cpu (float *y, const float *x, const float *bias, size_t bias_ld,
                                size_t n, size_t dim);
/* CUDA twin (device pointers, queued on @stream); y must equal x or not overlap it. */
dsk_status dsk_softmax_f32_cuda (float *y, const float *x, const float *bias, size_t bias_ld,
                                 size_t n, size_t dim, void *stream);

/* ---- activations, elementwise, y may equal the input ---- */

dsk_status dsk_silu_f32_cpu (float *y, const float *x, size_t n);        /* x * sigmoid(x) */
dsk_status dsk_gelu_f32_cpu (float *y, const float *x, size_t n);        /* exact erf form */
dsk_status dsk_quick_gelu_f32_cpu (float *y, const float *x, size_t n);  /* x*sigmoid(1.702x) */
/* y[n] = silu(gate[n]) * up[n]; y may equal gate or up. */
dsk_status dsk_swiglu_f32_cpu (float *y, const float *gate, const float *up, size_t n);

/* CUDA twins (device pointers, queued on @stream). */
dsk_status dsk_silu_f32_cuda (float *y, const float *x, size_t n, void *stream);
dsk_status dsk_gelu_f32_cuda (float *y, const float *x, size_t n, void *stream);
dsk_status dsk_quick_gelu_f32_cuda (float *y, const float *x, size_t n, void *stream);
dsk_status dsk_swiglu_f32_cuda (float *y, const float *gate, const float *up, size_t n,
                                void *stream);

/* ---- attention: softmax(scale * q k^T + bias) v per head ---- */

/* Problem description of dsk_attention_f32_cpu; strides are in floats, 0 means packed. */
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
  float scale;         /* on q·k, e.g. 1/sqrt(d_qk) */
  int causal;          /* query t sees keys s <= q_pos0 + t */
  size_t q_pos0;       /* cache index of query 0 (past length when decoding) */
  const uint8_t *key_valid;  /* [n_kv] 0: key masked for every query (left padding); NULL */
  /* additive bias on the scaled logits, NULL: none. Head h reads
   * bias + (bias_heads == 1 ? 0 : h) * n_q * bias_ld + t * bias_ld; bias_ld 0 means n_kv. */
  const float *bias;   /* [bias_heads, n_q, bias_ld] */
  size_t bias_heads;   /* 1 or n_heads */
  size_t bias_ld;
  /* decomposed 2-D relative-position bias (SAM): keys form a kv_h x kv_w grid (row-major),
   * bias(h, t, s) = rel_h[h, t, s / kv_w] + rel_w[h, t, s % kv_w]; NULL: none. Adds to @bias. */
  const float *rel_h;  /* [n_heads, n_q, kv_h] */
  const float *rel_w;  /* [n_heads, n_q, kv_w] */
  size_t kv_h, kv_w;   /* kv_h * kv_w == n_kv */
} dsk_attention_params;

/* out[T, n_heads, d_v] (strided by the params) = attention of q[T, n_heads, d_qk] over
 * k[S, n_kv_heads, d_qk], v[S, n_kv_heads, d_v]; out must not overlap q, k or v. Softmax in
 * f32 with row sums in double; a query with no visible key gets zeros. Small problems stream
 * over key blocks (online softmax, stack only); large ones (T >= 64 and T * S >= 512^2) with
 * OpenBLAS materialise a [256, S] block of logits in the calling thread's scratch (see
 * dsk_matmul_scratch_release_cpu) and use sgemm. Deterministic for given sizes, whatever the
 * thread count; the two paths differ in the last bits. */
dsk_status dsk_attention_f32_cpu (float *out, const float *q, const float *k, const float *v,
                                  const dsk_attention_params *p);

/* ---- conv2d: 2-D convolution (im2col + matmul), output channels-last ---- */

typedef enum {
  DSK_LAYOUT_NCHW = 0,   /* x[c_in, h, w] */
  DSK_LAYOUT_NHWC = 1,   /* x[h, w, c_in] */
} dsk_layout;

/* Output pixels unfolded per matmul call; dsk_conv2d_workspace_floats() sizes for this. */
#define DSK_CONV2D_BLOCK_PIXELS 1024

/* One image; a batch is a loop over images. */
typedef struct {
  size_t c_in, h, w;     /* input channels and size */
  dsk_layout in_layout;
  size_t c_out;
  size_t kh, kw;         /* kernel size */
  size_t stride;         /* on both axes */
  size_t pad;            /* zeros on every side */
  size_t ldy;            /* floats between output pixels; 0: c_out */
} dsk_conv2d_params;

/* Output size, (h + 2 pad - kh) / stride + 1 (0 when the kernel does not fit). */
size_t dsk_conv2d_out_h (const dsk_conv2d_params *p);
size_t dsk_conv2d_out_w (const dsk_conv2d_params *p);
/* Workspace the op needs: min(out pixels, DSK_CONV2D_BLOCK_PIXELS) * c_in * kh * kw floats;
 * 0 for a 1x1 stride-1 unpadded conv on NHWC input, which is a plain product. */
size_t dsk_conv2d_workspace_floats (const dsk_conv2d_params *p);

/* y[oh, ow, c_out] (pixel stride ldy) = sum over (c, ky, kx) of w[c_out, c, ky, kx] *
 * x(c, oy * stride - pad + ky, ox * stride - pad + kx) + bias[c_out] (torch nn.Conv2d).
 * @w in @w_dtype (F32, BF16, F16), torch's [c_out, c_in, kh, kw] layout; @bias [c_out] in
 * @bias_dtype or NULL. @work: @work_floats floats of scratch; any amount holding at least one
 * unfolded pixel (c_in * kh * kw) works, in blocks of work_floats / (c_in * kh * kw) pixels.
 * y must not overlap x or work. */
dsk_status dsk_conv2d_f32_cpu (float *y, const float *x, const void *w, dsk_dtype w_dtype,
                               const void *bias, dsk_dtype bias_dtype,
                               const dsk_conv2d_params *p, float *work, size_t work_floats);

/* ---- interp: resampling of position tables (torch F.interpolate, align_corners=False) ---- */

/* y[h_out, w_out, channels] = x[h_in, w_in, channels] resized as torch's
 * F.interpolate(mode="bicubic", antialias=True) does each channel plane in f32: Keys kernel
 * a = -0.5 stretched by in/out when shrinking, taps cut at the borders and renormalised,
 * width pass then height pass. Channels-last, so a [1, H, W, C] table needs no transpose.
 * @work: at least h_in * w_out * channels floats. y must not overlap x or work. */
dsk_status dsk_resize_bicubic_aa_f32_cpu (float *y, const float *x, size_t h_in, size_t w_in,
                                          size_t h_out, size_t w_out, size_t channels,
                                          float *work, size_t work_floats);

/* y[l_out, channels] = x[l_in, channels] resized along its rows as torch's
 * F.interpolate(mode="linear") does each channel: source (i + 0.5) * l_in / l_out - 0.5,
 * clamped at 0, between the two nearest rows. y must not overlap x. */
dsk_status dsk_resize_linear_f32_cpu (float *y, const float *x, size_t l_in, size_t l_out,
                                      size_t channels);

#ifdef __cplusplus
}
#endif

#endif /* DSK_H */
