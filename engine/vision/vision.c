/* vision.c: the DeepSeek-OCR vision tower: loading, the weights per device, vision sessions,
 * the projector, view packing and the public entry points. The towers themselves are in sam.c
 * and clip.c. */
#include "vision.h"

#include <string.h>

#include "backend-private.h"
#include "dsocr/dsocr-error.h"
#include "views.h"
#include "weight-sets.h"

int
vis_grid_side (const dsocr_vision *v, int size)
{
  return dsocr_view_grid_side (size, v->patch, v->n_down);
}

/* ---- loading ---- */

typedef struct {
  dsocr_vision *v;
  dsocr_checkpoint *ckpt;
  GError **error;
} loader;

/* Looks up @name with the given shape (the first @n_dims of d0..d3) as a host tensor. */
static gboolean
get_weight (loader *ld, dsk_tensor *out, const char *name, int n_dims, int64_t d0, int64_t d1,
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
  {
    size_t ne[4];
    for (int i = 0; i < n_dims; i++)
      ne[i] = (size_t) shape[i];
    *out = dsk_tensor_make (t->data, (dsk_dtype) t->dtype, n_dims, ne,
                            (dsk_device) { DSK_DEVICE_HOST, 0 });
  }
  return TRUE;
}

/* The same tensor widened into an owned f32 table, as a host tensor of shape [d0, ...]. */
static gboolean
get_table (loader *ld, dsk_tensor *out, const char *name, int n_dims, int64_t d0, int64_t d1,
           int64_t d2, int64_t d3)
{
  dsk_tensor w;
  if (!get_weight (ld, &w, name, n_dims, d0, d1, d2, d3))
    return FALSE;
  const size_t n = dsk_tensor_n_elements (&w);
  float *f = g_try_new (float, n);
  if (!f) {
    g_set_error (ld->error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "vision: cannot allocate %s", name);
    return FALSE;
  }
  g_ptr_array_add (ld->v->owned, f);
  dsk_convert_to_f32 (f, w.data, w.dtype, n);
  *out = w;
  out->data = f;
  out->dtype = DSK_F32;
  return TRUE;
}

/* A norm's weight or bias as an f32 vector: the kernels take one dtype for both. */
static gboolean
get_norm (loader *ld, dsk_tensor *out, const char *name, int64_t n)
{
  return get_table (ld, out, name, 1, n, 1, 1, 1);
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

  vis_weights *w = &v->host;
  if (!W4 (&w->patch_w, "model.sam_model.patch_embed.proj.weight", D, 3, v->patch, v->patch) ||
      !W1 (&w->patch_b, "model.sam_model.patch_embed.proj.bias", D))
    return FALSE;
  if (!get_table (ld, &w->sam_pos, "model.sam_model.pos_embed", 4, 1, v->pos_grid, v->pos_grid,
                  D))
    return FALSE;
  w->sam_pos = dsk_select (&w->sam_pos, 0, 0);   /* [G, G, D] */

  w->blocks = g_new0 (vis_sam_block, MAX (v->n_blocks, 1));
  for (int b = 0; b < v->n_blocks; b++) {
    vis_sam_block *blk = &w->blocks[b];
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
    if (!get_table (ld, &blk->rel_h, BN ("attn.rel_pos_h"), 2, blk->rel_len, hd, 1, 1) ||
        !get_table (ld, &blk->rel_w, BN ("attn.rel_pos_w"), 2, blk->rel_len, hd, 1, 1))
      return FALSE;
#undef BN
  }

  const int oc = v->out_chans;
  if (!W4 (&w->neck_conv1, "model.sam_model.neck.0.weight", oc, D, 1, 1) ||
      !N1 (&w->neck_ln1_w, "model.sam_model.neck.1.weight", oc) ||
      !N1 (&w->neck_ln1_b, "model.sam_model.neck.1.bias", oc) ||
      !W4 (&w->neck_conv2, "model.sam_model.neck.2.weight", oc, oc, 3, 3) ||
      !N1 (&w->neck_ln2_w, "model.sam_model.neck.3.weight", oc) ||
      !N1 (&w->neck_ln2_b, "model.sam_model.neck.3.bias", oc))
    return FALSE;
  int c_prev = oc;
  for (int i = 0; i < v->n_down; i++) {
    g_snprintf (n, sizeof n, "model.sam_model.net_%d.weight", i + 2);
    if (!W4 (&w->down[i], n, v->down_ch[i], c_prev, 3, 3))
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
  vis_weights *w = &v->host;

  if (!get_table (ld, &w->cls, "model.vision_model.embeddings.class_embedding", 1, W, 1, 1, 1) ||
      !get_table (ld, &w->clip_pos, "model.vision_model.embeddings.position_embedding.weight", 2,
                  n_pos, W, 1, 1))
    return FALSE;
  if (!N1 (&w->pre_w, "model.vision_model.pre_layrnorm.weight", W) ||
      !N1 (&w->pre_b, "model.vision_model.pre_layrnorm.bias", W))
    return FALSE;

  w->layers = g_new0 (vis_clip_layer, MAX (v->n_layers, 1));
  for (int l = 0; l < v->n_layers; l++) {
    vis_clip_layer *ly = &w->layers[l];
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

  vis_weights *w = &v->host;
  v->n_embed = E;
  if (!W2 (&w->proj_w, "model.projector.layers.weight", E, v->clip_width + v->sam_out) ||
      !W1 (&w->proj_b, "model.projector.layers.bias", E))
    return FALSE;
  if (!get_table (ld, &w->newline, "model.image_newline", 1, E, 1, 1, 1) ||
      !get_table (ld, &w->separator, "model.view_seperator", 1, E, 1, 1, 1))
    return FALSE;
  return TRUE;
}

/* ---- weights per device (weight-sets.h) ---- */

/* Calls @fn on every tensor of @set. The tower's products are bound by arithmetic, not by
 * reading weights, so no precision quantizes them (DSOCR_WEIGHT_OTHER throughout). */
static void
weights_for_each (gpointer set, dsocr_tensor_fn fn, gpointer data, gconstpointer owner)
{
  const dsocr_vision *v = owner;
  vis_weights *w = set;
  dsk_tensor *top[] = { &w->patch_w, &w->patch_b, &w->sam_pos, &w->neck_conv1, &w->neck_ln1_w,
                        &w->neck_ln1_b, &w->neck_conv2, &w->neck_ln2_w, &w->neck_ln2_b, &w->cls,
                        &w->clip_pos, &w->pre_w, &w->pre_b, &w->proj_w, &w->proj_b,
                        &w->newline, &w->separator };
  for (gsize i = 0; i < G_N_ELEMENTS (top); i++)
    fn (top[i], DSOCR_WEIGHT_OTHER, data);
  for (int i = 0; i < v->n_down; i++)
    fn (&w->down[i], DSOCR_WEIGHT_OTHER, data);
  for (int b = 0; b < v->n_blocks; b++) {
    vis_sam_block *k = &w->blocks[b];
    dsk_tensor *ts[] = { &k->norm1_w, &k->norm1_b, &k->norm2_w, &k->norm2_b, &k->qkv_w,
                         &k->qkv_b, &k->proj_w, &k->proj_b, &k->lin1_w, &k->lin1_b, &k->lin2_w,
                         &k->lin2_b, &k->rel_h, &k->rel_w };
    for (gsize i = 0; i < G_N_ELEMENTS (ts); i++)
      fn (ts[i], DSOCR_WEIGHT_OTHER, data);
  }
  for (int l = 0; l < v->n_layers; l++) {
    vis_clip_layer *y = &w->layers[l];
    dsk_tensor *ts[] = { &y->ln1_w, &y->ln1_b, &y->ln2_w, &y->ln2_b, &y->qkv_w, &y->qkv_b,
                         &y->out_w, &y->out_b, &y->fc1_w, &y->fc1_b, &y->fc2_w, &y->fc2_b };
    for (gsize i = 0; i < G_N_ELEMENTS (ts); i++)
      fn (ts[i], DSOCR_WEIGHT_OTHER, data);
  }
}

/* A copy of @host's structure (blocks and layers) with the same tensors. */
static gpointer
weights_copy (gconstpointer host, gconstpointer owner)
{
  const dsocr_vision *v = owner;
  const vis_weights *src = host;
  vis_weights *w = g_new (vis_weights, 1);
  *w = *src;
  w->blocks = g_memdup2 (src->blocks, sizeof (vis_sam_block) * (gsize) MAX (v->n_blocks, 1));
  w->layers = g_memdup2 (src->layers, sizeof (vis_clip_layer) * (gsize) MAX (v->n_layers, 1));
  return w;
}

static void
weights_clear (vis_weights *w)
{
  g_free (w->blocks);
  g_free (w->layers);
  w->blocks = NULL;
  w->layers = NULL;
}

static void
weights_free (gpointer set)
{
  weights_clear (set);
  g_free (set);
}

static const dsocr_weight_set_class weights_class = {
  weights_copy, weights_for_each, weights_free, NULL,
};

static void
vision_free (dsocr_vision *v)
{
  dsocr_weight_sets_free (v->sets);
  weights_clear (&v->host);
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
  v->sets = dsocr_weight_sets_new (&weights_class, v);
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

/* ---- sessions ---- */

dsocr_vision_session *
dsocr_vision_session_new (dsocr_vision *vision, dsocr_backend *backend, GError **error)
{
  g_return_val_if_fail (vision != NULL, NULL);
  dsk_backend *be = backend ? dsk_backend_ref (backend) : dsocr_backend_default (0, error);
  const vis_weights *w;
  dsocr_vision_session *vs;

  if (!be)
    return NULL;
  gsize bytes = 0;
  w = dsocr_weight_sets_get (vision->sets, &vision->host, be, DSOCR_PRECISION_F32, &bytes,
                             "preparing the vision weights", error);
  if (!w) {
    dsk_backend_unref (be);
    return NULL;
  }
  vs = g_new0 (dsocr_vision_session, 1);
  vs->vision = dsocr_vision_ref (vision);
  vs->w = w;
  vs->weight_bytes = bytes;
  vs->be = be;
  vs->pass = dsk_arena_new (be);
  vs->batch = dsk_arena_new (be);
  vs->scratch = dsk_arena_new (be);
  return vs;
}

void
dsocr_vision_session_free (dsocr_vision_session *vs)
{
  if (!vs)
    return;
  dsk_buffer_free (vs->win_buf);
  dsk_arena_free (vs->pass);
  dsk_arena_free (vs->batch);
  dsk_arena_free (vs->scratch);
  dsk_backend_unref (vs->be);
  dsocr_vision_unref (vs->vision);
  g_free (vs);
}

dsocr_vision *
dsocr_vision_session_get_vision (const dsocr_vision_session *vs)
{
  return vs->vision;
}

gsize
dsocr_vision_session_get_weight_bytes (const dsocr_vision_session *session)
{
  return session->weight_bytes;
}

dsocr_backend *
dsocr_vision_session_get_backend (const dsocr_vision_session *vs)
{
  return vs->be;
}

/* ---- projector ---- */

void
vis_projector (dsocr_vision_session *vs, const dsk_tensor *clip, const dsk_tensor *sam,
               int n_views, int n, const dsk_tensor *out)
{
  const dsocr_vision *v = vs->vision;
  const size_t cw = (size_t) v->clip_width, sw = (size_t) v->sam_out, in = cw + sw;
  const size_t B = (size_t) n_views, N = (size_t) n;
  dsk_tensor cat = dsk_arena_2d (vs->batch, DSK_F32, B * N, in);  /* [B*n, cw + sw] */
  dsk_tensor cat3 = dsk_split (&cat, 0, B, N);                     /* [B, n, cw + sw] */
  dsk_tensor clip3 = dsk_split (clip, 0, B, N + 1);                /* [B, n + 1, cw] */
  dsk_tensor c_dst = dsk_narrow (&cat3, 2, 0, cw), s_dst = dsk_narrow (&cat, 1, cw, sw);
  dsk_tensor c_src = dsk_narrow (&clip3, 1, 1, N);                 /* without the CLS rows */
  dsk_copy (vs->be, &c_dst, &c_src);
  dsk_copy (vs->be, &s_dst, sam);
  dsk_linear (vs->be, out, &cat, &vs->w->proj_w, &vs->w->proj_b);
}

/* ---- views ---- */

/* Encodes @n_views views of @size already on the backend: @px [n_views * 3 * size * size] ->
 * @out [n_views * n * n, n_embed]. */
static void
encode_views (dsocr_vision_session *vs, const dsk_tensor *px, int n_views, int size,
              const dsk_tensor *out)
{
  const dsocr_vision *v = vs->vision;
  const size_t B = (size_t) n_views, g = (size_t) vis_grid_side (v, size), nt = g * g;
  dsk_tensor sam = dsk_arena_2d (vs->batch, DSK_F32, B * nt, (size_t) v->sam_out);
  dsk_tensor clip = dsk_arena_2d (vs->batch, DSK_F32, B * (nt + 1), (size_t) v->clip_width);

  /* the reference hands SAM bf16 pixels */
  dsk_round (vs->be, px, px, DSK_BF16);
  vis_sam (vs, px, n_views, size, &sam);
  vis_clip (vs, &sam, n_views, (int) g, &clip);
  vis_projector (vs, &clip, &sam, n_views, (int) nt, out);
}

static gboolean
check_views (const dsocr_vision *v, int n_views, int size, GError **error)
{
  if (vis_grid_side (v, size) == 0) {
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
  return TRUE;
}

gboolean
dsocr_vision_encode_views (dsocr_vision_session *vs, const float *pixels, int n_views, int size,
                           float *out, GError **error)
{
  g_return_val_if_fail (vs != NULL && pixels != NULL && out != NULL, FALSE);
  const dsocr_vision *v = vs->vision;
  if (!check_views (v, n_views, size, error))
    return FALSE;
  const size_t B = (size_t) n_views, g = (size_t) vis_grid_side (v, size);
  dsk_arena_reset (vs->batch);
  dsk_tensor px = dsk_arena_1d (vs->batch, DSK_F32, B * 3 * (size_t) size * size);
  dsk_tensor o = dsk_arena_2d (vs->batch, DSK_F32, B * g * g, (size_t) v->n_embed);
  dsk_tensor_set (vs->be, &px, pixels);
  encode_views (vs, &px, n_views, size, &o);
  dsk_tensor_get (vs->be, &o, out);
  return dsocr_backend_check (vs->be, "vision", error);
}

gboolean
dsocr_vision_encode_view (dsocr_vision_session *vs, const float *pixels, int size, float *out,
                          GError **error)
{
  return dsocr_vision_encode_views (vs, pixels, 1, size, out, error);
}

/* ---- packing ---- */

int
dsocr_vision_pack_n_tokens (int n, int m, int cols, int rows)
{
  return dsocr_view_n_tokens (n, m, cols, rows);
}

void
vis_pack (dsk_backend *be, const dsk_tensor *global, int n, const dsk_tensor *tiles, int m,
          int cols, int rows, const dsk_tensor *newline, const dsk_tensor *separator,
          const dsk_tensor *out)
{
  const size_t E = out->ne[1];
  dsk_tensor nl = dsk_split (newline, 0, 1, E);   /* [1, E] */
  size_t o = 0;

  if (cols > 0 && rows > 0) {
    /* tile (ty, tx) of the cols x rows grid covers rows ty*m.. and columns tx*m.. of one big
     * (rows*m) x (cols*m) grid; each of its rows ends with image_newline */
    dsk_tensor t4 = dsk_split (tiles, 0, (size_t) rows, (size_t) cols);   /* [rows, cols, m*m, E] */
    for (int y = 0; y < rows * m; y++) {
      const int ty = y / m, iy = y % m;
      dsk_tensor trow = dsk_select (&t4, 0, (size_t) ty);                 /* [cols, m*m, E] */
      trow = dsk_narrow (&trow, 1, (size_t) iy * m, (size_t) m);          /* [cols, m, E] */
      dsk_tensor dst = dsk_narrow (out, 0, o, (size_t) cols * m);
      dst = dsk_split (&dst, 0, (size_t) cols, (size_t) m);               /* [cols, m, E] */
      dsk_copy (be, &dst, &trow);
      o += (size_t) cols * m;
      dsk_tensor d1 = dsk_narrow (out, 0, o++, 1);
      dsk_copy (be, &d1, &nl);
    }
  }
  {
    /* the global grid's rows, then a newline each */
    dsk_tensor body = dsk_narrow (out, 0, o, (size_t) n * (n + 1));
    dsk_tensor rows3 = dsk_split (&body, 0, (size_t) n, (size_t) n + 1);  /* [n, n + 1, E] */
    dsk_tensor cells = dsk_narrow (&rows3, 1, 0, (size_t) n);
    dsk_tensor ends = dsk_narrow (&rows3, 1, (size_t) n, 1);              /* [n, 1, E] */
    dsk_tensor g3 = dsk_split (global, 0, (size_t) n, (size_t) n);        /* [n, n, E] */
    dsk_tensor nl3 = dsk_split (&nl, 0, 1, 1);                            /* [1, 1, E] */
    nl3 = dsk_expand (&nl3, 0, (size_t) n);
    dsk_copy (be, &cells, &g3);
    dsk_copy (be, &ends, &nl3);
    o += (size_t) n * (n + 1);
  }
  {
    dsk_tensor last = dsk_narrow (out, 0, o, 1), sep = dsk_split (separator, 0, 1, E);
    dsk_copy (be, &last, &sep);
  }
}

gboolean
dsocr_vision_pack (const dsocr_vision *vision, const float *global, int n, const float *tiles,
                   int m, int cols, int rows, float *out, GError **error)
{
  g_return_val_if_fail (vision != NULL && global != NULL && out != NULL, FALSE);
  const size_t E = (size_t) vision->n_embed;
  const gboolean have_tiles = cols > 0 && rows > 0;
  const int n_tokens = dsocr_vision_pack_n_tokens (n, m, cols, rows);
  dsk_backend *be;
  gboolean ok;

  if (n <= 0 || n_tokens < 0 || (have_tiles && (m <= 0 || !tiles)) ||
      (!have_tiles && (cols != 0 || rows != 0))) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "vision: cannot pack a %d x %d global grid with %d x %d tiles of %d x %d", n,
                 n, cols, rows, m, m);
    return FALSE;
  }
  /* the host arrays are tensors of the CPU backend as they are; one thread copies them */
  if (!(be = dsocr_backend_default (1, error)))
    return FALSE;
  {
    dsk_tensor g = dsk_tensor_host_2d (global, DSK_F32, (size_t) n * n, E);
    dsk_tensor t = dsk_tensor_host_2d (tiles, DSK_F32, have_tiles ? (size_t) cols * rows * m * m : 1,
                                       E);
    dsk_tensor o = dsk_tensor_host_2d (out, DSK_F32, (size_t) n_tokens, E);
    t = dsk_split (&t, 0, have_tiles ? (size_t) cols * rows : 1, have_tiles ? (size_t) m * m : 1);
    vis_pack (be, &g, n, have_tiles ? &t : NULL, m, cols, rows, &vision->host.newline,
              &vision->host.separator, &o);
  }
  ok = dsocr_backend_check (be, "vision: packing", error);
  dsk_backend_unref (be);
  return ok;
}

/* ---- the whole image ---- */

/* One view to encode: block @index of @t's views, @size pixels square, its projector rows
 * going to rows [row0, row0 + n * n) of its image's encoded views. */
typedef struct {
  const dsocr_tensor *t;
  gsize index;
  int size;
  int image;
  gsize row0;
} view_job;

static int
job_by_size (gconstpointer a, gconstpointer b)
{
  const view_job *x = a, *y = b;
  return (x->size > y->size) - (x->size < y->size);
}

static gboolean
check_image (const dsocr_preprocessed *pp, GError **error)
{
  const dsocr_tensor *g = pp->global, *t = pp->tiles;
  const gboolean g_ok = g && g->n_dims == 3 && g->shape[0] == 3 && g->shape[1] == pp->view_size &&
                        g->shape[2] == pp->view_size &&
                        (g->dtype == DSOCR_DTYPE_F32 || g->dtype == DSOCR_DTYPE_BF16);
  const gboolean t_ok = pp->n_tiles == 0 ||
                        (t && t->n_dims == 4 && t->shape[0] == pp->n_tiles && t->shape[1] == 3 &&
                         t->shape[2] == DSOCR_TILE_SIZE && t->shape[3] == DSOCR_TILE_SIZE &&
                         t->dtype == g->dtype &&
                         pp->n_tiles == pp->grid_cols * pp->grid_rows);
  if (g_ok && t_ok)
    return TRUE;
  if (g && g->dtype != DSOCR_DTYPE_F32 && g->dtype != DSOCR_DTYPE_BF16) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "vision: pixels of dtype %s, expected F32 or BF16", dsocr_dtype_name (g->dtype));
    return FALSE;
  }
  g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
               "vision: preprocessed image has inconsistent views (global %s, %d tiles in a "
               "%d x %d grid)", g ? "present" : "missing", pp->n_tiles, pp->grid_cols,
               pp->grid_rows);
  return FALSE;
}

/* Per image of a batch: its grids, and its encoded views (tiles, then the global view). */
typedef struct {
  int n, m, cols, rows, n_tokens;
  dsk_tensor views;   /* [n_tiles * m * m + n * n, E] */
} image_work;

gboolean
dsocr_vision_encode_batch (dsocr_vision_session *vs, const dsocr_preprocessed *const *pps,
                           int n_images, dsocr_tensor **out, GError **error)
{
  g_return_val_if_fail (vs != NULL && (pps != NULL || n_images == 0) && out != NULL, FALSE);
  const dsocr_vision *v = vs->vision;
  dsk_backend *be = vs->be;
  const gsize E = (gsize) v->n_embed;
  image_work *w = g_new0 (image_work, MAX (n_images, 1));
  view_job *jobs = NULL;
  int n_jobs = 0;
  gboolean ok = TRUE;

  for (int i = 0; i < n_images; i++)
    out[i] = NULL;
  for (int i = 0; ok && i < n_images; i++) {
    const dsocr_preprocessed *pp = pps[i];
    image_work *iw = &w[i];
    if (!pp) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "vision: image %d is missing", i);
      ok = FALSE;
      break;
    }
    if (!(ok = check_image (pp, error)))
      break;
    const int S = pp->view_size;
    iw->n = vis_grid_side (v, S);
    iw->m = pp->n_tiles ? vis_grid_side (v, DSOCR_TILE_SIZE) : 0;
    iw->cols = pp->n_tiles ? pp->grid_cols : 0;
    iw->rows = pp->n_tiles ? pp->grid_rows : 0;
    iw->n_tokens = dsocr_vision_pack_n_tokens (iw->n, iw->m, iw->cols, iw->rows);
    if (iw->n == 0 || iw->n_tokens != pp->n_image_tokens) {
      /* a preprocessed image made for another geometry (views.h) */
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "vision: a %d-pixel view with %d x %d tiles gives %d embeddings, the "
                   "prompt has %d placeholders", S, iw->cols, iw->rows, iw->n_tokens,
                   pp->n_image_tokens);
      ok = FALSE;
      break;
    }
    n_jobs += 1 + pp->n_tiles;
  }
  if (!ok) {
    g_free (w);
    return FALSE;
  }

  dsk_arena_reset (vs->pass);
  jobs = g_new (view_job, MAX (n_jobs, 1));
  {
    int j = 0;
    for (int i = 0; i < n_images; i++) {
      const dsocr_preprocessed *pp = pps[i];
      const gsize tile_rows = (gsize) pp->n_tiles * w[i].m * w[i].m;
      w[i].views = dsk_arena_2d (vs->pass, DSK_F32, tile_rows + (gsize) w[i].n * w[i].n, E);
      for (int k = 0; k < pp->n_tiles; k++)
        jobs[j++] = (view_job) { pp->tiles, (gsize) k, DSOCR_TILE_SIZE, i,
                                 (gsize) k * w[i].m * w[i].m };
      jobs[j++] = (view_job) { pp->global, 0, pp->view_size, i, tile_rows };
    }
  }
  /* equal sizes together, DSOCR_VISION_BATCH views a call; the encoded views persist in the
   * pass arena, a batch's activations live in the batch arena */
  qsort (jobs, (size_t) n_jobs, sizeof *jobs, job_by_size);
  for (int i = 0; ok && i < n_jobs;) {
    int nb = 1;
    while (i + nb < n_jobs && nb < DSOCR_VISION_BATCH && jobs[i + nb].size == jobs[i].size)
      nb++;
    const int S = jobs[i].size, g = vis_grid_side (v, S);
    const gsize per = 3 * (gsize) S * (gsize) S, rows = (gsize) g * (gsize) g;
    dsk_arena_reset (vs->batch);
    dsk_tensor px = dsk_arena_1d (vs->batch, DSK_F32, per * (gsize) nb);   /* [nb, 3, S, S] */
    dsk_tensor enc = dsk_arena_2d (vs->batch, DSK_F32, rows * (gsize) nb, E);   /* [nb*g*g, E] */
    for (int k = 0; k < nb; k++) {
      const view_job *jb = &jobs[i + k];
      dsk_tensor dst = dsk_narrow (&px, 0, (gsize) k * per, per);
      dsk_tensor src = dsk_tensor_host_1d ((const char *) jb->t->data +
                                           jb->index * per * dsocr_dtype_size (jb->t->dtype),
                                           (dsk_dtype) jb->t->dtype, per);
      if (jb->t->dtype == DSOCR_DTYPE_F32) {
        dsk_tensor_set (be, &dst, src.data);
      } else {
        /* BF16 pixels are widened on the backend */
        dsk_tensor wide = dsk_arena_1d (vs->batch, DSK_BF16, per);
        dsk_tensor_set (be, &wide, src.data);
        dsk_copy (be, &dst, &wide);
      }
    }
    encode_views (vs, &px, nb, S, &enc);
    for (int k = 0; k < nb; k++) {
      const view_job *jb = &jobs[i + k];
      dsk_tensor src = dsk_narrow (&enc, 0, (gsize) k * rows, rows);
      dsk_tensor dst = dsk_narrow (&w[jb->image].views, 0, jb->row0, rows);
      dsk_copy (be, &dst, &src);
    }
    ok = dsocr_backend_check (be, "vision", error);
    i += nb;
  }
  for (int i = 0; ok && i < n_images; i++) {
    const int64_t shape[2] = { w[i].n_tokens, (int64_t) E };
    const gsize tile_rows = (gsize) pps[i]->n_tiles * w[i].m * w[i].m;
    dsk_tensor packed = dsk_arena_2d (vs->pass, DSK_F32, (gsize) w[i].n_tokens, E);
    dsk_tensor glob = dsk_narrow (&w[i].views, 0, tile_rows, (gsize) w[i].n * w[i].n);
    dsk_tensor tiles = dsk_narrow (&w[i].views, 0, 0, MAX (tile_rows, 1));
    if (tile_rows)
      tiles = dsk_split (&tiles, 0, (gsize) pps[i]->n_tiles, (gsize) w[i].m * w[i].m);
    vis_pack (be, &glob, w[i].n, tile_rows ? &tiles : NULL, w[i].m, w[i].cols, w[i].rows,
              &vs->w->newline, &vs->w->separator, &packed);
    ok = (out[i] = dsocr_tensor_new (DSOCR_DTYPE_F32, 2, shape, error)) != NULL;
    if (ok)
      dsk_tensor_get (be, &packed, out[i]->data);
    ok = ok && dsocr_backend_check (be, "vision", error);
  }
  if (!ok)
    for (int i = 0; i < n_images; i++)
      g_clear_pointer (&out[i], dsocr_tensor_free);
  g_free (w);
  g_free (jobs);
  return ok;
}

dsocr_tensor *
dsocr_vision_encode (dsocr_vision_session *vs, const dsocr_preprocessed *pp, GError **error)
{
  g_return_val_if_fail (vs != NULL && pp != NULL, NULL);
  dsocr_tensor *out = NULL;
  return dsocr_vision_encode_batch (vs, &pp, 1, &out, error) ? out : NULL;
}

/* ---- the stages on host arrays (golden tests) ---- */

/* Runs @stage between host arrays: @in (n_in floats) is uploaded, @out (n_out) downloaded. */
typedef void (*stage_fn) (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out,
                          gpointer data);

static gboolean
host_stage (dsocr_vision_session *vs, stage_fn fn, gpointer data, const float *in, gsize n_in,
            float *out, gsize n_out, GError **error)
{
  dsk_arena_reset (vs->pass);
  dsk_arena_reset (vs->batch);
  dsk_tensor ti = dsk_arena_1d (vs->pass, DSK_F32, MAX (n_in, 1));
  dsk_tensor to = dsk_arena_1d (vs->pass, DSK_F32, n_out);
  if (in)
    dsk_tensor_set (vs->be, &ti, in);
  fn (vs, &ti, &to, data);
  dsk_tensor_get (vs->be, &to, out);
  return dsocr_backend_check (vs->be, "vision", error);
}

typedef struct {
  int n_views, size, g, b;
  const float *extra;   /* a second input */
  gsize n_extra;
} stage_args;

static void
sam_stage (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out, gpointer data)
{
  const stage_args *a = data;
  dsk_tensor o = dsk_split (out, 0, out->ne[0] / (size_t) vs->vision->sam_out,
                            (size_t) vs->vision->sam_out);
  vis_sam (vs, in, a->n_views, a->size, &o);
}

gboolean
vis_sam_forward (dsocr_vision_session *vs, const float *pixels, int n_views, int size,
                 float *out, GError **error)
{
  const dsocr_vision *v = vs->vision;
  const gsize g = (gsize) vis_grid_side (v, size);
  stage_args a = { n_views, size, 0, 0, NULL, 0 };
  return host_stage (vs, sam_stage, &a, pixels, (gsize) n_views * 3 * size * size, out,
                     (gsize) n_views * g * g * v->sam_out, error);
}

static void
sam_pos_stage (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out,
               gpointer data)
{
  const stage_args *a = data;
  dsk_tensor o = dsk_split (out, 0, (size_t) a->g * a->g, (size_t) vs->vision->sam_width);
  o = dsk_split (&o, 0, (size_t) a->g, (size_t) a->g);
  vis_sam_positions (vs, a->g, &o);
}

gboolean
vis_sam_pos (dsocr_vision_session *vs, int grid, float *out, GError **error)
{
  stage_args a = { 0, 0, grid, 0, NULL, 0 };
  return host_stage (vs, sam_pos_stage, &a, NULL, 0, out,
                     (gsize) grid * grid * vs->vision->sam_width, error);
}

static void
rel_stage (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out, gpointer data)
{
  const stage_args *a = data;
  const size_t hd = (size_t) (vs->vision->sam_width / vs->vision->sam_heads);
  const size_t len = 2 * (size_t) a->size - 1;
  dsk_tensor o = dsk_split (out, 0, 2 * len, hd);
  dsk_tensor oh = dsk_narrow (&o, 0, 0, len), ow = dsk_narrow (&o, 0, len, len);
  vis_sam_rel (vs, a->b, a->size, &oh, &ow);
}

gboolean
vis_sam_rel_tables (dsocr_vision_session *vs, int b, int size, float *out_h, float *out_w,
                    GError **error)
{
  const gsize hd = (gsize) (vs->vision->sam_width / vs->vision->sam_heads);
  const gsize len = 2 * (gsize) size - 1;
  stage_args a = { 0, size, 0, b, NULL, 0 };
  float *both = g_new (float, 2 * len * hd);
  gboolean ok = host_stage (vs, rel_stage, &a, NULL, 0, both, 2 * len * hd, error);
  if (ok) {
    memcpy (out_h, both, len * hd * sizeof (float));
    memcpy (out_w, both + len * hd, len * hd * sizeof (float));
  }
  g_free (both);
  return ok;
}

static void
clip_stage (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out, gpointer data)
{
  const stage_args *a = data;
  const size_t W = (size_t) vs->vision->clip_width;
  dsk_tensor i2 = dsk_split (in, 0, in->ne[0] / W, W), o2 = dsk_split (out, 0, out->ne[0] / W, W);
  vis_clip (vs, &i2, a->n_views, a->g, &o2);
}

gboolean
vis_clip_forward (dsocr_vision_session *vs, const float *sam, int n_views, int g, float *out,
                  GError **error)
{
  const gsize W = (gsize) vs->vision->clip_width, n = (gsize) g * g;
  stage_args a = { n_views, 0, g, 0, NULL, 0 };
  return host_stage (vs, clip_stage, &a, sam, (gsize) n_views * n * W, out,
                     (gsize) n_views * (n + 1) * W, error);
}

static void
clip_pos_stage (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out,
                gpointer data)
{
  const stage_args *a = data;
  const size_t W = (size_t) vs->vision->clip_width;
  dsk_tensor o = dsk_split (out, 0, out->ne[0] / W, W);
  vis_clip_positions (vs, a->g, &o);
}

gboolean
vis_clip_pos (dsocr_vision_session *vs, int g, float *out, GError **error)
{
  stage_args a = { 0, 0, g, 0, NULL, 0 };
  return host_stage (vs, clip_pos_stage, &a, NULL, 0, out,
                     ((gsize) g * g + 1) * vs->vision->clip_width, error);
}

static void
project_stage (dsocr_vision_session *vs, const dsk_tensor *in, const dsk_tensor *out,
               gpointer data)
{
  const stage_args *a = data;
  const dsocr_vision *v = vs->vision;
  const size_t W = (size_t) v->clip_width, SO = (size_t) v->sam_out, B = (size_t) a->n_views;
  const size_t n = (size_t) a->g;   /* tokens per view */
  dsk_tensor clip = dsk_narrow (in, 0, 0, B * (n + 1) * W);
  dsk_tensor sam = dsk_narrow (in, 0, B * (n + 1) * W, B * n * SO);
  dsk_tensor o = dsk_split (out, 0, B * n, (size_t) v->n_embed);
  clip = dsk_split (&clip, 0, B * (n + 1), W);
  sam = dsk_split (&sam, 0, B * n, SO);
  vis_projector (vs, &clip, &sam, a->n_views, (int) n, &o);
}

gboolean
vis_project (dsocr_vision_session *vs, const float *clip, const float *sam, int n_views, int n,
             float *out, GError **error)
{
  const dsocr_vision *v = vs->vision;
  const gsize nc = (gsize) n_views * (n + 1) * v->clip_width;
  const gsize ns = (gsize) n_views * n * v->sam_out;
  float *in = g_new (float, nc + ns);
  stage_args a = { n_views, 0, n, 0, NULL, 0 };
  gboolean ok;
  memcpy (in, clip, nc * sizeof (float));
  memcpy (in + nc, sam, ns * sizeof (float));
  ok = host_stage (vs, project_stage, &a, in, nc + ns, out, (gsize) n_views * n * v->n_embed,
                   error);
  g_free (in);
  return ok;
}
