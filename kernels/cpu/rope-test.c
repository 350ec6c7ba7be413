/* rope-test.c: RoPE tables against transformers' goldens (tests/fixtures/kernels/rope.txt,
 * from tests/reference/make_kernel_goldens.py) and the rotation against double math. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk.h"
#include "dsk-cpu.h"
#include "dsocr-test.h"

/* ---- fixture reader: "case <name>" lines, then "<key> <count> <values...>" ---- */

typedef struct {
  char **lines;
} fixture;

static fixture *
fixture_load (void)
{
  char *path = dsocr_test_fixture ("kernels/rope.txt"), *text = NULL;
  GError *error = NULL;
  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  fixture *f = g_new0 (fixture, 1);
  f->lines = g_strsplit (text, "\n", -1);
  g_free (text);
  g_free (path);
  return f;
}

static void
fixture_free (fixture *f)
{
  g_strfreev (f->lines);
  g_free (f);
}

/* Values of @key in case @name (transfer full), count in *n; NULL when the case lacks it. */
static double *
fixture_get (const fixture *f, const char *name, const char *key, size_t *n)
{
  gboolean in_case = FALSE;
  size_t klen = strlen (key);
  for (char **l = f->lines; *l; l++) {
    if (g_str_has_prefix (*l, "case ")) {
      in_case = g_str_equal (*l + 5, name);
      continue;
    }
    if (!in_case || strncmp (*l, key, klen) != 0 || (*l)[klen] != ' ')
      continue;
    char *end = NULL;
    const char *p = *l + klen;
    guint64 count = g_ascii_strtoull (p, &end, 10);
    double *v = g_new (double, count ? count : 1);
    p = end;
    for (guint64 i = 0; i < count; i++) {
      v[i] = g_ascii_strtod (p, &end);
      g_assert_true (end != p);
      p = end;
    }
    *n = (size_t) count;
    return v;
  }
  return NULL;
}

static double
fixture_scalar (const fixture *f, const char *name, const char *key)
{
  size_t n = 0;
  double *v = fixture_get (f, name, key, &n);
  g_assert_nonnull (v);
  g_assert_cmpuint (n, ==, 1);
  double r = v[0];
  g_free (v);
  return r;
}

static gboolean
fixture_yarn (const fixture *f, const char *name, dsk_rope_yarn *y)
{
  size_t n = 0;
  double *v = fixture_get (f, name, "yarn", &n);
  if (!v)
    return FALSE;
  g_assert_cmpuint (n, ==, 6);
  *y = (dsk_rope_yarn) { .factor = (float) v[0], .original_max_position = (size_t) v[1],
                         .beta_fast = (float) v[2], .beta_slow = (float) v[3],
                         .mscale = (float) v[4], .mscale_all_dim = (float) v[5] };
  g_free (v);
  return TRUE;
}

static float *
to_f32 (const double *v, size_t n)
{
  float *r = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    r[i] = (float) v[i];
  return r;
}

/* Builds inv_freq and tables for a case, checking inv_freq and the attention factor. */
static void
build_tables (const fixture *f, const char *name, size_t n_pos, size_t *rot_dim_out,
              float **inv_out, float **cos_out, float **sin_out)
{
  size_t rot_dim = (size_t) fixture_scalar (f, name, "rot_dim"), n = 0;
  float theta = (float) fixture_scalar (f, name, "theta");
  dsk_rope_yarn yarn;
  gboolean has_yarn = fixture_yarn (f, name, &yarn);
  float *inv = g_new (float, rot_dim / 2);
  g_assert_cmpint (dsk_rope_inv_freq (inv, rot_dim, theta, has_yarn ? &yarn : NULL), ==, DSK_OK);

  double *want = fixture_get (f, name, "inv_freq", &n);
  g_assert_cmpuint (n, ==, rot_dim / 2);
  for (size_t i = 0; i < n; i++)
    if (inv[i] != (float) want[i])
      g_error ("%s: inv_freq[%zu] = %.9g, transformers %.9g", name, i, inv[i], want[i]);
  g_free (want);

  float factor = dsk_rope_yarn_cos_sin_factor (has_yarn ? &yarn : NULL);
  g_assert_cmpfloat (factor, ==, (float) fixture_scalar (f, name, "attention_factor"));

  float *c = g_new (float, n_pos * rot_dim / 2), *s = g_new (float, n_pos * rot_dim / 2);
  g_assert_cmpint (dsk_rope_tables_cpu (c, s, inv, rot_dim, 0, n_pos, factor), ==, DSK_OK);
  *rot_dim_out = rot_dim;
  *inv_out = inv;
  *cos_out = c;
  *sin_out = s;
}

#define MAX_POS 100001

/* inv_freq, the attention factor and cos/sin rows against transformers, plain and YaRN. */
static void
test_tables (void)
{
  static const char *cases[] = { "plain-128", "plain-64", "yarn-v2-lite", "yarn-tiny-16",
                                 "yarn-scaled-32" };
  fixture *f = fixture_load ();
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    size_t rot_dim, n_p = 0, n_c = 0, n_s = 0;
    float *inv, *c, *s;
    build_tables (f, cases[ci], MAX_POS, &rot_dim, &inv, &c, &s);
    size_t half = rot_dim / 2;
    double *pos = fixture_get (f, cases[ci], "positions", &n_p);
    double *wc = fixture_get (f, cases[ci], "cos", &n_c), *ws = fixture_get (f, cases[ci], "sin", &n_s);
    g_assert_cmpuint (n_c, ==, n_p * half);
    for (size_t p = 0; p < n_p; p++) {
      size_t row = (size_t) pos[p];
      float *wcf = to_f32 (wc + p * half, half), *wsf = to_f32 (ws + p * half, half);
      /* same f32 angle on both sides; only cosf/sinf vs torch's vector cos/sin (1 ulp) differ */
      char *what = g_strdup_printf ("%s cos at %zu", cases[ci], row);
      dsocr_test_assert_close (c + row * half, wcf, half, 1e-6, what);
      g_free (what);
      what = g_strdup_printf ("%s sin at %zu", cases[ci], row);
      dsocr_test_assert_close (s + row * half, wsf, half, 1e-6, what);
      g_free (what);
      g_free (wcf);
      g_free (wsf);
    }
    g_free (pos);
    g_free (wc);
    g_free (ws);
    g_free (inv);
    g_free (c);
    g_free (s);
  }
  fixture_free (f);
}

/* The rotation of heads, both modes, plain and YaRN tables, against transformers' outputs. */
static void
test_apply_goldens (void)
{
  static const struct { const char *name, *tables; } cases[] = {
    { "apply-half-128", "plain-128" },
    { "apply-interleaved-yarn-64", "yarn-v2-lite" },
    { "apply-interleaved-scaled-32", "yarn-scaled-32" },
    { "apply-half-yarn-64", "yarn-v2-lite" },
  };
  fixture *f = fixture_load ();
  for (size_t ci = 0; ci < G_N_ELEMENTS (cases); ci++) {
    size_t rot_dim, n = 0, nx = 0, ny = 0, np = 0;
    float *inv, *c, *s;
    build_tables (f, cases[ci].tables, MAX_POS, &rot_dim, &inv, &c, &s);
    double *shape = fixture_get (f, cases[ci].name, "shape", &n);
    size_t tokens = (size_t) shape[0], heads = (size_t) shape[1], nope = (size_t) shape[2];
    g_assert_cmpuint ((size_t) shape[3], ==, rot_dim);
    size_t head_dim = nope + rot_dim;
    dsk_rope_mode mode = fixture_scalar (f, cases[ci].name, "mode") != 0 ? DSK_ROPE_INTERLEAVED : DSK_ROPE_HALF;
    double *pd = fixture_get (f, cases[ci].name, "positions", &np);
    int32_t *pos = g_new (int32_t, np);
    for (size_t i = 0; i < np; i++)
      pos[i] = (int32_t) pd[i];
    double *xd = fixture_get (f, cases[ci].name, "x", &nx), *yd = fixture_get (f, cases[ci].name, "y", &ny);
    float *x = to_f32 (xd, nx), *y = to_f32 (yd, ny);
    g_assert_cmpint (dsk_rope_f32_cpu (x, tokens, heads, heads * head_dim, head_dim, nope, rot_dim,
                                       pos, c, s, MAX_POS, mode), ==, DSK_OK);
    dsocr_test_assert_close (x, y, nx, 1e-6, cases[ci].name);
    g_free (shape);
    g_free (pd);
    g_free (pos);
    g_free (xd);
    g_free (yd);
    g_free (x);
    g_free (y);
    g_free (inv);
    g_free (c);
    g_free (s);
  }
  fixture_free (f);
}

/* Rotation against double math on random data, odd layouts: a padded token stride, the rope
 * part in the middle of each head, positions out of order. */
static void
test_apply_random (void)
{
  static const size_t token_counts[] = { 1, 7, 97, 257 };
  static const size_t rot_dims[] = { 2, 6, 64, 128 };
  GRand *rng = g_rand_new_with_seed (21);
  const size_t n_pos = 300;
  for (size_t a = 0; a < G_N_ELEMENTS (token_counts); a++)
    for (size_t b = 0; b < G_N_ELEMENTS (rot_dims); b++)
      for (int mode = 0; mode < 2; mode++) {
        size_t T = token_counts[a], rd = rot_dims[b], half = rd / 2, H = 3, off = 5;
        size_t hs = off + rd + 3, ts = H * hs + 7;
        float *inv = g_new (float, half), *c = g_new (float, n_pos * half), *s = g_new (float, n_pos * half);
        g_assert_cmpint (dsk_rope_inv_freq (inv, rd, 10000.0f, NULL), ==, DSK_OK);
        g_assert_cmpint (dsk_rope_tables_cpu (c, s, inv, rd, 0, n_pos, 1.0f), ==, DSK_OK);
        float *x = g_new (float, T * ts), *x0 = g_new (float, T * ts);
        int32_t *pos = g_new (int32_t, T);
        for (size_t i = 0; i < T * ts; i++)
          x[i] = x0[i] = (float) g_rand_double_range (rng, -2.0, 2.0);
        for (size_t t = 0; t < T; t++)
          pos[t] = g_rand_int_range (rng, 0, (gint32) n_pos);
        g_assert_cmpint (dsk_rope_f32_cpu (x, T, H, ts, hs, off, rd, pos, c, s, n_pos, (dsk_rope_mode) mode), ==, DSK_OK);
        for (size_t t = 0; t < T; t++)
          for (size_t h = 0; h < H; h++) {
            const float *ci = c + (size_t) pos[t] * half, *si = s + (size_t) pos[t] * half;
            for (size_t j = 0; j < hs; j++) {
              size_t at = t * ts + h * hs + j;
              double want = x0[at];
              if (j >= off && j < off + rd) {
                size_t i = j - off, pair, k;
                if (mode == DSK_ROPE_HALF) {
                  k = i % half;
                  pair = i < half ? i + half : i - half;
                } else {
                  k = i / 2;
                  pair = i ^ 1;
                }
                double v = x0[t * ts + h * hs + off + i], u = x0[t * ts + h * hs + off + pair];
                int first = mode == DSK_ROPE_HALF ? i < half : (i % 2 == 0);
                want = first ? v * ci[k] - u * si[k] : v * ci[k] + u * si[k];
              }
              /* two products and one sum: a few f32 roundings of numbers below 4 */
              if (fabs (x[at] - want) > 4.0 * 2.0 * 1.2e-7 * 2.0)
                g_error ("rope T=%zu rot=%zu mode=%d at %zu: %.9g want %.9g", T, rd, mode, at, x[at], want);
            }
            /* the gap between tokens stays untouched */
            for (size_t j = H * hs; j < ts; j++)
              g_assert_cmpfloat (x[t * ts + j], ==, x0[t * ts + j]);
          }
        g_free (inv);
        g_free (c);
        g_free (s);
        g_free (x);
        g_free (x0);
        g_free (pos);
      }
  g_rand_free (rng);
}

/* Bad sizes and YaRN parameters are refused; a position past the table writes nothing. */
static void
test_bad_args (void)
{
  float inv[4], c[8], s[8], x[16] = { 0 };
  int32_t pos[2] = { 0, 2 }, bad[2] = { 0, -1 };
  dsk_rope_yarn yarn = { .factor = 0.0f };

  g_assert_cmpint (dsk_rope_inv_freq (NULL, 8, 10000.0f, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_inv_freq (inv, 7, 10000.0f, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_inv_freq (inv, 0, 10000.0f, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_inv_freq (inv, 8, 0.0f, NULL), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_inv_freq (inv, 8, 10000.0f, &yarn), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_inv_freq (inv, 8, 10000.0f, NULL), ==, DSK_OK);
  g_assert_cmpint (dsk_rope_tables_cpu (c, s, inv, 8, 0, 0, 1.0f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_tables_cpu (c, NULL, inv, 8, 0, 2, 1.0f), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_tables_cpu (c, s, inv, 8, 0, 2, 1.0f), ==, DSK_OK);
  /* position 2 is past the 2-row table: nothing may be written */
  x[0] = 1.0f;
  g_assert_cmpint (dsk_rope_f32_cpu (x, 2, 1, 8, 8, 0, 8, pos, c, s, 2, DSK_ROPE_HALF), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_f32_cpu (x, 2, 1, 8, 8, 0, 8, bad, c, s, 2, DSK_ROPE_HALF), ==, DSK_ERR_INVALID);
  g_assert_cmpfloat (x[0], ==, 1.0f);
  g_assert_cmpint (dsk_rope_f32_cpu (x, 2, 1, 8, 8, 0, 8, pos, c, s, 3, (dsk_rope_mode) 7), ==, DSK_ERR_UNSUPPORTED);
  g_assert_cmpint (dsk_rope_f32_cpu (x, 2, 2, 16, 4, 0, 8, pos, c, s, 3, DSK_ROPE_HALF), ==, DSK_ERR_INVALID);
  g_assert_cmpint (dsk_rope_f32_cpu (NULL, 2, 1, 8, 8, 0, 8, pos, c, s, 3, DSK_ROPE_HALF), ==, DSK_ERR_INVALID);
}

/* yarn_get_mscale against the reference sheet, and the factor of a plain table (1). */
static void
test_mscale (void)
{
  /* DeepSeek-V2-Lite: get_mscale(40, 0.707) = 1.2608 (reference sheet 7.2) */
  g_assert_cmpfloat_with_epsilon (dsk_rope_yarn_get_mscale (40.0f, 0.707f), 1.26080, 1e-4);
  g_assert_cmpfloat (dsk_rope_yarn_get_mscale (1.0f, 0.707f), ==, 1.0f);
  g_assert_cmpfloat (dsk_rope_yarn_cos_sin_factor (NULL), ==, 1.0f);
}

/* Tables started at p0 > 0 (a chunk of positions, as a decoder extends its tables) hold the
 * same bits as rows p0 .. of a table started at 0, plain and YaRN-scaled. */
static void
test_tables_offset (void)
{
  static const size_t p0s[] = { 1, 37, 4095, 99000 };
  const dsk_rope_yarn yarn = { .factor = 40.0f, .original_max_position = 4096,
                               .beta_fast = 32.0f, .beta_slow = 1.0f, .mscale = 0.707f,
                               .mscale_all_dim = 0.707f };
  const size_t rot_dim = 64, half = rot_dim / 2, n_full = 100001;
  float *inv = g_new (float, half);
  float *c = g_new (float, n_full * half), *s = g_new (float, n_full * half);
  for (int y = 0; y < 2; y++) {
    const float factor = y ? 1.2608f : 1.0f;
    g_assert_cmpint (dsk_rope_inv_freq (inv, rot_dim, 10000.0f, y ? &yarn : NULL), ==, DSK_OK);
    g_assert_cmpint (dsk_rope_tables_cpu (c, s, inv, rot_dim, 0, n_full, factor), ==, DSK_OK);
    for (size_t a = 0; a < G_N_ELEMENTS (p0s); a++) {
      const size_t p0 = p0s[a], n = MIN ((size_t) 1001, n_full - p0);
      float *c2 = g_new (float, n * half), *s2 = g_new (float, n * half);
      g_assert_cmpint (dsk_rope_tables_cpu (c2, s2, inv, rot_dim, p0, n, factor), ==, DSK_OK);
      g_assert_cmpmem (c2, n * half * sizeof (float), c + p0 * half, n * half * sizeof (float));
      g_assert_cmpmem (s2, n * half * sizeof (float), s + p0 * half, n * half * sizeof (float));
      g_free (c2);
      g_free (s2);
    }
  }
  g_free (inv);
  g_free (c);
  g_free (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/rope/tables", test_tables);
  g_test_add_func ("/kernels/rope/apply-goldens", test_apply_goldens);
  g_test_add_func ("/kernels/rope/apply-random", test_apply_random);
  g_test_add_func ("/kernels/rope/bad-args", test_bad_args);
  g_test_add_func ("/kernels/rope/tables-offset", test_tables_offset);
  g_test_add_func ("/kernels/rope/mscale", test_mscale);
  return g_test_run ();
}
