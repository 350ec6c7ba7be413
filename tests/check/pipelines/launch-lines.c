/* launch-lines.c: the example scripts of pipelines/ must keep working.
 *
 * Every script prints its gst-launch-1.0 command with --print (shell-quoted, expanded from
 * its options); the tests read that command back with g_shell_parse_argv() and:
 *   - parse it with gst_parse_launchv() for every script in pipelines/ (a new script must be
 *     added to the table below), with dummy files: an unknown element, property or value
 *     fails. v4l2src and autovideosink are replaced by videotestsrc and fakesink when this
 *     machine lacks them;
 *   - run it in this process to end-of-stream on real inputs (the sample documents, the tiny
 *     model fixtures, a video made here), the camera's source and window replaced, and check
 *     what it wrote (images-to-json.sh: the very lines tools/dsocr prints for each image);
 *   - in a build without sanitizers (whose plugin gst-launch-1.0 cannot load), run the
 *     scripts themselves with bash: plugin lookup, messages and exit codes. */
#include "pipelinecheck.h"

#include <dsocr/dsocr.h>

/* gst-launch-1.0 and gst-inspect-1.0 are not instrumented: they cannot load the plugin of a
 * sanitizer build, whose scripts are therefore not run by bash. */
#if defined(__SANITIZE_ADDRESS__)
#define PC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PC_SANITIZED 1
#endif
#endif
#ifndef PC_SANITIZED
#define PC_SANITIZED 0
#endif

typedef struct Script Script;
typedef void (*CheckFunc) (const Script * s, const gchar * tmp, GPtrArray * msgs);

struct Script
{
  const gchar *name;            /* pipelines/<name> */
  /* --print arguments, split at spaces after substitution: @T@ the test's temporary
   * folder, @M@ the tiny OCR model, @C@ the tiny classifier, @S@ tests/fixtures/sample */
  const gchar *parse_args;      /* dummy inputs, every option */
  const gchar *run_args;        /* real inputs, tiny settings */
  CheckFunc check;              /* checks a run */
};

/* ---- what each run must write ---- */

static gchar **
read_lines (const gchar * tmp, const gchar * name)
{
  gchar *path = g_build_filename (tmp, name, NULL);
  gchar *text = pc_read_file (path);
  gchar **lines = pc_lines (text);

  g_free (text);
  g_free (path);
  return lines;
}

/* @n JSON lines in @tmp/out.jsonl (n < 0: at least one), frames of @w x @h (w = 0: any). */
static void
check_json_lines (const gchar * tmp, gint n, gint w, gint h)
{
  gchar **lines = read_lines (tmp, "out.jsonl");
  guint i, len = g_strv_length (lines);

  if (n >= 0) {
    fail_unless_equals_int (len, n);
  } else {
    fail_unless (len >= 1, "no JSON line");
  }
  for (i = 0; i < len; i++) {
    JsonNode *node = pc_parse_json (lines[i]);
    JsonObject *o = json_node_get_object (node);

    fail_unless (json_object_has_member (o, "markdown"), "%s", lines[i]);
    if (w) {
      fail_unless_equals_int (json_object_get_int_member (o, "width"), w);
      fail_unless_equals_int (json_object_get_int_member (o, "height"), h);
    }
    json_node_unref (node);
  }
  g_strfreev (lines);
}

static void
check_pdf_to_images (const Script * s, const gchar * tmp, GPtrArray * msgs)
{
  guint i;

  /* sample.pdf: two A4 pages (595 x 842 pt) at 36 dpi */
  for (i = 1; i <= 3; i++) {
    gchar *name = g_strdup_printf ("page-%03u.png", i);
    gchar *path = g_build_filename (tmp, "pages", name, NULL);
    dsocr_image *img = dsocr_image_load (path, NULL, NULL);

    if (i <= 2) {
      fail_unless (img != NULL, "%s", path);
      fail_unless_equals_int (img->width, 298);
      fail_unless_equals_int (img->height, 421);
    } else {
      fail_unless (img == NULL, "a third page from a two-page document");
    }
    dsocr_image_free (img);
    g_free (path);
    g_free (name);
  }
}

static void
check_pdf_to_markdown (const Script * s, const gchar * tmp, GPtrArray * msgs)
{
  gchar *path = g_build_filename (tmp, "out.md", NULL);
  gchar *md = pc_read_file (path);
  gchar **pages = g_strsplit (md, "\n<--- Page Split --->\n", -1);
  GPtrArray *results = check_element_messages (msgs, "dsocr-result");

  fail_unless_equals_int (g_strv_length (pages), 2);
  fail_unless_equals_int (results->len, 2);
  g_ptr_array_unref (results);
  g_strfreev (pages);
  g_free (md);
  g_free (path);
}

/* What tools/dsocr prints with --json for @image alone (one line, transfer full). */
static gchar *
cli_json (const gchar * image, const gchar * mode, const gchar * max_new_tokens)
{
  const gchar *tool = g_getenv ("DSOCR_TOOL");
  gchar *model = check_fixture ("tiny-ocr-e2e");
  const gchar *argv[] = { tool, "--model", model, "--mode", mode,
    "--max-new-tokens", max_new_tokens, "--json", image, NULL
  };
  gchar *out = NULL, *err = NULL;
  GError *error = NULL;
  gint status = -1;

  fail_unless (tool != NULL, "DSOCR_TOOL: the dsocr tool (set by tests/meson.build)");
  fail_unless (g_spawn_sync (NULL, (gchar **) argv, NULL, 0, NULL, NULL, &out,
          &err, &status, &error), "%s: %s", tool, error ? error->message : "");
  fail_unless (g_spawn_check_wait_status (status, NULL), "%s %s: %s", tool,
      image, err);
  g_strchomp (out);
  g_free (err);
  g_free (model);
  return out;
}

/* One line per image, in name order, each the same as tools/dsocr gives for that image
 * with the same settings (the run's arguments): pngdec's pixels are the engine's. */
static void
check_images_to_json (const Script * s, const gchar * tmp, GPtrArray * msgs)
{
  gchar **lines = read_lines (tmp, "out.jsonl");
  guint i;

  fail_unless_equals_int (g_strv_length (lines), 2);
  for (i = 0; i < 2; i++) {
    gchar *name = g_strdup_printf ("%u.png", i + 1);
    gchar *image = g_build_filename (tmp, "images", name, NULL);
    gchar *want = cli_json (image, "tiny", "4");

    fail_unless_equals_string (lines[i], want);
    g_free (want);
    g_free (image);
    g_free (name);
  }
  g_strfreev (lines);
}

static void
check_video_ocr (const Script * s, const gchar * tmp, GPtrArray * msgs)
{
  /* a 2 s video sampled once a second */
  check_json_lines (tmp, 2, 160, 120);
}

static void
check_camera_ocr (const Script * s, const gchar * tmp, GPtrArray * msgs)
{
  /* leaky queues: some frames are dropped, never all */
  check_json_lines (tmp, -1, 160, 120);
}

static void
check_classify (const Script * s, const gchar * tmp, GPtrArray * msgs)
{
  GPtrArray *cls = check_element_messages (msgs, "dsocr-class");
  guint i;

  fail_unless_equals_int (cls->len, 2);
  for (i = 0; i < cls->len; i++) {
    gboolean passed = FALSE;

    fail_unless (gst_structure_get_boolean (g_ptr_array_index (cls, i),
            "passed", &passed));
    fail_unless (passed);
  }
  g_ptr_array_unref (cls);
  check_json_lines (tmp, 2, 0, 0);
}

static const Script scripts[] = {
  {"pdf-to-images.sh",
        "--print @T@/doc.pdf @T@/pages 100",
        "--print @S@/sample.pdf @T@/pages 36",
      check_pdf_to_images},
  {"pdf-to-markdown.sh",
        "--print --model @M@ --mode small --dpi 100 --max-new-tokens 8 -o @T@/out.md "
        "@T@/doc.pdf",
        "--print --model @M@ --mode tiny --dpi 72 --max-new-tokens 4 -o @T@/out.md "
        "@S@/sample.pdf",
      check_pdf_to_markdown},
  {"images-to-json.sh",
        "--print --model @M@ --mode base -o @T@/out.jsonl @T@/a.jpg @T@/b.jpeg",
        "--print --model @M@ --mode tiny --max-new-tokens 4 -o @T@/out.jsonl @T@/images",
      check_images_to_json},
  {"video-ocr.sh",
        "--print --model @M@ --rate 2 --interval 1 --every-frame -o @T@/out.jsonl "
        "@T@/video.mkv",
        "--print --model @M@ --mode tiny --max-new-tokens 4 -o @T@/out.jsonl "
        "@T@/video.avi",
      check_video_ocr},
  {"camera-ocr.sh",
        "--print --model @M@ --device /dev/video9 --size 320x240 --json @T@/out.jsonl",
        "--print --model @M@ --mode tiny --max-new-tokens 4 --size 160x120 "
        "--json @T@/out.jsonl",
      check_camera_ocr},
  {"classify.sh",
        "--print --model @M@ --classifier @C@ --keep neutral,positive -o @T@/out.jsonl "
        "@T@/doc.pdf",
        "--print --model @M@ --classifier @C@ --mode tiny --dpi 72 --max-new-tokens 4 "
        "--keep negative,neutral,positive -o @T@/out.jsonl @S@/sample.pdf",
      check_classify},
};

/* ---- the scripts ---- */

/* @args with the placeholders replaced, split at spaces (transfer full). */
static gchar **
expand_args (const gchar * args, const gchar * tmp)
{
  gchar *model = check_fixture ("tiny-ocr-e2e");
  gchar *cls = check_fixture ("sample/tiny-classifier");
  gchar *sample = check_fixture ("sample");
  const gchar *from[] = { "@T@", "@M@", "@C@", "@S@" };
  const gchar *to[] = { tmp, model, cls, sample };
  gchar *text = g_strdup (args), **out;
  guint i;

  for (i = 0; i < G_N_ELEMENTS (from); i++) {
    gchar **parts = g_strsplit (text, from[i], -1);

    g_free (text);
    text = g_strjoinv (to[i], parts);
    g_strfreev (parts);
  }
  out = g_strsplit (text, " ", -1);
  g_free (text);
  g_free (sample);
  g_free (cls);
  g_free (model);
  return out;
}

/* Runs `bash pipelines/@name @args` with @env (transfer none; NULL: this process's);
 * returns the exit status, the output in @out and @err (transfer full). */
static gint
run_script (const gchar * name, gchar ** args, gchar ** env, gchar ** out,
    gchar ** err)
{
  gchar *script_rel = g_build_filename ("pipelines", name, NULL);
  gchar *script = pc_source_path (script_rel);
  GPtrArray *argv = g_ptr_array_new ();
  GError *error = NULL;
  gint status = -1;
  guint i;

  g_ptr_array_add (argv, (gpointer) "bash");
  g_ptr_array_add (argv, script);
  for (i = 0; args && args[i]; i++)
    g_ptr_array_add (argv, args[i]);
  g_ptr_array_add (argv, NULL);
  fail_unless (g_spawn_sync (NULL, (gchar **) argv->pdata, env,
          G_SPAWN_SEARCH_PATH, NULL, NULL, out, err, &status, &error),
      "bash %s: %s", script, error ? error->message : "");
  g_ptr_array_unref (argv);
  g_free (script);
  g_free (script_rel);
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return -1;
}

/* The pipeline description of @s's gst-launch-1.0 command with @args_text (--print):
 * the arguments after the program and its options (transfer full). */
static gchar **
printed_pipeline (const Script * s, const gchar * args_text, const gchar * tmp)
{
  gchar **args = expand_args (args_text, tmp);
  gchar **env = g_environ_setenv (g_get_environ (), "TMPDIR", tmp, TRUE);
  gchar *out = NULL, *err = NULL, **argv = NULL, **desc;
  GError *error = NULL;
  gint argc = 0, status, i;

  status = run_script (s->name, args, env, &out, &err);
  fail_unless (status == 0, "%s %s: exit %d\n%s", s->name, args_text, status,
      err);
  fail_unless (g_shell_parse_argv (out, &argc, &argv, &error),
      "%s: cannot read the printed command: %s\n%s", s->name,
      error ? error->message : "", out);
  fail_unless (argc > 1 && g_str_equal (argv[0], "gst-launch-1.0"),
      "%s: printed %s", s->name, out);
  for (i = 1; i < argc && argv[i][0] == '-'; i++);
  fail_unless (i < argc, "%s: no pipeline in %s", s->name, out);
  desc = g_strdupv (argv + i);
  g_strfreev (argv);
  g_free (err);
  g_free (out);
  g_strfreev (env);
  g_strfreev (args);
  return desc;
}

/* Replaces element @name and its properties in @desc by @by (space-separated). */
static gchar **
replace_element (gchar ** desc, const gchar * name, const gchar * by)
{
  GPtrArray *out = g_ptr_array_new ();
  guint i;

  for (i = 0; desc[i]; i++) {
    gchar **parts, **p;

    if (!g_str_equal (desc[i], name)) {
      g_ptr_array_add (out, g_strdup (desc[i]));
      continue;
    }
    parts = g_strsplit (by, " ", -1);
    for (p = parts; *p; p++)
      g_ptr_array_add (out, g_strdup (*p));
    g_strfreev (parts);
    while (desc[i + 1] && !g_str_equal (desc[i + 1], "!"))
      i++;
  }
  g_ptr_array_add (out, NULL);
  g_strfreev (desc);
  return (gchar **) g_ptr_array_free (out, FALSE);
}

static gboolean
have_element (const gchar * name)
{
  GstElementFactory *f = gst_element_factory_find (name);

  if (f)
    gst_object_unref (f);
  return f != NULL;
}

static GstElement *
parse (const Script * s, gchar ** desc)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launchv_full ((const gchar **) desc, NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &err);
  gchar *text = g_strjoinv (" ", desc);

  fail_unless (pipe != NULL && err == NULL, "%s: %s\n%s", s->name,
      err ? err->message : "", text);
  g_free (text);
  return pipe;
}

static const Script *
find_script (const gchar * name)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (scripts); i++)
    if (g_str_equal (scripts[i].name, name))
      return &scripts[i];
  return NULL;
}

/* ---- the tests ---- */

GST_START_TEST (test_every_script_parses)
{
  gchar *dir = pc_source_path ("pipelines");
  GDir *d = g_dir_open (dir, 0, NULL);
  gchar *tmp = g_dir_make_tmp ("dsocr-launch-XXXXXX", NULL);
  const gchar *name;
  guint n = 0;

  fail_unless (d != NULL, "%s", dir);
  while ((name = g_dir_read_name (d))) {
    const Script *s;
    gchar **desc;
    GstElement *pipe;

    if (!g_str_has_suffix (name, ".sh"))
      continue;
    s = find_script (name);
    fail_unless (s != NULL, "pipelines/%s is not in the table of %s", name,
        __FILE__);
    desc = printed_pipeline (s, s->parse_args, tmp);
    if (!have_element ("v4l2src"))
      desc = replace_element (desc, "v4l2src", "videotestsrc");
    if (!have_element ("autovideosink"))
      desc = replace_element (desc, "autovideosink", "fakesink");
    pipe = parse (s, desc);
    gst_object_unref (pipe);
    g_strfreev (desc);
    n++;
  }
  fail_unless_equals_int (n, G_N_ELEMENTS (scripts));
  g_dir_close (d);
  pc_remove_tree (tmp);
  g_free (tmp);
  g_free (dir);
}

GST_END_TEST;

/* The inputs of the runs in @tmp: images/1.png, images/2.png, a 2 s video, and the output
 * folder pages/. */
static void
make_inputs (const gchar * tmp)
{
  gchar *images = g_build_filename (tmp, "images", NULL);
  gchar *src[2] = { check_fixture ("sample/sample.png"),
    check_fixture ("tiny-ocr-e2e/page.png")
  };
  gchar *video, *desc;
  GPtrArray *msgs;
  guint i;

  fail_unless (g_mkdir (images, 0755) == 0);
  /* pdf-to-images.sh makes its output folder before it runs the pipeline */
  {
    gchar *pages = g_build_filename (tmp, "pages", NULL);

    fail_unless (g_mkdir (pages, 0755) == 0);
    g_free (pages);
  }
  for (i = 0; i < 2; i++) {
    gchar *name = g_strdup_printf ("%u.png", i + 1);
    gchar *dst = g_build_filename (images, name, NULL);

    fail_unless (symlink (src[i], dst) == 0, "%s", dst);
    g_free (dst);
    g_free (name);
    g_free (src[i]);
  }
  video = g_build_filename (tmp, "video.avi", NULL);
  desc = g_strdup_printf ("videotestsrc num-buffers=10 pattern=smpte ! "
      "video/x-raw,width=160,height=120,framerate=5/1 ! jpegenc ! avimux ! "
      "filesink location=\"%s\"", video);
  msgs = pc_run (desc);
  g_ptr_array_unref (msgs);
  g_free (desc);
  g_free (video);
  g_free (images);
}

GST_START_TEST (test_scripts_run)
{
  gchar *tmp = g_dir_make_tmp ("dsocr-launch-XXXXXX", NULL);
  guint i;

  make_inputs (tmp);
  for (i = 0; i < G_N_ELEMENTS (scripts); i++) {
    const Script *s = &scripts[i];
    gchar **desc = printed_pipeline (s, s->run_args, tmp);
    GstElement *pipe;
    GPtrArray *msgs;

    /* the scripts empty their output file (filesink appends) before they run */
    {
      gchar *out = g_build_filename (tmp, "out.jsonl", NULL);

      g_unlink (out);
      g_free (out);
    }
    /* no camera and no display here */
    desc = replace_element (desc, "v4l2src", "videotestsrc num-buffers=5");
    desc = replace_element (desc, "autovideosink", "fakesink");
    pipe = parse (s, desc);
    GST_INFO ("%s", s->name);
    msgs = pc_play_to_eos (pipe);
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    s->check (s, tmp, msgs);
    g_ptr_array_unref (msgs);
    gst_object_unref (pipe);
    g_strfreev (desc);
  }
  pc_remove_tree (tmp);
  g_free (tmp);
}

GST_END_TEST;

#if !PC_SANITIZED
/* The environment of a script run: the build's plugin, a registry of its own. (transfer
 * full) */
static gchar **
script_env (const gchar * tmp)
{
  gchar **env = g_get_environ ();
  gchar *registry = g_build_filename (tmp, "registry.bin", NULL);

  env = g_environ_setenv (env, "GST_REGISTRY_1_0", registry, TRUE);
  env = g_environ_unsetenv (env, "DSOCR_MODEL");
  env = g_environ_unsetenv (env, "DSOCR_CLASSIFIER");
  g_free (registry);
  return env;
}

static gint
run_script_text (const gchar * name, const gchar * args_text, gchar ** env,
    const gchar * tmp, gchar ** out, gchar ** err)
{
  gchar **args = expand_args (args_text, tmp);
  gint status = run_script (name, args, env, out, err);

  GST_INFO ("%s %s: exit %d\n%s%s", name, args_text, status, *out, *err);
  g_strfreev (args);
  return status;
}

#endif

GST_START_TEST (test_scripts_in_shell)
{
#if PC_SANITIZED
  /* the pipelines themselves run in test_scripts_run */
  GST_INFO ("sanitizer build: the scripts are not run with gst-launch-1.0");
#else
  gchar *tmp = g_dir_make_tmp ("dsocr-shell-XXXXXX", NULL);
  gchar **env = script_env (tmp);
  gchar *out = NULL, *err = NULL, *md_path, *md, **pages, *bad;
  gchar *system_dir;
  guint i;

  fail_unless (g_getenv ("DSOCR_BUILD_DIR") != NULL,
      "DSOCR_BUILD_DIR: the build directory (set by tests/check/meson.build)");

  /* every script answers --help */
  for (i = 0; i < G_N_ELEMENTS (scripts); i++) {
    fail_unless_equals_int (run_script_text (scripts[i].name, "--help", env,
            tmp, &out, &err), 0);
    fail_unless (strstr (out, "usage:") != NULL, "%s --help: %s",
        scripts[i].name, out);
    g_free (out);
    g_free (err);
    /* and a wrong call */
    fail_unless_equals_int (run_script_text (scripts[i].name, "--no-such-option",
            env, tmp, &out, &err), 2);
    fail_unless (strstr (err, "usage:") != NULL, "%s: %s", scripts[i].name,
        err);
    g_free (out);
    g_free (err);
  }

  /* the sample document, the default model (the bundled dsocr-reader): two pages */
  fail_unless_equals_int (run_script_text ("pdf-to-markdown.sh",
          "--mode tiny --dpi 72 --max-new-tokens 4 -o @T@/out.md @S@/sample.pdf",
          env, tmp, &out, &err), 0);
  md_path = g_build_filename (tmp, "out.md", NULL);
  md = pc_read_file (md_path);
  pages = g_strsplit (md, "\n<--- Page Split --->\n", -1);
  fail_unless_equals_int (g_strv_length (pages), 2);
  g_strfreev (pages);
  g_free (md);
  g_free (md_path);
  g_free (out);
  g_free (err);

  /* one label line per page, from the bus messages */
  fail_unless_equals_int (run_script_text ("classify.sh",
          "--mode tiny --dpi 72 --max-new-tokens 4 @S@/sample.pdf", env, tmp,
          &out, &err), 0);
  {
    gchar **lines = pc_lines (out);

    fail_unless_equals_int (g_strv_length (lines), 2);
    for (i = 0; i < 2; i++) {
      gchar *prefix = g_strdup_printf ("page %u: ", i + 1);

      fail_unless (g_str_has_prefix (lines[i], prefix), "%s", lines[i]);
      fail_unless (g_str_has_suffix (lines[i], " kept"), "%s", lines[i]);
      g_free (prefix);
    }
    g_strfreev (lines);
  }
  g_free (out);
  g_free (err);

  /* no model there */
  fail_unless_equals_int (run_script_text ("pdf-to-markdown.sh",
          "--model @T@/no-model @S@/sample.pdf", env, tmp, &out, &err), 1);
  fail_unless (strstr (err, "no model in") != NULL, "%s", err);
  g_free (out);
  g_free (err);

  /* a damaged document: gst-launch-1.0 fails with dsocrpdfdec's message */
  bad = g_build_filename (tmp, "bad.pdf", NULL);
  fail_unless (g_file_set_contents (bad, "%PDF-1.4\ngarbage\n", -1, NULL));
  fail_unless (run_script_text ("pdf-to-markdown.sh", "--mode tiny @T@/bad.pdf",
          env, tmp, &out, &err) != 0);
  fail_unless (strstr (err, "Could not open the PDF document") != NULL, "%s",
      err);
  g_free (out);
  g_free (err);
  g_free (bad);

  /* the plugin not built (unless it is installed) */
  system_dir = g_build_filename (g_getenv ("GST_PLUGIN_SYSTEM_PATH_1_0") ?
      g_getenv ("GST_PLUGIN_SYSTEM_PATH_1_0") : "/nonexistent",
      "libgstdsocr.so", NULL);
  if (!g_file_test (system_dir, G_FILE_TEST_EXISTS)) {
    gchar **bare = g_strdupv (env);
    gchar *nobuild = g_build_filename (tmp, "no-build", NULL);

    bare = g_environ_setenv (bare, "DSOCR_BUILD_DIR", nobuild, TRUE);
    bare = g_environ_unsetenv (bare, "GST_PLUGIN_PATH_1_0");
    bare = g_environ_unsetenv (bare, "GST_PLUGIN_PATH");
    fail_unless_equals_int (run_script_text ("pdf-to-markdown.sh",
            "@S@/sample.pdf", bare, tmp, &out, &err), 1);
    fail_unless (strstr (err, "not found: build the plugin") != NULL, "%s",
        err);
    g_free (out);
    g_free (err);
    g_free (nobuild);
    g_strfreev (bare);
  }
  g_free (system_dir);

  g_strfreev (env);
  pc_remove_tree (tmp);
  g_free (tmp);
#endif
}

GST_END_TEST;

static Suite *
launch_lines_suite (void)
{
  Suite *s = suite_create ("pipeline-launch-lines");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_every_script_parses);
  tcase_add_test (tc, test_scripts_run);
  tcase_add_test (tc, test_scripts_in_shell);
  return s;
}

GST_CHECK_MAIN (launch_lines);
