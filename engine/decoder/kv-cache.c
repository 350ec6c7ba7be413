/* kv-cache.c: growth, reset and views of the decoder's KV cache. */
#include "kv-cache.h"

#include <string.h>

#include "backend-private.h"
#include "dsocr/dsocr-error.h"

void
dsocr_kv_cache_init (dsocr_kv_cache *cache, dsk_backend *be, int n_layers, int n_seq_max,
                     int n_ctx, int k_width, int v_width)
{
  memset (cache, 0, sizeof *cache);
  cache->be = dsk_backend_ref (be);
  cache->n_layers = n_layers;
  cache->n_seq_max = n_seq_max;
  cache->n_ctx = n_ctx;
  cache->k_width = k_width;
  cache->v_width = v_width;
  cache->k = g_new0 (dsk_buffer *, MAX (n_layers, 1));
  cache->v = g_new0 (dsk_buffer *, MAX (n_layers, 1));
  cache->last_pos = g_new (int32_t, n_seq_max);
  for (int r = 0; r < n_seq_max; r++)
    cache->last_pos[r] = -1;
}

void
dsocr_kv_cache_clear (dsocr_kv_cache *cache)
{
  for (int l = 0; cache->k && l < cache->n_layers; l++) {
    dsk_buffer_free (cache->k[l]);
    dsk_buffer_free (cache->v[l]);
  }
  dsk_buffer_free (cache->mask);
  g_free (cache->k);
  g_free (cache->v);
  g_free (cache->last_pos);
  dsk_backend_unref (cache->be);
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

/* A view of buffer @b as [rows, cols, width] (rows of @cap columns), columns [col0, col0 + n). */
static dsk_tensor
view (const dsk_buffer *b, dsk_dtype dtype, int rows, int cap, int width, int col0, int n)
{
  const size_t ne[3] = { (size_t) rows, (size_t) cap, (size_t) MAX (width, 1) };
  dsk_tensor t = dsk_buffer_tensor (b, 0, dtype, 3, ne);
  t = dsk_narrow (&t, 1, (size_t) col0, (size_t) n);
  if (width == 0) {
    t.ne[2] = 0;   /* an unused v: no op may take it */
    t.data = NULL;
  }
  return t;
}

/* Copies the first n_past columns of every row of @old (cache->capacity columns a row) into
 * @b (@cap columns a row). */
static void
copy_columns (dsocr_kv_cache *c, dsk_buffer *b, const dsk_buffer *old, dsk_dtype dtype,
              int width, int cap)
{
  dsk_tensor src = view (old, dtype, c->n_seq_max, c->capacity, width, 0, c->n_past);
  dsk_tensor dst = view (b, dtype, c->n_seq_max, cap, width, 0, c->n_past);
  dsk_copy (c->be, &dst, &src);
}

gboolean
dsocr_kv_cache_reserve (dsocr_kv_cache *cache, int n_columns, GError **error)
{
  const int L = cache->n_layers, rows = cache->n_seq_max;
  dsk_buffer **k, **v, *mask;
  gboolean ok = TRUE;
  int cap;

  if (n_columns <= cache->capacity)
    return TRUE;
  /* Doubling keeps a long generation at O(log n) reallocations; never beyond n_ctx. */
  cap = MAX (cache->capacity * 2, 64);
  cap = MAX (cap, n_columns);
  cap = MIN (cap, cache->n_ctx);
  /* all of the new memory first, so that a failure leaves the cache as it was */
  k = g_new0 (dsk_buffer *, MAX (L, 1));
  v = g_new0 (dsk_buffer *, MAX (L, 1));
  mask = dsk_buffer_new (cache->be, (size_t) rows * cap);
  ok = mask != NULL;
  for (int l = 0; ok && l < L; l++) {
    k[l] = dsk_buffer_new (cache->be, sizeof (float) * rows * cap * cache->k_width);
    v[l] = cache->v_width ? dsk_buffer_new (cache->be, sizeof (float) * rows * cap * cache->v_width)
                          : NULL;
    ok = k[l] && (!cache->v_width || v[l]);
  }
  if (ok && cache->n_past > 0) {
    for (int l = 0; l < L; l++) {
      copy_columns (cache, k[l], cache->k[l], DSK_F32, cache->k_width, cap);
      if (cache->v_width)
        copy_columns (cache, v[l], cache->v[l], DSK_F32, cache->v_width, cap);
    }
    copy_columns (cache, mask, cache->mask, DSK_U8, 1, cap);
  }
  ok = ok && dsocr_backend_check (cache->be, "KV cache", NULL);
  if (!ok) {
    dsk_backend_clear_error (cache->be);
    for (int l = 0; l < L; l++) {
      dsk_buffer_free (k[l]);
      dsk_buffer_free (v[l]);
    }
    dsk_buffer_free (mask);
    g_free (k);
    g_free (v);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "KV cache: cannot grow to %d columns of %d layers x %d rows", cap, L, rows);
    return FALSE;
  }
  for (int l = 0; l < L; l++) {
    dsk_buffer_free (cache->k[l]);
    dsk_buffer_free (cache->v[l]);
  }
  dsk_buffer_free (cache->mask);
  g_free (cache->k);
  g_free (cache->v);
  cache->k = k;
  cache->v = v;
  cache->mask = mask;
  cache->capacity = cap;
  return TRUE;
}

dsk_tensor
dsocr_kv_cache_k (const dsocr_kv_cache *c, int layer, int col0, int n)
{
  return view (c->k[layer], DSK_F32, c->n_seq, c->capacity, c->k_width, col0, n);
}

dsk_tensor
dsocr_kv_cache_v (const dsocr_kv_cache *c, int layer, int col0, int n)
{
  return view (c->v[layer], DSK_F32, c->n_seq, c->capacity, c->v_width, col0, n);
}

dsk_tensor
dsocr_kv_cache_mask (const dsocr_kv_cache *c, int col0, int n)
{
  dsk_tensor t = view (c->mask, DSK_U8, c->n_seq, c->capacity, 1, col0, n);
  return dsk_merge (&t, 1);
}
