/* decoder-cpu.c: thread pool and weight-dtype matrix products of the decoder (decoder-cpu.h). */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "decoder-cpu.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dsocr/dsocr-error.h"

/* ==== thread pool ====
 *
 * A run is announced by bumping the generation under the lock; the item counter carries the
 * generation in its high half, so a worker that wakes late can never take an item of a later
 * run. Threads spin briefly before sleeping (back-to-back runs are common: a decode step is
 * dozens of them) and then wait on a condition variable. The caller takes items too, then
 * waits until every item is done (not until every worker has looked). */

#define SPIN_ROUNDS 4000   /* ~20-50 us of polling before a thread sleeps */

/* Below this cost a run stays on the caller: waking threads would cost more. */
static double parallel_min_flops = 2e6;

void
dsocr_pool_set_parallel_min (double flops)
{
  parallel_min_flops = flops >= 0.0 ? flops : 2e6;
}

struct dsocr_pool {
  int n_threads;
  pthread_t *workers;           /* [n_threads - 1] */
  /* plain pthreads (not GMutex, whose futex code thread sanitizers cannot see) */
  pthread_mutex_t lock;
  pthread_cond_t wake;          /* a new run or quit */
  pthread_cond_t done;          /* the last item of a run finished */
  atomic_uint gen;              /* run generation */
  gboolean quit;
  /* the current run (written under the lock before gen is bumped) */
  dsocr_pool_fn fn;
  void *ctx;
  int n_items;
  _Atomic uint64_t next;        /* gen << 32 | next item */
  atomic_int n_done;            /* items finished in the current run */
};

typedef struct {
  dsocr_pool *pool;
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
take_items (dsocr_pool *p, unsigned gen, dsocr_pool_fn fn, void *ctx, int n_items, int thread)
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
  dsocr_pool *p = arg->pool;
  const int index = arg->index;
  unsigned seen = atomic_load (&p->gen);

  g_free (arg);
#ifdef _OPENMP
  omp_set_num_threads (1);   /* dsk's ops called from an item stay on this thread */
#endif
  for (;;) {
    dsocr_pool_fn fn;
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

dsocr_pool *
dsocr_pool_new (int n_threads)
{
  dsocr_pool *p = g_new0 (dsocr_pool, 1);

  p->n_threads = MAX (n_threads, 1);
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->wake, NULL);
  pthread_cond_init (&p->done, NULL);
  atomic_init (&p->gen, 0);
  atomic_init (&p->next, 0);
  atomic_init (&p->n_done, 0);
  p->workers = g_new0 (pthread_t, p->n_threads);
  for (int i = 1; i < p->n_threads; i++) {
    worker_arg *arg = g_new (worker_arg, 1);

    arg->pool = p;
    arg->index = i;
    if (pthread_create (&p->workers[i - 1], NULL, worker_main, arg) != 0) {
      /* fewer threads than asked: the pool still works with those it has */
      g_free (arg);
      p->n_threads = i;
      break;
    }
  }
  return p;
}

void
dsocr_pool_free (dsocr_pool *p)
{
  if (!p)
    return;
  pthread_mutex_lock (&p->lock);
  p->quit = TRUE;
  pthread_cond_broadcast (&p->wake);
  pthread_mutex_unlock (&p->lock);
  for (int i = 0; i + 1 < p->n_threads; i++)
    pthread_join (p->workers[i], NULL);
  g_free (p->workers);
  pthread_cond_destroy (&p->wake);
  pthread_cond_destroy (&p->done);
  pthread_mutex_destroy (&p->lock);
  g_free (p);
}

int
dsocr_pool_n_threads (const dsocr_pool *pool)
{
  return pool->n_threads;
}

void
dsocr_pool_run (dsocr_pool *p, int n_items, double flops, dsocr_pool_fn fn, void *ctx)
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

/* ==== kernels ====
 *
 * tile: out[t][r] = x_t · w_r for 1 or 4 token rows and 4 weight rows, the weights widened in
 * registers; sums lanes at the end. Used for few tokens (decode reads each weight once and is
 * bound by memory) and as the only kernel without AVX-512.
 * packed (AVX-512): 8 f32 weight rows x 16 or 32 tokens of a packed x ([k][token]); each
 * weight is broadcast against 16 tokens, so the accumulators hold finished outputs. */

#define TILE 4
#define ROW_BLOCK 16   /* weight rows per work item (a multiple of 8) */

typedef struct {
  const float *x[TILE];
  const void *w[TILE];
} tile_args;

typedef void (*tile_fn) (const tile_args *a, int nt, size_t in, float out[TILE][TILE]);
typedef void (*widen_fn) (float *dst, const void *src, size_t n);
typedef void (*packed_fn) (const float *w, size_t in, const float *xp, size_t ldx, int nv,
                           float out[8][32]);

typedef struct {
  tile_fn tile[DSK_N_DTYPES];   /* F32, BF16 and F16 set */
  widen_fn widen[DSK_N_DTYPES]; /* BF16 and F16 set */
  packed_fn packed;             /* NULL without AVX-512 */
} kernels;

static inline float
weight_at (const void *w, dsk_dtype dt, size_t i)
{
  if (dt == DSK_BF16)
    return dsk_bf16_to_f32 (((const uint16_t *) w)[i]);
  if (dt == DSK_F16)
    return dsk_f16_to_f32 (((const uint16_t *) w)[i]);
  return ((const float *) w)[i];
}

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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_KERNELS 1
#include <immintrin.h>

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
      for (; k + VW <= in; k += VW) {                                                        \
        VF xv;                                                                               \
        memcpy (&xv, a->x[0] + k, sizeof xv);                                                \
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
packed_avx512_body (const float *w, size_t in, const float *xp, size_t ldx, int nv,
                    float out[8][32])
{
  __m512 acc[8][2];

  for (int r = 0; r < 8; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
  for (size_t k = 0; k < in; k++) {
    const __m512 x0 = _mm512_loadu_ps (xp + k * ldx);
    const __m512 x1 = nv == 2 ? _mm512_loadu_ps (xp + k * ldx + 16) : x0;
    for (int r = 0; r < 8; r++) {
      const __m512 wv = _mm512_set1_ps (w[r * in + k]);
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
packed_avx512 (const float *w, size_t in, const float *xp, size_t ldx, int nv, float out[8][32])
{
  if (nv == 2)
    packed_avx512_body (w, in, xp, ldx, 2, out);
  else
    packed_avx512_body (w, in, xp, ldx, 1, out);
}

static const kernels kernels_avx512 = {
  .tile = { [DSK_F32] = tile_avx512_f32, [DSK_BF16] = tile_avx512_bf16,
            [DSK_F16] = tile_avx512_f16 },
  .widen = { [DSK_BF16] = tile_avx512_widen_bf16, [DSK_F16] = tile_avx512_widen_f16 },
  .packed = packed_avx512,
};

static const kernels kernels_avx2 = {
  .tile = { [DSK_F32] = tile_avx2_f32, [DSK_BF16] = tile_avx2_bf16, [DSK_F16] = tile_avx2_f16 },
  .widen = { [DSK_BF16] = tile_avx2_widen_bf16, [DSK_F16] = tile_avx2_widen_f16 },
};
#endif

static dsocr_mm_kernels forced = DSOCR_MM_KERNELS_AUTO;
static int pack_min = 16;

void
dsocr_mm_force_kernels (dsocr_mm_kernels which)
{
  forced = which;
}

void
dsocr_mm_set_pack_min (int n)
{
  pack_min = n > 0 ? n : 16;
}

#if defined(__x86_64__) || defined(__i386__)
/* clang 14's __builtin_cpu_supports does not know "f16c": ask cpuid (leaf 1, ECX bit 29). */
static int
cpu_has_f16c (void)
{
  unsigned a, b, c, d;
  return __get_cpuid (1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif


static const kernels *
pick_kernels (void)
{
  if (forced == DSOCR_MM_KERNELS_GENERIC)
    return &kernels_generic;
#ifdef HAVE_X86_KERNELS
  __builtin_cpu_init ();
  if (forced == DSOCR_MM_KERNELS_AUTO && __builtin_cpu_supports ("avx512f") &&
      __builtin_cpu_supports ("fma"))
    return &kernels_avx512;
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma") &&
      cpu_has_f16c ())
    return &kernels_avx2;
#endif
  return &kernels_generic;
}

/* ==== products ==== */

/* A growable float buffer. */
typedef struct {
  float *data;
  gsize cap;
} buffer;

static gboolean
ensure (buffer *b, gsize n, GError **error)
{
  float *p;

  if (n <= b->cap)
    return TRUE;
  p = g_try_realloc (b->data, sizeof (float) * n);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "decoder: cannot allocate %" G_GSIZE_FORMAT " floats of scratch", n);
    return FALSE;
  }
  b->data = p;
  b->cap = n;
  return TRUE;
}

/* Per-job state of dsocr_mm_experts. */
typedef struct {
  int npad;          /* packed: tokens rounded up to 16; 0: tiles */
  float *xp;         /* packed: [H][npad] inputs */
  float *hp;         /* packed: [inter][npad] hidden; tiles: [n][inter] hidden */
  size_t x_off;      /* first entry of the job's input rows in mm->xr */
} job_state;

struct dsocr_mm {
  dsocr_pool *pool;
  const kernels *k;
  buffer *scratch;         /* [n_threads] per-thread: item results, widened weight rows */
  buffer xpack;            /* packed x of a linear / packed job inputs */
  buffer hpack;            /* job hidden activations */
  const float **xr;        /* [xr_cap] input row pointers */
  gsize xr_cap;
  int32_t *items;          /* [2 * items_cap] (job, first row) */
  gsize items_cap;
  job_state *js;           /* [js_cap] */
  gsize js_cap;
};

dsocr_mm *
dsocr_mm_new (dsocr_pool *pool)
{
  dsocr_mm *mm = g_new0 (dsocr_mm, 1);
  mm->pool = pool;
  mm->k = pick_kernels ();
  mm->scratch = g_new0 (buffer, dsocr_pool_n_threads (pool));
  return mm;
}

void
dsocr_mm_free (dsocr_mm *mm)
{
  if (!mm)
    return;
  for (int i = 0; i < dsocr_pool_n_threads (mm->pool); i++)
    g_free (mm->scratch[i].data);
  g_free (mm->scratch);
  g_free (mm->xpack.data);
  g_free (mm->hpack.data);
  g_free (mm->xr);
  g_free (mm->items);
  g_free (mm->js);
  g_free (mm);
}

/* Every thread's scratch holds at least @n floats. */
static gboolean
ensure_scratch (dsocr_mm *mm, gsize n, GError **error)
{
  for (int i = 0; i < dsocr_pool_n_threads (mm->pool); i++)
    if (!ensure (&mm->scratch[i], n, error))
      return FALSE;
  return TRUE;
}

static gboolean
ensure_xr (dsocr_mm *mm, gsize n, GError **error)
{
  const float **p;

  if (n <= mm->xr_cap)
    return TRUE;
  p = g_try_realloc (mm->xr, sizeof (*p) * n);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "decoder: cannot allocate row pointers");
    return FALSE;
  }
  mm->xr = p;
  mm->xr_cap = n;
  return TRUE;
}

static gboolean
ensure_items (dsocr_mm *mm, gsize n, GError **error)
{
  int32_t *p;

  if (n <= mm->items_cap)
    return TRUE;
  p = g_try_realloc (mm->items, sizeof (int32_t) * 2 * n);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "decoder: cannot allocate work items");
    return FALSE;
  }
  mm->items = p;
  mm->items_cap = n;
  return TRUE;
}

/* Adds the bias of rows [r0, r0 + nr) to y rows [0, n). */
static void
add_bias (const dsocr_mat *w, int r0, int nr, float *y, size_t ldy, size_t n)
{
  if (!w->bias)
    return;
  for (size_t i = 0; i < n; i++)
    for (int r = 0; r < nr; r++)
      y[i * ldy + r] += weight_at (w->bias, w->bias_dtype, (size_t) (r0 + r));
}

/* y[i][0 .. nr) = x_rows[i] · W[r0 .. r0 + nr)^T, tiles. With at least a tile of tokens the
 * rows are widened into @wbuf [ROW_BLOCK, cols] first and reused from cache by every token. */
static void
rows_tiles (const kernels *k, const float *const *x_rows, int n, const dsocr_mat *w, int r0,
            int nr, float *y, size_t ldy, float *wbuf)
{
  const size_t in = (size_t) w->cols;
  dsk_dtype dtype = w->dtype;
  size_t es = dsk_dtype_size (dtype), ld = w->ld;
  const char *base = (const char *) w->data + (size_t) r0 * ld * es;
  float out[TILE][TILE];
  tile_fn tile;

  if (n >= TILE && dtype != DSK_F32) {
    for (int r = 0; r < nr; r++)
      k->widen[dtype] (wbuf + (size_t) r * in, base + (size_t) r * ld * es, in);
    base = (const char *) wbuf;
    dtype = DSK_F32;
    es = sizeof (float);
    ld = in;
  }
  tile = k->tile[dtype];
  for (int rb = 0; rb < nr; rb += TILE) {
    tile_args a;
    const int wr = MIN (TILE, nr - rb);
    for (int r = 0; r < TILE; r++)   // short blocks repeat a row; its results are dropped
      a.w[r] = base + (size_t) (rb + (r < wr ? r : 0)) * ld * es;
    for (int i0 = 0; i0 < n; i0 += TILE) {
      const int nt = MIN (TILE, n - i0);
      for (int t = 0; t < TILE; t++)
        a.x[t] = x_rows[i0 + (t < nt ? t : 0)];
      tile (&a, nt == 1 ? 1 : TILE, in, out);
      for (int t = 0; t < nt; t++)
        for (int r = 0; r < wr; r++)
          y[(size_t) (i0 + t) * ldy + rb + r] = out[t][r];
    }
  }
}

/* dst[r * ld_r + t * ld_t] = W[r0 + r] · x_t for r < nr, t < n, with x packed as xp[k][t]
 * ([cols][npad]). The rows are widened into @wbuf [ROW_BLOCK, cols] (zero rows up to a
 * multiple of 8). */
static void
rows_packed (const kernels *k, const float *xp, int npad, int n, const dsocr_mat *w, int r0,
             int nr, float *dst, size_t ld_r, size_t ld_t, float *wbuf)
{
  const size_t in = (size_t) w->cols, es = dsk_dtype_size (w->dtype);
  const char *base = (const char *) w->data + (size_t) r0 * w->ld * es;
  const int nr8 = (nr + 7) / 8 * 8;
  float out[8][32];

  for (int r = 0; r < nr; r++) {
    const char *row = base + (size_t) r * w->ld * es;
    if (w->dtype == DSK_F32)
      memcpy (wbuf + (size_t) r * in, row, sizeof (float) * in);
    else
      k->widen[w->dtype] (wbuf + (size_t) r * in, row, in);
  }
  memset (wbuf + (size_t) nr * in, 0, sizeof (float) * (size_t) (nr8 - nr) * in);
  for (int rg = 0; rg < nr; rg += 8) {
    const int wr = MIN (8, nr - rg);
    for (int tg = 0; tg < npad; tg += 32) {
      const int nv = npad - tg >= 32 ? 2 : 1, nt = MIN (16 * nv, n - tg);
      k->packed (wbuf + (size_t) rg * in, in, xp + tg, (size_t) npad, nv, out);
      for (int r = 0; r < wr; r++)
        for (int t = 0; t < nt; t++)
          dst[(size_t) (rg + r) * ld_r + (size_t) (tg + t) * ld_t] = out[r][t];
    }
  }
}

/* xp[k][t] = x_rows[t][k] for k in [k0, k0 + kn), zero for t in [n, npad). */
static void
pack_columns (float *xp, int npad, const float *const *x_rows, int n, size_t k0, size_t kn)
{
  for (size_t kk = k0; kk < k0 + kn; kk++) {
    float *d = xp + kk * (size_t) npad;
    for (int t = 0; t < n; t++)
      d[t] = x_rows[t][kk];
    for (int t = n; t < npad; t++)
      d[t] = 0.0f;
  }
}

#define PACK_CHUNK 64   /* values of k packed per item */

/* ---- linear ---- */

typedef struct {
  dsocr_mm *mm;
  const dsocr_mat *w;
  float *y;
  size_t ldy, n;
  int npad;
} linear_run;

static void
linear_pack_item (void *ctx, int item, int thread)
{
  linear_run *c = ctx;
  const size_t k0 = (size_t) item * PACK_CHUNK;
  pack_columns (c->mm->xpack.data, c->npad, c->mm->xr, (int) c->n, k0,
                MIN ((size_t) PACK_CHUNK, (size_t) c->w->cols - k0));
}

static void
linear_item (void *ctx, int item, int thread)
{
  linear_run *c = ctx;
  const int r0 = item * ROW_BLOCK, nr = MIN (ROW_BLOCK, c->w->rows - r0);
  float *wbuf = c->mm->scratch[thread].data;

  if (c->npad)
    rows_packed (c->mm->k, c->mm->xpack.data, c->npad, (int) c->n, c->w, r0, nr, c->y + r0, 1,
                 c->ldy, wbuf);
  else
    rows_tiles (c->mm->k, c->mm->xr, (int) c->n, c->w, r0, nr, c->y + r0, c->ldy, wbuf);
  add_bias (c->w, r0, nr, c->y + r0, c->ldy, c->n);
}

gboolean
dsocr_mm_linear (dsocr_mm *mm, float *y, size_t ldy, const float *x, size_t ldx, size_t n,
                 const dsocr_mat *w, GError **error)
{
  const size_t in = (size_t) w->cols;
  const double flops = 2.0 * (double) n * (double) in * (double) w->rows;
  linear_run c = { mm, w, y, ldy, n, 0 };

  if (n == 0)
    return TRUE;
  if (mm->k->packed && (int) n >= pack_min)
    c.npad = (int) ((n + 15) / 16 * 16);
  if (!ensure_xr (mm, n, error) || !ensure_scratch (mm, (gsize) ROW_BLOCK * in, error) ||
      (c.npad && !ensure (&mm->xpack, in * (size_t) c.npad, error)))
    return FALSE;
  for (size_t i = 0; i < n; i++)
    mm->xr[i] = x + i * ldx;
  if (c.npad)
    dsocr_pool_run (mm->pool, (int) ((in + PACK_CHUNK - 1) / PACK_CHUNK), flops,
                    linear_pack_item, &c);
  dsocr_pool_run (mm->pool, (w->rows + ROW_BLOCK - 1) / ROW_BLOCK, flops, linear_item, &c);
  return TRUE;
}

/* ---- experts ---- */

typedef struct {
  dsocr_mm *mm;
  const dsocr_expert_job *jobs;
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
  if (st->npad)
    pack_columns (st->xp, st->npad, c->mm->xr + st->x_off, c->jobs[item].n, 0, c->H);
}

/* silu(gate) * up for rows [r0, r0 + nr) of a job's hidden layer. */
static void
experts_gate_up_item (void *ctx, int item, int thread)
{
  experts_run *c = ctx;
  const int jn = c->items_a[2 * item], r0 = c->items_a[2 * item + 1];
  const dsocr_expert_job *j = &c->jobs[jn];
  const job_state *st = &c->mm->js[jn];
  const int inter = j->gate.rows, nr = MIN (ROW_BLOCK, inter - r0);
  float *scr = c->mm->scratch[thread].data;

  if (st->npad) {
    /* gate and up as [nr][npad], then silu(g) * u straight into the packed hidden rows */
    float *g = scr, *u = scr + (size_t) ROW_BLOCK * st->npad;
    float *wbuf = u + (size_t) ROW_BLOCK * st->npad;
    float *hp = st->hp + (size_t) r0 * st->npad;
    rows_packed (c->mm->k, st->xp, st->npad, st->npad, &j->gate, r0, nr, g, (size_t) st->npad, 1,
                 wbuf);
    rows_packed (c->mm->k, st->xp, st->npad, st->npad, &j->up, r0, nr, u, (size_t) st->npad, 1,
                 wbuf);
    for (size_t i = 0; i < (size_t) nr * st->npad; i++)
      hp[i] = g[i] / (1.0f + expf (-g[i])) * u[i];
  } else {
    float *g = scr, *u = scr + (size_t) j->n * ROW_BLOCK, *wbuf = u + (size_t) j->n * ROW_BLOCK;
    const float *const *x_rows = c->mm->xr + st->x_off;
    rows_tiles (c->mm->k, x_rows, j->n, &j->gate, r0, nr, g, ROW_BLOCK, wbuf);
    rows_tiles (c->mm->k, x_rows, j->n, &j->up, r0, nr, u, ROW_BLOCK, wbuf);
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
  const dsocr_expert_job *j = &c->jobs[jn];
  const job_state *st = &c->mm->js[jn];
  const int nr = MIN (ROW_BLOCK, (int) c->H - r0);
  float *wbuf = c->mm->scratch[thread].data, *dst = c->out + j->slot0 * c->H + r0;

  if (st->npad) {
    rows_packed (c->mm->k, st->hp, st->npad, j->n, &j->down, r0, nr, dst, 1, c->H, wbuf);
  } else {
    const float *const *h_rows = c->mm->xr + st->x_off + j->n;
    rows_tiles (c->mm->k, h_rows, j->n, &j->down, r0, nr, dst, c->H, wbuf);
  }
}

gboolean
dsocr_mm_experts (dsocr_mm *mm, const dsocr_expert_job *jobs, int n_jobs, const float *x,
                  size_t H, float *out, GError **error)
{
  experts_run c = { mm, jobs, n_jobs, H, out, NULL, NULL };
  size_t xp_total = 0, hp_total = 0, n_rows = 0, max_n = 0, max_in = H, n_a = 0, n_b = 0;
  double flops = 0.0;

  if (n_jobs <= 0)
    return TRUE;
  if ((gsize) n_jobs > mm->js_cap) {
    mm->js_cap = (gsize) n_jobs;
    mm->js = g_renew (job_state, mm->js, mm->js_cap);
  }
  for (int j = 0; j < n_jobs; j++) {
    job_state *st = &mm->js[j];
    const size_t inter = (size_t) jobs[j].gate.rows;
    st->npad = mm->k->packed && jobs[j].n >= pack_min ? (jobs[j].n + 15) / 16 * 16 : 0;
    xp_total += (size_t) st->npad * H;
    hp_total += (size_t) (st->npad ? st->npad : jobs[j].n) * inter;
    st->x_off = n_rows;
    n_rows += 2 * (size_t) jobs[j].n;
    max_n = MAX (max_n, (size_t) MAX (jobs[j].n, st->npad));
    max_in = MAX (max_in, inter);
    n_a += (inter + ROW_BLOCK - 1) / ROW_BLOCK;
    n_b += (H + ROW_BLOCK - 1) / ROW_BLOCK;
    flops += 6.0 * jobs[j].n * (double) inter * (double) H;
  }
  /* per thread: an item's gate and up results, then one widened weight block */
  if (!ensure_scratch (mm, (2 * max_n + max_in) * ROW_BLOCK, error) ||
      !ensure (&mm->xpack, MAX (xp_total, 1), error) ||
      !ensure (&mm->hpack, MAX (hp_total, 1), error) || !ensure_xr (mm, n_rows, error) ||
      !ensure_items (mm, n_a + n_b, error))
    return FALSE;

  xp_total = hp_total = 0;
  n_a = n_b = 0;
  for (int j = 0; j < n_jobs; j++) {
    job_state *st = &mm->js[j];
    const int inter = jobs[j].gate.rows;
    st->xp = mm->xpack.data + xp_total;
    st->hp = mm->hpack.data + hp_total;
    xp_total += (size_t) st->npad * H;
    hp_total += (size_t) (st->npad ? st->npad : jobs[j].n) * inter;
    /* input rows, then (tile jobs) hidden rows */
    for (int i = 0; i < jobs[j].n; i++) {
      mm->xr[st->x_off + i] = x + (size_t) (jobs[j].rows ? jobs[j].rows[i] : i) * H;
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

  if (xp_total)
    dsocr_pool_run (mm->pool, n_jobs, flops, experts_pack_item, &c);
  dsocr_pool_run (mm->pool, (int) n_a, flops, experts_gate_up_item, &c);
  dsocr_pool_run (mm->pool, (int) n_b, flops, experts_down_item, &c);
  return TRUE;
}
