/* decoder.c: the DeepSeek-V2-family layer loop on the CPU (float32 activations).
 *
 * References reproduced here (transformers 5.23 unless noted):
 * - MHA layers: DeepseekOcr2TextAttention (LlamaAttention: rotate-half RoPE on the whole head)
 * - MLA layers: DeepseekV2Attention / DeepseekV3Attention (latent KV, RoPE on the q_pe/k_pe
 *   part, interleaved pairs unless rope_interleave is false, yarn mscale^2 in the scale)
 * - routers: DeepseekV2TopkRouter (greedy, group_limited_greedy), DeepseekV3TopkRouter
 *   (noaux_tc), with norm_topk_prob as the hub's modeling_deepseekv2.py applies it
 * - experts: DeepseekV2Experts (routed outputs weighted and summed in f32, experts in
 *   ascending id order) plus the shared-expert MLP.
 */
#include "decoder.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dsk.h"
#include "dsocr/dsocr-error.h"

/* One expert (or the shared MLP) as the expert kernel sees it. */
typedef struct expert_job {
  const dsocr_linear *gate, *up, *down;
  int n;                 /* its tokens */
  const int32_t *rows;   /* [n] token rows of xn; NULL: rows 0..n-1 */
  size_t slot0;          /* its first row in the hidden/output buffers */
  int npad;              /* packed jobs: n rounded up to 16; 0: the job uses the tiles */
  float *xp;             /* packed jobs: [n_embd][npad] its tokens' inputs */
  float *hp;             /* packed jobs: [inter][npad] its hidden activations */
} expert_job;

#define TILE 4        /* tokens and weight rows per kernel tile */

typedef struct {
  const float *x[TILE];  /* token rows */
  const void *w[TILE];   /* weight rows */
} tile_args;

/* out[t][r] = x_t · w_r for nt (1 or TILE) token rows and TILE weight rows of @in values. */
typedef void (*tile_fn) (const tile_args *a, int nt, size_t in, float out[TILE][TILE]);
/* dst[n] = src[n] widened to f32. */
typedef void (*widen_fn) (float *dst, const void *src, size_t n);

/* out[r][0 .. 16 nv) = w_r · x_t for 8 f32 weight rows (@in apart) and 16 nv tokens of a
 * packed x ([in][ldx]: token t of value k at k * ldx + t). */
typedef void (*packed_fn) (const float *w, size_t in, const float *xp, size_t ldx, int nv,
                           float out[8][32]);

/* The expert kernel of one instruction set: a tile per weight dtype, the widening and, where
 * the instruction set has registers enough, the packed kernel for many tokens. */
typedef struct {
  tile_fn tile[DSK_N_DTYPES];   /* F32, F16 and BF16 entries set */
  widen_fn widen[DSK_N_DTYPES];
  packed_fn packed;             /* NULL: every product uses the tiles */
} tile_impl;
static const tile_impl *pick_tile (void);

/* A growable float buffer. */
typedef struct {
  float *data;
  gsize cap;
} buffer;

struct dsocr_decoder_state {
  const dsocr_model *model;
  int n_threads;
  dsocr_mla_form mla_form;

  float *cos_tab, *sin_tab;  // [n_pos, rope_dim / 2]
  size_t n_pos;

  buffer xn;       // [T, n_embd] normed input of a block
  buffer q;        // [T, n_head * d_q]: MHA q, MLA q (nope | pe), or absorbed q (c | pe)
  buffer k;        // [T, n_kv_head * head_dim] (MHA new keys) / [T, kv_lora + rope] (MLA)
  buffer v;        // [T, n_kv_head * head_dim] (MHA new values)
  buffer qa;       // [T, q_lora_rank]
  buffer kvb;      // [S, n_head * (nope + v)] expanded keys/values of one row (MLA)
  buffer kfull;    // [S, n_head, nope + rope] expanded keys of one row (MLA)
  buffer att;      // [T, n_head * d_v] attention output (absorbed: [T, n_head * kv_lora])
  buffer att2;     // [T, n_head * v_head] absorbed: attention output after W_vb
  buffer proj;     // [T, n_embd] block output
  buffer gate;     // [T, inter]
  buffer up;       // [T, inter]
  buffer routed;   // [T, n_embd] f32 sum of weighted expert outputs
  buffer logits_r; // [T, n_experts] router logits, then scores
  buffer xpack;    // packed inputs of the packed jobs / of a projection ([in][npad] each)
  buffer hpack;    // packed hidden activations of the packed jobs
  int32_t *topk_idx;   // [T, top_k]
  float *topk_w;       // [T, top_k]
  int32_t *exp_rows;   // [T * top_k] token ids grouped by expert
  int *exp_count;      // [n_experts + 1] offsets into exp_rows
  int *exp_fill;       // [n_experts] next free slot of each expert while grouping
  int32_t *slot_of;    // [T * top_k] expert-buffer row of each (token, choice)
  expert_job *jobs;    // [n_experts + 1] the experts with tokens, then the shared MLP
  int32_t *items;      // [2 * items_cap] (job, first weight row) work items
  gsize items_cap;
  const float **xr;    // [xr_cap] input row of every expert-buffer slot (gate/up, then down)
  gsize xr_cap;
  const tile_impl *tile;   // the expert kernel for this CPU
  float *bias_f32;     // [n_experts] e_score_correction_bias widened
  float *choice;       // [n_experts] scores a token's experts are chosen by
  float *group_score;  // [n_group]
  int32_t *kept;       // [n_group] groups kept
  gsize route_cap;
};

static gboolean
ensure (buffer *b, gsize n, GError **error)
{
  float *p;

  if (n <= b->cap)
    return TRUE;
  p = g_try_realloc (b->data, sizeof (float) * n);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "decoder: cannot allocate %" G_GSIZE_FORMAT
                 " floats of scratch", n);
    return FALSE;
  }
  b->data = p;
  b->cap = n;
  return TRUE;
}

static inline dsk_dtype
dt (const dsocr_tensor *t)
{
  return (dsk_dtype) t->dtype;
}

/* y[n, out] = x[n, in] W^T + b, both packed. */
static void
linear (float *y, const float *x, const dsocr_linear *lin, size_t n)
{
  dsk_matmul_f32_cpu (y, x, lin->w->data, dt (lin->w), lin->b ? lin->b->data : NULL,
                      lin->b ? dt (lin->b) : DSK_F32, n, (size_t) lin->n_in,
                      (size_t) lin->n_out, NULL);
}

static gboolean linear_tiles (dsocr_decoder_state *s, float *y, const float *x,
                              const dsocr_linear *lin, size_t n, GError **error);
static int use_tiles = -1;

/* y = x W^T (+ b) for the layers' projections. */
static void
project (dsocr_decoder_state *s, float *y, const float *x, const dsocr_linear *lin, size_t n)
{
  if (use_tiles < 0)
    use_tiles = g_getenv ("DSOCR_TILES_LINEAR") != NULL;
  if (use_tiles && linear_tiles (s, y, x, lin, n, NULL))
    return;
  linear (y, x, lin, n);
}

static void
rmsnorm (float *y, const float *x, const dsocr_tensor *w, size_t n, size_t dim, size_t ld,
         double eps)
{
  dsk_rmsnorm_f32_cpu (y, ld, x, ld, w->data, dt (w), n, dim, (float) eps);
}

dsocr_decoder_state *
dsocr_decoder_state_new (const dsocr_model *model, int n_threads, dsocr_mla_form mla_form)
{
  dsocr_decoder_state *s = g_new0 (dsocr_decoder_state, 1);
  const int E = MAX (model->config->text.n_routed_experts, 1);
  const int G = MAX (model->config->text.n_group, 1);

  s->model = model;
  s->n_threads = n_threads;
  s->mla_form = mla_form;
  s->exp_count = g_new0 (int, E + 1);
  s->exp_fill = g_new0 (int, E);
  s->bias_f32 = g_new0 (float, E);
  s->choice = g_new0 (float, E);
  s->group_score = g_new0 (float, G);
  s->kept = g_new0 (int32_t, G);
  s->jobs = g_new0 (expert_job, E + 1);
  s->tile = pick_tile ();
  return s;
}

void
dsocr_decoder_state_free (dsocr_decoder_state *s)
{
  if (!s)
    return;
  {
    buffer *bufs[] = { &s->xn, &s->q, &s->k, &s->v, &s->qa, &s->kvb, &s->kfull, &s->att,
                       &s->att2, &s->proj, &s->gate, &s->up, &s->routed, &s->logits_r,
                       &s->xpack, &s->hpack };
    for (gsize i = 0; i < G_N_ELEMENTS (bufs); i++)
      g_free (bufs[i]->data);
  }
  g_free (s->cos_tab);
  g_free (s->sin_tab);
  g_free (s->topk_idx);
  g_free (s->topk_w);
  g_free (s->exp_rows);
  g_free (s->slot_of);
  g_free (s->jobs);
  g_free (s->items);
  g_free (s->xr);
  g_free (s->exp_count);
  g_free (s->exp_fill);
  g_free (s->bias_f32);
  g_free (s->choice);
  g_free (s->group_score);
  g_free (s->kept);
  g_free (s);
  /* The matmul keeps a widened-weight block per calling thread; a finished session gives it
   * back so an idle process does not hold it. */
  dsk_matmul_scratch_release_cpu ();
}

/* Makes the cos/sin tables cover positions [0, max_pos]. */
static gboolean
ensure_rope (dsocr_decoder_state *s, int32_t max_pos, GError **error)
{
  const dsocr_model *m = s->model;
  const size_t half = (size_t) m->config->text.rope_dim / 2;
  size_t n_pos;
  float *c, *sn;

  if ((size_t) max_pos < s->n_pos)
    return TRUE;
  n_pos = MAX ((size_t) max_pos + 1, s->n_pos * 2);
  n_pos = MAX (n_pos, 256);
  c = g_try_new (float, n_pos * half);
  sn = g_try_new (float, n_pos * half);
  if (!c || !sn) {
    g_free (c);
    g_free (sn);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "decoder: cannot allocate RoPE tables for %zu positions", n_pos);
    return FALSE;
  }
  dsk_rope_tables_cpu (c, sn, m->rope_inv_freq, half * 2, n_pos, m->rope_scale);
  g_free (s->cos_tab);
  g_free (s->sin_tab);
  s->cos_tab = c;
  s->sin_tab = sn;
  s->n_pos = n_pos;
  return TRUE;
}

/* ---- attention ---- */

/* MHA: q, k, v projections, rotate-half RoPE over the whole head, cache append, causal
 * attention over the row's cache, o_proj. @out: [T, n_embd]. */
static void
attention_mha (dsocr_decoder_state *s, const dsocr_layer *ly, int il, dsocr_kv_cache *cache,
               int n_seq, int n_tokens, const int32_t *positions, float *out)
{
  const dsocr_text_config *t = &s->model->config->text;
  const size_t T = (size_t) n_seq * n_tokens, nh = t->num_attention_heads,
               nkv = t->num_key_value_heads, hd = t->head_dim;
  const size_t kw = nkv * hd;
  float *q = s->q.data, *k = s->k.data, *v = s->v.data, *att = s->att.data;  // [T, nh*hd] etc.

  project (s, q, s->xn.data, &ly->q, T);
  project (s, k, s->xn.data, &ly->k, T);
  project (s, v, s->xn.data, &ly->v, T);
  dsk_rope_f32_cpu (q, T, nh, nh * hd, hd, 0, hd, positions, s->cos_tab, s->sin_tab, s->n_pos,
                    DSK_ROPE_HALF);
  dsk_rope_f32_cpu (k, T, nkv, kw, hd, 0, hd, positions, s->cos_tab, s->sin_tab, s->n_pos,
                    DSK_ROPE_HALF);

  for (int r = 0; r < n_seq; r++) {
    float *kc = dsocr_kv_cache_k (cache, il, r), *vc = dsocr_kv_cache_v (cache, il, r);
    const size_t row0 = (size_t) r * n_tokens;
    dsk_attention_params p = {
      .n_q = (size_t) n_tokens,
      .n_kv = (size_t) cache->n_past + n_tokens,
      .n_heads = nh,
      .n_kv_heads = nkv,
      .d_qk = hd,
      .d_v = hd,
      .scale = (float) t->softmax_scale,
      .causal = 1,
      .q_pos0 = (size_t) cache->n_past,
      .key_valid = cache->mask[r],
    };

    memcpy (kc + (size_t) cache->n_past * kw, k + row0 * kw, sizeof (float) * n_tokens * kw);
    memcpy (vc + (size_t) cache->n_past * kw, v + row0 * kw, sizeof (float) * n_tokens * kw);
    dsk_attention_f32_cpu (att + row0 * nh * hd, q + row0 * nh * hd, kc, vc, &p);
  }
  project (s, out, att, &ly->o, T);
}

/* out[n, out_dim] = x[n, in_dim] · W where W is [in_dim, out_dim] with rows @ld_w elements apart
 * (dsk's matmul takes W^T layouts only; the absorbed MLA query needs W itself). */
static void
matmul_xw (float *y, size_t ldy, const float *x, size_t ldx, const void *w, dsk_dtype w_dtype,
           size_t ld_w, size_t n, size_t in_dim, size_t out_dim)
{
  const size_t esize = dsk_dtype_size (w_dtype);

  for (size_t i = 0; i < n; i++) {
    float *yi = y + i * ldy;
    memset (yi, 0, sizeof (float) * out_dim);
    for (size_t d = 0; d < in_dim; d++) {
      const float a = x[i * ldx + d];
      const char *row = (const char *) w + d * ld_w * esize;
      if (w_dtype == DSK_BF16) {
        const uint16_t *wr = (const uint16_t *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * dsk_bf16_to_f32 (wr[j]);
      } else if (w_dtype == DSK_F16) {
        const uint16_t *wr = (const uint16_t *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * dsk_f16_to_f32 (wr[j]);
      } else {
        const float *wr = (const float *) row;
        for (size_t j = 0; j < out_dim; j++)
          yi[j] += a * wr[j];
      }
    }
  }
}

/* MLA: query (direct or LoRA), latent c + k_pe (cached), then either the expanded form
 * (decompress keys/values of every cached column) or the absorbed one (fold kv_b_proj into
 * the query and the output and attend over the latent directly). @out: [T, n_embd]. */
static gboolean
attention_mla (dsocr_decoder_state *s, const dsocr_layer *ly, int il, dsocr_kv_cache *cache,
               int n_seq, int n_tokens, const int32_t *positions, float *out, GError **error)
{
  const dsocr_text_config *t = &s->model->config->text;
  const size_t T = (size_t) n_seq * n_tokens, nh = t->num_attention_heads;
  const size_t nope = t->qk_nope_head_dim, rope = t->qk_rope_head_dim, vd = t->v_head_dim;
  const size_t qk = nope + rope, kvr = t->kv_lora_rank, cw = kvr + rope;
  const size_t S = (size_t) cache->n_past + n_tokens;
  const dsk_rope_mode mode = t->rope_interleave ? DSK_ROPE_INTERLEAVED : DSK_ROPE_HALF;
  const dsocr_tensor *wkvb = ly->kv_b.w;  // [nh * (nope + vd), kvr]
  const size_t esize = dsocr_dtype_size (wkvb->dtype);
  gboolean absorbed;
  float *q = s->q.data, *c = s->k.data;  // [T, nh * qk], [T, kvr + rope]

  if (t->q_lora_rank > 0) {
    if (!ensure (&s->qa, T * t->q_lora_rank, error))
      return FALSE;
    project (s, s->qa.data, s->xn.data, &ly->q_a, T);
    rmsnorm (s->qa.data, s->qa.data, ly->q_a_norm, T, t->q_lora_rank, t->q_lora_rank,
             t->rms_norm_eps);
    project (s, q, s->qa.data, &ly->q_b, T);
  } else {
    project (s, q, s->xn.data, &ly->q, T);
  }
  project (s, c, s->xn.data, &ly->kv_a, T);
  rmsnorm (c, c, ly->kv_a_norm, T, kvr, cw, t->rms_norm_eps);
  dsk_rope_f32_cpu (q, T, nh, nh * qk, qk, nope, rope, positions, s->cos_tab, s->sin_tab,
                    s->n_pos, mode);
  dsk_rope_f32_cpu (c, T, 1, cw, cw, kvr, rope, positions, s->cos_tab, s->sin_tab, s->n_pos,
                    mode);
  for (int r = 0; r < n_seq; r++)
    memcpy (dsocr_kv_cache_k (cache, il, r) + (size_t) cache->n_past * cw,
            c + (size_t) r * n_tokens * cw, sizeof (float) * n_tokens * cw);

  switch (s->mla_form) {
  case DSOCR_MLA_EXPANDED:
    absorbed = FALSE;
    break;
  case DSOCR_MLA_ABSORBED:
    absorbed = TRUE;
    break;
  default:
    /* Expanding costs S * kvr * nh * (nope + vd) per row and layer, absorbing about
     * T * S * nh * 2 * kvr: absorb when few columns join a longer cache. */
    absorbed = cache->n_past > 0 && 2 * (size_t) n_tokens < nope + vd;
    break;
  }

  if (!absorbed) {
    if (!ensure (&s->kvb, S * nh * (nope + vd), error) || !ensure (&s->kfull, S * nh * qk, error))
      return FALSE;
    for (int r = 0; r < n_seq; r++) {
      const float *cr = dsocr_kv_cache_k (cache, il, r);  // [S, kvr + rope]
      float *kvb = s->kvb.data, *kf = s->kfull.data;     // [S, nh, nope + vd], [S, nh, qk]
      const size_t row0 = (size_t) r * n_tokens;
      dsk_matmul_opts mo = { .ldx = cw };
      dsk_attention_params p = {
        .n_q = (size_t) n_tokens,
        .n_kv = S,
        .n_heads = nh,
        .n_kv_heads = nh,
        .d_qk = qk,
        .d_v = vd,
        .v_stride = nh * (nope + vd),
        .v_head_stride = nope + vd,
        .scale = (float) t->softmax_scale,
        .causal = 1,
        .q_pos0 = (size_t) cache->n_past,
        .key_valid = cache->mask[r],
      };

      dsk_matmul_f32_cpu (kvb, cr, wkvb->data, dt (wkvb), NULL, DSK_F32, S, kvr,
                          nh * (nope + vd), &mo);
      for (size_t j = 0; j < S; j++) {
        for (size_t h = 0; h < nh; h++) {
          memcpy (kf + (j * nh + h) * qk, kvb + (j * nh + h) * (nope + vd), sizeof (float) * nope);
          memcpy (kf + (j * nh + h) * qk + nope, cr + j * cw + kvr, sizeof (float) * rope);
        }
      }
      dsk_attention_f32_cpu (s->att.data + row0 * nh * vd, q + row0 * nh * qk, kf, kvb + nope,
                             &p);
    }
    project (s, out, s->att.data, &ly->o, T);
    return TRUE;
  }

  /* Absorbed: q~_h = q_nope_h · W_kb_h (W_kb_h = rows [h (nope+vd), +nope) of kv_b), keys and
   * values are the cached [c | k_pe] (one shared head), and the attended latent goes back
   * through W_vb_h (the next vd rows). */
  if (!ensure (&s->kvb, T * nh * cw, error) || !ensure (&s->att, T * nh * kvr, error) ||
      !ensure (&s->att2, T * nh * vd, error))
    return FALSE;
  {
    float *qt = s->kvb.data;  // [T, nh, kvr + rope]
    const char *wb = wkvb->data;

#pragma omp parallel for num_threads (s->n_threads > 0 ? s->n_threads : 1) if (s->n_threads != 1)
    for (size_t h = 0; h < nh; h++) {
      matmul_xw (qt + h * cw, nh * cw, q + h * qk, nh * qk, wb + h * (nope + vd) * kvr * esize,
                 dt (wkvb), kvr, T, nope, kvr);
      for (size_t i = 0; i < T; i++)
        memcpy (qt + (i * nh + h) * cw + kvr, q + (i * nh + h) * qk + nope, sizeof (float) * rope);
    }
    for (int r = 0; r < n_seq; r++) {
      const size_t row0 = (size_t) r * n_tokens;
      const float *cr = dsocr_kv_cache_k (cache, il, r);
      dsk_attention_params p = {
        .n_q = (size_t) n_tokens,
        .n_kv = S,
        .n_heads = nh,
        .n_kv_heads = 1,
        .d_qk = cw,
        .d_v = kvr,
        .k_stride = cw,
        .v_stride = cw,
        .scale = (float) t->softmax_scale,
        .causal = 1,
        .q_pos0 = (size_t) cache->n_past,
        .key_valid = cache->mask[r],
      };
      dsk_attention_f32_cpu (s->att.data + row0 * nh * kvr, qt + row0 * nh * cw, cr, cr, &p);
    }
    for (size_t h = 0; h < nh; h++) {
      dsk_matmul_opts mo = { .ldx = nh * kvr, .ldy = nh * vd };
      dsk_matmul_f32_cpu (s->att2.data + h * vd, s->att.data + h * kvr,
                          wb + (h * (nope + vd) + nope) * kvr * esize, dt (wkvb), NULL, DSK_F32,
                          T, kvr, vd, &mo);
    }
    project (s, out, s->att2.data, &ly->o, T);
  }
  return TRUE;
}

/* ---- feed-forward ---- */

static void
swiglu_mlp (dsocr_decoder_state *s, const dsocr_linear *gate, const dsocr_linear *up,
            const dsocr_linear *down, size_t T, float *out)
{
  const size_t inter = (size_t) gate->n_out;
  project (s, s->gate.data, s->xn.data, gate, T);
  project (s, s->up.data, s->xn.data, up, T);
  dsk_swiglu_f32_cpu (s->gate.data, s->gate.data, s->up.data, T * inter);
  project (s, out, s->gate.data, down, T);
}

/* Picks the top_k largest of @scores[n] into @idx (the lowest id first among equal values:
 * torch.topk leaves their order and choice unspecified). */
static void
top_k (const float *scores, int n, int k, int32_t *idx)
{
  for (int j = 0; j < k; j++) {
    int best = -1;
    for (int e = 0; e < n; e++) {
      gboolean taken = FALSE;
      for (int i = 0; i < j && !taken; i++)
        taken = idx[i] == e;
      if (!taken && (best < 0 || scores[e] > scores[best]))
        best = e;
    }
    idx[j] = best;
  }
}

static int
compare_i32 (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Router of one token: @logits [E] -> @idx [k] (ascending) and @w [k]. */
static void
route_token (dsocr_decoder_state *s, const float *bias_f32, float *logits, int32_t *idx,
             float *w)
{
  const dsocr_text_config *t = &s->model->config->text;
  const int E = t->n_routed_experts, k = t->num_experts_per_tok;
  const int n_group = t->n_group > 0 ? t->n_group : 1, per_group = E / n_group;
  float *choice = s->choice;            // [E] scores used to choose (biased for noaux_tc)
  float *group_score = s->group_score;  // [n_group]
  int32_t *kept = s->kept;              // [topk_group]
  float sum = 0.0f;

  if (t->scoring_func == DSOCR_SCORING_SIGMOID) {
    for (int e = 0; e < E; e++)
      logits[e] = 1.0f / (1.0f + expf (-logits[e]));
  } else {
    dsk_softmax_f32_cpu (logits, logits, NULL, 0, 1, (size_t) E);
  }
  for (int e = 0; e < E; e++)
    choice[e] = logits[e] + (bias_f32 ? bias_f32[e] : 0.0f);

  if (t->topk_method != DSOCR_TOPK_GREEDY && n_group > 1) {
    const int topk_group = t->topk_group > 0 ? t->topk_group : 1;
    for (int g = 0; g < n_group; g++) {
      const float *cg = choice + g * per_group;
      if (t->topk_method == DSOCR_TOPK_NOAUX_TC) {
        int32_t two[2];   // the two best biased scores of the group
        top_k (cg, per_group, MIN (2, per_group), two);
        group_score[g] = cg[two[0]] + (per_group > 1 ? cg[two[1]] : 0.0f);
      } else {
        float best = cg[0];   // group_limited_greedy: the group's best probability
        for (int e = 1; e < per_group; e++)
          best = MAX (best, cg[e]);
        group_score[g] = best;
      }
    }
    top_k (group_score, n_group, topk_group, kept);
    for (int g = 0; g < n_group; g++) {
      gboolean keep = FALSE;
      for (int i = 0; i < topk_group && !keep; i++)
        keep = kept[i] == g;
      /* transformers fills dropped groups with -inf for noaux_tc, 0.0 for
       * group_limited_greedy */
      if (!keep)
        for (int e = 0; e < per_group; e++)
          choice[g * per_group + e] = t->topk_method == DSOCR_TOPK_NOAUX_TC ? -INFINITY : 0.0f;
    }
  }
  top_k (choice, E, k, idx);
  qsort (idx, (size_t) k, sizeof *idx, compare_i32);
  for (int j = 0; j < k; j++) {
    /* group_limited_greedy weighs with the masked scores (0 for a dropped group) */
    w[j] = t->topk_method == DSOCR_TOPK_GROUP_LIMITED_GREEDY ? choice[idx[j]] : logits[idx[j]];
    sum += w[j];
  }
  if (t->norm_topk_prob && (k > 1 || t->topk_method == DSOCR_TOPK_NOAUX_TC)) {
    for (int j = 0; j < k; j++)
      w[j] = w[j] / (sum + 1e-20f);
  }
  for (int j = 0; j < k; j++)
    w[j] = w[j] * (float) t->routed_scaling_factor;
}

/* ---- expert kernel ----
 *
 * The MoE block runs as one parallel region: every (expert, block of weight rows) is a work
 * item taken dynamically by whichever thread is free, so a layer costs two barriers instead
 * of a fork/join per matrix product, and a thread slowed by another process on the machine
 * does not hold the others up. An item multiplies all of the expert's tokens by its rows of
 * W, which are read from memory once: with several tokens the rows are first widened to f32
 * in the thread's scratch (and reused from cache by every token), with one token (decode) they
 * are widened in registers as they stream by. dsk's matmul has no entry point for a row block
 * of many experts in one parallel region, hence this kernel.
 *
 * A tile computes out[t][r] = x_t · w_r for 4 token rows and 4 weight rows with f32
 * accumulation, compiled for AVX-512 and AVX2 (chosen at run time) and as plain C. */

#define ROW_BLOCK 16  /* weight rows per work item */

static inline float
weight_at (const void *w, dsk_dtype dt, size_t i)
{
  if (dt == DSK_BF16)
    return dsk_bf16_to_f32 (((const uint16_t *) w)[i]);
  if (dt == DSK_F16)
    return dsk_f16_to_f32 (((const uint16_t *) w)[i]);
  return ((const float *) w)[i];
}

static inline void
tile_generic_body (const tile_args *a, int nt, dsk_dtype dt, size_t in, float out[TILE][TILE])
{
  for (int t = 0; t < nt; t++)
    for (int r = 0; r < TILE; r++) {
      float acc = 0.0f;
      for (size_t k = 0; k < in; k++)
        acc += a->x[t][k] * weight_at (a->w[r], dt, k);
      out[t][r] = acc;
    }
}

static void
widen_generic_bf16 (float *dst, const void *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = dsk_bf16_to_f32 (((const uint16_t *) src)[i]);
}

static void
widen_generic_f16 (float *dst, const void *src, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = dsk_f16_to_f32 (((const uint16_t *) src)[i]);
}

#define TILE_WRAPPERS(NAME, ATTR, BODY)                                                       \
  static ATTR void NAME##_f32 (const tile_args *a, int nt, size_t in, float out[TILE][TILE])  \
  {                                                                                           \
    BODY (a, nt, DSK_F32, in, out);                                                           \
  }                                                                                           \
  static ATTR void NAME##_bf16 (const tile_args *a, int nt, size_t in, float out[TILE][TILE]) \
  {                                                                                           \
    BODY (a, nt, DSK_BF16, in, out);                                                          \
  }                                                                                           \
  static ATTR void NAME##_f16 (const tile_args *a, int nt, size_t in, float out[TILE][TILE])  \
  {                                                                                           \
    BODY (a, nt, DSK_F16, in, out);                                                           \
  }

TILE_WRAPPERS (tile_generic, , tile_generic_body)

static const tile_impl impl_generic = {
  .tile = { [DSK_F32] = tile_generic_f32, [DSK_BF16] = tile_generic_bf16,
            [DSK_F16] = tile_generic_f16 },
  .widen = { [DSK_BF16] = widen_generic_bf16, [DSK_F16] = widen_generic_f16 },
};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_TILES 1
#include <immintrin.h>

typedef float vf16 __attribute__ ((vector_size (64)));
typedef float vf8 __attribute__ ((vector_size (32)));

static inline __attribute__ ((always_inline, target ("avx512f,fma"))) vf16
load_avx512 (const void *w, dsk_dtype dt, size_t k)
{
  __m512 f;
  vf16 v;
  if (dt == DSK_F32)
    f = _mm512_loadu_ps ((const float *) w + k);
  else if (dt == DSK_F16)
    f = _mm512_cvtph_ps (_mm256_loadu_si256 ((const __m256i *) ((const uint16_t *) w + k)));
  else
    f = _mm512_castsi512_ps (_mm512_slli_epi32 (
        _mm512_cvtepu16_epi32 (_mm256_loadu_si256 ((const __m256i *) ((const uint16_t *) w + k))),
        16));
  memcpy (&v, &f, sizeof v);
  return v;
}

static inline __attribute__ ((always_inline, target ("avx2,fma,f16c"))) vf8
load_avx2 (const void *w, dsk_dtype dt, size_t k)
{
  __m256 f;
  vf8 v;
  if (dt == DSK_F32)
    f = _mm256_loadu_ps ((const float *) w + k);
  else if (dt == DSK_F16)
    f = _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) ((const uint16_t *) w + k)));
  else
    f = _mm256_castsi256_ps (_mm256_slli_epi32 (
        _mm256_cvtepu16_epi32 (_mm_loadu_si128 ((const __m128i *) ((const uint16_t *) w + k))),
        16));
  memcpy (&v, &f, sizeof v);
  return v;
}

/* One ISA's tile body and widening (VW floats per vector VF, LOAD reads VW weights as f32).
 * Row tails shorter than a vector are summed in plain C. */
#define DEFINE_TILE(NAME, TARGET, VW, VF, LOAD)                                              \
  static inline __attribute__ ((always_inline, target (TARGET))) void                        \
  NAME##_body (const tile_args *a, int nt, dsk_dtype dt, size_t in, float out[TILE][TILE])  \
  {                                                                                          \
    VF acc[TILE][TILE];                                                                      \
    size_t k = 0;                                                                            \
    memset (acc, 0, sizeof acc);                                                             \
    if (nt == 1) {                                                                           \
      for (; k + VW <= in; k += VW) {                                                        \
        VF xv;                                                                               \
        memcpy (&xv, a->x[0] + k, sizeof xv);                                                \
        for (int r = 0; r < TILE; r++)                                                       \
          acc[0][r] += xv * LOAD (a->w[r], dt, k);                                           \
      }                                                                                      \
    } else {                                                                                 \
      for (; k + VW <= in; k += VW) {                                                        \
        VF xv[TILE], wv[TILE];                                                               \
        for (int t = 0; t < TILE; t++)                                                       \
          memcpy (&xv[t], a->x[t] + k, sizeof xv[t]);                                        \
        for (int r = 0; r < TILE; r++)                                                       \
          wv[r] = LOAD (a->w[r], dt, k);                                                     \
        for (int t = 0; t < TILE; t++)                                                       \
          for (int r = 0; r < TILE; r++)                                                     \
            acc[t][r] += xv[t] * wv[r];                                                      \
      }                                                                                      \
    }                                                                                        \
    for (int t = 0; t < nt; t++)                                                             \
      for (int r = 0; r < TILE; r++) {                                                       \
        float sum = 0.0f;                                                                    \
        for (int l = 0; l < VW; l++)                                                         \
          sum += acc[t][r][l];                                                               \
        for (size_t kk = k; kk < in; kk++)                                                   \
          sum += a->x[t][kk] * weight_at (a->w[r], dt, kk);                                  \
        out[t][r] = sum;                                                                     \
      }                                                                                      \
  }                                                                                          \
  TILE_WRAPPERS (NAME, __attribute__ ((target (TARGET))), NAME##_body)                       \
  static __attribute__ ((target (TARGET))) void                                              \
  NAME##_widen_bf16 (float *dst, const void *src, size_t n)                                  \
  {                                                                                          \
    size_t k = 0;                                                                            \
    for (; k + VW <= n; k += VW) {                                                           \
      VF v = LOAD (src, DSK_BF16, k);                                                        \
      memcpy (dst + k, &v, sizeof v);                                                        \
    }                                                                                        \
    widen_generic_bf16 (dst + k, (const uint16_t *) src + k, n - k);                         \
  }                                                                                          \
  static __attribute__ ((target (TARGET))) void                                              \
  NAME##_widen_f16 (float *dst, const void *src, size_t n)                                   \
  {                                                                                          \
    size_t k = 0;                                                                            \
    for (; k + VW <= n; k += VW) {                                                           \
      VF v = LOAD (src, DSK_F16, k);                                                         \
      memcpy (dst + k, &v, sizeof v);                                                        \
    }                                                                                        \
    widen_generic_f16 (dst + k, (const uint16_t *) src + k, n - k);                          \
  }                                                                                          \
  static const tile_impl impl_##NAME = {                                                     \
    .tile = { [DSK_F32] = NAME##_f32, [DSK_BF16] = NAME##_bf16, [DSK_F16] = NAME##_f16 },    \
    .widen = { [DSK_BF16] = NAME##_widen_bf16, [DSK_F16] = NAME##_widen_f16 },               \
  };

DEFINE_TILE (tile_avx512, "avx512f,fma", 16, vf16, load_avx512)
DEFINE_TILE (tile_avx2, "avx2,fma,f16c", 8, vf8, load_avx2)

/* 8 weight rows x 16 nv tokens: each weight is broadcast against a vector of 16 tokens, so the
 * 16 nv accumulators hold finished outputs (no horizontal sums). */
static inline __attribute__ ((always_inline, target ("avx512f,fma"))) void
packed_avx512_body (const float *w, size_t in, const float *xp, size_t ldx, int nv,
                    float out[8][32])
{
  __m512 acc[8][2];

  for (int r = 0; r < 8; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps ();
  for (size_t k = 0; k < in; k++) {
    const __m512 x0 = _mm512_loadu_ps (xp + k * ldx);
    const __m512 x1 = nv == 2 ? _mm512_loadu_ps (xp + k * ldx + 16) : x0;
    for (int r = 0; r < 8; r++) {
      const __m512 wv = _mm512_set1_ps (w[r * in + k]);
      acc[r][0] = _mm512_fmadd_ps (wv, x0, acc[r][0]);
      if (nv == 2)
        acc[r][1] = _mm512_fmadd_ps (wv, x1, acc[r][1]);
    }
  }
  for (int r = 0; r < 8; r++) {
    _mm512_storeu_ps (out[r], acc[r][0]);
    if (nv == 2)
      _mm512_storeu_ps (out[r] + 16, acc[r][1]);
  }
}

static __attribute__ ((target ("avx512f,fma"))) void
packed_avx512 (const float *w, size_t in, const float *xp, size_t ldx, int nv, float out[8][32])
{
  if (nv == 2)
    packed_avx512_body (w, in, xp, ldx, 2, out);
  else
    packed_avx512_body (w, in, xp, ldx, 1, out);
}
#endif

static gboolean force_generic;

void
dsocr_decoder_force_generic (gboolean on)
{
  force_generic = on;
}

static const tile_impl *
pick_tile (void)
{
  if (force_generic)
    return &impl_generic;
#ifdef HAVE_X86_TILES
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("fma")) {
    static tile_impl with_packed;
    with_packed = impl_tile_avx512;
    with_packed.packed = packed_avx512;
    return &with_packed;
  }
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma") &&
      __builtin_cpu_supports ("f16c"))
    return &impl_tile_avx2;
#endif
  return &impl_generic;
}

/* y[i][0 .. nr) = x_i · W[r0 .. r0 + nr)^T for the @n rows @x_rows[i]. With at least a tile of
 * tokens, the weight rows are widened into @wbuf [ROW_BLOCK, in] first. */
static void
rows_product (const tile_impl *impl, const float *const *x_rows, int n, const dsocr_linear *lin,
              int r0, int nr, float *y, size_t ldy, float *wbuf)
{
  const size_t in = (size_t) lin->n_in;
  dsk_dtype dtype = (dsk_dtype) lin->w->dtype;
  const char *w = (const char *) lin->w->data + (size_t) r0 * in * dsk_dtype_size (dtype);
  size_t es = dsk_dtype_size (dtype);
  float out[TILE][TILE];
  tile_fn tile;

  if (n >= TILE && dtype != DSK_F32) {
    impl->widen[dtype] (wbuf, w, (size_t) nr * in);
    w = (const char *) wbuf;
    dtype = DSK_F32;
    es = sizeof (float);
  }
  tile = impl->tile[dtype];
  for (int rb = 0; rb < nr; rb += TILE) {
    tile_args a;
    int wr = MIN (TILE, nr - rb);
    for (int r = 0; r < TILE; r++)   // short blocks repeat their first row; its results are dropped
      a.w[r] = w + (size_t) (rb + (r < wr ? r : 0)) * in * es;
    for (int i0 = 0; i0 < n; i0 += TILE) {
      int nt = MIN (TILE, n - i0);
      for (int t = 0; t < TILE; t++)
        a.x[t] = x_rows[i0 + (t < nt ? t : 0)];
      tile (&a, nt == 1 ? 1 : TILE, in, out);
      for (int t = 0; t < nt; t++)
        for (int r = 0; r < wr; r++)
          y[(size_t) (i0 + t) * ldy + rb + r] = out[t][r];
    }
  }
}

/* Tokens at which a product switches from the tiles to the packed kernel (a test hook may
 * lower it). */
static int pack_min = 16;

void
dsocr_decoder_set_pack_min (int n)
{
  pack_min = n > 0 ? n : 16;
}

/* xp[k][t] = x_t[k] for the n rows @x_rows, zero for t in [n, npad). */
static void
pack_rows (float *xp, int npad, const float *const *x_rows, int n, size_t in)
{
  for (size_t k = 0; k < in; k++) {
    float *d = xp + k * (size_t) npad;
    for (int t = 0; t < n; t++)
      d[t] = x_rows[t][k];
    for (int t = n; t < npad; t++)
      d[t] = 0.0f;
  }
}

/* dst[r * ld_r + t * ld_t] = W[r0 + r] · x_t for r < nr, t < n, x packed [in][npad]. The rows
 * are widened into @wbuf [ROW_BLOCK (rounded up to 8), in] first. */
static void
rows_product_packed (const tile_impl *impl, const float *xp, int npad, int n,
                     const dsocr_linear *lin, int r0, int nr, float *dst, size_t ld_r,
                     size_t ld_t, float *wbuf)
{
  const size_t in = (size_t) lin->n_in;
  const dsk_dtype dtype = (dsk_dtype) lin->w->dtype;
  const char *w = (const char *) lin->w->data + (size_t) r0 * in * dsk_dtype_size (dtype);
  const int nr8 = (nr + 7) / 8 * 8;
  float out[8][32];

  if (dtype == DSK_F32)
    memcpy (wbuf, w, sizeof (float) * (size_t) nr * in);
  else
    impl->widen[dtype] (wbuf, w, (size_t) nr * in);
  memset (wbuf + (size_t) nr * in, 0, sizeof (float) * (size_t) (nr8 - nr) * in);
  for (int rg = 0; rg < nr; rg += 8) {
    const int wr = MIN (8, nr - rg);
    for (int tg = 0; tg < npad; tg += 32) {
      const int nv = npad - tg >= 32 ? 2 : 1, nt = MIN (16 * nv, n - tg);
      impl->packed (wbuf + (size_t) rg * in, in, xp + tg, (size_t) npad, nv, out);
      for (int r = 0; r < wr; r++)
        for (int t = 0; t < nt; t++)
          dst[(size_t) (rg + r) * ld_r + (size_t) (tg + t) * ld_t] = out[r][t];
    }
  }
}

/* silu(gate) * up for rows [r0, r0 + nr) of one expert, into hid [n, ld] at column r0. */
static void
item_gate_up (const tile_impl *impl, const expert_job *j, const float *const *x_rows, int r0,
              int nr, float *hid, size_t ld, float *scratch /* [2 n + in, ROW_BLOCK] */)
{
  float *g = scratch, *u = scratch + (size_t) j->n * ROW_BLOCK, *wbuf = u + (size_t) j->n * ROW_BLOCK;

  if (j->npad) {
    /* gate and up as [nr][npad], then silu(g) * u straight into the packed hidden rows */
    float *hp = j->hp + (size_t) r0 * j->npad;
    u = scratch + (size_t) ROW_BLOCK * j->npad;
    wbuf = u + (size_t) ROW_BLOCK * j->npad;
    rows_product_packed (impl, j->xp, j->npad, j->npad, j->gate, r0, nr, scratch,
                         (size_t) j->npad, 1, wbuf);
    rows_product_packed (impl, j->xp, j->npad, j->npad, j->up, r0, nr, u, (size_t) j->npad, 1,
                         wbuf);
    for (size_t i = 0; i < (size_t) nr * j->npad; i++) {
      float a = scratch[i];
      hp[i] = a / (1.0f + expf (-a)) * u[i];
    }
    return;
  }
  rows_product (impl, x_rows, j->n, j->gate, r0, nr, g, ROW_BLOCK, wbuf);
  rows_product (impl, x_rows, j->n, j->up, r0, nr, u, ROW_BLOCK, wbuf);
  for (int i = 0; i < j->n; i++)
    for (int r = 0; r < nr; r++) {
      float a = g[(size_t) i * ROW_BLOCK + r];
      hid[(size_t) i * ld + r0 + r] = a / (1.0f + expf (-a)) * u[(size_t) i * ROW_BLOCK + r];
    }
}

/* Gate/up, then down, of every job, as one parallel region. hid [slots, inter_max],
 * outb [slots, n_embd]. */
static void
run_experts (dsocr_decoder_state *s, const expert_job *jobs, int n_jobs, const float *xn,
             size_t H, float *hid, size_t inter_max, float *outb, const float **xr_buf,
             float *scratch, size_t scratch_per_thread)
{
  int n_a = 0, n_b = 0;
  int32_t *items_a = s->items, *items_b;   // (job, first row) pairs

  for (int j = 0; j < n_jobs; j++)
    for (int r = 0; r < jobs[j].gate->n_out; r += ROW_BLOCK, n_a++) {
      items_a[2 * n_a] = j;
      items_a[2 * n_a + 1] = r;
    }
  items_b = items_a + 2 * n_a;
  for (int j = 0; j < n_jobs; j++)
    for (int r = 0; r < (int) H; r += ROW_BLOCK, n_b++) {
      items_b[2 * n_b] = j;
      items_b[2 * n_b + 1] = r;
    }
  /* x row pointers of every job: xn rows for gate/up; hidden rows for down */
  {
    size_t off = 0;
    for (int j = 0; j < n_jobs; j++)
      for (int i = 0; i < jobs[j].n; i++, off++)
        xr_buf[off] = xn + (size_t) (jobs[j].rows ? jobs[j].rows[i] : i) * H;
    for (int j = 0; j < n_jobs; j++)
      for (int i = 0; i < jobs[j].n; i++, off++)
        xr_buf[off] = hid + (jobs[j].slot0 + (size_t) i) * inter_max;
  }

  /* below a few MFLOP the region's fork/join and barriers cost more than they save */
  double flops = 0.0;
  for (int j = 0; j < n_jobs; j++)
    flops += 6.0 * jobs[j].n * jobs[j].gate->n_out * (double) H;

#pragma omp parallel num_threads (s->n_threads > 0 ? s->n_threads : 1) if (flops >= 4e6)
  {
#ifdef _OPENMP
    float *mine = scratch + (size_t) omp_get_thread_num () * scratch_per_thread;
#else
    float *mine = scratch;
#endif
    const size_t n_slots = jobs[n_jobs - 1].slot0 + (size_t) jobs[n_jobs - 1].n;

#pragma omp for schedule (dynamic, 1)
    for (int j = 0; j < n_jobs; j++)
      if (jobs[j].npad)
        pack_rows (jobs[j].xp, jobs[j].npad, xr_buf + jobs[j].slot0, jobs[j].n, H);

#pragma omp for schedule (dynamic, 2)
    for (int it = 0; it < n_a; it++) {
      const expert_job *j = &jobs[items_a[2 * it]];
      int r0 = items_a[2 * it + 1];
      item_gate_up (s->tile, j, xr_buf + j->slot0, r0, MIN (ROW_BLOCK, j->gate->n_out - r0),
                    hid + j->slot0 * inter_max, inter_max, mine);
    }
#pragma omp for schedule (dynamic, 2)
    for (int it = 0; it < n_b; it++) {
      const expert_job *j = &jobs[items_b[2 * it]];
      int r0 = items_b[2 * it + 1];
      if (j->npad)
        rows_product_packed (s->tile, j->hp, j->npad, j->n, j->down, r0,
                             MIN (ROW_BLOCK, (int) H - r0), outb + j->slot0 * H + r0, 1, H, mine);
      else
        rows_product (s->tile, xr_buf + n_slots + j->slot0, j->n, j->down, r0,
                      MIN (ROW_BLOCK, (int) H - r0), outb + j->slot0 * H + r0, H, mine);
    }
  }
}

/* y[n, out] = x[n, in] W^T (+ b) with the expert kernel, parallel over blocks of W rows. */
static gboolean
linear_tiles (dsocr_decoder_state *s, float *y, const float *x, const dsocr_linear *lin, size_t n,
              GError **error)
{
  const size_t in = (size_t) lin->n_in, out = (size_t) lin->n_out;
  const int n_threads = s->n_threads > 0 ? s->n_threads : 1;
  const size_t per_thread = ROW_BLOCK * in;
  const int n_items = (int) ((out + ROW_BLOCK - 1) / ROW_BLOCK);
  const int npad = s->tile->packed && (int) n >= pack_min ? (int) (n + 15) / 16 * 16 : 0;

  if (npad && !ensure (&s->xpack, in * npad, error))
    return FALSE;
  if (s->xr_cap < n) {
    s->xr_cap = n;
    s->xr = g_renew (const float *, s->xr, s->xr_cap);
  }
  if (!ensure (&s->routed, n_threads * per_thread, error))
    return FALSE;
  for (size_t i = 0; i < n; i++)
    s->xr[i] = x + i * in;

#pragma omp parallel num_threads (n_threads) if (6.0 * n * in * out >= 4e6)
  {
#ifdef _OPENMP
    float *mine = s->routed.data + (size_t) omp_get_thread_num () * per_thread;
#else
    float *mine = s->routed.data;
#endif
    if (npad) {
      /* pack x once: xp[k][t], in chunks of 64 values of k */
#pragma omp for schedule (static)
      for (size_t k0 = 0; k0 < in; k0 += 64) {
        const size_t kn = MIN ((size_t) 64, in - k0);
        for (size_t kk = 0; kk < kn; kk++) {
          float *d = s->xpack.data + (k0 + kk) * npad;
          for (size_t t = 0; t < n; t++)
            d[t] = x[t * in + k0 + kk];
          for (size_t t = n; t < (size_t) npad; t++)
            d[t] = 0.0f;
        }
      }
    }
#pragma omp for schedule (dynamic, 2)
    for (int it = 0; it < n_items; it++) {
      int r0 = it * ROW_BLOCK;
      if (npad)
        rows_product_packed (s->tile, s->xpack.data, npad, (int) n, lin, r0,
                             MIN (ROW_BLOCK, (int) out - r0), y + r0, 1, out, mine);
      else
        rows_product (s->tile, s->xr, (int) n, lin, r0, MIN (ROW_BLOCK, (int) out - r0), y + r0,
                      out, mine);
      if (lin->b)
        for (size_t i = 0; i < n; i++)
          for (int r = r0; r < MIN (r0 + ROW_BLOCK, (int) out); r++)
            y[i * out + r] += weight_at (lin->b->data, dt (lin->b), (size_t) r);
    }
  }
  return TRUE;
}

static gboolean
moe (dsocr_decoder_state *s, const dsocr_layer *ly, int il, size_t T, float *out,
     int n_seq, int n_tokens, dsocr_tensor_callback callback, gpointer user_data, GError **error)
{
  const dsocr_text_config *t = &s->model->config->text;
  const int E = t->n_routed_experts, k = t->num_experts_per_tok;
  const size_t H = t->hidden_size;
  const size_t inter_max = (size_t) MAX (t->moe_intermediate_size,
                                         ly->has_shared ? ly->sh_gate.n_out : 0);
  const size_t n_slots = T * k + (ly->has_shared ? T : 0);
  const int n_threads = s->n_threads > 0 ? s->n_threads : 1;
  /* per thread: gate and up results of an item, then one widened weight block */
  const size_t scratch_per_thread = (2 * (T + 16) + MAX (H, inter_max)) * ROW_BLOCK;
  expert_job *jobs;
  int n_jobs = 0;
  float *logits, *outb;

  if (!ensure (&s->logits_r, T * E, error) || !ensure (&s->gate, n_slots * inter_max, error) ||
      !ensure (&s->up, n_slots * H, error) ||
      !ensure (&s->routed, n_threads * scratch_per_thread, error))
    return FALSE;
  if (s->route_cap < T * k) {
    s->route_cap = T * k;
    s->topk_idx = g_renew (int32_t, s->topk_idx, T * k);
    s->topk_w = g_renew (float, s->topk_w, T * k);
    s->exp_rows = g_renew (int32_t, s->exp_rows, T * k);
    s->slot_of = g_renew (int32_t, s->slot_of, T * k);
  }
  if (s->xr_cap < 2 * n_slots) {
    s->xr_cap = 2 * n_slots;
    s->xr = g_renew (const float *, s->xr, s->xr_cap);
  }
  {
    /* work items: gate/up blocks of every job, then down blocks */
    size_t n_items = (size_t) (E + 1) * ((inter_max + ROW_BLOCK - 1) / ROW_BLOCK) +
                     (size_t) (E + 1) * ((H + ROW_BLOCK - 1) / ROW_BLOCK);
    if (s->items_cap < n_items) {
      s->items_cap = n_items;
      s->items = g_renew (int32_t, s->items, 2 * n_items);
    }
  }
  if (ly->router_bias)
    dsk_convert_to_f32_cpu (s->bias_f32, ly->router_bias->data, dt (ly->router_bias),
                            (size_t) E);

  /* Router logits in f32 from the f32 activations and the widened weight. */
  logits = s->logits_r.data;
  dsk_matmul_f32_cpu (logits, s->xn.data, ly->router->data, dt (ly->router), NULL, DSK_F32, T, H,
                      (size_t) E, NULL);
  for (size_t i = 0; i < T; i++)
    route_token (s, ly->router_bias ? s->bias_f32 : NULL, logits + i * E, s->topk_idx + i * k,
                 s->topk_w + i * k);

  if (callback) {
    dsocr_tensor ti = { .name = "router.topk_idx" }, tw = { .name = "router.topk_weight" };
    const int64_t shape[3] = { n_seq, n_tokens, k };
    dsocr_tensor_init (&ti, DSOCR_DTYPE_I32, 3, shape, NULL);
    dsocr_tensor_init (&tw, DSOCR_DTYPE_F32, 3, shape, NULL);
    ti.data = s->topk_idx;
    tw.data = s->topk_w;
    callback (&ti, il, user_data);
    callback (&tw, il, user_data);
  }

  /* Group the tokens by expert (ascending within an expert); slot_of maps each (token,
   * choice) to its row in the expert buffers. */
  memset (s->exp_count, 0, sizeof (int) * (E + 1));
  for (size_t i = 0; i < T * k; i++)
    s->exp_count[s->topk_idx[i] + 1]++;
  for (int e = 0; e < E; e++)
    s->exp_count[e + 1] += s->exp_count[e];
  memcpy (s->exp_fill, s->exp_count, sizeof (int) * E);
  for (size_t i = 0; i < T * k; i++) {
    int e = s->topk_idx[i];
    s->exp_rows[s->exp_fill[e]] = (int32_t) (i / k);
    s->slot_of[i] = s->exp_fill[e]++;
  }
  jobs = s->jobs;
  for (int e = 0; e < E; e++) {
    int n = s->exp_count[e + 1] - s->exp_count[e];
    if (n > 0)
      jobs[n_jobs++] = (expert_job) { &ly->exp_gate[e], &ly->exp_up[e], &ly->exp_down[e], n,
                                      s->exp_rows + s->exp_count[e], (size_t) s->exp_count[e] };
  }
  if (ly->has_shared)
    jobs[n_jobs++] = (expert_job) { &ly->sh_gate, &ly->sh_up, &ly->sh_down, (int) T, NULL,
                                    T * k };
  {
    /* jobs with many tokens take the packed kernel: their inputs and hidden rows are packed */
    size_t xp_total = 0, hp_total = 0;
    for (int j = 0; j < n_jobs; j++) {
      jobs[j].npad = s->tile->packed && jobs[j].n >= pack_min ? (jobs[j].n + 15) / 16 * 16 : 0;
      xp_total += (size_t) jobs[j].npad * H;
      hp_total += (size_t) jobs[j].npad * jobs[j].gate->n_out;
    }
    if (!ensure (&s->xpack, MAX (xp_total, 1), error) ||
        !ensure (&s->hpack, MAX (hp_total, 1), error))
      return FALSE;
    xp_total = hp_total = 0;
    for (int j = 0; j < n_jobs; j++) {
      jobs[j].xp = s->xpack.data + xp_total;
      jobs[j].hp = s->hpack.data + hp_total;
      xp_total += (size_t) jobs[j].npad * H;
      hp_total += (size_t) jobs[j].npad * jobs[j].gate->n_out;
    }
  }

  outb = s->up.data;   // [n_slots, H]
  run_experts (s, jobs, n_jobs, s->xn.data, H, s->gate.data, inter_max, outb, s->xr,
               s->routed.data, scratch_per_thread);

  /* The routed sum in f32, experts in ascending id order (the reference's index_add_ loop),
   * then the shared experts. */
#pragma omp parallel for schedule (static) num_threads (n_threads) if (T * H >= 65536)
  for (size_t i = 0; i < T; i++) {
    float *o = out + i * H;
    memset (o, 0, sizeof (float) * H);
    for (int j = 0; j < k; j++) {
      const float w = s->topk_w[i * k + j], *e = outb + (size_t) s->slot_of[i * k + j] * H;
      for (size_t c = 0; c < H; c++)
        o[c] = o[c] + e[c] * w;
    }
    if (ly->has_shared) {
      const float *sh = outb + (T * k + i) * H;
      for (size_t c = 0; c < H; c++)
        o[c] = o[c] + sh[c];
    }
  }
  return TRUE;
}

/* ---- the layer loop ---- */

static void
emit (dsocr_tensor_callback callback, gpointer user_data, const char *name, int layer,
      const float *data, int n_seq, int n_tokens, int n_embd)
{
  dsocr_tensor t = { .name = name };
  const int64_t shape[3] = { n_seq, n_tokens, n_embd };

  if (!callback)
    return;
  dsocr_tensor_init (&t, DSOCR_DTYPE_F32, 3, shape, NULL);
  t.data = (void *) data;
  callback (&t, layer, user_data);
}

gboolean
dsocr_decoder_forward (dsocr_decoder_state *s, dsocr_kv_cache *cache, int n_seq, int n_tokens,
                       float *x, const int32_t *positions, float *out,
                       dsocr_tensor_callback callback, gpointer user_data, GError **error)
{
  const dsocr_model *m = s->model;
  const dsocr_text_config *t = &m->config->text;
  const size_t T = (size_t) n_seq * n_tokens, H = t->hidden_size, nh = t->num_attention_heads;
  size_t q_w, att_w, inter = 0;
  int32_t max_pos = 0;

#ifdef _OPENMP
  if (s->n_threads > 0)
    omp_set_num_threads (s->n_threads);
#endif
  for (size_t i = 0; i < T; i++)
    max_pos = MAX (max_pos, positions[i]);
  if (!ensure_rope (s, max_pos, error))
    return FALSE;

  /* Scratch sizes of this call. */
  if (t->use_mla) {
    const size_t qk = t->qk_nope_head_dim + t->qk_rope_head_dim;
    q_w = nh * qk;
    att_w = nh * MAX ((size_t) t->v_head_dim, (size_t) t->kv_lora_rank);
    if (!ensure (&s->k, T * (t->kv_lora_rank + t->qk_rope_head_dim), error))
      return FALSE;
  } else {
    q_w = nh * t->head_dim;
    att_w = q_w;
    if (!ensure (&s->k, T * t->num_key_value_heads * t->head_dim, error) ||
        !ensure (&s->v, T * t->num_key_value_heads * t->head_dim, error))
      return FALSE;
  }
  for (int l = 0; l < m->n_layers; l++) {
    const dsocr_layer *ly = &m->layers[l];
    inter = MAX (inter, (size_t) (ly->is_moe ? t->moe_intermediate_size * MAX (1, t->n_shared_experts)
                                             : t->intermediate_size));
  }
  if (!ensure (&s->xn, T * H, error) || !ensure (&s->q, T * q_w, error) ||
      !ensure (&s->att, T * att_w, error) || !ensure (&s->proj, T * H, error) ||
      !ensure (&s->gate, T * inter, error) || !ensure (&s->up, T * inter, error))
    return FALSE;

  emit (callback, user_data, "embeddings", -1, x, n_seq, n_tokens, (int) H);
  for (int l = 0; l < m->n_layers; l++) {
    const dsocr_layer *ly = &m->layers[l];

    rmsnorm (s->xn.data, x, ly->attn_norm, T, H, H, t->rms_norm_eps);
    if (t->use_mla) {
      if (!attention_mla (s, ly, l, cache, n_seq, n_tokens, positions, s->proj.data, error))
        return FALSE;
    } else {
      attention_mha (s, ly, l, cache, n_seq, n_tokens, positions, s->proj.data);
    }
    for (size_t i = 0; i < T * H; i++)
      x[i] = x[i] + s->proj.data[i];

    rmsnorm (s->xn.data, x, ly->ffn_norm, T, H, H, t->rms_norm_eps);
    if (ly->is_moe) {
      if (!moe (s, ly, l, T, s->proj.data, n_seq, n_tokens, callback, user_data, error))
        return FALSE;
    } else {
      swiglu_mlp (s, &ly->gate, &ly->up, &ly->down, T, s->proj.data);
    }
    for (size_t i = 0; i < T * H; i++)
      x[i] = x[i] + s->proj.data[i];
    emit (callback, user_data, "hidden", l, x, n_seq, n_tokens, (int) H);
  }
  rmsnorm (out, x, m->norm, T, H, H, t->rms_norm_eps);
  emit (callback, user_data, "final_norm", -1, out, n_seq, n_tokens, (int) H);
  return TRUE;
}

void
dsocr_decoder_lm_head (dsocr_decoder_state *s, const float *h, int n, float *logits)
{
  project (s, logits, h, &s->model->lm_head, (size_t) n);
}

void
dsocr_decoder_score (const dsocr_model *model, const float *h, int n, float *logits)
{
  linear (logits, h, &model->score, (size_t) n);
}
