/* mapping.h (internal): handing a checkpoint's mapped pages back to the kernel.
 *
 * Weights are read in place from the mapped checkpoint. When a precision keeps a quantized copy
 * of a tensor instead (weight-sets.c), the pages of the original were read once and are not
 * needed by that copy: dropping them from the process keeps its resident memory at the copy's
 * size, not the copy's plus the file's. The pages stay in the page cache and a later reader
 * (a session at another precision) faults them back in. */
#ifndef DSOCR_MAPPING_H
#define DSOCR_MAPPING_H

#include <glib.h>

#include "dsocr/dsocr-checkpoint.h"
#include "dsocr/dsocr-safetensors.h"

G_BEGIN_DECLS

/* Drops the whole pages of [data, data + len) when they lie in @st's file mapping; nothing
 * for memory that is not (bytes given by the caller, copies). */
void dsocr_safetensors_drop_pages (const dsocr_safetensors *st, const void *data, gsize len);
/* The same for whichever shard of @ckpt maps the range. */
void dsocr_checkpoint_drop_pages (const dsocr_checkpoint *ckpt, const void *data, gsize len);

G_END_DECLS

#endif /* DSOCR_MAPPING_H */
