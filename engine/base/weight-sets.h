/* weight-sets.h (internal): a model's weights prepared once per device and precision.
 *
 * The decoder (decoder/model.c) and the vision tower (vision/vision.c) load their weights as
 * host views of the checkpoint; a backend computes with a copy of that structure whose tensors
 * were passed through dsk_backend_prepare_weight() for its device (the CPU keeps the host
 * memory, a GPU gets an upload), or, for the product weights a Q8 / Q4 precision covers,
 * through dsk_backend_quantize_weight(). dsocr_weight_sets keeps one such copy per (device,
 * precision), made on first use under a lock and shared by every session of that device and
 * precision until the model goes. */
#ifndef DSOCR_WEIGHT_SETS_H
#define DSOCR_WEIGHT_SETS_H

#include <glib.h>

#include "backend.h"
#include "dsocr/dsocr-backend.h"

G_BEGIN_DECLS

/* What a weight is to the precisions: a product's matrix (quantized at Q8 / Q4), or anything
 * else (embeddings, norms, biases, the router, tables: kept as stored). */
typedef enum {
  DSOCR_WEIGHT_OTHER = 0,
  DSOCR_WEIGHT_MATRIX,
} dsocr_weight_role;

/* Calls @fn on every tensor of a weight structure. */
typedef void (*dsocr_tensor_fn) (dsk_tensor *t, dsocr_weight_role role, gpointer data);

typedef struct {
  /* A copy of the host structure @host (its arrays duplicated, tensors the same). */
  gpointer (*copy) (gconstpointer host, gconstpointer owner);
  /* Visits every tensor of @set. */
  void (*for_each_tensor) (gpointer set, dsocr_tensor_fn fn, gpointer data, gconstpointer owner);
  /* Frees a structure made by copy (not the tensors' data: the storage holds that). */
  void (*free) (gpointer set);
  /* Optional: the host tensor @host was quantized; the set no longer reads its memory (the
   * owner may hand mapped pages back, io/mapping.h). */
  void (*release) (gconstpointer owner, const dsk_tensor *host);
} dsocr_weight_set_class;

typedef struct dsocr_weight_sets dsocr_weight_sets;

/* The cache of @owner's weights (the model or tower; passed back to the class's functions). */
dsocr_weight_sets *dsocr_weight_sets_new (const dsocr_weight_set_class *klass,
                                          gconstpointer owner);
void dsocr_weight_sets_free (dsocr_weight_sets *sets);

/* The set for @be's device and @precision (resolved; BF16 prepares as F32 does): @host
 * prepared there on the first call (thread-safe); @bytes (nullable) gets the bytes its
 * tensors take. (transfer none) valid while @sets lives; NULL with @error ("@what: ...") when
 * the device cannot hold the weights. */
gconstpointer dsocr_weight_sets_get (dsocr_weight_sets *sets, gconstpointer host, dsk_backend *be,
                                     dsocr_precision precision, gsize *bytes, const char *what,
                                     GError **error);

G_END_DECLS

#endif /* DSOCR_WEIGHT_SETS_H */
