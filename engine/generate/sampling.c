/* sampling.c: the logits processors of transformers' generate() (n-gram guards, temperature,
 * top-k, top-p), greedy and sampled picks, and the random numbers behind sampling. */
#include "dsocr/dsocr-generate.h"

#include <math.h>
#include <string.h>

#include "sampling.h"

/* ---- logits processors ---- */

void
dsocr_logits_no_repeat_ngram (float *logits, int n_vocab, const int32_t *ids, gsize n_ids, int n)
{
  gsize prefix, start;

  if (n <= 0 || n_ids < (gsize) n)
    return;
  /* The n-grams that the next token could complete start with the current (n-1)-suffix; every
   * earlier window whose first n-1 ids equal it bans its last id. */
  prefix = n_ids - (gsize) (n - 1);
  for (start = 0; start + (gsize) n <= n_ids; start++) {
    if (memcmp (ids + start, ids + prefix, sizeof (int32_t) * (gsize) (n - 1)) != 0)
      continue;
    int32_t banned = ids[start + n - 1];
    if (banned >= 0 && banned < n_vocab)
      logits[banned] = -INFINITY;
  }
}

void
dsocr_logits_ngram_window (float *logits, int n_vocab, const int32_t *ids, gsize n_ids, int n,
                           int window, const int32_t *whitelist, int n_whitelist)
{
  gsize prefix, start, end;

  /* ngram_norepeat.py compares with ids[-(n-1):]; for n == 1 that slice is the whole list,
   * which no empty n-gram head can equal: nothing is banned. */
  if (n <= 1 || n_ids < (gsize) n)
    return;
  if (window <= 0)
    window = 100;
  prefix = n_ids - (gsize) (n - 1);
  start = n_ids > (gsize) window ? n_ids - (gsize) window : 0;
  end = n_ids - (gsize) n + 1;
  for (gsize i = start; i < end; i++) {
    int32_t banned;
    gboolean allowed = FALSE;

    if (memcmp (ids + i, ids + prefix, sizeof (int32_t) * (gsize) (n - 1)) != 0)
      continue;
    banned = ids[i + n - 1];
    for (int w = 0; w < n_whitelist && !allowed; w++)
      allowed = whitelist[w] == banned;
    if (!allowed && banned >= 0 && banned < n_vocab)
      logits[banned] = -INFINITY;
  }
}

void
dsocr_logits_temperature (float *logits, int n_vocab, float temperature)
{
  for (int i = 0; i < n_vocab; i++)
    logits[i] = logits[i] / temperature;
}

static void
heap_sift_down (float *heap, int n, int i)
{
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && heap[l] < heap[m])
      m = l;
    if (r < n && heap[r] < heap[m])
      m = r;
    if (m == i)
      return;
    float t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
}

void
dsocr_logits_top_k (float *logits, int n_vocab, int k)
{
  float *heap, kth;  // [k]: min-heap of the k largest values seen so far

  if (k <= 0 || k >= n_vocab)
    return;
  heap = g_new (float, k);
  memcpy (heap, logits, sizeof (float) * (gsize) k);
  for (int i = k / 2 - 1; i >= 0; i--)
    heap_sift_down (heap, k, i);
  for (int i = k; i < n_vocab; i++) {
    if (logits[i] > heap[0]) {
      heap[0] = logits[i];
      heap_sift_down (heap, k, 0);
    }
  }
  kth = heap[0];
  g_free (heap);
  for (int i = 0; i < n_vocab; i++)
    if (logits[i] < kth)
      logits[i] = -INFINITY;
}

typedef struct {
  float value;
  int32_t id;
} scored_id;

static int
scored_id_ascending (const void *a, const void *b)
{
  const scored_id *x = a, *y = b;
  if (x->value != y->value)
    return x->value < y->value ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

void
dsocr_logits_top_p (float *logits, int n_vocab, float top_p)
{
  scored_id *sorted;  // [n_vocab] ascending
  float max, threshold = (float) (1.0 - (double) top_p);
  double sum = 0.0, cum = 0.0;

  if (n_vocab <= 1 || !(top_p < 1.0f))
    return;
  sorted = g_new (scored_id, n_vocab);
  for (int i = 0; i < n_vocab; i++)
    sorted[i] = (scored_id) { logits[i], i };
  qsort (sorted, (gsize) n_vocab, sizeof *sorted, scored_id_ascending);
  max = sorted[n_vocab - 1].value;
  for (int i = 0; i < n_vocab; i++)
    sum += expf (sorted[i].value - max);
  /* torch: softmax in f32, cumsum accumulated in double and stored as f32, compared with the
   * threshold rounded to f32; the last (largest) entry is always kept. */
  for (int i = 0; i < n_vocab - 1; i++) {
    cum += (double) (float) (expf (sorted[i].value - max) / (float) sum);
    if ((float) cum <= threshold)
      logits[sorted[i].id] = -INFINITY;
  }
  g_free (sorted);
}

int32_t
dsocr_logits_argmax (const float *logits, int n_vocab)
{
  int32_t best = 0;

  for (int i = 0; i < n_vocab; i++) {
    if (isnan (logits[i]))
      return i;
    if (logits[i] > logits[best])
      best = i;
  }
  return n_vocab > 0 ? best : -1;
}

int32_t
dsocr_logits_sample (const float *logits, int n_vocab, double u)
{
  float max = -INFINITY;
  double sum = 0.0, target, cum = 0.0;
  int32_t last = -1;

  for (int i = 0; i < n_vocab; i++)
    if (logits[i] > max)
      max = logits[i];
  if (max == -INFINITY)
    return -1;
  for (int i = 0; i < n_vocab; i++)
    if (logits[i] > -INFINITY)
      sum += exp ((double) logits[i] - (double) max);
  target = u * sum;
  for (int i = 0; i < n_vocab; i++) {
    if (!(logits[i] > -INFINITY))
      continue;
    cum += exp ((double) logits[i] - (double) max);
    last = i;
    if (target < cum)
      return i;
  }
  return last;  // u * sum rounded up to the total: the last drawable id
}

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */

static guint64
splitmix64 (guint64 *x)
{
  guint64 z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void
dsocr_rng_seed (dsocr_rng *r, guint64 seed)
{
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64 (&seed);
}

static inline guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

/* A double uniform in [0, 1) with 53 random bits. */
double
dsocr_rng_uniform (dsocr_rng *r)
{
  guint64 *s = r->s;
  guint64 result = rotl (s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return (double) (result >> 11) * 0x1.0p-53;
}

