/* tokenizer.c: the public encode and decode calls and streaming decode. Loading is in
 * tokenizer-load.c, matching in tokenizer-pretok.c, BPE in tokenizer-bpe.c.
 */
#include "tokenizer-private.h"

#include <string.h>

#include "dsocr/dsocr-error.h"

#define FAIL(code, ...)                                                                        \
  G_STMT_START {                                                                               \
    g_set_error (error, DSOCR_ERROR, code, __VA_ARGS__);                                       \
    return FALSE;                                                                              \
  } G_STMT_END

void
dsocr_tokenizer_free (dsocr_tokenizer *tok)
{
  if (!tok)
    return;
  for (int i = 0; i < tok->n_steps; i++)
    if (tok->steps[i].re)
      pcre2_code_free (tok->steps[i].re);
  if (tok->word_re)
    pcre2_code_free (tok->word_re);
  dsocr_tok_trie_clear (&tok->trie_raw);
  dsocr_tok_trie_clear (&tok->trie_norm);
  dsocr_tok_bpe_clear (&tok->bpe);
  g_hash_table_unref (tok->vocab);
  g_hash_table_unref (tok->added_by_content);
  g_free (tok->added);
  g_free (tok->id_token);
  g_free (tok->id_bytes_off);
  g_free (tok->id_bytes_len);
  g_free (tok->id_special);
  if (tok->id_bytes)
    g_byte_array_unref (tok->id_bytes);
  g_string_chunk_free (tok->strings);
  g_array_unref (tok->prefix_ids);
  g_array_unref (tok->suffix_ids);
  g_free (tok->name);
  g_free (tok);
}

gboolean
dsocr_tokenizer_encode (const dsocr_tokenizer *tok, const char *text, gssize len,
                        dsocr_tokenize_flags flags, GArray *ids, GError **error)
{
  g_return_val_if_fail (tok != NULL && ids != NULL, FALSE);
  g_return_val_if_fail (g_array_get_element_size (ids) == sizeof (int32_t), FALSE);
  gsize n = len < 0 ? (text ? strlen (text) : 0) : (gsize) len;
  if (n > 0 && !text)
    FAIL (DSOCR_ERROR_INVALID, "%s: encode: NULL text", tok->name);
  const char *bad = NULL;
  if (n > 0 && !g_utf8_validate_len (text, n, &bad))
    FAIL (DSOCR_ERROR_INVALID, "%s: encode: input is not valid UTF-8 (at byte %zu)", tok->name,
          (size_t) (bad - text));
  guint base = ids->len;
  tok_ctx ctx;
  dsocr_tok_ctx_init (&ctx, tok, ids);
  gboolean ok = n == 0 || dsocr_tok_encode_text (&ctx, text, n);
  if (!ok) {
    g_propagate_error (error, g_steal_pointer (&ctx.error));
    g_array_set_size (ids, base);
  } else if (flags & DSOCR_TOKENIZE_ADD_SPECIAL) {
    g_array_insert_vals (ids, base, tok->prefix_ids->data, tok->prefix_ids->len);
    g_array_append_vals (ids, tok->suffix_ids->data, tok->suffix_ids->len);
  }
  dsocr_tok_ctx_clear (&ctx);
  return ok;
}

int32_t
dsocr_tokenizer_token_to_id (const dsocr_tokenizer *tok, const char *token)
{
  g_return_val_if_fail (tok != NULL && token != NULL, -1);
  gpointer a = g_hash_table_lookup (tok->added_by_content, token);
  if (a)
    return tok->added[GPOINTER_TO_INT (a) - 1].id;
  return dsocr_tok_vocab_id (tok, token);
}

const char *
dsocr_tokenizer_id_to_token (const dsocr_tokenizer *tok, int32_t id)
{
  g_return_val_if_fail (tok != NULL, NULL);
  return id >= 0 && id < tok->n_ids ? tok->id_token[id] : NULL;
}

guint
dsocr_tokenizer_get_vocab_size (const dsocr_tokenizer *tok)
{
  return tok->vocab_size;
}

gboolean
dsocr_tokenizer_is_special (const dsocr_tokenizer *tok, int32_t id)
{
  return id >= 0 && id < tok->n_ids && tok->id_special[id];
}

int32_t
dsocr_tokenizer_get_bos_id (const dsocr_tokenizer *tok)
{
  return tok->bos_id;
}

int32_t
dsocr_tokenizer_get_eos_id (const dsocr_tokenizer *tok)
{
  return tok->eos_id;
}

int32_t
dsocr_tokenizer_get_pad_id (const dsocr_tokenizer *tok)
{
  return tok->pad_id;
}

/* ---- decoding ---- */

/* One step of Rust's String::from_utf8_lossy over s[0..n): the length of a valid character,
 * or 0 with *bad = the length of the maximal invalid prefix (each such prefix is one U+FFFD);
 * *incomplete tells that prefix ran into the end of the bytes and may still be completed. */
static gsize
utf8_step (const guint8 *s, gsize n, gsize *bad, gboolean *incomplete)
{
  guint8 c = s[0], lo = 0x80, hi = 0xBF;
  gsize need;
  *incomplete = FALSE;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    *bad = 1;
    return 0;
  }
  for (gsize k = 1; k <= need; k++) {
    if (k >= n) {
      *incomplete = TRUE;
      *bad = k;
      return 0;
    }
    guint8 b = s[k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) {
      *bad = k;
      return 0;
    }
  }
  return need + 1;
}

/* Appends the valid text of s[0..n) to @out, U+FFFD per invalid run. With @hold, an
 * incomplete character at the end is not written; returns how many bytes were consumed. */
static gsize
lossy_append (GString *out, const guint8 *s, gsize n, gboolean hold)
{
  gsize i = 0;
  while (i < n) {
    gsize bad = 0;
    gboolean incomplete;
    gsize k = utf8_step (s + i, n - i, &bad, &incomplete);
    if (k > 0) {
      g_string_append_len (out, (const char *) s + i, k);
      i += k;
    } else if (incomplete && hold) {
      break;
    } else {
      g_string_append (out, "\xEF\xBF\xBD");
      i += bad;
    }
  }
  return i;
}

static gboolean
token_bytes (const dsocr_tokenizer *tok, int32_t id, gboolean skip_special, const guint8 **b,
             gsize *n)
{
  if (id < 0 || id >= tok->n_ids || !tok->id_token[id])
    return FALSE;
  if (skip_special && tok->id_special[id])
    return FALSE;
  *b = tok->id_bytes->data + tok->id_bytes_off[id];
  *n = tok->id_bytes_len[id];
  return TRUE;
}

char *
dsocr_tokenizer_decode (const dsocr_tokenizer *tok, const int32_t *ids, gsize n_ids,
                        gboolean skip_special, gsize *len)
{
  g_return_val_if_fail (tok != NULL, NULL);
  GByteArray *bytes = g_byte_array_new ();
  gboolean first = TRUE;
  for (gsize i = 0; i < n_ids; i++) {
    const guint8 *b;
    gsize n;
    if (!token_bytes (tok, ids[i], skip_special, &b, &n))
      continue;
    if (!tok->byte_level_decoder && !first)
      g_byte_array_append (bytes, (const guint8 *) " ", 1);
    g_byte_array_append (bytes, b, n);
    first = FALSE;
  }
  GString *out = g_string_sized_new (bytes->len + 1);
  lossy_append (out, bytes->data, bytes->len, FALSE);
  g_byte_array_unref (bytes);
  if (len)
    *len = out->len;
  return g_string_free (out, FALSE);
}

struct dsocr_decode_stream {
  const dsocr_tokenizer *tok;
  gboolean skip_special;
  gboolean first;
  GByteArray *pending;  /* bytes of an incomplete character, at most 3 */
  GString *out;         /* the text last returned */
};

dsocr_decode_stream *
dsocr_decode_stream_new (const dsocr_tokenizer *tok, gboolean skip_special)
{
  g_return_val_if_fail (tok != NULL, NULL);
  dsocr_decode_stream *st = g_new0 (dsocr_decode_stream, 1);
  st->tok = tok;
  st->skip_special = skip_special;
  st->first = TRUE;
  st->pending = g_byte_array_new ();
  st->out = g_string_new (NULL);
  return st;
}

const char *
dsocr_decode_stream_push (dsocr_decode_stream *st, int32_t id, gsize *len)
{
  g_return_val_if_fail (st != NULL, NULL);
  const guint8 *b;
  gsize n;
  g_string_truncate (st->out, 0);
  if (token_bytes (st->tok, id, st->skip_special, &b, &n)) {
    if (!st->tok->byte_level_decoder && !st->first)
      g_byte_array_append (st->pending, (const guint8 *) " ", 1);
    st->first = FALSE;
    g_byte_array_append (st->pending, b, n);
    gsize used = lossy_append (st->out, st->pending->data, st->pending->len, TRUE);
    g_byte_array_remove_range (st->pending, 0, used);
  }
  if (len)
    *len = st->out->len;
  return st->out->str;
}

const char *
dsocr_decode_stream_finish (dsocr_decode_stream *st, gsize *len)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_string_truncate (st->out, 0);
  lossy_append (st->out, st->pending->data, st->pending->len, FALSE);
  g_byte_array_set_size (st->pending, 0);
  st->first = TRUE;
  if (len)
    *len = st->out->len;
  return st->out->str;
}

void
dsocr_decode_stream_free (dsocr_decode_stream *st)
{
  if (!st)
    return;
  g_byte_array_unref (st->pending);
  g_string_free (st->out, TRUE);
  g_free (st);
}
