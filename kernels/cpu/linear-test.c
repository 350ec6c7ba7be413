/* linear-test.c: the CPU backend's products (linear.h) against double-precision math:
 * dsk_mm_linear on every path (plain C tiles, AVX2 tiles, AVX-512 tiles and the packed AVX-512
 * kernel, OpenBLAS) for F32, BF16 and F16 weights, with and without bias, accumulating or not,
 * strided rows and odd sizes; dsk_mm_experts against a per-expert SwiGLU reference;
 * dsk_mm_xw; and the same bits whatever the pool's thread count. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsocr-build-config.h"
#include "dsk.h"
#include "dsk-cpu.h"
#include "linear.h"
#include "pool.h"

#if DSOCR_HAVE_OPENBLAS
/* OpenBLAS's own declaration: the CPU backend runs sgemm single-threaded inside pool items */
void openblas_set_num_threads (int num_threads);
#endif

static const dsk_dtype wdtypes[3] = { DSK_F32, DSK_BF16, DSK_F16 };

/* The paths of a product, as the hooks of linear.h select them. */
typedef struct {
  const char *name;
  dsk_mm_kernels kernels;
  int pack_min;      /* dsk_mm_set_pack_min; 0: the default (16) */
  int path;          /* dsk_mm_force_path */
} mm_config;

static const mm_config configs[] = {
  { "generic", DSK_MM_KERNELS_GENERIC, 0, 1 },   /* plain C tiles */
  { "avx2", DSK_MM_KERNELS_AVX2, 0, 1 },         /* AVX2 tiles (no packed kernel) */
  { "auto", DSK_MM_KERNELS_AUTO, 0, 1 },         /* AVX-512 tiles below 16 rows, packed from 16 */
  { "packed", DSK_MM_KERNELS_AUTO, 1, 1 },       /* the packed AVX-512 kernel for every n */
  { "blas", DSK_MM_KERNELS_AUTO, 0, 2 },         /* sgemm for every n > DSK_MM_GEMV_MAX */
  { "default", DSK_MM_KERNELS_AUTO, 0, 0 },      /* as the backend runs: sgemm from 1024 rows */
};

/* A dsk_mm of @pool under configuration @c (the hooks stay set for its calls). */
static dsk_mm *
mm_for (dsk_pool *pool, const mm_config *c)
{
  dsk_mm *mm;
  dsk_mm_force_kernels (c->kernels);
  dsk_mm_set_pack_min (c->pack_min);
  dsk_mm_force_path (c->path);
  mm = dsk_mm_new (pool);
  g_assert_nonnull (mm);
  return mm;
}

static void
reset_hooks (void)
{
  dsk_mm_force_kernels (DSK_MM_KERNELS_AUTO);
  dsk_mm_set_pack_min (0);
  dsk_mm_force_path (0);
  dsk_pool_set_parallel_min (-1.0);
}

/* A NaN of @dt, for the gaps of strided arrays: a product that reads one is poisoned. */
static void
put_nan (void *buf, dsk_dtype dt, size_t i)
{
  if (dt == DSK_F32)
    ((float *) buf)[i] = NAN;
  else
    ((uint16_t *) buf)[i] = dt == DSK_BF16 ? 0x7fc0 : 0x7e00;
}

/* @rows x @cols weights in @dt, rows @ld apart (NaN in the gaps): values in about [-1, 1],
 * exactly representable in @dt. */
static void *
random_weights (GRand *rng, dsk_dtype dt, size_t rows, size_t cols, size_t ld)
{
  void *w = g_malloc (rows * ld * dsk_dtype_size (dt) + 1);
  for (size_t r = 0; r < rows; r++)
    for (size_t i = r * ld; i < r * ld + ld; i++) {
      if (i >= r * ld + cols) {
        put_nan (w, dt, i);
      } else if (dt == DSK_F32) {
        ((float *) w)[i] = (float) g_rand_double_range (rng, -1.0, 1.0);
      } else if (dt == DSK_BF16) {
        ((uint16_t *) w)[i] = dsk_f32_to_bf16 ((float) g_rand_double_range (rng, -1.0, 1.0));
      } else {
        /* f16: sign, exponent 2^-6 .. 2^0, random mantissa */
        uint16_t sign = (uint16_t) ((g_rand_int (rng) & 1u) << 15);
        uint16_t ex = (uint16_t) g_rand_int_range (rng, 9, 16);
        ((uint16_t *) w)[i] = sign | (uint16_t) (ex << 10) | (uint16_t) (g_rand_int (rng) & 0x3ffu);
      }
    }
  return w;
}

/* @rows x @cols floats in [-1, 1], rows @ld apart, NaN in the gaps. */
static float *
random_rows (GRand *rng, size_t rows, size_t cols, size_t ld)
{
  float *x = g_new (float, rows * ld + 1);
  for (size_t r = 0; r < rows; r++)
    for (size_t i = 0; i < ld; i++)
      x[r * ld + i] = i < cols ? (float) g_rand_double_range (rng, -1.0, 1.0) : NAN;
  return x;
}

/* Error bound of an f32 result whose exact value sums @k products plus @extra further
 * roundings (bias, accumulate): (k + extra) eps * sum |terms|, twice the classic gamma_k
 * bound (docs/kernels.md). */
static double
bound (size_t k, int extra, double abs_sum)
{
  return (double) (k + (size_t) extra) * FLT_EPSILON * abs_sum + 1e-30;
}

/* One product: y [n, out] (rows ldy apart) (=|+=) x [n, in] (rows ldx apart) w^T + b. */
typedef struct {
  size_t n, in, out;
  size_t ldx, ldy, ldw;   /* 0: packed */
  dsk_dtype wt, bt;
  int bias, acc;
} lin_case;

/* The inputs of a lin_case and the result of running it. */
typedef struct {
  lin_case c;
  float *x, *y0, *y;
  void *w, *b;
  dsk_mat m;
} lin_run;

static void
lin_make (lin_run *r, const lin_case *c, GRand *rng)
{
  memset (r, 0, sizeof *r);
  r->c = *c;
  if (!r->c.ldx)
    r->c.ldx = c->in;
  if (!r->c.ldy)
    r->c.ldy = c->out;
  if (!r->c.ldw)
    r->c.ldw = c->in;
  r->x = random_rows (rng, c->n, c->in, r->c.ldx);
  r->w = random_weights (rng, c->wt, c->out, c->in, r->c.ldw);
  r->b = c->bias ? random_weights (rng, c->bt, 1, c->out, c->out) : NULL;
  /* y starts random (what accumulate adds to), with sentinels in the gaps */
  r->y0 = random_rows (rng, c->n ? c->n : 1, c->out, r->c.ldy);
  for (size_t i = 0; i < r->c.n; i++)
    for (size_t j = c->out; j < r->c.ldy; j++)
      r->y0[i * r->c.ldy + j] = 12345.0f;
  r->y = g_memdup2 (r->y0, ((c->n ? c->n : 1) * r->c.ldy + 1) * sizeof (float));
  r->m = (dsk_mat) { .data = r->w, .dtype = c->wt, .rows = (int) c->out, .cols = (int) c->in,
                     .ld = r->c.ldw, .bias = r->b, .bias_dtype = c->bt };
}

static void
lin_free (lin_run *r)
{
  g_free (r->x);
  g_free (r->w);
  g_free (r->b);
  g_free (r->y0);
  g_free (r->y);
}

/* Runs @r on @mm from its initial y. */
static void
lin_exec (lin_run *r, dsk_mm *mm)
{
  memcpy (r->y, r->y0, (r->c.n * r->c.ldy) * sizeof (float));
  g_assert_true (dsk_mm_linear (mm, r->y, r->c.ldy, r->x, r->c.ldx, r->c.n, &r->m, r->c.acc));
}

/* Checks every element of @r's result against double math (and the gaps of y untouched);
 * returns the normwise relative error. */
static double
lin_check (const lin_run *r, const char *what)
{
  const lin_case *c = &r->c;
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < c->n; i++) {
    for (size_t o = 0; o < c->out; o++) {
      double s = 0.0, a = 0.0;
      for (size_t k = 0; k < c->in; k++) {
        double t = (double) r->x[i * c->ldx + k] * dsk_cpu_weight_at (r->w, c->wt, o * c->ldw + k);
        s += t;
        a += fabs (t);
      }
      if (r->b) {
        double bv = dsk_cpu_weight_at (r->b, c->bt, o);
        s += bv;
        a += fabs (bv);
      }
      if (c->acc) {
        s += r->y0[i * c->ldy + o];
        a += fabs (r->y0[i * c->ldy + o]);
      }
      const double got = r->y[i * c->ldy + o], d = fabs (got - s);
      if (!(d <= bound (c->in, 3, a)))
        g_error ("%s: n=%zu in=%zu out=%zu w=%d bias=%d acc=%d ld=%zu/%zu/%zu: y[%zu, %zu] is "
                 "%.9g, want %.9g (bound %.3g)", what, c->n, c->in, c->out, c->wt, c->bias,
                 c->acc, c->ldx, c->ldy, c->ldw, i, o, got, s, bound (c->in, 3, a));
      max_diff = MAX (max_diff, d);
      max_ref = MAX (max_ref, fabs (s));
    }
    for (size_t o = c->out; o < c->ldy; o++)
      g_assert_cmpfloat (r->y[i * c->ldy + o], ==, 12345.0f);
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

/* Runs and checks one case on @mm; the normwise 1e-5 rule of docs/kernels.md as well. */
static void
lin_run_check (dsk_mm *mm, const lin_case *c, GRand *rng, const char *what)
{
  lin_run r;
  lin_make (&r, c, rng);
  lin_exec (&r, mm);
  g_assert_cmpfloat (lin_check (&r, what), <=, 1e-5);
  lin_free (&r);
}

/* Every path and weight dtype over sizes whose tails are not multiples of 4, 8 or 16 (tokens,
 * inputs and weight rows), from decode (1 row) to prefill, on a pool of 2 threads that
 * spreads every run; bias, accumulate and strides (x, y and weight rows) rotate over the
 * cases so that each combination meets every path. */
static void
test_shapes (void)
{
  static const size_t ns[] = { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 97 };
  static const size_t ins[] = { 1, 7, 17, 64, 97, 257 };
  static const size_t outs[] = { 1, 5, 16, 17, 33, 97 };
  GRand *rng = g_rand_new_with_seed (11);
  dsk_pool *pool = dsk_pool_new (2);
  unsigned variant = 0;

  dsk_pool_set_parallel_min (0.0);
  for (size_t ci = 0; ci < G_N_ELEMENTS (configs); ci++) {
    dsk_mm *mm = mm_for (pool, &configs[ci]);
    for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
      for (size_t b = 0; b < G_N_ELEMENTS (ins); b++)
        for (size_t c = 0; c < G_N_ELEMENTS (outs); c++)
          for (int d = 0; d < 3; d++, variant++) {
            const int strided = (variant >> 2) & 1;
            lin_case lc = { .n = ns[a], .in = ins[b], .out = outs[c], .wt = wdtypes[d],
                            .bt = wdtypes[(d + variant) % 3], .bias = variant & 1,
                            .acc = (variant >> 1) & 1,
                            .ldx = strided ? ins[b] + 3 : 0, .ldy = strided ? outs[c] + 2 : 0,
                            .ldw = strided ? ins[b] + 5 : 0 };
            lin_run_check (mm, &lc, rng, configs[ci].name);
          }
    dsk_mm_free (mm);
  }
  reset_hooks ();
  dsk_pool_free (pool);
  g_rand_free (rng);
}

/* Every combination of bias (each dtype), accumulate and strides on every path, at sizes that
 * take the tiles (5 rows), the packed kernel or sgemm (33 rows). */
static void
test_options (void)
{
  GRand *rng = g_rand_new_with_seed (12);
  dsk_pool *pool = dsk_pool_new (2);

  dsk_pool_set_parallel_min (0.0);
  for (size_t ci = 0; ci < G_N_ELEMENTS (configs); ci++) {
    dsk_mm *mm = mm_for (pool, &configs[ci]);
    for (size_t n = 5; n <= 33; n += 28)
      for (int d = 0; d < 3; d++)
        for (int bias = 0; bias < 4; bias++)   /* 0: none, 1..3: a bias of wdtypes[bias - 1] */
          for (int acc = 0; acc < 2; acc++)
            for (int strided = 0; strided < 2; strided++) {
              lin_case lc = { .n = n, .in = 97, .out = 131, .wt = wdtypes[d],
                              .bt = bias ? wdtypes[bias - 1] : DSK_F32, .bias = bias != 0,
                              .acc = acc, .ldx = strided ? 102 : 0, .ldy = strided ? 134 : 0,
                              .ldw = strided ? 100 : 0 };
              lin_run_check (mm, &lc, rng, configs[ci].name);
            }
    dsk_mm_free (mm);
  }
  reset_hooks ();
  dsk_pool_free (pool);
  g_rand_free (rng);
}

/* The decoder's real sizes: hidden 1280 into an expert's 896 rows, decode and prefill, BF16,
 * as the backend runs them. */
static void
test_decoder_shapes (void)
{
  GRand *rng = g_rand_new_with_seed (13);
  dsk_pool *pool = dsk_pool_new (2);
  dsk_mm *mm = mm_for (pool, &configs[5]);

  for (size_t n = 1; n <= 40; n += 13) {
    lin_case lc = { .n = n, .in = 1280, .out = 896, .wt = DSK_BF16, .bt = DSK_F32 };
    lin_run_check (mm, &lc, rng, "decoder");
  }
  dsk_mm_free (mm);
  reset_hooks ();
  dsk_pool_free (pool);
  g_rand_free (rng);
}

/* Products of at least DSK_MM_BLAS_MIN_ROWS rows (sgemm by default, with the packed kernel
 * when the kernels are forced), and no rows at all: nothing written. */
static void
test_many_and_no_rows (void)
{
  GRand *rng = g_rand_new_with_seed (14);
  dsk_pool *pool = dsk_pool_new (2);

  dsk_pool_set_parallel_min (0.0);
  for (size_t ci = 2; ci < G_N_ELEMENTS (configs); ci++) {
    dsk_mm *mm = mm_for (pool, &configs[ci]);
    for (int d = 0; d < 3; d++) {
      lin_case lc = { .n = DSK_MM_BLAS_MIN_ROWS + 6 * (size_t) d, .in = 33, .out = 21,
                      .wt = wdtypes[d], .bt = DSK_BF16, .bias = d != 1, .acc = d == 2,
                      .ldx = d == 1 ? 35 : 0, .ldy = d == 1 ? 22 : 0 };
      lin_run_check (mm, &lc, rng, configs[ci].name);
    }
    lin_run r;
    lin_case zero = { .n = 0, .in = 7, .out = 5, .wt = DSK_BF16, .bias = 1, .bt = DSK_F32 };
    lin_make (&r, &zero, rng);
    g_assert_true (dsk_mm_linear (mm, r.y, 5, r.x, 7, 0, &r.m, 0));
    g_assert_cmpmem (r.y, 5 * sizeof (float), r.y0, 5 * sizeof (float));
    lin_free (&r);
    dsk_mm_free (mm);
  }
  reset_hooks ();
  dsk_pool_free (pool);
  g_rand_free (rng);
}

/* ---- experts ---- */

/* The hidden weights of one test expert: gate, up [inter, H], down [H, inter]. */
typedef struct {
  void *gate, *up, *down;
} expert_w;

/* out rows [slot0, slot0 + n) of every job against down (silu (gate x) * up x) in double. The
 * bound propagates the products' own (H + 1) eps * sum |terms| through silu (slope below 1.1)
 * and the product with up, adds a few eps of the f32 silu, then the down product's
 * (inter + 1) eps * sum |terms|; twice that for the second-order terms. Rows of @out that no
 * job owns must still hold @out0's values. */
static void
check_experts (const dsk_expert_job *jobs, int n_jobs, const float *x, size_t H, const float *out,
               const float *out0, size_t out_rows, const char *what)
{
  gboolean *owned = g_new0 (gboolean, out_rows);
  for (int j = 0; j < n_jobs; j++) {
    const dsk_expert_job *e = &jobs[j];
    const size_t inter = (size_t) e->gate.rows;
    double *h = g_new (double, inter), *eh = g_new (double, inter);
    for (int i = 0; i < e->n; i++) {
      const float *xr = x + (size_t) (e->rows ? e->rows[i] : i) * H;
      for (size_t r = 0; r < inter; r++) {
        double g = 0.0, ag = 0.0, u = 0.0, au = 0.0;
        for (size_t k = 0; k < H; k++) {
          const double tg = xr[k] * (double) dsk_cpu_weight_at (e->gate.data, e->gate.dtype,
                                                                r * e->gate.ld + k);
          const double tu = xr[k] * (double) dsk_cpu_weight_at (e->up.data, e->up.dtype,
                                                                r * e->up.ld + k);
          g += tg;
          ag += fabs (tg);
          u += tu;
          au += fabs (tu);
        }
        const double sig = 1.0 / (1.0 + exp (-g)), s = g * sig;
        h[r] = s * u;
        eh[r] = 1.1 * bound (H, 1, ag) * fabs (u) + fabs (s) * bound (H, 1, au) +
                6.0 * FLT_EPSILON * fabs (h[r]);
      }
      g_assert_cmpuint (e->slot0 + (size_t) i, <, out_rows);
      owned[e->slot0 + (size_t) i] = TRUE;
      for (size_t o = 0; o < H; o++) {
        double s = 0.0, a = 0.0, prop = 0.0;
        for (size_t r = 0; r < inter; r++) {
          const double dw = dsk_cpu_weight_at (e->down.data, e->down.dtype, o * e->down.ld + r);
          s += dw * h[r];
          a += fabs (dw * h[r]);
          prop += fabs (dw) * eh[r];
        }
        const double got = out[(e->slot0 + (size_t) i) * H + o];
        const double tol = 2.0 * (prop + bound (inter, 1, a));
        if (!(fabs (got - s) <= tol))
          g_error ("%s: job %d token %d out[%zu] is %.9g, want %.9g (bound %.3g)", what, j, i,
                   o, got, s, tol);
      }
    }
    g_free (h);
    g_free (eh);
  }
  for (size_t r = 0; r < out_rows; r++)
    if (!owned[r])
      g_assert_cmpmem (out + r * H, H * sizeof (float), out0 + r * H, H * sizeof (float));
  g_free (owned);
}

/* A job of @n tokens (@rows, or rows 0 .. n-1) writing from row @slot0, with random weights
 * of @dt, gate/up rows @ld_gu apart and down rows @ld_d apart (0: packed). */
static dsk_expert_job
make_job (GRand *rng, expert_w *ew, dsk_dtype dt, size_t H, size_t inter, size_t ld_gu,
          size_t ld_d, int n, const int32_t *rows, size_t slot0)
{
  if (!ld_gu)
    ld_gu = H;
  if (!ld_d)
    ld_d = inter;
  ew->gate = random_weights (rng, dt, inter, H, ld_gu);
  ew->up = random_weights (rng, dt, inter, H, ld_gu);
  ew->down = random_weights (rng, dt, H, inter, ld_d);
  return (dsk_expert_job) {
    .gate = { ew->gate, dt, (int) inter, (int) H, ld_gu, NULL, DSK_F32 },
    .up = { ew->up, dt, (int) inter, (int) H, ld_gu, NULL, DSK_F32 },
    .down = { ew->down, dt, (int) H, (int) inter, ld_d, NULL, DSK_F32 },
    .n = n, .rows = rows, .slot0 = slot0,
  };
}

static void
free_expert (expert_w *ew)
{
  g_free (ew->gate);
  g_free (ew->up);
  g_free (ew->down);
}

/* The test's set of jobs over x [50, 37]: a few tokens through a rows list, one of 20 (packed
 * from the default 16), one token from row 0, a wide shared-MLP-like job of 17 over rows
 * 0 .. 16 with strided weight rows, one of exactly 16 tokens in reverse order; odd inter
 * sizes, every dtype, output rows with a gap no job owns. */
#define EX_H 37
#define EX_T 50
#define EX_JOBS 5
#define EX_OUT_ROWS 65

typedef struct {
  dsk_expert_job jobs[EX_JOBS];
  expert_w w[EX_JOBS];
  int32_t rows0[3], rows1[20], rows4[16];
  float *x, *out0;
} expert_set;

static void
expert_set_make (expert_set *s, GRand *rng)
{
  memset (s, 0, sizeof *s);
  s->rows0[0] = 7;
  s->rows0[1] = 0;
  s->rows0[2] = EX_T - 1;
  for (int i = 0; i < 20; i++)
    s->rows1[i] = g_rand_int_range (rng, 0, EX_T);
  for (int i = 0; i < 16; i++)
    s->rows4[i] = EX_T - 1 - i;
  s->jobs[0] = make_job (rng, &s->w[0], DSK_BF16, EX_H, 45, 0, 0, 3, s->rows0, 0);
  s->jobs[1] = make_job (rng, &s->w[1], DSK_F16, EX_H, 45, 0, 0, 20, s->rows1, 3);
  s->jobs[2] = make_job (rng, &s->w[2], DSK_F32, EX_H, 19, 0, 0, 1, NULL, 23);
  s->jobs[3] = make_job (rng, &s->w[3], DSK_BF16, EX_H, 90, EX_H + 3, 95, 17, NULL, 30);
  s->jobs[4] = make_job (rng, &s->w[4], DSK_BF16, EX_H, 45, 0, 0, 16, s->rows4, 47);
  s->x = random_rows (rng, EX_T, EX_H, EX_H);
  s->out0 = random_rows (rng, EX_OUT_ROWS, EX_H, EX_H);
}

static void
expert_set_free (expert_set *s)
{
  for (int j = 0; j < EX_JOBS; j++)
    free_expert (&s->w[j]);
  g_free (s->x);
  g_free (s->out0);
}

/* Runs the set on @mm; the output (transfer full). */
static float *
expert_set_run (const expert_set *s, dsk_mm *mm)
{
  float *out = g_memdup2 (s->out0, EX_OUT_ROWS * EX_H * sizeof (float));
  g_assert_true (dsk_mm_experts (mm, s->jobs, EX_JOBS, s->x, EX_H, EX_H, out));
  return out;
}

/* dsk_mm_experts against the per-expert reference on every kernel set: tile jobs, packed jobs
 * (from 16 tokens, and every job with pack_min 1), rows lists and slot0 offsets. */
static void
test_experts (void)
{
  GRand *rng = g_rand_new_with_seed (15);
  dsk_pool *pool = dsk_pool_new (2);
  expert_set s;

  expert_set_make (&s, rng);
  dsk_pool_set_parallel_min (0.0);
  for (size_t ci = 0; ci < G_N_ELEMENTS (configs); ci++) {
    dsk_mm *mm = mm_for (pool, &configs[ci]);
    float *out = expert_set_run (&s, mm);
    check_experts (s.jobs, EX_JOBS, s.x, EX_H, out, s.out0, EX_OUT_ROWS, configs[ci].name);
    /* a second pass on the same dsk_mm (its buffers reused) gives the same bits */
    float *again = expert_set_run (&s, mm);
    g_assert_cmpmem (again, EX_OUT_ROWS * EX_H * sizeof (float), out,
                     EX_OUT_ROWS * EX_H * sizeof (float));
    g_free (out);
    g_free (again);
    dsk_mm_free (mm);
  }
  /* no jobs: nothing to do */
  dsk_mm *mm = mm_for (pool, &configs[5]);
  g_assert_true (dsk_mm_experts (mm, s.jobs, 0, s.x, EX_H, EX_H, NULL));
  dsk_mm_free (mm);
  expert_set_free (&s);
  reset_hooks ();
  dsk_pool_free (pool);
  g_rand_free (rng);
}

/* The decoder's expert sizes (hidden 1280, inter 896, BF16): one decode token and a prefill
 * group of 17 sharing the pass, as the backend runs them. */
static void
test_experts_decoder (void)
{
  GRand *rng = g_rand_new_with_seed (16);
  dsk_pool *pool = dsk_pool_new (2);
  dsk_mm *mm = mm_for (pool, &configs[5]);
  const size_t H = 1280, inter = 896;
  const int32_t one[1] = { 11 };
  expert_w w[2];
  dsk_expert_job jobs[2] = {
    make_job (rng, &w[0], DSK_BF16, H, inter, 0, 0, 1, one, 17),
    make_job (rng, &w[1], DSK_BF16, H, inter, 0, 0, 17, NULL, 0),
  };
  float *x = random_rows (rng, 18, H, H), *out0 = random_rows (rng, 18, H, H);
  float *out = g_memdup2 (out0, 18 * H * sizeof (float));

  g_assert_true (dsk_mm_experts (mm, jobs, 2, x, H, H, out));
  check_experts (jobs, 2, x, H, out, out0, 18, "experts-decoder");
  free_expert (&w[0]);
  free_expert (&w[1]);
  g_free (x);
  g_free (out0);
  g_free (out);
  dsk_mm_free (mm);
  reset_hooks ();
  dsk_pool_free (pool);
  g_rand_free (rng);
}

/* ---- thread counts ---- */

/* Every path gives the same bits on pools of 1, 2 and 3 threads with every run spread over
 * the pool (parallel_min 0): products of few and many rows (weight-row blocks, the packing of
 * x, sgemm blocks whose width follows the thread count), accumulate, and the experts pass. */
static void
test_thread_invariance (void)
{
  static const lin_case lcs[] = {
    { .n = 1, .in = 300, .out = 100, .wt = DSK_BF16, .bt = DSK_F32, .bias = 1 },
    { .n = 5, .in = 300, .out = 100, .wt = DSK_F16, .acc = 1 },
    { .n = 9, .in = 131, .out = 77, .wt = DSK_F32, .bt = DSK_BF16, .bias = 1, .acc = 1 },
    { .n = 24, .in = 300, .out = 100, .wt = DSK_BF16, .ldx = 303, .ldy = 101 },
    { .n = 40, .in = 200, .out = 333, .wt = DSK_F16, .bt = DSK_F16, .bias = 1 },
    { .n = DSK_MM_BLAS_MIN_ROWS + 3, .in = 40, .out = 150, .wt = DSK_BF16, .bt = DSK_F32,
      .bias = 1 },
  };
  GRand *rng = g_rand_new_with_seed (17);
  dsk_pool *pools[3];
  expert_set s;

  for (int t = 0; t < 3; t++) {
    pools[t] = dsk_pool_new (t + 1);
    g_assert_cmpint (dsk_pool_n_threads (pools[t]), ==, t + 1);
  }
  expert_set_make (&s, rng);
  dsk_pool_set_parallel_min (0.0);
  for (size_t ci = 0; ci < G_N_ELEMENTS (configs); ci++) {
    dsk_mm *mm[3];
    for (int t = 0; t < 3; t++)
      mm[t] = mm_for (pools[t], &configs[ci]);
    for (size_t li = 0; li < G_N_ELEMENTS (lcs); li++) {
      lin_run r;
      lin_make (&r, &lcs[li], rng);
      const size_t len = r.c.n * r.c.ldy * sizeof (float);
      lin_exec (&r, mm[0]);
      float *first = g_memdup2 (r.y, len);
      for (int t = 1; t < 3; t++) {
        lin_exec (&r, mm[t]);
        if (memcmp (first, r.y, len) != 0)
          g_error ("%s: n=%zu in=%zu out=%zu differs between 1 and %d threads",
                   configs[ci].name, r.c.n, r.c.in, r.c.out, t + 1);
      }
      g_assert_cmpfloat (lin_check (&r, configs[ci].name), <=, 1e-5);
      g_free (first);
      lin_free (&r);
    }
    float *first = expert_set_run (&s, mm[0]);
    for (int t = 1; t < 3; t++) {
      float *out = expert_set_run (&s, mm[t]);
      if (memcmp (first, out, EX_OUT_ROWS * EX_H * sizeof (float)) != 0)
        g_error ("%s: experts differ between 1 and %d threads", configs[ci].name, t + 1);
      g_free (out);
    }
    g_free (first);
    for (int t = 0; t < 3; t++)
      dsk_mm_free (mm[t]);
  }
  expert_set_free (&s);
  reset_hooks ();
  for (int t = 0; t < 3; t++)
    dsk_pool_free (pools[t]);
  g_rand_free (rng);
}

/* ---- untransposed product ---- */

/* dsk_mm_xw against double math for every weight dtype: one row to many, odd sizes, strided
 * x, y and weight rows (the gaps of y untouched), and the absorbed-query size (128 -> 512). */
static void
test_xw (void)
{
  static const size_t ns[] = { 1, 3, 17 };
  static const size_t in_dims[] = { 1, 7, 128 };
  static const size_t out_dims[] = { 1, 5, 33, 512 };
  GRand *rng = g_rand_new_with_seed (18);

  for (size_t a = 0; a < G_N_ELEMENTS (ns); a++)
    for (size_t b = 0; b < G_N_ELEMENTS (in_dims); b++)
      for (size_t c = 0; c < G_N_ELEMENTS (out_dims); c++)
        for (int d = 0; d < 3; d++)
          for (int strided = 0; strided < 2; strided++) {
            const size_t n = ns[a], in = in_dims[b], out = out_dims[c];
            const size_t ldx = strided ? in + 2 : in, ldy = strided ? out + 3 : out;
            const size_t ldw = strided ? out + 5 : out;
            float *x = random_rows (rng, n, in, ldx);
            void *w = random_weights (rng, wdtypes[d], in, out, ldw);
            float *y = g_new (float, n * ldy);
            for (size_t i = 0; i < n * ldy; i++)
              y[i] = 12345.0f;
            dsk_mm_xw (y, ldy, x, ldx, w, wdtypes[d], ldw, n, in, out);
            for (size_t i = 0; i < n; i++) {
              for (size_t j = 0; j < out; j++) {
                double s = 0.0, abs_sum = 0.0;
                for (size_t k = 0; k < in; k++) {
                  const double t = (double) x[i * ldx + k] *
                                   dsk_cpu_weight_at (w, wdtypes[d], k * ldw + j);
                  s += t;
                  abs_sum += fabs (t);
                }
                if (!(fabs (y[i * ldy + j] - s) <= bound (in, 1, abs_sum)))
                  g_error ("xw n=%zu in=%zu out=%zu w=%d: y[%zu, %zu] is %.9g, want %.9g", n,
                           in, out, wdtypes[d], i, j, y[i * ldy + j], s);
              }
              for (size_t j = out; j < ldy; j++)
                g_assert_cmpfloat (y[i * ldy + j], ==, 12345.0f);
            }
            g_free (x);
            g_free (w);
            g_free (y);
          }
  g_rand_free (rng);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#if DSOCR_HAVE_OPENBLAS
  openblas_set_num_threads (1);
#endif
  g_test_message ("CPU kernels: %s", dsk_cpu_simd_name ());
  g_test_add_func ("/kernels/linear/shapes", test_shapes);
  g_test_add_func ("/kernels/linear/options", test_options);
  g_test_add_func ("/kernels/linear/decoder-shapes", test_decoder_shapes);
  g_test_add_func ("/kernels/linear/many-and-no-rows", test_many_and_no_rows);
  g_test_add_func ("/kernels/linear/experts", test_experts);
  g_test_add_func ("/kernels/linear/experts-decoder", test_experts_decoder);
  g_test_add_func ("/kernels/linear/thread-invariance", test_thread_invariance);
  g_test_add_func ("/kernels/linear/xw", test_xw);
  return g_test_run ();
}
