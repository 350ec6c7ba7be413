/* dsocr-generate: text generation with a DeepSeek-V2-family decoder.
 *
 *   dsocr-generate --model DIR (--prompt TEXT | --ids JSON) [--max-new-tokens N]
 *                  [--no-repeat-ngram N] [--json] [--indexer-scores FILE] [...]
 *
 * --prompt needs the model directory's tokenizer.json (the prompt is encoded with the
 * tokenizer's special tokens, i.e. BOS for the DeepSeek tokenizers); --ids takes a JSON array
 * of token ids as they are. Prints the generated ids and, when a tokenizer is there, their text
 * (streamed to stdout as it is generated unless --json). --indexer-scores (DeepSeek-V3.2
 * models) writes the sparse-attention indexer's outputs of the prompt's prefill to FILE, a
 * .safetensors file (dsocr-indexer.h: per-layer scores, top-k, KL target, and the KL loss).
 * Exit status 0 on success, 1 on an error (message on stderr), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-generate.h>
#include <dsocr/dsocr-indexer.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>
#include <dsocr/dsocr-tokenizer.h>
#include <json-glib/json-glib.h>

typedef struct {
  dsocr_decode_stream *stream;  // NULL: print ids as they come
  gboolean quiet;               // --json: nothing until the end
  dsocr_session *session;
  const char *indexer_path;     // --indexer-scores: written after the prefill, then NULL
  GError *indexer_error;
} output;

static gboolean
on_token (int row, int step, int32_t token, const float *logits, gpointer user_data)
{
  output *out = user_data;

  if (out->indexer_path) {
    /* the first token: the session's last forward call was the prompt's prefill */
    const dsocr_indexer_outputs *o = dsocr_session_get_indexer_outputs (out->session);
    if (!dsocr_indexer_outputs_save (o, out->indexer_path, &out->indexer_error))
      return FALSE;
    out->indexer_path = NULL;
    if (!dsocr_session_set_indexer_outputs (out->session, 0, &out->indexer_error))
      return FALSE;
  }
  if (out->quiet)
    return TRUE;
  if (out->stream)
    fputs (dsocr_decode_stream_push (out->stream, token, NULL), stdout);
  else
    printf ("%s%d", step ? " " : "", token);
  fflush (stdout);
  return TRUE;
}

/* Parses a JSON array of integers into @ids. */
static gboolean
parse_ids (const char *json, GArray *ids, const char *what, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  JsonArray *arr;

  if (!json_parser_load_from_data (parser, json, -1, error))
    return FALSE;
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_ARRAY (root)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "%s: expected a JSON array of ids",
                 what);
    return FALSE;
  }
  arr = json_node_get_array (root);
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonNode *n = json_array_get_element (arr, i);
    gint64 v;
    int32_t id;

    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64 ||
        (v = json_node_get_int (n)) < 0 || v > G_MAXINT32) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "%s: element %u is not a non-negative integer id", what, i);
      return FALSE;
    }
    id = (int32_t) v;
    g_array_append_val (ids, id);
  }
  return TRUE;
}

static const char *
finish_name (dsocr_finish_reason f)
{
  return f == DSOCR_FINISH_EOS ? "eos" : f == DSOCR_FINISH_STOPPED ? "stopped" : "length";
}

int
main (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *prompt = NULL, *ids_json = NULL, *whitelist_json = NULL;
  g_autofree char *indexer_path = NULL, *precision_name = NULL;
  dsocr_precision precision = DSOCR_PRECISION_DEFAULT;
  int max_new = 256, no_repeat = 0, window_ngram = 0, window = 0, top_k = 50, threads = 0;
  double temperature = 1.0, top_p = 1.0;
  gint64 seed = 0;
  gboolean json = FALSE, sample = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir, "Model directory", "DIR" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "Prompt text (needs tokenizer.json)",
      "TEXT" },
    { "ids", 0, 0, G_OPTION_ARG_STRING, &ids_json, "Prompt token ids", "JSON" },
    { "max-new-tokens", 'n', 0, G_OPTION_ARG_INT, &max_new, "Tokens to generate at most (256)",
      "N" },
    { "no-repeat-ngram", 0, 0, G_OPTION_ARG_INT, &no_repeat,
      "Ban repeating any N-gram of prompt + output (transformers' no_repeat_ngram_size)", "N" },
    { "window-ngram", 0, 0, G_OPTION_ARG_INT, &window_ngram,
      "DeepSeek-OCR's guard: ban repeating an N-gram of the output within --window", "N" },
    { "window", 0, 0, G_OPTION_ARG_INT, &window, "Window of --window-ngram (100)", "W" },
    { "whitelist", 0, 0, G_OPTION_ARG_STRING, &whitelist_json,
      "Ids --window-ngram never bans", "JSON" },
    { "sample", 0, 0, G_OPTION_ARG_NONE, &sample, "Sample instead of greedy argmax", NULL },
    { "temperature", 0, 0, G_OPTION_ARG_DOUBLE, &temperature, "Sampling temperature (1.0)", "T" },
    { "top-k", 0, 0, G_OPTION_ARG_INT, &top_k, "Sampling top-k, 0 = off (50)", "K" },
    { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &top_p, "Sampling top-p (1.0)", "P" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Sampling seed (0)", "S" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads, 0 = all processors", "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_name,
      "f32, bf16, q8 or q4: how the weights are held (docs/numerics.md); default f32", "P" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { "indexer-scores", 0, 0, G_OPTION_ARG_FILENAME, &indexer_path,
      "DeepSeek-V3.2: write the sparse-attention indexer's outputs of the prompt to FILE "
      "(.safetensors)", "FILE" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- generate with a DeepSeek decoder");
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  g_autoptr (GArray) whitelist = g_array_new (FALSE, FALSE, sizeof (int32_t));
  dsocr_tokenizer *tok = NULL;
  dsocr_model *model = NULL;
  dsocr_session *session = NULL;
  dsocr_generate_result *res = NULL;
  dsocr_generate_params p;
  output out = { NULL, FALSE, NULL, NULL, NULL };
  int status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("dsocr-generate: %s\n", error->message);
    return 2;
  }
  if (!model_dir || (!prompt == !ids_json) || max_new < 0 || threads < 0) {
    g_printerr ("dsocr-generate: need --model DIR and exactly one of --prompt / --ids\n");
    return 2;
  }
  if (precision_name && !dsocr_precision_from_string (precision_name, &precision, &error)) {
    g_printerr ("dsocr-generate: --precision: %s\n", error->message);
    return 2;
  }

  {
    g_autofree char *tok_path = g_build_filename (model_dir, "tokenizer.json", NULL);
    if (prompt || g_file_test (tok_path, G_FILE_TEST_EXISTS)) {
      tok = dsocr_tokenizer_load (model_dir, &error);
      if (!tok)
        goto out;
    }
  }
  if (prompt) {
    if (!dsocr_tokenizer_encode (tok, prompt, -1, DSOCR_TOKENIZE_ADD_SPECIAL, ids, &error))
      goto out;
  } else if (!parse_ids (ids_json, ids, "--ids", &error)) {
    goto out;
  }
  if (whitelist_json && !parse_ids (whitelist_json, whitelist, "--whitelist", &error))
    goto out;
  if (ids->len == 0) {
    g_set_error (&error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "the prompt has no tokens");
    goto out;
  }

  model = dsocr_model_load (model_dir, &error);
  if (!model)
    goto out;
  {
    const int n_ctx = MAX ((int) ids->len + max_new,
                           dsocr_model_get_config (model)->text.max_position_embeddings);
    session = dsocr_session_new (model, &(dsocr_session_params) {
                                   .n_seq_max = 1, .n_ctx = n_ctx, .n_threads = threads,
                                   .precision = precision }, &error);
  }
  if (!session)
    goto out;
  g_printerr ("dsocr-generate: weights: %s %.2f GiB, on %s\n",
              dsocr_precision_to_string (dsocr_session_get_precision (session)),
              (double) dsocr_session_get_weight_bytes (session) / (1 << 30),
              dsocr_backend_get_description (dsocr_session_get_backend (session)));
  if (indexer_path) {
    if (max_new == 0) {
      g_set_error (&error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "--indexer-scores needs --max-new-tokens of at least 1 (the prompt is run "
                   "with the first token)");
      goto out;
    }
    if (!dsocr_session_set_indexer_outputs (session, DSOCR_INDEXER_ALL, &error))
      goto out;
    out.session = session;
    out.indexer_path = indexer_path;
  }

  dsocr_generate_params_init (&p);
  p.max_new_tokens = max_new;
  p.no_repeat_ngram_size = no_repeat;
  p.ngram_size = window_ngram;
  p.ngram_window = window;
  p.ngram_whitelist = (const int32_t *) whitelist->data;
  p.n_ngram_whitelist = (int) whitelist->len;
  p.do_sample = sample;
  p.temperature = (float) temperature;
  p.top_k = top_k;
  p.top_p = (float) top_p;
  p.seed = (guint64) seed;
  p.callback = on_token;
  p.user_data = &out;
  out.quiet = json;
  if (tok)
    out.stream = dsocr_decode_stream_new (tok, FALSE);

  if (!dsocr_generate (session, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) ids->len,
                                                 .ids = (const int32_t *) ids->data },
                       &p, &res, &error))
    goto out;
  if (out.indexer_error) {
    g_propagate_error (&error, out.indexer_error);
    out.indexer_error = NULL;
    goto out;
  }

  if (json) {
    g_autoptr (JsonBuilder) b = json_builder_new ();
    g_autoptr (JsonGenerator) gen = json_generator_new ();
    g_autoptr (JsonNode) root = NULL;
    g_autofree char *text = NULL;

    json_builder_begin_object (b);
    json_builder_set_member_name (b, "prompt_ids");
    json_builder_begin_array (b);
    for (guint i = 0; i < ids->len; i++)
      json_builder_add_int_value (b, g_array_index (ids, int32_t, i));
    json_builder_end_array (b);
    json_builder_set_member_name (b, "ids");
    json_builder_begin_array (b);
    for (int i = 0; i < res->n_tokens[0]; i++)
      json_builder_add_int_value (b, res->tokens[i]);
    json_builder_end_array (b);
    if (tok) {
      text = dsocr_tokenizer_decode (tok, res->tokens, (gsize) res->n_tokens[0], FALSE, NULL);
      json_builder_set_member_name (b, "text");
      json_builder_add_string_value (b, text);
    }
    json_builder_set_member_name (b, "finish");
    json_builder_add_string_value (b, finish_name (res->finish[0]));
    json_builder_end_object (b);
    root = json_builder_get_root (b);
    json_generator_set_root (gen, root);
    g_autofree char *s = json_generator_to_data (gen, NULL);
    puts (s);
  } else {
    if (out.stream)
      fputs (dsocr_decode_stream_finish (out.stream, NULL), stdout);
    putchar ('\n');
    if (tok) {
      /* the ids too, after the streamed text */
      printf ("ids:");
      for (int i = 0; i < res->n_tokens[0]; i++)
        printf (" %d", res->tokens[i]);
      putchar ('\n');
    }
    fprintf (stderr, "dsocr-generate: %d tokens, finish: %s\n", res->n_tokens[0],
             finish_name (res->finish[0]));
  }
  status = 0;

out:
  if (error)
    g_printerr ("dsocr-generate: %s\n", error->message);
  g_clear_error (&out.indexer_error);
  dsocr_generate_result_free (res);
  dsocr_decode_stream_free (out.stream);
  dsocr_session_free (session);
  dsocr_model_unref (model);
  dsocr_tokenizer_free (tok);
  return status;
}
