/* bench-peak.c: what one core's vector units do at best, per instruction kind: the numbers the
 * CPU backend's choice of kernels rests on (kernels/cpu/linear.h, docs/numerics.md).
 *
 *   bench-peak [--threads T]
 *
 * Each kind runs 16 independent accumulator chains on register operands (no memory traffic)
 * for about 0.3 s per thread: AVX-512 f32 FMA (vfmadd231ps, 32 flops), AVX512-BF16's
 * bf16 pair dot product (vdpbf16ps, 64 flops), AVX512-VNNI's u8 x s8 quad dot product
 * (vpdpbusd, 128 ops), and the read bandwidth of a 1 GiB buffer. Prints one line per kind and
 * thread count. Kinds the CPU lacks are skipped. */
#include <glib.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#define CHAINS 16

#if HAVE_X86
static __attribute__ ((target ("avx512f,fma"))) double
run_fma (gint64 n)
{
  __m512 a[CHAINS];
  __m512 x = _mm512_set1_ps (1.0001f), y = _mm512_set1_ps (0.5f);
  for (int i = 0; i < CHAINS; i++)
    a[i] = _mm512_setzero_ps ();
  for (gint64 i = 0; i < n; i++) {
#pragma GCC unroll 16
    for (int j = 0; j < CHAINS; j++)
      a[j] = _mm512_fmadd_ps (x, y, a[j]);
    __asm__ volatile ("" : "+v" (x));   /* keep the loop from being folded */
  }
  for (int i = 1; i < CHAINS; i++)
    a[0] = _mm512_add_ps (a[0], a[i]);
  return _mm512_reduce_add_ps (a[0]);
}

static __attribute__ ((target ("avx512f,avx512bf16"))) double
run_bf16 (gint64 n)
{
  __m512 a[CHAINS];
  __m512bh x = (__m512bh) _mm512_set1_epi32 (0x3f803f80);
  __m512bh y = (__m512bh) _mm512_set1_epi32 (0x3f003f00);
  for (int i = 0; i < CHAINS; i++)
    a[i] = _mm512_setzero_ps ();
  for (gint64 i = 0; i < n; i++) {
#pragma GCC unroll 16
    for (int j = 0; j < CHAINS; j++)
      a[j] = _mm512_dpbf16_ps (a[j], x, y);
    __asm__ volatile ("" : "+v" (x));
  }
  for (int i = 1; i < CHAINS; i++)
    a[0] = _mm512_add_ps (a[0], a[i]);
  return _mm512_reduce_add_ps (a[0]);
}

static __attribute__ ((target ("avx512f,avx512vnni"))) double
run_vnni (gint64 n)
{
  __m512i a[CHAINS];
  __m512i x = _mm512_set1_epi8 (3), y = _mm512_set1_epi8 (5);
  for (int i = 0; i < CHAINS; i++)
    a[i] = _mm512_setzero_si512 ();
  for (gint64 i = 0; i < n; i++) {
#pragma GCC unroll 16
    for (int j = 0; j < CHAINS; j++)
      a[j] = _mm512_dpbusd_epi32 (a[j], x, y);
    __asm__ volatile ("" : "+v" (x));
  }
  for (int i = 1; i < CHAINS; i++)
    a[0] = _mm512_add_epi32 (a[0], a[i]);
  return _mm512_reduce_add_epi32 (a[0]);
}
#endif

typedef struct {
  int kind;        /* 0 fma, 1 bf16, 2 vnni, 3 read */
  gint64 n;
  const guint8 *buf;
  gsize len;
  volatile double sink;
} job;

static double
read_all (const guint8 *b, gsize len)
{
  guint64 s[8] = { 0 };
  for (gsize i = 0; i + 64 <= len; i += 64)
    for (int j = 0; j < 8; j++) {
      guint64 v;
      memcpy (&v, b + i + 8 * j, 8);
      s[j] += v;
    }
  return (double) (s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]);
}

static gpointer
run (gpointer data)
{
  job *j = data;
#if HAVE_X86
  if (j->kind == 0)
    j->sink = run_fma (j->n);
  else if (j->kind == 1)
    j->sink = run_bf16 (j->n);
  else if (j->kind == 2)
    j->sink = run_vnni (j->n);
#endif
  if (j->kind == 3)
    j->sink = read_all (j->buf, j->len);
  return NULL;
}

int
main (int argc, char **argv)
{
  int max_threads = 2;
  GOptionEntry entries[] = {
    { "threads", 't', 0, G_OPTION_ARG_INT, &max_threads, "Most threads (2)", "T" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- vector unit peaks");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || max_threads < 1) {
    g_printerr ("bench-peak: %s\n", error ? error->message : "bad --threads");
    return 2;
  }
#if HAVE_X86
  __builtin_cpu_init ();
  const gboolean have[3] = {
    __builtin_cpu_supports ("avx512f"),
    __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bf16"),
    __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512vnni"),
  };
#else
  const gboolean have[3] = { FALSE, FALSE, FALSE };
#endif
  static const char *names[4] = { "f32 FMA (vfmadd231ps)", "bf16 dot (vdpbf16ps)",
                                  "int8 dot (vpdpbusd)", "read bandwidth" };
  static const double ops[3] = { 32 * CHAINS, 64 * CHAINS, 128 * CHAINS };
  const gsize len = (gsize) 1 << 30;
  guint8 *buf = g_malloc (len);
  memset (buf, 1, len);

  for (int kind = 0; kind < 4; kind++) {
    if (kind < 3 && !have[kind]) {
      printf ("%-24s not on this CPU\n", names[kind]);
      continue;
    }
    for (int t = 1; t <= max_threads; t++) {
      job *jobs = g_new0 (job, t);
      GThread **th = g_new (GThread *, t);
      const gint64 n = 12000000 / CHAINS * 16;
      double best = 0.0;
      for (int rep = 0; rep < 3; rep++) {
        const gint64 t0 = g_get_monotonic_time ();
        for (int i = 0; i < t; i++) {
          jobs[i] = (job) { kind, n, buf + (gsize) i * (len / t), len / t, 0.0 };
          th[i] = g_thread_new ("peak", run, &jobs[i]);
        }
        for (int i = 0; i < t; i++)
          g_thread_join (th[i]);
        const double sec = (g_get_monotonic_time () - t0) * 1e-6;
        const double rate = kind == 3 ? (double) len / sec : (double) t * n * ops[kind] / sec;
        best = MAX (best, rate);
      }
      printf ("%-24s %d thread%s %8.1f %s\n", names[kind], t, t > 1 ? "s" : " ", best * 1e-9,
              kind == 3 ? "GB/s" : "G ops/s");
      g_free (jobs);
      g_free (th);
    }
  }
  g_free (buf);
  return 0;
}
