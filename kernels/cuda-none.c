/* cuda-none.c: the CUDA entry points of a build without nvcc. They exist so that callers
 * link either way; each says the op is unsupported. */
#include "dsk.h"

static _Thread_local const char *last_error = "";

const char *
dsk_last_error (void)
{
  return last_error;
}

int
dsk_cuda_available (void)
{
  return 0;
}

static dsk_status
no_cuda (void)
{
  last_error = "this build of gst-dsocr has no CUDA support";
  return DSK_ERR_UNSUPPORTED;
}

dsk_status dsk_cuda_malloc (void **ptr, size_t nbytes) { (void) nbytes; if (ptr) *ptr = NULL; return no_cuda (); }
dsk_status dsk_cuda_free (void *ptr) { return ptr ? no_cuda () : DSK_OK; }
dsk_status dsk_cuda_upload (void *d, const void *s, size_t n, void *st) { (void) d; (void) s; (void) n; (void) st; return no_cuda (); }
dsk_status dsk_cuda_download (void *d, const void *s, size_t n, void *st) { (void) d; (void) s; (void) n; (void) st; return no_cuda (); }
dsk_status dsk_cuda_sync (void *stream) { (void) stream; return no_cuda (); }

dsk_status
dsk_convert_to_f32_cuda (float *dst, const void *src, dsk_dtype src_dtype, size_t n, void *stream)
{
  (void) dst; (void) src; (void) src_dtype; (void) n; (void) stream;
  return no_cuda ();
}

dsk_status
dsk_rmsnorm_f32_cuda (float *y, size_t ldy, const float *x, size_t ldx, const void *w,
                      dsk_dtype w_dtype, size_t n, size_t dim, float eps, void *stream)
{
  (void) y; (void) ldy; (void) x; (void) ldx; (void) w; (void) w_dtype; (void) n; (void) dim;
  (void) eps; (void) stream;
  return no_cuda ();
}

dsk_status
dsk_layernorm_f32_cuda (float *y, const float *x, const void *w, const void *b,
                        dsk_dtype wb_dtype, size_t n, size_t dim, float eps, void *stream)
{
  (void) y; (void) x; (void) w; (void) b; (void) wb_dtype; (void) n; (void) dim; (void) eps;
  (void) stream;
  return no_cuda ();
}

dsk_status dsk_silu_f32_cuda (float *y, const float *x, size_t n, void *s) { (void) y; (void) x; (void) n; (void) s; return no_cuda (); }
dsk_status dsk_gelu_f32_cuda (float *y, const float *x, size_t n, void *s) { (void) y; (void) x; (void) n; (void) s; return no_cuda (); }
dsk_status dsk_quick_gelu_f32_cuda (float *y, const float *x, size_t n, void *s) { (void) y; (void) x; (void) n; (void) s; return no_cuda (); }
dsk_status dsk_swiglu_f32_cuda (float *y, const float *g, const float *u, size_t n, void *s) { (void) y; (void) g; (void) u; (void) n; (void) s; return no_cuda (); }

dsk_status
dsk_softmax_f32_cuda (float *y, const float *x, const float *bias, size_t bias_ld, size_t n,
                      size_t dim, void *stream)
{
  (void) y; (void) x; (void) bias; (void) bias_ld; (void) n; (void) dim; (void) stream;
  return no_cuda ();
}

dsk_status
dsk_rope_f32_cuda (float *x, size_t n_tokens, size_t n_heads, size_t token_stride,
                   size_t head_stride, size_t rot_offset, size_t rot_dim,
                   const int32_t *positions, const float *cos_tab, const float *sin_tab,
                   size_t n_pos, dsk_rope_mode mode, void *stream)
{
  (void) x; (void) n_tokens; (void) n_heads; (void) token_stride; (void) head_stride;
  (void) rot_offset; (void) rot_dim; (void) positions; (void) cos_tab; (void) sin_tab;
  (void) n_pos; (void) mode; (void) stream;
  return no_cuda ();
}
