/* kv-cache.h (internal): the per-session key/value cache of the decoder, in the memory of the
 * session's backend.
 *
 * One k and one v buffer per layer, each [n_seq_max, capacity, width]: a row's columns are
 * contiguous, and growing the capacity copies the cached columns into larger buffers. What a
 * column holds is the attention code's choice (dsocr_attention_cache_widths):
 *   MHA: k = post-RoPE keys [n_kv_heads * head_dim], v = values [n_kv_heads * head_dim];
 *   MLA: k = latent c after kv_a_layernorm [kv_lora_rank] then the rotated k_pe
 *        [qk_rope_head_dim]; v = the DSA indexer's keys [index_head_dim] when the model has
 *        sparse attention (DeepSeek-V3.2), else unused (width 0).
 * All rows share one length (n_past); the mask [n_seq_max, capacity] (U8) marks which cached
 * columns are real tokens.
 */
#ifndef DSOCR_KV_CACHE_H
#define DSOCR_KV_CACHE_H

#include <glib.h>
#include <stdint.h>

#include "backend.h"

G_BEGIN_DECLS

typedef struct {
  dsk_backend *be;     /* a reference: the cache's memory is the backend's */
  int n_layers;
  int n_seq;           /* rows of the current sequences (0 while empty) */
  int n_seq_max;
  int n_ctx;           /* most columns a row may hold */
  int k_width;         /* floats per column of k */
  int v_width;         /* floats per column of v */
  int capacity;        /* columns allocated per row */
  int n_past;          /* columns cached per row */
  dsk_buffer **k;      /* [n_layers] -> [n_seq_max, capacity, k_width] */
  dsk_buffer **v;      /* [n_layers] -> [n_seq_max, capacity, v_width] (NULL when width 0) */
  dsk_buffer *mask;    /* [n_seq_max, capacity] U8: 1 = real token */
  int32_t *last_pos;   /* [n_seq_max] (host): position id of each row's last column */
} dsocr_kv_cache;

/* Sets up an empty cache on @be (no memory is allocated until _reserve). */
void dsocr_kv_cache_init (dsocr_kv_cache *cache, dsk_backend *be, int n_layers, int n_seq_max,
                          int n_ctx, int k_width, int v_width);
/* Frees the buffers (the struct itself is the caller's). */
void dsocr_kv_cache_clear (dsocr_kv_cache *cache);
/* Forgets the cached columns (keeps the memory). */
void dsocr_kv_cache_reset (dsocr_kv_cache *cache);
/* Makes room for @n_columns columns per row (n_past + new ones); FALSE with @error
 * (DSOCR_ERROR_NOMEM) when memory runs out. The cached columns are kept. */
gboolean dsocr_kv_cache_reserve (dsocr_kv_cache *cache, int n_columns, GError **error);

/* Views of columns [col0, col0 + n) of the current rows:
 * k, v [n_seq, n, width]; the mask [n_seq, n]. */
dsk_tensor dsocr_kv_cache_k (const dsocr_kv_cache *cache, int layer, int col0, int n);
dsk_tensor dsocr_kv_cache_v (const dsocr_kv_cache *cache, int layer, int col0, int n);
dsk_tensor dsocr_kv_cache_mask (const dsocr_kv_cache *cache, int col0, int n);

G_END_DECLS

#endif /* DSOCR_KV_CACHE_H */
