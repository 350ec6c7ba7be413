/* reading.h: how a reading of the bundled model's pages is scored, as training/eval_reader.py
 * scores it: the text of an output (grounding tags and "# " removed, lines stripped, empty
 * lines dropped) against the page's lines, by Levenshtein distance over characters. Shared by
 * tests/engine/test-reader.c and tests/check/pipelines/bundled-model.c. */
#ifndef DSOCR_READING_H
#define DSOCR_READING_H

#include <string.h>

#include <glib.h>

/* The text of @output as the evaluation reads it (eval_reader.text_of). (transfer full) */
static inline char *
reading_text_of (const char *output)
{
  GString *s = g_string_new (NULL);
  const char *p = output;
  /* drop <|ref|>..<|/ref|> and <|det|>..<|/det|> spans */
  while (*p) {
    const char *open = NULL, *close_tag = NULL;
    if (g_str_has_prefix (p, "<|ref|>"))
      open = "<|ref|>", close_tag = "<|/ref|>";
    else if (g_str_has_prefix (p, "<|det|>"))
      open = "<|det|>", close_tag = "<|/det|>";
    if (open) {
      const char *end = strstr (p + strlen (open), close_tag);
      if (end) {
        p = end + strlen (close_tag);
        continue;
      }
    }
    g_string_append_c (s, *p++);
  }
  char **lines = g_strsplit (s->str, "\n", -1);
  g_string_free (s, TRUE);
  GString *out = g_string_new (NULL);
  for (int i = 0; lines[i]; i++) {
    char *l = g_strstrip (lines[i]);
    if (g_str_has_prefix (l, "# "))
      l = g_strstrip (l + 2);
    if (!*l)
      continue;
    if (out->len)
      g_string_append_c (out, '\n');
    g_string_append (out, l);
  }
  g_strfreev (lines);
  return g_string_free (out, FALSE);
}

/* Levenshtein distance between UTF-8 strings @a and @b, over Unicode characters. */
static inline gsize
reading_levenshtein (const char *a, const char *b)
{
  glong na = 0, nb = 0;
  gunichar *ua = g_utf8_to_ucs4_fast (a, -1, &na);
  gunichar *ub = g_utf8_to_ucs4_fast (b, -1, &nb);
  gsize *prev = g_new (gsize, nb + 1), *cur = g_new (gsize, nb + 1);
  for (glong j = 0; j <= nb; j++)
    prev[j] = (gsize) j;
  for (glong i = 1; i <= na; i++) {
    cur[0] = (gsize) i;
    for (glong j = 1; j <= nb; j++) {
      gsize del = prev[j] + 1, ins = cur[j - 1] + 1;
      gsize sub = prev[j - 1] + (ua[i - 1] != ub[j - 1]);
      cur[j] = MIN (MIN (del, ins), sub);
    }
    gsize *t = prev;
    prev = cur;
    cur = t;
  }
  gsize d = prev[nb];
  g_free (cur);
  g_free (prev);
  g_free (ub);
  g_free (ua);
  return d;
}

#endif /* DSOCR_READING_H */
