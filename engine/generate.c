/* generate.c: the generation loop and its logits processors (transformers' generate()). */
#include "dsocr/dsocr-generate.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"
#include "dsocr/dsocr-model.h"

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

typedef struct {
  guint64 s[4];
} rng_state;

static guint64
splitmix64 (guint64 *x)
{
  guint64 z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void
rng_seed (rng_state *r, guint64 seed)
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
static double
rng_uniform (rng_state *r)
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

/* ---- generation ---- */

void
dsocr_generate_params_init (dsocr_generate_params *params)
{
  memset (params, 0, sizeof *params);
  params->max_new_tokens = 256;
  params->pad_token_id = -1;
  params->temperature = 1.0f;
  params->top_k = 50;
  params->top_p = 1.0f;
}

void
dsocr_generate_result_free (dsocr_generate_result *result)
{
  if (!result)
    return;
  g_free (result->tokens);
  g_free (result->n_tokens);
  g_free (result->finish);
  g_free (result);
}

static gboolean
check_params (const dsocr_generate_params *p, const dsocr_batch *prompt, const dsocr_model *model,
              GError **error)
{
  const char *bad = NULL;

  if (!dsocr_model_has_lm_head (model))
    bad = "the model has no lm_head";
  else if (p->max_new_tokens < 0)
    bad = "max_new_tokens is negative";
  else if (p->do_sample && !(p->temperature > 0.0f))
    bad = "temperature must be > 0";
  else if (p->do_sample && (p->top_k < 0 || !(p->top_p >= 0.0f && p->top_p <= 1.0f)))
    bad = "top_k must be >= 0 and top_p in [0, 1]";
  else if (p->no_repeat_ngram_size < 0 || p->ngram_size < 0 || p->ngram_window < 0)
    bad = "n-gram sizes must be >= 0";
  else if (p->n_eos_ids < 0 || (p->n_eos_ids > 0 && !p->eos_ids))
    bad = "eos_ids / n_eos_ids are inconsistent";
  else if (p->n_ngram_whitelist < 0 || (p->n_ngram_whitelist > 0 && !p->ngram_whitelist))
    bad = "ngram_whitelist / n_ngram_whitelist are inconsistent";
  else if (prompt->positions)
    bad = "prompt positions are derived by generate and must be NULL";
  else if (prompt->n_seq <= 0 || prompt->n_tokens <= 0)
    bad = "the prompt is empty";
  if (bad) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "generate: %s", bad);
    return FALSE;
  }
  return TRUE;
}

gboolean
dsocr_generate (dsocr_session *session, const dsocr_batch *prompt,
                const dsocr_generate_params *params, dsocr_generate_result **result,
                GError **error)
{
  dsocr_model *model = dsocr_session_get_model (session);
  const dsocr_config *cfg = dsocr_model_get_config (model);
  const int n_vocab = dsocr_model_get_n_vocab (model);
  const int n_seq = prompt->n_seq, n_prompt = prompt->n_tokens;
  const int32_t *eos = params->n_eos_ids > 0 ? params->eos_ids : cfg->text.eos_token_ids;
  const int n_eos = params->n_eos_ids > 0 ? params->n_eos_ids : cfg->text.n_eos_token_ids;
  const int max_new = params->max_new_tokens;
  const gboolean have_ids = prompt->ids != NULL;
  int32_t pad = params->pad_token_id;
  int32_t *positions = NULL;     // [n_seq, n_prompt], then [n_seq]
  int32_t *history = NULL;       // [n_seq, n_prompt + max_new]: the prompt ids (if given) + output
  int *hist_len = NULL;          // [n_seq]
  int32_t *next = NULL;          // [n_seq]
  uint8_t *unfinished = NULL;    // [n_seq]
  float *logits = NULL;          // [n_seq, n_vocab] raw
  float *work = NULL;            // [n_vocab] processed
  dsocr_generate_result *res = NULL;
  const int32_t *last_pos;
  int base_n_past, hist_cap;
  gboolean ok = FALSE, stop = FALSE;
  rng_state rng;

  if (!check_params (params, prompt, model, error))
    return FALSE;
  if (pad < 0)
    pad = cfg->text.pad_token_id >= 0 ? cfg->text.pad_token_id : n_eos > 0 ? eos[0] : 0;
  rng_seed (&rng, params->seed);

  /* Position ids as generate() derives them: cumsum(attention_mask) - 1 with padding at 0,
   * continuing after the positions the session already holds. */
  base_n_past = dsocr_session_get_n_past (session);
  last_pos = dsocr_session_get_last_positions (session);
  if (base_n_past > 0 && dsocr_session_get_n_seq (session) != n_seq) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "generate: the prompt has %d rows, the session caches %d", n_seq,
                 dsocr_session_get_n_seq (session));
    return FALSE;
  }
  positions = g_new (int32_t, (gsize) n_seq * n_prompt);
  for (int r = 0; r < n_seq; r++) {
    int32_t p = base_n_past > 0 ? last_pos[r] : -1;
    for (int t = 0; t < n_prompt; t++) {
      gboolean real = !prompt->attention_mask || prompt->attention_mask[(gsize) r * n_prompt + t];
      if (real)
        p++;
      positions[(gsize) r * n_prompt + t] = real ? p : 0;
    }
  }

  hist_cap = (have_ids ? n_prompt : 0) + max_new;
  history = g_new (int32_t, (gsize) n_seq * MAX (hist_cap, 1));
  hist_len = g_new0 (int, n_seq);
  if (have_ids) {
    for (int r = 0; r < n_seq; r++) {
      memcpy (history + (gsize) r * hist_cap, prompt->ids + (gsize) r * n_prompt,
              sizeof (int32_t) * (gsize) n_prompt);
      hist_len[r] = n_prompt;
    }
  }

  res = g_new0 (dsocr_generate_result, 1);
  res->n_seq = n_seq;
  res->tokens = g_new (int32_t, (gsize) n_seq * MAX (max_new, 1));
  res->n_tokens = g_new0 (int, n_seq);
  res->finish = g_new0 (dsocr_finish_reason, n_seq);
  next = g_new (int32_t, n_seq);
  unfinished = g_new (uint8_t, n_seq);
  memset (unfinished, 1, (gsize) n_seq);
  logits = g_new (float, (gsize) n_seq * n_vocab);
  work = g_new (float, n_vocab);

  {
    dsocr_batch b = *prompt;
    b.positions = positions;
    if (max_new > 0 && !dsocr_session_forward (session, &b, DSOCR_LOGITS_LAST, logits, error))
      goto out;
  }

  for (int step = 0; step < max_new && !stop; step++) {
    gboolean any_left = FALSE;

    for (int r = 0; r < n_seq; r++) {
      const float *raw = logits + (gsize) r * n_vocab;
      int32_t *hist = history + (gsize) r * hist_cap;
      int32_t tok;

      if (!unfinished[r]) {
        next[r] = pad;
        continue;
      }
      memcpy (work, raw, sizeof (float) * (gsize) n_vocab);
      dsocr_logits_no_repeat_ngram (work, n_vocab, hist, (gsize) hist_len[r],
                                    params->no_repeat_ngram_size);
      if (params->ngram_size > 0) {
        int n_prompt_hist = have_ids ? n_prompt : 0;
        dsocr_logits_ngram_window (work, n_vocab, hist + n_prompt_hist,
                                   (gsize) (hist_len[r] - n_prompt_hist), params->ngram_size,
                                   params->ngram_window, params->ngram_whitelist,
                                   params->n_ngram_whitelist);
      }
      if (params->do_sample) {
        dsocr_logits_temperature (work, n_vocab, params->temperature);
        dsocr_logits_top_k (work, n_vocab, params->top_k);
        dsocr_logits_top_p (work, n_vocab, params->top_p);
        tok = dsocr_logits_sample (work, n_vocab, rng_uniform (&rng));
        if (tok < 0)
          tok = dsocr_logits_argmax (work, n_vocab);
      } else {
        tok = dsocr_logits_argmax (work, n_vocab);
      }
      next[r] = tok;
      res->n_tokens[r]++;
      if (params->callback && !params->callback (r, step, tok, raw, params->user_data))
        stop = TRUE;
    }

    for (int r = 0; r < n_seq; r++) {
      res->tokens[(gsize) r * max_new + step] = next[r];
      history[(gsize) r * hist_cap + hist_len[r]++] = next[r];
      if (unfinished[r] && !params->ignore_eos) {
        for (int e = 0; e < n_eos; e++) {
          if (next[r] == eos[e]) {
            unfinished[r] = 0;
            res->finish[r] = DSOCR_FINISH_EOS;
          }
        }
      }
      if (unfinished[r] && stop)
        res->finish[r] = DSOCR_FINISH_STOPPED;
      any_left |= unfinished[r];
    }
    res->n_steps = step + 1;
    if (!any_left || stop || step + 1 == max_new)
      break;

    {
      const int32_t *lp = dsocr_session_get_last_positions (session);
      dsocr_batch b = { .n_seq = n_seq, .n_tokens = 1, .ids = next };
      for (int r = 0; r < n_seq; r++)
        positions[r] = lp[r] + 1;
      b.positions = positions;
      if (!dsocr_session_forward (session, &b, DSOCR_LOGITS_LAST, logits, error))
        goto out;
    }
  }

  /* Rows are packed with the step count as their stride. */
  if (res->n_steps < max_new) {
    for (int r = 1; r < n_seq; r++)
      memmove (res->tokens + (gsize) r * res->n_steps, res->tokens + (gsize) r * max_new,
               sizeof (int32_t) * (gsize) res->n_steps);
  }
  *result = res;
  res = NULL;
  ok = TRUE;

out:
  dsocr_generate_result_free (res);
  g_free (positions);
  g_free (history);
  g_free (hist_len);
  g_free (next);
  g_free (unfinished);
  g_free (logits);
  g_free (work);
  return ok;
}
