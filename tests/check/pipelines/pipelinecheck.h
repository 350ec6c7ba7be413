/* pipelinecheck.h: helpers of the whole-pipeline tests (tests/check/pipelines/): running a
 * pipeline to its end, writing a test PDF, the source tree's files, temporary folders. The
 * element tests' helpers (bus messages, fixtures) come from ../elements/dsocrcheck.h. */
#ifndef DSOCR_PIPELINE_CHECK_H
#define DSOCR_PIPELINE_CHECK_H

#include "../elements/dsocrcheck.h"

#include <cairo.h>
#include <cairo-pdf.h>

#include "dsocr-build-config.h"

/* Whole pipelines recognise pages one after the other on a 2-core CI machine, ten times
 * slower under the sanitizers: leave them time. */
#define PC_TIMEOUT (240 * GST_SECOND)

/* Absolute path of @rel in the source tree (transfer full). */
static inline gchar *
pc_source_path (const gchar * rel)
{
  return g_build_filename (DSOCR_SOURCE_DIR, rel, NULL);
}

/* Removes @path and everything under it; symbolic links are removed, not followed. */
static inline void
pc_remove_tree (const gchar * path)
{
  GDir *d;
  const gchar *name;

  if (!g_file_test (path, G_FILE_TEST_IS_SYMLINK)
      && (d = g_dir_open (path, 0, NULL))) {
    while ((name = g_dir_read_name (d))) {
      gchar *p = g_build_filename (path, name, NULL);

      pc_remove_tree (p);
      g_free (p);
    }
    g_dir_close (d);
    g_rmdir (path);
    return;
  }
  g_unlink (path);
}

/* Sets @pipe PLAYING and waits for end-of-stream; fails on an error. Returns every message
 * popped meanwhile (transfer full). The pipeline is left PLAYING. */
static inline GPtrArray *
pc_play_to_eos (GstElement * pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GPtrArray *msgs;
  GstMessage *last;

  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE, "the pipeline does not start");
  msgs = check_wait_eos (bus, PC_TIMEOUT);
  fail_unless (msgs->len > 0);
  last = g_ptr_array_index (msgs, msgs->len - 1);
  if (GST_MESSAGE_TYPE (last) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (last, &err, &dbg);
    fail ("error from %s: %s (%s)", GST_MESSAGE_SRC_NAME (last), err->message,
        dbg ? dbg : "");
  }
  gst_object_unref (bus);
  return msgs;
}

/* Parses @desc, plays it to end-of-stream and sets it back to NULL; returns the messages
 * (transfer full). */
static inline GPtrArray *
pc_run (const gchar * desc)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch_full (desc, NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &err);
  GPtrArray *msgs;

  fail_unless (pipe != NULL, "%s: %s", desc, err ? err->message : "");
  msgs = pc_play_to_eos (pipe);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipe);
  return msgs;
}

/* The test document's pages, in points: different sizes, so that the pipeline sees a caps
 * change between them. */
static const struct
{
  gdouble w, h;
  const gchar *title;
  const gchar *body;
} pc_pages[2] = {
  {300, 400, "Invoice 2024-117", "Two boxes of paper, 12.50 each"},
  {400, 300, "Delivery note", "Received in good order"},
};

static inline cairo_status_t
pc_append (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append ((GByteArray *) closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

/* A two-page PDF document (pc_pages) written with cairo: a title, a line of text and a
 * filled box per page. (transfer full) */
static inline GBytes *
pc_make_pdf (void)
{
  GByteArray *out = g_byte_array_new ();
  cairo_surface_t *surface =
      cairo_pdf_surface_create_for_stream (pc_append, out, pc_pages[0].w,
      pc_pages[0].h);
  cairo_t *cr = cairo_create (surface);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (pc_pages); i++) {
    cairo_pdf_surface_set_size (surface, pc_pages[i].w, pc_pages[i].h);
    cairo_set_source_rgb (cr, 0, 0, 0);
    cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
        CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size (cr, 20);
    cairo_move_to (cr, 24, 48);
    cairo_show_text (cr, pc_pages[i].title);
    cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
        CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size (cr, 12);
    cairo_move_to (cr, 24, 80);
    cairo_show_text (cr, pc_pages[i].body);
    cairo_set_source_rgb (cr, 0.2, 0.3, 0.8);
    cairo_rectangle (cr, 24, 110, pc_pages[i].w - 48, 60);
    cairo_fill (cr);
    cairo_show_page (cr);
  }
  fail_unless_equals_int (cairo_status (cr), CAIRO_STATUS_SUCCESS);
  cairo_destroy (cr);
  cairo_surface_finish (surface);
  fail_unless_equals_int (cairo_surface_status (surface), CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy (surface);
  return g_byte_array_free_to_bytes (out);
}

/* Writes pc_make_pdf() to @dir/@name; returns the path (transfer full). */
static inline gchar *
pc_write_pdf (const gchar * dir, const gchar * name)
{
  GBytes *pdf = pc_make_pdf ();
  gchar *path = g_build_filename (dir, name, NULL);
  gsize len;
  gconstpointer data = g_bytes_get_data (pdf, &len);

  fail_unless (g_file_set_contents (path, data, len, NULL));
  g_bytes_unref (pdf);
  return path;
}

/* The text of @path (transfer full); fails when it cannot be read. */
static inline gchar *
pc_read_file (const gchar * path)
{
  gchar *text = NULL;
  GError *err = NULL;

  fail_unless (g_file_get_contents (path, &text, NULL, &err), "%s: %s", path,
      err ? err->message : "");
  return text;
}

/* The lines of @text without the empty last one after a final newline (transfer full). */
static inline gchar **
pc_lines (const gchar * text)
{
  gchar **lines = g_strsplit (text, "\n", -1);
  guint n = g_strv_length (lines);

  if (n > 0 && !*lines[n - 1]) {
    g_free (lines[n - 1]);
    lines[n - 1] = NULL;
  }
  return lines;
}

/* Parses one JSON object; returns its node (transfer full). */
static inline JsonNode *
pc_parse_json (const gchar * text)
{
  JsonParser *p = json_parser_new ();
  GError *err = NULL;
  JsonNode *root;

  fail_unless (json_parser_load_from_data (p, text, -1, &err), "%s: %s", text,
      err ? err->message : "");
  root = json_node_copy (json_parser_get_root (p));
  fail_unless (JSON_NODE_HOLDS_OBJECT (root), "not an object: %s", text);
  g_object_unref (p);
  return root;
}

#endif /* DSOCR_PIPELINE_CHECK_H */
