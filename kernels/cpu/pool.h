/* pool.h: the CPU backend's thread pool, the only threads its ops run on.
 *
 * A run is a list of work items (blocks of weight rows, heads, rows of a norm) handed out
 * dynamically to the pool's threads, which sleep between runs instead of spinning forever: a
 * thread slowed by another process on the machine only slows the items it took, and no OpenMP
 * team or OpenBLAS thread set competes with it (OpenBLAS runs single-threaded inside items).
 * Each thread has its own scratch, kept between runs.
 */
#ifndef DSK_CPU_POOL_H
#define DSK_CPU_POOL_H

#include <stddef.h>

typedef struct dsk_pool dsk_pool;

/* Work item @item of a run, on thread @thread (0 = the caller, 1 .. n_threads - 1 = workers). */
typedef void (*dsk_pool_fn) (void *ctx, int item, int thread);

/* A pool of @n_threads threads: the caller of dsk_pool_run() and n_threads - 1 workers
 * (fewer when the system refuses threads). NULL when out of memory. */
dsk_pool *dsk_pool_new (int n_threads);
void dsk_pool_free (dsk_pool *pool);
int dsk_pool_n_threads (const dsk_pool *pool);

/* Runs @fn on items [0, @n_items), each exactly once, spread over the threads; returns when all
 * are done. A run whose cost @flops is below the parallel threshold (~2 MFLOP) stays on the
 * caller: waking threads would cost more. Not reentrant: an item must not start a run. */
void dsk_pool_run (dsk_pool *pool, int n_items, double flops, dsk_pool_fn fn, void *ctx);

/* Thread @thread's scratch of at least @n_floats, kept for the next call (64-byte aligned).
 * NULL when memory is short. An item may use its own thread's scratch only. */
float *dsk_pool_scratch (dsk_pool *pool, int thread, size_t n_floats);
/* Makes every thread's scratch hold at least @n_floats (before a run whose items need it);
 * 0 when memory is short. */
int dsk_pool_reserve_scratch (dsk_pool *pool, size_t n_floats);

/* Test hook, not thread-safe: runs cheaper than @flops stay on the caller (negative: back to
 * the default, 2 MFLOP); 0 spreads every run over the pool. */
void dsk_pool_set_parallel_min (double flops);

#endif /* DSK_CPU_POOL_H */
