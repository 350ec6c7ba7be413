/* vision.c: the DeepSeek-OCR vision tower: loading, the projector, view packing and the
 * public entry points. The towers themselves are in vision-sam.c and vision-clip.c. */
#include "vision.h"

#include <string.h>

#include "dsocr/dsocr-error.h"

gboolean
vis_check (dsk_status st, const char *what, GError **error)
{
  if (st == DSK_OK)
    return TRUE;
  g_set_error (error, DSOCR_ERROR, st == DSK_ERR_UNSUPPORTED ? DSOCR_ERROR_UNSUPPORTED
                                                             : DSOCR_ERROR_INVALID,
               "vision: %s failed (kernel status %d)", what, (int) st);
  return FALSE;
}

float *
vis_alloc (gsize n, const char *what, GError **error)
{
  float *p = n <= G_MAXSIZE / sizeof (float) ? g_try_malloc (n * sizeof (float)) : NULL;
  if (!p)
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "vision: cannot allocate %" G_GSIZE_FORMAT " floats for %s", n, what);
  return p;
}

int
vis_grid_side (const dsocr_vision *v, int size)
{
  if (size <= 0 || size % v->patch != 0)
    return 0;
  int g = size / v->patch;
  for (int i = 0; i < v->n_down; i++)
    g = (g + 1) / 2;   /* 3x3, stride 2, pad 1: (g + 2 - 3) / 2 + 1 */
  return g;
}

/* ---- loading ---- */

typedef struct {
  dsocr_vision *v;
  dsocr_checkpoint *ckpt;
  GError **error;
} loader;

/* Looks up @name with the given shape (n_dims <= 4, -1 terminated for brevity) and returns it
 * as a kernel weight, copied when the file leaves it unaligned. */
static gboolean
get_weight (loader *ld, vis_weight *out, const char *name, int n_dims, int64_t d0, int64_t d1,
            int64_t d2, int64_t d3)
{
  const int64_t shape[4] = { d0, d1, d2, d3 };
  const dsocr_tensor *t = dsocr_checkpoint_get_checked (ld->ckpt, name, DSOCR_DTYPE_N, n_dims,
                                                        shape, ld->error);
  if (!t)
    return FALSE;
  if (t->dtype != DSOCR_DTYPE_F32 && t->dtype != DSOCR_DTYPE_BF16 &&
      t->dtype != DSOCR_DTYPE_F16) {
    g_set_error (ld->error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': dtype %s, the vision tower reads F32, BF16 or F16",
                 dsocr_checkpoint_get_path (ld->ckpt), name, dsocr_dtype_name (t->dtype));
    return FALSE;
  }
  out->dtype = (dsk_dtype) t->dtype;
  out->data = t->data;
  if ((guintptr) t->data % dsocr_dtype_size (t->dtype) != 0) {
    void *copy = g_memdup2 (t->data, t->nbytes);
    g_ptr_array_add (ld->v->owned, copy);
    out->data = copy;
  }
  return TRUE;
}

/* The same tensor widened into an owned f32 table. */
static float *
get_table (loader *ld, const char *name, int n_dims, int64_t d0, int64_t d1, int64_t d2,
           int64_t d3)
{
  vis_weight w;
  if (!get_weight (ld, &w, name, n_dims, d0, d1, d2, d3))
    return NULL;
  int64_t n = d0;
  if (n_dims > 1)
    n *= d1;
  if (n_dims > 2)
    n *= d2;
  if (n_dims > 3)
    n *= d3;
  float *f = vis_alloc ((gsize) n, name, ld->error);
  if (!f)
    return NULL;
  g_ptr_array_add (ld->v->owned, f);
  dsk_convert_to_f32_cpu (f, w.data, w.dtype, (size_t) n);
  return f;
}

/* A norm's weight or bias as an f32 vector: the kernels take one dtype for both. */
static gboolean
get_norm (loader *ld, vis_weight *out, const char *name, int64_t n)
{
  float *f = get_table (ld, name, 1, n, 1, 1, 1);
  out->data = f;
  out->dtype = DSK_F32;
  return f != NULL;
}

#define W1(dst, name, a) get_weight (ld, dst, name, 1, a, 1, 1, 1)
#define N1(dst, name, a) get_norm (ld, dst, name, a)
#define W2(dst, name, a, b) get_weight (ld, dst, name, 2, a, b, 1, 1)
#define W4(dst, name, a, b, c, d) get_weight (ld, dst, name, 4, a, b, c, d)

static gboolean
load_sam (loader *ld, const dsocr_vision_config *vc)
{
  dsocr_vision *v = ld->v;
  const dsocr_sam_config *sc = &vc->sam;
  const int D = sc->width, hd = sc->width / sc->heads;
  char n[160];

  v->sam_width = D;
  v->sam_heads = sc->heads;
  v->sam_mlp = sc->mlp_dim;
  v->patch = sc->patch_size;
  v->window = sc->window_size;
  v->out_chans = sc->out_chans;
  v->pos_grid = vc->image_size / sc->patch_size;
  v->n_blocks = sc->layers;
  v->n_down = sc->n_downsample_channels;
  memcpy (v->down_ch, sc->downsample_channels, sizeof v->down_ch);
  v->sam_out = v->n_down > 0 ? v->down_ch[v->n_down - 1] : v->out_chans;

  if (!W4 (&v->patch_w, "model.sam_model.patch_embed.proj.weight", D, 3, v->patch, v->patch) ||
      !W1 (&v->patch_b, "model.sam_model.patch_embed.proj.bias", D))
    return FALSE;
  v->sam_pos = get_table (ld, "model.sam_model.pos_embed", 4, 1, v->pos_grid, v->pos_grid, D);
  if (!v->sam_pos)
    return FALSE;

  v->blocks = g_new0 (vis_sam_block, v->n_blocks);
  for (int b = 0; b < v->n_blocks; b++) {
    vis_sam_block *blk = &v->blocks[b];
    gboolean global = FALSE;
    for (int i = 0; i < sc->n_global_attn_indexes; i++)
      global |= sc->global_attn_indexes[i] == b;
    blk->window = global ? 0 : v->window;
    blk->rel_len = 2 * (global ? v->pos_grid : v->window) - 1;
#define BN(suffix) (g_snprintf (n, sizeof n, "model.sam_model.blocks.%d.%s", b, suffix), n)
    if (!N1 (&blk->norm1_w, BN ("norm1.weight"), D) || !N1 (&blk->norm1_b, BN ("norm1.bias"), D) ||
        !N1 (&blk->norm2_w, BN ("norm2.weight"), D) || !N1 (&blk->norm2_b, BN ("norm2.bias"), D) ||
        !W2 (&blk->qkv_w, BN ("attn.qkv.weight"), 3 * D, D) ||
        !W1 (&blk->qkv_b, BN ("attn.qkv.bias"), 3 * D) ||
        !W2 (&blk->proj_w, BN ("attn.proj.weight"), D, D) ||
        !W1 (&blk->proj_b, BN ("attn.proj.bias"), D) ||
        !W2 (&blk->lin1_w, BN ("mlp.lin1.weight"), v->sam_mlp, D) ||
        !W1 (&blk->lin1_b, BN ("mlp.lin1.bias"), v->sam_mlp) ||
        !W2 (&blk->lin2_w, BN ("mlp.lin2.weight"), D, v->sam_mlp) ||
        !W1 (&blk->lin2_b, BN ("mlp.lin2.bias"), D))
      return FALSE;
    if (!(blk->rel_h = get_table (ld, BN ("attn.rel_pos_h"), 2, blk->rel_len, hd, 1, 1)) ||
        !(blk->rel_w = get_table (ld, BN ("attn.rel_pos_w"), 2, blk->rel_len, hd, 1, 1)))
      return FALSE;
#undef BN
  }

  const int oc = v->out_chans;
  if (!W4 (&v->neck_conv1, "model.sam_model.neck.0.weight", oc, D, 1, 1) ||
      !N1 (&v->neck_ln1_w, "model.sam_model.neck.1.weight", oc) ||
      !N1 (&v->neck_ln1_b, "model.sam_model.neck.1.bias", oc) ||
      !W4 (&v->neck_conv2, "model.sam_model.neck.2.weight", oc, oc, 3, 3) ||
      !N1 (&v->neck_ln2_w, "model.sam_model.neck.3.weight", oc) ||
      !N1 (&v->neck_ln2_b, "model.sam_model.neck.3.bias", oc))
    return FALSE;
  int c_prev = oc;
  for (int i = 0; i < v->n_down; i++) {
    g_snprintf (n, sizeof n, "model.sam_model.net_%d.weight", i + 2);
    if (!W4 (&v->down[i], n, v->down_ch[i], c_prev, 3, 3))
      return FALSE;
    c_prev = v->down_ch[i];
  }
  return TRUE;
}

static gboolean
load_clip (loader *ld, const dsocr_vision_config *vc)
{
  dsocr_vision *v = ld->v;
  const dsocr_clip_config *cc = &vc->clip;
  const int W = cc->width;
  char n[160];

  v->clip_width = W;
  v->clip_heads = cc->heads;
  v->clip_ffn = cc->ffn_dim;
  v->n_layers = cc->layers;
  v->clip_grid = cc->image_size / cc->patch_size;
  const int n_pos = v->clip_grid * v->clip_grid + 1;

  if (!(v->cls = get_table (ld, "model.vision_model.embeddings.class_embedding", 1, W, 1, 1,
                            1)) ||
      !(v->clip_pos = get_table (ld, "model.vision_model.embeddings.position_embedding.weight",
                                 2, n_pos, W, 1, 1)))
    return FALSE;
  if (!N1 (&v->pre_w, "model.vision_model.pre_layrnorm.weight", W) ||
      !N1 (&v->pre_b, "model.vision_model.pre_layrnorm.bias", W))
    return FALSE;

  v->layers = g_new0 (vis_clip_layer, v->n_layers);
  for (int l = 0; l < v->n_layers; l++) {
    vis_clip_layer *ly = &v->layers[l];
#define LN(suffix) \
  (g_snprintf (n, sizeof n, "model.vision_model.transformer.layers.%d.%s", l, suffix), n)
    if (!N1 (&ly->ln1_w, LN ("layer_norm1.weight"), W) ||
        !N1 (&ly->ln1_b, LN ("layer_norm1.bias"), W) ||
        !N1 (&ly->ln2_w, LN ("layer_norm2.weight"), W) ||
        !N1 (&ly->ln2_b, LN ("layer_norm2.bias"), W) ||
        !W2 (&ly->qkv_w, LN ("self_attn.qkv_proj.weight"), 3 * W, W) ||
        !W1 (&ly->qkv_b, LN ("self_attn.qkv_proj.bias"), 3 * W) ||
        !W2 (&ly->out_w, LN ("self_attn.out_proj.weight"), W, W) ||
        !W1 (&ly->out_b, LN ("self_attn.out_proj.bias"), W) ||
        !W2 (&ly->fc1_w, LN ("mlp.fc1.weight"), v->clip_ffn, W) ||
        !W1 (&ly->fc1_b, LN ("mlp.fc1.bias"), v->clip_ffn) ||
        !W2 (&ly->fc2_w, LN ("mlp.fc2.weight"), W, v->clip_ffn) ||
        !W1 (&ly->fc2_b, LN ("mlp.fc2.bias"), W))
      return FALSE;
#undef LN
  }
  return TRUE;
}

static gboolean
load_projector (loader *ld, const dsocr_vision_config *vc)
{
  dsocr_vision *v = ld->v;
  const int E = vc->projector_n_embed;

  v->n_embed = E;
  if (!W2 (&v->proj_w, "model.projector.layers.weight", E, v->clip_width + v->sam_out) ||
      !W1 (&v->proj_b, "model.projector.layers.bias", E))
    return FALSE;
  if (!(v->newline = get_table (ld, "model.image_newline", 1, E, 1, 1, 1)) ||
      !(v->separator = get_table (ld, "model.view_seperator", 1, E, 1, 1, 1)))
    return FALSE;
  return TRUE;
}

static void
vision_free (dsocr_vision *v)
{
  g_free (v->blocks);
  g_free (v->layers);
  if (v->owned)
    g_ptr_array_unref (v->owned);
  dsocr_checkpoint_unref (v->ckpt);
  g_free (v);
}

dsocr_vision *
dsocr_vision_new (dsocr_checkpoint *ckpt, const dsocr_config *cfg, GError **error)
{
  g_return_val_if_fail (ckpt != NULL && cfg != NULL, NULL);

  if (cfg->kind != DSOCR_MODEL_DEEPSEEK_OCR) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: a %s config has no vision tower", cfg->path ? cfg->path : "config",
                 dsocr_model_kind_name (cfg->kind));
    return NULL;
  }
  const dsocr_vision_config *vc = &cfg->vision;
  const int n_down = vc->sam.n_downsample_channels;
  const gboolean positive = vc->sam.width > 0 && vc->sam.heads > 0 && vc->sam.layers >= 0 &&
                            vc->sam.mlp_dim > 0 && vc->sam.out_chans > 0 &&
                            vc->clip.width > 0 && vc->clip.heads > 0 && vc->clip.layers >= 0 &&
                            vc->clip.ffn_dim > 0 && vc->clip.patch_size > 0 &&
                            vc->projector_n_embed > 0 && n_down >= 0 &&
                            n_down <= DSOCR_CONFIG_MAX_DOWNSAMPLE;
  const int sam_out = !positive ? 0 : n_down ? vc->sam.downsample_channels[n_down - 1]
                                             : vc->sam.out_chans;
  if (!positive || vc->sam.patch_size < 1 || vc->image_size % vc->sam.patch_size != 0 ||
      vc->sam.width % vc->sam.heads != 0 || vc->clip.width % vc->clip.heads != 0 ||
      vc->clip.image_size % vc->clip.patch_size != 0 || vc->sam.window_size < 1 ||
      vc->projector_input_dim != vc->clip.width + sam_out) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG,
                 "%s: vision_config sizes do not fit together", cfg->path ? cfg->path : "config");
    return NULL;
  }

  dsocr_vision *v = g_new0 (dsocr_vision, 1);
  v->ref_count = 1;
  v->ckpt = dsocr_checkpoint_ref (ckpt);
  v->owned = g_ptr_array_new_with_free_func (g_free);
  loader ld = { v, ckpt, error };
  if (!load_sam (&ld, vc) || !load_clip (&ld, vc) || !load_projector (&ld, vc)) {
    vision_free (v);
    return NULL;
  }
  if (v->sam_out != v->clip_width) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG,
                 "%s: SAM ends with %d channels but CLIP's width is %d",
                 cfg->path ? cfg->path : "config", v->sam_out, v->clip_width);
    vision_free (v);
    return NULL;
  }
  return v;
}

dsocr_vision *
dsocr_vision_ref (dsocr_vision *vision)
{
  g_return_val_if_fail (vision != NULL, NULL);
  g_atomic_int_inc (&vision->ref_count);
  return vision;
}

void
dsocr_vision_unref (dsocr_vision *vision)
{
  if (vision && g_atomic_int_dec_and_test (&vision->ref_count))
    vision_free (vision);
}

int
dsocr_vision_get_n_embed (const dsocr_vision *vision)
{
  return vision ? vision->n_embed : 0;
}

int
dsocr_vision_grid_side (const dsocr_vision *vision, int size)
{
  return vision ? vis_grid_side (vision, size) : 0;
}

/* ---- projector ---- */

gboolean
vis_project (const dsocr_vision *v, const float *clip, const float *sam, int n_views, int n,
             float *out, GError **error)
{
  const size_t cw = (size_t) v->clip_width, sw = (size_t) v->sam_out, in = cw + sw;
  const size_t rows = (size_t) n_views * (size_t) n;
  float *cat = vis_alloc (rows * in, "the projector input", error);   // [B*n, cw + sw]
  if (!cat)
    return FALSE;
  for (size_t r = 0; r < rows; r++) {
    const size_t view = r / (size_t) n, i = r % (size_t) n;
    memcpy (cat + r * in, clip + (view * ((size_t) n + 1) + i + 1) * cw, cw * sizeof (float));
    memcpy (cat + r * in + cw, sam + r * sw, sw * sizeof (float));
  }
  gboolean ok = vis_check (dsk_matmul_f32_cpu (out, cat, v->proj_w.data, v->proj_w.dtype,
                                               v->proj_b.data, v->proj_b.dtype, rows, in,
                                               (size_t) v->n_embed, NULL),
                           "projector", error);
  g_free (cat);
  return ok;
}

/* ---- views ---- */

gboolean
dsocr_vision_encode_views (const dsocr_vision *vision, const float *pixels, int n_views,
                           int size, float *out, GError **error)
{
  g_return_val_if_fail (vision != NULL && pixels != NULL && out != NULL, FALSE);
  const dsocr_vision *v = vision;
  const int g = vis_grid_side (v, size);
  if (g == 0) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "vision: a %d x %d view is not a positive multiple of the %d-pixel patch",
                 size, size, v->patch);
    return FALSE;
  }
  if (n_views <= 0 || n_views > DSOCR_VISION_MAX_VIEWS) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "vision: %d views in one batch (1 to %d)", n_views, DSOCR_VISION_MAX_VIEWS);
    return FALSE;
  }
  const gsize B = (gsize) n_views;
  const gsize np = B * 3 * (gsize) size * (gsize) size, nt = (gsize) g * (gsize) g;
  float *px = vis_alloc (np, "the pixels", error);                         // [B, 3, S, S]
  float *sam = px ? vis_alloc (B * nt * (gsize) v->sam_out, "the SAM output", error)
                  : NULL;                                                  // [B, n*n, sam_out]
  float *clip = sam ? vis_alloc (B * (nt + 1) * (gsize) v->clip_width, "the CLIP output",
                                 error)
                    : NULL;                                                // [B, n*n + 1, W]
  gboolean ok = FALSE;
  if (clip) {
    /* the reference hands SAM bf16 pixels */
    for (gsize i = 0; i < np; i++)
      px[i] = dsk_bf16_to_f32 (dsk_f32_to_bf16 (pixels[i]));
    ok = vis_sam_forward (v, px, n_views, size, sam, error) &&
         vis_clip_forward (v, sam, n_views, g, clip, error) &&
         vis_project (v, clip, sam, n_views, (int) nt, out, error);
  }
  g_free (px);
  g_free (sam);
  g_free (clip);
  return ok;
}

gboolean
dsocr_vision_encode_view (const dsocr_vision *vision, const float *pixels, int size,
                          float *out, GError **error)
{
  return dsocr_vision_encode_views (vision, pixels, 1, size, out, error);
}

/* ---- packing ---- */

int
dsocr_vision_pack_n_tokens (int n, int m, int cols, int rows)
{
  if (n < 0 || m < 0 || cols < 0 || rows < 0)
    return -1;
  gint64 t = (gint64) n * (n + 1) + 1;
  if ((gint64) cols * rows > 0)
    t += (gint64) rows * m * ((gint64) cols * m + 1);
  return t > G_MAXINT ? -1 : (int) t;
}

gboolean
dsocr_vision_pack (const dsocr_vision *vision, const float *global, int n, const float *tiles,
                   int m, int cols, int rows, float *out, GError **error)
{
  g_return_val_if_fail (vision != NULL && global != NULL && out != NULL, FALSE);
  const size_t E = (size_t) vision->n_embed, row_bytes = E * sizeof (float);
  const gboolean have_tiles = cols > 0 && rows > 0;

  if (n <= 0 || dsocr_vision_pack_n_tokens (n, m, cols, rows) < 0 ||
      (have_tiles && (m <= 0 || !tiles)) || (!have_tiles && (cols != 0 || rows != 0))) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "vision: cannot pack a %d x %d global grid with %d x %d tiles of %d x %d", n,
                 n, cols, rows, m, m);
    return FALSE;
  }
  float *o = out;
  if (have_tiles) {
    /* tile (ty, tx) of the cols x rows grid covers rows ty*m.. and columns tx*m.. of one big
     * (rows*m) x (cols*m) grid; each of its rows ends with image_newline */
    for (int y = 0; y < rows * m; y++) {
      const int ty = y / m, iy = y % m;
      for (int tx = 0; tx < cols; tx++) {
        const float *src = tiles + ((size_t) (ty * cols + tx) * (size_t) m * (size_t) m +
                                    (size_t) iy * (size_t) m) * E;
        memcpy (o, src, (size_t) m * row_bytes);
        o += (size_t) m * E;
      }
      memcpy (o, vision->newline, row_bytes);
      o += E;
    }
  }
  for (int y = 0; y < n; y++) {
    memcpy (o, global + (size_t) y * (size_t) n * E, (size_t) n * row_bytes);
    o += (size_t) n * E;
    memcpy (o, vision->newline, row_bytes);
    o += E;
  }
  memcpy (o, vision->separator, row_bytes);
  return TRUE;
}

/* ---- the whole image ---- */

/* One view to encode: block @index of @t's views, @size pixels square, its projector rows
 * going to @dst [n * n, n_embed]. */
typedef struct {
  const dsocr_tensor *t;
  gsize index;
  int size;
  float *dst;
} view_job;

static int
job_by_size (gconstpointer a, gconstpointer b)
{
  const view_job *x = a, *y = b;
  return (x->size > y->size) - (x->size < y->size);
}

/* Copies view @j's pixels into @dst as f32. */
static gboolean
gather_pixels (const view_job *j, float *dst, GError **error)
{
  const gsize per = 3 * (gsize) j->size * (gsize) j->size;
  if (j->t->dtype == DSOCR_DTYPE_F32) {
    memcpy (dst, (const float *) j->t->data + j->index * per, per * sizeof (float));
    return TRUE;
  }
  if (j->t->dtype != DSOCR_DTYPE_BF16) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "vision: pixels of dtype %s, expected F32 or BF16",
                 dsocr_dtype_name (j->t->dtype));
    return FALSE;
  }
  dsk_convert_to_f32_cpu (dst, (const uint16_t *) j->t->data + j->index * per, DSK_BF16, per);
  return TRUE;
}

/* Encodes @n jobs, equal sizes together in batches of up to DSOCR_VISION_BATCH views. */
static gboolean
run_jobs (const dsocr_vision *v, view_job *jobs, int n, GError **error)
{
  const gsize E = (gsize) v->n_embed;
  qsort (jobs, (size_t) n, sizeof *jobs, job_by_size);
  float *px = NULL, *out = NULL;
  gboolean ok = TRUE;
  for (int i = 0; ok && i < n;) {
    int nb = 1;
    while (i + nb < n && nb < DSOCR_VISION_BATCH && jobs[i + nb].size == jobs[i].size)
      nb++;
    const int S = jobs[i].size, g = vis_grid_side (v, S);
    const gsize per = 3 * (gsize) S * (gsize) S, rows = (gsize) g * (gsize) g * E;
    g_free (px);
    g_free (out);
    out = NULL;
    ok = (px = vis_alloc (per * (gsize) nb, "the pixels", error)) != NULL &&   // [nb, 3, S, S]
         (out = vis_alloc (rows * (gsize) nb, "the views", error)) != NULL;    // [nb, g*g, E]
    for (int k = 0; ok && k < nb; k++)
      ok = gather_pixels (&jobs[i + k], px + (gsize) k * per, error);
    ok = ok && dsocr_vision_encode_views (v, px, nb, S, out, error);
    for (int k = 0; ok && k < nb; k++)
      memcpy (jobs[i + k].dst, out + (gsize) k * rows, rows * sizeof (float));
    i += nb;
  }
  g_free (px);
  g_free (out);
  return ok;
}

static gboolean
check_views (const dsocr_preprocessed *pp, GError **error)
{
  const dsocr_tensor *g = pp->global, *t = pp->tiles;
  const gboolean g_ok = g && g->n_dims == 3 && g->shape[0] == 3 && g->shape[1] == pp->view_size &&
                        g->shape[2] == pp->view_size;
  const gboolean t_ok = pp->n_tiles == 0 ||
                        (t && t->n_dims == 4 && t->shape[0] == pp->n_tiles && t->shape[1] == 3 &&
                         t->shape[2] == DSOCR_TILE_SIZE && t->shape[3] == DSOCR_TILE_SIZE &&
                         t->dtype == g->dtype &&
                         pp->n_tiles == pp->grid_cols * pp->grid_rows);
  if (g_ok && t_ok)
    return TRUE;
  g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
               "vision: preprocessed image has inconsistent views (global %s, %d tiles in a "
               "%d x %d grid)", g ? "present" : "missing", pp->n_tiles, pp->grid_cols,
               pp->grid_rows);
  return FALSE;
}

/* Per image of a batch: its grids and the encoded views before packing. */
typedef struct {
  int n, m, cols, rows, n_tokens;
  float *glob;   // [n*n, E]
  float *tiles;  // [n_tiles, m*m, E] or NULL
} image_work;

gboolean
dsocr_vision_encode_batch (const dsocr_vision *vision, const dsocr_preprocessed *const *pps,
                           int n_images, dsocr_tensor **out, GError **error)
{
  g_return_val_if_fail (vision != NULL && (pps != NULL || n_images == 0) && out != NULL, FALSE);
  const gsize E = (gsize) vision->n_embed;
  image_work *w = g_new0 (image_work, MAX (n_images, 1));
  int n_jobs = 0;
  gboolean ok = TRUE;

  for (int i = 0; i < n_images; i++)
    out[i] = NULL;
  for (int i = 0; ok && i < n_images; i++) {
    const dsocr_preprocessed *pp = pps[i];
    image_work *iw = &w[i];
    if (!(ok = pp != NULL && check_views (pp, error))) {
      if (!pp)
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "vision: image %d is missing", i);
      break;
    }
    const int S = pp->view_size;
    iw->n = vis_grid_side (vision, S);
    iw->m = pp->n_tiles ? vis_grid_side (vision, DSOCR_TILE_SIZE) : 0;
    iw->cols = pp->n_tiles ? pp->grid_cols : 0;
    iw->rows = pp->n_tiles ? pp->grid_rows : 0;
    iw->n_tokens = dsocr_vision_pack_n_tokens (iw->n, iw->m, iw->cols, iw->rows);
    if (iw->n == 0 || iw->n_tokens != pp->n_image_tokens) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "vision: a %d-pixel view with %d x %d tiles gives %d embeddings, the "
                   "prompt has %d placeholders", S, iw->cols, iw->rows, iw->n_tokens,
                   pp->n_image_tokens);
      ok = FALSE;
      break;
    }
    ok = (iw->glob = vis_alloc ((gsize) iw->n * iw->n * E, "the global view", error)) &&
         (iw->m == 0 ||
          (iw->tiles = vis_alloc ((gsize) pp->n_tiles * iw->m * iw->m * E, "the tiles",
                                  error)));
    n_jobs += 1 + pp->n_tiles;
  }

  view_job *jobs = ok ? g_new (view_job, MAX (n_jobs, 1)) : NULL;
  if (ok) {
    int j = 0;
    for (int i = 0; i < n_images; i++) {
      const dsocr_preprocessed *pp = pps[i];
      for (int k = 0; k < pp->n_tiles; k++)
        jobs[j++] = (view_job) { pp->tiles, (gsize) k, DSOCR_TILE_SIZE,
                                 w[i].tiles + (gsize) k * w[i].m * w[i].m * E };
      jobs[j++] = (view_job) { pp->global, 0, pp->view_size, w[i].glob };
    }
    ok = run_jobs (vision, jobs, n_jobs, error);
  }
  for (int i = 0; ok && i < n_images; i++) {
    const int64_t shape[2] = { w[i].n_tokens, (int64_t) E };
    ok = (out[i] = dsocr_tensor_new (DSOCR_DTYPE_F32, 2, shape, error)) != NULL &&
         dsocr_vision_pack (vision, w[i].glob, w[i].n, w[i].tiles, w[i].m, w[i].cols,
                            w[i].rows, out[i]->data, error);
  }
  if (!ok)
    for (int i = 0; i < n_images; i++)
      g_clear_pointer (&out[i], dsocr_tensor_free);
  for (int i = 0; i < n_images; i++) {
    g_free (w[i].glob);
    g_free (w[i].tiles);
  }
  g_free (w);
  g_free (jobs);
  return ok;
}

dsocr_tensor *
dsocr_vision_encode (const dsocr_vision *vision, const dsocr_preprocessed *pp, GError **error)
{
  g_return_val_if_fail (vision != NULL && pp != NULL, NULL);
  dsocr_tensor *out = NULL;
  return dsocr_vision_encode_batch (vision, &pp, 1, &out, error) ? out : NULL;
}
