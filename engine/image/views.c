/* views.c: the embedding count of views and packed images (views.h). */
#include "views.h"

#include <glib.h>

int
dsocr_view_grid_side (int size, int patch, int n_down)
{
  int g;
  if (patch <= 0 || size <= 0 || size % patch != 0)
    return 0;
  g = size / patch;
  for (int i = 0; i < n_down; i++)
    g = (g + 1) / 2;   /* 3x3, stride 2, pad 1: (g + 2 - 3) / 2 + 1 */
  return g;
}

int
dsocr_view_n_tokens (int n, int m, int cols, int rows)
{
  gint64 t;
  if (n < 0 || m < 0 || cols < 0 || rows < 0)
    return -1;
  t = (gint64) n * (n + 1) + 1;
  if ((gint64) cols * rows > 0)
    t += (gint64) rows * m * ((gint64) cols * m + 1);
  return t > G_MAXINT ? -1 : (int) t;
}
