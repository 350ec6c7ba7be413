/* tokenizer-bpe.c: the BPE model over bytes: merge table, merging, and the word cache.
 *
 * Symbols start as the ids of the pieces' bytes (each byte's byte-level character) and merge by
 * rank, lowest first, leftmost first among equal ranks; this is `tokenizers`' Word::merge_all.
 * Short words scan a rank array; long ones (whitespace runs, CJK runs) use a heap, so a
 * megabyte of spaces stays O(n log n).
 */
#include "tokenizer-private.h"

#include <string.h>

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ---- */

static gboolean
printable_byte (guint b)
{
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

gunichar
dsocr_tok_byte_char (guint8 b)
{
  if (printable_byte (b))
    return b;
  /* the others take 256, 257, ... in byte order */
  guint n = 0;
  for (guint i = 0; i < b; i++)
    if (!printable_byte (i))
      n++;
  return 256 + n;
}

int
dsocr_tok_char_byte (gunichar c)
{
  if (c < 256)
    return printable_byte (c) ? (int) c : -1;
  guint n = 0;
  for (guint i = 0; i < 256; i++) {
    if (printable_byte (i))
      continue;
    if (256 + n == c)
      return (int) i;
    n++;
  }
  return -1;
}

/* ---- merge table: open addressing on (left, right) ---- */

static inline gsize
pair_slot (uint64_t key, gsize mask)
{
  uint64_t h = key * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  return (gsize) (h ^ (h >> 29)) & mask;
}

gboolean
dsocr_tok_merge_map_init (tok_merge_map *m, gsize n_merges)
{
  gsize cap = 16;
  while (cap < n_merges * 2 + 16)
    cap *= 2;
  m->keys = g_try_new0 (uint64_t, cap);
  m->rank = g_try_new (uint32_t, cap);
  m->new_id = g_try_new (int32_t, cap);
  m->mask = cap - 1;
  return m->keys && m->rank && m->new_id;
}

void
dsocr_tok_merge_map_clear (tok_merge_map *m)
{
  g_free (m->keys);
  g_free (m->rank);
  g_free (m->new_id);
  memset (m, 0, sizeof *m);
}

void
dsocr_tok_merge_map_put (tok_merge_map *m, int32_t left, int32_t right, uint32_t rank,
                         int32_t new_id)
{
  uint64_t key = (((uint64_t) (uint32_t) left << 32) | (uint32_t) right) + 1;
  gsize i = pair_slot (key, m->mask);
  while (m->keys[i] != 0 && m->keys[i] != key)
    i = (i + 1) & m->mask;
  m->keys[i] = key;
  m->rank[i] = rank;
  m->new_id[i] = new_id;
}

static inline gboolean
merge_get (const tok_merge_map *m, int32_t left, int32_t right, uint32_t *rank, int32_t *new_id)
{
  uint64_t key = (((uint64_t) (uint32_t) left << 32) | (uint32_t) right) + 1;
  gsize i = pair_slot (key, m->mask);
  for (;;) {
    uint64_t k = m->keys[i];
    if (k == key) {
      *rank = m->rank[i];
      *new_id = m->new_id[i];
      return TRUE;
    }
    if (k == 0)
      return FALSE;
    i = (i + 1) & m->mask;
  }
}

/* ---- merging ---- */

#define NO_RANK G_MAXUINT32
#define SMALL_WORD 48

/* Short words: ids[] with the rank and result of each adjacent pair; merge the first lowest. */
static guint
merge_small (const tok_merge_map *mm, int32_t *ids, guint n)
{
  uint32_t rank[SMALL_WORD];
  int32_t res[SMALL_WORD];
  for (guint i = 0; i + 1 < n; i++)
    if (!merge_get (mm, ids[i], ids[i + 1], &rank[i], &res[i]))
      rank[i] = NO_RANK;
  while (n > 1) {
    guint best = 0;
    for (guint i = 1; i + 1 < n; i++)
      if (rank[i] < rank[best])
        best = i;
    if (rank[best] == NO_RANK)
      break;
    ids[best] = res[best];
    memmove (ids + best + 1, ids + best + 2, (n - best - 2) * sizeof *ids);
    memmove (rank + best + 1, rank + best + 2, (n - best - 2) * sizeof *rank);
    memmove (res + best + 1, res + best + 2, (n - best - 2) * sizeof *res);
    n--;
    if (best > 0 && !merge_get (mm, ids[best - 1], ids[best], &rank[best - 1], &res[best - 1]))
      rank[best - 1] = NO_RANK;
    if (best + 1 < n) {
      if (!merge_get (mm, ids[best], ids[best + 1], &rank[best], &res[best]))
        rank[best] = NO_RANK;
    }
  }
  return n;
}

typedef struct {
  int32_t id;
  int32_t prev, next;  /* -1 at the ends */
  gboolean alive;
} tok_symbol;

typedef struct {
  uint64_t key;        /* rank << 32 | position of the left symbol */
  int32_t new_id;
} tok_heap_item;

static void
heap_push (GArray *h, uint64_t key, int32_t new_id)
{
  tok_heap_item it = { key, new_id };
  g_array_append_val (h, it);
  tok_heap_item *v = (tok_heap_item *) h->data;
  guint i = h->len - 1;
  while (i > 0) {
    guint p = (i - 1) / 2;
    if (v[p].key <= v[i].key)
      break;
    tok_heap_item t = v[p];
    v[p] = v[i];
    v[i] = t;
    i = p;
  }
}

static tok_heap_item
heap_pop (GArray *h)
{
  tok_heap_item *v = (tok_heap_item *) h->data;
  tok_heap_item top = v[0];
  v[0] = v[h->len - 1];
  g_array_set_size (h, h->len - 1);
  guint n = h->len, i = 0;
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && v[l].key < v[m].key)
      m = l;
    if (r < n && v[r].key < v[m].key)
      m = r;
    if (m == i)
      break;
    tok_heap_item t = v[m];
    v[m] = v[i];
    v[i] = t;
    i = m;
  }
  return top;
}

/* Long words: Word::merge_all with a priority queue of (rank, position). An entry is stale
 * when its left symbol died or the pair there now yields another id. */
static guint
merge_heap (tok_ctx *ctx, const tok_merge_map *mm, int32_t *ids, guint n)
{
  if (!ctx->sym)
    ctx->sym = g_array_new (FALSE, FALSE, sizeof (tok_symbol));
  if (!ctx->heap)
    ctx->heap = g_array_new (FALSE, FALSE, sizeof (tok_heap_item));
  g_array_set_size (ctx->sym, n);
  g_array_set_size (ctx->heap, 0);
  tok_symbol *sym = (tok_symbol *) ctx->sym->data;  // [n]
  for (guint i = 0; i < n; i++)
    sym[i] = (tok_symbol) { ids[i], (int32_t) i - 1, i + 1 < n ? (int32_t) i + 1 : -1, TRUE };
  uint32_t rank;
  int32_t res;
  for (guint i = 0; i + 1 < n; i++)
    if (merge_get (mm, ids[i], ids[i + 1], &rank, &res))
      heap_push (ctx->heap, (uint64_t) rank << 32 | i, res);

  while (ctx->heap->len > 0) {
    tok_heap_item top = heap_pop (ctx->heap);
    guint pos = (guint) (top.key & 0xFFFFFFFFu);
    if (!sym[pos].alive || sym[pos].next < 0)
      continue;
    int32_t nx = sym[pos].next;
    if (!merge_get (mm, sym[pos].id, sym[nx].id, &rank, &res) || res != top.new_id)
      continue;
    sym[pos].id = top.new_id;
    sym[nx].alive = FALSE;
    sym[pos].next = sym[nx].next;
    if (sym[nx].next >= 0)
      sym[sym[nx].next].prev = (int32_t) pos;
    if (sym[pos].prev >= 0) {
      int32_t pv = sym[pos].prev;
      if (merge_get (mm, sym[pv].id, sym[pos].id, &rank, &res))
        heap_push (ctx->heap, (uint64_t) rank << 32 | (guint) pv, res);
    }
    if (sym[pos].next >= 0) {
      if (merge_get (mm, sym[pos].id, sym[sym[pos].next].id, &rank, &res))
        heap_push (ctx->heap, (uint64_t) rank << 32 | pos, res);
    }
  }
  guint k = 0;
  for (int32_t i = 0; i >= 0 && (guint) i < n; i = sym[i].next)
    ids[k++] = sym[i].id;
  return k;
}

static inline uint32_t
fnv1a (const guint8 *s, gsize n)
{
  uint32_t h = 2166136261u;
  for (gsize i = 0; i < n; i++)
    h = (h ^ s[i]) * 16777619u;
  return h;
}

void
dsocr_tok_bpe_piece (tok_ctx *ctx, const guint8 *s, gsize n)
{
  const dsocr_tokenizer *tok = ctx->tok;
  tok_bpe *bpe = (tok_bpe *) &tok->bpe; /* the cache is the one mutable part, under its lock */

  if (bpe->ignore_merges) {
    if (!ctx->tmp)
      ctx->tmp = g_string_new (NULL);
    g_string_truncate (ctx->tmp, 0);
    for (gsize i = 0; i < n; i++)
      g_string_append_unichar (ctx->tmp, dsocr_tok_byte_char (s[i]));
    gpointer v = g_hash_table_lookup (tok->vocab, ctx->tmp->str);
    if (v) {
      int32_t id = GPOINTER_TO_INT (v) - 1;
      g_array_append_val (ctx->ids, id);
      return;
    }
  }

  uint32_t hash = 0;
  tok_cache_entry *slot = NULL;
  if (n <= TOK_CACHE_KEY) {
    hash = fnv1a (s, n);
    slot = &bpe->cache[hash & (TOK_CACHE_SLOTS - 1)];
    g_mutex_lock (&bpe->cache_lock);
    if (slot->key_len == n && slot->hash == hash && memcmp (slot->key, s, n) == 0) {
      g_array_append_vals (ctx->ids, slot->ids, slot->n_ids);
      g_mutex_unlock (&bpe->cache_lock);
      return;
    }
    g_mutex_unlock (&bpe->cache_lock);
  }

  /* initial symbols; unknown bytes as BPE::merge_word treats unknown characters */
  guint base = ctx->ids->len;
  g_array_set_size (ctx->ids, base + 2 * n);
  int32_t *ids = (int32_t *) ctx->ids->data + base;  // [<= 2n]
  guint m = 0;
  int32_t unk = -1;
  for (gsize i = 0; i < n; i++) {
    int32_t id = bpe->byte_id[s[i]];
    if (id >= 0) {
      if (unk >= 0) {
        ids[m++] = unk;
        unk = -1;
      }
      ids[m++] = id;
    } else if (bpe->byte_fallback && bpe->fallback_n[s[i]] > 0) {
      for (guint k = 0; k < bpe->fallback_n[s[i]]; k++)
        ids[m++] = bpe->fallback_ids[s[i]][k];
    } else if (bpe->unk_id >= 0) {
      if (unk >= 0 && !bpe->fuse_unk)
        ids[m++] = unk;
      unk = bpe->unk_id;
    }
  }
  if (unk >= 0)
    ids[m++] = unk;

  if (m <= SMALL_WORD)
    m = merge_small (&bpe->merges, ids, m);
  else
    m = merge_heap (ctx, &bpe->merges, ids, m);
  g_array_set_size (ctx->ids, base + m);

  if (slot && m <= TOK_CACHE_IDS) {
    ids = (int32_t *) ctx->ids->data + base;
    g_mutex_lock (&bpe->cache_lock);
    slot->hash = hash;
    slot->key_len = (guint8) n;
    memcpy (slot->key, s, n);
    slot->n_ids = (guint8) m;
    memcpy (slot->ids, ids, m * sizeof *ids);
    g_mutex_unlock (&bpe->cache_lock);
  }
}

void
dsocr_tok_bpe_clear (tok_bpe *bpe)
{
  dsocr_tok_merge_map_clear (&bpe->merges);
  g_free (bpe->cache);
  bpe->cache = NULL;
  g_mutex_clear (&bpe->cache_lock);
}
