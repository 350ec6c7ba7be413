/* fuzz-tokenizer.c: libFuzzer target for the tokenizer. The first input byte picks the mode:
 *   0x01: the rest is int32 ids: decode, with and without special tokens, must equal the
 *         streamed pieces put together, each piece whole UTF-8;
 *   0x02: the rest is a tokenizer.json: loading fails with a DSOCR_ERROR or gives a tokenizer
 *         that encodes and decodes a fixed text;
 *   else: the whole input is text. Invalid UTF-8 must be refused with DSOCR_ERROR_INVALID;
 *         valid text must come back unchanged from decode(encode(text)) on the fixture
 *         tokenizer (tests/fixtures/tokenizer/mini) and, when shared/ is there, on DeepSeek-V3.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dsocr/dsocr-error.h>
#include <dsocr/dsocr-tokenizer.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static dsocr_tokenizer *toks[2];
static int n_toks = -1;

static void
load_tokenizers (void)
{
  const char *fixtures = g_getenv ("DSOCR_FIXTURES_DIR");
  const char *shared = g_getenv ("DSOCR_SHARED_DIR");
  char *mini = g_build_filename (fixtures ? fixtures : "tests/fixtures", "tokenizer", "mini", NULL);
  char *v3 = g_build_filename (shared ? shared : "../shared", "tokenizers", "deepseek-v3", NULL);
  n_toks = 0;
  /* kept for the whole run: the static pointers keep them reachable */
  if ((toks[n_toks] = dsocr_tokenizer_load (mini, NULL)))
    n_toks++;
  if (g_file_test (v3, G_FILE_TEST_IS_DIR) && (toks[n_toks] = dsocr_tokenizer_load (v3, NULL)))
    n_toks++;
  if (n_toks == 0)
    __builtin_trap ();  /* the fixture must load */
  g_free (mini);
  g_free (v3);
}

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

static void
check_decode (const dsocr_tokenizer *tok, const int32_t *ids, gsize n, gboolean skip)
{
  gsize full_len;
  char *full = dsocr_tokenizer_decode (tok, ids, n, skip, &full_len);
  if (!utf8_ok (full, full_len))
    __builtin_trap ();
  dsocr_decode_stream *st = dsocr_decode_stream_new (tok, skip);
  GString *acc = g_string_new (NULL);
  for (gsize i = 0; i < n; i++) {
    gsize len;
    const char *piece = dsocr_decode_stream_push (st, ids[i], &len);
    if (!utf8_ok (piece, len))
      __builtin_trap ();
    g_string_append_len (acc, piece, len);
  }
  gsize len;
  const char *last = dsocr_decode_stream_finish (st, &len);
  g_string_append_len (acc, last, len);
  if (acc->len != full_len || memcmp (acc->str, full, full_len) != 0)
    __builtin_trap ();
  g_string_free (acc, TRUE);
  dsocr_decode_stream_free (st);
  g_free (full);
}

static void
check_text (const dsocr_tokenizer *tok, const char *text, gsize n, gboolean roundtrip)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  GError *error = NULL;
  gboolean valid = g_utf8_validate_len (text, n, NULL);
  gboolean ok = dsocr_tokenizer_encode (tok, text, (gssize) n, DSOCR_TOKENIZE_NONE, ids, &error);
  if (ok != valid)
    __builtin_trap ();
  if (!ok) {
    if (!g_error_matches (error, DSOCR_ERROR, DSOCR_ERROR_INVALID) || ids->len != 0)
      __builtin_trap ();
    g_error_free (error);
  } else {
    gsize len;
    char *back = dsocr_tokenizer_decode (tok, (int32_t *) ids->data, ids->len, FALSE, &len);
    if (roundtrip && (len != n || memcmp (back, text, n) != 0))
      __builtin_trap ();
    g_free (back);
    check_decode (tok, (int32_t *) ids->data, ids->len, TRUE);
  }
  g_array_unref (ids);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (n_toks < 0)
    load_tokenizers ();

  if (size > 0 && data[0] == 0x01) {
    gsize n = (size - 1) / 4;
    int32_t *ids = g_new (int32_t, n + 1);
    memcpy (ids, data + 1, n * 4);
    for (int t = 0; t < n_toks; t++) {
      check_decode (toks[t], ids, n, FALSE);
      check_decode (toks[t], ids, n, TRUE);
    }
    g_free (ids);
    return 0;
  }
  if (size > 0 && data[0] == 0x02) {
    GError *error = NULL;
    dsocr_tokenizer *tok = dsocr_tokenizer_new_from_data ((const char *) data + 1,
                                                          (gssize) size - 1, NULL, 0, "fuzz",
                                                          &error);
    if (!tok) {
      if (!error || error->domain != DSOCR_ERROR)
        __builtin_trap ();
      g_error_free (error);
      return 0;
    }
    check_text (tok, "Hello world 123 你好 <image>", strlen ("Hello world 123 你好 <image>"),
                FALSE);
    dsocr_tokenizer_free (tok);
    return 0;
  }
  for (int t = 0; t < n_toks; t++)
    check_text (toks[t], (const char *) data, size, TRUE);
  return 0;
}
