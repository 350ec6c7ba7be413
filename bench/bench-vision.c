/* bench-vision: speed of the CPU vision tower, per DeepSeek-OCR mode.
 *
 *   bench-vision --model DIR [--mode tiny|small|base|large|gundam|all] [--threads T]
 *                [--reps R] [--check REF.safetensors] [--json] [--batch N]
 *
 * Loads DIR (config.json + model.safetensors with at least the vision tensors) and times the
 * views of each mode: one view of 512, 640, 1024 or 1280 pixels, or for gundam the 1024 global
 * view plus 2 x 3 tiles of 640 through dsocr_vision_encode() including the packing. Pixels come
 * from the generator of tests/reference/make_vision_fixtures.py, so bench/bench_vision_ref.py
 * times the reference on the same input. Every output is checked for shape and finiteness;
 * with --check, the tiny and base projector outputs are compared with the reference's
 * ("tiny.proj", "base.proj" written by bench_vision_ref.py make-full).
 *
 * With --batch N (N > 1) it times, per mode's view size, N views encoded in one
 * dsocr_vision_encode_views() call against N calls of one view each (what dsocrencode's
 * batch-size does across frames), and checks that both give the same rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#endif

#include <dsocr/dsocr.h>

typedef struct {
  const char *name;
  int size;          /* global view side */
  guint32 seed;
  int cols, rows;    /* tiles (gundam) */
} mode_case;

static const mode_case modes[] = {
  { "tiny", 512, 1, 0, 0 }, { "small", 640, 2, 0, 0 }, { "base", 1024, 3, 0, 0 },
  { "large", 1280, 4, 0, 0 }, { "gundam", 1024, 3, 2, 3 },
};

/* The pixel generator of make_vision_fixtures.py: [3, size, size], bf16-rounded values. */
static void
make_pixels (float *p, guint32 seed, int size)
{
  for (guint32 c = 0; c < 3; c++)
    for (guint32 y = 0; y < (guint32) size; y++)
      for (guint32 x = 0; x < (guint32) size; x++) {
        guint32 h = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u) ^ (seed * 2654435761u);
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        guint32 u8 = (x * 192 / (guint32) size + y * 64 / (guint32) size + c * 40 + (h & 63)) & 255;
        float f = ((float) u8 / 255.0f - 0.5f) / 0.5f;
        union { float f; guint32 u; } b = { .f = f };
        b.u = (b.u + 0x7fffu + ((b.u >> 16) & 1u)) & 0xffff0000u;
        p[(c * (gsize) size + y) * size + x] = b.f;
      }
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, compare_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double
peak_rss_gib (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0.0;
  const char *line = strstr (status, "VmHWM:");
  return line ? g_ascii_strtod (line + 6, NULL) / (1024.0 * 1024.0) : 0.0;
}

static gboolean
all_finite (const float *x, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!isfinite (x[i]))
      return FALSE;
  return TRUE;
}

/* The preprocessed image of a mode: global view + tiles (transfer full). */
static dsocr_preprocessed *
make_image (const mode_case *mc)
{
  dsocr_preprocessed *pp = g_new0 (dsocr_preprocessed, 1);
  const int64_t gshape[3] = { 3, mc->size, mc->size };
  pp->global = dsocr_tensor_new (DSOCR_DTYPE_F32, 3, gshape, NULL);
  make_pixels (pp->global->data, mc->seed, mc->size);
  pp->n_tiles = mc->cols * mc->rows;
  pp->grid_cols = mc->cols ? mc->cols : 1;
  pp->grid_rows = mc->rows ? mc->rows : 1;
  pp->view_size = mc->size;
  if (pp->n_tiles) {
    const int64_t tshape[4] = { pp->n_tiles, 3, DSOCR_TILE_SIZE, DSOCR_TILE_SIZE };
    pp->tiles = dsocr_tensor_new (DSOCR_DTYPE_F32, 4, tshape, NULL);
    for (int k = 0; k < pp->n_tiles; k++)
      make_pixels ((float *) pp->tiles->data + (gsize) k * 3 * DSOCR_TILE_SIZE * DSOCR_TILE_SIZE,
                   10 + (guint32) k, DSOCR_TILE_SIZE);
  }
  const int n = mc->size / 64;
  pp->n_image_tokens = n * (n + 1) + 1 + (pp->n_tiles ? mc->rows * 10 * (mc->cols * 10 + 1) : 0);
  return pp;
}

/* N views of @size in one call against N single calls; prints the times and the speed-up. */
static int
bench_batch (dsocr_vision_session *vs, const mode_case *mc, int n_views, int reps, int threads,
             gboolean json)
{
  const dsocr_vision *vis = dsocr_vision_session_get_vision (vs);
  const gsize per = 3 * (gsize) mc->size * mc->size;
  const int g = dsocr_vision_grid_side (vis, mc->size);
  const gsize rows = (gsize) g * g * (gsize) dsocr_vision_get_n_embed (vis);
  float *px = g_new (float, per * (gsize) n_views);
  float *one = g_new (float, rows * (gsize) n_views), *all = g_new (float, rows * (gsize) n_views);
  double *t_one = g_new (double, reps), *t_all = g_new (double, reps);
  GError *error = NULL;
  for (int k = 0; k < n_views; k++)
    make_pixels (px + (gsize) k * per, mc->seed + 100 * (guint32) k, mc->size);
  for (int r = 0; r < reps && !error; r++) {
    gint64 t0 = g_get_monotonic_time ();
    for (int k = 0; k < n_views && !error; k++)
      dsocr_vision_encode_view (vs, px + (gsize) k * per, mc->size, one + (gsize) k * rows,
                                &error);
    t_one[r] = (g_get_monotonic_time () - t0) / 1e6;
    t0 = g_get_monotonic_time ();
    if (!error)
      dsocr_vision_encode_views (vs, px, n_views, mc->size, all, &error);
    t_all[r] = (g_get_monotonic_time () - t0) / 1e6;
  }
  int status = 0;
  if (error) {
    g_printerr ("bench-vision: %s batch: %s\n", mc->name, error->message);
    g_error_free (error);
    status = 1;
  } else {
    double md = 0.0, mr = 0.0;
    for (gsize i = 0; i < rows * (gsize) n_views; i++) {
      md = fmax (md, fabs ((double) all[i] - one[i]));
      mr = fmax (mr, fabs ((double) one[i]));
    }
    const double a = median (t_one, reps), b = median (t_all, reps), rel = mr > 0 ? md / mr : md;
    if (rel > 1e-5)
      status = 1;
    if (json)
      printf ("{\"impl\": \"dsocr\", \"mode\": \"%s\", \"batch\": %d, \"threads\": %d, "
              "\"reps\": %d, \"one_by_one_s\": %.4f, \"batched_s\": %.4f, \"speedup\": %.2f, "
              "\"rel_diff\": %.3g}\n", mc->name, n_views, threads, reps, a, b, a / b, rel);
    else
      printf ("%-7s %d views: one by one %.3f s, batched %.3f s (%.2fx), rel diff %.3g\n",
              mc->name, n_views, a, b, a / b, rel);
    fflush (stdout);
  }
  g_free (px);
  g_free (one);
  g_free (all);
  g_free (t_one);
  g_free (t_all);
  return status;
}

/* Max |got - want| / max |want| against @name of @ref; -1 when the reference lacks it. */
static double
check_against (dsocr_safetensors *ref, const char *name, const float *got, gsize n)
{
  const dsocr_tensor *t = ref ? dsocr_safetensors_get (ref, name) : NULL;
  if (!t || t->dtype != DSOCR_DTYPE_F32 || dsocr_shape_numel (t->n_dims, t->shape) != (int64_t) n)
    return -1.0;
  const float *w = t->data;
  double md = 0.0, mr = 0.0;
  for (gsize i = 0; i < n; i++) {
    md = fmax (md, fabs ((double) got[i] - w[i]));
    mr = fmax (mr, fabs ((double) w[i]));
  }
  return mr > 0 ? md / mr : md;
}

int
main (int argc, char **argv)
{
  g_autofree char *model_dir = NULL, *mode = NULL, *check = NULL;
  int threads = 2, reps = 3, batch = 0;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_dir, "Model directory", "DIR" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode, "tiny, small, base, large, gundam or all (all)",
      "M" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads of the CPU backend (2)", "T" },
    { "reps", 'r', 0, G_OPTION_ARG_INT, &reps, "Repetitions; medians are reported (3)", "R" },
    { "check", 0, 0, G_OPTION_ARG_FILENAME, &check, "Reference outputs to compare with", "F" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "One JSON line per mode", NULL },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch,
      "Time N views in one call against N single calls instead", "N" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- time the vision tower");
  g_autoptr (GError) error = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !model_dir || threads < 1 ||
      reps < 1 || batch < 0 || batch > DSOCR_VISION_MAX_VIEWS) {
    g_printerr ("bench-vision: %s\n", error ? error->message : "need --model DIR");
    return 2;
  }
  gint64 t0 = g_get_monotonic_time ();
  dsocr_config *cfg = dsocr_config_load (model_dir, &error);
  dsocr_checkpoint *ckpt = cfg ? dsocr_checkpoint_open (model_dir, &error) : NULL;
  dsocr_vision *vis = ckpt ? dsocr_vision_new (ckpt, cfg, &error) : NULL;
  dsocr_backend *be = vis ? dsocr_backend_new ("cpu", threads, &error) : NULL;
  dsocr_vision_session *vs = be ? dsocr_vision_session_new (vis, be, &error) : NULL;
  if (!vs) {
    g_printerr ("bench-vision: %s\n", error->message);
    return 1;
  }
  const double load_s = (g_get_monotonic_time () - t0) / 1e6;
  dsocr_safetensors *ref = check ? dsocr_safetensors_open (check, &error) : NULL;
  if (check && !ref) {
    g_printerr ("bench-vision: %s\n", error->message);
    return 1;
  }
  const gsize E = (gsize) dsocr_vision_get_n_embed (vis);
  int status = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++) {
    const mode_case *mc = &modes[i];
    if (mode && strcmp (mode, "all") != 0 && strcmp (mode, mc->name) != 0)
      continue;
    if (batch > 1) {
      if (mc->cols == 0)   /* gundam's views are base's and small's */
        status |= bench_batch (vs, mc, batch, reps, threads, json);
      continue;
    }
    dsocr_preprocessed *pp = make_image (mc);
    double *times = g_new (double, reps);
    dsocr_tensor *emb = NULL;
    for (int r = 0; r < reps && !error; r++) {
      g_clear_pointer (&emb, dsocr_tensor_free);
      t0 = g_get_monotonic_time ();
      emb = dsocr_vision_encode (vs, pp, &error);
      times[r] = (g_get_monotonic_time () - t0) / 1e6;
    }
    if (error) {
      g_printerr ("bench-vision: %s: %s\n", mc->name, error->message);
      status = 1;
      break;
    }
    const gsize n_tok = (gsize) emb->shape[0];
    const gboolean shape_ok = n_tok == (gsize) pp->n_image_tokens && (gsize) emb->shape[1] == E;
    const gboolean finite = all_finite (emb->data, n_tok * E);
    /* the global view's rows, newlines dropped, are the projector output */
    const int n = mc->size / 64;
    float *glob = g_new (float, (gsize) n * n * E);
    const float *gsrc = (const float *) emb->data + (n_tok - (gsize) n * (n + 1) - 1) * E;
    for (int y = 0; y < n; y++)
      memcpy (glob + (gsize) y * n * E, gsrc + (gsize) y * (n + 1) * E,
              (gsize) n * E * sizeof (float));
    g_autofree char *rname = g_strdup_printf ("%s.proj", mc->name);
    const double rel = check_against (ref, rname, glob, (gsize) n * n * E);
    g_free (glob);
    if (!shape_ok || !finite || rel > 1e-3)
      status = 1;

    const double t = median (times, reps);
    if (json)
      printf ("{\"impl\": \"dsocr (f32 activations, weights as stored)\", \"mode\": \"%s\", "
              "\"views\": %d, \"threads\": %d, \"reps\": %d, \"load_s\": %.3f, "
              "\"encode_s\": %.4f, \"n_tokens\": %zu, \"shape_ok\": %s, \"finite\": %s, "
              "\"rel_err_vs_ref\": %.3g, \"max_rss_gib\": %.2f}\n",
              mc->name, 1 + pp->n_tiles, threads, reps, load_s, t, n_tok,
              shape_ok ? "true" : "false", finite ? "true" : "false", rel, peak_rss_gib ());
    else
      printf ("%-7s %d view(s): %.3f s  [%zu x %zu]%s%s", mc->name, 1 + pp->n_tiles, t, n_tok,
              E, shape_ok ? "" : " BAD SHAPE", finite ? "" : " NOT FINITE");
    if (!json)
      printf (rel >= 0 ? "  rel err vs reference %.3g\n" : "\n", rel);
    fflush (stdout);
    dsocr_tensor_free (emb);
    g_free (times);
    dsocr_preprocessed_free (pp);
  }

  if (ref)
    dsocr_safetensors_unref (ref);
  dsocr_vision_session_free (vs);
  dsocr_backend_unref (be);
  dsocr_vision_unref (vis);
  dsocr_checkpoint_unref (ckpt);
  dsocr_config_free (cfg);
  return status;
}
