/* tensor.c: dsk_tensor construction and views (backend.h). A view never copies: it is the
 * same memory with other sizes, strides or a moved start. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

const char *
dsk_device_name (dsk_device dev, char *buf, size_t len)
{
  if (dev.kind == DSK_DEVICE_HOST)
    snprintf (buf, len, "cpu");
  else
    snprintf (buf, len, "cuda:%d", dev.index);
  return buf;
}

dsk_tensor
dsk_tensor_make (void *data, dsk_dtype dtype, int n_dims, const size_t *ne, dsk_device device)
{
  dsk_tensor t;
  memset (&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.n_dims = n_dims < 1 ? 1 : n_dims > DSK_MAX_DIMS ? DSK_MAX_DIMS : n_dims;
  t.device = device;
  for (int i = 0; i < DSK_MAX_DIMS; i++)
    t.ne[i] = 1;
  for (int i = 0; i < t.n_dims; i++)
    t.ne[i] = ne[i];
  size_t stride = 1;
  for (int i = t.n_dims - 1; i >= 0; i--) {
    t.st[i] = stride;
    stride *= t.ne[i];
  }
  return t;
}

dsk_tensor
dsk_tensor_host_1d (const void *data, dsk_dtype dtype, size_t n)
{
  const size_t ne[1] = { n };
  return dsk_tensor_make ((void *) data, dtype, 1, ne, (dsk_device) { DSK_DEVICE_HOST, 0 });
}

dsk_tensor
dsk_tensor_host_2d (const void *data, dsk_dtype dtype, size_t rows, size_t cols)
{
  const size_t ne[2] = { rows, cols };
  return dsk_tensor_make ((void *) data, dtype, 2, ne, (dsk_device) { DSK_DEVICE_HOST, 0 });
}

size_t
dsk_tensor_n_elements (const dsk_tensor *t)
{
  size_t n = 1;
  for (int i = 0; i < t->n_dims; i++)
    n *= t->ne[i];
  return n;
}

int
dsk_tensor_is_contiguous (const dsk_tensor *t)
{
  size_t stride = 1;
  for (int i = t->n_dims - 1; i >= 0; i--) {
    if (t->ne[i] != 1 && t->st[i] != stride)
      return 0;
    stride *= t->ne[i];
  }
  return 1;
}

size_t
dsk_tensor_rows (const dsk_tensor *t)
{
  return t->n_dims > 1 ? dsk_tensor_n_elements (t) / t->ne[t->n_dims - 1] : 1;
}

size_t
dsk_tensor_row_len (const dsk_tensor *t)
{
  return t->ne[t->n_dims - 1];
}

dsk_tensor
dsk_narrow (const dsk_tensor *t, int dim, size_t start, size_t len)
{
  dsk_tensor v = *t;
  if (dim < 0 || dim >= t->n_dims || start + len > t->ne[dim]) {
    v.data = NULL;   /* the op that receives it reports a NULL tensor */
    return v;
  }
  if (v.data)
    v.data = (char *) v.data + start * t->st[dim] * dsk_dtype_size (t->dtype);
  v.ne[dim] = len;
  return v;
}

dsk_tensor
dsk_split (const dsk_tensor *t, int dim, size_t a, size_t b)
{
  dsk_tensor v = *t;
  if (dim < 0 || dim >= t->n_dims || t->n_dims == DSK_MAX_DIMS || a * b != t->ne[dim]) {
    v.data = NULL;
    return v;
  }
  for (int i = t->n_dims; i > dim + 1; i--) {
    v.ne[i] = t->ne[i - 1];
    v.st[i] = t->st[i - 1];
  }
  v.ne[dim] = a;
  v.st[dim] = b * t->st[dim];
  v.ne[dim + 1] = b;
  v.st[dim + 1] = t->st[dim];
  v.n_dims = t->n_dims + 1;
  return v;
}

dsk_tensor
dsk_expand (const dsk_tensor *t, int dim, size_t n)
{
  dsk_tensor v = *t;
  if (dim < 0 || dim >= t->n_dims || t->ne[dim] != 1) {
    v.data = NULL;
    return v;
  }
  v.ne[dim] = n;
  v.st[dim] = 0;
  return v;
}

dsk_tensor
dsk_merge (const dsk_tensor *t, int dim)
{
  dsk_tensor v = *t;
  if (dim < 0 || dim + 1 >= t->n_dims || t->st[dim] != t->ne[dim + 1] * t->st[dim + 1]) {
    v.data = NULL;
    return v;
  }
  v.ne[dim] = t->ne[dim] * t->ne[dim + 1];
  v.st[dim] = t->st[dim + 1];
  for (int i = dim + 1; i + 1 < t->n_dims; i++) {
    v.ne[i] = t->ne[i + 1];
    v.st[i] = t->st[i + 1];
  }
  v.ne[t->n_dims - 1] = 1;
  v.st[t->n_dims - 1] = 0;
  v.n_dims = t->n_dims - 1;
  return v;
}

dsk_tensor
dsk_unsqueeze (const dsk_tensor *t)
{
  dsk_tensor v = *t;
  if (t->n_dims == DSK_MAX_DIMS) {
    v.data = NULL;
    return v;
  }
  for (int i = t->n_dims; i > 0; i--) {
    v.ne[i] = t->ne[i - 1];
    v.st[i] = t->st[i - 1];
  }
  v.ne[0] = 1;
  v.st[0] = t->ne[0] * t->st[0];
  v.n_dims = t->n_dims + 1;
  return v;
}

dsk_tensor
dsk_select (const dsk_tensor *t, int dim, size_t i)
{
  dsk_tensor v = dsk_narrow (t, dim, i, 1);
  if (!v.data || t->n_dims == 1) {
    v.data = NULL;
    return v;
  }
  for (int d = dim; d + 1 < t->n_dims; d++) {
    v.ne[d] = v.ne[d + 1];
    v.st[d] = v.st[d + 1];
  }
  v.ne[t->n_dims - 1] = 1;
  v.st[t->n_dims - 1] = 0;
  v.n_dims = t->n_dims - 1;
  return v;
}

dsk_tensor
dsk_transpose (const dsk_tensor *t, int d0, int d1)
{
  dsk_tensor v = *t;
  if (d0 < 0 || d1 < 0 || d0 >= t->n_dims - 1 || d1 >= t->n_dims - 1) {
    v.data = NULL;
    return v;
  }
  v.ne[d0] = t->ne[d1];
  v.st[d0] = t->st[d1];
  v.ne[d1] = t->ne[d0];
  v.st[d1] = t->st[d0];
  return v;
}
