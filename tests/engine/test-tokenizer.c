/* test-tokenizer.c: the byte-level BPE tokenizer against goldens made by HF `tokenizers`
 * (tests/reference/make_tokenizer_goldens.py, fixtures in tests/fixtures/tokenizer/).
 *
 * - unicode-classes: the translated regex classes match the reference's, code point by code point
 * - pretok: pre-tokenizer pieces for every branch (Split behaviors, invert, literal patterns,
 *   ByteLevel regex / prefix space, Digits, empty matches, anchors, Ruby syntax)
 * - mini: ids, ids with special tokens, decode, streaming decode on a V3-shaped small tokenizer
 *   and variants (GPT-2 / Llama 3 pre-tokenizers, NFC / NFD, added-token flags, post-processors)
 * - v3 / ocr: the real DeepSeek-V3 tokenizer from shared/ and V3 + the DeepSeek-OCR tokens
 * - errors: malformed tokenizer.json files fail with a message naming the field
 */
#include <json-glib/json-glib.h>
#include <string.h>

#include "dsocr-test.h"
#include "dsocr/dsocr-error.h"
#include "dsocr/dsocr-tokenizer.h"
#include "tokenizer-private.h"

static JsonNode *
load_json_file (const char *path)
{
  JsonParser *p = json_parser_new ();
  GError *error = NULL;
  if (!json_parser_load_from_file (p, path, &error))
    g_error ("%s: %s", path, error->message);
  JsonNode *root = json_node_copy (json_parser_get_root (p));
  g_object_unref (p);
  return root;
}

static JsonNode *
load_fixture (const char *rel)
{
  char *path = dsocr_test_fixture (rel);
  JsonNode *n = load_json_file (path);
  g_free (path);
  return n;
}

/* json_node_copy() shares nested objects; variants must not edit the base */
static JsonNode *
deep_copy (JsonNode *n)
{
  char *s = json_to_string (n, FALSE);
  JsonNode *c = json_from_string (s, NULL);
  g_free (s);
  return c;
}

static dsocr_tokenizer *
tokenizer_from_node (JsonNode *root, const char *config)
{
  char *json = json_to_string (root, FALSE);
  GError *error = NULL;
  dsocr_tokenizer *tok = dsocr_tokenizer_new_from_data (json, -1, config, -1, "test", &error);
  g_assert_no_error (error);
  g_assert_nonnull (tok);
  g_free (json);
  return tok;
}

static GArray *
ids_of_node (JsonNode *n)
{
  JsonArray *a = json_node_get_array (n);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  for (guint i = 0; i < json_array_get_length (a); i++) {
    int32_t v = (int32_t) json_array_get_int_element (a, i);
    g_array_append_val (ids, v);
  }
  return ids;
}

static void
assert_ids (const char *what, const char *text, GArray *got, GArray *want)
{
  gboolean same = got->len == want->len &&
                  (got->len == 0 || memcmp (got->data, want->data, got->len * 4) == 0);
  if (!same) {
    GString *g = g_string_new (NULL), *w = g_string_new (NULL);
    for (guint i = 0; i < got->len; i++)
      g_string_append_printf (g, " %d", g_array_index (got, int32_t, i));
    for (guint i = 0; i < want->len; i++)
      g_string_append_printf (w, " %d", g_array_index (want, int32_t, i));
    g_error ("%s: \"%s\"\n got:%s\nwant:%s", what, text, g->str, w->str);
  }
}

static GArray *
encode (const dsocr_tokenizer *tok, const char *text, dsocr_tokenize_flags flags)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  GError *error = NULL;
  g_assert_true (dsocr_tokenizer_encode (tok, text, -1, flags, ids, &error));
  g_assert_no_error (error);
  return ids;
}

/* Valid UTF-8 where NUL bytes (the decoded token of byte 0) are allowed. */
static gboolean
utf8_ok (const char *s, gsize n)
{
  const char *end;
  while (!g_utf8_validate_len (s, n, &end)) {
    if (*end != '\0')
      return FALSE;
    n -= end + 1 - s;
    s = end + 1;
  }
  return TRUE;
}

/* Streams @ids one by one: every piece is valid UTF-8 and the pieces add up to the full
 * decode. */
static void
check_stream (const dsocr_tokenizer *tok, GArray *ids, gboolean skip)
{
  gsize full_len;
  char *full = dsocr_tokenizer_decode (tok, (int32_t *) ids->data, ids->len, skip, &full_len);
  g_assert_true (utf8_ok (full, full_len));
  dsocr_decode_stream *st = dsocr_decode_stream_new (tok, skip);
  GString *acc = g_string_new (NULL);
  for (guint i = 0; i < ids->len; i++) {
    gsize len;
    const char *piece = dsocr_decode_stream_push (st, g_array_index (ids, int32_t, i), &len);
    g_assert_true (utf8_ok (piece, len));
    g_string_append_len (acc, piece, len);
  }
  gsize len;
  const char *last = dsocr_decode_stream_finish (st, &len);
  g_string_append_len (acc, last, len);
  g_assert_cmpmem (acc->str, acc->len, full, full_len);
  dsocr_decode_stream_free (st);
  g_string_free (acc, TRUE);
  g_free (full);
}

static void
check_decode_cases (const dsocr_tokenizer *tok, JsonArray *cases)
{
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    GArray *ids = ids_of_node (json_object_get_member (c, "ids"));
    for (int skip = 0; skip < 2; skip++) {
      /* json-glib ends strings at a NUL, so the comparison does too */
      const char *want = json_object_get_string_member (c, skip ? "text_skip" : "text");
      char *got = dsocr_tokenizer_decode (tok, (int32_t *) ids->data, ids->len, skip, NULL);
      g_assert_cmpstr (got, ==, want);
      check_stream (tok, ids, skip);
      g_free (got);
    }
    g_array_unref (ids);
  }
}

/* Checks encode against every case; @roundtrip also checks decode(encode(x)) == x. */
static void
check_encode_cases (const dsocr_tokenizer *tok, JsonArray *cases, const char *what,
                    gboolean roundtrip)
{
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *text = json_object_get_string_member (c, "text");
    GArray *want = ids_of_node (json_object_get_member (c, "ids"));
    GArray *got = encode (tok, text, DSOCR_TOKENIZE_NONE);
    assert_ids (what, text, got, want);
    if (roundtrip) {
      char *back = dsocr_tokenizer_decode (tok, (int32_t *) got->data, got->len, FALSE, NULL);
      g_assert_cmpstr (back, ==, text);
      g_free (back);
    }
    if (json_object_has_member (c, "ids_special")) {
      GArray *want_sp = ids_of_node (json_object_get_member (c, "ids_special"));
      GArray *got_sp = encode (tok, text, DSOCR_TOKENIZE_ADD_SPECIAL);
      assert_ids (what, text, got_sp, want_sp);
      g_array_unref (want_sp);
      g_array_unref (got_sp);
    }
    g_array_unref (want);
    g_array_unref (got);
  }
}

/* ---- tests ---- */

static void
test_unicode_classes (void)
{
  JsonNode *root = load_fixture ("tokenizer/unicode-classes.json");
  JsonObject *classes = json_object_get_object_member (json_node_get_object (root), "classes");
  GList *names = json_object_get_members (classes);
  pcre2_match_data *md = pcre2_match_data_create (4, NULL);
  guint8 *want = g_malloc (0x110000);
  for (GList *l = names; l; l = l->next) {
    JsonObject *c = json_object_get_object_member (classes, l->data);
    const char *pattern = json_object_get_string_member (c, "pattern");
    JsonArray *ranges = json_object_get_array_member (c, "ranges");
    memset (want, 0, 0x110000);
    for (guint i = 0; i < json_array_get_length (ranges); i++) {
      JsonArray *r = json_array_get_array_element (ranges, i);
      for (gint64 cp = json_array_get_int_element (r, 0); cp <= json_array_get_int_element (r, 1);
           cp++)
        want[cp] = 1;
    }
    GError *error = NULL;
    pcre2_code *re = dsocr_tok_regex_compile (pattern, pattern, &error);
    g_assert_no_error (error);
    guint bad = 0;
    for (gunichar cp = 1; cp < 0x110000; cp++) {
      if (cp >= 0xD800 && cp <= 0xDFFF)
        continue;
      char buf[8];
      int n = g_unichar_to_utf8 (cp, buf);
      gboolean got = pcre2_match (re, (PCRE2_SPTR) buf, n, 0, PCRE2_ANCHORED, md, NULL) >= 0;
      if (got != want[cp] && bad++ < 5)
        g_printerr ("class %s (%s): U+%04X reference %d, here %d\n", (char *) l->data, pattern,
                    cp, want[cp], got);
    }
    g_assert_cmpuint (bad, ==, 0);
    pcre2_code_free (re);
  }
  g_free (want);
  pcre2_match_data_free (md);
  g_list_free (names);
  json_node_unref (root);
}

static void
test_regex_translate (void)
{
  struct {
    const char *onig, *pcre2;
  } cases[] = {
    { "\\s+(?!\\S)", "[\\x{09}-\\x{0D}" }, /* prefix only */
    { "(?m:a.b)", "(?s:a.b)" },
    { "a{,2}", "a{0,2}" },
    { "\\u00e9", "\\x{00e9}" },
    { "\\p{Han}+", "\\p{Han}+" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *error = NULL;
    char *got = dsocr_tok_regex_translate (cases[i].onig, "test", &error);
    g_assert_no_error (error);
    g_assert_true (g_str_has_prefix (got, cases[i].pcre2));
    g_free (got);
  }
  const char *bad[] = { "[a-z&&[^aeiou]]", "[a[b]]", "abc\\", "[[:alpha:]]" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    GError *error = NULL;
    g_assert_null (dsocr_tok_regex_translate (bad[i], "test", &error));
    g_assert_nonnull (error);
    g_error_free (error);
  }
}

static void
test_pretok (void)
{
  JsonNode *mini = load_fixture ("tokenizer/mini/tokenizer.json");
  JsonNode *gold = load_fixture ("tokenizer/pretok-goldens.json");
  JsonObject *configs = json_object_get_object_member (json_node_get_object (gold), "configs");
  GList *names = json_object_get_members (configs);
  for (GList *l = names; l; l = l->next) {
    JsonObject *cfg = json_object_get_object_member (configs, l->data);
    JsonNode *root = deep_copy (mini);
    json_object_set_member (json_node_get_object (root), "pre_tokenizer",
                            json_node_copy (json_object_get_member (cfg, "pre_tokenizer")));
    dsocr_tokenizer *tok = tokenizer_from_node (root, NULL);
    JsonArray *cases = json_object_get_array_member (cfg, "cases");
    for (guint i = 0; i < json_array_get_length (cases); i++) {
      JsonObject *c = json_array_get_object_element (cases, i);
      const char *text = json_object_get_string_member (c, "text");
      JsonArray *want = json_object_get_array_member (c, "pieces");
      GError *error = NULL;
      GPtrArray *got = dsocr_tok_pre_tokenize (tok, text, strlen (text), &error);
      g_assert_no_error (error);
      gboolean same = got->len == json_array_get_length (want);
      for (guint k = 0; same && k < got->len; k++) {
        gsize n;
        const char *p = g_bytes_get_data (got->pdata[k], &n);
        const char *w = json_array_get_string_element (want, k);
        same = n == strlen (w) && memcmp (p, w, n) == 0;
      }
      if (!same) {
        GString *s = g_string_new (NULL);
        for (guint k = 0; k < got->len; k++) {
          gsize n;
          const char *p = g_bytes_get_data (got->pdata[k], &n);
          g_string_append_printf (s, "[%.*s]", (int) n, p);
        }
        char *w = json_to_string (json_object_get_member (c, "pieces"), FALSE);
        g_error ("pre-tokenizer %s on \"%s\":\n got %s\nwant %s", (char *) l->data, text,
                 s->str, w);
      }
      g_ptr_array_unref (got);
    }
    dsocr_tokenizer_free (tok);
    json_node_unref (root);
  }
  g_list_free (names);
  json_node_unref (gold);
  json_node_unref (mini);
}

/* make_tokenizer_goldens.py's apply_variant() */
static JsonNode *
apply_variant (JsonNode *base, JsonObject *v)
{
  JsonNode *root = deep_copy (base);
  JsonObject *o = json_node_get_object (root);
  const char *keys[] = { "pre_tokenizer", "normalizer", "post_processor", "decoder" };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    if (json_object_has_member (v, keys[i]))
      json_object_set_member (o, keys[i], json_node_copy (json_object_get_member (v, keys[i])));
  if (json_object_has_member (v, "ignore_merges"))
    json_object_set_boolean_member (json_object_get_object_member (o, "model"), "ignore_merges",
                                    TRUE);
  if (json_object_has_member (v, "extra_added")) {
    JsonArray *added = json_object_get_array_member (o, "added_tokens");
    JsonArray *extra = json_object_get_array_member (v, "extra_added");
    for (guint i = 0; i < json_array_get_length (extra); i++)
      json_array_add_element (added, json_node_copy (json_array_get_element (extra, i)));
  }
  return root;
}

static void
test_mini (void)
{
  JsonNode *mini = load_fixture ("tokenizer/mini/tokenizer.json");
  JsonNode *gold = load_fixture ("tokenizer/goldens-mini.json");
  JsonObject *variants = json_object_get_object_member (json_node_get_object (gold), "variants");
  GList *names = json_object_get_members (variants);
  for (GList *l = names; l; l = l->next) {
    JsonObject *v = json_object_get_object_member (variants, l->data);
    JsonNode *root = apply_variant (mini, json_object_get_object_member (v, "override"));
    /* without tokenizer_config.json the post_processor decides the special tokens */
    dsocr_tokenizer *tok = tokenizer_from_node (root, NULL);
    g_assert_cmpuint (dsocr_tokenizer_get_vocab_size (tok), ==,
                      json_object_get_int_member (v, "vocab_size"));
    gboolean roundtrip = strcmp (l->data, "base") == 0 || strcmp (l->data, "llama3") == 0;
    check_encode_cases (tok, json_object_get_array_member (v, "cases"), l->data, roundtrip);
    check_decode_cases (tok, json_object_get_array_member (v, "decode"));
    dsocr_tokenizer_free (tok);
    json_node_unref (root);
  }
  g_list_free (names);
  json_node_unref (gold);
  json_node_unref (mini);
}

static void
test_mini_config (void)
{
  /* tokenizer_config.json's add_bos_token wins over the post_processor (ByteLevel here) */
  char *dir = dsocr_test_fixture ("tokenizer/mini");
  GError *error = NULL;
  dsocr_tokenizer *tok = dsocr_tokenizer_load (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpint (dsocr_tokenizer_get_bos_id (tok), ==, 0);
  g_assert_cmpint (dsocr_tokenizer_get_eos_id (tok), ==, 1);
  g_assert_cmpint (dsocr_tokenizer_get_pad_id (tok), ==, 2);
  GArray *plain = encode (tok, "Hello <image> world", DSOCR_TOKENIZE_NONE);
  GArray *sp = encode (tok, "Hello <image> world", DSOCR_TOKENIZE_ADD_SPECIAL);
  g_assert_cmpuint (sp->len, ==, plain->len + 1);
  g_assert_cmpint (g_array_index (sp, int32_t, 0), ==, 0);
  g_assert_cmpmem (sp->data + 4, plain->len * 4, plain->data, plain->len * 4);
  g_assert_true (dsocr_tokenizer_is_special (tok, dsocr_tokenizer_token_to_id (tok, "<image>")));
  g_assert_false (dsocr_tokenizer_is_special (tok, dsocr_tokenizer_token_to_id (tok, "<｜User｜>")));
  g_assert_cmpstr (dsocr_tokenizer_id_to_token (tok, 0), ==, "<｜begin▁of▁sentence｜>");
  g_assert_null (dsocr_tokenizer_id_to_token (tok, -1));
  g_assert_cmpint (dsocr_tokenizer_token_to_id (tok, "no such token"), ==, -1);
  /* encode appends to what the array holds */
  GError *err = NULL;
  g_assert_true (dsocr_tokenizer_encode (tok, "x", 1, DSOCR_TOKENIZE_ADD_SPECIAL, plain, &err));
  g_assert_cmpint (g_array_index (plain, int32_t, plain->len - 2), ==, 0);
  /* invalid UTF-8 is refused and leaves the ids alone */
  guint len = plain->len;
  g_assert_false (dsocr_tokenizer_encode (tok, "ab\xff", 3, 0, plain, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_cmpuint (plain->len, ==, len);
  g_clear_error (&err);
  g_array_unref (plain);
  g_array_unref (sp);
  dsocr_tokenizer_free (tok);
  g_free (dir);
}

static void
test_v3 (void)
{
  char *dir = dsocr_test_shared ("tokenizers/deepseek-v3");
  if (!dir) {
    g_test_skip ("shared/tokenizers/deepseek-v3 is absent");
    return;
  }
  GError *error = NULL;
  dsocr_tokenizer *tok = dsocr_tokenizer_load (dir, &error);
  g_assert_no_error (error);
  JsonNode *gold = load_fixture ("tokenizer/goldens-v3.json");
  JsonObject *g = json_node_get_object (gold);
  g_assert_cmpuint (dsocr_tokenizer_get_vocab_size (tok), ==,
                    json_object_get_int_member (g, "vocab_size"));
  g_assert_cmpint (dsocr_tokenizer_get_bos_id (tok), ==, 0);
  g_assert_cmpint (dsocr_tokenizer_get_eos_id (tok), ==, 1);
  g_assert_cmpint (dsocr_tokenizer_get_pad_id (tok), ==, 1);
  check_encode_cases (tok, json_object_get_array_member (g, "cases"), "deepseek-v3", TRUE);
  check_decode_cases (tok, json_object_get_array_member (g, "decode"));
  /* DeepSeek-OCR's prompt rule: [BOS] + ids */
  GArray *sp = encode (tok, "<｜User｜>Free OCR.", DSOCR_TOKENIZE_ADD_SPECIAL);
  GArray *plain = encode (tok, "<｜User｜>Free OCR.", DSOCR_TOKENIZE_NONE);
  g_assert_cmpint (g_array_index (sp, int32_t, 0), ==, 0);
  g_assert_cmpuint (sp->len, ==, plain->len + 1);
  g_array_unref (sp);
  g_array_unref (plain);
  json_node_unref (gold);
  dsocr_tokenizer_free (tok);
  g_free (dir);
}

static gpointer
encode_thread (gpointer data)
{
  const dsocr_tokenizer *tok = data;
  GArray *first = encode (tok, "Parallel encoding of the same words words words 123 你好", 0);
  for (int i = 0; i < 200; i++) {
    GArray *again = encode (tok, "Parallel encoding of the same words words words 123 你好", 0);
    assert_ids ("thread", "", again, first);
    g_array_unref (again);
  }
  g_array_unref (first);
  return NULL;
}

static void
test_ocr (void)
{
  char *path = dsocr_test_shared ("tokenizers/deepseek-v3/tokenizer.json");
  if (!path) {
    g_test_skip ("shared/tokenizers/deepseek-v3 is absent");
    return;
  }
  /* DeepSeek-OCR's tokenizer = DeepSeek-V3's + twelve added tokens */
  JsonNode *root = load_json_file (path);
  JsonNode *ocr = load_fixture ("tokenizer/ocr-added-tokens.json");
  JsonArray *added = json_object_get_array_member (json_node_get_object (root), "added_tokens");
  JsonArray *extra = json_node_get_array (ocr);
  for (guint i = 0; i < json_array_get_length (extra); i++)
    json_array_add_element (added, json_node_copy (json_array_get_element (extra, i)));
  dsocr_tokenizer *tok = tokenizer_from_node (root, NULL);

  const char *names[] = { "<image>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>",
                          "<|grounding|>", "<td>", "</td>", "<tr>", "</tr>", "<|User|>",
                          "<|Assistant|>" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    g_assert_cmpint (dsocr_tokenizer_token_to_id (tok, names[i]), ==, 128815 + (int) i);
  JsonNode *gold = load_fixture ("tokenizer/goldens-v3.json");
  JsonObject *g = json_node_get_object (gold);
  g_assert_cmpuint (dsocr_tokenizer_get_vocab_size (tok), ==,
                    json_object_get_int_member (g, "vocab_size_ocr"));
  check_encode_cases (tok, json_object_get_array_member (g, "ocr_cases"), "deepseek-ocr", TRUE);
  check_decode_cases (tok, json_object_get_array_member (g, "ocr_decode"));

  GThread *th[4];
  for (int i = 0; i < 4; i++)
    th[i] = g_thread_new ("enc", encode_thread, tok);
  for (int i = 0; i < 4; i++)
    g_thread_join (th[i]);

  dsocr_tokenizer_free (tok);
  json_node_unref (gold);
  json_node_unref (ocr);
  json_node_unref (root);
  g_free (path);
}

/* ---- malformed files ---- */

static void
expect_error (const char *json, int code, const char *needle)
{
  GError *error = NULL;
  dsocr_tokenizer *tok = dsocr_tokenizer_new_from_data (json, -1, NULL, 0, "bad.json", &error);
  g_assert_null (tok);
  g_assert_nonnull (error);
  if (error->code != code || !strstr (error->message, needle))
    g_error ("for %s\nexpected code %d with \"%s\", got %d: %s", json, code, needle, error->code,
             error->message);
  g_error_free (error);
}

#define MODEL_OK "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"
#define PRE_OK "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false}"

static void
test_errors (void)
{
  expect_error ("not json", DSOCR_ERROR_FORMAT, "bad JSON");
  expect_error ("[1, 2]", DSOCR_ERROR_FORMAT, "top level");
  expect_error ("{" PRE_OK "}", DSOCR_ERROR_FORMAT, "model is missing");
  expect_error ("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", DSOCR_ERROR_UNSUPPORTED,
                "model.type \"Unigram\"");
  expect_error ("{\"model\":{\"vocab\":{\"a\":\"x\"},\"merges\":[]}," PRE_OK "}",
                DSOCR_ERROR_FORMAT, "model.vocab[\"a\"]");
  expect_error ("{\"model\":{\"vocab\":{\"a\":-3},\"merges\":[]}}", DSOCR_ERROR_FORMAT,
                "model.vocab[\"a\"]");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0},\"merges\":{}}}", DSOCR_ERROR_FORMAT,
                "model.merges");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b c\"]}}",
                DSOCR_ERROR_FORMAT, "model.merges[0]");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
                DSOCR_ERROR_FORMAT, "token \"ab\" is not in model.vocab");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}", DSOCR_ERROR_FORMAT,
                "model.merges[0] is neither");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}}",
                DSOCR_ERROR_UNSUPPORTED, "dropout");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}",
                DSOCR_ERROR_FORMAT, "unk_token");
  expect_error ("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"byte_fallback\":1}}",
                DSOCR_ERROR_FORMAT, "model.byte_fallback is not a boolean");
  expect_error ("{" MODEL_OK "}", DSOCR_ERROR_UNSUPPORTED, "no ByteLevel");
  expect_error ("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Metaspace\"}}",
                DSOCR_ERROR_UNSUPPORTED, "pre_tokenizer.type \"Metaspace\"");
  expect_error ("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}]}}",
                DSOCR_ERROR_FORMAT, "pre_tokenizer.pretokenizers[0].pattern: bad regex");
  expect_error ("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                "\"a\"},\"behavior\":\"Sideways\"}}",
                DSOCR_ERROR_FORMAT, "behavior \"Sideways\"");
  expect_error ("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{}}}",
                DSOCR_ERROR_FORMAT, "neither Regex nor String");
  expect_error ("{" MODEL_OK ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                "{\"type\":\"ByteLevel\"},{\"type\":\"Digits\"}]}}",
                DSOCR_ERROR_UNSUPPORTED, "after ByteLevel");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"normalizer\":{\"type\":\"Lowercase\"}}",
                DSOCR_ERROR_UNSUPPORTED, "normalizer.type \"Lowercase\"");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"normalizer\":{\"type\":\"Sequence\","
                "\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"NFKC\"}]}}",
                DSOCR_ERROR_UNSUPPORTED, "normalizer.normalizers[1].type \"NFKC\"");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"decoder\":{\"type\":\"WordPiece\"}}",
                DSOCR_ERROR_UNSUPPORTED, "decoder.type \"WordPiece\"");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"post_processor\":{\"type\":\"TemplateProcessing\","
                "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":{}}}",
                DSOCR_ERROR_FORMAT, "post_processor.single[0]");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"added_tokens\":{}}", DSOCR_ERROR_FORMAT,
                "added_tokens is not an array");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"added_tokens\":[{\"id\":3}]}", DSOCR_ERROR_FORMAT,
                "added_tokens[0].content is missing");
  expect_error ("{" MODEL_OK "," PRE_OK ",\"added_tokens\":[{\"content\":\"x\",\"special\":\"y\"}]}",
                DSOCR_ERROR_FORMAT, "added_tokens[0].special is not a boolean");
  expect_error ("{\"model\":{\"vocab\":{\"a\":2000000000},\"merges\":[]}," PRE_OK "}",
                DSOCR_ERROR_FORMAT, "too sparse");

  /* a minimal valid file loads, and a missing file is a FILE error */
  GError *error = NULL;
  dsocr_tokenizer *tok =
      dsocr_tokenizer_new_from_data ("{" MODEL_OK "," PRE_OK "}", -1, NULL, 0, "ok", &error);
  g_assert_no_error (error);
  GArray *ids = encode (tok, "abab", 0);
  g_assert_cmpuint (ids->len, ==, 2);
  g_assert_cmpint (g_array_index (ids, int32_t, 0), ==, 2);
  g_array_unref (ids);
  dsocr_tokenizer_free (tok);
  g_assert_null (dsocr_tokenizer_load ("/nonexistent/tokenizer.json", &error));
  g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE);
  g_clear_error (&error);
  g_assert_null (dsocr_tokenizer_new_from_data ("{" MODEL_OK "," PRE_OK "}", -1, "{\"add_bos_token\":3}",
                                                -1, "cfg", &error));
  g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "tokenizer_config.json"));
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tokenizer/regex-translate", test_regex_translate);
  g_test_add_func ("/tokenizer/unicode-classes", test_unicode_classes);
  g_test_add_func ("/tokenizer/pretok", test_pretok);
  g_test_add_func ("/tokenizer/mini", test_mini);
  g_test_add_func ("/tokenizer/mini-config", test_mini_config);
  g_test_add_func ("/tokenizer/errors", test_errors);
  g_test_add_func ("/tokenizer/v3", test_v3);
  g_test_add_func ("/tokenizer/ocr", test_ocr);
  return g_test_run ();
}
