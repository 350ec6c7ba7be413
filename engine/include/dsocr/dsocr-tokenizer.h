/* dsocr-tokenizer.h: byte-level BPE tokenizers loaded from a Hugging Face tokenizer.json.
 *
 * Gives the same ids as the `tokenizers` library (the reference) for the DeepSeek-V2/V3 and
 * DeepSeek-OCR tokenizers and for other byte-level BPE files (GPT-2, Llama 3, Qwen 2 style):
 * added tokens are matched first, the pre-tokenizer regexes run with Oniguruma's Unicode
 * classes, and BPE merges by rank.
 *
 *   GError *error = NULL;
 *   dsocr_tokenizer *tok = dsocr_tokenizer_load ("/models/deepseek-ocr", &error);
 *   GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
 *   if (!tok || !dsocr_tokenizer_encode (tok, "<image>\nFree OCR.", -1,
 *                                        DSOCR_TOKENIZE_ADD_SPECIAL, ids, &error))
 *     g_printerr ("%s\n", error->message);
 *   char *text = dsocr_tokenizer_decode (tok, (int32_t *) ids->data, ids->len, FALSE, NULL);
 *
 *   // streaming: each piece is whole UTF-8; the pieces add up to the full decode
 *   dsocr_decode_stream *st = dsocr_decode_stream_new (tok, TRUE);
 *   for (...) fputs (dsocr_decode_stream_push (st, next_id, NULL), stdout);
 *   fputs (dsocr_decode_stream_finish (st, NULL), stdout);
 *   dsocr_decode_stream_free (st);
 *
 * A dsocr_tokenizer is immutable after loading and may be used from several threads at once
 * (its word cache has its own lock). A dsocr_decode_stream belongs to one thread.
 */
#ifndef DSOCR_TOKENIZER_H
#define DSOCR_TOKENIZER_H

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct dsocr_tokenizer dsocr_tokenizer;
typedef struct dsocr_decode_stream dsocr_decode_stream;

typedef enum {
  DSOCR_TOKENIZE_NONE = 0,
  /* Add the sequence's special tokens: BOS / EOS as tokenizer_config.json's add_bos_token /
   * add_eos_token say when it sets either (the transformers 4.x Llama tokenizer rule the
   * DeepSeek checkpoints were made with), otherwise the tokenizer.json post_processor's
   * (TemplateProcessing, RobertaProcessing, BertProcessing; ByteLevel adds none). */
  DSOCR_TOKENIZE_ADD_SPECIAL = 1 << 0,
} dsocr_tokenize_flags;

/* Loads @path: a tokenizer.json file, or a directory holding tokenizer.json and, optionally,
 * tokenizer_config.json (read for bos/eos/pad tokens and add_bos_token / add_eos_token).
 * Fails with DSOCR_ERROR_FILE (unreadable file), DSOCR_ERROR_FORMAT (malformed JSON or field,
 * the message names the file and the field) or DSOCR_ERROR_UNSUPPORTED (a model, normalizer,
 * pre-tokenizer or decoder type this engine does not implement).
 * Returns (transfer full): free with dsocr_tokenizer_free(). */
dsocr_tokenizer *dsocr_tokenizer_load (const char *path, GError **error);

/* Like dsocr_tokenizer_load() from memory: @json is tokenizer.json's text, @config_json is
 * tokenizer_config.json's text or NULL. Lengths may be -1 for NUL-terminated text. @name is
 * used in error messages. Returns (transfer full). */
dsocr_tokenizer *dsocr_tokenizer_new_from_data (const char *json, gssize json_len,
                                                const char *config_json, gssize config_len,
                                                const char *name, GError **error);

/* Frees @tok. NULL is a no-op. */
void dsocr_tokenizer_free (dsocr_tokenizer *tok);

/* Encodes @len bytes of UTF-8 @text (-1: NUL-terminated) and appends the ids (int32_t) to
 * @ids. Added tokens found in the text (`<image>`, `<|ref|>`, ...) become their ids whatever
 * @flags say. Fails with DSOCR_ERROR_INVALID on text that is not valid UTF-8, leaving @ids
 * as it was. */
gboolean dsocr_tokenizer_encode (const dsocr_tokenizer *tok, const char *text, gssize len,
                                 dsocr_tokenize_flags flags, GArray *ids, GError **error);

/* Decodes @n_ids ids to UTF-8 text, as `tokenizers`' decode(): unknown ids are dropped, special
 * tokens too when @skip_special, and byte sequences that are not valid UTF-8 become U+FFFD.
 * The text is NUL-terminated but may hold NUL bytes (the token of byte 0): @len (may be NULL)
 * receives its length. Returns (transfer full): g_free() it. */
char *dsocr_tokenizer_decode (const dsocr_tokenizer *tok, const int32_t *ids, gsize n_ids,
                              gboolean skip_special, gsize *len);

/* The id of @token (an added token's content or a vocabulary entry as written in
 * tokenizer.json), or -1. */
int32_t dsocr_tokenizer_token_to_id (const dsocr_tokenizer *tok, const char *token);
/* The token string of @id as tokenizer.json writes it, or NULL. (transfer none): valid while
 * @tok lives. */
const char *dsocr_tokenizer_id_to_token (const dsocr_tokenizer *tok, int32_t id);
/* Number of ids: the model's vocabulary plus the added tokens it does not hold (128815 for
 * DeepSeek-V3, 128827 for DeepSeek-OCR). */
guint dsocr_tokenizer_get_vocab_size (const dsocr_tokenizer *tok);
/* Whether @id is a special added token (skipped by decode with skip_special). */
gboolean dsocr_tokenizer_is_special (const dsocr_tokenizer *tok, int32_t id);
/* The BOS / EOS / PAD ids from tokenizer_config.json, or -1 when it names none. */
int32_t dsocr_tokenizer_get_bos_id (const dsocr_tokenizer *tok);
int32_t dsocr_tokenizer_get_eos_id (const dsocr_tokenizer *tok);
int32_t dsocr_tokenizer_get_pad_id (const dsocr_tokenizer *tok);

/* Incremental decoding for streaming output. Returns (transfer full): free with
 * dsocr_decode_stream_free(). @tok must outlive the stream. */
dsocr_decode_stream *dsocr_decode_stream_new (const dsocr_tokenizer *tok, gboolean skip_special);
/* Feeds one id and returns the text it completes: whole UTF-8 characters only, possibly "".
 * Bytes of a character still incomplete are held back until a later id completes it.
 * (transfer none): valid until the next call on @st. @len (may be NULL) receives its length. */
const char *dsocr_decode_stream_push (dsocr_decode_stream *st, int32_t id, gsize *len);
/* Ends the stream: returns what is still held back (an incomplete character becomes U+FFFD)
 * and resets @st for a new sequence. The concatenation of every push and the finish equals
 * dsocr_tokenizer_decode() of the same ids. (transfer none), as for push. */
const char *dsocr_decode_stream_finish (dsocr_decode_stream *st, gsize *len);
/* Frees @st. NULL is a no-op. */
void dsocr_decode_stream_free (dsocr_decode_stream *st);

G_END_DECLS

#endif /* DSOCR_TOKENIZER_H */
