/* error.c: the DSOCR_ERROR domain. */
#include "dsocr/dsocr-error.h"

G_DEFINE_QUARK (dsocr-error-quark, dsocr_error)
