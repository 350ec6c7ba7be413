/* grounding.c: DeepSeek-OCR's output text -> dsocr_result (markdown, regions, boxes).
 *
 * The reference is the post-processing of the official scripts (hub modeling_deepseekocr.py
 * `infer`, DeepSeek-OCR-vllm/run_dpsk_ocr_image.py and run_dpsk_ocr_pdf.py): re_match(),
 * draw_bounding_boxes() and the two replace() loops. Each step below names the one it
 * reproduces; docs/result-json.md lists where this code chooses differently (eval is replaced
 * by a strict literal parser, coordinates are clamped) and why.
 */
#include "dsocr/dsocr-result.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"

#define TAG_REF "<|ref|>"
#define TAG_REF_END "<|/ref|>"
#define TAG_DET "<|det|>"
#define TAG_DET_END "<|/det|>"
#define TAG_REF_END_DET "<|/ref|><|det|>"
#define IMAGE_REF "<|ref|>image<|/ref|>"
/* "<｜end▁of▁sentence｜>": fullwidth bars U+FF5C, lower one-eighth blocks U+2581 */
#define EOS_TEXT "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>"

/* Deeper box lists are refused as malformed: a box list is two levels deep, and Python itself
 * gives up at 200 nested brackets. */
#define LITERAL_MAX_DEPTH 32

struct dsocr_result {
  int width, height, page;
  dsocr_result_flags flags;
  char *raw;                 // the stripped text, tags kept
  char *markdown;
  dsocr_region *regions;     // [n_regions]
  int n_regions;
  GStringChunk *strings;     // labels, texts, file names of the regions and boxes
};

/* ---- byte helpers ---- */

/* First occurrence of @needle[@nlen] in @hay[@len] at or after @from, or -1. */
static gssize
find_bytes (const char *hay, gsize len, gsize from, const char *needle, gsize nlen)
{
  const char *p = hay + from, *end = hay + len;

  if (from > len || nlen > len - from)
    return -1;
  while ((gsize) (end - p) >= nlen) {
    p = memchr (p, needle[0], (gsize) (end - p) - nlen + 1);
    if (!p)
      return -1;
    if (memcmp (p, needle, nlen) == 0)
      return p - hay;
    p++;
  }
  return -1;
}

static gsize
count_bytes (const char *hay, gsize len, const char *needle)
{
  gsize n = 0, nlen = strlen (needle);
  gssize at = 0;

  while ((at = find_bytes (hay, len, (gsize) at, needle, nlen)) >= 0) {
    n++;
    at += (gssize) nlen;
  }
  return n;
}

/* Python's str.replace(needle, repl): every non-overlapping occurrence, left to right, in one
 * pass over the text as it is now. @scratch is reused between calls. */
static void
replace_all (GString *text, const char *needle, const char *repl, GString *scratch)
{
  gsize nlen = strlen (needle), rlen = strlen (repl), pos = 0;
  gssize at = find_bytes (text->str, text->len, 0, needle, nlen);

  if (at < 0)
    return;
  g_string_truncate (scratch, 0);
  while (at >= 0) {
    g_string_append_len (scratch, text->str + pos, (gssize) ((gsize) at - pos));
    g_string_append_len (scratch, repl, (gssize) rlen);
    pos = (gsize) at + nlen;
    at = find_bytes (text->str, text->len, pos, needle, nlen);
  }
  g_string_append_len (scratch, text->str + pos, (gssize) (text->len - pos));
  g_string_truncate (text, 0);
  g_string_append_len (text, scratch->str, (gssize) scratch->len);
}

/* ---- text clean-up ---- */

/* @len bytes -> valid UTF-8 without NUL. Invalid bytes are replaced as Python's
 * bytes.decode("utf-8", "replace") (and the tokenizer's decode) replace them: one U+FFFD per
 * maximal prefix of a well-formed sequence (Unicode table 3-7), a lone bad byte each. */
static GString *
sanitize_utf8 (const char *s, gsize len, gboolean *bad)
{
  static const char fffd[] = "\xef\xbf\xbd";
  const guint8 *u = (const guint8 *) s;
  GString *out = g_string_sized_new (len + 1);
  gsize i = 0;

  while (i < len) {
    guint8 c = u[i];
    int need;
    guint8 lo = 0x80, hi = 0xbf;
    gsize j;

    if (c < 0x80) {
      if (c == 0) {
        g_string_append (out, fffd);
        *bad = TRUE;
      } else {
        g_string_append_c (out, (char) c);
      }
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0)
        lo = 0xa0;
      else if (c == 0xed)
        hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f;
    } else {
      g_string_append (out, fffd);
      *bad = TRUE;
      i++;
      continue;
    }
    for (j = 1; j <= (gsize) need; j++) {
      guint8 b;
      if (i + j >= len)
        break;
      b = u[i + j];
      if (j == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
        break;
    }
    if (j <= (gsize) need) {
      g_string_append (out, fffd);
      *bad = TRUE;
      i += j;
    } else {
      g_string_append_len (out, s + i, need + 1);
      i += (gsize) need + 1;
    }
  }
  return out;
}

/* Python's str.isspace() on one code point: what str.strip() removes. */
static gboolean
py_isspace (gunichar c)
{
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
         c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Python's str.strip() on valid UTF-8 @s[@len]: the kept span is [*start, *end). */
static void
py_strip (const char *s, gsize len, gsize *start, gsize *end)
{
  const char *b = s, *e = s + len;

  while (b < e && py_isspace (g_utf8_get_char (b)))
    b = g_utf8_next_char (b);
  while (e > b) {
    const char *prev = g_utf8_find_prev_char (b, e);
    if (!prev || !py_isspace (g_utf8_get_char (prev)))
      break;
    e = prev;
  }
  *start = (gsize) (b - s);
  *end = (gsize) (e - s);
}

/* ---- box lists: a strict reader for the Python literal the reference eval()s ---- */

/* It accepts nested lists of ints and floats, with whitespace, a trailing comma and a sign;
 * what it accepts, eval() reads to the same value. Anything else (tuples, names, hex,
 * underscores, "007", comments) is malformed. */
typedef struct {
  const char *p, *end;
} literal;

typedef struct {
  gboolean is_list;
  double number;      // when !is_list
  int n_items;        // when is_list
  gboolean all_numbers;
  double items[4];    // the first 4 items when they are numbers
} literal_value;

static gboolean
is_inner_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static void
skip_inner_space (literal *L)
{
  while (L->p < L->end && is_inner_space (*L->p))
    L->p++;
}

static gboolean
is_digit (const char *p, const char *end)
{
  return p < end && *p >= '0' && *p <= '9';
}

static gboolean
read_number (literal *L, double *out)
{
  const char *start = L->p, *p = L->p, *digits;
  gsize n_int = 0, n_frac = 0;
  gboolean is_float = FALSE;
  char buf[64];
  char *heap = NULL, *num;

  if (p < L->end && (*p == '+' || *p == '-'))
    p++;
  digits = p;
  while (is_digit (p, L->end)) {
    p++;
    n_int++;
  }
  if (p < L->end && *p == '.') {
    const char *q = p + 1;
    while (is_digit (q, L->end)) {
      q++;
      n_frac++;
    }
    if (n_int == 0 && n_frac == 0)
      return FALSE;
    p = q;
    is_float = TRUE;
  } else if (n_int == 0) {
    return FALSE;
  }
  if (p < L->end && (*p == 'e' || *p == 'E')) {
    const char *q = p + 1;
    if (q < L->end && (*q == '+' || *q == '-'))
      q++;
    if (is_digit (q, L->end)) {
      while (is_digit (q, L->end))
        q++;
      p = q;
      is_float = TRUE;
    }
  }
  if (p < L->end && !is_inner_space (*p) && *p != ',' && *p != ']')
    return FALSE;
  /* Python refuses decimal ints with a leading zero ("007"), but not "00" or "007.5" */
  if (!is_float && n_int > 1 && digits[0] == '0') {
    for (const char *q = digits; q < p; q++)
      if (*q != '0')
        return FALSE;
  }
  if ((gsize) (p - start) < sizeof buf) {
    num = buf;
  } else {
    heap = g_malloc ((gsize) (p - start) + 1);
    num = heap;
  }
  memcpy (num, start, (gsize) (p - start));
  num[p - start] = '\0';
  *out = g_ascii_strtod (num, NULL);   // inf past the double range: clamped later
  g_free (heap);
  L->p = p;
  return TRUE;
}

/* One value at @depth (0: the whole literal). @boxes, given at depth 0 only, collects the
 * leading run of four-number items, as the reference's `for points in points_list` gets
 * through them before its first failure; @stopped says a failure ended the run. */
static gboolean
read_value (literal *L, int depth, literal_value *v, GArray *boxes, gboolean *stopped)
{
  memset (v, 0, sizeof *v);
  if (L->p < L->end && *L->p == '[') {
    if (depth >= LITERAL_MAX_DEPTH)
      return FALSE;
    L->p++;
    v->is_list = TRUE;
    v->all_numbers = TRUE;
    skip_inner_space (L);
    if (L->p < L->end && *L->p == ']') {
      L->p++;
      return TRUE;
    }
    for (;;) {
      literal_value item;
      if (!read_value (L, depth + 1, &item, NULL, NULL))
        return FALSE;
      if (item.is_list)
        v->all_numbers = FALSE;
      else if (v->n_items < 4)
        v->items[v->n_items] = item.number;
      v->n_items++;
      if (boxes && !*stopped) {
        if (item.is_list && item.n_items == 4 && item.all_numbers)
          g_array_append_vals (boxes, item.items, 4);
        else
          *stopped = TRUE;
      }
      skip_inner_space (L);
      if (L->p < L->end && *L->p == ',') {
        L->p++;
        skip_inner_space (L);
        if (L->p < L->end && *L->p == ']') {
          L->p++;
          return TRUE;
        }
        continue;
      }
      if (L->p < L->end && *L->p == ']') {
        L->p++;
        return TRUE;
      }
      return FALSE;
    }
  }
  return read_number (L, &v->number);
}

/* @det[@len] -> @boxes (4 doubles each). Returns FALSE when the literal is malformed or not
 * entirely a list of [x1, y1, x2, y2]; the boxes before the first bad item are kept, as the
 * reference draws and crops them before its exception. */
static gboolean
parse_box_list (const char *det, gsize len, GArray *boxes)
{
  literal L = { det, det + len };
  literal_value top;
  gboolean stopped = FALSE;

  while (L.p < L.end && (*L.p == ' ' || *L.p == '\t'))
    L.p++;
  if (!read_value (&L, 0, &top, boxes, &stopped)) {
    g_array_set_size (boxes, 0);
    return FALSE;
  }
  while (L.p < L.end && (*L.p == ' ' || *L.p == '\t'))
    L.p++;
  if (L.p != L.end) {
    g_array_set_size (boxes, 0);
    return FALSE;
  }
  if (!top.is_list)
    return FALSE;
  return !stopped;
}

/* ---- the pixel rule ---- */

static double
clamp_grid (double v)
{
  if (isnan (v) || v < 0.0)
    return 0.0;
  return v > 999.0 ? 999.0 : v;
}

int
dsocr_grid_to_pixel (double v, int size)
{
  /* int(x / 999 * W) in Python: a correctly rounded double division, a double product, then
   * truncation toward zero, which a C cast also does */
  return (int) (clamp_grid (v) / 999.0 * (double) size);
}

/* ---- the result ---- */

typedef struct {
  gsize start, label, det, det_end, end;  // byte offsets: <|ref|>, label, list, <|/det|>, end
  gboolean is_image;
} match;

/* re.findall(r'(<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>)', text, re.DOTALL):
 * the earliest <|ref|>, the shortest label up to a "<|/ref|><|det|>", the shortest list up to a
 * "<|/det|>". When the first try fails no later start can succeed (the closing tags it lacked
 * are missing after any later start too), so the scan stops there. */
static GArray *
find_matches (const char *text, gsize len)
{
  GArray *matches = g_array_new (FALSE, TRUE, sizeof (match));
  gsize pos = 0;

  for (;;) {
    gssize s, a, e;
    match m;

    s = find_bytes (text, len, pos, TAG_REF, strlen (TAG_REF));
    if (s < 0)
      break;
    a = find_bytes (text, len, (gsize) s + strlen (TAG_REF), TAG_REF_END_DET,
                    strlen (TAG_REF_END_DET));
    if (a < 0)
      break;
    e = find_bytes (text, len, (gsize) a + strlen (TAG_REF_END_DET), TAG_DET_END,
                    strlen (TAG_DET_END));
    if (e < 0)
      break;
    m.start = (gsize) s;
    m.label = (gsize) s + strlen (TAG_REF);
    m.det = (gsize) a + strlen (TAG_REF_END_DET);
    m.det_end = (gsize) e;
    m.end = (gsize) e + strlen (TAG_DET_END);
    m.is_image = find_bytes (text + m.start, m.end - m.start, 0, IMAGE_REF,
                             strlen (IMAGE_REF)) >= 0;
    g_array_append_val (matches, m);
    pos = m.end;
  }
  return matches;
}

static const char *
file_name (GStringChunk *chunk, int page, int n)
{
  char buf[64];

  if (page < 0)
    g_snprintf (buf, sizeof buf, "images/%d.jpg", n);
  else
    g_snprintf (buf, sizeof buf, "images/%d_%d.jpg", page, n);
  return g_string_chunk_insert (chunk, buf);
}

void
dsocr_result_options_init (dsocr_result_options *opts)
{
  g_return_if_fail (opts != NULL);
  memset (opts, 0, sizeof *opts);
  opts->collapse_newlines = FALSE;
  opts->page = -1;
}

/* One region per match: label, boxes in pixels, crop numbers. @k counts the boxes of regions
 * labelled "image" over the page (the reference's img_idx). */
static void
fill_region (dsocr_result *r, const char *text, const match *m, int image_index, int *k,
             GArray *boxes, dsocr_region *reg)
{
  gsize label_len = m->det - strlen (TAG_REF_END_DET) - m->label;
  gboolean is_image_label;
  dsocr_box *out;

  reg->label = g_string_chunk_insert_len (r->strings, text + m->label, (gssize) label_len);
  is_image_label = strcmp (reg->label, "image") == 0;
  reg->start = m->start;
  reg->end = m->end;
  reg->image_index = m->is_image ? image_index : -1;
  reg->image_name = m->is_image ? file_name (r->strings, r->page, image_index) : NULL;

  g_array_set_size (boxes, 0);
  reg->malformed = !parse_box_list (text + m->det, m->det_end - m->det, boxes);
  for (int t = 0; t < 4; t++) {
    static const char *const tags[] = { TAG_REF, TAG_REF_END, TAG_DET, TAG_DET_END };
    if (find_bytes (text + m->label, label_len, 0, tags[t], strlen (tags[t])) >= 0)
      reg->malformed = TRUE;
  }

  reg->n_boxes = (int) (boxes->len / 4);
  out = g_new0 (dsocr_box, reg->n_boxes > 0 ? reg->n_boxes : 1);
  for (int b = 0; b < reg->n_boxes; b++) {
    const double *v = &g_array_index (boxes, double, 4 * b);  // [x1, y1, x2, y2] on 0..999
    dsocr_box *box = &out[b];
    gboolean out_of_range = FALSE;

    for (int c = 0; c < 4; c++) {
      if (!(v[c] >= 0.0 && v[c] <= 999.0))
        out_of_range = TRUE;
      box->grid[c] = clamp_grid (v[c]);
    }
    box->x1 = dsocr_grid_to_pixel (v[0], r->width);
    box->y1 = dsocr_grid_to_pixel (v[1], r->height);
    box->x2 = dsocr_grid_to_pixel (v[2], r->width);
    box->y2 = dsocr_grid_to_pixel (v[3], r->height);
    box->malformed = out_of_range || box->grid[2] < box->grid[0] || box->grid[3] < box->grid[1];
    box->empty = box->x2 <= box->x1 || box->y2 <= box->y1;
    box->crop_index = -1;
    if (is_image_label) {
      box->crop_index = (*k)++;
      if (!box->empty)
        box->crop_name = file_name (r->strings, r->page, box->crop_index);
    }
    if (box->malformed)
      r->flags |= DSOCR_RESULT_MALFORMED;
  }
  reg->boxes = out;
  if (reg->malformed)
    r->flags |= DSOCR_RESULT_MALFORMED;
}

/* The markdown, by the reference's own chain of replace() calls: a match removed may join
 * its neighbours into another occurrence of a later match, which that later replace() then
 * also removes; only the same chain gives the same text. */
static char *
build_markdown (const dsocr_result *r, const char *text, const GArray *matches,
                gboolean collapse)
{
  GString *md = g_string_new (text), *scratch = g_string_new (NULL);

  for (guint i = 0; i < matches->len; i++) {
    const match *m = &g_array_index (matches, match, i);
    char *needle, *link;

    if (!m->is_image)
      continue;
    needle = g_strndup (text + m->start, m->end - m->start);
    link = g_strdup_printf ("![](%s)\n", r->regions[i].image_name);
    replace_all (md, needle, link, scratch);
    g_free (needle);
    g_free (link);
  }
  for (guint i = 0; i < matches->len; i++) {
    const match *m = &g_array_index (matches, match, i);
    char *needle;

    if (m->is_image)
      continue;
    needle = g_strndup (text + m->start, m->end - m->start);
    replace_all (md, needle, "", scratch);
    replace_all (md, "\\coloneqq", ":=", scratch);
    replace_all (md, "\\eqqcolon", "=:", scratch);
    if (collapse) {
      replace_all (md, "\n\n\n\n", "\n\n", scratch);
      replace_all (md, "\n\n\n", "\n\n", scratch);
    }
    g_free (needle);
  }
  g_string_free (scratch, TRUE);
  return g_string_free (md, FALSE);
}

dsocr_result *
dsocr_result_new_from_text_len (const char *raw_text, gssize len, int image_width,
                                int image_height, const dsocr_result_options *opts,
                                GError **error)
{
  dsocr_result_options defaults;
  dsocr_result *r;
  GString *clean;
  GArray *matches, *boxes;
  gboolean bad = FALSE, any_other = FALSE;
  gsize n, start, end, n_tags;
  int k = 0, image_index = 0;

  g_return_val_if_fail (raw_text != NULL || len == 0, NULL);
  if (!opts) {
    dsocr_result_options_init (&defaults);
    opts = &defaults;
  }
  if (image_width < 1 || image_height < 1 || image_width > DSOCR_IMAGE_MAX_SIDE ||
      image_height > DSOCR_IMAGE_MAX_SIDE) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "grounding: image size %dx%d is outside 1..%d", image_width, image_height,
                 DSOCR_IMAGE_MAX_SIDE);
    return NULL;
  }
  if (opts->page < -1) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "grounding: page %d is negative (-1 means no page)", opts->page);
    return NULL;
  }

  /* 8.3: the decoded text, one trailing end-of-sentence cut, then strip() */
  n = len < 0 ? strlen (raw_text) : (gsize) len;
  clean = sanitize_utf8 (raw_text ? raw_text : "", n, &bad);
  if (g_str_has_suffix (clean->str, EOS_TEXT))
    g_string_truncate (clean, clean->len - strlen (EOS_TEXT));
  py_strip (clean->str, clean->len, &start, &end);

  r = g_new0 (dsocr_result, 1);
  r->width = image_width;
  r->height = image_height;
  r->page = opts->page;
  r->strings = g_string_chunk_new (256);
  r->raw = g_strndup (clean->str + start, end - start);
  g_string_free (clean, TRUE);
  n = end - start;
  if (bad)
    r->flags |= DSOCR_RESULT_MALFORMED;

  matches = find_matches (r->raw, n);
  /* A tag outside the four of a match (unclosed, nested, stray) is broken output. */
  n_tags = count_bytes (r->raw, n, TAG_REF) + count_bytes (r->raw, n, TAG_REF_END) +
           count_bytes (r->raw, n, TAG_DET) + count_bytes (r->raw, n, TAG_DET_END);
  if (n_tags != 4 * (gsize) matches->len)
    r->flags |= DSOCR_RESULT_MALFORMED;

  r->n_regions = (int) matches->len;
  r->regions = g_new0 (dsocr_region, matches->len > 0 ? matches->len : 1);
  boxes = g_array_new (FALSE, FALSE, sizeof (double));
  for (guint i = 0; i < matches->len; i++) {
    const match *m = &g_array_index (matches, match, i);
    fill_region (r, r->raw, m, image_index, &k, boxes, &r->regions[i]);
    if (m->is_image)
      image_index++;
    else
      any_other = TRUE;
  }
  g_array_free (boxes, TRUE);

  r->markdown = build_markdown (r, r->raw, matches, opts->collapse_newlines);

  /* Region text: from the end of a match to the start of the next one. The LaTeX fixes run
   * exactly when the reference ran them on the markdown (at least one non-image match). */
  {
    GString *t = g_string_new (NULL), *scratch = g_string_new (NULL);
    for (guint i = 0; i < matches->len; i++) {
      const match *m = &g_array_index (matches, match, i);
      gsize to = i + 1 < matches->len ? g_array_index (matches, match, i + 1).start : n;
      gsize s, e;

      py_strip (r->raw + m->end, to - m->end, &s, &e);
      g_string_truncate (t, 0);
      g_string_append_len (t, r->raw + m->end + s, (gssize) (e - s));
      if (any_other) {
        replace_all (t, "\\coloneqq", ":=", scratch);
        replace_all (t, "\\eqqcolon", "=:", scratch);
      }
      r->regions[i].text = g_string_chunk_insert_len (r->strings, t->str, (gssize) t->len);
    }
    g_string_free (t, TRUE);
    g_string_free (scratch, TRUE);
  }
  g_array_free (matches, TRUE);
  return r;
}

dsocr_result *
dsocr_result_new_from_text (const char *raw_text, int image_width, int image_height,
                            const dsocr_result_options *opts, GError **error)
{
  g_return_val_if_fail (raw_text != NULL, NULL);
  return dsocr_result_new_from_text_len (raw_text, -1, image_width, image_height, opts, error);
}

void
dsocr_result_free (dsocr_result *result)
{
  if (!result)
    return;
  for (int i = 0; i < result->n_regions; i++)
    g_free ((dsocr_box *) result->regions[i].boxes);
  g_free (result->regions);
  g_free (result->raw);
  g_free (result->markdown);
  g_string_chunk_free (result->strings);
  g_free (result);
}

int
dsocr_result_get_width (const dsocr_result *result)
{
  g_return_val_if_fail (result != NULL, 0);
  return result->width;
}

int
dsocr_result_get_height (const dsocr_result *result)
{
  g_return_val_if_fail (result != NULL, 0);
  return result->height;
}

int
dsocr_result_get_page (const dsocr_result *result)
{
  g_return_val_if_fail (result != NULL, -1);
  return result->page;
}

const char *
dsocr_result_get_markdown (const dsocr_result *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return result->markdown;
}

const char *
dsocr_result_get_raw_text (const dsocr_result *result)
{
  g_return_val_if_fail (result != NULL, NULL);
  return result->raw;
}

const dsocr_region *
dsocr_result_get_regions (const dsocr_result *result, int *n_regions)
{
  g_return_val_if_fail (result != NULL && n_regions != NULL, NULL);
  *n_regions = result->n_regions;
  return result->regions;
}

dsocr_result_flags
dsocr_result_get_flags (const dsocr_result *result)
{
  g_return_val_if_fail (result != NULL, 0);
  return result->flags;
}

void
dsocr_result_set_flag (dsocr_result *result, dsocr_result_flags flags, gboolean on)
{
  g_return_if_fail (result != NULL);
  if (on)
    result->flags |= flags;
  else
    result->flags &= ~flags;
}
