/* pdf-to-markdown.c: the document pipeline of pipelines/pdf-to-markdown.sh, end to end, on
 * the tiny DeepSeek-OCR fixture (tests/fixtures/tiny-ocr-e2e):
 *
 *   filesrc ! dsocrpdfdec ! tee ! dsocrpreprocess mode=tiny ! dsocrencode ! dsocrdecode
 *     max-new-tokens=8 ! tee ! dsocrresult format=markdown ! filesink
 *                            ! dsocrresult format=json ! filesink
 *
 * on a two-page PDF written here. The pages dsocrpdfdec renders are also caught before
 * dsocrpreprocess, and the engine's whole-page call (dsocr_ocr_run, what tools/dsocr runs)
 * recognises each of them with the same parameters: the markdown file must hold exactly
 * those pages, in order, joined by dsocrresult's separator, and the JSON file their JSON.
 * The frames leaving dsocrdecode are caught too: their image embeddings must be bit for bit
 * the engine's for the same page (the random tiny model's few tokens depend little on the
 * picture; the embeddings do on every pixel). The pipeline loses nothing and changes
 * nothing. */
#include "pipelinecheck.h"

#include <dsocr/dsocr.h>

#define SEPARATOR "\n<--- Page Split --->\n"
#define MAX_NEW_TOKENS 8

/* a rendered page, as dsocrpdfdec pushed it */
typedef struct
{
  GstVideoInfo info;
  GstBuffer *buf;
} Page;

static void
on_page (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer user_data)
{
  GPtrArray *pages = user_data;
  GstCaps *caps = gst_pad_get_current_caps (pad);
  Page *p = g_new0 (Page, 1);

  fail_unless (caps != NULL);
  fail_unless (gst_video_info_from_caps (&p->info, caps));
  gst_caps_unref (caps);
  p->buf = gst_buffer_ref (buf);
  g_ptr_array_add (pages, p);
}

static void
on_decoded (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer user_data)
{
  g_ptr_array_add (user_data, gst_buffer_ref (buf));
}

static void
page_free (Page * p)
{
  gst_buffer_unref (p->buf);
  g_free (p);
}

/* @page's pixels (BGRx, as dsocrpdfdec renders them) as RGB for the engine; free
 * view->data. */
static void
page_view (Page * page, dsocr_image_view * view)
{
  GstVideoFrame frame;
  gint w = GST_VIDEO_INFO_WIDTH (&page->info);
  gint h = GST_VIDEO_INFO_HEIGHT (&page->info);
  guint8 *rgb = g_malloc ((gsize) w * h * 3);    // [h, w, 3]
  gint x, y;

  fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&page->info),
      GST_VIDEO_FORMAT_BGRx);
  fail_unless (gst_video_frame_map (&frame, &page->info, page->buf,
          GST_MAP_READ));
  for (y = 0; y < h; y++) {
    const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0)
        + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);

    for (x = 0; x < w; x++) {
      rgb[((gsize) y * w + x) * 3 + 0] = row[4 * x + 2];
      rgb[((gsize) y * w + x) * 3 + 1] = row[4 * x + 1];
      rgb[((gsize) y * w + x) * 3 + 2] = row[4 * x + 0];
    }
  }
  gst_video_frame_unmap (&frame);
  view->data = rgb;
  view->width = w;
  view->height = h;
  view->stride = (gsize) w * 3;
}

/* The pipeline's parameters, for its @index-th page. */
static void
page_params (dsocr_ocr_params * params, gint index)
{
  dsocr_ocr_params_init (params);
  params->mode = DSOCR_MODE_TINY;
  params->max_new_tokens = MAX_NEW_TOKENS;
  params->result.page = index;
}

/* The engine's result for @page, recognised as the pipeline's @index-th page. (transfer
 * full) */
static dsocr_result *
engine_result (dsocr_ocr * ocr, Page * page, gint index)
{
  dsocr_image_view view;
  dsocr_ocr_params params;
  dsocr_result *r;
  GError *err = NULL;

  page_view (page, &view);
  page_params (&params, index);
  r = dsocr_ocr_run (ocr, &view, &params, NULL, NULL, &err);
  fail_unless (r != NULL, "dsocr_ocr_run: %s", err ? err->message : "");
  g_free ((gpointer) view.data);
  return r;
}

/* @decoded's image embeddings must be the engine's for @page, bit for bit. */
static void
check_embeddings (dsocr_ocr * ocr, Page * page, GstBuffer * decoded, gint index)
{
  GstDsocrEmbeddingsMeta *em = check_get_embeddings_meta (decoded);
  dsocr_image_view view;
  dsocr_ocr_params params;
  dsocr_preprocessed *pp;
  dsocr_ocr_embeddings *emb;
  const dsocr_tensor *want, *got;
  GError *err = NULL;

  fail_unless (em != NULL, "page %d: no embeddings meta", index + 1);
  got = em->embeddings->embeds;
  page_view (page, &view);
  page_params (&params, index);
  pp = dsocr_ocr_preprocess (&view, &params, &err);
  fail_unless (pp != NULL, "%s", err ? err->message : "");
  emb = dsocr_ocr_encode (ocr, pp, NULL, &err);
  fail_unless (emb != NULL, "%s", err ? err->message : "");
  want = dsocr_ocr_embeddings_get_tensor (emb);
  fail_unless_equals_int (got->dtype, DSOCR_DTYPE_F32);
  fail_unless_equals_int64 (got->shape[0], want->shape[0]);
  fail_unless_equals_int64 (got->shape[1], want->shape[1]);
  fail_unless_equals_uint64 (got->nbytes, want->nbytes);
  fail_unless (memcmp (got->data, want->data, want->nbytes) == 0,
      "page %d: the pipeline's image embeddings differ from the engine's",
      index + 1);
  dsocr_ocr_embeddings_unref (emb);
  dsocr_preprocessed_free (pp);
  g_free ((gpointer) view.data);
}

GST_START_TEST (test_pdf_to_markdown)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-pdf-md-XXXXXX", NULL);
  gchar *pdf = pc_write_pdf (tmp, "doc.pdf");
  gchar *md_path = g_build_filename (tmp, "doc.md", NULL);
  gchar *json_path = g_build_filename (tmp, "doc.jsonl", NULL);
  gchar *model = check_fixture ("tiny-ocr-e2e");
  GPtrArray *pages = g_ptr_array_new_with_free_func ((GDestroyNotify) page_free);
  GPtrArray *decoded = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  GPtrArray *msgs, *results;
  GstElement *pipe, *catcher, *decoded_sink;
  GError *err = NULL;
  gchar *desc, *md, *json, **md_pages, **json_lines;
  dsocr_ocr *ocr;
  guint i, loaded, shared;

  desc = g_strdup_printf ("filesrc location=\"%s\" ! dsocrpdfdec ! tee name=pages "
      "pages. ! queue ! dsocrpreprocess mode=tiny ! "
      "dsocrencode model-location=\"%s\" ! "
      "dsocrdecode model-location=\"%s\" max-new-tokens=%d ! tee name=results "
      "results. ! queue ! dsocrresult format=markdown ! filesink location=\"%s\" "
      "results. ! queue ! dsocrresult format=json ! filesink location=\"%s\" "
      "results. ! queue ! fakesink name=decoded signal-handoffs=true sync=false "
      "pages. ! queue ! fakesink name=catcher signal-handoffs=true sync=false",
      pdf, model, model, MAX_NEW_TOKENS, md_path, json_path);
  pipe = gst_parse_launch_full (desc, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  catcher = gst_bin_get_by_name (GST_BIN (pipe), "catcher");
  g_signal_connect (catcher, "handoff", G_CALLBACK (on_page), pages);
  decoded_sink = gst_bin_get_by_name (GST_BIN (pipe), "decoded");
  g_signal_connect (decoded_sink, "handoff", G_CALLBACK (on_decoded), decoded);
  msgs = pc_play_to_eos (pipe);
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);

  /* one model load, shared by the encoder and the decoder; one result per page, numbered */
  check_model_messages (msgs, &loaded, &shared);
  fail_unless_equals_int (loaded, 1);
  fail_unless_equals_int (shared, 1);
  results = check_element_messages (msgs, "dsocr-result");
  fail_unless_equals_int (results->len, 2);
  for (i = 0; i < results->len; i++) {
    gint page = 0;

    fail_unless (gst_structure_get_int (g_ptr_array_index (results, i), "page",
            &page));
    fail_unless_equals_int (page, i + 1);
  }
  g_ptr_array_unref (results);

  /* the pages as rendered: the sizes of the document's pages at 144 dpi */
  fail_unless_equals_int (pages->len, 2);
  for (i = 0; i < pages->len; i++) {
    Page *p = g_ptr_array_index (pages, i);

    fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&p->info), pc_pages[i].w * 2);
    fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&p->info),
        pc_pages[i].h * 2);
  }

  /* the files hold what the engine gives for those pages, nothing more */
  md = pc_read_file (md_path);
  json = pc_read_file (json_path);
  md_pages = g_strsplit (md, SEPARATOR, -1);
  json_lines = pc_lines (json);
  fail_unless_equals_int (g_strv_length (md_pages), 2);
  fail_unless_equals_int (g_strv_length (json_lines), 2);
  fail_unless_equals_int (decoded->len, 2);
  ocr = dsocr_ocr_load (model, &err);
  fail_unless (ocr != NULL, "%s", err ? err->message : "");
  for (i = 0; i < 2; i++) {
    dsocr_result *r = engine_result (ocr, g_ptr_array_index (pages, i), i);
    gchar *want_json = dsocr_result_to_json (r, FALSE);
    JsonNode *node = pc_parse_json (json_lines[i]);

    check_embeddings (ocr, g_ptr_array_index (pages, i),
        g_ptr_array_index (decoded, i), i);
    /* something was generated, so that the comparison means something */
    fail_unless (*dsocr_result_get_raw_text (r) != '\0', "page %u: no text", i + 1);
    GST_INFO ("page %u: %s", i + 1, dsocr_result_get_raw_text (r));
    fail_unless_equals_string (md_pages[i], dsocr_result_get_markdown (r));
    fail_unless_equals_string (json_lines[i], want_json);
    /* the JSON numbers the pages from 0, as the reference's crop names do */
    fail_unless_equals_int (json_object_get_int_member (json_node_get_object
            (node), "page"), i);
    json_node_unref (node);
    g_free (want_json);
    dsocr_result_free (r);
  }
  dsocr_ocr_unref (ocr);

  g_strfreev (json_lines);
  g_strfreev (md_pages);
  g_free (json);
  g_free (md);
  g_ptr_array_unref (msgs);
  gst_object_unref (decoded_sink);
  gst_object_unref (catcher);
  g_ptr_array_unref (decoded);
  gst_object_unref (pipe);
  g_ptr_array_unref (pages);
  g_free (desc);
  g_free (model);
  g_free (json_path);
  g_free (md_path);
  g_free (pdf);
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

static Suite *
pdf_to_markdown_suite (void)
{
  Suite *s = suite_create ("pipeline-pdf-to-markdown");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_pdf_to_markdown);
  return s;
}

GST_CHECK_MAIN (pdf_to_markdown);
