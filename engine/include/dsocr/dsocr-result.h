/* dsocr-result.h: one page of DeepSeek-OCR output, post-processed as the official scripts do:
 * markdown, grounded regions with pixel boxes, image crops and a JSON form.
 *
 *   char *text = dsocr_tokenizer_decode (tok, ids, n_ids, FALSE);   // special tokens kept
 *   dsocr_result *r = dsocr_result_new_from_text (text, img->width, img->height, NULL, &err);
 *   g_free (text);
 *   if (finish == DSOCR_FINISH_LENGTH)
 *     dsocr_result_set_flag (r, DSOCR_RESULT_HIT_TOKEN_LIMIT, TRUE);
 *   fputs (dsocr_result_get_markdown (r), out);            // ![](images/0.jpg) links ...
 *   dsocr_image_view v = dsocr_image_get_view (img);
 *   dsocr_result_write_crops (r, &v, "out", DSOCR_CROP_QUALITY_REFERENCE, NULL, &err);
 *   char *json = dsocr_result_to_json (r, TRUE);            // docs/result-json.md
 *   ...
 *   g_free (json);
 *   dsocr_result_free (r);
 *
 * What a page goes through (docs/result-json.md has the details and the reference quirks):
 * bytes that are not UTF-8 and NULs become U+FFFD; one trailing "<｜end▁of▁sentence｜>" is cut
 * and whitespace stripped; every `<|ref|>LABEL<|/ref|><|det|>BOXES<|/det|>` match (the regex of
 * the reference, non-greedy, DOTALL) becomes a region whose boxes, given on a 0..999 grid, are
 * turned into pixels as int(v / 999 * size); image matches become `![](images/N.jpg)\n` in the
 * markdown and every other match is deleted. Output the model got wrong never fails the call:
 * it is kept as text or dropped, and flagged malformed.
 *
 * A dsocr_result is plain data once built: any number of threads may read it; setting flags
 * needs the caller's own exclusion.
 */
#ifndef DSOCR_RESULT_H
#define DSOCR_RESULT_H

#include <glib.h>

#include <dsocr/dsocr-image.h>

G_BEGIN_DECLS

typedef struct dsocr_result dsocr_result;

/* The reference crops with Pillow's default JPEG quality (its save() call gives none). */
#define DSOCR_CROP_QUALITY_REFERENCE 75

typedef enum {
  DSOCR_RESULT_HIT_TOKEN_LIMIT = 1 << 0,     /* generation stopped at max_new_tokens (set by
                                              * the caller) */
  DSOCR_RESULT_REPETITION_STOPPED = 1 << 1,  /* generation was cut for repeating itself (set
                                              * by the caller) */
  DSOCR_RESULT_MALFORMED = 1 << 2,           /* the text had something the grounding format
                                              * does not allow (set by parsing; the caller may
                                              * change it) */
} dsocr_result_flags;

typedef struct {
  gboolean collapse_newlines; /* FALSE (default). TRUE: the PDF script's extra step, once per
                               * non-image match: "\n\n\n\n" -> "\n\n", then "\n\n\n" -> "\n\n" */
  int page;                   /* -1 (default): a single image, files images/N.jpg. >= 0: a page
                               * of a document, files images/PAGE_N.jpg as the PDF script names
                               * them, and "page" in the JSON */
} dsocr_result_options;

/* One box of a region. */
typedef struct {
  int x1, y1, x2, y2;   /* pixels: int(g / 999 * width) for x, * height for y, g the clamped
                         * grid value; always within 0..width, 0..height */
  double grid[4];       /* x1, y1, x2, y2 as the model wrote them, clamped to 0..999 */
  int crop_index;       /* N of the crop file for a box of a region labelled exactly "image"
                         * (counted over the page, empty boxes included), else -1 */
  const char *crop_name; /* "images/N.jpg" ("images/PAGE_N.jpg") when a crop is written for
                          * this box (crop_index >= 0 and not empty), else NULL */
  gboolean malformed;   /* a value was outside 0..999 (and was clamped), or x2 < x1 or y2 < y1 */
  gboolean empty;       /* x2 <= x1 or y2 <= y1 in pixels: no crop */
} dsocr_box;

/* One `<|ref|>..<|/ref|><|det|>..<|/det|>` match, in text order. */
typedef struct {
  const char *label;    /* the text between <|ref|> and <|/ref|>: "title", "text", "image",
                         * "table", "equation", ... or, for "Locate" prompts, the phrase */
  const dsocr_box *boxes; /* [n_boxes]: the box list, up to its first entry that is not four
                         * numbers (the reference stops there too) */
  int n_boxes;
  int image_index;      /* >= 0: an image match (its text holds `<|ref|>image<|/ref|>`), the
                         * markdown links image_name in its place; -1: deleted from markdown */
  const char *image_name; /* "images/IMAGE_INDEX.jpg" ("images/PAGE_IMAGE_INDEX.jpg") for an
                         * image match, else NULL */
  const char *text;     /* the text that follows the match up to the next match (or the end),
                         * whitespace-stripped, with the markdown's LaTeX replacements when the
                         * markdown got them (docs/result-json.md) */
  gboolean malformed;   /* the box list is not a list of [x1, y1, x2, y2] number lists, or the
                         * label holds a ref/det tag */
  gsize start, end;     /* byte span of the match in dsocr_result_get_raw_text() */
} dsocr_region;

/* Fills @opts with the defaults above. */
void dsocr_result_options_init (dsocr_result_options *opts);

/* Parses the model's output @raw_text (NUL-terminated UTF-8 as the tokenizer decodes it with
 * special tokens kept) for an image of @image_width x @image_height pixels (the original image,
 * EXIF orientation applied: boxes are relative to it). @opts may be NULL (defaults).
 * Returns (transfer full) the result, or NULL with DSOCR_ERROR_INVALID when a size is outside
 * 1..DSOCR_IMAGE_MAX_SIDE or an option is out of range. The text itself never fails: broken
 * tags stay as text, broken box lists give no boxes, and DSOCR_RESULT_MALFORMED is set.
 * Cost: O(matches x length), as the reference's chain of replace() calls. */
dsocr_result *dsocr_result_new_from_text (const char *raw_text, int image_width,
                                          int image_height, const dsocr_result_options *opts,
                                          GError **error);

/* As dsocr_result_new_from_text() for @len bytes of @raw_text (-1: NUL-terminated); NUL bytes
 * inside become U+FFFD and flag the result malformed. */
dsocr_result *dsocr_result_new_from_text_len (const char *raw_text, gssize len,
                                              int image_width, int image_height,
                                              const dsocr_result_options *opts,
                                              GError **error);

/* Frees @result and everything its getters returned. NULL is a no-op. */
void dsocr_result_free (dsocr_result *result);

/* The image size and page index (-1: none) the result was made for. */
int dsocr_result_get_width (const dsocr_result *result);
int dsocr_result_get_height (const dsocr_result *result);
int dsocr_result_get_page (const dsocr_result *result);

/* The markdown (transfer none: valid while @result lives). */
const char *dsocr_result_get_markdown (const dsocr_result *result);

/* The text the matches were found in: the input made valid UTF-8, end-of-sentence cut and
 * stripped, tags kept (the reference's result_ori.mmd / _det.mmd page). (transfer none) */
const char *dsocr_result_get_raw_text (const dsocr_result *result);

/* The regions, [*n_regions] in text order (transfer none: valid while @result lives).
 * @n_regions may not be NULL. */
const dsocr_region *dsocr_result_get_regions (const dsocr_result *result, int *n_regions);

/* The flags, and a setter for one or more of them. */
dsocr_result_flags dsocr_result_get_flags (const dsocr_result *result);
void dsocr_result_set_flag (dsocr_result *result, dsocr_result_flags flags, gboolean on);

/* Writes the crop of every non-empty box of every region labelled "image" as
 * @out_dir/images/N.jpg (PAGE_N.jpg with a page index), JPEG at @quality (1..100; the
 * reference: DSOCR_CROP_QUALITY_REFERENCE), 4:2:0, creating the folders. @image is the original
 * picture (borrowed for the call) and must have the result's size. Empty boxes are skipped.
 * @n_written (out, nullable): files written. Fails with DSOCR_ERROR_INVALID (bad view, size
 * mismatch, bad quality), DSOCR_ERROR_FILE (a folder or file cannot be written, the path is
 * in the message) or DSOCR_ERROR_NOMEM; files written before a failure stay. */
gboolean dsocr_result_write_crops (const dsocr_result *result, const dsocr_image_view *image,
                                   const char *out_dir, int quality, int *n_written,
                                   GError **error);

/* The JSON form of @result (schema in docs/result-json.md), indented when @pretty.
 * Returns (transfer full): g_free() it. */
char *dsocr_result_to_json (const dsocr_result *result, gboolean pretty);

/* The reference's pixel rule for one grid value: int(clamp(v, 0, 999) / 999 * size), double
 * arithmetic in that order, truncated toward zero; NaN counts as 0. */
int dsocr_grid_to_pixel (double v, int size);

G_END_DECLS

#endif /* DSOCR_RESULT_H */
