/* dsocr-safetensors.h: a validating reader for one .safetensors file.
 *
 *   GError *error = NULL;
 *   dsocr_safetensors *st = dsocr_safetensors_open ("model.safetensors", &error);
 *   if (!st) { g_printerr ("%s\n", error->message); g_error_free (error); return; }
 *   const dsocr_tensor *w = dsocr_safetensors_get (st, "model.norm.weight");  // NULL if absent
 *   for (gsize i = 0; i < dsocr_safetensors_n_tensors (st); i++)
 *     g_print ("%s\n", dsocr_safetensors_get_nth (st, i)->name);
 *   dsocr_safetensors_unref (st);
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "BF16", "shape": [a, b], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the data section; offsets are relative to its start.
 *
 * The whole header is checked when the file is opened, so every tensor handed out afterwards
 * is in bounds: a valid UTF-8 JSON object of at most 100 MB, no duplicate keys, known dtypes
 * (others are DSOCR_ERROR_UNSUPPORTED), shapes of non-negative integers with rank <= 4
 * (DSOCR_MAX_DIMS; more is DSOCR_ERROR_UNSUPPORTED), data_offsets [begin, end] inside the data
 * section with end - begin equal to the shape's byte size, and no two non-empty ranges
 * overlapping. Gaps between ranges and trailing bytes are allowed. Every other failure is
 * DSOCR_ERROR_FORMAT (DSOCR_ERROR_FILE when the file cannot be read), with a message naming the
 * file and, where one is at fault, the tensor.
 *
 * Tensors are read-only views into the mapping: their data is valid while the reader lives and
 * must never be written (the file is mapped read-only). ALIGNMENT: the format does not promise
 * any; writers that follow the reference implementation pad the header so the data section
 * starts 8-byte aligned and place larger dtypes first, but a consumer that needs aligned data
 * must check the pointer (or copy) rather than assume it.
 *
 * The mapping is shared, not copied: if another process truncates the file while it is open,
 * reading a tensor may fault (SIGBUS), as with any mmap reader.
 *
 * A reader is immutable once open; share it between threads with _ref/_unref.
 */
#ifndef DSOCR_SAFETENSORS_H
#define DSOCR_SAFETENSORS_H

#include <glib.h>

#include <dsocr/dsocr-tensor.h>

G_BEGIN_DECLS

typedef struct dsocr_safetensors dsocr_safetensors;

/* Maps and validates @path. Returns (transfer full) a reader with one reference, or NULL and
 * @error set (DSOCR_ERROR_FILE, _FORMAT or _UNSUPPORTED). */
dsocr_safetensors *dsocr_safetensors_open (const char *path, GError **error);

/* Same as _open() on bytes already in memory; @bytes (transfer none) is referenced for the
 * reader's lifetime. @name (may be NULL: "<memory>") stands for the file in messages. */
dsocr_safetensors *dsocr_safetensors_open_bytes (GBytes *bytes, const char *name,
                                                 GError **error);

/* Returns @st with one more reference (transfer full). Thread-safe. */
dsocr_safetensors *dsocr_safetensors_ref (dsocr_safetensors *st);
/* Drops a reference; the last one unmaps the file. NULL is a no-op. */
void dsocr_safetensors_unref (dsocr_safetensors *st);

/* The path given to _open() (or the name given to _open_bytes()), (transfer none). */
const char *dsocr_safetensors_get_path (const dsocr_safetensors *st);

/* Number of tensors (the header entries other than __metadata__). */
gsize dsocr_safetensors_n_tensors (const dsocr_safetensors *st);

/* The @i-th tensor (0 <= i < n_tensors), in order of data offset; ->name is its name as
 * written in the file. (transfer none), valid while @st lives. NULL when @i is out of range. */
const dsocr_tensor *dsocr_safetensors_get_nth (const dsocr_safetensors *st, gsize i);

/* The tensor called exactly @name, or NULL when the file has none. (transfer none) */
const dsocr_tensor *dsocr_safetensors_get (const dsocr_safetensors *st, const char *name);

/* The value of @key in the file's __metadata__ block, or NULL. (transfer none) */
const char *dsocr_safetensors_get_metadata (const dsocr_safetensors *st, const char *key);

/* Sum of the byte sizes of all tensors. */
guint64 dsocr_safetensors_tensor_bytes (const dsocr_safetensors *st);

G_END_DECLS

#endif /* DSOCR_SAFETENSORS_H */
