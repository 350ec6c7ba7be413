/* bench-tokenizer: encode throughput of the byte-level BPE tokenizer.
 *
 *   bench-tokenizer --tokenizer PATH --text FILE [--reps R] [--doc-bytes N] [--json]
 *
 * Cuts FILE into documents of whole lines, each at least N bytes (4096), encodes them one by
 * one, R times (3), and prints the best and median MB/s with the total id count and an FNV-1a
 * hash of all ids. bench/bench_tokenizer_hf.py cuts the same documents and hashes the same
 * way, so equal hashes show that both sides produced the same ids. The word cache starts
 * empty in every rep (a fresh tokenizer), as the reference's does in a fresh process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsocr/dsocr-tokenizer.h>

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
  char *path = NULL, *text_path = NULL;
  int reps = 3, doc_bytes = 4096;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "tokenizer", 't', 0, G_OPTION_ARG_FILENAME, &path, "tokenizer.json or its directory", "PATH" },
    { "text", 0, 0, G_OPTION_ARG_FILENAME, &text_path, "UTF-8 text to encode", "FILE" },
    { "reps", 0, 0, G_OPTION_ARG_INT, &reps, "repetitions (3)", "R" },
    { "doc-bytes", 0, 0, G_OPTION_ARG_INT, &doc_bytes, "minimum document size (4096)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "one JSON line", NULL },
    { NULL },
  };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- tokenizer encode throughput");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !path || !text_path || reps < 1) {
    g_printerr ("bench-tokenizer: %s\n", error ? error->message : "--tokenizer and --text needed");
    return 2;
  }
  g_option_context_free (ctx);

  char *text;
  gsize text_len;
  if (!g_file_get_contents (text_path, &text, &text_len, &error)) {
    g_printerr ("bench-tokenizer: %s\n", error->message);
    return 1;
  }
  /* documents: [start, end) byte ranges of whole lines */
  GArray *docs = g_array_new (FALSE, FALSE, sizeof (gsize));
  gsize start = 0;
  g_array_append_val (docs, start);
  for (gsize i = 0; i < text_len; i++) {
    if (text[i] == '\n' && i + 1 - start >= (gsize) doc_bytes) {
      start = i + 1;
      g_array_append_val (docs, start);
    }
  }
  if (start != text_len)
    g_array_append_val (docs, text_len);
  guint n_docs = docs->len - 1;

  double *mbs = g_new (double, reps);
  double load_s = 0;
  guint64 n_ids = 0, hash = 0;
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  for (int r = 0; r < reps; r++) {
    gint64 t0 = g_get_monotonic_time ();
    dsocr_tokenizer *tok = dsocr_tokenizer_load (path, &error);
    if (!tok) {
      g_printerr ("bench-tokenizer: %s\n", error->message);
      return 1;
    }
    gint64 t1 = g_get_monotonic_time ();
    load_s = (t1 - t0) / 1e6;
    n_ids = 0;
    hash = 0xcbf29ce484222325ull;
    for (guint d = 0; d < n_docs; d++) {
      gsize a = g_array_index (docs, gsize, d), b = g_array_index (docs, gsize, d + 1);
      g_array_set_size (ids, 0);
      if (!dsocr_tokenizer_encode (tok, text + a, (gssize) (b - a), 0, ids, &error)) {
        g_printerr ("bench-tokenizer: %s\n", error->message);
        return 1;
      }
      n_ids += ids->len;
      for (guint k = 0; k < ids->len; k++) {
        uint32_t v = (uint32_t) g_array_index (ids, int32_t, k);
        for (int byte = 0; byte < 4; byte++)
          hash = (hash ^ ((v >> (8 * byte)) & 0xff)) * 0x100000001b3ull;
      }
    }
    gint64 t2 = g_get_monotonic_time ();
    mbs[r] = text_len / 1e6 / ((t2 - t1) / 1e6);
    dsocr_tokenizer_free (tok);
  }
  qsort (mbs, (size_t) reps, sizeof *mbs, compare_double);
  double best = mbs[reps - 1], med = mbs[reps / 2];
  if (json)
    printf ("{\"impl\": \"dsocr\", \"bytes\": %zu, \"docs\": %u, \"ids\": %" G_GUINT64_FORMAT
            ", \"hash\": \"%016" G_GINT64_MODIFIER "x\", \"best_MBps\": %.3f, \"median_MBps\": %.3f, "
            "\"load_s\": %.3f}\n",
            (size_t) text_len, n_docs, n_ids, hash, best, med, load_s);
  else
    printf ("dsocr: %zu bytes in %u docs -> %" G_GUINT64_FORMAT " ids (hash %016" G_GINT64_MODIFIER
            "x); best %.2f MB/s, median %.2f MB/s; load %.2f s\n",
            (size_t) text_len, n_docs, n_ids, hash, best, med, load_s);
  g_array_unref (ids);
  g_array_unref (docs);
  g_free (mbs);
  g_free (text);
  g_free (path);
  g_free (text_path);
  return 0;
}
