/* backend.h: the one seam between the models and the hardware.
 *
 * A backend is an execution context on one device: the CPU (with its thread pool) or a CUDA
 * GPU (with its stream). It is a table of ops (backend-impl.h) plus the memory it can reach.
 * Model code (engine/) describes its activations as dsk_tensor views into buffers and calls
 * the ops below; it never names a device and never reads or writes activation memory itself.
 * Moving bytes between the host and a backend is what dsk_tensor_set / dsk_tensor_get are for.
 *
 *   dsk_backend *be = dsk_backend_new ("cpu", 4, err, sizeof err);
 *   dsk_arena *a = dsk_arena_new (be);
 *   dsk_tensor x = dsk_arena_tensor (a, DSK_F32, 2, (size_t[]) { T, H });   // [T, H]
 *   dsk_tensor_set (be, &x, host_rows);
 *   dsk_rmsnorm (be, &x, &x, &w_norm, 1e-6f);
 *   dsk_linear (be, &y, &x, &w_q, NULL);
 *   if (dsk_backend_failed (be)) ... dsk_backend_error (be) ...
 *
 * Errors are sticky, like cairo's: an op given a bad shape, a tensor of another device, or
 * memory that ran out records the first failure in the backend and does nothing; every later
 * op is skipped until dsk_backend_clear_error(). A forward pass therefore reads as a plain
 * list of ops and checks once at its end. Ops never abort, never log and never allocate
 * activation memory (only their own scratch, kept by the backend between calls).
 *
 * Tensors are plain views: a pointer, a dtype, up to four sizes (outermost first, like
 * torch) and element strides. The innermost dimension is contiguous (stride 1) except where an
 * op says otherwise; an outer stride may be 0 in a source operand to repeat (broadcast) it.
 * A tensor does not own memory: buffers and arenas do.
 *
 * Threads: a backend runs one op at a time; use one backend per thread that computes (every
 * element has its own). Weights prepared for a device (dsk_backend_prepare_weight) are shared
 * by every backend of that device and never written by an op.
 *
 * Plain C: no GLib, no CUDA types. This header and dsk.h are all the engine includes from
 * kernels/.
 */
#ifndef DSK_BACKEND_H
#define DSK_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dsk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- devices ---- */

/* Where memory lives. */
typedef enum {
  DSK_DEVICE_HOST = 0,   /* system memory: the CPU backend */
  DSK_DEVICE_CUDA = 1,   /* an NVIDIA GPU's memory */
} dsk_device_kind;

typedef struct {
  dsk_device_kind kind;
  int index;             /* the CUDA device ordinal; 0 for the host */
} dsk_device;

/* "cpu", "cuda:0", ... into @buf (at least 16 bytes); returns buf. */
const char *dsk_device_name (dsk_device dev, char *buf, size_t len);

/* ---- tensors ---- */

#define DSK_MAX_DIMS 4

typedef struct {
  void *data;                 /* element [0, ..., 0], on @device */
  dsk_dtype dtype;
  int n_dims;                 /* 1 .. DSK_MAX_DIMS */
  size_t ne[DSK_MAX_DIMS];    /* sizes, outermost first; unused entries are 1 */
  size_t st[DSK_MAX_DIMS];    /* strides in elements; unused entries are 0 */
  dsk_device device;
} dsk_tensor;

/* A contiguous tensor of @n_dims sizes @ne at @data on @device. */
dsk_tensor dsk_tensor_make (void *data, dsk_dtype dtype, int n_dims, const size_t *ne,
                            dsk_device device);
/* Host memory as a 1-D / 2-D contiguous tensor (weights and tables prepared on the host). */
dsk_tensor dsk_tensor_host_1d (const void *data, dsk_dtype dtype, size_t n);
dsk_tensor dsk_tensor_host_2d (const void *data, dsk_dtype dtype, size_t rows, size_t cols);

size_t dsk_tensor_n_elements (const dsk_tensor *t);
/* Whether the elements are packed in row-major order with no gaps. */
int dsk_tensor_is_contiguous (const dsk_tensor *t);
/* Rows of the outermost dimension, and elements per row (the product of the others). */
size_t dsk_tensor_rows (const dsk_tensor *t);
size_t dsk_tensor_row_len (const dsk_tensor *t);

/* Views. They keep the memory of @t (no copy) and are cheap values. */
/* Elements [start, start + len) of dimension @dim. */
dsk_tensor dsk_narrow (const dsk_tensor *t, int dim, size_t start, size_t len);
/* Dimension @dim of size a * b split into two dimensions [a, b] (b innermost). */
dsk_tensor dsk_split (const dsk_tensor *t, int dim, size_t a, size_t b);
/* The view with dimension @dim (size 1 before) repeated @n times at stride 0: a broadcast
 * source, e.g. one k_pe row per position repeated over the heads. */
dsk_tensor dsk_expand (const dsk_tensor *t, int dim, size_t n);
/* Dimensions @dim and @dim + 1 merged (only when the outer stride is size * inner stride). */
dsk_tensor dsk_merge (const dsk_tensor *t, int dim);
/* A new leading dimension of size 1 (the batch of ops that take one). */
dsk_tensor dsk_unsqueeze (const dsk_tensor *t);
/* Element @i of dimension @dim, that dimension dropped (row r of a batch as its own tensor). */
dsk_tensor dsk_select (const dsk_tensor *t, int dim, size_t i);
/* Dimensions @d0 and @d1 swapped (neither the innermost): a batch of heads as the outer
 * dimension of a [T, H, d] tensor, say. */
dsk_tensor dsk_transpose (const dsk_tensor *t, int d0, int d1);

/* ---- backends ---- */

typedef struct dsk_backend dsk_backend;

/* A backend for @device: "cpu", "cuda" (device 0) or "cuda:N". @n_threads: CPU threads for
 * the ops (0: one per processor; a CUDA backend uses one host thread). NULL with a message in
 * @err (may be NULL) when the device is unknown, absent from this machine or this build.
 * (transfer full) */
dsk_backend *dsk_backend_new (const char *device, int n_threads, char *err, size_t err_len);
dsk_backend *dsk_backend_ref (dsk_backend *be);
void dsk_backend_unref (dsk_backend *be);

dsk_device dsk_backend_get_device (const dsk_backend *be);
/* "cpu (4 threads, avx512)", "cuda:0 (NVIDIA H100)". */
const char *dsk_backend_get_description (const dsk_backend *be);
int dsk_backend_get_n_threads (const dsk_backend *be);

/* Whether "cpu", "cuda", "cuda:N" names a device this build and machine can use. */
int dsk_device_available (const char *device);
/* The names of the backends compiled into this build, NULL-terminated ("cpu", "cuda"). */
const char *const *dsk_backend_list (void);

/* The sticky error of the ops run on @be (see the top of this file). */
int dsk_backend_failed (const dsk_backend *be);
dsk_status dsk_backend_status (const dsk_backend *be);
const char *dsk_backend_error (const dsk_backend *be);   /* "" when none */
void dsk_backend_clear_error (dsk_backend *be);
/* Records @st with a message (printf-style) as the backend's error unless one is recorded. */
void dsk_backend_fail (dsk_backend *be, dsk_status st, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* Waits for the ops queued on @be (a CPU backend runs them synchronously). */
void dsk_backend_synchronize (dsk_backend *be);

/* Whether @be implements @op (a name as in backend-impl.h's table: "linear", "attention"...);
 * the generic backend test skips the others by name. */
int dsk_backend_supports (const dsk_backend *be, const char *op);

/* ---- memory ---- */

typedef struct dsk_buffer dsk_buffer;

/* @nbytes of @be's device memory, 64-byte aligned, uninitialised; NULL (and @be's error set)
 * when it cannot be had. (transfer full) */
dsk_buffer *dsk_buffer_new (dsk_backend *be, size_t nbytes);
void dsk_buffer_free (dsk_buffer *buf);
size_t dsk_buffer_size (const dsk_buffer *buf);
/* A contiguous tensor at byte @offset of @buf. */
dsk_tensor dsk_buffer_tensor (const dsk_buffer *buf, size_t offset, dsk_dtype dtype, int n_dims,
                              const size_t *ne);

/* A scratch arena: activations of one forward pass, bump-allocated from the backend's memory
 * and all released at once by dsk_arena_reset(). It is sized at first use: a pass that needs
 * more than the arena holds gets extra chunks, and the next reset replaces them with one
 * chunk of the largest total seen, so a steady stream of passes allocates nothing. */
typedef struct dsk_arena dsk_arena;

dsk_arena *dsk_arena_new (dsk_backend *be);
void dsk_arena_free (dsk_arena *arena);
/* Forgets every tensor handed out since the last reset. */
void dsk_arena_reset (dsk_arena *arena);
/* A contiguous [ne[0], ..., ne[n_dims - 1]] tensor of @dtype, 64-byte aligned. When memory
 * runs out the backend's error is set and the tensor's data is NULL (ops then do nothing). */
dsk_tensor dsk_arena_tensor (dsk_arena *arena, dsk_dtype dtype, int n_dims, const size_t *ne);
/* Shorthands for 1 to 4 dimensions. */
dsk_tensor dsk_arena_1d (dsk_arena *arena, dsk_dtype dtype, size_t n0);
dsk_tensor dsk_arena_2d (dsk_arena *arena, dsk_dtype dtype, size_t n0, size_t n1);
dsk_tensor dsk_arena_3d (dsk_arena *arena, dsk_dtype dtype, size_t n0, size_t n1, size_t n2);
dsk_tensor dsk_arena_4d (dsk_arena *arena, dsk_dtype dtype, size_t n0, size_t n1, size_t n2,
                         size_t n3);
/* Bytes the arena holds (its chunks), for memory reports. */
size_t dsk_arena_capacity (const dsk_arena *arena);

/* Makes @host (a weight or table in host memory, e.g. mapped from a checkpoint) usable by the
 * ops of @be's device. The CPU uses the host memory itself (copied only where it is not
 * aligned to its element size); a GPU uploads it into @storage. @storage collects what was
 * allocated, freed with dsk_weight_storage_free() once no backend uses the weights. */
typedef struct dsk_weight_storage dsk_weight_storage;
dsk_weight_storage *dsk_weight_storage_new (void);
void dsk_weight_storage_free (dsk_weight_storage *storage);
size_t dsk_weight_storage_bytes (const dsk_weight_storage *storage);
dsk_tensor dsk_backend_prepare_weight (dsk_backend *be, const dsk_tensor *host,
                                       dsk_weight_storage *storage);
/* Makes @host (F32, BF16 or F16, contiguous, its last dimension a multiple of 32) a weight
 * of the block format @q (DSK_Q8 or DSK_Q4, dsk.h) in @be's memory through @storage: what the
 * "q8" and "q4" precisions give a decoder's products. The tensor keeps @host's shape. On
 * failure @be's error is set and the tensor's data is NULL: a backend without the format
 * (dsk_backend_supports (be, "quantize_weight")), or a value the format cannot code (not
 * finite, or beyond an f16 scale). */
dsk_tensor dsk_backend_quantize_weight (dsk_backend *be, const dsk_tensor *host, dsk_dtype q,
                                        dsk_weight_storage *storage);

/* ---- moving data ---- */

/* @dst (any layout) = the packed host array @src of the same dtype and shape. */
void dsk_tensor_set (dsk_backend *be, const dsk_tensor *dst, const void *src);
/* The packed host array @dst = @src (any layout). */
void dsk_tensor_get (dsk_backend *be, const dsk_tensor *src, void *dst);

/* dst = src, same shape; src may be F32, BF16 or F16 when dst is F32 (widened), or F32 when
 * dst is BF16 (rounded to nearest even); otherwise the dtypes match (any dtype, I32 index
 * lists included). Source strides may be 0 (broadcast). dst must not overlap src. */
void dsk_copy (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src);
/* Every element of @dst (F32) = @value. */
void dsk_fill (dsk_backend *be, const dsk_tensor *dst, float value);
/* dst[i] = src[idx[i]] for rows of the 2-D tensors dst [n, d] (F32) and src [m, d] (F32,
 * BF16, F16: widened); idx [n] I32. An index -1 copies @fill [d] (F32) instead, or zeros when
 * @fill is NULL. An index outside [-1, m) is an error. */
void dsk_get_rows (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src,
                   const dsk_tensor *idx, const dsk_tensor *fill);
/* dst[idx[i]] = src[i] for rows of dst [m, d], src [n, d] (both F32); -1 skips a row. */
void dsk_set_rows (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src,
                   const dsk_tensor *idx);

/* ---- elementwise (F32; y may be x) ---- */

/* y = a + b; b has a's shape, or a's trailing dimensions only (repeated over the leading). */
void dsk_add (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *a, const dsk_tensor *b);
/* y = x rounded to @dtype (BF16 or F16) and widened back: the cast the reference applies. */
void dsk_round (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, dsk_dtype dtype);
void dsk_silu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x);        /* x*sig(x) */
void dsk_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x);        /* erf form */
void dsk_quick_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x);  /* x*sig(1.702x) */
/* y = silu(gate) * up. */
void dsk_swiglu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *gate,
                 const dsk_tensor *up);
/* Softmax over the last dimension, max-subtracted; a row of -inf gives zeros. */
void dsk_softmax (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x);

/* ---- norms over the last dimension (rows may be strided; y may be x) ---- */

/* y = x * rsqrt(mean(x^2) + eps) * w; w [d] F32, BF16 or F16. */
void dsk_rmsnorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x,
                  const dsk_tensor *w, float eps);
/* y = (x - mean) / sqrt(var + eps) * w + b (torch nn.LayerNorm); w, b [d] of one dtype, either
 * may be NULL. */
void dsk_layernorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x,
                    const dsk_tensor *w, const dsk_tensor *b, float eps);

/* ---- rotary position embedding ---- */

typedef enum {
  DSK_ROPE_HALF = 0,        /* "rotate_half" / neox: pairs (i, i + rot_dim/2) */
  DSK_ROPE_INTERLEAVED = 1, /* complex / gpt-j: pairs (2i, 2i + 1) */
} dsk_rope_mode;

/* cos, sin [n_pos, rot_dim / 2] (F32, contiguous) = cos/sin(p * inv_freq[i]) * attn_factor for
 * every position p; inv_freq [rot_dim / 2] F32 (dsk_rope_inv_freq). */
void dsk_rope_tables (dsk_backend *be, const dsk_tensor *cos_tab, const dsk_tensor *sin_tab,
                      const dsk_tensor *inv_freq, float attn_factor);
/* In place on x [T, H, d] (F32, any strides): for token t, head h, the @rot_dim values at
 * [t, h, rot_offset ...] rotate by row positions[t] of the tables; positions [T] I32 and the
 * tables contiguous, each position in [0, n_pos) (checked on the host backend; the caller keeps
 * them so on a device). */
void dsk_rope (dsk_backend *be, const dsk_tensor *x, const dsk_tensor *positions,
               const dsk_tensor *cos_tab, const dsk_tensor *sin_tab, size_t rot_offset,
               size_t rot_dim, dsk_rope_mode mode);

/* ---- products ---- */

/* y [n, out] = x [n, in] w^T (+ b): w [out, in] as prepared (F32, BF16, F16, or Q8 / Q4 from
 * dsk_backend_quantize_weight, whose rows are whole: no views into them), b [out] or NULL;
 * x and y F32 with strided rows, y not overlapping x. Deterministic: one output element is
 * always reduced in the same order, whatever the thread count; the value may differ in its
 * last bits between few-row (n <= 8) and many-row calls. */
void dsk_linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
                 const dsk_tensor *b);
/* y += x w^T (+ b): the residual add fused into the product. */
void dsk_linear_acc (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x,
                     const dsk_tensor *w, const dsk_tensor *b);
/* y [B, n, m] = x [B, n, k] w [B, k, m], batched and untransposed (MLA's absorbed query:
 * each head's query times its slice of kv_b); w F32, BF16 or F16, any strides with contiguous
 * rows. */
void dsk_matmul (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x,
                 const dsk_tensor *w);

/* ---- attention ---- */

/* softmax(scale * q k^T + bias) v for B independent problems of H query heads:
 * q [B, T, H, d_qk], k [B, S, Hkv, d_qk], v [B, S, Hkv, d_v], out [B, T, H, d_v] (F32, any
 * strides with contiguous heads); query head h reads kv head h / (H / Hkv). d_v <= 512. */
typedef struct {
  float scale;
  int causal;                  /* query t sees keys s <= q_pos0 + t */
  size_t q_pos0;               /* cache index of query 0 (the past length when decoding) */
  const dsk_tensor *key_valid; /* [B, S] U8, 0: the key is padding, masked for every query */
  const dsk_tensor *bias;      /* [B, Hb, T, S] F32 added to the scaled logits, Hb 1 or H */
  /* decomposed 2-D relative-position bias (SAM): the keys form a kv_h x kv_w grid and
   * bias(h, t, s) = rel_h[b, h, t, s / kv_w] + rel_w[b, h, t, s % kv_w] (dsk_rel_pos); each
   * problem's [H, T, kv] block contiguous, as dsk_rel_pos writes it */
  const dsk_tensor *rel_h;     /* [B, H, T, kv_h] */
  const dsk_tensor *rel_w;     /* [B, H, T, kv_w] */
} dsk_attention_desc;

/* Softmax in f32 with row sums in double; a query with no visible key gets zeros. */
void dsk_attention (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q,
                    const dsk_tensor *k, const dsk_tensor *v, const dsk_attention_desc *desc);
/* The same for B = 1 with each query t restricted to the keys sel[t, 0 .. K) (I32, -1 for
 * none) among those it sees (DeepSeek-V3.2's top-k sparse attention); desc->bias must be NULL. */
void dsk_attention_sparse (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q,
                           const dsk_tensor *k, const dsk_tensor *v,
                           const dsk_attention_desc *desc, const dsk_tensor *sel);
/* dst [T, S] = the attention probabilities of every head summed, then L1-normalised per query
 * (sum / (total + 1e-10)), for B = 1 with q, k, desc as dsk_attention takes them and the
 * optional @sel of dsk_attention_sparse: the indexer's KL target. */
void dsk_attention_probs (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *q,
                          const dsk_tensor *k, const dsk_attention_desc *desc,
                          const dsk_tensor *sel);
/* SAM's decomposed relative-position terms over size x size grids of tokens:
 * q [B, size^2, H, hd] (unscaled queries, strided), tab_h, tab_w [2 size - 1, hd] ->
 * rel_h, rel_w [B, H, size^2, size]: rel_h[b, h, t, k] = q[b, t, h] . tab_h[qy - k + size - 1]
 * and rel_w likewise with qx (t = qy * size + qx). */
void dsk_rel_pos (dsk_backend *be, const dsk_tensor *rel_h, const dsk_tensor *rel_w,
                  const dsk_tensor *q, const dsk_tensor *tab_h, const dsk_tensor *tab_w);

/* ---- convolution and resampling (vision) ---- */

typedef enum {
  DSK_LAYOUT_NCHW = 0,   /* x [c_in, h, w] */
  DSK_LAYOUT_NHWC = 1,   /* x [h, w, c_in] */
} dsk_layout;

/* y [oh * ow, c_out] (channels-last, rows may be strided) = conv2d of one image x (F32, the
 * layout given) with w [c_out, c_in, kh, kw] (F32, BF16, F16), b [c_out] or NULL, square
 * stride and zero padding (torch nn.Conv2d). oh = (h + 2 pad - kh) / stride + 1. */
typedef struct {
  size_t c_in, h, w;
  dsk_layout in_layout;
  size_t kh, kw, stride, pad;
} dsk_conv2d_desc;
size_t dsk_conv2d_out_size (size_t in, size_t k, size_t stride, size_t pad);
void dsk_conv2d (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
                 const dsk_tensor *b, const dsk_conv2d_desc *desc);
/* y [h_out, w_out, c] = x [h_in, w_in, c] (both contiguous) resampled as torch's
 * F.interpolate(mode="bicubic", antialias=True, align_corners=False) does each channel plane in
 * f32. */
void dsk_resize_bicubic_aa (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x);
/* y [l_out, c] = x [l_in, c] (both contiguous) resampled along the rows as
 * F.interpolate(mode="linear"). */
void dsk_resize_linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x);

/* ---- mixture of experts ---- */

typedef enum {
  DSK_MOE_SOFTMAX = 0,
  DSK_MOE_SIGMOID,
} dsk_moe_scoring;

typedef enum {
  DSK_MOE_GREEDY = 0,             /* top_k of all experts */
  DSK_MOE_GROUP_LIMITED_GREEDY,   /* DeepSeek-V2: best topk_group groups by their best score */
  DSK_MOE_NOAUX_TC,               /* DeepSeek-V3: groups by their two best biased scores */
} dsk_moe_topk;

typedef struct {
  dsk_moe_scoring scoring;
  dsk_moe_topk method;
  int n_experts, top_k, n_group, topk_group;
  int norm_topk_prob;
  float routed_scaling_factor;
} dsk_moe_router;

/* Routes every token: logits [T, E] (the router product, F32) -> idx [T, k] (I32, each row
 * ascending) and weights [T, k] (F32, the final routing weights), as transformers'
 * DeepseekV2/V3 routers do; @bias [E] (e_score_correction_bias, F32/BF16/F16) or NULL. The
 * lowest id wins among equal scores. */
void dsk_moe_route (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *weights,
                    const dsk_tensor *logits, const dsk_tensor *bias, const dsk_moe_router *r);

/* One MoE layer's expert weights: SwiGLU MLPs down(silu(gate x) * up x), each weight of a
 * dtype dsk_linear takes. */
typedef struct {
  int n_experts;
  const dsk_tensor *gate, *up, *down;  /* [n_experts]: [inter, H], [inter, H], [H, inter] */
  const dsk_tensor *sh_gate, *sh_up, *sh_down;   /* the shared experts' MLP, or NULL */
} dsk_moe_experts;

/* out [T, H] = sum over j of weights[t, j] * expert idx[t, j] (x_t), in ascending expert
 * order, in f32, plus the shared experts' MLP of x_t: DeepseekV2MoE's output. */
void dsk_moe (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *x, const dsk_tensor *idx,
              const dsk_tensor *weights, const dsk_moe_experts *experts);

/* ---- DeepSeek-V3.2 lightning indexer ---- */

/* scores [T, S] = sum_j (w[t, j] * scale) * ReLU(q[t, j] . keys[s]) for the keys query t sees
 * (desc's causal / q_pos0 / key_valid; bias and rel terms unused), -inf for the others:
 * q [T, Hi, D], w [T, Hi], keys [S, D] (F32). */
void dsk_index_scores (dsk_backend *be, const dsk_tensor *scores, const dsk_tensor *q,
                       const dsk_tensor *w, const dsk_tensor *keys,
                       const dsk_attention_desc *desc, float scale);
/* idx [T, K] (I32) = the K largest finite entries of each row of scores [T, S], by score
 * descending then index ascending, padded with -1. */
void dsk_topk (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *scores);

/* ---- host helpers (no backend: tables prepared once, on the host) ---- */

/* DeepSeek YaRN parameters (config rope_scaling with type "yarn"). */
typedef struct {
  float factor;                  /* scaling factor s, e.g. 40 */
  size_t original_max_position;  /* original_max_position_embeddings, e.g. 4096 */
  float beta_fast;               /* 32 */
  float beta_slow;               /* 1 */
  float mscale;                  /* 0.707 (V2-Lite), 1 (V3) */
  float mscale_all_dim;          /* same convention */
} dsk_rope_yarn;

/* inv_freq[rot_dim/2] for @theta (rot_dim even), computed in f32 as torch does:
 * 1 / theta^(2i/rot_dim); with @yarn (NULL: plain) blended between the extrapolated and the
 * interpolated frequency by DeepSeek's linear ramp over the correction range. */
dsk_status dsk_rope_inv_freq (float *inv_freq, size_t rot_dim, float theta,
                              const dsk_rope_yarn *yarn);
/* yarn_get_mscale: 0.1 * m * ln(s) + 1 for s > 1, else 1. */
float dsk_rope_yarn_get_mscale (float scale, float mscale);
/* dst[n] (f32) = src[n] (F32, F16, BF16 or F8_E4M3) on the host. */
dsk_status dsk_convert_to_f32 (float *dst, const void *src, dsk_dtype src_dtype, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* DSK_BACKEND_H */
