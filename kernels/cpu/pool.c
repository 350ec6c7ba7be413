/* pool.c: the CPU backend's thread pool (pool.h).
 *
 * A run is announced by bumping the generation under the lock; the item counter carries the
 * generation in its high half, so a worker that wakes late can never take an item of a later
 * run. Threads spin briefly before sleeping (back-to-back runs are common: a decode step is
 * dozens of them) and then wait on a condition variable. The caller takes items too, then
 * waits until every item is done (not until every worker has looked). */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SPIN_ROUNDS 4000   /* ~20-50 us of polling before a thread sleeps */

static double parallel_min_flops = 2e6;

void
dsk_pool_set_parallel_min (double flops)
{
  parallel_min_flops = flops >= 0.0 ? flops : 2e6;
}

typedef struct {
  float *data;
  size_t cap;
} scratch;

struct dsk_pool {
  int n_threads;
  pthread_t *workers;           /* [n_threads - 1] */
  scratch *scratch;             /* [n_threads] */
  pthread_mutex_t lock;
  pthread_cond_t wake;          /* a new run or quit */
  pthread_cond_t done;          /* the last item of a run finished */
  atomic_uint gen;              /* run generation */
  int quit;
  /* the current run (written under the lock before gen is bumped) */
  dsk_pool_fn fn;
  void *ctx;
  int n_items;
  _Atomic uint64_t next;        /* gen << 32 | next item */
  atomic_int n_done;            /* items finished in the current run */
};

typedef struct {
  dsk_pool *pool;
  int index;
} worker_arg;

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

/* Takes and runs items of run @gen until none is left. */
static void
take_items (dsk_pool *p, unsigned gen, dsk_pool_fn fn, void *ctx, int n_items, int thread)
{
  for (;;) {
    uint64_t cur = atomic_load (&p->next);
    int item;

    if ((unsigned) (cur >> 32) != gen || (int) (uint32_t) cur >= n_items)
      return;
    if (!atomic_compare_exchange_weak (&p->next, &cur, cur + 1))
      continue;
    item = (int) (uint32_t) cur;
    fn (ctx, item, thread);
    if (atomic_fetch_add (&p->n_done, 1) + 1 == n_items) {
      pthread_mutex_lock (&p->lock);
      pthread_cond_signal (&p->done);
      pthread_mutex_unlock (&p->lock);
    }
  }
}

static void *
worker_main (void *data)
{
  worker_arg *arg = data;
  dsk_pool *p = arg->pool;
  const int index = arg->index;
  /* no run can have been announced before dsk_pool_new() returned: reading gen here instead
   * would let a worker that starts late sit out the first run */
  unsigned seen = 0;

  free (arg);
  for (;;) {
    dsk_pool_fn fn;
    void *ctx;
    int n_items;
    unsigned gen;

    for (int i = 0; i < SPIN_ROUNDS && atomic_load (&p->gen) == seen; i++)
      cpu_relax ();
    pthread_mutex_lock (&p->lock);
    while (atomic_load (&p->gen) == seen && !p->quit)
      pthread_cond_wait (&p->wake, &p->lock);
    if (p->quit) {
      pthread_mutex_unlock (&p->lock);
      return NULL;
    }
    gen = seen = atomic_load (&p->gen);
    fn = p->fn;
    ctx = p->ctx;
    n_items = p->n_items;
    pthread_mutex_unlock (&p->lock);
    take_items (p, gen, fn, ctx, n_items, index);
  }
}

dsk_pool *
dsk_pool_new (int n_threads)
{
  dsk_pool *p = calloc (1, sizeof *p);
  if (!p)
    return NULL;
  p->n_threads = n_threads > 1 ? n_threads : 1;
  p->workers = calloc ((size_t) p->n_threads, sizeof *p->workers);
  p->scratch = calloc ((size_t) p->n_threads, sizeof *p->scratch);
  if (!p->workers || !p->scratch) {
    free (p->workers);
    free (p->scratch);
    free (p);
    return NULL;
  }
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->wake, NULL);
  pthread_cond_init (&p->done, NULL);
  atomic_init (&p->gen, 0);
  atomic_init (&p->next, 0);
  atomic_init (&p->n_done, 0);
  for (int i = 1; i < p->n_threads; i++) {
    worker_arg *arg = malloc (sizeof *arg);
    if (arg) {
      arg->pool = p;
      arg->index = i;
    }
    if (!arg || pthread_create (&p->workers[i - 1], NULL, worker_main, arg) != 0) {
      /* fewer threads than asked: the pool still works with those it has */
      free (arg);
      p->n_threads = i;
      break;
    }
  }
  return p;
}

void
dsk_pool_free (dsk_pool *p)
{
  if (!p)
    return;
  pthread_mutex_lock (&p->lock);
  p->quit = 1;
  pthread_cond_broadcast (&p->wake);
  pthread_mutex_unlock (&p->lock);
  for (int i = 0; i + 1 < p->n_threads; i++)
    pthread_join (p->workers[i], NULL);
  for (int i = 0; i < p->n_threads; i++)
    free (p->scratch[i].data);
  free (p->scratch);
  free (p->workers);
  pthread_cond_destroy (&p->wake);
  pthread_cond_destroy (&p->done);
  pthread_mutex_destroy (&p->lock);
  free (p);
}

int
dsk_pool_n_threads (const dsk_pool *pool)
{
  return pool->n_threads;
}

float *
dsk_pool_scratch (dsk_pool *p, int thread, size_t n_floats)
{
  scratch *s = &p->scratch[thread];
  if (s->cap < n_floats) {
    void *mem = NULL;
    if (n_floats > (SIZE_MAX - 63) / sizeof (float) ||
        posix_memalign (&mem, 64, n_floats * sizeof (float)) != 0)
      return NULL;
    free (s->data);
    s->data = mem;
    s->cap = n_floats;
  }
  return s->data;
}

int
dsk_pool_reserve_scratch (dsk_pool *p, size_t n_floats)
{
  for (int i = 0; i < p->n_threads; i++)
    if (!dsk_pool_scratch (p, i, n_floats))
      return 0;
  return 1;
}

void
dsk_pool_run (dsk_pool *p, int n_items, double flops, dsk_pool_fn fn, void *ctx)
{
  unsigned gen;

  if (n_items <= 0)
    return;
  if (p->n_threads == 1 || n_items == 1 || flops < parallel_min_flops) {
    for (int i = 0; i < n_items; i++)
      fn (ctx, i, 0);
    return;
  }
  pthread_mutex_lock (&p->lock);
  p->fn = fn;
  p->ctx = ctx;
  p->n_items = n_items;
  atomic_store (&p->n_done, 0);
  gen = atomic_load (&p->gen) + 1;
  atomic_store (&p->next, (uint64_t) gen << 32);
  atomic_store (&p->gen, gen);
  pthread_cond_broadcast (&p->wake);
  pthread_mutex_unlock (&p->lock);

  take_items (p, gen, fn, ctx, n_items, 0);

  for (int i = 0; i < SPIN_ROUNDS && atomic_load (&p->n_done) < n_items; i++)
    cpu_relax ();
  pthread_mutex_lock (&p->lock);
  while (atomic_load (&p->n_done) < n_items)
    pthread_cond_wait (&p->done, &p->lock);
  pthread_mutex_unlock (&p->lock);
}
