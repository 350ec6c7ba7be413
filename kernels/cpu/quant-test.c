/* quant-test.c: the Q8 and Q4 formats and their dot products against double-precision math. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "dsk-cpu.h"
#include "quant.h"

static const size_t cols_list[] = { 32, 96, 544, 896, 1280, 6848 };

/* Weights as trained layers have them: mostly small, a few outliers, some all-zero and
 * constant blocks. */
static float *
random_row (GRand *rng, size_t n)
{
  float *v = g_new (float, n);
  for (size_t i = 0; i < n; i++) {
    double g = g_rand_double_range (rng, -1.0, 1.0) + g_rand_double_range (rng, -1.0, 1.0);
    v[i] = (float) (0.02 * g);
    if (g_rand_int_range (rng, 0, 97) == 0)
      v[i] *= 20.0f;
  }
  if (n >= 96) {
    memset (v + 32, 0, 32 * sizeof (float));        /* a zero block */
    for (int j = 0; j < 32; j++)
      v[64 + j] = 0.015625f;                        /* a constant block */
  }
  return v;
}

/* Dequantized rows stay close, whichever quantizer made them: Q8's error is at most a little
 * over half its scale, so about amax / 254 a block; Q4's RMS error at most half a step of the
 * block's range / 15. */
static void
test_roundtrip (void)
{
  GRand *rng = g_rand_new_with_seed (81);
  for (int qf = 0; qf < 4; qf++) {   /* Q8, Q4; by the AVX-512 and the plain quantizer */
    const dsk_dtype q = qf % 2 ? DSK_Q4 : DSK_Q8;
    for (size_t a = 0; a < G_N_ELEMENTS (cols_list); a++) {
      const size_t n = cols_list[a];
      float *v = random_row (rng, n), *back = g_new (float, n);
      guint8 *row = g_malloc (dsk_quant_row_bytes (q, n));
      dsk_cpu_force_generic (qf >= 2);
      g_assert_true (dsk_quant_row (row, q, v, DSK_F32, n));
      dsk_cpu_force_generic (0);
      dsk_dequant_row (back, row, q, n);
      {   /* the plain C path reads the same values (the products are exact either way) */
        float *plain = g_new (float, n);
        dsk_cpu_force_generic (1);
        dsk_dequant_row (plain, row, q, n);
        dsk_cpu_force_generic (0);
        g_assert_cmpmem (plain, n * sizeof (float), back, n * sizeof (float));
        g_free (plain);
      }
      for (size_t b = 0; b < n / 32; b++) {
        float amax = 0.0f, lo = v[b * 32], hi = v[b * 32];
        double se = 0.0;
        for (int j = 0; j < 32; j++) {
          const float x = v[b * 32 + (size_t) j];
          amax = fmaxf (amax, fabsf (x));
          lo = fminf (lo, x);
          hi = fmaxf (hi, x);
          se += ((double) back[b * 32 + (size_t) j] - x) * ((double) back[b * 32 + (size_t) j] - x);
        }
        const double rms = sqrt (se / 32.0);
        if (q == DSK_Q8) {
          for (int j = 0; j < 32; j++)
            g_assert_cmpfloat (fabs (back[b * 32 + (size_t) j] - v[b * 32 + (size_t) j]), <=,
                               amax / 127.0 * 0.51 + 1e-9);
        } else {
          /* at most the half step of the range's grid (the refinement only lowers the squared
           * error), plus the f16 rounding of the scale and minimum */
          g_assert_cmpfloat (rms, <=, (hi - lo) / 15.0 * 0.5 * 1.05 + fabsf (lo) / 2048.0 + 1e-9);
        }
        /* zero blocks come back exactly, and Q4's constant blocks of an f16 value (its minimum) */
        if (hi == lo && (lo == 0.0f || q == DSK_Q4))
          for (int j = 0; j < 32; j++)
            g_assert_cmpfloat (back[b * 32 + (size_t) j], ==, v[b * 32 + (size_t) j]);
      }
      g_free (row);
      g_free (back);
      g_free (v);
    }
  }
  g_rand_free (rng);
}

/* The stored dtype of the source does not matter beyond its values: BF16 and F16 rows give
 * the codes their f32 values give. Values the format cannot hold are reported. */
static void
test_sources (void)
{
  GRand *rng = g_rand_new_with_seed (82);
  const size_t n = 96;
  float *v = random_row (rng, n);
  guint16 *b16 = g_new (guint16, n), *h16 = g_new (guint16, n);
  for (size_t i = 0; i < n; i++) {
    b16[i] = dsk_f32_to_bf16 (v[i]);
    v[i] = dsk_bf16_to_f32 (b16[i]);
    h16[i] = dsk_f32_to_f16 (v[i]);
  }
  for (int qi = 0; qi < 2; qi++) {
    const dsk_dtype q = qi ? DSK_Q4 : DSK_Q8;
    const size_t rb = dsk_quant_row_bytes (q, n);
    guint8 *a = g_malloc (rb), *b = g_malloc (rb);
    g_assert_true (dsk_quant_row (a, q, v, DSK_F32, n));
    g_assert_true (dsk_quant_row (b, q, b16, DSK_BF16, n));
    g_assert_cmpmem (a, rb, b, rb);
    float big[32];
    for (int j = 0; j < 32; j++)
      big[j] = j == 3 ? 1e9f : 1.0f;
    g_assert_false (dsk_quant_row (a, q, big, DSK_F32, 32));
    big[3] = NAN;
    g_assert_false (dsk_quant_row (a, q, big, DSK_F32, 32));
    g_free (a);
    g_free (b);
  }
  g_free (b16);
  g_free (h16);
  g_free (v);
  g_rand_free (rng);
}

/* Where weight @j of block @b of a row of @nb blocks sits (quant.h's groups of 16 blocks in
 * quads of 4 weights), decoded here independently of quant.c: Q8 codes and activations at
 * byte @pos; Q4 at byte @pos4, in the high nibble when @high. */
static void
layout (size_t nb, size_t b, int j, size_t *pos, size_t *pos4, int *high)
{
  const size_t g0 = b / 16 * 16, ng = MIN (nb - g0, (size_t) 16), l = b - g0;
  const int k = j / 4, i = j % 4;
  *pos = g0 * 32 + (size_t) k * 4 * ng + 4 * l + (size_t) i;
  *pos4 = g0 * 16 + (size_t) (k % 4) * 4 * ng + 4 * l + (size_t) i;
  *high = k >= 4;
}

/* What dsk_qdot must give: the integer sums of codes times activation codes, scaled per block,
 * in double. */
static double
ref_dot (const guint8 *w, const guint8 *xq, size_t n, dsk_dtype q, double *mag)
{
  const size_t nb = n / 32, code_bytes = q == DSK_Q8 ? n : n / 2;
  const guint16 *sc = (const guint16 *) (w + code_bytes);
  const gint8 *xc = (const gint8 *) xq;
  const float *dx = (const float *) (xq + (n + 63) / 64 * 64), *sx = dx + nb;
  double sum = 0.0;
  *mag = 0.0;
  for (size_t b = 0; b < nb; b++) {
    long isum = 0;
    for (int j = 0; j < 32; j++) {
      size_t pos, pos4;
      int high;
      layout (nb, b, j, &pos, &pos4, &high);
      const int code = q == DSK_Q8 ? w[pos] : high ? w[pos4] >> 4 : w[pos4] & 15;
      isum += (long) code * xc[pos];
    }
    const double d = dsk_f16_to_f32 (sc[b]);
    const double m = q == DSK_Q8 ? -128.0 * d : dsk_f16_to_f32 (sc[nb + b]);
    const double t1 = d * dx[b] * (double) isum, t2 = m * sx[b];
    sum += t1 + t2;
    *mag += fabs (t1) + fabs (t2);
  }
  return sum;
}

/* The activations' codes: within one step of x / dx of each value, dx = max |x| / 127 of its
 * block, at the layout's places; s = dx * sum of the codes. */
static void
test_activations (void)
{
  GRand *rng = g_rand_new_with_seed (84);
  for (size_t a = 0; a < G_N_ELEMENTS (cols_list); a++) {
    const size_t n = cols_list[a], nb = n / 32;
    float *x = g_new (float, n);
    guint8 *xq = g_malloc (dsk_qx_row_bytes (n));
    for (size_t i = 0; i < n; i++)
      x[i] = (float) g_rand_double_range (rng, -5.0, 5.0);
    dsk_qx_quantize (xq, x, n);
    const float *dx = (const float *) (xq + (n + 63) / 64 * 64), *sx = dx + nb;
    for (size_t b = 0; b < nb; b++) {
      float amax = 0.0f;
      long sum = 0;
      for (int j = 0; j < 32; j++)
        amax = fmaxf (amax, fabsf (x[b * 32 + (size_t) j]));
      g_assert_cmpfloat (fabs (dx[b] - amax / 127.0), <=, 1e-6 * amax);
      for (int j = 0; j < 32; j++) {
        size_t pos, pos4;
        int high;
        layout (nb, b, j, &pos, &pos4, &high);
        const int code = ((const gint8 *) xq)[pos];
        g_assert_cmpfloat (fabs (code * dx[b] - x[b * 32 + (size_t) j]), <=, 0.5001 * dx[b]);
        sum += code;
      }
      g_assert_cmpfloat (fabs (sx[b] - dx[b] * (double) sum), <=, 1e-6 * fabs (sx[b]) + 1e-30);
    }
    g_free (xq);
    g_free (x);
  }
  g_rand_free (rng);
}

/* Every kernel (AVX512-VNNI where present, plain C forced) against the integer reference, over
 * row lengths that end in partial groups and chunks, with repeated rows; and the result
 * within the formats' own error of the f32 dot of the original values. */
static void
test_dot (void)
{
  GRand *rng = g_rand_new_with_seed (83);
  for (int force = 0; force < 2; force++) {
    dsk_cpu_force_generic (force);
    for (int qi = 0; qi < 2; qi++) {
      const dsk_dtype q = qi ? DSK_Q4 : DSK_Q8;
      for (size_t a = 0; a < G_N_ELEMENTS (cols_list); a++) {
        const size_t n = cols_list[a], rb = dsk_quant_row_bytes (q, n);
        guint8 *rows = g_malloc (5 * rb), *xq = g_malloc (dsk_qx_row_bytes (n));
        float *x = g_new (float, n), *wv[4];
        for (size_t i = 0; i < n; i++)
          x[i] = (float) g_rand_double_range (rng, -3.0, 3.0);
        dsk_qx_quantize (xq, x, n);
        for (int r = 0; r < 4; r++) {
          wv[r] = random_row (rng, n);
          g_assert_true (dsk_quant_row (rows + (size_t) r * rb, q, wv[r], DSK_F32, n));
        }
        /* eight rows (four distinct, repeated in another order), and the first four alone */
        const int order[8] = { 0, 1, 2, 1, 3, 0, 2, 3 };
        const void *w[8];
        float out[8], out4[4];
        for (int r = 0; r < 8; r++)
          w[r] = rows + (size_t) order[r] * rb;
        dsk_qdot (w, 8, rows + 4 * rb, xq, n, q, out);
        dsk_qdot (w, 4, NULL, xq, n, q, out4);
        for (int r = 0; r < 8; r++) {
          double mag, want = ref_dot (w[r], xq, n, q, &mag);
          g_assert_cmpfloat (fabs (out[r] - want), <=, 4e-6 * mag + 1e-30);
          if (r < 4)
            g_assert_cmpfloat (out4[r], ==, out[r]);
          /* against the unquantized values: the codes' error, a few percent for Q4 */
          const float *orig = wv[order[r]];
          double exact = 0.0, scale = 0.0;
          for (size_t i = 0; i < n; i++) {
            exact += (double) orig[i] * x[i];
            scale += fabs ((double) orig[i] * x[i]);
          }
          g_assert_cmpfloat (fabs (out[r] - exact), <=, (q == DSK_Q8 ? 0.02 : 0.15) * scale);
        }
        for (int r = 0; r < 4; r++)
          g_free (wv[r]);
        g_free (x);
        g_free (xq);
        g_free (rows);
      }
    }
  }
  dsk_cpu_force_generic (0);
  g_rand_free (rng);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/quant/roundtrip", test_roundtrip);
  g_test_add_func ("/kernels/quant/sources", test_sources);
  g_test_add_func ("/kernels/quant/activations", test_activations);
  g_test_add_func ("/kernels/quant/dot", test_dot);
  return g_test_run ();
}
