/* decoder-cpu.h (internal): the decoder's CPU machinery: a thread pool and matrix products
 * with the weights in their checkpoint dtype.
 *
 * Why not dsk's matmul: a decoder step is dozens of small products, and a MoE layer's cost is
 * spread over many experts. Here every product (and the whole set of experts of a layer) is a
 * list of work items (blocks of weight rows) handed out dynamically to the session's threads,
 * which sleep between runs instead of spinning: a thread slowed by another process on the
 * machine only slows the items it took, and no OpenMP team competes with OpenBLAS threads.
 * Each weight block is read from memory once per product, whatever the number of tokens.
 *
 * Kernels (chosen at run time): AVX-512 (a register-blocked product on f32-widened weight rows
 * and a packed copy of the tokens for many-token products; weights widened in registers for
 * few tokens), AVX2 + FMA (the latter), and plain C. f32 accumulation throughout.
 */
#ifndef DSOCR_DECODER_CPU_H
#define DSOCR_DECODER_CPU_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "dsk.h"

G_BEGIN_DECLS

/* ---- thread pool ---- */

typedef struct dsocr_pool dsocr_pool;

/* Work item @item of a run, on thread @thread (0 = the caller, 1 .. n_threads - 1 = workers). */
typedef void (*dsocr_pool_fn) (void *ctx, int item, int thread);

/* A pool of @n_threads threads: the caller of dsocr_pool_run() and n_threads - 1 workers. The
 * workers run OpenMP regions (dsk's ops) with one thread. */
dsocr_pool *dsocr_pool_new (int n_threads);
void dsocr_pool_free (dsocr_pool *pool);
int dsocr_pool_n_threads (const dsocr_pool *pool);
/* Runs @fn on items [0, @n_items), each exactly once, spread over the threads; returns when all
 * are done. @flops (a rough cost) below ~2 MFLOP runs everything on the caller. */
void dsocr_pool_run (dsocr_pool *pool, int n_items, double flops, dsocr_pool_fn fn, void *ctx);

/* ---- matrix products ---- */

/* A weight matrix [rows, cols] in its dtype (F32, BF16, F16), rows @ld elements apart, with an
 * optional bias [rows]. */
typedef struct {
  const void *data;
  dsk_dtype dtype;
  int rows, cols;
  size_t ld;
  const void *bias;
  dsk_dtype bias_dtype;
} dsocr_mat;

/* The products of one session: its pool and per-thread scratch. */
typedef struct dsocr_mm dsocr_mm;

/* @pool: (transfer none) must outlive the result. */
dsocr_mm *dsocr_mm_new (dsocr_pool *pool);
void dsocr_mm_free (dsocr_mm *mm);

/* y_i[0 .. w->rows) = x_i · W^T (+ b) for the @n rows x_i = x + i * ldx, y_i = y + i * ldy.
 * FALSE (DSOCR_ERROR_NOMEM) when scratch cannot be had. */
gboolean dsocr_mm_linear (dsocr_mm *mm, float *y, size_t ldy, const float *x, size_t ldx, size_t n,
                          const dsocr_mat *w, GError **error);

/* One expert of a MoE layer (or the shared MLP): a SwiGLU MLP on some tokens. */
typedef struct {
  dsocr_mat gate, up, down;   /* [inter, H], [inter, H], [H, inter] */
  int n;                      /* its tokens */
  const int32_t *rows;        /* [n] their rows of x; NULL: rows 0 .. n-1 */
  size_t slot0;               /* row of @out for its first token */
} dsocr_expert_job;

/* out[slot0 + i] = down (silu (gate x_i) * up x_i) for the tokens of every job, all jobs in one
 * pass over the pool (x [*, H], out [*, H]). */
gboolean dsocr_mm_experts (dsocr_mm *mm, const dsocr_expert_job *jobs, int n_jobs, const float *x,
                           size_t H, float *out, GError **error);

/* Test hooks, not thread-safe: dsocr_mm_new() after the call picks at most the kernels named
 * (AVX2 still needs the CPU to have it); products of at least @n tokens take the packed kernel
 * where there is one (0: back to the default, 16). */
typedef enum {
  DSOCR_MM_KERNELS_AUTO = 0,
  DSOCR_MM_KERNELS_AVX2,
  DSOCR_MM_KERNELS_GENERIC,
} dsocr_mm_kernels;
void dsocr_mm_force_kernels (dsocr_mm_kernels which);
void dsocr_mm_set_pack_min (int n);
/* Test hook, not thread-safe: runs cheaper than @flops stay on the caller (negative: back to
 * the default, 2 MFLOP); 0 spreads every run over the pool. */
void dsocr_pool_set_parallel_min (double flops);

G_END_DECLS

#endif /* DSOCR_DECODER_CPU_H */
