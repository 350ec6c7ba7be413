/* dsocr-test.h: helpers shared by the C tests (GLib's gtest framework, TAP output). */
#ifndef DSOCR_TEST_H
#define DSOCR_TEST_H

#include <glib.h>
#include <math.h>

/* Absolute path of @rel inside tests/fixtures/ (transfer full). Tests run from any directory:
 * meson passes DSOCR_FIXTURES_DIR in the environment. */
static inline char *
dsocr_test_fixture (const char *rel)
{
  const char *dir = g_getenv ("DSOCR_FIXTURES_DIR");
  return g_build_filename (dir ? dir : "tests/fixtures", rel, NULL);
}

/* Absolute path of @rel inside the project's shared/ folder (../shared beside the checkout),
 * or NULL when it is absent: tests that need it skip. (transfer full) */
static inline char *
dsocr_test_shared (const char *rel)
{
  const char *dir = g_getenv ("DSOCR_SHARED_DIR");
  char *p = g_build_filename (dir ? dir : "../shared", rel, NULL);
  if (!g_file_test (p, G_FILE_TEST_EXISTS)) {
    g_free (p);
    return NULL;
  }
  return p;
}

/* Relative error of @got against the golden @want: max|got - want| / max|want|.
 * This is the "within 1e-4 relative" rule of the project (docs/numerics.md). NaN in @got
 * gives +inf. */
static inline double
dsocr_test_rel_error (const float *got, const float *want, gsize n)
{
  double max_diff = 0.0, max_ref = 0.0;
  for (gsize i = 0; i < n; i++) {
    double d = fabs ((double) got[i] - (double) want[i]);
    if (isnan (got[i]) != isnan (want[i]))
      return INFINITY;
    if (d > max_diff)
      max_diff = d;
    if (fabs ((double) want[i]) > max_ref)
      max_ref = fabs ((double) want[i]);
  }
  return max_ref > 0.0 ? max_diff / max_ref : max_diff;
}

#define dsocr_test_assert_close(got, want, n, rtol, what)                                   \
  G_STMT_START {                                                                            \
    double rel_ = dsocr_test_rel_error ((got), (want), (n));                                \
    if (!(rel_ <= (rtol)))                                                                  \
      g_error ("%s: relative error %.3g exceeds %.3g", (what), rel_, (double) (rtol));      \
  } G_STMT_END

#endif /* DSOCR_TEST_H */
