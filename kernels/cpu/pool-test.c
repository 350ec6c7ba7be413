/* pool-test.c: the CPU backend's thread pool (pool.h): every item of a run exactly once, runs
 * back to back, the parallel threshold, per-thread scratch, and threads joined when a pool is
 * freed. */
#include <dirent.h>
#include <glib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"

#define MAX_ITEMS 1000

/* What the items of a run record: how often each ran and on which thread. */
typedef struct {
  atomic_int count[MAX_ITEMS];
  atomic_int thread_bad;        /* items that saw a thread index outside the pool */
  atomic_int on_workers;        /* items that ran on a thread other than the caller */
  int n_threads;
  int spin;                     /* busy work per item, so items overlap */
  int sleep_us;                 /* or sleep, so every worker wakes up in time */
} count_ctx;

static void
count_item (void *data, int item, int thread)
{
  count_ctx *c = data;
  volatile int sink = 0;

  if (thread < 0 || thread >= c->n_threads || item < 0 || item >= MAX_ITEMS) {
    atomic_fetch_add (&c->thread_bad, 1);
    return;
  }
  for (int i = 0; i < c->spin * (item % 7 + 1); i++)
    sink += i;
  if (c->sleep_us)
    g_usleep (c->sleep_us);
  if (thread != 0)
    atomic_fetch_add (&c->on_workers, 1);
  atomic_fetch_add (&c->count[item], 1);
}

/* Every item runs exactly once per run, on a thread of the pool, and the run returns only when
 * all are done: n_items 0, 1 and many, 1 to 4 threads, runs spread over the pool
 * (parallel_min 0) or kept on the caller when cheap (the default threshold), hundreds of runs
 * back to back so that a worker waking late meets a later run. */
static void
test_each_item_once (void)
{
  static const int n_items_list[] = { 0, 1, 2, 3, 7, 64, MAX_ITEMS };
  count_ctx *c = g_new0 (count_ctx, 1);

  for (int nt = 1; nt <= 4; nt++)
    for (int spread = 0; spread < 2; spread++) {
      dsk_pool *pool = dsk_pool_new (nt);
      g_assert_nonnull (pool);
      g_assert_cmpint (dsk_pool_n_threads (pool), ==, nt);
      dsk_pool_set_parallel_min (spread ? 0.0 : -1.0);
      for (size_t a = 0; a < G_N_ELEMENTS (n_items_list); a++)
        for (int cheap = 0; cheap < 2; cheap++) {
          const int n_items = n_items_list[a];
          const int runs = n_items >= MAX_ITEMS ? 30 : 300;
          /* a cheap run stays on the caller under the default threshold (~2 MFLOP) */
          const double flops = cheap ? 1.0 : 1e9;
          memset (c, 0, sizeof *c);
          c->n_threads = nt;
          c->spin = n_items >= MAX_ITEMS ? 20 : 200;
          for (int r = 0; r < runs; r++) {
            dsk_pool_run (pool, n_items, flops, count_item, c);
            for (int i = 0; i < n_items; i++)
              if (atomic_load (&c->count[i]) != r + 1)
                g_error ("%d threads, %d items, run %d: item %d ran %d times", nt, n_items, r,
                         i, atomic_load (&c->count[i]) - r);
          }
          for (int i = n_items; i < MAX_ITEMS; i++)
            g_assert_cmpint (atomic_load (&c->count[i]), ==, 0);
          g_assert_cmpint (atomic_load (&c->thread_bad), ==, 0);
          if (cheap && !spread)
            g_assert_cmpint (atomic_load (&c->on_workers), ==, 0);
          if (nt == 1)
            g_assert_cmpint (atomic_load (&c->on_workers), ==, 0);
        }
      dsk_pool_free (pool);
    }
  dsk_pool_set_parallel_min (-1.0);
  g_free (c);
}

/* The workers do take items: runs of slow items on a pool of 2 to 4 threads are shared (the
 * caller alone would need all of their time), with and without parallel_min 0. Three runs:
 * the first run after dsk_pool_new may find a worker not started yet. */
static void
test_workers_take_items (void)
{
  count_ctx *c = g_new0 (count_ctx, 1);

  for (int nt = 2; nt <= 4; nt++)
    for (int spread = 0; spread < 2; spread++) {
      dsk_pool *pool = dsk_pool_new (nt);
      dsk_pool_set_parallel_min (spread ? 0.0 : -1.0);
      memset (c, 0, sizeof *c);
      c->n_threads = nt;
      c->sleep_us = 1000;
      for (int r = 0; r < 3; r++) {
        dsk_pool_run (pool, 64, 1e9, count_item, c);
        for (int i = 0; i < 64; i++)
          g_assert_cmpint (atomic_load (&c->count[i]), ==, r + 1);
      }
      g_assert_cmpint (atomic_load (&c->on_workers), >, 0);
      dsk_pool_free (pool);
    }
  dsk_pool_set_parallel_min (-1.0);
  g_free (c);
}

/* A pool of 0 or a negative number of threads is a pool of one (the caller). */
static void
test_one_thread_minimum (void)
{
  for (int n = -2; n <= 1; n++) {
    dsk_pool *pool = dsk_pool_new (n);
    count_ctx *c = g_new0 (count_ctx, 1);
    g_assert_nonnull (pool);
    g_assert_cmpint (dsk_pool_n_threads (pool), ==, 1);
    c->n_threads = 1;
    dsk_pool_set_parallel_min (0.0);
    dsk_pool_run (pool, 10, 1e9, count_item, c);
    for (int i = 0; i < 10; i++)
      g_assert_cmpint (atomic_load (&c->count[i]), ==, 1);
    g_assert_cmpint (atomic_load (&c->on_workers), ==, 0);
    g_free (c);
    dsk_pool_free (pool);
  }
  dsk_pool_set_parallel_min (-1.0);
}

/* ---- scratch ---- */

#define SCRATCH_N 4099

typedef struct {
  dsk_pool *pool;
  float *ptr[4];        /* each thread's scratch as reserved before the run */
  atomic_int bad;
} scratch_ctx;

/* Checks that this thread's scratch is the reserved one and holds its pattern, writes a mark
 * of the item all over it, waits a little (other items run meanwhile) and checks the mark:
 * a scratch shared with another thread would be overwritten. Leaves the pattern back. */
static void
scratch_item (void *data, int item, int thread)
{
  scratch_ctx *c = data;
  float *s = dsk_pool_scratch (c->pool, thread, SCRATCH_N);
  float *s0 = dsk_pool_scratch (c->pool, thread, 0);
  const float pattern = (float) (thread + 1), mark = (float) (1000 + item);
  volatile int sink = 0;

  if (s != c->ptr[thread] || s0 != s) {
    atomic_fetch_add (&c->bad, 1);
    return;
  }
  for (size_t i = 0; i < SCRATCH_N; i++)
    if (s[i] != pattern) {
      atomic_fetch_add (&c->bad, 1);
      return;
    }
  for (size_t i = 0; i < SCRATCH_N; i++)
    s[i] = mark;
  for (int i = 0; i < 20000; i++)
    sink += i;
  for (size_t i = 0; i < SCRATCH_N; i++) {
    if (s[i] != mark)
      atomic_fetch_add (&c->bad, 1);
    s[i] = pattern;
  }
}

/* Scratch is per thread and kept: dsk_pool_reserve_scratch gives every thread its own
 * 64-byte aligned buffer, items see their thread's buffer (the same as before the run, with
 * what was left in it) and no other thread writes there; smaller requests keep the buffer,
 * larger ones grow it, and a request that cannot be had gives NULL and keeps the old one. */
static void
test_scratch (void)
{
  for (int nt = 1; nt <= 4; nt++) {
    scratch_ctx c = { .pool = dsk_pool_new (nt) };
    g_assert_nonnull (c.pool);
    g_assert_true (dsk_pool_reserve_scratch (c.pool, SCRATCH_N));
    for (int t = 0; t < nt; t++) {
      c.ptr[t] = dsk_pool_scratch (c.pool, t, SCRATCH_N);
      g_assert_nonnull (c.ptr[t]);
      g_assert_cmpuint ((uintptr_t) c.ptr[t] % 64, ==, 0);
      for (int u = 0; u < t; u++)
        g_assert_true (c.ptr[u] != c.ptr[t]);
      for (size_t i = 0; i < SCRATCH_N; i++)
        c.ptr[t][i] = (float) (t + 1);
    }
    dsk_pool_set_parallel_min (0.0);
    for (int run = 0; run < 20; run++)
      dsk_pool_run (c.pool, 97, 1e9, scratch_item, &c);
    g_assert_cmpint (atomic_load (&c.bad), ==, 0);
    for (int t = 0; t < nt; t++) {
      /* kept between runs, and by a smaller request or a second reservation */
      g_assert_true (dsk_pool_scratch (c.pool, t, 10) == c.ptr[t]);
      g_assert_true (dsk_pool_reserve_scratch (c.pool, SCRATCH_N));
      g_assert_true (dsk_pool_scratch (c.pool, t, SCRATCH_N) == c.ptr[t]);
      for (size_t i = 0; i < SCRATCH_N; i++)
        g_assert_cmpfloat (c.ptr[t][i], ==, (float) (t + 1));
      /* a request that cannot be had: NULL, the old buffer kept */
      g_assert_null (dsk_pool_scratch (c.pool, t, SIZE_MAX));
      g_assert_true (dsk_pool_scratch (c.pool, t, SCRATCH_N) == c.ptr[t]);
    }
    g_assert_false (dsk_pool_reserve_scratch (c.pool, SIZE_MAX));
    /* growing: every float of the larger buffer is usable (ASan checks the writes) */
    g_assert_true (dsk_pool_reserve_scratch (c.pool, 4 * SCRATCH_N));
    for (int t = 0; t < nt; t++) {
      float *s = dsk_pool_scratch (c.pool, t, 0);
      g_assert_cmpuint ((uintptr_t) s % 64, ==, 0);
      for (size_t i = 0; i < 4 * SCRATCH_N; i++)
        s[i] = (float) i;
    }
    dsk_pool_free (c.pool);
  }
  dsk_pool_set_parallel_min (-1.0);
}

/* ---- freeing ---- */

/* Threads of this process, from /proc/self/task (-1 where there is no /proc). */
static int
count_threads (void)
{
  DIR *d = opendir ("/proc/self/task");
  struct dirent *e;
  int n = 0;

  if (!d)
    return -1;
  while ((e = readdir (d)))
    if (e->d_name[0] != '.')
      n++;
  closedir (d);
  return n;
}

/* The thread count once it is @want, polled for up to a second: a joined thread has finished,
 * but its /proc entry can lag behind by a moment. */
static int
wait_threads (int want)
{
  int n = count_threads ();
  for (int i = 0; i < 100 && n != want; i++) {
    g_usleep (10000);
    n = count_threads ();
  }
  return n;
}

/* Freeing a pool joins its workers: after many pools created, used (or not) and freed, the
 * process has the threads it started with (and ASan's leak check finds nothing). */
static void
test_free_joins (void)
{
  const int before = count_threads ();
  count_ctx *c = g_new0 (count_ctx, 1);

  dsk_pool_set_parallel_min (0.0);
  for (int i = 0; i < 40; i++) {
    const int nt = 1 + i % 4;
    dsk_pool *pool = dsk_pool_new (nt);
    g_assert_nonnull (pool);
    if (before >= 0)
      g_assert_cmpint (wait_threads (before + nt - 1), ==, before + nt - 1);
    if (i % 2) {
      memset (c, 0, sizeof *c);
      c->n_threads = nt;
      dsk_pool_run (pool, 50, 1e9, count_item, c);
      g_assert_true (dsk_pool_reserve_scratch (pool, 100));
    }
    dsk_pool_free (pool);
  }
  dsk_pool_free (NULL);
  dsk_pool_set_parallel_min (-1.0);
  g_free (c);
  if (before < 0) {
    g_test_skip ("no /proc/self/task to count threads");
    return;
  }
  g_assert_cmpint (wait_threads (before), ==, before);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/pool/each-item-once", test_each_item_once);
  g_test_add_func ("/kernels/pool/workers-take-items", test_workers_take_items);
  g_test_add_func ("/kernels/pool/one-thread-minimum", test_one_thread_minimum);
  g_test_add_func ("/kernels/pool/scratch", test_scratch);
  g_test_add_func ("/kernels/pool/free-joins", test_free_joins);
  return g_test_run ();
}
