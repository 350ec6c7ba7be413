/* dsk.c: element sizes and the exact scalar conversions of dsk.h. */
#include "dsk.h"

#include <math.h>
#include <string.h>

size_t
dsk_dtype_size (dsk_dtype dtype)
{
  switch (dtype) {
    case DSK_F32: case DSK_I32: return 4;
    case DSK_F16: case DSK_BF16: return 2;
    case DSK_F8_E4M3: case DSK_U8: case DSK_BOOL: return 1;
    case DSK_I64: return 8;
    default: return 0;
  }
}

size_t
dsk_dtype_block (dsk_dtype dtype)
{
  return dtype == DSK_Q8 || dtype == DSK_Q4 ? 32 : 1;
}

size_t
dsk_dtype_bytes (dsk_dtype dtype, size_t n)
{
  switch (dtype) {
    case DSK_Q8: return n / 32 * 34;   /* 32 codes + an f16 scale */
    case DSK_Q4: return n / 32 * 20;   /* 16 bytes of codes + f16 scale and minimum */
    default: return n * dsk_dtype_size (dtype);
  }
}

const char *
dsk_dtype_name (dsk_dtype dtype)
{
  static const char *names[DSK_N_DTYPES] = {
    "F32", "F16", "BF16", "F8_E4M3", "I64", "I32", "U8", "BOOL", "Q8", "Q4",
  };
  return (unsigned) dtype < DSK_N_DTYPES ? names[dtype] : "?";
}

float
dsk_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  union { uint32_t u; float f; } v;

  if (exp == 0) {
    /* zero or subnormal: value = man * 2^-24 */
    float f = ldexpf ((float) man, -24);
    return sign ? -f : f;
  }
  if (exp == 31)
    v.u = sign | 0x7f800000u | (man << 13);
  else
    v.u = sign | ((exp + 112) << 23) | (man << 13);
  return v.f;
}

uint16_t
dsk_f32_to_f16 (float f)
{
  union { uint32_t u; float f; } v = { .f = f };
  uint16_t sign = (uint16_t) ((v.u >> 16) & 0x8000u);
  uint32_t a = v.u & 0x7fffffffu;

  if (a > 0x7f800000u)                      /* NaN: quiet, keep the top payload bits */
    return (uint16_t) (sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u)                     /* rounds to 65520 or more: infinity */
    return (uint16_t) (sign | 0x7c00u);
  if (a < 0x38800000u) {                    /* below 2^-14: subnormal half (or zero) */
    /* value / 2^-24, rounded to nearest even by adding and subtracting a power of two
     * large enough that the float's own rounding does the work */
    union { uint32_t u; float f; } w = { .u = a };
    float r = w.f * 16777216.0f;            /* exact: scales by 2^24 */
    r = (r + 12582912.0f) - 12582912.0f;    /* 1.5 * 2^23: round to an integer, ties even */
    return (uint16_t) (sign | (uint16_t) r);
  }
  /* normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even */
  uint32_t h = ((a >> 13) - (112u << 10));
  uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    h++;
  return (uint16_t) (sign | h);
}

float
dsk_f8_e4m3_to_f32 (uint8_t b)
{
  /* OCP e4m3fn: bias 7, no infinities, 0x7f/0xff are NaN, max finite 448. */
  int sign = b >> 7;
  int exp = (b >> 3) & 0xf;
  int man = b & 0x7;
  float f;

  if (exp == 0xf && man == 0x7)
    return NAN;
  if (exp == 0)
    f = ldexpf ((float) man, -9);          /* subnormal: man/8 * 2^-6 */
  else
    f = ldexpf (1.0f + (float) man / 8.0f, exp - 7);
  return sign ? -f : f;
}
