/* dsocroverlay.c: GstHarness tests of the region overlay: region-of-interest metas are made
 * here on white frames and the drawn pixels are checked in every packed RGB layout. */
#include "dsocrcheck.h"

#include <cairo.h>

#define W 200
#define H 150

typedef struct
{
  guint8 r, g, b;
} Px;

/* The colour at (@x, @y) of the @format frame @buf. */
static Px
pixel_at (GstBuffer * buf, GstVideoFormat format, gint x, gint y)
{
  GstVideoInfo info;
  GstVideoFrame f;
  const GstVideoFormatInfo *fi;
  const guint8 *p;
  Px px;

  gst_video_info_set_format (&info, format, W, H);
  fi = info.finfo;
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READ));
  p = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0) +
      (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0) +
      (gsize) x * GST_VIDEO_FORMAT_INFO_PSTRIDE (fi, 0);
  px.r = p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, 0)];
  px.g = p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, 1)];
  px.b = p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, 2)];
  gst_video_frame_unmap (&f);
  return px;
}

static gboolean
is_white (Px p)
{
  return p.r == 255 && p.g == 255 && p.b == 255;
}

static gboolean
same (Px a, Px b)
{
  return a.r == b.r && a.g == b.g && a.b == b.b;
}

/* Draws one "title" box at (20, 40) 100x60 on a white @format frame; returns the frame. */
static GstBuffer *
draw_one (GstVideoFormat format, const gchar * props, gint bx, gint by)
{
  gchar *desc = g_strdup_printf ("dsocroverlay %s", props);
  gchar *caps = check_video_caps (format, W, H);
  GstHarness *h;
  GstBus *bus;
  GstBuffer *in, *out;

  h = check_harness (desc, &bus);
  gst_harness_set_src_caps_str (h, caps);
  in = check_solid_frame (format, W, H, 255, 255, 255);
  gst_buffer_add_video_region_of_interest_meta (in, "title", bx, by, 100, 60);
  out = gst_harness_push_and_pull (h, in);
  fail_unless (out != NULL);
  fail_unless_equals_int (check_count_rois (out), 1);
  check_teardown (h, bus);
  g_free (caps);
  g_free (desc);
  return out;
}

GST_START_TEST (test_outline_every_layout)
{
  static const GstVideoFormat formats[] = {
    GST_VIDEO_FORMAT_RGB, GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_RGBA,
    GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx,
    GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR, GST_VIDEO_FORMAT_ARGB,
    GST_VIDEO_FORMAT_ABGR,
  };
  Px colour = { 0, 0, 0 };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstVideoFormat f = formats[i];
    GstBuffer *out = draw_one (f, "draw-labels=false line-width=3", 20, 40);
    Px edge = pixel_at (out, f, 20, 40);

    /* the same colour whatever the byte order */
    if (i == 0)
      colour = edge;
    fail_if (is_white (edge));
    fail_unless (same (edge, colour), "%s: colour differs",
        gst_video_format_to_string (f));
    /* 3 pixels thick, inside the box: [20, 120) x [40, 100) */
    fail_unless (same (pixel_at (out, f, 22, 70), colour));
    fail_unless (is_white (pixel_at (out, f, 23, 70)));
    fail_unless (same (pixel_at (out, f, 119, 99), colour));
    fail_unless (same (pixel_at (out, f, 117, 70), colour));
    fail_unless (is_white (pixel_at (out, f, 116, 70)));
    fail_unless (same (pixel_at (out, f, 70, 97), colour));
    fail_unless (is_white (pixel_at (out, f, 70, 96)));
    /* outside and inside untouched, no label drawn */
    fail_unless (is_white (pixel_at (out, f, 120, 70)));
    fail_unless (is_white (pixel_at (out, f, 19, 70)));
    fail_unless (is_white (pixel_at (out, f, 70, 100)));
    fail_unless (is_white (pixel_at (out, f, 70, 70)));
    fail_unless (is_white (pixel_at (out, f, 25, 39)));
    gst_buffer_unref (out);
  }
}

GST_END_TEST;

GST_START_TEST (test_label)
{
  GstBuffer *out = draw_one (GST_VIDEO_FORMAT_BGRx, "font-size=14", 20, 40);
  Px colour = pixel_at (out, GST_VIDEO_FORMAT_BGRx, 20, 40);
  gint x, y, light = 0;

  /* the tag sits on the box's top edge, filled with the box colour, with white text */
  fail_unless (same (pixel_at (out, GST_VIDEO_FORMAT_BGRx, 20, 39), colour));
  fail_unless (same (pixel_at (out, GST_VIDEO_FORMAT_BGRx, 21, 30), colour));
  for (y = 20; y < 40; y++)
    for (x = 20; x < 60; x++) {
      Px p = pixel_at (out, GST_VIDEO_FORMAT_BGRx, x, y);

      if (p.r > 200 && p.g > 200 && p.b > 200 && !same (p, colour))
        light++;
    }
  fail_unless (light > 10, "no text in the label (%d light pixels)", light);
  /* nothing left of the box */
  fail_unless (is_white (pixel_at (out, GST_VIDEO_FORMAT_BGRx, 19, 30)));
  gst_buffer_unref (out);

  /* no room above: the tag goes inside the box */
  out = draw_one (GST_VIDEO_FORMAT_RGB, "font-size=14", 20, 0);
  colour = pixel_at (out, GST_VIDEO_FORMAT_RGB, 20, 0);
  light = 0;
  for (y = 2; y < 12; y++)
    for (x = 22; x < 60; x++)
      if (same (pixel_at (out, GST_VIDEO_FORMAT_RGB, x, y), colour))
        light++;
  fail_unless (light > 100, "no tag inside the box (%d pixels)", light);
  fail_unless (is_white (pixel_at (out, GST_VIDEO_FORMAT_RGB, 60, 40)));
  gst_buffer_unref (out);
}

GST_END_TEST;

GST_START_TEST (test_clipped_and_empty)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *in, *out;
  gchar *caps = check_video_caps (GST_VIDEO_FORMAT_RGBA, W, H);

  h = check_harness ("dsocroverlay", &bus);
  gst_harness_set_src_caps_str (h, caps);
  in = check_solid_frame (GST_VIDEO_FORMAT_RGBA, W, H, 255, 255, 255);
  /* boxes past the frame's edges are clipped; empty ones are skipped */
  gst_buffer_add_video_region_of_interest_meta (in, "table", 150, 100, 500, 500);
  gst_buffer_add_video_region_of_interest_meta (in, "image", 10, 10, 0, 20);
  out = gst_harness_push_and_pull (h, in);
  fail_if (is_white (pixel_at (out, GST_VIDEO_FORMAT_RGBA, 150, 120)));
  fail_unless (is_white (pixel_at (out, GST_VIDEO_FORMAT_RGBA, 10, 15)));
  gst_buffer_unref (out);
  check_teardown (h, bus);
  g_free (caps);
}

GST_END_TEST;

GST_START_TEST (test_no_regions_no_copy)
{
  GstHarness *h;
  GstBus *bus;
  GstBuffer *in, *out;
  GstMemory *mem;
  gchar *caps = check_video_caps (GST_VIDEO_FORMAT_RGB, W, H);

  h = check_harness ("dsocroverlay", &bus);
  gst_harness_set_src_caps_str (h, caps);
  in = check_solid_frame (GST_VIDEO_FORMAT_RGB, W, H, 255, 255, 255);
  mem = gst_buffer_peek_memory (in, 0);
  /* a shared frame without boxes keeps its memory */
  out = gst_harness_push_and_pull (h, gst_buffer_ref (in));
  fail_unless (gst_buffer_peek_memory (out, 0) == mem);
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  check_teardown (h, bus);
  g_free (caps);
}

GST_END_TEST;

GST_START_TEST (test_unsupported_caps)
{
  GstHarness *h;
  GstBus *bus;
  GstCaps *caps;

  h = check_harness ("dsocroverlay", &bus);
  caps = gst_caps_from_string ("video/x-raw,format=NV12,width=64,height=64");
  fail_if (gst_pad_peer_query_accept_caps (h->srcpad, caps));
  gst_caps_unref (caps);
  check_teardown (h, bus);
}

GST_END_TEST;

static void
suite_teardown (void)
{
  cairo_debug_reset_static_data ();
}

static Suite *
dsocroverlay_suite (void)
{
  Suite *s = suite_create ("dsocroverlay");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, NULL, suite_teardown);
  tcase_add_test (tc, test_outline_every_layout);
  tcase_add_test (tc, test_label);
  tcase_add_test (tc, test_clipped_and_empty);
  tcase_add_test (tc, test_no_regions_no_copy);
  tcase_add_test (tc, test_unsupported_caps);
  return s;
}

GST_CHECK_MAIN (dsocroverlay);
