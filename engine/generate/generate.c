/* generate.c: the generation loop of transformers' generate(): prompt positions, one pick per
 * row and step (sampling.c has the logits processors), EOS and stop bookkeeping. */
#include "dsocr/dsocr-generate.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"
#include "dsocr/dsocr-model.h"
#include "sampling.h"

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

/* Position ids of the prompt as generate() derives them: cumsum(attention_mask) - 1 with
 * padding at 0, continuing after the positions the session already holds.
 * Returns (transfer full) [n_seq, n_tokens]. */
static int32_t *
prompt_positions (dsocr_session *session, const dsocr_batch *prompt)
{
  const int n_seq = prompt->n_seq, n_prompt = prompt->n_tokens;
  const int base_n_past = dsocr_session_get_n_past (session);
  const int32_t *last_pos = dsocr_session_get_last_positions (session);
  int32_t *positions = g_new (int32_t, (gsize) n_seq * n_prompt);

  for (int r = 0; r < n_seq; r++) {
    int32_t p = base_n_past > 0 ? last_pos[r] : -1;
    for (int t = 0; t < n_prompt; t++) {
      gboolean real = !prompt->attention_mask || prompt->attention_mask[(gsize) r * n_prompt + t];
      if (real)
        p++;
      positions[(gsize) r * n_prompt + t] = real ? p : 0;
    }
  }
  return positions;
}

/* The next token of one row: the n-gram guards on a copy of @raw (into @work), then greedy or
 * sampled. @hist [hist_len]: the row's ids so far, its first @n_prompt_hist the prompt's. */
static int32_t
pick (const dsocr_generate_params *params, const float *raw, float *work, int n_vocab,
      const int32_t *hist, int hist_len, int n_prompt_hist, dsocr_rng *rng)
{
  int32_t tok;

  memcpy (work, raw, sizeof (float) * (gsize) n_vocab);
  dsocr_logits_no_repeat_ngram (work, n_vocab, hist, (gsize) hist_len,
                                params->no_repeat_ngram_size);
  if (params->ngram_size > 0)
    dsocr_logits_ngram_window (work, n_vocab, hist + n_prompt_hist,
                               (gsize) (hist_len - n_prompt_hist), params->ngram_size,
                               params->ngram_window, params->ngram_whitelist,
                               params->n_ngram_whitelist);
  if (!params->do_sample)
    return dsocr_logits_argmax (work, n_vocab);
  dsocr_logits_temperature (work, n_vocab, params->temperature);
  dsocr_logits_top_k (work, n_vocab, params->top_k);
  dsocr_logits_top_p (work, n_vocab, params->top_p);
  tok = dsocr_logits_sample (work, n_vocab, dsocr_rng_uniform (rng));
  return tok < 0 ? dsocr_logits_argmax (work, n_vocab) : tok;
}

/* Whether @tok is one of the @n_eos ids. */
static gboolean
is_eos (int32_t tok, const int32_t *eos, int n_eos)
{
  for (int e = 0; e < n_eos; e++)
    if (tok == eos[e])
      return TRUE;
  return FALSE;
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
  const int n_prompt_hist = have_ids ? n_prompt : 0;
  int32_t pad = params->pad_token_id;
  int32_t *positions = NULL;     // [n_seq, n_prompt], then [n_seq]
  int32_t *history = NULL;       // [n_seq, n_prompt + max_new]: the prompt ids (if given) + output
  int *hist_len = NULL;          // [n_seq]
  int32_t *next = NULL;          // [n_seq]
  uint8_t *unfinished = NULL;    // [n_seq]
  float *logits = NULL;          // [n_seq, n_vocab] raw
  float *work = NULL;            // [n_vocab] processed
  dsocr_generate_result *res = NULL;
  int hist_cap;
  gboolean ok = FALSE, stop = FALSE;
  dsocr_rng rng;

  if (!check_params (params, prompt, model, error))
    return FALSE;
  if (pad < 0)
    pad = cfg->text.pad_token_id >= 0 ? cfg->text.pad_token_id : n_eos > 0 ? eos[0] : 0;
  dsocr_rng_seed (&rng, params->seed);
  if (dsocr_session_get_n_past (session) > 0 && dsocr_session_get_n_seq (session) != n_seq) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "generate: the prompt has %d rows, the session caches %d", n_seq,
                 dsocr_session_get_n_seq (session));
    return FALSE;
  }
  positions = prompt_positions (session, prompt);

  hist_cap = n_prompt_hist + max_new;
  history = g_new (int32_t, (gsize) n_seq * MAX (hist_cap, 1));
  hist_len = g_new0 (int, n_seq);
  for (int r = 0; have_ids && r < n_seq; r++) {
    memcpy (history + (gsize) r * hist_cap, prompt->ids + (gsize) r * n_prompt,
            sizeof (int32_t) * (gsize) n_prompt);
    hist_len[r] = n_prompt;
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
      if (!unfinished[r]) {
        next[r] = pad;
        continue;
      }
      next[r] = pick (params, raw, work, n_vocab, history + (gsize) r * hist_cap, hist_len[r],
                      n_prompt_hist, &rng);
      res->n_tokens[r]++;
      if (params->callback && !params->callback (r, step, next[r], raw, params->user_data))
        stop = TRUE;
    }

    for (int r = 0; r < n_seq; r++) {
      res->tokens[(gsize) r * max_new + step] = next[r];
      history[(gsize) r * hist_cap + hist_len[r]++] = next[r];
      if (unfinished[r] && !params->ignore_eos && is_eos (next[r], eos, n_eos)) {
        unfinished[r] = 0;
        res->finish[r] = DSOCR_FINISH_EOS;
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
