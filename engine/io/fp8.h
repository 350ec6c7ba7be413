/* fp8.h (internal): the FP8 block dequantisation of DeepSeek-V3 / V3.2 release checkpoints,
 * done once at load (fp8.c). */
#ifndef DSOCR_FP8_H
#define DSOCR_FP8_H

#include <glib.h>

#include "dsocr/dsocr-checkpoint.h"
#include "dsocr/dsocr-config.h"
#include "dsocr/dsocr-tensor.h"

G_BEGIN_DECLS

/* @w [rows, cols] F8_E4M3 and @scale_inv [ceil(rows / block_rows), ceil(cols / block_cols)]
 * F32 (the release's `weight_scale_inv`; edge blocks may be partial): returns w * scale per
 * block as BF16 when every product is exactly a bf16 value (as with the power-of-two ue8m0
 * scales of the releases), else as F32. The new tensor's name is @w's. (transfer full) NULL with @error
 * (DSOCR_ERROR_SHAPE naming @w for a scale grid of the wrong shape or dtype, DSOCR_ERROR_NOMEM). */
dsocr_tensor *dsocr_fp8_dequantize (const dsocr_tensor *w, const dsocr_tensor *scale_inv,
                                    int block_rows, int block_cols, GError **error);

/* @t as the decoder can use it: @t itself unless it is F8_E4M3, in which case @cfg must have an
 * FP8 quantization_config and @ckpt a "<t->name>_scale_inv" tensor; the dequantised tensor is
 * appended to @owned and returned. (transfer none) NULL with @error
 * (DSOCR_ERROR_UNSUPPORTED for an FP8 tensor without quantization_config or scales). */
const dsocr_tensor *dsocr_fp8_weight (dsocr_checkpoint *ckpt, const dsocr_config *cfg,
                                      const dsocr_tensor *t, GPtrArray *owned, GError **error);

G_END_DECLS

#endif /* DSOCR_FP8_H */
