/* linear.h: the CPU backend's matrix products with weights in their stored dtype (linear.c).
 *
 * Which path a product takes, by its number of x rows n:
 * - n <= DSK_MM_GEMV_MAX (decode): tiles that widen BF16/F16 weights in registers and read
 *   every weight byte once; the product is bound by memory.
 * - above, with AVX-512: the packed kernel over blocks of widened weight rows, at every n. On
 *   the 2-core AVX-512 development machine (bench-matmul, bench/results/backend-cpu.md) it ran
 *   1.5 to 4.5x the GFLOP/s of OpenBLAS sgemm in the pool's items on every decoder and vision
 *   shape, from prefill's 256 rows to a Gundam page's 9600.
 * - above, without AVX-512: the tiles up to DSK_MM_BLAS_MIN_ROWS rows, OpenBLAS sgemm from
 *   there (one per block of weight rows, single-threaded inside its pool item): with the
 *   AVX2 tiles forced on the same machine the two were even up to ~600 rows and sgemm ~1.5x
 *   ahead on the vision tower's 4096 and more.
 * Every path reduces one output element in one fixed order, whatever the thread count.
 */
#ifndef DSK_CPU_LINEAR_H
#define DSK_CPU_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "dsk.h"
#include "pool.h"

#define DSK_MM_GEMV_MAX 8
#define DSK_MM_BLAS_MIN_ROWS 1024
/* Floats of widened weights one BLAS item aims at (8 MiB): wide enough that sgemm re-packs x
 * rarely; 2 MiB blocks measured 30-40 % slower on the decoder's prefill shapes. */
#define DSK_MM_BLAS_W_FLOATS (2048.0 * 1024.0)
/* The packed kernel's x ([cols][tokens] floats) beyond which an item takes more weight rows
 * (up to DSK_MM_PACK_MAX_ROWS), so that x is streamed from memory fewer times. */
#define DSK_MM_PACK_CACHE_BYTES (1024.0 * 1024.0)
#define DSK_MM_PACK_MAX_ROWS 128

/* A weight matrix [rows, cols] in its dtype (F32, BF16, F16), rows @ld elements apart, with an
 * optional bias [rows]. */
typedef struct {
  const void *data;
  dsk_dtype dtype;
  int rows, cols;
  size_t ld;
  const void *bias;
  dsk_dtype bias_dtype;
} dsk_mat;

/* The products of one backend: its pool, the kernels CPUID chose, packing buffers. */
typedef struct dsk_mm dsk_mm;

/* @pool: (transfer none) must outlive the result. NULL when out of memory. */
dsk_mm *dsk_mm_new (dsk_pool *pool);
void dsk_mm_free (dsk_mm *mm);

/* y_i[0 .. w->rows) (=, or += with @accumulate) x_i · W^T, then + b, for the @n rows
 * x_i = x + i * ldx, y_i = y + i * ldy. 0 when scratch cannot be had (nothing written). */
int dsk_mm_linear (dsk_mm *mm, float *y, size_t ldy, const float *x, size_t ldx, size_t n,
                   const dsk_mat *w, int accumulate);

/* One expert of a MoE layer (or the shared MLP): a SwiGLU MLP on some tokens. */
typedef struct {
  dsk_mat gate, up, down;     /* [inter, H], [inter, H], [H, inter] */
  int n;                      /* its tokens */
  const int32_t *rows;        /* [n] their rows of x; NULL: rows 0 .. n-1 */
  size_t slot0;               /* row of @out for its first token */
} dsk_expert_job;

/* out[slot0 + i] = down (silu (gate x_i) * up x_i) for the tokens of every job, all jobs in one
 * pass over the pool (x [*, H] with rows @ldx apart, out [*, H] packed). 0 when scratch cannot
 * be had. */
int dsk_mm_experts (dsk_mm *mm, const dsk_expert_job *jobs, int n_jobs, const float *x,
                    size_t ldx, size_t H, float *out);

/* y [n, out_dim] = x [n, in_dim] · W for W [in_dim, out_dim] (rows @ld_w apart) not
 * transposed, single-threaded: the absorbed MLA query, one head per pool item. */
void dsk_mm_xw (float *y, size_t ldy, const float *x, size_t ldx, const void *w,
                dsk_dtype w_dtype, size_t ld_w, size_t n, size_t in_dim, size_t out_dim);

/* The packed kernel's parts, for kernels that lay out their own operands (attention.c).
 * Only where dsk_mm_packed_ok() (AVX-512). Layouts: x as panels of 32 tokens ([cols][32],
 * the last one 16 when the padded count npad = round16(n) is an odd multiple of 16), weights
 * as groups of 8 rows interleaved ([round8(nr) / 8][wp_cols][8]). */
int dsk_mm_packed_ok (void);
/* xp [npad * cols] = the @n rows x_t = x + t * ldx ([cols] each) as panels, zero past n. */
void dsk_mm_pack_panels (float *xp, const float *x, size_t ldx, int n, size_t cols);
/* wp [round8(nr) * cols] = the @nr rows w + r * ld ([cols] each, F32), interleaved by 8. */
void dsk_mm_pack_rows (float *wp, const float *w, size_t ld, int nr, size_t cols);
/* wp [round8(nr) * cols] = the columns 0 .. nr of the [cols, *] matrix m (rows @ld apart) as
 * rows (wp row j = m[:, j]), interleaved by 8: the transposed values of an attention head. */
void dsk_mm_pack_cols (float *wp, const float *m, size_t ld, int nr, size_t cols);
/* dst[r * ld_r + t * ld_t] = wp row r · x_t over the first @cols columns, for r < nr, t < n
 * (@wp packed with wp_cols >= cols columns). One accumulation order per element, as in
 * dsk_mm_linear. */
void dsk_mm_packed (const float *wp, size_t wp_cols, int nr, const float *xp, int npad, int n,
                    size_t cols, float *dst, size_t ld_r, size_t ld_t);

/* Test and benchmark hooks, not thread-safe: dsk_mm_new() after the call picks at most the
 * kernels named (AVX2 still needs the CPU to have it); products of at least @n tokens take the
 * packed kernel where there is one (0: back to the default, 16); the path of many-row products
 * (0 automatic, 1 the kernels only, 2 BLAS for every n > DSK_MM_GEMV_MAX when built with it). */
typedef enum {
  DSK_MM_KERNELS_AUTO = 0,
  DSK_MM_KERNELS_AVX2,
  DSK_MM_KERNELS_GENERIC,
} dsk_mm_kernels;
void dsk_mm_force_kernels (dsk_mm_kernels which);
void dsk_mm_set_pack_min (int n);
void dsk_mm_force_path (int path);

#endif /* DSK_CPU_LINEAR_H */
