/* test-vision-golden.c: the vision tower against the official DeepSeek-OCR modules
 * (tests/fixtures/tiny-ocr/golden-vision.safetensors, written by
 * tests/reference/make_vision_fixtures.py, whose docstring describes the tensors).
 *
 * For every mode's view size (512, 640, 1024, 1280): SAM's output, CLIP's output (fed with
 * the reference's SAM output, and with ours), the projector (fed with the reference's inputs)
 * and the packed sequence; the resampled position tables at the non-native sizes; gundam's
 * 2 x 3 tiles + global view through the public whole-image call and through the packing
 * alone. Plus error paths. Each stage must be within 1e-4 relative of the golden. */
#include <string.h>

#include <dsocr/dsocr.h>

#include "dsocr-test.h"
#include "vision.h"

#define RTOL 1e-4

typedef struct {
  char *dir;
  dsocr_checkpoint *ckpt;
  dsocr_config *cfg;
  dsocr_vision *vis;
  dsocr_vision_session *vs;   /* on a 2-thread CPU backend: items really run in parallel */
  dsocr_safetensors *golden;
} fixture;

static void
fixture_open (fixture *fx)
{
  GError *err = NULL;
  g_autofree char *golden = NULL;

  fx->dir = dsocr_test_fixture ("tiny-ocr");
  fx->cfg = dsocr_config_load (fx->dir, &err);
  g_assert_no_error (err);
  fx->ckpt = dsocr_checkpoint_open (fx->dir, &err);
  g_assert_no_error (err);
  fx->vis = dsocr_vision_new (fx->ckpt, fx->cfg, &err);
  g_assert_no_error (err);
  {
    dsocr_backend *be = dsocr_backend_new ("cpu", 2, &err);
    g_assert_no_error (err);
    fx->vs = dsocr_vision_session_new (fx->vis, be, &err);
    g_assert_no_error (err);
    dsocr_backend_unref (be);
  }
  golden = g_build_filename (fx->dir, "golden-vision.safetensors", NULL);
  fx->golden = dsocr_safetensors_open (golden, &err);
  g_assert_no_error (err);
}

static void
fixture_close (fixture *fx)
{
  dsocr_vision_session_free (fx->vs);
  dsocr_vision_unref (fx->vis);
  dsocr_checkpoint_unref (fx->ckpt);
  dsocr_config_free (fx->cfg);
  dsocr_safetensors_unref (fx->golden);
  g_free (fx->dir);
}

static const dsocr_tensor *
golden (const fixture *fx, const char *name)
{
  const dsocr_tensor *t = dsocr_safetensors_get (fx->golden, name);
  if (!t)
    g_error ("%s: golden tensor '%s' missing", fx->dir, name);
  return t;
}

static const float *
golden_f32 (const fixture *fx, const char *name, gsize n)
{
  const dsocr_tensor *t = golden (fx, name);
  g_assert_cmpint (t->dtype, ==, DSOCR_DTYPE_F32);
  g_assert_cmpint (dsocr_shape_numel (t->n_dims, t->shape), ==, (gint64) n);
  return t->data;
}

static void
assert_close (const float *got, const float *want, gsize n, const char *what)
{
  double rel = dsocr_test_rel_error (got, want, n);
  g_test_message ("%s: relative error %.3g", what, rel);
  dsocr_test_assert_close (got, want, n, RTOL, what);
}

/* The generator of make_vision_fixtures.py: [3, size, size], bf16-rounded (transfer full). */
static float *
make_pixels (guint32 seed, int size)
{
  float *p = g_new (float, 3 * (gsize) size * size);
  for (guint32 c = 0; c < 3; c++)
    for (guint32 y = 0; y < (guint32) size; y++)
      for (guint32 x = 0; x < (guint32) size; x++) {
        guint32 h = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u) ^ (seed * 2654435761u);
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        guint32 u8 = (x * 192 / (guint32) size + y * 64 / (guint32) size + c * 40 + (h & 63)) & 255;
        float f = ((float) u8 / 255.0f - 0.5f) / 0.5f;
        p[(c * (gsize) size + y) * size + x] = dsk_bf16_to_f32 (dsk_f32_to_bf16 (f));
      }
  return p;
}

/* Rows 0 and size-1 of every channel equal the reference's, bit for bit. */
static void
check_pixel_rows (const fixture *fx, const char *name, const float *px, int size)
{
  const float *want = golden_f32 (fx, name, 3 * 2 * (gsize) size);
  for (int c = 0; c < 3; c++)
    for (int r = 0; r < 2; r++) {
      const float *row = px + ((gsize) c * size + (r ? size - 1 : 0)) * size;
      g_assert_cmpmem (row, size * sizeof (float), want + ((gsize) c * 2 + r) * size,
                       size * sizeof (float));
    }
}

/* [C, n*n] (NCHW golden) -> [n*n, C] (transfer full) */
static float *
to_nhwc (const float *src, gsize c, gsize n2)
{
  float *d = g_new (float, c * n2);
  for (gsize i = 0; i < n2; i++)
    for (gsize j = 0; j < c; j++)
      d[i * c + j] = src[j * n2 + i];
  return d;
}

typedef struct {
  const char *name;
  int size;
  guint32 seed;
} mode_case;

static const mode_case modes[] = {
  { "tiny", 512, 1 }, { "small", 640, 2 }, { "base", 1024, 3 }, { "large", 1280, 4 },
};

static void
test_mode (gconstpointer data)
{
  const mode_case *mc = data;
  fixture fx;
  GError *err = NULL;
  char name[64];
  fixture_open (&fx);
  const dsocr_vision *v = fx.vis;
  const int n = dsocr_vision_grid_side (v, mc->size);
  const gsize n2 = (gsize) n * n, C = (gsize) v->sam_out, W = (gsize) v->clip_width;
  const gsize E = (gsize) dsocr_vision_get_n_embed (v);
  g_assert_cmpint (n, ==, mc->size / 64);

  float *px = make_pixels (mc->seed, mc->size);
  g_snprintf (name, sizeof name, "%s.pixel_rows", mc->name);
  check_pixel_rows (&fx, name, px, mc->size);

  /* SAM */
  float *sam = g_new (float, n2 * C);
  g_assert_true (vis_sam_forward (fx.vs, px, 1, mc->size, sam, &err));
  g_assert_no_error (err);
  g_snprintf (name, sizeof name, "%s.sam", mc->name);
  float *want_sam = to_nhwc (golden_f32 (&fx, name, C * n2), C, n2);
  assert_close (sam, want_sam, n2 * C, name);

  /* CLIP, from the reference's SAM output and from ours */
  float *clip = g_new (float, (n2 + 1) * W);
  g_snprintf (name, sizeof name, "%s.clip", mc->name);
  const float *want_clip = golden_f32 (&fx, name, (n2 + 1) * W);
  g_assert_true (vis_clip_forward (fx.vs, want_sam, 1, n, clip, &err));
  g_assert_no_error (err);
  assert_close (clip, want_clip, (n2 + 1) * W, name);
  g_assert_true (vis_clip_forward (fx.vs, sam, 1, n, clip, &err));
  assert_close (clip, want_clip, (n2 + 1) * W, "clip (chained)");

  /* projector, from the reference's inputs and chained */
  float *proj = g_new (float, n2 * E);
  g_snprintf (name, sizeof name, "%s.proj", mc->name);
  const float *want_proj = golden_f32 (&fx, name, n2 * E);
  g_assert_true (vis_project (fx.vs, want_clip, want_sam, 1, (int) n2, proj, &err));
  assert_close (proj, want_proj, n2 * E, name);
  g_assert_true (vis_project (fx.vs, clip, sam, 1, (int) n2, proj, &err));
  assert_close (proj, want_proj, n2 * E, "proj (chained)");

  /* packing of a view without tiles */
  const int n_tok = dsocr_vision_pack_n_tokens (n, 0, 0, 0);
  g_assert_cmpint (n_tok, ==, n * (n + 1) + 1);
  float *packed = g_new (float, (gsize) n_tok * E);
  g_assert_true (dsocr_vision_pack (v, proj, n, NULL, 0, 0, 0, packed, &err));
  g_snprintf (name, sizeof name, "%s.packed", mc->name);
  assert_close (packed, golden_f32 (&fx, name, (gsize) n_tok * E), (gsize) n_tok * E, name);

  g_free (px);
  g_free (sam);
  g_free (want_sam);
  g_free (clip);
  g_free (proj);
  g_free (packed);
  fixture_close (&fx);
}

static void
test_position_tables (void)
{
  fixture fx;
  GError *err = NULL;
  char name[64];
  fixture_open (&fx);
  const dsocr_vision *v = fx.vis;
  const gsize D = (gsize) v->sam_width, hd = D / (gsize) v->sam_heads;
  const gsize W = (gsize) v->clip_width;

  static const int sam_sides[] = { 40, 32, 80 };
  for (gsize i = 0; i < G_N_ELEMENTS (sam_sides); i++) {
    const int s = sam_sides[i];
    float *pos = g_new (float, (gsize) s * s * D);
    g_assert_true (vis_sam_pos (fx.vs, s, pos, &err));
    g_assert_no_error (err);
    g_snprintf (name, sizeof name, "interp.sam_pos.%d", s);
    assert_close (pos, golden_f32 (&fx, name, (gsize) s * s * D), (gsize) s * s * D, name);
    g_free (pos);

    const gsize len = 2 * (gsize) s - 1;
    float *th = g_new (float, len * hd), *tw = g_new (float, len * hd);
    g_assert_true (vis_sam_rel_tables (fx.vs, 1, s, th, tw, &err));
    g_snprintf (name, sizeof name, "interp.sam_rel_h.%d", s);
    assert_close (th, golden_f32 (&fx, name, len * hd), len * hd, name);
    g_assert_true (vis_sam_rel_tables (fx.vs, 3, s, th, tw, &err));
    g_snprintf (name, sizeof name, "interp.sam_rel_w.%d", s);
    assert_close (tw, golden_f32 (&fx, name, len * hd), len * hd, name);
    g_free (th);
    g_free (tw);
  }

  static const int clip_sides[] = { 10, 8, 20 };
  for (gsize i = 0; i < G_N_ELEMENTS (clip_sides); i++) {
    const int s = clip_sides[i];
    const gsize n = ((gsize) s * s + 1) * W;
    float *pos = g_new (float, n);
    g_assert_true (vis_clip_pos (fx.vs, s, pos, &err));
    g_assert_no_error (err);
    g_snprintf (name, sizeof name, "interp.clip_pos.%d", s);
    assert_close (pos, golden_f32 (&fx, name, n), n, name);
    g_free (pos);
  }
  fixture_close (&fx);
}

/* The packing alone: the reference's tile and global projections -> the reference sequence. */
static void
test_pack_gundam (void)
{
  fixture fx;
  GError *err = NULL;
  fixture_open (&fx);
  const dsocr_vision *v = fx.vis;
  const gsize E = (gsize) dsocr_vision_get_n_embed (v);
  const int64_t *grid = golden (&fx, "gundam.grid")->data;
  const int64_t *n_tokens = golden (&fx, "gundam.n_tokens")->data;
  const int cols = (int) grid[0], rows = (int) grid[1];
  g_assert_cmpint (cols, ==, 2);
  g_assert_cmpint (rows, ==, 3);

  const int n = dsocr_vision_pack_n_tokens (16, 10, cols, rows);
  g_assert_cmpint (n, ==, (int) n_tokens[0]);
  g_assert_cmpint (n, ==, dsocr_preprocess_n_image_tokens (DSOCR_MODE_GUNDAM, cols, rows));
  float *out = g_new (float, (gsize) n * E);
  g_assert_true (dsocr_vision_pack (v, golden_f32 (&fx, "base.proj", 256 * E), 16,
                                    golden_f32 (&fx, "gundam.tiles.proj", 6 * 100 * E), 10,
                                    cols, rows, out, &err));
  g_assert_no_error (err);
  /* pure data movement: exact */
  const gsize bytes = (gsize) n * E * sizeof (float);
  g_assert_cmpmem (out, bytes, golden_f32 (&fx, "gundam.packed", (gsize) n * E), bytes);
  g_free (out);
  fixture_close (&fx);
}

static dsocr_tensor *
pixel_tensor (dsocr_dtype dtype, int n_dims, const int64_t *shape, float **views, int n_views,
              int size)
{
  GError *err = NULL;
  dsocr_tensor *t = dsocr_tensor_new (dtype, n_dims, shape, &err);
  g_assert_no_error (err);
  const gsize per = 3 * (gsize) size * size;
  for (int k = 0; k < n_views; k++)
    for (gsize i = 0; i < per; i++) {
      if (dtype == DSOCR_DTYPE_F32)
        ((float *) t->data)[k * per + i] = views[k][i];
      else
        ((uint16_t *) t->data)[k * per + i] = dsk_f32_to_bf16 (views[k][i]);
    }
  return t;
}

/* The public whole-image call on gundam's views: 6 tiles of 640 + the 1024 global view. */
static void
test_encode_gundam (void)
{
  fixture fx;
  GError *err = NULL;
  fixture_open (&fx);
  const gsize E = (gsize) dsocr_vision_get_n_embed (fx.vis);

  float *tiles[6];
  for (int k = 0; k < 6; k++)
    tiles[k] = make_pixels (10 + (guint32) k, 640);
  const float *rows = golden_f32 (&fx, "gundam.tiles.pixel_rows", 6 * 3 * 2 * 640);
  for (int k = 0; k < 6; k++) {
    for (int c = 0; c < 3; c++)
      g_assert_cmpmem (tiles[k] + (gsize) c * 640 * 640, 640 * sizeof (float),
                       rows + (((gsize) k * 3 + c) * 2) * 640, 640 * sizeof (float));
  }
  float *glob = make_pixels (3, 1024);

  dsocr_preprocessed pp = { 0 };
  const int64_t gshape[3] = { 3, 1024, 1024 }, tshape[4] = { 6, 3, 640, 640 };
  pp.global = pixel_tensor (DSOCR_DTYPE_F32, 3, gshape, &glob, 1, 1024);
  pp.tiles = pixel_tensor (DSOCR_DTYPE_F32, 4, tshape, tiles, 6, 640);
  pp.n_tiles = 6;
  pp.grid_cols = 2;
  pp.grid_rows = 3;
  pp.view_size = 1024;
  pp.n_image_tokens = dsocr_preprocess_n_image_tokens (DSOCR_MODE_GUNDAM, 2, 3);

  dsocr_tensor *emb = dsocr_vision_encode (fx.vs, &pp, &err);
  g_assert_no_error (err);
  g_assert_cmpint (emb->dtype, ==, DSOCR_DTYPE_F32);
  g_assert_cmpint (emb->n_dims, ==, 2);
  g_assert_cmpint (emb->shape[0], ==, 903);
  g_assert_cmpint (emb->shape[1], ==, (int64_t) E);
  assert_close (emb->data, golden_f32 (&fx, "gundam.packed", 903 * E), 903 * E, "gundam.packed");
  dsocr_tensor_free (emb);

  /* a placeholder count that does not match the views is refused */
  pp.n_image_tokens = 902;
  g_assert_null (dsocr_vision_encode (fx.vs, &pp, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);

  dsocr_tensor_free (pp.global);
  dsocr_tensor_free (pp.tiles);
  for (int k = 0; k < 6; k++)
    g_free (tiles[k]);
  g_free (glob);
  fixture_close (&fx);
}

/* Tiny mode through the public call with BF16 pixels (no tiles). */
static void
test_encode_tiny_bf16 (void)
{
  fixture fx;
  GError *err = NULL;
  fixture_open (&fx);
  const gsize E = (gsize) dsocr_vision_get_n_embed (fx.vis);
  float *px = make_pixels (1, 512);
  const int64_t shape[3] = { 3, 512, 512 };
  dsocr_preprocessed pp = { 0 };
  pp.global = pixel_tensor (DSOCR_DTYPE_BF16, 3, shape, &px, 1, 512);
  pp.grid_cols = pp.grid_rows = 1;
  pp.view_size = 512;
  pp.n_image_tokens = dsocr_preprocess_n_image_tokens (DSOCR_MODE_TINY, 1, 1);
  g_assert_cmpint (pp.n_image_tokens, ==, 73);

  dsocr_tensor *emb = dsocr_vision_encode (fx.vs, &pp, &err);
  g_assert_no_error (err);
  assert_close (emb->data, golden_f32 (&fx, "tiny.packed", 73 * E), 73 * E, "tiny.packed");

  /* encode_view on unrounded pixels rounds them as the reference does */
  float *view = g_new (float, 64 * E);
  for (gsize i = 0; i < 3 * 512 * 512; i++)
    px[i] += px[i] * 1e-4f;
  g_assert_true (dsocr_vision_encode_view (fx.vs, px, 512, view, &err));
  assert_close (view, golden_f32 (&fx, "tiny.proj", 64 * E), 64 * E, "tiny.proj");

  dsocr_tensor_free (emb);
  dsocr_tensor_free (pp.global);
  g_free (view);
  g_free (px);
  fixture_close (&fx);
}

/* dsocr_preprocess() output goes straight in: a 700 x 300 picture in gundam mode is cut into
 * tiles, and the embedding count equals the placeholder count it announces. The global view's
 * rows are the projector output of encode_view on the same pixels. */
static void
test_preprocess_integration (void)
{
  fixture fx;
  GError *err = NULL;
  fixture_open (&fx);
  const gsize E = (gsize) dsocr_vision_get_n_embed (fx.vis);
  const int w = 700, h = 300;
  guint8 *rgb = g_new (guint8, (gsize) w * h * 3);
  for (int i = 0; i < w * h * 3; i++)
    rgb[i] = (guint8) ((i * 7 + (i / (3 * w)) * 13) & 255);
  dsocr_image_view view = { rgb, w, h, (gsize) w * 3 };
  dsocr_preprocess_params params;
  dsocr_preprocess_params_init (&params);
  params.pixels = DSOCR_PIXELS_F32_BF16;
  dsocr_preprocessed *pp = dsocr_preprocess (&view, &params, &err);
  g_assert_no_error (err);
  g_assert_cmpint (pp->n_tiles, >, 0);

  dsocr_tensor *emb = dsocr_vision_encode (fx.vs, pp, &err);
  g_assert_no_error (err);
  g_assert_cmpint (emb->shape[0], ==, pp->n_image_tokens);
  g_assert_cmpint (emb->shape[1], ==, (int64_t) E);
  const float *e = emb->data;
  for (gsize i = 0; i < (gsize) emb->shape[0] * E; i++)
    g_assert_true (isfinite (e[i]));

  float *glob = g_new (float, 256 * E);
  g_assert_true (dsocr_vision_encode_view (fx.vs, pp->global->data, 1024, glob, &err));
  const float *gpart = e + ((gsize) pp->n_image_tokens - 273) * E;
  for (int y = 0; y < 16; y++)
    g_assert_cmpmem (gpart + (gsize) y * 17 * E, 16 * E * sizeof (float),
                     glob + (gsize) y * 16 * E, 16 * E * sizeof (float));
  g_free (glob);
  dsocr_tensor_free (emb);
  dsocr_preprocessed_free (pp);
  g_free (rgb);
  fixture_close (&fx);
}

/* A batch of views gives each view's rows as encoding it alone does: the linear layers see
 * more rows, attention and convolutions stay within a view. Three 640 views (CLIP and SAM
 * with several windows) and three 512 views. */
static void
test_batch (void)
{
  fixture fx;
  GError *err = NULL;
  fixture_open (&fx);
  const gsize E = (gsize) dsocr_vision_get_n_embed (fx.vis);
  const int sizes[2] = { 640, 512 };
  for (int k = 0; k < 2; k++) {
    const int S = sizes[k], n = dsocr_vision_grid_side (fx.vis, S);
    const gsize per = 3 * (gsize) S * S, rows = (gsize) n * n * E;
    float *px = g_new (float, 3 * per);
    for (gsize i = 0; i < 3 * per; i++)
      px[i] = (float) ((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    float *batch = g_new (float, 3 * rows), *one = g_new (float, rows);
    g_assert_true (dsocr_vision_encode_views (fx.vs, px, 3, S, batch, &err));
    g_assert_no_error (err);
    for (int v = 0; v < 3; v++) {
      g_assert_true (dsocr_vision_encode_view (fx.vs, px + v * per, S, one, &err));
      assert_close (batch + v * rows, one, rows, "batched view");
    }
    g_free (px);
    g_free (batch);
    g_free (one);
  }
  /* whole images of different modes in one batch: each as dsocr_vision_encode() alone */
  const struct { int w, h; dsocr_mode mode; } im[3] = {
    { 700, 300, DSOCR_MODE_GUNDAM }, { 300, 200, DSOCR_MODE_TINY }, { 900, 700, DSOCR_MODE_GUNDAM },
  };
  dsocr_preprocessed *pps[3];
  for (int i = 0; i < 3; i++) {
    guint8 *rgb = g_new (guint8, (gsize) im[i].w * im[i].h * 3);
    for (int j = 0; j < im[i].w * im[i].h * 3; j++)
      rgb[j] = (guint8) ((j * (7 + i) + (j / (3 * im[i].w)) * 13) & 255);
    dsocr_image_view view = { rgb, im[i].w, im[i].h, (gsize) im[i].w * 3 };
    dsocr_preprocess_params params;
    dsocr_preprocess_params_init (&params);
    params.mode = im[i].mode;
    params.pixels = i == 1 ? DSOCR_PIXELS_F32 : DSOCR_PIXELS_F32_BF16;
    pps[i] = dsocr_preprocess (&view, &params, &err);
    g_assert_no_error (err);
    g_free (rgb);
  }
  dsocr_tensor *batched[3];
  g_assert_true (dsocr_vision_encode_batch (fx.vs, (const dsocr_preprocessed *const *) pps, 3,
                                            batched, &err));
  g_assert_no_error (err);
  for (int i = 0; i < 3; i++) {
    dsocr_tensor *alone = dsocr_vision_encode (fx.vs, pps[i], &err);
    g_assert_no_error (err);
    g_assert_cmpint (batched[i]->shape[0], ==, alone->shape[0]);
    assert_close (batched[i]->data, alone->data, (gsize) alone->shape[0] * E, "batched image");
    dsocr_tensor_free (alone);
    dsocr_tensor_free (batched[i]);
  }
  /* a bad image fails the batch and leaves no output behind */
  pps[1]->n_image_tokens++;
  g_assert_false (dsocr_vision_encode_batch (fx.vs, (const dsocr_preprocessed *const *) pps,
                                             3, batched, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  for (int i = 0; i < 3; i++) {
    g_assert_null (batched[i]);
    dsocr_preprocessed_free (pps[i]);
  }

  float px[3 * 64 * 64] = { 0 }, out[1];
  g_assert_false (dsocr_vision_encode_views (fx.vs, px, 0, 64, out, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (dsocr_vision_encode_views (fx.vs, px, DSOCR_VISION_MAX_VIEWS + 1, 64, out,
                                             &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  fixture_close (&fx);
}

static void
test_errors (void)
{
  fixture fx;
  GError *err = NULL;
  fixture_open (&fx);
  float px[3 * 24 * 24] = { 0 }, out[16];

  /* not a multiple of the patch */
  g_assert_false (dsocr_vision_encode_view (fx.vs, px, 24, out, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_cmpint (dsocr_vision_grid_side (fx.vis, 0), ==, 0);
  g_assert_cmpint (dsocr_vision_grid_side (fx.vis, 1024), ==, 16);
  g_assert_cmpint (dsocr_vision_grid_side (fx.vis, 640), ==, 10);
  g_assert_cmpint (dsocr_vision_grid_side (fx.vis, 48), ==, 1);

  /* tiles without a grid, a grid without tiles */
  g_assert_false (dsocr_vision_pack (fx.vis, out, 1, out, 1, 0, 2, out, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (dsocr_vision_pack (fx.vis, out, 1, NULL, 1, 1, 1, out, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_cmpint (dsocr_vision_pack_n_tokens (-1, 0, 0, 0), ==, -1);

  /* a checkpoint without vision weights: the first missing tensor is named */
  g_autofree char *dec = dsocr_test_fixture ("tiny-ocr-decoder");
  dsocr_checkpoint *ck = dsocr_checkpoint_open (dec, &err);
  g_assert_no_error (err);
  g_assert_null (dsocr_vision_new (ck, fx.cfg, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_SHAPE);
  g_assert_nonnull (strstr (err->message, "model.sam_model.patch_embed.proj.weight"));
  g_clear_error (&err);
  dsocr_checkpoint_unref (ck);

  /* a config of another family */
  g_autofree char *v2 = dsocr_test_fixture ("tiny-v2-mla-group");
  dsocr_config *cfg2 = dsocr_config_load (v2, &err);
  g_assert_no_error (err);
  g_assert_null (dsocr_vision_new (fx.ckpt, cfg2, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  dsocr_config_free (cfg2);

  /* a SAM width the checkpoint does not have */
  dsocr_config *bad = dsocr_config_load (fx.dir, &err);
  g_assert_no_error (err);
  bad->vision.sam.width = 64;
  g_assert_null (dsocr_vision_new (fx.ckpt, bad, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_SHAPE);
  g_clear_error (&err);
  dsocr_config_free (bad);

  /* refcounting */
  dsocr_vision *r = dsocr_vision_ref (fx.vis);
  dsocr_vision_unref (r);
  dsocr_vision_unref (NULL);
  fixture_close (&fx);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++) {
    g_autofree char *path = g_strdup_printf ("/engine/vision/mode/%s", modes[i].name);
    g_test_add_data_func (path, &modes[i], test_mode);
  }
  g_test_add_func ("/engine/vision/position-tables", test_position_tables);
  g_test_add_func ("/engine/vision/pack-gundam", test_pack_gundam);
  g_test_add_func ("/engine/vision/encode-gundam", test_encode_gundam);
  g_test_add_func ("/engine/vision/encode-tiny-bf16", test_encode_tiny_bf16);
  g_test_add_func ("/engine/vision/preprocess-integration", test_preprocess_integration);
  g_test_add_func ("/engine/vision/batch", test_batch);
  g_test_add_func ("/engine/vision/errors", test_errors);
  return g_test_run ();
}
