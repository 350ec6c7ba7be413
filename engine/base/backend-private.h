/* backend-private.h (internal): the kernels' backend interface as the engine's model code
 * uses it, and the GError glue.
 *
 * Model code runs a list of ops on a backend and checks once at the end with
 * dsocr_backend_check(), which turns the backend's sticky error (kernels/backend.h) into a
 * GError and clears it. */
#ifndef DSOCR_BACKEND_PRIVATE_H
#define DSOCR_BACKEND_PRIVATE_H

#include <glib.h>

#include "backend.h"
#include "dsocr/dsocr-backend.h"

G_BEGIN_DECLS

/* TRUE when no op on @be has failed since the last check; else FALSE with @error set to
 * "@what: <the op's message>" in the matching DSOCR_ERROR code, and the error cleared. */
gboolean dsocr_backend_check (dsk_backend *be, const char *what, GError **error);

/* The backend of a session that was given none: the CPU with @n_threads (0: all). */
static inline dsk_backend *
dsocr_backend_default (int n_threads, GError **error)
{
  return dsocr_backend_new ("cpu", n_threads, error);
}

G_END_DECLS

#endif /* DSOCR_BACKEND_PRIVATE_H */
