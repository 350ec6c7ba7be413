/* preprocess.c: the reference's image preprocessing (HUB modeling_deepseekocr.py infer(),
 * dynamic_preprocess, BasicImageTransform), on RGB8 views. */
#include "dsocr/dsocr-preprocess.h"

#include <math.h>
#include <string.h>

#include "dsk.h"
#include "dsocr/dsocr-error.h"
#include "resize.h"
#include "views.h"

/* Pad colour: tuple(int(m * 255) for m in mean) with mean 0.5. */
#define PAD_VALUE 127

G_STATIC_ASSERT ((int) DSOCR_PILLOW_13 == (int) DSOCR_RESIZE_PILLOW13);
G_STATIC_ASSERT ((int) DSOCR_PILLOW_12 == (int) DSOCR_RESIZE_PILLOW12);

static const struct {
  const char *name;
  dsocr_mode_info info;
} modes[DSOCR_MODE_N] = {
  [DSOCR_MODE_TINY] = { "tiny", { 512, 512, FALSE } },
  [DSOCR_MODE_SMALL] = { "small", { 640, 640, FALSE } },
  [DSOCR_MODE_BASE] = { "base", { 1024, 1024, FALSE } },
  [DSOCR_MODE_LARGE] = { "large", { 1280, 1280, FALSE } },
  [DSOCR_MODE_GUNDAM] = { "gundam", { 1024, DSOCR_TILE_SIZE, TRUE } },
};

void
dsocr_preprocess_params_init (dsocr_preprocess_params *params)
{
  params->mode = DSOCR_MODE_GUNDAM;
  params->min_tiles = 2;
  params->max_tiles = DSOCR_MAX_TILES_HF;
  params->pixels = DSOCR_PIXELS_F32;
  params->pillow = DSOCR_PILLOW_13;
}

const char *
dsocr_mode_name (dsocr_mode mode)
{
  return (unsigned) mode < DSOCR_MODE_N ? modes[mode].name : NULL;
}

gboolean
dsocr_mode_from_name (const char *name, dsocr_mode *mode)
{
  for (int i = 0; name && i < DSOCR_MODE_N; i++) {
    if (g_ascii_strcasecmp (name, modes[i].name) == 0) {
      *mode = (dsocr_mode) i;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
dsocr_mode_get_info (dsocr_mode mode, dsocr_mode_info *info)
{
  if ((unsigned) mode >= DSOCR_MODE_N)
    return FALSE;
  *info = modes[mode].info;
  return TRUE;
}

/* Side of the embedding grid of a view (views.h). */
static int
view_grid (int side)
{
  return dsocr_view_grid_side (side, DSOCR_VIEW_PATCH, DSOCR_VIEW_DOWNSAMPLES);
}

int
dsocr_preprocess_n_image_tokens (dsocr_mode mode, int grid_cols, int grid_rows)
{
  dsocr_mode_info mi;
  int n, tokens;

  if (!dsocr_mode_get_info (mode, &mi))
    return -1;
  n = view_grid (mi.base_size);
  if (mi.crop_mode && (grid_cols > 1 || grid_rows > 1))
    tokens = dsocr_view_n_tokens (n, view_grid (mi.image_size), grid_cols, grid_rows);
  else
    tokens = dsocr_view_n_tokens (n, 0, 0, 0);
  return tokens;
}

/* ---- candidate grids: CPython's set iteration order ----
 *
 * dynamic_preprocess builds `set((i, j) for n ... for i ... for j ... if ...)` and sorts it by
 * i * j; the sort is stable, so grids of equal area keep the set's iteration order, which
 * decides exact ties. That order is the slot order of CPython's hash table (3.8+ tuple hash,
 * set insertion with 9 linear probes then perturbed jumps, growth to 4 * used when 3/5 full),
 * reproduced here for the small tuples involved. */

#define PY_LINEAR_PROBES 9
#define PY_PERTURB_SHIFT 5

static guint64
py_tuple2_hash (guint64 a, guint64 b)
{
  const guint64 p1 = 11400714785074694791ULL, p2 = 14029467366897019727ULL;
  const guint64 p5 = 2870177450012600261ULL;
  guint64 acc = p5;
  guint64 lanes[2] = { a, b }; /* hash(int) is the int itself for small ints */

  for (int k = 0; k < 2; k++) {
    acc += lanes[k] * p2;
    acc = (acc << 31) | (acc >> 33);
    acc *= p1;
  }
  acc += 2 ^ (p5 ^ 3527539ULL);
  if (acc == G_MAXUINT64)
    return 1546275796;
  return acc;
}

typedef struct {
  int used;   /* 0: empty slot */
  int i, j;
  guint64 hash;
} py_slot;

static void
py_insert_clean (py_slot *table, gsize mask, const py_slot *e)
{
  gsize perturb = e->hash, i = e->hash & mask;

  for (;;) {
    if (!table[i].used) {
      table[i] = *e;
      return;
    }
    if (i + PY_LINEAR_PROBES <= mask) {
      for (gsize k = 1; k <= PY_LINEAR_PROBES; k++) {
        if (!table[i + k].used) {
          table[i + k] = *e;
          return;
        }
      }
    }
    perturb >>= PY_PERTURB_SHIFT;
    i = (i * 5 + 1 + perturb) & mask;
  }
}

/* Adds (a, b) to the set; returns FALSE only when memory runs out. */
static gboolean
py_set_add (py_slot **table, gsize *mask, gsize *fill, int a, int b)
{
  guint64 h = py_tuple2_hash ((guint64) a, (guint64) b);
  gsize perturb = h, i = h & *mask;
  py_slot *t = *table, *slot = NULL;

  for (;;) {
    gsize probes = i + PY_LINEAR_PROBES <= *mask ? PY_LINEAR_PROBES : 0;
    gsize k = i;
    for (;;) {
      if (!t[k].used) {
        slot = &t[k];
        break;
      }
      if (t[k].hash == h && t[k].i == a && t[k].j == b)
        return TRUE;
      k++;
      if (probes-- == 0)
        break;
    }
    if (slot)
      break;
    perturb >>= PY_PERTURB_SHIFT;
    i = (i * 5 + 1 + perturb) & *mask;
  }
  slot->used = 1;
  slot->i = a;
  slot->j = b;
  slot->hash = h;
  (*fill)++;
  if (*fill * 5 >= *mask * 3) {
    gsize minused = *fill * 4, size = 8; /* no deletions: used == fill */
    py_slot *nt;
    while (size <= minused)
      size <<= 1;
    nt = g_try_new0 (py_slot, size);
    if (!nt)
      return FALSE;
    for (gsize s = 0; s <= *mask; s++)
      if (t[s].used)
        py_insert_clean (nt, size - 1, &t[s]);
    g_free (t);
    *table = nt;
    *mask = size - 1;
  }
  return TRUE;
}

/* The candidates in trial order as a new [n, 2] array (NULL with *n = 0 on bad arguments). */
static int *
candidate_list (int min_num, int max_num, int *n_out)
{
  gsize mask = 7, fill = 0;
  py_slot *table;
  int *list; /* [n, 2] */
  int n = 0;

  *n_out = 0;
  if (min_num < 1 || max_num < min_num || max_num > DSOCR_MAX_TILES_LIMIT)
    return NULL;
  table = g_new0 (py_slot, mask + 1);
  for (int m = min_num; m <= max_num; m++)
    for (int i = 1; i <= m; i++)
      for (int j = 1; j <= m; j++)
        if (i * j <= max_num && i * j >= min_num &&
            !py_set_add (&table, &mask, &fill, i, j)) {
          g_free (table);
          return NULL;
        }
  /* iteration order, then a stable insertion sort by area */
  list = g_new (int, 2 * MAX (fill, 1));
  for (gsize s = 0; s <= mask; s++) {
    int k;
    if (!table[s].used)
      continue;
    for (k = n++; k > 0 && list[2 * k - 2] * list[2 * k - 1] > table[s].i * table[s].j; k--) {
      list[2 * k] = list[2 * k - 2];
      list[2 * k + 1] = list[2 * k - 1];
    }
    list[2 * k] = table[s].i;
    list[2 * k + 1] = table[s].j;
  }
  g_free (table);
  *n_out = n;
  return list;
}

int
dsocr_preprocess_candidate_grids (int min_num, int max_num, int *grids, int max_grids)
{
  int n;
  int *list = candidate_list (min_num, max_num, &n);

  if (grids && list)
    memcpy (grids, list, 2 * sizeof (int) * (gsize) MIN (MAX (max_grids, 0), n));
  g_free (list);
  return n;
}

void
dsocr_preprocess_choose_grid (int width, int height, int min_num, int max_num, int tile_size,
                              int *cols, int *rows)
{
  int n;
  int *grids = candidate_list (min_num, max_num, &n);
  double aspect = height > 0 ? (double) width / height : 0.0;
  double best_diff = INFINITY;
  double area = (double) width * height; /* exact below 2^53 */
  int bi = 1, bj = 1;

  for (int k = 0; k < n; k++) {
    int i = grids[2 * k], j = grids[2 * k + 1];
    double diff = fabs (aspect - (double) i / j);
    if (diff < best_diff) {
      best_diff = diff;
      bi = i;
      bj = j;
    } else if (diff == best_diff && area > 0.5 * tile_size * tile_size * i * j) {
      bi = i;
      bj = j;
    }
  }
  g_free (grids);
  *cols = bi;
  *rows = bj;
}

/* ---- views ---- */

/* Python's round() on a double: half to even (nearbyint in the default rounding mode). */
static int
py_round (double v)
{
  return (int) nearbyint (v);
}

/* ImageOps.pad's placement of a @w x @h image in a @size square: x, y, width, height. */
static void
pad_geometry (int w, int h, int size, int rect[4])
{
  int nw = size, nh = size;

  /* ImageOps.contain: fit inside size x size keeping the aspect ratio */
  if (w > h)
    nh = py_round ((double) h / w * size);
  else if (w < h)
    nw = py_round ((double) w / h * size);
  rect[0] = nw != size ? py_round ((size - nw) * 0.5) : 0;
  rect[1] = nh != size ? py_round ((size - nh) * 0.5) : 0;
  rect[2] = nw;
  rect[3] = nh;
}

dsocr_image *
dsocr_preprocess_pad (const dsocr_image_view *image, int size, dsocr_pillow_version pillow,
                      int content[4], GError **error)
{
  dsocr_image *out;
  int r[4];

  if (!dsocr_image_view_check (image, "pad source", error))
    return NULL;
  out = dsocr_image_new (size, size, error);
  if (!out)
    return NULL;
  pad_geometry (image->width, image->height, size, r);
  if (r[2] != size || r[3] != size)
    memset (out->data, PAD_VALUE, out->stride * (gsize) size);
  /* a side that rounds to 0 leaves only the pad colour, as ImageOps.contain's empty image */
  if (r[2] > 0 && r[3] > 0 &&
      !dsocr_resize_bicubic (image, out->data + (gsize) r[1] * out->stride + 3 * (gsize) r[0],
                             out->stride, r[2], r[3], (dsocr_resize_order) pillow, error)) {
    dsocr_image_free (out);
    return NULL;
  }
  if (content)
    memcpy (content, r, sizeof r);
  return out;
}

dsocr_image *
dsocr_preprocess_global_view (const dsocr_image_view *image, dsocr_mode mode,
                              dsocr_pillow_version pillow, GError **error)
{
  dsocr_mode_info mi;

  if (!dsocr_mode_get_info (mode, &mi)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG, "preprocess: invalid mode %d",
                 (int) mode);
    return NULL;
  }
  /* infer(): without crop mode, image_size <= 640 squashes to a square (the pad that follows
   * is then a no-op); otherwise pad to the view side. */
  if (!mi.crop_mode && mi.image_size <= 640)
    return dsocr_resize_bicubic_new (image, mi.image_size, mi.image_size,
                                     (dsocr_resize_order) pillow, error);
  return dsocr_preprocess_pad (image, mi.base_size, pillow, NULL, error);
}

dsocr_image *
dsocr_preprocess_tile_canvas (const dsocr_image_view *image, int cols, int rows,
                              dsocr_pillow_version pillow, GError **error)
{
  if (cols < 1 || rows < 1 || cols > DSOCR_MAX_TILES_LIMIT || rows > DSOCR_MAX_TILES_LIMIT) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG, "preprocess: bad tile grid %dx%d",
                 cols, rows);
    return NULL;
  }
  return dsocr_resize_bicubic_new (image, DSOCR_TILE_SIZE * cols, DSOCR_TILE_SIZE * rows,
                                   (dsocr_resize_order) pillow, error);
}

/* ---- normalisation ---- */

/* torchvision ToTensor then Normalize(0.5, 0.5): (p / 255.f - 0.5f) / 0.5f in f32. */
static void
pixel_lut (dsocr_pixel_format format, float lut[256], guint16 bits[256])
{
  for (int p = 0; p < 256; p++) {
    float v = (float) p / 255.0f;
    float x = (v - 0.5f) / 0.5f;
    guint16 b = dsk_f32_to_bf16 (x);
    bits[p] = b;
    lut[p] = format == DSOCR_PIXELS_F32 ? x : dsk_bf16_to_f32 (b);
  }
}

/* Writes the [3, h, w] planes of the @w x @h window of @src at (x0, y0) into @dst. */
static void
normalize_window (const dsocr_image_view *src, int x0, int y0, int w, int h,
                  dsocr_pixel_format format, void *dst)
{
  float lut[256];
  guint16 bits[256];
  gsize plane = (gsize) w * h;

  pixel_lut (format, lut, bits);
  for (int y = 0; y < h; y++) {
    const guint8 *row = src->data + (gsize) (y0 + y) * src->stride + 3 * (gsize) x0;
    gsize o = (gsize) y * w;
    if (format == DSOCR_PIXELS_BF16) {
      guint16 *d = dst;
      for (int x = 0; x < w; x++) {
        d[o + x] = bits[row[3 * x]];
        d[plane + o + x] = bits[row[3 * x + 1]];
        d[2 * plane + o + x] = bits[row[3 * x + 2]];
      }
    } else {
      float *d = dst;
      for (int x = 0; x < w; x++) {
        d[o + x] = lut[row[3 * x]];
        d[plane + o + x] = lut[row[3 * x + 1]];
        d[2 * plane + o + x] = lut[row[3 * x + 2]];
      }
    }
  }
}

void
dsocr_preprocess_normalize (const dsocr_image_view *image, dsocr_pixel_format format,
                            void *dst)
{
  normalize_window (image, 0, 0, image->width, image->height, format, dst);
}

gboolean
dsocr_preprocess_round_bf16 (dsocr_tensor *t, GError **error)
{
  float *d;
  int64_t n;

  if (t->dtype != DSOCR_DTYPE_F32 || t->device != DSOCR_DEVICE_CPU) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE,
                 "tensor '%s': bf16 rounding needs a CPU F32 tensor, not %s",
                 t->name ? t->name : "?", dsocr_dtype_name (t->dtype));
    return FALSE;
  }
  d = t->data;
  n = dsocr_shape_numel (t->n_dims, t->shape);
  for (int64_t i = 0; i < n; i++)
    d[i] = dsk_bf16_to_f32 (dsk_f32_to_bf16 (d[i]));
  return TRUE;
}

/* ---- the whole thing ---- */

void
dsocr_preprocessed_free (dsocr_preprocessed *pp)
{
  if (!pp)
    return;
  dsocr_tensor_free (pp->global);
  dsocr_tensor_free (pp->tiles);
  g_free (pp);
}

dsocr_preprocessed *
dsocr_preprocess (const dsocr_image_view *image, const dsocr_preprocess_params *params,
                  GError **error)
{
  dsocr_preprocess_params p;
  dsocr_preprocessed *pp;
  dsocr_mode_info mi;
  dsocr_image *view = NULL, *canvas = NULL;
  dsocr_dtype dtype;
  int content[4];

  if (params)
    p = *params;
  else
    dsocr_preprocess_params_init (&p);
  if (!dsocr_mode_get_info (p.mode, &mi)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG, "preprocess: invalid mode %d",
                 (int) p.mode);
    return NULL;
  }
  if (p.min_tiles < 2 || p.max_tiles < p.min_tiles || p.max_tiles > DSOCR_MAX_TILES_LIMIT) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG,
                 "preprocess: tiles min %d / max %d out of range (2 <= min <= max <= %d)",
                 p.min_tiles, p.max_tiles, DSOCR_MAX_TILES_LIMIT);
    return NULL;
  }
  if ((unsigned) p.pillow > DSOCR_PILLOW_12) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG, "preprocess: invalid Pillow version %d",
                 (int) p.pillow);
    return NULL;
  }
  if ((unsigned) p.pixels > DSOCR_PIXELS_BF16) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG, "preprocess: invalid pixel format %d",
                 (int) p.pixels);
    return NULL;
  }
  if (!dsocr_image_view_check (image, "preprocess input", error))
    return NULL;

  pp = g_new0 (dsocr_preprocessed, 1);
  pp->orig_width = image->width;
  pp->orig_height = image->height;
  pp->view_size = mi.base_size;
  pp->grid_cols = pp->grid_rows = 1;
  dtype = p.pixels == DSOCR_PIXELS_BF16 ? DSOCR_DTYPE_BF16 : DSOCR_DTYPE_F32;

  /* global view: [S, S, 3] RGB8, then [3, S, S] */
  view = dsocr_preprocess_global_view (image, p.mode, p.pillow, error);
  if (!view)
    goto fail;
  if (!mi.crop_mode && mi.image_size <= 640) {
    content[0] = content[1] = 0;
    content[2] = content[3] = mi.image_size;
  } else {
    pad_geometry (image->width, image->height, mi.base_size, content);
  }
  pp->content_x = content[0];
  pp->content_y = content[1];
  pp->content_width = content[2];
  pp->content_height = content[3];
  {
    int64_t shape[3] = { 3, view->height, view->width };
    dsocr_image_view v = dsocr_image_get_view (view);
    pp->global = dsocr_tensor_new (dtype, 3, shape, error);
    if (!pp->global)
      goto fail;
    pp->global->name = "global_view";
    dsocr_preprocess_normalize (&v, p.pixels, pp->global->data);
  }
  dsocr_image_free (view);
  view = NULL;

  /* local tiles: a [640 * rows, 640 * cols, 3] canvas cut into [n_tiles, 3, 640, 640] */
  if (mi.crop_mode && (image->width > DSOCR_TILE_SIZE || image->height > DSOCR_TILE_SIZE)) {
    int cols, rows;
    gsize tile_elems = 3 * (gsize) DSOCR_TILE_SIZE * DSOCR_TILE_SIZE;
    dsocr_image_view cv;

    dsocr_preprocess_choose_grid (image->width, image->height, p.min_tiles, p.max_tiles,
                                  DSOCR_TILE_SIZE, &cols, &rows);
    canvas = dsocr_preprocess_tile_canvas (image, cols, rows, p.pillow, error);
    if (!canvas)
      goto fail;
    pp->grid_cols = cols;
    pp->grid_rows = rows;
    pp->n_tiles = cols * rows;
    {
      int64_t shape[4] = { pp->n_tiles, 3, DSOCR_TILE_SIZE, DSOCR_TILE_SIZE };
      pp->tiles = dsocr_tensor_new (dtype, 4, shape, error);
    }
    if (!pp->tiles)
      goto fail;
    pp->tiles->name = "tiles";
    cv = dsocr_image_get_view (canvas);
    for (int k = 0; k < pp->n_tiles; k++) {
      guint8 *dst = (guint8 *) pp->tiles->data + k * tile_elems * dsocr_dtype_size (dtype);
      normalize_window (&cv, (k % cols) * DSOCR_TILE_SIZE, (k / cols) * DSOCR_TILE_SIZE,
                        DSOCR_TILE_SIZE, DSOCR_TILE_SIZE, p.pixels, dst);
    }
    dsocr_image_free (canvas);
    canvas = NULL;
  }
  pp->n_image_tokens = dsocr_preprocess_n_image_tokens (p.mode, pp->grid_cols, pp->grid_rows);
  return pp;

fail:
  dsocr_image_free (view);
  dsocr_image_free (canvas);
  dsocr_preprocessed_free (pp);
  return NULL;
}
