/* fuzz-replay.c: a main() for any fuzz-<name>.c without libFuzzer. Feeds every file of the
 * directories (or files) named on the command line to LLVMFuzzerTestOneInput once, so the
 * committed corpus runs under the sanitizers in every build. Exit status 0 when all ran. */
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  char *contents = NULL;
  gsize len = 0;
  GError *error = NULL;

  if (!g_file_get_contents (path, &contents, &len, &error)) {
    fprintf (stderr, "%s\n", error->message);
    g_error_free (error);
    return 1;
  }
  /* An exact-size copy, so that reading one byte past the input is an ASan error. */
  {
    uint8_t *copy = g_memdup2 (contents, len ? len : 1);
    LLVMFuzzerTestOneInput (copy, len);
    g_free (copy);
  }
  g_free (contents);
  return 0;
}

int
main (int argc, char **argv)
{
  int failures = 0, n = 0;

  for (int a = 1; a < argc; a++) {
    GDir *dir = g_dir_open (argv[a], 0, NULL);
    const char *name;

    if (!dir) {
      failures += run_file (argv[a]);
      n++;
      continue;
    }
    while ((name = g_dir_read_name (dir))) {
      char *path = g_build_filename (argv[a], name, NULL);
      failures += run_file (path);
      n++;
      g_free (path);
    }
    g_dir_close (dir);
  }
  printf ("replayed %d inputs, %d unreadable\n", n, failures);
  return failures == 0 && n > 0 ? 0 : 1;
}
