/* dsocr-backend.h: where and on how many threads the models compute.
 *
 *   GError *error = NULL;
 *   dsocr_backend *cpu = dsocr_backend_new ("cpu", 4, &error);      // a pool of 4 threads
 *   dsocr_session_params sp;
 *   dsocr_session_params_init (&sp);
 *   sp.backend = cpu;                                                // the decoder runs on it
 *   dsocr_vision_session *vs = dsocr_vision_session_new (vision, cpu, &error);
 *   ...
 *   dsocr_backend_unref (cpu);
 *
 * A backend is an execution context on one device: the CPU with its own thread pool (no other
 * threads compute: OpenBLAS runs single-threaded inside the pool's work items), or a CUDA GPU
 * with its stream. Sessions and vision sessions hold a reference. A backend runs one call at a
 * time: give each thread that computes (each element, each stream) its own; they share the
 * model's weights, which are prepared once per device. Creating a CPU backend starts its
 * threads, so keep it rather than making one per call.
 *
 * Devices: "cpu", "cuda" (the first GPU) or "cuda:N". A device the build or the machine lacks
 * is DSOCR_ERROR_DEVICE with the reason. Only "cpu" runs the whole model today; a CUDA backend
 * runs the ops that have CUDA kernels (dsocr_backend_supports).
 */
#ifndef DSOCR_BACKEND_H
#define DSOCR_BACKEND_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct dsk_backend dsocr_backend;

/* A backend on @device ("cpu", "cuda", "cuda:N"; NULL means "cpu") with @n_threads CPU threads
 * (0: one per processor; at most 1024).
 * Returns: (transfer full) the backend, or NULL with @error (DSOCR_ERROR_INVALID for a bad name
 * or thread count, DSOCR_ERROR_DEVICE for a device this build or machine cannot use). */
dsocr_backend *dsocr_backend_new (const char *device, int n_threads, GError **error);
/* (transfer full) @backend with one more reference. */
dsocr_backend *dsocr_backend_ref (dsocr_backend *backend);
/* Drops a reference; NULL is a no-op. */
void dsocr_backend_unref (dsocr_backend *backend);

/* "cpu", "cuda:0". (transfer none) */
const char *dsocr_backend_get_device (const dsocr_backend *backend);
/* What it runs on, for logs: "cpu (4 threads, avx512)", "cuda:0 (NVIDIA H100 80GB HBM3)".
 * (transfer none) */
const char *dsocr_backend_get_description (const dsocr_backend *backend);
int dsocr_backend_get_n_threads (const dsocr_backend *backend);
/* Whether the backend implements the op named @op (the names of kernels/backend.h, e.g.
 * "attention"): the whole model needs them all. */
gboolean dsocr_backend_supports (const dsocr_backend *backend, const char *op);
/* Whether the backend implements every op the models use. */
gboolean dsocr_backend_runs_models (const dsocr_backend *backend);

/* Whether @device names a device this build and machine can use; FALSE with @error saying
 * why not. */
gboolean dsocr_device_available (const char *device, GError **error);

/* The most threads a backend takes. */
#define DSOCR_BACKEND_MAX_THREADS 1024

/* How a model's weights are held and its products computed: the `precision` of the elements
 * and tools (docs/numerics.md measures each against F32).
 *
 * F32   every weight as the checkpoint stores it (BF16), products in f32: the reference's
 *       numbers, within the goldens' 1e-4.
 * BF16  as F32 on CPUs, whose f32 products outrun their bf16 ones where they have no matrix
 *       units (measured: AVX512-BF16's VDPBF16PS runs at half the f32 FMA rate on the
 *       development CPU); reserved for devices with bf16 units.
 * Q8    the decoder's matrices (attention, dense and expert MLPs, shared experts, lm_head) in
 *       8-bit blocks made at load (8.5 bits a weight); decode reads about half the bytes of
 *       BF16. Embeddings, norms, the router and the vision tower stay as stored.
 * Q4    the same in 4-bit blocks with a minimum (5 bits a weight).
 *
 * DEFAULT (0) is DSOCR_PRECISION_DEFAULT_IS, chosen from docs/numerics.md: the fastest whose
 * greedy output agrees with F32 on the goldens and the bundled model. */
typedef enum {
  DSOCR_PRECISION_DEFAULT = 0,
  DSOCR_PRECISION_F32,
  DSOCR_PRECISION_BF16,
  DSOCR_PRECISION_Q8,
  DSOCR_PRECISION_Q4,
} dsocr_precision;

#define DSOCR_PRECISION_DEFAULT_IS DSOCR_PRECISION_F32

/* "f32", "bf16", "q8", "q4" (DEFAULT resolved first); NULL for a value out of range. */
const char *dsocr_precision_to_string (dsocr_precision precision);
/* Parses those names (and "default"); FALSE with @error (DSOCR_ERROR_INVALID) otherwise. */
gboolean dsocr_precision_from_string (const char *name, dsocr_precision *precision,
                                      GError **error);
/* @precision with DEFAULT resolved. */
dsocr_precision dsocr_precision_resolve (dsocr_precision precision);

G_END_DECLS

#endif /* DSOCR_BACKEND_H */
