/* config.c: config.json -> dsocr_config (dsocr-config.h).
 *
 * The bytes go through the strict JSON parser (json-strict.h) first; the field readers below
 * walk the tree it builds.
 */
#include "dsocr/dsocr-config.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "dsocr/dsocr-error.h"
#include "json-strict.h"

#define MAX_FILE_SIZE (16 << 20)  /* config.json files are kilobytes; id2label may add some */
#define MAX_DEPTH 64              /* real configs nest 4 levels */

/* Sanity limits: far above any released model, low enough that products of two of them fit
 * in an int and that a corrupted field is caught here rather than as a huge allocation. */
#define MAX_DIM (1 << 20)         /* widths, ranks */
#define MAX_VOCAB (1 << 24)
#define MAX_LAYERS 1024
#define MAX_HEADS (1 << 14)       /* heads, experts */
#define MAX_HEAD_DIM (1 << 14)
#define MAX_POSITIONS (1 << 30)
#define MAX_LABELS (1 << 20)

/* DeepSeek-OCR's vision tower as build_sam_vit_b() / build_clip_l() hard-code it. */
#define OCR_IMAGE_SIZE 1024
#define OCR_IMAGE_TOKEN_ID 128815

/* ------------------------------------------------------------------------------------------ */
/* Field readers */

typedef struct {
  const char *origin;
  JsonObject *root;
  JsonObject *lang;  /* DeepSeek-OCR's language_config, else NULL */
  char path[256];    /* dotted path of the field being read, for messages */
  char quoted[2][128]; /* quote() results */
  int n_quoted;
  GError **error;
} reader;

static gboolean G_GNUC_PRINTF (4, 5)
fail (reader *r, int code, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (r->error, DSOCR_ERROR, code, "%s: %s: %s", r->origin, path, msg);
  g_free (msg);
  return FALSE;
}

/* @str as a message shows it: quoted, escaped, cut after 40 bytes (transfer full). */
static char *
quote_string (const char *str)
{
  gsize n = strlen (str);
  char *cut = g_utf8_make_valid (str, MIN (n, 40));
  char *esc = g_strescape (cut, NULL);
  char *out = g_strdup_printf ("\"%s%s\"", esc, n > 40 ? "..." : "");
  g_free (cut);
  g_free (esc);
  return out;
}

/* The same into one of two buffers of @r, for format arguments (transfer none). */
static const char *
quote (reader *r, const char *str)
{
  char *q = quote_string (str);
  char *buf = r->quoted[r->n_quoted++ % 2];
  g_strlcpy (buf, q, sizeof r->quoted[0]);
  g_free (q);
  return buf;
}

/* A short rendering of @node for "got ..." in messages (transfer full). */
static char *
describe (JsonNode *node)
{
  if (!node || JSON_NODE_HOLDS_NULL (node))
    return g_strdup ("null");
  if (JSON_NODE_HOLDS_OBJECT (node))
    return g_strdup ("an object");
  if (JSON_NODE_HOLDS_ARRAY (node))
    return g_strdup ("an array");
  GType t = json_node_get_value_type (node);
  if (t == G_TYPE_INT64)
    return g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (node));
  if (t == G_TYPE_DOUBLE)
    return g_strdup_printf ("%.17g", json_node_get_double (node));
  if (t == G_TYPE_BOOLEAN)
    return g_strdup (json_node_get_boolean (node) ? "true" : "false");
  if (t == G_TYPE_STRING)
    return quote_string (json_node_get_string (node));
  return g_strdup ("a value");
}

static gboolean G_GNUC_PRINTF (4, 5)
fail_got (reader *r, const char *path, JsonNode *node, const char *expected, ...)
{
  va_list ap;
  va_start (ap, expected);
  char *want = g_strdup_vprintf (expected, ap);
  va_end (ap);
  char *got = describe (node);
  fail (r, DSOCR_ERROR_CONFIG, path, "expected %s, got %s", want, got);
  g_free (want);
  g_free (got);
  return FALSE;
}

static const char *
set_path (reader *r, const char *prefix, const char *key)
{
  if (prefix && *prefix)
    g_snprintf (r->path, sizeof r->path, "%s.%s", prefix, key);
  else
    g_snprintf (r->path, sizeof r->path, "%s", key);
  return r->path;
}

static JsonNode *
member (JsonObject *obj, const char *key)
{
  return obj ? json_object_get_member (obj, key) : NULL;
}

static gboolean
is_number (JsonNode *n)
{
  GType t;
  if (!JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  t = json_node_get_value_type (n);
  return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

static gboolean conflict (reader *r, const char *key);

/* Do two copies of a language field say the same thing? Numbers compare by value, so 1e-06
 * and 0.000001 agree. */
static gboolean
nodes_agree (JsonNode *a, JsonNode *b)
{
  if (is_number (a) && is_number (b)) {
    if (json_node_get_value_type (a) == G_TYPE_INT64 &&
        json_node_get_value_type (b) == G_TYPE_INT64)
      return json_node_get_int (a) == json_node_get_int (b);
    return json_node_get_double (a) == json_node_get_double (b);
  }
  return json_node_equal (a, b);
}

/* Finds a decoder field. For DeepSeek-OCR it sits in language_config and again at top level;
 * either may be missing, and where both exist they must agree. Sets r->path to where the
 * value came from. Returns the node (transfer none) or NULL when absent; FALSE on conflict. */
static gboolean
text_node (reader *r, const char *key, JsonNode **out)
{
  JsonNode *in_lang = member (r->lang, key);
  JsonNode *in_top = member (r->root, key);
  if (in_lang && in_top && !nodes_agree (in_lang, in_top))
    return conflict (r, key);
  set_path (r, in_lang ? "language_config" : NULL, key);
  *out = in_lang ? in_lang : in_top;
  return TRUE;
}

/* Dotted path of a decoder field for cross-field messages. */
static const char *
text_path (reader *r, const char *key)
{
  return set_path (r, member (r->lang, key) ? "language_config" : NULL, key);
}

typedef struct {
  gint64 min, max;
  gboolean nullable;  /* JSON null allowed, read as null_value */
  int null_value;
} int_spec;

static gboolean
read_int (reader *r, JsonNode *node, const char *path, const int_spec *spec, int *out)
{
  if (!node)
    return TRUE;
  const char *kind = spec->min > 0 ? "a positive integer"
                     : spec->min == 0 ? "a non-negative integer" : "an integer";
  if (JSON_NODE_HOLDS_NULL (node)) {
    if (spec->nullable) {
      *out = spec->null_value;
      return TRUE;
    }
    return fail_got (r, path, node, "%s", kind);
  }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return fail_got (r, path, node, "%s%s", kind, spec->nullable ? " or null" : "");
  gint64 v = json_node_get_int (node);
  if (v < spec->min)
    return fail_got (r, path, node, "%s", kind);
  if (v > spec->max)
    return fail (r, DSOCR_ERROR_CONFIG, path,
                 "%" G_GINT64_FORMAT " is out of range (at most %" G_GINT64_FORMAT ")", v,
                 spec->max);
  *out = (int) v;
  return TRUE;
}

/* Finite number; with @positive, > 0. JSON null keeps *out when @nullable. */
static gboolean
read_double (reader *r, JsonNode *node, const char *path, gboolean positive, gboolean nullable,
             double *out)
{
  if (!node || (nullable && JSON_NODE_HOLDS_NULL (node)))
    return TRUE;
  const char *kind = positive ? "a positive number" : "a non-negative number";
  if (!is_number (node))
    return fail_got (r, path, node, "%s", kind);
  double v = json_node_get_double (node);
  if (!isfinite (v) || v < 0.0 || (positive && v == 0.0))
    return fail_got (r, path, node, "%s", kind);
  *out = v;
  return TRUE;
}

static gboolean
read_bool (reader *r, JsonNode *node, const char *path, gboolean nullable, gboolean *out)
{
  if (!node || (nullable && JSON_NODE_HOLDS_NULL (node)))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return fail_got (r, path, node, "true or false");
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* *out = the string (transfer none), left alone when absent (or null with @nullable). */
static gboolean
read_string (reader *r, JsonNode *node, const char *path, gboolean nullable, const char **out)
{
  if (!node || (nullable && JSON_NODE_HOLDS_NULL (node)))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return fail_got (r, path, node, "a string");
  *out = json_node_get_string (node);
  return TRUE;
}

static gboolean
read_object (reader *r, JsonNode *node, const char *path, JsonObject **out)
{
  *out = NULL;
  if (!node || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail_got (r, path, node, "an object");
  *out = json_node_get_object (node);
  return TRUE;
}

/* Decoder-field shorthands (language_config-aware): each copy is type-checked on its own
 * path first, so a bad value is reported as such, then the two copies must agree. On return
 * r->path names the copy used. */
static gboolean
conflict (reader *r, const char *key)
{
  char *a = describe (member (r->lang, key)), *b = describe (member (r->root, key));
  set_path (r, "language_config", key);
  fail (r, DSOCR_ERROR_CONFIG, r->path, "%s disagrees with the top-level %s: %s", a, key, b);
  g_free (a);
  g_free (b);
  return FALSE;
}

static gboolean
text_int (reader *r, const char *key, gint64 min, gint64 max, gboolean nullable, int null_value,
          int *out)
{
  JsonNode *l = member (r->lang, key), *t = member (r->root, key);
  int_spec spec = { min, max, nullable, null_value };
  int vl = *out, vt = *out;
  if ((l && !read_int (r, l, set_path (r, "language_config", key), &spec, &vl)) ||
      (t && !read_int (r, t, set_path (r, NULL, key), &spec, &vt)))
    return FALSE;
  if (l && t && vl != vt)
    return conflict (r, key);
  *out = l ? vl : vt;
  text_path (r, key);
  return TRUE;
}

static gboolean
text_double (reader *r, const char *key, gboolean positive, double *out)
{
  JsonNode *l = member (r->lang, key), *t = member (r->root, key);
  double vl = *out, vt = *out;
  if ((l && !read_double (r, l, set_path (r, "language_config", key), positive, FALSE, &vl)) ||
      (t && !read_double (r, t, set_path (r, NULL, key), positive, FALSE, &vt)))
    return FALSE;
  if (l && t && vl != vt)
    return conflict (r, key);
  *out = l ? vl : vt;
  text_path (r, key);
  return TRUE;
}

static gboolean
text_bool (reader *r, const char *key, gboolean nullable, gboolean *out)
{
  JsonNode *l = member (r->lang, key), *t = member (r->root, key);
  gboolean vl = *out, vt = *out;
  if ((l && !read_bool (r, l, set_path (r, "language_config", key), nullable, &vl)) ||
      (t && !read_bool (r, t, set_path (r, NULL, key), nullable, &vt)))
    return FALSE;
  if (l && t && vl != vt)
    return conflict (r, key);
  *out = l ? vl : vt;
  text_path (r, key);
  return TRUE;
}

/* A nullable string field; *out is left alone when absent or null. *node_out = the copy used
 * (for messages). */
static gboolean
text_string (reader *r, const char *key, const char **out, JsonNode **node_out)
{
  JsonNode *l = member (r->lang, key), *t = member (r->root, key);
  const char *vl = NULL, *vt = NULL;
  if ((l && !read_string (r, l, set_path (r, "language_config", key), TRUE, &vl)) ||
      (t && !read_string (r, t, set_path (r, NULL, key), TRUE, &vt)))
    return FALSE;
  if (l && t && g_strcmp0 (vl, vt) != 0)
    return conflict (r, key);
  if (vl || vt)
    *out = vl ? vl : vt;
  *node_out = l ? l : t;
  text_path (r, key);
  return TRUE;
}

/* Field of a plain object (not language-aware). */
static gboolean
obj_int (reader *r, JsonObject *obj, const char *prefix, const char *key, gint64 min, gint64 max,
         int *out)
{
  int_spec spec = { min, max, FALSE, 0 };
  return read_int (r, member (obj, key), set_path (r, prefix, key), &spec, out);
}

/* An array of at most @max_n integers in [min, max] into @out; *n = its length. */
static gboolean
obj_int_array (reader *r, JsonObject *obj, const char *prefix, const char *key, gint64 min,
               gint64 max, int *out, int max_n, int *n)
{
  JsonNode *node = member (obj, key);
  const char *path = set_path (r, prefix, key);
  if (!node)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return fail_got (r, path, node, "an array of integers");
  JsonArray *a = json_node_get_array (node);
  guint len = json_array_get_length (a);
  if (len > (guint) max_n)
    return fail (r, DSOCR_ERROR_CONFIG, path, "%u entries, at most %d are supported", len, max_n);
  for (guint i = 0; i < len; i++) {
    char elem[300];
    int_spec spec = { min, max, FALSE, 0 };
    g_snprintf (elem, sizeof elem, "%s[%u]", path, i);
    if (!read_int (r, json_array_get_element (a, i), elem, &spec, &out[i]))
      return FALSE;
  }
  *n = (int) len;
  return TRUE;
}

/* ------------------------------------------------------------------------------------------ */
/* Defaults */

/* What the reference config class assumes for an absent field, per family. */
typedef struct {
  int vocab_size, hidden_size, intermediate_size, moe_intermediate_size, num_hidden_layers;
  int num_attention_heads;
  int n_shared_experts, n_routed_experts, num_experts_per_tok;
  double routed_scaling_factor;
  int n_group, topk_group, first_k_dense_replace;
  dsocr_topk_method topk_method;
  dsocr_scoring_func scoring_func;
  gboolean norm_topk_prob;
  int max_position_embeddings;
  int bos_token_id, eos_token_id;
} family_defaults;

static const family_defaults defaults_table[] = {
  /* hub configuration_deepseek_v2.py (DeepseekOCRConfig inherits it) */
  [DSOCR_MODEL_DEEPSEEK_OCR] = { 102400, 4096, 11008, 1407, 30, 32, 0, 0, 0, 1.0, 1, 1, 0,
                                 DSOCR_TOPK_GREEDY, DSOCR_SCORING_SOFTMAX, FALSE, 2048,
                                 100000, 100001 },
  /* transformers DeepseekV2Config */
  [DSOCR_MODEL_DEEPSEEK_V2] = { 102400, 4096, 11008, 1407, 32, 32, 2, 64, 0, 1.0, 1, 1, 0,
                                DSOCR_TOPK_GREEDY, DSOCR_SCORING_SOFTMAX, FALSE, 2048, 1, 2 },
  /* transformers DeepseekV3Config (routing is always noaux_tc + sigmoid there) */
  [DSOCR_MODEL_DEEPSEEK_V3] = { 129280, 7168, 18432, 2048, 61, 128, 1, 256, 8, 2.5, 8, 4, 3,
                                DSOCR_TOPK_NOAUX_TC, DSOCR_SCORING_SIGMOID, TRUE, 4096, 0, 1 },
  /* transformers DeepseekV32Config */
  [DSOCR_MODEL_DEEPSEEK_V32] = { 129280, 7168, 18432, 2048, 61, 128, 1, 256, 8, 2.5, 8, 4, 3,
                                 DSOCR_TOPK_NOAUX_TC, DSOCR_SCORING_SIGMOID, TRUE, 163840, 0, 1 },
};

static const char *const kind_names[] = {
  [DSOCR_MODEL_DEEPSEEK_OCR] = "deepseek-ocr",
  [DSOCR_MODEL_DEEPSEEK_V2] = "deepseek-v2",
  [DSOCR_MODEL_DEEPSEEK_V3] = "deepseek-v3",
  [DSOCR_MODEL_DEEPSEEK_V32] = "deepseek-v3.2",
};

const char *
dsocr_model_kind_name (dsocr_model_kind kind)
{
  if ((unsigned) kind >= G_N_ELEMENTS (kind_names))
    return NULL;
  return kind_names[kind];
}

/* get_mscale of the YaRN code (hub modeling_deepseekv2.py, transformers modeling_rope_utils). */
static double
yarn_get_mscale (double scale, double mscale)
{
  if (scale <= 1.0)
    return 1.0;
  return 0.1 * mscale * log (scale) + 1.0;
}

/* ------------------------------------------------------------------------------------------ */
/* Model kind and architecture */

static gboolean
parse_kind (reader *r, dsocr_config *cfg)
{
  JsonNode *node = member (r->root, "model_type");
  const char *mt = NULL;
  if (!node)
    return fail (r, DSOCR_ERROR_CONFIG, "model_type", "missing");
  if (!read_string (r, node, "model_type", FALSE, &mt))
    return FALSE;
  if (!strcmp (mt, "deepseek_vl_v2") || !strcmp (mt, "DeepseekOCR"))
    cfg->kind = DSOCR_MODEL_DEEPSEEK_OCR;
  else if (!strcmp (mt, "deepseek_v2"))
    cfg->kind = DSOCR_MODEL_DEEPSEEK_V2;
  else if (!strcmp (mt, "deepseek_v3"))
    cfg->kind = DSOCR_MODEL_DEEPSEEK_V3;
  else if (!strcmp (mt, "deepseek_v32"))
    cfg->kind = DSOCR_MODEL_DEEPSEEK_V32;
  else {
    char *got = describe (node);
    fail (r, DSOCR_ERROR_UNSUPPORTED, "model_type",
          "%s is not supported (expected deepseek_vl_v2, DeepseekOCR, deepseek_v2, deepseek_v3 "
          "or deepseek_v32)", got);
    g_free (got);
    return FALSE;
  }

  if (cfg->kind == DSOCR_MODEL_DEEPSEEK_OCR &&
      !read_object (r, member (r->root, "language_config"), "language_config", &r->lang))
    return FALSE;

  /* architectures[0] (the top-level one: language_config has its own, DeepseekV2ForCausalLM) */
  cfg->architecture = DSOCR_ARCH_CAUSAL_LM;
  node = member (r->root, "architectures");
  const char *arch = NULL;
  if (node && !JSON_NODE_HOLDS_NULL (node)) {
    if (!JSON_NODE_HOLDS_ARRAY (node))
      return fail_got (r, "architectures", node, "an array of strings");
    JsonArray *a = json_node_get_array (node);
    if (json_array_get_length (a) > 0 &&
        !read_string (r, json_array_get_element (a, 0), "architectures[0]", FALSE, &arch))
      return FALSE;
  }
  if (arch) {
    if (g_str_has_suffix (arch, "ForCausalLM"))
      cfg->architecture = DSOCR_ARCH_CAUSAL_LM;
    else if (g_str_has_suffix (arch, "ForSequenceClassification"))
      cfg->architecture = DSOCR_ARCH_SEQUENCE_CLASSIFICATION;
    else if (g_str_has_suffix (arch, "Model"))
      cfg->architecture = DSOCR_ARCH_BASE_MODEL;
    else
      return fail (r, DSOCR_ERROR_UNSUPPORTED, "architectures[0]",
                   "%s is not supported (expected a ...ForCausalLM, "
                   "...ForSequenceClassification or ...Model class)", quote (r, arch));
    /* deepseek_vl_v2 is also DeepSeek-VL2's model_type, whose towers differ entirely */
    if (cfg->kind == DSOCR_MODEL_DEEPSEEK_OCR && strcmp (arch, "DeepseekOCRForCausalLM") != 0)
      return fail (r, DSOCR_ERROR_UNSUPPORTED, "architectures[0]",
                   "%s is not supported with model_type %s (expected "
                   "DeepseekOCRForCausalLM)", quote (r, arch), mt);
  }

  /* "dtype" (transformers 5) or "torch_dtype" */
  cfg->dtype = DSOCR_DTYPE_N;
  const char *key = member (r->root, "dtype") ? "dtype" : "torch_dtype";
  const char *dt = NULL;
  node = member (r->root, key);
  if (!read_string (r, node, key, TRUE, &dt))
    return FALSE;
  if (dt) {
    if (!strcmp (dt, "bfloat16"))
      cfg->dtype = DSOCR_DTYPE_BF16;
    else if (!strcmp (dt, "float16"))
      cfg->dtype = DSOCR_DTYPE_F16;
    else if (!strcmp (dt, "float32"))
      cfg->dtype = DSOCR_DTYPE_F32;
    else
      return fail (r, DSOCR_ERROR_UNSUPPORTED, key,
                   "%s is not supported (expected bfloat16, float16 or float32)",
                   quote (r, dt));
  }
  return TRUE;
}

/* ------------------------------------------------------------------------------------------ */
/* RoPE */

static const char *const known_unsupported_rope[] = { "dynamic", "llama3", "longrope",
                                                      "proportional", NULL };

static gboolean
parse_rope (reader *r, dsocr_text_config *t)
{
  dsocr_rope_config *rope = &t->rope;
  JsonNode *node;
  JsonObject *dict = NULL;
  const char *dict_name = "rope_scaling";
  char prefix[64];

  rope->type = DSOCR_ROPE_DEFAULT;
  rope->theta = 10000.0;
  rope->factor = 1.0;
  rope->original_max_position_embeddings = t->max_position_embeddings;
  rope->beta_fast = 32.0;
  rope->beta_slow = 1.0;
  rope->mscale = 0.0;
  rope->mscale_all_dim = 0.0;
  rope->attention_factor = 1.0;

  if (!text_double (r, "rope_theta", TRUE, &rope->theta))
    return FALSE;
  /* The legacy rope_scaling wins over rope_parameters when set, as in transformers'
   * convert_rope_params_to_dict. */
  if (!text_node (r, "rope_scaling", &node) || !read_object (r, node, r->path, &dict))
    return FALSE;
  if (!dict) {
    dict_name = "rope_parameters";
    if (!text_node (r, "rope_parameters", &node) || !read_object (r, node, r->path, &dict))
      return FALSE;
  }
  if (!dict)
    return TRUE;
  g_strlcpy (prefix, text_path (r, dict_name), sizeof prefix);

  const char *type = "default";
  const char *type_key = member (dict, "rope_type") ? "rope_type" : "type";
  if (!read_string (r, member (dict, type_key), set_path (r, prefix, type_key), TRUE, &type))
    return FALSE;
  if (!strcmp (type, "default"))
    rope->type = DSOCR_ROPE_DEFAULT;
  else if (!strcmp (type, "linear"))
    rope->type = DSOCR_ROPE_LINEAR;
  else if (!strcmp (type, "yarn"))
    rope->type = DSOCR_ROPE_YARN;
  else {
    gboolean known = g_strv_contains (known_unsupported_rope, type);
    return fail (r, known ? DSOCR_ERROR_UNSUPPORTED : DSOCR_ERROR_CONFIG,
                 set_path (r, prefix, type_key),
                 "%s is %s (expected default, linear or yarn)", quote (r, type),
                 known ? "not supported" : "not a RoPE type");
  }

  if (!read_double (r, member (dict, "rope_theta"), set_path (r, prefix, "rope_theta"), TRUE,
                    FALSE, &rope->theta))
    return FALSE;
  if (rope->type == DSOCR_ROPE_DEFAULT)
    return TRUE;

  JsonNode *factor = member (dict, "factor");
  if (!read_double (r, factor, set_path (r, prefix, "factor"), TRUE, TRUE, &rope->factor))
    return FALSE;
  gboolean have_factor = factor && !JSON_NODE_HOLDS_NULL (factor);
  if (rope->type == DSOCR_ROPE_LINEAR) {
    if (!have_factor)
      return fail (r, DSOCR_ERROR_CONFIG, set_path (r, prefix, "factor"),
                   "missing (linear RoPE scaling needs it)");
    return TRUE;
  }

  /* YaRN */
  int_spec pos_spec = { 1, MAX_POSITIONS, TRUE, t->max_position_embeddings };
  if (!read_int (r, member (dict, "original_max_position_embeddings"),
                 set_path (r, prefix, "original_max_position_embeddings"), &pos_spec,
                 &rope->original_max_position_embeddings))
    return FALSE;
  if (!have_factor)  /* transformers: the ratio of the two lengths */
    rope->factor = (double) t->max_position_embeddings /
                   (double) rope->original_max_position_embeddings;
  if (!read_double (r, member (dict, "beta_fast"), set_path (r, prefix, "beta_fast"), TRUE, TRUE,
                    &rope->beta_fast) ||
      !read_double (r, member (dict, "beta_slow"), set_path (r, prefix, "beta_slow"), TRUE, TRUE,
                    &rope->beta_slow) ||
      !read_double (r, member (dict, "mscale"), set_path (r, prefix, "mscale"), FALSE, TRUE,
                    &rope->mscale) ||
      !read_double (r, member (dict, "mscale_all_dim"), set_path (r, prefix, "mscale_all_dim"),
                    FALSE, TRUE, &rope->mscale_all_dim))
    return FALSE;
  if (rope->beta_fast < rope->beta_slow)
    return fail (r, DSOCR_ERROR_CONFIG, set_path (r, prefix, "beta_fast"),
                 "%g is smaller than beta_slow (%g)", rope->beta_fast, rope->beta_slow);

  /* cos/sin multiplier (transformers _compute_yarn_parameters) */
  double attention_factor = -1.0;
  if (!read_double (r, member (dict, "attention_factor"), set_path (r, prefix, "attention_factor"),
                    TRUE, TRUE, &attention_factor))
    return FALSE;
  if (attention_factor > 0.0)
    rope->attention_factor = attention_factor;
  else if (rope->mscale != 0.0 && rope->mscale_all_dim != 0.0)
    rope->attention_factor = yarn_get_mscale (rope->factor, rope->mscale) /
                             yarn_get_mscale (rope->factor, rope->mscale_all_dim);
  else
    rope->attention_factor = yarn_get_mscale (rope->factor, 1.0);
  return TRUE;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoder */

static gboolean
parse_text (reader *r, dsocr_config *cfg)
{
  dsocr_text_config *t = &cfg->text;
  const family_defaults *d = &defaults_table[cfg->kind];
  const char *s;
  JsonNode *node;

  t->vocab_size = d->vocab_size;
  t->hidden_size = d->hidden_size;
  t->intermediate_size = d->intermediate_size;
  t->moe_intermediate_size = d->moe_intermediate_size;
  t->num_hidden_layers = d->num_hidden_layers;
  t->num_attention_heads = d->num_attention_heads;
  t->num_key_value_heads = 0;
  t->num_nextn_predict_layers = 0;
  if (!text_int (r, "vocab_size", 1, MAX_VOCAB, FALSE, 0, &t->vocab_size) ||
      !text_int (r, "hidden_size", 1, MAX_DIM, FALSE, 0, &t->hidden_size) ||
      !text_int (r, "intermediate_size", 1, MAX_DIM, FALSE, 0, &t->intermediate_size) ||
      !text_int (r, "moe_intermediate_size", 1, MAX_DIM, FALSE, 0, &t->moe_intermediate_size) ||
      !text_int (r, "num_hidden_layers", 1, MAX_LAYERS, FALSE, 0, &t->num_hidden_layers) ||
      !text_int (r, "num_nextn_predict_layers", 0, MAX_LAYERS, TRUE, 0,
                 &t->num_nextn_predict_layers) ||
      !text_int (r, "num_attention_heads", 1, MAX_HEADS, FALSE, 0, &t->num_attention_heads) ||
      !text_int (r, "num_key_value_heads", 1, MAX_HEADS, TRUE, 0, &t->num_key_value_heads))
    return FALSE;
  if (t->num_key_value_heads == 0)
    t->num_key_value_heads = t->num_attention_heads;

  /* Attention */
  t->use_mla = TRUE;
  t->q_lora_rank = 1536;
  t->kv_lora_rank = 512;
  t->qk_nope_head_dim = 128;
  t->qk_rope_head_dim = 64;
  t->v_head_dim = 128;
  if (!text_bool (r, "use_mla", FALSE, &t->use_mla) ||
      !text_int (r, "q_lora_rank", 0, MAX_DIM, TRUE, 0, &t->q_lora_rank) ||
      !text_int (r, "kv_lora_rank", 0, MAX_DIM, TRUE, 0, &t->kv_lora_rank) ||
      !text_int (r, "qk_nope_head_dim", 0, MAX_HEAD_DIM, TRUE, 0, &t->qk_nope_head_dim) ||
      !text_int (r, "qk_rope_head_dim", 0, MAX_HEAD_DIM, TRUE, 0, &t->qk_rope_head_dim) ||
      !text_int (r, "v_head_dim", 0, MAX_HEAD_DIM, TRUE, 0, &t->v_head_dim))
    return FALSE;
  t->attention_bias = FALSE;
  t->max_position_embeddings = d->max_position_embeddings;
  if (!text_bool (r, "attention_bias", FALSE, &t->attention_bias) ||
      !text_int (r, "max_position_embeddings", 1, MAX_POSITIONS, FALSE, 0,
                 &t->max_position_embeddings))
    return FALSE;

  /* Mixture of experts */
  t->n_routed_experts = d->n_routed_experts;
  t->n_shared_experts = d->n_shared_experts;
  t->num_experts_per_tok = d->num_experts_per_tok;
  t->first_k_dense_replace = d->first_k_dense_replace;
  t->moe_layer_freq = 1;
  t->n_group = d->n_group;
  t->topk_group = d->topk_group;
  t->norm_topk_prob = d->norm_topk_prob;
  t->routed_scaling_factor = d->routed_scaling_factor;
  t->topk_method = d->topk_method;
  t->scoring_func = d->scoring_func;
  if (!text_int (r, "n_routed_experts", 0, MAX_HEADS, TRUE, 0, &t->n_routed_experts) ||
      !text_int (r, "n_shared_experts", 0, MAX_HEADS, TRUE, 0, &t->n_shared_experts) ||
      !text_int (r, "num_experts_per_tok", 0, MAX_HEADS, TRUE, 0, &t->num_experts_per_tok) ||
      !text_int (r, "first_k_dense_replace", 0, MAX_LAYERS, TRUE, 0,
                 &t->first_k_dense_replace) ||
      !text_int (r, "moe_layer_freq", 1, MAX_LAYERS, FALSE, 0, &t->moe_layer_freq) ||
      !text_int (r, "n_group", 1, MAX_HEADS, TRUE, 1, &t->n_group) ||
      !text_int (r, "topk_group", 1, MAX_HEADS, TRUE, 1, &t->topk_group) ||
      !text_bool (r, "norm_topk_prob", TRUE, &t->norm_topk_prob) ||
      !text_double (r, "routed_scaling_factor", TRUE, &t->routed_scaling_factor))
    return FALSE;

  s = NULL;
  if (!text_string (r, "topk_method", &s, &node))
    return FALSE;
  if (s) {
    if (!strcmp (s, "greedy"))
      t->topk_method = DSOCR_TOPK_GREEDY;
    else if (!strcmp (s, "group_limited_greedy"))
      t->topk_method = DSOCR_TOPK_GROUP_LIMITED_GREEDY;
    else if (!strcmp (s, "noaux_tc"))
      t->topk_method = DSOCR_TOPK_NOAUX_TC;
    else
      return fail_got (r, r->path, node, "greedy, group_limited_greedy or noaux_tc");
  }
  s = NULL;
  if (!text_string (r, "scoring_func", &s, &node))
    return FALSE;
  if (s) {
    if (!strcmp (s, "softmax"))
      t->scoring_func = DSOCR_SCORING_SOFTMAX;
    else if (!strcmp (s, "sigmoid"))
      t->scoring_func = DSOCR_SCORING_SIGMOID;
    else
      return fail_got (r, r->path, node, "softmax or sigmoid");
  }
  s = NULL;
  if (!text_string (r, "hidden_act", &s, &node))
    return FALSE;
  if (s && strcmp (s, "silu") != 0)
    return fail (r, DSOCR_ERROR_UNSUPPORTED, r->path,
                 "%s is not supported (only silu is)", quote (r, s));

  /* Norms, embeddings, special tokens */
  t->rms_norm_eps = 1e-6;
  t->tie_word_embeddings = FALSE;
  if (!text_double (r, "rms_norm_eps", TRUE, &t->rms_norm_eps) ||
      !text_bool (r, "tie_word_embeddings", FALSE, &t->tie_word_embeddings))
    return FALSE;
  if (t->rms_norm_eps >= 1.0)
    return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "rms_norm_eps"),
                 "%g is out of range (expected less than 1)", t->rms_norm_eps);

  t->bos_token_id = d->bos_token_id;
  t->pad_token_id = -1;
  if (!text_int (r, "bos_token_id", 0, t->vocab_size - 1, TRUE, -1, &t->bos_token_id) ||
      !text_int (r, "pad_token_id", 0, t->vocab_size - 1, TRUE, -1, &t->pad_token_id))
    return FALSE;
  t->n_eos_token_ids = 1;
  t->eos_token_ids[0] = d->eos_token_id;
  if (!text_node (r, "eos_token_id", &node))
    return FALSE;
  if (node && JSON_NODE_HOLDS_ARRAY (node)) {
    char path[300];
    g_strlcpy (path, r->path, sizeof path);
    JsonArray *a = json_node_get_array (node);
    guint n = json_array_get_length (a);
    if (n > DSOCR_CONFIG_MAX_EOS)
      return fail (r, DSOCR_ERROR_CONFIG, path, "%u entries, at most %d are supported", n,
                   DSOCR_CONFIG_MAX_EOS);
    for (guint i = 0; i < n; i++) {
      char elem[320];
      int_spec spec = { 0, t->vocab_size - 1, FALSE, 0 };
      g_snprintf (elem, sizeof elem, "%s[%u]", path, i);
      if (!read_int (r, json_array_get_element (a, i), elem, &spec, &t->eos_token_ids[i]))
        return FALSE;
    }
    t->n_eos_token_ids = (int) n;
  } else if (node) {
    int_spec spec = { 0, t->vocab_size - 1, TRUE, -1 };
    if (!read_int (r, node, r->path, &spec, &t->eos_token_ids[0]))
      return FALSE;
    t->n_eos_token_ids = t->eos_token_ids[0] < 0 ? 0 : 1;
  }
  if (t->bos_token_id > t->vocab_size - 1 || t->eos_token_ids[0] > t->vocab_size - 1) {
    /* only a family default can land here: the file set vocab_size but not the ids */
    return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "vocab_size"),
                 "%d is too small for the default bos/eos token ids (%d, %d); set them",
                 t->vocab_size, t->bos_token_id, t->eos_token_ids[0]);
  }

  /* RoPE */
  if (!parse_rope (r, t))
    return FALSE;
  t->rope_interleave = t->use_mla;
  if (t->use_mla && !text_bool (r, "rope_interleave", TRUE, &t->rope_interleave))
    return FALSE;

  /* DeepSeek-V3.2 lightning indexer */
  JsonNode *n_heads, *n_dim, *n_topk;
  if (!text_node (r, "index_n_heads", &n_heads) || !text_node (r, "index_head_dim", &n_dim) ||
      !text_node (r, "index_topk", &n_topk))
    return FALSE;
  t->use_sparse_attention = cfg->kind == DSOCR_MODEL_DEEPSEEK_V32 || n_heads || n_dim || n_topk;
  t->index_n_heads = 64;
  t->index_head_dim = 128;
  t->index_topk = 2048;
  if (!text_int (r, "index_n_heads", 1, MAX_HEADS, FALSE, 0, &t->index_n_heads) ||
      !text_int (r, "index_head_dim", 1, MAX_HEAD_DIM, FALSE, 0, &t->index_head_dim) ||
      !text_int (r, "index_topk", 1, MAX_POSITIONS, FALSE, 0, &t->index_topk) ||
      !text_bool (r, "use_sparse_attention", FALSE, &t->use_sparse_attention))
    return FALSE;
  if (!t->use_sparse_attention)
    t->index_n_heads = t->index_head_dim = t->index_topk = 0;
  return TRUE;
}

/* Cross-field checks and derived values of the decoder. */
static gboolean
check_text (reader *r, dsocr_config *cfg)
{
  dsocr_text_config *t = &cfg->text;

  if (!t->use_mla) {
    if (t->hidden_size % t->num_attention_heads != 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "num_attention_heads"),
                   "hidden_size %d is not divisible by %d heads", t->hidden_size,
                   t->num_attention_heads);
    t->head_dim = t->hidden_size / t->num_attention_heads;
    if (t->num_attention_heads % t->num_key_value_heads != 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "num_key_value_heads"),
                   "%d query heads are not divisible into %d key/value heads",
                   t->num_attention_heads, t->num_key_value_heads);
    if (t->head_dim % 2 != 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "num_attention_heads"),
                   "head dimension %d (hidden_size / heads) is odd; RoPE needs it even",
                   t->head_dim);
    /* The reference (LlamaAttention) would honour an explicit head_dim; this engine derives
     * it, so refuse a config where the two differ rather than run the wrong shapes. */
    int explicit_hd = t->head_dim;
    if (!text_int (r, "head_dim", 1, MAX_HEAD_DIM, TRUE, t->head_dim, &explicit_hd))
      return FALSE;
    if (explicit_hd != t->head_dim)
      return fail (r, DSOCR_ERROR_UNSUPPORTED, r->path,
                   "%d differs from hidden_size / num_attention_heads = %d", explicit_hd,
                   t->head_dim);
    t->rope_dim = t->head_dim;
    t->softmax_scale = 1.0 / sqrt ((double) t->head_dim);
  } else {
    if (t->kv_lora_rank <= 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "kv_lora_rank"),
                   "multi-head latent attention (use_mla) needs a positive rank, got %d",
                   t->kv_lora_rank);
    if (t->qk_rope_head_dim <= 0 || t->qk_rope_head_dim % 2 != 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "qk_rope_head_dim"),
                   "multi-head latent attention (use_mla) needs a positive even size, got %d",
                   t->qk_rope_head_dim);
    if (t->v_head_dim <= 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "v_head_dim"),
                   "multi-head latent attention (use_mla) needs a positive size, got %d",
                   t->v_head_dim);
    t->head_dim = t->qk_nope_head_dim + t->qk_rope_head_dim;
    t->rope_dim = t->qk_rope_head_dim;
    /* hub DeepseekV2Attention / transformers yarn_apply_mscale */
    t->softmax_scale = 1.0 / sqrt ((double) t->head_dim);
    if (t->rope.type == DSOCR_ROPE_YARN && t->rope.mscale_all_dim != 0.0) {
      double m = yarn_get_mscale (t->rope.factor, t->rope.mscale_all_dim);
      t->softmax_scale *= m * m;
    }
  }

  if (t->first_k_dense_replace > t->num_hidden_layers)
    return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "first_k_dense_replace"),
                 "%d is larger than num_hidden_layers (%d)", t->first_k_dense_replace,
                 t->num_hidden_layers);
  if (t->topk_group > t->n_group)
    return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "topk_group"),
                 "%d is larger than n_group (%d)", t->topk_group, t->n_group);
  if (t->n_routed_experts > 0) {
    if (t->num_experts_per_tok == 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "num_experts_per_tok"),
                   "missing or null, but n_routed_experts is %d", t->n_routed_experts);
    if (t->num_experts_per_tok > t->n_routed_experts)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "num_experts_per_tok"),
                   "%d is larger than n_routed_experts (%d)", t->num_experts_per_tok,
                   t->n_routed_experts);
    if (t->n_routed_experts % t->n_group != 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "n_group"),
                   "n_routed_experts %d is not divisible into %d groups", t->n_routed_experts,
                   t->n_group);
    int per_group = t->n_routed_experts / t->n_group;
    /* noaux_tc scores a group by the sum of its two best experts */
    if (t->topk_method == DSOCR_TOPK_NOAUX_TC && per_group < 2)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "n_group"),
                   "noaux_tc routing needs at least 2 experts per group, got %d", per_group);
    if (t->topk_method != DSOCR_TOPK_GREEDY &&
        t->num_experts_per_tok > t->topk_group * per_group)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "num_experts_per_tok"),
                   "%d is more than the %d experts in the %d groups kept (topk_group)",
                   t->num_experts_per_tok, t->topk_group * per_group, t->topk_group);
  }

  if (t->use_sparse_attention) {
    if (!t->use_mla || t->q_lora_rank <= 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "index_n_heads"),
                   "the sparse-attention indexer reads the query latent: it needs use_mla and "
                   "a q_lora_rank");
    if (t->index_head_dim < t->qk_rope_head_dim || t->index_head_dim % 2 != 0)
      return fail (r, DSOCR_ERROR_CONFIG, text_path (r, "index_head_dim"),
                   "%d must be even and at least qk_rope_head_dim (%d)", t->index_head_dim,
                   t->qk_rope_head_dim);
  }
  return TRUE;
}

/* ------------------------------------------------------------------------------------------ */
/* DeepSeek-OCR vision */

static gboolean
parse_vision (reader *r, dsocr_config *cfg)
{
  dsocr_vision_config *v = &cfg->vision;
  dsocr_sam_config *sam = &v->sam;
  dsocr_clip_config *clip = &v->clip;
  JsonObject *vc = NULL, *width = NULL, *so = NULL, *co = NULL, *po = NULL;
  const char *s;

  if (!read_object (r, member (r->root, "vision_config"), "vision_config", &vc) ||
      !read_object (r, member (vc, "width"), "vision_config.width", &width) ||
      !read_object (r, member (width, "sam_vit_b"), "vision_config.width.sam_vit_b", &so) ||
      !read_object (r, member (width, "clip-l-14-224"), "vision_config.width.clip-l-14-224",
                    &co) ||
      !read_object (r, member (r->root, "projector_config"), "projector_config", &po))
    return FALSE;

  s = NULL;
  if (!read_string (r, member (vc, "model_name"), "vision_config.model_name", TRUE, &s))
    return FALSE;
  if (s && strcmp (s, "deeplip_b_l") != 0)
    return fail (r, DSOCR_ERROR_UNSUPPORTED, "vision_config.model_name",
                 "%s is not supported (DeepSeek-OCR's SAM + CLIP tower is deeplip_b_l)",
                 quote (r, s));

  v->image_size = OCR_IMAGE_SIZE;
  if (!obj_int (r, vc, "vision_config", "image_size", 1, 16384, &v->image_size))
    return FALSE;

  const char *sp = "vision_config.width.sam_vit_b";
  static const int sam_global[] = { 2, 5, 8, 11 };
  sam->layers = 12;
  sam->width = 768;
  sam->heads = 12;
  sam->patch_size = 16;
  sam->window_size = 14;
  sam->out_chans = 256;
  sam->mlp_dim = 0;
  sam->n_global_attn_indexes = G_N_ELEMENTS (sam_global);
  memcpy (sam->global_attn_indexes, sam_global, sizeof sam_global);
  sam->n_downsample_channels = 2;
  sam->downsample_channels[0] = 512;
  sam->downsample_channels[1] = 1024;
  if (!obj_int (r, so, sp, "layers", 1, MAX_LAYERS, &sam->layers) ||
      !obj_int (r, so, sp, "width", 1, MAX_DIM, &sam->width) ||
      !obj_int (r, so, sp, "heads", 1, MAX_HEADS, &sam->heads) ||
      !obj_int (r, so, sp, "mlp_dim", 1, MAX_DIM, &sam->mlp_dim) ||
      !obj_int (r, so, sp, "patch_size", 1, 16384, &sam->patch_size) ||
      !obj_int (r, so, sp, "window_size", 1, 16384, &sam->window_size) ||
      !obj_int (r, so, sp, "out_chans", 1, MAX_DIM, &sam->out_chans) ||
      !obj_int_array (r, so, sp, "global_attn_indexes", 0, MAX_LAYERS - 1,
                      sam->global_attn_indexes, DSOCR_CONFIG_MAX_GLOBAL_ATTN,
                      &sam->n_global_attn_indexes) ||
      !obj_int_array (r, so, sp, "downsample_channels", 1, MAX_DIM, sam->downsample_channels,
                      DSOCR_CONFIG_MAX_DOWNSAMPLE, &sam->n_downsample_channels))
    return FALSE;
  if (sam->mlp_dim == 0)
    sam->mlp_dim = 4 * sam->width;
  if (sam->width % sam->heads != 0)
    return fail (r, DSOCR_ERROR_CONFIG, set_path (r, sp, "heads"),
                 "width %d is not divisible by %d heads", sam->width, sam->heads);
  if (v->image_size % sam->patch_size != 0)
    return fail (r, DSOCR_ERROR_CONFIG, set_path (r, sp, "patch_size"),
                 "vision_config.image_size %d is not a multiple of %d", v->image_size,
                 sam->patch_size);
  for (int i = 0; i < sam->n_global_attn_indexes; i++) {
    int g = sam->global_attn_indexes[i];
    if (g >= sam->layers || (i > 0 && g <= sam->global_attn_indexes[i - 1])) {
      char path[300];
      g_snprintf (path, sizeof path, "%s.global_attn_indexes[%d]", sp, i);
      return fail (r, DSOCR_ERROR_CONFIG, path,
                   "%d is not an ascending block index below layers (%d)", g, sam->layers);
    }
  }
  int sam_out = sam->n_downsample_channels > 0
                  ? sam->downsample_channels[sam->n_downsample_channels - 1] : sam->out_chans;

  const char *cp = "vision_config.width.clip-l-14-224";
  clip->layers = 24;
  clip->width = 1024;
  clip->heads = 16;
  clip->patch_size = 14;
  clip->image_size = 224;
  clip->ffn_dim = 0;
  if (!obj_int (r, co, cp, "layers", 1, MAX_LAYERS, &clip->layers) ||
      !obj_int (r, co, cp, "width", 1, MAX_DIM, &clip->width) ||
      !obj_int (r, co, cp, "heads", 1, MAX_HEADS, &clip->heads) ||
      !obj_int (r, co, cp, "ffn_hidden_size", 1, MAX_DIM, &clip->ffn_dim) ||
      !obj_int (r, co, cp, "patch_size", 1, 16384, &clip->patch_size) ||
      !obj_int (r, co, cp, "image_size", 1, 16384, &clip->image_size))
    return FALSE;
  if (clip->ffn_dim == 0)
    clip->ffn_dim = 4 * clip->width;
  if (clip->width % clip->heads != 0)
    return fail (r, DSOCR_ERROR_CONFIG, set_path (r, cp, "heads"),
                 "width %d is not divisible by %d heads", clip->width, clip->heads);
  if (clip->image_size % clip->patch_size != 0)
    return fail (r, DSOCR_ERROR_CONFIG, set_path (r, cp, "patch_size"),
                 "image_size %d is not a multiple of %d", clip->image_size, clip->patch_size);
  /* SAM's feature map stands in for CLIP's patch embeddings */
  if (sam_out != clip->width)
    return fail (r, DSOCR_ERROR_CONFIG, set_path (r, sp, "downsample_channels"),
                 "SAM ends with %d channels but CLIP's width is %d; they must match", sam_out,
                 clip->width);

  s = "linear";
  if (!read_string (r, member (po, "projector_type"), "projector_config.projector_type", FALSE,
                    &s))
    return FALSE;
  if (strcmp (s, "linear") != 0)
    return fail (r, DSOCR_ERROR_UNSUPPORTED, "projector_config.projector_type",
                 "%s is not supported (only linear is)", quote (r, s));
  v->projector_input_dim = clip->width + sam_out;
  v->projector_n_embed = cfg->text.hidden_size;
  int input_dim = v->projector_input_dim, n_embed = v->projector_n_embed;
  if (!obj_int (r, po, "projector_config", "input_dim", 1, 2 * MAX_DIM, &input_dim) ||
      !obj_int (r, po, "projector_config", "n_embed", 1, MAX_DIM, &n_embed))
    return FALSE;
  if (input_dim != v->projector_input_dim)
    return fail (r, DSOCR_ERROR_CONFIG, "projector_config.input_dim",
                 "%d, but CLIP width + SAM channels = %d", input_dim, v->projector_input_dim);
  if (n_embed != v->projector_n_embed)
    return fail (r, DSOCR_ERROR_CONFIG, "projector_config.n_embed",
                 "%d, but the language model's hidden_size is %d", n_embed,
                 v->projector_n_embed);

  const char *tile_tag = "2D", *view_pos = "head";
  if (!read_string (r, member (r->root, "tile_tag"), "tile_tag", TRUE, &tile_tag) ||
      !read_string (r, member (r->root, "global_view_pos"), "global_view_pos", TRUE, &view_pos))
    return FALSE;
  v->tile_tag = g_strdup (tile_tag);
  v->global_view_pos = g_strdup (view_pos);

  JsonNode *node = member (r->root, "candidate_resolutions");
  v->n_candidate_resolutions = 0;
  if (node && !JSON_NODE_HOLDS_NULL (node)) {
    if (!JSON_NODE_HOLDS_ARRAY (node))
      return fail_got (r, "candidate_resolutions", node, "an array of [width, height] pairs");
    JsonArray *a = json_node_get_array (node);
    guint n = json_array_get_length (a);
    if (n > DSOCR_CONFIG_MAX_RESOLUTIONS)
      return fail (r, DSOCR_ERROR_CONFIG, "candidate_resolutions",
                   "%u entries, at most %d are supported", n, DSOCR_CONFIG_MAX_RESOLUTIONS);
    for (guint i = 0; i < n; i++) {
      JsonNode *pair = json_array_get_element (a, i);
      char path[64];
      g_snprintf (path, sizeof path, "candidate_resolutions[%u]", i);
      if (!JSON_NODE_HOLDS_ARRAY (pair) || json_array_get_length (json_node_get_array (pair)) != 2)
        return fail_got (r, path, pair, "a [width, height] pair");
      for (guint k = 0; k < 2; k++) {
        char elem[80];
        int_spec spec = { 1, 16384, FALSE, 0 };
        g_snprintf (elem, sizeof elem, "%s[%u]", path, k);
        if (!read_int (r, json_array_get_element (json_node_get_array (pair), k), elem, &spec,
                       &v->candidate_resolutions[i][k]))
          return FALSE;
      }
    }
    v->n_candidate_resolutions = (int) n;
  }

  /* Tiny test models keep the real config's keys but not its vocabulary: there the default
   * does not exist and, unless the file names one, images cannot be placed. */
  int fallback = OCR_IMAGE_TOKEN_ID < cfg->text.vocab_size ? OCR_IMAGE_TOKEN_ID : -1;
  int_spec tok = { 0, cfg->text.vocab_size - 1, TRUE, fallback };
  v->image_token_id = fallback;
  return read_int (r, member (r->root, "image_token_id"), "image_token_id", &tok,
                   &v->image_token_id);
}

/* ------------------------------------------------------------------------------------------ */
/* Quantization and classification */

static gboolean
parse_quant (reader *r, dsocr_config *cfg)
{
  dsocr_quant_config *q = &cfg->quant;
  JsonObject *qo = NULL;
  const char *s = NULL;
  const char *p = "quantization_config";

  q->method = DSOCR_QUANT_NONE;
  if (!read_object (r, member (r->root, p), p, &qo))
    return FALSE;
  if (!qo)
    return TRUE;
  if (!member (qo, "quant_method"))
    return fail (r, DSOCR_ERROR_CONFIG, "quantization_config.quant_method", "missing");
  if (!read_string (r, member (qo, "quant_method"), "quantization_config.quant_method", FALSE,
                    &s))
    return FALSE;
  if (strcmp (s, "fp8") != 0)
    return fail (r, DSOCR_ERROR_UNSUPPORTED, "quantization_config.quant_method",
                 "%s is not supported (only fp8 is)", quote (r, s));
  q->method = DSOCR_QUANT_FP8;

  s = "e4m3";
  if (!read_string (r, member (qo, "fmt"), "quantization_config.fmt", TRUE, &s))
    return FALSE;
  if (strcmp (s, "e4m3") != 0)
    return fail (r, DSOCR_ERROR_UNSUPPORTED, "quantization_config.fmt",
                 "%s is not supported (only e4m3 is)", quote (r, s));

  int n = 0;
  if (!member (qo, "weight_block_size"))
    return fail (r, DSOCR_ERROR_UNSUPPORTED, "quantization_config.weight_block_size",
                 "missing: only block-wise FP8 is supported");
  if (!obj_int_array (r, qo, p, "weight_block_size", 1, 1 << 16, q->weight_block_size, 2, &n))
    return FALSE;
  if (n != 2)
    return fail (r, DSOCR_ERROR_CONFIG, "quantization_config.weight_block_size",
                 "%d entries, expected [rows, cols]", n);

  s = NULL;
  if (!read_string (r, member (qo, "scale_fmt"), "quantization_config.scale_fmt", TRUE, &s))
    return FALSE;
  if (s && strcmp (s, "ue8m0") != 0)
    return fail (r, DSOCR_ERROR_CONFIG, "quantization_config.scale_fmt",
                 "%s is not a scale format (expected ue8m0 or null)", quote (r, s));
  q->scale_ue8m0 = s != NULL;
  return TRUE;
}

static gboolean
parse_labels (reader *r, dsocr_config *cfg)
{
  JsonObject *id2label = NULL;
  const char *s = NULL;
  int num_labels = 0;
  int_spec spec = { 1, MAX_LABELS, TRUE, 0 };

  if (!read_int (r, member (r->root, "num_labels"), "num_labels", &spec, &num_labels) ||
      !read_object (r, member (r->root, "id2label"), "id2label", &id2label))
    return FALSE;

  if (id2label) {
    guint n = json_object_get_size (id2label);
    if (n == 0 || n > MAX_LABELS)
      return fail (r, DSOCR_ERROR_CONFIG, "id2label", "%u labels, expected 1 to %d", n,
                   MAX_LABELS);
    if (num_labels != 0 && (guint) num_labels != n)
      return fail (r, DSOCR_ERROR_CONFIG, "num_labels", "%d disagrees with id2label (%u labels)",
                   num_labels, n);
    cfg->num_labels = (int) n;
    cfg->id2label = g_new0 (char *, n + 1);
    JsonObjectIter it;
    const char *key;
    JsonNode *value;
    json_object_iter_init (&it, id2label);
    while (json_object_iter_next (&it, &key, &value)) {
      guint64 id = 0;
      char path[80];
      /* JSON keys are strings; transformers turns them back into ints */
      if (!g_ascii_isdigit (key[0]) ||
          !g_ascii_string_to_unsigned (key, 10, 0, n - 1, &id, NULL))
        return fail (r, DSOCR_ERROR_CONFIG, "id2label",
                     "key %s is not a label id in 0..%u", quote (r, key), n - 1);
      g_snprintf (path, sizeof path, "id2label.%" G_GUINT64_FORMAT, id);
      if (cfg->id2label[id])
        return fail (r, DSOCR_ERROR_CONFIG, path, "given twice");
      if (!read_string (r, value, path, FALSE, &s))
        return FALSE;
      cfg->id2label[id] = g_strdup (s);
    }
  } else {
    cfg->num_labels = num_labels ? num_labels : 2;
    cfg->id2label = g_new0 (char *, cfg->num_labels + 1);
    for (int i = 0; i < cfg->num_labels; i++)
      cfg->id2label[i] = g_strdup_printf ("LABEL_%d", i);
  }

  JsonNode *node = member (r->root, "problem_type");
  s = NULL;
  cfg->problem_type = DSOCR_PROBLEM_NONE;
  if (!read_string (r, node, "problem_type", TRUE, &s))
    return FALSE;
  if (s) {
    if (!strcmp (s, "regression"))
      cfg->problem_type = DSOCR_PROBLEM_REGRESSION;
    else if (!strcmp (s, "single_label_classification"))
      cfg->problem_type = DSOCR_PROBLEM_SINGLE_LABEL;
    else if (!strcmp (s, "multi_label_classification"))
      cfg->problem_type = DSOCR_PROBLEM_MULTI_LABEL;
    else
      return fail_got (r, "problem_type", node,
                       "regression, single_label_classification, multi_label_classification "
                       "or null");
  }
  if (cfg->problem_type == DSOCR_PROBLEM_SINGLE_LABEL && cfg->num_labels == 1)
    return fail (r, DSOCR_ERROR_CONFIG, "problem_type",
                 "single_label_classification needs num_labels > 1 (use regression for one "
                 "output)");
  return TRUE;
}

/* ------------------------------------------------------------------------------------------ */
/* Public API */

void
dsocr_config_free (dsocr_config *cfg)
{
  if (!cfg)
    return;
  g_free (cfg->path);
  /* a parse that failed half-way may leave holes: free by count */
  for (int i = 0; cfg->id2label && i < cfg->num_labels; i++)
    g_free (cfg->id2label[i]);
  g_free (cfg->id2label);
  g_free (cfg->vision.tile_tag);
  g_free (cfg->vision.global_view_pos);
  g_free (cfg);
}

dsocr_config *
dsocr_config_load_from_data (const char *json, gssize len, const char *origin, GError **error)
{
  g_return_val_if_fail (json != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!origin)
    origin = "config";
  gsize n = len < 0 ? strlen (json) : (gsize) len;
  if (n > MAX_FILE_SIZE) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: %" G_GSIZE_FORMAT " bytes, larger than the %d MiB a config may have",
                 origin, n, MAX_FILE_SIZE >> 20);
    return NULL;
  }
  JsonNode *root = dsocr_json_parse_strict (json, n, MAX_DEPTH, TRUE, origin, error);
  if (!root)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: the top level is not a JSON object",
                 origin);
    json_node_unref (root);
    return NULL;
  }

  GError *err = NULL;
  reader r = { .origin = origin, .root = json_node_get_object (root), .error = &err };
  dsocr_config *cfg = g_new0 (dsocr_config, 1);
  cfg->path = g_strdup (origin);
  gboolean ok = parse_kind (&r, cfg) && parse_text (&r, cfg) && check_text (&r, cfg) &&
                (cfg->kind != DSOCR_MODEL_DEEPSEEK_OCR || parse_vision (&r, cfg)) &&
                parse_quant (&r, cfg) && parse_labels (&r, cfg);
  json_node_unref (root);
  if (!ok) {
    g_propagate_error (error, err);
    dsocr_config_free (cfg);
    return NULL;
  }
  return cfg;
}

dsocr_config *
dsocr_config_load (const char *path_or_dir, GError **error)
{
  g_return_val_if_fail (path_or_dir != NULL, NULL);

  char *path = g_file_test (path_or_dir, G_FILE_TEST_IS_DIR)
                 ? g_build_filename (path_or_dir, "config.json", NULL)
                 : g_strdup (path_or_dir);
  char *display = g_filename_display_name (path);
  char *data = NULL;
  gsize len = 0;
  GError *local = NULL;
  dsocr_config *cfg = NULL;

  if (!g_file_get_contents (path, &data, &len, &local)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: cannot read: %s", display,
                 local->message);
    g_error_free (local);
  } else {
    cfg = dsocr_config_load_from_data (data, (gssize) len, display, error);
  }
  g_free (data);
  g_free (display);
  g_free (path);
  return cfg;
}

gboolean
dsocr_text_config_layer_is_moe (const dsocr_text_config *text, int layer)
{
  g_return_val_if_fail (text != NULL, FALSE);
  return text->n_routed_experts > 0 && layer >= text->first_k_dense_replace &&
         layer < text->num_hidden_layers && layer % text->moe_layer_freq == 0;
}
