/* attention-mla.c: multi-head latent attention (DeepSeek-V2/V3), in two algorithms that give
 * the reference's result at different costs:
 * - expanded (transformers' DeepseekV2Attention): every cached latent is decompressed through
 *   kv_b into per-head keys and values, then plain attention;
 * - absorbed (the reference's decode form): kv_b is folded into the query and the output, and
 *   the heads attend over the compressed cache [c | k_pe] directly.
 * AUTO absorbs when few columns join a longer cache (decode) and expands otherwise (prefill).
 * The query is direct or LoRA (q_a -> q_a_layernorm -> q_b); RoPE covers the q_pe / k_pe part,
 * interleaved pairs unless rope_interleave is false; yarn's mscale^2 is in softmax_scale.
 * DeepSeek-V3.2 layers restrict each query to the keys its indexer picks (indexer.c). */
#include "decoder.h"

#include "indexer.h"

/* The attention of row @r, or its sparse form when the layer has an indexer. */
static gboolean
attend_row (dsocr_decoder_state *s, const dsocr_layer *ly, int r, const dsk_tensor *out,
            const dsk_tensor *q, const dsk_tensor *k, const dsk_tensor *v,
            const dsk_attention_desc *desc, GError **error)
{
  if (ly->indexer)
    return dsocr_indexer_attention (s->indexer, s, r, out, q, k, v, desc, error);
  dsk_attention (s->be, out, q, k, v, desc);
  return TRUE;
}

/* Expanded: att [T, nh * vd] from q [T, nh, qk] and the layer's cached latents. */
static gboolean
expanded (dsocr_decoder_state *s, const dsocr_layer *ly, int il, const dsk_tensor *q,
          const dsk_tensor *att, GError **error)
{
  dsk_backend *be = s->be;
  const dsocr_text_config *t = &s->model->config->text;
  dsocr_kv_cache *cache = s->cache;
  const size_t N = (size_t) s->n_tokens, S = (size_t) cache->n_past + N;
  const size_t nh = t->num_attention_heads, nope = t->qk_nope_head_dim;
  const size_t rope = t->qk_rope_head_dim, vd = t->v_head_dim, qk = nope + rope;
  const size_t kvr = t->kv_lora_rank;
  dsk_tensor kvb = dsk_arena_3d (s->scratch, DSK_F32, S, nh, nope + vd);   /* [S, nh, nope+vd] */
  dsk_tensor kf = dsk_arena_3d (s->scratch, DSK_F32, S, nh, qk);           /* [S, nh, qk] */
  dsk_tensor cache_k = dsocr_kv_cache_k (cache, il, 0, (int) S);          /* [R, S, kvr + rope] */
  dsk_tensor mask = dsocr_kv_cache_mask (cache, 0, (int) S);              /* [R, S] */

  /* row by row: the expanded keys and values are one row's at a time */
  for (int r = 0; r < s->n_seq; r++) {
    dsk_tensor c = dsk_select (&cache_k, 0, (size_t) r);                   /* [S, kvr + rope] */
    dsk_tensor latent = dsk_narrow (&c, 1, 0, kvr);                        /* [S, kvr] */
    dsk_tensor kvb2 = dsk_merge (&kvb, 1);                                 /* [S, nh*(nope+vd)] */
    dsk_tensor k_nope = dsk_narrow (&kf, 2, 0, nope), kb_nope = dsk_narrow (&kvb, 2, 0, nope);
    dsk_tensor k_pe = dsk_narrow (&kf, 2, nope, rope);                     /* [S, nh, rope] */
    dsk_tensor c_pe = dsk_narrow (&c, 1, kvr, rope);                       /* [S, rope] */
    dsk_tensor row_mask = dsk_narrow (&mask, 0, (size_t) r, 1);            /* [1, S] */
    dsk_attention_desc desc = {
      .scale = (float) t->softmax_scale, .causal = 1, .q_pos0 = (size_t) cache->n_past,
      .key_valid = &row_mask,
    };

    dsk_linear (be, &kvb2, &latent, &ly->kv_b.w, NULL);
    /* keys: [k_nope | k_pe], the one rotated k_pe of a column shared by every head */
    dsk_copy (be, &k_nope, &kb_nope);
    c_pe = dsk_split (&c_pe, 1, 1, rope);                                  /* [S, 1, rope] */
    c_pe = dsk_expand (&c_pe, 1, nh);                                      /* [S, nh, rope] */
    dsk_copy (be, &k_pe, &c_pe);
    {
      dsk_tensor q_r = dsk_narrow (q, 0, (size_t) r * N, N);               /* [N, nh, qk] */
      dsk_tensor a_r = dsk_narrow (att, 0, (size_t) r * N, N);             /* [N, nh * vd] */
      dsk_tensor v = dsk_narrow (&kvb, 2, nope, vd);                       /* [S, nh, vd] */
      dsk_tensor q4 = dsk_unsqueeze (&q_r), k4 = dsk_unsqueeze (&kf), v4 = dsk_unsqueeze (&v);
      a_r = dsk_split (&a_r, 1, nh, vd);
      dsk_tensor a4 = dsk_unsqueeze (&a_r);
      if (!attend_row (s, ly, r, &a4, &q4, &k4, &v4, &desc, error))
        return FALSE;
    }
  }
  return TRUE;
}

/* Absorbed: att [T, nh * vd] from q [T, nh, qk] over the compressed cache. */
static gboolean
absorbed (dsocr_decoder_state *s, const dsocr_layer *ly, int il, const dsk_tensor *q,
          const dsk_tensor *att, GError **error)
{
  dsk_backend *be = s->be;
  const dsocr_text_config *t = &s->model->config->text;
  dsocr_kv_cache *cache = s->cache;
  const size_t R = (size_t) s->n_seq, N = (size_t) s->n_tokens, T = R * N;
  const size_t S = (size_t) cache->n_past + N;
  const size_t nh = t->num_attention_heads, nope = t->qk_nope_head_dim;
  const size_t rope = t->qk_rope_head_dim, vd = t->v_head_dim, kvr = t->kv_lora_rank;
  const size_t cw = kvr + rope;
  dsk_tensor qt = dsk_arena_3d (s->scratch, DSK_F32, T, nh, cw);     /* [T, nh, kvr + rope] */
  dsk_tensor lat = dsk_arena_3d (s->scratch, DSK_F32, T, nh, kvr);   /* [T, nh, kvr] */
  dsk_tensor wkvb = dsk_split (&ly->kv_b.w, 0, nh, nope + vd);       /* [nh, nope + vd, kvr] */

  /* q~_h = q_nope_h . W_kb_h (W_kb_h = rows [h (nope+vd), +nope) of kv_b), q_pe_h appended */
  {
    dsk_tensor q_nope = dsk_narrow (q, 2, 0, nope), q_pe = dsk_narrow (q, 2, nope, rope);
    dsk_tensor qt_lat = dsk_narrow (&qt, 2, 0, kvr), qt_pe = dsk_narrow (&qt, 2, kvr, rope);
    dsk_tensor w_kb = dsk_narrow (&wkvb, 1, 0, nope);                 /* [nh, nope, kvr] */
    dsk_tensor y = dsk_transpose (&qt_lat, 0, 1), x = dsk_transpose (&q_nope, 0, 1);
    dsk_matmul (be, &y, &x, &w_kb);                                   /* per head: [T, kvr] */
    dsk_copy (be, &qt_pe, &q_pe);
  }

  /* keys and values: the cached [c | k_pe], one head shared by all */
  {
    dsk_tensor kc = dsocr_kv_cache_k (cache, il, 0, (int) S);        /* [R, S, cw] */
    dsk_tensor vc = dsk_narrow (&kc, 2, 0, kvr);                     /* [R, S, kvr] */
    dsk_tensor mask = dsocr_kv_cache_mask (cache, 0, (int) S);       /* [R, S] */
    dsk_tensor q4 = dsk_split (&qt, 0, R, N), a4 = dsk_split (&lat, 0, R, N);
    dsk_attention_desc desc = {
      .scale = (float) t->softmax_scale, .causal = 1, .q_pos0 = (size_t) cache->n_past,
      .key_valid = &mask,
    };
    kc = dsk_split (&kc, 2, 1, cw);                                  /* [R, S, 1, cw] */
    vc = dsk_split (&vc, 2, 1, kvr);                                 /* [R, S, 1, kvr] */
    if (!ly->indexer) {
      dsk_attention (be, &a4, &q4, &kc, &vc, &desc);
    } else {
      for (size_t r = 0; r < R; r++) {
        dsk_tensor q1 = dsk_narrow (&q4, 0, r, 1), a1 = dsk_narrow (&a4, 0, r, 1);
        dsk_tensor k1 = dsk_narrow (&kc, 0, r, 1), v1 = dsk_narrow (&vc, 0, r, 1);
        dsk_tensor m1 = dsk_narrow (&mask, 0, r, 1);
        desc.key_valid = &m1;
        if (!dsocr_indexer_attention (s->indexer, s, (int) r, &a1, &q1, &k1, &v1, &desc, error))
          return FALSE;
      }
    }
  }

  /* the attended latent goes back through W_vb_h (the vd rows after W_kb_h) */
  for (size_t h = 0; h < nh; h++) {
    dsk_tensor w_vb = dsk_select (&wkvb, 0, h);                      /* [nope + vd, kvr] */
    dsk_tensor lat_h = dsk_select (&lat, 1, h);                      /* [T, kvr] */
    dsk_tensor att_h = dsk_narrow (att, 1, h * vd, vd);              /* [T, vd] */
    w_vb = dsk_narrow (&w_vb, 0, nope, vd);                          /* [vd, kvr] */
    dsk_linear (be, &att_h, &lat_h, &w_vb, NULL);
  }
  return TRUE;
}

gboolean
dsocr_attention_mla (dsocr_decoder_state *s, const dsocr_layer *ly, int il, const dsk_tensor *xn,
                     const dsk_tensor *out, GError **error)
{
  dsk_backend *be = s->be;
  const dsocr_text_config *t = &s->model->config->text;
  dsocr_kv_cache *cache = s->cache;
  const size_t R = (size_t) s->n_seq, N = (size_t) s->n_tokens, T = R * N;
  const size_t nh = t->num_attention_heads, nope = t->qk_nope_head_dim;
  const size_t rope = t->qk_rope_head_dim, vd = t->v_head_dim, qk = nope + rope;
  const size_t kvr = t->kv_lora_rank, cw = kvr + rope;
  const float eps = (float) t->rms_norm_eps;
  const dsk_rope_mode mode = t->rope_interleave ? DSK_ROPE_INTERLEAVED : DSK_ROPE_HALF;
  dsk_tensor q = dsk_arena_3d (s->scratch, DSK_F32, T, nh, qk);   /* [T, nh, nope + rope] */
  dsk_tensor c = dsk_arena_2d (s->scratch, DSK_F32, T, cw);       /* [T, kvr + rope] */
  dsk_tensor att = dsk_arena_2d (s->scratch, DSK_F32, T, nh * vd); /* [T, nh * vd] */
  dsk_tensor q2 = dsk_merge (&q, 1), qa = { 0 };
  gboolean absorb;

  if (t->q_lora_rank > 0) {
    qa = dsk_arena_2d (s->scratch, DSK_F32, T, t->q_lora_rank);    /* [T, q_lora_rank] */
    dsk_linear (be, &qa, xn, &ly->q_a.w, dsocr_linear_bias (&ly->q_a));
    dsk_rmsnorm (be, &qa, &qa, &ly->q_a_norm, eps);
    dsk_linear (be, &q2, &qa, &ly->q_b.w, NULL);
  } else {
    dsk_linear (be, &q2, xn, &ly->q.w, NULL);
  }
  dsk_linear (be, &c, xn, &ly->kv_a.w, dsocr_linear_bias (&ly->kv_a));
  {
    dsk_tensor latent = dsk_narrow (&c, 1, 0, kvr), c3 = dsk_split (&c, 1, 1, cw);
    dsk_rmsnorm (be, &latent, &latent, &ly->kv_a_norm, eps);
    dsk_rope (be, &q, &s->pos, &s->cos_tab, &s->sin_tab, nope, rope, mode);
    dsk_rope (be, &c3, &s->pos, &s->cos_tab, &s->sin_tab, kvr, rope, mode);
  }
  {
    dsk_tensor kc = dsocr_kv_cache_k (cache, il, cache->n_past, (int) N);   /* [R, N, cw] */
    dsk_tensor cr = dsk_split (&c, 0, R, N);
    dsk_copy (be, &kc, &cr);
  }
  if (ly->indexer)
    dsocr_indexer_prepare (s->indexer, s, ly->indexer, il, xn, &qa);

  switch (s->mla_form) {
  case DSOCR_MLA_EXPANDED:
    absorb = FALSE;
    break;
  case DSOCR_MLA_ABSORBED:
    absorb = TRUE;
    break;
  default:
    /* Expanding costs S * kvr * nh * (nope + vd) per row and layer, absorbing about
     * T * S * nh * 2 * kvr: absorb when few columns join a longer cache. */
    absorb = cache->n_past > 0 && 2 * N < nope + vd;
    break;
  }
  if (!(absorb ? absorbed (s, ly, il, &q, &att, error) : expanded (s, ly, il, &q, &att, error)))
    return FALSE;
  dsk_linear (be, out, &att, &ly->o.w, dsocr_linear_bias (&ly->o));
  return TRUE;
}

void
dsocr_attention_mla_cache_widths (const dsocr_text_config *t, int *k_width, int *v_width)
{
  /* the latent c after kv_a_layernorm and the shared rotated k_pe; the DSA indexer's keys
   * (DeepSeek-V3.2) in v */
  *k_width = t->kv_lora_rank + t->qk_rope_head_dim;
  *v_width = t->use_sparse_attention ? t->index_head_dim : 0;
}
