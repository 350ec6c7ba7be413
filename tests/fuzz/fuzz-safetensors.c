/* fuzz-safetensors.c: libFuzzer target for the safetensors reader. The input is a whole file;
 * opening it must either fail with a DSOCR_ERROR or give tensors whose every byte is readable
 * (the sanitizers see any read outside the input). */
#include <stddef.h>
#include <stdint.h>

#include <dsocr/dsocr.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Reads go here so the compiler cannot drop them. */
static volatile guint8 fuzz_sink;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GBytes *bytes = g_bytes_new (data, size); /* a copy: the exact extent ASan checks against */
  GError *error = NULL;
  dsocr_safetensors *st = dsocr_safetensors_open_bytes (bytes, "fuzz", &error);

  /* A GLib warning or critical on any input is a finding too. */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL);
  g_bytes_unref (bytes);
  if (!st) {
    if (!error || error->domain != DSOCR_ERROR)
      __builtin_trap ();
    g_error_free (error);
    return 0;
  }
  for (gsize i = 0; i < dsocr_safetensors_n_tensors (st); i++) {
    const dsocr_tensor *t = dsocr_safetensors_get_nth (st, i);
    const guint8 *p = t->data;

    if (dsocr_safetensors_get (st, t->name) != t)
      __builtin_trap ();
    if (t->nbytes > 0)
      fuzz_sink ^= p[0] ^ p[t->nbytes - 1];
  }
  (void) dsocr_safetensors_get_metadata (st, "format");
  dsocr_safetensors_unref (st);
  return 0;
}
