/* backend.c: creating backends by device name, their sticky error, device memory and the
 * storage of prepared weights (backend.h). The ops' argument checks are in ops.c. */
#include "backend-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsocr-build-config.h"

static void
set_err (char *err, size_t len, const char *fmt, ...)
{
  va_list ap;
  if (!err || len == 0)
    return;
  va_start (ap, fmt);
  vsnprintf (err, len, fmt, ap);
  va_end (ap);
}

/* "cpu" -> host; "cuda" / "cuda:N" -> CUDA device N. FALSE for anything else. */
static int
parse_device (const char *name, dsk_device *dev)
{
  if (!name || strcmp (name, "cpu") == 0) {
    *dev = (dsk_device) { DSK_DEVICE_HOST, 0 };
    return 1;
  }
  if (strcmp (name, "cuda") == 0) {
    *dev = (dsk_device) { DSK_DEVICE_CUDA, 0 };
    return 1;
  }
  if (strncmp (name, "cuda:", 5) == 0 && name[5] >= '0' && name[5] <= '9') {
    char *end;
    long i = strtol (name + 5, &end, 10);
    if (*end == '\0' && i >= 0 && i < 1024) {
      *dev = (dsk_device) { DSK_DEVICE_CUDA, (int) i };
      return 1;
    }
  }
  return 0;
}

dsk_backend *
dsk_backend_new (const char *device, int n_threads, char *err, size_t err_len)
{
  dsk_device dev;
  dsk_backend *be;

  if (!parse_device (device, &dev)) {
    set_err (err, err_len, "unknown device \"%s\" (expected cpu, cuda or cuda:N)", device);
    return NULL;
  }
  if (n_threads < 0) {
    set_err (err, err_len, "%d threads", n_threads);
    return NULL;
  }
  if (dev.kind == DSK_DEVICE_HOST)
    be = dsk_backend_cpu_new (n_threads, err, err_len);
  else
    be = dsk_backend_cuda_new (dev.index, err, err_len);
  if (be) {
    be->ref_count = 1;
    be->status = DSK_OK;
    be->error[0] = '\0';
  }
  return be;
}

dsk_backend *
dsk_backend_ref (dsk_backend *be)
{
  if (be)
    __atomic_add_fetch (&be->ref_count, 1, __ATOMIC_RELAXED);
  return be;
}

void
dsk_backend_unref (dsk_backend *be)
{
  if (be && __atomic_sub_fetch (&be->ref_count, 1, __ATOMIC_ACQ_REL) == 0)
    be->ops->free (be);
}

dsk_device
dsk_backend_get_device (const dsk_backend *be)
{
  return be->device;
}

const char *
dsk_backend_get_description (const dsk_backend *be)
{
  return be->description;
}

int
dsk_backend_get_n_threads (const dsk_backend *be)
{
  return be->n_threads;
}

int
dsk_device_available (const char *device)
{
  dsk_device dev;
  if (!parse_device (device, &dev))
    return 0;
  if (dev.kind == DSK_DEVICE_HOST)
    return 1;
  return dev.index < dsk_backend_cuda_count ();
}

const char *const *
dsk_backend_list (void)
{
#if DSOCR_HAVE_CUDA
  static const char *const names[] = { "cpu", "cuda", NULL };
#else
  static const char *const names[] = { "cpu", NULL };
#endif
  return names;
}

/* ---- the sticky error ---- */

int
dsk_backend_failed (const dsk_backend *be)
{
  return be->status != DSK_OK;
}

dsk_status
dsk_backend_status (const dsk_backend *be)
{
  return be->status;
}

const char *
dsk_backend_error (const dsk_backend *be)
{
  return be->error;
}

void
dsk_backend_clear_error (dsk_backend *be)
{
  be->status = DSK_OK;
  be->error[0] = '\0';
}

void
dsk_backend_fail (dsk_backend *be, dsk_status st, const char *fmt, ...)
{
  va_list ap;
  if (be->status != DSK_OK)
    return;
  be->status = st == DSK_OK ? DSK_ERR_INVALID : st;
  va_start (ap, fmt);
  vsnprintf (be->error, sizeof be->error, fmt, ap);
  va_end (ap);
}

void
dsk_backend_synchronize (dsk_backend *be)
{
  if (be->ops->synchronize)
    be->ops->synchronize (be);
}

/* ---- memory ---- */

struct dsk_buffer {
  dsk_backend *be;   /* a reference: the memory is the backend's */
  void *data;
  size_t size;
};

dsk_buffer *
dsk_buffer_new (dsk_backend *be, size_t nbytes)
{
  dsk_buffer *b;
  void *p = be->ops->buffer_alloc (be, nbytes ? nbytes : 1);
  if (!p) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "cannot allocate %zu bytes on %s", nbytes,
                      be->description);
    return NULL;
  }
  b = calloc (1, sizeof *b);
  if (!b) {
    be->ops->buffer_free (be->device, p);
    dsk_backend_fail (be, DSK_ERR_NOMEM, "out of memory");
    return NULL;
  }
  b->be = dsk_backend_ref (be);
  b->data = p;
  b->size = nbytes;
  return b;
}

void
dsk_buffer_free (dsk_buffer *buf)
{
  if (!buf)
    return;
  buf->be->ops->buffer_free (buf->be->device, buf->data);
  dsk_backend_unref (buf->be);
  free (buf);
}

size_t
dsk_buffer_size (const dsk_buffer *buf)
{
  return buf->size;
}

dsk_tensor
dsk_buffer_tensor (const dsk_buffer *buf, size_t offset, dsk_dtype dtype, int n_dims,
                   const size_t *ne)
{
  dsk_tensor t = dsk_tensor_make (NULL, dtype, n_dims, ne, buf ? buf->be->device
                                                                : (dsk_device) { 0, 0 });
  if (buf && dsk_dtype_size (dtype) &&
      offset + dsk_tensor_n_elements (&t) * dsk_dtype_size (dtype) <= buf->size)
    t.data = (char *) buf->data + offset;
  return t;
}

/* ---- prepared weights ---- */

typedef struct {
  void *ptr;
  dsk_device device;
  void (*free) (dsk_device device, void *ptr);
} storage_entry;

struct dsk_weight_storage {
  storage_entry *entries;
  size_t n, cap, bytes;
};

dsk_weight_storage *
dsk_weight_storage_new (void)
{
  return calloc (1, sizeof (dsk_weight_storage));
}

void
dsk_weight_storage_free (dsk_weight_storage *s)
{
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    s->entries[i].free (s->entries[i].device, s->entries[i].ptr);
  free (s->entries);
  free (s);
}

size_t
dsk_weight_storage_bytes (const dsk_weight_storage *s)
{
  return s ? s->bytes : 0;
}

void *
dsk_weight_storage_add (dsk_weight_storage *s, dsk_backend *be, size_t nbytes)
{
  void *p;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    storage_entry *e = realloc (s->entries, cap * sizeof *e);
    if (!e) {
      dsk_backend_fail (be, DSK_ERR_NOMEM, "out of memory");
      return NULL;
    }
    s->entries = e;
    s->cap = cap;
  }
  p = be->ops->buffer_alloc (be, nbytes ? nbytes : 1);
  if (!p) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "cannot allocate %zu bytes of weights on %s", nbytes,
                      be->description);
    return NULL;
  }
  s->entries[s->n++] = (storage_entry) { p, be->device, be->ops->buffer_free };
  s->bytes += nbytes;
  return p;
}

dsk_tensor
dsk_backend_prepare_weight (dsk_backend *be, const dsk_tensor *host, dsk_weight_storage *storage)
{
  dsk_tensor t = *host;
  if (be->status != DSK_OK || !host->data || host->device.kind != DSK_DEVICE_HOST ||
      !dsk_tensor_is_contiguous (host)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "prepare_weight: the weight must be a contiguous "
                      "host tensor");
    t.data = NULL;
    return t;
  }
  return be->ops->prepare_weight (be, host, storage);
}

dsk_tensor
dsk_backend_quantize_weight (dsk_backend *be, const dsk_tensor *host, dsk_dtype q,
                             dsk_weight_storage *storage)
{
  dsk_tensor t = *host;
  t.data = NULL;
  if (be->status != DSK_OK)
    return t;
  if (!be->ops->quantize_weight) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "quantize_weight: %s has no %s weights",
                      be->description, dsk_dtype_name (q));
    return t;
  }
  if ((q != DSK_Q8 && q != DSK_Q4) || !host->data || host->device.kind != DSK_DEVICE_HOST ||
      !dsk_tensor_is_contiguous (host) || host->n_dims < 2 ||
      (host->dtype != DSK_F32 && host->dtype != DSK_BF16 && host->dtype != DSK_F16) ||
      host->ne[host->n_dims - 1] % 32) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "quantize_weight: a %s weight needs a contiguous "
                      "F32, BF16 or F16 host matrix whose rows are a multiple of 32 long",
                      dsk_dtype_name (q));
    return t;
  }
  return be->ops->quantize_weight (be, host, q, storage);
}
