/* weight-names.h (internal): canonical tensor names and the transformers-native layout.
 *
 * The engine asks for tensors by their ORIGINAL names, those of the hub checkpoint
 * deepseek-ai/DeepSeek-OCR ("model.sam_model.blocks.0.attn.qkv.weight",
 * "model.vision_model.transformer.layers.0.self_attn.qkv_proj.weight", "model.layers.0...",
 * "lm_head.weight"). Checkpoints converted to the transformers-native DeepseekOcr layout store
 * the same weights under other names, and CLIP's fused qkv_proj as three tensors. This file
 * gives, for a canonical name, the native name(s) to try when the canonical one is absent.
 */
#ifndef DSOCR_WEIGHT_NAMES_H
#define DSOCR_WEIGHT_NAMES_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  int n_parts;    /* 0: no other name; 1: parts[0] is the renamed tensor; 3: parts[0..2] are
                   * q, k, v, to be concatenated along dim 0 into the canonical tensor */
  char *parts[3]; /* owned */
} dsocr_weight_alias;

/* Fills @alias (overwriting it) with the native-layout name(s) of @canonical. Returns FALSE
 * (n_parts = 0) when the native layout uses the canonical name itself or @canonical is not a
 * name of the model. Release with dsocr_weight_alias_clear(). */
gboolean dsocr_weight_name_native (const char *canonical, dsocr_weight_alias *alias);

/* Frees the parts of @alias and zeroes it. */
void dsocr_weight_alias_clear (dsocr_weight_alias *alias);

G_END_DECLS

#endif /* DSOCR_WEIGHT_NAMES_H */
