/* matmul.c: y = x W^T with W in its checkpoint dtype, the CPU reference.
 *
 * Two paths:
 * - direct: W is read once per block of W rows and BF16/F16 is widened in registers while it
 *   is multiplied. Decode (n <= 8) is bound by reading W from memory, so this path reads every
 *   weight byte exactly once and converts nothing ahead. It is also the GEMM of builds without
 *   OpenBLAS.
 * - BLAS (n > 8 with OpenBLAS): W is widened block by block into the calling thread's scratch
 *   and multiplied by cblas_sgemm, which packs and blocks far better than a portable kernel.
 * Both are deterministic: one output element is always reduced by one thread in one order. */
#include "dsk.h"
#include "dsk-cpu.h"
#include "dsocr-build-config.h"

#include <stdlib.h>
#include <string.h>

#if DSOCR_HAVE_OPENBLAS
#include <cblas.h>
#endif

#define GEMV_MAX_N 8
/* W rows per direct-path block: 64 x 1280 BF16 is 160 KiB, which stays in L2 while every
 * group of 4 x rows passes over it. */
#define W_BLOCK 64
/* Floats of widened W per BLAS block (8 MiB): at least a few hundred W rows even for
 * in = 6848, so that sgemm runs on wide blocks and re-packs x rarely; 2 MiB blocks measured
 * 30-40 % slower on the decoder's prefill shapes. */
#define BLAS_W_FLOATS (2048 * 1024)
/* x rows per BLAS block when rows are gathered or scattered through scratch. */
#define BLAS_X_ROWS 256

static int force_path;

void
dsk_matmul_force_path (int path)
{
  force_path = path;
}

/* One call's arguments, resolved (strides filled in). */
typedef struct {
  size_t n, in, out;
  const float *x;          /* [*, ldx] */
  size_t ldx;
  const int32_t *x_rows;   /* [n] or NULL */
  const void *w;           /* [out, in] */
  dsk_dtype wt;
  const void *bias;        /* [out] or NULL */
  dsk_dtype bt;
  float *y;                /* [*, ldy] */
  size_t ldy;
  const int32_t *y_rows;   /* [n] or NULL */
  const float *y_scale;    /* [n] or NULL */
  int acc;
} mm_args;

static inline const float *
x_row (const mm_args *p, size_t i)
{
  size_t r = p->x_rows ? (size_t) p->x_rows[i] : i;
  return p->x + r * p->ldx;
}

/* Final value of product element (i, o): bias, row scale, then store or accumulate. */
static inline void
store (const mm_args *p, size_t i, size_t o, float v)
{
  if (p->bias)
    v += dsk_cpu_weight_at (p->bias, p->bt, o);
  if (p->y_scale)
    v *= p->y_scale[i];
  size_t r = p->y_rows ? (size_t) p->y_rows[i] : i;
  float *d = p->y + r * p->ldy + o;
  if (p->acc)
    *d += v;
  else
    *d = v;
}

/* ---- direct path, plain C ---- */

static void
block_generic (const mm_args *p, size_t o0, size_t o1)
{
  size_t es = dsk_dtype_size (p->wt);
  for (size_t i = 0; i < p->n; i++) {
    const float *xr = x_row (p, i);
    for (size_t o = o0; o < o1; o++) {
      const void *wr = (const char *) p->w + o * p->in * es;
      /* eight partial sums, like the SIMD path, keep the rounding error growth at
       * in/8 additions per sum */
      float s[8] = { 0 };
      size_t k = 0;
      for (; k + 8 <= p->in; k += 8)
        for (int l = 0; l < 8; l++)
          s[l] += xr[k + l] * dsk_cpu_weight_at (wr, p->wt, k + l);
      float t = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
      for (; k < p->in; k++)
        t += xr[k] * dsk_cpu_weight_at (wr, p->wt, k);
      store (p, i, o, t);
    }
  }
}

/* ---- direct path, AVX2 ---- */

#if DSK_X86_SIMD

static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 __m256
load8 (const void *w, dsk_dtype dt, size_t k)
{
  if (dt == DSK_BF16) {
    __m128i h = _mm_loadu_si128 ((const __m128i *) ((const uint16_t *) w + k));
    return _mm256_castsi256_ps (_mm256_slli_epi32 (_mm256_cvtepu16_epi32 (h), 16));
  }
  if (dt == DSK_F16)
    return _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) ((const uint16_t *) w + k)));
  return _mm256_loadu_ps ((const float *) w + k);
}

/* Same order as block_generic's eight partial sums. */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 float
hsum8 (__m256 v)
{
  __m128 lo = _mm256_castps256_ps128 (v), hi = _mm256_extractf128_ps (v, 1);
  __m128 s = _mm_add_ps (lo, hi);                    /* (0+4) (1+5) (2+6) (3+7) */
  s = _mm_add_ps (s, _mm_movehl_ps (s, s));          /* (0+4)+(2+6), (1+5)+(3+7) */
  s = _mm_add_ss (s, _mm_shuffle_ps (s, s, 0x55));
  return _mm_cvtss_f32 (s);
}

/* R rows of x times C rows of W, R * C accumulators kept in registers. */
static inline __attribute__ ((always_inline)) DSK_TARGET_AVX2 void
tile_body (const mm_args *p, size_t i0, size_t o0, const dsk_dtype dt, const int R, const int C)
{
  const size_t in = p->in, es = dt == DSK_F32 ? 4 : 2;
  const float *xr[4];
  const char *wr[8];
  __m256 acc[4][8];

  #pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    xr[r] = x_row (p, i0 + r);
  #pragma GCC unroll 8
  for (int c = 0; c < C; c++)
    wr[c] = (const char *) p->w + (o0 + c) * in * es;
  #pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      acc[r][c] = _mm256_setzero_ps ();

  size_t k = 0;
  for (; k + 8 <= in; k += 8) {
    __m256 wv[8];
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      wv[c] = load8 (wr[c], dt, k);
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      __m256 xv = _mm256_loadu_ps (xr[r] + k);
      #pragma GCC unroll 8
      for (int c = 0; c < C; c++)
        acc[r][c] = _mm256_fmadd_ps (xv, wv[c], acc[r][c]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; r++)
    #pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
      float t = hsum8 (acc[r][c]);
      for (size_t kk = k; kk < in; kk++)
        t += xr[r][kk] * dsk_cpu_weight_at (wr[c], dt, kk);
      store (p, i0 + r, o0 + c, t);
    }
}

typedef void (*tile_fn) (const mm_args *p, size_t i0, size_t o0);

/* Widest tile per x-row count: 8, 8, 6 and 8 accumulators. */
static const int tile_cols[5] = { 0, 8, 4, 2, 2 };

#define TILE(name, dt, R, C) \
  static DSK_TARGET_AVX2 void name (const mm_args *p, size_t i0, size_t o0) \
  { tile_body (p, i0, o0, dt, R, C); }
#define TILES(tag, dt) \
  TILE (tile_##tag##_1, dt, 1, 8) TILE (tile_##tag##_1t, dt, 1, 1) \
  TILE (tile_##tag##_2, dt, 2, 4) TILE (tile_##tag##_2t, dt, 2, 1) \
  TILE (tile_##tag##_3, dt, 3, 2) TILE (tile_##tag##_3t, dt, 3, 1) \
  TILE (tile_##tag##_4, dt, 4, 2) TILE (tile_##tag##_4t, dt, 4, 1)
TILES (f32, DSK_F32)
TILES (bf16, DSK_BF16)
TILES (f16, DSK_F16)

/* [dtype][rows - 1][0: full width, 1: one W row] */
static const tile_fn tiles_f32[4][2] = {
  { tile_f32_1, tile_f32_1t }, { tile_f32_2, tile_f32_2t },
  { tile_f32_3, tile_f32_3t }, { tile_f32_4, tile_f32_4t } };
static const tile_fn tiles_bf16[4][2] = {
  { tile_bf16_1, tile_bf16_1t }, { tile_bf16_2, tile_bf16_2t },
  { tile_bf16_3, tile_bf16_3t }, { tile_bf16_4, tile_bf16_4t } };
static const tile_fn tiles_f16[4][2] = {
  { tile_f16_1, tile_f16_1t }, { tile_f16_2, tile_f16_2t },
  { tile_f16_3, tile_f16_3t }, { tile_f16_4, tile_f16_4t } };

static void
block_avx2 (const mm_args *p, size_t o0, size_t o1)
{
  const tile_fn (*t)[2] = p->wt == DSK_BF16 ? tiles_bf16 : p->wt == DSK_F16 ? tiles_f16 : tiles_f32;
  for (size_t i0 = 0; i0 < p->n; i0 += 4) {
    size_t R = p->n - i0 < 4 ? p->n - i0 : 4;
    size_t C = (size_t) tile_cols[R], o = o0;
    for (; o + C <= o1; o += C)
      t[R - 1][0] (p, i0, o);
    for (; o < o1; o++)
      t[R - 1][1] (p, i0, o);
  }
}

/* dst[count] = src[count] widened. */
static DSK_TARGET_AVX2 void
widen_avx2 (float *dst, const void *src, dsk_dtype dt, size_t count)
{
  size_t k = 0;
  for (; k + 8 <= count; k += 8)
    _mm256_storeu_ps (dst + k, load8 (src, dt, k));
  for (; k < count; k++)
    dst[k] = dsk_cpu_weight_at (src, dt, k);
}

#endif /* DSK_X86_SIMD */

static void
direct_path (const mm_args *p)
{
  const size_t n_blocks = (p->out + W_BLOCK - 1) / W_BLOCK;
  const int simd = dsk_cpu_has_avx2 ();
  /* below ~0.03 ms of work a fork/join costs more than it saves */
  const int par = (double) p->n * (double) p->in * (double) p->out >= 262144.0;

#pragma omp parallel for schedule(static) if (par)
  for (size_t b = 0; b < n_blocks; b++) {
    size_t o0 = b * W_BLOCK, o1 = o0 + W_BLOCK < p->out ? o0 + W_BLOCK : p->out;
#if DSK_X86_SIMD
    if (simd) {
      block_avx2 (p, o0, o1);
      continue;
    }
#endif
    (void) simd;
    block_generic (p, o0, o1);
  }
}

/* ---- BLAS path ---- */

#if DSOCR_HAVE_OPENBLAS

/* Serial on purpose: sgemm runs on OpenBLAS's own threads right after, and an OpenMP team
 * spinning at its barrier would compete with them for the cores. */
static void
widen_rows (float *dst, const void *src, dsk_dtype dt, size_t rows, size_t in)
{
  const size_t es = dsk_dtype_size (dt);
  const int simd = dsk_cpu_has_avx2 ();
  for (size_t r = 0; r < rows; r++) {
    const void *s = (const char *) src + r * in * es;
#if DSK_X86_SIMD
    if (simd) {
      widen_avx2 (dst + r * in, s, dt, in);
      continue;
    }
#endif
    (void) simd;
    for (size_t k = 0; k < in; k++)
      dst[r * in + k] = dsk_cpu_weight_at (s, dt, k);
  }
}

/* 0 on success, -1 when scratch could not be had (nothing written then). */
static int
blas_path (const mm_args *p)
{
  const size_t n = p->n, in = p->in, out = p->out;
  const int need_w = p->wt != DSK_F32;        /* widen W blocks */
  const int need_x = p->x_rows != NULL;       /* gather x rows */
  const int need_c = p->y_rows || p->y_scale; /* product goes through scratch */
  size_t ob = out, xb = n;

  if (need_w || need_c) {
    ob = BLAS_W_FLOATS / in;
    if (ob < 64)
      ob = 64;
    if (ob > out)
      ob = out;
  }
  if (need_x || need_c)
    xb = n < BLAS_X_ROWS ? n : BLAS_X_ROWS;

  size_t w_len = need_w ? ob * in : 0, x_len = need_x ? xb * in : 0, c_len = need_c ? xb * ob : 0;
  float *s = NULL;
  if (w_len + x_len + c_len > 0) {
    s = dsk_cpu_scratch (w_len + x_len + c_len);
    if (!s)
      return -1;
  }
  float *ws = s, *xs = s + w_len, *cs = s + w_len + x_len;

  for (size_t o0 = 0; o0 < out; o0 += ob) {
    const size_t m = out - o0 < ob ? out - o0 : ob;
    const float *wb;
    if (need_w) {
      widen_rows (ws, (const char *) p->w + o0 * in * dsk_dtype_size (p->wt), p->wt, m, in);
      wb = ws;
    } else {
      wb = (const float *) p->w + o0 * in;
    }

    for (size_t i0 = 0; i0 < n; i0 += xb) {
      const size_t r = n - i0 < xb ? n - i0 : xb;
      const float *xp = p->x + i0 * p->ldx;
      size_t ldx = p->ldx;
      if (need_x) {
        for (size_t i = 0; i < r; i++)
          memcpy (xs + i * in, x_row (p, i0 + i), in * sizeof (float));
        xp = xs;
        ldx = in;
      }
      if (need_c) {
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) r, (int) m, (int) in,
                     1.0f, xp, (int) ldx, wb, (int) in, 0.0f, cs, (int) m);
        for (size_t i = 0; i < r; i++)
          for (size_t c = 0; c < m; c++)
            store (p, i0 + i, o0 + c, cs[i * m + c]);
      } else {
        float *yp = p->y + i0 * p->ldy + o0;
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) r, (int) m, (int) in,
                     1.0f, xp, (int) ldx, wb, (int) in, p->acc ? 1.0f : 0.0f, yp, (int) p->ldy);
        if (p->bias)
          for (size_t i = 0; i < r; i++)
            for (size_t c = 0; c < m; c++)
              yp[i * p->ldy + c] += dsk_cpu_weight_at (p->bias, p->bt, o0 + c);
      }
    }
  }
  return 0;
}

#endif /* DSOCR_HAVE_OPENBLAS */

void
dsk_matmul_scratch_release_cpu (void)
{
  dsk_cpu_scratch_release ();
}

dsk_status
dsk_matmul_f32_cpu (float *y, const float *x, const void *w, dsk_dtype w_dtype,
                    const void *bias, dsk_dtype bias_dtype,
                    size_t n, size_t in, size_t out, const dsk_matmul_opts *opts)
{
  static const dsk_matmul_opts plain = { 0 };
  if (!opts)
    opts = &plain;
  if (!y || !x || !w || n == 0 || in == 0 || out == 0)
    return DSK_ERR_INVALID;
  if ((opts->ldx && opts->ldx < in) || (opts->ldy && opts->ldy < out))
    return DSK_ERR_INVALID;
  /* cblas takes int sizes */
  if (in > INT32_MAX || out > INT32_MAX || n > INT32_MAX || opts->ldx > INT32_MAX ||
      opts->ldy > INT32_MAX)
    return DSK_ERR_UNSUPPORTED;
  if (!dsk_cpu_weight_dtype_ok (w_dtype) || (bias && !dsk_cpu_weight_dtype_ok (bias_dtype)))
    return DSK_ERR_UNSUPPORTED;
  for (size_t i = 0; i < n; i++)
    if ((opts->x_rows && opts->x_rows[i] < 0) || (opts->y_rows && opts->y_rows[i] < 0))
      return DSK_ERR_INVALID;

  mm_args p = {
    .n = n, .in = in, .out = out,
    .x = x, .ldx = opts->ldx ? opts->ldx : in, .x_rows = opts->x_rows,
    .w = w, .wt = w_dtype, .bias = bias, .bt = bias_dtype,
    .y = y, .ldy = opts->ldy ? opts->ldy : out, .y_rows = opts->y_rows,
    .y_scale = opts->y_scale, .acc = opts->accumulate != 0,
  };

#if DSOCR_HAVE_OPENBLAS
  int blas = force_path == 2 || (force_path == 0 && n > GEMV_MAX_N);
  if (blas && blas_path (&p) == 0)
    return DSK_OK;
#endif
  direct_path (&p);
  return DSK_OK;
}
