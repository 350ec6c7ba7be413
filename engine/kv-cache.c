/* kv-cache.c: growth and reset of the decoder's KV cache. */
#include "kv-cache.h"

#include <string.h>

#include "dsocr/dsocr-error.h"

void
dsocr_kv_cache_init (dsocr_kv_cache *cache, int n_layers, int n_seq_max, int n_ctx, int k_width,
                     int v_width)
{
  gsize n_buf = (gsize) n_layers * n_seq_max;

  memset (cache, 0, sizeof *cache);
  cache->n_layers = n_layers;
  cache->n_seq_max = n_seq_max;
  cache->n_ctx = n_ctx;
  cache->k_width = k_width;
  cache->v_width = v_width;
  cache->k = g_new0 (float *, n_buf);
  cache->v = g_new0 (float *, n_buf);
  cache->mask = g_new0 (uint8_t *, n_seq_max);
  cache->last_pos = g_new (int32_t, n_seq_max);
  for (int r = 0; r < n_seq_max; r++)
    cache->last_pos[r] = -1;
}

void
dsocr_kv_cache_clear (dsocr_kv_cache *cache)
{
  gsize n_buf = (gsize) cache->n_layers * cache->n_seq_max;

  for (gsize i = 0; cache->k && i < n_buf; i++) {
    g_free (cache->k[i]);
    g_free (cache->v[i]);
  }
  for (int r = 0; cache->mask && r < cache->n_seq_max; r++)
    g_free (cache->mask[r]);
  g_free (cache->k);
  g_free (cache->v);
  g_free (cache->mask);
  g_free (cache->last_pos);
  memset (cache, 0, sizeof *cache);
}

void
dsocr_kv_cache_reset (dsocr_kv_cache *cache)
{
  cache->n_past = 0;
  cache->n_seq = 0;
  for (int r = 0; r < cache->n_seq_max; r++)
    cache->last_pos[r] = -1;
}

/* Grows one buffer to @cap columns of @width floats; realloc keeps the cached columns. */
static gboolean
grow (float **buf, int cap, int width)
{
  float *p = g_try_realloc (*buf, sizeof (float) * (gsize) cap * (gsize) MAX (width, 1));
  if (!p)
    return FALSE;
  *buf = p;
  return TRUE;
}

gboolean
dsocr_kv_cache_reserve (dsocr_kv_cache *cache, int n_columns, GError **error)
{
  int cap;

  if (n_columns <= cache->capacity)
    return TRUE;
  /* Doubling keeps a long generation at O(log n) reallocations; never beyond n_ctx. */
  cap = MAX (cache->capacity * 2, 64);
  cap = MAX (cap, n_columns);
  cap = MIN (cap, cache->n_ctx);
  for (int l = 0; l < cache->n_layers; l++) {
    for (int r = 0; r < cache->n_seq_max; r++) {
      gsize i = (gsize) l * cache->n_seq_max + r;
      if (!grow (&cache->k[i], cap, cache->k_width) || !grow (&cache->v[i], cap, cache->v_width))
        goto nomem;
    }
  }
  for (int r = 0; r < cache->n_seq_max; r++) {
    uint8_t *m = g_try_realloc (cache->mask[r], (gsize) cap);
    if (!m)
      goto nomem;
    cache->mask[r] = m;
  }
  cache->capacity = cap;
  return TRUE;

nomem:
  g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
               "KV cache: cannot grow to %d columns of %d + %d floats for %d rows and %d layers",
               cap, cache->k_width, cache->v_width, cache->n_seq_max, cache->n_layers);
  return FALSE;
}
