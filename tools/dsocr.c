/* dsocr: DeepSeek-OCR on image files.
 *
 *   dsocr [--model DIR] [--mode tiny|small|base|large|gundam] [--prompt TEXT]
 *         [--max-new-tokens N] [--max-tiles N] [--ngram hf|window|none] [--threads N]
 *         [--precision f32|bf16|q8|q4] [--json] [--output-dir DIR] IMAGE...
 *
 * Prints each image's markdown (pages joined by the PDF script's "<--- Page Split --->" line),
 * or with --json one JSON object per image and line (docs/result-json.md). With --output-dir,
 * the crops of the regions labelled "image" are written to DIR/images/ (N.jpg for one image,
 * PAGE_N.jpg when several are given, PAGE counting from 0). Errors go to stderr and make the
 * exit status 1; the remaining images are still processed.
 *
 * The weights are prepared once for the precision before the first image, and what they take
 * is printed to stderr. Without --model it runs the default model (dsocr_ocr_default_model_dir(): $DSOCR_MODEL,
 * else the bundled dsocr-reader); with the bundled model the mode defaults to tiny, the mode it
 * was trained in, and gundam otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsocr/dsocr.h>

static const char *prog = "dsocr";

static void
report (const char *what, const GError *error)
{
  if (what)
    g_printerr ("%s: %s: %s\n", prog, what, error->message);
  else
    g_printerr ("%s: %s\n", prog, error->message);
}

/* OCRs one image file and prints its page. */
static gboolean
run_one (dsocr_ocr *ocr, const char *path, const dsocr_ocr_params *params, gboolean json,
         const char *output_dir, gboolean first, GError **error)
{
  dsocr_image *img = dsocr_image_load (path, NULL, error);
  if (!img)
    return FALSE;
  dsocr_image_view view = dsocr_image_get_view (img);
  dsocr_result *r = dsocr_ocr_run (ocr, &view, params, NULL, NULL, error);
  gboolean ok = r != NULL;

  if (ok && output_dir)
    ok = dsocr_result_write_crops (r, &view, output_dir, DSOCR_CROP_QUALITY_REFERENCE, NULL,
                                   error);
  if (ok) {
    if (json) {
      char *s = dsocr_result_to_json (r, FALSE);
      puts (s);
      g_free (s);
    } else {
      if (!first)
        fputs ("\n<--- Page Split --->\n", stdout);
      fputs (dsocr_result_get_markdown (r), stdout);
      putchar ('\n');
    }
    fflush (stdout);
    if (dsocr_result_get_flags (r) & DSOCR_RESULT_HIT_TOKEN_LIMIT)
      g_printerr ("%s: %s: stopped at the token limit%s\n", prog, path,
                  dsocr_result_get_flags (r) & DSOCR_RESULT_REPETITION_STOPPED
                    ? " while repeating itself" : "");
  }
  dsocr_result_free (r);
  dsocr_image_free (img);
  return ok;
}

int
main (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *mode_name = NULL, *prompt = NULL, *ngram = NULL;
  g_autofree char *output_dir = NULL, *precision = NULL;
  g_auto (GStrv) images = NULL;
  int max_new = DSOCR_OCR_MAX_NEW_TOKENS, max_tiles = DSOCR_MAX_TILES_HF, threads = 0;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir,
      "DeepSeek-OCR model directory (config.json, model.safetensors, tokenizer.json); default: "
      "$DSOCR_MODEL, else the bundled dsocr-reader", "DIR" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_name,
      "tiny, small, base, large or gundam (default: tiny for the bundled dsocr-reader, "
      "gundam otherwise)", "MODE" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt,
      "Prompt with one <image> (default: \"<image>\\n<|grounding|>Convert the document to "
      "markdown.\")", "TEXT" },
    { "max-new-tokens", 'n', 0, G_OPTION_ARG_INT, &max_new,
      "Tokens to generate at most (8192)", "N" },
    { "max-tiles", 0, 0, G_OPTION_ARG_INT, &max_tiles,
      "Most tiles in gundam mode: 9 as the HF reference, 6 as vLLM", "N" },
    { "ngram", 0, 0, G_OPTION_ARG_STRING, &ngram,
      "Repetition guard: hf (no_repeat_ngram_size 20, the default), window (vLLM: 30 in 90, "
      "<td> </td> exempt) or none", "GUARD" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Decoder threads, 0 = all processors",
      "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision,
      "f32, bf16, q8 or q4: how the decoder's weights are held (docs/numerics.md); default f32",
      "P" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object per image", NULL },
    { "output-dir", 'o', 0, G_OPTION_ARG_FILENAME, &output_dir,
      "Write image crops to DIR/images/", "DIR" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &images, NULL, "IMAGE..." },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("IMAGE... - DeepSeek-OCR");
  GError *error = NULL;
  dsocr_ocr_params params;
  dsocr_ocr *ocr = NULL;
  int status = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    report (NULL, error);
    g_error_free (error);
    return 1;
  }
  dsocr_ocr_params_init (&params);
  if (!images || !images[0]) {
    g_printerr ("%s: need at least one IMAGE (see --help)\n", prog);
    return 1;
  }
  const gboolean defaulted = !model_dir || !*model_dir;
  if (defaulted) {
    g_free (model_dir);
    model_dir = g_strdup (dsocr_ocr_default_model_dir ());
    /* the bundled model reads pages squashed to 512 x 512, as it was trained */
    if (!g_getenv ("DSOCR_MODEL") || !*g_getenv ("DSOCR_MODEL"))
      params.mode = DSOCR_MODE_TINY;
  }
  if (mode_name && !dsocr_mode_from_name (mode_name, &params.mode)) {
    g_printerr ("%s: --mode: unknown mode '%s' (tiny, small, base, large, gundam)\n", prog,
                mode_name);
    return 1;
  }
  if (ngram) {
    if (strcmp (ngram, "hf") == 0)
      params.ngram_guard = DSOCR_NGRAM_GUARD_HF;
    else if (strcmp (ngram, "window") == 0)
      params.ngram_guard = DSOCR_NGRAM_GUARD_WINDOW;
    else if (strcmp (ngram, "none") == 0)
      params.ngram_guard = DSOCR_NGRAM_GUARD_NONE;
    else {
      g_printerr ("%s: --ngram: unknown guard '%s' (hf, window, none)\n", prog, ngram);
      return 1;
    }
  }
  if (max_new < 0 || threads < 0 || max_tiles < 2 || max_tiles > DSOCR_MAX_TILES_LIMIT) {
    g_printerr ("%s: --max-new-tokens and --threads must be >= 0, --max-tiles in 2..%d\n", prog,
                DSOCR_MAX_TILES_LIMIT);
    return 1;
  }
  if (precision && !dsocr_precision_from_string (precision, &params.precision, &error)) {
    g_printerr ("%s: --precision: %s\n", prog, error->message);
    g_error_free (error);
    return 1;
  }
  params.prompt = prompt;
  params.max_new_tokens = max_new;
  params.max_tiles = max_tiles;
  params.n_threads = threads;

  ocr = dsocr_ocr_load (model_dir, &error);
  if (!ocr) {
    report (NULL, error);
    if (defaulted)
      g_printerr ("%s: that is the default model; pass --model DIR or set DSOCR_MODEL to a "
                  "DeepSeek-OCR model directory\n", prog);
    g_error_free (error);
    return 1;
  }
  /* one backend for every image; the weights prepared for it before the first */
  dsocr_backend *backend = dsocr_backend_new ("cpu", threads, &error);
  gsize dec_bytes = 0, vis_bytes = 0;
  if (!backend || !dsocr_ocr_prepare (ocr, backend, params.precision, &dec_bytes, &vis_bytes,
                                      &error)) {
    report (NULL, error);
    g_error_free (error);
    dsocr_backend_unref (backend);
    dsocr_ocr_unref (ocr);
    return 1;
  }
  g_printerr ("%s: weights: decoder %s %.2f GiB, vision tower %.2f GiB, on %s\n", prog,
              dsocr_precision_to_string (params.precision), (double) dec_bytes / (1 << 30),
              (double) vis_bytes / (1 << 30), dsocr_backend_get_description (backend));
  params.backend = backend;
  const gboolean several = images[1] != NULL;
  gboolean first = TRUE;
  for (int i = 0; images[i]; i++) {
    /* Several images are numbered like the pages of a document, so crops do not collide. */
    params.result.page = several ? i : -1;
    if (!run_one (ocr, images[i], &params, json, output_dir, first, &error)) {
      report (g_str_has_prefix (error->message, images[i]) ? NULL : images[i], error);
      g_clear_error (&error);
      status = 1;
    } else {
      first = FALSE;
    }
  }
  dsocr_backend_unref (backend);
  dsocr_ocr_unref (ocr);
  return status;
}
