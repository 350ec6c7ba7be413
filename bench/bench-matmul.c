/* bench-matmul.c: GFLOP/s of the CPU backend's linear op at the decoder's and the vision
 * tower's shapes, by path: what linear.h's DSK_MM_BLAS_MIN_ROWS is chosen from.
 *
 *   bench-matmul [--quick] [--generic | --avx2] [--threads T] [--path auto|kernels|blas]
 *
 * Decode (n = 1: lm_head [129280, 1280], one expert [896, 1280]), a MoE expert over a few
 * routed tokens, prefill (n = 256 to 1024), and the vision tower's products (SAM over a 1024
 * view's 4096 tokens, CLIP's 257, a Gundam page's six 640 tiles batched). Weights are BF16 as
 * in the checkpoint unless the shape says otherwise (Q8 / Q4: quantized from BF16 at the
 * start, as a model's load does). Prints numbers only; memory bandwidth is reported since
 * decode is bound by reading W. */
#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "dsk-cpu.h"
#include "linear.h"

typedef struct {
  const char *name;
  size_t n, in, out;
  dsk_dtype wt;
} shape;

static const shape shapes[] = {
  { "lm_head decode",       1, 1280, 129280, DSK_BF16 },
  { "expert decode",        1, 1280,    896, DSK_BF16 },
  { "expert down decode",   1,  896,   1280, DSK_BF16 },
  { "q_proj decode",        1, 1280,   1280, DSK_BF16 },
  { "expert 8 tokens",      8, 1280,    896, DSK_BF16 },
  { "expert 48 tokens",    48, 1280,    896, DSK_BF16 },
  { "q_proj prefill 256", 256, 1280,   1280, DSK_BF16 },
  { "q_proj prefill",     512, 1280,   1280, DSK_BF16 },
  { "dense up prefill",   512, 1280,   6848, DSK_BF16 },
  { "dense down prefill", 512, 6848,   1280, DSK_BF16 },
  { "expert prefill",     512, 1280,    896, DSK_BF16 },
  { "q_proj prefill 1024", 1024, 1280,  1280, DSK_BF16 },
  { "q_proj prefill f32", 512, 1280,   1280, DSK_F32 },
  { "q_proj decode f16",    1, 1280,   1280, DSK_F16 },
  { "lm_head decode",       1, 1280, 129280, DSK_Q8 },
  { "lm_head decode",       1, 1280, 129280, DSK_Q4 },
  { "expert decode",        1, 1280,    896, DSK_Q8 },
  { "expert decode",        1, 1280,    896, DSK_Q4 },
  { "expert down decode",   1,  896,   1280, DSK_Q4 },
  { "expert 8 tokens",      8, 1280,    896, DSK_Q4 },
  { "expert prefill",     512, 1280,    896, DSK_Q8 },
  { "expert prefill",     512, 1280,    896, DSK_Q4 },
  { "clip qkv 257",       257, 1024,   3072, DSK_BF16 },
  { "clip fc1 257",       257, 1024,   4096, DSK_BF16 },
  { "clip qkv 6x101",     606, 1024,   3072, DSK_BF16 },
  { "projector 273",      273, 2048,   1280, DSK_BF16 },
  { "sam qkv 4096",      4096,  768,   2304, DSK_BF16 },
  { "sam lin1 4096",     4096,  768,   3072, DSK_BF16 },
  { "sam lin2 4096",     4096, 3072,    768, DSK_BF16 },
  { "sam qkv 6x1600",    9600,  768,   2304, DSK_BF16 },
};

int
main (int argc, char **argv)
{
  gboolean quick = FALSE, generic = FALSE, avx2 = FALSE;
  const char *path = NULL;
  int threads = 2;
  GOptionEntry entries[] = {
    { "quick", 0, 0, G_OPTION_ARG_NONE, &quick, "fewer repetitions", NULL },
    { "generic", 0, 0, G_OPTION_ARG_NONE, &generic, "plain C kernels only (no AVX2)", NULL },
    { "avx2", 0, 0, G_OPTION_ARG_NONE, &avx2, "AVX2 kernels at most (as without AVX-512)", NULL },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "threads of the backend (2)", "T" },
    { "path", 0, 0, G_OPTION_ARG_STRING, &path,
      "force the n > 8 path: auto, kernels or blas", "PATH" },
    { NULL }
  };
  GOptionContext *ctx = g_option_context_new ("- matmul throughput");
  GError *error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  dsk_cpu_force_generic (generic);
  if (avx2)
    dsk_mm_force_kernels (DSK_MM_KERNELS_AVX2);
  if (path)
    dsk_mm_force_path (g_str_equal (path, "blas") ? 2 : g_str_equal (path, "kernels") ? 1 : 0);
  char err[256];
  dsk_backend *be = dsk_backend_new ("cpu", threads, err, sizeof err);
  if (!be) {
    fprintf (stderr, "%s\n", err);
    return 1;
  }

  printf ("# linear on %s, %s; BLAS from %d rows\n", dsk_backend_get_description (be),
          path ? path : "automatic path", DSK_MM_BLAS_MIN_ROWS);
  printf ("%-20s %6s %6s %7s %5s %10s %9s %8s\n", "shape", "n", "in", "out", "W", "ms/call",
          "GFLOP/s", "W GB/s");

  GRand *rng = g_rand_new_with_seed (1);
  for (size_t si = 0; si < G_N_ELEMENTS (shapes); si++) {
    const shape *s = &shapes[si];
    const gboolean quant = s->wt == DSK_Q8 || s->wt == DSK_Q4;
    const dsk_dtype host_dt = quant ? DSK_BF16 : s->wt;   /* quantized from bf16, as at load */
    size_t wbytes = s->in * s->out * dsk_dtype_size (host_dt);
    void *w = g_malloc (wbytes);
    float *x = g_new (float, s->n * s->in), *y = g_new (float, s->n * s->out);
    for (size_t i = 0; i < s->n * s->in; i++)
      x[i] = (float) g_rand_double_range (rng, -1.0, 1.0);
    for (size_t i = 0; i < s->in * s->out; i++) {
      float v = (float) g_rand_double_range (rng, -0.05, 0.05);
      if (host_dt == DSK_F32)
        ((float *) w)[i] = v;
      else if (host_dt == DSK_BF16)
        ((uint16_t *) w)[i] = dsk_f32_to_bf16 (v);
      else
        ((uint16_t *) w)[i] = (uint16_t) (0x2000 | (g_rand_int (rng) & 0x83ff));  /* small f16 */
    }

    /* one warm-up call, then repeat for about 0.3 s (0.1 s with --quick), at least 3 calls */
    const double target = quick ? 0.1 : 0.3;
    const dsk_tensor tx = dsk_tensor_host_2d (x, DSK_F32, s->n, s->in);
    dsk_tensor tw = dsk_tensor_host_2d (w, host_dt, s->out, s->in);
    dsk_weight_storage *storage = dsk_weight_storage_new ();
    if (quant) {
      tw = dsk_backend_quantize_weight (be, &tw, s->wt, storage);
      wbytes = dsk_dtype_bytes (s->wt, s->in * s->out);
    }
    const dsk_tensor ty = dsk_tensor_host_2d (y, DSK_F32, s->n, s->out);
    dsk_linear (be, &ty, &tx, &tw, NULL);
    int reps = 0;
    gint64 t0 = g_get_monotonic_time (), t1;
    do {
      dsk_linear (be, &ty, &tx, &tw, NULL);
      reps++;
      t1 = g_get_monotonic_time ();
    } while (reps < 3 || (double) (t1 - t0) * 1e-6 < target);
    double sec = (double) (t1 - t0) * 1e-6 / reps;
    double flops = 2.0 * (double) s->n * (double) s->in * (double) s->out;
    printf ("%-20s %6zu %6zu %7zu %5s %10.3f %9.2f %8.2f\n", s->name, s->n, s->in, s->out,
            dsk_dtype_name (s->wt), sec * 1e3, flops / sec * 1e-9, (double) wbytes / sec * 1e-9);
    fflush (stdout);
    dsk_weight_storage_free (storage);
    g_free (w);
    g_free (x);
    g_free (y);
  }
  g_rand_free (rng);
  if (dsk_backend_failed (be))
    fprintf (stderr, "%s\n", dsk_backend_error (be));
  dsk_backend_unref (be);
  return 0;
}
