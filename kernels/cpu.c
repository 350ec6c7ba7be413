/* cpu.c: run-time CPU feature selection for the SIMD variants of the CPU kernels. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "dsk-cpu.h"

#include <pthread.h>
#include <stdlib.h>

static int force_generic;

void
dsk_cpu_force_generic (int on)
{
  force_generic = on != 0;
}

#if defined(__x86_64__) || defined(__i386__)
/* clang 14's __builtin_cpu_supports does not know "f16c": ask cpuid (leaf 1, ECX bit 29). */
static int
cpu_has_f16c (void)
{
  unsigned a, b, c, d;
  return __get_cpuid (1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif


int
dsk_cpu_has_avx2 (void)
{
#if DSK_X86_SIMD
  /* threads may race to fill it; they all store the same value */
  static int cached = -1;
  int c = __atomic_load_n (&cached, __ATOMIC_RELAXED);
  if (c < 0) {
    __builtin_cpu_init ();
    c = __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma") &&
        cpu_has_f16c ();
    __atomic_store_n (&cached, c, __ATOMIC_RELAXED);
  }
  return c && !force_generic;
#else
  return 0;
#endif
}

/* The calling thread's scratch, kept between calls; freed by the key's destructor when the
 * thread exits, or by dsk_cpu_scratch_release. */
typedef struct {
  float *buf;
  size_t cap;   /* floats */
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void
scratch_destroy (void *data)
{
  scratch *s = data;
  if (s) {
    free (s->buf);
    free (s);
  }
}

static void
scratch_key_init (void)
{
  scratch_key_ok = pthread_key_create (&scratch_key, scratch_destroy) == 0;
}

float *
dsk_cpu_scratch (size_t n_floats)
{
  pthread_once (&scratch_once, scratch_key_init);
  if (!scratch_key_ok || n_floats > SIZE_MAX / sizeof (float))
    return NULL;
  scratch *s = pthread_getspecific (scratch_key);
  if (!s) {
    s = calloc (1, sizeof *s);
    if (!s)
      return NULL;
    if (pthread_setspecific (scratch_key, s) != 0) {
      free (s);
      return NULL;
    }
  }
  if (s->cap < n_floats) {
    free (s->buf);
    s->buf = malloc (n_floats * sizeof (float));
    s->cap = s->buf ? n_floats : 0;
  }
  return s->buf;
}

void
dsk_cpu_scratch_release (void)
{
  pthread_once (&scratch_once, scratch_key_init);
  if (!scratch_key_ok)
    return;
  scratch_destroy (pthread_getspecific (scratch_key));
  pthread_setspecific (scratch_key, NULL);
}
