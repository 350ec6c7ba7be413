/* test-backend-ops.c: the generic backend test. Every op of backend.h runs a table of cases
 * (shapes, dtypes, views) on every backend of this build and is compared with a reference
 * written below in plain C with doubles, from backend.h's description of the op. Tests are
 * named /backend-ops/<backend>/<op>; a backend whose device is absent, or that lacks an op,
 * lists the case as skipped by name.
 *
 * Besides the values, each op test checks that the op refuses a wrong shape, a wrong dtype
 * and a tensor of another device with a sticky error naming it, writes nothing then, and that
 * the error stays (later ops skipped) until dsk_backend_clear_error(). Every buffer starts
 * filled with a sentinel byte, so an op that writes outside its output view is caught too.
 * /backend-checks/cpu/threads checks that 1 and 3 CPU threads give bit-identical results.
 *
 * DSOCR_QUICK (the sanitizer run) checks fewer sampled reference rows and drops the second
 * full-size case of an op; every op keeps at least one case at DeepSeek-OCR's sizes. */
#include <glib.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dsk-cpu.h"
#include "dsocr-build-config.h"
#include "linear.h"
#include "pool.h"

/* ---- error bounds ----
 *
 * A case's error is max |got - want| / max(max |want|, 1e-30) over the elements checked, with
 * want computed in double; -inf/+inf/NaN must match exactly. The bounds:
 *
 *  0     ops that move bits (set/get, copy, fill, get_rows, set_rows) or pick indices (topk,
 *        moe_route's experts): exact. round and copy to BF16 are exact too, compared with the
 *        round-to-nearest-even of the double value to BF16/F16 computed here.
 *  6e-8  add: one f32 rounding per element, at most half an ulp, 2^-24 = 6.0e-8 of the
 *        largest value.
 *  1e-6  activations, softmax, norms, rope, rope tables, routing weights: a few
 *        f32 roundings per element (libm's expf/erff/cosf are within 1-2 ulp; norms and
 *        softmax sum in double on the CPU), so about 4 ulp = 2.4e-7 of the largest value in the
 *        worst case; 1e-6 is that with a factor 4 for a device's fast math. (The rope tables'
 *        angle is torch's f32 product p * inv_freq, rounded so here too: test_rope_tables.)
 *  2e-5, 5e-5  resize_bicubic_aa, resize_linear: torch forms the sample positions in f32
 *        (scale (i + 0.5) - 0.5 and the taps' offsets from it), which the reference does in
 *        double. Near position L an f32 position is off by up to ~3 half ulps (the scale, the
 *        product, the offset), 3 L 2^-24 = 2.3e-5 of a sample step at L = 127; a linear blend
 *        moves by that times the difference of two samples (up to 2 max|x|): 5e-5. The cubic
 *        taps' slope is at most 1.5 per step and the positions stay below 64 here: 2e-5.
 *  1e-5  products (linear, matmul, conv2d, rel_pos, attention and its sparse forms, moe,
 *        index_scores): f32 sums of n products, n up to 2304 here (4096 keys in attention,
 *        whose softmax sums run in double on the CPU). With random signs a sequential f32 sum
 *        of n terms of size s carries a random rounding error of about eps n s / sqrt(2) (each
 *        partial sum, ~sqrt(i) s, is rounded), while the largest output is ~3.5 sqrt(n) s: the
 *        error relative to it is ~eps sqrt(n) / 5 per output, 6e-7 at n = 2304, and the
 *        largest over 10^5 outputs about 4 times that. The CPU backend measures at most
 *        1.6e-6 (printed per case), so 1e-5 leaves a factor 4 over that estimate and 6 over
 *        what is measured, while a term dropped or counted twice moves an output by ~1/sqrt(n)
 *        of it, 2e-2.
 *  1e-2, 2e-2  products with Q8 / Q4 weights (the reference multiplies the values the codes
 *        decode to, so the weights' own rounding is not counted) against few tokens, which a
 *        backend may quantize to 8 bits per block of 32 for integer products: each activation
 *        moves by up to max|x| / 254 of its block, about 1/440 of x's spread on average, so an
 *        output by ~1/254 of the largest (measured 2-5e-3): 1e-2 for linear, 2e-2 for moe,
 *        whose hidden rows are quantized once more. Many tokens keep f32 activations: 1e-5.
 */
static const struct {
  const char *op;
  double bound;
} bounds[] = {
  { "tensor_set", 0 }, { "tensor_get", 0 }, { "copy", 0 }, { "fill", 0 },
  { "get_rows", 0 }, { "set_rows", 0 }, { "add", 6e-8 }, { "round", 0 },
  { "silu", 1e-6 }, { "gelu", 1e-6 }, { "quick_gelu", 1e-6 }, { "swiglu", 1e-6 },
  { "softmax", 1e-6 }, { "rmsnorm", 1e-6 }, { "layernorm", 1e-6 },
  { "rope_tables", 1e-6 }, { "rope", 1e-6 },
  { "linear", 1e-5 }, { "linear_acc", 1e-5 }, { "matmul", 1e-5 },
  { "attention", 1e-5 }, { "attention_sparse", 1e-5 }, { "attention_probs", 1e-5 },
  { "rel_pos", 1e-5 }, { "conv2d", 1e-5 },
  { "resize_bicubic_aa", 2e-5 }, { "resize_linear", 5e-5 },
  { "moe_route", 1e-6 },   /* the weights; the experts chosen are compared exactly */
  { "moe", 1e-5 }, { "index_scores", 1e-5 },
  { "topk", 0 },
};

static double
bound_of (const char *op)
{
  for (size_t i = 0; i < G_N_ELEMENTS (bounds); i++)
    if (strcmp (bounds[i].op, op) == 0)
      return bounds[i].bound;
  g_error ("no error bound for %s", op);
}

static gboolean quick;

/* ---- random numbers: a fixed-seed 64-bit LCG with an output mix ---- */

typedef struct {
  uint64_t s;
} Rng;

static Rng
rng_new (uint64_t seed)
{
  Rng r = { seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull };
  return r;
}

static uint64_t
rng_u64 (Rng *r)
{
  uint64_t x;
  r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
  x = r->s;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* [0, 1) */
static double
rng_unit (Rng *r)
{
  return (double) (rng_u64 (r) >> 11) * 0x1.0p-53;
}

/* [-a, a) */
static float
rng_sym (Rng *r, double a)
{
  return (float) ((2.0 * rng_unit (r) - 1.0) * a);
}

static size_t
rng_below (Rng *r, size_t n)
{
  return (size_t) (rng_unit (r) * (double) n);
}

/* ---- a test's state: the backend, its buffers, host arrays of the current case ---- */

/* Products of quantized weights with few tokens, and MoE layers of them: see the bounds
 * above. */
#define QUANT_X_BOUND 1e-2
#define QUANT_MOE_BOUND 2e-2
#define SENTINEL 0xa5   /* every byte of a new buffer; an op writes only inside its views */

typedef struct {
  dsk_buffer *buf;
  uintptr_t base;
  size_t size;
} Buf;

typedef struct {
  const char *be_name;
  dsk_backend *be;
  gboolean host;        /* the backend computes in host memory (the CPU) */
  const char *op;
  double bound;
  GArray *bufs;         /* Buf: the current case's device buffers */
  GPtrArray *mem;       /* the current case's host arrays */
  double worst;         /* the op's largest error over its cases */
  int n_cases, n_skipped;
  const char *known;    /* the current case meets a known, reported bug of this (host)
                         * backend: it is marked incomplete instead of failed (none now) */
  int n_known;          /* cases marked incomplete for a known bug */
  gboolean failed;
} Ctx;

static void ctx_fail (Ctx *c, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
ctx_fail (Ctx *c, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  c->failed = TRUE;
  g_test_fail_printf ("%s %s: %s", c->be_name, c->op, msg);
  g_free (msg);
}

/* A case that meets a known bug (the report names it) is marked incomplete, not failed. */
static void
known_issue (Ctx *c, const char *what, const char *detail)
{
  c->n_known++;
  g_test_message ("%s %s: %s: %s [%s]", c->be_name, c->op, what, c->known, detail);
  g_test_incomplete_printf ("%s %s: %s: %s [%s]", c->be_name, c->op, what, c->known, detail);
}

static void
case_free (Ctx *c)
{
  for (guint i = 0; i < c->bufs->len; i++)
    dsk_buffer_free (g_array_index (c->bufs, Buf, i).buf);
  g_array_set_size (c->bufs, 0);
  g_ptr_array_set_size (c->mem, 0);
}

/* Host memory freed with the case. */
static void *
hmem (Ctx *c, size_t bytes)
{
  void *p = g_malloc0 (bytes ? bytes : 1);
  g_ptr_array_add (c->mem, p);
  return p;
}

static float *
hf (Ctx *c, size_t n)
{
  return hmem (c, n * sizeof (float));
}

static double *
hd (Ctx *c, size_t n)
{
  return hmem (c, n * sizeof (double));
}

static float *
rnd (Ctx *c, Rng *r, size_t n, double a)
{
  float *v = hf (c, n);
  for (size_t i = 0; i < n; i++)
    v[i] = rng_sym (r, a);
  return v;
}

static size_t
n_of (int nd, const size_t *ne)
{
  size_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= ne[i];
  return n;
}

#define NE(...) ((const size_t[]) { __VA_ARGS__ })

/* A contiguous tensor at the start of a new buffer of the backend with room for @slack more
 * elements, every byte SENTINEL. */
static dsk_tensor
t_new_slack (Ctx *c, dsk_dtype dt, int nd, const size_t *ne, size_t slack)
{
  const size_t bytes = (n_of (nd, ne) + slack) * dsk_dtype_size (dt);
  dsk_buffer *b = dsk_buffer_new (c->be, bytes);
  if (!b)
    g_error ("%s: cannot allocate %zu bytes: %s", c->be_name, bytes, dsk_backend_error (c->be));
  dsk_tensor whole = dsk_buffer_tensor (b, 0, DSK_U8, 1, NE (bytes ? bytes : 1));
  Buf e = { b, (uintptr_t) whole.data, bytes ? bytes : 1 };
  g_array_append_val (c->bufs, e);
  guint8 *s = g_malloc (e.size);
  memset (s, SENTINEL, e.size);
  dsk_tensor_set (c->be, &whole, s);
  g_free (s);
  return dsk_buffer_tensor (b, 0, dt, nd, ne);
}

static dsk_tensor
t_new (Ctx *c, dsk_dtype dt, int nd, const size_t *ne)
{
  return t_new_slack (c, dt, nd, ne, 0);
}

/* Layouts of a tensor in its buffer. */
enum {
  L_PACKED,
  L_PAD,      /* rows longer in memory: a column slice of a wider tensor */
  L_SWAP01,   /* stored with dimensions 0 and 1 swapped (a dsk_transpose view) */
  L_SWAP12,   /* dimensions 1 and 2 swapped */
};

static dsk_tensor
t_lay (Ctx *c, dsk_dtype dt, int nd, const size_t *ne, int lay)
{
  size_t w[DSK_MAX_DIMS];
  memcpy (w, ne, (size_t) nd * sizeof *ne);
  if (lay == L_PAD) {
    const size_t pad = 5;
    w[nd - 1] += pad;
    dsk_tensor t = t_new (c, dt, nd, w);
    return dsk_narrow (&t, nd - 1, 2, ne[nd - 1]);
  }
  if (lay == L_SWAP01 || lay == L_SWAP12) {
    const int d0 = lay == L_SWAP01 ? 0 : 1, d1 = d0 + 1;
    w[d0] = ne[d1];
    w[d1] = ne[d0];
    dsk_tensor t = t_new (c, dt, nd, w);
    return dsk_transpose (&t, d0, d1);
  }
  return t_new (c, dt, nd, ne);
}

static dsk_tensor
t1 (Ctx *c, dsk_dtype dt, size_t a)
{
  return t_new (c, dt, 1, NE (a));
}

static dsk_tensor
t2 (Ctx *c, dsk_dtype dt, size_t a, size_t b)
{
  return t_new (c, dt, 2, NE (a, b));
}

static dsk_tensor
t3 (Ctx *c, dsk_dtype dt, size_t a, size_t b, size_t d)
{
  return t_new (c, dt, 3, NE (a, b, d));
}

static dsk_tensor
t4 (Ctx *c, dsk_dtype dt, size_t a, size_t b, size_t d, size_t e)
{
  return t_new (c, dt, 4, NE (a, b, d, e));
}

/* Offsets in elements of @t's elements, in row-major order of its sizes, into @off. */
static void
view_offsets (const dsk_tensor *t, size_t *off)
{
  size_t n = 0;
  for (size_t i0 = 0; i0 < t->ne[0]; i0++)
    for (size_t i1 = 0; i1 < t->ne[1]; i1++)
      for (size_t i2 = 0; i2 < t->ne[2]; i2++)
        for (size_t i3 = 0; i3 < t->ne[3]; i3++)
          off[n++] = i0 * t->st[0] + i1 * t->st[1] + i2 * t->st[2] + i3 * t->st[3];
}

static Buf *
buf_of (Ctx *c, const dsk_tensor *t)
{
  for (guint i = 0; i < c->bufs->len; i++) {
    Buf *b = &g_array_index (c->bufs, Buf, i);
    if ((uintptr_t) t->data >= b->base && (uintptr_t) t->data < b->base + b->size)
      return b;
  }
  g_error ("no buffer holds the tensor");
}

/* Every byte of the buffer that holds @t (transfer: the case's). */
static guint8 *
buf_bytes (Ctx *c, const dsk_tensor *t, Buf **bp)
{
  Buf *b = buf_of (c, t);
  dsk_tensor whole = dsk_buffer_tensor (b->buf, 0, DSK_U8, 1, NE (b->size));
  guint8 *mem = hmem (c, b->size);
  dsk_tensor_get (c->be, &whole, mem);
  *bp = b;
  return mem;
}

/* The bytes of @t's buffer outside @t's elements still hold the sentinel. */
static void
check_gaps (Ctx *c, const dsk_tensor *t, const char *what)
{
  Buf *b;
  guint8 *mem = buf_bytes (c, t, &b);
  guint8 *mask = hmem (c, b->size);
  const size_t n = dsk_tensor_n_elements (t), es = dsk_dtype_size (t->dtype);
  const size_t start = (uintptr_t) t->data - b->base;
  size_t *off = hmem (c, n * sizeof (size_t));
  view_offsets (t, off);
  for (size_t i = 0; i < n; i++)
    memset (mask + start + off[i] * es, 1, es);
  for (size_t j = 0; j < b->size; j++)
    if (!mask[j] && mem[j] != SENTINEL) {
      ctx_fail (c, "%s: wrote byte %zu of its output's buffer, outside the view", what, j);
      return;
    }
}

static float
round_to (dsk_dtype dt, float v, uint16_t *bits)
{
  *bits = dt == DSK_BF16 ? dsk_f32_to_bf16 (v) : dsk_f32_to_f16 (v);
  return dt == DSK_BF16 ? dsk_bf16_to_f32 (*bits) : dsk_f16_to_f32 (*bits);
}

/* @t = the packed values @v, rounded to t's dtype (F32, BF16, F16) first: @v then holds what
 * the backend reads. */
static void
t_set (Ctx *c, const dsk_tensor *t, float *v)
{
  const size_t n = dsk_tensor_n_elements (t);
  if (t->dtype == DSK_F32) {
    dsk_tensor_set (c->be, t, v);
    return;
  }
  uint16_t *h = g_new (uint16_t, n);
  for (size_t i = 0; i < n; i++)
    v[i] = round_to (t->dtype, v[i], &h[i]);
  dsk_tensor_set (c->be, t, h);
  g_free (h);
}

/* The packed values of @t (F32, BF16 or F16). */
static float *
t_get (Ctx *c, const dsk_tensor *t)
{
  const size_t n = dsk_tensor_n_elements (t);
  float *v = hf (c, n);
  if (t->dtype == DSK_F32) {
    dsk_tensor_get (c->be, t, v);
    return v;
  }
  uint16_t *h = g_new0 (uint16_t, n);
  dsk_tensor_get (c->be, t, h);
  for (size_t i = 0; i < n; i++)
    v[i] = t->dtype == DSK_BF16 ? dsk_bf16_to_f32 (h[i]) : dsk_f16_to_f32 (h[i]);
  g_free (h);
  return v;
}

/* A new tensor of layout @lay holding random values in [-a, a) (rounded to @dt); the values
 * are returned in @vals. */
static dsk_tensor
t_rand (Ctx *c, Rng *r, dsk_dtype dt, int nd, const size_t *ne, int lay, double a,
        float **vals)
{
  dsk_tensor t = t_lay (c, dt, nd, ne, lay);
  float *v = rnd (c, r, n_of (nd, ne), a);
  t_set (c, &t, v);
  *vals = v;
  return t;
}

/* ---- comparing ---- */

typedef struct {
  double diff, ref;
  size_t at, n;
  gboolean bad;     /* a non-finite value where the reference has another */
} Err;

static void
err_add (Err *e, size_t i, double got, double want)
{
  e->n++;
  if (!isfinite (want) || !isfinite (got)) {
    const gboolean same = isnan (want) ? isnan (got) : got == want;
    if (!same && !e->bad) {
      e->bad = TRUE;
      e->at = i;
    }
    return;
  }
  const double d = fabs (got - want);
  if (d > e->diff) {
    e->diff = d;
    if (!e->bad)
      e->at = i;
  }
  if (fabs (want) > e->ref)
    e->ref = fabs (want);
}

static double
err_rel (const Err *e)
{
  return e->bad ? INFINITY : e->diff / MAX (e->ref, 1e-30);
}

/* Reports a case: its measured error against @bound (the op's unless given). */
static void
case_end_bound (Ctx *c, const char *what, const Err *e, double bound)
{
  const double r = err_rel (e);
  c->n_cases++;
  if (!(r <= c->worst) && !(c->known && c->host))
    c->worst = r;
  g_test_message ("%s %s: %s: max rel err %.3g over %zu values (bound %.3g)", c->be_name,
                  c->op, what, r, e->n, bound);
  if (e->n == 0) {
    ctx_fail (c, "%s: nothing was compared", what);
  } else if (!(r <= bound)) {
    char *d = g_strdup_printf ("error %.3g at element %zu exceeds %.3g%s", r, e->at, bound,
                               e->bad ? " (a non-finite mismatch)" : "");
    if (c->known && c->host)
      known_issue (c, what, d);
    else
      ctx_fail (c, "%s: %s", what, d);
    g_free (d);
  } else if (c->known && c->host) {
    g_test_message ("%s %s: %s: passes: the known bug no longer shows (%s)", c->be_name, c->op,
                    what, c->known);
  }
}

static void
case_end (Ctx *c, const char *what, const Err *e)
{
  case_end_bound (c, what, e, c->bound);
}

/* Whether the op of a case ran. An error fails the case, except DSK_ERR_UNSUPPORTED from a
 * device backend (an operand form its kernels do not take yet), which skips it by name. */
static gboolean
ran (Ctx *c, const char *what)
{
  dsk_backend_synchronize (c->be);
  if (!dsk_backend_failed (c->be))
    return TRUE;
  if (!c->host && dsk_backend_status (c->be) == DSK_ERR_UNSUPPORTED) {
    g_test_message ("%s %s: %s: skipped: %s", c->be_name, c->op, what,
                    dsk_backend_error (c->be));
    c->n_skipped++;
  } else if (c->known && c->host) {
    known_issue (c, what, dsk_backend_error (c->be));
  } else {
    ctx_fail (c, "%s: %s", what, dsk_backend_error (c->be));
  }
  dsk_backend_clear_error (c->be);
  return FALSE;
}

/* Reference rows checked out of @n when each costs @cost multiply-adds: all of them while
 * that is cheap, else every step-th (and the last), about a fixed budget in all. */
static size_t
row_step (size_t n, double cost)
{
  const double budget = quick ? 1.5e7 : 1.2e8;
  double m = budget / MAX (cost, 1.0);
  if (m < 8)
    m = 8;
  if ((double) n <= m)
    return 1;
  return (size_t) ceil ((double) n / m) | 1;   /* odd: spreads over row parities */
}

static gboolean
row_checked (size_t i, size_t n, size_t step)
{
  return i % step == 0 || i == n - 1;
}

/* ---- rounding references, in double: round to nearest, ties to even ---- */

static double
ref_round_bits (double x, int mant_bits, int min_exp, double max_finite)
{
  if (!isfinite (x) || x == 0.0)
    return x;
  const double a = fabs (x);
  int e;
  frexp (a, &e);   /* a in [2^(e-1), 2^e) */
  /* the quantum: mant_bits significant bits for normal numbers, fixed below the least */
  const int qe = (e - 1 < min_exp ? min_exp : e - 1) - (mant_bits - 1);
  const double q = ldexp (1.0, qe);
  double r = nearbyint (a / q) * q;
  if (r > max_finite)
    r = INFINITY;
  return copysign (r, x);
}

/* BF16: 8 significant bits, exponents down to -126, largest (2 - 2^-7) 2^127 */
static double
ref_bf16 (double x)
{
  return ref_round_bits (x, 8, -126, ldexp (255.0, 120));
}

/* F16: 11 significant bits, exponents down to -14, largest 65504 */
static double
ref_f16 (double x)
{
  return ref_round_bits (x, 11, -14, 65504.0);
}

/* ---- refusals and the sticky error ----
 *
 * A Call is one valid invocation of an op (operands in t[], the outputs named in out[]); a
 * Mut changes one operand so that the op must refuse it. */

typedef struct Call Call;
typedef void (*call_fn) (dsk_backend *be, const Call *k);

struct Call {
  dsk_tensor t[10];
  unsigned absent;          /* operands passed as NULL (optional ones) */
  int out[3], n_out;        /* operands the op writes */
  void *host;               /* tensor_get's destination, of host_len bytes */
  size_t host_len;
  const void *src;          /* tensor_set's source */
  float f;
  dsk_dtype dt;
  size_t a, b;
  int mode;
  /* dsk_attention_desc: operand index + 1 of key_valid, bias, rel_h, rel_w (0: none) */
  int kv, bias, rh, rw;
  int causal;
  size_t pos0;
  dsk_conv2d_desc conv;
  dsk_moe_router router;
  dsk_moe_experts experts;
};

#define ARG(k, i) (((k)->absent >> (i)) & 1u ? NULL : &(k)->t[i])
#define OPT(k, i1) ((i1) ? &(k)->t[(i1) - 1] : NULL)

static dsk_attention_desc
desc_of (const Call *k)
{
  dsk_attention_desc d = {
    .scale = k->f, .causal = k->causal, .q_pos0 = k->pos0, .key_valid = OPT (k, k->kv),
    .bias = OPT (k, k->bias), .rel_h = OPT (k, k->rh), .rel_w = OPT (k, k->rw),
  };
  return d;
}

typedef enum {
  M_NARROW,      /* dimension dim one shorter (a view of the same memory) */
  M_RESHAPE,     /* contiguous, dimension dim one shorter */
  M_BROADCAST,   /* dimension dim at stride 0 */
  M_EMPTY,       /* dimension dim of size 0 */
  M_DTYPE,       /* dtype dt */
  M_DEVICE,      /* on the other kind of device */
} mut_kind;

typedef struct {
  mut_kind kind;
  int arg, dim;
  dsk_dtype dt;
} Mut;

static void
mutate (dsk_tensor *t, const Mut *m)
{
  size_t ne[DSK_MAX_DIMS];
  switch (m->kind) {
    case M_NARROW:
      *t = dsk_narrow (t, m->dim, 0, t->ne[m->dim] - 1);
      break;
    case M_RESHAPE:
      memcpy (ne, t->ne, sizeof ne);
      ne[m->dim]--;
      *t = dsk_tensor_make (t->data, t->dtype, t->n_dims, ne, t->device);
      break;
    case M_BROADCAST:
      t->st[m->dim] = 0;
      break;
    case M_EMPTY:
      t->ne[m->dim] = 0;
      break;
    case M_DTYPE:
      t->dtype = m->dt;
      break;
    case M_DEVICE:
      t->device.kind = t->device.kind == DSK_DEVICE_HOST ? DSK_DEVICE_CUDA : DSK_DEVICE_HOST;
      t->device.index = 0;
      break;
  }
}

/* Sets every byte of @t's buffer to the sentinel. */
static void
sentinel_fill (Ctx *c, const dsk_tensor *t)
{
  Buf *b = buf_of (c, t);
  dsk_tensor whole = dsk_buffer_tensor (b->buf, 0, DSK_U8, 1, NE (b->size));
  guint8 *s = g_malloc (b->size);
  memset (s, SENTINEL, b->size);
  dsk_tensor_set (c->be, &whole, s);
  g_free (s);
}

static gboolean
all_sentinel (const guint8 *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != SENTINEL)
      return FALSE;
  return TRUE;
}

static gboolean
untouched (Ctx *c, const dsk_tensor *t)
{
  Buf *b;
  guint8 *mem = buf_bytes (c, t, &b);
  return all_sentinel (mem, b->size);
}

/* The op just called must have refused @what with an error naming it and left @out (fresh, all
 * sentinel) alone. */
static void
expect_refusal (Ctx *c, const char *what, const dsk_tensor *out)
{
  char name[64];
  snprintf (name, sizeof name, "%s:", c->op);
  dsk_backend_synchronize (c->be);
  if (!dsk_backend_failed (c->be)) {
    ctx_fail (c, "accepted %s", what);
  } else {
    if (!strstr (dsk_backend_error (c->be), name))
      ctx_fail (c, "the error for %s does not name the op: \"%s\"", what,
                dsk_backend_error (c->be));
    else
      g_test_message ("%s %s: refuses %s: \"%s\"", c->be_name, c->op, what,
                      dsk_backend_error (c->be));
    dsk_backend_clear_error (c->be);
  }
  if (!untouched (c, out))
    ctx_fail (c, "wrote its output though it refused %s", what);
  case_free (c);
}

/* @base must run; each of @muts (a wrong shape, a wrong dtype, another device) must be refused
 * with an error naming the op, write nothing, and stick: the valid call and another op after
 * it are skipped, until the error is cleared. */
static void
check_refusals (Ctx *c, const Call *base, call_fn fn, const Mut muts[3])
{
  static const char *what[3] = { "a wrong shape", "a wrong dtype", "a tensor of another device" };
  char name[64];
  snprintf (name, sizeof name, "%s:", c->op);

  dsk_backend_clear_error (c->be);
  fn (c->be, base);
  if (!ran (c, "the refusal checks' valid call"))
    return;
  for (int i = 0; i < 3; i++) {
    Call m = *base;
    dsk_tensor other = t1 (c, DSK_F32, 16);
    for (int o = 0; o < base->n_out; o++)
      sentinel_fill (c, &base->t[base->out[o]]);
    if (base->host)
      memset (base->host, SENTINEL, base->host_len);
    mutate (&m.t[muts[i].arg], &muts[i]);
    fn (c->be, &m);
    if (!dsk_backend_failed (c->be)) {
      ctx_fail (c, "accepted %s", what[i]);
      continue;
    }
    char *err = g_strdup (dsk_backend_error (c->be));
    const dsk_status st = dsk_backend_status (c->be);
    if (!strstr (err, name))
      ctx_fail (c, "the error for %s does not name the op: \"%s\"", what[i], err);
    /* sticky: the valid call and any other op are now skipped, the error kept */
    fn (c->be, base);
    dsk_fill (c->be, &other, 1.0f);
    if (!dsk_backend_failed (c->be) || dsk_backend_status (c->be) != st ||
        strcmp (dsk_backend_error (c->be), err) != 0)
      ctx_fail (c, "the error for %s did not stick (now \"%s\")", what[i],
                dsk_backend_error (c->be));
    else
      g_test_message ("%s %s: refuses %s: \"%s\"", c->be_name, c->op, what[i], err);
    dsk_backend_clear_error (c->be);
    if (dsk_backend_failed (c->be) || dsk_backend_error (c->be)[0])
      ctx_fail (c, "dsk_backend_clear_error left an error");
    for (int o = 0; o < base->n_out; o++)
      if (!untouched (c, &base->t[base->out[o]]))
        ctx_fail (c, "wrote its output though it refused %s or was skipped", what[i]);
    if (base->host && !all_sentinel (base->host, base->host_len))
      ctx_fail (c, "wrote its output though it refused %s or was skipped", what[i]);
    if (!untouched (c, &other))
      ctx_fail (c, "an op ran while the error of %s was set", what[i]);
    /* cleared: the valid call runs again */
    fn (c->be, base);
    if (dsk_backend_failed (c->be)) {
      ctx_fail (c, "the valid call failed after the error was cleared: %s",
                dsk_backend_error (c->be));
      dsk_backend_clear_error (c->be);
    }
    g_free (err);
  }
  case_free (c);
}

#define MUT(kind_, arg_, dim_) { .kind = (kind_), .arg = (arg_), .dim = (dim_) }
#define MUT_DT(arg_, dt_) { .kind = M_DTYPE, .arg = (arg_), .dt = (dt_) }
#define MUT_DEV(arg_) { .kind = M_DEVICE, .arg = (arg_) }

/* Random values in [-1, 1) into @t (F32, BF16 or F16). */
static void
t_fill (Ctx *c, Rng *r, const dsk_tensor *t)
{
  float *v = rnd (c, r, dsk_tensor_n_elements (t), 1.0);
  t_set (c, t, v);
}

/* The same for operand @i of a Call. */
static void
call_fill (Ctx *c, Rng *r, Call *k, int i)
{
  t_fill (c, r, &k->t[i]);
}

/* ==== moving data ==== */

static uint64_t
elem_bits (const guint8 *p, size_t es)
{
  uint64_t v = 0;
  memcpy (&v, p, es);
  return v;
}

typedef struct {
  const char *what;
  dsk_dtype dt;
  int nd;
  size_t ne[DSK_MAX_DIMS];
  int lay;
  size_t fused;   /* > 0: columns [fused, fused + ne[1]) of rows 3 ne[1] long (a qkv row) */
} move_case;

static const move_case move_cases[] = {
  { "F32 [5, 7]", DSK_F32, 2, { 5, 7 }, L_PACKED, 0 },
  { "F32 [4, 6] padded rows", DSK_F32, 2, { 4, 6 }, L_PAD, 0 },
  { "BF16 [3, 10] padded rows", DSK_BF16, 2, { 3, 10 }, L_PAD, 0 },
  { "I32 [2, 3, 5] padded rows", DSK_I32, 3, { 2, 3, 5 }, L_PAD, 0 },
  { "U8 [3, 4, 5, 6] transposed 1/2", DSK_U8, 4, { 3, 4, 5, 6 }, L_SWAP12, 0 },
  { "F16 [6, 4, 3] transposed 0/1", DSK_F16, 3, { 6, 4, 3 }, L_SWAP01, 0 },
  { "F32 [300, 1280]: the k columns of a fused [300, 3840] qkv", DSK_F32, 2, { 300, 1280 },
    L_PACKED, 1280 },
};

static dsk_tensor
move_tensor (Ctx *c, const move_case *mc)
{
  if (mc->fused) {
    dsk_tensor w = t2 (c, mc->dt, mc->ne[0], 3 * mc->ne[1]);
    return dsk_narrow (&w, 1, mc->fused, mc->ne[1]);
  }
  return t_lay (c, mc->dt, mc->nd, mc->ne, mc->lay);
}

static void
random_bytes (Rng *r, guint8 *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (guint8) (rng_u64 (r) >> 56);
}

static void
c_tensor_set (dsk_backend *be, const Call *k)
{
  dsk_tensor_set (be, &k->t[0], k->src);
}

static void
c_tensor_get (dsk_backend *be, const Call *k)
{
  dsk_tensor_get (be, &k->t[0], k->host);
}

/* tensor_set: the packed bytes land at the view's offsets, nothing else is written. */
static void
test_tensor_set (Ctx *c)
{
  Rng r = rng_new (1);
  for (size_t ci = 0; ci < G_N_ELEMENTS (move_cases); ci++) {
    const move_case *mc = &move_cases[ci];
    dsk_tensor t = move_tensor (c, mc);
    const size_t n = dsk_tensor_n_elements (&t), es = dsk_dtype_size (mc->dt);
    guint8 *src = hmem (c, n * es);
    random_bytes (&r, src, n * es);
    dsk_tensor_set (c->be, &t, src);
    if (!ran (c, mc->what)) {
      case_free (c);
      continue;
    }
    Buf *b;
    guint8 *mem = buf_bytes (c, &t, &b);
    size_t *off = hmem (c, n * sizeof (size_t));
    const size_t start = (uintptr_t) t.data - b->base;
    Err e = { 0 };
    view_offsets (&t, off);
    for (size_t i = 0; i < n; i++)
      err_add (&e, i, (double) elem_bits (mem + start + off[i] * es, es),
               (double) elem_bits (src + i * es, es));
    check_gaps (c, &t, mc->what);
    case_end (c, mc->what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  k.src = hmem (c, 24 * sizeof (float));
  const Mut m[3] = { MUT (M_BROADCAST, 0, 0), MUT_DT (0, DSK_N_DTYPES), MUT_DEV (0) };
  check_refusals (c, &k, c_tensor_set, m);
}

/* tensor_get: the view's elements gathered from its buffer, packed. */
static void
test_tensor_get (Ctx *c)
{
  Rng r = rng_new (2);
  for (size_t ci = 0; ci < G_N_ELEMENTS (move_cases); ci++) {
    const move_case *mc = &move_cases[ci];
    dsk_tensor t = move_tensor (c, mc);
    const size_t n = dsk_tensor_n_elements (&t), es = dsk_dtype_size (mc->dt);
    Buf *b = buf_of (c, &t);
    dsk_tensor whole = dsk_buffer_tensor (b->buf, 0, DSK_U8, 1, NE (b->size));
    guint8 *mem = hmem (c, b->size), *got = hmem (c, n * es);
    random_bytes (&r, mem, b->size);
    dsk_tensor_set (c->be, &whole, mem);
    dsk_tensor_get (c->be, &t, got);
    if (!ran (c, mc->what)) {
      case_free (c);
      continue;
    }
    size_t *off = hmem (c, n * sizeof (size_t));
    const size_t start = (uintptr_t) t.data - b->base;
    Err e = { 0 };
    view_offsets (&t, off);
    for (size_t i = 0; i < n; i++)
      err_add (&e, i, (double) elem_bits (got + i * es, es),
               (double) elem_bits (mem + start + off[i] * es, es));
    case_end (c, mc->what, &e);
    case_free (c);
  }

  Call k = { .n_out = 0 };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  k.host = hmem (c, 24 * sizeof (float));
  k.host_len = 24 * sizeof (float);
  const Mut m[3] = { MUT (M_EMPTY, 0, 0), MUT_DT (0, DSK_N_DTYPES), MUT_DEV (0) };
  check_refusals (c, &k, c_tensor_get, m);
}

/* Values that probe round-to-nearest-even to BF16: ties either way, the overflow to inf, the
 * largest finite value, subnormals, signed zero and infinities. */
static const float bf16_specials[] = {
  1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -(1.0f + 0x1p-8f), 1.0f + 0x1p-8f + 0x1p-20f,
  0x1.fep127f, 0x1.ffp127f, 0x1.fffffep127f, 1e-39f, -3e-40f, 0x1p-149f, 0x1.8p-133f,
  -0.0f, INFINITY, -INFINITY, 65519.0f, 2.5f, -1e30f, 0x1.0101p0f,
};

/* The same for F16: ties, 65504 / 65519 / 65520 / 70000, subnormals down to 2^-24 and below. */
static const float f16_specials[] = {
  1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -(1.0f + 0x1p-11f), 65504.0f, 65519.0f, 65520.0f,
  -70000.0f, 1e-5f, 6e-8f, 2.9e-8f, 0x1p-25f, 0x3p-25f, -0x1p-24f, 0x1.8p-20f, -0.0f,
  INFINITY, 1e30f, 0.1f,
};

typedef struct {
  const char *what;
  dsk_dtype dd, sd;
  int nd;
  size_t ne[DSK_MAX_DIMS];
  int dlay, slay;
  int bdim;            /* >= 0: src is one slice repeated along that dimension (stride 0) */
  gboolean specials;   /* starts with bf16_specials */
  gboolean slow;
} copy_case;

static const copy_case copy_cases[] = {
  { "F32 -> F32 [6, 9]", DSK_F32, DSK_F32, 2, { 6, 9 }, L_PACKED, L_PACKED, -1 },
  { "BF16 -> F32 [5, 33], strided source", DSK_F32, DSK_BF16, 2, { 5, 33 }, L_PACKED, L_PAD, -1 },
  { "F16 -> F32 [4, 17], strided destination", DSK_F32, DSK_F16, 2, { 4, 17 }, L_PAD, L_PACKED,
    -1 },
  { "F32 -> BF16 [7, 40], rounding edge values", DSK_BF16, DSK_F32, 2, { 7, 40 }, L_PACKED,
    L_PAD, -1, TRUE },
  { "F32 -> BF16 [3, 4, 24], transposed source", DSK_BF16, DSK_F32, 3, { 3, 4, 24 }, L_PACKED,
    L_SWAP01, -1 },
  { "I32 [3, 11], source broadcast over rows", DSK_I32, DSK_I32, 2, { 3, 11 }, L_PACKED, L_PACKED,
    0 },
  { "U8 [4, 5, 6], transposed source", DSK_U8, DSK_U8, 3, { 4, 5, 6 }, L_PACKED, L_SWAP01, -1 },
  { "F32 [4, 3, 8], source broadcast over dim 1", DSK_F32, DSK_F32, 3, { 4, 3, 8 }, L_PAD,
    L_PACKED, 1 },
  { "F16 [2, 3, 4, 5], transposed source, strided destination", DSK_F16, DSK_F16, 4,
    { 2, 3, 4, 5 }, L_PAD, L_SWAP12, -1 },
  { "BF16 -> F32 [4096, 1280]: an embedding table widened", DSK_F32, DSK_BF16, 2, { 4096, 1280 },
    L_PACKED, L_PACKED, -1, FALSE, TRUE },
  { "F32 -> BF16 [300, 1280]", DSK_BF16, DSK_F32, 2, { 300, 1280 }, L_PACKED, L_PAD, -1, TRUE },
};

static void
c_copy (dsk_backend *be, const Call *k)
{
  dsk_copy (be, &k->t[0], &k->t[1]);
}

static gboolean
is_float (dsk_dtype dt)
{
  return dt == DSK_F32 || dt == DSK_BF16 || dt == DSK_F16;
}

static void
test_copy (Ctx *c)
{
  Rng r = rng_new (3);
  for (size_t ci = 0; ci < G_N_ELEMENTS (copy_cases); ci++) {
    const copy_case *cc = &copy_cases[ci];
    if (cc->slow && quick)
      continue;
    const size_t n = n_of (cc->nd, cc->ne), es = dsk_dtype_size (cc->sd);
    dsk_tensor dst = t_lay (c, cc->dd, cc->nd, cc->ne, cc->dlay), src;
    size_t sne[DSK_MAX_DIMS];
    memcpy (sne, cc->ne, sizeof sne);
    if (cc->bdim >= 0)
      sne[cc->bdim] = 1;
    src = t_lay (c, cc->sd, cc->nd, sne, cc->slay);
    const size_t ns = n_of (cc->nd, sne);
    /* the source's values, packed over its own sizes */
    float *sv = NULL;
    guint8 *sb = NULL;
    if (is_float (cc->sd)) {
      sv = rnd (c, &r, ns, 2.0);
      for (size_t i = 0; cc->specials && i < G_N_ELEMENTS (bf16_specials) && i < ns; i++)
        sv[i] = bf16_specials[i];
      t_set (c, &src, sv);
    } else {
      sb = hmem (c, ns * es);
      random_bytes (&r, sb, ns * es);
      dsk_tensor_set (c->be, &src, sb);
    }
    if (cc->bdim >= 0)
      src = dsk_expand (&src, cc->bdim, cc->ne[cc->bdim]);
    dsk_copy (c->be, &dst, &src);
    if (!ran (c, cc->what)) {
      case_free (c);
      continue;
    }
    Err e = { 0 };
    guint8 *gb = NULL;
    float *gv = NULL;
    if (is_float (cc->dd))
      gv = t_get (c, &dst);
    else {
      gb = hmem (c, n * es);
      dsk_tensor_get (c->be, &dst, gb);
    }
    /* element i of dst reads element j of the (unbroadcast) source */
    size_t idx[DSK_MAX_DIMS] = { 0 };
    for (size_t i = 0; i < n; i++) {
      size_t j = 0;
      for (int d = 0; d < cc->nd; d++)
        j = j * sne[d] + (d == cc->bdim ? 0 : idx[d]);
      if (gv)
        err_add (&e, i, gv[i], cc->dd == DSK_BF16 && cc->sd == DSK_F32 ? ref_bf16 (sv[j]) : sv[j]);
      else
        err_add (&e, i, (double) elem_bits (gb + i * es, es), (double) elem_bits (sb + j * es, es));
      for (int d = cc->nd - 1; d >= 0 && ++idx[d] == cc->ne[d]; d--)
        idx[d] = 0;
    }
    check_gaps (c, &dst, cc->what);
    case_end (c, cc->what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  k.t[1] = t2 (c, DSK_F32, 4, 6);
  const Mut m[3] = { MUT (M_NARROW, 1, 0), MUT_DT (0, DSK_I32), MUT_DEV (1) };
  check_refusals (c, &k, c_copy, m);

  /* backend.h: dst must not overlap src */
  dsk_tensor t = t2 (c, DSK_F32, 4, 6);
  dsk_tensor lo = dsk_narrow (&t, 0, 0, 3), hi = dsk_narrow (&t, 0, 1, 3);
  dsk_copy (c->be, &hi, &lo);
  expect_refusal (c, "a destination overlapping its source", &t);
}

static void
c_fill (dsk_backend *be, const Call *k)
{
  dsk_fill (be, &k->t[0], k->f);
}

static void
test_fill (Ctx *c)
{
  static const struct {
    const char *what;
    int nd;
    size_t ne[DSK_MAX_DIMS];
    int lay;
    float value;
  } cases[] = {
    { "[5, 7] = 1.5", 2, { 5, 7 }, L_PACKED, 1.5f },
    { "[4, 9] padded rows = -2.25", 2, { 4, 9 }, L_PAD, -2.25f },
    { "[3, 4, 5] transposed = 0", 3, { 3, 4, 5 }, L_SWAP01, 0.0f },
    { "[2, 3, 4, 5] transposed 1/2 = -inf", 4, { 2, 3, 4, 5 }, L_SWAP12, -INFINITY },
    { "[300, 1280] padded rows = 3", 2, { 300, 1280 }, L_PAD, 3.0f },
  };
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    dsk_tensor t = t_lay (c, DSK_F32, cases[ci].nd, cases[ci].ne, cases[ci].lay);
    dsk_fill (c->be, &t, cases[ci].value);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &t);
    Err e = { 0 };
    for (size_t i = 0; i < dsk_tensor_n_elements (&t); i++)
      err_add (&e, i, got[i], cases[ci].value);
    check_gaps (c, &t, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 }, .f = 2.0f };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  const Mut m[3] = { MUT (M_BROADCAST, 0, 0), MUT_DT (0, DSK_I32), MUT_DEV (0) };
  check_refusals (c, &k, c_fill, m);
}

static dsk_tensor
idx_tensor (Ctx *c, const int32_t *idx, size_t n)
{
  dsk_tensor t = t1 (c, DSK_I32, n);
  dsk_tensor_set (c->be, &t, idx);
  return t;
}

static void
c_get_rows (dsk_backend *be, const Call *k)
{
  dsk_get_rows (be, &k->t[0], &k->t[1], &k->t[2], ARG (k, 3));
}

static void
test_get_rows (Ctx *c)
{
  static const struct {
    const char *what;
    dsk_dtype sd;
    size_t m, d, n;
    int slay, dlay;
    gboolean fill;
  } cases[] = {
    { "F32 [10, 16] -> 7 rows, -1 gives zeros", DSK_F32, 10, 16, 7, L_PACKED, L_PACKED, FALSE },
    { "BF16 [12, 40] -> 9 rows, -1 gives the fill row", DSK_BF16, 12, 40, 9, L_PACKED, L_PACKED,
      TRUE },
    { "F16 [8, 24] -> 5 rows, strided source", DSK_F16, 8, 24, 5, L_PAD, L_PACKED, TRUE },
    { "F32 [20, 33] -> 11 rows, strided source and destination", DSK_F32, 20, 33, 11, L_PAD,
      L_PAD, FALSE },
    { "BF16 [4096, 1280] -> 300 tokens (the embedding)", DSK_BF16, 4096, 1280, 300, L_PACKED,
      L_PACKED, TRUE },
  };
  Rng r = rng_new (4);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t m = cases[ci].m, d = cases[ci].d, n = cases[ci].n;
    float *sv, *fv = NULL;
    dsk_tensor src = t_rand (c, &r, cases[ci].sd, 2, NE (m, d), cases[ci].slay, 1.0, &sv);
    dsk_tensor dst = t_lay (c, DSK_F32, 2, NE (n, d), cases[ci].dlay), fill;
    int32_t *idx = hmem (c, n * sizeof (int32_t));
    for (size_t i = 0; i < n; i++)
      idx[i] = i % 5 == 3 ? -1 : (int32_t) rng_below (&r, m);
    idx[0] = (int32_t) m - 1;
    dsk_tensor it = idx_tensor (c, idx, n);
    if (cases[ci].fill)
      fill = t_rand (c, &r, DSK_F32, 1, NE (d), L_PACKED, 1.0, &fv);
    dsk_get_rows (c->be, &dst, &src, &it, cases[ci].fill ? &fill : NULL);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &dst);
    Err e = { 0 };
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < d; j++)
        err_add (&e, i * d + j, got[i * d + j],
                 idx[i] >= 0 ? sv[(size_t) idx[i] * d + j] : fv ? fv[j] : 0.0);
    check_gaps (c, &dst, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 5, 8);
  k.t[1] = t2 (c, DSK_F32, 6, 8);
  k.t[2] = idx_tensor (c, (const int32_t[]) { 0, 5, -1, 2, 2 }, 5);
  k.t[3] = t1 (c, DSK_F32, 8);
  call_fill (c, &r, &k, 1);
  call_fill (c, &r, &k, 3);
  const Mut mu[3] = { MUT (M_NARROW, 2, 0), MUT_DT (2, DSK_F32), MUT_DEV (1) };
  check_refusals (c, &k, c_get_rows, mu);

  /* backend.h: an index outside [-1, m) is an error */
  for (int bad = 0; bad < 2; bad++) {
    dsk_tensor dst = t2 (c, DSK_F32, 3, 8), src = t2 (c, DSK_F32, 6, 8);
    t_fill (c, &r, &src);
    dsk_tensor it = idx_tensor (c, bad ? (const int32_t[]) { 0, -2, 1 }
                                       : (const int32_t[]) { 0, 5, 6 }, 3);
    dsk_get_rows (c->be, &dst, &src, &it, NULL);
    expect_refusal (c, bad ? "an index of -2" : "an index of m", &dst);
  }
}

static void
c_set_rows (dsk_backend *be, const Call *k)
{
  dsk_set_rows (be, &k->t[0], &k->t[1], &k->t[2]);
}

static void
test_set_rows (Ctx *c)
{
  static const struct {
    const char *what;
    size_t m, d, n, first;   /* first: > 0, consecutive rows from there (a cache write) */
    int dlay, slay;
  } cases[] = {
    { "[10, 16] <- 4 rows", 10, 16, 4, 0, L_PACKED, L_PACKED },
    { "[12, 40] <- 6 rows with -1, strided", 12, 40, 6, 0, L_PAD, L_PAD },
    { "KV cache [1024, 1280] <- 16 tokens at 500, one -1", 1024, 1280, 16, 500, L_PACKED,
      L_PACKED },
  };
  Rng r = rng_new (5);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t m = cases[ci].m, d = cases[ci].d, n = cases[ci].n;
    float *dv, *sv;
    dsk_tensor dst = t_rand (c, &r, DSK_F32, 2, NE (m, d), cases[ci].dlay, 1.0, &dv);
    dsk_tensor src = t_rand (c, &r, DSK_F32, 2, NE (n, d), cases[ci].slay, 1.0, &sv);
    int32_t *idx = hmem (c, n * sizeof (int32_t));
    int32_t *perm = hmem (c, m * sizeof (int32_t));
    for (size_t i = 0; i < m; i++)
      perm[i] = (int32_t) i;
    for (size_t i = m - 1; i > 0; i--) {
      size_t j = rng_below (&r, i + 1);
      int32_t s = perm[i];
      perm[i] = perm[j];
      perm[j] = s;
    }
    for (size_t i = 0; i < n; i++)
      idx[i] = cases[ci].first ? (int32_t) (cases[ci].first + i) : perm[i];
    idx[n / 2] = -1;
    dsk_tensor it = idx_tensor (c, idx, n);
    dsk_set_rows (c->be, &dst, &src, &it);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &dst);
    float *want = hf (c, m * d);
    memcpy (want, dv, m * d * sizeof (float));
    for (size_t i = 0; i < n; i++)
      if (idx[i] >= 0)
        memcpy (want + (size_t) idx[i] * d, sv + i * d, d * sizeof (float));
    Err e = { 0 };
    for (size_t i = 0; i < m * d; i++)
      err_add (&e, i, got[i], want[i]);
    check_gaps (c, &dst, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 6, 8);
  k.t[1] = t2 (c, DSK_F32, 3, 8);
  k.t[2] = idx_tensor (c, (const int32_t[]) { 4, -1, 0 }, 3);
  call_fill (c, &r, &k, 1);
  const Mut mu[3] = { MUT (M_NARROW, 1, 1), MUT_DT (1, DSK_BF16), MUT_DEV (2) };
  check_refusals (c, &k, c_set_rows, mu);
}

/* ==== elementwise ==== */

typedef struct {
  const char *what;
  int nd;
  size_t ne[DSK_MAX_DIMS];
  int xlay, ylay;
  gboolean in_place;
  double a;            /* inputs in [-a, a) */
  int special;         /* SP_* */
  gboolean slow;
} ucase;

enum { SP_NONE, SP_NEG_INF, SP_BF16, SP_F16 };

static const ucase unary_cases[] = {
  { "[7, 100]", 2, { 7, 100 }, L_PACKED, L_PACKED, FALSE, 6.0 },
  { "[5, 33] strided x and y", 2, { 5, 33 }, L_PAD, L_PAD, FALSE, 4.0 },
  { "[2, 3, 40] in place", 3, { 2, 3, 40 }, L_PACKED, L_PACKED, TRUE, 4.0 },
  { "[4, 6, 24] transposed x", 3, { 4, 6, 24 }, L_SWAP01, L_PACKED, FALSE, 3.0 },
  { "[3, 2, 5, 7] transposed y", 4, { 3, 2, 5, 7 }, L_PACKED, L_SWAP12, FALSE, 3.0 },
  { "[1, 1]", 2, { 1, 1 }, L_PACKED, L_PACKED, FALSE, 1.0 },
  { "[9, 70], large arguments", 2, { 9, 70 }, L_PACKED, L_PACKED, FALSE, 60.0 },
};

typedef enum { U_SILU, U_GELU, U_QUICK_GELU, U_SOFTMAX, U_ROUND } ukind;

static double
ref_silu (double x)
{
  return x / (1.0 + exp (-x));
}

static double
ref_gelu (double x)
{
  return 0.5 * x * (1.0 + erf (x / sqrt (2.0)));
}

static double
ref_quick_gelu (double x)
{
  return x / (1.0 + exp (-1.702 * x));
}

/* softmax of rows of @len in double; a row of -inf gives zeros */
static void
ref_softmax (const float *x, double *y, size_t rows, size_t len)
{
  for (size_t i = 0; i < rows; i++) {
    const float *xr = x + i * len;
    double *yr = y + i * len, m = -INFINITY, s = 0.0;
    for (size_t j = 0; j < len; j++)
      m = MAX (m, (double) xr[j]);
    for (size_t j = 0; j < len; j++) {
      yr[j] = m == -INFINITY ? 0.0 : exp ((double) xr[j] - m);
      s += yr[j];
    }
    for (size_t j = 0; j < len; j++)
      yr[j] = s > 0.0 ? yr[j] / s : 0.0;
  }
}

static void
c_unary (dsk_backend *be, const Call *k)
{
  switch ((ukind) k->mode) {
    case U_SILU: dsk_silu (be, &k->t[0], &k->t[1]); break;
    case U_GELU: dsk_gelu (be, &k->t[0], &k->t[1]); break;
    case U_QUICK_GELU: dsk_quick_gelu (be, &k->t[0], &k->t[1]); break;
    case U_SOFTMAX: dsk_softmax (be, &k->t[0], &k->t[1]); break;
    case U_ROUND: dsk_round (be, &k->t[0], &k->t[1], k->dt); break;
  }
}

static void
unary_case (Ctx *c, Rng *r, ukind kind, dsk_dtype rdt, const ucase *uc)
{
  const size_t n = n_of (uc->nd, uc->ne), len = uc->ne[uc->nd - 1];
  char what[160];
  snprintf (what, sizeof what, "%s%s", kind == U_ROUND ? (rdt == DSK_BF16 ? "to BF16 " : "to F16 ")
                                                       : "", uc->what);
  float *xv;
  dsk_tensor x = t_lay (c, DSK_F32, uc->nd, uc->ne, uc->xlay);
  xv = rnd (c, r, n, uc->a);
  if (uc->special == SP_NEG_INF && n >= 3 * len) {
    for (size_t j = 0; j < len; j++) {
      xv[j] = j == len / 2 ? xv[j] : -INFINITY;   /* one finite entry */
      xv[len + j] = -INFINITY;                      /* a row that sees nothing */
      if (j % 3 == 0)
        xv[2 * len + j] = -INFINITY;
    }
  }
  const float *sp = uc->special == SP_BF16 ? bf16_specials : uc->special == SP_F16 ? f16_specials
                                                                                   : NULL;
  const size_t n_sp = uc->special == SP_BF16 ? G_N_ELEMENTS (bf16_specials)
                                             : G_N_ELEMENTS (f16_specials);
  for (size_t i = 0; sp && i < n_sp && i < n; i++)
    xv[i] = sp[i];
  t_set (c, &x, xv);
  dsk_tensor y = uc->in_place ? x : t_lay (c, DSK_F32, uc->nd, uc->ne, uc->ylay);
  Call k = { .mode = kind, .dt = rdt };
  k.t[0] = y;
  k.t[1] = x;
  c_unary (c->be, &k);
  if (!ran (c, what)) {
    case_free (c);
    return;
  }
  float *got = t_get (c, &y);
  double *want = hd (c, n);
  if (kind == U_SOFTMAX)
    ref_softmax (xv, want, n / len, len);
  for (size_t i = 0; i < n && kind != U_SOFTMAX; i++)
    want[i] = kind == U_SILU ? ref_silu (xv[i]) : kind == U_GELU ? ref_gelu (xv[i])
            : kind == U_QUICK_GELU ? ref_quick_gelu (xv[i])
            : rdt == DSK_BF16 ? ref_bf16 (xv[i]) : ref_f16 (xv[i]);
  Err e = { 0 };
  for (size_t i = 0; i < n; i++)
    err_add (&e, i, got[i], want[i]);
  check_gaps (c, &y, what);
  case_end (c, what, &e);
  case_free (c);
}

static void
unary_test (Ctx *c, ukind kind, const ucase *extra, size_t n_extra)
{
  Rng r = rng_new (10 + (uint64_t) kind);
  const int n_dt = kind == U_ROUND ? 2 : 1;
  for (int di = 0; di < n_dt; di++) {
    const dsk_dtype rdt = di == 0 ? DSK_BF16 : DSK_F16;
    for (size_t ci = 0; ci < G_N_ELEMENTS (unary_cases); ci++) {
      ucase uc = unary_cases[ci];
      if (kind == U_SOFTMAX && ci == 0)
        uc.special = SP_NEG_INF;
      if (kind == U_ROUND && ci == 0)
        uc.special = rdt == DSK_BF16 ? SP_BF16 : SP_F16;
      unary_case (c, &r, kind, rdt, &uc);
    }
    for (size_t ci = 0; ci < n_extra; ci++) {
      ucase uc = extra[ci];
      if (uc.slow && quick)
        continue;
      if (kind == U_ROUND && uc.special)
        uc.special = rdt == DSK_BF16 ? SP_BF16 : SP_F16;
      unary_case (c, &r, kind, rdt, &uc);
    }
  }

  Call k = { .n_out = 1, .out = { 0 }, .mode = kind, .dt = DSK_BF16 };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  k.t[1] = t2 (c, DSK_F32, 4, 6);
  call_fill (c, &r, &k, 1);
  const Mut m[3] = { MUT (M_NARROW, 1, 1), MUT_DT (1, kind == U_ROUND ? DSK_BF16 : DSK_I32),
                     MUT_DEV (1) };
  check_refusals (c, &k, c_unary, m);
}

static void
test_silu (Ctx *c)
{
  static const ucase extra[] = {
    { "[300, 1792]: the shared experts' hidden", 2, { 300, 1792 }, L_PACKED, L_PACKED, FALSE, 5.0 },
  };
  unary_test (c, U_SILU, extra, G_N_ELEMENTS (extra));
}

static void
test_gelu (Ctx *c)
{
  static const ucase extra[] = {
    { "[1024, 3072]: SAM ViT-B's MLP (1024 of its tokens), in place", 2, { 1024, 3072 }, L_PACKED,
      L_PACKED, TRUE, 5.0 },
  };
  unary_test (c, U_GELU, extra, G_N_ELEMENTS (extra));
}

static void
test_quick_gelu (Ctx *c)
{
  static const ucase extra[] = {
    { "[257, 4096]: CLIP-L's MLP, in place", 2, { 257, 4096 }, L_PACKED, L_PACKED, TRUE, 5.0 },
  };
  unary_test (c, U_QUICK_GELU, extra, G_N_ELEMENTS (extra));
}

static void
test_softmax (Ctx *c)
{
  static const ucase extra[] = {
    { "[6, 64]: -inf entries and a row of -inf", 2, { 6, 64 }, L_PAD, L_PAD, FALSE, 8.0,
      SP_NEG_INF },
    { "[120, 4096]: attention rows, in place", 2, { 120, 4096 }, L_PACKED, L_PACKED, TRUE, 8.0,
      SP_NEG_INF },
  };
  unary_test (c, U_SOFTMAX, extra, G_N_ELEMENTS (extra));
}

static void
test_round (Ctx *c)
{
  static const ucase extra[] = {
    { "[300, 1280]", 2, { 300, 1280 }, L_PACKED, L_PAD, FALSE, 3.0, SP_BF16 },
  };
  unary_test (c, U_ROUND, extra, G_N_ELEMENTS (extra));
}

static void
c_swiglu (dsk_backend *be, const Call *k)
{
  dsk_swiglu (be, &k->t[0], &k->t[1], &k->t[2]);
}

static void
test_swiglu (Ctx *c)
{
  static const struct {
    const char *what;
    int nd;
    size_t ne[DSK_MAX_DIMS];
    int glay, ulay, ylay;
    int in_place;   /* 1: y is gate, 2: y is up */
  } cases[] = {
    { "[7, 100]", 2, { 7, 100 }, L_PACKED, L_PACKED, L_PACKED, 0 },
    { "[5, 33] strided", 2, { 5, 33 }, L_PAD, L_PAD, L_PAD, 0 },
    { "[2, 3, 40] into gate", 3, { 2, 3, 40 }, L_PACKED, L_PACKED, L_PACKED, 1 },
    { "[4, 6, 24] into up, transposed gate", 3, { 4, 6, 24 }, L_SWAP01, L_PACKED, L_PACKED, 2 },
    { "[32, 896]: routed experts' hidden", 2, { 32, 896 }, L_PACKED, L_PACKED, L_PACKED, 0 },
    { "[300, 1792]: the shared experts' hidden, into gate", 2, { 300, 1792 }, L_PACKED, L_PACKED,
      L_PACKED, 1 },
  };
  Rng r = rng_new (20);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t n = n_of (cases[ci].nd, cases[ci].ne);
    float *gv, *uv;
    dsk_tensor g = t_rand (c, &r, DSK_F32, cases[ci].nd, cases[ci].ne, cases[ci].glay, 6.0, &gv);
    dsk_tensor u = t_rand (c, &r, DSK_F32, cases[ci].nd, cases[ci].ne, cases[ci].ulay, 3.0, &uv);
    dsk_tensor y = cases[ci].in_place == 1 ? g : cases[ci].in_place == 2 ? u
                 : t_lay (c, DSK_F32, cases[ci].nd, cases[ci].ne, cases[ci].ylay);
    dsk_swiglu (c->be, &y, &g, &u);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &y);
    Err e = { 0 };
    for (size_t i = 0; i < n; i++)
      err_add (&e, i, got[i], ref_silu (gv[i]) * uv[i]);
    check_gaps (c, &y, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  k.t[1] = t2 (c, DSK_F32, 4, 6);
  k.t[2] = t2 (c, DSK_F32, 4, 6);
  call_fill (c, &r, &k, 1);
  call_fill (c, &r, &k, 2);
  const Mut m[3] = { MUT (M_NARROW, 2, 0), MUT_DT (2, DSK_I32), MUT_DEV (2) };
  check_refusals (c, &k, c_swiglu, m);
}

static void
c_add (dsk_backend *be, const Call *k)
{
  dsk_add (be, &k->t[0], &k->t[1], &k->t[2]);
}

static void
test_add (Ctx *c)
{
  static const struct {
    const char *what;
    int nd;
    size_t ne[DSK_MAX_DIMS];
    int bnd;          /* b's dimensions: a's trailing ones */
    int alay, ylay;
    gboolean in_place, bexpand;   /* bexpand: b one row repeated at stride 0 */
  } cases[] = {
    { "[7, 33] + [7, 33]", 2, { 7, 33 }, 2, L_PACKED, L_PACKED, FALSE, FALSE },
    { "[7, 33] + [33]", 2, { 7, 33 }, 1, L_PACKED, L_PACKED, FALSE, FALSE },
    { "[2, 3, 40] + [3, 40]", 3, { 2, 3, 40 }, 2, L_PACKED, L_PACKED, FALSE, FALSE },
    { "[5, 64] += [5, 64] in place", 2, { 5, 64 }, 2, L_PACKED, L_PACKED, TRUE, FALSE },
    { "[6, 20] strided + [20], strided y", 2, { 6, 20 }, 1, L_PAD, L_PAD, FALSE, FALSE },
    { "[4, 33] + one row at stride 0", 2, { 4, 33 }, 2, L_PACKED, L_PACKED, FALSE, TRUE },
    { "[3, 4, 16] transposed + [16]", 3, { 3, 4, 16 }, 1, L_SWAP01, L_PACKED, FALSE, FALSE },
    { "[2, 3, 4, 8] + [3, 4, 8] into a transposed y", 4, { 2, 3, 4, 8 }, 3, L_PACKED, L_SWAP12,
      FALSE, FALSE },
    { "residual [300, 1280] += [300, 1280] in place", 2, { 300, 1280 }, 2, L_PACKED, L_PACKED,
      TRUE, FALSE },
  };
  Rng r = rng_new (30);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const int nd = cases[ci].nd, bnd = cases[ci].bnd;
    const size_t n = n_of (nd, cases[ci].ne);
    const size_t *bne = cases[ci].ne + (nd - bnd);
    const size_t nb = n_of (bnd, bne);
    float *av, *bv;
    dsk_tensor a = t_rand (c, &r, DSK_F32, nd, cases[ci].ne, cases[ci].alay, 2.0, &av);
    dsk_tensor b;
    if (cases[ci].bexpand) {
      float *row;
      b = t_rand (c, &r, DSK_F32, 2, NE (1, bne[1]), L_PACKED, 2.0, &row);
      b = dsk_expand (&b, 0, bne[0]);
      bv = hf (c, nb);
      for (size_t i = 0; i < nb; i++)
        bv[i] = row[i % bne[1]];
    } else {
      b = t_rand (c, &r, DSK_F32, bnd, bne, L_PACKED, 2.0, &bv);
    }
    dsk_tensor y = cases[ci].in_place ? a : t_lay (c, DSK_F32, nd, cases[ci].ne, cases[ci].ylay);
    dsk_add (c->be, &y, &a, &b);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &y);
    Err e = { 0 };
    for (size_t i = 0; i < n; i++)
      err_add (&e, i, got[i], (double) av[i] + bv[i % nb]);
    check_gaps (c, &y, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 4, 6);
  k.t[1] = t2 (c, DSK_F32, 4, 6);
  k.t[2] = t1 (c, DSK_F32, 6);
  call_fill (c, &r, &k, 1);
  call_fill (c, &r, &k, 2);
  const Mut m[3] = { MUT (M_NARROW, 2, 0), MUT_DT (2, DSK_I32), MUT_DEV (2) };
  check_refusals (c, &k, c_add, m);
}

/* ==== norms ==== */

typedef struct {
  const char *what;
  int nd;
  size_t ne[DSK_MAX_DIMS];
  int xlay, ylay;
  dsk_dtype wdt;
  gboolean in_place;
  size_t fused;     /* > 0: x is the first columns of rows this long (MLA's kv_a output) */
  int affine;       /* layernorm: 0 none, 1 w and b, 2 w only, 3 b only */
  float eps;
  gboolean slow;
} ncase;

static void
c_rmsnorm (dsk_backend *be, const Call *k)
{
  dsk_rmsnorm (be, &k->t[0], &k->t[1], &k->t[2], k->f);
}

static void
c_layernorm (dsk_backend *be, const Call *k)
{
  dsk_layernorm (be, &k->t[0], &k->t[1], ARG (k, 2), ARG (k, 3), k->f);
}

static void
norm_case (Ctx *c, Rng *r, gboolean layer, const ncase *nc)
{
  const size_t n = n_of (nc->nd, nc->ne), d = nc->ne[nc->nd - 1], rows = n / d;
  float *xv = rnd (c, r, n, 1.0), *wv = NULL, *bv = NULL;
  dsk_tensor x, w, b;
  for (size_t i = 0; layer && i < n; i++)
    xv[i] += 3.0f * (float) ((i / d) % 3);   /* rows with a mean: LayerNorm subtracts it */
  if (nc->fused) {
    dsk_tensor f = t2 (c, DSK_F32, nc->ne[0], nc->fused);
    x = dsk_narrow (&f, 1, 0, d);
  } else {
    x = t_lay (c, DSK_F32, nc->nd, nc->ne, nc->xlay);
  }
  t_set (c, &x, xv);
  dsk_tensor y = nc->in_place ? x : t_lay (c, DSK_F32, nc->nd, nc->ne, nc->ylay);
  if (!layer || nc->affine == 1 || nc->affine == 2) {
    w = t1 (c, nc->wdt, d);
    wv = rnd (c, r, d, 1.0);
    for (size_t j = 0; j < d; j++)
      wv[j] += 1.0f;
    t_set (c, &w, wv);
  }
  if (layer && (nc->affine == 1 || nc->affine == 3)) {
    b = t1 (c, nc->wdt, d);
    bv = rnd (c, r, d, 0.5);
    t_set (c, &b, bv);
  }
  if (layer)
    dsk_layernorm (c->be, &y, &x, wv ? &w : NULL, bv ? &b : NULL, nc->eps);
  else
    dsk_rmsnorm (c->be, &y, &x, &w, nc->eps);
  if (!ran (c, nc->what)) {
    case_free (c);
    return;
  }
  float *got = t_get (c, &y);
  Err e = { 0 };
  for (size_t i = 0; i < rows; i++) {
    const float *xr = xv + i * d;
    double s = 0.0, v = 0.0;
    for (size_t j = 0; j < d; j++)
      s += layer ? (double) xr[j] : (double) xr[j] * xr[j];
    const double mean = s / (double) d;
    for (size_t j = 0; layer && j < d; j++)
      v += ((double) xr[j] - mean) * ((double) xr[j] - mean);
    const double rstd = layer ? 1.0 / sqrt (v / (double) d + nc->eps)
                              : 1.0 / sqrt (mean + nc->eps);
    for (size_t j = 0; j < d; j++) {
      double want = ((double) xr[j] - (layer ? mean : 0.0)) * rstd;
      if (wv)
        want *= wv[j];
      if (bv)
        want += bv[j];
      err_add (&e, i * d + j, got[i * d + j], want);
    }
  }
  check_gaps (c, &y, nc->what);
  case_end (c, nc->what, &e);
  case_free (c);
}

static void
test_rmsnorm (Ctx *c)
{
  static const ncase cases[] = {
    { "[7, 64], F32 w", 2, { 7, 64 }, L_PACKED, L_PACKED, DSK_F32, .eps = 1e-6f },
    { "[5, 96], BF16 w, strided rows", 2, { 5, 96 }, L_PAD, L_PAD, DSK_BF16, .eps = 1e-6f },
    { "[4, 48], F16 w, in place", 2, { 4, 48 }, L_PACKED, L_PACKED, DSK_F16, TRUE, .eps = 1e-5f },
    { "[2, 5, 64], transposed x", 3, { 2, 5, 64 }, L_SWAP01, L_PACKED, DSK_F32, .eps = 1e-6f },
    { "[6, 512]: the first 512 of 576 columns (MLA's kv norm)", 2, { 6, 512 }, L_PACKED, L_PACKED,
      DSK_BF16, .fused = 576, .eps = 1e-6f },
    { "[300, 1280], BF16 w: the decoder's norms", 2, { 300, 1280 }, L_PACKED, L_PACKED, DSK_BF16,
      .eps = 1e-6f },
    { "[1, 1280], in place: a decode step", 2, { 1, 1280 }, L_PACKED, L_PACKED, DSK_F32, TRUE,
      .eps = 1e-6f },
  };
  Rng r = rng_new (40);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    norm_case (c, &r, FALSE, &cases[ci]);

  Call k = { .n_out = 1, .out = { 0 }, .f = 1e-6f };
  k.t[0] = t2 (c, DSK_F32, 4, 32);
  k.t[1] = t2 (c, DSK_F32, 4, 32);
  k.t[2] = t1 (c, DSK_F32, 32);
  call_fill (c, &r, &k, 1);
  call_fill (c, &r, &k, 2);
  const Mut m[3] = { MUT (M_NARROW, 2, 0), MUT_DT (2, DSK_I32), MUT_DEV (1) };
  check_refusals (c, &k, c_rmsnorm, m);
}

static void
test_layernorm (Ctx *c)
{
  static const ncase cases[] = {
    { "[7, 768], F32 w and b", 2, { 7, 768 }, L_PACKED, L_PACKED, DSK_F32, .affine = 1,
      .eps = 1e-6f },
    { "[5, 64], no w or b", 2, { 5, 64 }, L_PACKED, L_PACKED, DSK_F32, .affine = 0, .eps = 1e-5f },
    { "[4, 32], F16 w only", 2, { 4, 32 }, L_PACKED, L_PACKED, DSK_F16, .affine = 2,
      .eps = 1e-5f },
    { "[4, 32], b only", 2, { 4, 32 }, L_PACKED, L_PACKED, DSK_F32, .affine = 3, .eps = 1e-5f },
    { "[6, 40], BF16 w and b, strided rows in place", 2, { 6, 40 }, L_PAD, L_PAD, DSK_BF16, TRUE,
      .affine = 1, .eps = 1e-5f },
    { "[2, 3, 50], transposed x", 3, { 2, 3, 50 }, L_SWAP01, L_PAD, DSK_F32, .affine = 1,
      .eps = 1e-5f },
    { "[257, 1024], BF16 w and b: CLIP-L", 2, { 257, 1024 }, L_PACKED, L_PACKED, DSK_BF16,
      .affine = 1, .eps = 1e-5f },
    { "[4096, 256]: SAM's neck LayerNorm2d (channels last)", 2, { 4096, 256 }, L_PACKED,
      L_PACKED, DSK_F32, .affine = 1, .eps = 1e-6f, .slow = TRUE },
  };
  Rng r = rng_new (41);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    if (!(cases[ci].slow && quick))
      norm_case (c, &r, TRUE, &cases[ci]);

  Call k = { .n_out = 1, .out = { 0 }, .f = 1e-5f };
  k.t[0] = t2 (c, DSK_F32, 4, 32);
  k.t[1] = t2 (c, DSK_F32, 4, 32);
  k.t[2] = t1 (c, DSK_F32, 32);
  k.t[3] = t1 (c, DSK_F32, 32);
  for (int i = 1; i < 4; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 3, 0), MUT_DT (2, DSK_I32), MUT_DEV (2) };
  check_refusals (c, &k, c_layernorm, m);
}

/* ==== rotary position embedding ==== */

/* 1 / theta^(2i / rot_dim), in f32 */
static float *
inv_freq_of (Ctx *c, size_t rot_dim, double theta)
{
  float *f = hf (c, rot_dim / 2);
  for (size_t i = 0; i < rot_dim / 2; i++)
    f[i] = (float) (1.0 / pow (theta, (double) (2 * i) / (double) rot_dim));
  return f;
}

static void
c_rope_tables (dsk_backend *be, const Call *k)
{
  dsk_rope_tables (be, &k->t[0], &k->t[1], &k->t[2], k->f);
}

/* The angle is the f32 product p * inv_freq[i], as torch forms it (its tables are F32); the
 * reference rounds that product to f32 and takes its cosine and sine in double. At position
 * 8000 an angle's f32 rounding alone is 5e-4, far above any bound, so this is the meaning
 * backend.h's F32 tables carry. */
static void
test_rope_tables (Ctx *c)
{
  static const struct {
    const char *what;
    size_t rot_dim, n_pos;
    double theta;
    float attn_factor;
  } cases[] = {
    { "rot 16, 50 positions", 16, 50, 10000.0, 1.0f },
    { "rot 64, 300 positions, attn_factor 0.8 (YaRN's mscale)", 64, 300, 10000.0, 0.8f },
    { "rot 128, 8192 positions, theta 10000: the decoder's", 128, 8192, 10000.0, 1.0f },
  };
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t half = cases[ci].rot_dim / 2, n_pos = cases[ci].n_pos;
    float *inv = inv_freq_of (c, cases[ci].rot_dim, cases[ci].theta);
    dsk_tensor it = t1 (c, DSK_F32, half);
    dsk_tensor ct = t2 (c, DSK_F32, n_pos, half), st = t2 (c, DSK_F32, n_pos, half);
    t_set (c, &it, inv);
    dsk_rope_tables (c->be, &ct, &st, &it, cases[ci].attn_factor);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *gc = t_get (c, &ct), *gs = t_get (c, &st);
    Err e = { 0 };
    for (size_t p = 0; p < n_pos; p++)
      for (size_t i = 0; i < half; i++) {
        const double angle = (float) ((double) p * inv[i]);
        err_add (&e, 2 * (p * half + i), gc[p * half + i], cos (angle) * cases[ci].attn_factor);
        err_add (&e, 2 * (p * half + i) + 1, gs[p * half + i],
                 sin (angle) * cases[ci].attn_factor);
      }
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 2, .out = { 0, 1 }, .f = 1.0f };
  k.t[0] = t2 (c, DSK_F32, 10, 4);
  k.t[1] = t2 (c, DSK_F32, 10, 4);
  k.t[2] = t1 (c, DSK_F32, 4);
  t_set (c, &k.t[2], inv_freq_of (c, 8, 10000.0));
  const Mut m[3] = { MUT (M_NARROW, 2, 0), MUT_DT (2, DSK_BF16), MUT_DEV (2) };
  check_refusals (c, &k, c_rope_tables, m);
}

static void
c_rope (dsk_backend *be, const Call *k)
{
  dsk_rope (be, &k->t[0], &k->t[1], &k->t[2], &k->t[3], k->a, k->b, (dsk_rope_mode) k->mode);
}

enum { RL_PACKED, RL_PAD_HEADS, RL_FUSED, RL_HEAD_MAJOR };

static void
test_rope (Ctx *c)
{
  static const struct {
    const char *what;
    size_t T, H, d, rot_offset, rot_dim, n_pos;
    dsk_rope_mode mode;
    int lay;
    int sequential;   /* positions pos0, pos0 + 1, ... (else random) */
    size_t pos0;
  } cases[] = {
    { "HALF [5, 3, 16]", 5, 3, 16, 0, 16, 32, DSK_ROPE_HALF, RL_PACKED },
    { "INTERLEAVED [5, 3, 16]", 5, 3, 16, 0, 16, 32, DSK_ROPE_INTERLEAVED, RL_PACKED },
    { "HALF [6, 4, 192] at 128, 64 rotated, strided heads (MLA's q)", 6, 4, 192, 128, 64, 100,
      DSK_ROPE_HALF, RL_PAD_HEADS },
    { "INTERLEAVED [7, 1, 64]: k_pe, columns 512.. of a [7, 576] row", 7, 1, 64, 0, 64, 100,
      DSK_ROPE_INTERLEAVED, RL_FUSED },
    { "INTERLEAVED [4, 2, 40] at 8, 24 rotated, strided heads", 4, 2, 40, 8, 24, 20,
      DSK_ROPE_INTERLEAVED, RL_PAD_HEADS },
    { "HALF [5, 3, 32] head-major (transposed) view", 5, 3, 32, 0, 32, 16, DSK_ROPE_HALF,
      RL_HEAD_MAJOR },
    { "HALF [256, 10, 128]: the decoder's prefill", 256, 10, 128, 0, 128, 8192, DSK_ROPE_HALF,
      RL_PACKED, TRUE, 0 },
    { "HALF [1, 10, 128] at position 8000: a decode step", 1, 10, 128, 0, 128, 8192,
      DSK_ROPE_HALF, RL_PACKED, TRUE, 8000 },
  };
  Rng r = rng_new (51);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t T = cases[ci].T, H = cases[ci].H, d = cases[ci].d, n_pos = cases[ci].n_pos;
    const size_t half = cases[ci].rot_dim / 2, off = cases[ci].rot_offset, n = T * H * d;
    dsk_tensor x;
    switch (cases[ci].lay) {
      case RL_PAD_HEADS: {
        dsk_tensor w = t3 (c, DSK_F32, T, H, d + 6);
        x = dsk_narrow (&w, 2, 3, d);
        break;
      }
      case RL_FUSED: {
        dsk_tensor w = t2 (c, DSK_F32, T, 576);
        w = dsk_narrow (&w, 1, 512, 64);
        x = dsk_split (&w, 1, 1, 64);
        break;
      }
      case RL_HEAD_MAJOR:
        x = t_lay (c, DSK_F32, 3, NE (T, H, d), L_SWAP01);
        break;
      default:
        x = t3 (c, DSK_F32, T, H, d);
    }
    float *xv = rnd (c, &r, n, 1.0);
    t_set (c, &x, xv);
    /* tables of real angles, in f32 */
    float *inv = inv_freq_of (c, cases[ci].rot_dim, 10000.0);
    float *cv = hf (c, n_pos * half), *sv = hf (c, n_pos * half);
    for (size_t p = 0; p < n_pos; p++)
      for (size_t i = 0; i < half; i++) {
        cv[p * half + i] = (float) cos ((double) p * inv[i]);
        sv[p * half + i] = (float) sin ((double) p * inv[i]);
      }
    int32_t *pos = hmem (c, T * sizeof (int32_t));
    for (size_t t = 0; t < T; t++)
      pos[t] = (int32_t) (cases[ci].sequential ? cases[ci].pos0 + t : rng_below (&r, n_pos));
    dsk_tensor pt = idx_tensor (c, pos, T);
    dsk_tensor ct = t2 (c, DSK_F32, n_pos, half), st = t2 (c, DSK_F32, n_pos, half);
    t_set (c, &ct, cv);
    t_set (c, &st, sv);
    dsk_rope (c->be, &x, &pt, &ct, &st, off, cases[ci].rot_dim, cases[ci].mode);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &x);
    Err e = { 0 };
    double *want = hd (c, n);
    for (size_t i = 0; i < n; i++)
      want[i] = xv[i];
    for (size_t t = 0; t < T; t++)
      for (size_t h = 0; h < H; h++) {
        const float *xr = xv + (t * H + h) * d + off;
        double *wr = want + (t * H + h) * d + off;
        const float *cr = cv + (size_t) pos[t] * half, *sr = sv + (size_t) pos[t] * half;
        for (size_t i = 0; i < half; i++) {
          const size_t i0 = cases[ci].mode == DSK_ROPE_HALF ? i : 2 * i;
          const size_t i1 = cases[ci].mode == DSK_ROPE_HALF ? i + half : 2 * i + 1;
          wr[i0] = (double) xr[i0] * cr[i] - (double) xr[i1] * sr[i];
          wr[i1] = (double) xr[i1] * cr[i] + (double) xr[i0] * sr[i];
        }
      }
    for (size_t i = 0; i < n; i++)
      err_add (&e, i, got[i], want[i]);
    check_gaps (c, &x, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 }, .a = 0, .b = 8, .mode = DSK_ROPE_HALF };
  k.t[0] = t3 (c, DSK_F32, 3, 2, 8);
  k.t[1] = idx_tensor (c, (const int32_t[]) { 0, 4, 9 }, 3);
  k.t[2] = t2 (c, DSK_F32, 10, 4);
  k.t[3] = t2 (c, DSK_F32, 10, 4);
  for (int i = 2; i < 4; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 1, 0), MUT_DT (1, DSK_F32), MUT_DEV (2) };
  check_refusals (c, &k, c_rope, m);

  /* backend.h: positions are checked on the host backend */
  if (c->host) {
    dsk_tensor x = t3 (c, DSK_F32, 2, 1, 8), cs = t2 (c, DSK_F32, 10, 4);
    dsk_tensor sn = t2 (c, DSK_F32, 10, 4), pt = idx_tensor (c, (const int32_t[]) { 3, 10 }, 2);
    t_fill (c, &r, &cs);
    t_fill (c, &r, &sn);
    dsk_rope (c->be, &x, &pt, &cs, &sn, 0, 8, DSK_ROPE_HALF);
    expect_refusal (c, "a position past the tables", &x);
  }
}

/* ==== products ==== */

typedef struct {
  const char *what;
  size_t n, in, out;
  dsk_dtype wdt;
  gboolean bias, sx, sy;
  int wview;        /* 0 packed, 1 rows and columns of a larger matrix, 2 prepared from host
                     * memory at an odd address */
  gboolean slow;    /* dropped under DSOCR_QUICK */
  gboolean no_acc;  /* not repeated for linear_acc */
} lcase;

static const char *
dt_name (dsk_dtype dt)
{
  return dsk_dtype_name (dt);
}

/* ---- block-quantized weights (Q8, Q4) ----
 *
 * A case quantizes host f32 values with dsk_backend_quantize_weight, reads the codes back and
 * decodes them here, from the layout alone (kernels/cpu/quant.h: a row's codes, then its f16
 * scales, then for Q4 its f16 minimums; Q8 w = d (u - 128), Q4 w = d q + m; codes in groups of
 * 16 blocks, quad k of weights 4k .. 4k+3 of block l at byte k * 4 ng + 4 l of the group, Q4's
 * quads k and k + 4 sharing a byte as low and high nibble), so the reference multiplies the
 * values the backend holds and the bound is that of the product itself. */
static void
dequant_ref (const guint8 *bytes, dsk_dtype q, size_t rows, size_t cols, float *out)
{
  const size_t nb = cols / 32, code_bytes = q == DSK_Q8 ? cols : cols / 2;
  const size_t row_bytes = dsk_dtype_bytes (q, cols);
  for (size_t r = 0; r < rows; r++) {
    const guint8 *codes = bytes + r * row_bytes;
    const guint8 *sc = codes + code_bytes;
    for (size_t b = 0; b < nb; b++) {
      const size_t g0 = b / 16 * 16, ng = MIN (nb - g0, (size_t) 16), l = b - g0;
      const float d = dsk_f16_to_f32 ((uint16_t) (sc[2 * b] | sc[2 * b + 1] << 8));
      const float m = q == DSK_Q4 ? dsk_f16_to_f32 ((uint16_t) (sc[2 * (nb + b)] |
                                                               sc[2 * (nb + b) + 1] << 8))
                                  : 0.0f;
      for (size_t j = 0; j < 32; j++) {
        const size_t k = j / 4, i = j % 4;
        float w;
        if (q == DSK_Q8) {
          w = d * (float) ((int) codes[g0 * 32 + k * 4 * ng + 4 * l + i] - 128);
        } else {
          const guint8 byte = codes[g0 * 16 + (k % 4) * 4 * ng + 4 * l + i];
          w = d * (float) (k >= 4 ? byte >> 4 : byte & 15) + m;
        }
        out[r * cols + b * 32 + j] = w;
      }
    }
  }
}

/* A [rows, cols] weight in @q made from the values @v on the backend through @storage; @v
 * becomes the values it holds. Data NULL (and the backend's error set) when it has no @q. */
static dsk_tensor
quant_weight (Ctx *c, dsk_dtype q, size_t rows, size_t cols, float *v,
              dsk_weight_storage *storage)
{
  dsk_tensor host = dsk_tensor_host_2d (v, DSK_F32, rows, cols);
  dsk_tensor w = dsk_backend_quantize_weight (c->be, &host, q, storage);
  if (w.data) {
    guint8 *bytes = hmem (c, dsk_dtype_bytes (q, rows * cols));
    dsk_tensor_get (c->be, &w, bytes);
    dequant_ref (bytes, q, rows, cols, v);
  }
  return w;
}

/* The weight [out, in] of a case holding random values scaled like 1/sqrt(in). */
static dsk_tensor
weight_new (Ctx *c, Rng *r, dsk_dtype dt, size_t out, size_t in, int view, float **vals,
            dsk_weight_storage **storage)
{
  float *v = rnd (c, r, out * in, 1.0 / sqrt ((double) in));
  dsk_tensor w;
  if (view == 1) {
    dsk_tensor big = t2 (c, dt, out + 5, in + 8);
    big = dsk_narrow (&big, 0, 2, out);
    w = dsk_narrow (&big, 1, 3, in);
    t_set (c, &w, v);
  } else if (view == 2) {
    const size_t es = dsk_dtype_size (dt);
    uint16_t *h16 = g_new (uint16_t, out * in);
    guint8 *raw = hmem (c, out * in * es + 1);
    for (size_t i = 0; i < out * in; i++)
      if (dt != DSK_F32)
        v[i] = round_to (dt, v[i], &h16[i]);
    memcpy (raw + 1, dt == DSK_F32 ? (const void *) v : (const void *) h16, out * in * es);
    g_free (h16);
    dsk_tensor host = dsk_tensor_host_2d (raw + 1, dt, out, in);
    *storage = dsk_weight_storage_new ();
    w = dsk_backend_prepare_weight (c->be, &host, *storage);
  } else if (dt == DSK_Q8 || dt == DSK_Q4) {
    *storage = dsk_weight_storage_new ();
    w = quant_weight (c, dt, out, in, v, *storage);
  } else {
    w = t2 (c, dt, out, in);
    t_set (c, &w, v);
  }
  *vals = v;
  return w;
}

static void
c_linear (dsk_backend *be, const Call *k)
{
  if (k->mode)
    dsk_linear_acc (be, &k->t[0], &k->t[1], &k->t[2], ARG (k, 3));
  else
    dsk_linear (be, &k->t[0], &k->t[1], &k->t[2], ARG (k, 3));
}

static void
linear_case (Ctx *c, Rng *r, gboolean acc, const lcase *lc)
{
  const size_t n = lc->n, in = lc->in, out = lc->out;
  char what[200];
  snprintf (what, sizeof what, "%s: n %zu, %zu -> %zu, %s%s%s%s%s%s", lc->what, n, in, out,
            dt_name (lc->wdt), lc->bias ? ", bias" : "", lc->sx ? ", strided x" : "",
            lc->sy ? ", strided y" : "", lc->wview == 1 ? ", a weight view" : "",
            lc->wview == 2 ? ", a prepared weight" : "");
  float *xv, *wv, *bv = NULL, *y0 = NULL;
  dsk_weight_storage *storage = NULL;
  dsk_tensor x = t_rand (c, r, DSK_F32, 2, NE (n, in), lc->sx ? L_PAD : L_PACKED, 1.0, &xv);
  dsk_tensor w = weight_new (c, r, lc->wdt, out, in, lc->wview, &wv, &storage);
  dsk_tensor b, y = t_lay (c, DSK_F32, 2, NE (n, out), lc->sy ? L_PAD : L_PACKED);
  const gboolean quant = lc->wdt == DSK_Q8 || lc->wdt == DSK_Q4;
  if (lc->bias)
    b = t_rand (c, r, quant ? DSK_BF16 : lc->wdt, 1, NE (out), L_PACKED, 0.5, &bv);
  if (acc) {
    y0 = rnd (c, r, n * out, 1.0);
    t_set (c, &y, y0);
  }
  Call k = { .mode = acc, .absent = lc->bias ? 0 : 1u << 3 };
  k.t[0] = y;
  k.t[1] = x;
  k.t[2] = w;
  k.t[3] = lc->bias ? b : y;
  c_linear (c->be, &k);
  if (!ran (c, what)) {
    dsk_weight_storage_free (storage);
    case_free (c);
    return;
  }
  float *got = t_get (c, &y);
  Err e = { 0 };
  const size_t step = row_step (n, (double) in * out);
  for (size_t i = 0; i < n; i++) {
    if (!row_checked (i, n, step))
      continue;
    for (size_t o = 0; o < out; o++) {
      double s = bv ? bv[o] : 0.0;
      const float *xr = xv + i * in, *wr = wv + o * in;
      for (size_t j = 0; j < in; j++)
        s += (double) xr[j] * wr[j];
      if (y0)
        s += y0[i * out + o];
      err_add (&e, i * out + o, got[i * out + o], s);
    }
  }
  if (step > 1)
    g_strlcat (what, " (rows sampled)", sizeof what);
  check_gaps (c, &y, what);
  /* quantized weights against few tokens: the backend may quantize the activations to 8 bits
   * per block of 32 too (integer products), which is their own error (QUANT_X_BOUND) */
  case_end_bound (c, what, &e, quant && n < 16 ? QUANT_X_BOUND : c->bound);
  dsk_weight_storage_free (storage);
  case_free (c);
}

static void
linear_test (Ctx *c, gboolean acc)
{
  static const size_t ns[] = { 1, 3, 8, 9, 40, 300 };
  static const dsk_dtype dts[] = { DSK_F32, DSK_BF16, DSK_F16 };
  static const lcase cases[] = {
    { "tiles, n < 16", 15, 72, 37, DSK_BF16, TRUE, TRUE, FALSE },
    { "packed from n = 16", 16, 72, 37, DSK_F16, FALSE, FALSE, TRUE },
    { "few outputs", 17, 20, 3, DSK_F32, TRUE, FALSE, FALSE },
    { "the BLAS rows", DSK_MM_BLAS_MIN_ROWS, 96, 80, DSK_F32, TRUE },
    { "the BLAS rows", DSK_MM_BLAS_MIN_ROWS, 64, 50, DSK_BF16, FALSE, TRUE, TRUE, 1 },
    { "the BLAS rows", DSK_MM_BLAS_MIN_ROWS + 76, 72, 37, DSK_F16, TRUE, FALSE, FALSE },
    { "decoder q projection, a decode step", 1, 1280, 1280, DSK_BF16, FALSE },
    { "lm_head (4096 of its rows)", 9, 1280, 4096, DSK_BF16, FALSE, .no_acc = TRUE },
    { "projector", 300, 2048, 1280, DSK_F32, TRUE, .slow = TRUE },
    { "CLIP-L fc1", 257, 1024, 4096, DSK_F32, TRUE, .no_acc = TRUE },
    { "SAM ViT-B MLP (1024 of its tokens)", 1024, 768, 3072, DSK_F32, TRUE, .slow = TRUE },
    { "SAM ViT-B qkv (1024 of its tokens)", 1024, 768, 2304, DSK_BF16, FALSE, FALSE, TRUE,
      .slow = TRUE, .no_acc = TRUE },
    /* the block formats: integer products for few tokens, widened rows for many; rows of
     * 96 (a partial 16-block group), 896 (a partial Q4 chunk), 1280 and 6848 */
    { "Q8, a decode step", 1, 1280, 1280, DSK_Q8, TRUE },
    { "Q4, a decode step", 1, 1280, 1280, DSK_Q4, FALSE, TRUE },
    { "Q8, few tokens", 5, 96, 37, DSK_Q8, FALSE, FALSE, TRUE },
    { "Q4, few tokens", 15, 96, 37, DSK_Q4, TRUE },
    { "Q4, expert down", 3, 896, 1280, DSK_Q4, FALSE },
    { "Q8, dense down", 2, 6848, 64, DSK_Q8, FALSE },
    { "Q4, dense down", 1, 6848, 64, DSK_Q4, FALSE },
    { "Q8, packed from n = 16", 16, 96, 37, DSK_Q8, TRUE, TRUE, FALSE },
    { "Q4, prefill", 40, 896, 100, DSK_Q4, TRUE },
    { "Q8, the BLAS rows", DSK_MM_BLAS_MIN_ROWS, 64, 50, DSK_Q8, FALSE, .slow = TRUE },
  };
  Rng r = rng_new (acc ? 61 : 60);
  int j = 0;
  for (size_t ni = 0; ni < G_N_ELEMENTS (ns); ni++)
    for (size_t di = 0; di < G_N_ELEMENTS (dts); di++, j++) {
      lcase lc = { "small", ns[ni], 72, 37, dts[di], j % 2 == 0, j % 3 == 1, j % 3 == 2,
                   j % 4 == 3 ? 1 : j == 5 || j == 13 ? 2 : 0 };
      linear_case (c, &r, acc, &lc);
    }
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    if (!(cases[ci].slow && quick) && !(acc && cases[ci].no_acc))
      linear_case (c, &r, acc, &cases[ci]);

  Call k = { .n_out = 1, .out = { 0 }, .mode = acc };
  k.t[0] = t2 (c, DSK_F32, 3, 5);
  k.t[1] = t2 (c, DSK_F32, 3, 8);
  k.t[2] = t2 (c, DSK_F32, 5, 8);
  k.t[3] = t1 (c, DSK_F32, 5);
  for (int i = 1; i < 4; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 1, 1), MUT_DT (2, DSK_I32), MUT_DEV (2) };
  check_refusals (c, &k, c_linear, m);
}

static void
test_linear (Ctx *c)
{
  linear_test (c, FALSE);
}

static void
test_linear_acc (Ctx *c)
{
  linear_test (c, TRUE);
}

static void
c_matmul (dsk_backend *be, const Call *k)
{
  dsk_matmul (be, &k->t[0], &k->t[1], &k->t[2]);
}

static void
test_matmul (Ctx *c)
{
  enum { PK, TR, PD };   /* packed, transposed 0/1 (heads inner in memory), padded rows */
  static const struct {
    const char *what;
    size_t B, n, k, m;
    dsk_dtype wdt;
    int xl, wl, yl;
    gboolean slow;
  } cases[] = {
    { "[3, 4, 16] x [3, 16, 24]", 3, 4, 16, 24, DSK_F32, PK, PK, PK },
    { "[4, 5, 32] x [4, 32, 20] BF16, x transposed", 4, 5, 32, 20, DSK_BF16, TR, PK, PK },
    { "[2, 3, 24] x [2, 24, 40] F16, strided w and y", 2, 3, 24, 40, DSK_F16, PK, PD, PD },
    { "[3, 2, 16] x [3, 16, 16], w and y transposed", 3, 2, 16, 16, DSK_F32, PD, TR, TR },
    { "MLA's absorbed query: 10 heads [1, 128] x [128, 512] BF16, q and out head-inner",
      10, 1, 128, 512, DSK_BF16, TR, PK, TR },
    { "the same for 16 tokens", 10, 16, 128, 512, DSK_BF16, TR, PK, TR, TRUE },
  };
  Rng r = rng_new (70);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    if (cases[ci].slow && quick)
      continue;
    const size_t B = cases[ci].B, n = cases[ci].n, K = cases[ci].k, m = cases[ci].m;
    static const int lay[] = { L_PACKED, L_SWAP01, L_PAD };
    float *xv, *wv = rnd (c, &r, B * K * m, 1.0 / sqrt ((double) K));
    dsk_tensor x = t_rand (c, &r, DSK_F32, 3, NE (B, n, K), lay[cases[ci].xl], 1.0, &xv);
    dsk_tensor w = t_lay (c, cases[ci].wdt, 3, NE (B, K, m), lay[cases[ci].wl]);
    dsk_tensor y = t_lay (c, DSK_F32, 3, NE (B, n, m), lay[cases[ci].yl]);
    t_set (c, &w, wv);
    dsk_matmul (c->be, &y, &x, &w);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &y);
    Err e = { 0 };
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) {
          double s = 0.0;
          for (size_t t = 0; t < K; t++)
            s += (double) xv[(b * n + i) * K + t] * wv[(b * K + t) * m + j];
          err_add (&e, (b * n + i) * m + j, got[(b * n + i) * m + j], s);
        }
    check_gaps (c, &y, cases[ci].what);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t3 (c, DSK_F32, 2, 3, 4);
  k.t[1] = t3 (c, DSK_F32, 2, 3, 5);
  k.t[2] = t3 (c, DSK_F32, 2, 5, 4);
  call_fill (c, &r, &k, 1);
  call_fill (c, &r, &k, 2);
  const Mut m[3] = { MUT (M_NARROW, 2, 1), MUT_DT (1, DSK_BF16), MUT_DEV (2) };
  check_refusals (c, &k, c_matmul, m);
}

/* ==== attention ==== */

/* One attention problem on the host, as the reference reads it: packed q [B, T, H, dqk],
 * k [B, S, Hk, dqk], v [B, S, Hk, dv]; valid [B, S]; bias [B, Hb, T, S]; rel_h [B, H, T, kvh],
 * rel_w [B, H, T, kvw]; sel_mask [T, S] (B = 1): the keys each query's selection names. */
typedef struct {
  size_t B, T, S, H, Hk, dqk, dv;
  const float *q, *k, *v;
  float scale;
  int causal;
  size_t pos0;
  const uint8_t *valid;
  const float *bias;
  size_t Hb;
  const float *rh, *rw;
  size_t kvh, kvw;
  const uint8_t *sel_mask;
} aprob;

static gboolean
ref_sees (const aprob *a, size_t b, size_t t, size_t s)
{
  return (!a->causal || s <= a->pos0 + t) && (!a->valid || a->valid[b * a->S + s]);
}

/* The attention probabilities of query t, head h of problem b into p[S]: softmax over the
 * keys it sees of scale q.k + bias + rel terms; all zero (and FALSE) when it sees none. */
static gboolean
ref_probs (const aprob *a, size_t b, size_t t, size_t h, double *p)
{
  const size_t hk = h / (a->H / a->Hk);
  const float *qr = a->q + ((b * a->T + t) * a->H + h) * a->dqk;
  double m = -INFINITY, sum = 0.0;
  for (size_t s = 0; s < a->S; s++) {
    if (!ref_sees (a, b, t, s) || (a->sel_mask && !a->sel_mask[t * a->S + s])) {
      p[s] = -INFINITY;
      continue;
    }
    const float *kr = a->k + ((b * a->S + s) * a->Hk + hk) * a->dqk;
    double d = 0.0;
    for (size_t i = 0; i < a->dqk; i++)
      d += (double) qr[i] * kr[i];
    d *= a->scale;
    if (a->bias)
      d += a->bias[((b * a->Hb + (a->Hb == 1 ? 0 : h)) * a->T + t) * a->S + s];
    if (a->rh)
      d += (double) a->rh[((b * a->H + h) * a->T + t) * a->kvh + s / a->kvw] +
           a->rw[((b * a->H + h) * a->T + t) * a->kvw + s % a->kvw];
    p[s] = d;
    m = MAX (m, d);
  }
  for (size_t s = 0; s < a->S; s++) {
    p[s] = m == -INFINITY || p[s] == -INFINITY ? 0.0 : exp (p[s] - m);
    sum += p[s];
  }
  for (size_t s = 0; s < a->S; s++)
    p[s] = sum > 0.0 ? p[s] / sum : 0.0;
  return m != -INFINITY;
}

/* out [dv] of query t, head h of problem b */
static void
ref_attend (const aprob *a, size_t b, size_t t, size_t h, double *p, double *out)
{
  const size_t hk = h / (a->H / a->Hk);
  ref_probs (a, b, t, h, p);
  memset (out, 0, a->dv * sizeof (double));
  for (size_t s = 0; s < a->S; s++) {
    if (p[s] == 0.0)
      continue;
    const float *vr = a->v + ((b * a->S + s) * a->Hk + hk) * a->dv;
    for (size_t i = 0; i < a->dv; i++)
      out[i] += p[s] * vr[i];
  }
}

enum { AV_NONE, AV_SOME, AV_BLIND };   /* AV_BLIND: problem 0's key 0 is padding */
enum { AB_NONE, AB_ONE, AB_ALL, AB_ROWS, AB_HEADS };
enum { AL_PACKED, AL_FUSED, AL_HEAD_MAJOR, AL_KV_BROADCAST };

typedef struct {
  const char *what;
  size_t B, T, S, H, Hkv, dqk, dv;
  int causal;
  size_t pos0;
  int valid;      /* AV_*: padding keys */
  int bias;       /* AB_*: none, one head, H heads, one row broadcast over the queries
                   * (stride 0), one head broadcast over the heads (stride 0) */
  size_t kv_h;    /* > 0: SAM's rel terms over a kv_h x (S / kv_h) grid of keys */
  int lay;        /* AL_*: packed; q, k, v slices of fused rows; head-major views (transposed);
                   * k and v one head broadcast over H (stride 0) */
  size_t K;       /* sparse forms: keys per selection */
  int sel_bad;    /* the selection of query 0 also names a padded and a future key */
  gboolean slow;
} acase;

/* The tensors of a case on the backend and its host problem. */
typedef struct {
  dsk_tensor q, k, v, out, valid, bias, rh, rw, sel;
  dsk_attention_desc desc;
  aprob a;
} atens;

static float
attn_scale (size_t dqk)
{
  return (float) (1.0 / sqrt ((double) dqk));
}

static void
att_build (Ctx *c, Rng *r, const acase *ac, gboolean with_v, atens *at)
{
  const size_t B = ac->B, T = ac->T, S = ac->S, H = ac->H, Hk = ac->Hkv;
  const size_t dqk = ac->dqk, dv = ac->dv;
  const size_t Hd = ac->lay == AL_KV_BROADCAST ? H : Hk;   /* kv heads the op sees */
  aprob *a = &at->a;
  memset (at, 0, sizeof *at);
  *a = (aprob) { B, T, S, H, Hk, dqk, dv, .scale = attn_scale (dqk), .causal = ac->causal,
                 .pos0 = ac->pos0 };
  float *qv = rnd (c, r, B * T * H * dqk, 2.0), *kv = rnd (c, r, B * S * Hk * dqk, 1.0);
  float *vv = with_v ? rnd (c, r, B * S * Hk * dv, 1.0) : NULL;
  a->q = qv;
  a->k = kv;
  a->v = vv;
  switch (ac->lay) {
    case AL_FUSED: {
      /* q in rows with room to spare, k and v side by side in one row per key */
      dsk_tensor qb = t3 (c, DSK_F32, B, T, H * dqk + 3);
      qb = dsk_narrow (&qb, 2, 1, H * dqk);
      at->q = dsk_split (&qb, 2, H, dqk);
      dsk_tensor kvb = t3 (c, DSK_F32, B, S, Hk * (dqk + dv) + 2);
      dsk_tensor kb = dsk_narrow (&kvb, 2, 0, Hk * dqk);
      dsk_tensor vb = dsk_narrow (&kvb, 2, Hk * dqk, Hk * dv);
      at->k = dsk_split (&kb, 2, Hk, dqk);
      at->v = dsk_split (&vb, 2, Hk, dv);
      dsk_tensor ob = t3 (c, DSK_F32, B, T, H * dv + 4);
      ob = dsk_narrow (&ob, 2, 2, H * dv);
      at->out = dsk_split (&ob, 2, H, dv);
      break;
    }
    case AL_HEAD_MAJOR:
      at->q = t_lay (c, DSK_F32, 4, NE (B, T, H, dqk), L_SWAP12);
      at->k = t_lay (c, DSK_F32, 4, NE (B, S, Hk, dqk), L_SWAP12);
      at->v = t_lay (c, DSK_F32, 4, NE (B, S, Hk, dv), L_SWAP12);
      at->out = t_lay (c, DSK_F32, 4, NE (B, T, H, dv), L_SWAP12);
      break;
    default:
      /* stride-0 views get room to spare in their buffers: a backend that misreads a zero
       * stride then gives a wrong value instead of reading past the buffer */
      at->q = t4 (c, DSK_F32, B, T, H, dqk);
      at->k = t_new_slack (c, DSK_F32, 4, NE (B, S, Hk, dqk), Hd != Hk ? H * dqk : 0);
      at->v = t_new_slack (c, DSK_F32, 4, NE (B, S, Hk, dv), Hd != Hk ? H * dv : 0);
      at->out = t4 (c, DSK_F32, B, T, H, dv);
  }
  t_set (c, &at->q, qv);
  t_set (c, &at->k, kv);
  if (with_v)
    t_set (c, &at->v, vv);
  if (Hd != Hk) {
    at->k = dsk_expand (&at->k, 2, Hd);
    at->v = dsk_expand (&at->v, 2, Hd);
  }
  at->desc = (dsk_attention_desc) { .scale = a->scale, .causal = ac->causal,
                                    .q_pos0 = ac->pos0 };
  if (ac->valid) {
    uint8_t *m = hmem (c, B * S);
    for (size_t b = 0; b < B; b++)
      for (size_t s = 0; s < S; s++)
        m[b * S + s] = ac->valid == AV_BLIND ? !(b == 0 && s == 0) && (s + b) % 5 != 2
                                             : s >= S / 10 && (s * 7 + b) % 9 != 4;
    at->valid = t2 (c, DSK_U8, B, S);
    dsk_tensor_set (c->be, &at->valid, m);
    at->desc.key_valid = &at->valid;
    a->valid = m;
  }
  if (ac->bias) {
    const size_t Hb = ac->bias == AB_ALL ? H : 1;
    float *bv = rnd (c, r, B * Hb * T * S, 1.0);
    if (ac->bias == AB_ROWS) {
      /* one row per problem, repeated over the queries */
      for (size_t b = 0; b < B; b++)
        for (size_t t = 1; t < T; t++)
          memcpy (bv + (b * T + t) * S, bv + b * T * S, S * sizeof (float));
      float *rows = hf (c, B * S);
      for (size_t b = 0; b < B; b++)
        memcpy (rows + b * S, bv + b * T * S, S * sizeof (float));
      at->bias = t_new_slack (c, DSK_F32, 4, NE (B, 1, 1, S), T * S);
      t_set (c, &at->bias, rows);
      at->bias = dsk_expand (&at->bias, 2, T);
    } else {
      at->bias = t_new_slack (c, DSK_F32, 4, NE (B, Hb, T, S),
                              ac->bias == AB_HEADS ? H * T * S : 0);
      t_set (c, &at->bias, bv);
      if (ac->bias == AB_HEADS)
        at->bias = dsk_expand (&at->bias, 1, H);
    }
    at->desc.bias = &at->bias;
    a->bias = bv;
    a->Hb = Hb;
  }
  if (ac->kv_h) {
    a->kvh = ac->kv_h;
    a->kvw = S / ac->kv_h;
    float *hv = rnd (c, r, B * H * T * a->kvh, 1.0), *wv = rnd (c, r, B * H * T * a->kvw, 1.0);
    at->rh = t4 (c, DSK_F32, B, H, T, a->kvh);
    at->rw = t4 (c, DSK_F32, B, H, T, a->kvw);
    t_set (c, &at->rh, hv);
    t_set (c, &at->rw, wv);
    at->desc.rel_h = &at->rh;
    at->desc.rel_w = &at->rw;
    a->rh = hv;
    a->rw = wv;
  }
  if (ac->K) {
    /* DeepSeek-V3.2's selection: a query that sees at most K keys names them all; one that sees
     * more names K - 3 of them (in any order) and three -1 */
    const size_t K = ac->K;
    int32_t *sel = hmem (c, T * K * sizeof (int32_t));
    uint8_t *mask = hmem (c, T * S);
    size_t *vis = hmem (c, S * sizeof (size_t));
    for (size_t t = 0; t < T; t++) {
      size_t nv = 0;
      for (size_t s = 0; s < S; s++)
        if (ref_sees (a, 0, t, s))
          vis[nv++] = s;
      for (size_t i = nv; i > 1; i--) {
        size_t j = rng_below (r, i), x = vis[i - 1];
        vis[i - 1] = vis[j];
        vis[j] = x;
      }
      const size_t take = nv <= K ? nv : K - 3;
      for (size_t j = 0; j < K; j++)
        sel[t * K + j] = j < take ? (int32_t) vis[j] : -1;
      if (ac->sel_bad && t == 0) {
        sel[K - 1] = 0;                                         /* padded (valid[0] is 0) */
        if (ac->pos0 + 1 < S)
          sel[K - 2] = (int32_t) (S - 1);                       /* in the future */
      }
      for (size_t j = 0; j < K; j++) {
        const size_t i = rng_below (r, K - j) + j;
        int32_t x = sel[t * K + j];
        sel[t * K + j] = sel[t * K + i];
        sel[t * K + i] = x;
      }
      for (size_t j = 0; j < K; j++)
        if (sel[t * K + j] >= 0)
          mask[t * S + (size_t) sel[t * K + j]] = 1;
    }
    at->sel = t2 (c, DSK_I32, T, K);
    dsk_tensor_set (c->be, &at->sel, sel);
    a->sel_mask = mask;
  }
}

static void
att_what (const acase *ac, char *what, size_t len)
{
  snprintf (what, len, "%s [B %zu, T %zu, S %zu, H %zu/%zu, d %zu/%zu]", ac->what, ac->B, ac->T,
            ac->S, ac->H, ac->Hkv, ac->dqk, ac->dv);
}

/* Compares out with the reference for the (sampled) queries. */
static void
att_check (Ctx *c, atens *at, const char *what)
{
  const aprob *a = &at->a;
  const size_t rows = a->B * a->T, step = row_step (rows, (double) a->H * a->S * (a->dqk + a->dv));
  float *got = t_get (c, &at->out);
  double *p = hd (c, a->S), *o = hd (c, a->dv);
  Err e = { 0 };
  for (size_t b = 0; b < a->B; b++)
    for (size_t t = 0; t < a->T; t++) {
      if (!row_checked (b * a->T + t, rows, step))
        continue;
      for (size_t h = 0; h < a->H; h++) {
        ref_attend (a, b, t, h, p, o);
        const size_t at0 = ((b * a->T + t) * a->H + h) * a->dv;
        for (size_t i = 0; i < a->dv; i++)
          err_add (&e, at0 + i, got[at0 + i], o[i]);
      }
    }
  char w[300];
  snprintf (w, sizeof w, "%s%s", what, step > 1 ? " (queries sampled)" : "");
  check_gaps (c, &at->out, w);
  case_end (c, w, &e);
}

static void
c_attention (dsk_backend *be, const Call *k)
{
  const dsk_attention_desc d = desc_of (k);
  dsk_attention (be, &k->t[0], &k->t[1], &k->t[2], &k->t[3], &d);
}

static void
test_attention (Ctx *c)
{
  static const acase cases[] = {
    { "MHA, no mask", 1, 5, 5, 2, 2, 16, 16 },
    { "GQA 8/2 heads, causal prefill, fused qkv rows", 1, 37, 37, 8, 2, 32, 32, 1, 0,
      .lay = AL_FUSED },
    { "MQA decode: 1 query over 100 keys", 1, 1, 100, 4, 1, 64, 64, 1, 99 },
    { "a chunk of 7 after 23 cached, causal, head-major views", 1, 7, 30, 4, 2, 32, 32, 1, 23,
      .lay = AL_HEAD_MAJOR },
    { "padding keys, causal; problem 0's first query sees nothing", 2, 6, 9, 2, 1, 16, 16, 1, 0,
      AV_BLIND },
    { "bias of 1 head", 2, 8, 12, 4, 2, 16, 16, 0, 0, AV_NONE, AB_ONE },
    { "bias of H heads and padding", 1, 10, 10, 3, 3, 16, 16, 0, 0, AV_SOME, AB_ALL },
    { "bias rows broadcast over the queries (stride 0)", 2, 5, 11, 2, 2, 16, 16, 0, 0, AV_NONE,
      AB_ROWS },
    { "bias of 1 head broadcast over the heads (stride 0)", 1, 6, 7, 4, 4, 8, 8, 0, 0, AV_NONE,
      AB_HEADS },
    { "k and v of 1 head broadcast over the heads (stride 0), causal", 1, 6, 13, 4, 1, 16, 16, 1,
      7, .lay = AL_KV_BROADCAST },
    { "MLA: d_qk 192, d_v 128, a causal chunk", 1, 9, 40, 4, 4, 192, 128, 1, 31 },
    { "MLA absorbed: 10 heads over 1 kv head, d_qk 576, d_v 512", 1, 2, 300, 10, 1, 576, 512, 1,
      298 },
    { "the BLAS path: causal, padding, bias, head-major views; problem 0's first query sees "
      "nothing", 2, 512, 512, 2, 1, 32, 32, 1, 0, AV_BLIND, AB_ONE, .lay = AL_HEAD_MAJOR },
    { "SAM windows: 2 of 14x14, 12 heads of 64, rel terms, fused qkv rows", 2, 196, 196, 12, 12,
      64, 64, .kv_h = 14, .lay = AL_FUSED },
    { "decoder decode: 1 query over 1024 keys, padding", 1, 1, 1024, 10, 10, 128, 128, 1, 1023,
      AV_SOME },
    { "decoder prefill: 256 tokens, 10 heads of 128, causal", 1, 256, 256, 10, 10, 128, 128, 1,
      0, .slow = TRUE },
    { "CLIP-L: 257 tokens, 16 heads of 64, fused qkv rows", 1, 257, 257, 16, 16, 64, 64,
      .lay = AL_FUSED, .slow = TRUE },
    { "SAM global: a 64x64 grid, 12 heads of 64, rel terms (the BLAS path)", 1, 4096, 4096, 12,
      12, 64, 64, .kv_h = 64, .slow = TRUE },
  };
  Rng r = rng_new (80);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const acase *ac = &cases[ci];
    char what[300];
    atens at;
    if (ac->slow && quick)
      continue;
    att_what (ac, what, sizeof what);
    att_build (c, &r, ac, TRUE, &at);
    dsk_attention (c->be, &at.out, &at.q, &at.k, &at.v, &at.desc);
    if (ran (c, what))
      att_check (c, &at, what);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 }, .f = 0.35f, .kv = 5, .bias = 6 };
  k.t[0] = t4 (c, DSK_F32, 1, 3, 2, 8);
  k.t[1] = t4 (c, DSK_F32, 1, 3, 2, 8);
  k.t[2] = t4 (c, DSK_F32, 1, 4, 2, 8);
  k.t[3] = t4 (c, DSK_F32, 1, 4, 2, 8);
  k.t[4] = t2 (c, DSK_U8, 1, 4);
  k.t[5] = t4 (c, DSK_F32, 1, 1, 3, 4);
  dsk_tensor_set (c->be, &k.t[4], (const uint8_t[]) { 1, 0, 1, 1 });
  for (int i = 1; i < 6; i++)
    if (i != 4)
      call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 2, 3), MUT_DT (3, DSK_I32), MUT_DEV (4) };
  check_refusals (c, &k, c_attention, m);
}

static void
c_attention_sparse (dsk_backend *be, const Call *k)
{
  const dsk_attention_desc d = desc_of (k);
  dsk_attention_sparse (be, &k->t[0], &k->t[1], &k->t[2], &k->t[3], &d, &k->t[4]);
}

static void
test_attention_sparse (Ctx *c)
{
  static const acase cases[] = {
    { "T = 1 restricted: 61 of 300 keys named, K = 64", 1, 1, 300, 10, 10, 128, 128, 1, 299,
      .K = 64 },
    { "T = 1 unrestricted: 40 keys, K = 64", 1, 1, 40, 4, 2, 32, 32, 1, 39, .K = 64 },
    { "T = 1 restricted, K = 16, fused qkv rows", 1, 1, 70, 4, 2, 32, 32, 1, 69, AV_SOME,
      .lay = AL_FUSED, .K = 16 },
    { "T = 24 causal from 0, K = 16: queries 16.. restricted, padding", 1, 24, 24, 4, 2, 32, 32,
      1, 0, AV_SOME, .K = 16 },
    { "T = 8 after 40 cached, K = 16, head-major views", 1, 8, 48, 4, 2, 32, 32, 1, 40,
      .lay = AL_HEAD_MAJOR, .K = 16 },
    { "T = 1 restricted, K = 8, head-major views", 1, 1, 64, 4, 2, 16, 16, 1, 63,
      .lay = AL_HEAD_MAJOR, .K = 8 },
    { "MLA absorbed decode: 16 heads over 1, d 576/512, 2045 of 4096 keys", 1, 1, 4096, 16, 1,
      576, 512, 1, 4095, .K = 2048 },
    { "T = 1 restricted, the selection also names a padded and a future key", 1, 1, 50, 2, 2, 16,
      16, 1, 40, AV_SOME, .K = 8, .sel_bad = 1 },
    { "T = 4 restricted, query 0's selection also names a padded and a future key", 1, 4, 50, 2,
      2, 16, 16, 1, 40, AV_SOME, .K = 8, .sel_bad = 1 },
  };
  Rng r = rng_new (81);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const acase *ac = &cases[ci];
    char what[300];
    atens at;
    if (ac->slow && quick)
      continue;
    att_what (ac, what, sizeof what);
    att_build (c, &r, ac, TRUE, &at);
    dsk_attention_sparse (c->be, &at.out, &at.q, &at.k, &at.v, &at.desc, &at.sel);
    if (ran (c, what))
      att_check (c, &at, what);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 }, .f = 0.35f, .causal = 1, .pos0 = 3 };
  k.t[0] = t4 (c, DSK_F32, 1, 3, 2, 8);
  k.t[1] = t4 (c, DSK_F32, 1, 3, 2, 8);
  k.t[2] = t4 (c, DSK_F32, 1, 6, 2, 8);
  k.t[3] = t4 (c, DSK_F32, 1, 6, 2, 8);
  k.t[4] = t2 (c, DSK_I32, 3, 2);
  dsk_tensor_set (c->be, &k.t[4], (const int32_t[]) { 0, 3, 4, -1, 5, 1 });
  for (int i = 1; i < 4; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 4, 0), MUT_DT (4, DSK_F32), MUT_DEV (3) };
  check_refusals (c, &k, c_attention_sparse, m);
}

static void
c_attention_probs (dsk_backend *be, const Call *k)
{
  const dsk_attention_desc d = desc_of (k);
  dsk_attention_probs (be, &k->t[0], &k->t[1], &k->t[2], &d, ARG (k, 3));
}

/* dst [T, S]: the probabilities of every head summed, then divided by (their total + 1e-10) */
static void
test_attention_probs (Ctx *c)
{
  static const acase cases[] = {
    { "no selection: GQA, causal, padding; the first query sees nothing", 1, 6, 20, 4, 2, 16, 16,
      1, 0, AV_BLIND },
    { "no selection: a chunk after 30 cached", 1, 5, 35, 3, 1, 32, 32, 1, 30 },
    { "selection K = 8, T = 24 causal from 0", 1, 24, 24, 2, 2, 16, 16, 1, 0, .K = 8 },
    { "selection K = 32, T = 1 over 300 keys, padding", 1, 1, 300, 4, 4, 32, 32, 1, 299, AV_SOME,
      .K = 32 },
    { "decoder-sized: 16 queries after 1008, 10 heads of 128", 1, 16, 1024, 10, 10, 128, 128, 1,
      1008 },
  };
  Rng r = rng_new (82);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const acase *ac = &cases[ci];
    char what[300];
    atens at;
    att_what (ac, what, sizeof what);
    att_build (c, &r, ac, FALSE, &at);
    const aprob *a = &at.a;
    dsk_tensor dst = t_lay (c, DSK_F32, 2, NE (a->T, a->S), ci % 2 ? L_PAD : L_PACKED);
    dsk_attention_probs (c->be, &dst, &at.q, &at.k, &at.desc, ac->K ? &at.sel : NULL);
    if (!ran (c, what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &dst);
    double *p = hd (c, a->S), *acc = hd (c, a->S);
    Err e = { 0 };
    for (size_t t = 0; t < a->T; t++) {
      double total = 0.0;
      memset (acc, 0, a->S * sizeof (double));
      for (size_t h = 0; h < a->H; h++) {
        ref_probs (a, 0, t, h, p);
        for (size_t s = 0; s < a->S; s++)
          acc[s] += p[s];
      }
      for (size_t s = 0; s < a->S; s++)
        total += acc[s];
      for (size_t s = 0; s < a->S; s++)
        err_add (&e, t * a->S + s, got[t * a->S + s], acc[s] / (total + 1e-10));
    }
    check_gaps (c, &dst, what);
    case_end (c, what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 }, .f = 0.35f, .absent = 1u << 3 };
  k.t[0] = t2 (c, DSK_F32, 3, 6);
  k.t[1] = t4 (c, DSK_F32, 1, 3, 2, 8);
  k.t[2] = t4 (c, DSK_F32, 1, 6, 2, 8);
  k.t[3] = k.t[0];
  for (int i = 1; i < 3; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 0, 1), MUT_DT (1, DSK_BF16), MUT_DEV (2) };
  check_refusals (c, &k, c_attention_probs, m);
}

static void
c_rel_pos (dsk_backend *be, const Call *k)
{
  dsk_rel_pos (be, &k->t[0], &k->t[1], &k->t[2], &k->t[3], &k->t[4]);
}

static void
test_rel_pos (Ctx *c)
{
  static const struct {
    const char *what;
    size_t B, size, H, hd;
    gboolean fused;   /* q: the first third of a qkv row */
    gboolean slow;
  } cases[] = {
    { "size 5, 2 heads of 8", 1, 5, 2, 8 },
    { "size 3, 3 heads of 4, B = 3, q in qkv rows", 3, 3, 3, 4, TRUE },
    { "SAM windows: 2 of 14x14, 12 heads of 64, q in qkv rows", 2, 14, 12, 64, TRUE },
    { "SAM global: 64x64, 12 heads of 64", 1, 64, 12, 64, FALSE, TRUE },
  };
  Rng r = rng_new (83);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t B = cases[ci].B, size = cases[ci].size, H = cases[ci].H, hd_ = cases[ci].hd;
    const size_t N = size * size, L = 2 * size - 1;
    if (cases[ci].slow && quick)
      continue;
    float *qv = rnd (c, &r, B * N * H * hd_, 1.0), *thv, *twv;
    dsk_tensor q;
    if (cases[ci].fused) {
      dsk_tensor w = t3 (c, DSK_F32, B, N, 3 * H * hd_);
      w = dsk_narrow (&w, 2, 0, H * hd_);
      q = dsk_split (&w, 2, H, hd_);
    } else {
      q = t4 (c, DSK_F32, B, N, H, hd_);
    }
    t_set (c, &q, qv);
    dsk_tensor th = t_rand (c, &r, DSK_F32, 2, NE (L, hd_), L_PACKED, 1.0, &thv);
    dsk_tensor tw = t_rand (c, &r, DSK_F32, 2, NE (L, hd_), L_PACKED, 1.0, &twv);
    dsk_tensor rh = t4 (c, DSK_F32, B, H, N, size), rw = t4 (c, DSK_F32, B, H, N, size);
    dsk_rel_pos (c->be, &rh, &rw, &q, &th, &tw);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *gh = t_get (c, &rh), *gw = t_get (c, &rw);
    const size_t step = row_step (B * N, 2.0 * H * size * hd_);
    Err e = { 0 };
    for (size_t b = 0; b < B; b++)
      for (size_t t = 0; t < N; t++) {
        if (!row_checked (b * N + t, B * N, step))
          continue;
        const size_t qy = t / size, qx = t % size;
        for (size_t h = 0; h < H; h++) {
          const float *qr = qv + ((b * N + t) * H + h) * hd_;
          for (size_t kk = 0; kk < size; kk++) {
            const float *a = thv + (qy - kk + size - 1) * hd_;
            const float *bb = twv + (qx - kk + size - 1) * hd_;
            double sh = 0.0, sw = 0.0;
            for (size_t i = 0; i < hd_; i++) {
              sh += (double) qr[i] * a[i];
              sw += (double) qr[i] * bb[i];
            }
            const size_t o = ((b * H + h) * N + t) * size + kk;
            err_add (&e, 2 * o, gh[o], sh);
            err_add (&e, 2 * o + 1, gw[o], sw);
          }
        }
      }
    char what[200];
    snprintf (what, sizeof what, "%s%s", cases[ci].what, step > 1 ? " (queries sampled)" : "");
    case_end (c, what, &e);
    case_free (c);
  }

  Call k = { .n_out = 2, .out = { 0, 1 } };
  k.t[0] = t4 (c, DSK_F32, 1, 2, 9, 3);
  k.t[1] = t4 (c, DSK_F32, 1, 2, 9, 3);
  k.t[2] = t4 (c, DSK_F32, 1, 9, 2, 4);
  k.t[3] = t2 (c, DSK_F32, 5, 4);
  k.t[4] = t2 (c, DSK_F32, 5, 4);
  for (int i = 2; i < 5; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 4, 0), MUT_DT (2, DSK_BF16), MUT_DEV (3) };
  check_refusals (c, &k, c_rel_pos, m);
}

/* ==== vision: convolution and resampling ==== */

static void
c_conv2d (dsk_backend *be, const Call *k)
{
  dsk_conv2d (be, &k->t[0], &k->t[1], &k->t[2], ARG (k, 3), &k->conv);
}

static void
test_conv2d (Ctx *c)
{
  static const struct {
    const char *what;
    size_t c_in, h, w, c_out, k, stride, pad;
    dsk_layout lay;
    dsk_dtype wdt;
    gboolean bias, sy, slow;
  } cases[] = {
    { "NCHW 16x16 stride 16 (a patch embedding), bias", 3, 64, 48, 20, 16, 16, 0, DSK_LAYOUT_NCHW,
      DSK_F32, TRUE },
    { "NCHW 3x3 pad 1, F16 w, bias", 4, 9, 7, 6, 3, 1, 1, DSK_LAYOUT_NCHW, DSK_F16, TRUE },
    { "NHWC 1x1, strided y", 40, 9, 7, 24, 1, 1, 0, DSK_LAYOUT_NHWC, DSK_F32, FALSE, TRUE },
    { "NHWC 1x1, BF16 w, bias", 32, 8, 8, 16, 1, 1, 0, DSK_LAYOUT_NHWC, DSK_BF16, TRUE },
    { "NHWC 3x3 pad 1 stride 1, F16 w, bias", 16, 10, 9, 12, 3, 1, 1, DSK_LAYOUT_NHWC, DSK_F16,
      TRUE },
    { "NHWC 3x3 pad 1 stride 2, odd sizes, BF16 w, bias, strided y", 8, 11, 10, 16, 3, 2, 1,
      DSK_LAYOUT_NHWC, DSK_BF16, TRUE, TRUE },
    { "NHWC 3x3 pad 1 stride 2, no bias", 5, 6, 6, 7, 3, 2, 1, DSK_LAYOUT_NHWC, DSK_F32 },
    { "SAM patch embedding: 3x1024x1024, 16x16 stride 16 -> 768, bias", 3, 1024, 1024, 768, 16,
      16, 0, DSK_LAYOUT_NCHW, DSK_F32, TRUE },
    { "DeepSeek-OCR net_2: 64x64x256 -> 512, 3x3 stride 2 pad 1, BF16 w", 256, 64, 64, 512, 3, 2,
      1, DSK_LAYOUT_NHWC, DSK_BF16 },
    { "CLIP-L patch embedding: 3x224x224, 14x14 stride 14 -> 1024", 3, 224, 224, 1024, 14, 14, 0,
      DSK_LAYOUT_NCHW, DSK_F32, .slow = TRUE },
    { "SAM neck 1x1: 64x64x768 -> 256", 768, 64, 64, 256, 1, 1, 0, DSK_LAYOUT_NHWC, DSK_F32,
      .slow = TRUE },
    { "SAM neck 3x3: 64x64x256 -> 256, pad 1", 256, 64, 64, 256, 3, 1, 1, DSK_LAYOUT_NHWC,
      DSK_F32, .slow = TRUE },
  };
  Rng r = rng_new (90);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    if (cases[ci].slow && quick)
      continue;
    const size_t ci_ = cases[ci].c_in, H = cases[ci].h, W = cases[ci].w, co = cases[ci].c_out;
    const size_t kk = cases[ci].k, st = cases[ci].stride, pad = cases[ci].pad;
    const size_t oh = (H + 2 * pad - kk) / st + 1, ow = (W + 2 * pad - kk) / st + 1;
    const size_t K = ci_ * kk * kk, P = oh * ow;
    const gboolean nchw = cases[ci].lay == DSK_LAYOUT_NCHW;
    float *xv, *wv = rnd (c, &r, co * K, 1.0 / sqrt ((double) K)), *bv = NULL;
    dsk_tensor x = t_rand (c, &r, DSK_F32, 3, nchw ? NE (ci_, H, W) : NE (H, W, ci_), L_PACKED,
                           1.0, &xv);
    dsk_tensor w = t4 (c, cases[ci].wdt, co, ci_, kk, kk), b;
    dsk_tensor y = t_lay (c, DSK_F32, 2, NE (P, co), cases[ci].sy ? L_PAD : L_PACKED);
    t_set (c, &w, wv);
    if (cases[ci].bias)
      b = t_rand (c, &r, cases[ci].wdt, 1, NE (co), L_PACKED, 0.5, &bv);
    const dsk_conv2d_desc d = { ci_, H, W, cases[ci].lay, kk, kk, st, pad };
    dsk_conv2d (c->be, &y, &x, &w, bv ? &b : NULL, &d);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &y);
    const size_t step = row_step (P, (double) co * K);
    Err e = { 0 };
    for (size_t p = 0; p < P; p++) {
      if (!row_checked (p, P, step))
        continue;
      const long oy = (long) (p / ow), ox = (long) (p % ow);
      for (size_t o = 0; o < co; o++) {
        double s = bv ? bv[o] : 0.0;
        for (size_t ch = 0; ch < ci_; ch++)
          for (size_t ky = 0; ky < kk; ky++)
            for (size_t kx = 0; kx < kk; kx++) {
              const long iy = oy * (long) st - (long) pad + (long) ky;
              const long ix = ox * (long) st - (long) pad + (long) kx;
              if (iy < 0 || ix < 0 || iy >= (long) H || ix >= (long) W)
                continue;
              const float xi = nchw ? xv[(ch * H + (size_t) iy) * W + (size_t) ix]
                                    : xv[((size_t) iy * W + (size_t) ix) * ci_ + ch];
              s += (double) xi * wv[((o * ci_ + ch) * kk + ky) * kk + kx];
            }
        err_add (&e, p * co + o, got[p * co + o], s);
      }
    }
    char what[200];
    snprintf (what, sizeof what, "%s -> %zux%zu%s", cases[ci].what, oh, ow,
              step > 1 ? " (pixels sampled)" : "");
    check_gaps (c, &y, what);
    case_end (c, what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 },
             .conv = { 3, 4, 4, DSK_LAYOUT_NCHW, 3, 3, 1, 0 } };
  k.t[0] = t2 (c, DSK_F32, 4, 5);
  k.t[1] = t3 (c, DSK_F32, 3, 4, 4);
  k.t[2] = t4 (c, DSK_F32, 5, 3, 3, 3);
  k.t[3] = t1 (c, DSK_F32, 5);
  for (int i = 1; i < 4; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 2, 1), MUT_DT (1, DSK_BF16), MUT_DEV (3) };
  check_refusals (c, &k, c_conv2d, m);
}

/* Keys' cubic with a = -0.5, the kernel of torch's antialiased bicubic */
static double
ref_cubic (double x)
{
  const double a = -0.5;
  x = fabs (x);
  if (x < 1.0)
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0)
    return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

/* The normalised taps of output @i along an axis resized from @in to @out, as torch's
 * F.interpolate(mode="bicubic", antialias=True, align_corners=False) forms them: centre
 * scale (i + 0.5), support 2 (stretched by the scale when shrinking), taps cut at the borders. */
static size_t
ref_aa_taps (size_t in, size_t out, size_t i, size_t *first, double *w)
{
  const double scale = (double) in / (double) out;
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  const double center = scale * ((double) i + 0.5);
  long lo = (long) (center - support + 0.5), hi = (long) (center + support + 0.5);
  double total = 0.0;
  lo = lo < 0 ? 0 : lo;
  hi = hi > (long) in ? (long) in : hi;
  for (long j = 0; j < hi - lo; j++) {
    w[j] = ref_cubic (((double) (j + lo) - center + 0.5) * invscale);
    total += w[j];
  }
  for (long j = 0; j < hi - lo; j++)
    w[j] = total != 0.0 ? w[j] / total : 0.0;
  *first = (size_t) lo;
  return hi > lo ? (size_t) (hi - lo) : 0;
}

/* y [n_outer, out, inner] = x [n_outer, in, inner] resampled along the middle axis */
static void
ref_aa_axis (const double *x, double *y, size_t n_outer, size_t in, size_t out, size_t inner,
             double *w)
{
  for (size_t i = 0; i < out; i++) {
    size_t first;
    const size_t n = ref_aa_taps (in, out, i, &first, w);
    for (size_t o = 0; o < n_outer; o++)
      for (size_t ch = 0; ch < inner; ch++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
          s += w[j] * x[(o * in + first + j) * inner + ch];
        y[(o * out + i) * inner + ch] = s;
      }
  }
}

static void
c_resize_bicubic_aa (dsk_backend *be, const Call *k)
{
  dsk_resize_bicubic_aa (be, &k->t[0], &k->t[1]);
}

static void
test_resize_bicubic_aa (Ctx *c)
{
  static const struct {
    const char *what;
    size_t hi, wi, ch, ho, wo;
  } cases[] = {
    { "[64, 64, 8] -> [40, 40]: shrink", 64, 64, 8, 40, 40 },
    { "[16, 16, 4] -> [20, 20]: enlarge", 16, 16, 4, 20, 20 },
    { "[12, 20, 3] -> [12, 7]: the width only", 12, 20, 3, 12, 7 },
    { "[10, 10, 2] -> [23, 6]: enlarge one axis, shrink the other", 10, 10, 2, 23, 6 },
    { "[64, 64, 768] -> [40, 40]: SAM's position table for a 640 view", 64, 64, 768, 40, 40 },
    { "[16, 16, 1024] -> [24, 24]: CLIP-L's position table enlarged", 16, 16, 1024, 24, 24 },
  };
  Rng r = rng_new (91);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t hi = cases[ci].hi, wi = cases[ci].wi, ch = cases[ci].ch;
    const size_t ho = cases[ci].ho, wo = cases[ci].wo;
    float *xv;
    dsk_tensor x = t_rand (c, &r, DSK_F32, 3, NE (hi, wi, ch), L_PACKED, 1.0, &xv);
    dsk_tensor y = t3 (c, DSK_F32, ho, wo, ch);
    dsk_resize_bicubic_aa (c->be, &y, &x);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &y);
    double *xd = hd (c, hi * wi * ch), *tmp = hd (c, hi * wo * ch), *want = hd (c, ho * wo * ch);
    double *w = hd (c, 2 * MAX (hi, wi) + 8);
    for (size_t i = 0; i < hi * wi * ch; i++)
      xd[i] = xv[i];
    ref_aa_axis (xd, tmp, hi, wi, wo, ch, w);        /* width first, */
    ref_aa_axis (tmp, want, 1, hi, ho, wo * ch, w);  /* then height */
    Err e = { 0 };
    for (size_t i = 0; i < ho * wo * ch; i++)
      err_add (&e, i, got[i], want[i]);
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t3 (c, DSK_F32, 3, 3, 2);
  k.t[1] = t3 (c, DSK_F32, 5, 5, 2);
  call_fill (c, &r, &k, 1);
  const Mut m[3] = { MUT (M_RESHAPE, 0, 2), MUT_DT (1, DSK_BF16), MUT_DEV (1) };
  check_refusals (c, &k, c_resize_bicubic_aa, m);
}

static void
c_resize_linear (dsk_backend *be, const Call *k)
{
  dsk_resize_linear (be, &k->t[0], &k->t[1]);
}

/* F.interpolate(mode="linear", align_corners=False): source position scale (i + 0.5) - 0.5,
 * clamped at 0, between rows floor(src) and the next (the last row repeats). */
static void
test_resize_linear (Ctx *c)
{
  static const struct {
    const char *what;
    size_t li, lo, ch;
  } cases[] = {
    { "[127, 64] -> [79, 64]: SAM's global rel table for a 640 view", 127, 79, 64 },
    { "[27, 64] -> [127, 64]: enlarge", 27, 127, 64 },
    { "[5, 3] -> [5, 3]: the identity", 5, 5, 3 },
    { "[7, 2] -> [1, 2]", 7, 1, 2 },
    { "[2, 3] -> [9, 3]", 2, 9, 3 },
  };
  Rng r = rng_new (92);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t li = cases[ci].li, lo = cases[ci].lo, ch = cases[ci].ch;
    float *xv;
    dsk_tensor x = t_rand (c, &r, DSK_F32, 2, NE (li, ch), L_PACKED, 1.0, &xv);
    dsk_tensor y = t2 (c, DSK_F32, lo, ch);
    dsk_resize_linear (c->be, &y, &x);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &y);
    const double scale = (double) li / (double) lo;
    Err e = { 0 };
    for (size_t i = 0; i < lo; i++) {
      double src = scale * ((double) i + 0.5) - 0.5;
      src = src < 0.0 ? 0.0 : src;
      size_t i0 = (size_t) floor (src);
      i0 = i0 > li - 1 ? li - 1 : i0;
      const size_t i1 = i0 < li - 1 ? i0 + 1 : i0;
      const double l1 = src - (double) i0;
      for (size_t j = 0; j < ch; j++)
        err_add (&e, i * ch + j, got[i * ch + j],
                 (1.0 - l1) * xv[i0 * ch + j] + l1 * xv[i1 * ch + j]);
    }
    case_end (c, cases[ci].what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_F32, 4, 3);
  k.t[1] = t2 (c, DSK_F32, 6, 3);
  call_fill (c, &r, &k, 1);
  const Mut m[3] = { MUT (M_RESHAPE, 0, 1), MUT_DT (0, DSK_I32), MUT_DEV (1) };
  check_refusals (c, &k, c_resize_linear, m);
}

/* ==== mixture of experts ==== */

typedef struct {
  const char *what;
  size_t T;
  int E, k;
  dsk_moe_scoring scoring;
  dsk_moe_topk method;
  int n_group, topk_group, norm;
  float scale;
  int bias;        /* 0 none, else the bias dtype + 1 */
  gboolean ties;   /* logits on a grid of 0.5: many exact ties */
} mrcase;

/* The reference router of one token (transformers' DeepseekV2/V3 routers): fills idx [k]
 * (ascending) and w [k]; returns FALSE when a near tie (closer than f32 can tell apart, but not
 * equal) decides which experts or groups are chosen: such a token is not compared. */
static gboolean
ref_route (const mrcase *mc, const float *logits, const float *bias, int32_t *idx, double *w,
           double *scores, double *choice, double *gs, int *order)
{
  const int E = mc->E, k = mc->k, G = mc->n_group > 0 ? mc->n_group : 1, per = E / G;
  const double tie_tol = 1e-5;
  double m = -INFINITY, sum = 0.0;
  gboolean clear = TRUE;
  for (int e = 0; e < E; e++)
    m = MAX (m, (double) logits[e]);
  for (int e = 0; e < E; e++) {
    scores[e] = mc->scoring == DSK_MOE_SIGMOID ? 1.0 / (1.0 + exp (-(double) logits[e]))
                                               : exp ((double) logits[e] - m);
    sum += scores[e];
  }
  for (int e = 0; e < E; e++) {
    if (mc->scoring == DSK_MOE_SOFTMAX)
      scores[e] /= sum;
    choice[e] = scores[e] + (bias ? bias[e] : 0.0);
  }
  /* order[]: indices by value descending, the lower index first among equals */
#define RANK(vals, n)                                                                  \
  for (int i_ = 0; i_ < (n); i_++)                                                     \
    order[i_] = i_;                                                                    \
  for (int i_ = 1; i_ < (n); i_++)                                                     \
    for (int j_ = i_; j_ > 0 && (vals)[order[j_]] > (vals)[order[j_ - 1]]; j_--) {     \
      int x_ = order[j_];                                                              \
      order[j_] = order[j_ - 1];                                                       \
      order[j_ - 1] = x_;                                                              \
    }
  if (mc->method != DSK_MOE_GREEDY && G > 1) {
    for (int g = 0; g < G; g++) {
      const double *cg = choice + g * per;
      double b1 = -INFINITY, b2 = -INFINITY;
      for (int e = 0; e < per; e++) {
        if (cg[e] > b1) {
          b2 = b1;
          b1 = cg[e];
        } else if (cg[e] > b2) {
          b2 = cg[e];
        }
      }
      gs[g] = mc->method == DSK_MOE_NOAUX_TC ? b1 + (per > 1 ? b2 : 0.0) : b1;
    }
    RANK (gs, G);
    if (mc->topk_group < G) {
      const double gap = gs[order[mc->topk_group - 1]] - gs[order[mc->topk_group]];
      if (gap > 0.0 && gap < tie_tol)
        clear = FALSE;
    }
    for (int j = mc->topk_group; j < G; j++)
      for (int e = 0; e < per; e++)
        /* a dropped group: -inf for noaux_tc, 0 for group_limited_greedy (the biased scores
         * here are positive, where either fill gives the same choice) */
        choice[order[j] * per + e] = mc->method == DSK_MOE_NOAUX_TC ? -INFINITY : 0.0;
  }
  RANK (choice, E);
#undef RANK
  if (k < E) {
    const double gap = choice[order[k - 1]] - choice[order[k]];
    if (gap > 0.0 && gap < tie_tol)
      clear = FALSE;
  }
  for (int j = 0; j < k; j++)
    idx[j] = order[j];
  for (int j = 1; j < k; j++)
    for (int i = j; i > 0 && idx[i] < idx[i - 1]; i--) {
      int32_t x = idx[i];
      idx[i] = idx[i - 1];
      idx[i - 1] = x;
    }
  sum = 0.0;
  for (int j = 0; j < k; j++) {
    w[j] = mc->method == DSK_MOE_GROUP_LIMITED_GREEDY ? choice[idx[j]] : scores[idx[j]];
    sum += w[j];
  }
  /* DeepseekV2 normalises only for top_k > 1, V3 (noaux_tc) always, both with + 1e-20 */
  for (int j = 0; j < k; j++) {
    if (mc->norm && (k > 1 || mc->method == DSK_MOE_NOAUX_TC))
      w[j] /= sum + 1e-20;
    w[j] *= mc->scale;
  }
  return clear;
}

static void
c_moe_route (dsk_backend *be, const Call *k)
{
  dsk_moe_route (be, &k->t[0], &k->t[1], &k->t[2], ARG (k, 3), &k->router);
}

static void
test_moe_route (Ctx *c)
{
  static const mrcase cases[] = {
    { "DeepSeek-OCR: softmax, greedy top-6 of 64, not normalised", 100, 64, 6, DSK_MOE_SOFTMAX,
      DSK_MOE_GREEDY, 1, 1, 0, 1.0f },
    { "softmax, greedy top-6 of 64, normalised, scaled 2.5", 37, 64, 6, DSK_MOE_SOFTMAX,
      DSK_MOE_GREEDY, 0, 0, 1, 2.5f },
    { "ties: logits on a grid, greedy top-4 of 16", 50, 16, 4, DSK_MOE_SOFTMAX, DSK_MOE_GREEDY, 1,
      1, 1, 1.0f, 0, TRUE },
    { "group_limited_greedy: 8 groups, best 3, top-6 of 64, normalised, scaled 16", 40, 64, 6,
      DSK_MOE_SOFTMAX, DSK_MOE_GROUP_LIMITED_GREEDY, 8, 3, 1, 16.0f },
    { "group_limited_greedy with ties: 4 groups, best 2, top-3 of 16", 30, 16, 3, DSK_MOE_SOFTMAX,
      DSK_MOE_GROUP_LIMITED_GREEDY, 4, 2, 0, 1.0f, 0, TRUE },
    { "noaux_tc: sigmoid + F32 bias, 8 groups, best 4, top-8 of 64, normalised, scaled 2.5", 40,
      64, 8, DSK_MOE_SIGMOID, DSK_MOE_NOAUX_TC, 8, 4, 1, 2.5f, 1 + DSK_F32 },
    { "noaux_tc: sigmoid + BF16 bias, 4 groups, best 2, top-4 of 32, not normalised", 33, 32, 4,
      DSK_MOE_SIGMOID, DSK_MOE_NOAUX_TC, 4, 2, 0, 1.0f, 1 + DSK_BF16 },
    { "softmax greedy top-1 with norm_topk_prob (V2 normalises only top_k > 1)", 12, 8, 1,
      DSK_MOE_SOFTMAX, DSK_MOE_GREEDY, 1, 1, 1, 1.0f },
    { "sigmoid greedy top-2 of 8, F16 bias, normalised", 9, 8, 2, DSK_MOE_SIGMOID, DSK_MOE_GREEDY,
      1, 1, 1, 1.0f, 1 + DSK_F16 },
  };
  Rng r = rng_new (100);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const mrcase *mc = &cases[ci];
    const size_t T = mc->T, E = (size_t) mc->E, K = (size_t) mc->k;
    float *lv = rnd (c, &r, T * E, 3.0), *bv = NULL;
    if (mc->ties)
      for (size_t i = 0; i < T * E; i++)
        lv[i] = 0.5f * (float) ((int) rng_below (&r, 9) - 4);
    dsk_tensor lt = t2 (c, DSK_F32, T, E), bt;
    t_set (c, &lt, lv);
    if (mc->bias) {
      bt = t1 (c, (dsk_dtype) (mc->bias - 1), E);
      bv = hf (c, E);
      for (size_t e = 0; e < E; e++)
        bv[e] = (float) (0.1 * rng_unit (&r));
      t_set (c, &bt, bv);
    }
    dsk_tensor it = t2 (c, DSK_I32, T, K), wt = t_lay (c, DSK_F32, 2, NE (T, K), ci % 2 ? L_PAD
                                                                                     : L_PACKED);
    const dsk_moe_router rt = { mc->scoring, mc->method, mc->E, mc->k, mc->n_group,
                                mc->topk_group, mc->norm, mc->scale };
    dsk_moe_route (c->be, &it, &wt, &lt, bv ? &bt : NULL, &rt);
    if (!ran (c, mc->what)) {
      case_free (c);
      continue;
    }
    int32_t *gi = hmem (c, T * K * sizeof (int32_t)), *wi = hmem (c, K * sizeof (int32_t));
    dsk_tensor_get (c->be, &it, gi);
    float *gw = t_get (c, &wt);
    double *ww = hd (c, K), *scores = hd (c, E), *choice = hd (c, E), *gs = hd (c, E);
    int *order = hmem (c, E * sizeof (int));
    Err ei = { 0 }, ew = { 0 };
    size_t n_unclear = 0;
    for (size_t t = 0; t < T; t++) {
      if (!ref_route (mc, lv + t * E, bv, wi, ww, scores, choice, gs, order)) {
        n_unclear++;
        continue;
      }
      for (size_t j = 0; j < K; j++) {
        err_add (&ei, t * K + j, gi[t * K + j], wi[j]);
        err_add (&ew, t * K + j, gw[t * K + j], ww[j]);
      }
    }
    char what[300];
    snprintf (what, sizeof what, "%s [T %zu]: experts chosen%s", mc->what, T,
              n_unclear ? " (near ties skipped)" : "");
    if (n_unclear)
      g_test_message ("%s %s: %s: %zu of %zu tokens decided by a near tie, not compared",
                      c->be_name, c->op, mc->what, n_unclear, T);
    case_end_bound (c, what, &ei, 0.0);
    snprintf (what, sizeof what, "%s [T %zu]: weights", mc->what, T);
    check_gaps (c, &wt, what);
    case_end (c, what, &ew);
    case_free (c);
  }

  Call k = { .n_out = 2, .out = { 0, 1 },
             .router = { DSK_MOE_SIGMOID, DSK_MOE_NOAUX_TC, 8, 2, 2, 1, 1, 1.0f } };
  k.t[0] = t2 (c, DSK_I32, 4, 2);
  k.t[1] = t2 (c, DSK_F32, 4, 2);
  k.t[2] = t2 (c, DSK_F32, 4, 8);
  k.t[3] = t1 (c, DSK_F32, 8);
  call_fill (c, &r, &k, 2);
  call_fill (c, &r, &k, 3);
  const Mut m[3] = { MUT (M_NARROW, 1, 1), MUT_DT (2, DSK_BF16), MUT_DEV (3) };
  check_refusals (c, &k, c_moe_route, m);
}

typedef struct {
  const char *what;
  size_t T, H;
  int E, inter, k, sh_inter;
  dsk_dtype wdt;
  gboolean skew;     /* expert 0 takes every token */
  gboolean window;   /* experts are overlapping row windows of one pool (see below) */
  int olay;
  gboolean slow;
} mcase;

/* Rows between the windows of consecutive experts in a pool. */
#define MOE_WINDOW_STEP 16

static void
c_moe (dsk_backend *be, const Call *k)
{
  dsk_moe (be, &k->t[0], &k->t[1], &k->t[2], &k->t[3], &k->experts);
}

/* Expert weights at DeepSeek-OCR's size (64 x 3 x 896 x 1280, 440 MB in BF16) would cost more
 * to generate than to test, so the full-size cases take expert e's matrices as the row window
 * [16 e, 16 e + rows) of one pool per kind: every expert still has its own weights (shifted
 * rows, so a wrong expert gives a different result) at 4 % of the memory. */
static void
test_moe (Ctx *c)
{
  static const mcase cases[] = {
    { "8 experts, 2 per token, expert 0 takes every token", 40, 64, 8, 32, 2, 0, DSK_F32, TRUE },
    { "BF16, 3 per token, shared experts, strided out", 20, 48, 8, 24, 3, 48, DSK_BF16,
      .olay = L_PAD },
    { "F16, shared experts, a decode step", 1, 64, 16, 32, 4, 64, DSK_F16 },
    { "130 tokens over 16 experts, 4 per token, shared experts", 130, 64, 16, 40, 4, 64, DSK_F32 },
    { "DeepSeek-OCR: 64 experts of 896, 6 per token, shared 1792, 32 tokens, BF16", 32, 1280, 64,
      896, 6, 1792, DSK_BF16, FALSE, TRUE },
    { "DeepSeek-OCR: a decode step, F32", 1, 1280, 64, 896, 6, 1792, DSK_F32, FALSE, TRUE,
      .slow = TRUE },
    /* the block formats: integer products for experts of few tokens, widened rows for the
     * expert every token takes */
    { "Q8, shared experts, a decode step", 1, 1280, 16, 896, 6, 1792, DSK_Q8 },
    { "Q4, 40 tokens, expert 0 takes every token, shared experts", 40, 96, 8, 64, 2, 128, DSK_Q4,
      TRUE },
  };
  Rng r = rng_new (101);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const mcase *mc = &cases[ci];
    if (mc->slow && quick)
      continue;
    const size_t T = mc->T, H = mc->H, E = (size_t) mc->E, I = (size_t) mc->inter;
    const size_t K = (size_t) mc->k, SH = (size_t) mc->sh_inter;
    /* host weights: gate/up [rows_gu, H], down [rows_d, I]; expert e starts at row e * gstep
     * of gate/up and e * dstep of down */
    const size_t gstep = mc->window ? MOE_WINDOW_STEP : I, dstep = mc->window ? MOE_WINDOW_STEP : H;
    const size_t rows_gu = (E - 1) * gstep + I, rows_d = (E - 1) * dstep + H;
    const double sg = 1.0 / sqrt ((double) H), sd = 1.0 / sqrt ((double) I);
    float *gv = rnd (c, &r, rows_gu * H, sg), *uv = rnd (c, &r, rows_gu * H, sg);
    float *dv = rnd (c, &r, rows_d * I, sd), *shg = NULL, *shu = NULL, *shd = NULL;
    dsk_tensor *gate = hmem (c, E * sizeof (dsk_tensor)), *up = hmem (c, E * sizeof (dsk_tensor));
    dsk_tensor *down = hmem (c, E * sizeof (dsk_tensor)), sg_t, su_t, sd_t;
    const gboolean quant = mc->wdt == DSK_Q8 || mc->wdt == DSK_Q4;
    dsk_weight_storage *storage = quant ? dsk_weight_storage_new () : NULL;
    if (quant) {
      for (size_t e = 0; e < E; e++) {
        gate[e] = quant_weight (c, mc->wdt, I, H, gv + e * I * H, storage);
        up[e] = quant_weight (c, mc->wdt, I, H, uv + e * I * H, storage);
        down[e] = quant_weight (c, mc->wdt, H, I, dv + e * H * I, storage);
      }
    } else if (mc->window) {
      dsk_tensor pg = t2 (c, mc->wdt, rows_gu, H), pu = t2 (c, mc->wdt, rows_gu, H);
      dsk_tensor pd = t2 (c, mc->wdt, rows_d, I);
      t_set (c, &pg, gv);
      t_set (c, &pu, uv);
      t_set (c, &pd, dv);
      for (size_t e = 0; e < E; e++) {
        gate[e] = dsk_narrow (&pg, 0, e * gstep, I);
        up[e] = dsk_narrow (&pu, 0, e * gstep, I);
        down[e] = dsk_narrow (&pd, 0, e * dstep, H);
      }
    } else {
      for (size_t e = 0; e < E; e++) {
        gate[e] = t2 (c, mc->wdt, I, H);
        up[e] = t2 (c, mc->wdt, I, H);
        down[e] = t2 (c, mc->wdt, H, I);
        t_set (c, &gate[e], gv + e * I * H);
        t_set (c, &up[e], uv + e * I * H);
        t_set (c, &down[e], dv + e * H * I);
      }
    }
    dsk_moe_experts ex = { mc->E, gate, up, down, NULL, NULL, NULL };
    if (SH && quant) {
      shg = rnd (c, &r, SH * H, sg);
      shu = rnd (c, &r, SH * H, sg);
      shd = rnd (c, &r, H * SH, 1.0 / sqrt ((double) SH));
      sg_t = quant_weight (c, mc->wdt, SH, H, shg, storage);
      su_t = quant_weight (c, mc->wdt, SH, H, shu, storage);
      sd_t = quant_weight (c, mc->wdt, H, SH, shd, storage);
    } else if (SH) {
      sg_t = t_rand (c, &r, mc->wdt, 2, NE (SH, H), L_PACKED, sg, &shg);
      su_t = t_rand (c, &r, mc->wdt, 2, NE (SH, H), L_PACKED, sg, &shu);
      sd_t = t_rand (c, &r, mc->wdt, 2, NE (H, SH), L_PACKED, 1.0 / sqrt ((double) SH), &shd);
    }
    if (SH) {
      ex.sh_gate = &sg_t;
      ex.sh_up = &su_t;
      ex.sh_down = &sd_t;
    }
    /* routing: K distinct experts per token, ascending, positive weights */
    int32_t *idx = hmem (c, T * K * sizeof (int32_t));
    float *wv = hf (c, T * K);
    uint8_t *taken = hmem (c, E);
    for (size_t t = 0; t < T; t++) {
      memset (taken, 0, E);
      for (size_t j = 0; j < K; j++) {
        size_t e = mc->skew && j == 0 ? 0 : rng_below (&r, E);
        while (taken[e])
          e = (e + 1) % E;
        taken[e] = 1;
      }
      for (size_t e = 0, j = 0; e < E; e++)
        if (taken[e])
          idx[t * K + j++] = (int32_t) e;
      for (size_t j = 0; j < K; j++)
        wv[t * K + j] = (float) (0.05 + 0.95 * rng_unit (&r));
    }
    float *xv;
    dsk_tensor x = t_rand (c, &r, DSK_F32, 2, NE (T, H), L_PACKED, 1.0, &xv);
    dsk_tensor it = idx_tensor (c, idx, T * K);
    it = dsk_split (&it, 0, T, K);
    dsk_tensor wt = t2 (c, DSK_F32, T, K), out = t_lay (c, DSK_F32, 2, NE (T, H), mc->olay);
    t_set (c, &wt, wv);
    char what[300];
    snprintf (what, sizeof what, "%s [T %zu, H %zu, inter %zu]", mc->what, T, H, I);
    dsk_moe (c->be, &out, &x, &it, &wt, &ex);
    if (!ran (c, what)) {
      dsk_weight_storage_free (storage);
      case_free (c);
      continue;
    }
    float *got = t_get (c, &out);
    const size_t step = row_step (T, (double) (K * I + SH) * H * 3);
    double *hbuf = hd (c, MAX (I, SH)), *o = hd (c, H);
    Err e = { 0 };
    for (size_t t = 0; t < T; t++) {
      if (!row_checked (t, T, step))
        continue;
      const float *xr = xv + t * H;
      memset (o, 0, H * sizeof (double));
      for (size_t j = 0; j <= K; j++) {
        /* the K routed experts, then the shared MLP (weight 1) */
        const gboolean shared = j == K;
        if (shared && !SH)
          break;
        const size_t ex_e = shared ? 0 : (size_t) idx[t * K + j], n_h = shared ? SH : I;
        const float *g = shared ? shg : gv + ex_e * gstep * H;
        const float *u = shared ? shu : uv + ex_e * gstep * H;
        const float *d = shared ? shd : dv + ex_e * dstep * I;
        const double wj = shared ? 1.0 : wv[t * K + j];
        for (size_t i = 0; i < n_h; i++) {
          double a = 0.0, b = 0.0;
          for (size_t q = 0; q < H; q++) {
            a += (double) g[i * H + q] * xr[q];
            b += (double) u[i * H + q] * xr[q];
          }
          hbuf[i] = ref_silu (a) * b;
        }
        for (size_t q = 0; q < H; q++) {
          double s = 0.0;
          for (size_t i = 0; i < n_h; i++)
            s += (double) d[q * n_h + i] * hbuf[i];
          o[q] += wj * s;
        }
      }
      for (size_t q = 0; q < H; q++)
        err_add (&e, t * H + q, got[t * H + q], o[q]);
    }
    if (step > 1)
      g_strlcat (what, " (tokens sampled)", sizeof what);
    check_gaps (c, &out, what);
    /* quantized experts of few tokens may quantize their inputs and hidden rows */
    case_end_bound (c, what, &e, quant ? QUANT_MOE_BOUND : c->bound);
    dsk_weight_storage_free (storage);
    case_free (c);
  }

  /* a strided x: backend.h lets outer strides be anything */
  {
    const char *what = "x with strided rows (4 experts, 2 per token)";
    float *xv, *gv, *uv, *dv;
    dsk_tensor x = t_rand (c, &r, DSK_F32, 2, NE (6, 16), L_PAD, 1.0, &xv);
    dsk_tensor g = t_rand (c, &r, DSK_F32, 2, NE (4 * 8, 16), L_PACKED, 0.25, &gv);
    dsk_tensor u = t_rand (c, &r, DSK_F32, 2, NE (4 * 8, 16), L_PACKED, 0.25, &uv);
    dsk_tensor d = t_rand (c, &r, DSK_F32, 2, NE (4 * 16, 8), L_PACKED, 0.35, &dv);
    dsk_tensor *gate = hmem (c, 4 * sizeof (dsk_tensor)), *up = hmem (c, 4 * sizeof (dsk_tensor));
    dsk_tensor *down = hmem (c, 4 * sizeof (dsk_tensor));
    for (size_t i = 0; i < 4; i++) {
      gate[i] = dsk_narrow (&g, 0, 8 * i, 8);
      up[i] = dsk_narrow (&u, 0, 8 * i, 8);
      down[i] = dsk_narrow (&d, 0, 16 * i, 16);
    }
    const int32_t idx[12] = { 0, 1, 1, 2, 0, 3, 2, 3, 0, 2, 1, 3 };
    float wv[12];
    for (int i = 0; i < 12; i++)
      wv[i] = 0.25f + 0.0625f * (float) i;
    dsk_tensor it = idx_tensor (c, idx, 12), wt = t2 (c, DSK_F32, 6, 2);
    dsk_tensor out = t2 (c, DSK_F32, 6, 16);
    it = dsk_split (&it, 0, 6, 2);
    t_set (c, &wt, wv);
    const dsk_moe_experts ex = { 4, gate, up, down, NULL, NULL, NULL };
    dsk_moe (c->be, &out, &x, &it, &wt, &ex);
    if (ran (c, what)) {
      float *got = t_get (c, &out);
      Err e = { 0 };
      for (size_t t = 0; t < 6; t++)
        for (size_t q = 0; q < 16; q++) {
          double s = 0.0;
          for (size_t j = 0; j < 2; j++) {
            const size_t ex_e = (size_t) idx[t * 2 + j];
            double hb[8], acc = 0.0;
            for (size_t i = 0; i < 8; i++) {
              double a = 0.0, b = 0.0;
              for (size_t k = 0; k < 16; k++) {
                a += (double) gv[(ex_e * 8 + i) * 16 + k] * xv[t * 16 + k];
                b += (double) uv[(ex_e * 8 + i) * 16 + k] * xv[t * 16 + k];
              }
              hb[i] = ref_silu (a) * b;
            }
            for (size_t i = 0; i < 8; i++)
              acc += (double) dv[(ex_e * 16 + q) * 8 + i] * hb[i];
            s += wv[t * 2 + j] * acc;
          }
          err_add (&e, t * 16 + q, got[t * 16 + q], s);
        }
      case_end (c, what, &e);
    }
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  dsk_tensor *gate = hmem (c, 2 * sizeof (dsk_tensor)), *up = hmem (c, 2 * sizeof (dsk_tensor));
  dsk_tensor *down = hmem (c, 2 * sizeof (dsk_tensor));
  for (int i = 0; i < 2; i++) {
    float *v;
    gate[i] = t_rand (c, &r, DSK_F32, 2, NE (4, 8), L_PACKED, 0.3, &v);
    up[i] = t_rand (c, &r, DSK_F32, 2, NE (4, 8), L_PACKED, 0.3, &v);
    down[i] = t_rand (c, &r, DSK_F32, 2, NE (8, 4), L_PACKED, 0.5, &v);
  }
  k.experts = (dsk_moe_experts) { 2, gate, up, down, NULL, NULL, NULL };
  k.t[0] = t2 (c, DSK_F32, 3, 8);
  k.t[1] = t2 (c, DSK_F32, 3, 8);
  k.t[2] = idx_tensor (c, (const int32_t[]) { 0, 1, 1, 0, 0, 1 }, 6);
  k.t[2] = dsk_split (&k.t[2], 0, 3, 2);
  k.t[3] = t2 (c, DSK_F32, 3, 2);
  call_fill (c, &r, &k, 1);
  call_fill (c, &r, &k, 3);
  const Mut m[3] = { MUT (M_NARROW, 2, 1), MUT_DT (3, DSK_BF16), MUT_DEV (1) };
  check_refusals (c, &k, c_moe, m);
}

/* ==== DeepSeek-V3.2's lightning indexer ==== */

static void
c_index_scores (dsk_backend *be, const Call *k)
{
  const dsk_attention_desc d = desc_of (k);
  dsk_index_scores (be, &k->t[0], &k->t[1], &k->t[2], &k->t[3], &d, k->f);
}

static void
test_index_scores (Ctx *c)
{
  static const struct {
    const char *what;
    size_t T, S, Hi, D;
    int causal;
    size_t pos0;
    gboolean valid, strided_q, slow;
  } cases[] = {
    { "no mask", 5, 12, 4, 16 },
    { "causal after 14, padding", 6, 20, 8, 32, 1, 14, TRUE },
    { "two key blocks, several query blocks: causal after 2060, padding", 40, 2100, 16, 128, 1,
      2060, TRUE },
    { "V3.2's indexer heads: 64 of 128, 4 queries after 1020", 4, 1024, 64, 128, 1, 1020, FALSE },
    { "q with strided rows", 3, 10, 2, 8, 0, 0, FALSE, TRUE },
  };
  Rng r = rng_new (110);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t T = cases[ci].T, S = cases[ci].S, Hi = cases[ci].Hi, D = cases[ci].D;
    if (cases[ci].slow && quick)
      continue;
    char what[200];
    snprintf (what, sizeof what, "%s [T %zu, S %zu, %zu heads of %zu]", cases[ci].what, T, S, Hi,
              D);
    float *qv, *wv, *kv;
    dsk_tensor q;
    if (cases[ci].strided_q) {
      dsk_tensor qb = t2 (c, DSK_F32, T, Hi * D + 5);
      qb = dsk_narrow (&qb, 1, 1, Hi * D);
      q = dsk_split (&qb, 1, Hi, D);
      qv = rnd (c, &r, T * Hi * D, 1.0);
      t_set (c, &q, qv);
    } else {
      q = t_rand (c, &r, DSK_F32, 3, NE (T, Hi, D), L_PACKED, 1.0, &qv);
    }
    dsk_tensor w = t_rand (c, &r, DSK_F32, 2, NE (T, Hi), L_PACKED, 1.0 / sqrt ((double) Hi), &wv);
    dsk_tensor keys = t_rand (c, &r, DSK_F32, 2, NE (S, D), L_PACKED, 1.0, &kv);
    dsk_tensor sc = t_lay (c, DSK_F32, 2, NE (T, S), ci % 2 ? L_PAD : L_PACKED), vt;
    uint8_t *valid = NULL;
    const float scale = (float) (1.0 / sqrt ((double) D));
    dsk_attention_desc d = { .scale = 1.0f, .causal = cases[ci].causal, .q_pos0 = cases[ci].pos0 };
    if (cases[ci].valid) {
      valid = hmem (c, S);
      for (size_t s = 0; s < S; s++)
        valid[s] = s >= 3 && s % 11 != 5;
      vt = t2 (c, DSK_U8, 1, S);
      dsk_tensor_set (c->be, &vt, valid);
      d.key_valid = &vt;
    }
    dsk_index_scores (c->be, &sc, &q, &w, &keys, &d, scale);
    if (!ran (c, what)) {
      case_free (c);
      continue;
    }
    float *got = t_get (c, &sc);
    const size_t step = row_step (T, (double) S * Hi * D);
    Err e = { 0 };
    for (size_t t = 0; t < T; t++) {
      if (!row_checked (t, T, step))
        continue;
      for (size_t s = 0; s < S; s++) {
        double want = -INFINITY;
        if ((!cases[ci].causal || s <= cases[ci].pos0 + t) && (!valid || valid[s])) {
          want = 0.0;
          for (size_t j = 0; j < Hi; j++) {
            double dot = 0.0;
            for (size_t i = 0; i < D; i++)
              dot += (double) qv[(t * Hi + j) * D + i] * kv[s * D + i];
            want += (double) wv[t * Hi + j] * scale * MAX (dot, 0.0);
          }
        }
        err_add (&e, t * S + s, got[t * S + s], want);
      }
    }
    if (step > 1)
      g_strlcat (what, " (queries sampled)", sizeof what);
    check_gaps (c, &sc, what);
    case_end (c, what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 }, .f = 0.25f };
  k.t[0] = t2 (c, DSK_F32, 3, 6);
  k.t[1] = t3 (c, DSK_F32, 3, 2, 8);
  k.t[2] = t2 (c, DSK_F32, 3, 2);
  k.t[3] = t2 (c, DSK_F32, 6, 8);
  for (int i = 1; i < 4; i++)
    call_fill (c, &r, &k, i);
  const Mut m[3] = { MUT (M_NARROW, 3, 1), MUT_DT (2, DSK_BF16), MUT_DEV (3) };
  check_refusals (c, &k, c_index_scores, m);
}

static void
c_topk (dsk_backend *be, const Call *k)
{
  dsk_topk (be, &k->t[0], &k->t[1]);
}

typedef struct {
  float v;
  int32_t i;
} ranked;

/* by score descending, then index ascending */
static int
cmp_rank (const void *a, const void *b)
{
  const ranked *x = a, *y = b;
  if (x->v != y->v)
    return x->v > y->v ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* idx [T, K]: the K largest finite scores of each row, by score descending then index
 * ascending, padded with -1 */
static void
test_topk (Ctx *c)
{
  enum { K_DISTINCT, K_TIES, K_NONFINITE, K_ALL_INF, K_V32 };
  static const struct {
    const char *what;
    size_t T, S, K;
    int kind;
    int lay;
    gboolean slow;
  } cases[] = {
    { "distinct scores", 4, 50, 10, K_DISTINCT, L_PACKED },
    { "ties: integer scores", 3, 40, 12, K_TIES, L_PACKED },
    { "-inf, +inf and NaN entries; K above the finite count", 3, 30, 16, K_NONFINITE, L_PACKED },
    { "rows of -inf: all -1", 2, 9, 4, K_ALL_INF, L_PACKED },
    { "K = S", 2, 20, 20, K_TIES, L_PACKED },
    { "strided scores and idx", 5, 33, 7, K_TIES, L_PAD },
    { "V3.2's index_topk: 2048 of 8192, ties, a causal -inf tail", 4, 8192, 2048, K_V32,
      L_PACKED },
  };
  Rng r = rng_new (120);
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    const size_t T = cases[ci].T, S = cases[ci].S, K = cases[ci].K;
    float *sv = hf (c, T * S);
    for (size_t t = 0; t < T; t++)
      for (size_t s = 0; s < S; s++) {
        float *v = &sv[t * S + s];
        switch (cases[ci].kind) {
          case K_DISTINCT: *v = rng_sym (&r, 10.0); break;
          case K_TIES: *v = (float) rng_below (&r, 6); break;
          case K_NONFINITE:
            *v = s % 3 == 0 ? (float) rng_below (&r, 4) : -INFINITY;
            if (s == 7)
              *v = INFINITY;
            if (s == 10)
              *v = NAN;
            break;
          case K_ALL_INF: *v = -INFINITY; break;
          default:
            *v = s > S - 1000 + 200 * t ? -INFINITY : (float) rng_below (&r, 512) / 64.0f;
        }
      }
    dsk_tensor st = t_lay (c, DSK_F32, 2, NE (T, S), cases[ci].lay);
    dsk_tensor it = t_lay (c, DSK_I32, 2, NE (T, K), cases[ci].lay);
    t_set (c, &st, sv);
    dsk_topk (c->be, &it, &st);
    if (!ran (c, cases[ci].what)) {
      case_free (c);
      continue;
    }
    int32_t *got = hmem (c, T * K * sizeof (int32_t));
    ranked *order = hmem (c, S * sizeof (ranked));
    dsk_tensor_get (c->be, &it, got);
    Err e = { 0 };
    for (size_t t = 0; t < T; t++) {
      size_t n = 0;
      for (size_t s = 0; s < S; s++)
        if (isfinite (sv[t * S + s]))
          order[n++] = (ranked) { sv[t * S + s], (int32_t) s };
      qsort (order, n, sizeof (ranked), cmp_rank);
      for (size_t j = 0; j < K; j++)
        err_add (&e, t * K + j, got[t * K + j], j < n ? order[j].i : -1);
    }
    char what[200];
    snprintf (what, sizeof what, "%s [T %zu, S %zu, K %zu]", cases[ci].what, T, S, K);
    check_gaps (c, &it, what);
    case_end (c, what, &e);
    case_free (c);
  }

  Call k = { .n_out = 1, .out = { 0 } };
  k.t[0] = t2 (c, DSK_I32, 3, 4);
  k.t[1] = t2 (c, DSK_F32, 3, 10);
  call_fill (c, &r, &k, 1);
  const Mut m[3] = { MUT (M_NARROW, 1, 0), MUT_DT (1, DSK_BF16), MUT_DEV (1) };
  check_refusals (c, &k, c_topk, m);
}

/* ==== thread-count independence (CPU) ==== */

/* Each runs one op on c's backend from inputs drawn from @seed and returns its output. */
typedef float *(*thread_fn) (Ctx *c, uint64_t seed, size_t *n);

static size_t thread_linear_n;
static dsk_dtype thread_linear_dt;

static float *
thread_linear (Ctx *c, uint64_t seed, size_t *n)
{
  Rng r = rng_new (seed);
  const size_t rows = thread_linear_n, in = 256, out = 300;
  float *xv, *wv, *bv;
  dsk_tensor x = t_rand (c, &r, DSK_F32, 2, NE (rows, in), L_PAD, 1.0, &xv);
  dsk_weight_storage *storage = NULL;
  dsk_tensor w;
  if (thread_linear_dt == DSK_Q8 || thread_linear_dt == DSK_Q4) {
    wv = rnd (c, &r, out * in, 0.0625);
    storage = dsk_weight_storage_new ();
    w = quant_weight (c, thread_linear_dt, out, in, wv, storage);
  } else {
    w = t_rand (c, &r, thread_linear_dt, 2, NE (out, in), L_PACKED, 0.0625, &wv);
  }
  dsk_tensor b = t_rand (c, &r, DSK_F32, 1, NE (out), L_PACKED, 0.5, &bv);
  dsk_tensor y = t2 (c, DSK_F32, rows, out);
  dsk_linear (c->be, &y, &x, &w, &b);
  *n = rows * out;
  float *got = t_get (c, &y);
  dsk_weight_storage_free (storage);
  return got;
}

static const acase thread_att_cases[] = {
  { "GQA, causal chunk, padding, bias", 2, 100, 130, 4, 2, 64, 64, 1, 30, AV_SOME, AB_ONE },
  { "decode with rel terms", 1, 1, 144, 4, 4, 32, 32, .kv_h = 12 },
  { "T = S = 512, causal", 1, 512, 512, 2, 1, 64, 64, 1, 0, AV_BLIND },
};
static const acase *thread_att_case;

static float *
thread_attention (Ctx *c, uint64_t seed, size_t *n)
{
  Rng r = rng_new (seed);
  atens at;
  att_build (c, &r, thread_att_case, TRUE, &at);
  dsk_attention (c->be, &at.out, &at.q, &at.k, &at.v, &at.desc);
  *n = dsk_tensor_n_elements (&at.out);
  return t_get (c, &at.out);
}

static float *
thread_moe (Ctx *c, uint64_t seed, size_t *n)
{
  Rng r = rng_new (seed);
  const size_t T = 70, H = 128, E = 16, I = 96, K = 4, SH = 128;
  dsk_tensor *g = hmem (c, E * sizeof (dsk_tensor)), *u = hmem (c, E * sizeof (dsk_tensor));
  dsk_tensor *d = hmem (c, E * sizeof (dsk_tensor)), sg, su, sd;
  float *v;
  for (size_t e = 0; e < E; e++) {
    g[e] = t_rand (c, &r, DSK_BF16, 2, NE (I, H), L_PACKED, 0.09, &v);
    u[e] = t_rand (c, &r, DSK_BF16, 2, NE (I, H), L_PACKED, 0.09, &v);
    d[e] = t_rand (c, &r, DSK_BF16, 2, NE (H, I), L_PACKED, 0.1, &v);
  }
  sg = t_rand (c, &r, DSK_BF16, 2, NE (SH, H), L_PACKED, 0.09, &v);
  su = t_rand (c, &r, DSK_BF16, 2, NE (SH, H), L_PACKED, 0.09, &v);
  sd = t_rand (c, &r, DSK_BF16, 2, NE (H, SH), L_PACKED, 0.09, &v);
  const dsk_moe_experts ex = { (int) E, g, u, d, &sg, &su, &sd };
  int32_t *idx = hmem (c, T * K * sizeof (int32_t));
  for (size_t t = 0; t < T; t++)   /* expert 0 for every token (packed), the rest spread */
    for (size_t j = 0; j < K; j++)
      idx[t * K + j] = j == 0 ? 0 : (int32_t) (1 + (t * 3 + j * 5) % 5 + 5 * (j - 1));
  dsk_tensor it = idx_tensor (c, idx, T * K), wt, x, out = t2 (c, DSK_F32, T, H);
  it = dsk_split (&it, 0, T, K);
  wt = t_rand (c, &r, DSK_F32, 2, NE (T, K), L_PACKED, 1.0, &v);
  x = t_rand (c, &r, DSK_F32, 2, NE (T, H), L_PACKED, 1.0, &v);
  dsk_moe (c->be, &out, &x, &it, &wt, &ex);
  *n = T * H;
  return t_get (c, &out);
}

static float *
thread_rmsnorm (Ctx *c, uint64_t seed, size_t *n)
{
  Rng r = rng_new (seed);
  float *v;
  dsk_tensor x = t_rand (c, &r, DSK_F32, 2, NE (300, 1280), L_PAD, 1.0, &v);
  dsk_tensor w = t_rand (c, &r, DSK_BF16, 1, NE (1280), L_PACKED, 1.0, &v);
  dsk_tensor y = t2 (c, DSK_F32, 300, 1280);
  dsk_rmsnorm (c->be, &y, &x, &w, 1e-6f);
  *n = 300 * 1280;
  return t_get (c, &y);
}

static Ctx
ctx_new (const char *name, dsk_backend *be, const char *op)
{
  Ctx c = { .be_name = name, .be = be, .op = op, .bound = 0.0 };
  c.host = dsk_backend_get_device (be).kind == DSK_DEVICE_HOST;
  c.bufs = g_array_new (FALSE, FALSE, sizeof (Buf));
  c.mem = g_ptr_array_new_with_free_func (g_free);
  return c;
}

static void
ctx_clear (Ctx *c)
{
  case_free (c);
  g_array_unref (c->bufs);
  g_ptr_array_unref (c->mem);
}

/* The op of @fn on 1 and on 3 threads, bit for bit. */
static void
same_bits (dsk_backend *b1, dsk_backend *b3, const char *op, const char *what, thread_fn fn)
{
  Ctx c1 = ctx_new ("cpu/1", b1, op), c3 = ctx_new ("cpu/3", b3, op);
  size_t n1 = 0, n3 = 0;
  float *o1 = fn (&c1, 7, &n1), *o3 = fn (&c3, 7, &n3);
  if (dsk_backend_failed (b1) || dsk_backend_failed (b3)) {
    g_test_fail_printf ("threads %s: %s: %s%s", op, what, dsk_backend_error (b1),
                        dsk_backend_error (b3));
    dsk_backend_clear_error (b1);
    dsk_backend_clear_error (b3);
  } else {
    size_t first = n1;
    for (size_t i = 0; i < n1 && first == n1; i++)
      if (memcmp (&o1[i], &o3[i], sizeof (float)) != 0)
        first = i;
    if (n1 != n3 || first != n1)
      g_test_fail_printf ("threads %s: %s: 1 and 3 threads differ at element %zu (%.9g vs %.9g)",
                          op, what, first, first < n1 ? o1[first] : 0.0,
                          first < n1 ? o3[first] : 0.0);
    else
      g_test_message ("threads %s: %s: 1 and 3 threads bit-identical over %zu values", op, what,
                      n1);
  }
  ctx_clear (&c1);
  ctx_clear (&c3);
}

static void
test_threads (void)
{
  static const struct {
    dsk_mm_kernels k;
    const char *name;
  } kernels[] = {
    { DSK_MM_KERNELS_AUTO, "default kernels" }, { DSK_MM_KERNELS_AVX2, "AVX2 kernels" },
    { DSK_MM_KERNELS_GENERIC, "plain C kernels" },
  };
  static const size_t ns[] = { 1, 5, 9, 40, 300, DSK_MM_BLAS_MIN_ROWS + 76 };
  char err[256], what[200];

  dsk_pool_set_parallel_min (0);   /* every run spread over the pool, however small */
  for (size_t ki = 0; ki < G_N_ELEMENTS (kernels); ki++) {
    dsk_mm_force_kernels (kernels[ki].k);
    dsk_backend *b1 = dsk_backend_new ("cpu", 1, err, sizeof err);
    dsk_backend *b3 = dsk_backend_new ("cpu", 3, err, sizeof err);
    g_assert_nonnull (b1);
    g_assert_nonnull (b3);
    for (int path = 0; path < 3; path++) {
      /* linear's own path choice, then the kernels only, then BLAS from 9 rows */
      dsk_mm_force_path (path);
      for (size_t ni = 0; ni < G_N_ELEMENTS (ns); ni++)
        for (int di = 0; di < 4; di++) {
          static const dsk_dtype dts[] = { DSK_F32, DSK_BF16, DSK_Q8, DSK_Q4 };
          if (path && ns[ni] <= DSK_MM_GEMV_MAX)
            continue;
          thread_linear_n = ns[ni];
          thread_linear_dt = dts[di];
          snprintf (what, sizeof what, "%s, %s, n %zu, %s weights", kernels[ki].name,
                    path == 0 ? "automatic path" : path == 1 ? "kernels forced" : "BLAS forced",
                    ns[ni], dt_name (thread_linear_dt));
          same_bits (b1, b3, "linear", what, thread_linear);
        }
    }
    dsk_mm_force_path (0);
    if (kernels[ki].k == DSK_MM_KERNELS_AUTO) {
      same_bits (b1, b3, "moe", "16 experts, 4 per token, shared, BF16", thread_moe);
      same_bits (b1, b3, "rmsnorm", "[300, 1280], strided rows", thread_rmsnorm);
    }
    dsk_backend_unref (b1);
    dsk_backend_unref (b3);
  }
  dsk_mm_force_kernels (DSK_MM_KERNELS_AUTO);

  dsk_backend *b1 = dsk_backend_new ("cpu", 1, err, sizeof err);
  dsk_backend *b3 = dsk_backend_new ("cpu", 3, err, sizeof err);
  static const char *paths[] = { "streaming, SIMD", "streaming, plain C", "BLAS" };
  for (int p = 0; p < 3; p++) {
    dsk_cpu_force_generic (p == 1);
    dsk_attention_force_path (p == 2 ? 2 : 1);
    for (size_t ci = 0; ci < G_N_ELEMENTS (thread_att_cases); ci++) {
      thread_att_case = &thread_att_cases[ci];
      snprintf (what, sizeof what, "%s: %s", paths[p], thread_att_case->what);
      same_bits (b1, b3, "attention", what, thread_attention);
    }
  }
  dsk_cpu_force_generic (0);
  dsk_attention_force_path (0);
  dsk_pool_set_parallel_min (-1);
  dsk_backend_unref (b1);
  dsk_backend_unref (b3);
}

/* ==== the op table and the per-(backend, op) tests ==== */

typedef void (*op_test) (Ctx *c);

static const struct {
  const char *name;
  op_test fn;
} op_table[] = {
  { "tensor_set", test_tensor_set }, { "tensor_get", test_tensor_get }, { "copy", test_copy },
  { "fill", test_fill }, { "get_rows", test_get_rows }, { "set_rows", test_set_rows },
  { "add", test_add }, { "round", test_round }, { "silu", test_silu }, { "gelu", test_gelu },
  { "quick_gelu", test_quick_gelu }, { "swiglu", test_swiglu }, { "softmax", test_softmax },
  { "rmsnorm", test_rmsnorm }, { "layernorm", test_layernorm },
  { "rope_tables", test_rope_tables }, { "rope", test_rope }, { "linear", test_linear },
  { "linear_acc", test_linear_acc }, { "matmul", test_matmul }, { "attention", test_attention },
  { "attention_sparse", test_attention_sparse }, { "attention_probs", test_attention_probs },
  { "rel_pos", test_rel_pos }, { "conv2d", test_conv2d },
  { "resize_bicubic_aa", test_resize_bicubic_aa }, { "resize_linear", test_resize_linear },
  { "moe_route", test_moe_route }, { "moe", test_moe }, { "index_scores", test_index_scores },
  { "topk", test_topk },
};

#define N_OPS G_N_ELEMENTS (op_table)
#define MAX_BACKENDS 8

typedef enum { R_NOT_RUN, R_PASS, R_KNOWN, R_SKIP, R_FAIL } result;

typedef struct {
  const char *name;
  dsk_backend *be;
  gboolean tried;
  result res[N_OPS];
  double worst[N_OPS];
  int cases[N_OPS], case_skips[N_OPS];
} backend_state;

static backend_state backends[MAX_BACKENDS];

typedef struct {
  int b, op;
} op_ref;

static void
run_op (gconstpointer data)
{
  const op_ref *ref = data;
  backend_state *bs = &backends[ref->b];
  const char *op = op_table[ref->op].name;
  char err[256] = "";

  bs->res[ref->op] = R_SKIP;
  if (!dsk_device_available (bs->name)) {
    g_test_skip_printf ("%s: not present on this machine", bs->name);
    return;
  }
  if (!bs->tried) {
    bs->tried = TRUE;
    bs->be = dsk_backend_new (bs->name, 0, err, sizeof err);
    if (bs->be)
      g_test_message ("backend %s: %s", bs->name, dsk_backend_get_description (bs->be));
  }
  if (!bs->be) {
    bs->res[ref->op] = R_FAIL;
    g_test_fail_printf ("%s: present but cannot be opened: %s", bs->name, err);
    return;
  }
  if (!dsk_backend_supports (bs->be, op)) {
    g_test_skip_printf ("%s: %s not implemented", bs->name, op);
    return;
  }
  Ctx c = ctx_new (bs->name, bs->be, op);
  c.bound = bound_of (op);
  dsk_backend_clear_error (bs->be);
  op_table[ref->op].fn (&c);
  ctx_clear (&c);
  if (dsk_backend_failed (bs->be)) {
    ctx_fail (&c, "left an error behind: %s", dsk_backend_error (bs->be));
    dsk_backend_clear_error (bs->be);
  }
  g_test_message ("%s %s: %d cases, %d skipped, %d with a known bug, largest error %.3g "
                  "(bound %.3g)", bs->name, op, c.n_cases, c.n_skipped, c.n_known, c.worst,
                  c.bound);
  bs->worst[ref->op] = c.worst;
  bs->cases[ref->op] = c.n_cases;
  bs->case_skips[ref->op] = c.n_skipped;
  bs->res[ref->op] = c.failed ? R_FAIL : c.n_known ? R_KNOWN : R_PASS;
}

int
main (int argc, char **argv)
{
  const char *const *list = dsk_backend_list ();
  const char *q = g_getenv ("DSOCR_QUICK");
  int n_be = 0;

  g_test_init (&argc, &argv, NULL);
  quick = q && *q && strcmp (q, "0") != 0;
  for (; list[n_be] && n_be < MAX_BACKENDS; n_be++) {
    backends[n_be].name = list[n_be];
    for (size_t o = 0; o < N_OPS; o++) {
      op_ref *ref = g_new (op_ref, 1);
      *ref = (op_ref) { n_be, (int) o };
      char *path = g_strdup_printf ("/backend-ops/%s/%s", list[n_be], op_table[o].name);
      g_test_add_data_func_full (path, ref, run_op, g_free);
      g_free (path);
    }
  }
  g_test_add_func ("/backend-checks/cpu/threads", test_threads);

  const int rc = g_test_run ();

  for (int b = 0; b < n_be; b++) {
    int pass = 0, known = 0, skip = 0, fail = 0, run = 0;
    for (size_t o = 0; o < N_OPS; o++) {
      const result res = backends[b].res[o];
      pass += res == R_PASS || res == R_KNOWN;
      known += res == R_KNOWN;
      skip += res == R_SKIP;
      fail += res == R_FAIL;
      run += res != R_NOT_RUN;
    }
    if (!run)
      continue;
    g_test_message ("summary %s: %d of %zu ops passed (%d of them with cases marked for a known "
                    "bug), %d skipped, %d failed%s", backends[b].name, pass, N_OPS, known, skip,
                    fail, quick ? " (DSOCR_QUICK)" : "");
    for (size_t o = 0; o < N_OPS; o++) {
      static const char *res_name[] = { "", "passed", "passed, known bug", "skipped", "FAILED" };
      const result res = backends[b].res[o];
      if (res != R_NOT_RUN && res != R_SKIP)
        g_test_message ("summary %s %-18s %-17s %2d cases, %d skipped, largest error %.3g "
                        "(bound %.3g)", backends[b].name, op_table[o].name, res_name[res],
                        backends[b].cases[o], backends[b].case_skips[o], backends[b].worst[o],
                        bound_of (op_table[o].name));
    }
    if (backends[b].be)
      dsk_backend_unref (backends[b].be);
  }
  return rc;
}
