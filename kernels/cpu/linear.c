/* linear.c: matrix products with the weights in their stored dtype, on the CPU backend's pool
 * (linear.h).
 *
 * Every product (and the whole set of experts of a MoE layer) is a list of work items, blocks
 * of weight rows, handed out dynamically to the pool's threads. Each weight block is read from
 * memory once per product, whatever the number of tokens.
 *
 * Kernels (chosen at run time by CPUID): AVX-512 (a register-blocked product on f32-widened
 * weight rows and a packed copy of the tokens for many-token products; weights widened in
 * registers for few tokens), AVX2 + FMA (the latter), and plain C. f32 accumulation
 * throughout. Without AVX-512, many-row products go to OpenBLAS's sgemm instead
 * (single-threaded inside an item, on a block of widened weight rows), whose packing and
 * blocking beat the tiles there: linear.h says where the line is drawn and why.
 */
#include "linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsocr-build-config.h"
#include "dsk-cpu.h"
#include "quant.h"

#if DSOCR_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* ==== kernels ====
 *
 * tile: out[t][r] = x_t · w_r for 1 or 4 token rows and 4 weight rows, the weights widened in
 * registers; sums lanes at the end. Used for few tokens (decode reads each weight once and is
 * bound by memory) and as the only kernel without AVX-512.
 * packed (AVX-512): 8 f32 weight rows x 16 or 32 tokens of a packed x; each weight is
 * broadcast against 16 tokens, so the accumulators hold finished outputs. Both operands are
 * read sequentially: the 8 rows interleaved ([k][8]), the tokens as a panel ([k][32]). */

#define TILE 4
#define ROW_BLOCK 64   /* weight rows per work item (a multiple of 8) */

typedef struct {
  const float *x[TILE];
  const void *w[TILE];
  /* one token: the weight rows after these, NULL if none; their lines are prefetched while
   * these are read, which keeps more memory reads in flight than the hardware's streams do
   * (a 1280-wide BF16 decode product: 8 -> 11 GB/s on one core) */
  ptrdiff_t next;   /* bytes from w[r] to the next block's row r */
} tile_args;

typedef void (*tile_fn) (const tile_args *a, int nt, size_t in, float out[TILE][TILE]);
typedef void (*widen_fn) (float *dst, const void *src, size_t n);
typedef void (*packed_fn) (const float *w, size_t in, const float *xp, int nv,
                           float out[8][32]);

typedef struct {
  tile_fn tile[DSK_N_DTYPES];   /* F32, BF16 and F16 set */
  widen_fn widen[DSK_N_DTYPES]; /* BF16 and F16 set */
  packed_fn packed;             /* NULL without AVX-512 */
  /* stores a packed kernel's out[8][32] block where it can (0: the caller's loop) */
  int (*store) (const float out[8][32], int wr, int nt, float *dst, size_t ld_r, size_t ld_t,
                int acc, const float *bias);
} kernels;

#define weight_at dsk_cpu_weight_at

static inline void
tile_generic_body (const tile_args *a, int nt, dsk_dtype dt, size_t in, float out[TILE][TILE])
{
  for (int t = 0; t < nt; t++)
    for (int r = 0; r < TILE; r++) {
      float acc = 0.0f;
      for (size_t k = 0; k < in; k++)
        acc += a->x[t][k] * weight_at (a->w[r], dt, k);
      out[t][r] = acc;
    }
}

static void
widen_generic_bf16 (float *dst, const void *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = dsk_bf16_to_f32 (((const uint16_t *) src)[i]);
}

static void
widen_generic_f16 (float *dst, const void *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = dsk_f16_to_f32 (((const uint16_t *) src)[i]);
}

/* One wrapper per weight dtype, so the dtype is a constant inside the loops. */
#define TILE_WRAPPERS(NAME, ATTR, BODY)                                                       \
  static ATTR void NAME##_f32 (const tile_args *a, int nt, size_t in, float out[TILE][TILE])  \
  {                                                                                           \
    BODY (a, nt, DSK_F32, in, out);                                                           \
  }                                                                                           \
  static ATTR void NAME##_bf16 (const tile_args *a, int nt, size_t in, float out[TILE][TILE]) \
  {                                                                                           \
    BODY (a, nt, DSK_BF16, in, out);                                                          \
  }                                                                                           \
  static ATTR void NAME##_f16 (const tile_args *a, int nt, size_t in, float out[TILE][TILE])  \
  {                                                                                           \
    BODY (a, nt, DSK_F16, in, out);                                                           \
  }

TILE_WRAPPERS (tile_generic, , tile_generic_body)

static const kernels kernels_generic = {
  .tile = { [DSK_F32] = tile_generic_f32, [DSK_BF16] = tile_generic_bf16,
            [DSK_F16] = tile_generic_f16 },
  .widen = { [DSK_BF16] = widen_generic_bf16, [DSK_F16] = widen_generic_f16 },
};

#if DSK_X86_SIMD

typedef float vf16 __attribute__ ((vector_size (64)));
typedef float vf8 __attribute__ ((vector_size (32)));

static inline __attribute__ ((always_inline, target ("avx512f,fma"))) vf16
load_avx512 (const void *w, dsk_dtype dt, size_t k)
{
  __m512 f;
  vf16 v;
  if (dt == DSK_F32)
    f = _mm512_loadu_ps ((const float *) w + k);
  else if (dt == DSK_F16)
    f = _mm512_cvtph_ps (_mm256_loadu_si256 ((const __m256i *) ((const uint16_t *) w + k)));
  else
    f = _mm512_castsi512_ps (_mm512_slli_epi32 (
        _mm512_cvtepu16_epi32 (_mm256_loadu_si256 ((const __m256i *) ((const uint16_t *) w + k))),
        16));
  memcpy (&v, &f, sizeof v);
  return v;
}

static inline __attribute__ ((always_inline, target ("avx2,fma,f16c"))) vf8
load_avx2 (const void *w, dsk_dtype dt, size_t k)
{
  __m256 f;
  vf8 v;
  if (dt == DSK_F32)
    f = _mm256_loadu_ps ((const float *) w + k);
  else if (dt == DSK_F16)
    f = _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) ((const uint16_t *) w + k)));
  else
    f = _mm256_castsi256_ps (_mm256_slli_epi32 (
        _mm256_cvtepu16_epi32 (_mm_loadu_si128 ((const __m128i *) ((const uint16_t *) w + k))),
        16));
  memcpy (&v, &f, sizeof v);
  return v;
}

/* One instruction set's tile and widening: VW floats per vector VF, LOAD reads VW weights as
 * f32. Row tails shorter than a vector are summed in plain C. */
#define DEFINE_TILE(NAME, TARGET, VW, VF, LOAD)                                              \
  static inline __attribute__ ((always_inline, target (TARGET))) void                        \
  NAME##_body (const tile_args *a, int nt, dsk_dtype dt, size_t in, float out[TILE][TILE])  \
  {                                                                                          \
    VF acc[TILE][TILE];                                                                      \
    size_t k = 0;                                                                            \
    memset (acc, 0, sizeof acc);                                                             \
    if (nt == 1) {                                                                           \
      const size_t es = dsk_dtype_size (dt);                                                 \
      for (; k + VW <= in; k += VW) {                                                        \
        VF xv;                                                                               \
        memcpy (&xv, a->x[0] + k, sizeof xv);                                                \
        if (a->next)                                                                         \
          for (int r = 0; r < TILE; r++)                                                     \
            _mm_prefetch ((const char *) a->w[r] + a->next + k * es, _MM_HINT_T0);           \
        for (int r = 0; r < TILE; r++)                                                       \
          acc[0][r] += xv * LOAD (a->w[r], dt, k);                                           \
      }                                                                                      \
    } else {                                                                                 \
      for (; k + VW <= in; k += VW) {                                                        \
        VF xv[TILE], wv[TILE];                                                               \
        for (int t = 0; t < TILE; t++)                                                       \
          memcpy (&xv[t], a->x[t] + k, sizeof xv[t]);                                        \
        for (int r = 0; r < TILE; r++)                                                       \
          wv[r] = LOAD (a->w[r], dt, k);                                                     \
        for (int t = 0; t < TILE; t++)                                                       \
          for (int r = 0; r < TILE; r++)                                                     \
            acc[t][r] += xv[t] * wv[r];                                                      \
      }                                                                                      \
    }                                                                                        \
    for (int t = 0; t < nt; t++)                                                             \
      for (int r = 0; r < TILE; r++) {                                                       \
        float sum = 0.0f;                                                                    \
        for (int l = 0; l < VW; l++)                                                         \
          sum += acc[t][r][l];                                                               \
        for (size_t kk = k; kk < in; kk++)                                                   \
          sum += a->x[t][kk] * weight_at (a->w[r], dt, kk);                                  \
        out[t][r] = sum;                                                                     \
      }                                                                                      \
  }                                                                                          \
  TILE_WRAPPERS (NAME, __attribute__ ((target (TARGET))), NAME##_body)                       \
  static __attribute__ ((target (TARGET))) void                                              \
  NAME##_widen_bf16 (float *dst, const void *src, size_t n)                                  \
  {                                                                                          \
    size_t k = 0;                                                                            \
    for (; k + VW <= n; k += VW) {                                                           \
      VF v = LOAD (src, DSK_BF16, k);                                                        \
      memcpy (dst + k, &v, sizeof v);                                                        \
    }                                                                                        \
    widen_generic_bf16 (dst + k, (const uint16_t *) src + k, n - k);                         \
  }                                                                                          \
  static __attribute__ ((target (TARGET))) void                                              \
  NAME##_widen_f16 (float *dst, const void *src, size_t n)                                   \
  {                                                                                          \
    size_t k = 0;                                                                            \
    for (; k + VW <= n; k += VW) {                                                           \
      VF v = LOAD (src, DSK_F16, k);                                                         \
      memcpy (dst + k, &v, sizeof v);                                                        \
    }                                                                                        \
    widen_generic_f16 (dst + k, (const uint16_t *) src + k, n - k);                          \
  }

DEFINE_TILE (tile_avx512, "avx512f,fma", 16, vf16, load_avx512)
DEFINE_TILE (tile_avx2, "avx2,fma,f16c", 8, vf8, load_avx2)

static inline __attribute__ ((always_inline, target ("avx512f,fma"))) void
packed_avx512_body (const float *w, size_t in, const float *xp, int nv, float out[8][32])
{
  __m512 acc[8][2];

  for (int r = 0; r < 8; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
  for (size_t k = 0; k < in; k++) {
    const __m512 x0 = _mm512_loadu_ps (xp + k * 16 * nv);
    const __m512 x1 = nv == 2 ? _mm512_loadu_ps (xp + k * 32 + 16) : x0;
    for (int r = 0; r < 8; r++) {
      const __m512 wv = _mm512_set1_ps (w[k * 8 + r]);
      acc[r][0] = _mm512_fmadd_ps (wv, x0, acc[r][0]);
      if (nv == 2)
        acc[r][1] = _mm512_fmadd_ps (wv, x1, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; r++) {
    _mm512_storeu_ps (out[r], acc[r][0]);
    if (nv == 2)
      _mm512_storeu_ps (out[r] + 16, acc[r][1]);
  }
}

static __attribute__ ((target ("avx512f,fma"))) void
packed_avx512 (const float *w, size_t in, const float *xp, int nv, float out[8][32])
{
  if (nv == 2)
    packed_avx512_body (w, in, xp, 2, out);
  else
    packed_avx512_body (w, in, xp, 1, out);
}

/* out[8][32] -> dst[r * ld_r + t * ld_t] for the usual linear layout (ld_r 1: each token's 8
 * outputs are consecutive): 8 x 8 blocks transposed in registers, so that a token's outputs
 * go out as one store instead of eight scattered ones. Other layouts and short blocks take the
 * scalar loop. */
static inline __attribute__ ((always_inline, target ("avx2,fma"))) void
transpose8 (__m256 r[8])
{
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps (r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps (r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps (t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps (t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps (t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps (t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps (u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps (u[i], u[i + 4], 0x31);
  }
}

static __attribute__ ((target ("avx2,fma"))) int
store_block_avx2 (const float out[8][32], int wr, int nt, float *dst, size_t ld_r, size_t ld_t,
                  int acc, const float *bias)
{
  if (ld_r != 1 || wr != 8)
    return 0;
  const __m256 b = bias ? _mm256_loadu_ps (bias) : _mm256_setzero_ps ();
  int t0 = 0;
  for (; t0 + 8 <= nt; t0 += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; i++)
      r[i] = _mm256_loadu_ps (&out[i][t0]);
    transpose8 (r);   /* r[j]: the 8 outputs of token t0 + j */
    for (int j = 0; j < 8; j++) {
      float *d = dst + (size_t) (t0 + j) * ld_t;
      __m256 v = acc ? _mm256_add_ps (_mm256_loadu_ps (d), r[j]) : r[j];
      if (bias)   /* after the sum, as add_bias does */
        v = _mm256_add_ps (v, b);
      _mm256_storeu_ps (d, v);
    }
  }
  for (int t = t0; t < nt; t++)
    for (int i = 0; i < 8; i++) {
      float *d = dst + (size_t) t * ld_t + i;
      float v = acc ? *d + out[i][t] : out[i][t];
      *d = bias ? v + bias[i] : v;
    }
  return 1;
}

static const kernels kernels_avx512 = {
  .tile = { [DSK_F32] = tile_avx512_f32, [DSK_BF16] = tile_avx512_bf16,
            [DSK_F16] = tile_avx512_f16 },
  .widen = { [DSK_BF16] = tile_avx512_widen_bf16, [DSK_F16] = tile_avx512_widen_f16 },
  .packed = packed_avx512,
  .store = store_block_avx2,
};

static const kernels kernels_avx2 = {
  .tile = { [DSK_F32] = tile_avx2_f32, [DSK_BF16] = tile_avx2_bf16, [DSK_F16] = tile_avx2_f16 },
  .widen = { [DSK_BF16] = tile_avx2_widen_bf16, [DSK_F16] = tile_avx2_widen_f16 },
};
#endif

/* ==== the products ==== */

static dsk_mm_kernels forced = DSK_MM_KERNELS_AUTO;
static int pack_min = 16;
static int forced_path;   /* 0 automatic, 1 kernels only, 2 BLAS for every n > GEMV_MAX */

void
dsk_mm_force_kernels (dsk_mm_kernels which)
{
  forced = which;
}

void
dsk_mm_set_pack_min (int n)
{
  pack_min = n > 0 ? n : 16;
}

void
dsk_mm_force_path (int path)
{
  forced_path = path;
}

static const kernels *
pick_kernels (void)
{
  if (forced == DSK_MM_KERNELS_GENERIC || !dsk_cpu_has_avx2 ())
    return &kernels_generic;
#if DSK_X86_SIMD
  if (forced == DSK_MM_KERNELS_AUTO && dsk_cpu_has_avx512 ())
    return &kernels_avx512;
  return &kernels_avx2;
#else
  return &kernels_generic;
#endif
}

/* A growable float buffer. */
typedef struct {
  float *data;
  size_t cap;
} buffer;

static int
ensure (buffer *b, size_t n)
{
  float *p;

  if (n <= b->cap)
    return 1;
  p = realloc (b->data, sizeof (float) * n);
  if (!p)
    return 0;
  b->data = p;
  b->cap = n;
  return 1;
}

/* Per-job state of dsk_mm_experts. */
typedef struct {
  int npad;          /* packed: tokens rounded up to 16; 0: tiles */
  float *xp;         /* packed: [H][npad] inputs */
  float *hp;         /* packed: [inter][npad] hidden; tiles: [n][inter] hidden */
  size_t x_off;      /* first entry of the job's input rows in mm->xr */
  char *xq, *hq;     /* tiles with quantized gate/up, down: the input, hidden rows quantized */
  size_t xq_stride, hq_stride;
} job_state;

struct dsk_mm {
  dsk_pool *pool;
  const kernels *k;
  buffer xpack;            /* packed x of a linear / packed job inputs */
  buffer xquant;           /* x rows quantized for Q8 / Q4 weights (bytes, 64-aligned rows) */
  buffer hpack;            /* job hidden activations */
  const float **xr;        /* [xr_cap] input row pointers */
  size_t xr_cap;
  int32_t *items;          /* [2 * items_cap] (job, first row) */
  size_t items_cap;
  job_state *js;           /* [js_cap] */
  size_t js_cap;
};

dsk_mm *
dsk_mm_new (dsk_pool *pool)
{
  dsk_mm *mm = calloc (1, sizeof *mm);
  if (!mm)
    return NULL;
  mm->pool = pool;
  mm->k = pick_kernels ();
  return mm;
}

void
dsk_mm_free (dsk_mm *mm)
{
  if (!mm)
    return;
  void *bufs[] = { mm->xpack.data, mm->xquant.data, mm->hpack.data, (void *) mm->xr, mm->items,
                   mm->js, mm };
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    free (bufs[i]);
}

static int
ensure_xr (dsk_mm *mm, size_t n)
{
  const float **p;

  if (n <= mm->xr_cap)
    return 1;
  p = realloc (mm->xr, sizeof (*p) * n);
  if (!p)
    return 0;
  mm->xr = p;
  mm->xr_cap = n;
  return 1;
}

static int
ensure_items (dsk_mm *mm, size_t n)
{
  int32_t *p;

  if (n <= mm->items_cap)
    return 1;
  p = realloc (mm->items, sizeof (int32_t) * 2 * n);
  if (!p)
    return 0;
  mm->items = p;
  mm->items_cap = n;
  return 1;
}

/* The bias of rows [r0, r0 + nr) as f32 into @b (NULL when the product has none). */
static const float *
bias_f32 (const dsk_mat *w, int r0, int nr, float *b)
{
  if (!w->bias)
    return NULL;
  for (int r = 0; r < nr; r++)
    b[r] = weight_at (w->bias, w->bias_dtype, (size_t) (r0 + r));
  return b;
}

/* Adds @b [nr] (NULL: nothing) to y rows [0, n). */
static void
add_bias (const float *b, int nr, float *y, size_t ldy, size_t n)
{
  if (!b)
    return;
  for (size_t i = 0; i < n; i++)
    for (int r = 0; r < nr; r++)
      y[i * ldy + r] += b[r];
}

/* Stores @v at @d, or adds it there (accumulate). */
static inline void
put (float *d, float v, int acc)
{
  *d = acc ? *d + v : v;
}

/* Row @r of @w (rows @ld elements apart; a quantized matrix's rows are whole, ld == cols). */
static inline const char *
mat_row (const dsk_mat *w, int r)
{
  return (const char *) w->data + dsk_dtype_bytes (w->dtype, (size_t) r * w->ld);
}

static inline int
is_quant (dsk_dtype dt)
{
  return dt == DSK_Q8 || dt == DSK_Q4;
}

/* dst[cols] = row @r of @w as f32, whatever its dtype. */
static void
widen_row (const kernels *k, const dsk_mat *w, int r, float *dst)
{
  const char *row = mat_row (w, r);
  if (w->dtype == DSK_F32)
    memcpy (dst, row, sizeof (float) * (size_t) w->cols);
  else if (is_quant (w->dtype))
    dsk_dequant_row (dst, row, w->dtype, (size_t) w->cols);
  else
    k->widen[w->dtype] (dst, row, (size_t) w->cols);
}

/* y[i][0 .. nr) (=|+=) w_r · x_i for quantized weights and @n activation rows quantized for
 * them (xq, @xq_stride bytes apart): eight weight rows at a time (four at the end), each read
 * once from memory and then from cache for the other tokens, the next ones prefetched
 * meanwhile. */
static void
rows_tiles_q (const char *xq, size_t xq_stride, int n, const dsk_mat *w, int r0, int nr,
              float *y, size_t ldy, int acc)
{
  float out[8];
  for (int rb = 0; rb < nr;) {
    const int step = nr - rb >= 8 ? 8 : 4, wr = nr - rb < step ? nr - rb : step;
    const void *rows[8];
    for (int r = 0; r < step; r++)   /* short blocks repeat a row; its results are dropped */
      rows[r] = mat_row (w, r0 + rb + (r < wr ? r : 0));
    const void *next = r0 + rb + step < w->rows ? mat_row (w, r0 + rb + step) : NULL;
    for (int i = 0; i < n; i++) {
      dsk_qdot (rows, step, next, xq + (size_t) i * xq_stride, (size_t) w->cols, w->dtype, out);
      for (int r = 0; r < wr; r++)
        put (&y[(size_t) i * ldy + rb + r], out[r], acc);
    }
    rb += wr;
  }
}

/* y[i][0 .. nr) (=|+=) x_rows[i] · W[r0 .. r0 + nr)^T, tiles. With at least a tile of tokens the
 * rows are widened into @wbuf [ROW_BLOCK, cols] first and reused from cache by every token. */
static void
rows_tiles (const kernels *k, const float *const *x_rows, int n, const dsk_mat *w, int r0,
            int nr, float *y, size_t ldy, float *wbuf, int acc)
{
  const size_t in = (size_t) w->cols;
  dsk_dtype dtype = w->dtype;
  size_t es = dsk_dtype_size (dtype), ld = w->ld;
  const char *base = mat_row (w, r0);
  float out[TILE][TILE];
  tile_fn tile;

  if ((n >= TILE && dtype != DSK_F32) || is_quant (dtype)) {
    for (int r = 0; r < nr; r++)
      widen_row (k, w, r0 + r, wbuf + (size_t) r * in);
    base = (const char *) wbuf;
    dtype = DSK_F32;
    es = sizeof (float);
    ld = in;
  }
  tile = k->tile[dtype];
  for (int rb = 0; rb < nr; rb += TILE) {
    tile_args a;
    const int wr = nr - rb < TILE ? nr - rb : TILE;
    for (int r = 0; r < TILE; r++)   /* short blocks repeat a row; its results are dropped */
      a.w[r] = base + (size_t) (rb + (r < wr ? r : 0)) * ld * es;
    /* the next block of rows, in this item or the next one (rows are ld apart) */
    a.next = base != (const char *) wbuf && r0 + rb + 2 * TILE <= w->rows
             ? (ptrdiff_t) (TILE * ld * es) : 0;
    for (int i0 = 0; i0 < n; i0 += TILE) {
      const int nt = n - i0 < TILE ? n - i0 : TILE;
      for (int t = 0; t < TILE; t++)
        a.x[t] = x_rows[i0 + (t < nt ? t : 0)];
      tile (&a, nt == 1 ? 1 : TILE, in, out);
      for (int t = 0; t < nt; t++)
        for (int r = 0; r < wr; r++)
          put (&y[(size_t) (i0 + t) * ldy + rb + r], out[t][r], acc);
    }
  }
}

/* The packed x: panels of 32 tokens (the last one 16 when npad is an odd multiple of 16), each
 * [cols][width] contiguous, so that a kernel call streams one block of memory. Token t of
 * column k sits at panel_at (xp, cols, npad, k, t). */
static inline int
panel_width (int npad, int tg)
{
  return npad - tg >= 32 ? 32 : 16;
}

static inline size_t
panel_at (size_t cols, int npad, size_t k, int t)
{
  const int tg = t & ~31;
  return (size_t) tg * cols + k * (size_t) panel_width (npad, tg) + (size_t) (t - tg);
}

/* W[r0 .. r0 + nr) widened into @wbuf as groups of 8 rows interleaved ([nr8 / 8][cols][8], the
 * rows past nr zero), the layout the packed kernel reads. */
static void
pack_rows (const kernels *k, const dsk_mat *w, int r0, int nr, float *wbuf, float *row_tmp)
{
  const size_t in = (size_t) w->cols;
  const int nr8 = (nr + 7) / 8 * 8;

  for (int r = 0; r < nr8; r++) {
    float *g = wbuf + (size_t) (r / 8) * in * 8 + (size_t) (r % 8);
    const float *src = row_tmp;
    if (r >= nr) {
      for (size_t kk = 0; kk < in; kk++)
        g[kk * 8] = 0.0f;
      continue;
    }
    if (w->dtype == DSK_F32)   /* read in place: F32 needs no row_tmp */
      src = (const float *) mat_row (w, r0 + r);
    else
      widen_row (k, w, r0 + r, row_tmp);
    for (size_t kk = 0; kk < in; kk++)
      g[kk * 8] = src[kk];
  }
}

/* Floats of scratch rows_packed needs for @nr rows of @cols: the interleaved rows and one
 * widened row. */
static size_t
packed_scratch (int nr, size_t cols)
{
  return (size_t) ((nr + 7) / 8 * 8 + 1) * cols;
}

/* dst[r * ld_r + t * ld_t] (=|+=) W[r0 + r] · x_t for r < nr, t < n, with x packed in panels
 * (xp, [npad] tokens of [cols]). @wbuf: packed_scratch (nr, cols) floats. Token groups are
 * the outer loop: a panel (cols x 32 floats) stays in cache while every row group of the
 * block passes over it, so the packed x is read from memory once per block. */
static void
rows_packed (const kernels *k, const float *xp, int npad, int n, const dsk_mat *w, int r0,
             int nr, float *dst, size_t ld_r, size_t ld_t, float *wbuf, int acc,
             const float *bias)
{
  const size_t in = (size_t) w->cols;
  const int nr8 = (nr + 7) / 8 * 8;
  float out[8][32];

  pack_rows (k, w, r0, nr, wbuf, wbuf + (size_t) nr8 * in);
  for (int tg = 0; tg < npad; tg += 32) {
    const int nv = panel_width (npad, tg) / 16;
    const int nt = n - tg < 16 * nv ? n - tg : 16 * nv;
    for (int rg = 0; rg < nr; rg += 8) {
      const int wr = nr - rg < 8 ? nr - rg : 8;
      float *d = dst + (size_t) rg * ld_r + (size_t) tg * ld_t;
      k->packed (wbuf + (size_t) rg * in, in, xp + (size_t) tg * in, nv, out);
      if (!k->store (out, wr, nt, d, ld_r, ld_t, acc, bias ? bias + rg : NULL))
        for (int r = 0; r < wr; r++)
          for (int t = 0; t < nt; t++) {
            float *e = &d[(size_t) r * ld_r + (size_t) t * ld_t];
            put (e, out[r][t], acc);
            if (bias)
              *e += bias[rg + r];
          }
    }
  }
}

/* The panels' columns [k0, k0 + kn) from x_rows [n] (zero for tokens n .. npad). */
static void
pack_columns (float *xp, int npad, size_t cols, const float *const *x_rows, int n, size_t k0,
              size_t kn)
{
  for (int tg = 0; tg < npad; tg += 32) {
    const int pw = panel_width (npad, tg);
    float *p = xp + (size_t) tg * cols;
    for (size_t kk = k0; kk < k0 + kn; kk++) {
      float *d = p + kk * (size_t) pw;
      for (int t = 0; t < pw; t++)
        d[t] = tg + t < n ? x_rows[tg + t][kk] : 0.0f;
    }
  }
}

/* ---- the packed product's parts, for kernels that lay out their own operands ---- */

int
dsk_mm_packed_ok (void)
{
  return pick_kernels ()->packed != NULL;
}

void
dsk_mm_pack_panels (float *xp, const float *x, size_t ldx, int n, size_t cols)
{
  const int npad = (n + 15) / 16 * 16;
  for (int tg = 0; tg < npad; tg += 32) {
    const int pw = panel_width (npad, tg);
    float *p = xp + (size_t) tg * cols;
    for (int t = 0; t < pw; t++) {
      if (tg + t < n) {
        const float *row = x + (size_t) (tg + t) * ldx;
        for (size_t kk = 0; kk < cols; kk++)
          p[kk * (size_t) pw + (size_t) t] = row[kk];
      } else {
        for (size_t kk = 0; kk < cols; kk++)
          p[kk * (size_t) pw + (size_t) t] = 0.0f;
      }
    }
  }
}

void
dsk_mm_pack_rows (float *wp, const float *w, size_t ld, int nr, size_t cols)
{
  const dsk_mat m = { .data = w, .dtype = DSK_F32, .rows = nr, .cols = (int) cols, .ld = ld };
  pack_rows (pick_kernels (), &m, 0, nr, wp, NULL);
}

void
dsk_mm_pack_cols (float *wp, const float *m, size_t ld, int nr, size_t cols)
{
  const int nr8 = (nr + 7) / 8 * 8;
  for (int g = 0; g < nr8; g += 8) {
    float *d = wp + (size_t) g * cols;
    const int w = nr - g < 8 ? nr - g : 8;
    for (size_t kk = 0; kk < cols; kk++) {
      const float *src = m + kk * ld + (size_t) g;
      for (int j = 0; j < 8; j++)
        d[kk * 8 + (size_t) j] = j < w ? src[j] : 0.0f;
    }
  }
}

void
dsk_mm_packed (const float *wp, size_t wp_cols, int nr, const float *xp, int npad, int n,
               size_t cols, float *dst, size_t ld_r, size_t ld_t)
{
  const kernels *k = pick_kernels ();
  float out[8][32];

  for (int tg = 0; tg < npad; tg += 32) {
    const int nv = panel_width (npad, tg) / 16;
    const int nt = n - tg < 16 * nv ? n - tg : 16 * nv;
    for (int rg = 0; rg < nr; rg += 8) {
      const int wr = nr - rg < 8 ? nr - rg : 8;
      k->packed (wp + (size_t) rg * wp_cols, cols, xp + (size_t) tg * cols, nv, out);
      if (k->store (out, wr, nt, dst + (size_t) rg * ld_r + (size_t) tg * ld_t, ld_r, ld_t, 0,
                    NULL)) {
      } else if (ld_t == 1 && nt == 16 * nv) {
        for (int r = 0; r < wr; r++)
          memcpy (&dst[(size_t) (rg + r) * ld_r + (size_t) tg], out[r], sizeof (float) * nt);
      } else {
        for (int r = 0; r < wr; r++)
          for (int t = 0; t < nt; t++)
            dst[(size_t) (rg + r) * ld_r + (size_t) (tg + t) * ld_t] = out[r][t];
      }
    }
  }
}

#define PACK_CHUNK 64   /* values of k packed per item */

/* ---- linear ---- */

typedef struct {
  dsk_mm *mm;
  const dsk_mat *w;
  float *y;
  size_t ldy, n;
  int npad, acc;
  const float *x;   /* the BLAS path */
  size_t ldx;
  int rows_per_item;
  const char *xq;   /* quantized weights, tiles: x's rows quantized for them */
  size_t xq_stride;
} linear_run;

static void
linear_pack_item (void *ctx, int item, int thread)
{
  linear_run *c = ctx;
  const size_t k0 = (size_t) item * PACK_CHUNK, left = (size_t) c->w->cols - k0;
  pack_columns (c->mm->xpack.data, c->npad, (size_t) c->w->cols, c->mm->xr, (int) c->n, k0,
                left < PACK_CHUNK ? left : PACK_CHUNK);
}

static void
linear_item (void *ctx, int item, int thread)
{
  linear_run *c = ctx;
  const int r0 = item * c->rows_per_item;
  const int nr = c->w->rows - r0 < c->rows_per_item ? c->w->rows - r0 : c->rows_per_item;
  float *wbuf = dsk_pool_scratch (c->mm->pool, thread, 0);   /* reserved before the run */
  float bias_buf[DSK_MM_PACK_MAX_ROWS];
  const float *bias = bias_f32 (c->w, r0, nr, bias_buf);

  if (c->npad) {
    rows_packed (c->mm->k, c->mm->xpack.data, c->npad, (int) c->n, c->w, r0, nr, c->y + r0, 1,
                 c->ldy, wbuf, c->acc, bias);
  } else {
    if (c->xq)
      rows_tiles_q (c->xq, c->xq_stride, (int) c->n, c->w, r0, nr, c->y + r0, c->ldy, c->acc);
    else
      rows_tiles (c->mm->k, c->mm->xr, (int) c->n, c->w, r0, nr, c->y + r0, c->ldy, wbuf,
                  c->acc);
    add_bias (bias, nr, c->y + r0, c->ldy, c->n);
  }
}

#if DSOCR_HAVE_OPENBLAS
/* The rows [r0, r0 + nr) of one item: widened into this thread's scratch (when not F32), then
 * one sgemm over every x row; the bias after the product, as in the kernels' path. */
static void
linear_blas_item (void *ctx, int item, int thread)
{
  linear_run *c = ctx;
  const dsk_mat *w = c->w;
  const size_t in = (size_t) w->cols;
  const int r0 = item * c->rows_per_item;
  const int nr = w->rows - r0 < c->rows_per_item ? w->rows - r0 : c->rows_per_item;
  const float *wb = (const float *) mat_row (w, r0);
  size_t ldw = w->ld;

  if (w->dtype != DSK_F32) {
    float *s = dsk_pool_scratch (c->mm->pool, thread, 0);   /* reserved before the run */
    for (int r = 0; r < nr; r++)
      widen_row (c->mm->k, w, r0 + r, s + (size_t) r * in);
    wb = s;
    ldw = in;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) c->n, nr, (int) in, 1.0f, c->x,
               (int) c->ldx, wb, (int) ldw, c->acc ? 1.0f : 0.0f, c->y + r0, (int) c->ldy);
  for (int b0 = 0; w->bias && b0 < nr; b0 += DSK_MM_PACK_MAX_ROWS) {
    const int nb = nr - b0 < DSK_MM_PACK_MAX_ROWS ? nr - b0 : DSK_MM_PACK_MAX_ROWS;
    float bias_buf[DSK_MM_PACK_MAX_ROWS];
    add_bias (bias_f32 (w, r0 + b0, nb, bias_buf), nb, c->y + r0 + b0, c->ldy, c->n);
  }
}
#endif

int
dsk_mm_linear (dsk_mm *mm, float *y, size_t ldy, const float *x, size_t ldx, size_t n,
               const dsk_mat *w, int accumulate)
{
  const size_t in = (size_t) w->cols;
  const double flops = 2.0 * (double) n * (double) in * (double) w->rows;
  const int n_threads = dsk_pool_n_threads (mm->pool);
  linear_run c = { mm, w, y, ldy, n, 0, accumulate != 0, x, ldx, 0, NULL, 0 };

  if (n == 0)
    return 1;
#if DSOCR_HAVE_OPENBLAS
  if (forced_path == 2 ? n > DSK_MM_GEMV_MAX
                       : forced_path == 0 && !mm->k->packed && n >= DSK_MM_BLAS_MIN_ROWS) {
    /* blocks of weight rows: enough for every thread, few enough that each sgemm is wide */
    int n_items = (int) ((double) w->rows * (double) in / DSK_MM_BLAS_W_FLOATS) + 1;
    if (n_items < 2 * n_threads)
      n_items = 2 * n_threads;
    c.rows_per_item = (w->rows + n_items - 1) / n_items;
    c.rows_per_item = (c.rows_per_item + 15) / 16 * 16;
    n_items = (w->rows + c.rows_per_item - 1) / c.rows_per_item;
    if (w->dtype != DSK_F32 && !dsk_pool_reserve_scratch (mm->pool,
                                                          (size_t) c.rows_per_item * in))
      return 0;
    dsk_pool_run (mm->pool, n_items, flops, linear_blas_item, &c);
    return 1;
  }
#endif
  if (mm->k->packed && (int) n >= pack_min)
    c.npad = (int) ((n + 15) / 16 * 16);
  c.rows_per_item = ROW_BLOCK;
  if (c.npad && (double) in * c.npad * sizeof (float) > DSK_MM_PACK_CACHE_BYTES) {
    /* the packed x outgrows the cache: every block of rows streams it from memory, so give
     * each item more rows (fewer passes over x), while keeping a few items per thread */
    int rows = w->rows / (4 * n_threads) / ROW_BLOCK * ROW_BLOCK;
    c.rows_per_item = rows < ROW_BLOCK ? ROW_BLOCK : rows > DSK_MM_PACK_MAX_ROWS
                                                    ? DSK_MM_PACK_MAX_ROWS : rows;
  }
  if (!ensure_xr (mm, n) ||
      !dsk_pool_reserve_scratch (mm->pool, packed_scratch (c.rows_per_item, in)) ||
      (c.npad && !ensure (&mm->xpack, in * (size_t) c.npad)))
    return 0;
  for (size_t i = 0; i < n; i++)
    mm->xr[i] = x + i * ldx;
  if (!c.npad && is_quant (w->dtype)) {
    /* few tokens against quantized weights: integer dot products (quant.h) */
    c.xq_stride = dsk_qx_row_bytes (in);
    if (!ensure (&mm->xquant, n * c.xq_stride / sizeof (float)))
      return 0;
    c.xq = (const char *) mm->xquant.data;
    for (size_t i = 0; i < n; i++)
      dsk_qx_quantize ((char *) mm->xquant.data + i * c.xq_stride, x + i * ldx, in);
  }
  if (c.npad)
    dsk_pool_run (mm->pool, (int) ((in + PACK_CHUNK - 1) / PACK_CHUNK), flops,
                  linear_pack_item, &c);
  dsk_pool_run (mm->pool, (w->rows + c.rows_per_item - 1) / c.rows_per_item, flops,
                linear_item, &c);
  return 1;
}

/* ---- experts ---- */

typedef struct {
  dsk_mm *mm;
  const dsk_expert_job *jobs;
  int n_jobs;
  size_t H;
  float *out;
  const int32_t *items_a, *items_b;   /* (job, first row) pairs */
} experts_run;

static void
experts_pack_item (void *ctx, int item, int thread)
{
  experts_run *c = ctx;
  const job_state *st = &c->mm->js[item];
  if (st->npad) {
    pack_columns (st->xp, st->npad, c->H, c->mm->xr + st->x_off, c->jobs[item].n, 0, c->H);
  } else if (st->xq) {
    for (int i = 0; i < c->jobs[item].n; i++)
      dsk_qx_quantize (st->xq + (size_t) i * st->xq_stride, c->mm->xr[st->x_off + (size_t) i],
                       c->H);
  }
}

/* A tile job's hidden rows quantized for its quantized down projection. */
static void
experts_quant_hidden_item (void *ctx, int item, int thread)
{
  experts_run *c = ctx;
  const job_state *st = &c->mm->js[item];
  const dsk_expert_job *j = &c->jobs[item];
  if (!st->hq)
    return;
  for (int i = 0; i < j->n; i++)
    dsk_qx_quantize (st->hq + (size_t) i * st->hq_stride, st->hp + (size_t) i * j->gate.rows,
                     (size_t) j->gate.rows);
}

/* silu(gate) * up for rows [r0, r0 + nr) of a job's hidden layer. */
static void
experts_gate_up_item (void *ctx, int item, int thread)
{
  experts_run *c = ctx;
  const int jn = c->items_a[2 * item], r0 = c->items_a[2 * item + 1];
  const dsk_expert_job *j = &c->jobs[jn];
  const job_state *st = &c->mm->js[jn];
  const int inter = j->gate.rows, nr = inter - r0 < ROW_BLOCK ? inter - r0 : ROW_BLOCK;
  float *scr = dsk_pool_scratch (c->mm->pool, thread, 0);   /* reserved before the run */

  if (st->npad) {
    /* gate and up as [nr][npad], then silu(g) * u straight into the packed hidden rows */
    float *g = scr, *u = scr + (size_t) ROW_BLOCK * st->npad;
    float *wbuf = u + (size_t) ROW_BLOCK * st->npad;
    rows_packed (c->mm->k, st->xp, st->npad, st->npad, &j->gate, r0, nr, g, (size_t) st->npad, 1,
                 wbuf, 0, NULL);
    rows_packed (c->mm->k, st->xp, st->npad, st->npad, &j->up, r0, nr, u, (size_t) st->npad, 1,
                 wbuf, 0, NULL);
    /* into the hidden panels the down projection reads as its packed x */
    for (int r = 0; r < nr; r++)
      for (int t = 0; t < st->npad; t++) {
        const size_t i = (size_t) r * st->npad + (size_t) t;
        st->hp[panel_at ((size_t) inter, st->npad, (size_t) (r0 + r), t)] =
          g[i] / (1.0f + expf (-g[i])) * u[i];
      }
  } else {
    float *g = scr, *u = scr + (size_t) j->n * ROW_BLOCK, *wbuf = u + (size_t) j->n * ROW_BLOCK;
    const float *const *x_rows = c->mm->xr + st->x_off;
    if (st->xq) {
      rows_tiles_q (st->xq, st->xq_stride, j->n, &j->gate, r0, nr, g, ROW_BLOCK, 0);
      rows_tiles_q (st->xq, st->xq_stride, j->n, &j->up, r0, nr, u, ROW_BLOCK, 0);
    } else {
      rows_tiles (c->mm->k, x_rows, j->n, &j->gate, r0, nr, g, ROW_BLOCK, wbuf, 0);
      rows_tiles (c->mm->k, x_rows, j->n, &j->up, r0, nr, u, ROW_BLOCK, wbuf, 0);
    }
    for (int i = 0; i < j->n; i++)
      for (int r = 0; r < nr; r++) {
        const float a = g[(size_t) i * ROW_BLOCK + r];
        const float b = u[(size_t) i * ROW_BLOCK + r];
        st->hp[(size_t) i * inter + r0 + r] = a / (1.0f + expf (-a)) * b;
      }
  }
}

static void
experts_down_item (void *ctx, int item, int thread)
{
  experts_run *c = ctx;
  const int jn = c->items_b[2 * item], r0 = c->items_b[2 * item + 1];
  const dsk_expert_job *j = &c->jobs[jn];
  const job_state *st = &c->mm->js[jn];
  const int nr = (int) c->H - r0 < ROW_BLOCK ? (int) c->H - r0 : ROW_BLOCK;
  float *wbuf = dsk_pool_scratch (c->mm->pool, thread, 0), *dst = c->out + j->slot0 * c->H + r0;

  if (st->npad) {
    rows_packed (c->mm->k, st->hp, st->npad, j->n, &j->down, r0, nr, dst, 1, c->H, wbuf, 0,
                 NULL);
  } else if (st->hq) {
    rows_tiles_q (st->hq, st->hq_stride, j->n, &j->down, r0, nr, dst, c->H, 0);
  } else {
    const float *const *h_rows = c->mm->xr + st->x_off + j->n;
    rows_tiles (c->mm->k, h_rows, j->n, &j->down, r0, nr, dst, c->H, wbuf, 0);
  }
}

int
dsk_mm_experts (dsk_mm *mm, const dsk_expert_job *jobs, int n_jobs, const float *x, size_t ldx,
                size_t H, float *out)
{
  experts_run c = { mm, jobs, n_jobs, H, out, NULL, NULL };
  size_t xp_total = 0, hp_total = 0, n_rows = 0, max_n = 0, max_in = H, n_a = 0, n_b = 0;
  size_t q_total = 0;   /* bytes of quantized input and hidden rows of tile jobs */
  int any_q = 0;
  double flops = 0.0;

  if (n_jobs <= 0)
    return 1;
  if ((size_t) n_jobs > mm->js_cap) {
    job_state *js = realloc (mm->js, sizeof *js * (size_t) n_jobs);
    if (!js)
      return 0;
    mm->js = js;
    mm->js_cap = (size_t) n_jobs;
  }
  for (int j = 0; j < n_jobs; j++) {
    job_state *st = &mm->js[j];
    const size_t inter = (size_t) jobs[j].gate.rows;
    const int n = jobs[j].n;
    st->npad = mm->k->packed && n >= pack_min ? (n + 15) / 16 * 16 : 0;
    xp_total += (size_t) st->npad * H;
    hp_total += (size_t) (st->npad ? st->npad : n) * inter;
    st->x_off = n_rows;
    n_rows += 2 * (size_t) n;
    if ((size_t) (st->npad > n ? st->npad : n) > max_n)
      max_n = (size_t) (st->npad > n ? st->npad : n);
    if (inter > max_in)
      max_in = inter;
    n_a += (inter + ROW_BLOCK - 1) / ROW_BLOCK;
    n_b += (H + ROW_BLOCK - 1) / ROW_BLOCK;
    flops += 6.0 * n * (double) inter * (double) H;
    st->xq_stride = is_quant (jobs[j].gate.dtype) ? dsk_qx_row_bytes (H) : 0;
    st->hq_stride = is_quant (jobs[j].down.dtype) ? dsk_qx_row_bytes (inter) : 0;
    if (!st->npad)
      q_total += (size_t) n * (st->xq_stride + st->hq_stride);
  }
  /* per thread: an item's gate and up results, then one widened weight block */
  if (!dsk_pool_reserve_scratch (mm->pool,
                                 2 * max_n * ROW_BLOCK + packed_scratch (ROW_BLOCK, max_in)) ||
      !ensure (&mm->xpack, xp_total ? xp_total : 1) ||
      !ensure (&mm->hpack, hp_total ? hp_total : 1) || !ensure_xr (mm, n_rows) ||
      !ensure_items (mm, n_a + n_b) ||
      !ensure (&mm->xquant, q_total / sizeof (float) + 1))
    return 0;

  xp_total = hp_total = q_total = 0;
  n_a = n_b = 0;
  for (int j = 0; j < n_jobs; j++) {
    job_state *st = &mm->js[j];
    const int inter = jobs[j].gate.rows;
    st->xp = mm->xpack.data + xp_total;
    st->hp = mm->hpack.data + hp_total;
    st->xq = st->hq = NULL;
    if (!st->npad) {
      char *qb = (char *) mm->xquant.data + q_total;
      st->xq = st->xq_stride ? qb : NULL;
      st->hq = st->hq_stride ? qb + (size_t) jobs[j].n * st->xq_stride : NULL;
      q_total += (size_t) jobs[j].n * (st->xq_stride + st->hq_stride);
      any_q |= st->xq || st->hq;
    }
    xp_total += (size_t) st->npad * H;
    hp_total += (size_t) (st->npad ? st->npad : jobs[j].n) * inter;
    /* input rows, then (tile jobs) hidden rows */
    for (int i = 0; i < jobs[j].n; i++) {
      mm->xr[st->x_off + i] = x + (size_t) (jobs[j].rows ? jobs[j].rows[i] : i) * ldx;
      mm->xr[st->x_off + jobs[j].n + i] = st->hp + (size_t) i * inter;
    }
    for (int r = 0; r < inter; r += ROW_BLOCK, n_a++) {
      mm->items[2 * n_a] = j;
      mm->items[2 * n_a + 1] = r;
    }
  }
  c.items_a = mm->items;
  c.items_b = mm->items + 2 * n_a;
  for (int j = 0; j < n_jobs; j++)
    for (int r = 0; r < (int) H; r += ROW_BLOCK, n_b++) {
      mm->items[2 * (n_a + n_b)] = j;
      mm->items[2 * (n_a + n_b) + 1] = r;
    }

  if (xp_total || any_q)
    dsk_pool_run (mm->pool, n_jobs, flops, experts_pack_item, &c);
  dsk_pool_run (mm->pool, (int) n_a, flops, experts_gate_up_item, &c);
  if (any_q)
    dsk_pool_run (mm->pool, n_jobs, flops, experts_quant_hidden_item, &c);
  dsk_pool_run (mm->pool, (int) n_b, flops, experts_down_item, &c);
  return 1;
}

/* ---- untransposed batched product (MLA's absorbed query) ---- */

void
dsk_mm_xw (float *y, size_t ldy, const float *x, size_t ldx, const void *w, dsk_dtype w_dtype,
           size_t ld_w, size_t n, size_t in_dim, size_t out_dim)
{
  const size_t esize = dsk_dtype_size (w_dtype);

  for (size_t i = 0; i < n; i++) {
    float *yi = y + i * ldy;
    memset (yi, 0, sizeof (float) * out_dim);
    for (size_t d = 0; d < in_dim; d++) {
      const float a = x[i * ldx + d];
      const char *row = (const char *) w + d * ld_w * esize;
      if (w_dtype == DSK_BF16) {
        const uint16_t *wr = (const uint16_t *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * dsk_bf16_to_f32 (wr[j]);
      } else if (w_dtype == DSK_F16) {
        const uint16_t *wr = (const uint16_t *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * dsk_f16_to_f32 (wr[j]);
      } else {
        const float *wr = (const float *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * wr[j];
      }
    }
  }
}
