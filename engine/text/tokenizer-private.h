/* tokenizer-private.h (internal): the parts of the tokenizer that its files share and that the
 * engine's tests reach into (pre-tokenization pieces, regex translation).
 *
 * Text flows: added-token split (raw text) -> normalizer -> added-token split (normalized
 * tokens) -> pre-tokenizer steps -> BPE per piece -> post-processor ids. Everything after the
 * ByteLevel step works on raw bytes: the byte-level alphabet (GPT-2 bytes_to_unicode) only
 * exists at load time, where vocabulary and merges are turned into ids over bytes.
 */
#ifndef DSOCR_TOKENIZER_PRIVATE_H
#define DSOCR_TOKENIZER_PRIVATE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "dsocr/dsocr-tokenizer.h"

G_BEGIN_DECLS

/* ---- Unicode classes (tokenizer-unicode.c, generated) ---- */

/* Extra code points, as PCRE2 class items ("\x{1C89}-\x{1C8A}..."), that the reference
 * (Oniguruma as built into `tokenizers`) puts in general category @gc ("L", "Lu", "N", ...)
 * but that Unicode 14.0 (PCRE2 10.42) leaves unassigned. "" when there are none; NULL for
 * an unknown category name. */
const char *dsocr_tok_unicode_delta (const char *gc);

/* ---- regexes (tokenizer-pretok.c) ---- */

/* Rewrites an Oniguruma (Ruby syntax) pattern as tokenizer.json holds it into an equivalent
 * PCRE2 pattern: \s \S \d \D \h \H and \p{..} get Oniguruma's Unicode sets, (?m) means dotall.
 * Returns (transfer full) the pattern, or NULL + DSOCR_ERROR_UNSUPPORTED naming @what. */
char *dsocr_tok_regex_translate (const char *onig, const char *what, GError **error);
/* Compiles (and JIT-compiles when possible) a translated pattern. (transfer full) */
pcre2_code *dsocr_tok_regex_compile (const char *onig, const char *what, GError **error);

typedef enum {
  TOK_REMOVED,
  TOK_ISOLATED,
  TOK_MERGED_WITH_PREVIOUS,
  TOK_MERGED_WITH_NEXT,
  TOK_CONTIGUOUS,
} tok_behavior;

typedef enum {
  TOK_STEP_SPLIT,      /* Split (regex or literal), Digits */
  TOK_STEP_BYTE_LEVEL, /* ByteLevel: optional prefix space and GPT-2 regex */
} tok_step_kind;

typedef struct {
  tok_step_kind kind;
  pcre2_code *re;          /* SPLIT: the pattern; BYTE_LEVEL: GPT-2's when use_regex, else NULL */
  tok_behavior behavior;   /* SPLIT only */
  gboolean invert;         /* SPLIT only */
  gboolean add_prefix_space; /* BYTE_LEVEL only */
} tok_step;

#define TOK_MAX_STEPS 16

typedef enum {
  TOK_NORM_NFC,
  TOK_NORM_NFD,
} tok_norm;

#define TOK_MAX_NORMS 8

/* One added token. Content is matched byte for byte (leftmost-longest) in the raw text when
 * !normalized, in the normalized text otherwise. */
typedef struct {
  char *content;
  gsize len;
  int32_t id;
  gboolean special, normalized, lstrip, rstrip, single_word;
} tok_added;

/* Byte trie of added-token contents. Node 0 is the root. */
typedef struct {
  int32_t root[256];   /* child of the root per first byte, or -1 */
  GArray *nodes;       /* tok_trie_node */
} tok_trie;

typedef struct {
  int32_t first_child; /* -1 when none */
  int32_t sibling;     /* -1 when none */
  int32_t added;       /* index into added[] of the token ending here, or -1 */
  guint8 byte;
} tok_trie_node;

/* ---- BPE (tokenizer-bpe.c) ---- */

typedef struct {
  uint64_t *keys;      /* [cap] ((uint64) left << 32 | right) + 1; 0 = empty slot */
  uint32_t *rank;      /* [cap] */
  int32_t *new_id;     /* [cap] */
  gsize mask;          /* cap - 1 */
} tok_merge_map;

#define TOK_CACHE_SLOTS 16384
#define TOK_CACHE_KEY 24
#define TOK_CACHE_IDS 12

typedef struct {
  uint32_t hash;
  guint8 key_len;      /* 0: empty slot */
  guint8 n_ids;
  char key[TOK_CACHE_KEY];
  int32_t ids[TOK_CACHE_IDS];
} tok_cache_entry;

typedef struct {
  int32_t byte_id[256];        /* id of each byte's byte-level character, -1 when absent */
  tok_merge_map merges;
  gboolean ignore_merges;
  gboolean byte_fallback;
  gboolean fuse_unk;
  int32_t unk_id;              /* -1 when no unk_token */
  /* byte_fallback: the <0xXX> ids of the UTF-8 bytes of a byte's missing character */
  int32_t fallback_ids[256][2];
  guint8 fallback_n[256];      /* 0: no complete fallback for that byte */
  GMutex cache_lock;
  tok_cache_entry *cache;      /* [TOK_CACHE_SLOTS] */
} tok_bpe;

struct dsocr_tokenizer {
  char *name;                  /* for messages: the file it came from */

  GHashTable *vocab;           /* model vocabulary: char * -> GINT_TO_POINTER (id + 1) */
  GHashTable *added_by_content;/* char * -> GINT_TO_POINTER (index into added + 1) */
  int32_t n_ids;               /* max id + 1 */
  guint vocab_size;            /* distinct token strings, as get_vocab_size(True) */
  const char **id_token;       /* [n_ids] token string, NULL for holes (transfer none) */
  uint32_t *id_bytes_off;      /* [n_ids] decoded bytes of each id in id_bytes */
  uint32_t *id_bytes_len;      /* [n_ids] */
  guint8 *id_special;          /* [n_ids] */
  GByteArray *id_bytes;
  GStringChunk *strings;

  tok_added *added;            /* [n_added] */
  guint n_added;
  tok_trie trie_raw;           /* tokens with normalized = false */
  tok_trie trie_norm;          /* tokens with normalized = true */
  pcre2_code *word_re;         /* \w for single_word, NULL when no token needs it */

  tok_norm norms[TOK_MAX_NORMS];
  int n_norms;

  tok_step steps[TOK_MAX_STEPS];
  int n_steps;

  tok_bpe bpe;

  gboolean byte_level_decoder; /* FALSE: decoder null, tokens joined by " " */

  /* special tokens for DSOCR_TOKENIZE_ADD_SPECIAL */
  GArray *prefix_ids;          /* int32_t */
  GArray *suffix_ids;          /* int32_t */
  int32_t bos_id, eos_id, pad_id;
};

/* Per-call state of one encode. */
typedef struct {
  const dsocr_tokenizer *tok;
  pcre2_match_data *md;
  GArray *spans[TOK_MAX_STEPS + 1]; /* tok_span scratch, one per pre-tokenizer depth */
  GArray *ids;                 /* output, int32_t */
  /* BPE scratch */
  GArray *sym;                 /* tok_symbol */
  GArray *heap;                /* tok_heap_item */
  GString *tmp;
  /* pieces recorder for tests: when set, pre-tokenized pieces are appended here instead of
   * going through BPE */
  GPtrArray *pieces;
  GError *error;
} tok_ctx;

typedef struct {
  gsize start, end;
  gboolean is_match;
} tok_span;

/* The model vocabulary's id for @s, or -1. */
static inline int32_t
dsocr_tok_vocab_id (const dsocr_tokenizer *tok, const char *s)
{
  gpointer v = g_hash_table_lookup (tok->vocab, s);
  return v ? GPOINTER_TO_INT (v) - 1 : -1;
}

void dsocr_tok_ctx_init (tok_ctx *ctx, const dsocr_tokenizer *tok, GArray *ids);
void dsocr_tok_ctx_clear (tok_ctx *ctx);

/* Runs added-token extraction, normalization, pre-tokenization and BPE over @n bytes of valid
 * UTF-8 @text, appending ids to ctx->ids. FALSE + ctx->error on a regex engine failure. */
gboolean dsocr_tok_encode_text (tok_ctx *ctx, const char *text, gsize n);

/* Test hook: the pre-tokenized pieces of @text (raw bytes, before byte-level mapping and BPE),
 * added tokens given as their content. Returns (transfer full) a GPtrArray of GBytes. */
GPtrArray *dsocr_tok_pre_tokenize (const dsocr_tokenizer *tok, const char *text, gsize n,
                                   GError **error);

/* Added-token tries. */
void dsocr_tok_trie_init (tok_trie *t);
void dsocr_tok_trie_clear (tok_trie *t);
void dsocr_tok_trie_insert (tok_trie *t, const char *s, gsize n, int32_t added);

/* BPE */
gboolean dsocr_tok_merge_map_init (tok_merge_map *m, gsize n_merges);
void dsocr_tok_merge_map_clear (tok_merge_map *m);
/* Sets (left, right) -> (rank, new_id), replacing an earlier entry as a later duplicate line
 * does in the reference. */
void dsocr_tok_merge_map_put (tok_merge_map *m, int32_t left, int32_t right, uint32_t rank,
                              int32_t new_id);
void dsocr_tok_bpe_piece (tok_ctx *ctx, const guint8 *s, gsize n);
void dsocr_tok_bpe_clear (tok_bpe *bpe);

/* The GPT-2 byte -> character map (bytes_to_unicode). */
gunichar dsocr_tok_byte_char (guint8 b);
/* Inverse: the byte of byte-level character @c, or -1. */
int dsocr_tok_char_byte (gunichar c);

G_END_DECLS

#endif /* DSOCR_TOKENIZER_PRIVATE_H */
