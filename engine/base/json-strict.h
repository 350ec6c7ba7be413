/* json-strict.h (internal): JSON parsing for files the engine does not trust.
 *
 * json-glib accepts duplicate object keys (the last one wins) and recurses once per nesting
 * level; a checkpoint header must not be able to hide a second definition of a tensor or
 * exhaust the stack, so both are rejected here before anyone reads the tree.
 */
#ifndef DSOCR_JSON_STRICT_H
#define DSOCR_JSON_STRICT_H

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Parses @len bytes at @data as strict RFC 8259 JSON. Fails (DSOCR_ERROR_FORMAT, message
 * "@what: not valid JSON: <reason> at byte N") on invalid UTF-8 or a NUL byte, nesting deeper
 * than @max_depth arrays/objects, any syntax error or extension (comments, single quotes,
 * NaN, trailing commas), an empty document, and, unless @allow_duplicates, a key repeated
 * within one object ("@what: duplicate key 'k'"; config.json readers keep Python's
 * last-one-wins instead). Returns (transfer full) the root. */
JsonNode *dsocr_json_parse_strict (const char *data, gsize len, int max_depth,
                                   gboolean allow_duplicates, const char *what, GError **error);

G_END_DECLS

#endif /* DSOCR_JSON_STRICT_H */
