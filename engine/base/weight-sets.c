/* weight-sets.c: a model's weights prepared once per device (weight-sets.h). */
#include "weight-sets.h"

#include "backend-private.h"

typedef struct {
  dsk_device device;
  gpointer set;
  dsk_weight_storage *storage;
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
  dsk_backend *be;
  dsk_weight_storage *storage;
  GHashTable *done;   /* host data pointer -> prepared tensor: a tensor shared by two fields
                       * (tied embeddings) is prepared once */
} prepare_ctx;

static void
prepare_one (dsk_tensor *t, gpointer data)
{
  prepare_ctx *c = data;
  dsk_tensor *done;
  if (!t->data)
    return;
  done = g_hash_table_lookup (c->done, t->data);
  if (done) {
    *t = *done;
    return;
  }
  {
    void *host = t->data;
    *t = dsk_backend_prepare_weight (c->be, t, c->storage);
    g_hash_table_insert (c->done, host, g_memdup2 (t, sizeof *t));
  }
}

gconstpointer
dsocr_weight_sets_get (dsocr_weight_sets *s, gconstpointer host, dsk_backend *be,
                       const char *what, GError **error)
{
  const dsk_device dev = dsk_backend_get_device (be);
  gpointer set = NULL;

  g_mutex_lock (&s->lock);
  for (guint i = 0; i < s->entries->len && !set; i++) {
    entry *e = &g_array_index (s->entries, entry, i);
    if (e->device.kind == dev.kind && e->device.index == dev.index)
      set = e->set;
  }
  if (!set) {
    prepare_ctx c = { be, dsk_weight_storage_new (),
                      g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free) };
    set = s->klass->copy (host, s->owner);
    s->klass->for_each_tensor (set, prepare_one, &c, s->owner);
    g_hash_table_unref (c.done);
    if (!dsocr_backend_check (be, what, error)) {
      s->klass->free (set);
      dsk_weight_storage_free (c.storage);
      set = NULL;
    } else {
      entry e = { dev, set, c.storage };
      g_array_append_val (s->entries, e);
    }
  }
  g_mutex_unlock (&s->lock);
  return set;
}
