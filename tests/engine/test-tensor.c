/* test-tensor.c: dtype tables, shape arithmetic and shape errors. */
#include <dsocr/dsocr.h>

static void
test_dtype_names (void)
{
  dsocr_dtype d;
  const char *names[] = { "F32", "F16", "BF16", "F8_E4M3", "I64", "I32", "U8", "BOOL" };
  gsize sizes[] = { 4, 2, 2, 1, 8, 4, 1, 1 };

  for (int i = 0; i < (int) G_N_ELEMENTS (names); i++) {
    g_assert_true (dsocr_dtype_from_name (names[i], &d));
    g_assert_cmpint (d, ==, i);
    g_assert_cmpstr (dsocr_dtype_name (d), ==, names[i]);
    g_assert_cmpuint (dsocr_dtype_size (d), ==, sizes[i]);
  }
  g_assert_false (dsocr_dtype_from_name ("F64", &d));
  g_assert_false (dsocr_dtype_from_name ("bf16", &d));
  g_assert_null (dsocr_dtype_name (DSOCR_DTYPE_N));
}

static void
test_shape (void)
{
  int64_t s[3] = { 2, 3, 4 };
  int64_t big[2] = { G_MAXINT64 / 2, 3 };
  int64_t neg[2] = { 4, -1 };
  char buf[64];

  g_assert_cmpint (dsocr_shape_numel (3, s), ==, 24);
  g_assert_cmpint (dsocr_shape_numel (0, s), ==, 1);
  g_assert_cmpint (dsocr_shape_numel (2, big), ==, -1);
  g_assert_cmpint (dsocr_shape_numel (2, neg), ==, -1);
  g_assert_cmpstr (dsocr_shape_format (3, s, buf, sizeof buf), ==, "[2, 3, 4]");
  g_assert_cmpstr (dsocr_shape_format (3, s, buf, 4), ==, "[2,");
}

static void
test_tensor_new_check (void)
{
  int64_t s[2] = { 3, 5 }, other[2] = { 5, 3 }, huge[2] = { G_MAXINT64 / 4, 8 };
  GError *err = NULL;
  dsocr_tensor *t = dsocr_tensor_new (DSOCR_DTYPE_F32, 2, s, &err);

  g_assert_no_error (err);
  g_assert_cmpuint (t->nbytes, ==, 60);
  g_assert_cmpint (t->stride[0], ==, 5);
  g_assert_cmpint (t->stride[1], ==, 1);
  t->name = "w";
  g_assert_true (dsocr_tensor_check (t, DSOCR_DTYPE_F32, 2, s, &err));
  g_assert_false (dsocr_tensor_check (t, DSOCR_DTYPE_F32, 2, other, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_SHAPE);
  g_assert_cmpstr (err->message, ==, "tensor 'w': shape [3, 5], expected [5, 3]");
  g_clear_error (&err);
  g_assert_false (dsocr_tensor_check (t, DSOCR_DTYPE_BF16, 2, s, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_SHAPE);
  g_clear_error (&err);
  dsocr_tensor_free (t);
  dsocr_tensor_free (NULL);

  g_assert_null (dsocr_tensor_new (DSOCR_DTYPE_F32, 2, huge, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_NOMEM);
  g_clear_error (&err);
}

static void
test_to_f32 (void)
{
  int64_t s[1] = { 2 };
  GError *err = NULL;
  dsocr_tensor *t = dsocr_tensor_new (DSOCR_DTYPE_BF16, 1, s, &err);
  dsocr_tensor *i = dsocr_tensor_new (DSOCR_DTYPE_I64, 1, s, &err);
  float out[2];

  ((guint16 *) t->data)[0] = 0x3f80;   /* 1.0 */
  ((guint16 *) t->data)[1] = 0xbf00;   /* -0.5 */
  g_assert_true (dsocr_tensor_to_f32 (t, out, &err));
  g_assert_cmpfloat (out[0], ==, 1.0f);
  g_assert_cmpfloat (out[1], ==, -0.5f);
  g_assert_false (dsocr_tensor_to_f32 (i, out, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  dsocr_tensor_free (t);
  dsocr_tensor_free (i);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/tensor/dtype-names", test_dtype_names);
  g_test_add_func ("/engine/tensor/shape", test_shape);
  g_test_add_func ("/engine/tensor/new-check", test_tensor_new_check);
  g_test_add_func ("/engine/tensor/to-f32", test_to_f32);
  return g_test_run ();
}
