/* fuzz-config.c: libFuzzer target for the config.json reader. The input is a whole file;
 * loading it must either fail with a DSOCR_ERROR or give a config whose invariants hold (the
 * sanitizers see any read outside the input or any leak). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <dsocr/dsocr.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check (const dsocr_config *cfg)
{
  const dsocr_text_config *t = &cfg->text;
  volatile size_t sink = 0;

  if (t->hidden_size <= 0 || t->num_hidden_layers <= 0 || t->num_attention_heads <= 0 ||
      t->vocab_size <= 0 || t->head_dim <= 0 || t->rope_dim <= 0 ||
      t->first_k_dense_replace > t->num_hidden_layers || t->topk_group > t->n_group ||
      t->n_eos_token_ids > DSOCR_CONFIG_MAX_EOS || !(t->softmax_scale > 0.0) ||
      !(t->rope.theta > 0.0) || !(t->rope.factor > 0.0))
    __builtin_trap ();
  /* top-k only matters, and is only checked, when there are routed experts */
  if (t->n_routed_experts > 0 &&
      (t->num_experts_per_tok < 1 || t->num_experts_per_tok > t->n_routed_experts ||
       t->n_routed_experts % t->n_group != 0))
    __builtin_trap ();
  if (!t->use_mla && t->head_dim * t->num_attention_heads != t->hidden_size)
    __builtin_trap ();
  for (int i = 0; i < t->n_eos_token_ids; i++)
    if (t->eos_token_ids[i] < 0 || t->eos_token_ids[i] >= t->vocab_size)
      __builtin_trap ();
  for (int l = 0; l < t->num_hidden_layers; l++)
    sink += dsocr_text_config_layer_is_moe (t, l);
  if (cfg->num_labels <= 0)
    __builtin_trap ();
  for (int i = 0; i < cfg->num_labels; i++)
    sink += strlen (cfg->id2label[i]);
  if (cfg->id2label[cfg->num_labels] != NULL)
    __builtin_trap ();
  if (cfg->kind == DSOCR_MODEL_DEEPSEEK_OCR) {
    const dsocr_vision_config *v = &cfg->vision;
    if (v->sam.width % v->sam.heads != 0 || v->clip.width % v->clip.heads != 0 ||
        v->image_size % v->sam.patch_size != 0 ||
        v->projector_n_embed != t->hidden_size || v->image_token_id >= t->vocab_size)
      __builtin_trap ();
    sink += strlen (v->tile_tag) + strlen (v->global_view_pos);
  }
  (void) sink;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* a copy of the exact extent, so that a read past the input is an ASan error */
  char *copy = g_memdup2 (data, size ? size : 1);
  GError *error = NULL;
  dsocr_config *cfg;

  /* A GLib warning or critical on any input is a finding too. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
  cfg = dsocr_config_load_from_data (copy, (gssize) size, "fuzz", &error);
  g_free (copy);
  if (!cfg) {
    if (!error || error->domain != DSOCR_ERROR)
      __builtin_trap ();
    g_error_free (error);
    return 0;
  }
  check (cfg);
  dsocr_config_free (cfg);
  return 0;
}
