/* backend.c: the engine's face of the kernels' backends (dsocr-backend.h), and the step that
 * turns a backend's sticky error into a GError (backend-private.h). */
#include "backend-private.h"

#include "dsocr/dsocr-error.h"

dsocr_backend *
dsocr_backend_new (const char *device, int n_threads, GError **error)
{
  char err[256] = "";
  dsk_backend *be;

  if (n_threads < 0 || n_threads > DSOCR_BACKEND_MAX_THREADS) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "backend: %d threads (0 for one per processor, at most %d)", n_threads,
                 DSOCR_BACKEND_MAX_THREADS);
    return NULL;
  }
  if (device && g_strcmp0 (device, "cpu") != 0 && g_strcmp0 (device, "cuda") != 0 &&
      !g_str_has_prefix (device, "cuda:")) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "backend: unknown device \"%s\" (expected cpu, cuda or cuda:N)", device);
    return NULL;
  }
  be = dsk_backend_new (device ? device : "cpu", n_threads, err, sizeof err);
  if (!be)
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_DEVICE, "backend: %s", err);
  return be;
}

dsocr_backend *
dsocr_backend_ref (dsocr_backend *backend)
{
  g_return_val_if_fail (backend != NULL, NULL);
  return dsk_backend_ref (backend);
}

void
dsocr_backend_unref (dsocr_backend *backend)
{
  dsk_backend_unref (backend);
}

const char *
dsocr_backend_get_device (const dsocr_backend *backend)
{
  char buf[32];
  /* interned: the few device names live as long as the process */
  return g_intern_string (dsk_device_name (dsk_backend_get_device (backend), buf, sizeof buf));
}

const char *
dsocr_backend_get_description (const dsocr_backend *backend)
{
  return dsk_backend_get_description (backend);
}

int
dsocr_backend_get_n_threads (const dsocr_backend *backend)
{
  return dsk_backend_get_n_threads (backend);
}

gboolean
dsocr_backend_supports (const dsocr_backend *backend, const char *op)
{
  return dsk_backend_supports (backend, op);
}

gboolean
dsocr_backend_runs_models (const dsocr_backend *backend)
{
  static const char *const ops[] = {
    "copy", "fill", "get_rows", "set_rows", "add", "round", "silu", "gelu", "quick_gelu",
    "swiglu", "softmax", "rmsnorm", "layernorm", "rope_tables", "rope", "linear", "matmul",
    "attention", "attention_sparse", "attention_probs", "rel_pos", "conv2d",
    "resize_bicubic_aa", "resize_linear", "moe_route", "moe", "index_scores", "topk",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (ops); i++)
    if (!dsk_backend_supports (backend, ops[i]))
      return FALSE;
  return TRUE;
}

gboolean
dsocr_device_available (const char *device, GError **error)
{
  dsocr_backend *be;
  if (dsk_device_available (device ? device : "cpu"))
    return TRUE;
  /* ask for one: its error says why not */
  be = dsocr_backend_new (device, 1, error);
  if (be) {
    dsk_backend_unref (be);
    return TRUE;
  }
  return FALSE;
}

gboolean
dsocr_backend_check (dsk_backend *be, const char *what, GError **error)
{
  const dsk_status st = dsk_backend_status (be);
  if (st == DSK_OK)
    return TRUE;
  g_set_error (error, DSOCR_ERROR,
               st == DSK_ERR_NOMEM ? DSOCR_ERROR_NOMEM
               : st == DSK_ERR_UNSUPPORTED ? DSOCR_ERROR_UNSUPPORTED
               : st == DSK_ERR_DEVICE ? DSOCR_ERROR_DEVICE : DSOCR_ERROR_INVALID,
               "%s: %s", what, dsk_backend_error (be));
  dsk_backend_clear_error (be);
  return FALSE;
}

/* ---- precision ---- */

dsocr_precision
dsocr_precision_resolve (dsocr_precision precision)
{
  return precision == DSOCR_PRECISION_DEFAULT ? DSOCR_PRECISION_DEFAULT_IS : precision;
}

const char *
dsocr_precision_to_string (dsocr_precision precision)
{
  switch (dsocr_precision_resolve (precision)) {
    case DSOCR_PRECISION_F32: return "f32";
    case DSOCR_PRECISION_BF16: return "bf16";
    case DSOCR_PRECISION_Q8: return "q8";
    case DSOCR_PRECISION_Q4: return "q4";
    default: return NULL;
  }
}

gboolean
dsocr_precision_from_string (const char *name, dsocr_precision *precision, GError **error)
{
  static const struct { const char *name; dsocr_precision p; } names[] = {
    { "default", DSOCR_PRECISION_DEFAULT }, { "f32", DSOCR_PRECISION_F32 },
    { "bf16", DSOCR_PRECISION_BF16 }, { "q8", DSOCR_PRECISION_Q8 }, { "q4", DSOCR_PRECISION_Q4 },
  };
  for (gsize i = 0; name && i < G_N_ELEMENTS (names); i++)
    if (g_ascii_strcasecmp (name, names[i].name) == 0) {
      *precision = names[i].p;
      return TRUE;
    }
  g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
               "unknown precision \"%s\" (expected f32, bf16, q8 or q4)", name ? name : "");
  return FALSE;
}
