/* test-checkpoint.c: model directories, shard indexes, lookups by original and
 * transformers-native names, and the name mapping rules. */
#include <glib/gstdio.h>
#include <string.h>

#include <dsocr/dsocr.h>

#include "st-golden.h"
#include "weight-names.h"

/* ---- name mapping: one case per rule, plus names that keep their form ---- */

typedef struct {
  const char *canonical;
  int n_parts;
  const char *parts[3];
} name_case;

static const name_case name_cases[] = {
  /* SAM */
  { "model.sam_model.patch_embed.proj.weight", 1,
    { "model.sam_model.patch_embed.projection.weight" } },
  { "model.sam_model.patch_embed.proj.bias", 1,
    { "model.sam_model.patch_embed.projection.bias" } },
  { "model.sam_model.blocks.0.norm1.weight", 1, { "model.sam_model.layers.0.layer_norm1.weight" } },
  { "model.sam_model.blocks.11.norm2.bias", 1, { "model.sam_model.layers.11.layer_norm2.bias" } },
  { "model.sam_model.blocks.3.attn.qkv.weight", 1, { "model.sam_model.layers.3.attn.qkv.weight" } },
  { "model.sam_model.blocks.3.attn.qkv.bias", 1, { "model.sam_model.layers.3.attn.qkv.bias" } },
  { "model.sam_model.blocks.10.attn.proj.weight", 1,
    { "model.sam_model.layers.10.attn.proj.weight" } },
  { "model.sam_model.blocks.2.attn.rel_pos_h", 1, { "model.sam_model.layers.2.attn.rel_pos_h" } },
  { "model.sam_model.blocks.2.attn.rel_pos_w", 1, { "model.sam_model.layers.2.attn.rel_pos_w" } },
  { "model.sam_model.blocks.7.mlp.lin1.weight", 1, { "model.sam_model.layers.7.mlp.lin1.weight" } },
  { "model.sam_model.blocks.7.mlp.lin2.bias", 1, { "model.sam_model.layers.7.mlp.lin2.bias" } },
  { "model.sam_model.neck.0.weight", 1, { "model.sam_model.neck.conv1.weight" } },
  { "model.sam_model.neck.1.weight", 1, { "model.sam_model.neck.layer_norm1.weight" } },
  { "model.sam_model.neck.1.bias", 1, { "model.sam_model.neck.layer_norm1.bias" } },
  { "model.sam_model.neck.2.weight", 1, { "model.sam_model.neck.conv2.weight" } },
  { "model.sam_model.neck.3.bias", 1, { "model.sam_model.neck.layer_norm2.bias" } },
  { "model.sam_model.pos_embed", 0, { NULL } },
  { "model.sam_model.net_2.weight", 0, { NULL } },
  { "model.sam_model.net_3.weight", 0, { NULL } },
  /* CLIP */
  { "model.vision_model.embeddings.class_embedding", 1,
    { "model.clip_model.vision_model.embeddings.class_embedding" } },
  { "model.vision_model.embeddings.patch_embedding.weight", 1,
    { "model.clip_model.vision_model.embeddings.patch_embedding.weight" } },
  { "model.vision_model.embeddings.position_embedding.weight", 1,
    { "model.clip_model.vision_model.embeddings.position_embedding.weight" } },
  { "model.vision_model.pre_layrnorm.weight", 1,
    { "model.clip_model.vision_model.pre_layrnorm.weight" } },
  { "model.vision_model.post_layernorm.bias", 1,
    { "model.clip_model.vision_model.post_layernorm.bias" } },
  { "model.vision_model.transformer.layers.0.layer_norm1.weight", 1,
    { "model.clip_model.vision_model.encoder.layers.0.layer_norm1.weight" } },
  { "model.vision_model.transformer.layers.23.self_attn.out_proj.bias", 1,
    { "model.clip_model.vision_model.encoder.layers.23.self_attn.out_proj.bias" } },
  { "model.vision_model.transformer.layers.5.mlp.fc1.weight", 1,
    { "model.clip_model.vision_model.encoder.layers.5.mlp.fc1.weight" } },
  { "model.vision_model.transformer.layers.12.self_attn.qkv_proj.weight", 3,
    { "model.clip_model.vision_model.encoder.layers.12.self_attn.q_proj.weight",
      "model.clip_model.vision_model.encoder.layers.12.self_attn.k_proj.weight",
      "model.clip_model.vision_model.encoder.layers.12.self_attn.v_proj.weight" } },
  { "model.vision_model.transformer.layers.0.self_attn.qkv_proj.bias", 3,
    { "model.clip_model.vision_model.encoder.layers.0.self_attn.q_proj.bias",
      "model.clip_model.vision_model.encoder.layers.0.self_attn.k_proj.bias",
      "model.clip_model.vision_model.encoder.layers.0.self_attn.v_proj.bias" } },
  /* projector and specials */
  { "model.projector.layers.weight", 1, { "model.multi_modal_projector.layers.weight" } },
  { "model.projector.layers.bias", 1, { "model.multi_modal_projector.layers.bias" } },
  { "model.image_newline", 0, { NULL } },
  { "model.view_seperator", 0, { NULL } },
  /* language model */
  { "model.embed_tokens.weight", 1, { "model.language_model.embed_tokens.weight" } },
  { "model.layers.0.input_layernorm.weight", 1,
    { "model.language_model.layers.0.input_layernorm.weight" } },
  { "model.layers.11.self_attn.o_proj.weight", 1,
    { "model.language_model.layers.11.self_attn.o_proj.weight" } },
  { "model.layers.0.mlp.down_proj.weight", 1,
    { "model.language_model.layers.0.mlp.down_proj.weight" } },
  { "model.layers.1.mlp.gate.weight", 1, { "model.language_model.layers.1.mlp.gate.weight" } },
  { "model.layers.1.mlp.experts.63.up_proj.weight", 1,
    { "model.language_model.layers.1.mlp.experts.63.up_proj.weight" } },
  { "model.layers.4.mlp.shared_experts.down_proj.weight", 1,
    { "model.language_model.layers.4.mlp.shared_experts.down_proj.weight" } },
  { "model.norm.weight", 1, { "model.language_model.norm.weight" } },
  { "lm_head.weight", 0, { NULL } },
  /* not model names: no rule applies (a layer needs a number; SAM's qkv is never split) */
  { "model.sam_model.blocks.x.norm1.weight", 0, { NULL } },
  { "model.vision_model.transformer.layers..mlp.fc1.weight", 1,
    { "model.clip_model.vision_model.transformer.layers..mlp.fc1.weight" } },
  { "other.weight", 0, { NULL } },
  { "", 0, { NULL } },
};

static void
test_weight_names (void)
{
  for (gsize c = 0; c < G_N_ELEMENTS (name_cases); c++) {
    const name_case *nc = &name_cases[c];
    dsocr_weight_alias alias;
    gboolean has = dsocr_weight_name_native (nc->canonical, &alias);

    g_test_message ("%s", nc->canonical);
    g_assert_cmpint (has, ==, nc->n_parts > 0);
    g_assert_cmpint (alias.n_parts, ==, nc->n_parts);
    for (int i = 0; i < nc->n_parts; i++)
      g_assert_cmpstr (alias.parts[i], ==, nc->parts[i]);
    for (int i = nc->n_parts; i < 3; i++)
      g_assert_null (alias.parts[i]);
    dsocr_weight_alias_clear (&alias);
    g_assert_cmpint (alias.n_parts, ==, 0);
  }
}

/* ---- fixtures written by the safetensors library / huggingface_hub ---- */

static void
check_golden (dsocr_checkpoint *ckpt, const char *golden_name)
{
  g_autoptr (JsonNode) golden = st_golden_load (golden_name);
  JsonObject *tensors = st_golden_tensors (golden);
  g_autoptr (GList) names = json_object_get_members (tensors);

  for (GList *l = names; l; l = l->next) {
    JsonObject *want = json_object_get_object_member (tensors, l->data);
    JsonArray *shape_arr = json_object_get_array_member (want, "shape");
    int64_t shape[DSOCR_MAX_DIMS];
    int n_dims = (int) json_array_get_length (shape_arr);
    dsocr_dtype dtype;
    GError *err = NULL;
    const dsocr_tensor *t;

    for (int i = 0; i < n_dims; i++)
      shape[i] = json_array_get_int_element (shape_arr, i);
    g_assert_true (dsocr_dtype_from_name (json_object_get_string_member (want, "dtype"), &dtype));
    g_assert_true (dsocr_checkpoint_contains (ckpt, l->data));
    t = dsocr_checkpoint_get_checked (ckpt, l->data, dtype, n_dims, shape, &err);
    g_assert_no_error (err);
    st_golden_check (t, want, l->data);
  }
}

static void
test_sharded (void)
{
  g_autofree char *dir = dsocr_test_fixture ("safetensors/sharded");
  g_autofree char *index = g_build_filename (dir, "model.safetensors.index.json", NULL);
  g_autofree char *shard = g_build_filename (dir, "model-00002-of-00002.safetensors", NULL);
  GError *err = NULL;
  dsocr_checkpoint *ckpt = dsocr_checkpoint_open (dir, &err);

  g_assert_no_error (err);
  g_assert_cmpstr (dsocr_checkpoint_get_path (ckpt), ==, dir);
  g_assert_cmpstr (dsocr_checkpoint_get_dir (ckpt), ==, dir);
  g_assert_cmpuint (dsocr_checkpoint_n_shards (ckpt), ==, 2);
  g_assert_null (dsocr_checkpoint_get_shard (ckpt, 2));
  g_assert_true (g_str_has_suffix (
      dsocr_safetensors_get_path (dsocr_checkpoint_get_shard (ckpt, 0)),
      "model-00001-of-00002.safetensors"));
  g_assert_nonnull (dsocr_checkpoint_lookup (ckpt, "a.weight"));
  g_assert_null (dsocr_checkpoint_lookup (ckpt, "absent"));
  check_golden (ckpt, "sharded.golden.json");
  dsocr_checkpoint_unref (dsocr_checkpoint_ref (ckpt));
  dsocr_checkpoint_unref (ckpt);
  dsocr_checkpoint_unref (NULL);

  /* the index or one shard named directly */
  ckpt = dsocr_checkpoint_open (index, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (dsocr_checkpoint_get_dir (ckpt), ==, dir);
  check_golden (ckpt, "sharded.golden.json");
  dsocr_checkpoint_unref (ckpt);
  ckpt = dsocr_checkpoint_open (shard, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (dsocr_checkpoint_n_shards (ckpt), ==, 1);
  g_assert_nonnull (dsocr_checkpoint_lookup (ckpt, "b.weight"));
  g_assert_null (dsocr_checkpoint_lookup (ckpt, "a.weight"));
  dsocr_checkpoint_unref (ckpt);
}

static void
test_original_layout (void)
{
  g_autofree char *dir = dsocr_test_fixture ("safetensors/original");
  GError *err = NULL;
  dsocr_checkpoint *ckpt = dsocr_checkpoint_open (dir, &err);

  g_assert_no_error (err);
  g_assert_cmpuint (dsocr_checkpoint_n_shards (ckpt), ==, 1);
  check_golden (ckpt, "original.golden.json");
  dsocr_checkpoint_unref (ckpt);
}

/* The transformers-native copy of the same weights must read back, under the original names,
 * exactly as the original file does: renamed tensors, and CLIP's qkv_proj rebuilt from the
 * split q/k/v. */
static void
test_native_layout (void)
{
  const char *qkv = "model.vision_model.transformer.layers.23.self_attn.qkv_proj.weight";
  const char *norm = "model.norm.weight";
  g_autofree char *dir = dsocr_test_fixture ("safetensors/native");
  GError *err = NULL;
  dsocr_checkpoint *ckpt = dsocr_checkpoint_open (dir, &err);
  const dsocr_tensor *t, *t2;

  g_assert_no_error (err);
  g_assert_cmpuint (dsocr_checkpoint_n_shards (ckpt), >, 1);
  g_assert_null (dsocr_checkpoint_lookup (ckpt, qkv));
  check_golden (ckpt, "original.golden.json");

  t = dsocr_checkpoint_get (ckpt, qkv, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (t->name, ==, qkv);
  g_assert_true (t->owns_data);
  g_assert_cmpint (t->shape[0], ==, 24);
  t2 = dsocr_checkpoint_get (ckpt, qkv, &err);
  g_assert_true (t == t2); /* built once, then cached */

  t = dsocr_checkpoint_get (ckpt, norm, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (t->name, ==, "model.language_model.norm.weight");
  g_assert_false (t->owns_data);
  dsocr_checkpoint_unref (ckpt);
}

static void
assert_message (GError *err, int code, const char *const *parts)
{
  g_assert_error (err, DSOCR_ERROR, code);
  g_test_message ("  -> %s", err->message);
  for (int i = 0; parts[i]; i++)
    if (!strstr (err->message, parts[i]))
      g_error ("message \"%s\" does not contain \"%s\"", err->message, parts[i]);
}

static void
test_get_checked_errors (void)
{
  g_autofree char *odir = dsocr_test_fixture ("safetensors/original");
  g_autofree char *ndir = dsocr_test_fixture ("safetensors/native");
  g_autofree char *missing = g_strdup_printf ("missing tensor 'model.nope' in %s", odir);
  g_autofree char *missing2 =
    g_strdup_printf ("missing tensor 'model.layers.5.input_layernorm.weight' in %s", odir);
  g_autofree char *shape_msg =
    g_strdup_printf ("%s: tensor 'model.norm.weight': shape [6], expected [7]", odir);
  const int64_t s6[2] = { 6, 6 }, s7[1] = { 7 }, s1[1] = { 6 };
  GError *err = NULL;
  dsocr_checkpoint *o = dsocr_checkpoint_open (odir, &err);
  dsocr_checkpoint *n = dsocr_checkpoint_open (ndir, &err);

  g_assert_no_error (err);
  g_assert_null (dsocr_checkpoint_get_checked (o, "model.nope", DSOCR_DTYPE_N, 1, s1, &err));
  assert_message (err, DSOCR_ERROR_SHAPE, (const char *[]) { missing, NULL });
  g_clear_error (&err);
  g_assert_false (dsocr_checkpoint_contains (o, "model.nope"));

  g_assert_null (dsocr_checkpoint_get (o, "model.layers.5.input_layernorm.weight", &err));
  assert_message (err, DSOCR_ERROR_SHAPE,
                  (const char *[]) { missing2,
                                     "'model.language_model.layers.5.input_layernorm.weight'",
                                     NULL });
  g_clear_error (&err);

  g_assert_null (dsocr_checkpoint_get (
      n, "model.vision_model.transformer.layers.4.self_attn.qkv_proj.bias", &err));
  assert_message (err, DSOCR_ERROR_SHAPE,
                  (const char *[]) { "missing tensor", "layers.4.self_attn.q_proj.bias'",
                                     "layers.4.self_attn.v_proj.bias'", NULL });
  g_clear_error (&err);
  g_assert_false (dsocr_checkpoint_contains (
      n, "model.vision_model.transformer.layers.4.self_attn.qkv_proj.bias"));

  g_assert_null (dsocr_checkpoint_get_checked (o, "model.norm.weight", DSOCR_DTYPE_N, 1, s7,
                                               &err));
  assert_message (err, DSOCR_ERROR_SHAPE, (const char *[]) { shape_msg, NULL });
  g_clear_error (&err);
  g_assert_null (dsocr_checkpoint_get_checked (o, "model.norm.weight", DSOCR_DTYPE_N, 2, s6,
                                               &err));
  assert_message (err, DSOCR_ERROR_SHAPE, (const char *[]) { "shape [6], expected [6, 6]", NULL });
  g_clear_error (&err);
  g_assert_null (dsocr_checkpoint_get_checked (o, "model.norm.weight", DSOCR_DTYPE_F32, 1, s1,
                                               &err));
  assert_message (err, DSOCR_ERROR_SHAPE,
                  (const char *[]) { "'model.norm.weight'", "dtype BF16, expected F32", NULL });
  g_clear_error (&err);
  g_assert_nonnull (dsocr_checkpoint_get_checked (o, "model.norm.weight", DSOCR_DTYPE_BF16, 1,
                                                  s1, &err));
  g_assert_no_error (err);

  g_assert_null (dsocr_checkpoint_get_checked (n, "model.norm.weight", DSOCR_DTYPE_N, 1, s7,
                                               &err));
  assert_message (err, DSOCR_ERROR_SHAPE,
                  (const char *[]) { "tensor 'model.norm.weight' (stored as "
                                     "'model.language_model.norm.weight'): shape [6], "
                                     "expected [7]", NULL });
  g_clear_error (&err);

  dsocr_checkpoint_unref (o);
  dsocr_checkpoint_unref (n);
}

/* ---- checkpoints built here ---- */

/* A safetensors file: the 8-byte length, @header, @data_len bytes 1, 2, 3, ... */
static void
write_shard (const char *dir, const char *name, const char *header, gsize data_len)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  GByteArray *b = g_byte_array_new ();
  guint64 n = strlen (header);
  GError *err = NULL;

  for (int i = 0; i < 8; i++) {
    guint8 v = (guint8) (n >> (8 * i));
    g_byte_array_append (b, &v, 1);
  }
  g_byte_array_append (b, (const guint8 *) header, (guint) n);
  for (gsize i = 0; i < data_len; i++) {
    guint8 v = (guint8) (i + 1);
    g_byte_array_append (b, &v, 1);
  }
  g_file_set_contents (path, (const char *) b->data, b->len, &err);
  g_assert_no_error (err);
  g_byte_array_unref (b);
}

static void
write_text (const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  GError *err = NULL;

  g_file_set_contents (path, text, -1, &err);
  g_assert_no_error (err);
}

static void
remove_dir (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;

  while ((name = g_dir_read_name (d))) {
    g_autofree char *p = g_build_filename (dir, name, NULL);
    g_unlink (p);
  }
  g_dir_close (d);
  g_rmdir (dir);
}

#define U8(name, shape, b, e) \
  "\"" name "\":{\"dtype\":\"U8\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

/* s1: a [2], b [2]; s2: c [4]; s3: a [2] again, x [1]; s4: corrupt. */
static char *
make_shard_dir (void)
{
  GError *err = NULL;
  char *dir = g_dir_make_tmp ("dsocr-ckpt-XXXXXX", &err);

  g_assert_no_error (err);
  write_shard (dir, "s1.safetensors", "{" U8 ("a", "[2]", 0, 2) "," U8 ("b", "[2]", 2, 4) "}", 4);
  write_shard (dir, "s2.safetensors", "{" U8 ("c", "[4]", 0, 4) "}", 4);
  write_shard (dir, "s3.safetensors", "{" U8 ("a", "[2]", 0, 2) "," U8 ("x", "[1]", 2, 3) "}",
               3);
  write_text (dir, "s4.safetensors", "garbage");
  return dir;
}

typedef struct {
  const char *what;
  const char *index;
  int code; /* -1: opens */
  const char *parts[3];
} index_case;

#define MAP_OK "\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\",\"c\":\"s2.safetensors\""

static const index_case index_cases[] = {
  { "valid", "{\"metadata\":{\"total_size\":8},\"weight_map\":{" MAP_OK "}}", -1, { NULL } },
  { "valid, float total_size", "{\"metadata\":{\"total_size\":8.0},\"weight_map\":{" MAP_OK "}}",
    -1, { NULL } },
  { "valid, no metadata", "{\"weight_map\":{" MAP_OK "}}", -1, { NULL } },
  { "shard missing", "{\"weight_map\":{" MAP_OK ",\"d\":\"s9.safetensors\"}}",
    DSOCR_ERROR_FILE, { "s9.safetensors" } },
  { "tensor not in its shard", "{\"weight_map\":{" MAP_OK ",\"d\":\"s2.safetensors\"}}",
    DSOCR_ERROR_FORMAT, { "'d'", "s2.safetensors", "does not hold it" } },
  { "tensor in another shard", "{\"weight_map\":{\"a\":\"s1.safetensors\","
    "\"b\":\"s1.safetensors\",\"c\":\"s1.safetensors\",\"z\":\"s2.safetensors\"}}",
    DSOCR_ERROR_FORMAT, { "'c'", "s1.safetensors" } },
  { "shard name ../", "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}", DSOCR_ERROR_FORMAT,
    { "'a'", "'../s1.safetensors'", "plain file name" } },
  { "shard name with a directory", "{\"weight_map\":{\"a\":\"sub/s1.safetensors\"}}",
    DSOCR_ERROR_FORMAT, { "'sub/s1.safetensors'" } },
  { "shard name ..", "{\"weight_map\":{\"a\":\"..\"}}", DSOCR_ERROR_FORMAT, { "'..'" } },
  { "shard name absolute", "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", DSOCR_ERROR_FORMAT,
    { "'/etc/passwd'" } },
  { "shard name empty", "{\"weight_map\":{\"a\":\"\"}}", DSOCR_ERROR_FORMAT, { "''" } },
  { "total_size wrong", "{\"metadata\":{\"total_size\":9},\"weight_map\":{" MAP_OK "}}",
    DSOCR_ERROR_FORMAT, { "total_size is 9", "hold 8 bytes" } },
  { "total_size a string", "{\"metadata\":{\"total_size\":\"8\"},\"weight_map\":{" MAP_OK "}}",
    DSOCR_ERROR_FORMAT, { "total_size" } },
  { "total_size fractional", "{\"metadata\":{\"total_size\":8.5},\"weight_map\":{" MAP_OK "}}",
    DSOCR_ERROR_FORMAT, { "total_size" } },
  { "metadata not an object", "{\"metadata\":3,\"weight_map\":{" MAP_OK "}}",
    DSOCR_ERROR_FORMAT, { "'metadata'" } },
  { "no weight_map", "{\"metadata\":{}}", DSOCR_ERROR_FORMAT, { "weight_map" } },
  { "empty weight_map", "{\"weight_map\":{}}", DSOCR_ERROR_FORMAT, { "weight_map" } },
  { "weight_map value not a string", "{\"weight_map\":{\"a\":1}}", DSOCR_ERROR_FORMAT,
    { "'a'", "not a string" } },
  { "index not JSON", "{\"weight_map\":", DSOCR_ERROR_FORMAT, { "not valid JSON" } },
  { "index an array", "[]", DSOCR_ERROR_FORMAT, { "not a JSON object" } },
  { "index duplicate key", "{\"weight_map\":{" MAP_OK ",\"a\":\"s2.safetensors\"}}",
    DSOCR_ERROR_FORMAT, { "duplicate key 'a'" } },
  { "tensor in two shards", "{\"weight_map\":{" MAP_OK ",\"x\":\"s3.safetensors\"}}",
    DSOCR_ERROR_FORMAT, { "'a'", "s1.safetensors", "s3.safetensors" } },
  { "corrupt shard", "{\"weight_map\":{" MAP_OK ",\"q\":\"s4.safetensors\"}}",
    DSOCR_ERROR_FORMAT, { "s4.safetensors", "7 bytes" } },
};

static void
test_index_errors (void)
{
  g_autofree char *dir = make_shard_dir ();

  for (gsize c = 0; c < G_N_ELEMENTS (index_cases); c++) {
    const index_case *ic = &index_cases[c];
    GError *err = NULL;
    dsocr_checkpoint *ckpt;

    g_test_message ("case: %s", ic->what);
    write_text (dir, "model.safetensors.index.json", ic->index);
    ckpt = dsocr_checkpoint_open (dir, &err);
    if (ic->code < 0) {
      g_assert_no_error (err);
      g_assert_cmpuint (dsocr_checkpoint_n_shards (ckpt), ==, 2);
      g_assert_cmpint (((const guint8 *) dsocr_checkpoint_lookup (ckpt, "b")->data)[1], ==, 4);
      g_assert_cmpint (((const guint8 *) dsocr_checkpoint_lookup (ckpt, "c")->data)[3], ==, 4);
      dsocr_checkpoint_unref (ckpt);
      continue;
    }
    g_assert_null (ckpt);
    assert_message (err, ic->code, (const char *[]) { dir, ic->parts[0], ic->parts[1],
                                                      ic->parts[2], NULL });
    g_clear_error (&err);
  }
  remove_dir (dir);
}

static void
test_directory_errors (void)
{
  GError *err = NULL;
  g_autofree char *dir = g_dir_make_tmp ("dsocr-ckpt-XXXXXX", &err);
  g_autofree char *absent = g_build_filename (dir, "absent", NULL);
  dsocr_checkpoint *ckpt;

  g_assert_null (dsocr_checkpoint_open (dir, &err));
  assert_message (err, DSOCR_ERROR_FILE, (const char *[]) { dir, "model.safetensors", NULL });
  g_clear_error (&err);
  g_assert_null (dsocr_checkpoint_open (absent, &err));
  assert_message (err, DSOCR_ERROR_FILE, (const char *[]) { absent, NULL });
  g_clear_error (&err);

  /* A corrupt model.safetensors: the error names it. */
  write_shard (dir, "model.safetensors", "{]", 0);
  g_assert_null (dsocr_checkpoint_open (dir, &err));
  assert_message (err, DSOCR_ERROR_FORMAT, (const char *[]) { "model.safetensors", NULL });
  g_clear_error (&err);

  /* model.safetensors wins over an index beside it. */
  write_shard (dir, "model.safetensors", "{" U8 ("m", "[1]", 0, 1) "}", 1);
  write_text (dir, "model.safetensors.index.json", "not even JSON");
  ckpt = dsocr_checkpoint_open (dir, &err);
  g_assert_no_error (err);
  g_assert_nonnull (dsocr_checkpoint_lookup (ckpt, "m"));
  dsocr_checkpoint_unref (ckpt);
  remove_dir (dir);
}

#define CLIP0 "model.clip_model.vision_model.encoder.layers.0.self_attn."

/* q/k/v pieces that cannot form one tensor, and uneven ones that can. */
static void
test_fused_pieces (void)
{
  const char *qkv_w = "model.vision_model.transformer.layers.0.self_attn.qkv_proj.weight";
  const char *qkv_b = "model.vision_model.transformer.layers.0.self_attn.qkv_proj.bias";
  const int64_t want_b[1] = { 4 };
  GError *err = NULL;
  g_autofree char *dir = g_dir_make_tmp ("dsocr-ckpt-XXXXXX", &err);
  dsocr_checkpoint *ckpt;
  const dsocr_tensor *t;

  write_shard (dir, "model.safetensors",
               "{" U8 (CLIP0 "q_proj.weight", "[2,4]", 0, 8) ","
                   U8 (CLIP0 "k_proj.weight", "[2,4]", 8, 16) ","
                   U8 (CLIP0 "v_proj.weight", "[2,5]", 16, 26) ","
                   U8 (CLIP0 "q_proj.bias", "[1]", 26, 27) ","
                   U8 (CLIP0 "k_proj.bias", "[1]", 27, 28) ","
                   U8 (CLIP0 "v_proj.bias", "[2]", 28, 30) "}", 30);
  ckpt = dsocr_checkpoint_open (dir, &err);
  g_assert_no_error (err);

  g_assert_true (dsocr_checkpoint_contains (ckpt, qkv_w));
  g_assert_null (dsocr_checkpoint_get (ckpt, qkv_w, &err));
  assert_message (err, DSOCR_ERROR_SHAPE,
                  (const char *[]) { qkv_w, "v_proj.weight' U8 [2, 5]", "concatenated", NULL });
  g_clear_error (&err);

  t = dsocr_checkpoint_get_checked (ckpt, qkv_b, DSOCR_DTYPE_U8, 1, want_b, &err);
  g_assert_no_error (err);
  g_assert_cmpint (((const guint8 *) t->data)[0], ==, 27);
  g_assert_cmpint (((const guint8 *) t->data)[1], ==, 28);
  g_assert_cmpint (((const guint8 *) t->data)[2], ==, 29);
  g_assert_cmpint (((const guint8 *) t->data)[3], ==, 30);
  dsocr_checkpoint_unref (ckpt);
  remove_dir (dir);
}

/* Lookups from several threads at once build each fused tensor exactly once. */
static gpointer
lookup_thread (gpointer data)
{
  dsocr_checkpoint *ckpt = data;
  const char *names[2] = { "model.vision_model.transformer.layers.0.self_attn.qkv_proj.weight",
                           "model.vision_model.transformer.layers.23.self_attn.qkv_proj.bias" };
  const dsocr_tensor *first[2] = { NULL, NULL };

  for (int i = 0; i < 200; i++) {
    for (int k = 0; k < 2; k++) {
      const dsocr_tensor *t = dsocr_checkpoint_get (ckpt, names[k], NULL);
      g_assert_nonnull (t);
      g_assert_true (first[k] == NULL || first[k] == t);
      first[k] = t;
    }
  }
  return (gpointer) first[0];
}

static void
test_threads (void)
{
  g_autofree char *dir = dsocr_test_fixture ("safetensors/native");
  GError *err = NULL;
  dsocr_checkpoint *ckpt = dsocr_checkpoint_open (dir, &err);
  GThread *th[4];
  gpointer got[4];

  g_assert_no_error (err);
  for (int i = 0; i < 4; i++)
    th[i] = g_thread_new ("lookup", lookup_thread, ckpt);
  for (int i = 0; i < 4; i++)
    got[i] = g_thread_join (th[i]);
  for (int i = 1; i < 4; i++)
    g_assert_true (got[i] == got[0]);
  dsocr_checkpoint_unref (ckpt);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/weight-names/rules", test_weight_names);
  g_test_add_func ("/checkpoint/sharded", test_sharded);
  g_test_add_func ("/checkpoint/original-layout", test_original_layout);
  g_test_add_func ("/checkpoint/native-layout", test_native_layout);
  g_test_add_func ("/checkpoint/get-checked-errors", test_get_checked_errors);
  g_test_add_func ("/checkpoint/index-errors", test_index_errors);
  g_test_add_func ("/checkpoint/directory-errors", test_directory_errors);
  g_test_add_func ("/checkpoint/fused-pieces", test_fused_pieces);
  g_test_add_func ("/checkpoint/threads", test_threads);
  return g_test_run ();
}
