/* bench-decoder: prefill and decode speed of the CPU decoder.
 *
 *   bench-decoder --model DIR [--prompt-len P] [--new-tokens N] [--threads T] [--reps R]
 *                 [--precision f32|bf16|q8|q4]
 *                 [--json]
 *
 * Times a prefill of P tokens (logits of the last one) and N single-token decode steps through
 * the KV cache (teacher-forced ids, logits + argmax each step), R times, and prints the medians
 * and the best runs as tokens per second, with the load time and the peak resident memory
 * (VmHWM: the mapped weight pages touched count too). The ids follow bench_id(), shared with
 * bench/bench_decoder_hf.py so transformers does exactly the same work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-generate.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>

static int32_t
bench_id (int64_t i, int vocab)
{
  const int64_t span = MIN (vocab, 120000) - 3;
  return (int32_t) (3 + ((uint64_t) (i * 2654435761LL) & 0xffffffffu) % (uint64_t) span);
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Sorts @v; returns its median. */
static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, compare_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set in GiB, from /proc/self/status (0 where unavailable). */
static double
peak_rss_gib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0.0;
  line = strstr (status, "VmHWM:");
  return line ? g_ascii_strtod (line + 6, NULL) / (1024.0 * 1024.0) : 0.0;
}

int
main (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *precision_name = NULL;
  dsocr_precision precision = DSOCR_PRECISION_DEFAULT;
  int prompt_len = 128, new_tokens = 32, threads = 2, reps = 3;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir, "Model directory", "DIR" },
    { "prompt-len", 'p', 0, G_OPTION_ARG_INT, &prompt_len, "Prompt tokens (128)", "P" },
    { "new-tokens", 'n', 0, G_OPTION_ARG_INT, &new_tokens, "Decode steps (32)", "N" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads (2)", "T" },
    { "reps", 'r', 0, G_OPTION_ARG_INT, &reps, "Repetitions; medians are reported (3)", "R" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_name, "f32, bf16, q8 or q4 (f32)",
      "P" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON line", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- time the decoder");
  g_autoptr (GError) error = NULL;
  dsocr_model *model;
  dsocr_session *session;
  int32_t *prompt, tok;
  float *logits;
  double *pre, *dec, load_s, p, d;
  gint64 t0;
  int V;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !model_dir || prompt_len < 1 ||
      new_tokens < 1 || threads < 1 || reps < 1) {
    g_printerr ("bench-decoder: %s\n",
                error ? error->message : "need --model DIR and positive sizes");
    return 2;
  }
  if (precision_name && !dsocr_precision_from_string (precision_name, &precision, &error)) {
    g_printerr ("bench-decoder: --precision: %s\n", error->message);
    return 2;
  }

  t0 = g_get_monotonic_time ();
  model = dsocr_model_load (model_dir, &error);
  if (!model) {
    g_printerr ("bench-decoder: %s\n", error->message);
    return 1;
  }
  load_s = (g_get_monotonic_time () - t0) / 1e6;
  V = dsocr_model_get_n_vocab (model);
  t0 = g_get_monotonic_time ();
  session = dsocr_session_new (model, &(dsocr_session_params) {
                                 .n_seq_max = 1, .n_ctx = prompt_len + new_tokens,
                                 .n_threads = threads, .precision = precision },
                               &error);
  const double prepare_s = (g_get_monotonic_time () - t0) / 1e6;
  if (!session) {
    g_printerr ("bench-decoder: %s\n", error->message);
    dsocr_model_unref (model);
    return 1;
  }

  prompt = g_new (int32_t, prompt_len);
  prompt[0] = 0;
  for (int i = 1; i < prompt_len; i++)
    prompt[i] = bench_id (i, V);
  logits = g_new (float, V);
  pre = g_new (double, reps);
  dec = g_new (double, reps);
  for (int r = 0; r < reps; r++) {
    dsocr_session_reset (session);
    t0 = g_get_monotonic_time ();
    if (!dsocr_session_forward (session, &(dsocr_batch) { .n_seq = 1, .n_tokens = prompt_len,
                                                          .ids = prompt },
                                DSOCR_LOGITS_LAST, logits, &error))
      break;
    pre[r] = (g_get_monotonic_time () - t0) / 1e6;
    t0 = g_get_monotonic_time ();
    for (int s = 0; s < new_tokens && !error; s++) {
      tok = bench_id (prompt_len + s, V);
      dsocr_session_forward (session, &(dsocr_batch) { .n_seq = 1, .n_tokens = 1, .ids = &tok },
                             DSOCR_LOGITS_LAST, logits, &error);
      (void) dsocr_logits_argmax (logits, V);
    }
    dec[r] = (g_get_monotonic_time () - t0) / 1e6;
    if (error)
      break;
  }
  if (error) {
    g_printerr ("bench-decoder: %s\n", error->message);
  } else {
    /* medians, and the best run: on a machine shared with other work the best run is the
     * closest to the code's own speed */
    p = median (pre, reps);
    d = median (dec, reps);
    const char *prec = dsocr_precision_to_string (dsocr_session_get_precision (session));
    const double wgib = (double) dsocr_session_get_weight_bytes (session) / (1 << 30);
    if (json)
      printf ("{\"impl\": \"dsocr\", \"precision\": \"%s\", \"model\": \"%s\", "
              "\"threads\": %d, \"prompt_len\": %d, \"new_tokens\": %d, \"reps\": %d, "
              "\"load_s\": %.3f, \"prepare_s\": %.3f, \"weights_gib\": %.3f, "
              "\"prefill_s\": %.4f, \"prefill_tok_s\": %.2f, "
              "\"prefill_best_tok_s\": %.2f, \"decode_s\": %.4f, \"decode_tok_s\": %.2f, "
              "\"decode_best_tok_s\": %.2f, \"max_rss_gib\": %.2f}\n",
              prec, model_dir, threads, prompt_len, new_tokens, reps, load_s, prepare_s, wgib, p,
              prompt_len / p, prompt_len / pre[0], d, new_tokens / d, new_tokens / dec[0],
              peak_rss_gib ());
    else
      printf ("load %.3f s, weights %s %.2f GiB prepared in %.3f s\n"
              "prefill %d tokens: median %.4f s, %.2f tok/s (best %.2f tok/s)\n"
              "decode %d tokens: median %.4f s, %.2f tok/s (best %.2f tok/s)\n"
              "peak RSS %.2f GiB\n",
              load_s, prec, wgib, prepare_s, prompt_len, p, prompt_len / p, prompt_len / pre[0],
              new_tokens, d, new_tokens / d, new_tokens / dec[0], peak_rss_gib ());
  }
  g_free (prompt);
  g_free (logits);
  g_free (pre);
  g_free (dec);
  dsocr_session_free (session);
  dsocr_model_unref (model);
  return error ? 1 : 0;
}
