/* dsocr-checkpoint.h: a model's weights, in one or several .safetensors shards.
 *
 *   GError *error = NULL;
 *   dsocr_checkpoint *ckpt = dsocr_checkpoint_open ("/models/DeepSeek-OCR", &error);
 *   const int64_t shape[1] = { 1280 };
 *   const dsocr_tensor *norm = dsocr_checkpoint_get_checked (ckpt, "model.norm.weight",
 *                                                             DSOCR_DTYPE_N, 1, shape, &error);
 *   ...
 *   dsocr_checkpoint_unref (ckpt);   // after the last use of any tensor it handed out
 *
 * What can be opened:
 * - a directory holding model.safetensors (preferred when both exist, as transformers does) or
 *   model.safetensors.index.json, the hub's shard index
 *     {"metadata": {"total_size": N}, "weight_map": {"tensor name": "shard file name"}};
 * - a path to a .safetensors file, or to a *.index.json (shards are looked up beside it).
 * With an index, every shard is opened and validated (dsocr-safetensors.h); shard names must be
 * plain file names (no '/', '\\', "." or ".."); every tensor the weight_map names must be in
 * the shard it names; no tensor may appear in two shards; and metadata.total_size, when
 * present, must equal the byte size of all tensors of the shards. Failures are
 * DSOCR_ERROR_FILE / _FORMAT / _UNSUPPORTED with a message naming the file and tensor.
 *
 * Names: callers use the hub checkpoint's ORIGINAL names (e.g. "model.layers.0.mlp.gate.weight",
 * "model.vision_model.transformer.layers.3.self_attn.qkv_proj.weight"). A checkpoint in the
 * transformers-native layout is read too: when the original name is absent, its native name
 * ("model.language_model.layers.0.mlp.gate.weight") is tried; CLIP's fused qkv_proj is then
 * built from the separate q_proj/k_proj/v_proj (concatenated along dim 0) into a tensor the
 * checkpoint owns and caches.
 *
 * Tensors handed out are (transfer none) and read-only, valid while the checkpoint lives.
 * Their data may be unaligned (see dsocr-safetensors.h). A checkpoint may be shared between
 * threads (lookups are thread-safe); use _ref/_unref.
 */
#ifndef DSOCR_CHECKPOINT_H
#define DSOCR_CHECKPOINT_H

#include <glib.h>

#include <dsocr/dsocr-safetensors.h>
#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

typedef struct dsocr_checkpoint dsocr_checkpoint;

/* Opens and validates the checkpoint at @dir_or_file (see above). Returns (transfer full) a
 * checkpoint with one reference, or NULL and @error set. */
dsocr_checkpoint *dsocr_checkpoint_open (const char *dir_or_file, GError **error);

/* Returns @ckpt with one more reference (transfer full). Thread-safe. */
dsocr_checkpoint *dsocr_checkpoint_ref (dsocr_checkpoint *ckpt);
/* Drops a reference; the last one unmaps every shard and frees the fused tensors. NULL is a
 * no-op. */
void dsocr_checkpoint_unref (dsocr_checkpoint *ckpt);

/* The path given to _open(), (transfer none). */
const char *dsocr_checkpoint_get_path (const dsocr_checkpoint *ckpt);
/* The directory holding the checkpoint's files (where config.json and the tokenizer are
 * expected), (transfer none). */
const char *dsocr_checkpoint_get_dir (const dsocr_checkpoint *ckpt);

/* Number of shard files (1 without an index), and the @i-th of them in file name order,
 * (transfer none); NULL when @i is out of range. Iterate over a shard's tensors with
 * dsocr_safetensors_n_tensors() / _get_nth() to list everything stored. */
guint dsocr_checkpoint_n_shards (const dsocr_checkpoint *ckpt);
dsocr_safetensors *dsocr_checkpoint_get_shard (const dsocr_checkpoint *ckpt, guint i);

/* The tensor stored under exactly @name in any shard, or NULL; no name mapping. */
const dsocr_tensor *dsocr_checkpoint_lookup (const dsocr_checkpoint *ckpt, const char *name);

/* TRUE when dsocr_checkpoint_get() would find @name (original or native layout), for optional
 * tensors. Builds nothing. */
gboolean dsocr_checkpoint_contains (const dsocr_checkpoint *ckpt, const char *name);

/* The tensor with original name @name, stored under it or under its native name(s).
 * (transfer none). Its ->name is the name stored in the file (or @name for a tensor built
 * from q/k/v pieces). Fails with DSOCR_ERROR_SHAPE "missing tensor '<name>' in <path>" when
 * absent, or when native q/k/v pieces cannot be concatenated (differing dtype or shape). */
const dsocr_tensor *dsocr_checkpoint_get (dsocr_checkpoint *ckpt, const char *name,
                                          GError **error);

/* dsocr_checkpoint_get(), then checks the tensor's rank and shape against @n_dims / @shape
 * and, unless @dtype is DSOCR_DTYPE_N, its dtype. A mismatch is DSOCR_ERROR_SHAPE naming the
 * checkpoint, the tensor and the actual and expected shape (or dtype). (transfer none) */
const dsocr_tensor *dsocr_checkpoint_get_checked (dsocr_checkpoint *ckpt, const char *name,
                                                  dsocr_dtype dtype, int n_dims,
                                                  const int64_t *shape, GError **error);

G_END_DECLS

#endif /* DSOCR_CHECKPOINT_H */
