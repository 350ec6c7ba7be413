/* dsocrpdfdec.c: GstHarness tests of the PDF page renderer. The documents are made here at
 * run time: cairo's PDF surface writes the plain ones, and a small writer below builds an
 * RC4-encrypted one (cairo cannot encrypt). */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <cairo.h>
#include <cairo-pdf.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#define PAGE_META "DsocrPageMeta"

/* The test document: three pages of different sizes (in points), each with one filled
 * square of a known colour; the first also has black text. */
typedef struct
{
  gdouble w, h;                 /* page size */
  gdouble x, y, side;           /* the square, from the top-left corner */
  guint8 r, g, b;
} TestPage;

static const TestPage test_pages[3] = {
  {200, 300, 20, 20, 80, 255, 0, 0},
  {300, 200, 150, 50, 100, 0, 255, 0},
  {150, 150, 0, 0, 75, 0, 0, 255},
};

#define TEST_TITLE "dsocr test document"
#define TEST_AUTHOR "gst-dsocr tests"
/* the text on page 1: baseline origin and font size in points */
#define TEXT_X 20.0
#define TEXT_Y 250.0
#define TEXT_SIZE 30.0

static GBytes *test_pdf;
static gboolean test_pdf_has_text;

static cairo_status_t
append_bytes (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append ((GByteArray *) closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

static GBytes *
make_test_pdf (gboolean * has_text)
{
  GByteArray *out = g_byte_array_new ();
  cairo_surface_t *surface;
  cairo_t *cr;
  guint i;

  surface = cairo_pdf_surface_create_for_stream (append_bytes, out,
      test_pages[0].w, test_pages[0].h);
  cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_TITLE,
      TEST_TITLE);
  cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_AUTHOR,
      TEST_AUTHOR);
  cr = cairo_create (surface);
  for (i = 0; i < G_N_ELEMENTS (test_pages); i++) {
    const TestPage *p = &test_pages[i];

    cairo_pdf_surface_set_size (surface, p->w, p->h);
    cairo_set_source_rgb (cr, p->r / 255.0, p->g / 255.0, p->b / 255.0);
    cairo_rectangle (cr, p->x, p->y, p->side, p->side);
    cairo_fill (cr);
    if (i == 0) {
      cairo_text_extents_t ext;

      cairo_set_source_rgb (cr, 0, 0, 0);
      cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
          CAIRO_FONT_WEIGHT_BOLD);
      cairo_set_font_size (cr, TEXT_SIZE);
      cairo_text_extents (cr, "dsocr", &ext);
      /* a machine without fonts draws nothing: then the text is not checked */
      *has_text = ext.width > 0 && cairo_status (cr) == CAIRO_STATUS_SUCCESS;
      cairo_move_to (cr, TEXT_X, TEXT_Y);
      cairo_show_text (cr, "dsocr");
    }
    cairo_show_page (cr);
  }
  fail_unless_equals_int (cairo_status (cr), CAIRO_STATUS_SUCCESS);
  cairo_destroy (cr);
  cairo_surface_finish (surface);
  fail_unless_equals_int (cairo_surface_status (surface), CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy (surface);
  return g_byte_array_free_to_bytes (out);
}

/* --- an RC4 40-bit encrypted PDF (standard security handler, revision 2) --- */

static const guint8 pdf_password_pad[32] = {
  0x28, 0xbf, 0x4e, 0x5e, 0x4e, 0x75, 0x8a, 0x41, 0x64, 0x00, 0x4e, 0x56,
  0xff, 0xfa, 0x01, 0x08, 0x2e, 0x2e, 0x00, 0xb6, 0xd0, 0x68, 0x3e, 0x80,
  0x2f, 0x0c, 0xa9, 0xfe, 0x64, 0x53, 0x69, 0x7a
};

static void
rc4 (const guint8 * key, gsize key_len, guint8 * data, gsize len)
{
  guint8 s[256], t;
  guint i, j = 0, k;

  for (i = 0; i < 256; i++)
    s[i] = i;
  for (i = 0; i < 256; i++) {
    j = (j + s[i] + key[i % key_len]) & 255;
    t = s[i], s[i] = s[j], s[j] = t;
  }
  for (k = 0, i = j = 0; k < len; k++) {
    i = (i + 1) & 255;
    j = (j + s[i]) & 255;
    t = s[i], s[i] = s[j], s[j] = t;
    data[k] ^= s[(s[i] + s[j]) & 255];
  }
}

static void
md5_parts (guint8 digest[16], const guint8 * a, gsize a_len, const guint8 * b,
    gsize b_len, const guint8 * c, gsize c_len, const guint8 * d, gsize d_len)
{
  GChecksum *md5 = g_checksum_new (G_CHECKSUM_MD5);
  gsize len = 16;

  g_checksum_update (md5, a, a_len);
  if (b)
    g_checksum_update (md5, b, b_len);
  if (c)
    g_checksum_update (md5, c, c_len);
  if (d)
    g_checksum_update (md5, d, d_len);
  g_checksum_get_digest (md5, digest, &len);
  g_checksum_free (md5);
}

static void
pad_password (const gchar * pw, guint8 out[32])
{
  gsize n = MIN (strlen (pw), 32);

  memcpy (out, pw, n);
  memcpy (out + n, pdf_password_pad, 32 - n);
}

static void
append_hex (GString * s, const guint8 * data, gsize len)
{
  gsize i;

  g_string_append_c (s, '<');
  for (i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", data[i]);
  g_string_append_c (s, '>');
}

/* A one-page 100 x 100 pt document whose content stream fills a red square from (25,25) to
 * (75,75) pt, encrypted for @user_pw / @owner_pw (PDF 1.7 algorithms 3.1 to 3.4). */
static GBytes *
make_encrypted_pdf (const gchar * user_pw, const gchar * owner_pw)
{
  static const guint8 id[16] = "dsocr-test-id-01";
  static const guint8 perms[4] = { 0xfc, 0xff, 0xff, 0xff };    /* P = -4, little-endian */
  const gchar *content = "1 0 0 rg 25 25 50 50 re f";
  guint8 upad[32], opad[32], o[32], u[32], digest[16], key[5], obj[5];
  guint8 stream[64];
  gsize content_len = strlen (content), offsets[6];
  GString *pdf;
  guint i;

  pad_password (user_pw, upad);
  pad_password (owner_pw, opad);
  md5_parts (digest, opad, 32, NULL, 0, NULL, 0, NULL, 0);
  memcpy (o, upad, 32);
  rc4 (digest, 5, o, 32);
  md5_parts (digest, upad, 32, o, 32, perms, 4, id, 16);
  memcpy (key, digest, 5);
  memcpy (u, pdf_password_pad, 32);
  rc4 (key, 5, u, 32);

  /* the content stream is object 4, generation 0 */
  obj[0] = 4, obj[1] = 0, obj[2] = 0, obj[3] = 0, obj[4] = 0;
  md5_parts (digest, key, 5, obj, 5, NULL, 0, NULL, 0);
  memcpy (stream, content, content_len);
  rc4 (digest, 10, stream, content_len);

  pdf = g_string_new ("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
  offsets[1] = pdf->len;
  g_string_append (pdf, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
  offsets[2] = pdf->len;
  g_string_append (pdf,
      "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
  offsets[3] = pdf->len;
  g_string_append (pdf, "3 0 obj\n<< /Type /Page /Parent 2 0 R "
      "/MediaBox [0 0 100 100] /Contents 4 0 R >>\nendobj\n");
  offsets[4] = pdf->len;
  g_string_append_printf (pdf, "4 0 obj\n<< /Length %" G_GSIZE_FORMAT
      " >>\nstream\n", content_len);
  g_string_append_len (pdf, (const gchar *) stream, content_len);
  g_string_append (pdf, "\nendstream\nendobj\n");
  offsets[5] = pdf->len;
  g_string_append (pdf,
      "5 0 obj\n<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O ");
  append_hex (pdf, o, 32);
  g_string_append (pdf, " /U ");
  append_hex (pdf, u, 32);
  g_string_append (pdf, " >>\nendobj\n");
  offsets[0] = pdf->len;
  g_string_append (pdf, "xref\n0 6\n0000000000 65535 f \n");
  for (i = 1; i < 6; i++)
    g_string_append_printf (pdf, "%010" G_GSIZE_FORMAT " 00000 n \n",
        offsets[i]);
  g_string_append (pdf, "trailer\n<< /Size 6 /Root 1 0 R /Encrypt 5 0 R /ID [");
  append_hex (pdf, id, 16);
  append_hex (pdf, id, 16);
  g_string_append_printf (pdf, "] >>\nstartxref\n%" G_GSIZE_FORMAT
      "\n%%%%EOF\n", offsets[0]);
  return g_string_free_to_bytes (pdf);
}

/* --- harness helpers --- */

static GstHarness *
pdfdec_harness (GstBus ** bus)
{
  GstHarness *h = gst_harness_new ("dsocrpdfdec");

  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  gst_harness_set_src_caps_str (h, "application/pdf");
  return h;
}

static void
pdfdec_teardown (GstHarness * h, GstBus * bus)
{
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

/* Pushes @size bytes in @n_chunks buffers, then EOS. Returns what the EOS push returned:
 * TRUE once every page went downstream. */
static gboolean
push_document (GstHarness * h, const guint8 * data, gsize size, guint n_chunks)
{
  gsize chunk = (size + n_chunks - 1) / MAX (n_chunks, 1), off;

  for (off = 0; off < size; off += chunk) {
    gsize n = MIN (chunk, size - off);

    fail_unless_equals_int (gst_harness_push (h,
            gst_buffer_new_memdup (data + off, n)), GST_FLOW_OK);
  }
  return gst_harness_push_event (h, gst_event_new_eos ());
}

static gboolean
push_bytes (GstHarness * h, GBytes * bytes, guint n_chunks)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);

  return push_document (h, data, size, n_chunks);
}

/* Every message on @bus so far, oldest first. (transfer full) */
static GPtrArray *
bus_messages (GstBus * bus)
{
  GPtrArray *msgs = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_message_unref);
  GstMessage *m;

  while ((m = gst_bus_pop (bus)))
    g_ptr_array_add (msgs, m);
  return msgs;
}

/* The element messages named @name, in order. (transfer container) */
static GPtrArray *
element_messages (GPtrArray * msgs, const gchar * name)
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

static guint
count_errors (GPtrArray * msgs)
{
  guint i, n = 0;

  for (i = 0; i < msgs->len; i++)
    if (GST_MESSAGE_TYPE (g_ptr_array_index (msgs, i)) == GST_MESSAGE_ERROR)
      n++;
  return n;
}

/* Asserts that @bus holds exactly one error, in @domain with @code, and no page buffer
 * came out. Returns the error's text for further checks. (transfer full) */
static gchar *
expect_error (GstHarness * h, GstBus * bus, GQuark domain, gint code)
{
  GPtrArray *msgs = bus_messages (bus);
  GError *err = NULL;
  gchar *dbg = NULL, *text;
  guint i;

  fail_unless_equals_int (count_errors (msgs), 1);
  for (i = 0; i < msgs->len; i++) {
    GstMessage *m = g_ptr_array_index (msgs, i);

    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
      gst_message_parse_error (m, &err, &dbg);
  }
  GST_INFO ("error: %s (%s)", err->message, dbg);
  fail_unless (g_error_matches (err, domain, code),
      "expected %s %d, got %s %d: %s", g_quark_to_string (domain), code,
      g_quark_to_string (err->domain), err->code, err->message);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  text = g_strdup (err->message);
  g_error_free (err);
  g_free (dbg);
  g_ptr_array_unref (msgs);
  return text;
}

/* MuPDF's (and so the reference's) frame size for @points at @dpi */
static gint
pixels (gdouble points, gdouble dpi)
{
  return (gint) ceil (points * dpi / 72.0 - 0.001);
}

/* The caps events that reached the harness, in order. (transfer full) */
static GPtrArray *
pulled_caps (GstHarness * h, GPtrArray * tags)
{
  GPtrArray *caps = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_caps_unref);
  GstEvent *ev;

  while ((ev = gst_harness_try_pull_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CAPS) {
      GstCaps *c;

      gst_event_parse_caps (ev, &c);
      g_ptr_array_add (caps, gst_caps_ref (c));
    } else if (GST_EVENT_TYPE (ev) == GST_EVENT_TAG && tags) {
      GstTagList *t;

      gst_event_parse_tag (ev, &t);
      g_ptr_array_add (tags, gst_tag_list_ref (t));
    }
    gst_event_unref (ev);
  }
  return caps;
}

static void
get_rgb (const guint8 * px, guint8 rgb[3])
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  rgb[0] = px[2], rgb[1] = px[1], rgb[2] = px[0];       /* BGRx */
#else
  rgb[0] = px[1], rgb[1] = px[2], rgb[2] = px[3];       /* xRGB */
#endif
}

/* Asserts the colour of the pixel at point (@x_pt, @y_pt) of a page rendered at @dpi. */
static void
assert_colour (const GstMapInfo * map, const GstVideoInfo * info, gdouble dpi,
    gdouble x_pt, gdouble y_pt, guint8 r, guint8 g, guint8 b)
{
  gint x = (gint) (x_pt * dpi / 72.0), y = (gint) (y_pt * dpi / 72.0);
  guint8 rgb[3];

  fail_unless (x < GST_VIDEO_INFO_WIDTH (info)
      && y < GST_VIDEO_INFO_HEIGHT (info));
  get_rgb (map->data + y * GST_VIDEO_INFO_PLANE_STRIDE (info, 0) + x * 4, rgb);
  fail_unless (ABS (rgb[0] - r) <= 2 && ABS (rgb[1] - g) <= 2
      && ABS (rgb[2] - b) <= 2,
      "pixel (%d,%d) is %u,%u,%u, expected %u,%u,%u", x, y, rgb[0], rgb[1],
      rgb[2], r, g, b);
}

/* Pixels of the text box of page 1 that are dark. */
static guint
dark_text_pixels (const GstMapInfo * map, const GstVideoInfo * info,
    gdouble dpi)
{
  gint x0 = (gint) (TEXT_X * dpi / 72.0);
  gint x1 = (gint) ((TEXT_X + 80) * dpi / 72.0);
  gint y0 = (gint) ((TEXT_Y - TEXT_SIZE) * dpi / 72.0);
  gint y1 = (gint) (TEXT_Y * dpi / 72.0);
  gint x, y;
  guint n = 0;

  for (y = y0; y < y1; y++)
    for (x = x0; x < x1; x++) {
      guint8 rgb[3];

      get_rgb (map->data + y * GST_VIDEO_INFO_PLANE_STRIDE (info, 0) + x * 4,
          rgb);
      if (rgb[0] < 64 && rgb[1] < 64 && rgb[2] < 64)
        n++;
    }
  return n;
}

/* Checks one page buffer: timing, offset, meta, size and colours. */
static void
check_page (GstBuffer * buf, GstCaps * caps, gint page_no, guint index,
    gdouble dpi, GstClockTime duration)
{
  const TestPage *p = &test_pages[page_no - 1];
  GstVideoInfo info;
  GstCustomMeta *meta;
  GstStructure *s;
  GstMapInfo map;
  gint v;
  gdouble d;

  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info),
      G_BYTE_ORDER == G_LITTLE_ENDIAN ? GST_VIDEO_FORMAT_BGRx :
      GST_VIDEO_FORMAT_xRGB);
  fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), pixels (p->w, dpi));
  fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info), pixels (p->h, dpi));
  fail_unless_equals_int (GST_VIDEO_INFO_FPS_N (&info), 0);
  fail_unless_equals_uint64 (gst_buffer_get_size (buf),
      GST_VIDEO_INFO_SIZE (&info));

  fail_unless_equals_uint64 (GST_BUFFER_PTS (buf), index * duration);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (buf), duration);
  fail_unless_equals_uint64 (GST_BUFFER_OFFSET (buf), page_no);

  meta = gst_buffer_get_custom_meta (buf, PAGE_META);
  fail_unless (meta != NULL);
  s = gst_custom_meta_get_structure (meta);
  fail_unless (gst_structure_get_int (s, "page", &v));
  fail_unless_equals_int (v, page_no);
  fail_unless (gst_structure_get_int (s, "page-count", &v));
  fail_unless_equals_int (v, 3);
  fail_unless (gst_structure_get_double (s, "dpi", &d));
  fail_unless_equals_float (d, dpi);

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  /* the square's centre, and white paper where nothing was drawn */
  assert_colour (&map, &info, dpi, p->x + p->side / 2, p->y + p->side / 2,
      p->r, p->g, p->b);
  assert_colour (&map, &info, dpi, p->w - 5, p->h - 5, 255, 255, 255);
  if (page_no == 1 && test_pdf_has_text)
    fail_unless (dark_text_pixels (&map, &info, dpi) > 50);
  gst_buffer_unmap (buf, &map);
}

/* Runs the test document through a harness with @props set ("name", value, ..., NULL) and
 * checks pages @from to @to. */
static void
run_pages (gint from, gint to, gdouble dpi, GstClockTime duration,
    const gchar * prop, ...)
{
  GstHarness *h;
  GstBus *bus;
  GPtrArray *msgs, *docs, *progress, *caps, *tags;
  const GstStructure *s;
  gint v, p;
  va_list args;

  h = pdfdec_harness (&bus);
  if (prop) {
    va_start (args, prop);
    g_object_set_valist (G_OBJECT (h->element), prop, args);
    va_end (args);
  }
  fail_unless (push_bytes (h, test_pdf, 3));

  tags = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_tag_list_unref);
  caps = pulled_caps (h, tags);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), to - from + 1);
  /* every page here has its own size, so each one brings new caps, and a tag list */
  fail_unless_equals_int (caps->len, to - from + 1);
  fail_unless_equals_int (tags->len, to - from + 1);
  for (p = from; p <= to; p++) {
    GstBuffer *buf = gst_harness_pull (h);
    GstTagList *t = g_ptr_array_index (tags, p - from);
    guint page, count;
    gchar *str;

    check_page (buf, g_ptr_array_index (caps, p - from), p, p - from, dpi,
        duration);
    gst_buffer_unref (buf);
    fail_unless (gst_tag_list_get_uint (t, "dsocr-page", &page));
    fail_unless_equals_int (page, p);
    fail_unless (gst_tag_list_get_uint (t, "dsocr-page-count", &count));
    fail_unless_equals_int (count, 3);
    fail_unless (gst_tag_list_get_string (t, GST_TAG_TITLE, &str));
    fail_unless_equals_string (str, TEST_TITLE);
    g_free (str);
  }

  msgs = bus_messages (bus);
  fail_unless_equals_int (count_errors (msgs), 0);
  docs = element_messages (msgs, "dsocr-pdf-document");
  fail_unless_equals_int (docs->len, 1);
  s = g_ptr_array_index (docs, 0);
  fail_unless (gst_structure_get_int (s, "page-count", &v));
  fail_unless_equals_int (v, 3);
  fail_unless (gst_structure_get_int (s, "first-page", &v));
  fail_unless_equals_int (v, from);
  fail_unless (gst_structure_get_int (s, "last-page", &v));
  fail_unless_equals_int (v, to);
  fail_unless_equals_string (gst_structure_get_string (s, "title"), TEST_TITLE);
  fail_unless_equals_string (gst_structure_get_string (s, "author"),
      TEST_AUTHOR);
  progress = element_messages (msgs, "dsocr-pdf-progress");
  fail_unless_equals_int (progress->len, to - from + 1);
  for (p = from; p <= to; p++) {
    s = g_ptr_array_index (progress, p - from);
    fail_unless (gst_structure_get_int (s, "page", &v));
    fail_unless_equals_int (v, p);
    fail_unless (gst_structure_get_int (s, "page-count", &v));
    fail_unless_equals_int (v, 3);
  }

  g_ptr_array_unref (progress);
  g_ptr_array_unref (docs);
  g_ptr_array_unref (msgs);
  g_ptr_array_unref (caps);
  g_ptr_array_unref (tags);
  pdfdec_teardown (h, bus);
}

/* --- tests --- */

GST_START_TEST (test_all_pages)
{
  run_pages (1, 3, 144.0, GST_SECOND, NULL);
}

GST_END_TEST;

GST_START_TEST (test_events)
{
  GstHarness *h;
  GstBus *bus;
  GstEvent *ev;
  GstEventType expected[] = {
    GST_EVENT_STREAM_START, GST_EVENT_CAPS, GST_EVENT_SEGMENT, GST_EVENT_TAG,
    GST_EVENT_CAPS, GST_EVENT_TAG, GST_EVENT_CAPS, GST_EVENT_TAG, GST_EVENT_EOS
  };
  guint i;

  h = pdfdec_harness (&bus);
  fail_unless (push_bytes (h, test_pdf, 1));
  for (i = 0; i < G_N_ELEMENTS (expected); i++) {
    ev = gst_harness_pull_event (h);
    fail_unless_equals_string (GST_EVENT_TYPE_NAME (ev),
        gst_event_type_get_name (expected[i]));
    if (GST_EVENT_TYPE (ev) == GST_EVENT_SEGMENT) {
      const GstSegment *seg;

      gst_event_parse_segment (ev, &seg);
      fail_unless_equals_int (seg->format, GST_FORMAT_TIME);
    }
    gst_event_unref (ev);
  }
  fail_unless (gst_harness_try_pull_event (h) == NULL);
  pdfdec_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_page_range)
{
  run_pages (2, 3, 144.0, GST_SECOND, "first-page", 2, NULL);
  run_pages (1, 2, 144.0, GST_SECOND, "last-page", 2, NULL);
  run_pages (2, 2, 144.0, GST_SECOND, "first-page", 2, "last-page", 2, NULL);
  run_pages (3, 3, 144.0, GST_SECOND, "first-page", 3, "last-page", -1, NULL);
}

GST_END_TEST;

GST_START_TEST (test_dpi_and_duration)
{
  /* 72 dpi: one pixel per point; 100 dpi: fractional sizes that round up */
  run_pages (1, 3, 72.0, GST_SECOND, "dpi", 72.0, NULL);
  run_pages (1, 3, 100.0, GST_SECOND, "dpi", 100.0, NULL);
  run_pages (1, 3, 144.0, 250 * GST_MSECOND, "page-duration",
      (guint64) (250 * GST_MSECOND), NULL);
}

GST_END_TEST;

static void
expect_range_error (gint from, gint to)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = pdfdec_harness (&bus);
  g_object_set (h->element, "first-page", from, "last-page", to, NULL);
  fail_if (push_bytes (h, test_pdf, 2));
  text = expect_error (h, bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (strstr (text, "3 pages") != NULL, "%s", text);
  g_free (text);
  pdfdec_teardown (h, bus);
}

GST_START_TEST (test_bad_page_range)
{
  expect_range_error (4, -1);
  expect_range_error (1, 4);
  expect_range_error (3, 2);
}

GST_END_TEST;

static void
expect_decode_error (const guint8 * data, gsize size)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = pdfdec_harness (&bus);
  fail_if (push_document (h, data, size, 2));
  text = expect_error (h, bus, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE);
  g_free (text);
  pdfdec_teardown (h, bus);
}

GST_START_TEST (test_truncated)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (test_pdf, &size);

  /* cairo writes the page tree and the catalog last: the first half has neither */
  expect_decode_error (data, size / 2);
  expect_decode_error (data, 16);
}

GST_END_TEST;

GST_START_TEST (test_garbage)
{
  guint8 junk[4096];
  guint i;

  for (i = 0; i < sizeof (junk); i++)
    junk[i] = (guint8) (i * 7919 + 13);
  expect_decode_error (junk, sizeof (junk));
  expect_decode_error ((const guint8 *) "not a PDF document at all\n", 26);
}

GST_END_TEST;

GST_START_TEST (test_empty)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = pdfdec_harness (&bus);
  fail_if (gst_harness_push_event (h, gst_event_new_eos ()));
  text = expect_error (h, bus, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE);
  g_free (text);
  pdfdec_teardown (h, bus);
}

GST_END_TEST;

static void
run_encrypted (GBytes * pdf, const gchar * password, gboolean opens)
{
  GstHarness *h;
  GstBus *bus;

  h = pdfdec_harness (&bus);
  if (password)
    g_object_set (h->element, "password", password, NULL);
  if (opens) {
    GstBuffer *buf;
    GstMapInfo map;
    GstVideoInfo info;
    GstCaps *caps;

    fail_unless (push_bytes (h, pdf, 1));
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 1);
    buf = gst_harness_pull (h);
    caps = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (gst_video_info_from_caps (&info, caps));
    fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info), 200);
    fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info), 200);
    fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
    /* the decrypted content stream drew the red square */
    assert_colour (&map, &info, 144.0, 50, 50, 255, 0, 0);
    assert_colour (&map, &info, 144.0, 5, 5, 255, 255, 255);
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    gst_caps_unref (caps);
  } else {
    gchar *text;

    fail_if (push_bytes (h, pdf, 1));
    text = expect_error (h, bus, GST_STREAM_ERROR,
        GST_STREAM_ERROR_DECRYPT_NOKEY);
    fail_unless (strstr (text, "password") != NULL, "%s", text);
    g_free (text);
  }
  pdfdec_teardown (h, bus);
}

GST_START_TEST (test_encrypted)
{
  GBytes *pdf = make_encrypted_pdf ("secret", "owner");

  run_encrypted (pdf, NULL, FALSE);
  run_encrypted (pdf, "", FALSE);
  run_encrypted (pdf, "wrong", FALSE);
  run_encrypted (pdf, "secret", TRUE);
  run_encrypted (pdf, "owner", TRUE);
  g_bytes_unref (pdf);
}

GST_END_TEST;

GST_START_TEST (test_flush)
{
  GstHarness *h;
  GstBus *bus;
  GPtrArray *msgs, *docs;
  gsize size;
  const guint8 *data = g_bytes_get_data (test_pdf, &size);
  GstEvent *ev;
  guint segments = 0;

  h = pdfdec_harness (&bus);
  /* half a document, then a flush: it is forgotten and the next one renders alone */
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_memdup (data, size / 2)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  {
    GstSegment seg;

    gst_segment_init (&seg, GST_FORMAT_BYTES);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  }
  fail_unless (push_bytes (h, test_pdf, 4));
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 3);
  while ((ev = gst_harness_try_pull_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_SEGMENT) {
      const GstSegment *seg;

      gst_event_parse_segment (ev, &seg);
      fail_unless_equals_int (seg->format, GST_FORMAT_TIME);
      segments++;
    }
    gst_event_unref (ev);
  }
  fail_unless_equals_int (segments, 1);

  msgs = bus_messages (bus);
  fail_unless_equals_int (count_errors (msgs), 0);
  docs = element_messages (msgs, "dsocr-pdf-document");
  fail_unless_equals_int (docs->len, 1);
  g_ptr_array_unref (docs);
  g_ptr_array_unref (msgs);
  pdfdec_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_downstream_flushing)
{
  GstHarness *h;
  GstBus *bus;
  GPtrArray *msgs, *progress;

  h = pdfdec_harness (&bus);
  /* downstream refuses everything: rendering stops at once, quietly */
  gst_pad_set_active (h->sinkpad, FALSE);
  fail_if (push_bytes (h, test_pdf, 1));
  msgs = bus_messages (bus);
  fail_unless_equals_int (count_errors (msgs), 0);
  progress = element_messages (msgs, "dsocr-pdf-progress");
  fail_unless (progress->len <= 1);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  g_ptr_array_unref (progress);
  g_ptr_array_unref (msgs);
  gst_pad_set_active (h->sinkpad, TRUE);
  pdfdec_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_not_negotiated)
{
  GstHarness *h;
  GstBus *bus;
  gchar *text;

  h = pdfdec_harness (&bus);
  /* downstream takes only a size that no page has */
  gst_harness_set_sink_caps_str (h, "video/x-raw, width=(int)10, height=(int)10");
  fail_if (push_bytes (h, test_pdf, 1));
  text = expect_error (h, bus, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION);
  g_free (text);
  pdfdec_teardown (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_queries)
{
  GstHarness *h;
  GstBus *bus;
  GstQuery *q;
  gboolean seekable = TRUE;
  gint64 dur = -1;

  h = pdfdec_harness (&bus);
  q = gst_query_new_seeking (GST_FORMAT_TIME);
  fail_unless (gst_pad_peer_query (h->sinkpad, q));
  gst_query_parse_seeking (q, NULL, &seekable, NULL, NULL);
  fail_if (seekable);
  gst_query_unref (q);
  /* no document yet: no duration */
  fail_if (gst_element_query_duration (h->element, GST_FORMAT_TIME, &dur));
  fail_if (gst_pad_push_event (h->sinkpad, gst_event_new_seek (1.0,
              GST_FORMAT_TIME, GST_SEEK_FLAG_FLUSH, GST_SEEK_TYPE_SET, 0,
              GST_SEEK_TYPE_NONE, -1)));

  g_object_set (h->element, "first-page", 2, NULL);
  fail_unless (push_bytes (h, test_pdf, 1));
  /* two pages of a second each */
  fail_unless (gst_element_query_duration (h->element, GST_FORMAT_TIME, &dur));
  fail_unless_equals_uint64 (dur, 2 * GST_SECOND);
  fail_unless (gst_element_query_duration (h->element, GST_FORMAT_DEFAULT,
          &dur));
  fail_unless_equals_uint64 (dur, 2);
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

GST_END_TEST;

/* --- pipelines with the system's elements --- */

static gchar *
write_test_pdf (void)
{
  GError *err = NULL;
  gchar *path = NULL;
  gint fd = g_file_open_tmp ("dsocrpdfdec-XXXXXX.pdf", &path, &err);
  gsize size;
  const gchar *data = g_bytes_get_data (test_pdf, &size);

  fail_unless (fd >= 0, "%s", err ? err->message : "");
  g_close (fd, NULL);
  fail_unless (g_file_set_contents (path, data, size, &err), "%s",
      err ? err->message : "");
  return path;
}

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  GArray *pages = data;
  GstCustomMeta *meta = gst_buffer_get_custom_meta (buf, PAGE_META);
  gint page = 0;

  if (meta)
    gst_structure_get_int (gst_custom_meta_get_structure (meta), "page", &page);
  g_array_append_val (pages, page);
}

GST_START_TEST (test_pipeline)
{
  gchar *path = write_test_pdf ();
  gchar *desc;
  GstElement *pipe, *sink;
  GstBus *bus;
  GstMessage *msg;
  GArray *pages = g_array_new (FALSE, FALSE, sizeof (gint));
  gint i;

  /* videoconvert to RGB copies the frames: the page meta must come along */
  desc = g_strdup_printf ("filesrc location=\"%s\" ! dsocrpdfdec dpi=72 ! "
      "videoconvert ! video/x-raw,format=RGB ! fakesink name=sink "
      "signal-handoffs=true", path);
  pipe = gst_parse_launch (desc, NULL);
  fail_unless (pipe != NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), pages);
  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  bus = gst_element_get_bus (pipe);
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_string (GST_MESSAGE_TYPE_NAME (msg), "eos");
  gst_message_unref (msg);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);

  fail_unless_equals_int (pages->len, 3);
  for (i = 0; i < 3; i++)
    fail_unless_equals_int (g_array_index (pages, gint, i), i + 1);

  g_array_unref (pages);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_free (desc);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  gchar *path = write_test_pdf ();
  gchar *desc;
  GstElement *pipe;
  GstBus *bus;
  gint i;

  desc = g_strdup_printf ("filesrc location=\"%s\" ! dsocrpdfdec ! fakesink",
      path);
  pipe = gst_parse_launch (desc, NULL);
  fail_unless (pipe != NULL);
  bus = gst_element_get_bus (pipe);
  for (i = 0; i < 20; i++) {
    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    /* every other time, stop while the document may still be rendering */
    if (i % 2 == 0) {
      GstMessage *msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
          GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

      fail_unless (msg != NULL);
      fail_unless_equals_string (GST_MESSAGE_TYPE_NAME (msg), "eos");
      gst_message_unref (msg);
    }
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

static void
suite_setup (void)
{
  test_pdf = make_test_pdf (&test_pdf_has_text);
}

static void
suite_teardown (void)
{
  g_clear_pointer (&test_pdf, g_bytes_unref);
  cairo_debug_reset_static_data ();
}

static Suite *
dsocrpdfdec_suite (void)
{
  Suite *s = suite_create ("dsocrpdfdec");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, suite_setup, suite_teardown);
  tcase_add_test (tc, test_all_pages);
  tcase_add_test (tc, test_events);
  tcase_add_test (tc, test_page_range);
  tcase_add_test (tc, test_dpi_and_duration);
  tcase_add_test (tc, test_bad_page_range);
  tcase_add_test (tc, test_truncated);
  tcase_add_test (tc, test_garbage);
  tcase_add_test (tc, test_empty);
  tcase_add_test (tc, test_encrypted);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_downstream_flushing);
  tcase_add_test (tc, test_not_negotiated);
  tcase_add_test (tc, test_queries);
  tcase_add_test (tc, test_pipeline);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (dsocrpdfdec);
