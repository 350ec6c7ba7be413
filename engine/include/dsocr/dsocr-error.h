/* dsocr-error.h: the engine's GError domain.
 *
 * Every engine call that can fail on input takes a `GError **error` and, on failure, sets a
 * DSOCR_ERROR whose message names the file, tensor or field at fault, e.g.
 *   "model.safetensors: tensor 'lm_head.weight': shape [129280, 1280], expected [129280, 1024]"
 */
#ifndef DSOCR_ERROR_H
#define DSOCR_ERROR_H

#include <glib.h>

G_BEGIN_DECLS

#define DSOCR_ERROR (dsocr_error_quark ())

typedef enum {
  DSOCR_ERROR_FILE,        /* a file is missing or cannot be read / mapped */
  DSOCR_ERROR_FORMAT,      /* a file is malformed: truncated, bad JSON, bad header */
  DSOCR_ERROR_SHAPE,       /* a tensor has the wrong shape or dtype, or is missing */
  DSOCR_ERROR_CONFIG,      /* a config field is unknown, out of range or inconsistent */
  DSOCR_ERROR_UNSUPPORTED, /* valid input this build cannot handle */
  DSOCR_ERROR_DEVICE,      /* the compute device failed (CUDA error, no device) */
  DSOCR_ERROR_NOMEM,       /* an allocation failed or a size overflowed */
  DSOCR_ERROR_INVALID,     /* a bad argument value (not a programmer error) */
} DsocrError;

GQuark dsocr_error_quark (void);

G_END_DECLS

#endif /* DSOCR_ERROR_H */
