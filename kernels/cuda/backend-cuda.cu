/* backend-cuda.cu: the CUDA backend: device memory, one stream per backend, and the ops that
 * have CUDA kernels so far (norms, activations, softmax, RoPE, conversion, copies). The table's
 * other entries are NULL: such an op records DSK_ERR_UNSUPPORTED naming itself, and
 * test-backend-ops lists it as skipped on "cuda". Every kernel here is checked against the CPU
 * backend by test-backend-ops on a machine with a GPU (bench/gpu-check.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-impl.h"
#include "dsk-cuda.cuh"

typedef struct {
  dsk_backend base;
  int device;
  cudaStream_t stream;
} dsk_cuda;

static dsk_cuda *
cu (dsk_backend *be)
{
  return (dsk_cuda *) be;
}

/* Records a failed kernel call (its status and dsk_last_error()) as @be's error. */
static void
check (dsk_backend *be, dsk_status st, const char *op)
{
  if (st != DSK_OK)
    dsk_backend_fail (be, st, "%s on %s: %s", op, be->description,
                      st == DSK_ERR_DEVICE ? dsk_last_error () : "unsupported arguments");
}

/* Makes @be's device current on this thread (a process may drive several GPUs). */
static int
use_device (dsk_backend *be)
{
  cudaError_t err = cudaSetDevice (cu (be)->device);
  if (err != cudaSuccess) {
    dsk_backend_fail (be, DSK_ERR_DEVICE, "cudaSetDevice (%d): %s", cu (be)->device,
                      cudaGetErrorString (err));
    return 0;
  }
  return 1;
}

/* ---- memory ---- */

static void *
cuda_buffer_alloc (dsk_backend *be, size_t nbytes)
{
  void *p = NULL;
  if (!use_device (be) || dsk_cuda_malloc (&p, nbytes) != DSK_OK)
    return NULL;
  return p;
}

static void
cuda_buffer_free (dsk_device device, void *ptr)
{
  cudaSetDevice (device.index);
  dsk_cuda_free (ptr);
}

/* Rows of @t moved to or from the packed host array @host. */
static void
move_rows (dsk_backend *be, const dsk_tensor *t, void *host, int to_device)
{
  const size_t es = dsk_dtype_size (t->dtype), rows = dsk_tensor_rows (t);
  const size_t row_bytes = dsk_tensor_row_len (t) * es;
  if (!use_device (be))
    return;
  if (!dsk_tensor_is_contiguous (t) && t->n_dims > 2) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "tensor_set/get on cuda: a strided tensor of "
                      "more than 2 dimensions");
    return;
  }
  const size_t pitch = (t->n_dims == 2 ? t->st[0] : dsk_tensor_row_len (t)) * es;
  cudaError_t err = to_device
    ? cudaMemcpy2DAsync (t->data, pitch, host, row_bytes, row_bytes, rows, cudaMemcpyHostToDevice,
                         cu (be)->stream)
    : cudaMemcpy2DAsync (host, row_bytes, t->data, pitch, row_bytes, rows, cudaMemcpyDeviceToHost,
                         cu (be)->stream);
  if (err == cudaSuccess)
    err = cudaStreamSynchronize (cu (be)->stream);
  if (err != cudaSuccess)
    dsk_backend_fail (be, DSK_ERR_DEVICE, "copy %s cuda:%d: %s", to_device ? "to" : "from",
                      cu (be)->device, cudaGetErrorString (err));
}

static void
cuda_tensor_set (dsk_backend *be, const dsk_tensor *dst, const void *src)
{
  move_rows (be, dst, (void *) src, 1);
}

static void
cuda_tensor_get (dsk_backend *be, const dsk_tensor *src, void *dst)
{
  move_rows (be, src, dst, 0);
}

static dsk_tensor
cuda_prepare_weight (dsk_backend *be, const dsk_tensor *host, dsk_weight_storage *storage)
{
  dsk_tensor t = *host;
  const size_t bytes = dsk_tensor_n_elements (host) * dsk_dtype_size (host->dtype);
  t.device = be->device;
  t.data = dsk_weight_storage_add (storage, be, bytes);
  if (t.data)
    check (be, dsk_cuda_upload (t.data, host->data, bytes, cu (be)->stream), "prepare_weight");
  return t;
}

static void
cuda_synchronize (dsk_backend *be)
{
  if (use_device (be))
    check (be, dsk_cuda_sync (cu (be)->stream), "synchronize");
}

static void
cuda_free (dsk_backend *be)
{
  cudaSetDevice (cu (be)->device);
  cudaStreamSynchronize (cu (be)->stream);
  cudaStreamDestroy (cu (be)->stream);
  free (cu (be));
}

/* ---- ops ---- */

/* The kernels below take packed operands; a strided view is refused by name. */
static int
packed (dsk_backend *be, const char *op, const dsk_tensor *t)
{
  if (!t || dsk_tensor_is_contiguous (t))
    return 1;
  dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "%s on cuda: strided operands are not supported yet",
                    op);
  return 0;
}

static void
cuda_copy (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src)
{
  const size_t n = dsk_tensor_n_elements (dst);
  if (!use_device (be) || !packed (be, "copy", dst) || !packed (be, "copy", src))
    return;
  if (dst->dtype == src->dtype) {
    cudaError_t err = cudaMemcpyAsync (dst->data, src->data, n * dsk_dtype_size (dst->dtype),
                                       cudaMemcpyDeviceToDevice, cu (be)->stream);
    if (err != cudaSuccess)
      dsk_backend_fail (be, DSK_ERR_DEVICE, "copy on cuda: %s", cudaGetErrorString (err));
  } else if (dst->dtype == DSK_F32) {
    check (be, dsk_convert_to_f32_cuda ((float *) dst->data, src->data, src->dtype, n,
                                        cu (be)->stream), "copy");
  } else {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "copy on cuda: to %d", (int) dst->dtype);
  }
}

typedef dsk_status (*unary_fn) (float *, const float *, size_t, void *);

static void
unary (dsk_backend *be, const char *op, unary_fn fn, const dsk_tensor *y, const dsk_tensor *x)
{
  if (use_device (be) && packed (be, op, y) && packed (be, op, x))
    check (be, fn ((float *) y->data, (const float *) x->data, dsk_tensor_n_elements (y),
                   cu (be)->stream), op);
}

static void
cuda_silu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  unary (be, "silu", dsk_silu_f32_cuda, y, x);
}

static void
cuda_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  unary (be, "gelu", dsk_gelu_f32_cuda, y, x);
}

static void
cuda_quick_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  unary (be, "quick_gelu", dsk_quick_gelu_f32_cuda, y, x);
}

static void
cuda_swiglu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *gate, const dsk_tensor *up)
{
  if (use_device (be) && packed (be, "swiglu", y) && packed (be, "swiglu", gate) &&
      packed (be, "swiglu", up))
    check (be, dsk_swiglu_f32_cuda ((float *) y->data, (const float *) gate->data,
                                    (const float *) up->data, dsk_tensor_n_elements (y),
                                    cu (be)->stream), "swiglu");
}

static void
cuda_softmax (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  if (use_device (be) && packed (be, "softmax", y) && packed (be, "softmax", x))
    check (be, dsk_softmax_f32_cuda ((float *) y->data, (const float *) x->data, NULL, 0,
                                     dsk_tensor_rows (x), dsk_tensor_row_len (x), cu (be)->stream),
           "softmax");
}

static void
cuda_rmsnorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
              float eps)
{
  if (!use_device (be))
    return;
  if (x->n_dims != 2 && (!packed (be, "rmsnorm", y) || !packed (be, "rmsnorm", x)))
    return;
  const size_t dim = dsk_tensor_row_len (x);
  check (be, dsk_rmsnorm_f32_cuda ((float *) y->data, x->n_dims == 2 ? y->st[0] : dim,
                                   (const float *) x->data, x->n_dims == 2 ? x->st[0] : dim,
                                   w->data, w->dtype, dsk_tensor_rows (x), dim, eps,
                                   cu (be)->stream), "rmsnorm");
}

static void
cuda_layernorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
                const dsk_tensor *b, float eps)
{
  if (use_device (be) && packed (be, "layernorm", y) && packed (be, "layernorm", x))
    check (be, dsk_layernorm_f32_cuda ((float *) y->data, (const float *) x->data,
                                       w ? w->data : NULL, b ? b->data : NULL,
                                       w ? w->dtype : b ? b->dtype : DSK_F32, dsk_tensor_rows (x),
                                       dsk_tensor_row_len (x), eps, cu (be)->stream),
           "layernorm");
}

static void
cuda_rope (dsk_backend *be, const dsk_tensor *x, const dsk_tensor *positions,
           const dsk_tensor *cos_tab, const dsk_tensor *sin_tab, size_t rot_offset,
           size_t rot_dim, dsk_rope_mode mode)
{
  if (use_device (be) && packed (be, "rope", positions) && packed (be, "rope", cos_tab) &&
      packed (be, "rope", sin_tab))
    check (be, dsk_rope_f32_cuda ((float *) x->data, x->ne[0], x->ne[1], x->st[0], x->st[1],
                                  rot_offset, rot_dim, (const int32_t *) positions->data,
                                  (const float *) cos_tab->data, (const float *) sin_tab->data,
                                  cos_tab->ne[0], mode, cu (be)->stream), "rope");
}

static dsk_backend_ops
make_ops (void)
{
  dsk_backend_ops o;
  memset (&o, 0, sizeof o);
  o.buffer_alloc = cuda_buffer_alloc;
  o.buffer_free = cuda_buffer_free;
  o.tensor_set = cuda_tensor_set;
  o.tensor_get = cuda_tensor_get;
  o.prepare_weight = cuda_prepare_weight;
  o.synchronize = cuda_synchronize;
  o.free = cuda_free;
  o.copy = cuda_copy;
  o.silu = cuda_silu;
  o.gelu = cuda_gelu;
  o.quick_gelu = cuda_quick_gelu;
  o.swiglu = cuda_swiglu;
  o.softmax = cuda_softmax;
  o.rmsnorm = cuda_rmsnorm;
  o.layernorm = cuda_layernorm;
  o.rope = cuda_rope;
  return o;
}

static const dsk_backend_ops cuda_ops = make_ops ();

extern "C" int
dsk_backend_cuda_count (void)
{
  return dsk_cuda_device_count ();
}

extern "C" dsk_backend *
dsk_backend_cuda_new (int device, char *err, size_t err_len)
{
  const int n = dsk_cuda_device_count ();
  cudaDeviceProp prop;
  dsk_cuda *c;

  if (device >= n) {
    if (err && err_len)
      snprintf (err, err_len, "cuda:%d: %s", device,
                n == 0 ? "no CUDA device (or driver) on this machine"
                       : "no such device (this machine has fewer)");
    return NULL;
  }
  if (cudaSetDevice (device) != cudaSuccess || cudaGetDeviceProperties (&prop, device) != cudaSuccess) {
    if (err && err_len)
      snprintf (err, err_len, "cuda:%d: %s", device, cudaGetErrorString (cudaGetLastError ()));
    return NULL;
  }
  c = (dsk_cuda *) calloc (1, sizeof *c);
  if (!c || cudaStreamCreateWithFlags (&c->stream, cudaStreamNonBlocking) != cudaSuccess) {
    free (c);
    if (err && err_len)
      snprintf (err, err_len, "cuda:%d: cannot create a stream", device);
    return NULL;
  }
  c->device = device;
  c->base.ops = &cuda_ops;
  c->base.device.kind = DSK_DEVICE_CUDA;
  c->base.device.index = device;
  c->base.n_threads = 1;
  snprintf (c->base.description, sizeof c->base.description, "cuda:%d (%.100s)", device, prop.name);
  return &c->base;
}
