/* moe.c: the MoE feed-forward of a decoder layer: router logits, the router
 * (DeepseekV2TopkRouter / DeepseekV3TopkRouter), the routed experts and the shared experts
 * (DeepseekV2MoE), as ops. The routing rules themselves are the backend's (kernels/cpu/moe.c
 * on the CPU). */
#include "decoder.h"

static dsk_moe_router
router_of (const dsocr_text_config *t)
{
  return (dsk_moe_router) {
    .scoring = t->scoring_func == DSOCR_SCORING_SIGMOID ? DSK_MOE_SIGMOID : DSK_MOE_SOFTMAX,
    .method = t->topk_method == DSOCR_TOPK_NOAUX_TC ? DSK_MOE_NOAUX_TC
              : t->topk_method == DSOCR_TOPK_GROUP_LIMITED_GREEDY ? DSK_MOE_GROUP_LIMITED_GREEDY
              : DSK_MOE_GREEDY,
    .n_experts = t->n_routed_experts,
    .top_k = t->num_experts_per_tok,
    .n_group = t->n_group,
    .topk_group = t->topk_group,
    .norm_topk_prob = t->norm_topk_prob,
    .routed_scaling_factor = (float) t->routed_scaling_factor,
  };
}

void
dsocr_moe_forward (dsocr_decoder_state *s, const dsocr_layer *ly, int il, const dsk_tensor *xn,
                   const dsk_tensor *out)
{
  dsk_backend *be = s->be;
  const dsocr_text_config *t = &s->model->config->text;
  const size_t T = xn->ne[0], E = (size_t) t->n_routed_experts;
  const size_t k = (size_t) t->num_experts_per_tok;
  const dsk_moe_router router = router_of (t);
  const dsk_moe_experts experts = {
    .n_experts = (int) E, .gate = ly->exp_gate, .up = ly->exp_up, .down = ly->exp_down,
    .sh_gate = ly->has_shared ? &ly->sh_gate : NULL,
    .sh_up = ly->has_shared ? &ly->sh_up : NULL,
    .sh_down = ly->has_shared ? &ly->sh_down : NULL,
  };
  dsk_tensor logits = dsk_arena_2d (s->scratch, DSK_F32, T, E);   /* [T, E] router logits */
  dsk_tensor idx = dsk_arena_2d (s->scratch, DSK_I32, T, k);      /* [T, k] experts, ascending */
  dsk_tensor wts = dsk_arena_2d (s->scratch, DSK_F32, T, k);      /* [T, k] their weights */

  /* router logits in f32 from the f32 activations and the widened weight */
  dsk_linear (be, &logits, xn, &ly->router, NULL);
  dsk_moe_route (be, &idx, &wts, &logits, ly->router_bias.data ? &ly->router_bias : NULL,
                 &router);
  dsocr_decoder_emit (s, "router.topk_idx", il, &idx);
  dsocr_decoder_emit (s, "router.topk_weight", il, &wts);
  dsk_moe (be, out, xn, &idx, &wts, &experts);
}
