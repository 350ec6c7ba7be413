/* test-config.c: config.json parsing (engine/config.c).
 *
 * The real configs in tests/fixtures/configs/ are checked value by value against the numbers
 * documented for the released checkpoints; absent fields against the defaults of the config
 * classes (hub configuration_deepseek_v2.py, transformers DeepseekV2/V3/V32Config); every
 * validation rule against its error code and message. The derived YaRN numbers were computed
 * with transformers 5.23 (yarn_apply_mscale, _compute_yarn_parameters) on the same files.
 */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include <dsocr/dsocr.h>

#include "dsocr-test.h"

static char *
fixture_text (const char *name)
{
  char *path = dsocr_test_fixture (name);
  char *text = NULL;
  GError *error = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_no_error (error);
  g_free (path);
  return text;
}

static dsocr_config *
load_fixture (const char *name)
{
  char *path = dsocr_test_fixture (name);
  GError *error = NULL;
  dsocr_config *cfg = dsocr_config_load (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (cfg);
  g_assert_cmpstr (cfg->path, ==, path);
  g_free (path);
  return cfg;
}

/* One edit of a JSON document: the member at dotted @path becomes @json, or is removed when
 * @json is NULL. */
typedef struct {
  const char *path;
  const char *json;
} edit;

/* Returns the fixture @name with @edits applied, serialised (transfer full). */
static char *
edited_fixture (const char *name, const edit *edits)
{
  char *text = fixture_text (name);
  GError *error = NULL;
  JsonNode *root = json_from_string (text, &error);
  g_assert_no_error (error);
  g_free (text);

  for (const edit *e = edits; e && e->path; e++) {
    char **parts = g_strsplit (e->path, ".", -1);
    JsonObject *obj = json_node_get_object (root);
    int n = g_strv_length (parts);
    for (int i = 0; i < n - 1; i++)
      obj = json_object_get_object_member (obj, parts[i]);
    g_assert_nonnull (obj);
    if (e->json) {
      JsonNode *value = json_from_string (e->json, &error);
      g_assert_no_error (error);
      json_object_set_member (obj, parts[n - 1], value);
    } else {
      json_object_remove_member (obj, parts[n - 1]);
    }
    g_strfreev (parts);
  }
  char *out = json_to_string (root, FALSE);
  json_node_unref (root);
  return out;
}

/* --------------------------------------------------------------------------------------- */
/* The released configs */

static void
test_deepseek_ocr (void)
{
  dsocr_config *cfg = load_fixture ("configs/deepseek-ocr.json");
  const dsocr_text_config *t = &cfg->text;
  const dsocr_vision_config *v = &cfg->vision;

  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_OCR);
  g_assert_cmpint (cfg->architecture, ==, DSOCR_ARCH_CAUSAL_LM);
  g_assert_cmpint (cfg->dtype, ==, DSOCR_DTYPE_BF16);

  /* reference sheet 1.1 */
  g_assert_cmpint (t->vocab_size, ==, 129280);
  g_assert_cmpint (t->hidden_size, ==, 1280);
  g_assert_cmpint (t->num_hidden_layers, ==, 12);
  g_assert_cmpint (t->num_nextn_predict_layers, ==, 0);
  g_assert_cmpint (t->num_attention_heads, ==, 10);
  g_assert_cmpint (t->num_key_value_heads, ==, 10);
  g_assert_false (t->use_mla);
  g_assert_cmpint (t->head_dim, ==, 128);
  g_assert_cmpint (t->rope_dim, ==, 128);
  g_assert_false (t->rope_interleave);
  g_assert_cmpfloat_with_epsilon (t->softmax_scale, 1.0 / sqrt (128.0), 1e-15);
  g_assert_cmpint (t->q_lora_rank, ==, 0);
  g_assert_cmpint (t->kv_lora_rank, ==, 0);
  g_assert_cmpint (t->qk_nope_head_dim, ==, 0);
  g_assert_cmpint (t->qk_rope_head_dim, ==, 0);
  g_assert_cmpint (t->v_head_dim, ==, 0);
  g_assert_cmpint (t->intermediate_size, ==, 6848);
  g_assert_cmpint (t->moe_intermediate_size, ==, 896);
  g_assert_cmpint (t->n_routed_experts, ==, 64);
  g_assert_cmpint (t->n_shared_experts, ==, 2);
  g_assert_cmpint (t->num_experts_per_tok, ==, 6);
  g_assert_cmpint (t->first_k_dense_replace, ==, 1);
  g_assert_cmpint (t->moe_layer_freq, ==, 1);
  g_assert_cmpint (t->topk_method, ==, DSOCR_TOPK_GREEDY);
  g_assert_cmpint (t->n_group, ==, 1);
  g_assert_cmpint (t->topk_group, ==, 1);
  g_assert_false (t->norm_topk_prob);
  g_assert_cmpfloat (t->routed_scaling_factor, ==, 1.0);
  g_assert_cmpint (t->scoring_func, ==, DSOCR_SCORING_SOFTMAX);
  g_assert_cmpfloat (t->rms_norm_eps, ==, 1e-6);
  g_assert_cmpint (t->rope.type, ==, DSOCR_ROPE_DEFAULT);
  g_assert_cmpfloat (t->rope.theta, ==, 10000.0);
  g_assert_cmpfloat (t->rope.factor, ==, 1.0);
  g_assert_cmpfloat (t->rope.attention_factor, ==, 1.0);
  g_assert_cmpint (t->max_position_embeddings, ==, 8192);
  g_assert_false (t->attention_bias);
  g_assert_false (t->tie_word_embeddings);
  g_assert_cmpint (t->bos_token_id, ==, 0);
  g_assert_cmpint (t->n_eos_token_ids, ==, 1);
  g_assert_cmpint (t->eos_token_ids[0], ==, 1);
  g_assert_cmpint (t->pad_token_id, ==, -1);
  g_assert_false (t->use_sparse_attention);
  g_assert_cmpint (t->index_topk, ==, 0);

  g_assert_false (dsocr_text_config_layer_is_moe (t, 0));
  for (int l = 1; l < 12; l++)
    g_assert_true (dsocr_text_config_layer_is_moe (t, l));
  g_assert_false (dsocr_text_config_layer_is_moe (t, 12));

  /* reference sheet 1.2 */
  g_assert_cmpint (v->image_size, ==, 1024);
  g_assert_cmpint (v->sam.layers, ==, 12);
  g_assert_cmpint (v->sam.width, ==, 768);
  g_assert_cmpint (v->sam.heads, ==, 12);
  g_assert_cmpint (v->sam.mlp_dim, ==, 3072);
  g_assert_cmpint (v->sam.patch_size, ==, 16);
  g_assert_cmpint (v->sam.window_size, ==, 14);
  g_assert_cmpint (v->sam.out_chans, ==, 256);
  g_assert_cmpint (v->sam.n_global_attn_indexes, ==, 4);
  g_assert_cmpint (v->sam.global_attn_indexes[0], ==, 2);
  g_assert_cmpint (v->sam.global_attn_indexes[1], ==, 5);
  g_assert_cmpint (v->sam.global_attn_indexes[2], ==, 8);
  g_assert_cmpint (v->sam.global_attn_indexes[3], ==, 11);
  g_assert_cmpint (v->sam.n_downsample_channels, ==, 2);
  g_assert_cmpint (v->sam.downsample_channels[0], ==, 512);
  g_assert_cmpint (v->sam.downsample_channels[1], ==, 1024);
  g_assert_cmpint (v->clip.layers, ==, 24);
  g_assert_cmpint (v->clip.width, ==, 1024);
  g_assert_cmpint (v->clip.heads, ==, 16);
  g_assert_cmpint (v->clip.ffn_dim, ==, 4096);
  g_assert_cmpint (v->clip.patch_size, ==, 14);
  g_assert_cmpint (v->clip.image_size, ==, 224);
  g_assert_cmpint (v->projector_input_dim, ==, 2048);
  g_assert_cmpint (v->projector_n_embed, ==, 1280);
  g_assert_cmpstr (v->tile_tag, ==, "2D");
  g_assert_cmpstr (v->global_view_pos, ==, "head");
  g_assert_cmpint (v->n_candidate_resolutions, ==, 1);
  g_assert_cmpint (v->candidate_resolutions[0][0], ==, 1024);
  g_assert_cmpint (v->candidate_resolutions[0][1], ==, 1024);
  g_assert_cmpint (v->image_token_id, ==, 128815);

  g_assert_cmpint (cfg->quant.method, ==, DSOCR_QUANT_NONE);
  g_assert_cmpint (cfg->num_labels, ==, 2);
  g_assert_cmpstr (cfg->id2label[0], ==, "LABEL_0");
  g_assert_cmpstr (cfg->id2label[1], ==, "LABEL_1");
  g_assert_null (cfg->id2label[2]);
  g_assert_cmpint (cfg->problem_type, ==, DSOCR_PROBLEM_NONE);
  dsocr_config_free (cfg);
}

/* The same config as the hub's config class re-saves it: model_type "DeepseekOCR", every
 * language field only at top level. */
static void
test_deepseek_ocr_resaved (void)
{
  const edit edits[] = { { "model_type", "\"DeepseekOCR\"" }, { "language_config", NULL },
                         { "rope_scaling", "null" }, { "rope_theta", "10000.0" },
                         { "hidden_act", "\"silu\"" }, { NULL, NULL } };
  char *json = edited_fixture ("configs/deepseek-ocr.json", edits);
  GError *error = NULL;
  dsocr_config *cfg = dsocr_config_load_from_data (json, -1, "config.json", &error);
  g_assert_no_error (error);
  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_OCR);
  g_assert_cmpint (cfg->text.hidden_size, ==, 1280);
  g_assert_cmpint (cfg->text.num_experts_per_tok, ==, 6);
  g_assert_false (cfg->text.use_mla);
  g_assert_cmpint (cfg->vision.sam.width, ==, 768);
  g_assert_cmpstr (cfg->path, ==, "config.json");
  dsocr_config_free (cfg);
  g_free (json);
}

static void
test_deepseek_v2_lite (void)
{
  dsocr_config *cfg = load_fixture ("configs/deepseek-v2-lite.json");
  const dsocr_text_config *t = &cfg->text;

  /* reference sheet 7.1 */
  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_V2);
  g_assert_cmpint (cfg->architecture, ==, DSOCR_ARCH_CAUSAL_LM);
  g_assert_cmpint (cfg->dtype, ==, DSOCR_DTYPE_BF16);
  g_assert_cmpint (t->hidden_size, ==, 2048);
  g_assert_cmpint (t->num_hidden_layers, ==, 27);
  g_assert_cmpint (t->num_attention_heads, ==, 16);
  g_assert_cmpint (t->num_key_value_heads, ==, 16);
  g_assert_true (t->use_mla);
  g_assert_cmpint (t->q_lora_rank, ==, 0);
  g_assert_cmpint (t->kv_lora_rank, ==, 512);
  g_assert_cmpint (t->qk_nope_head_dim, ==, 128);
  g_assert_cmpint (t->qk_rope_head_dim, ==, 64);
  g_assert_cmpint (t->v_head_dim, ==, 128);
  g_assert_cmpint (t->head_dim, ==, 192);  /* the file's head_dim 64 is transformers' rope dim */
  g_assert_cmpint (t->rope_dim, ==, 64);
  g_assert_true (t->rope_interleave);
  g_assert_cmpint (t->intermediate_size, ==, 10944);
  g_assert_cmpint (t->moe_intermediate_size, ==, 1408);
  g_assert_cmpint (t->n_routed_experts, ==, 64);
  g_assert_cmpint (t->n_shared_experts, ==, 2);
  g_assert_cmpint (t->num_experts_per_tok, ==, 6);
  g_assert_cmpint (t->first_k_dense_replace, ==, 1);
  g_assert_cmpint (t->topk_method, ==, DSOCR_TOPK_GREEDY);
  g_assert_cmpint (t->scoring_func, ==, DSOCR_SCORING_SOFTMAX);
  g_assert_false (t->norm_topk_prob);
  g_assert_cmpfloat (t->routed_scaling_factor, ==, 1.0);
  g_assert_cmpint (t->max_position_embeddings, ==, 163840);
  g_assert_cmpint (t->vocab_size, ==, 102400);
  g_assert_cmpint (t->bos_token_id, ==, 100000);
  g_assert_cmpint (t->n_eos_token_ids, ==, 1);
  g_assert_cmpint (t->eos_token_ids[0], ==, 100001);
  g_assert_cmpint (t->pad_token_id, ==, -1);
  g_assert_cmpfloat (t->rms_norm_eps, ==, 1e-6);

  /* rope_parameters, the transformers-5 spelling */
  g_assert_cmpint (t->rope.type, ==, DSOCR_ROPE_YARN);
  g_assert_cmpfloat (t->rope.theta, ==, 10000.0);
  g_assert_cmpfloat (t->rope.factor, ==, 40.0);
  g_assert_cmpint (t->rope.original_max_position_embeddings, ==, 4096);
  g_assert_cmpfloat (t->rope.beta_fast, ==, 32.0);
  g_assert_cmpfloat (t->rope.beta_slow, ==, 1.0);
  g_assert_cmpfloat (t->rope.mscale, ==, 0.707);
  g_assert_cmpfloat (t->rope.mscale_all_dim, ==, 0.707);
  g_assert_cmpfloat_with_epsilon (t->rope.attention_factor, 1.0, 1e-15);
  /* 192^-0.5 * get_mscale(40, 0.707)^2 (reference sheet 7.2: 0.114721) */
  g_assert_cmpfloat_with_epsilon (t->softmax_scale, 0.1147213867929261, 1e-15);
  g_assert_false (t->use_sparse_attention);
  g_assert_cmpint (cfg->quant.method, ==, DSOCR_QUANT_NONE);
  dsocr_config_free (cfg);
}

static void
test_deepseek_v32 (void)
{
  dsocr_config *cfg = load_fixture ("configs/deepseek-v3.2.json");
  const dsocr_text_config *t = &cfg->text;

  /* reference sheet 7.1 and 10 */
  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_V32);
  g_assert_cmpint (cfg->architecture, ==, DSOCR_ARCH_CAUSAL_LM);
  g_assert_cmpint (t->hidden_size, ==, 7168);
  g_assert_cmpint (t->num_hidden_layers, ==, 61);
  g_assert_cmpint (t->num_nextn_predict_layers, ==, 1);
  g_assert_cmpint (t->num_attention_heads, ==, 128);
  g_assert_true (t->use_mla);
  g_assert_cmpint (t->q_lora_rank, ==, 1536);
  g_assert_cmpint (t->kv_lora_rank, ==, 512);
  g_assert_cmpint (t->qk_nope_head_dim, ==, 128);
  g_assert_cmpint (t->qk_rope_head_dim, ==, 64);
  g_assert_cmpint (t->v_head_dim, ==, 128);
  g_assert_cmpint (t->head_dim, ==, 192);
  g_assert_cmpint (t->intermediate_size, ==, 18432);
  g_assert_cmpint (t->moe_intermediate_size, ==, 2048);
  g_assert_cmpint (t->n_routed_experts, ==, 256);
  g_assert_cmpint (t->n_shared_experts, ==, 1);
  g_assert_cmpint (t->num_experts_per_tok, ==, 8);
  g_assert_cmpint (t->first_k_dense_replace, ==, 3);
  g_assert_cmpint (t->n_group, ==, 8);
  g_assert_cmpint (t->topk_group, ==, 4);
  g_assert_cmpint (t->topk_method, ==, DSOCR_TOPK_NOAUX_TC);
  g_assert_cmpint (t->scoring_func, ==, DSOCR_SCORING_SIGMOID);
  g_assert_true (t->norm_topk_prob);
  g_assert_cmpfloat (t->routed_scaling_factor, ==, 2.5);
  g_assert_cmpint (t->max_position_embeddings, ==, 163840);
  g_assert_cmpint (t->vocab_size, ==, 129280);
  g_assert_cmpint (t->bos_token_id, ==, 0);
  g_assert_cmpint (t->eos_token_ids[0], ==, 1);

  /* legacy rope_scaling with "type" plus top-level rope_theta */
  g_assert_cmpint (t->rope.type, ==, DSOCR_ROPE_YARN);
  g_assert_cmpfloat (t->rope.theta, ==, 10000.0);
  g_assert_cmpfloat (t->rope.factor, ==, 40.0);
  g_assert_cmpint (t->rope.original_max_position_embeddings, ==, 4096);
  g_assert_cmpfloat (t->rope.mscale, ==, 1.0);
  g_assert_cmpfloat (t->rope.mscale_all_dim, ==, 1.0);
  g_assert_cmpfloat_with_epsilon (t->rope.attention_factor, 1.0, 1e-15);
  double m = 0.1 * log (40.0) + 1.0;  /* 1.36889 */
  g_assert_cmpfloat_with_epsilon (t->softmax_scale, m * m / sqrt (192.0), 1e-15);
  g_assert_cmpfloat_with_epsilon (t->softmax_scale, 0.135234, 1e-6);

  g_assert_true (t->use_sparse_attention);
  g_assert_cmpint (t->index_n_heads, ==, 64);
  g_assert_cmpint (t->index_head_dim, ==, 128);
  g_assert_cmpint (t->index_topk, ==, 2048);

  g_assert_cmpint (cfg->quant.method, ==, DSOCR_QUANT_FP8);
  g_assert_cmpint (cfg->quant.weight_block_size[0], ==, 128);
  g_assert_cmpint (cfg->quant.weight_block_size[1], ==, 128);
  g_assert_true (cfg->quant.scale_ue8m0);

  g_assert_false (dsocr_text_config_layer_is_moe (t, 2));
  g_assert_true (dsocr_text_config_layer_is_moe (t, 3));
  g_assert_true (dsocr_text_config_layer_is_moe (t, 60));
  g_assert_false (dsocr_text_config_layer_is_moe (t, 61));  /* the MTP layer */
  dsocr_config_free (cfg);
}

static void
test_classification (void)
{
  dsocr_config *cfg = load_fixture ("configs/deepseek-v2-classification.json");
  const dsocr_text_config *t = &cfg->text;

  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_V2);
  g_assert_cmpint (cfg->architecture, ==, DSOCR_ARCH_SEQUENCE_CLASSIFICATION);
  g_assert_cmpint (cfg->num_labels, ==, 4);
  g_assert_cmpstr (cfg->id2label[0], ==, "negative");
  g_assert_cmpstr (cfg->id2label[1], ==, "neutral");
  g_assert_cmpstr (cfg->id2label[2], ==, "positive");
  g_assert_cmpstr (cfg->id2label[3], ==, "mixed");
  g_assert_null (cfg->id2label[4]);
  g_assert_cmpint (cfg->problem_type, ==, DSOCR_PROBLEM_SINGLE_LABEL);
  g_assert_cmpint (cfg->dtype, ==, DSOCR_DTYPE_N);

  g_assert_cmpint (t->pad_token_id, ==, 100003);
  g_assert_cmpint (t->n_eos_token_ids, ==, 2);
  g_assert_cmpint (t->eos_token_ids[0], ==, 100001);
  g_assert_cmpint (t->eos_token_ids[1], ==, 100002);
  g_assert_true (t->use_mla);
  g_assert_cmpint (t->head_dim, ==, 64);
  g_assert_cmpfloat_with_epsilon (t->softmax_scale, 0.125, 1e-15);
  g_assert_cmpint (t->topk_method, ==, DSOCR_TOPK_GROUP_LIMITED_GREEDY);
  g_assert_cmpint (t->n_group, ==, 4);
  g_assert_cmpint (t->topk_group, ==, 2);
  g_assert_cmpint (t->rope.type, ==, DSOCR_ROPE_LINEAR);
  g_assert_cmpfloat (t->rope.factor, ==, 2.0);
  g_assert_cmpfloat (t->rope.theta, ==, 50000.0);
  g_assert_cmpfloat (t->rope.attention_factor, ==, 1.0);
  dsocr_config_free (cfg);
}

/* --------------------------------------------------------------------------------------- */
/* Defaults of absent fields */

static dsocr_config *
load_string (const char *json)
{
  GError *error = NULL;
  dsocr_config *cfg = dsocr_config_load_from_data (json, -1, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (cfg);
  return cfg;
}

static void
test_defaults_v2 (void)
{
  /* transformers DeepseekV2Config: 64 routed experts but no top-k, which its router needs */
  GError *error = NULL;
  g_assert_null (dsocr_config_load_from_data ("{\"model_type\": \"deepseek_v2\"}", -1, NULL,
                                              &error));
  g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_CONFIG);
  g_assert_cmpstr (error->message, ==,
                   "config: num_experts_per_tok: missing or null, but n_routed_experts is 64");
  g_clear_error (&error);

  dsocr_config *cfg = load_string ("{\"model_type\": \"deepseek_v2\", \"num_experts_per_tok\": 6}");
  const dsocr_text_config *t = &cfg->text;
  g_assert_cmpstr (cfg->path, ==, "config");
  g_assert_cmpint (cfg->architecture, ==, DSOCR_ARCH_CAUSAL_LM);
  g_assert_cmpint (cfg->dtype, ==, DSOCR_DTYPE_N);
  g_assert_cmpint (t->vocab_size, ==, 102400);
  g_assert_cmpint (t->hidden_size, ==, 4096);
  g_assert_cmpint (t->intermediate_size, ==, 11008);
  g_assert_cmpint (t->moe_intermediate_size, ==, 1407);
  g_assert_cmpint (t->num_hidden_layers, ==, 32);
  g_assert_cmpint (t->num_attention_heads, ==, 32);
  g_assert_cmpint (t->num_key_value_heads, ==, 32);
  g_assert_true (t->use_mla);
  g_assert_cmpint (t->q_lora_rank, ==, 1536);
  g_assert_cmpint (t->kv_lora_rank, ==, 512);
  g_assert_cmpint (t->qk_nope_head_dim, ==, 128);
  g_assert_cmpint (t->qk_rope_head_dim, ==, 64);
  g_assert_cmpint (t->v_head_dim, ==, 128);
  g_assert_cmpint (t->n_routed_experts, ==, 64);
  g_assert_cmpint (t->n_shared_experts, ==, 2);
  g_assert_cmpint (t->first_k_dense_replace, ==, 0);
  g_assert_cmpint (t->topk_method, ==, DSOCR_TOPK_GREEDY);
  g_assert_cmpint (t->scoring_func, ==, DSOCR_SCORING_SOFTMAX);
  g_assert_false (t->norm_topk_prob);
  g_assert_cmpfloat (t->routed_scaling_factor, ==, 1.0);
  g_assert_cmpint (t->n_group, ==, 1);
  g_assert_cmpint (t->topk_group, ==, 1);
  g_assert_cmpint (t->max_position_embeddings, ==, 2048);
  g_assert_cmpfloat (t->rms_norm_eps, ==, 1e-6);
  g_assert_cmpint (t->bos_token_id, ==, 1);
  g_assert_cmpint (t->eos_token_ids[0], ==, 2);
  g_assert_cmpint (t->pad_token_id, ==, -1);
  g_assert_cmpint (t->rope.type, ==, DSOCR_ROPE_DEFAULT);
  g_assert_cmpfloat (t->rope.theta, ==, 10000.0);
  g_assert_false (t->tie_word_embeddings);
  g_assert_false (t->attention_bias);
  g_assert_true (dsocr_text_config_layer_is_moe (t, 0));
  dsocr_config_free (cfg);
}

static void
test_defaults_v3 (void)
{
  /* transformers DeepseekV3Config / DeepseekV32Config */
  for (int v32 = 0; v32 <= 1; v32++) {
    dsocr_config *cfg = load_string (v32 ? "{\"model_type\": \"deepseek_v32\"}"
                                         : "{\"model_type\": \"deepseek_v3\"}");
    const dsocr_text_config *t = &cfg->text;
    g_assert_cmpint (cfg->kind, ==, v32 ? DSOCR_MODEL_DEEPSEEK_V32 : DSOCR_MODEL_DEEPSEEK_V3);
    g_assert_cmpint (t->vocab_size, ==, 129280);
    g_assert_cmpint (t->hidden_size, ==, 7168);
    g_assert_cmpint (t->intermediate_size, ==, 18432);
    g_assert_cmpint (t->moe_intermediate_size, ==, 2048);
    g_assert_cmpint (t->num_hidden_layers, ==, 61);
    g_assert_cmpint (t->num_attention_heads, ==, 128);
    g_assert_cmpint (t->num_key_value_heads, ==, 128);
    g_assert_cmpint (t->n_shared_experts, ==, 1);
    g_assert_cmpint (t->n_routed_experts, ==, 256);
    g_assert_cmpfloat (t->routed_scaling_factor, ==, 2.5);
    g_assert_cmpint (t->kv_lora_rank, ==, 512);
    g_assert_cmpint (t->q_lora_rank, ==, 1536);
    g_assert_cmpint (t->n_group, ==, 8);
    g_assert_cmpint (t->topk_group, ==, 4);
    g_assert_cmpint (t->num_experts_per_tok, ==, 8);
    g_assert_cmpint (t->first_k_dense_replace, ==, 3);
    g_assert_true (t->norm_topk_prob);
    g_assert_cmpint (t->topk_method, ==, DSOCR_TOPK_NOAUX_TC);
    g_assert_cmpint (t->scoring_func, ==, DSOCR_SCORING_SIGMOID);
    g_assert_cmpint (t->max_position_embeddings, ==, v32 ? 163840 : 4096);
    g_assert_cmpint (t->bos_token_id, ==, 0);
    g_assert_cmpint (t->eos_token_ids[0], ==, 1);
    g_assert_true (t->rope_interleave);
    g_assert_cmpint (t->use_sparse_attention, ==, v32);
    g_assert_cmpint (t->index_n_heads, ==, v32 ? 64 : 0);
    g_assert_cmpint (t->index_head_dim, ==, v32 ? 128 : 0);
    g_assert_cmpint (t->index_topk, ==, v32 ? 2048 : 0);
    dsocr_config_free (cfg);
  }

  /* index fields switch the indexer on outside deepseek_v32 too, and it can be turned off */
  dsocr_config *cfg = load_string ("{\"model_type\": \"deepseek_v3\", \"index_topk\": 512}");
  g_assert_true (cfg->text.use_sparse_attention);
  g_assert_cmpint (cfg->text.index_topk, ==, 512);
  g_assert_cmpint (cfg->text.index_n_heads, ==, 64);
  dsocr_config_free (cfg);
  cfg = load_string ("{\"model_type\": \"deepseek_v32\", \"use_sparse_attention\": false}");
  g_assert_false (cfg->text.use_sparse_attention);
  g_assert_cmpint (cfg->text.index_topk, ==, 0);
  dsocr_config_free (cfg);
}

static void
test_defaults_ocr (void)
{
  /* hub configuration_deepseek_v2.py: routed experts null (a dense model), MLA on, bos/eos
   * 100000/100001; the vision tower keeps its hard-coded sizes. */
  dsocr_config *cfg = load_string ("{\"model_type\": \"deepseek_vl_v2\"}");
  const dsocr_text_config *t = &cfg->text;
  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_OCR);
  g_assert_cmpint (t->vocab_size, ==, 102400);
  g_assert_cmpint (t->hidden_size, ==, 4096);
  g_assert_cmpint (t->num_hidden_layers, ==, 30);
  g_assert_cmpint (t->num_attention_heads, ==, 32);
  g_assert_cmpint (t->num_key_value_heads, ==, 32);
  g_assert_true (t->use_mla);
  g_assert_cmpint (t->n_routed_experts, ==, 0);
  g_assert_cmpint (t->n_shared_experts, ==, 0);
  g_assert_cmpint (t->num_experts_per_tok, ==, 0);
  g_assert_false (dsocr_text_config_layer_is_moe (t, 5));
  g_assert_cmpint (t->moe_layer_freq, ==, 1);
  g_assert_cmpint (t->max_position_embeddings, ==, 2048);
  g_assert_cmpint (t->bos_token_id, ==, 100000);
  g_assert_cmpint (t->eos_token_ids[0], ==, 100001);
  g_assert_cmpint (cfg->vision.sam.width, ==, 768);
  g_assert_cmpint (cfg->vision.clip.width, ==, 1024);
  g_assert_cmpint (cfg->vision.projector_input_dim, ==, 2048);
  g_assert_cmpint (cfg->vision.projector_n_embed, ==, 4096);
  g_assert_cmpint (cfg->vision.n_candidate_resolutions, ==, 0);
  g_assert_cmpstr (cfg->vision.tile_tag, ==, "2D");
  /* 128815 does not exist in a 102400-token vocabulary */
  g_assert_cmpint (cfg->vision.image_token_id, ==, -1);
  dsocr_config_free (cfg);
}

/* Tiny models shrink the vision tower through the real keys. */
static void
test_vision_shrunk (void)
{
  const edit edits[] = {
    { "vision_config.image_size", "64" },
    { "vision_config.width.sam_vit_b",
      "{\"layers\": 2, \"width\": 16, \"heads\": 2, \"global_attn_indexes\": [1],"
      " \"downsample_channels\": [16, 32], \"window_size\": 2, \"mlp_dim\": 24}" },
    { "vision_config.width.clip-l-14-224",
      "{\"layers\": 2, \"width\": 32, \"heads\": 2, \"patch_size\": 14, \"image_size\": 28,"
      " \"ffn_hidden_size\": 48}" },
    { "projector_config.input_dim", "64" },
    { "image_token_id", "7" },
    { NULL, NULL } };
  char *json = edited_fixture ("configs/deepseek-ocr.json", edits);
  dsocr_config *cfg = load_string (json);
  const dsocr_vision_config *v = &cfg->vision;
  g_assert_cmpint (v->image_size, ==, 64);
  g_assert_cmpint (v->sam.layers, ==, 2);
  g_assert_cmpint (v->sam.width, ==, 16);
  g_assert_cmpint (v->sam.heads, ==, 2);
  g_assert_cmpint (v->sam.mlp_dim, ==, 24);
  g_assert_cmpint (v->sam.window_size, ==, 2);
  g_assert_cmpint (v->sam.patch_size, ==, 16);
  g_assert_cmpint (v->sam.n_global_attn_indexes, ==, 1);
  g_assert_cmpint (v->sam.global_attn_indexes[0], ==, 1);
  g_assert_cmpint (v->clip.width, ==, 32);
  g_assert_cmpint (v->clip.ffn_dim, ==, 48);
  g_assert_cmpint (v->clip.image_size, ==, 28);
  g_assert_cmpint (v->projector_input_dim, ==, 64);
  g_assert_cmpint (v->image_token_id, ==, 7);
  dsocr_config_free (cfg);
  g_free (json);
}

/* The tiny reference models other fixtures are built from must load. */
static void
test_fixture_models (void)
{
  char *root = dsocr_test_fixture ("");
  GDir *dir = g_dir_open (root, 0, NULL);
  const char *name;
  int n = 0;
  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir))) {
    if (!g_str_has_prefix (name, "tiny-"))
      continue;
    char *path = g_build_filename (root, name, "config.json", NULL);
    if (g_file_test (path, G_FILE_TEST_EXISTS)) {
      GError *error = NULL;
      dsocr_config *cfg = dsocr_config_load (path, &error);
      g_assert_no_error (error);
      g_assert_cmpint (cfg->text.num_hidden_layers, >, 0);
      dsocr_config_free (cfg);
      n++;
    }
    g_free (path);
  }
  g_dir_close (dir);
  g_free (root);
  g_test_message ("%d tiny model configs loaded", n);
}

/* --------------------------------------------------------------------------------------- */
/* Errors */

typedef struct {
  const char *fixture;
  edit edits[4];
  int code;
  const char *message;  /* the whole message, origin "config.json" */
} error_case;

#define OCR "configs/deepseek-ocr.json"
#define V2L "configs/deepseek-v2-lite.json"
#define V32 "configs/deepseek-v3.2.json"
#define CLS "configs/deepseek-v2-classification.json"
#define BOTH(key, value) { "language_config." key, value }, { key, value }

static const error_case error_cases[] = {
  /* types */
  { OCR, { { "language_config.num_attention_heads", "\"ten\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_attention_heads: expected a positive integer, got \"ten\"" },
  { OCR, { BOTH ("num_attention_heads", "10.5") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_attention_heads: expected a positive integer, got 10.5" },
  { OCR, { { "vocab_size", "null" } }, DSOCR_ERROR_CONFIG,
    "config.json: vocab_size: expected a positive integer, got null" },
  { OCR, { { "rms_norm_eps", "\"1e-6\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: rms_norm_eps: expected a positive number, got \"1e-6\"" },
  { OCR, { { "tie_word_embeddings", "0" } }, DSOCR_ERROR_CONFIG,
    "config.json: tie_word_embeddings: expected true or false, got 0" },
  { OCR, { { "language_config", "[]" } }, DSOCR_ERROR_CONFIG,
    "config.json: language_config: expected an object, got an array" },
  { OCR, { { "model_type", NULL } }, DSOCR_ERROR_CONFIG, "config.json: model_type: missing" },
  { OCR, { { "model_type", "3" } }, DSOCR_ERROR_CONFIG,
    "config.json: model_type: expected a string, got 3" },
  { OCR, { { "architectures", "\"DeepseekOCRForCausalLM\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: architectures: expected an array of strings, got \"DeepseekOCRForCausalLM\"" },
  /* language_config against the top level */
  { OCR, { { "hidden_size", "1024" } }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.hidden_size: 1280 disagrees with the top-level hidden_size: "
    "1024" },
  { OCR, { { "language_config.topk_method", "\"noaux_tc\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.topk_method: \"noaux_tc\" disagrees with the top-level "
    "topk_method: \"greedy\"" },
  /* sizes */
  { OCR, { BOTH ("num_attention_heads", "0") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_attention_heads: expected a positive integer, got 0" },
  { OCR, { BOTH ("intermediate_size", "-6848") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.intermediate_size: expected a positive integer, got -6848" },
  { OCR, { BOTH ("hidden_size", "2000000") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.hidden_size: 2000000 is out of range (at most 1048576)" },
  { OCR, { BOTH ("num_hidden_layers", "1025") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_hidden_layers: 1025 is out of range (at most 1024)" },
  { OCR, { BOTH ("vocab_size", "99999999999") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.vocab_size: 99999999999 is out of range (at most 16777216)" },
  { OCR, { BOTH ("bos_token_id", "129280") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.bos_token_id: 129280 is out of range (at most 129279)" },
  /* consistency */
  { OCR, { BOTH ("num_attention_heads", "12") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_attention_heads: hidden_size 1280 is not divisible by 12 "
    "heads" },
  { OCR, { BOTH ("num_key_value_heads", "3") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_key_value_heads: 10 query heads are not divisible into 3 "
    "key/value heads" },
  { OCR, { { "head_dim", "64" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: head_dim: 64 differs from hidden_size / num_attention_heads = 128" },
  { OCR, { BOTH ("num_experts_per_tok", "65") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.num_experts_per_tok: 65 is larger than n_routed_experts (64)" },
  { OCR, { BOTH ("topk_group", "2") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.topk_group: 2 is larger than n_group (1)" },
  { OCR, { BOTH ("n_group", "3") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.n_group: n_routed_experts 64 is not divisible into 3 groups" },
  { OCR, { BOTH ("first_k_dense_replace", "13") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.first_k_dense_replace: 13 is larger than num_hidden_layers "
    "(12)" },
  { OCR, { BOTH ("use_mla", "true") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.kv_lora_rank: multi-head latent attention (use_mla) needs a "
    "positive rank, got 0" },
  /* enums */
  { OCR, { BOTH ("topk_method", "\"best\"") }, DSOCR_ERROR_CONFIG,
    "config.json: language_config.topk_method: expected greedy, group_limited_greedy or "
    "noaux_tc, got \"best\"" },
  { OCR, { { "scoring_func", "\"relu\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: scoring_func: expected softmax or sigmoid, got \"relu\"" },
  { OCR, { { "hidden_act", "\"gelu\"" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: hidden_act: \"gelu\" is not supported (only silu is)" },
  { OCR, { { "model_type", "\"llama\"" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: model_type: \"llama\" is not supported (expected deepseek_vl_v2, DeepseekOCR, "
    "deepseek_v2, deepseek_v3 or deepseek_v32)" },
  { OCR, { { "architectures", "[\"DeepseekVLV2ForCausalLM\"]" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: architectures[0]: \"DeepseekVLV2ForCausalLM\" is not supported with model_type "
    "deepseek_vl_v2 (expected DeepseekOCRForCausalLM)" },
  { V2L, { { "architectures", "[\"DeepseekV2ForTokenClassification\"]" } },
    DSOCR_ERROR_UNSUPPORTED,
    "config.json: architectures[0]: \"DeepseekV2ForTokenClassification\" is not supported "
    "(expected a ...ForCausalLM, ...ForSequenceClassification or ...Model class)" },
  { OCR, { { "torch_dtype", "\"int8\"" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: torch_dtype: \"int8\" is not supported (expected bfloat16, float16 or "
    "float32)" },
  { OCR, { { "rope_scaling", "{\"type\": \"dynamic\", \"factor\": 2.0}" } },
    DSOCR_ERROR_UNSUPPORTED,
    "config.json: rope_scaling.type: \"dynamic\" is not supported (expected default, linear or "
    "yarn)" },
  { OCR, { { "rope_scaling", "{\"rope_type\": \"spiral\"}" } }, DSOCR_ERROR_CONFIG,
    "config.json: rope_scaling.rope_type: \"spiral\" is not a RoPE type (expected default, "
    "linear or yarn)" },
  /* vision */
  { OCR, { { "vision_config.model_name", "\"siglip_so400m_patch14_384\"" } },
    DSOCR_ERROR_UNSUPPORTED,
    "config.json: vision_config.model_name: \"siglip_so400m_patch14_384\" is not supported "
    "(DeepSeek-OCR's SAM + CLIP tower is deeplip_b_l)" },
  { OCR, { { "vision_config.width.sam_vit_b.downsample_channels", "[512, 768]" } },
    DSOCR_ERROR_CONFIG,
    "config.json: vision_config.width.sam_vit_b.downsample_channels: SAM ends with 768 channels "
    "but CLIP's width is 1024; they must match" },
  { OCR, { { "vision_config.width.sam_vit_b.global_attn_indexes", "[2, 5, 8, 12]" } },
    DSOCR_ERROR_CONFIG,
    "config.json: vision_config.width.sam_vit_b.global_attn_indexes[3]: 12 is not an ascending "
    "block index below layers (12)" },
  { OCR, { { "vision_config.width.sam_vit_b.heads", "\"12\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: vision_config.width.sam_vit_b.heads: expected a positive integer, got \"12\"" },
  { OCR, { { "vision_config.width.clip-l-14-224.heads", "10" } }, DSOCR_ERROR_CONFIG,
    "config.json: vision_config.width.clip-l-14-224.heads: width 1024 is not divisible by 10 "
    "heads" },
  { OCR, { { "vision_config.image_size", "1000" } }, DSOCR_ERROR_CONFIG,
    "config.json: vision_config.width.sam_vit_b.patch_size: vision_config.image_size 1000 is not "
    "a multiple of 16" },
  { OCR, { { "projector_config.n_embed", "1024" } }, DSOCR_ERROR_CONFIG,
    "config.json: projector_config.n_embed: 1024, but the language model's hidden_size is 1280" },
  { OCR, { { "projector_config.input_dim", "1024" } }, DSOCR_ERROR_CONFIG,
    "config.json: projector_config.input_dim: 1024, but CLIP width + SAM channels = 2048" },
  { OCR, { { "projector_config.projector_type", "\"downsample_mlp_gelu\"" } },
    DSOCR_ERROR_UNSUPPORTED,
    "config.json: projector_config.projector_type: \"downsample_mlp_gelu\" is not supported "
    "(only linear is)" },
  { OCR, { { "candidate_resolutions", "[[1024]]" } }, DSOCR_ERROR_CONFIG,
    "config.json: candidate_resolutions[0]: expected a [width, height] pair, got an array" },
  { OCR, { { "image_token_id", "129280" } }, DSOCR_ERROR_CONFIG,
    "config.json: image_token_id: 129280 is out of range (at most 129279)" },
  /* MLA, RoPE, special tokens */
  { V2L, { { "num_experts_per_tok", NULL } }, DSOCR_ERROR_CONFIG,
    "config.json: num_experts_per_tok: missing or null, but n_routed_experts is 64" },
  { V2L, { { "qk_rope_head_dim", "63" } }, DSOCR_ERROR_CONFIG,
    "config.json: qk_rope_head_dim: multi-head latent attention (use_mla) needs a positive even "
    "size, got 63" },
  { V2L, { { "rope_parameters.factor", "0" } }, DSOCR_ERROR_CONFIG,
    "config.json: rope_parameters.factor: expected a positive number, got 0" },
  { V2L, { { "rope_parameters.beta_fast", "0.5" } }, DSOCR_ERROR_CONFIG,
    "config.json: rope_parameters.beta_fast: 0.5 is smaller than beta_slow (1)" },
  { V2L, { { "rope_parameters.original_max_position_embeddings", "\"4k\"" } },
    DSOCR_ERROR_CONFIG,
    "config.json: rope_parameters.original_max_position_embeddings: expected a positive integer "
    "or null, got \"4k\"" },
  { V2L, { { "rope_scaling", "{\"type\": \"linear\"}" } }, DSOCR_ERROR_CONFIG,
    "config.json: rope_scaling.factor: missing (linear RoPE scaling needs it)" },
  { V2L, { { "eos_token_id", "[100001, -3]" } }, DSOCR_ERROR_CONFIG,
    "config.json: eos_token_id[1]: expected a non-negative integer, got -3" },
  { V2L, { { "eos_token_id", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]" } },
    DSOCR_ERROR_CONFIG, "config.json: eos_token_id: 17 entries, at most 16 are supported" },
  { V2L, { { "vocab_size", "1000" } }, DSOCR_ERROR_CONFIG,
    "config.json: bos_token_id: 100000 is out of range (at most 999)" },
  { V2L, { { "index_topk", "2048" } }, DSOCR_ERROR_CONFIG,
    "config.json: index_n_heads: the sparse-attention indexer reads the query latent: it needs "
    "use_mla and a q_lora_rank" },
  { V2L, { { "rms_norm_eps", "2" } }, DSOCR_ERROR_CONFIG,
    "config.json: rms_norm_eps: 2 is out of range (expected less than 1)" },
  /* routing groups, indexer, quantization */
  { V32, { { "n_group", "6" } }, DSOCR_ERROR_CONFIG,
    "config.json: n_group: n_routed_experts 256 is not divisible into 6 groups" },
  { V32, { { "topk_group", "1" }, { "num_experts_per_tok", "33" } }, DSOCR_ERROR_CONFIG,
    "config.json: num_experts_per_tok: 33 is more than the 32 experts in the 1 groups kept "
    "(topk_group)" },
  { V32, { { "n_group", "256" } }, DSOCR_ERROR_CONFIG,
    "config.json: n_group: noaux_tc routing needs at least 2 experts per group, got 1" },
  { V32, { { "index_head_dim", "32" } }, DSOCR_ERROR_CONFIG,
    "config.json: index_head_dim: 32 must be even and at least qk_rope_head_dim (64)" },
  { V32, { { "quantization_config.quant_method", "\"awq\"" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: quantization_config.quant_method: \"awq\" is not supported (only fp8 is)" },
  { V32, { { "quantization_config.fmt", "\"e5m2\"" } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: quantization_config.fmt: \"e5m2\" is not supported (only e4m3 is)" },
  { V32, { { "quantization_config.weight_block_size", "[128]" } }, DSOCR_ERROR_CONFIG,
    "config.json: quantization_config.weight_block_size: 1 entries, expected [rows, cols]" },
  { V32, { { "quantization_config.weight_block_size", NULL } }, DSOCR_ERROR_UNSUPPORTED,
    "config.json: quantization_config.weight_block_size: missing: only block-wise FP8 is "
    "supported" },
  { V32, { { "quantization_config.scale_fmt", "\"e8m0\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: quantization_config.scale_fmt: \"e8m0\" is not a scale format (expected ue8m0 "
    "or null)" },
  /* classification */
  { CLS, { { "id2label", "{\"0\": \"a\", \"2\": \"b\"}" } }, DSOCR_ERROR_CONFIG,
    "config.json: id2label: key \"2\" is not a label id in 0..1" },
  { CLS, { { "id2label", "{\"0\": \"a\", \"x\": \"b\"}" } }, DSOCR_ERROR_CONFIG,
    "config.json: id2label: key \"x\" is not a label id in 0..1" },
  { CLS, { { "id2label", "{\"0\": \"a\", \"1\": 5}" } }, DSOCR_ERROR_CONFIG,
    "config.json: id2label.1: expected a string, got 5" },
  { CLS, { { "num_labels", "3" } }, DSOCR_ERROR_CONFIG,
    "config.json: num_labels: 3 disagrees with id2label (4 labels)" },
  { CLS, { { "problem_type", "\"ranking\"" } }, DSOCR_ERROR_CONFIG,
    "config.json: problem_type: expected regression, single_label_classification, "
    "multi_label_classification or null, got \"ranking\"" },
  { CLS, { { "id2label", NULL }, { "num_labels", "1" } }, DSOCR_ERROR_CONFIG,
    "config.json: problem_type: single_label_classification needs num_labels > 1 (use "
    "regression for one output)" },
};

static void
test_errors (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++) {
    const error_case *c = &error_cases[i];
    char *json = edited_fixture (c->fixture, c->edits);
    GError *error = NULL;
    dsocr_config *cfg = dsocr_config_load_from_data (json, -1, "config.json", &error);
    if (cfg || !error || error->code != c->code || strcmp (error->message, c->message) != 0)
      g_error ("case %" G_GSIZE_FORMAT " (%s %s): got %s code %d \"%s\", want code %d "
               "\"%s\"", i, c->fixture, c->edits[0].path, cfg ? "a config" : "an error",
               error ? error->code : -1, error ? error->message : "", c->code, c->message);
    g_assert_true (error->domain == DSOCR_ERROR);
    g_clear_error (&error);
    g_free (json);
  }
}

/* The broken fixture files, through dsocr_config_load (the message starts with the path). */
static void
test_broken_files (void)
{
  static const struct {
    const char *file;
    int code;
    const char *message;
  } cases[] = {
    { "configs/broken-heads-type.json", DSOCR_ERROR_CONFIG,
      ": language_config.num_attention_heads: expected a positive integer, got \"ten\"" },
    { "configs/broken-language-conflict.json", DSOCR_ERROR_CONFIG,
      ": language_config.hidden_size: 1280 disagrees with the top-level hidden_size: 1024" },
    { "configs/broken-experts-per-tok.json", DSOCR_ERROR_CONFIG,
      ": num_experts_per_tok: 65 is larger than n_routed_experts (64)" },
    { "configs/broken-hidden-act.json", DSOCR_ERROR_UNSUPPORTED,
      ": hidden_act: \"gelu\" is not supported (only silu is)" },
    { "configs/broken-truncated.json", DSOCR_ERROR_FORMAT,
      ": not valid JSON: expected ',' or '}' at byte 139" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *path = dsocr_test_fixture (cases[i].file);
    char *want = g_strconcat (path, cases[i].message, NULL);
    GError *error = NULL;
    g_assert_null (dsocr_config_load (path, &error));
    g_assert_error (error, DSOCR_ERROR, cases[i].code);
    g_assert_cmpstr (error->message, ==, want);
    g_clear_error (&error);
    g_free (want);
    g_free (path);
  }
}

static void
test_not_json (void)
{
  static const struct {
    const char *data;
    gssize len;
    const char *message;
  } cases[] = {
    { "", 0, "x: not valid JSON: unexpected end of data at byte 0" },
    { "[1, 2]", -1, "x: the top level is not a JSON object" },
    { "{\"model_type\": 'deepseek_v2'}", -1,
      "x: not valid JSON: unexpected character at byte 15" },
    { "{\"a\": 1 /* c */}", -1, "x: not valid JSON: expected ',' or '}' at byte 8" },
    { "{\"a\": 1,}", -1, "x: not valid JSON: expected a member name at byte 8" },
    { "{\"a\": 01}", -1, "x: not valid JSON: expected ',' or '}' at byte 7" },
    { "{\"a\": 0x10}", -1, "x: not valid JSON: expected ',' or '}' at byte 7" },
    { "{\"a\": NaN}", -1, "x: not valid JSON: unexpected character at byte 6" },
    { "{\"a\": \"\\ud800\"}", -1, "x: not valid JSON: unpaired surrogate in a string at byte 13" },
    { "{\"a\": \"\\u0000\"}", -1, "x: not valid JSON: \\u0000 in a string at byte 13" },
    { "{\"a\": \"\t\"}", -1, "x: not valid JSON: control character in a string at byte 7" },
    { "{\"a\": \"\\x\"}", -1, "x: not valid JSON: invalid escape in a string at byte 9" },
    { "{\"a\": 1} {}", -1, "x: not valid JSON: trailing data after the top-level value at byte 9" },
    { "{\"a\": \"\xff\"}", -1, "x: not valid JSON: invalid UTF-8 or NUL byte at byte 7" },
    { "{\"a\": 1}\0{}", 11, "x: not valid JSON: invalid UTF-8 or NUL byte at byte 8" },
    { "{\"a\": -}", -1, "x: not valid JSON: invalid number at byte 7" },
    { "{\"a\": 1.e5}", -1, "x: not valid JSON: invalid number at byte 8" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *error = NULL;
    g_assert_null (dsocr_config_load_from_data (cases[i].data, cases[i].len, "x", &error));
    g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT);
    g_assert_cmpstr (error->message, ==, cases[i].message);
    g_clear_error (&error);
  }

  /* nesting that would overflow json-glib's stack, also hidden behind a quote */
  for (int variant = 0; variant < 2; variant++) {
    GString *s = g_string_new (variant ? "{\"a\": [\"'\", " : "{\"a\": ");
    for (int i = 0; i < 300000; i++)
      g_string_append_c (s, '[');
    GError *error = NULL;
    g_assert_null (dsocr_config_load_from_data (s->str, s->len, "x", &error));
    g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT);
    g_assert_nonnull (strstr (error->message, "nested too deeply"));
    g_clear_error (&error);
    g_string_free (s, TRUE);
  }

  /* too large */
  gsize big = (16u << 20) + 1;
  char *data = g_malloc (big);
  memset (data, ' ', big);
  GError *error = NULL;
  g_assert_null (dsocr_config_load_from_data (data, big, "x", &error));
  g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT);
  g_assert_cmpstr (error->message, ==,
                   "x: 16777217 bytes, larger than the 16 MiB a config may have");
  g_clear_error (&error);
  g_free (data);
}

static void
test_load_paths (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("dsocr-config-XXXXXX", &error);
  g_assert_no_error (error);
  char *path = g_build_filename (dir, "config.json", NULL);

  /* a directory with no config.json */
  g_assert_null (dsocr_config_load (dir, &error));
  g_assert_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_clear_error (&error);

  char *text = fixture_text ("configs/deepseek-v3.2.json");
  g_assert_true (g_file_set_contents (path, text, -1, &error));
  dsocr_config *cfg = dsocr_config_load (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cfg->path, ==, path);
  g_assert_cmpint (cfg->kind, ==, DSOCR_MODEL_DEEPSEEK_V32);
  dsocr_config_free (cfg);
  dsocr_config_free (NULL);

  g_unlink (path);
  g_rmdir (dir);
  g_free (text);
  g_free (path);
  g_free (dir);
}

static void
test_names (void)
{
  g_assert_cmpstr (dsocr_model_kind_name (DSOCR_MODEL_DEEPSEEK_OCR), ==, "deepseek-ocr");
  g_assert_cmpstr (dsocr_model_kind_name (DSOCR_MODEL_DEEPSEEK_V2), ==, "deepseek-v2");
  g_assert_cmpstr (dsocr_model_kind_name (DSOCR_MODEL_DEEPSEEK_V3), ==, "deepseek-v3");
  g_assert_cmpstr (dsocr_model_kind_name (DSOCR_MODEL_DEEPSEEK_V32), ==, "deepseek-v3.2");
  g_assert_null (dsocr_model_kind_name ((dsocr_model_kind) 17));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/deepseek-ocr", test_deepseek_ocr);
  g_test_add_func ("/config/deepseek-ocr-resaved", test_deepseek_ocr_resaved);
  g_test_add_func ("/config/deepseek-v2-lite", test_deepseek_v2_lite);
  g_test_add_func ("/config/deepseek-v3.2", test_deepseek_v32);
  g_test_add_func ("/config/classification", test_classification);
  g_test_add_func ("/config/defaults/v2", test_defaults_v2);
  g_test_add_func ("/config/defaults/v3", test_defaults_v3);
  g_test_add_func ("/config/defaults/ocr", test_defaults_ocr);
  g_test_add_func ("/config/vision-shrunk", test_vision_shrunk);
  g_test_add_func ("/config/fixture-models", test_fixture_models);
  g_test_add_func ("/config/errors", test_errors);
  g_test_add_func ("/config/broken-files", test_broken_files);
  g_test_add_func ("/config/not-json", test_not_json);
  g_test_add_func ("/config/load-paths", test_load_paths);
  g_test_add_func ("/config/names", test_names);
  return g_test_run ();
}
