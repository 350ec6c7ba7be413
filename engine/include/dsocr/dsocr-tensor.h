/* dsocr-tensor.h: a plain n-dimensional array descriptor.
 *
 * Shapes are outermost first, as in torch and safetensors: a weight [out, in] has `in`
 * contiguous elements per row. Strides are in elements.
 *
 * Ownership: a tensor either borrows its data (a view into a mapped checkpoint, valid while
 * the file that produced it lives) or owns it (created by dsocr_tensor_new(), released by
 * dsocr_tensor_free()). `owns_data` says which.
 */
#ifndef DSOCR_TENSOR_H
#define DSOCR_TENSOR_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define DSOCR_MAX_DIMS 4

/* Values equal kernels/dsk.h's dsk_dtype, so the engine can hand them to kernels as they are. */
typedef enum {
  DSOCR_DTYPE_F32 = 0,
  DSOCR_DTYPE_F16,
  DSOCR_DTYPE_BF16,
  DSOCR_DTYPE_F8_E4M3,
  DSOCR_DTYPE_I64,
  DSOCR_DTYPE_I32,
  DSOCR_DTYPE_U8,
  DSOCR_DTYPE_BOOL,
  DSOCR_DTYPE_N
} dsocr_dtype;

typedef enum {
  DSOCR_DEVICE_CPU = 0,
  DSOCR_DEVICE_CUDA,
} dsocr_device;

typedef struct dsocr_tensor {
  const char *name;              /* borrowed; may be NULL */
  dsocr_dtype dtype;
  int n_dims;                    /* 0 (scalar) .. DSOCR_MAX_DIMS */
  int64_t shape[DSOCR_MAX_DIMS]; /* outermost first; unused dims are 1 */
  int64_t stride[DSOCR_MAX_DIMS];/* in elements; contiguous row-major unless a view says otherwise */
  void *data;
  size_t nbytes;
  dsocr_device device;
  gboolean owns_data;
} dsocr_tensor;

/* "F32", "BF16", ... as safetensors writes them; NULL for an invalid value. */
const char *dsocr_dtype_name (dsocr_dtype dtype);
/* Parses a safetensors dtype string; returns FALSE for an unknown one. */
gboolean dsocr_dtype_from_name (const char *name, dsocr_dtype *out);
/* Bytes per element; 0 for an invalid value. */
gsize dsocr_dtype_size (dsocr_dtype dtype);

/* Number of elements, or -1 when it overflows int64. */
int64_t dsocr_shape_numel (int n_dims, const int64_t *shape);
/* Writes "[a, b, c]" into @buf (always NUL-terminated); returns @buf. */
char *dsocr_shape_format (int n_dims, const int64_t *shape, char *buf, gsize size);

/* Fills shape, contiguous strides and nbytes of @t. Fails (DSOCR_ERROR_NOMEM) on overflow or a
 * negative dimension. Does not touch data. */
gboolean dsocr_tensor_init (dsocr_tensor *t, dsocr_dtype dtype, int n_dims, const int64_t *shape,
                            GError **error);

/* Returns (transfer full): a zero-filled CPU tensor owning its data; NULL + error on a bad
 * shape or an allocation failure. Free with dsocr_tensor_free(). */
dsocr_tensor *dsocr_tensor_new (dsocr_dtype dtype, int n_dims, const int64_t *shape,
                                GError **error);
/* Frees @t and, if it owns it, its data. NULL is a no-op. */
void dsocr_tensor_free (dsocr_tensor *t);

/* Checks @t against an expected dtype (DSOCR_DTYPE_N: any) and shape. On mismatch sets a
 * DSOCR_ERROR_SHAPE naming @t->name, the actual and the expected shape. */
gboolean dsocr_tensor_check (const dsocr_tensor *t, dsocr_dtype dtype, int n_dims,
                             const int64_t *shape, GError **error);

/* Copies @t's elements as f32 into @dst (numel floats); F32/F16/BF16/F8_E4M3 only. */
gboolean dsocr_tensor_to_f32 (const dsocr_tensor *t, float *dst, GError **error);

G_END_DECLS

#endif /* DSOCR_TENSOR_H */
