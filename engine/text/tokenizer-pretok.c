/* tokenizer-pretok.c: everything between the input text and the BPE pieces: added-token
 * extraction, normalizers, and the pre-tokenizer steps with Oniguruma-compatible regexes.
 *
 * The reference (`tokenizers`) runs Split regexes with Oniguruma in Ruby syntax. PCRE2 (the
 * library under GLib's GRegex) runs them here; the patterns are rewritten so that the classes
 * mean what Oniguruma means: \s is Oniguruma's 25 White_Space code points (PCRE2 adds U+180E),
 * and \p{..} general categories gain the code points Unicode 15.0-16.0 assigned, which
 * Oniguruma knows and PCRE2 10.42 (Unicode 14.0) does not (tokenizer-unicode.c).
 */
#include "tokenizer-private.h"

#include <string.h>

#include "dsocr/dsocr-error.h"

/* Oniguruma's \s: White_Space (tab..CR, space, NEL, NBSP, Zs, LS, PS). */
#define TOK_SPACE_ITEMS                                                                        \
  "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"         \
  "\\x{202F}\\x{205F}\\x{3000}"
#define TOK_WORD_EXTRA_ITEMS                                                                   \
  "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}\\x{24B6}-\\x{24E9}\\x{1F130}-\\x{1F149}"                  \
  "\\x{1F150}-\\x{1F169}\\x{1F170}-\\x{1F189}"
static const char *const word_gcs[] = { "L", "M", "Nd", "Nl", "Pc" };
#define TOK_HEX_ITEMS "0-9a-fA-F"
#define TOK_NOT_HEX_ITEMS "\\x{0}-\\x{2F}\\x{3A}-\\x{40}\\x{47}-\\x{60}\\x{67}-\\x{10FFFF}"

/* ---- regex translation ---- */

static const struct {
  const char *longname;
  const char *gc;
} gc_long_names[] = {
  { "letter", "L" }, { "mark", "M" }, { "number", "N" }, { "punctuation", "P" },
  { "symbol", "S" }, { "separator", "Z" }, { "other", "C" },
  { "uppercaseletter", "Lu" }, { "lowercaseletter", "Ll" }, { "decimalnumber", "Nd" },
};

/* Appends a general-category set to @out, as class items (inside a class) or as a whole
 * class. Categories Oniguruma and PCRE2 agree on except for newer code points get the delta;
 * a negated set inside a class cannot take extra items, so it stays PCRE2's own. */
static void
append_gc (GString *out, const char *gc, gboolean negated, gboolean in_class)
{
  const char *delta = dsocr_tok_unicode_delta (gc);
  if (in_class) {
    if (negated)
      g_string_append_printf (out, "\\P{%s}", gc);
    else
      g_string_append_printf (out, "\\p{%s}%s", gc, delta ? delta : "");
    return;
  }
  g_string_append_printf (out, "[%s\\p{%s}%s]", negated ? "^" : "", gc, delta ? delta : "");
}

static void
append_items (GString *out, const char *items, gboolean negated, gboolean in_class,
              const char *native_negated)
{
  if (in_class)
    g_string_append (out, negated ? native_negated : items);
  else
    g_string_append_printf (out, "[%s%s]", negated ? "^" : "", items);
}

/* Oniguruma's Word: L M Nd Nl Pc, circled letters, and superscript / fraction digits. */
static void
append_word (GString *out, gboolean negated, gboolean in_class)
{
  if (!in_class)
    g_string_append (out, negated ? "[^" : "[");
  for (guint i = 0; i < G_N_ELEMENTS (word_gcs); i++)
    append_gc (out, word_gcs[i], FALSE, TRUE);
  g_string_append (out, TOK_WORD_EXTRA_ITEMS);
  if (!in_class)
    g_string_append_c (out, ']');
}

static int
utf8_len (guchar c)
{
  if (c < 0x80)
    return 1;
  if (c >= 0xF0)
    return 4;
  if (c >= 0xE0)
    return 3;
  if (c >= 0xC0)
    return 2;
  return 1;
}

char *
dsocr_tok_regex_translate (const char *onig, const char *what, GError **error)
{
  GString *out = g_string_sized_new (strlen (onig) * 2 + 16);
  gboolean in_class = FALSE;
  const char *p = onig;

  while (*p) {
    guchar c = (guchar) *p;
    if (c == '\\') {
      char e = p[1];
      if (e == '\0') {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: pattern ends with a backslash",
                     what);
        goto fail;
      }
      if (e == 'p' || e == 'P') {
        if (p[2] != '{') {
          if (p[2] == '\0') {
            g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: pattern ends in \\%c",
                         what, e);
            goto fail;
          }
          g_string_append_len (out, p, 2 + utf8_len ((guchar) p[2])); /* \pL, as PCRE2 */
          p += 2 + utf8_len ((guchar) p[2]);
          continue;
        }
        const char *close = strchr (p + 3, '}');
        if (!close) {
          g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: unterminated \\%c{", what, e);
          goto fail;
        }
        gboolean negated = (e == 'P');
        const char *name = p + 3;
        if (*name == '^') {
          negated = !negated;
          name++;
        }
        /* Oniguruma ignores case, spaces, '-' and '_' in property names. */
        GString *norm = g_string_new (NULL);
        for (const char *q = name; q < close; q++)
          if (*q != ' ' && *q != '_' && *q != '-')
            g_string_append_c (norm, g_ascii_tolower (*q));
        const char *gc = NULL;
        char gcbuf[3] = { 0 };
        if (norm->len == 1 || norm->len == 2) {
          gcbuf[0] = g_ascii_toupper (norm->str[0]);
          gcbuf[1] = norm->len == 2 ? norm->str[1] : '\0';
          if (dsocr_tok_unicode_delta (gcbuf))
            gc = gcbuf;
        }
        for (guint i = 0; !gc && i < G_N_ELEMENTS (gc_long_names); i++)
          if (strcmp (norm->str, gc_long_names[i].longname) == 0)
            gc = gc_long_names[i].gc;
        if (gc)
          append_gc (out, gc, negated, in_class);
        else
          /* scripts and other properties: PCRE2's own tables */
          g_string_append_printf (out, "\\%c{%.*s}", negated ? 'P' : 'p',
                                  (int) (close - name), name);
        g_string_free (norm, TRUE);
        p = close + 1;
        continue;
      }
      switch (e) {
      case 's':
      case 'S':
        append_items (out, TOK_SPACE_ITEMS, e == 'S', in_class, "\\S");
        break;
      case 'd':
      case 'D':
        append_gc (out, "Nd", e == 'D', in_class);
        break;
      case 'w':
      case 'W':
        if (in_class && e == 'W')
          g_string_append (out, "\\W");
        else
          append_word (out, e == 'W', in_class);
        break;
      case 'b':
      case 'B':
        if (in_class) {
          g_string_append_printf (out, "\\%c", e);
          break;
        }
        /* word boundaries by Oniguruma's word characters, not PCRE2's */
        g_string_append (out, e == 'b' ? "(?:(?<=" : "(?:(?<=");
        append_word (out, FALSE, FALSE);
        g_string_append (out, e == 'b' ? ")(?!" : ")(?=");
        append_word (out, FALSE, FALSE);
        g_string_append (out, e == 'b' ? ")|(?<!" : ")|(?<!");
        append_word (out, FALSE, FALSE);
        g_string_append (out, e == 'b' ? ")(?=" : ")(?!");
        append_word (out, FALSE, FALSE);
        g_string_append (out, "))");
        break;
      case 'h':
      case 'H':
        append_items (out, TOK_HEX_ITEMS, e == 'H', in_class, TOK_NOT_HEX_ITEMS);
        break;
      case 'u':
        /* Ruby's \uHHHH */
        if (g_ascii_isxdigit (p[2]) && g_ascii_isxdigit (p[3]) && g_ascii_isxdigit (p[4]) &&
            g_ascii_isxdigit (p[5])) {
          g_string_append_printf (out, "\\x{%.4s}", p + 2);
          p += 6;
          continue;
        }
        g_string_append (out, "\\u");
        break;
      default:
        g_string_append_c (out, '\\');
        g_string_append_len (out, p + 1, utf8_len ((guchar) e));
        p += 1 + utf8_len ((guchar) e);
        continue;
      }
      p += 2;
      continue;
    }
    if (in_class) {
      if (c == ']') {
        in_class = FALSE;
      } else if (c == '[') {
        if (p[1] == ':') {
          /* Oniguruma's POSIX classes are Unicode properties (alpha = Alphabetic) that
           * PCRE2 defines otherwise */
          g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                       "%s: POSIX bracket classes ([[:name:]]) are not supported", what);
          goto fail;
        }
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                     "%s: nested character classes are not supported", what);
        goto fail;
      } else if (c == '&' && p[1] == '&') {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                     "%s: class intersection (&&) is not supported", what);
        goto fail;
      }
      g_string_append_len (out, p, utf8_len (c));
      p += utf8_len (c);
      continue;
    }
    if (c == '[') {
      in_class = TRUE;
      g_string_append_c (out, '[');
      p++;
      if (*p == '^')
        g_string_append_c (out, *p++);
      if (*p == ']')  /* a ']' first in a class is a literal in both syntaxes */
        g_string_append_c (out, *p++);
      continue;
    }
    if (c == '(' && p[1] == '?' && strchr ("imx-", p[2]) && p[2]) {
      /* Ruby's (?m) is dotall: PCRE2's (?s) */
      g_string_append (out, "(?");
      p += 2;
      while (*p && strchr ("imx-", *p)) {
        g_string_append_c (out, *p == 'm' ? 's' : *p);
        p++;
      }
      continue;
    }
    if (c == '{' && p[1] == ',' && g_ascii_isdigit (p[2])) {
      /* Ruby's {,n} is {0,n}; PCRE2 10.42 would read it as text */
      g_string_append (out, "{0");
      p++;
      continue;
    }
    g_string_append_len (out, p, utf8_len (c));
    p += utf8_len (c);
  }
  return g_string_free (out, FALSE);

fail:
  g_string_free (out, TRUE);
  return NULL;
}

static pcre2_code *
compile_pcre2 (const char *pattern, const char *what, GError **error)
{
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_compile_context *cc = pcre2_compile_context_create (NULL);
  pcre2_set_newline (cc, PCRE2_NEWLINE_LF);
  /* Ruby's ^ and $ are line anchors. */
  pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &err_off, cc);
  pcre2_compile_context_free (cc);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message (err, msg, sizeof msg);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: bad regex at offset %zu: %s", what,
                 (size_t) err_off, (const char *) msg);
    return NULL;
  }
  /* Without JIT (not built, or refused by the system) the interpreter gives the same matches. */
  pcre2_jit_compile (re, PCRE2_JIT_COMPLETE);
  return re;
}

pcre2_code *
dsocr_tok_regex_compile (const char *onig, const char *what, GError **error)
{
  char *pattern = dsocr_tok_regex_translate (onig, what, error);
  if (!pattern)
    return NULL;
  pcre2_code *re = compile_pcre2 (pattern, what, error);
  g_free (pattern);
  return re;
}

/* ---- matching ---- */

/* One match at or after @pos; FALSE at the end. A JIT stack overflow retries in the
 * interpreter, whose memory is on the heap. */
static gboolean
match_at (tok_ctx *ctx, const pcre2_code *re, const char *s, gsize n, gsize pos, gsize *ms,
          gsize *me)
{
  int rc = pcre2_match (re, (PCRE2_SPTR) s, n, pos, PCRE2_NO_UTF_CHECK, ctx->md, NULL);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match (re, (PCRE2_SPTR) s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, ctx->md,
                      NULL);
  if (rc == PCRE2_ERROR_NOMATCH)
    return FALSE;
  if (rc < 0) {
    if (!ctx->error) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message (rc, msg, sizeof msg);
      g_set_error (&ctx->error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "%s: pre-tokenizer regex failed on a %zu-byte piece: %s", ctx->tok->name,
                   (size_t) n, (const char *) msg);
    }
    return FALSE;
  }
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer (ctx->md);
  *ms = ov[0];
  *me = ov[1];
  return TRUE;
}

/* Fills @out with the (offsets, is_match) list of `tokenizers`' Pattern::find_matches for an
 * Oniguruma regex, iterating the way the onig crate's find_iter does: the next search starts
 * at the previous match's end, and an empty match right at that end is skipped by one
 * character. */
static void
find_matches (tok_ctx *ctx, const pcre2_code *re, const char *s, gsize n, GArray *out)
{
  g_array_set_size (out, 0);
  gsize pos = 0, prev = 0, ms, me;
  gssize last_end = -1;
  if (n == 0) {
    tok_span sp = { 0, 0, FALSE };
    g_array_append_val (out, sp);
    return;
  }
  while (pos <= n && match_at (ctx, re, s, n, pos, &ms, &me)) {
    if (ms == me && (gssize) me == last_end) {
      if (pos >= n)
        break;
      pos += utf8_len ((guchar) s[pos]);
      continue;
    }
    if (prev != ms) {
      tok_span sp = { prev, ms, FALSE };
      g_array_append_val (out, sp);
    }
    tok_span sp = { ms, me, TRUE };
    g_array_append_val (out, sp);
    prev = me;
    pos = me;
    last_end = (gssize) me;
  }
  if (prev != n) {
    tok_span sp = { prev, n, FALSE };
    g_array_append_val (out, sp);
  }
}

/* Applies a SplitDelimiterBehavior to find_matches' list, in place. Afterwards is_match
 * means "remove". */
static void
apply_behavior (GArray *spans, tok_behavior behavior, gboolean invert)
{
  tok_span *v = (tok_span *) spans->data;
  guint n = spans->len, k = 0;
  gboolean prev_match = FALSE;

  if (invert)
    for (guint i = 0; i < n; i++)
      v[i].is_match = !v[i].is_match;

  switch (behavior) {
  case TOK_ISOLATED:
    for (guint i = 0; i < n; i++)
      v[i].is_match = FALSE;
    return;
  case TOK_REMOVED:
    return;
  case TOK_CONTIGUOUS:
    for (guint i = 0; i < n; i++) {
      gboolean m = v[i].is_match;
      if (m == prev_match && k > 0) {
        v[k - 1].end = v[i].end;
      } else {
        v[k] = v[i];
        v[k++].is_match = FALSE;
      }
      prev_match = m;
    }
    break;
  case TOK_MERGED_WITH_PREVIOUS:
    for (guint i = 0; i < n; i++) {
      gboolean m = v[i].is_match;
      if (m && !prev_match && k > 0) {
        v[k - 1].end = v[i].end;
      } else {
        v[k] = v[i];
        v[k++].is_match = FALSE;
      }
      prev_match = m;
    }
    break;
  case TOK_MERGED_WITH_NEXT:
    /* walked from the end, so "previous" is the span to the right; k counts from the end */
    for (guint i = n; i-- > 0;) {
      gboolean m = v[i].is_match;
      if (m && !prev_match && k > 0) {
        v[n - k].start = v[i].start;
      } else {
        v[n - 1 - k] = v[i];
        v[n - 1 - k].is_match = FALSE;
        k++;
      }
      prev_match = m;
    }
    memmove (v, v + (n - k), k * sizeof (tok_span));
    break;
  }
  g_array_set_size (spans, k);
}

static void pretok_piece (tok_ctx *ctx, const char *s, gsize n, int step);

static void
split_and_recurse (tok_ctx *ctx, const pcre2_code *re, tok_behavior behavior, gboolean invert,
                   const char *s, gsize n, int step)
{
  GArray *spans = ctx->spans[step];
  find_matches (ctx, re, s, n, spans);
  apply_behavior (spans, behavior, invert);
  for (guint i = 0; i < spans->len && !ctx->error; i++) {
    const tok_span *sp = &g_array_index (spans, tok_span, i);
    if (!sp->is_match && sp->end > sp->start)
      pretok_piece (ctx, s + sp->start, sp->end - sp->start, step + 1);
  }
}

static void
pretok_piece (tok_ctx *ctx, const char *s, gsize n, int step)
{
  const dsocr_tokenizer *tok = ctx->tok;
  if (n == 0 || ctx->error)
    return;
  if (step == tok->n_steps) {
    if (ctx->pieces)
      g_ptr_array_add (ctx->pieces, g_bytes_new (s, n));
    else
      dsocr_tok_bpe_piece (ctx, (const guint8 *) s, n);
    return;
  }
  const tok_step *st = &tok->steps[step];
  if (st->kind == TOK_STEP_SPLIT) {
    split_and_recurse (ctx, st->re, st->behavior, st->invert, s, n, step);
    return;
  }
  /* ByteLevel: the byte mapping itself is implicit (BPE works on bytes) */
  char *owned = NULL;
  if (st->add_prefix_space && s[0] != ' ') {
    owned = g_malloc (n + 1);
    owned[0] = ' ';
    memcpy (owned + 1, s, n);
    s = owned;
    n++;
  }
  if (st->re)
    split_and_recurse (ctx, st->re, TOK_ISOLATED, FALSE, s, n, step);
  else
    pretok_piece (ctx, s, n, step + 1);
  g_free (owned);
}

/* ---- added tokens ---- */

void
dsocr_tok_trie_init (tok_trie *t)
{
  for (int i = 0; i < 256; i++)
    t->root[i] = -1;
  t->nodes = g_array_new (FALSE, FALSE, sizeof (tok_trie_node));
}

void
dsocr_tok_trie_clear (tok_trie *t)
{
  if (t->nodes)
    g_array_free (t->nodes, TRUE);
  t->nodes = NULL;
}

static int32_t
trie_new_node (tok_trie *t, guint8 byte)
{
  tok_trie_node nd = { -1, -1, -1, byte };
  g_array_append_val (t->nodes, nd);
  return (int32_t) t->nodes->len - 1;
}

static int32_t
trie_child (const tok_trie *t, int32_t node, guint8 byte)
{
  const tok_trie_node *nodes = (const tok_trie_node *) t->nodes->data;
  for (int32_t c = nodes[node].first_child; c >= 0; c = nodes[c].sibling)
    if (nodes[c].byte == byte)
      return c;
  return -1;
}

void
dsocr_tok_trie_insert (tok_trie *t, const char *s, gsize n, int32_t added)
{
  g_return_if_fail (n > 0);
  guint8 b0 = (guint8) s[0];
  if (t->root[b0] < 0)
    t->root[b0] = trie_new_node (t, b0);
  int32_t node = t->root[b0];
  for (gsize i = 1; i < n; i++) {
    guint8 b = (guint8) s[i];
    int32_t c = trie_child (t, node, b);
    if (c < 0) {
      c = trie_new_node (t, b);
      tok_trie_node *nodes = (tok_trie_node *) t->nodes->data;
      nodes[c].sibling = nodes[node].first_child;
      nodes[node].first_child = c;
    }
    node = c;
  }
  g_array_index (t->nodes, tok_trie_node, node).added = added;
}

typedef struct {
  gsize start, end;
  int32_t added; /* -1: text */
} tok_item;

static gboolean
is_space_at (const char *s, gsize n, gsize pos, gsize *len)
{
  gunichar c = g_utf8_get_char_validated (s + pos, n - pos);
  *len = utf8_len ((guchar) s[pos]);
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

/* Whether the character at @s (one of @n bytes) is a word character for single_word. */
static gboolean
word_char (tok_ctx *ctx, const char *s, gsize n)
{
  if (n == 0)
    return FALSE;
  gsize len = MIN ((gsize) utf8_len ((guchar) s[0]), n);
  int rc = pcre2_match (ctx->tok->word_re, (PCRE2_SPTR) s, len, 0,
                        PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, ctx->md, NULL);
  return rc >= 0;
}

/* `tokenizers`' AddedVocabulary::find_matches: leftmost-longest trie matches, filtered by
 * single_word and widened by lstrip / rstrip. */
static void
find_added (tok_ctx *ctx, const tok_trie *t, const char *s, gsize n, GArray *items)
{
  const dsocr_tokenizer *tok = ctx->tok;
  g_array_set_size (items, 0);
  if (t->nodes->len == 0 || n == 0) {
    tok_item it = { 0, n, -1 };
    g_array_append_val (items, it);
    return;
  }
  const tok_trie_node *nodes = (const tok_trie_node *) t->nodes->data;
  gsize start_offset = 0, pos = 0;
  while (pos < n) {
    int32_t node = t->root[(guint8) s[pos]];
    if (node < 0) {
      pos++;
      continue;
    }
    int32_t best = -1;
    gsize best_len = 0, i = pos;
    for (;;) {
      if (nodes[node].added >= 0) {
        best = nodes[node].added;
        best_len = i - pos + 1;
      }
      if (++i >= n)
        break;
      node = trie_child (t, node, (guint8) s[i]);
      if (node < 0)
        break;
    }
    if (best < 0) {
      pos++;
      continue;
    }
    gsize start = pos, stop = pos + best_len;
    pos = stop;
    const tok_added *a = &tok->added[best];
    if (a->single_word) {
      /* the character before: the last one of s[..start] */
      gsize before = start > 0 ? start - 1 : 0;
      while (before > 0 && ((guchar) s[before] & 0xC0) == 0x80)
        before--;
      gboolean start_space = start == 0 || !word_char (ctx, s + before, start - before);
      gboolean stop_space = stop == n || !word_char (ctx, s + stop, n - stop);
      if (!start_space || !stop_space)
        continue;
    }
    if (a->lstrip) {
      gsize newstart = start;
      while (newstart > 0) {
        gsize b = newstart - 1, len;
        while (b > 0 && ((guchar) s[b] & 0xC0) == 0x80)
          b--;
        if (!is_space_at (s, n, b, &len))
          break;
        newstart = b;
      }
      start = MAX (newstart, start_offset);
    }
    if (a->rstrip) {
      gsize len;
      while (stop < n && is_space_at (s, n, stop, &len))
        stop += len;
    }
    if (start_offset < start) {
      tok_item it = { start_offset, start, -1 };
      g_array_append_val (items, it);
    }
    tok_item it = { start, stop, best };
    g_array_append_val (items, it);
    start_offset = stop;
  }
  if (start_offset != n) {
    tok_item it = { start_offset, n, -1 };
    g_array_append_val (items, it);
  }
}

static char *
normalize (const dsocr_tokenizer *tok, const char *s, gsize n)
{
  char *cur = g_strndup (s, n);
  for (int i = 0; i < tok->n_norms; i++) {
    static const GNormalizeMode modes[] = {
      [TOK_NORM_NFC] = G_NORMALIZE_NFC,
      [TOK_NORM_NFD] = G_NORMALIZE_NFD,
    };
    char *next = g_utf8_normalize (cur, -1, modes[tok->norms[i]]);
    g_free (cur);
    cur = next ? next : g_strdup ("");
  }
  return cur;
}

static void
emit_added (tok_ctx *ctx, const tok_item *it, const char *s)
{
  if (ctx->pieces)
    g_ptr_array_add (ctx->pieces, g_bytes_new (s + it->start, it->end - it->start));
  else
    g_array_append_val (ctx->ids, ctx->tok->added[it->added].id);
}

gboolean
dsocr_tok_encode_text (tok_ctx *ctx, const char *text, gsize n)
{
  const dsocr_tokenizer *tok = ctx->tok;
  GArray *raw = g_array_new (FALSE, FALSE, sizeof (tok_item));
  GArray *inner = g_array_new (FALSE, FALSE, sizeof (tok_item));

  find_added (ctx, &tok->trie_raw, text, n, raw);
  for (guint i = 0; i < raw->len && !ctx->error; i++) {
    const tok_item *it = &g_array_index (raw, tok_item, i);
    if (it->end <= it->start)
      continue;
    if (it->added >= 0) {
      emit_added (ctx, it, text);
      continue;
    }
    const char *seg = text + it->start;
    gsize seg_n = it->end - it->start;
    char *normed = NULL;
    if (tok->n_norms > 0) {
      normed = normalize (tok, seg, seg_n);
      seg = normed;
      seg_n = strlen (normed);
    }
    find_added (ctx, &tok->trie_norm, seg, seg_n, inner);
    for (guint j = 0; j < inner->len && !ctx->error; j++) {
      const tok_item *jt = &g_array_index (inner, tok_item, j);
      if (jt->end <= jt->start)
        continue;
      if (jt->added >= 0)
        emit_added (ctx, jt, seg);
      else
        pretok_piece (ctx, seg + jt->start, jt->end - jt->start, 0);
    }
    g_free (normed);
  }
  g_array_free (raw, TRUE);
  g_array_free (inner, TRUE);
  return ctx->error == NULL;
}

void
dsocr_tok_ctx_init (tok_ctx *ctx, const dsocr_tokenizer *tok, GArray *ids)
{
  memset (ctx, 0, sizeof *ctx);
  ctx->tok = tok;
  ctx->ids = ids;
  /* room for the largest capture count of any of the tokenizer's patterns */
  ctx->md = pcre2_match_data_create (32, NULL);
  for (int i = 0; i <= TOK_MAX_STEPS; i++)
    ctx->spans[i] = g_array_new (FALSE, FALSE, sizeof (tok_span));
}

void
dsocr_tok_ctx_clear (tok_ctx *ctx)
{
  pcre2_match_data_free (ctx->md);
  for (int i = 0; i <= TOK_MAX_STEPS; i++)
    g_array_free (ctx->spans[i], TRUE);
  if (ctx->sym)
    g_array_free (ctx->sym, TRUE);
  if (ctx->heap)
    g_array_free (ctx->heap, TRUE);
  if (ctx->tmp)
    g_string_free (ctx->tmp, TRUE);
  g_clear_error (&ctx->error);
  memset (ctx, 0, sizeof *ctx);
}

GPtrArray *
dsocr_tok_pre_tokenize (const dsocr_tokenizer *tok, const char *text, gsize n, GError **error)
{
  tok_ctx ctx;
  dsocr_tok_ctx_init (&ctx, tok, NULL);
  ctx.pieces = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  pretok_piece (&ctx, text, n, 0);
  GPtrArray *pieces = ctx.pieces;
  if (ctx.error) {
    g_propagate_error (error, g_steal_pointer (&ctx.error));
    g_ptr_array_unref (pieces);
    pieces = NULL;
  }
  ctx.pieces = NULL;
  dsocr_tok_ctx_clear (&ctx);
  return pieces;
}
