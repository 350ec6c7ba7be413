/* dsocr-preprocess.h: DeepSeek-OCR image preprocessing, byte-exact with the reference
 * (modeling_deepseekocr.py's infer(): ImageOps.pad / Image.resize with Pillow's BICUBIC,
 * dynamic_preprocess tiling, ToTensor + Normalize(0.5, 0.5)).
 *
 *   dsocr_preprocess_params p;
 *   dsocr_preprocess_params_init (&p);          // Gundam, up to 9 tiles, f32 pixels
 *   dsocr_image_view v = { frame_data, width, height, stride };   // borrowed RGB8
 *   dsocr_preprocessed *pp = dsocr_preprocess (&v, &p, &err);
 *   // pp->global: [3, 1024, 1024]; pp->tiles: [n, 3, 640, 640] or NULL;
 *   // pp->n_image_tokens placeholders go into the prompt
 *   dsocr_preprocessed_free (pp);
 *
 * Modes (base_size / image_size / crop):
 *   tiny   512 / 512 / no    global = image.resize((512, 512))      (aspect not kept)
 *   small  640 / 640 / no    global = image.resize((640, 640))
 *   base  1024 / 1024 / no   global = ImageOps.pad(image, 1024, colour 127)
 *   large 1280 / 1280 / no   global = ImageOps.pad(image, 1280)
 *   gundam 1024 / 640 / yes  global = ImageOps.pad(image, 1024) plus, when the image is wider
 *                            or taller than 640, cols x rows tiles of 640 cut row-major from
 *                            image.resize((640 cols, 640 rows)).
 */
#ifndef DSOCR_PREPROCESS_H
#define DSOCR_PREPROCESS_H

#include <glib.h>

#include <dsocr/dsocr-image.h>
#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

typedef enum {
  DSOCR_MODE_TINY = 0,
  DSOCR_MODE_SMALL,
  DSOCR_MODE_BASE,
  DSOCR_MODE_LARGE,
  DSOCR_MODE_GUNDAM,
  DSOCR_MODE_N
} dsocr_mode;

/* How the normalised pixels x = (p / 255 - 0.5) / 0.5 are stored. */
typedef enum {
  DSOCR_PIXELS_F32 = 0,  /* F32, computed in f32 exactly as torchvision does */
  DSOCR_PIXELS_F32_BF16, /* F32 holding those values rounded to bf16 (nearest even), which
                          * is what the reference hands SAM */
  DSOCR_PIXELS_BF16,     /* BF16 elements, the same values */
} dsocr_pixel_format;

/* Which Pillow's resize is reproduced. Pillow 13 runs the vertical pass first when the height
 * shrinks by more than twice as many pixels as the width (a tall receipt squashed to 640, a
 * long strip padded to 1024); older releases always run the horizontal pass first. The two
 * differ by rounding in some pixel values. */
typedef enum {
  DSOCR_PILLOW_13 = 0, /* Pillow >= 13 (the default) */
  DSOCR_PILLOW_12,     /* Pillow 9.1 .. 12.x, current when the reference was published */
} dsocr_pillow_version;

/* Side of a local tile, fixed by the reference's dynamic_preprocess. */
#define DSOCR_TILE_SIZE 640
/* max_num of dynamic_preprocess: 9 in the HF infer() and transformers, 6 in vLLM. */
#define DSOCR_MAX_TILES_HF 9
#define DSOCR_MAX_TILES_VLLM 6
/* Upper bound accepted for max_tiles. */
#define DSOCR_MAX_TILES_LIMIT 64

typedef struct {
  dsocr_mode mode;
  int min_tiles;              /* min_num: 2 (the only value the references use; >= 2) */
  int max_tiles;              /* max_num: 2 .. DSOCR_MAX_TILES_LIMIT */
  dsocr_pixel_format pixels;
  dsocr_pillow_version pillow;
} dsocr_preprocess_params;

/* Sizes of a mode. */
typedef struct {
  int base_size;       /* side of the global view */
  int image_size;      /* 640 for gundam (tile side), else = base_size */
  gboolean crop_mode;  /* tiles are cut (gundam only) */
} dsocr_mode_info;

/* The result of dsocr_preprocess(). */
typedef struct {
  dsocr_tensor *global;   /* [3, S, S], S = view_size */
  dsocr_tensor *tiles;    /* [n_tiles, 3, 640, 640], tile k at row k / cols, column k % cols;
                           * NULL when n_tiles == 0 */
  int n_tiles;
  int grid_cols;          /* images_spatial_crop = [grid_cols, grid_rows]; 1, 1 without tiles */
  int grid_rows;
  int view_size;          /* S */
  int orig_width;         /* the image as given; 0-999 boxes map to it: x = int(v / 999 * W) */
  int orig_height;
  /* Where the image lies in the global view: the pasted rectangle for pad modes (it may be
   * empty for extreme aspect ratios), the whole view for tiny/small. */
  int content_x, content_y, content_width, content_height;
  int n_image_tokens;     /* image placeholder tokens this image takes in the prompt */
} dsocr_preprocessed;

/* Fills @params with the HF reference defaults: gundam, min 2, max 9 tiles, F32 pixels,
 * Pillow 13 resizing. */
void dsocr_preprocess_params_init (dsocr_preprocess_params *params);

/* "tiny", "small", "base", "large", "gundam"; NULL for an invalid value. */
const char *dsocr_mode_name (dsocr_mode mode);
/* Parses a mode name (case-insensitive); FALSE for an unknown one. */
gboolean dsocr_mode_from_name (const char *name, dsocr_mode *mode);
/* Fills @info for @mode; FALSE for an invalid value. */
gboolean dsocr_mode_get_info (dsocr_mode mode, dsocr_mode_info *info);

/* Image placeholder tokens for an image in @mode with a grid of @grid_cols x @grid_rows tiles
 * (1 x 1: none): n(n + 1) + 1 with n = base_size / 64, plus (10 rows)(10 cols + 1) for the
 * tiles. -1 for an invalid mode. */
int dsocr_preprocess_n_image_tokens (dsocr_mode mode, int grid_cols, int grid_rows);

/* Candidate grids of dynamic_preprocess in the order it tries them: the (i, j) with
 * min_num <= i * j <= max_num (i columns, j rows), in CPython's set iteration order, stably
 * sorted by i * j. Writes up to @max_grids pairs into @grids ([n, 2], nullable) and returns
 * how many candidates there are (0 for bad arguments: min_num < 1, max_num < min_num, or
 * max_num > DSOCR_MAX_TILES_LIMIT). */
int dsocr_preprocess_candidate_grids (int min_num, int max_num, int *grids, int max_grids);

/* find_closest_aspect_ratio of the reference for a @width x @height image: the candidate
 * nearest in aspect ratio, an exact tie going to the later candidate when
 * width * height > 0.5 * tile_size^2 * cols * rows. Sets @cols, @rows (1, 1 when there is no
 * candidate). */
void dsocr_preprocess_choose_grid (int width, int height, int min_num, int max_num,
                                   int tile_size, int *cols, int *rows);

/* Returns (transfer full) ImageOps.pad(image, (size, size), BICUBIC, colour (127, 127, 127)):
 * resized to fit with Python-rounded sizes (small images are enlarged), pasted centred at
 * round((size - side) * 0.5). @content (out, nullable) receives the pasted x, y, width,
 * height. NULL with @error on a bad view or size. */
dsocr_image *dsocr_preprocess_pad (const dsocr_image_view *image, int size,
                                   dsocr_pillow_version pillow, int content[4], GError **error);

/* Returns (transfer full) the global view of @mode before normalisation (S x S RGB8). */
dsocr_image *dsocr_preprocess_global_view (const dsocr_image_view *image, dsocr_mode mode,
                                           dsocr_pillow_version pillow, GError **error);

/* Returns (transfer full) @image resized (BICUBIC, aspect not kept) to 640 cols x 640 rows,
 * the picture dynamic_preprocess cuts its tiles from. */
dsocr_image *dsocr_preprocess_tile_canvas (const dsocr_image_view *image, int cols, int rows,
                                           dsocr_pillow_version pillow, GError **error);

/* Writes @image normalised into @dst ([3, height, width] CHW, elements of @format: float for
 * F32 / F32_BF16, guint16 bf16 bits for BF16). */
void dsocr_preprocess_normalize (const dsocr_image_view *image, dsocr_pixel_format format,
                                 void *dst);

/* Rounds every element of the CPU F32 tensor @t to bf16 precision in place (nearest even),
 * the cast the reference applies to pixel values before SAM. Fails (DSOCR_ERROR_SHAPE) for
 * other dtypes. */
gboolean dsocr_preprocess_round_bf16 (dsocr_tensor *t, GError **error);

/* Runs the whole preprocessing of the reference on the borrowed @image (read only during the
 * call). Returns (transfer full) the result, free with dsocr_preprocessed_free(), or NULL with
 * DSOCR_ERROR_INVALID / UNSUPPORTED (bad view), DSOCR_ERROR_CONFIG (bad params) or
 * DSOCR_ERROR_NOMEM. */
dsocr_preprocessed *dsocr_preprocess (const dsocr_image_view *image,
                                      const dsocr_preprocess_params *params, GError **error);

/* Frees @pp and its tensors. NULL is a no-op. */
void dsocr_preprocessed_free (dsocr_preprocessed *pp);

G_END_DECLS

#endif /* DSOCR_PREPROCESS_H */
