/* dsocr-generate.h: autoregressive generation and the logits processors it uses.
 *
 *   dsocr_generate_params p;
 *   dsocr_generate_params_init (&p);
 *   p.max_new_tokens = 8192;
 *   p.ngram_size = 30;                 // DeepSeek-OCR's guard: n 30, window 90,
 *   p.ngram_window = 90;               // <td> and </td> may repeat
 *   p.ngram_whitelist = (const int32_t[]) { 128821, 128822 };
 *   p.n_ngram_whitelist = 2;
 *   dsocr_batch prompt = { .n_seq = 1, .n_tokens = n, .ids = ids };
 *   dsocr_generate_result *r = NULL;
 *   if (dsocr_generate (session, &prompt, &p, &r, &error)) {
 *     for (int i = 0; i < r->n_tokens[0]; i++)
 *       g_print ("%d ", r->tokens[i]);
 *     dsocr_generate_result_free (r);
 *   }
 *
 * What a step does is transformers' GenerationMixin.generate with the same settings:
 * raw logits of each row's last column -> no_repeat_ngram_size (n-grams of prompt + output)
 * -> the windowed n-gram guard of DeepSeek-OCR's vLLM scripts (output only) -> if sampling:
 * temperature, top-k, top-p, softmax and one draw; else argmax (lowest id on ties, as
 * torch.argmax). A row stops at an EOS id (which is kept in its output); from then on it is
 * fed pad_token_id, as transformers does, until every row has stopped or max_new_tokens
 * columns were generated. Position ids follow generate(): for the prompt cumsum(mask) - 1
 * (padding 0) counted from the row's last cached position, then the previous column's + 1.
 *
 * Sampling draws from this library's own seeded generator, so it is reproducible from the
 * seed but is not the same stream of numbers as torch.multinomial.
 */
#ifndef DSOCR_GENERATE_H
#define DSOCR_GENERATE_H

#include <glib.h>
#include <stdint.h>

#include <dsocr/dsocr-session.h>

G_BEGIN_DECLS

/* Called once per generated token of each unfinished row, in row order within a step.
 * @logits: (transfer none) the raw logits [n_vocab] the token was chosen from (before any
 * processor). Return FALSE to stop the whole generation after this step. */
typedef gboolean (*dsocr_token_callback) (int row, int step, int32_t token, const float *logits,
                                          gpointer user_data);

typedef struct {
  int max_new_tokens;          /* columns to generate at most; default 256 */

  /* Stopping. */
  const int32_t *eos_ids;      /* ids that end a row; NULL: the config's eos_token_id list */
  int n_eos_ids;
  gboolean ignore_eos;         /* never stop on an EOS id (default FALSE) */
  int pad_token_id;            /* fed to finished rows; -1 (default): the config's pad id,
                                * else the first EOS id, else 0 */

  /* Sampling (transformers' defaults). */
  gboolean do_sample;          /* FALSE (default): greedy argmax */
  float temperature;           /* 1.0: logits are divided by it (> 0) */
  int top_k;                   /* 50: keep the k best logits and ties with the k-th; 0 = off */
  float top_p;                 /* 1.0: nucleus filter; 1.0 = off */
  guint64 seed;                /* seed of the sampler */

  /* transformers' NoRepeatNGramLogitsProcessor: bans any token that would repeat an n-gram of
   * the row's prompt + output (padding included, as in transformers). 0 = off. */
  int no_repeat_ngram_size;

  /* DeepSeek-OCR's windowed guard (process/ngram_norepeat.py): over the generated tokens only,
   * the n-grams starting in the last ngram_window tokens that continue the current (n-1)-token
   * suffix have their last token banned, except whitelisted ids. ngram_size 0 = off;
   * ngram_window 0 means 100, that code's default. */
  int ngram_size;
  int ngram_window;
  const int32_t *ngram_whitelist;
  int n_ngram_whitelist;

  dsocr_token_callback callback;
  gpointer user_data;
} dsocr_generate_params;

/* Fills @params with the defaults above. */
void dsocr_generate_params_init (dsocr_generate_params *params);

typedef enum {
  DSOCR_FINISH_LENGTH = 0,     /* max_new_tokens reached */
  DSOCR_FINISH_EOS,            /* the row produced an EOS id */
  DSOCR_FINISH_STOPPED,        /* the callback asked to stop */
} dsocr_finish_reason;

typedef struct {
  int n_seq;
  int n_steps;                 /* columns generated */
  int32_t *tokens;             /* [n_seq, n_steps]: each row's tokens, padded with
                                * pad_token_id after it finished (transformers' sequences
                                * minus the prompt) */
  int *n_tokens;               /* [n_seq]: tokens each row produced, its EOS included */
  dsocr_finish_reason *finish; /* [n_seq] */
} dsocr_generate_result;

/* Prefills @prompt into @session (after whatever it already caches) and generates.
 * The prompt's attention_mask and ids are used as transformers' generate() uses them; its
 * positions must be NULL (they are derived as described above).
 * @result: (out) (transfer full) set on success; free with dsocr_generate_result_free().
 * Fails with the errors of dsocr_session_forward(), or DSOCR_ERROR_INVALID for bad params
 * (the model must have an lm_head). On failure the session may hold a partial cache: reset it. */
gboolean dsocr_generate (dsocr_session *session, const dsocr_batch *prompt,
                         const dsocr_generate_params *params, dsocr_generate_result **result,
                         GError **error);

/* Frees @result. NULL is a no-op. */
void dsocr_generate_result_free (dsocr_generate_result *result);

/* ---- logits processors, on one row of @n_vocab logits, in place ---- */

/* transformers' NoRepeatNGramLogitsProcessor(@n) on the row's whole sequence @ids[@n_ids]:
 * sets -inf on every token t such that (the last n-1 ids, t) already occurs in @ids. No-op
 * while n_ids < n. With n == 1 every id seen is banned. */
void dsocr_logits_no_repeat_ngram (float *logits, int n_vocab, const int32_t *ids, gsize n_ids,
                                   int n);

/* DeepSeek-OCR's windowed guard on the generated tokens @ids[@n_ids]: no-op while n_ids < n;
 * otherwise for every start i in [max(0, n_ids - window), n_ids - n] whose ids[i .. i+n-2]
 * equal the last n-1 ids, bans ids[i+n-1] unless it is whitelisted. (With n == 1 the
 * reference's empty-slice quirk makes the suffix the whole list, so nothing is banned.) */
void dsocr_logits_ngram_window (float *logits, int n_vocab, const int32_t *ids, gsize n_ids,
                                int n, int window, const int32_t *whitelist, int n_whitelist);

/* logits /= temperature (TemperatureLogitsWarper). */
void dsocr_logits_temperature (float *logits, int n_vocab, float temperature);
/* TopKLogitsWarper: -inf on every logit below the k-th largest (ties with it are kept). */
void dsocr_logits_top_k (float *logits, int n_vocab, int k);
/* TopPLogitsWarper (min_tokens_to_keep 1): sorting ascending, -inf on the tokens whose
 * cumulative softmax probability is <= 1 - top_p; the largest logit always stays. Equal
 * logits are ordered by id (torch's sort leaves their order unspecified). */
void dsocr_logits_top_p (float *logits, int n_vocab, float top_p);
/* Index of the largest logit, the lowest on ties; a NaN counts as larger than any number
 * (both as torch.argmax). */
int32_t dsocr_logits_argmax (const float *logits, int n_vocab);
/* Draws from softmax(@logits) by inverting the cumulative distribution at @u in [0, 1),
 * summing in id order; -inf logits are never drawn. Returns -1 when every logit is -inf. */
int32_t dsocr_logits_sample (const float *logits, int n_vocab, double u);

G_END_DECLS

#endif /* DSOCR_GENERATE_H */
