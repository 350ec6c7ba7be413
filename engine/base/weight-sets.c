/* weight-sets.c: a model's weights prepared once per device (weight-sets.h). */
#include "weight-sets.h"

#include "backend-private.h"

typedef struct {
  dsk_device device;
  dsocr_precision precision;   /* F32, Q8 or Q4 */
  gpointer set;
  dsk_weight_storage *storage;
  gsize bytes;
} entry;

struct dsocr_weight_sets {
  const dsocr_weight_set_class *klass;
  gconstpointer owner;
  GMutex lock;
  GArray *entries;   /* entry */
};

dsocr_weight_sets *
dsocr_weight_sets_new (const dsocr_weight_set_class *klass, gconstpointer owner)
{
  dsocr_weight_sets *s = g_new0 (dsocr_weight_sets, 1);
  s->klass = klass;
  s->owner = owner;
  g_mutex_init (&s->lock);
  s->entries = g_array_new (FALSE, FALSE, sizeof (entry));
  return s;
}

void
dsocr_weight_sets_free (dsocr_weight_sets *s)
{
  if (!s)
    return;
  for (guint i = 0; i < s->entries->len; i++) {
    entry *e = &g_array_index (s->entries, entry, i);
    s->klass->free (e->set);
    dsk_weight_storage_free (e->storage);
  }
  g_array_unref (s->entries);
  g_mutex_clear (&s->lock);
  g_free (s);
}

typedef struct {
  const dsocr_weight_sets *sets;
  dsk_backend *be;
  dsk_dtype quant;            /* DSK_Q8 / DSK_Q4 for the matrices, or DSK_F32: none */
  dsk_weight_storage *storage;
  GHashTable *done;   /* (host data pointer, quantized) -> prepared tensor: a tensor shared
                       * by two fields (tied embeddings) is prepared once per form */
  gsize bytes;
} prepare_ctx;

/* Whether @t, a matrix of a precision that quantizes, takes the block format: float rows of a
 * multiple of 32 on a backend that has it (others, like a projection 30 wide, stay as
 * stored). */
static gboolean
quantizes (const prepare_ctx *c, const dsk_tensor *t, dsocr_weight_role role)
{
  return c->quant != DSK_F32 && role == DSOCR_WEIGHT_MATRIX && t->n_dims == 2 &&
         t->ne[1] % 32 == 0 && dsk_tensor_is_contiguous (t) &&
         (t->dtype == DSK_F32 || t->dtype == DSK_BF16 || t->dtype == DSK_F16) &&
         dsk_backend_supports (c->be, "quantize_weight");
}

static void
prepare_one (dsk_tensor *t, dsocr_weight_role role, gpointer data)
{
  prepare_ctx *c = data;
  dsk_tensor *done;
  if (!t->data)
    return;
  const gboolean q = quantizes (c, t, role);
  /* the key: the host address, its low bit set for the quantized form (tensors are at least
   * 2-byte aligned) */
  gpointer key = (gpointer) ((guintptr) t->data | (q ? 1u : 0u));
  done = g_hash_table_lookup (c->done, key);
  if (done) {
    *t = *done;
    return;
  }
  const dsk_tensor host = *t;
  *t = q ? dsk_backend_quantize_weight (c->be, t, c->quant, c->storage)
         : dsk_backend_prepare_weight (c->be, t, c->storage);
  if (q && t->data && c->sets->klass->release)
    c->sets->klass->release (c->sets->owner, &host);
  if (t->data)
    c->bytes += dsk_dtype_bytes (t->dtype, dsk_tensor_n_elements (t));
  g_hash_table_insert (c->done, key, g_memdup2 (t, sizeof *t));
}

gconstpointer
dsocr_weight_sets_get (dsocr_weight_sets *s, gconstpointer host, dsk_backend *be,
                       dsocr_precision precision, gsize *bytes, const char *what, GError **error)
{
  const dsk_device dev = dsk_backend_get_device (be);
  gpointer set = NULL;

  precision = dsocr_precision_resolve (precision);
  if (precision == DSOCR_PRECISION_BF16)
    precision = DSOCR_PRECISION_F32;   /* the same weights (dsocr-backend.h) */
  g_mutex_lock (&s->lock);
  for (guint i = 0; i < s->entries->len && !set; i++) {
    entry *e = &g_array_index (s->entries, entry, i);
    if (e->device.kind == dev.kind && e->device.index == dev.index &&
        e->precision == precision) {
      set = e->set;
      if (bytes)
        *bytes = e->bytes;
    }
  }
  if (!set) {
    prepare_ctx c = { s, be, precision == DSOCR_PRECISION_Q8 ? DSK_Q8
                          : precision == DSOCR_PRECISION_Q4 ? DSK_Q4 : DSK_F32,
                      dsk_weight_storage_new (),
                      g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free), 0 };
    set = s->klass->copy (host, s->owner);
    s->klass->for_each_tensor (set, prepare_one, &c, s->owner);
    g_hash_table_unref (c.done);
    if (!dsocr_backend_check (be, what, error)) {
      s->klass->free (set);
      dsk_weight_storage_free (c.storage);
      set = NULL;
    } else {
      entry e = { dev, precision, set, c.storage, c.bytes };
      g_array_append_val (s->entries, e);
      if (bytes)
        *bytes = c.bytes;
    }
  }
  g_mutex_unlock (&s->lock);
  return set;
}
