/* safetensors.c: maps a .safetensors file and validates its header (dsocr-safetensors.h). */
#include "dsocr/dsocr-safetensors.h"
#include "mapping.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsocr/dsocr-error.h"
#include "json-strict.h"

/* The reference implementation refuses headers above 100 MB; a real header is a few hundred
 * KB (2710 tensors in the DeepSeek-OCR checkpoint). */
#define HEADER_MAX ((guint64) 100 * 1000 * 1000)
/* A valid header nests three deep: {name: {"shape": [...]}}. */
#define HEADER_MAX_DEPTH 8

typedef struct {
  dsocr_tensor t;       /* t.data points into the mapping; t.name is owned */
  guint64 begin, end;   /* byte range inside the data section */
} st_entry;

struct dsocr_safetensors {
  gatomicrefcount ref;
  char *path;
  GBytes *bytes;        /* the mapping (or caller's bytes), kept alive for the views */
  const guint8 *data;   /* start of the data section */
  guint64 data_size;
  st_entry *entries;    /* [n_entries], sorted by (begin, end) */
  gsize n_entries;
  GHashTable *by_name;  /* name (borrowed from entries) -> st_entry * */
  GHashTable *metadata; /* key -> value, both owned */
  guint64 tensor_bytes;
  gboolean mapped;      /* bytes is a read-only mapping of the file (dsocr_safetensors_open) */
};

static gboolean
get_u64 (JsonNode *node, guint64 *out)
{
  gint64 v;

  if (!node || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = (guint64) v;
  return TRUE;
}

static gboolean
parse_metadata (dsocr_safetensors *st, JsonNode *node, GError **error)
{
  JsonObject *obj;
  g_autoptr (GList) members = NULL;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: __metadata__ is not an object",
                 st->path);
    return FALSE;
  }
  obj = json_node_get_object (node);
  members = json_object_get_members (obj);
  for (GList *l = members; l; l = l->next) {
    const char *key = l->data;
    JsonNode *v = json_object_get_member (obj, key);

    if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: __metadata__ '%s' is not a string", st->path, key);
      return FALSE;
    }
    g_hash_table_insert (st->metadata, g_strdup (key), g_strdup (json_node_get_string (v)));
  }
  return TRUE;
}

/* Fills @e from one header entry; on success e->t.name is set (owned). */
static gboolean
parse_entry (dsocr_safetensors *st, const char *name, JsonNode *node, st_entry *e,
             GError **error)
{
  JsonObject *obj;
  JsonNode *dtype_node;
  JsonArray *shape_arr, *off_arr;
  dsocr_dtype dtype;
  guint rank;
  int64_t shape[DSOCR_MAX_DIMS];
  guint64 begin, end, numel, want;
  char s[128];

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': header entry is not an object", st->path, name);
    return FALSE;
  }
  obj = json_node_get_object (node);

  dtype_node = json_object_get_member (obj, "dtype");
  if (!dtype_node || !JSON_NODE_HOLDS_VALUE (dtype_node) ||
      json_node_get_value_type (dtype_node) != G_TYPE_STRING) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': missing or non-string 'dtype'", st->path, name);
    return FALSE;
  }
  if (!dsocr_dtype_from_name (json_node_get_string (dtype_node), &dtype)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': unsupported dtype '%s'", st->path, name,
                 json_node_get_string (dtype_node));
    return FALSE;
  }

  if (!json_object_has_member (obj, "shape") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (obj, "shape"))) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': missing or non-array 'shape'", st->path, name);
    return FALSE;
  }
  shape_arr = json_object_get_array_member (obj, "shape");
  rank = json_array_get_length (shape_arr);
  if (rank > DSOCR_MAX_DIMS) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: tensor '%s': rank %u exceeds the supported %d dimensions", st->path,
                 name, rank, DSOCR_MAX_DIMS);
    return FALSE;
  }
  for (guint i = 0; i < rank; i++) {
    guint64 d;
    if (!get_u64 (json_array_get_element (shape_arr, i), &d) || d > G_MAXINT64) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: tensor '%s': shape[%u] is not a non-negative integer", st->path, name,
                   i);
      return FALSE;
    }
    shape[i] = (int64_t) d;
  }

  if (!json_object_has_member (obj, "data_offsets") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (obj, "data_offsets")) ||
      json_array_get_length (json_object_get_array_member (obj, "data_offsets")) != 2) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': 'data_offsets' is not an array [begin, end]", st->path,
                 name);
    return FALSE;
  }
  off_arr = json_object_get_array_member (obj, "data_offsets");
  if (!get_u64 (json_array_get_element (off_arr, 0), &begin) ||
      !get_u64 (json_array_get_element (off_arr, 1), &end) || begin > end) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': 'data_offsets' must be non-negative integers with "
                 "begin <= end", st->path, name);
    return FALSE;
  }

  {
    int64_t n = dsocr_shape_numel ((int) rank, shape);
    gsize esize = dsocr_dtype_size (dtype);
    if (n < 0 || (guint64) n > G_MAXUINT64 / esize) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: tensor '%s': shape %s is too large", st->path, name,
                   dsocr_shape_format ((int) rank, shape, s, sizeof s));
      return FALSE;
    }
    numel = (guint64) n;
    want = numel * esize;
  }
  if (want != end - begin) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': shape %s of %s needs %" G_GUINT64_FORMAT
                 " bytes but data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                 "] hold %" G_GUINT64_FORMAT, st->path, name,
                 dsocr_shape_format ((int) rank, shape, s, sizeof s), dsocr_dtype_name (dtype),
                 want, begin, end, end - begin);
    return FALSE;
  }
  if (end > st->data_size) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: tensor '%s': data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                 "] run past the data section (%" G_GUINT64_FORMAT " bytes; file truncated?)",
                 st->path, name, begin, end, st->data_size);
    return FALSE;
  }

  e->t.name = name; /* borrowed for the messages of dsocr_tensor_init */
  if (!dsocr_tensor_init (&e->t, dtype, (int) rank, shape, error)) {
    g_prefix_error (error, "%s: ", st->path);
    return FALSE;
  }
  e->t.name = g_strdup (name);
  e->t.data = (void *) (st->data + begin);
  e->t.device = DSOCR_DEVICE_CPU;
  e->t.owns_data = FALSE;
  e->begin = begin;
  e->end = end;
  return TRUE;
}

static int
compare_entries (const void *a, const void *b)
{
  const st_entry *x = a, *y = b;

  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

/* Entries are sorted by begin, so among the non-empty ones seen so far the last has the
 * largest end as long as none overlapped. Empty tensors occupy no bytes and cannot overlap. */
static gboolean
check_overlaps (dsocr_safetensors *st, GError **error)
{
  const st_entry *prev = NULL;

  for (gsize i = 0; i < st->n_entries; i++) {
    const st_entry *e = &st->entries[i];
    if (e->begin == e->end)
      continue;
    if (prev && e->begin < prev->end) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                   "%s: tensors '%s' [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                   ") and '%s' [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ") overlap",
                   st->path, prev->t.name, prev->begin, prev->end, e->t.name, e->begin,
                   e->end);
      return FALSE;
    }
    prev = e;
  }
  return TRUE;
}

static gboolean
parse_header (dsocr_safetensors *st, const char *header, gsize header_len, GError **error)
{
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GList) members = NULL;
  g_autofree char *what = g_strdup_printf ("%s: header", st->path);
  JsonObject *obj;
  gsize n = 0;

  root = dsocr_json_parse_strict (header, header_len, HEADER_MAX_DEPTH, FALSE, what, error);
  if (!root)
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT, "%s: header is not a JSON object",
                 st->path);
    return FALSE;
  }
  obj = json_node_get_object (root);
  members = json_object_get_members (obj);
  st->entries = g_new0 (st_entry, json_object_get_size (obj));

  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (obj, name);

    if (strcmp (name, "__metadata__") == 0) {
      if (!parse_metadata (st, node, error))
        return FALSE;
      continue;
    }
    if (!parse_entry (st, name, node, &st->entries[n], error))
      return FALSE;
    n++;
    st->n_entries = n;
  }

  if (st->n_entries > 1)
    qsort (st->entries, st->n_entries, sizeof *st->entries, compare_entries);
  if (!check_overlaps (st, error))
    return FALSE;
  for (gsize i = 0; i < st->n_entries; i++) {
    g_hash_table_insert (st->by_name, (gpointer) st->entries[i].t.name, &st->entries[i]);
    st->tensor_bytes += st->entries[i].end - st->entries[i].begin;
  }
  return TRUE;
}

dsocr_safetensors *
dsocr_safetensors_open_bytes (GBytes *bytes, const char *name, GError **error)
{
  dsocr_safetensors *st;
  const guint8 *base;
  gsize size;
  guint64 header_len = 0;

  g_return_val_if_fail (bytes != NULL, NULL);

  st = g_new0 (dsocr_safetensors, 1);
  g_atomic_ref_count_init (&st->ref);
  st->path = g_strdup (name ? name : "<memory>");
  st->bytes = g_bytes_ref (bytes);
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  base = g_bytes_get_data (bytes, &size);
  if (size < 8) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: file is %" G_GSIZE_FORMAT " bytes, shorter than the 8-byte header "
                 "length", st->path, size);
    goto fail;
  }
  for (int i = 7; i >= 0; i--)
    header_len = (header_len << 8) | base[i];
  if (header_len > HEADER_MAX || header_len > size - 8) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FORMAT,
                 "%s: header length %" G_GUINT64_FORMAT " exceeds the %s (%" G_GUINT64_FORMAT
                 " bytes)", st->path, header_len,
                 header_len > HEADER_MAX ? "limit" : "file after the length field",
                 header_len > HEADER_MAX ? HEADER_MAX : (guint64) (size - 8));
    goto fail;
  }
  st->data = base + 8 + header_len;
  st->data_size = size - 8 - header_len;
  if (!parse_header (st, (const char *) base + 8, header_len, error))
    goto fail;
  return st;

fail:
  dsocr_safetensors_unref (st);
  return NULL;
}

dsocr_safetensors *
dsocr_safetensors_open (const char *path, GError **error)
{
  GMappedFile *mf;
  GBytes *bytes;
  dsocr_safetensors *st;
  GError *local = NULL;

  g_return_val_if_fail (path != NULL, NULL);

  mf = g_mapped_file_new (path, FALSE, &local);
  if (!mf) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s", local->message);
    g_error_free (local);
    return NULL;
  }
  bytes = g_mapped_file_get_bytes (mf);
  g_mapped_file_unref (mf);
  st = dsocr_safetensors_open_bytes (bytes, path, error);
  g_bytes_unref (bytes);
  if (st)
    st->mapped = TRUE;
  return st;
}

void
dsocr_safetensors_drop_pages (const dsocr_safetensors *st, const void *data, gsize len)
{
#ifdef MADV_DONTNEED
  const guint8 *lo = data, *hi = lo + len, *base = st->data, *end = base + st->data_size;
  const guintptr page = (guintptr) sysconf (_SC_PAGESIZE);
  if (!st->mapped || lo < base || hi > end || page == 0)
    return;
  /* whole pages inside the range only: a neighbouring tensor's bytes stay put */
  const guintptr a = ((guintptr) lo + page - 1) / page * page, b = (guintptr) hi / page * page;
  if (b > a)
    madvise ((void *) a, b - a, MADV_DONTNEED);
#else
  (void) st;
  (void) data;
  (void) len;
#endif
}

dsocr_safetensors *
dsocr_safetensors_ref (dsocr_safetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_atomic_ref_count_inc (&st->ref);
  return st;
}

void
dsocr_safetensors_unref (dsocr_safetensors *st)
{
  if (!st || !g_atomic_ref_count_dec (&st->ref))
    return;
  for (gsize i = 0; i < st->n_entries; i++)
    g_free ((char *) st->entries[i].t.name);
  g_free (st->entries);
  g_hash_table_unref (st->by_name);
  g_hash_table_unref (st->metadata);
  g_bytes_unref (st->bytes);
  g_free (st->path);
  g_free (st);
}

const char *
dsocr_safetensors_get_path (const dsocr_safetensors *st)
{
  return st->path;
}

gsize
dsocr_safetensors_n_tensors (const dsocr_safetensors *st)
{
  return st->n_entries;
}

const dsocr_tensor *
dsocr_safetensors_get_nth (const dsocr_safetensors *st, gsize i)
{
  return i < st->n_entries ? &st->entries[i].t : NULL;
}

const dsocr_tensor *
dsocr_safetensors_get (const dsocr_safetensors *st, const char *name)
{
  const st_entry *e = g_hash_table_lookup (st->by_name, name);
  return e ? &e->t : NULL;
}

const char *
dsocr_safetensors_get_metadata (const dsocr_safetensors *st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

guint64
dsocr_safetensors_tensor_bytes (const dsocr_safetensors *st)
{
  return st->tensor_bytes;
}
