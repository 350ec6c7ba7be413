/* test-safetensors.c: the safetensors reader on files written by the safetensors library, and
 * on malformed files built here byte by byte. */
#include <errno.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <dsocr/dsocr.h>

#include "st-golden.h"

/* ---- reading what the reference library wrote ---- */

static void
check_dtypes_file (dsocr_safetensors *st)
{
  g_autoptr (JsonNode) golden = st_golden_load ("dtypes.golden.json");
  JsonObject *tensors = st_golden_tensors (golden);
  JsonObject *meta = json_object_get_object_member (json_node_get_object (golden), "metadata");
  g_autoptr (GList) names = json_object_get_members (tensors);
  g_autoptr (GList) keys = json_object_get_members (meta);
  const guint8 *prev = NULL;

  g_assert_cmpuint (dsocr_safetensors_n_tensors (st), ==, json_object_get_size (tensors));
  for (GList *l = names; l; l = l->next) {
    const dsocr_tensor *t = dsocr_safetensors_get (st, l->data);
    g_assert_nonnull (t);
    g_assert_cmpstr (t->name, ==, l->data);
    g_assert_false (t->owns_data);
    g_assert_cmpint (t->device, ==, DSOCR_DEVICE_CPU);
    st_golden_check (t, json_object_get_object_member (tensors, l->data), l->data);
  }
  for (GList *l = keys; l; l = l->next)
    g_assert_cmpstr (dsocr_safetensors_get_metadata (st, l->data), ==,
                     json_object_get_string_member (meta, l->data));
  g_assert_null (dsocr_safetensors_get_metadata (st, "absent"));
  g_assert_null (dsocr_safetensors_get (st, "absent"));
  g_assert_null (dsocr_safetensors_get (st, "__metadata__"));

  /* Iteration visits every tensor once, in order of data offset. */
  for (gsize i = 0; i < dsocr_safetensors_n_tensors (st); i++) {
    const dsocr_tensor *t = dsocr_safetensors_get_nth (st, i);
    g_assert_true (dsocr_safetensors_get (st, t->name) == t);
    g_assert_true (prev == NULL || (const guint8 *) t->data >= prev);
    prev = t->data;
  }
  g_assert_null (dsocr_safetensors_get_nth (st, dsocr_safetensors_n_tensors (st)));

  {
    const dsocr_tensor *scalar = dsocr_safetensors_get (st, "scalar");
    const dsocr_tensor *empty = dsocr_safetensors_get (st, "empty");
    g_assert_cmpint (scalar->n_dims, ==, 0);
    g_assert_cmpuint (scalar->nbytes, ==, 4);
    g_assert_cmpuint (empty->nbytes, ==, 0);
    g_assert_cmpint (dsocr_safetensors_get (st, "bf16.rank4")->stride[0], ==, 12);
  }
}

static void
test_dtypes (void)
{
  g_autofree char *path = dsocr_test_fixture ("safetensors/dtypes.safetensors");
  GError *err = NULL;
  dsocr_safetensors *st = dsocr_safetensors_open (path, &err), *st2;

  g_assert_no_error (err);
  g_assert_cmpstr (dsocr_safetensors_get_path (st), ==, path);
  check_dtypes_file (st);

  /* A second reference keeps the views alive after the first is dropped. */
  st2 = dsocr_safetensors_ref (st);
  dsocr_safetensors_unref (st);
  check_dtypes_file (st2);
  dsocr_safetensors_unref (st2);
  dsocr_safetensors_unref (NULL);
}

static void
test_open_bytes (void)
{
  g_autofree char *path = dsocr_test_fixture ("safetensors/dtypes.safetensors");
  g_autofree char *contents = NULL;
  gsize len;
  GError *err = NULL;
  GBytes *bytes;
  dsocr_safetensors *st;

  g_assert_true (g_file_get_contents (path, &contents, &len, &err));
  bytes = g_bytes_new (contents, len);
  st = dsocr_safetensors_open_bytes (bytes, NULL, &err);
  g_bytes_unref (bytes);
  g_assert_no_error (err);
  g_assert_cmpstr (dsocr_safetensors_get_path (st), ==, "<memory>");
  check_dtypes_file (st);
  dsocr_safetensors_unref (st);
}

/* ---- files built here ---- */

/* Writes @len bytes to a new temporary file; returns its path (transfer full). */
static char *
write_tmp (const void *buf, gsize len)
{
  char *path = NULL;
  GError *err = NULL;
  int fd = g_file_open_tmp ("dsocr-st-XXXXXX.safetensors", &path, &err);

  g_assert_no_error (err);
  g_assert_true (len == 0 || write (fd, buf, len) == (gssize) len);
  g_close (fd, NULL);
  return path;
}

/* An 8-byte length (@header_len, or strlen(@header) when -1), the header and @data_len bytes
 * of data (0x11, 0x22, ...). (transfer full) */
static GByteArray *
build (const char *header, gint64 header_len, gsize data_len)
{
  GByteArray *b = g_byte_array_new ();
  guint64 n = header_len < 0 ? strlen (header) : (guint64) header_len;
  guint8 le[8];

  for (int i = 0; i < 8; i++)
    le[i] = (guint8) (n >> (8 * i));
  g_byte_array_append (b, le, 8);
  g_byte_array_append (b, (const guint8 *) header, (guint) strlen (header));
  for (gsize i = 0; i < data_len; i++) {
    guint8 v = (guint8) (0x11 * (i + 1));
    g_byte_array_append (b, &v, 1);
  }
  return b;
}

typedef struct {
  const char *what;
  const char *header;
  gint64 header_len; /* -1: the header's length */
  gsize data_len;
  int code;
  const char *culprit[3]; /* substrings the message must contain, besides the file name */
} bad_case;

#define T1(dtype, shape, offsets) \
  "{\"a\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}}"

static const bad_case bad_cases[] = {
  { "header length beyond the file", "{}", 100, 0, DSOCR_ERROR_FORMAT,
    { "header length 100" } },
  { "header length 2^63", "{}", G_GINT64_CONSTANT (1) << 62, 0, DSOCR_ERROR_FORMAT,
    { "header length" } },
  { "header not JSON", "{not json}", -1, 8, DSOCR_ERROR_FORMAT, { "not valid JSON" } },
  { "header empty", "", -1, 8, DSOCR_ERROR_FORMAT, { "header" } },
  { "header a JSON array", "[1, 2]", -1, 0, DSOCR_ERROR_FORMAT, { "not a JSON object" } },
  { "header a JSON string", "\"x\"", -1, 0, DSOCR_ERROR_FORMAT, { "not a JSON object" } },
  { "header not UTF-8", "{\"\xff\xfe\":{}}", -1, 0, DSOCR_ERROR_FORMAT, { "UTF-8" } },
  { "header nested too deep", "{\"a\":[[[[[[[[[[[[]]]]]]]]]]]]}", -1, 0, DSOCR_ERROR_FORMAT,
    { "nested too deeply" } },
  { "duplicate tensor", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
    "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", -1, 2, DSOCR_ERROR_FORMAT,
    { "duplicate key 'a'" } },
  { "duplicate field", "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"F32\",\"shape\":[1],"
    "\"data_offsets\":[0,1]}}", -1, 1, DSOCR_ERROR_FORMAT, { "duplicate key 'dtype'" } },
  { "entry not an object", "{\"a\":[1]}", -1, 0, DSOCR_ERROR_FORMAT,
    { "'a'", "not an object" } },
  { "unknown dtype", T1 ("F64", "[1]", "[0,8]"), -1, 8, DSOCR_ERROR_UNSUPPORTED,
    { "'a'", "'F64'" } },
  { "lower-case dtype", T1 ("f32", "[1]", "[0,4]"), -1, 4, DSOCR_ERROR_UNSUPPORTED,
    { "'a'", "'f32'" } },
  { "missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1,
    DSOCR_ERROR_FORMAT, { "'a'", "dtype" } },
  { "numeric dtype", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1,
    DSOCR_ERROR_FORMAT, { "'a'", "dtype" } },
  { "missing shape", "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", -1, 1,
    DSOCR_ERROR_FORMAT, { "'a'", "shape" } },
  { "negative shape", T1 ("F32", "[-2]", "[0,8]"), -1, 8, DSOCR_ERROR_FORMAT,
    { "'a'", "shape[0]" } },
  { "float shape", T1 ("F32", "[2, 2.0]", "[0,16]"), -1, 16, DSOCR_ERROR_FORMAT,
    { "'a'", "shape[1]" } },
  { "string shape", T1 ("F32", "[\"2\"]", "[0,8]"), -1, 8, DSOCR_ERROR_FORMAT,
    { "'a'", "shape[0]" } },
  { "rank 5", T1 ("U8", "[1,1,1,1,2]", "[0,2]"), -1, 2, DSOCR_ERROR_UNSUPPORTED,
    { "'a'", "rank 5" } },
  { "numel overflow", T1 ("U8", "[4611686018427387904,4]", "[0,8]"), -1, 8,
    DSOCR_ERROR_FORMAT, { "'a'", "too large" } },
  { "byte size overflow", T1 ("I64", "[4611686018427387904]", "[0,8]"), -1, 8,
    DSOCR_ERROR_FORMAT, { "'a'", "too large" } },
  { "missing offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", -1, 1, DSOCR_ERROR_FORMAT,
    { "'a'", "data_offsets" } },
  { "three offsets", T1 ("U8", "[1]", "[0,1,2]"), -1, 2, DSOCR_ERROR_FORMAT,
    { "'a'", "data_offsets" } },
  { "negative offset", T1 ("U8", "[1]", "[-1,0]"), -1, 2, DSOCR_ERROR_FORMAT,
    { "'a'", "data_offsets" } },
  { "begin after end", T1 ("U8", "[0]", "[4,2]"), -1, 8, DSOCR_ERROR_FORMAT,
    { "'a'", "begin <= end" } },
  { "offsets out of range", T1 ("F32", "[2]", "[4,12]"), -1, 8, DSOCR_ERROR_FORMAT,
    { "'a'", "[4, 12]", "data section (8 bytes" } },
  { "truncated data section", T1 ("F32", "[16]", "[0,64]"), -1, 54, DSOCR_ERROR_FORMAT,
    { "'a'", "truncated" } },
  { "size mismatch", T1 ("F32", "[3]", "[0,8]"), -1, 8, DSOCR_ERROR_FORMAT,
    { "'a'", "needs 12 bytes", "hold 8" } },
  { "overlapping ranges", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", -1, 8, DSOCR_ERROR_FORMAT,
    { "'a'", "'b'", "overlap" } },
  { "identical ranges", "{\"z\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]},"
    "\"y\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
    "\"x\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[2,6]}}", -1, 8,
    DSOCR_ERROR_FORMAT, { "'x'", "'z'", "overlap" } },
  { "metadata not an object", "{\"__metadata__\":[\"k\"]}", -1, 0, DSOCR_ERROR_FORMAT,
    { "__metadata__" } },
  { "metadata value not a string", "{\"__metadata__\":{\"k\":3}}", -1, 0, DSOCR_ERROR_FORMAT,
    { "__metadata__ 'k'" } },
};

static void
check_error (GError *err, int code, const char *file, const char *const *culprit)
{
  g_assert_error (err, DSOCR_ERROR, code);
  g_test_message ("  -> %s", err->message);
  g_assert_nonnull (strstr (err->message, file));
  for (int i = 0; i < 3 && culprit[i]; i++)
    if (!strstr (err->message, culprit[i]))
      g_error ("message \"%s\" does not contain \"%s\"", err->message, culprit[i]);
}

static void
test_bad_files (void)
{
  for (gsize c = 0; c < G_N_ELEMENTS (bad_cases); c++) {
    const bad_case *bc = &bad_cases[c];
    g_autoptr (GByteArray) b = build (bc->header, bc->header_len, bc->data_len);
    g_autofree char *path = write_tmp (b->data, b->len);
    g_autoptr (GBytes) bytes = g_bytes_new (b->data, b->len);
    GError *err = NULL;

    g_test_message ("case: %s", bc->what);
    g_assert_null (dsocr_safetensors_open (path, &err));
    check_error (err, bc->code, path, bc->culprit);
    g_clear_error (&err);
    g_assert_null (dsocr_safetensors_open_bytes (bytes, "mem.safetensors", &err));
    check_error (err, bc->code, "mem.safetensors", bc->culprit);
    g_clear_error (&err);
    g_unlink (path);
  }
}

static void
test_short_files (void)
{
  const guint8 seven[7] = { 2, 0, 0, 0, 0, 0, 0 };
  const char *const culprit_empty[] = { "0 bytes", NULL };
  const char *const culprit_seven[] = { "7 bytes", NULL };
  g_autofree char *empty = write_tmp (NULL, 0);
  g_autofree char *short7 = write_tmp (seven, sizeof seven);
  GError *err = NULL;

  g_assert_null (dsocr_safetensors_open (empty, &err));
  check_error (err, DSOCR_ERROR_FORMAT, empty, culprit_empty);
  g_clear_error (&err);
  g_assert_null (dsocr_safetensors_open (short7, &err));
  check_error (err, DSOCR_ERROR_FORMAT, short7, culprit_seven);
  g_clear_error (&err);
  g_unlink (empty);
  g_unlink (short7);
}

/* A header length just above the 100 MB limit, in a (sparse) file long enough to hold it:
 * the limit, not the file size, is what refuses it. */
static void
test_header_limit (void)
{
  const char *const culprit[] = { "header length 100000001", "limit", NULL };
  g_autoptr (GByteArray) b = build ("{}", 100000001, 0);
  g_autofree char *path = write_tmp (b->data, b->len);
  GError *err = NULL;

  g_assert_cmpint (truncate (path, 8 + 100000001 + 16), ==, 0);
  g_assert_null (dsocr_safetensors_open (path, &err));
  check_error (err, DSOCR_ERROR_FORMAT, path, culprit);
  g_clear_error (&err);
  g_unlink (path);
}

static void
test_missing_file (void)
{
  GError *err = NULL;
  g_autofree char *dir = g_dir_make_tmp ("dsocr-st-XXXXXX", &err);
  g_autofree char *absent = g_build_filename (dir, "absent.safetensors", NULL);
  const char *const none[] = { NULL };

  g_assert_null (dsocr_safetensors_open (absent, &err));
  check_error (err, DSOCR_ERROR_FILE, absent, none);
  g_clear_error (&err);
  g_assert_null (dsocr_safetensors_open (dir, &err));
  check_error (err, DSOCR_ERROR_FILE, dir, none);
  g_clear_error (&err);
  g_rmdir (dir);
}

/* What the format allows and the reader must accept: gaps, trailing bytes, empty tensors
 * anywhere (also at the very end), padding spaces after the JSON, unknown entry fields,
 * names that are not identifiers, an empty header. */
static void
test_valid_edge_cases (void)
{
  const char *header =
    "{\"gap\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
    "\"first\":{\"dtype\":\"U8\",\"shape\":[1,2],\"data_offsets\":[0,2],\"extra\":true},"
    "\"e1\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[1,1]},"
    "\"e2\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[10,10]},"
    "\"\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[6,7]},"
    "\"__metadata__\":{}}      ";
  g_autoptr (GByteArray) b = build (header, -1, 10);
  g_autoptr (GBytes) bytes = g_bytes_new (b->data, b->len);
  g_autoptr (GByteArray) b2 = build ("{}", -1, 0);
  g_autoptr (GBytes) bytes2 = g_bytes_new (b2->data, b2->len);
  GError *err = NULL;
  dsocr_safetensors *st = dsocr_safetensors_open_bytes (bytes, "edge", &err);
  const dsocr_tensor *t;

  g_assert_no_error (err);
  g_assert_cmpuint (dsocr_safetensors_n_tensors (st), ==, 5);
  g_assert_cmpuint (dsocr_safetensors_tensor_bytes (st), ==, 5);
  t = dsocr_safetensors_get (st, "gap");
  g_assert_cmpint (((const guint8 *) t->data)[0], ==, 0x55);
  t = dsocr_safetensors_get (st, "first");
  g_assert_cmpint (t->n_dims, ==, 2);
  g_assert_cmpint (((const guint8 *) t->data)[1], ==, 0x22);
  t = dsocr_safetensors_get (st, "");
  g_assert_cmpint (t->n_dims, ==, 0);
  g_assert_cmpint (((const guint8 *) t->data)[0], ==, 0x77);
  g_assert_cmpuint (dsocr_safetensors_get (st, "e2")->nbytes, ==, 0);
  /* sorted by offset: first [0,2), e1 [1,1), gap [4,6), "" [6,7), e2 [10,10) */
  g_assert_cmpstr (dsocr_safetensors_get_nth (st, 0)->name, ==, "first");
  g_assert_cmpstr (dsocr_safetensors_get_nth (st, 4)->name, ==, "e2");
  dsocr_safetensors_unref (st);

  st = dsocr_safetensors_open_bytes (bytes2, "empty-header", &err);
  g_assert_no_error (err);
  g_assert_cmpuint (dsocr_safetensors_n_tensors (st), ==, 0);
  dsocr_safetensors_unref (st);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/safetensors/dtypes", test_dtypes);
  g_test_add_func ("/safetensors/open-bytes", test_open_bytes);
  g_test_add_func ("/safetensors/bad-files", test_bad_files);
  g_test_add_func ("/safetensors/short-files", test_short_files);
  g_test_add_func ("/safetensors/header-limit", test_header_limit);
  g_test_add_func ("/safetensors/missing-file", test_missing_file);
  g_test_add_func ("/safetensors/valid-edge-cases", test_valid_edge_cases);
  return g_test_run ();
}
