/* test-grounding.c: DeepSeek-OCR grounding post-processing (dsocr-result.h) against the goldens
 * of tests/reference/make_grounding_goldens.py, which restates the official scripts' re_match /
 * draw_bounding_boxes / replace chain in Python; crops against Pillow's; the JSON form; bad
 * input. */
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include <dsocr/dsocr.h>

#include "dsocr-test.h"

static JsonParser *
load_goldens (void)
{
  char *path = dsocr_test_fixture ("grounding/goldens.json");
  JsonParser *p = json_parser_new ();
  GError *err = NULL;

  json_parser_load_from_file (p, path, &err);
  g_assert_no_error (err);
  g_free (path);
  return p;
}

static JsonObject *
goldens_root (JsonParser *p)
{
  return json_node_get_object (json_parser_get_root (p));
}

/* The case's input bytes (transfer full) and their length. */
static char *
case_raw (JsonObject *c, gsize *len)
{
  if (json_object_has_member (c, "raw_b64"))
    return (char *) g_base64_decode (json_object_get_string_member (c, "raw_b64"), len);
  *len = strlen (json_object_get_string_member (c, "raw"));
  return g_strdup (json_object_get_string_member (c, "raw"));
}

static dsocr_result *
case_result (JsonObject *c)
{
  dsocr_result_options opts;
  gsize len;
  char *raw = case_raw (c, &len);
  GError *err = NULL;
  dsocr_result *r;

  dsocr_result_options_init (&opts);
  opts.collapse_newlines = json_object_get_boolean_member (c, "collapse_newlines");
  opts.page = (int) json_object_get_int_member (c, "page");
  r = dsocr_result_new_from_text_len (raw, (gssize) len,
                                      (int) json_object_get_int_member (c, "width"),
                                      (int) json_object_get_int_member (c, "height"), &opts, &err);
  g_assert_no_error (err);
  g_assert_nonnull (r);
  /* the NUL-terminated entry point gives the same as long as there is no NUL inside */
  if (strlen (raw) == len) {
    dsocr_result *r2 = dsocr_result_new_from_text (raw, dsocr_result_get_width (r),
                                                   dsocr_result_get_height (r), &opts, &err);
    g_assert_no_error (err);
    g_assert_cmpstr (dsocr_result_get_markdown (r2), ==, dsocr_result_get_markdown (r));
    dsocr_result_free (r2);
  }
  g_free (raw);
  return r;
}

static char *
expected_name (int page, int n)
{
  return page < 0 ? g_strdup_printf ("images/%d.jpg", n)
                  : g_strdup_printf ("images/%d_%d.jpg", page, n);
}

static void
check_box (const char *what, const dsocr_box *box, JsonObject *want, int page)
{
  JsonArray *px = json_object_get_array_member (want, "px");
  JsonArray *grid = json_object_get_array_member (want, "grid");
  int got_px[4] = { box->x1, box->y1, box->x2, box->y2 };
  int crop = (int) json_object_get_int_member (want, "crop");
  gboolean empty = json_object_get_boolean_member (want, "empty");

  for (int c = 0; c < 4; c++) {
    if (got_px[c] != json_array_get_int_element (px, c))
      g_error ("%s: pixel %d is %d, reference %" G_GINT64_FORMAT, what, c, got_px[c],
               json_array_get_int_element (px, c));
    /* parsed from the same decimal text by two correctly rounding readers: equal */
    if (box->grid[c] != json_array_get_double_element (grid, c))
      g_error ("%s: grid %d is %.17g, reference %.17g", what, c, box->grid[c],
               json_array_get_double_element (grid, c));
  }
  if (box->crop_index != crop)
    g_error ("%s: crop index %d, reference %d", what, box->crop_index, crop);
  if (box->empty != empty)
    g_error ("%s: empty %d, reference %d", what, box->empty, empty);
  if (box->malformed != json_object_get_boolean_member (want, "malformed"))
    g_error ("%s: malformed %d, reference the opposite", what, box->malformed);
  if (crop >= 0 && !empty) {
    char *name = expected_name (page, crop);
    g_assert_cmpstr (box->crop_name, ==, name);
    g_free (name);
  } else {
    g_assert_null (box->crop_name);
  }
}

static void
check_case (JsonObject *c)
{
  const char *name = json_object_get_string_member (c, "name");
  JsonObject *want = json_object_get_object_member (c, "expect");
  JsonArray *wregions = json_object_get_array_member (want, "regions");
  int page = (int) json_object_get_int_member (c, "page");
  dsocr_result *r = case_result (c);
  const dsocr_region *regions;
  int n_regions;
  gboolean malformed;

  if (g_strcmp0 (dsocr_result_get_raw_text (r), json_object_get_string_member (want, "raw")))
    g_error ("%s: raw text\n  got  \"%s\"\n  want \"%s\"", name, dsocr_result_get_raw_text (r),
             json_object_get_string_member (want, "raw"));
  if (g_strcmp0 (dsocr_result_get_markdown (r), json_object_get_string_member (want, "markdown")))
    g_error ("%s: markdown\n  got  \"%s\"\n  want \"%s\"", name, dsocr_result_get_markdown (r),
             json_object_get_string_member (want, "markdown"));
  malformed = (dsocr_result_get_flags (r) & DSOCR_RESULT_MALFORMED) != 0;
  if (malformed != json_object_get_boolean_member (want, "malformed"))
    g_error ("%s: malformed flag %d, reference the opposite", name, malformed);
  g_assert_cmpint (dsocr_result_get_page (r), ==, page);

  regions = dsocr_result_get_regions (r, &n_regions);
  if ((guint) n_regions != json_array_get_length (wregions))
    g_error ("%s: %d regions, reference %u", name, n_regions, json_array_get_length (wregions));
  for (int i = 0; i < n_regions; i++) {
    const dsocr_region *reg = &regions[i];
    JsonObject *w = json_array_get_object_element (wregions, (guint) i);
    JsonArray *wboxes = json_object_get_array_member (w, "boxes");
    int image_index = (int) json_object_get_int_member (w, "image_index");
    char *what = g_strdup_printf ("%s: region %d", name, i);

    g_assert_cmpstr (reg->label, ==, json_object_get_string_member (w, "label"));
    if (g_strcmp0 (reg->text, json_object_get_string_member (w, "text")))
      g_error ("%s: text\n  got  \"%s\"\n  want \"%s\"", what, reg->text,
               json_object_get_string_member (w, "text"));
    if (reg->malformed != json_object_get_boolean_member (w, "malformed"))
      g_error ("%s: malformed %d, reference the opposite", what, reg->malformed);
    g_assert_cmpint (reg->image_index, ==, image_index);
    if (image_index >= 0) {
      char *iname = expected_name (page, image_index);
      g_assert_cmpstr (reg->image_name, ==, iname);
      g_free (iname);
    } else {
      g_assert_null (reg->image_name);
    }
    g_assert_cmpuint (reg->start, ==, (gsize) json_object_get_int_member (w, "start"));
    g_assert_cmpuint (reg->end, ==, (gsize) json_object_get_int_member (w, "end"));
    if ((guint) reg->n_boxes != json_array_get_length (wboxes))
      g_error ("%s: %d boxes, reference %u", what, reg->n_boxes, json_array_get_length (wboxes));
    for (int b = 0; b < reg->n_boxes; b++) {
      char *bwhat = g_strdup_printf ("%s box %d", what, b);
      check_box (bwhat, &reg->boxes[b], json_array_get_object_element (wboxes, (guint) b), page);
      g_free (bwhat);
    }
    g_free (what);
  }
  dsocr_result_free (r);
}

static void
test_goldens (void)
{
  JsonParser *p = load_goldens ();
  JsonArray *cases = json_object_get_array_member (goldens_root (p), "cases");

  g_assert_cmpuint (json_array_get_length (cases), >, 40);
  for (guint i = 0; i < json_array_get_length (cases); i++)
    check_case (json_array_get_object_element (cases, i));
  g_test_message ("%u cases match the reference", json_array_get_length (cases));
  g_object_unref (p);
}

/* int(v / 999 * size) over every grid value and some fractions, several page sizes */
static void
test_pixel_rule (void)
{
  JsonParser *p = load_goldens ();
  JsonArray *sweep = json_object_get_array_member (goldens_root (p), "sweep");

  for (guint i = 0; i < json_array_get_length (sweep); i++) {
    JsonObject *s = json_array_get_object_element (sweep, i);
    int size = (int) json_object_get_int_member (s, "size");
    JsonArray *ints = json_object_get_array_member (s, "int_px");
    JsonArray *fr = json_object_get_array_member (s, "fractions");
    JsonArray *fr_px = json_object_get_array_member (s, "fraction_px");

    g_assert_cmpuint (json_array_get_length (ints), ==, 1000);
    for (guint v = 0; v < 1000; v++)
      if (dsocr_grid_to_pixel (v, size) != json_array_get_int_element (ints, v))
        g_error ("size %d, v %u: %d, reference %" G_GINT64_FORMAT, size, v,
                 dsocr_grid_to_pixel (v, size), json_array_get_int_element (ints, v));
    for (guint j = 0; j < json_array_get_length (fr); j++) {
      double v = json_array_get_double_element (fr, j);
      g_assert_cmpint (dsocr_grid_to_pixel (v, size), ==, json_array_get_int_element (fr_px, j));
    }
  }
  /* outside the grid: clamped */
  g_assert_cmpint (dsocr_grid_to_pixel (-3.0, 100), ==, 0);
  g_assert_cmpint (dsocr_grid_to_pixel (1e300, 100), ==, 100);
  g_assert_cmpint (dsocr_grid_to_pixel (INFINITY, 100), ==, 100);
  g_assert_cmpint (dsocr_grid_to_pixel (NAN, 100), ==, 0);
  g_object_unref (p);
}

static void
remove_tree (const char *dir)
{
  char *images = g_build_filename (dir, "images", NULL);
  GDir *d = g_dir_open (images, 0, NULL);

  if (d) {
    const char *n;
    while ((n = g_dir_read_name (d))) {
      char *f = g_build_filename (images, n, NULL);
      g_assert_cmpint (g_remove (f), ==, 0);
      g_free (f);
    }
    g_dir_close (d);
    g_assert_cmpint (g_rmdir (images), ==, 0);
  }
  g_assert_cmpint (g_rmdir (dir), ==, 0);
  g_free (images);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

/* Crops of the page written at @quality equal Pillow's crop().save() of the same page. */
static void
check_crops (JsonObject *root, const dsocr_result *r, const dsocr_image *page, int quality)
{
  char *qkey = g_strdup_printf ("%d", quality);
  JsonArray *want = json_object_get_array_member (json_object_get_object_member (root, "crops"),
                                                  qkey);
  char *tmp = g_dir_make_tmp ("dsocr-crops-XXXXXX", NULL);
  dsocr_image_view v = dsocr_image_get_view (page);
  GError *err = NULL;
  int n_written = -1, max_diff = 0;
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  char *images = g_build_filename (tmp, "images", NULL);
  GDir *d;
  const char *n;

  g_assert_nonnull (tmp);
  g_assert_true (dsocr_result_write_crops (r, &v, tmp, quality, &n_written, &err));
  g_assert_no_error (err);
  g_assert_cmpint (n_written, ==, (int) json_array_get_length (want));

  d = g_dir_open (images, 0, &err);
  g_assert_no_error (err);
  while ((n = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (n));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_names);
  g_assert_cmpuint (names->len, ==, json_array_get_length (want));

  for (guint i = 0; i < json_array_get_length (want); i++) {
    const char *name = json_array_get_string_element (want, i);
    char *rel = g_strdup_printf ("grounding/crops-q%d/%s", quality, name);
    char *ref_path = dsocr_test_fixture (rel);
    char *our_path = g_build_filename (images, name, NULL);
    dsocr_image *ours = dsocr_image_load (our_path, NULL, &err);
    dsocr_image *theirs;

    g_assert_no_error (err);
    theirs = dsocr_image_load (ref_path, NULL, &err);
    g_assert_no_error (err);
    g_assert_cmpint (ours->width, ==, theirs->width);
    g_assert_cmpint (ours->height, ==, theirs->height);
    for (gsize k = 0; k < (gsize) ours->width * ours->height * 3; k++)
      max_diff = MAX (max_diff, abs ((int) ours->data[k] - (int) theirs->data[k]));
    dsocr_image_free (ours);
    dsocr_image_free (theirs);
    g_free (our_path);
    g_free (ref_path);
    g_free (rel);
  }
  /* Both encoders are libjpeg-turbo with the same settings (islow DCT, 4:2:0, standard
   * tables), and one decoder reads both files: the pixels agree exactly. */
  if (max_diff != 0)
    g_error ("quality %d: crops differ from Pillow's by up to %d", quality, max_diff);
  remove_tree (tmp);
  g_ptr_array_unref (names);
  g_free (images);
  g_free (tmp);
  g_free (qkey);
}

static void
test_crops (void)
{
  JsonParser *p = load_goldens ();
  JsonObject *root = goldens_root (p);
  JsonArray *cases = json_object_get_array_member (root, "cases");
  const char *crop_case = json_object_get_string_member (root, "crop_case");
  char *rel = g_build_filename ("grounding", json_object_get_string_member (root, "crop_image"),
                                NULL);
  char *path = dsocr_test_fixture (rel);
  GError *err = NULL;
  dsocr_image *page = dsocr_image_load (path, NULL, &err);
  dsocr_result *r = NULL;

  g_assert_no_error (err);
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    if (g_strcmp0 (json_object_get_string_member (c, "name"), crop_case) == 0)
      r = case_result (c);
  }
  g_assert_nonnull (r);
  check_crops (root, r, page, DSOCR_CROP_QUALITY_REFERENCE);
  check_crops (root, r, page, 95);

  /* a page with no image region writes nothing and creates no folder */
  {
    dsocr_result *none = dsocr_result_new_from_text ("<|ref|>text<|/ref|><|det|>[[1,1,9,9]]"
                                                     "<|/det|>\nx", page->width, page->height,
                                                     NULL, &err);
    dsocr_image_view v = dsocr_image_get_view (page);
    char *tmp = g_dir_make_tmp ("dsocr-crops-XXXXXX", NULL);
    char *images = g_build_filename (tmp, "images", NULL);
    int n = -1;

    g_assert_true (dsocr_result_write_crops (none, &v, tmp, 95, &n, &err));
    g_assert_no_error (err);
    g_assert_cmpint (n, ==, 0);
    g_assert_false (g_file_test (images, G_FILE_TEST_EXISTS));
    g_assert_cmpint (g_rmdir (tmp), ==, 0);
    g_free (images);
    g_free (tmp);
    dsocr_result_free (none);
  }

  /* PDF page naming: images/PAGE_N.jpg */
  {
    dsocr_result_options opts;
    dsocr_result *pg;
    dsocr_image_view v = dsocr_image_get_view (page);
    char *tmp = g_dir_make_tmp ("dsocr-crops-XXXXXX", NULL);
    char *f0 = g_build_filename (tmp, "images", "7_0.jpg", NULL);
    char *f1 = g_build_filename (tmp, "images", "7_1.jpg", NULL);
    int n = -1;

    dsocr_result_options_init (&opts);
    opts.page = 7;
    pg = dsocr_result_new_from_text ("<|ref|>image<|/ref|><|det|>[[0,0,500,500],[500,500,999,"
                                     "999]]<|/det|>", page->width, page->height, &opts, &err);
    g_assert_no_error (err);
    g_assert_cmpstr (dsocr_result_get_markdown (pg), ==, "![](images/7_0.jpg)\n");
    g_assert_true (dsocr_result_write_crops (pg, &v, tmp, 90, &n, &err));
    g_assert_no_error (err);
    g_assert_cmpint (n, ==, 2);
    g_assert_true (g_file_test (f0, G_FILE_TEST_IS_REGULAR));
    g_assert_true (g_file_test (f1, G_FILE_TEST_IS_REGULAR));
    remove_tree (tmp);
    g_free (f0);
    g_free (f1);
    g_free (tmp);
    dsocr_result_free (pg);
  }

  dsocr_result_free (r);
  dsocr_image_free (page);
  g_free (path);
  g_free (rel);
  g_object_unref (p);
}

static void
test_crop_errors (void)
{
  GError *err = NULL;
  dsocr_result *r = dsocr_result_new_from_text ("<|ref|>image<|/ref|><|det|>[[0,0,999,999]]"
                                                "<|/det|>", 8, 6, NULL, &err);
  dsocr_image *img = dsocr_image_new (8, 6, &err);
  dsocr_image *other = dsocr_image_new (9, 6, &err);
  dsocr_image_view v = dsocr_image_get_view (img), vo = dsocr_image_get_view (other);
  dsocr_image_view bad = { NULL, 8, 6, 24 };
  char *tmp = g_dir_make_tmp ("dsocr-crops-XXXXXX", NULL);
  char *file = g_build_filename (tmp, "a-file", NULL);
  int n = -1;

  g_assert_no_error (err);
  g_assert_false (dsocr_result_write_crops (r, &vo, tmp, 95, &n, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_nonnull (strstr (err->message, "9x6"));
  g_clear_error (&err);
  g_assert_false (dsocr_result_write_crops (r, &bad, tmp, 95, &n, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (dsocr_result_write_crops (r, &v, tmp, 0, &n, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (dsocr_result_write_crops (r, &v, tmp, 101, &n, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  /* the output folder is a file: cannot create images/ under it */
  g_assert_true (g_file_set_contents (file, "x", 1, NULL));
  g_assert_false (dsocr_result_write_crops (r, &v, file, 95, &n, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_FILE);
  g_assert_nonnull (strstr (err->message, "a-file"));
  g_assert_cmpint (n, ==, 0);
  g_clear_error (&err);
  g_assert_cmpint (g_remove (file), ==, 0);
  g_assert_cmpint (g_rmdir (tmp), ==, 0);

  g_free (file);
  g_free (tmp);
  dsocr_image_free (img);
  dsocr_image_free (other);
  dsocr_result_free (r);
}

static void
test_bad_arguments (void)
{
  GError *err = NULL;
  dsocr_result_options opts;

  g_assert_null (dsocr_result_new_from_text ("x", 0, 10, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_nonnull (strstr (err->message, "0x10"));
  g_clear_error (&err);
  g_assert_null (dsocr_result_new_from_text ("x", 10, DSOCR_IMAGE_MAX_SIDE + 1, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_result_options_init (&opts);
  opts.page = -2;
  g_assert_null (dsocr_result_new_from_text ("x", 10, 10, &opts, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_result_free (NULL);
}

static JsonObject *
parse_object (JsonParser *p, const char *json)
{
  GError *err = NULL;

  json_parser_load_from_data (p, json, -1, &err);
  g_assert_no_error (err);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)));
  return json_node_get_object (json_parser_get_root (p));
}

static void
test_json (void)
{
  const char *text =
      "<|ref|>title<|/ref|><|det|>[[10, 20, 500.5, 60]]<|/det|>\n# Hello \"world\"\n\n"
      "<|ref|>image<|/ref|><|det|>[[0, 100, 999, 600], [5, 5, 5, 5]]<|/det|>\n"
      "<|ref|>text<|/ref|><|det|>[[10, 620, 990, 1200]]<|/det|>\nBody\ttext \xe2\x80\x94 ok"
      "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>";
  dsocr_result_options opts;
  GError *err = NULL;
  dsocr_result *r;
  JsonParser *p = json_parser_new ();
  JsonObject *o, *flags, *reg, *box;
  JsonArray *regions, *boxes, *arr;
  char *json, *pretty;

  dsocr_result_options_init (&opts);
  opts.page = 2;
  r = dsocr_result_new_from_text (text, 1000, 2000, &opts, &err);
  g_assert_no_error (err);
  g_assert_cmpint (dsocr_result_get_flags (r), ==, DSOCR_RESULT_MALFORMED);  // 1200 > 999
  dsocr_result_set_flag (r, DSOCR_RESULT_MALFORMED, FALSE);
  dsocr_result_set_flag (r, DSOCR_RESULT_HIT_TOKEN_LIMIT | DSOCR_RESULT_REPETITION_STOPPED,
                         TRUE);
  dsocr_result_set_flag (r, DSOCR_RESULT_REPETITION_STOPPED, FALSE);
  g_assert_cmpint (dsocr_result_get_flags (r), ==, DSOCR_RESULT_HIT_TOKEN_LIMIT);

  json = dsocr_result_to_json (r, FALSE);
  g_assert_null (strchr (json, '\n'));
  o = parse_object (p, json);
  g_assert_cmpint (json_object_get_int_member (o, "page"), ==, 2);
  g_assert_cmpint (json_object_get_int_member (o, "width"), ==, 1000);
  g_assert_cmpint (json_object_get_int_member (o, "height"), ==, 2000);
  g_assert_cmpstr (json_object_get_string_member (o, "markdown"), ==,
                   dsocr_result_get_markdown (r));
  g_assert_cmpstr (json_object_get_string_member (o, "raw"), ==,
                   dsocr_result_get_raw_text (r));
  flags = json_object_get_object_member (o, "flags");
  g_assert_true (json_object_get_boolean_member (flags, "hit_token_limit"));
  g_assert_false (json_object_get_boolean_member (flags, "repetition_stopped"));
  g_assert_false (json_object_get_boolean_member (flags, "malformed"));

  regions = json_object_get_array_member (o, "regions");
  g_assert_cmpuint (json_array_get_length (regions), ==, 3);
  reg = json_array_get_object_element (regions, 0);
  g_assert_cmpstr (json_object_get_string_member (reg, "label"), ==, "title");
  g_assert_cmpstr (json_object_get_string_member (reg, "text"), ==, "# Hello \"world\"");
  g_assert_false (json_object_has_member (reg, "image"));
  boxes = json_object_get_array_member (reg, "boxes");
  box = json_array_get_object_element (boxes, 0);
  arr = json_object_get_array_member (box, "box");
  g_assert_cmpint (json_array_get_int_element (arr, 0), ==, 10);   // int(10/999*1000)
  g_assert_cmpint (json_array_get_int_element (arr, 1), ==, 40);   // int(20/999*2000)
  g_assert_cmpint (json_array_get_int_element (arr, 2), ==, 501);  // int(500.5/999*1000)
  g_assert_cmpint (json_array_get_int_element (arr, 3), ==, 120);
  arr = json_object_get_array_member (box, "box_999");
  g_assert_cmpint (json_node_get_value_type (json_array_get_element (arr, 0)), ==, G_TYPE_INT64);
  g_assert_cmpfloat (json_array_get_double_element (arr, 2), ==, 500.5);
  g_assert_false (json_object_has_member (box, "crop"));
  g_assert_false (json_object_get_boolean_member (box, "empty"));

  reg = json_array_get_object_element (regions, 1);
  g_assert_cmpstr (json_object_get_string_member (reg, "image"), ==, "images/2_0.jpg");
  boxes = json_object_get_array_member (reg, "boxes");
  g_assert_cmpuint (json_array_get_length (boxes), ==, 2);
  box = json_array_get_object_element (boxes, 0);
  g_assert_cmpstr (json_object_get_string_member (box, "crop"), ==, "images/2_0.jpg");
  box = json_array_get_object_element (boxes, 1);
  g_assert_false (json_object_has_member (box, "crop"));     // empty: no file
  g_assert_true (json_object_get_boolean_member (box, "empty"));

  reg = json_array_get_object_element (regions, 2);
  g_assert_cmpstr (json_object_get_string_member (reg, "text"), ==,
                   "Body\ttext \xe2\x80\x94 ok");
  g_assert_true (json_object_get_boolean_member (reg, "malformed") == FALSE);
  box = json_array_get_object_element (json_object_get_array_member (reg, "boxes"), 0);
  g_assert_true (json_object_get_boolean_member (box, "malformed"));
  arr = json_object_get_array_member (box, "box");
  g_assert_cmpint (json_array_get_int_element (arr, 3), ==, 2000);    // clamped
  arr = json_object_get_array_member (reg, "span");
  g_assert_cmpint (json_array_get_int_element (arr, 0), ==,
                   (gint64) (strstr (dsocr_result_get_raw_text (r), "<|ref|>text") -
                             dsocr_result_get_raw_text (r)));

  pretty = dsocr_result_to_json (r, TRUE);
  g_assert_nonnull (strchr (pretty, '\n'));
  o = parse_object (p, pretty);
  g_assert_cmpstr (json_object_get_string_member (o, "markdown"), ==,
                   dsocr_result_get_markdown (r));
  g_free (pretty);
  g_free (json);
  dsocr_result_free (r);

  /* every control character comes out escaped (JSON forbids them raw) and reads back */
  {
    char ctl[40];
    for (int c = 1; c < 32; c++)
      ctl[c - 1] = (char) c;
    ctl[31] = '\0';
    r = dsocr_result_new_from_text (ctl, 3, 4, NULL, &err);
    g_assert_no_error (err);
    json = dsocr_result_to_json (r, FALSE);
    for (const char *q = json; *q; q++)
      g_assert_cmpint ((unsigned char) *q, >=, 0x20);
    o = parse_object (p, json);
    g_assert_cmpstr (json_object_get_string_member (o, "raw"), ==,
                     dsocr_result_get_raw_text (r));
    g_free (json);
    dsocr_result_free (r);
  }

  /* no page: no "page" member */
  r = dsocr_result_new_from_text ("plain", 3, 4, NULL, &err);
  g_assert_no_error (err);
  json = dsocr_result_to_json (r, FALSE);
  o = parse_object (p, json);
  g_assert_false (json_object_has_member (o, "page"));
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o, "regions")), ==, 0);
  g_assert_cmpstr (json_object_get_string_member (o, "markdown"), ==, "plain");
  g_free (json);
  dsocr_result_free (r);
  g_object_unref (p);
}

/* Sizes far beyond a page of model output: no crash, linear enough to finish quickly. */
static void
test_large_inputs (void)
{
  GString *s = g_string_new ("<|ref|>image<|/ref|><|det|>[");
  GError *err = NULL;
  dsocr_result *r;
  const dsocr_region *regions;
  int n;

  for (int i = 0; i < 100000; i++)
    g_string_append_printf (s, "%s[%d, %d, %d, %d]", i ? ", " : "", i % 999, i % 500,
                            999 - i % 400, 999);
  g_string_append (s, "]<|/det|>\ntext");
  r = dsocr_result_new_from_text (s->str, 4000, 3000, NULL, &err);
  g_assert_no_error (err);
  regions = dsocr_result_get_regions (r, &n);
  g_assert_cmpint (n, ==, 1);
  g_assert_cmpint (regions[0].n_boxes, ==, 100000);
  g_assert_cmpint (regions[0].boxes[99999].crop_index, ==, 99999);
  g_assert_cmpstr (dsocr_result_get_markdown (r), ==, "![](images/0.jpg)\n\ntext");
  dsocr_result_free (r);

  /* brackets nested far deeper than the parser follows */
  g_string_assign (s, "<|ref|>text<|/ref|><|det|>");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (s, '[');
  g_string_append (s, "<|/det|>tail");
  r = dsocr_result_new_from_text (s->str, 10, 10, NULL, &err);
  g_assert_no_error (err);
  regions = dsocr_result_get_regions (r, &n);
  g_assert_cmpint (n, ==, 1);
  g_assert_true (regions[0].malformed);
  g_assert_cmpint (regions[0].n_boxes, ==, 0);
  g_assert_cmpstr (dsocr_result_get_markdown (r), ==, "tail");
  dsocr_result_free (r);

  /* a thousand distinct matches: the replace chain runs once per match */
  g_string_truncate (s, 0);
  for (int i = 0; i < 1000; i++)
    g_string_append_printf (s, "<|ref|>text<|/ref|><|det|>[[%d, 0, 999, 999]]<|/det|>\nline %d\n",
                            i, i);
  r = dsocr_result_new_from_text (s->str, 100, 100, NULL, &err);
  g_assert_no_error (err);
  regions = dsocr_result_get_regions (r, &n);
  g_assert_cmpint (n, ==, 1000);
  g_assert_cmpstr (regions[999].text, ==, "line 999");
  g_assert_true (g_str_has_prefix (dsocr_result_get_markdown (r), "\nline 0\n\nline 1\n"));
  g_assert_false (dsocr_result_get_flags (r) & DSOCR_RESULT_MALFORMED);
  dsocr_result_free (r);
  g_string_free (s, TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/grounding/goldens", test_goldens);
  g_test_add_func ("/grounding/pixel-rule", test_pixel_rule);
  g_test_add_func ("/grounding/crops", test_crops);
  g_test_add_func ("/grounding/crop-errors", test_crop_errors);
  g_test_add_func ("/grounding/bad-arguments", test_bad_arguments);
  g_test_add_func ("/grounding/json", test_json);
  g_test_add_func ("/grounding/large-inputs", test_large_inputs);
  return g_test_run ();
}
