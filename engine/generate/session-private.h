/* session-private.h (internal): what the session offers the rest of the engine. */
#ifndef DSOCR_SESSION_PRIVATE_H
#define DSOCR_SESSION_PRIVATE_H

#include <glib.h>
#include <stdint.h>

#include "dsocr/dsocr-session.h"

G_BEGIN_DECLS

/* logits [n, n_labels] (host) = the score head on rows @which [n] of the last forward call's
 * final-norm hidden states (row r * n_tokens + t for column t of row r). */
gboolean dsocr_session_score_rows (dsocr_session *session, const int32_t *which, int n,
                                   float *logits, GError **error);

G_END_DECLS

#endif /* DSOCR_SESSION_PRIVATE_H */
