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
