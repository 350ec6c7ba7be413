/* kv-cache.h (internal): the per-session key/value cache of the decoder.
 *
 * One buffer per (layer, row), each [capacity, width] floats, so a row's columns are
 * contiguous and growing the capacity keeps them in place. What a column holds depends on the
 * attention kind:
 *   MHA: k = post-RoPE keys [n_kv_heads * head_dim], v = values [n_kv_heads * head_dim];
 *   MLA: k = latent c after kv_a_layernorm [kv_lora_rank] then the rotated k_pe
 *        [qk_rope_head_dim]; v = the DSA indexer's keys [index_head_dim] when the model has
 *        sparse attention (DeepSeek-V3.2), else unused (width 0).
 * All rows share one length (n_past); mask marks which cached columns are real tokens.
 */
#ifndef DSOCR_KV_CACHE_H
#define DSOCR_KV_CACHE_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct {
  int n_layers;
  int n_seq;           /* rows of the current sequences (0 while empty) */
  int n_seq_max;
  int n_ctx;           /* most columns a row may hold */
  int k_width;         /* floats per column of k */
  int v_width;         /* floats per column of v */
  int capacity;        /* columns allocated per row */
  int n_past;          /* columns cached per row */
  float **k;           /* [n_layers * n_seq_max] -> [capacity, k_width] */
  float **v;           /* [n_layers * n_seq_max] -> [capacity, v_width] */
  uint8_t **mask;      /* [n_seq_max] -> [capacity]: 1 = real token */
  int32_t *last_pos;   /* [n_seq_max]: position id of each row's last column */
} dsocr_kv_cache;

/* Sets up an empty cache (no memory is allocated until _reserve). */
void dsocr_kv_cache_init (dsocr_kv_cache *cache, int n_layers, int n_seq_max, int n_ctx,
                          int k_width, int v_width);
/* Frees the buffers (the struct itself is the caller's). */
void dsocr_kv_cache_clear (dsocr_kv_cache *cache);
/* Forgets the cached columns (keeps the memory). */
void dsocr_kv_cache_reset (dsocr_kv_cache *cache);
/* Makes room for @n_columns columns per row (n_past + new ones); FALSE with @error
 * (DSOCR_ERROR_NOMEM) when memory runs out. The cached columns are kept. */
gboolean dsocr_kv_cache_reserve (dsocr_kv_cache *cache, int n_columns, GError **error);

static inline float *
dsocr_kv_cache_k (const dsocr_kv_cache *cache, int layer, int row)
{
  return cache->k[(gsize) layer * cache->n_seq_max + row];
}

static inline float *
dsocr_kv_cache_v (const dsocr_kv_cache *cache, int layer, int row)
{
  return cache->v[(gsize) layer * cache->n_seq_max + row];
}

G_END_DECLS

#endif /* DSOCR_KV_CACHE_H */
