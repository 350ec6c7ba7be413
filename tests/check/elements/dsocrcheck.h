/* dsocrcheck.h: helpers shared by the element tests of the model-facing dsocr elements.
 *
 * The tests load the plugin from the build tree; the C API of its metas is internal to the
 * plugin, so the typed metas are found here by their registered API type names and read
 * through the struct layouts of gst/gstdsocrmeta.h. */
#ifndef DSOCR_CHECK_H
#define DSOCR_CHECK_H

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <unistd.h>

#include <dsocr/dsocr-backend.h>

#include "../../../gst/gstdsocrmeta.h"

/* ---- metas ---- */

/* The plugin's GstDsocrResultFlags type (registered by its elements). */
#define GST_TYPE_DSOCR_RESULT_FLAGS_CHECK (g_type_from_name ("GstDsocrResultFlags"))

static inline GstDsocrTilesMeta *
check_get_tiles_meta (GstBuffer * buf)
{
  GType api = g_type_from_name ("GstDsocrTilesMetaAPI");

  return api ? (GstDsocrTilesMeta *) gst_buffer_get_meta (buf, api) : NULL;
}

static inline GstDsocrEmbeddingsMeta *
check_get_embeddings_meta (GstBuffer * buf)
{
  GType api = g_type_from_name ("GstDsocrEmbeddingsMetaAPI");

  return api ? (GstDsocrEmbeddingsMeta *) gst_buffer_get_meta (buf, api) : NULL;
}

static inline const GstStructure *
check_get_custom (GstBuffer * buf, const gchar * name)
{
  GstCustomMeta *m = gst_buffer_get_custom_meta (buf, name);

  return m ? gst_custom_meta_get_structure (m) : NULL;
}

/* Counts @buf's region-of-interest metas. */
static inline guint
check_count_rois (GstBuffer * buf)
{
  gpointer state = NULL;
  guint n = 0;

  while (gst_buffer_iterate_meta_filtered (buf, &state,
          GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    n++;
  return n;
}

/* ---- the bus ---- */

/* Every message on @bus, in order. (transfer full) */
static inline GPtrArray *
check_bus_messages (GstBus * bus)
{
  GPtrArray *msgs = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_message_unref);
  GstMessage *m;

  while ((m = gst_bus_pop (bus)))
    g_ptr_array_add (msgs, m);
  return msgs;
}

/* The structures of the element messages named @name in @msgs. (transfer container) */
static inline GPtrArray *
check_element_messages (GPtrArray * msgs, const gchar * name)
{
  GPtrArray *out = g_ptr_array_new ();
  guint i;

  for (i = 0; i < msgs->len; i++) {
    GstMessage *m = g_ptr_array_index (msgs, i);

    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT &&
        gst_message_has_name (m, name))
      g_ptr_array_add (out, (gpointer) gst_message_get_structure (m));
  }
  return out;
}

static inline guint
check_count_errors (GPtrArray * msgs)
{
  guint i, n = 0;

  for (i = 0; i < msgs->len; i++)
    if (GST_MESSAGE_TYPE (g_ptr_array_index (msgs, i)) == GST_MESSAGE_ERROR)
      n++;
  return n;
}

/* Asserts that @bus holds at least one error and that the first is in @domain with @code;
 * returns its text (transfer full). */
static inline gchar *
check_expect_error (GstBus * bus, GQuark domain, gint code)
{
  GPtrArray *msgs = check_bus_messages (bus);
  GError *err = NULL;
  gchar *dbg = NULL, *text;
  guint i;

  for (i = 0; i < msgs->len && !err; i++) {
    GstMessage *m = g_ptr_array_index (msgs, i);

    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
      gst_message_parse_error (m, &err, &dbg);
  }
  fail_unless (err != NULL, "no error was posted");
  GST_INFO ("error: %s (%s)", err->message, dbg);
  fail_unless (g_error_matches (err, domain, code),
      "expected %s %d, got %s %d: %s", g_quark_to_string (domain), code,
      g_quark_to_string (err->domain), err->code, err->message);
  text = g_strdup (err->message);
  g_error_free (err);
  g_free (dbg);
  g_ptr_array_unref (msgs);
  return text;
}

/* Waits for EOS or an error on @bus, keeping every message popped meanwhile (transfer
 * full); the last one is the EOS or error, or the array is empty on timeout. */
static inline GPtrArray *
check_wait_eos (GstBus * bus, GstClockTime timeout)
{
  GPtrArray *msgs = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_message_unref);
  GstMessage *m;

  while ((m = gst_bus_timed_pop (bus, timeout))) {
    GstMessageType t = GST_MESSAGE_TYPE (m);

    g_ptr_array_add (msgs, m);
    if (t == GST_MESSAGE_EOS || t == GST_MESSAGE_ERROR)
      return msgs;
  }
  fail ("no EOS within %" GST_TIME_FORMAT, GST_TIME_ARGS (timeout));
  return msgs;
}

/* The type of the last message of @msgs, as a name. */
static inline const gchar *
check_last_type (GPtrArray * msgs)
{
  if (!msgs->len)
    return "none";
  return GST_MESSAGE_TYPE_NAME (g_ptr_array_index (msgs, msgs->len - 1));
}

/* A harness on @element_desc with a private bus. */
static inline GstHarness *
check_harness (const gchar * element_desc, GstBus ** bus)
{
  GstHarness *h = gst_harness_new_parse (element_desc);

  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  return h;
}

static inline void
check_teardown (GstHarness * h, GstBus * bus)
{
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

/* ---- frames ---- */

/* A @format frame of @width x @height whose pixels come from the packed RGB8 @rgb
 * ([height, width, 3]); YUV and grey formats go through a GstVideoConverter. (transfer
 * full) */
static inline GstBuffer *
check_frame_from_rgb (GstVideoFormat format, gint width, gint height,
    const guint8 * rgb)
{
  GstVideoInfo rgb_info, info;
  GstBuffer *src, *out;
  GstVideoFrame sf, df;
  gint y;

  gst_video_info_set_format (&rgb_info, GST_VIDEO_FORMAT_RGB, width, height);
  src = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&rgb_info), NULL);
  fail_unless (gst_video_frame_map (&sf, &rgb_info, src, GST_MAP_WRITE));
  for (y = 0; y < height; y++)
    memcpy ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&sf, 0) +
        (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&sf, 0),
        rgb + (gsize) y * width * 3, (gsize) width * 3);
  gst_video_frame_unmap (&sf);
  if (format == GST_VIDEO_FORMAT_RGB)
    return src;

  gst_video_info_set_format (&info, format, width, height);
  out = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&sf, &rgb_info, src, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&df, &info, out, GST_MAP_WRITE));
  {
    GstVideoConverter *conv = gst_video_converter_new (&rgb_info, &info, NULL);

    gst_video_converter_frame (conv, &sf, &df);
    gst_video_converter_free (conv);
  }
  gst_video_frame_unmap (&df);
  gst_video_frame_unmap (&sf);
  gst_buffer_unref (src);
  return out;
}

/* A solid @format frame of the given colour. (transfer full) */
static inline GstBuffer *
check_solid_frame (GstVideoFormat format, gint width, gint height, guint8 r,
    guint8 g, guint8 b)
{
  guint8 *rgb = g_malloc ((gsize) width * height * 3);
  GstBuffer *buf;
  gsize i;

  for (i = 0; i < (gsize) width * height; i++) {
    rgb[3 * i] = r;
    rgb[3 * i + 1] = g;
    rgb[3 * i + 2] = b;
  }
  buf = check_frame_from_rgb (format, width, height, rgb);
  g_free (rgb);
  return buf;
}

static inline gchar *
check_video_caps (GstVideoFormat format, gint width, gint height)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=0/1", gst_video_format_to_string (format), width, height);
}

/* ---- model directories ---- */

/* Absolute path of tests/fixtures/@rel (transfer full). */
static inline gchar *
check_fixture (const gchar * rel)
{
  const gchar *dir = g_getenv ("DSOCR_FIXTURES_DIR");

  return g_build_filename (dir ? dir : "tests/fixtures", rel, NULL);
}

/* An added token of the test tokenizer. */
typedef struct
{
  const gchar *content;
  gint id;
} CheckAddedToken;

/* The character GPT-2's byte-level alphabet gives byte @b, as UTF-8 into @out[8]. */
static inline void
check_byte_char (guint b, gchar * out)
{
  gunichar c;

  if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) {
    c = b;
  } else {
    /* the bytes outside those ranges take 256, 257, ... in byte order */
    guint n = 0, i;

    for (i = 0; i < b; i++)
      if (!((i >= '!' && i <= '~') || (i >= 0xa1 && i <= 0xac) || (i >= 0xae
                  && i <= 0xff)))
        n++;
    c = 256 + n;
  }
  out[g_unichar_to_utf8 (c, out)] = '\0';
}

/* Writes @dir/tokenizer.json: a byte-level BPE without merges (every byte is one token), so
 * text maps to ids one byte at a time. The ASCII characters of @chars get the ids in
 * @char_ids; the other bytes take the lowest ids left in [0, @vocab_size) after @added and
 * @char_ids. BOS 0, EOS 1 and PAD 2 must be among @added when wanted. */
static inline void
check_write_tokenizer (const gchar * dir, const gchar * chars,
    const gint * char_ids, const CheckAddedToken * added, guint n_added,
    gint vocab_size)
{
  gboolean *used = g_new0 (gboolean, vocab_size);
  gint byte_id[256];
  JsonBuilder *b = json_builder_new ();
  JsonGenerator *gen;
  JsonNode *root;
  gchar *path, *text;
  guint i, next = 0;

  for (i = 0; i < 256; i++)
    byte_id[i] = -1;
  for (i = 0; i < n_added; i++)
    used[added[i].id] = TRUE;
  for (i = 0; chars && chars[i]; i++) {
    byte_id[(guint8) chars[i]] = char_ids[i];
    used[char_ids[i]] = TRUE;
  }
  for (i = 0; i < 256; i++) {
    if (byte_id[i] >= 0)
      continue;
    while (used[next])
      next++;
    fail_unless (next < (guint) vocab_size, "vocabulary too small");
    byte_id[i] = next;
    used[next] = TRUE;
  }

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, "1.0");
  json_builder_set_member_name (b, "added_tokens");
  json_builder_begin_array (b);
  for (i = 0; i < n_added; i++) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_int_value (b, added[i].id);
    json_builder_set_member_name (b, "content");
    json_builder_add_string_value (b, added[i].content);
    json_builder_set_member_name (b, "single_word");
    json_builder_add_boolean_value (b, FALSE);
    json_builder_set_member_name (b, "lstrip");
    json_builder_add_boolean_value (b, FALSE);
    json_builder_set_member_name (b, "rstrip");
    json_builder_add_boolean_value (b, FALSE);
    json_builder_set_member_name (b, "normalized");
    json_builder_add_boolean_value (b, FALSE);
    json_builder_set_member_name (b, "special");
    json_builder_add_boolean_value (b, TRUE);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "normalizer");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "pre_tokenizer");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "ByteLevel");
  json_builder_set_member_name (b, "add_prefix_space");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "trim_offsets");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_set_member_name (b, "use_regex");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "post_processor");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "decoder");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "ByteLevel");
  json_builder_set_member_name (b, "add_prefix_space");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "trim_offsets");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_set_member_name (b, "use_regex");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "BPE");
  json_builder_set_member_name (b, "dropout");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "unk_token");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "continuing_subword_prefix");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "end_of_word_suffix");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "fuse_unk");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "byte_fallback");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "vocab");
  json_builder_begin_object (b);
  for (i = 0; i < n_added; i++) {
    json_builder_set_member_name (b, added[i].content);
    json_builder_add_int_value (b, added[i].id);
  }
  for (i = 0; i < 256; i++) {
    gchar ch[8];

    check_byte_char (i, ch);
    json_builder_set_member_name (b, ch);
    json_builder_add_int_value (b, byte_id[i]);
  }
  json_builder_end_object (b);
  json_builder_set_member_name (b, "merges");
  json_builder_begin_array (b);
  json_builder_end_array (b);
  json_builder_end_object (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  gen = json_generator_new ();
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  path = g_build_filename (dir, "tokenizer.json", NULL);
  fail_unless (g_file_set_contents (path, text, -1, NULL));
  g_free (path);
  g_free (text);
  g_object_unref (gen);
  json_node_unref (root);
  g_object_unref (b);
  g_free (used);
}

/* A fresh temporary directory holding symbolic links to config.json and model.safetensors
 * of tests/fixtures/@fixture. (transfer full) */
static inline gchar *
check_model_dir (const gchar * fixture)
{
  static const gchar *files[] = { "config.json", "model.safetensors" };
  gchar *dir = g_dir_make_tmp ("dsocr-model-XXXXXX", NULL);
  gchar *src_dir = check_fixture (fixture);
  guint i;

  fail_unless (dir != NULL);
  for (i = 0; i < G_N_ELEMENTS (files); i++) {
    gchar *src = g_build_filename (src_dir, files[i], NULL);
    gchar *dst = g_build_filename (dir, files[i], NULL);

    fail_unless (symlink (src, dst) == 0, "symlink %s", dst);
    g_free (src);
    g_free (dst);
  }
  g_free (src_dir);
  return dir;
}

/* Removes @dir and the files in it (one level). */
static inline void
check_remove_dir (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  if (d) {
    while ((name = g_dir_read_name (d))) {
      gchar *p = g_build_filename (dir, name, NULL);

      g_unlink (p);
      g_free (p);
    }
    g_dir_close (d);
  }
  g_rmdir (dir);
}

/* The "dsocr-model" messages on @msgs: how many said shared=TRUE / FALSE. */
static inline void
check_model_messages (GPtrArray * msgs, guint * loaded, guint * shared)
{
  GPtrArray *m = check_element_messages (msgs, "dsocr-model");
  guint i;

  *loaded = *shared = 0;
  for (i = 0; i < m->len; i++) {
    gboolean s = FALSE;

    fail_unless (gst_structure_get_boolean (g_ptr_array_index (m, i), "shared",
            &s));
    if (s)
      (*shared)++;
    else
      (*loaded)++;
  }
  g_ptr_array_unref (m);
}

/* ---- the precision property of the model elements ---- */

/* The nicks of GstDsocrPrecision, in the engine's order (dsocr_precision 1 to 4). */
static const gchar *const check_precisions[] = { "f32", "bf16", "q8", "q4" };

/* The engine's precision named @nick, checked to be a real one (not DEFAULT). */
static inline dsocr_precision
check_precision_from_nick (const gchar * nick)
{
  dsocr_precision p = DSOCR_PRECISION_DEFAULT;

  fail_unless (dsocr_precision_from_string (nick, &p, NULL), "%s", nick);
  fail_if (p == DSOCR_PRECISION_DEFAULT, "%s", nick);
  return p;
}

/* The nick @element's precision property holds now (transfer none). */
static inline const gchar *
check_get_precision_nick (GstElement * element)
{
  GParamSpec *pspec =
      g_object_class_find_property (G_OBJECT_GET_CLASS (element), "precision");
  GEnumClass *klass;
  GEnumValue *v;
  gint value = -1;

  fail_unless (pspec != NULL);
  g_object_get (element, "precision", &value, NULL);
  klass = G_PARAM_SPEC_ENUM (pspec)->enum_class;
  v = g_enum_get_value (klass, value);
  fail_unless (v != NULL, "precision %d is not a GstDsocrPrecision", value);
  return v->value_nick;
}

/* What every model element's precision property must be: an enum GstDsocrPrecision with
 * exactly the nicks f32, bf16, q8 and q4, whose values are the engine's dsocr_precision;
 * the default is the precision the engine's DEFAULT resolves to; readable, writable,
 * changeable in NULL or READY only, documented; every value set (as a value and by nick)
 * reads back; a launch line sets it by nick and refuses a nick that is not one. */
static inline void
check_precision_property (const gchar * factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  GParamSpec *pspec;
  GParamSpecEnum *espec;
  GError *err = NULL;
  gint value = -1;
  guint i;

  fail_unless (e != NULL, "%s", factory);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (e), "precision");
  fail_unless (pspec != NULL, "%s has no precision property", factory);
  fail_unless (G_IS_PARAM_SPEC_ENUM (pspec));
  fail_unless_equals_string (g_type_name (pspec->value_type), "GstDsocrPrecision");
  fail_unless ((pspec->flags & G_PARAM_READWRITE) == G_PARAM_READWRITE);
  fail_unless (pspec->flags & GST_PARAM_MUTABLE_READY);
  fail_if (pspec->flags & (GST_PARAM_MUTABLE_PAUSED | GST_PARAM_MUTABLE_PLAYING));
  fail_unless (g_param_spec_get_blurb (pspec) != NULL);
  /* the blurb says what it does to the decoder and that the encoder ignores it */
  fail_unless (strstr (g_param_spec_get_blurb (pspec), "q8") != NULL);
  fail_unless (strstr (g_param_spec_get_blurb (pspec), "dsocrencode") != NULL);

  /* the values: the engine's, DEFAULT excepted */
  espec = G_PARAM_SPEC_ENUM (pspec);
  fail_unless_equals_int (espec->enum_class->n_values,
      G_N_ELEMENTS (check_precisions));
  for (i = 0; i < G_N_ELEMENTS (check_precisions); i++) {
    GEnumValue *v = g_enum_get_value_by_nick (espec->enum_class,
        check_precisions[i]);

    fail_unless (v != NULL, "no value %s", check_precisions[i]);
    fail_unless_equals_int (v->value, check_precision_from_nick (check_precisions[i]));
    fail_unless (v->value_name != NULL && *v->value_name);
  }
  fail_if (g_enum_get_value_by_nick (espec->enum_class, "default") != NULL);

  /* the default: what the engine's DEFAULT resolves to (docs/numerics.md) */
  fail_unless_equals_int (espec->default_value,
      dsocr_precision_resolve (DSOCR_PRECISION_DEFAULT));
  g_object_get (e, "precision", &value, NULL);
  fail_unless_equals_int (value, dsocr_precision_resolve (DSOCR_PRECISION_DEFAULT));
  fail_unless_equals_string (check_get_precision_nick (e),
      dsocr_precision_to_string (DSOCR_PRECISION_DEFAULT));

  /* every value, set as a value and as a nick, reads back */
  for (i = 0; i < G_N_ELEMENTS (check_precisions); i++) {
    dsocr_precision want = check_precision_from_nick (check_precisions[i]);

    g_object_set (e, "precision", (gint) want, NULL);
    g_object_get (e, "precision", &value, NULL);
    fail_unless_equals_int (value, want);
    g_object_set (e, "precision", (gint) DSOCR_PRECISION_DEFAULT_IS, NULL);
    gst_util_set_object_arg (G_OBJECT (e), "precision", check_precisions[i]);
    fail_unless_equals_string (check_get_precision_nick (e), check_precisions[i]);
  }
  gst_object_unref (e);

  /* a launch line: "<factory> precision=q8" */
  for (i = 0; i < G_N_ELEMENTS (check_precisions); i++) {
    gchar *desc = g_strdup_printf ("%s precision=%s", factory, check_precisions[i]);

    e = gst_parse_launch (desc, &err);
    fail_unless (e != NULL && err == NULL, "%s: %s", desc, err ? err->message : "");
    fail_unless_equals_string (check_get_precision_nick (e), check_precisions[i]);
    gst_object_unref (e);
    g_free (desc);
  }
  {
    gchar *desc = g_strdup_printf ("%s precision=q16", factory);

    e = gst_parse_launch (desc, &err);
    fail_unless (err != NULL, "precision=q16 was accepted");
    g_clear_error (&err);
    if (e)
      gst_object_unref (e);
    g_free (desc);
  }
}

/* The "dsocr-model" message @element posted in @msgs (transfer none), which must be one. */
static inline const GstStructure *
check_model_message_of (GPtrArray * msgs, GstElement * element)
{
  const GstStructure *found = NULL;
  guint i;

  for (i = 0; i < msgs->len; i++) {
    GstMessage *m = g_ptr_array_index (msgs, i);

    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT &&
        GST_MESSAGE_SRC (m) == GST_OBJECT (element) &&
        gst_message_has_name (m, "dsocr-model")) {
      fail_unless (found == NULL, "two dsocr-model messages from %s",
          GST_ELEMENT_NAME (element));
      found = gst_message_get_structure (m);
    }
  }
  fail_unless (found != NULL, "no dsocr-model message from %s",
      GST_ELEMENT_NAME (element));
  return found;
}

/* Starts @element (READY to PAUSED) on a bus of its own and returns the "precision" and
 * "weight-bytes" of its dsocr-model message; leaves it in PAUSED. */
static inline void
check_start_weights (GstElement * element, gchar ** precision, guint64 * bytes)
{
  GstBus *bus = gst_bus_new ();
  GPtrArray *msgs;
  const GstStructure *s;

  gst_element_set_bus (element, bus);
  fail_unless_equals_int (gst_element_set_state (element, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
  msgs = check_bus_messages (bus);
  fail_unless_equals_int (check_count_errors (msgs), 0);
  s = check_model_message_of (msgs, element);
  *precision = g_strdup (gst_structure_get_string (s, "precision"));
  fail_unless (*precision != NULL);
  *bytes = 0;
  fail_unless (gst_structure_get_uint64 (s, "weight-bytes", bytes));
  fail_unless (*bytes > 0);
  g_ptr_array_unref (msgs);
  gst_element_set_bus (element, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

#endif /* DSOCR_CHECK_H */
