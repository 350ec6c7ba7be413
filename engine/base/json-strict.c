/* json-strict.c: json-glib with the checks an untrusted file needs (see json-strict.h).
 *
 * The bytes are first checked against strict JSON (RFC 8259) with a nesting limit, because
 * json-glib recurses once per nesting level (a few hundred kilobytes of '[' overflow the stack)
 * and accepts extensions (comments, single-quoted strings) that Python's json module, and so
 * every real writer of these files, does not. Only then does json-glib build the tree.
 */
#include "json-strict.h"

#include <string.h>

#include "dsocr/dsocr-error.h"

/* ------------------------------------------------------------------------------------------ */
/* RFC 8259 scan: runs before json-glib sees the bytes */

typedef struct {
  const guchar *p, *start, *end;
  int depth, max_depth;
  const char *what;  /* why the scan stopped */
} json_scan;

static void
scan_ws (json_scan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int
scan_hex4 (json_scan *s)
{
  int v = 0;
  if (s->end - s->p < 4)
    return -1;
  for (int i = 0; i < 4; i++) {
    int d = g_ascii_xdigit_value (s->p[i]);
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  s->p += 4;
  return v;
}

static gboolean
scan_string (json_scan *s)
{
  s->p++;  /* opening quote */
  while (s->p < s->end) {
    guchar c = *s->p;
    if (c == '"') {
      s->p++;
      return TRUE;
    }
    if (c < 0x20) {
      s->what = "control character in a string";
      return FALSE;
    }
    if (c != '\\') {
      s->p++;
      continue;
    }
    s->p++;
    if (s->p >= s->end)
      break;
    c = *s->p++;
    if (strchr ("\"\\/bfnrt", c) && c != '\0')
      continue;
    if (c != 'u') {
      s->what = "invalid escape in a string";
      return FALSE;
    }
    int u = scan_hex4 (s);
    if (u < 0) {
      s->what = "invalid \\u escape";
      return FALSE;
    }
    /* Surrogates must pair up and NUL is refused: the tree holds C strings. */
    if (u == 0) {
      s->what = "\\u0000 in a string";
      return FALSE;
    }
    if (u >= 0xDC00 && u <= 0xDFFF) {
      s->what = "unpaired surrogate in a string";
      return FALSE;
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u') {
        s->what = "unpaired surrogate in a string";
        return FALSE;
      }
      s->p += 2;
      int lo = scan_hex4 (s);
      if (lo < 0xDC00 || lo > 0xDFFF) {
        s->what = "unpaired surrogate in a string";
        return FALSE;
      }
    }
  }
  s->what = "unterminated string";
  return FALSE;
}

static gboolean
scan_digits (json_scan *s)
{
  const guchar *from = s->p;
  while (s->p < s->end && g_ascii_isdigit (*s->p))
    s->p++;
  return s->p > from;
}

static gboolean
scan_number (json_scan *s)
{
  if (*s->p == '-')
    s->p++;
  if (s->p < s->end && *s->p == '0')
    s->p++;
  else if (!scan_digits (s))
    goto bad;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!scan_digits (s))
      goto bad;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (!scan_digits (s))
      goto bad;
  }
  return TRUE;
bad:
  s->what = "invalid number";
  return FALSE;
}

static gboolean
scan_literal (json_scan *s, const char *word)
{
  gsize n = strlen (word);
  if ((gsize) (s->end - s->p) < n || memcmp (s->p, word, n) != 0) {
    s->what = "unexpected character";
    return FALSE;
  }
  s->p += n;
  return TRUE;
}

static gboolean scan_value (json_scan *s);

static gboolean
scan_container (json_scan *s, guchar close)
{
  if (++s->depth > s->max_depth) {
    s->what = "nested too deeply";
    return FALSE;
  }
  s->p++;
  scan_ws (s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    s->depth--;
    return TRUE;
  }
  for (;;) {
    if (close == '}') {
      if (s->p >= s->end || *s->p != '"') {
        s->what = "expected a member name";
        return FALSE;
      }
      if (!scan_string (s))
        return FALSE;
      scan_ws (s);
      if (s->p >= s->end || *s->p != ':') {
        s->what = "expected ':'";
        return FALSE;
      }
      s->p++;
    }
    if (!scan_value (s))
      return FALSE;
    scan_ws (s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      scan_ws (s);
      continue;
    }
    if (s->p < s->end && *s->p == close) {
      s->p++;
      s->depth--;
      return TRUE;
    }
    s->what = close == '}' ? "expected ',' or '}'" : "expected ',' or ']'";
    return FALSE;
  }
}

static gboolean
scan_value (json_scan *s)
{
  scan_ws (s);
  if (s->p >= s->end) {
    s->what = "unexpected end of data";
    return FALSE;
  }
  switch (*s->p) {
    case '{': return scan_container (s, '}');
    case '[': return scan_container (s, ']');
    case '"': return scan_string (s);
    case 't': return scan_literal (s, "true");
    case 'f': return scan_literal (s, "false");
    case 'n': return scan_literal (s, "null");
    default:
      if (*s->p == '-' || g_ascii_isdigit (*s->p))
        return scan_number (s);
      s->what = "unexpected character";
      return FALSE;
  }
}

static gboolean
check_strict_json (const char *data, gsize len, int max_depth, const char *origin,
                   GError **error)
{
  const char *bad_utf8 = NULL;
  if (!g_utf8_validate_len (data, len, &bad_utf8)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: not valid JSON: invalid UTF-8 or NUL byte at byte %" G_GSIZE_FORMAT, origin,
                 (gsize) (bad_utf8 - data));
    return FALSE;
  }
  json_scan s = { (const guchar *) data, (const guchar *) data, (const guchar *) data + len, 0,
                  max_depth, NULL };
  gboolean ok = scan_value (&s);
  if (ok) {
    scan_ws (&s);
    if (s.p != s.end) {
      s.what = "trailing data after the top-level value";
      ok = FALSE;
    }
  }
  if (!ok)
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: not valid JSON: %s at byte %td",
                 origin, s.what, (const char *) s.p - data);
  return ok;
}

typedef struct {
  GHashTable *seen; /* JsonObject * (borrowed) -> GHashTable * set of member names (owned) */
  char *duplicate;  /* the first repeated key, or NULL */
} strict_state;

/* json-glib has already stored the member when this runs, so a repeat is visible only as a
 * name this object has announced before. */
static void
on_object_member (JsonParser *parser, JsonObject *object, const char *name, strict_state *s)
{
  GHashTable *names = g_hash_table_lookup (s->seen, object);

  if (!names) {
    names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert (s->seen, object, names);
  }
  if (!g_hash_table_add (names, g_strdup (name)) && !s->duplicate)
    s->duplicate = g_strdup (name);
}

/* Forgets an object once it is complete: a replaced duplicate is freed later and its address
 * may be reused by a new object, which must start with an empty name set. */
static void
on_object_end (JsonParser *parser, JsonObject *object, strict_state *s)
{
  g_hash_table_remove (s->seen, object);
}

JsonNode *
dsocr_json_parse_strict (const char *data, gsize len, int max_depth, gboolean allow_duplicates,
                         const char *what, GError **error)
{
  strict_state s = { 0 };
  JsonParser *parser;
  JsonNode *root = NULL;
  GError *local = NULL;

  if (len > G_MAXSSIZE) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: JSON text too large", what);
    return NULL;
  }
  if (!check_strict_json (data, len, max_depth, what, error))
    return NULL;

  s.seen = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                  (GDestroyNotify) g_hash_table_unref);
  parser = json_parser_new ();
  if (!allow_duplicates) {
    g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &s);
    g_signal_connect (parser, "object-end", G_CALLBACK (on_object_end), &s);
  }

  if (!json_parser_load_from_data (parser, data, (gssize) len, &local)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: not valid JSON: %s", what,
                 local->message);
    g_error_free (local);
  } else if (s.duplicate) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: duplicate key '%s'", what,
                 s.duplicate);
  } else if (!(root = json_parser_steal_root (parser))) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: empty JSON document", what);
  }

  g_object_unref (parser);
  g_hash_table_unref (s.seen);
  g_free (s.duplicate);
  return root;
}
