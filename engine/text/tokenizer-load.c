/* tokenizer-load.c: reading tokenizer.json and tokenizer_config.json into a dsocr_tokenizer.
 *
 * Follows `tokenizers`' deserializer where it decides ids: added tokens take the id their
 * content already has (added map, then model vocabulary), else the next free id from the
 * vocabulary size on; the "id" written beside them in the file is not used (the reference only
 * warns when it differs). Every error names the file and the field at fault.
 */
#include "tokenizer-private.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "dsocr/dsocr-error.h"

#define FAIL(code, ...)                                                                        \
  G_STMT_START {                                                                               \
    g_set_error (error, DSOCR_ERROR, code, __VA_ARGS__);                                       \
    return FALSE;                                                                              \
  } G_STMT_END

/* ---- small JSON helpers: every failure names the file and the field ---- */

static JsonObject *
get_object (JsonObject *o, const char *key, gboolean required, const char *name,
            const char *where, GError **error)
{
  JsonNode *n = o ? json_object_get_member (o, key) : NULL;
  if (!n || JSON_NODE_HOLDS_NULL (n)) {
    if (required)
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: %s%s is missing", name, where,
                   key);
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT (n)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: %s%s is not an object", name,
                 where, key);
    return NULL;
  }
  return json_node_get_object (n);
}

/* The string member @key, NULL when absent or null; sets @error when it is another type. */
static const char *
get_string (JsonObject *o, const char *key, const char *name, const char *where,
            GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: %s%s is not a string", name,
                 where, key);
    return NULL;
  }
  return json_node_get_string (n);
}

static gboolean
get_bool (JsonObject *o, const char *key, gboolean dflt, gboolean *out, const char *name,
          const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  *out = dflt;
  if (!n || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    FAIL (DSOCR_ERROR_FORMAT, "%s: %s%s is not a boolean", name, where, key);
  *out = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
node_int (JsonNode *n, gint64 *out)
{
  if (!n || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

static JsonNode *
parse_json (const char *data, gssize len, const char *name, JsonParser **parser,
            GError **error)
{
  GError *err = NULL;
  if (len < 0)
    len = (gssize) strlen (data);
  if (!g_utf8_validate_len (data, (gsize) len, NULL)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: not valid UTF-8", name);
    return NULL;
  }
  *parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (*parser, data, len, &err)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: bad JSON: %s", name,
                 err->message);
    g_error_free (err);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (*parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: the top level is not an object",
                 name);
    return NULL;
  }
  return root;
}

/* ---- model ---- */

static gboolean
load_merges (dsocr_tokenizer *tok, JsonArray *merges, GError **error)
{
  guint n = json_array_get_length (merges);
  if (!dsocr_tok_merge_map_init (&tok->bpe.merges, n))
    FAIL (DSOCR_ERROR_NOMEM, "%s: no memory for %u merges", tok->name, n);
  GString *joined = g_string_new (NULL);
  uint32_t rank = 0;
  gboolean ok = TRUE;
  for (guint i = 0; i < n && ok; i++) {
    JsonNode *e = json_array_get_element (merges, i);
    char *left = NULL, *right = NULL;
    if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING) {
      const char *line = json_node_get_string (e);
      if (g_str_has_prefix (line, "#version"))
        continue;
      const char *sp = strchr (line, ' ');
      if (!sp || strchr (sp + 1, ' ')) {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                     "%s: model.merges[%u] \"%s\" is not two tokens separated by one space",
                     tok->name, i, line);
        ok = FALSE;
        break;
      }
      left = g_strndup (line, sp - line);
      right = g_strdup (sp + 1);
    } else if (JSON_NODE_HOLDS_ARRAY (e) && json_array_get_length (json_node_get_array (e)) == 2) {
      JsonArray *pair = json_node_get_array (e);
      JsonNode *a = json_array_get_element (pair, 0), *b = json_array_get_element (pair, 1);
      if (JSON_NODE_HOLDS_VALUE (a) && json_node_get_value_type (a) == G_TYPE_STRING &&
          JSON_NODE_HOLDS_VALUE (b) && json_node_get_value_type (b) == G_TYPE_STRING) {
        left = g_strdup (json_node_get_string (a));
        right = g_strdup (json_node_get_string (b));
      }
    }
    if (!left) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: model.merges[%u] is neither \"a b\" nor [\"a\", \"b\"]", tok->name, i);
      ok = FALSE;
      break;
    }
    g_string_assign (joined, left);
    g_string_append (joined, right);
    int32_t a = dsocr_tok_vocab_id (tok, left), b = dsocr_tok_vocab_id (tok, right), c = dsocr_tok_vocab_id (tok, joined->str);
    const char *missing = a < 0 ? left : b < 0 ? right : c < 0 ? joined->str : NULL;
    if (missing) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: model.merges[%u]: token \"%s\" is not in model.vocab", tok->name, i,
                   missing);
      ok = FALSE;
    } else {
      dsocr_tok_merge_map_put (&tok->bpe.merges, a, b, rank++, c);
    }
    g_free (left);
    g_free (right);
  }
  g_string_free (joined, TRUE);
  return ok;
}

static gboolean
load_model (dsocr_tokenizer *tok, JsonObject *root, int32_t *max_id, GError **error)
{
  const char *name = tok->name;
  GError *err = NULL;
  JsonObject *model = get_object (root, "model", TRUE, name, "", error);
  if (!model)
    return FALSE;
  const char *type = get_string (model, "type", name, "model.", &err);
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  if (type && strcmp (type, "BPE") != 0)
    FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: model.type \"%s\" is not supported (BPE only)", name,
          type);
  JsonObject *vocab = get_object (model, "vocab", TRUE, name, "model.", error);
  if (!vocab)
    return FALSE;
  JsonNode *mn = json_object_get_member (model, "merges");
  if (!mn || !JSON_NODE_HOLDS_ARRAY (mn))
    FAIL (DSOCR_ERROR_FORMAT, "%s: model.merges is missing or not an array", name);

  JsonNode *dropout = json_object_get_member (model, "dropout");
  if (dropout && !JSON_NODE_HOLDS_NULL (dropout) &&
      !(JSON_NODE_HOLDS_VALUE (dropout) && json_node_get_double (dropout) == 0.0))
    FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: model.dropout (random merges) is not supported", name);
  const char *keys[] = { "continuing_subword_prefix", "end_of_word_suffix" };
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++) {
    const char *v = get_string (model, keys[i], name, "model.", &err);
    if (err) {
      g_propagate_error (error, err);
      return FALSE;
    }
    if (v && *v)
      FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: model.%s is not supported", name, keys[i]);
  }
  if (!get_bool (model, "byte_fallback", FALSE, &tok->bpe.byte_fallback, name, "model.", error) ||
      !get_bool (model, "fuse_unk", FALSE, &tok->bpe.fuse_unk, name, "model.", error) ||
      !get_bool (model, "ignore_merges", FALSE, &tok->bpe.ignore_merges, name, "model.", error))
    return FALSE;

  GList *members = json_object_get_members (vocab);
  gboolean ok = TRUE;
  for (GList *l = members; l; l = l->next) {
    const char *token = l->data;
    gint64 id;
    if (!node_int (json_object_get_member (vocab, token), &id) || id < 0 || id >= G_MAXINT32) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: model.vocab[\"%s\"] is not an id in [0, 2^31 - 1)", name, token);
      ok = FALSE;
      break;
    }
    char *key = g_string_chunk_insert_const (tok->strings, token);
    g_hash_table_insert (tok->vocab, key, GINT_TO_POINTER ((int) id + 1));
    *max_id = MAX (*max_id, (int32_t) id);
  }
  g_list_free (members);
  if (!ok)
    return FALSE;

  const char *unk = get_string (model, "unk_token", name, "model.", &err);
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  tok->bpe.unk_id = -1;
  if (unk) {
    tok->bpe.unk_id = dsocr_tok_vocab_id (tok, unk);
    if (tok->bpe.unk_id < 0)
      FAIL (DSOCR_ERROR_FORMAT, "%s: model.unk_token \"%s\" is not in model.vocab", name, unk);
  }
  for (guint b = 0; b < 256; b++) {
    char u[8];
    int k = g_unichar_to_utf8 (dsocr_tok_byte_char ((guint8) b), u);
    u[k] = '\0';
    tok->bpe.byte_id[b] = dsocr_tok_vocab_id (tok, u);
    tok->bpe.fallback_n[b] = 0;
    gboolean all = TRUE;
    for (int j = 0; j < k; j++) {
      char code[8];
      g_snprintf (code, sizeof code, "<0x%02X>", (guint8) u[j]);
      tok->bpe.fallback_ids[b][j] = dsocr_tok_vocab_id (tok, code);
      all = all && tok->bpe.fallback_ids[b][j] >= 0;
    }
    if (all)
      tok->bpe.fallback_n[b] = (guint8) k;
  }
  return load_merges (tok, json_node_get_array (mn), error);
}

/* ---- added tokens ---- */

static gboolean
load_added (dsocr_tokenizer *tok, JsonObject *root, int32_t *max_id, GError **error)
{
  const char *name = tok->name;
  JsonNode *an = json_object_get_member (root, "added_tokens");
  if (!an || JSON_NODE_HOLDS_NULL (an))
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (an))
    FAIL (DSOCR_ERROR_FORMAT, "%s: added_tokens is not an array", name);
  JsonArray *arr = json_node_get_array (an);
  guint n = json_array_get_length (arr);
  tok->added = g_new0 (tok_added, n);
  int32_t next_id = (int32_t) g_hash_table_size (tok->vocab);

  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (arr, i);
    char where[48];
    g_snprintf (where, sizeof where, "added_tokens[%u].", i);
    if (!JSON_NODE_HOLDS_OBJECT (e))
      FAIL (DSOCR_ERROR_FORMAT, "%s: added_tokens[%u] is not an object", name, i);
    JsonObject *o = json_node_get_object (e);
    GError *err = NULL;
    const char *content = get_string (o, "content", name, where, &err);
    if (err) {
      g_propagate_error (error, err);
      return FALSE;
    }
    if (!content)
      FAIL (DSOCR_ERROR_FORMAT, "%s: %scontent is missing", name, where);
    tok_added a = { 0 };
    if (!get_bool (o, "special", FALSE, &a.special, name, where, error) ||
        !get_bool (o, "normalized", TRUE, &a.normalized, name, where, error) ||
        !get_bool (o, "lstrip", FALSE, &a.lstrip, name, where, error) ||
        !get_bool (o, "rstrip", FALSE, &a.rstrip, name, where, error) ||
        !get_bool (o, "single_word", FALSE, &a.single_word, name, where, error))
      return FALSE;
    if (!*content)
      continue;  /* the reference ignores empty tokens */
    gpointer prev = g_hash_table_lookup (tok->added_by_content, content);
    if (prev) {
      /* same content again: the later flags win, the id stays */
      tok_added *p = &tok->added[GPOINTER_TO_INT (prev) - 1];
      a.content = p->content;
      a.len = p->len;
      a.id = p->id;
      *p = a;
      continue;
    }
    a.content = g_string_chunk_insert_const (tok->strings, content);
    a.len = strlen (content);
    a.id = dsocr_tok_vocab_id (tok, content);
    if (a.id < 0) {
      if (next_id >= G_MAXINT32 - 1)
        FAIL (DSOCR_ERROR_FORMAT, "%s: too many ids", name);
      a.id = next_id++;
    }
    *max_id = MAX (*max_id, a.id);
    tok->added[tok->n_added] = a;
    g_hash_table_insert (tok->added_by_content, a.content,
                         GINT_TO_POINTER ((int) tok->n_added + 1));
    tok->n_added++;
  }
  /* HashMap id -> token in the reference: a later token with the same id replaces an earlier
   * one in both directions of the map */
  return TRUE;
}

static gboolean
build_added (dsocr_tokenizer *tok, GError **error)
{
  dsocr_tok_trie_init (&tok->trie_raw);
  dsocr_tok_trie_init (&tok->trie_norm);
  gboolean need_word = FALSE;
  for (guint i = 0; i < tok->n_added; i++) {
    tok_added *a = &tok->added[i];
    char *content = a->content;
    char *normed = NULL;
    if (a->normalized && tok->n_norms > 0) {
      /* matched in normalized text: the trie holds the normalized form */
      normed = g_strdup (content);
      for (int k = 0; k < tok->n_norms; k++) {
        static const GNormalizeMode modes[] = {
          [TOK_NORM_NFC] = G_NORMALIZE_NFC, [TOK_NORM_NFD] = G_NORMALIZE_NFD,
        };
        char *next = g_utf8_normalize (normed, -1, modes[tok->norms[k]]);
        g_free (normed);
        normed = next ? next : g_strdup ("");
      }
      content = normed;
    }
    if (*content)
      dsocr_tok_trie_insert (a->normalized ? &tok->trie_norm : &tok->trie_raw, content,
                             strlen (content), (int32_t) i);
    g_free (normed);
    need_word = need_word || a->single_word;
  }
  if (need_word) {
    /* Rust regex's \w, which single_word uses: Alphabetic, marks, Nd, Pc, joiners */
    tok->word_re = dsocr_tok_regex_compile (
        "[\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200C}\\x{200D}\\x{24B6}-\\x{24E9}"
        "\\x{1F130}-\\x{1F149}\\x{1F150}-\\x{1F169}\\x{1F170}-\\x{1F189}]",
        "single_word", error);
    if (!tok->word_re)
      return FALSE;
  }
  return TRUE;
}

/* ---- normalizer, pre-tokenizer, decoder, post-processor ---- */

typedef gboolean (*step_loader) (dsocr_tokenizer *tok, JsonObject *o, const char *where,
                                 GError **error);

/* A "Sequence" normalizer or pre-tokenizer: loads each element of o[@member] with @load, in
 * order; @where grows into "...member[i]." so that errors point at the element. */
static gboolean
load_sequence (dsocr_tokenizer *tok, JsonObject *o, const char *member, const char *where,
               step_loader load, GError **error)
{
  const char *name = tok->name;
  JsonNode *ln = json_object_get_member (o, member);
  if (!ln || !JSON_NODE_HOLDS_ARRAY (ln))
    FAIL (DSOCR_ERROR_FORMAT, "%s: %s%s is not an array", name, where, member);
  JsonArray *arr = json_node_get_array (ln);
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonNode *e = json_array_get_element (arr, i);
    char sub[128];
    g_snprintf (sub, sizeof sub, "%s%s[%u].", where, member, i);
    if (!JSON_NODE_HOLDS_OBJECT (e))
      FAIL (DSOCR_ERROR_FORMAT, "%s: %s is not an object", name, sub);
    if (!load (tok, json_node_get_object (e), sub, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
load_normalizer (dsocr_tokenizer *tok, JsonObject *o, const char *where, GError **error)
{
  const char *name = tok->name;
  GError *err = NULL;
  const char *type = get_string (o, "type", name, where, &err);
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  if (!type)
    FAIL (DSOCR_ERROR_FORMAT, "%s: %stype is missing", name, where);
  if (strcmp (type, "Sequence") == 0)
    return load_sequence (tok, o, "normalizers", where, load_normalizer, error);
  static const struct {
    const char *type;
    tok_norm norm;
  } forms[] = {
    { "NFC", TOK_NORM_NFC }, { "NFD", TOK_NORM_NFD },
  };
  /* NFKC / NFKD are left out: the reference's compatibility tables are older than GLib's and
   * 134 code points (U+32FF, U+A7F2..U+A7F4, ...) would normalize differently. NFC agrees on
   * every code point, NFD on all but U+11938. */
  for (guint i = 0; i < G_N_ELEMENTS (forms); i++) {
    if (strcmp (type, forms[i].type) == 0) {
      if (tok->n_norms == TOK_MAX_NORMS)
        FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: more than %d normalizers", name, TOK_MAX_NORMS);
      tok->norms[tok->n_norms++] = forms[i].norm;
      return TRUE;
    }
  }
  FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: %stype \"%s\" is not supported (NFC, NFD)",
        name, where, type);
}

static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static gboolean
load_pre_tokenizer (dsocr_tokenizer *tok, JsonObject *o, const char *where, GError **error)
{
  const char *name = tok->name;
  GError *err = NULL;
  const char *type = get_string (o, "type", name, where, &err);
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  if (!type)
    FAIL (DSOCR_ERROR_FORMAT, "%s: %stype is missing", name, where);
  if (strcmp (type, "Sequence") == 0)
    return load_sequence (tok, o, "pretokenizers", where, load_pre_tokenizer, error);
  if (tok->n_steps == TOK_MAX_STEPS)
    FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", name, TOK_MAX_STEPS);
  if (tok->n_steps > 0 && tok->steps[tok->n_steps - 1].kind == TOK_STEP_BYTE_LEVEL)
    FAIL (DSOCR_ERROR_UNSUPPORTED,
          "%s: %s%s after ByteLevel is not supported (ByteLevel must come last)", name, where,
          type);
  tok_step *st = &tok->steps[tok->n_steps];
  memset (st, 0, sizeof *st);
  char what[256];
  g_snprintf (what, sizeof what, "%s: %spattern", name, where);

  if (strcmp (type, "ByteLevel") == 0) {
    gboolean use_regex;
    st->kind = TOK_STEP_BYTE_LEVEL;
    if (!get_bool (o, "add_prefix_space", TRUE, &st->add_prefix_space, name, where, error) ||
        !get_bool (o, "use_regex", TRUE, &use_regex, name, where, error))
      return FALSE;
    if (use_regex && !(st->re = dsocr_tok_regex_compile (gpt2_pattern, what, error)))
      return FALSE;
  } else if (strcmp (type, "Split") == 0) {
    st->kind = TOK_STEP_SPLIT;
    JsonObject *pat = get_object (o, "pattern", TRUE, name, where, error);
    if (!pat)
      return FALSE;
    const char *regex = get_string (pat, "Regex", name, what, &err);
    const char *literal = err ? NULL : get_string (pat, "String", name, what, &err);
    if (err) {
      g_propagate_error (error, err);
      return FALSE;
    }
    if (regex) {
      st->re = dsocr_tok_regex_compile (regex, what, error);
    } else if (literal) {
      GString *esc = g_string_new (NULL);
      for (const char *p = literal; *p; p++) {
        if (g_ascii_isalnum (*p) || (guchar) *p >= 0x80)
          g_string_append_c (esc, *p);
        else if (*p == ' ')
          g_string_append (esc, "\\x{20}");
        else
          g_string_append_printf (esc, "\\%c", *p);
      }
      /* an empty literal matches nothing in the reference */
      st->re = dsocr_tok_regex_compile (esc->len ? esc->str : "(?!)", what, error);
      g_string_free (esc, TRUE);
    } else {
      FAIL (DSOCR_ERROR_FORMAT, "%s: %spattern has neither Regex nor String", name, where);
    }
    if (!st->re)
      return FALSE;
    const char *behavior = get_string (o, "behavior", name, where, &err);
    if (err) {
      g_propagate_error (error, err);
      return FALSE;
    }
    static const struct {
      const char *name;
      tok_behavior b;
    } behaviors[] = {
      { "Removed", TOK_REMOVED }, { "Isolated", TOK_ISOLATED },
      { "MergedWithPrevious", TOK_MERGED_WITH_PREVIOUS },
      { "MergedWithNext", TOK_MERGED_WITH_NEXT }, { "Contiguous", TOK_CONTIGUOUS },
    };
    gboolean found = FALSE;
    for (guint i = 0; behavior && i < G_N_ELEMENTS (behaviors); i++)
      if (strcmp (behavior, behaviors[i].name) == 0) {
        st->behavior = behaviors[i].b;
        found = TRUE;
      }
    tok->n_steps++;  /* owns st->re from here on */
    if (!found)
      FAIL (DSOCR_ERROR_FORMAT, "%s: %sbehavior \"%s\" is not a split behavior", name, where,
            behavior ? behavior : "(missing)");
    return get_bool (o, "invert", FALSE, &st->invert, name, where, error);
  } else if (strcmp (type, "Digits") == 0) {
    gboolean individual;
    if (!get_bool (o, "individual_digits", FALSE, &individual, name, where, error))
      return FALSE;
    /* a char::is_numeric pattern: Isolated per digit, or Contiguous runs */
    st->kind = TOK_STEP_SPLIT;
    st->behavior = TOK_ISOLATED;
    st->re = dsocr_tok_regex_compile (individual ? "\\p{N}" : "\\p{N}+", what, error);
    if (!st->re)
      return FALSE;
  } else {
    FAIL (DSOCR_ERROR_UNSUPPORTED,
          "%s: %stype \"%s\" is not supported (Sequence, Split, ByteLevel, Digits)", name,
          where, type);
  }
  tok->n_steps++;
  return TRUE;
}

static gboolean
special_ids (dsocr_tokenizer *tok, JsonNode *n, GArray *out, const char *where, GError **error)
{
  /* ["<s>", 0] as RobertaProcessing / BertProcessing write cls and sep */
  gint64 id;
  if (!n || !JSON_NODE_HOLDS_ARRAY (n) || json_array_get_length (json_node_get_array (n)) != 2 ||
      !node_int (json_array_get_element (json_node_get_array (n), 1), &id) || id < 0 ||
      id >= G_MAXINT32)
    FAIL (DSOCR_ERROR_FORMAT, "%s: %s is not [token, id]", tok->name, where);
  int32_t v = (int32_t) id;
  g_array_append_val (out, v);
  return TRUE;
}

static gboolean
load_post_processor (dsocr_tokenizer *tok, JsonObject *o, const char *where, GError **error)
{
  const char *name = tok->name;
  GError *err = NULL;
  const char *type = get_string (o, "type", name, where, &err);
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  if (!type)
    FAIL (DSOCR_ERROR_FORMAT, "%s: %stype is missing", name, where);
  char sub[128];
  if (strcmp (type, "ByteLevel") == 0)
    return TRUE;
  if (strcmp (type, "Sequence") == 0) {
    JsonNode *ln = json_object_get_member (o, "processors");
    if (!ln || !JSON_NODE_HOLDS_ARRAY (ln))
      FAIL (DSOCR_ERROR_FORMAT, "%s: %sprocessors is not an array", name, where);
    JsonArray *arr = json_node_get_array (ln);
    for (guint i = 0; i < json_array_get_length (arr); i++) {
      JsonNode *e = json_array_get_element (arr, i);
      g_snprintf (sub, sizeof sub, "%sprocessors[%u].", where, i);
      if (!JSON_NODE_HOLDS_OBJECT (e))
        FAIL (DSOCR_ERROR_FORMAT, "%s: %s is not an object", name, sub);
      if (!load_post_processor (tok, json_node_get_object (e), sub, error))
        return FALSE;
    }
    return TRUE;
  }
  if (strcmp (type, "RobertaProcessing") == 0 || strcmp (type, "BertProcessing") == 0) {
    g_snprintf (sub, sizeof sub, "%scls", where);
    if (!special_ids (tok, json_object_get_member (o, "cls"), tok->prefix_ids, sub, error))
      return FALSE;
    g_snprintf (sub, sizeof sub, "%ssep", where);
    return special_ids (tok, json_object_get_member (o, "sep"), tok->suffix_ids, sub, error);
  }
  if (strcmp (type, "TemplateProcessing") != 0)
    FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: %stype \"%s\" is not supported", name, where, type);

  JsonNode *single = json_object_get_member (o, "single");
  JsonObject *specials = get_object (o, "special_tokens", FALSE, name, where, error);
  if (!specials && error && *error)
    return FALSE;
  if (!single || !JSON_NODE_HOLDS_ARRAY (single))
    FAIL (DSOCR_ERROR_FORMAT, "%s: %ssingle is not an array", name, where);
  JsonArray *items = json_node_get_array (single);
  gboolean after = FALSE;
  for (guint i = 0; i < json_array_get_length (items); i++) {
    JsonNode *e = json_array_get_element (items, i);
    g_snprintf (sub, sizeof sub, "%ssingle[%u]", where, i);
    JsonObject *it = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
    if (it && json_object_has_member (it, "Sequence")) {
      after = TRUE;
      continue;
    }
    JsonObject *sp = it ? get_object (it, "SpecialToken", FALSE, name, sub, NULL) : NULL;
    const char *sid = sp ? get_string (sp, "id", name, sub, NULL) : NULL;
    JsonObject *def = sid && specials ? get_object (specials, sid, FALSE, name, sub, NULL) : NULL;
    JsonNode *idsn = def ? json_object_get_member (def, "ids") : NULL;
    if (!idsn || !JSON_NODE_HOLDS_ARRAY (idsn))
      FAIL (DSOCR_ERROR_FORMAT,
            "%s: %s is neither a Sequence nor a SpecialToken defined in special_tokens", name,
            sub);
    JsonArray *ids = json_node_get_array (idsn);
    for (guint k = 0; k < json_array_get_length (ids); k++) {
      gint64 id;
      if (!node_int (json_array_get_element (ids, k), &id) || id < 0 || id >= G_MAXINT32)
        FAIL (DSOCR_ERROR_FORMAT, "%s: special_tokens[\"%s\"].ids[%u] is not an id", name, sid,
              k);
      int32_t v = (int32_t) id;
      g_array_append_val (after ? tok->suffix_ids : tok->prefix_ids, v);
    }
  }
  return TRUE;
}

static gboolean
load_decoder (dsocr_tokenizer *tok, JsonObject *o, const char *where, GError **error)
{
  GError *err = NULL;
  const char *type = get_string (o, "type", tok->name, where, &err);
  if (err) {
    g_propagate_error (error, err);
    return FALSE;
  }
  if (type && strcmp (type, "ByteLevel") == 0) {
    tok->byte_level_decoder = TRUE;
    return TRUE;
  }
  if (type && strcmp (type, "Sequence") == 0) {
    JsonNode *ln = json_object_get_member (o, "decoders");
    JsonArray *arr = ln && JSON_NODE_HOLDS_ARRAY (ln) ? json_node_get_array (ln) : NULL;
    if (arr && json_array_get_length (arr) == 1 &&
        JSON_NODE_HOLDS_OBJECT (json_array_get_element (arr, 0)))
      return load_decoder (tok, json_node_get_object (json_array_get_element (arr, 0)),
                           "decoder.decoders[0].", error);
  }
  FAIL (DSOCR_ERROR_UNSUPPORTED, "%s: %stype \"%s\" is not supported (ByteLevel or null)",
        tok->name, where, type ? type : "(missing)");
}

/* ---- id tables ---- */

static gboolean
build_id_tables (dsocr_tokenizer *tok, int32_t max_id, GError **error)
{
  guint count = g_hash_table_size (tok->vocab) + tok->n_added;
  if (max_id >= 0 && (guint64) max_id > 16 * (guint64) count + (1u << 20))
    FAIL (DSOCR_ERROR_FORMAT, "%s: ids go up to %d for %u tokens; the id space is too sparse",
          tok->name, max_id, count);
  tok->n_ids = max_id + 1;
  tok->id_token = g_new0 (const char *, tok->n_ids + 1);
  tok->id_bytes_off = g_new0 (uint32_t, tok->n_ids + 1);
  tok->id_bytes_len = g_new0 (uint32_t, tok->n_ids + 1);
  tok->id_special = g_new0 (guint8, tok->n_ids + 1);
  tok->id_bytes = g_byte_array_new ();

  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, tok->vocab);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    int32_t id = GPOINTER_TO_INT (v) - 1;
    /* duplicate ids: keep one deterministically (the smallest string) */
    if (!tok->id_token[id] || strcmp (k, tok->id_token[id]) < 0)
      tok->id_token[id] = k;
  }
  GHashTable *special = g_hash_table_new (g_str_hash, g_str_equal);
  tok->vocab_size = g_hash_table_size (tok->vocab);
  for (guint i = 0; i < tok->n_added; i++) {
    tok->id_token[tok->added[i].id] = tok->added[i].content;
    if (tok->added[i].special)
      g_hash_table_add (special, tok->added[i].content);
    if (dsocr_tok_vocab_id (tok, tok->added[i].content) < 0)
      tok->vocab_size++;
  }
  for (int32_t id = 0; id < tok->n_ids; id++) {
    const char *s = tok->id_token[id];
    if (!s)
      continue;
    tok->id_special[id] = g_hash_table_contains (special, s);
    tok->id_bytes_off[id] = tok->id_bytes->len;
    gsize before = tok->id_bytes->len;
    gboolean mapped = tok->byte_level_decoder;
    /* ByteLevel decoder: a token made only of alphabet characters becomes their bytes,
     * anything else (added tokens like <｜begin▁of▁sentence｜>) its own UTF-8 */
    for (const char *p = s; mapped && *p; p = g_utf8_next_char (p)) {
      int b = dsocr_tok_char_byte (g_utf8_get_char (p));
      if (b < 0)
        mapped = FALSE;
      else {
        guint8 byte = (guint8) b;
        g_byte_array_append (tok->id_bytes, &byte, 1);
      }
    }
    if (!mapped) {
      g_byte_array_set_size (tok->id_bytes, before);
      g_byte_array_append (tok->id_bytes, (const guint8 *) s, strlen (s));
    }
    tok->id_bytes_len[id] = tok->id_bytes->len - tok->id_bytes_off[id];
  }
  g_hash_table_unref (special);
  return TRUE;
}

/* ---- tokenizer_config.json ---- */

static int32_t
config_token (dsocr_tokenizer *tok, JsonObject *cfg, const char *key)
{
  JsonNode *n = json_object_get_member (cfg, key);
  const char *s = NULL;
  if (n && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
    s = json_node_get_string (n);
  else if (n && JSON_NODE_HOLDS_OBJECT (n))
    s = get_string (json_node_get_object (n), "content", tok->name, key, NULL);
  return s ? dsocr_tokenizer_token_to_id (tok, s) : -1;
}

static gboolean
load_config (dsocr_tokenizer *tok, const char *config_json, gssize config_len,
             const char *config_name, GError **error)
{
  JsonParser *parser = NULL;
  JsonNode *root = parse_json (config_json, config_len, config_name, &parser, error);
  if (!root) {
    g_clear_object (&parser);
    return FALSE;
  }
  JsonObject *cfg = json_node_get_object (root);
  tok->bos_id = config_token (tok, cfg, "bos_token");
  tok->eos_id = config_token (tok, cfg, "eos_token");
  tok->pad_id = config_token (tok, cfg, "pad_token");
  gboolean ok = TRUE;
  if (json_object_has_member (cfg, "add_bos_token") ||
      json_object_has_member (cfg, "add_eos_token")) {
    gboolean add_bos, add_eos;
    ok = get_bool (cfg, "add_bos_token", FALSE, &add_bos, config_name, "", error) &&
         get_bool (cfg, "add_eos_token", FALSE, &add_eos, config_name, "", error);
    if (ok) {
      g_array_set_size (tok->prefix_ids, 0);
      g_array_set_size (tok->suffix_ids, 0);
      if (add_bos && tok->bos_id >= 0)
        g_array_append_val (tok->prefix_ids, tok->bos_id);
      if (add_eos && tok->eos_id >= 0)
        g_array_append_val (tok->suffix_ids, tok->eos_id);
    }
  }
  g_object_unref (parser);
  return ok;
}

/* ---- public ---- */

static gboolean
load_all (dsocr_tokenizer *tok, JsonObject *root, GError **error)
{
  int32_t max_id = -1;
  JsonObject *o;
  if (!load_model (tok, root, &max_id, error))
    return FALSE;
  if ((o = get_object (root, "normalizer", FALSE, tok->name, "", error)) &&
      !load_normalizer (tok, o, "normalizer.", error))
    return FALSE;
  if (*error)
    return FALSE;
  if ((o = get_object (root, "pre_tokenizer", FALSE, tok->name, "", error)) &&
      !load_pre_tokenizer (tok, o, "pre_tokenizer.", error))
    return FALSE;
  if (*error)
    return FALSE;
  if (tok->n_steps == 0 || tok->steps[tok->n_steps - 1].kind != TOK_STEP_BYTE_LEVEL)
    FAIL (DSOCR_ERROR_UNSUPPORTED,
          "%s: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported",
          tok->name);
  if ((o = get_object (root, "decoder", FALSE, tok->name, "", error)) &&
      !load_decoder (tok, o, "decoder.", error))
    return FALSE;
  if (*error)
    return FALSE;
  if ((o = get_object (root, "post_processor", FALSE, tok->name, "", error)) &&
      !load_post_processor (tok, o, "post_processor.", error))
    return FALSE;
  if (*error)
    return FALSE;
  if (!load_added (tok, root, &max_id, error) || !build_added (tok, error))
    return FALSE;
  return build_id_tables (tok, max_id, error);
}

dsocr_tokenizer *
dsocr_tokenizer_new_from_data (const char *json, gssize json_len, const char *config_json,
                               gssize config_len, const char *name, GError **error)
{
  g_return_val_if_fail (json != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  GError *local = NULL;
  dsocr_tokenizer *tok = g_new0 (dsocr_tokenizer, 1);
  tok->name = g_strdup (name ? name : "tokenizer.json");
  tok->vocab = g_hash_table_new (g_str_hash, g_str_equal);
  tok->added_by_content = g_hash_table_new (g_str_hash, g_str_equal);
  tok->strings = g_string_chunk_new (1 << 16);
  tok->prefix_ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  tok->suffix_ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  tok->bos_id = tok->eos_id = tok->pad_id = -1;
  g_mutex_init (&tok->bpe.cache_lock);
  tok->bpe.cache = g_new0 (tok_cache_entry, TOK_CACHE_SLOTS);

  JsonParser *parser = NULL;
  JsonNode *root = parse_json (json, json_len, tok->name, &parser, &local);
  gboolean ok = root && load_all (tok, json_node_get_object (root), &local);
  g_clear_object (&parser);
  if (ok && config_json) {
    char *cname = g_strdup_printf ("%s (tokenizer_config.json)", tok->name);
    ok = load_config (tok, config_json, config_len, cname, &local);
    g_free (cname);
  }
  if (!ok) {
    g_propagate_error (error, local);
    dsocr_tokenizer_free (tok);
    return NULL;
  }
  return tok;
}

dsocr_tokenizer *
dsocr_tokenizer_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  char *json_path, *config_path;
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    json_path = g_build_filename (path, "tokenizer.json", NULL);
    config_path = g_build_filename (path, "tokenizer_config.json", NULL);
  } else {
    char *dir = g_path_get_dirname (path);
    json_path = g_strdup (path);
    config_path = g_build_filename (dir, "tokenizer_config.json", NULL);
    g_free (dir);
  }
  char *json = NULL, *config = NULL;
  gsize json_len = 0, config_len = 0;
  GError *err = NULL;
  dsocr_tokenizer *tok = NULL;
  if (!g_file_get_contents (json_path, &json, &json_len, &err)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: %s", json_path, err->message);
    g_error_free (err);
  } else if (g_file_test (config_path, G_FILE_TEST_EXISTS) &&
             !g_file_get_contents (config_path, &config, &config_len, &err)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: %s", config_path, err->message);
    g_error_free (err);
  } else {
    tok = dsocr_tokenizer_new_from_data (json, (gssize) json_len, config, (gssize) config_len,
                                         json_path, error);
  }
  g_free (json);
  g_free (config);
  g_free (json_path);
  g_free (config_path);
  return tok;
}

