/* dsocr-classify: label scores of a DeepseekV2ForSequenceClassification checkpoint.
 *
 *   dsocr-classify --model DIR (--text TEXT | --ids JSON) [--first-pad] [--json]
 *
 * --text is encoded with the model directory's tokenizer.json (special tokens added, as
 * transformers' tokenizer call does). Prints one line per label: its name, logit and
 * probability (softmax for single-label problems, sigmoid for multi-label ones; regression
 * heads print the raw outputs). Exit status 0 on success, 1 on an error, 2 on bad usage. */
#include <math.h>
#include <stdio.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-classify.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>
#include <dsocr/dsocr-tokenizer.h>
#include <json-glib/json-glib.h>

static gboolean
parse_ids (const char *json, GArray *ids, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonArray *arr;

  if (!json_parser_load_from_data (parser, json, -1, error))
    return FALSE;
  if (!JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser))) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "--ids: expected a JSON array of ids");
    return FALSE;
  }
  arr = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonNode *n = json_array_get_element (arr, i);
    gint64 v;
    int32_t id;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64 ||
        (v = json_node_get_int (n)) < 0 || v > G_MAXINT32) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "--ids: element %u is not a non-negative integer id", i);
      return FALSE;
    }
    id = (int32_t) v;
    g_array_append_val (ids, id);
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *text = NULL, *ids_json = NULL, *precision_name = NULL;
  dsocr_precision precision = DSOCR_PRECISION_DEFAULT;
  gboolean json = FALSE, first_pad = FALSE;
  int threads = 0;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir, "Model directory", "DIR" },
    { "text", 0, 0, G_OPTION_ARG_STRING, &text, "Text to classify (needs tokenizer.json)",
      "TEXT" },
    { "ids", 0, 0, G_OPTION_ARG_STRING, &ids_json, "Token ids to classify", "JSON" },
    { "first-pad", 0, 0, G_OPTION_ARG_NONE, &first_pad,
      "Pool the token before the first pad (the hub code's rule)", NULL },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads, 0 = all processors", "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_name,
      "f32, bf16, q8 or q4: how the weights are held (docs/numerics.md); default f32", "P" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- classify a text");
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  dsocr_tokenizer *tok = NULL;
  dsocr_model *model = NULL;
  dsocr_session *session = NULL;
  g_autofree float *logits = NULL;
  const dsocr_config *cfg;
  int n_labels, pooled = 0, status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("dsocr-classify: %s\n", error->message);
    return 2;
  }
  if (!model_dir || (!text == !ids_json) || threads < 0) {
    g_printerr ("dsocr-classify: need --model DIR and exactly one of --text / --ids\n");
    return 2;
  }
  if (precision_name && !dsocr_precision_from_string (precision_name, &precision, &error)) {
    g_printerr ("dsocr-classify: --precision: %s\n", error->message);
    return 2;
  }
  if (text) {
    tok = dsocr_tokenizer_load (model_dir, &error);
    if (!tok || !dsocr_tokenizer_encode (tok, text, -1, DSOCR_TOKENIZE_ADD_SPECIAL, ids, &error))
      goto out;
  } else if (!parse_ids (ids_json, ids, &error)) {
    goto out;
  }
  if (ids->len == 0) {
    g_set_error (&error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "nothing to classify: no tokens");
    goto out;
  }

  model = dsocr_model_load (model_dir, &error);
  if (!model)
    goto out;
  cfg = dsocr_model_get_config (model);
  session = dsocr_session_new (model, &(dsocr_session_params) {
                                 .n_ctx = MAX ((int) ids->len, cfg->text.max_position_embeddings),
                                 .n_threads = threads, .precision = precision },
                               &error);
  if (!session)
    goto out;
  g_printerr ("dsocr-classify: weights: %s %.2f GiB, on %s\n",
              dsocr_precision_to_string (dsocr_session_get_precision (session)),
              (double) dsocr_session_get_weight_bytes (session) / (1 << 30),
              dsocr_backend_get_description (dsocr_session_get_backend (session)));
  n_labels = dsocr_model_get_n_labels (model);
  logits = g_new0 (float, MAX (n_labels, 1));
  if (!dsocr_classify (session, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) ids->len,
                                                 .ids = (const int32_t *) ids->data },
                       first_pad ? DSOCR_POOL_BEFORE_FIRST_PAD : DSOCR_POOL_LAST_NON_PAD, logits,
                       &pooled, &error))
    goto out;

  {
    /* Scores as the problem type reads the logits. */
    dsocr_problem_type pt = cfg->problem_type;
    g_autofree double *prob = g_new (double, n_labels);
    double max = -INFINITY, sum = 0.0;

    if (pt == DSOCR_PROBLEM_NONE)
      pt = n_labels == 1 ? DSOCR_PROBLEM_REGRESSION : DSOCR_PROBLEM_SINGLE_LABEL;
    for (int i = 0; i < n_labels; i++)
      max = MAX (max, (double) logits[i]);
    for (int i = 0; i < n_labels; i++)
      sum += exp ((double) logits[i] - max);
    for (int i = 0; i < n_labels; i++)
      prob[i] = pt == DSOCR_PROBLEM_SINGLE_LABEL  ? exp ((double) logits[i] - max) / sum
                : pt == DSOCR_PROBLEM_MULTI_LABEL ? 1.0 / (1.0 + exp (-(double) logits[i]))
                                                  : (double) logits[i];

    if (json) {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      g_autoptr (JsonGenerator) gen = json_generator_new ();
      g_autoptr (JsonNode) root = NULL;
      g_autofree char *s = NULL;

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "pooled_index");
      json_builder_add_int_value (b, pooled);
      json_builder_set_member_name (b, "labels");
      json_builder_begin_array (b);
      for (int i = 0; i < n_labels; i++) {
        json_builder_begin_object (b);
        json_builder_set_member_name (b, "label");
        json_builder_add_string_value (b, cfg->id2label[i]);
        json_builder_set_member_name (b, "logit");
        json_builder_add_double_value (b, logits[i]);
        json_builder_set_member_name (b, "score");
        json_builder_add_double_value (b, prob[i]);
        json_builder_end_object (b);
      }
      json_builder_end_array (b);
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      json_generator_set_root (gen, root);
      s = json_generator_to_data (gen, NULL);
      puts (s);
    } else {
      for (int i = 0; i < n_labels; i++)
        printf ("%s\t%.6f\t%.6f\n", cfg->id2label[i], logits[i], prob[i]);
    }
  }
  status = 0;

out:
  if (error)
    g_printerr ("dsocr-classify: %s\n", error->message);
  dsocr_session_free (session);
  dsocr_model_unref (model);
  dsocr_tokenizer_free (tok);
  return status;
}
