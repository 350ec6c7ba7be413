/* rope.c: rotary position embedding tables (plain and DeepSeek YaRN) and their application,
 * the CPU kernels (dsk_rope_inv_freq and the YaRN helpers are the host helpers of backend.h).
 *
 * The tables follow torch's f32 arithmetic step by step (every intermediate rounded to f32,
 * no fused multiply-add) so that angles at large positions match the reference: an ulp of
 * difference in inv_freq becomes 1e-4 of angle at position 4096. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("fp-contract=off")
#endif
#include "dsk-cpu.h"

#include <math.h>

float
dsk_rope_yarn_get_mscale (float scale, float mscale)
{
  /* python float math in the reference, so double here */
  if (scale <= 1.0f)
    return 1.0f;
  return (float) (0.1 * (double) mscale * log ((double) scale) + 1.0);
}

float
dsk_rope_yarn_cos_sin_factor (const dsk_rope_yarn *yarn)
{
  if (!yarn)
    return 1.0f;
  /* the reference divides the two python floats, then torch multiplies in f32 */
  return (float) ((double) dsk_rope_yarn_get_mscale (yarn->factor, yarn->mscale) /
                  (double) dsk_rope_yarn_get_mscale (yarn->factor, yarn->mscale_all_dim));
}

/* yarn_find_correction_dim: the dimension whose wavelength makes @rotations turns over the
 * original context (python float math). */
static double
correction_dim (double rotations, size_t dim, double base, size_t max_pos)
{
  return ((double) dim * log ((double) max_pos / (rotations * 2.0 * M_PI))) /
         (2.0 * log (base));
}

dsk_status
dsk_rope_inv_freq (float *inv_freq, size_t rot_dim, float theta, const dsk_rope_yarn *yarn)
{
  if (!inv_freq || rot_dim == 0 || rot_dim % 2 || !(theta > 0.0f))
    return DSK_ERR_INVALID;
  if (yarn && (!(yarn->factor > 0.0f) || yarn->original_max_position == 0 ||
               !(yarn->beta_fast > 0.0f) || !(yarn->beta_slow > 0.0f)))
    return DSK_ERR_INVALID;

  const size_t half = rot_dim / 2;
  double low = 0.0, high = 0.0;
  if (yarn) {
    low = floor (correction_dim (yarn->beta_fast, rot_dim, theta, yarn->original_max_position));
    high = ceil (correction_dim (yarn->beta_slow, rot_dim, theta, yarn->original_max_position));
    if (low < 0.0)
      low = 0.0;
    if (high > (double) (rot_dim - 1))
      high = (double) (rot_dim - 1);
    if (low == high)
      high += 0.001;   /* yarn_linear_ramp_mask avoids a zero division the same way */
  }

  for (size_t i = 0; i < half; i++) {
    /* torch: arange(0, dim, 2).float() / dim, then base ** that, all f32 */
    float e = (float) (2 * i) / (float) rot_dim;
    float p = powf (theta, e);
    float extra = 1.0f / p;
    if (!yarn) {
      inv_freq[i] = extra;
      continue;
    }
    float fp = yarn->factor * p;
    float inter = 1.0f / fp;
    /* ramp = clamp((i - low) / (high - low), 0, 1) in f32; mask = 1 - ramp */
    float ramp = ((float) i - (float) low) / (float) (high - low);
    ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
    float mask = 1.0f - ramp;
    float a = inter * (1.0f - mask);
    float b = extra * mask;
    inv_freq[i] = a + b;
  }
  return DSK_OK;
}

dsk_status
dsk_rope_tables_cpu (float *cos_tab, float *sin_tab, const float *inv_freq, size_t rot_dim,
                     size_t p0, size_t n_pos, float attn_factor)
{
  if (!cos_tab || !sin_tab || !inv_freq || rot_dim == 0 || rot_dim % 2 || n_pos == 0)
    return DSK_ERR_INVALID;
  const size_t half = rot_dim / 2;
  for (size_t p = 0; p < n_pos; p++)
    for (size_t i = 0; i < half; i++) {
      float angle = (float) (p0 + p) * inv_freq[i];
      float c = cosf (angle), s = sinf (angle);
      if (attn_factor != 1.0f) {
        c = c * attn_factor;
        s = s * attn_factor;
      }
      cos_tab[p * half + i] = c;
      sin_tab[p * half + i] = s;
    }
  return DSK_OK;
}

dsk_status
dsk_rope_f32_cpu (float *x, size_t n_tokens, size_t n_heads, size_t token_stride,
                  size_t head_stride, size_t rot_offset, size_t rot_dim,
                  const int32_t *positions, const float *cos_tab, const float *sin_tab,
                  size_t n_pos, dsk_rope_mode mode)
{
  if (!x || !positions || !cos_tab || !sin_tab || n_tokens == 0 || n_heads == 0 ||
      rot_dim == 0 || rot_dim % 2 || n_pos == 0)
    return DSK_ERR_INVALID;
  if (mode != DSK_ROPE_HALF && mode != DSK_ROPE_INTERLEAVED)
    return DSK_ERR_UNSUPPORTED;
  /* heads must not overlap their rotated parts, nor tokens their heads */
  if ((n_heads > 1 && head_stride < rot_offset + rot_dim) ||
      (n_tokens > 1 && token_stride < (n_heads - 1) * head_stride + rot_offset + rot_dim))
    return DSK_ERR_INVALID;
  for (size_t t = 0; t < n_tokens; t++)
    if (positions[t] < 0 || (size_t) positions[t] >= n_pos)
      return DSK_ERR_INVALID;

  const size_t half = rot_dim / 2;
  for (size_t t = 0; t < n_tokens; t++) {
    const float *c = cos_tab + (size_t) positions[t] * half;
    const float *s = sin_tab + (size_t) positions[t] * half;
    for (size_t h = 0; h < n_heads; h++) {
      float *v = x + t * token_stride + h * head_stride + rot_offset;
      if (mode == DSK_ROPE_HALF) {
        /* q * cos + rotate_half(q) * sin, rotate_half(q) = [-q2, q1] */
        for (size_t i = 0; i < half; i++) {
          float a = v[i], b = v[i + half];
          float ac = a * c[i], bs = b * s[i], bc = b * c[i], as = a * s[i];
          v[i] = ac - bs;
          v[i + half] = bc + as;
        }
      } else {
        /* (a + ib)(cos + i sin) on pairs (2i, 2i + 1) */
        for (size_t i = 0; i < half; i++) {
          float a = v[2 * i], b = v[2 * i + 1];
          float ac = a * c[i], bs = b * s[i], as = a * s[i], bc = b * c[i];
          v[2 * i] = ac - bs;
          v[2 * i + 1] = as + bc;
        }
      }
    }
  }
  return DSK_OK;
}
