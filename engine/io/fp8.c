/* fp8.c: dequantisation of FP8 e4m3 weights with per-block scales (DeepSeek-V3 / V3.2 release
 * checkpoints: quantization_config {"quant_method": "fp8", "fmt": "e4m3",
 * "weight_block_size": [128, 128]}, each Linear weight W stored as e4m3 plus
 * `<name>_scale_inv` [ceil(out / 128), ceil(in / 128)] F32).
 *
 * The release code's weight_dequant multiplies every element by the scale of its block; the
 * last block of a row or column may be partial. The product is done in f32; the result is kept
 * as BF16 when that loses nothing (power-of-two ue8m0 scales times a 4-bit-mantissa e4m3 value
 * always fit), which halves the memory of the F32 fallback.
 */
#include "fp8.h"

#include "dsk.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"

static float e4m3_table[256];

static gpointer
init_table (gpointer data)
{
  for (int i = 0; i < 256; i++)
    e4m3_table[i] = dsk_f8_e4m3_to_f32 ((uint8_t) i);
  return NULL;
}

dsocr_tensor *
dsocr_fp8_dequantize (const dsocr_tensor *w, const dsocr_tensor *scale_inv, int block_rows,
                      int block_cols, GError **error)
{
  static GOnce once = G_ONCE_INIT;
  const char *name = w->name ? w->name : "?";
  int64_t rows, cols, nr, nc;
  float *scale = NULL;  // [nr, nc]
  dsocr_tensor *out = NULL;
  gboolean exact = TRUE;
  const uint8_t *src = w->data;

  g_once (&once, init_table, NULL);
  if (w->dtype != DSOCR_DTYPE_F8_E4M3 || w->n_dims != 2 || block_rows <= 0 || block_cols <= 0) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE,
                 "tensor '%s': FP8 dequantisation needs a 2-D F8_E4M3 weight and a positive "
                 "block size (got %s, rank %d, block [%d, %d])", name,
                 dsocr_dtype_name (w->dtype), w->n_dims, block_rows, block_cols);
    return NULL;
  }
  rows = w->shape[0];
  cols = w->shape[1];
  nr = (rows + block_rows - 1) / block_rows;
  nc = (cols + block_cols - 1) / block_cols;
  if (scale_inv->n_dims != 2 || scale_inv->shape[0] != nr || scale_inv->shape[1] != nc ||
      (scale_inv->dtype != DSOCR_DTYPE_F32 && scale_inv->dtype != DSOCR_DTYPE_BF16 &&
       scale_inv->dtype != DSOCR_DTYPE_F16)) {
    char have[64];
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE,
                 "tensor '%s': weight_scale_inv is %s %s, expected F32 [%" G_GINT64_FORMAT ", %"
                 G_GINT64_FORMAT "] for a [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                 "] weight in [%d, %d] blocks", name, dsocr_dtype_name (scale_inv->dtype),
                 dsocr_shape_format (scale_inv->n_dims, scale_inv->shape, have, sizeof have), nr,
                 nc, rows, cols, block_rows, block_cols);
    return NULL;
  }
  scale = g_try_new (float, (gsize) (nr * nc));
  if (!scale || !dsocr_tensor_to_f32 (scale_inv, scale, error)) {
    if (!scale)
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "tensor '%s': out of memory", name);
    g_free (scale);
    return NULL;
  }

  out = dsocr_tensor_new (DSOCR_DTYPE_BF16, 2, w->shape, error);
  if (!out)
    goto done;
  {
    uint16_t *dst = out->data;
    for (int64_t r = 0; r < rows; r++) {
      const float *srow = scale + (r / block_rows) * nc;
      for (int64_t c = 0; c < cols; c++) {
        const float v = e4m3_table[src[r * cols + c]] * srow[c / block_cols];
        const uint16_t b = dsk_f32_to_bf16 (v);
        dst[r * cols + c] = b;
        exact = exact && dsk_bf16_to_f32 (b) == v;
      }
    }
  }
  if (!exact) {
    dsocr_tensor_free (out);
    out = dsocr_tensor_new (DSOCR_DTYPE_F32, 2, w->shape, error);
    if (!out)
      goto done;
    float *dst = out->data;
    for (int64_t r = 0; r < rows; r++) {
      const float *srow = scale + (r / block_rows) * nc;
      for (int64_t c = 0; c < cols; c++)
        dst[r * cols + c] = e4m3_table[src[r * cols + c]] * srow[c / block_cols];
    }
  }
  out->name = w->name;

done:
  g_free (scale);
  return out;
}

const dsocr_tensor *
dsocr_fp8_weight (dsocr_checkpoint *ckpt, const dsocr_config *cfg, const dsocr_tensor *t,
                  GPtrArray *owned, GError **error)
{
  g_autofree char *scale_name = NULL;
  const dsocr_tensor *scale;
  dsocr_tensor *deq;

  if (t->dtype != DSOCR_DTYPE_F8_E4M3)
    return t;
  if (cfg->quant.method != DSOCR_QUANT_FP8) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s' is F8_E4M3 but %s has no FP8 quantization_config",
                 dsocr_checkpoint_get_path (ckpt), t->name, cfg->path);
    return NULL;
  }
  scale_name = g_strconcat (t->name, "_scale_inv", NULL);
  scale = dsocr_checkpoint_lookup (ckpt, scale_name);
  if (!scale) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s' is F8_E4M3 but '%s' is missing", dsocr_checkpoint_get_path (ckpt),
                 t->name, scale_name);
    return NULL;
  }
  deq = dsocr_fp8_dequantize (t, scale, cfg->quant.weight_block_size[0],
                              cfg->quant.weight_block_size[1], error);
  if (!deq)
    return NULL;
  g_ptr_array_add (owned, deq);
  return deq;
}
