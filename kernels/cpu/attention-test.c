/* attention-test.c: dsk_attention_f32_cpu against a double-precision softmax(q k^T) v written
 * out in full, for MHA/GQA/MQA, causal decode over a cache, padding masks, additive and
 * decomposed biases, MLA head dims and strided (fused) layouts, on the streaming (SIMD and
 * plain C) and BLAS paths; and the item-wise interface (plan + items in any order) against
 * the whole-problem call, bit for bit. */
#include <float.h>
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsocr-build-config.h"
#include "dsk.h"
#include "dsk-cpu.h"
#include "linear.h"

/* The buffers of one case: q, k, v live inside wider rows (offsets) when @fused. */
typedef struct {
  dsk_attention_params p;
  float *qbuf, *kbuf, *vbuf, *obuf;
  const float *q, *k, *v;
  float *out;
  size_t out_len;
  float *bias, *rel_h, *rel_w;
  uint8_t *valid;
} att_case;

/* 0: automatic (streaming SIMD at these sizes), 1: streaming plain C, 2: BLAS (streaming
 * where the build has none), 3: the packed product kernel (streaming without AVX-512) */
static void
set_mode (int mode)
{
  dsk_cpu_force_generic (mode == 1);
  dsk_attention_force_path (mode >= 2 ? mode : mode == 1 ? 1 : 0);
}

static float *
random_f32 (GRand *rng, size_t n, double lo, double hi)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = (float) g_rand_double_range (rng, lo, hi);
  return x;
}

/* q[t, h, :] and friends under the params' strides (0 = packed) */
static size_t qs (const dsk_attention_params *p) { return p->q_stride ? p->q_stride : p->n_heads * p->d_qk; }
static size_t ks (const dsk_attention_params *p) { return p->k_stride ? p->k_stride : p->n_kv_heads * p->d_qk; }
static size_t vs (const dsk_attention_params *p) { return p->v_stride ? p->v_stride : p->n_kv_heads * p->d_v; }
static size_t os (const dsk_attention_params *p) { return p->out_stride ? p->out_stride : p->n_heads * p->d_v; }
static size_t qhs (const dsk_attention_params *p) { return p->q_head_stride ? p->q_head_stride : p->d_qk; }
static size_t khs (const dsk_attention_params *p) { return p->k_head_stride ? p->k_head_stride : p->d_qk; }
static size_t vhs (const dsk_attention_params *p) { return p->v_head_stride ? p->v_head_stride : p->d_v; }
static size_t ohs (const dsk_attention_params *p) { return p->out_head_stride ? p->out_head_stride : p->d_v; }

/* Straightforward double attention; checks every output element. The error of an output is
 * that of its logits (d_qk products each) pushed through the softmax, plus the weighted sum
 * of n_kv values: the docs/kernels.md rule with the longer reduction, (d_qk + n_kv) eps,
 * relative to max |v| (outputs are convex combinations of v rows). */
static void
check_case (const att_case *c, const char *what)
{
  const dsk_attention_params *p = &c->p;
  const size_t group = p->n_heads / p->n_kv_heads;
  double *lg = g_new (double, p->n_kv);
  double vmax = 0.0, worst = 0.0;
  for (size_t s = 0; s < p->n_kv; s++)
    for (size_t hk = 0; hk < p->n_kv_heads; hk++)
      for (size_t i = 0; i < p->d_v; i++)
        vmax = MAX (vmax, fabs (c->v[s * vs (p) + hk * vhs (p) + i]));
  const double tol = 4.0 * (double) (p->d_qk + p->n_kv) * FLT_EPSILON * vmax + 1e-30;

  for (size_t h = 0; h < p->n_heads; h++) {
    const size_t hk = h / group;
    for (size_t t = 0; t < p->n_q; t++) {
      const float *qr = c->q + t * qs (p) + h * qhs (p);
      double m = -INFINITY, sum = 0.0;
      for (size_t s = 0; s < p->n_kv; s++) {
        if ((p->causal && s > p->q_pos0 + t) || (p->key_valid && !p->key_valid[s])) {
          lg[s] = -INFINITY;
          continue;
        }
        const float *kr = c->k + s * ks (p) + hk * khs (p);
        double d = 0.0;
        for (size_t i = 0; i < p->d_qk; i++)
          d += (double) qr[i] * kr[i];
        d *= p->scale;
        if (p->bias) {
          size_t bld = p->bias_ld ? p->bias_ld : p->n_kv;
          size_t bhs = p->bias_head_stride ? p->bias_head_stride : p->n_q * bld;
          d += p->bias[(p->bias_heads == 1 ? 0 : h) * bhs + t * bld + s];
        }
        if (p->rel_h)
          d += p->rel_h[(h * p->n_q + t) * p->kv_h + s / p->kv_w] +
               p->rel_w[(h * p->n_q + t) * p->kv_w + s % p->kv_w];
        lg[s] = d;
        m = MAX (m, d);
      }
      for (size_t s = 0; s < p->n_kv; s++) {
        lg[s] = m == -INFINITY ? 0.0 : exp (lg[s] - m);
        sum += lg[s];
      }
      const float *o = c->out + t * os (p) + h * ohs (p);
      for (size_t i = 0; i < p->d_v; i++) {
        double want = 0.0;
        for (size_t s = 0; s < p->n_kv && sum > 0.0; s++)
          if (lg[s] != 0.0)
            want += lg[s] / sum * c->v[s * vs (p) + hk * vhs (p) + i];
        double err = fabs (o[i] - want);
        worst = MAX (worst, err);
        if (!(err <= tol))
          g_error ("%s: h=%zu t=%zu i=%zu: %.9g, want %.9g (tol %.3g)", what, h, t, i, o[i], want, tol);
      }
    }
  }
  /* the brief's normwise 1e-5 for these sizes */
  g_assert_cmpfloat (worst / (vmax > 0 ? vmax : 1.0), <=, 1e-5);
  g_free (lg);
}

/* Fills q, k, v (and out) with random data; with @fused, q/k/v share rows of one qkv buffer
 * [T, (H + 2 KVH) * d] the way a fused projection writes them, and out rows are padded. */
static void
make_case (att_case *c, GRand *rng, gboolean fused)
{
  dsk_attention_params *p = &c->p;
  const size_t T = p->n_q, S = p->n_kv;
  if (fused) {
    g_assert_cmpuint (T, ==, S);
    size_t row = p->n_heads * p->d_qk + p->n_kv_heads * p->d_qk + p->n_kv_heads * p->d_v + 3;
    c->qbuf = random_f32 (rng, T * row, -1.0, 1.0);
    c->q = c->qbuf;
    c->k = c->qbuf + p->n_heads * p->d_qk;
    c->v = c->k + p->n_kv_heads * p->d_qk;
    p->q_stride = p->k_stride = p->v_stride = row;
    p->out_stride = p->n_heads * p->d_v + 5;
  } else {
    c->qbuf = random_f32 (rng, T * qs (p), -1.0, 1.0);
    c->kbuf = random_f32 (rng, S * ks (p), -1.0, 1.0);
    c->vbuf = random_f32 (rng, S * vs (p), -1.0, 1.0);
    c->q = c->qbuf;
    c->k = c->kbuf;
    c->v = c->vbuf;
  }
  c->out_len = T * os (p);
  c->obuf = g_new0 (float, c->out_len);
  c->out = c->obuf;
}

static void
free_case (att_case *c)
{
  g_free (c->qbuf);
  g_free (c->kbuf);
  g_free (c->vbuf);
  g_free (c->obuf);
  g_free (c->bias);
  g_free (c->rel_h);
  g_free (c->rel_w);
  g_free (c->valid);
}

static void
run_and_check (att_case *c, const char *what)
{
  g_assert_cmpint (dsk_attention_f32_cpu (c->out, c->q, c->k, c->v, &c->p), ==, DSK_OK);
  check_case (c, what);
}

/* MHA over query, key and head-dim sizes (tails of every SIMD width), every path. */
static void
test_shapes (void)
{
  static const size_t Ts[] = { 1, 7, 97 };
  static const size_t Ss[] = { 1, 7, 97, 257 };
  static const size_t ds[] = { 7, 64, 128 };
  GRand *rng = g_rand_new_with_seed (61);
  for (int mode = 0; mode < 4; mode++) {
    set_mode (mode);
    for (size_t a = 0; a < G_N_ELEMENTS (Ts); a++)
      for (size_t b = 0; b < G_N_ELEMENTS (Ss); b++)
        for (size_t d = 0; d < G_N_ELEMENTS (ds); d++) {
          att_case c = { 0 };
          c.p = (dsk_attention_params) { .n_q = Ts[a], .n_kv = Ss[b], .n_heads = 2, .n_kv_heads = 2,
                                         .d_qk = ds[d], .d_v = ds[d], .scale = 1.0f / sqrtf ((float) ds[d]) };
          make_case (&c, rng, FALSE);
          run_and_check (&c, "mha");
          free_case (&c);
        }
  }
  set_mode (0);
  g_rand_free (rng);
}

/* GQA and MQA; the causal mask with a cache offset (prefill chunk and single-token decode). */
static void
test_gqa_causal (void)
{
  GRand *rng = g_rand_new_with_seed (62);
  static const struct { size_t T, S, pos0; } shapes[] = {
    { 7, 7, 0 }, { 97, 97, 0 }, { 1, 257, 256 }, { 7, 97, 90 }, { 9, 300, 200 }, { 1, 1, 0 },
  };
  static const size_t kvh[] = { 6, 2, 1 };
  for (int mode = 0; mode < 4; mode++) {
    set_mode (mode);
    for (size_t a = 0; a < G_N_ELEMENTS (shapes); a++)
      for (size_t b = 0; b < G_N_ELEMENTS (kvh); b++) {
        att_case c = { 0 };
        c.p = (dsk_attention_params) { .n_q = shapes[a].T, .n_kv = shapes[a].S, .n_heads = 6,
                                       .n_kv_heads = kvh[b], .d_qk = 16, .d_v = 16, .scale = 0.25f,
                                       .causal = 1, .q_pos0 = shapes[a].pos0 };
        make_case (&c, rng, FALSE);
        run_and_check (&c, "gqa-causal");
        free_case (&c);
      }
  }
  set_mode (0);
  g_rand_free (rng);
}

/* A left-padded prompt: the first keys are padding for every query, and a padding query row
 * (which sees only padding keys under the causal mask) comes out as zeros. */
static void
test_padding (void)
{
  GRand *rng = g_rand_new_with_seed (63);
  for (int mode = 0; mode < 4; mode++) {
    set_mode (mode);
    att_case c = { 0 };
    c.p = (dsk_attention_params) { .n_q = 20, .n_kv = 20, .n_heads = 4, .n_kv_heads = 4, .d_qk = 32,
                                   .d_v = 32, .scale = 0.2f, .causal = 1 };
    make_case (&c, rng, FALSE);
    c.valid = g_new (uint8_t, 20);
    for (size_t s = 0; s < 20; s++)
      c.valid[s] = s >= 3;
    c.p.key_valid = c.valid;
    run_and_check (&c, "padding");
    for (size_t t = 0; t < 3; t++)
      for (size_t i = 0; i < 4 * 32; i++)
        g_assert_cmpfloat (c.out[t * 4 * 32 + i], ==, 0.0f);
    free_case (&c);
  }
  set_mode (0);
  g_rand_free (rng);
}

/* Additive biases: one shared [1, T, S] with -inf holes and a padded row stride, one per head,
 * SAM's decomposed rel-pos bias over a 7 x 9 key grid (fused qkv rows), and one per head laid
 * out [T, H, S'] (bias_head_stride S', bias_ld H S'), as a [H, T, S] view of a token-major
 * buffer reads. */
static void
test_bias (void)
{
  GRand *rng = g_rand_new_with_seed (64);
  for (int mode = 0; mode < 4; mode++)
    for (int kind = 0; kind < 4; kind++) {
      set_mode (mode);
      att_case c = { 0 };
      const size_t T = 63, S = 63, H = 3;
      c.p = (dsk_attention_params) { .n_q = T, .n_kv = S, .n_heads = H, .n_kv_heads = H, .d_qk = 64,
                                     .d_v = 64, .scale = 0.125f };
      make_case (&c, rng, kind == 2);
      if (kind < 2) {
        size_t bh = kind == 0 ? 1 : H, ld = S + 4;
        c.bias = random_f32 (rng, bh * T * ld, -3.0, 3.0);
        for (size_t i = 0; i < bh * T * ld; i += 7)
          c.bias[i] = -INFINITY;
        c.p.bias = c.bias;
        c.p.bias_heads = bh;
        c.p.bias_ld = ld;
      } else if (kind == 2) {
        c.rel_h = random_f32 (rng, H * T * 7, -2.0, 2.0);
        c.rel_w = random_f32 (rng, H * T * 9, -2.0, 2.0);
        c.p.rel_h = c.rel_h;
        c.p.rel_w = c.rel_w;
        c.p.kv_h = 7;
        c.p.kv_w = 9;
      } else {
        const size_t sp = S + 2;
        c.bias = random_f32 (rng, T * H * sp, -3.0, 3.0);
        for (size_t i = 5; i < T * H * sp; i += 11)
          c.bias[i] = -INFINITY;
        c.p.bias = c.bias;
        c.p.bias_heads = H;
        c.p.bias_ld = H * sp;
        c.p.bias_head_stride = sp;
      }
      run_and_check (&c, "bias");
      free_case (&c);
    }
  set_mode (0);
  g_rand_free (rng);
}

/* MLA: q/k heads of 192, v heads of 128, k and v in one cache row [S, H, 192 + 128]. */
static void
test_mla_layout (void)
{
  GRand *rng = g_rand_new_with_seed (65);
  for (int mode = 0; mode < 4; mode++) {
    set_mode (mode);
    const size_t T = 5, S = 37, H = 4, dq = 192, dv = 128;
    att_case c = { 0 };
    c.p = (dsk_attention_params) { .n_q = T, .n_kv = S, .n_heads = H, .n_kv_heads = H, .d_qk = dq,
                                   .d_v = dv, .scale = 0.114721f, .causal = 1, .q_pos0 = S - T,
                                   .k_stride = H * (dq + dv), .k_head_stride = dq + dv,
                                   .v_stride = H * (dq + dv), .v_head_stride = dq + dv };
    c.qbuf = random_f32 (rng, T * H * dq, -1.0, 1.0);
    c.kbuf = random_f32 (rng, S * H * (dq + dv), -1.0, 1.0);
    c.q = c.qbuf;
    c.k = c.kbuf;
    c.v = c.kbuf + dq;
    c.out_len = T * H * dv;
    c.obuf = g_new0 (float, c.out_len);
    c.out = c.obuf;
    run_and_check (&c, "mla");
    free_case (&c);
  }
  set_mode (0);
  g_rand_free (rng);
}

/* Shuffles @n indices in place. */
static void
shuffle (size_t *idx, size_t n, GRand *rng)
{
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t) g_rand_int_range (rng, 0, (gint32) i);
    size_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

/* Runs the items of @c in a random order, each with a scratch of exactly the planned size
 * filled with NaN beforehand (NULL when none is planned), and compares with the whole-problem
 * call bit for bit. Returns the planned scratch size. */
static size_t
check_items (att_case *c, GRand *rng, const char *what)
{
  size_t n_items = 0, n_scratch = 0;
  g_assert_cmpint (dsk_attention_plan_cpu (&c->p, &n_items, &n_scratch), ==, DSK_OK);
  g_assert_cmpuint (n_items, >, 0);

  float *whole = g_new (float, c->out_len);
  for (size_t i = 0; i < c->out_len; i++)
    c->out[i] = -5.0f;
  g_assert_cmpint (dsk_attention_f32_cpu (c->out, c->q, c->k, c->v, &c->p), ==, DSK_OK);
  memcpy (whole, c->out, c->out_len * sizeof (float));
  check_case (c, what);

  size_t *order = g_new (size_t, n_items);
  float *scratch = n_scratch ? g_new (float, n_scratch) : NULL;
  for (size_t i = 0; i < n_items; i++)
    order[i] = i;
  shuffle (order, n_items, rng);
  for (size_t i = 0; i < c->out_len; i++)
    c->out[i] = -5.0f;
  for (size_t i = 0; i < n_items; i++) {
    for (size_t j = 0; j < n_scratch; j++)
      scratch[j] = NAN;
    dsk_attention_item_cpu (c->out, c->q, c->k, c->v, &c->p, order[i], scratch);
  }
  if (memcmp (whole, c->out, c->out_len * sizeof (float)) != 0)
    g_error ("%s: items in a shuffled order differ from the whole call", what);
  g_free (order);
  g_free (scratch);
  g_free (whole);
  return n_scratch;
}

/* The item-wise interface (what the CPU backend's pool runs) gives the bits of
 * dsk_attention_f32_cpu whatever order the items run in and whatever the scratch held, on the
 * streaming path and the BLAS path, for problems of several query blocks (32 rows streaming,
 * 256 BLAS) with GQA, a causal cache offset, padding, per-head biases and rel-pos terms. */
static void
test_item_order (void)
{
  GRand *rng = g_rand_new_with_seed (66);
  for (int path = 1; path <= 3; path++) {
    dsk_cpu_force_generic (0);
    dsk_attention_force_path (path);
    for (int kind = 0; kind < 4; kind++) {
      att_case c = { 0 };
      char *what = g_strdup_printf ("items path=%d kind=%d", path, kind);
      /* 0: GQA causal with a cache offset, 1: padding + a per-head bias (own head stride),
       * 2: SAM's rel-pos terms over a 15 x 20 grid, 3: MQA, odd sizes past one BLAS block */
      const size_t T = kind >= 2 ? 300 : 70;
      const size_t S = kind == 0 ? 100 : kind == 2 ? 300 : kind == 3 ? 301 : 70;
      c.p = (dsk_attention_params) { .n_q = T, .n_kv = S, .n_heads = 4,
                                     .n_kv_heads = kind == 0 ? 2 : kind == 3 ? 1 : 4,
                                     .d_qk = kind == 3 ? 24 : 32, .d_v = kind == 3 ? 20 : 32,
                                     .scale = 0.2f, .causal = kind == 0 || kind == 3,
                                     .q_pos0 = kind == 0 ? S - T : 0 };
      make_case (&c, rng, FALSE);
      if (kind == 1) {
        const size_t sp = S + 3;
        c.valid = g_new (uint8_t, S);
        for (size_t s2 = 0; s2 < S; s2++)
          c.valid[s2] = s2 >= 5;
        c.p.key_valid = c.valid;
        c.bias = random_f32 (rng, T * 4 * sp, -2.0, 2.0);
        c.p.bias = c.bias;
        c.p.bias_heads = 4;
        c.p.bias_ld = 4 * sp;
        c.p.bias_head_stride = sp;
      } else if (kind == 2) {
        c.rel_h = random_f32 (rng, 4 * T * 15, -2.0, 2.0);
        c.rel_w = random_f32 (rng, 4 * T * 20, -2.0, 2.0);
        c.p.rel_h = c.rel_h;
        c.p.rel_w = c.rel_w;
        c.p.kv_h = 15;
        c.p.kv_w = 20;
      }
      size_t n_scratch = check_items (&c, rng, what);
      /* the streaming kernel needs no scratch; the BLAS path a block of logits; the packed
       * path the head's packed keys and values and a panel of logits */
      if (path == 3 && dsk_mm_packed_ok ())
        g_assert_cmpuint (n_scratch, >=, 2 * S * c.p.d_v + 32 * S);
      else if (path == 1 || path == 3 || !DSOCR_HAVE_OPENBLAS)
        g_assert_cmpuint (n_scratch, ==, 0);
      else
        g_assert_cmpuint (n_scratch, ==, MIN (T, (size_t) 256) * S);
      g_free (what);
      free_case (&c);
    }
  }
  set_mode (0);
  g_rand_free (rng);
}

/* The automatic choice: the streaming kernel for few queries; once T >= 64 and T * S >= 512^2
 * the packed product kernel with AVX-512, else BLAS (with its scratch) when the build has
 * OpenBLAS. */
static void
test_auto_path (void)
{
  GRand *rng = g_rand_new_with_seed (67);
  set_mode (0);
  for (int big = 0; big < 2; big++) {
    att_case c = { 0 };
    const size_t T = big ? 64 : 63, S = 4096;
    c.p = (dsk_attention_params) { .n_q = T, .n_kv = S, .n_heads = 1, .n_kv_heads = 1,
                                   .d_qk = 16, .d_v = 16, .scale = 0.25f };
    make_case (&c, rng, FALSE);
    size_t n_scratch = check_items (&c, rng, big ? "auto-blas" : "auto-streaming");
    if (big && dsk_mm_packed_ok ())
      g_assert_cmpuint (n_scratch, >, T * S / 2);
    else
      g_assert_cmpuint (n_scratch, ==, big && DSOCR_HAVE_OPENBLAS ? T * S : 0);
    free_case (&c);
  }
  g_rand_free (rng);
}

/* NULL arrays, zero sizes, heads that do not group, d_v > 512 and bad bias or rel-pos shapes
 * are refused, by the plan as by the whole call. */
static void
test_bad_args (void)
{
  float q[64] = { 0 }, k[64] = { 0 }, v[64] = { 0 }, o[64];
  float rel[8] = { 0 };
  const dsk_attention_params good = { .n_q = 1, .n_kv = 2, .n_heads = 2, .n_kv_heads = 1,
                                      .d_qk = 4, .d_v = 4, .scale = 0.5f };
  dsk_attention_params p = good;
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_OK);
  g_assert_cmpint (dsk_attention_f32_cpu (NULL, q, k, v, &p), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, NULL), ==, DSK_ERR_INVALID);
  size_t n_items = 0, n_scratch = 0;
  g_assert_cmpint (dsk_attention_plan_cpu (&p, &n_items, &n_scratch), ==, DSK_OK);
  g_assert_cmpuint (n_items, ==, 2);   /* one query block per head */
  g_assert_cmpint (dsk_attention_plan_cpu (NULL, &n_items, &n_scratch), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_attention_f32_cpu (o, NULL, k, v, &p), ==, DSK_ERR_INVALID);
  p.n_kv = 0;
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_INVALID);
  p = good;
  p.n_kv_heads = 3;   /* does not divide 2 */
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_INVALID);
  p = good;
  p.d_v = 1024;
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_UNSUPPORTED);
  p = good;
  p.bias = rel;
  p.bias_heads = 3;
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_attention_plan_cpu (&p, &n_items, &n_scratch), ==, DSK_ERR_INVALID);
  p.bias_heads = 1;
  p.bias_ld = 1;      /* shorter than the 2 keys */
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_INVALID);
  p = good;
  p.rel_h = rel;      /* rel_w missing */
  p.kv_h = 1;
  p.kv_w = 2;
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_INVALID);
  p.rel_w = rel;
  p.kv_w = 3;         /* 1 x 3 != 2 keys */
  g_assert_cmpint (dsk_attention_f32_cpu (o, q, k, v, &p), ==, DSK_ERR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/attention/shapes", test_shapes);
  g_test_add_func ("/kernels/attention/gqa-causal", test_gqa_causal);
  g_test_add_func ("/kernels/attention/padding", test_padding);
  g_test_add_func ("/kernels/attention/bias", test_bias);
  g_test_add_func ("/kernels/attention/mla-layout", test_mla_layout);
  g_test_add_func ("/kernels/attention/item-order", test_item_order);
  g_test_add_func ("/kernels/attention/auto-path", test_auto_path);
  g_test_add_func ("/kernels/attention/bad-args", test_bad_args);
  return g_test_run ();
}
