/* checkpoint.c: single-file and sharded checkpoints, name lookup across shards
 * (dsocr-checkpoint.h). */
#include "dsocr/dsocr-checkpoint.h"
#include "mapping.h"

#include <string.h>

#include "dsocr/dsocr-error.h"
#include "json-strict.h"
#include "weight-names.h"

#define SINGLE_NAME "model.safetensors"
#define INDEX_NAME "model.safetensors.index.json"
/* The hub index of DeepSeek-OCR is about 200 KB; refuse anything absurd before reading it. */
#define INDEX_MAX ((gsize) 100 * 1000 * 1000)
#define INDEX_MAX_DEPTH 8

struct dsocr_checkpoint {
  gatomicrefcount ref;
  char *path;
  char *dir;
  GPtrArray *shards;   /* dsocr_safetensors * (one reference each), in file name order */
  GHashTable *tensors; /* stored name -> const dsocr_tensor * (borrowed from its shard) */
  GHashTable *owner;   /* stored name -> dsocr_safetensors * holding it (borrowed) */
  GMutex lock;         /* guards fused */
  GHashTable *fused;   /* original name (owned; also the tensor's ->name) -> dsocr_tensor * */
};

static void
ckpt_free (dsocr_checkpoint *ckpt)
{
  g_hash_table_unref (ckpt->fused);
  g_hash_table_unref (ckpt->owner);
  g_hash_table_unref (ckpt->tensors);
  g_ptr_array_unref (ckpt->shards);
  g_mutex_clear (&ckpt->lock);
  g_free (ckpt->dir);
  g_free (ckpt->path);
  g_free (ckpt);
}

/* Adds every tensor of @st to the name tables; a name held by two shards is ambiguous. */
static gboolean
add_shard (dsocr_checkpoint *ckpt, dsocr_safetensors *st, GError **error)
{
  g_ptr_array_add (ckpt->shards, st);
  for (gsize i = 0; i < dsocr_safetensors_n_tensors (st); i++) {
    const dsocr_tensor *t = dsocr_safetensors_get_nth (st, i);
    dsocr_safetensors *other = g_hash_table_lookup (ckpt->owner, t->name);

    if (other) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: tensor '%s' is stored in both %s and %s", ckpt->path, t->name,
                   dsocr_safetensors_get_path (other), dsocr_safetensors_get_path (st));
      return FALSE;
    }
    g_hash_table_insert (ckpt->tensors, (gpointer) t->name, (gpointer) t);
    g_hash_table_insert (ckpt->owner, (gpointer) t->name, st);
  }
  return TRUE;
}

static gboolean
open_single (dsocr_checkpoint *ckpt, const char *file, GError **error)
{
  dsocr_safetensors *st = dsocr_safetensors_open (file, error);
  return st && add_shard (ckpt, st, error);
}

/* A shard is named relative to the index's directory and must stay inside it. */
static gboolean
shard_name_ok (const char *name)
{
  return name[0] != '\0' && strcmp (name, ".") != 0 && strcmp (name, "..") != 0 &&
         strchr (name, '/') == NULL && strchr (name, '\\') == NULL;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* metadata.total_size, when the index has it; writers give an integer, a few a float. */
static gboolean
read_total_size (JsonObject *root, const char *index, gboolean *has, guint64 *total,
                 GError **error)
{
  JsonNode *meta = json_object_get_member (root, "metadata");
  JsonNode *node;

  *has = FALSE;
  if (!meta || JSON_NODE_HOLDS_NULL (meta))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (meta)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: 'metadata' is not an object",
                 index);
    return FALSE;
  }
  node = json_object_get_member (json_node_get_object (meta), "total_size");
  if (!node)
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64 &&
      json_node_get_int (node) >= 0) {
    *total = (guint64) json_node_get_int (node);
  } else if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_DOUBLE &&
             json_node_get_double (node) >= 0 && json_node_get_double (node) < 0x1p63 &&
             (double) (guint64) json_node_get_double (node) == json_node_get_double (node)) {
    *total = (guint64) json_node_get_double (node);
  } else {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: metadata.total_size is not a non-negative integer", index);
    return FALSE;
  }
  *has = TRUE;
  return TRUE;
}

static gboolean
open_index (dsocr_checkpoint *ckpt, const char *index, GError **error)
{
  g_autoptr (GMappedFile) mf = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GHashTable) shard_set = NULL;
  g_autoptr (GPtrArray) shard_names = NULL;
  g_autoptr (GList) members = NULL;
  GError *local = NULL;
  JsonObject *obj, *map;
  JsonNode *map_node;
  gboolean has_total;
  guint64 total = 0, held = 0;

  mf = g_mapped_file_new (index, FALSE, &local);
  if (!mf) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s", local->message);
    g_error_free (local);
    return FALSE;
  }
  if (g_mapped_file_get_length (mf) > INDEX_MAX) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: index is larger than %" G_GSIZE_FORMAT
                 " bytes", index, INDEX_MAX);
    return FALSE;
  }
  root = dsocr_json_parse_strict (g_mapped_file_get_length (mf) ? g_mapped_file_get_contents (mf)
                                                                : "",
                                  g_mapped_file_get_length (mf), INDEX_MAX_DEPTH, FALSE, index, error);
  if (!root)
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: index is not a JSON object",
                 index);
    return FALSE;
  }
  obj = json_node_get_object (root);
  if (!read_total_size (obj, index, &has_total, &total, error))
    return FALSE;
  map_node = json_object_get_member (obj, "weight_map");
  if (!map_node || !JSON_NODE_HOLDS_OBJECT (map_node) ||
      json_object_get_size (json_node_get_object (map_node)) == 0) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: missing, empty or non-object 'weight_map'", index);
    return FALSE;
  }
  map = json_node_get_object (map_node);
  members = json_object_get_members (map);

  /* Every shard once, in file name order, each name checked before it reaches the disk. */
  shard_set = g_hash_table_new (g_str_hash, g_str_equal);
  shard_names = g_ptr_array_new ();
  for (GList *l = members; l; l = l->next) {
    JsonNode *v = json_object_get_member (map, l->data);
    const char *shard;

    if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: weight_map entry '%s' is not a string", index, (const char *) l->data);
      return FALSE;
    }
    shard = json_node_get_string (v);
    if (!shard_name_ok (shard)) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: tensor '%s': shard name '%s' is not a plain file name", index,
                   (const char *) l->data, shard);
      return FALSE;
    }
    if (g_hash_table_add (shard_set, (gpointer) shard))
      g_ptr_array_add (shard_names, (gpointer) shard);
  }
  g_ptr_array_sort (shard_names, compare_strings);

  for (guint i = 0; i < shard_names->len; i++) {
    g_autofree char *file = g_build_filename (ckpt->dir, shard_names->pdata[i], NULL);
    dsocr_safetensors *st = dsocr_safetensors_open (file, error);

    if (!st) {
      g_prefix_error (error, "%s: ", index);
      return FALSE;
    }
    if (!add_shard (ckpt, st, error))
      return FALSE;
    held += dsocr_safetensors_tensor_bytes (st);
  }

  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    const char *shard = json_object_get_string_member (map, name);
    dsocr_safetensors *st = g_hash_table_lookup (ckpt->owner, name);
    g_autofree char *base = st ? g_path_get_basename (dsocr_safetensors_get_path (st)) : NULL;

    if (!st || strcmp (base, shard) != 0) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: weight_map puts tensor '%s' in %s, which does not hold it", index,
                   name, shard);
      return FALSE;
    }
  }

  if (has_total && total != held) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: metadata.total_size is %" G_GUINT64_FORMAT " but the shards hold %"
                 G_GUINT64_FORMAT " bytes of tensors", index, total, held);
    return FALSE;
  }
  return TRUE;
}

dsocr_checkpoint *
dsocr_checkpoint_open (const char *dir_or_file, GError **error)
{
  dsocr_checkpoint *ckpt;
  gboolean ok;

  g_return_val_if_fail (dir_or_file != NULL, NULL);

  ckpt = g_new0 (dsocr_checkpoint, 1);
  g_atomic_ref_count_init (&ckpt->ref);
  g_mutex_init (&ckpt->lock);
  ckpt->path = g_strdup (dir_or_file);
  ckpt->shards = g_ptr_array_new_with_free_func ((GDestroyNotify) dsocr_safetensors_unref);
  ckpt->tensors = g_hash_table_new (g_str_hash, g_str_equal);
  ckpt->owner = g_hash_table_new (g_str_hash, g_str_equal);
  ckpt->fused = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) dsocr_tensor_free);

  if (g_file_test (dir_or_file, G_FILE_TEST_IS_DIR)) {
    g_autofree char *single = g_build_filename (dir_or_file, SINGLE_NAME, NULL);
    g_autofree char *index = g_build_filename (dir_or_file, INDEX_NAME, NULL);

    ckpt->dir = g_strdup (dir_or_file);
    if (g_file_test (single, G_FILE_TEST_EXISTS)) {
      ok = open_single (ckpt, single, error);
    } else if (g_file_test (index, G_FILE_TEST_EXISTS)) {
      ok = open_index (ckpt, index, error);
    } else {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: no %s or %s in this directory",
                   dir_or_file, SINGLE_NAME, INDEX_NAME);
      ok = FALSE;
    }
  } else if (!g_file_test (dir_or_file, G_FILE_TEST_EXISTS)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: no such file or directory",
                 dir_or_file);
    ok = FALSE;
  } else {
    ckpt->dir = g_path_get_dirname (dir_or_file);
    ok = g_str_has_suffix (dir_or_file, ".json") ? open_index (ckpt, dir_or_file, error)
                                                 : open_single (ckpt, dir_or_file, error);
  }

  if (!ok) {
    ckpt_free (ckpt);
    return NULL;
  }
  return ckpt;
}

dsocr_checkpoint *
dsocr_checkpoint_ref (dsocr_checkpoint *ckpt)
{
  g_return_val_if_fail (ckpt != NULL, NULL);
  g_atomic_ref_count_inc (&ckpt->ref);
  return ckpt;
}

void
dsocr_checkpoint_unref (dsocr_checkpoint *ckpt)
{
  if (ckpt && g_atomic_ref_count_dec (&ckpt->ref))
    ckpt_free (ckpt);
}

const char *
dsocr_checkpoint_get_path (const dsocr_checkpoint *ckpt)
{
  return ckpt->path;
}

const char *
dsocr_checkpoint_get_dir (const dsocr_checkpoint *ckpt)
{
  return ckpt->dir;
}

guint
dsocr_checkpoint_n_shards (const dsocr_checkpoint *ckpt)
{
  return ckpt->shards->len;
}

dsocr_safetensors *
dsocr_checkpoint_get_shard (const dsocr_checkpoint *ckpt, guint i)
{
  return i < ckpt->shards->len ? ckpt->shards->pdata[i] : NULL;
}

const dsocr_tensor *
dsocr_checkpoint_lookup (const dsocr_checkpoint *ckpt, const char *name)
{
  return g_hash_table_lookup (ckpt->tensors, name);
}

gboolean
dsocr_checkpoint_contains (const dsocr_checkpoint *ckpt, const char *name)
{
  dsocr_weight_alias alias;
  gboolean found = TRUE;

  if (g_hash_table_contains (ckpt->tensors, name))
    return TRUE;
  if (!dsocr_weight_name_native (name, &alias))
    return FALSE;
  for (int i = 0; i < alias.n_parts; i++)
    found = found && g_hash_table_contains (ckpt->tensors, alias.parts[i]);
  dsocr_weight_alias_clear (&alias);
  return found;
}

/* The original tensor @name from its q, k, v pieces [n_i, ...]: [n_q + n_k + n_v, ...].
 * Pieces are contiguous views, so concatenating along dim 0 is concatenating their bytes.
 * Call with ckpt->lock held. */
static const dsocr_tensor *
build_fused (dsocr_checkpoint *ckpt, const char *name, const dsocr_tensor *const piece[3],
             GError **error)
{
  int64_t shape[DSOCR_MAX_DIMS];
  dsocr_tensor *t;
  char *key;
  guint8 *dst;
  gboolean ok = piece[0]->n_dims >= 1;

  for (int i = 1; ok && i < 3; i++) {
    ok = piece[i]->dtype == piece[0]->dtype && piece[i]->n_dims == piece[0]->n_dims;
    for (int d = 1; ok && d < piece[0]->n_dims; d++)
      ok = piece[i]->shape[d] == piece[0]->shape[d];
  }
  if (!ok) {
    char s[3][128];
    for (int i = 0; i < 3; i++)
      dsocr_shape_format (piece[i]->n_dims, piece[i]->shape, s[i], sizeof s[i]);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE,
                 "%s: tensor '%s': its pieces '%s' %s %s, '%s' %s %s, '%s' %s %s cannot be "
                 "concatenated along dim 0", ckpt->path, name,
                 piece[0]->name, dsocr_dtype_name (piece[0]->dtype), s[0],
                 piece[1]->name, dsocr_dtype_name (piece[1]->dtype), s[1],
                 piece[2]->name, dsocr_dtype_name (piece[2]->dtype), s[2]);
    return NULL;
  }

  memcpy (shape, piece[0]->shape, sizeof shape);
  shape[0] = piece[0]->shape[0] + piece[1]->shape[0] + piece[2]->shape[0];
  t = dsocr_tensor_new (piece[0]->dtype, piece[0]->n_dims, shape, error);
  if (!t) {
    g_prefix_error (error, "%s: tensor '%s': ", ckpt->path, name);
    return NULL;
  }
  dst = t->data;
  for (int i = 0; i < 3; i++) {
    memcpy (dst, piece[i]->data, piece[i]->nbytes);
    dst += piece[i]->nbytes;
  }
  key = g_strdup (name);
  t->name = key;
  g_hash_table_insert (ckpt->fused, key, t);
  return t;
}

static void
set_missing (dsocr_checkpoint *ckpt, const char *name, const dsocr_weight_alias *alias,
             GError **error)
{
  if (alias->n_parts == 1)
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE,
                 "missing tensor '%s' in %s (nor its native name '%s')", name, ckpt->path,
                 alias->parts[0]);
  else if (alias->n_parts == 3)
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE,
                 "missing tensor '%s' in %s (nor its native pieces '%s', '%s', '%s')", name,
                 ckpt->path, alias->parts[0], alias->parts[1], alias->parts[2]);
  else
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE, "missing tensor '%s' in %s", name,
                 ckpt->path);
}

const dsocr_tensor *
dsocr_checkpoint_get (dsocr_checkpoint *ckpt, const char *name, GError **error)
{
  const dsocr_tensor *t = g_hash_table_lookup (ckpt->tensors, name);
  const dsocr_tensor *piece[3] = { NULL, NULL, NULL };
  dsocr_weight_alias alias;

  if (t)
    return t;
  dsocr_weight_name_native (name, &alias);
  if (alias.n_parts == 1) {
    t = g_hash_table_lookup (ckpt->tensors, alias.parts[0]);
  } else if (alias.n_parts == 3) {
    for (int i = 0; i < 3; i++)
      piece[i] = g_hash_table_lookup (ckpt->tensors, alias.parts[i]);
    if (piece[0] && piece[1] && piece[2]) {
      g_mutex_lock (&ckpt->lock);
      t = g_hash_table_lookup (ckpt->fused, name);
      if (!t)
        t = build_fused (ckpt, name, piece, error);
      g_mutex_unlock (&ckpt->lock);
      dsocr_weight_alias_clear (&alias);
      return t;
    }
  }
  if (!t)
    set_missing (ckpt, name, &alias, error);
  dsocr_weight_alias_clear (&alias);
  return t;
}

const dsocr_tensor *
dsocr_checkpoint_get_checked (dsocr_checkpoint *ckpt, const char *name, dsocr_dtype dtype,
                              int n_dims, const int64_t *shape, GError **error)
{
  const dsocr_tensor *t = dsocr_checkpoint_get (ckpt, name, error);
  g_autofree char *stored = NULL;
  char have[128], want[128];
  gboolean ok;

  if (!t)
    return NULL;
  if (strcmp (t->name, name) != 0)
    stored = g_strdup_printf (" (stored as '%s')", t->name);

  ok = t->n_dims == n_dims;
  for (int i = 0; ok && i < n_dims; i++)
    ok = t->shape[i] == shape[i];
  if (!ok) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE, "%s: tensor '%s'%s: shape %s, expected %s",
                 ckpt->path, name, stored ? stored : "",
                 dsocr_shape_format (t->n_dims, t->shape, have, sizeof have),
                 dsocr_shape_format (n_dims, shape, want, sizeof want));
    return NULL;
  }
  if (dtype != DSOCR_DTYPE_N && t->dtype != dtype) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_SHAPE, "%s: tensor '%s'%s: dtype %s, expected %s",
                 ckpt->path, name, stored ? stored : "", dsocr_dtype_name (t->dtype),
                 dsocr_dtype_name (dtype));
    return NULL;
  }
  return t;
}

void
dsocr_checkpoint_drop_pages (const dsocr_checkpoint *ckpt, const void *data, gsize len)
{
  for (guint i = 0; i < ckpt->shards->len; i++)
    dsocr_safetensors_drop_pages (g_ptr_array_index (ckpt->shards, i), data, len);
}
