/* dsocr-tokenize: text <-> token ids with a model's tokenizer.json.
 *
 *   printf 'Hello world' | dsocr-tokenize --tokenizer /models/deepseek-v3
 *   [0, 19923, 2058]
 *   echo "[0, 19923, 2058]" | dsocr-tokenize --tokenizer /models/deepseek-v3 --decode --no-special
 *   Hello world
 *
 * Encoding reads UTF-8 text on stdin and prints a JSON array of ids; it adds the special tokens
 * the tokenizer's configuration asks for (BOS for DeepSeek) unless --no-special. Decoding
 * reads a JSON array of ids and prints the text as it is (no newline added); --no-special
 * drops special tokens.
 */
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-tokenizer.h>

static GByteArray *
read_stdin (void)
{
  GByteArray *buf = g_byte_array_new ();
  guint8 chunk[65536];
  size_t n;
  while ((n = fread (chunk, 1, sizeof chunk, stdin)) > 0)
    g_byte_array_append (buf, chunk, (guint) n);
  return buf;
}

static gboolean
encode (const dsocr_tokenizer *tok, GByteArray *in, gboolean special, GError **error)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  gboolean ok = dsocr_tokenizer_encode (tok, (const char *) in->data, in->len,
                                        special ? DSOCR_TOKENIZE_ADD_SPECIAL : 0, ids, error);
  if (ok) {
    GString *out = g_string_new ("[");
    for (guint i = 0; i < ids->len; i++)
      g_string_append_printf (out, "%s%d", i ? ", " : "", g_array_index (ids, int32_t, i));
    g_string_append (out, "]\n");
    fwrite (out->str, 1, out->len, stdout);
    g_string_free (out, TRUE);
  }
  g_array_unref (ids);
  return ok;
}

static gboolean
decode (const dsocr_tokenizer *tok, GByteArray *in, gboolean skip_special, GError **error)
{
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  gboolean ok = FALSE;
  if (!json_parser_load_from_data (parser, (const char *) in->data, in->len, &err)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "stdin: not JSON: %s", err->message);
    g_error_free (err);
    goto out;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_ARRAY (root)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "stdin: expected a JSON array of ids");
    goto out;
  }
  JsonArray *arr = json_node_get_array (root);
  guint n = json_array_get_length (arr);
  int32_t *ids = g_new (int32_t, n + 1);
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (arr, i);
    gint64 v;
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64 ||
        (v = json_node_get_int (e)) < G_MININT32 || v > G_MAXINT32) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "stdin: element %u is not an id", i);
      g_free (ids);
      goto out;
    }
    ids[i] = (int32_t) v;
  }
  gsize len;
  char *text = dsocr_tokenizer_decode (tok, ids, n, skip_special, &len);
  fwrite (text, 1, len, stdout);
  g_free (text);
  g_free (ids);
  ok = TRUE;
out:
  g_object_unref (parser);
  return ok;
}

int
main (int argc, char **argv)
{
  char *path = NULL;
  gboolean do_decode = FALSE, no_special = FALSE;
  GOptionEntry entries[] = {
    { "tokenizer", 't', 0, G_OPTION_ARG_FILENAME, &path,
      "tokenizer.json, or the model directory holding it", "PATH" },
    { "decode", 'd', 0, G_OPTION_ARG_NONE, &do_decode,
      "read a JSON array of ids and print the text", NULL },
    { "no-special", 0, 0, G_OPTION_ARG_NONE, &no_special,
      "encode without BOS/EOS; decode without special tokens", NULL },
    { NULL },
  };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- token ids from UTF-8 text on stdin, or back");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !path) {
    g_printerr ("dsocr-tokenize: %s\n", error ? error->message : "--tokenizer PATH is required");
    g_clear_error (&error);
    g_option_context_free (ctx);
    g_free (path);
    return 2;
  }
  g_option_context_free (ctx);

  int status = 1;
  dsocr_tokenizer *tok = dsocr_tokenizer_load (path, &error);
  if (tok) {
    GByteArray *in = read_stdin ();
    if (do_decode ? decode (tok, in, no_special, &error) : encode (tok, in, !no_special, &error))
      status = 0;
    g_byte_array_unref (in);
  }
  if (error)
    g_printerr ("dsocr-tokenize: %s\n", error->message);
  g_clear_error (&error);
  dsocr_tokenizer_free (tok);
  g_free (path);
  return status;
}
