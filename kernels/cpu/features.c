/* features.c: run-time CPU feature selection for the SIMD variants of the CPU kernels. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include "dsk-cpu.h"


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

int
dsk_cpu_has_avx512 (void)
{
#if DSK_X86_SIMD
  static int cached = -1;
  int c = __atomic_load_n (&cached, __ATOMIC_RELAXED);
  if (c < 0) {
    __builtin_cpu_init ();
    c = __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("fma");
    __atomic_store_n (&cached, c, __ATOMIC_RELAXED);
  }
  return c && dsk_cpu_has_avx2 ();
#else
  return 0;
#endif
}

int
dsk_cpu_has_avx512_vnni (void)
{
#if DSK_X86_SIMD
  static int cached = -1;
  int c = __atomic_load_n (&cached, __ATOMIC_RELAXED);
  if (c < 0) {
    __builtin_cpu_init ();
    c = __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512vl") &&
        __builtin_cpu_supports ("avx512vnni");
    __atomic_store_n (&cached, c, __ATOMIC_RELAXED);
  }
  return c && dsk_cpu_has_avx512 ();
#else
  return 0;
#endif
}

const char *
dsk_cpu_simd_name (void)
{
  return dsk_cpu_has_avx512 () ? "avx512" : dsk_cpu_has_avx2 () ? "avx2" : "generic";
}
