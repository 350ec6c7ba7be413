/* st-golden.h: the *.golden.json files of tests/fixtures/safetensors/ (written by
 * tests/reference/make_safetensors_fixtures.py from what the safetensors library stored), and
 * the comparison of a tensor with its golden entry. Shared by test-safetensors.c and
 * test-checkpoint.c. */
#ifndef ST_GOLDEN_H
#define ST_GOLDEN_H

#include <string.h>

#include <dsocr/dsocr.h>
#include <json-glib/json-glib.h>

#include "dsocr-test.h"

/* The parsed golden file tests/fixtures/safetensors/@name (transfer full). */
static inline JsonNode *
st_golden_load (const char *name)
{
  g_autofree char *rel = g_build_filename ("safetensors", name, NULL);
  g_autofree char *path = dsocr_test_fixture (rel);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *err = NULL;

  json_parser_load_from_file (parser, path, &err);
  g_assert_no_error (err);
  return json_parser_steal_root (parser);
}

static inline JsonObject *
st_golden_tensors (JsonNode *golden)
{
  return json_object_get_object_member (json_node_get_object (golden), "tensors");
}

/* Asserts that @t has the dtype, shape and values of the golden entry @want; floats must
 * match exactly (the golden holds the stored values widened to f32). */
static inline void
st_golden_check (const dsocr_tensor *t, JsonObject *want, const char *what)
{
  JsonArray *shape = json_object_get_array_member (want, "shape");
  JsonArray *values = json_object_get_array_member (want, "values");
  guint n = json_array_get_length (values);
  const guint8 *p = t->data;
  dsocr_dtype dtype;

  g_test_message ("checking %s", what);
  g_assert_true (dsocr_dtype_from_name (json_object_get_string_member (want, "dtype"), &dtype));
  g_assert_cmpint (t->dtype, ==, dtype);
  g_assert_cmpint (t->n_dims, ==, (int) json_array_get_length (shape));
  for (int i = 0; i < t->n_dims; i++)
    g_assert_cmpint (t->shape[i], ==, json_array_get_int_element (shape, i));
  g_assert_cmpint (dsocr_shape_numel (t->n_dims, t->shape), ==, n);
  g_assert_cmpuint (t->nbytes, ==, n * dsocr_dtype_size (t->dtype));

  switch (t->dtype) {
  case DSOCR_DTYPE_F32:
  case DSOCR_DTYPE_F16:
  case DSOCR_DTYPE_BF16:
  case DSOCR_DTYPE_F8_E4M3: {
    g_autofree float *got = g_new (float, n + 1);
    g_autofree float *ref = g_new (float, n + 1);
    GError *err = NULL;

    g_assert_true (dsocr_tensor_to_f32 (t, got, &err));
    g_assert_no_error (err);
    for (guint i = 0; i < n; i++)
      ref[i] = (float) json_array_get_double_element (values, i);
    dsocr_test_assert_close (got, ref, n, 0.0, what);
    break;
  }
  default:
    for (guint i = 0; i < n; i++) {
      gint64 v = 0;
      if (t->dtype == DSOCR_DTYPE_I64) {
        memcpy (&v, p + 8 * i, 8);
      } else if (t->dtype == DSOCR_DTYPE_I32) {
        gint32 v32;
        memcpy (&v32, p + 4 * i, 4);
        v = v32;
      } else {
        v = p[i];
      }
      g_assert_cmpint (v, ==, json_array_get_int_element (values, i));
    }
  }
}

#endif /* ST_GOLDEN_H */
