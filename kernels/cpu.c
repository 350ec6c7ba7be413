/* cpu.c: run-time CPU feature selection for the SIMD variants of the CPU kernels. */
#include "dsk-cpu.h"

static int force_generic;

void
dsk_cpu_force_generic (int on)
{
  force_generic = on != 0;
}

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
        __builtin_cpu_supports ("f16c");
    __atomic_store_n (&cached, c, __ATOMIC_RELAXED);
  }
  return c && !force_generic;
#else
  return 0;
#endif
}
