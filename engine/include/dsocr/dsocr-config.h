/* dsocr-config.h: a model's config.json, parsed, defaulted and validated.
 *
 *   GError *error = NULL;
 *   dsocr_config *cfg = dsocr_config_load ("/models/DeepSeek-OCR", &error);  // or a config.json
 *   if (!cfg) {
 *     g_printerr ("%s\n", error->message);  // "config.json: language_config.num_attention_heads: ..."
 *     g_error_free (error);
 *     return;
 *   }
 *   if (cfg->kind == DSOCR_MODEL_DEEPSEEK_OCR)
 *     build_vision (&cfg->vision);
 *   for (int l = 0; l < cfg->text.num_hidden_layers; l++)
 *     build_layer (&cfg->text, l, dsocr_text_config_layer_is_moe (&cfg->text, l));
 *   dsocr_config_free (cfg);
 *
 * Four families are understood:
 *   DeepSeek-OCR   model_type "deepseek_vl_v2" (the hub checkpoint) or "DeepseekOCR" (the same
 *                  config re-saved by its own config class); architectures DeepseekOCRForCausalLM.
 *                  Language fields come from "language_config" and are repeated at top level:
 *                  both places are read and must agree.
 *   DeepSeek-V2    model_type "deepseek_v2"
 *   DeepSeek-V3    model_type "deepseek_v3" (noaux_tc sigmoid routing)
 *   DeepSeek-V3.2  model_type "deepseek_v32" (V3 plus the DSA lightning indexer)
 *
 * A field absent from the file takes the default of the config class that reads it in the
 * reference: the hub's configuration_deepseek_v2.py for DeepSeek-OCR, transformers'
 * DeepseekV2Config / DeepseekV3Config / DeepseekV32Config for the others. The few places
 * where this library deliberately differs are noted at the field. Keys this library does not
 * use are ignored (real configs carry many).
 *
 * Errors: DSOCR_ERROR_FILE (cannot read), DSOCR_ERROR_FORMAT (not strict JSON, nested deeper
 * than 64 levels, larger than 16 MiB), DSOCR_ERROR_CONFIG (wrong type, out of range,
 * inconsistent, unknown enum string), DSOCR_ERROR_UNSUPPORTED (a valid setting this engine
 * does not run: another model_type or architecture, an activation other than silu, a RoPE
 * scaling other than none/linear/yarn, a quantization other than block FP8). Every message
 * starts with the file (or the origin given to dsocr_config_load_from_data) and the dotted
 * path of the field.
 *
 * Ownership: dsocr_config_load*() return (transfer full) a config freed with
 * dsocr_config_free(). It is a plain struct: read it freely; the few pointers in it (path,
 * label names, tile_tag, global_view_pos) are owned by it, so do not copy the struct and free
 * both.
 */
#ifndef DSOCR_CONFIG_H
#define DSOCR_CONFIG_H

#include <glib.h>

#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

#define DSOCR_CONFIG_MAX_EOS 16            /* eos_token_id may be a list: at most this many */
#define DSOCR_CONFIG_MAX_GLOBAL_ATTN 64    /* SAM global_attn_indexes entries */
#define DSOCR_CONFIG_MAX_DOWNSAMPLE 8      /* SAM downsample_channels entries */
#define DSOCR_CONFIG_MAX_RESOLUTIONS 64    /* candidate_resolutions entries */

typedef enum {
  DSOCR_MODEL_DEEPSEEK_OCR = 0,
  DSOCR_MODEL_DEEPSEEK_V2,
  DSOCR_MODEL_DEEPSEEK_V3,
  DSOCR_MODEL_DEEPSEEK_V32,
} dsocr_model_kind;

/* From architectures[0]: "...ForCausalLM", "...ForSequenceClassification", "...Model". An
 * absent list means a causal LM. */
typedef enum {
  DSOCR_ARCH_CAUSAL_LM = 0,       /* decoder + lm_head */
  DSOCR_ARCH_SEQUENCE_CLASSIFICATION, /* decoder + score head [num_labels, hidden] */
  DSOCR_ARCH_BASE_MODEL,          /* decoder only: hidden states out */
} dsocr_architecture;

typedef enum {
  DSOCR_TOPK_GREEDY = 0,          /* "greedy": top-k over all experts */
  DSOCR_TOPK_GROUP_LIMITED_GREEDY,/* "group_limited_greedy": group score = max prob in group */
  DSOCR_TOPK_NOAUX_TC,            /* "noaux_tc": group score = sum of top-2 biased scores */
} dsocr_topk_method;

typedef enum {
  DSOCR_SCORING_SOFTMAX = 0,
  DSOCR_SCORING_SIGMOID,
} dsocr_scoring_func;

typedef enum {
  DSOCR_ROPE_DEFAULT = 0,         /* plain RoPE (rope_scaling null or rope_type "default") */
  DSOCR_ROPE_LINEAR,              /* positions divided by factor */
  DSOCR_ROPE_YARN,
} dsocr_rope_type;

typedef enum {
  DSOCR_PROBLEM_NONE = 0,         /* problem_type null: inferred from labels at training time */
  DSOCR_PROBLEM_REGRESSION,
  DSOCR_PROBLEM_SINGLE_LABEL,     /* "single_label_classification" */
  DSOCR_PROBLEM_MULTI_LABEL,      /* "multi_label_classification" */
} dsocr_problem_type;

typedef enum {
  DSOCR_QUANT_NONE = 0,
  DSOCR_QUANT_FP8,                /* quant_method "fp8", fmt "e4m3": F8_E4M3 weights with
                                   * per-block f32 `weight_scale_inv` */
} dsocr_quant_method;

/* RoPE, merged from the legacy `rope_scaling` dict (with "type") and the newer
 * `rope_parameters` dict (with "rope_type"); `rope_scaling` wins when both are set, as in
 * transformers. */
typedef struct {
  dsocr_rope_type type;
  double theta;                   /* rope_theta (10000 by default) */
  double factor;                  /* linear/yarn scale; 1 for DEFAULT */
  int original_max_position_embeddings; /* yarn: pretraining length; defaults to
                                         * max_position_embeddings */
  double beta_fast;               /* yarn: 32 by default */
  double beta_slow;               /* yarn: 1 by default */
  double mscale;                  /* yarn: 0 when absent */
  double mscale_all_dim;          /* yarn: 0 when absent */
  /* Derived (transformers _compute_yarn_parameters): the factor cos/sin are multiplied by.
   * attention_factor if given, else get_mscale(factor, mscale) / get_mscale(factor,
   * mscale_all_dim) when both are non-zero, else get_mscale(factor); 1 for DEFAULT/LINEAR. */
  double attention_factor;
} dsocr_rope_config;

/* The decoder (DeepSeek-V2 family). Sizes are element counts. */
typedef struct {
  int vocab_size;                 /* rows of embed_tokens / lm_head (may exceed the tokenizer) */
  int hidden_size;
  int intermediate_size;          /* dense MLP width (the first_k_dense_replace layers) */
  int moe_intermediate_size;      /* width of one routed expert; shared = this * n_shared */
  int num_hidden_layers;          /* decoder layers; a checkpoint may hold
                                   * num_nextn_predict_layers more (MTP), which are skipped */
  int num_nextn_predict_layers;   /* 0 unless given */
  int num_attention_heads;
  int num_key_value_heads;        /* defaults to num_attention_heads (the hub default of 32 is
                                   * not copied: it breaks any config with other head counts) */

  /* Attention. */
  gboolean use_mla;               /* multi-head latent attention. Default TRUE (hub and
                                   * transformers); DeepSeek-OCR's config sets it FALSE. */
  int head_dim;                   /* MHA: hidden_size / num_attention_heads. MLA: width of one
                                   * query/key head, qk_nope_head_dim + qk_rope_head_dim */
  int q_lora_rank;                /* MLA: query LoRA rank; 0 = null (direct q_proj) */
  int kv_lora_rank;               /* MLA: latent KV width; 0 = null (MHA configs) */
  int qk_nope_head_dim;           /* MLA: non-rotary part of a q/k head */
  int qk_rope_head_dim;           /* MLA: rotary part (one k_pe head shared by all heads) */
  int v_head_dim;                 /* MLA: value head width. These three keep the file's values
                                   * under MHA (0 in DeepSeek-OCR) and are unused there. */
  int rope_dim;                   /* dims RoPE rotates: MHA head_dim, MLA qk_rope_head_dim */
  gboolean rope_interleave;       /* pairs (2i, 2i+1) (MLA; `rope_interleave`, default TRUE) or
                                   * (i, i + d/2) rotate_half (MHA: always FALSE) */
  double softmax_scale;           /* derived: head_dim^-0.5, times get_mscale(factor,
                                   * mscale_all_dim)^2 for MLA with yarn and mscale_all_dim */
  gboolean attention_bias;        /* q/k/v/o projections carry a bias */
  dsocr_rope_config rope;
  int max_position_embeddings;

  /* Feed-forward and mixture of experts. A layer l is MoE iff n_routed_experts > 0,
   * l >= first_k_dense_replace and l % moe_layer_freq == 0 (dsocr_text_config_layer_is_moe). */
  int n_routed_experts;           /* 0 = null: a dense model */
  int n_shared_experts;           /* 0 = null: no shared expert */
  int num_experts_per_tok;        /* top-k; 0 = null (only valid for a dense model) */
  int first_k_dense_replace;
  int moe_layer_freq;
  dsocr_topk_method topk_method;  /* default GREEDY (V2, OCR; the hub code's default string is
                                   * the misspelt "gready") or NOAUX_TC (V3, V3.2) */
  int n_group;                    /* expert groups; null -> 1 */
  int topk_group;                 /* groups kept per token; null -> 1 */
  gboolean norm_topk_prob;        /* renormalise the top-k weights */
  double routed_scaling_factor;   /* multiplies the routed weights */
  dsocr_scoring_func scoring_func;/* router scores: SOFTMAX (V2, OCR) or SIGMOID (V3, V3.2) */
  /* hidden_act: only "silu" is accepted, so there is no field. */

  double rms_norm_eps;
  gboolean tie_word_embeddings;   /* lm_head shares embed_tokens */

  /* Special tokens: -1 = null. */
  int bos_token_id;
  int eos_token_ids[DSOCR_CONFIG_MAX_EOS]; /* eos_token_id, an int or a list */
  int n_eos_token_ids;            /* 0 when eos_token_id is null */
  int pad_token_id;               /* null in the OCR/V2/V3 configs; classification pooling
                                   * needs it for batches */

  /* DeepSeek-V3.2 sparse attention (DSA) lightning indexer. */
  gboolean use_sparse_attention;  /* default TRUE for deepseek_v32 and whenever an index_*
                                   * field is present; FALSE otherwise */
  int index_n_heads;              /* 64 by default */
  int index_head_dim;             /* 128 by default; the first qk_rope_head_dim dims rotate */
  int index_topk;                 /* 2048 by default: keys kept per query */
} dsocr_text_config;

/* SAM ViT-B image encoder of DeepSeek-OCR (build_sam_vit_b). */
typedef struct {
  int layers;                     /* 12 */
  int width;                      /* 768 */
  int heads;                      /* 12 */
  int mlp_dim;                    /* 4 * width (the config's vision mlp_ratio 3.7362 is unused) */
  int patch_size;                 /* 16 */
  int window_size;                /* 14 */
  int out_chans;                  /* 256: neck output */
  int global_attn_indexes[DSOCR_CONFIG_MAX_GLOBAL_ATTN]; /* {2, 5, 8, 11}: ascending */
  int n_global_attn_indexes;
  int downsample_channels[DSOCR_CONFIG_MAX_DOWNSAMPLE]; /* {512, 1024}: stride-2 3x3 convs */
  int n_downsample_channels;
} dsocr_sam_config;

/* CLIP-L/14 encoder of DeepSeek-OCR (build_clip_l); its patch conv is unused, SAM's output
 * (downsample_channels[last] == width channels) replaces the patch embeddings. */
typedef struct {
  int layers;                     /* 24 */
  int width;                      /* 1024 */
  int heads;                      /* 16 */
  int ffn_dim;                    /* ffn_hidden_size, 4 * width unless given: 4096 */
  int patch_size;                 /* 14 */
  int image_size;                 /* 224: position table (image_size/patch_size)^2 + 1 = 257 */
} dsocr_clip_config;

/* Vision side of DeepSeek-OCR. The checkpoint's config only partly describes the towers (the
 * code hard-codes SAM ViT-B and CLIP-L): sizes are read from vision_config.width.sam_vit_b and
 * vision_config.width["clip-l-14-224"] when present, else the hard-coded real values, so tiny
 * test models shrink the towers through the same keys. */
typedef struct {
  int image_size;                 /* vision_config.image_size: 1024, global view and SAM input */
  dsocr_sam_config sam;
  dsocr_clip_config clip;
  /* projector_config: only "linear" (one Linear(input_dim -> n_embed) with bias) */
  int projector_input_dim;        /* 2048 = clip.width + sam.downsample_channels[last] */
  int projector_n_embed;          /* 1280 = text.hidden_size */
  char *tile_tag;                 /* "2D" (owned) */
  char *global_view_pos;          /* "head" (owned); unused by the reference, which puts the
                                   * global view after the local tiles */
  int candidate_resolutions[DSOCR_CONFIG_MAX_RESOLUTIONS][2]; /* [[1024, 1024]]: unused by the
                                                               * reference */
  int n_candidate_resolutions;
  int image_token_id;             /* "<image>": image_token_id if given, else 128815, or -1
                                   * when that lies outside the vocabulary (tiny models) */
} dsocr_vision_config;

/* quantization_config (DeepSeek-V3/V3.2 release checkpoints). */
typedef struct {
  dsocr_quant_method method;
  int weight_block_size[2];       /* FP8: [rows, cols] covered by one scale: {128, 128} */
  gboolean scale_ue8m0;           /* FP8: scale_fmt "ue8m0", scales are powers of two */
} dsocr_quant_config;

typedef struct dsocr_config {
  char *path;                     /* the file read, or the origin given (owned) */
  dsocr_model_kind kind;
  dsocr_architecture architecture;
  dsocr_dtype dtype;              /* "dtype"/"torch_dtype": BF16, F16 or F32; DSOCR_DTYPE_N when
                                   * absent */
  dsocr_text_config text;
  dsocr_vision_config vision;     /* DeepSeek-OCR only; zeroed for the other kinds */
  dsocr_quant_config quant;

  /* Sequence classification (PreTrainedConfig fields; present on every config). */
  int num_labels;                 /* len(id2label) if given, else num_labels, else 2 */
  char **id2label;                /* num_labels names, NULL-terminated (owned); "LABEL_<i>" when
                                   * id2label is absent */
  dsocr_problem_type problem_type;
} dsocr_config;

/* Reads @path_or_dir (a directory means <dir>/config.json).
 * Returns: (transfer full) the config, or NULL with @error set. */
dsocr_config *dsocr_config_load (const char *path_or_dir, GError **error);

/* Parses @len bytes of @json (-1: NUL-terminated). @origin (may be NULL: "config") names the
 * data in error messages and becomes cfg->path.
 * Returns: (transfer full) the config, or NULL with @error set. */
dsocr_config *dsocr_config_load_from_data (const char *json, gssize len, const char *origin,
                                           GError **error);

/* Frees @cfg and what it owns. NULL is a no-op. */
void dsocr_config_free (dsocr_config *cfg);

/* TRUE when decoder layer @layer uses the MoE block rather than the dense MLP. */
gboolean dsocr_text_config_layer_is_moe (const dsocr_text_config *text, int layer);

/* "deepseek-ocr", "deepseek-v2", "deepseek-v3", "deepseek-v3.2"; NULL for an invalid value.
 * (transfer none) */
const char *dsocr_model_kind_name (dsocr_model_kind kind);

G_END_DECLS

#endif /* DSOCR_CONFIG_H */
