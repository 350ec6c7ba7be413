/* dsocrcontext.c: the "dsocr.model" GstContext of the model elements (dsocrencode,
 * dsocrdecode, dsclassify through their base class): peers in a pipeline share one loaded
 * model through the context query, an application hands a model over with
 * gst_element_set_context() or in answer to need-context, and a context for another
 * directory is ignored. The "dsocr-model" message of each element says where its model
 * came from (context) and whether it was loaded already (shared). */
#include "dsocrcheck.h"

#include <stdlib.h>

#define CONTEXT_TYPE "dsocr.model"

static gchar *
e2e_dir (void)
{
  return check_fixture ("tiny-ocr-e2e");
}

/* The real path of @dir, the location a context and a dsocr-model message give. */
static gchar *
real_dir (const gchar * dir)
{
  char *r = realpath (dir, NULL);
  gchar *out;

  fail_unless (r != NULL, "%s", dir);
  out = g_strdup (r);
  free (r);
  return out;
}

static void
assert_model_message (GPtrArray * msgs, GstElement * element, const gchar * dir,
    gboolean from_context, gboolean shared)
{
  const GstStructure *s = check_model_message_of (msgs, element);
  gchar *want = real_dir (dir);
  gboolean c = !from_context, sh = !shared;

  fail_unless_equals_string (gst_structure_get_string (s, "location"), want);
  fail_unless (gst_structure_get_boolean (s, "context", &c));
  fail_unless (gst_structure_get_boolean (s, "shared", &sh));
  fail_unless_equals_int (c, from_context);
  fail_unless_equals_int (sh, shared);
  g_free (want);
}

/* need-context or have-context messages for "dsocr.model" in @msgs, from @element or (NULL)
 * from anyone. */
static guint
count_context_messages (GPtrArray * msgs, GstMessageType type,
    GstElement * element)
{
  guint i, n = 0;

  for (i = 0; i < msgs->len; i++) {
    GstMessage *m = g_ptr_array_index (msgs, i);
    const gchar *ctx_type = NULL;

    if (GST_MESSAGE_TYPE (m) != type ||
        (element && GST_MESSAGE_SRC (m) != GST_OBJECT (element)))
      continue;
    if (type == GST_MESSAGE_NEED_CONTEXT) {
      gst_message_parse_context_type (m, &ctx_type);
    } else {
      GstContext *c;

      gst_message_parse_have_context (m, &c);
      ctx_type = gst_context_get_context_type (c);
      gst_context_unref (c);
    }
    if (g_strcmp0 (ctx_type, CONTEXT_TYPE) == 0)
      n++;
  }
  return n;
}

/* @context's model is the one in @dir. */
static void
assert_context_for (GstContext * context, const gchar * dir)
{
  const GstStructure *s = gst_context_get_structure (context);
  const GValue *model = gst_structure_get_value (s, "model");
  gchar *want = real_dir (dir);

  fail_unless_equals_string (gst_context_get_context_type (context),
      CONTEXT_TYPE);
  fail_unless_equals_string (gst_structure_get_string (s, "location"), want);
  fail_unless (model != NULL);
  fail_unless_equals_string (G_VALUE_TYPE_NAME (model), "GstDsocrModel");
  fail_unless (g_value_get_boxed (model) != NULL);
  g_free (want);
}

/* @factory with model-location=@dir and a bus of its own. */
static GstElement *
model_element (const gchar * factory, const gchar * dir, GstBus ** bus)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  fail_unless (e != NULL);
  g_object_set (e, "model-location", dir, NULL);
  *bus = gst_bus_new ();
  gst_element_set_bus (e, *bus);
  return e;
}

/* Gives @e @context (nullable), then takes it to PAUSED: the messages of its start, which
 * must hold no error (transfer full). */
static GPtrArray *
element_start (GstElement * e, GstBus * bus, GstContext * context)
{
  GPtrArray *msgs;

  if (context)
    gst_element_set_context (e, context);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
  msgs = check_bus_messages (bus);
  fail_unless_equals_int (check_count_errors (msgs), 0);
  return msgs;
}

static void
element_teardown (GstElement * e, GstBus * bus)
{
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (e);
}

/* "appsrc caps=@caps ! @up ! @down ! fakesink" taken to PAUSED (the appsrc sends nothing, so
 * the model elements start and wait); @up and @down name their elements "up" and "down". */
typedef struct
{
  GstElement *pipe, *up, *down;
  GstBus *bus;
  GPtrArray *msgs;              /* what the start posted */
} Pair;

static void
pair_start (Pair * p, const gchar * caps, const gchar * up, const gchar * down)
{
  gchar *desc = g_strdup_printf ("appsrc caps=%s ! %s name=up ! %s name=down ! "
      "fakesink", caps, up, down);

  p->pipe = gst_parse_launch (desc, NULL);
  fail_unless (p->pipe != NULL, "%s", desc);
  p->up = gst_bin_get_by_name (GST_BIN (p->pipe), "up");
  p->down = gst_bin_get_by_name (GST_BIN (p->pipe), "down");
  p->bus = gst_element_get_bus (p->pipe);
  fail_if (gst_element_set_state (p->pipe, GST_STATE_PAUSED) ==
      GST_STATE_CHANGE_FAILURE);
  p->msgs = check_bus_messages (p->bus);
  fail_unless_equals_int (check_count_errors (p->msgs), 0);
  g_free (desc);
}

static void
pair_stop (Pair * p)
{
  fail_unless_equals_int (gst_element_set_state (p->pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  g_ptr_array_unref (p->msgs);
  gst_object_unref (p->up);
  gst_object_unref (p->down);
  gst_object_unref (p->bus);
  gst_object_unref (p->pipe);
}

/* The context an element on @dir offers once it loaded the model, taken from its
 * have-context message; the element is gone when this returns. (transfer full) */
static GstContext *
offered_context (const gchar * dir)
{
  GstBus *bus;
  GstElement *e = model_element ("dsocrencode", dir, &bus);
  GstContext *context = NULL, *on_element;
  GPtrArray *msgs;
  guint i;

  msgs = element_start (e, bus, NULL);
  assert_model_message (msgs, e, dir, FALSE, FALSE);
  fail_unless_equals_int (count_context_messages (msgs,
          GST_MESSAGE_HAVE_CONTEXT, e), 1);
  for (i = 0; i < msgs->len; i++) {
    GstMessage *m = g_ptr_array_index (msgs, i);

    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_HAVE_CONTEXT)
      gst_message_parse_have_context (m, &context);
  }
  fail_unless (context != NULL);
  assert_context_for (context, dir);
  /* the element keeps it while it runs, for gst_element_get_context() */
  on_element = gst_element_get_context (e, CONTEXT_TYPE);
  fail_unless (on_element == context);
  gst_context_unref (on_element);
  g_ptr_array_unref (msgs);
  element_teardown (e, bus);
  return context;
}

/* In one pipeline, dsocrdecode (downstream: it starts first) loads the model and
 * dsocrencode gets it through the context query; going to NULL releases it (the contexts
 * the elements make are not persistent), so the next run loads it again. */
GST_START_TEST (test_peers_share_one_model)
{
  gchar *dir = e2e_dir ();
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=1 ! "
      "video/x-raw,format=RGB,width=64,height=48 ! dsocrpreprocess mode=tiny ! "
      "dsocrencode name=enc model-location=\"%s\" ! "
      "dsocrdecode name=dec model-location=\"%s\" max-new-tokens=4 ! fakesink",
      dir, dir);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *enc, *dec;
  GstBus *bus;
  guint round;

  fail_unless (pipe != NULL);
  enc = gst_bin_get_by_name (GST_BIN (pipe), "enc");
  dec = gst_bin_get_by_name (GST_BIN (pipe), "dec");
  bus = gst_element_get_bus (pipe);
  for (round = 0; round < 2; round++) {
    GPtrArray *msgs;
    GstQuery *q;
    GstContext *context = NULL;

    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    msgs = check_wait_eos (bus, 120 * GST_SECOND);
    fail_unless_equals_string (check_last_type (msgs), "eos");

    assert_model_message (msgs, dec, dir, FALSE, FALSE);
    assert_model_message (msgs, enc, dir, TRUE, TRUE);
    /* only the element that loaded asked the application and offered the model */
    fail_unless_equals_int (count_context_messages (msgs,
            GST_MESSAGE_NEED_CONTEXT, dec), 1);
    fail_unless_equals_int (count_context_messages (msgs,
            GST_MESSAGE_NEED_CONTEXT, enc), 0);
    fail_unless_equals_int (count_context_messages (msgs,
            GST_MESSAGE_HAVE_CONTEXT, NULL), 1);
    fail_unless_equals_int (count_context_messages (msgs,
            GST_MESSAGE_HAVE_CONTEXT, dec), 1);

    /* both answer context queries while they run */
    q = gst_query_new_context (CONTEXT_TYPE);
    fail_unless (gst_element_query (enc, q));
    gst_query_parse_context (q, &context);
    assert_context_for (context, dir);
    gst_query_unref (q);
    q = gst_query_new_context ("some.other.type");
    fail_if (gst_element_query (dec, q));
    gst_query_unref (q);

    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    g_ptr_array_unref (msgs);
  }
  /* stopped: nothing to answer with */
  {
    GstQuery *q = gst_query_new_context (CONTEXT_TYPE);

    fail_if (gst_element_query (enc, q));
    gst_query_unref (q);
  }
  gst_object_unref (enc);
  gst_object_unref (dec);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (dir);
}

GST_END_TEST;

static GstBusSyncReply
answer_need_context (GstBus * bus, GstMessage * msg, gpointer context)
{
  const gchar *type;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_NEED_CONTEXT &&
      gst_message_parse_context_type (msg, &type) &&
      g_strcmp0 (type, CONTEXT_TYPE) == 0)
    gst_element_set_context (GST_ELEMENT (GST_MESSAGE_SRC (msg)), context);
  return GST_BUS_PASS;
}

/* A context the application holds keeps the model loaded after the element that loaded it
 * stopped; elements given that context, set on them or in answer to need-context, use its
 * model (even with more parts to load: dsocrdecode after dsocrencode) instead of loading
 * the directory. */
GST_START_TEST (test_application_context)
{
  gchar *dir = e2e_dir ();
  GstContext *context = offered_context (dir);
  GstElement *e;
  GstBus *bus;
  GPtrArray *msgs;

  /* set on the element before it starts */
  e = model_element ("dsocrdecode", dir, &bus);
  msgs = element_start (e, bus, context);
  assert_model_message (msgs, e, dir, TRUE, TRUE);
  /* nothing asked, nothing new to offer */
  fail_unless_equals_int (count_context_messages (msgs,
          GST_MESSAGE_NEED_CONTEXT, NULL), 0);
  fail_unless_equals_int (count_context_messages (msgs,
          GST_MESSAGE_HAVE_CONTEXT, NULL), 0);
  g_ptr_array_unref (msgs);
  element_teardown (e, bus);

  /* given in answer to need-context */
  e = model_element ("dsocrencode", dir, &bus);
  gst_bus_set_sync_handler (bus, answer_need_context, gst_context_ref (context),
      (GDestroyNotify) gst_context_unref);
  msgs = element_start (e, bus, NULL);
  assert_model_message (msgs, e, dir, TRUE, TRUE);
  fail_unless_equals_int (count_context_messages (msgs,
          GST_MESSAGE_NEED_CONTEXT, e), 1);
  fail_unless_equals_int (count_context_messages (msgs,
          GST_MESSAGE_HAVE_CONTEXT, NULL), 0);
  g_ptr_array_unref (msgs);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  element_teardown (e, bus);

  /* without the application's reference nothing holds the model: loaded again */
  gst_context_unref (context);
  e = model_element ("dsocrencode", dir, &bus);
  msgs = element_start (e, bus, NULL);
  assert_model_message (msgs, e, dir, FALSE, FALSE);
  g_ptr_array_unref (msgs);
  element_teardown (e, bus);
  g_free (dir);
}

GST_END_TEST;

static gint n_ignored;

static void
count_ignored (GstDebugCategory * category, GstDebugLevel level,
    const gchar * file, const gchar * function, gint line, GObject * object,
    GstDebugMessage * message, gpointer user_data)
{
  const gchar *text = gst_debug_message_get (message);

  if (level == GST_LEVEL_WARNING && object &&
      GST_IS_ELEMENT (object) && text && strstr (text, "ignoring") &&
      strstr (text, "model-location names"))
    g_atomic_int_inc (&n_ignored);
}

/* A context for another directory is ignored (with a warning when it was set on the
 * element): the element loads its own model-location. In a pipeline, a peer's model for
 * another directory is passed over too. */
GST_START_TEST (test_other_directory)
{
  gchar *dir = e2e_dir ();
  gchar *other = check_fixture ("tiny-ocr");
  GstContext *context = offered_context (dir);
  GstElement *e;
  GstBus *bus;
  GPtrArray *msgs;
  Pair pair;
  gchar *up, *down;

  gst_debug_set_threshold_for_name ("GST_CONTEXT", GST_LEVEL_WARNING);
  gst_debug_add_log_function (count_ignored, NULL, NULL);
  g_atomic_int_set (&n_ignored, 0);
  e = model_element ("dsocrencode", other, &bus);
  msgs = element_start (e, bus, context);
  assert_model_message (msgs, e, other, FALSE, FALSE);
  fail_unless_equals_int (g_atomic_int_get (&n_ignored), 1);
  g_ptr_array_unref (msgs);
  element_teardown (e, bus);
  gst_debug_remove_log_function (count_ignored);
  gst_context_unref (context);

  /* dsocrdecode on one model, dsocrencode on another: each runs its own */
  up = g_strdup_printf ("dsocrencode model-location=\"%s\"", other);
  down = g_strdup_printf ("dsocrdecode model-location=\"%s\"", dir);
  pair_start (&pair, "video/x-raw,format=RGB,width=64,height=48", up, down);
  assert_model_message (pair.msgs, pair.down, dir, FALSE, FALSE);
  assert_model_message (pair.msgs, pair.up, other, FALSE, FALSE);
  fail_unless_equals_int (count_context_messages (pair.msgs,
          GST_MESSAGE_HAVE_CONTEXT, NULL), 2);
  pair_stop (&pair);
  g_free (up);
  g_free (down);
  g_free (other);
  g_free (dir);
}

GST_END_TEST;

/* dsclassify shares through the same context type: of two classifiers on one directory,
 * the upstream one gets the model from the downstream one, which starts first. */
GST_START_TEST (test_classifier_peers)
{
  gchar *dir = check_model_dir ("tiny-v2-cls");
  gchar *desc;
  Pair pair;

  check_write_tokenizer (dir, NULL, NULL, NULL, 0, 320);
  desc = g_strdup_printf ("dsclassify model-location=\"%s\"", dir);
  pair_start (&pair, "text/x-raw,format=utf8", desc, desc);
  assert_model_message (pair.msgs, pair.down, dir, FALSE, FALSE);
  assert_model_message (pair.msgs, pair.up, dir, TRUE, TRUE);
  pair_stop (&pair);
  g_free (desc);
  check_remove_dir (dir);
  g_free (dir);
}

GST_END_TEST;

static Suite *
dsocrcontext_suite (void)
{
  Suite *s = suite_create ("dsocrcontext");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_peers_share_one_model);
  tcase_add_test (tc, test_application_context);
  tcase_add_test (tc, test_other_directory);
  tcase_add_test (tc, test_classifier_peers);
  return s;
}

GST_CHECK_MAIN (dsocrcontext);
