/* dsk.h: the ops of gst-dsocr, CPU reference and CUDA side by side.
 *
 * This is the only header the engine includes from kernels/. It is plain C: no GLib, no
 * GStreamer, no CUDA types (a stream is a `void *`, a `cudaStream_t` underneath).
 *
 * Conventions
 * - An op `foo` lives in foo.c (CPU, the reference the CUDA code is judged by), foo.cu (CUDA,
 *   only built when nvcc is found) and foo-test.c (compares the two, or checks the CPU op
 *   against plain double-precision math).
 * - Entry points are `dsk_<op>_<dtype>_{cpu,cuda}`; they never allocate, never log and never
 *   abort: they return a dsk_status.
 * - Shapes are written outermost first, like torch: a [n, d] array has d contiguous floats per
 *   row. Weights follow the checkpoint's [out, in] layout (y = x W^T).
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
} dsk_status;

/* Element types of weights and activations, the safetensors set. */
typedef enum {
  DSK_F32 = 0,
  DSK_F16,
  DSK_BF16,
  DSK_F8_E4M3,
  DSK_I64,
  DSK_I32,
  DSK_U8,
  DSK_BOOL,
  DSK_N_DTYPES
} dsk_dtype;

/* Size in bytes of one element of @dtype, 0 for an unknown value. */
size_t dsk_dtype_size (dsk_dtype dtype);

/* Human-readable text of the last DSK_ERR_DEVICE on this thread ("" when none). */
const char *dsk_last_error (void);

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
float dsk_f8_e4m3_to_f32 (uint8_t b);

/* ---- convert: widen any float dtype to f32 ----
 * dst[n] (f32) = src[n] (src_dtype). src may be F32, F16, BF16 or F8_E4M3. */
dsk_status dsk_convert_to_f32_cpu (float *dst, const void *src, dsk_dtype src_dtype, size_t n);
dsk_status dsk_convert_to_f32_cuda (float *dst, const void *src, dsk_dtype src_dtype, size_t n,
                                    void *stream);

/* ---- device memory (CUDA builds; elsewhere they return DSK_ERR_UNSUPPORTED) ----
 * Plain cudaMalloc'd memory: never managed memory (it can hang a shared GPU). */

/* Whether a CUDA device can be used by this build (0: no CUDA build, or no device). */
int dsk_cuda_available (void);
dsk_status dsk_cuda_malloc (void **ptr, size_t nbytes);
dsk_status dsk_cuda_free (void *ptr);
dsk_status dsk_cuda_upload (void *dst_device, const void *src_host, size_t nbytes, void *stream);
dsk_status dsk_cuda_download (void *dst_host, const void *src_device, size_t nbytes, void *stream);
/* Waits for all work queued on @stream (NULL: the legacy default stream). */
dsk_status dsk_cuda_sync (void *stream);

#ifdef __cplusplus
}
#endif

#endif /* DSK_H */
