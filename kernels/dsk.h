/* dsk.h: the element types and status codes of the kernels, and exact scalar conversions.
 *
 * Plain C: no GLib, no GStreamer, no CUDA types. The ops themselves are reached through a
 * backend (backend.h); the kernels behind them live in cpu/ and cuda/.
 */
#ifndef DSK_H
#define DSK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  DSK_OK = 0,
  DSK_ERR_INVALID = 1,     /* bad arguments: a NULL pointer, a zero or negative size */
  DSK_ERR_UNSUPPORTED = 2, /* a dtype or shape this op does not handle */
  DSK_ERR_DEVICE = 3,      /* a CUDA error; dsk_last_error() has the text */
  DSK_ERR_NOMEM = 4,       /* memory (host or device) ran out */
} dsk_status;

/* Element types of weights and activations: the safetensors set, then the block-quantized
 * weight formats a backend makes at load (dsk_backend_quantize_weight). */
typedef enum {
  DSK_F32 = 0,
  DSK_F16,
  DSK_BF16,
  DSK_F8_E4M3,
  DSK_I64,
  DSK_I32,
  DSK_U8,
  DSK_BOOL,
  /* Blocks of 32 weights along a row. Q8: 8-bit codes and an f16 scale per block (8.5 bits a
   * weight); Q4: 4-bit codes, an f16 scale and an f16 minimum per block (5 bits a weight).
   * Only whole rows are addressed: a row keeps its codes, then its scales (cpu/quant.h). */
  DSK_Q8,
  DSK_Q4,
  DSK_N_DTYPES
} dsk_dtype;

/* The safetensors dtypes: those before the quantized ones. */
#define DSK_N_STORED_DTYPES (DSK_BOOL + 1)

/* Size in bytes of one element of @dtype; 0 for an unknown value and for the block formats,
 * whose sizes dsk_dtype_bytes gives. */
size_t dsk_dtype_size (dsk_dtype dtype);
/* Elements per block: 32 for Q8 and Q4, 1 for the others. */
size_t dsk_dtype_block (dsk_dtype dtype);
/* Bytes of @n elements of @dtype (for Q8 and Q4, @n whole rows' worth: a multiple of the row
 * length, itself a multiple of 32). */
size_t dsk_dtype_bytes (dsk_dtype dtype, size_t n);
/* "F32", "BF16", ..., "Q8", "Q4"; "?" for an unknown value. */
const char *dsk_dtype_name (dsk_dtype dtype);


/* ---- scalar conversions (exact, round-to-nearest-even where narrowing) ---- */

static inline float
dsk_bf16_to_f32 (uint16_t h)
{
  union { uint32_t u; float f; } v = { .u = (uint32_t) h << 16 };
  return v.f;
}

static inline uint16_t
dsk_f32_to_bf16 (float f)
{
  union { uint32_t u; float f; } v = { .f = f };
  if ((v.u & 0x7fffffffu) > 0x7f800000u)   /* NaN: keep it a quiet NaN */
    return (uint16_t) ((v.u >> 16) | 0x40u);
  v.u += 0x7fffu + ((v.u >> 16) & 1u);     /* round to nearest, ties to even */
  return (uint16_t) (v.u >> 16);
}

float dsk_f16_to_f32 (uint16_t h);
/* f32 -> IEEE half, round to nearest even; overflow gives inf, NaN stays NaN. */
uint16_t dsk_f32_to_f16 (float f);
float dsk_f8_e4m3_to_f32 (uint8_t b);

#ifdef __cplusplus
}
#endif

#endif /* DSK_H */
