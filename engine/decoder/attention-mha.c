/* attention-mha.c: multi-head attention layers (use_mla false): q, k, v projections,
 * rotate-half RoPE over the whole head, the cache append, causal attention of every row over
 * its cache, o_proj. Reference: transformers' DeepseekOcr2TextAttention (LlamaAttention). */
#include "decoder.h"

void
dsocr_attention_mha (dsocr_decoder_state *s, const dsocr_layer *ly, int il, const dsk_tensor *xn,
                     const dsk_tensor *out)
{
  dsk_backend *be = s->be;
  const dsocr_text_config *t = &s->model->config->text;
  dsocr_kv_cache *cache = s->cache;
  const size_t R = (size_t) s->n_seq, N = (size_t) s->n_tokens, T = R * N;
  const size_t nh = t->num_attention_heads, nkv = t->num_key_value_heads, hd = t->head_dim;
  const size_t S = (size_t) cache->n_past + N;
  dsk_tensor q = dsk_arena_2d (s->scratch, DSK_F32, T, nh * hd);    /* [T, nh * hd] */
  dsk_tensor k = dsk_arena_2d (s->scratch, DSK_F32, T, nkv * hd);   /* [T, nkv * hd] */
  dsk_tensor v = dsk_arena_2d (s->scratch, DSK_F32, T, nkv * hd);   /* [T, nkv * hd] */
  dsk_tensor att = dsk_arena_2d (s->scratch, DSK_F32, T, nh * hd);  /* [T, nh * hd] */

  dsk_linear (be, &q, xn, &ly->q.w, dsocr_linear_bias (&ly->q));
  dsk_linear (be, &k, xn, &ly->k.w, dsocr_linear_bias (&ly->k));
  dsk_linear (be, &v, xn, &ly->v.w, dsocr_linear_bias (&ly->v));
  {
    dsk_tensor qh = dsk_split (&q, 1, nh, hd);    /* [T, nh, hd] */
    dsk_tensor kh = dsk_split (&k, 1, nkv, hd);   /* [T, nkv, hd] */
    dsk_rope (be, &qh, &s->pos, &s->cos_tab, &s->sin_tab, 0, hd, DSK_ROPE_HALF);
    dsk_rope (be, &kh, &s->pos, &s->cos_tab, &s->sin_tab, 0, hd, DSK_ROPE_HALF);
  }

  /* the new columns join each row's cache */
  {
    dsk_tensor kc = dsocr_kv_cache_k (cache, il, cache->n_past, (int) N);   /* [R, N, nkv*hd] */
    dsk_tensor vc = dsocr_kv_cache_v (cache, il, cache->n_past, (int) N);
    dsk_tensor kr = dsk_split (&k, 0, R, N), vr = dsk_split (&v, 0, R, N);
    dsk_copy (be, &kc, &kr);
    dsk_copy (be, &vc, &vr);
  }

  /* each row's queries over its whole cache */
  {
    dsk_tensor kc = dsocr_kv_cache_k (cache, il, 0, (int) S);    /* [R, S, nkv * hd] */
    dsk_tensor vc = dsocr_kv_cache_v (cache, il, 0, (int) S);
    dsk_tensor mask = dsocr_kv_cache_mask (cache, 0, (int) S);   /* [R, S] */
    dsk_tensor q4 = dsk_split (&q, 0, R, N), a4 = dsk_split (&att, 0, R, N);
    const dsk_attention_desc desc = {
      .scale = (float) t->softmax_scale, .causal = 1, .q_pos0 = (size_t) cache->n_past,
      .key_valid = &mask,
    };
    kc = dsk_split (&kc, 2, nkv, hd);   /* [R, S, nkv, hd] */
    vc = dsk_split (&vc, 2, nkv, hd);
    q4 = dsk_split (&q4, 2, nh, hd);    /* [R, N, nh, hd] */
    a4 = dsk_split (&a4, 2, nh, hd);
    dsk_attention (be, &a4, &q4, &kc, &vc, &desc);
  }
  dsk_linear (be, out, &att, &ly->o.w, dsocr_linear_bias (&ly->o));
}

void
dsocr_attention_mha_cache_widths (const dsocr_text_config *t, int *k_width, int *v_width)
{
  /* post-RoPE keys and the values, per KV head */
  *k_width = *v_width = t->num_key_value_heads * t->head_dim;
}
