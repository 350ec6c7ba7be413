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
#include <string.h>

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

#endif /* DSOCR_CHECK_H */
