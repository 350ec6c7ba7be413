/* tensor.c: dtype tables and the tensor descriptor. */
#include "dsocr/dsocr-tensor.h"

#include <string.h>

#include "backend.h"
#include "dsocr/dsocr-error.h"

G_STATIC_ASSERT ((int) DSOCR_DTYPE_F32 == (int) DSK_F32);
G_STATIC_ASSERT ((int) DSOCR_DTYPE_BF16 == (int) DSK_BF16);
G_STATIC_ASSERT ((int) DSOCR_DTYPE_F8_E4M3 == (int) DSK_F8_E4M3);
G_STATIC_ASSERT ((int) DSOCR_DTYPE_BOOL == (int) DSK_BOOL);
G_STATIC_ASSERT ((int) DSOCR_DTYPE_N == (int) DSK_N_STORED_DTYPES);

static const char *const dtype_names[DSOCR_DTYPE_N] = {
  [DSOCR_DTYPE_F32] = "F32",
  [DSOCR_DTYPE_F16] = "F16",
  [DSOCR_DTYPE_BF16] = "BF16",
  [DSOCR_DTYPE_F8_E4M3] = "F8_E4M3",
  [DSOCR_DTYPE_I64] = "I64",
  [DSOCR_DTYPE_I32] = "I32",
  [DSOCR_DTYPE_U8] = "U8",
  [DSOCR_DTYPE_BOOL] = "BOOL",
};

const char *
dsocr_dtype_name (dsocr_dtype dtype)
{
  if ((unsigned) dtype >= DSOCR_DTYPE_N)
    return NULL;
  return dtype_names[dtype];
}

gboolean
dsocr_dtype_from_name (const char *name, dsocr_dtype *out)
{
  for (int i = 0; i < DSOCR_DTYPE_N && name; i++) {
    if (strcmp (name, dtype_names[i]) == 0) {
      *out = (dsocr_dtype) i;
      return TRUE;
    }
  }
  return FALSE;
}

gsize
dsocr_dtype_size (dsocr_dtype dtype)
{
  if ((unsigned) dtype >= DSOCR_DTYPE_N)
    return 0;
  return dsk_dtype_size ((dsk_dtype) dtype);
}

int64_t
dsocr_shape_numel (int n_dims, const int64_t *shape)
{
  int64_t n = 1;
  for (int i = 0; i < n_dims; i++) {
    if (shape[i] < 0)
      return -1;
    if (shape[i] != 0 && n > G_MAXINT64 / shape[i])
      return -1;
    n *= shape[i];
  }
  return n;
}

char *
dsocr_shape_format (int n_dims, const int64_t *shape, char *buf, gsize size)
{
  gsize off = 0;
  if (size == 0)
    return buf;
  buf[0] = '\0';
  off += g_snprintf (buf + off, size - off, "[");
  for (int i = 0; i < n_dims && off < size; i++)
    off += g_snprintf (buf + off, size - off, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  if (off < size)
    g_snprintf (buf + off, size - off, "]");
  return buf;
}

gboolean
dsocr_tensor_init (dsocr_tensor *t, dsocr_dtype dtype, int n_dims, const int64_t *shape,
                   GError **error)
{
  char s[128];
  gsize esize = dsocr_dtype_size (dtype);
  int64_t numel;

  if (esize == 0 || n_dims < 0 || n_dims > DSOCR_MAX_DIMS) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "tensor '%s': invalid dtype %d or rank %d", t->name ? t->name : "?",
                 (int) dtype, n_dims);
    return FALSE;
  }
  numel = dsocr_shape_numel (n_dims, shape);
  if (numel < 0 || (guint64) numel > G_MAXSIZE / esize) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "tensor '%s': shape %s is too large",
                 t->name ? t->name : "?", dsocr_shape_format (n_dims, shape, s, sizeof s));
    return FALSE;
  }
  t->dtype = dtype;
  t->n_dims = n_dims;
  for (int i = 0; i < DSOCR_MAX_DIMS; i++)
    t->shape[i] = i < n_dims ? shape[i] : 1;
  for (int i = DSOCR_MAX_DIMS - 1, st = 1; i >= 0; i--) {
    t->stride[i] = i < n_dims ? st : 0;
    if (i < n_dims)
      st *= t->shape[i];
  }
  t->nbytes = (gsize) numel * esize;
  return TRUE;
}

dsocr_tensor *
dsocr_tensor_new (dsocr_dtype dtype, int n_dims, const int64_t *shape, GError **error)
{
  dsocr_tensor *t = g_new0 (dsocr_tensor, 1);

  if (!dsocr_tensor_init (t, dtype, n_dims, shape, error)) {
    g_free (t);
    return NULL;
  }
  t->data = g_try_malloc0 (t->nbytes ? t->nbytes : 1);
  if (!t->data) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "cannot allocate %" G_GSIZE_FORMAT
                 " bytes for a tensor", t->nbytes);
    g_free (t);
    return NULL;
  }
  t->owns_data = TRUE;
  t->device = DSOCR_DEVICE_CPU;
  return t;
}

void
dsocr_tensor_free (dsocr_tensor *t)
{
  if (!t)
    return;
  if (t->owns_data)
    g_free (t->data);
  g_free (t);
}

gboolean
dsocr_tensor_check (const dsocr_tensor *t, dsocr_dtype dtype, int n_dims, const int64_t *shape,
                    GError **error)
{
  char have[128], want[128];
  gboolean ok = t->n_dims == n_dims;

  for (int i = 0; ok && i < n_dims; i++)
    ok = t->shape[i] == shape[i];
  if (!ok) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE, "tensor '%s': shape %s, expected %s",
                 t->name ? t->name : "?",
                 dsocr_shape_format (t->n_dims, t->shape, have, sizeof have),
                 dsocr_shape_format (n_dims, shape, want, sizeof want));
    return FALSE;
  }
  if (dtype != DSOCR_DTYPE_N && t->dtype != dtype) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE, "tensor '%s': dtype %s, expected %s",
                 t->name ? t->name : "?", dsocr_dtype_name (t->dtype), dsocr_dtype_name (dtype));
    return FALSE;
  }
  return TRUE;
}

gboolean
dsocr_tensor_to_f32 (const dsocr_tensor *t, float *dst, GError **error)
{
  int64_t n = dsocr_shape_numel (t->n_dims, t->shape);

  if (t->device != DSOCR_DEVICE_CPU ||
      dsk_convert_to_f32 (dst, t->data, (dsk_dtype) t->dtype, (size_t) n) != DSK_OK) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "tensor '%s': cannot convert %s to F32", t->name ? t->name : "?",
                 dsocr_dtype_name (t->dtype));
    return FALSE;
  }
  return TRUE;
}
