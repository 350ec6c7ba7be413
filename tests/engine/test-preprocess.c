/* test-preprocess.c: DeepSeek-OCR preprocessing against the reference (Pillow + torch goldens
 * from tests/reference/make_preprocess_goldens.py): tile grids, ImageOps.pad, normalised
 * tensors in every pixel format, token counts. */
#include <dsk.h>

#include "image-golden.h"

static void
test_normalize_table (void)
{
  JsonParser *p = golden_index ();
  JsonObject *root = json_node_get_object (json_parser_get_root (p));
  JsonObject *norm = json_object_get_object_member (root, "normalize");
  JsonArray *f32 = json_object_get_array_member (norm, "f32_bits");
  JsonArray *bf16 = json_object_get_array_member (norm, "bf16_bits");
  guint8 px[256 * 3];
  dsocr_image_view v = { px, 256, 1, sizeof px };
  float out[3 * 256], rounded[3 * 256];
  guint16 bits[3 * 256];

  for (int i = 0; i < 256; i++)
    px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = (guint8) i;
  dsocr_preprocess_normalize (&v, DSOCR_PIXELS_F32, out);
  dsocr_preprocess_normalize (&v, DSOCR_PIXELS_F32_BF16, rounded);
  dsocr_preprocess_normalize (&v, DSOCR_PIXELS_BF16, bits);
  for (int c = 0; c < 3; c++) {
    for (int i = 0; i < 256; i++) {
      guint32 u;
      guint16 want16 = (guint16) json_array_get_int_element (bf16, i);
      memcpy (&u, &out[c * 256 + i], 4);
      if (u != (guint32) json_array_get_int_element (f32, i))
        g_error ("value %d: 0x%08x, torch has 0x%08x", i, u,
                 (guint32) json_array_get_int_element (f32, i));
      g_assert_cmpuint (bits[c * 256 + i], ==, want16);
      g_assert_true (rounded[c * 256 + i] == dsk_bf16_to_f32 (want16));
    }
  }
  g_object_unref (p);
}

static void
test_candidates (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "candidates");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    int mn = (int) json_object_get_int_member (e, "min");
    int mx = (int) json_object_get_int_member (e, "max");
    JsonArray *want = json_object_get_array_member (e, "grids");
    int n = dsocr_preprocess_candidate_grids (mn, mx, NULL, 0);
    int *got = g_new (int, 2 * (gsize) MAX (n, 1));

    g_assert_cmpint (n, ==, (int) json_array_get_length (want));
    g_assert_cmpint (dsocr_preprocess_candidate_grids (mn, mx, got, n), ==, n);
    for (int k = 0; k < n; k++) {
      JsonArray *g = json_array_get_array_element (want, k);
      if (got[2 * k] != golden_int (g, 0) || got[2 * k + 1] != golden_int (g, 1))
        g_error ("min %d max %d: candidate %d is (%d, %d), Python has (%d, %d)", mn, mx, k,
                 got[2 * k], got[2 * k + 1], golden_int (g, 0), golden_int (g, 1));
    }
    g_free (got);
  }
  /* the two orders written in the reference sheet, section 3.4 */
  {
    const int hf[] = { 1, 2, 2, 1, 3, 1, 1, 3, 2, 2, 4, 1, 1, 4, 5, 1, 1, 5, 1, 6, 6, 1, 3, 2,
                       2, 3, 7, 1, 1, 7, 4, 2, 2, 4, 1, 8, 8, 1, 1, 9, 3, 3, 9, 1 };
    const int vllm[] = { 1, 2, 2, 1, 3, 1, 1, 3, 4, 1, 1, 4, 2, 2, 1, 5, 5, 1, 6, 1, 2, 3, 1, 6,
                         3, 2 };
    int got[64];
    g_assert_cmpint (dsocr_preprocess_candidate_grids (2, 9, got, 32), ==, 22);
    g_assert_cmpmem (got, sizeof hf, hf, sizeof hf);
    g_assert_cmpint (dsocr_preprocess_candidate_grids (2, 6, got, 32), ==, 13);
    g_assert_cmpmem (got, sizeof vllm, vllm, sizeof vllm);
  }
  g_assert_cmpint (dsocr_preprocess_candidate_grids (0, 9, NULL, 0), ==, 0);
  g_assert_cmpint (dsocr_preprocess_candidate_grids (5, 4, NULL, 0), ==, 0);
  g_assert_cmpint (dsocr_preprocess_candidate_grids (2, DSOCR_MAX_TILES_LIMIT + 1, NULL, 0), ==,
                   0);
  g_assert_cmpint (dsocr_preprocess_candidate_grids (2, DSOCR_MAX_TILES_LIMIT, NULL, 0), >, 0);
  g_object_unref (p);
}

static void
test_grids (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "grids");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonArray *e = json_array_get_array_element (cases, i);
    int cols, rows;
    dsocr_preprocess_choose_grid (golden_int (e, 0), golden_int (e, 1), golden_int (e, 2),
                                  golden_int (e, 3), DSOCR_TILE_SIZE, &cols, &rows);
    if (cols != golden_int (e, 4) || rows != golden_int (e, 5))
      g_error ("%dx%d (max %d): grid %dx%d, reference %dx%d", golden_int (e, 0),
               golden_int (e, 1), golden_int (e, 3), cols, rows, golden_int (e, 4),
               golden_int (e, 5));
  }
  g_object_unref (p);
}

static void
test_tokens_and_modes (void)
{
  dsocr_mode m;
  dsocr_mode_info mi;
  dsocr_preprocess_params params;

  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_TINY, 1, 1), ==, 73);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_SMALL, 1, 1), ==, 111);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_BASE, 1, 1), ==, 273);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_LARGE, 1, 1), ==, 421);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_GUNDAM, 1, 1), ==, 273);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_GUNDAM, 2, 3), ==,
                   273 + 30 * 21);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_BASE, 2, 3), ==, 273);
  g_assert_cmpint (dsocr_preprocess_n_image_tokens (DSOCR_MODE_N, 1, 1), ==, -1);
  for (int i = 0; i < DSOCR_MODE_N; i++) {
    g_assert_true (dsocr_mode_from_name (dsocr_mode_name (i), &m));
    g_assert_cmpint (m, ==, i);
  }
  g_assert_true (dsocr_mode_from_name ("Gundam", &m));
  g_assert_cmpint (m, ==, DSOCR_MODE_GUNDAM);
  g_assert_false (dsocr_mode_from_name ("huge", &m));
  g_assert_null (dsocr_mode_name (DSOCR_MODE_N));
  g_assert_true (dsocr_mode_get_info (DSOCR_MODE_GUNDAM, &mi));
  g_assert_cmpint (mi.base_size, ==, 1024);
  g_assert_cmpint (mi.image_size, ==, 640);
  g_assert_true (mi.crop_mode);
  g_assert_false (dsocr_mode_get_info (DSOCR_MODE_N, &mi));
  dsocr_preprocess_params_init (&params);
  g_assert_cmpint (params.mode, ==, DSOCR_MODE_GUNDAM);
  g_assert_cmpint (params.min_tiles, ==, 2);
  g_assert_cmpint (params.max_tiles, ==, 9);
  g_assert_cmpint (params.pixels, ==, DSOCR_PIXELS_F32);
  g_assert_cmpint (params.pillow, ==, DSOCR_PILLOW_13);
}

static void
test_pad_goldens (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "pad");
  GBytes *blob = golden_blob ("pad.u8");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    JsonArray *src = json_object_get_array_member (e, "src");
    int sw = golden_int (src, 0), sh = golden_int (src, 1);
    int size = (int) json_object_get_int_member (e, "size");
    dsocr_image *img = golden_synth (sw, sh, (guint32) golden_int (src, 2));
    dsocr_image_view v = dsocr_image_get_view (img);
    GError *err = NULL;
    int content[4];
    dsocr_image *out = dsocr_preprocess_pad (&v, size, DSOCR_PILLOW_13, content, &err);
    char what[96];

    g_assert_no_error (err);
    g_assert_cmpint (out->width, ==, size);
    g_assert_cmpint (out->height, ==, size);
    g_assert_true (content[0] == 0 || content[1] == 0);
    g_assert_true (content[2] == size || content[3] == size);
    g_snprintf (what, sizeof what, "pad %dx%d -> %d", sw, sh, size);
    golden_check_bytes (e, blob, "offset", "sha256", out->data, out->stride * (gsize) size,
                        what);
    dsocr_image_free (out);
    dsocr_image_free (img);
  }
  g_bytes_unref (blob);
  g_object_unref (p);
}

/* Round-half-even placement: 723 x 1024 in 1024 is pasted at x = round(150.5) = 150;
 * 128 x 1 in 64 gives a height of round(0.5) = 0, an all-grey view. */
static void
test_pad_geometry (void)
{
  const struct { int w, h, size, x, y, cw, ch; } cases[] = {
    { 723, 1024, 1024, 150, 0, 723, 1024 }, { 128, 1, 64, 0, 32, 64, 0 },
    { 128, 3, 64, 0, 31, 64, 2 }, { 100, 100, 64, 0, 0, 64, 64 },
    { 1191, 1684, 1024, 150, 0, 724, 1024 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    dsocr_image *img = golden_synth (cases[i].w, cases[i].h, 1);
    dsocr_image_view v = dsocr_image_get_view (img);
    int c[4];
    dsocr_image *out = dsocr_preprocess_pad (&v, cases[i].size, DSOCR_PILLOW_13, c, NULL);
    g_assert_cmpint (c[0], ==, cases[i].x);
    g_assert_cmpint (c[1], ==, cases[i].y);
    g_assert_cmpint (c[2], ==, cases[i].cw);
    g_assert_cmpint (c[3], ==, cases[i].ch);
    dsocr_image_free (out);
    dsocr_image_free (img);
  }
}

static void
check_tensor (JsonObject *e, const char *key, const dsocr_tensor *t, const char *what)
{
  char *sha = golden_sha256 (t->data, t->nbytes);
  const char *want = json_object_get_string_member (e, key);

  if (g_strcmp0 (sha, want) != 0)
    g_error ("%s: %s SHA-256 %s differs from the reference %s", what, key, sha, want);
  g_free (sha);
}

static void
test_preprocess_goldens (void)
{
  JsonParser *p = golden_index ();
  JsonArray *cases = golden_array (p, "preprocess");

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *e = json_array_get_object_element (cases, i);
    JsonArray *src = json_object_get_array_member (e, "src");
    JsonArray *grid = json_object_get_array_member (e, "grid");
    int sw = golden_int (src, 0), sh = golden_int (src, 1);
    dsocr_image *img = golden_synth (sw, sh, (guint32) golden_int (src, 2));
    dsocr_image_view v = dsocr_image_get_view (img);
    dsocr_preprocess_params params;
    dsocr_preprocessed *pp;
    dsocr_image *gv;
    GError *err = NULL;
    char what[96];
    gint64 t0;
    gboolean big = sw * sh > 4000000;

    dsocr_preprocess_params_init (&params);
    g_assert_true (dsocr_mode_from_name (json_object_get_string_member (e, "mode"),
                                         &params.mode));
    params.max_tiles = (int) json_object_get_int_member (e, "max_tiles");
    params.pillow = json_object_get_int_member (e, "pillow") == 12 ? DSOCR_PILLOW_12
                                                                   : DSOCR_PILLOW_13;
    g_snprintf (what, sizeof what, "%dx%d %s max %d Pillow %d", sw, sh,
                dsocr_mode_name (params.mode), params.max_tiles,
                params.pillow == DSOCR_PILLOW_12 ? 12 : 13);

    /* uint8 stages first: they say where a difference starts (not for the largest inputs,
     * which take long under sanitizers) */
    if (!big) {
      gv = dsocr_preprocess_global_view (&v, params.mode, params.pillow, &err);
      g_assert_no_error (err);
      golden_check_bytes (e, NULL, NULL, "global_u8_sha256", gv->data,
                          gv->stride * (gsize) gv->height, what);
      dsocr_image_free (gv);
    }
    if (!big && json_object_has_member (e, "canvas_u8_sha256")) {
      dsocr_image *cv = dsocr_preprocess_tile_canvas (&v, golden_int (grid, 0),
                                                      golden_int (grid, 1), params.pillow, &err);
      g_assert_no_error (err);
      golden_check_bytes (e, NULL, NULL, "canvas_u8_sha256", cv->data,
                          cv->stride * (gsize) cv->height, what);
      dsocr_image_free (cv);
    }

    t0 = g_get_monotonic_time ();
    pp = dsocr_preprocess (&v, &params, &err);
    if (big)
      g_test_message ("%s: preprocess %.1f ms", what, (g_get_monotonic_time () - t0) / 1e3);
    g_assert_no_error (err);
    g_assert_cmpint (pp->grid_cols, ==, golden_int (grid, 0));
    g_assert_cmpint (pp->grid_rows, ==, golden_int (grid, 1));
    g_assert_cmpint (pp->n_tiles, ==, json_object_get_int_member (e, "n_tiles"));
    g_assert_cmpint (pp->n_image_tokens, ==, json_object_get_int_member (e, "tokens"));
    g_assert_cmpint (pp->view_size, ==, json_object_get_int_member (e, "view_size"));
    g_assert_cmpint (pp->orig_width, ==, sw);
    g_assert_cmpint (pp->orig_height, ==, sh);
    g_assert_cmpint (pp->global->n_dims, ==, 3);
    g_assert_cmpint (pp->global->shape[0], ==, 3);
    g_assert_cmpint (pp->global->shape[1], ==, pp->view_size);
    g_assert_cmpint (pp->global->dtype, ==, DSOCR_DTYPE_F32);
    check_tensor (e, "global_f32_sha256", pp->global, what);
    if (pp->n_tiles) {
      g_assert_cmpint (pp->tiles->shape[0], ==, pp->n_tiles);
      g_assert_cmpint (pp->tiles->shape[2], ==, DSOCR_TILE_SIZE);
      check_tensor (e, "tiles_f32_sha256", pp->tiles, what);
    } else {
      g_assert_null (pp->tiles);
    }
    /* the bf16 cast of the reference, as a separate step on the f32 tensors */
    g_assert_true (dsocr_preprocess_round_bf16 (pp->global, &err));
    check_tensor (e, "global_f32_bf16_sha256", pp->global, what);
    if (pp->n_tiles) {
      g_assert_true (dsocr_preprocess_round_bf16 (pp->tiles, &err));
      check_tensor (e, "tiles_f32_bf16_sha256", pp->tiles, what);
    }
    dsocr_preprocessed_free (pp);

    /* the same as pixel formats */
    if (!big) {
      params.pixels = DSOCR_PIXELS_F32_BF16;
      pp = dsocr_preprocess (&v, &params, &err);
      g_assert_no_error (err);
      check_tensor (e, "global_f32_bf16_sha256", pp->global, what);
      if (pp->n_tiles)
        check_tensor (e, "tiles_f32_bf16_sha256", pp->tiles, what);
      dsocr_preprocessed_free (pp);
      params.pixels = DSOCR_PIXELS_BF16;
      pp = dsocr_preprocess (&v, &params, &err);
      g_assert_no_error (err);
      g_assert_cmpint (pp->global->dtype, ==, DSOCR_DTYPE_BF16);
      check_tensor (e, "global_bf16_sha256", pp->global, what);
      if (pp->n_tiles)
        check_tensor (e, "tiles_bf16_sha256", pp->tiles, what);
      g_assert_false (dsocr_preprocess_round_bf16 (pp->global, &err));
      g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_SHAPE);
      g_clear_error (&err);
      dsocr_preprocessed_free (pp);
    }
    dsocr_image_free (img);
  }
  g_object_unref (p);
}

/* Content rectangle and tile placement on a decoded page-like file, padded stride input. */
static void
test_view_input (void)
{
  dsocr_image *img = golden_synth (900, 700, 3);
  gsize stride = 3 * 900 + 64;
  guint8 *frame = g_malloc (stride * 700);
  dsocr_image_view v = { frame, 900, 700, stride }, pv = dsocr_image_get_view (img);
  dsocr_preprocessed *a, *b;
  GError *err = NULL;

  for (int y = 0; y < 700; y++)
    memcpy (frame + y * stride, img->data + y * img->stride, img->stride);
  a = dsocr_preprocess (&v, NULL, &err);
  g_assert_no_error (err);
  b = dsocr_preprocess (&pv, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpint (a->content_x, ==, 0);
  g_assert_cmpint (a->content_y, ==, 114); /* round((1024 - 796) * 0.5) */
  g_assert_cmpint (a->content_width, ==, 1024);
  g_assert_cmpint (a->content_height, ==, 796);
  g_assert_cmpint (a->n_tiles, ==, b->n_tiles);
  g_assert_cmpmem (a->global->data, a->global->nbytes, b->global->data, b->global->nbytes);
  g_assert_cmpmem (a->tiles->data, a->tiles->nbytes, b->tiles->data, b->tiles->nbytes);
  dsocr_preprocessed_free (a);
  dsocr_preprocessed_free (b);
  g_free (frame);
  dsocr_image_free (img);
}

static void
test_bad_params (void)
{
  dsocr_image *img = golden_synth (10, 10, 1);
  dsocr_image_view v = dsocr_image_get_view (img);
  dsocr_preprocess_params params;
  GError *err = NULL;

  dsocr_preprocess_params_init (&params);
  params.max_tiles = 1;
  g_assert_null (dsocr_preprocess (&v, &params, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  params.max_tiles = DSOCR_MAX_TILES_LIMIT + 1;
  g_assert_null (dsocr_preprocess (&v, &params, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  dsocr_preprocess_params_init (&params);
  params.min_tiles = 1;
  g_assert_null (dsocr_preprocess (&v, &params, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  dsocr_preprocess_params_init (&params);
  params.mode = DSOCR_MODE_N;
  g_assert_null (dsocr_preprocess (&v, &params, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  params.mode = DSOCR_MODE_BASE;
  params.pillow = 5;
  g_assert_null (dsocr_preprocess (&v, &params, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  params.pillow = DSOCR_PILLOW_13;
  params.pixels = 7;
  g_assert_null (dsocr_preprocess (&v, &params, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  v.stride = 3;
  g_assert_null (dsocr_preprocess (&v, NULL, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_assert_true (g_str_has_prefix (err->message, "preprocess input: "));
  g_clear_error (&err);
  g_assert_null (dsocr_preprocess_tile_canvas (&v, 0, 2, DSOCR_PILLOW_13, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_clear_error (&err);
  dsocr_preprocessed_free (NULL);
  dsocr_image_free (img);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/preprocess/normalize-table", test_normalize_table);
  g_test_add_func ("/preprocess/candidates", test_candidates);
  g_test_add_func ("/preprocess/grids", test_grids);
  g_test_add_func ("/preprocess/tokens-modes", test_tokens_and_modes);
  g_test_add_func ("/preprocess/pad-goldens", test_pad_goldens);
  g_test_add_func ("/preprocess/pad-geometry", test_pad_geometry);
  g_test_add_func ("/preprocess/goldens", test_preprocess_goldens);
  g_test_add_func ("/preprocess/view-input", test_view_input);
  g_test_add_func ("/preprocess/bad-params", test_bad_params);
  return g_test_run ();
}
