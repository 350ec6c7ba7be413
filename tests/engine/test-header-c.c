/* test-header-c.c: the public header compiles as plain C with strict warnings (TAP output). */
#include <stdio.h>

#include <dsocr/dsocr.h>

int
main (void)
{
  printf ("1..1\n%s 1 - dsocr.h compiles and links as C\n",
          dsocr_error_quark () != 0 ? "ok" : "not ok");
  return 0;
}
