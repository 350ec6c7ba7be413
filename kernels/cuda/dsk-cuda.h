/* dsk-cuda.h: the CUDA kernels' C entry points (internal to kernels/cuda/; the engine reaches
 * them through the CUDA backend, backend.h).
 *
 * Every pointer is device memory and every call is queued on @stream (a cudaStream_t). Results
 * agree with the CPU kernels to f32 rounding, not bit for bit (a block reduces a row in another
 * order); test-backend-ops holds each op to its bound. Nothing here aborts: a CUDA error is
 * DSK_ERR_DEVICE with its text in dsk_last_error(). */
#ifndef DSK_CUDA_H
#define DSK_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "dsk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Text of the last DSK_ERR_DEVICE on this thread ("" when none). */
const char *dsk_last_error (void);

/* ---- device memory: plain cudaMalloc'd memory, never managed memory (it can hang a shared
 * GPU) ---- */
/* The number of CUDA devices this process can use (0 without a driver or device). */
int dsk_cuda_device_count (void);
dsk_status dsk_cuda_malloc (void **ptr, size_t nbytes);
dsk_status dsk_cuda_free (void *ptr);
dsk_status dsk_cuda_upload (void *dst_device, const void *src_host, size_t nbytes, void *stream);
dsk_status dsk_cuda_download (void *dst_host, const void *src_device, size_t nbytes, void *stream);
/* Waits for all work queued on @stream (NULL: the legacy default stream). */
dsk_status dsk_cuda_sync (void *stream);

/* ---- kernels ---- */

/* dst[n] (f32) = src[n] (F32, F16, BF16 or F8_E4M3). */
dsk_status dsk_convert_to_f32_cuda (float *dst, const void *src, dsk_dtype src_dtype, size_t n,
                                    void *stream);
/* RMSNorm of n rows of dim (row strides ldx, ldy; 0: dim), w [dim] F32/BF16/F16. */
dsk_status dsk_rmsnorm_f32_cuda (float *y, size_t ldy, const float *x, size_t ldx,
                                 const void *w, dsk_dtype w_dtype,
                                 size_t n, size_t dim, float eps, void *stream);
/* LayerNorm of n packed rows of dim; w, b [dim] of one dtype, either may be NULL. */
dsk_status dsk_layernorm_f32_cuda (float *y, const float *x, const void *w, const void *b,
                                   dsk_dtype wb_dtype, size_t n, size_t dim, float eps,
                                   void *stream);
/* RoPE in place, as dsk_rope_f32_cpu; the positions cannot be checked from the host: the
 * caller keeps them in [0, n_pos). */
dsk_status dsk_rope_f32_cuda (float *x, size_t n_tokens, size_t n_heads,
                              size_t token_stride, size_t head_stride,
                              size_t rot_offset, size_t rot_dim,
                              const int32_t *positions, const float *cos_tab,
                              const float *sin_tab, size_t n_pos, dsk_rope_mode mode,
                              void *stream);
/* Softmax of n packed rows of dim (+ bias rows bias_ld apart, or NULL). */
dsk_status dsk_softmax_f32_cuda (float *y, const float *x, const float *bias, size_t bias_ld,
                                 size_t n, size_t dim, void *stream);
dsk_status dsk_silu_f32_cuda (float *y, const float *x, size_t n, void *stream);
dsk_status dsk_gelu_f32_cuda (float *y, const float *x, size_t n, void *stream);
dsk_status dsk_quick_gelu_f32_cuda (float *y, const float *x, size_t n, void *stream);
dsk_status dsk_swiglu_f32_cuda (float *y, const float *gate, const float *up, size_t n,
                                void *stream);

#ifdef __cplusplus
}
#endif

#endif /* DSK_CUDA_H */
