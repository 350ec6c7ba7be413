/* resize.c: bicubic resampling that reproduces Pillow's ImagingResample (8-bit path).
 *
 * Every step that decides a rounding follows Pillow's Resample.c: the pass order, the
 * coefficient window
 * (center +- support, truncated after adding 0.5), the weights normalised to sum 1 in double
 * precision, their conversion to 22-bit fixed point (round half away from zero), the 2^21
 * rounding bias of each accumulator, and the clip of (sum >> 22) to 0..255 after each pass.
 */
/* The coefficients must be computed with the same double roundings as Pillow's build, so no
 * a*b+c may become a fused multiply-add even where the target has FMA. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

#include "resize.h"

#include <math.h>
#include <string.h>

#include "dsocr/dsocr-error.h"

/* 8 bits of result, 2 bits of headroom for the negative lobes and sums above 1. */
#define PRECISION_BITS (32 - 8 - 2)

/* Keys' cubic convolution kernel with a = -0.5, support 2. */
static double
bicubic (double x)
{
  const double a = -0.5;

  if (x < 0.0)
    x = -x;
  if (x < 1.0)
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0)
    return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/* Filter taps of one axis, shared by every row (or column) of the pass. */
typedef struct {
  int ksize;      /* taps reserved per output pixel */
  int *first;     /* [out_size] first input pixel */
  int *count;     /* [out_size] taps used, <= ksize */
  gint32 *k;      /* [out_size, ksize] fixed-point weights */
} axis_taps;

static void
axis_taps_clear (axis_taps *a)
{
  g_free (a->first);
  g_free (a->count);
  g_free (a->k);
  memset (a, 0, sizeof *a);
}

static gboolean
axis_taps_init (axis_taps *a, int in_size, int out_size, GError **error)
{
  /* Pillow: scale = (in1 - in0) / out with the box (0, in_size) given as floats */
  double scale = (double) (float) in_size / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * filterscale;
  int ksize = (int) ceil (support) * 2 + 1;
  double *w;

  memset (a, 0, sizeof *a);
  a->ksize = ksize;
  a->first = g_try_new (int, out_size);
  a->count = g_try_new (int, out_size);
  a->k = g_try_new0 (gint32, (gsize) out_size * ksize);
  w = g_try_new (double, ksize);
  if (!a->first || !a->count || !a->k || !w) {
    g_free (w);
    axis_taps_clear (a);
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
                 "resize: cannot allocate filter taps for %d -> %d", in_size, out_size);
    return FALSE;
  }
  for (int xx = 0; xx < out_size; xx++) {
    double center = 0.0 + (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int) (center - support + 0.5);
    int xmax = (int) (center + support + 0.5);
    gint32 *k = a->k + (gsize) xx * ksize;

    if (xmin < 0)
      xmin = 0;
    if (xmax > in_size)
      xmax = in_size;
    xmax -= xmin;
    if (xmax > ksize) /* cannot happen with these roundings; keeps the buffer safe */
      xmax = ksize;
    for (int x = 0; x < xmax; x++) {
      w[x] = bicubic ((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; x++) {
      if (ww != 0.0)
        w[x] /= ww;
      k[x] = w[x] < 0 ? (gint32) (-0.5 + w[x] * (1 << PRECISION_BITS))
                      : (gint32) (0.5 + w[x] * (1 << PRECISION_BITS));
    }
    a->first[xx] = xmin;
    a->count[xx] = xmax;
  }
  g_free (w);
  return TRUE;
}

static inline guint8
clip8 (gint32 acc)
{
  if (acc < 0)
    return 0;
  acc >>= PRECISION_BITS;
  return acc > 255 ? 255 : (guint8) acc;
}

/* dst[y, xx] = sum_t src[y, first + t] * k[t] for rows y of [0, n_rows). */
static void
pass_horizontal (const guint8 *src, gsize src_stride, guint8 *dst, gsize dst_stride,
                 int n_rows, int out_width, const axis_taps *a)
{
  for (int y = 0; y < n_rows; y++) {
    const guint8 *in = src + (gsize) y * src_stride;
    guint8 *out = dst + (gsize) y * dst_stride;
    for (int xx = 0; xx < out_width; xx++) {
      const gint32 *k = a->k + (gsize) xx * a->ksize;
      const guint8 *p = in + 3 * (gsize) a->first[xx];
      int n = a->count[xx];
      gint32 s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (int t = 0; t < n; t++) {
        s0 += p[3 * t] * k[t];
        s1 += p[3 * t + 1] * k[t];
        s2 += p[3 * t + 2] * k[t];
      }
      out[3 * xx] = clip8 (s0);
      out[3 * xx + 1] = clip8 (s1);
      out[3 * xx + 2] = clip8 (s2);
    }
  }
}

/* dst[yy, :] = sum_t src[first + t - row0, :] * k[t]; src holds rows row0.. of the input. */
static void
pass_vertical (const guint8 *src, gsize src_stride, int row0, guint8 *dst, gsize dst_stride,
               int out_height, int width, const axis_taps *a, gint32 *acc /* [3 * width] */)
{
  const gsize n = 3 * (gsize) width;

  for (int yy = 0; yy < out_height; yy++) {
    const gint32 *k = a->k + (gsize) yy * a->ksize;
    guint8 *out = dst + (gsize) yy * dst_stride;
    for (gsize i = 0; i < n; i++)
      acc[i] = 1 << (PRECISION_BITS - 1);
    for (int t = 0; t < a->count[yy]; t++) {
      const guint8 *in = src + (gsize) (a->first[yy] + t - row0) * src_stride;
      const gint32 kt = k[t];
      for (gsize i = 0; i < n; i++)
        acc[i] += in[i] * kt;
    }
    for (gsize i = 0; i < n; i++)
      out[i] = clip8 (acc[i]);
  }
}

gboolean
dsocr_resize_bicubic (const dsocr_image_view *src, guint8 *dst, gsize dst_stride,
                      int dst_width, int dst_height, dsocr_resize_order order, GError **error)
{
  axis_taps ax = { 0 }, ay = { 0 };
  gboolean need_h, need_v, vertical_first, ok = FALSE;
  guint8 *tmp = NULL;
  gint32 *acc = NULL;
  gsize tstride;

  if (!dsocr_image_view_check (src, "resize source", error))
    return FALSE;
  {
    dsocr_image_view d = { dst, dst_width, dst_height, dst_stride };
    if (!dsocr_image_view_check (&d, "resize target", error))
      return FALSE;
  }
  need_h = dst_width != src->width;
  need_v = dst_height != src->height;
  vertical_first = order == DSOCR_RESIZE_PILLOW13 && dst_height < src->height &&
                   (gint64) src->height - dst_height > 2 * ((gint64) src->width - dst_width);
  if ((need_h && !axis_taps_init (&ax, src->width, dst_width, error)) ||
      (need_v && !axis_taps_init (&ay, src->height, dst_height, error)))
    goto out;
  /* [3 * width] accumulators of the vertical pass, for the wider of its possible inputs */
  acc = g_try_new (gint32, 3 * (gsize) MAX (src->width, dst_width));
  if (!acc) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "resize: cannot allocate a row buffer");
    goto out;
  }

  if (!need_h && !need_v) {
    for (int y = 0; y < dst_height; y++)
      memcpy (dst + (gsize) y * dst_stride, src->data + (gsize) y * src->stride,
              3 * (gsize) dst_width);
  } else if (!need_v) {
    pass_horizontal (src->data, src->stride, dst, dst_stride, src->height, dst_width, &ax);
  } else if (!need_h) {
    pass_vertical (src->data, src->stride, 0, dst, dst_stride, dst_height, src->width, &ay, acc);
  } else if (vertical_first) {
    /* [dst_height, src_width] intermediate */
    tstride = 3 * (gsize) src->width;
    tmp = g_try_malloc (tstride * (gsize) dst_height);
    if (!tmp)
      goto nomem;
    pass_vertical (src->data, src->stride, 0, tmp, tstride, dst_height, src->width, &ay, acc);
    pass_horizontal (tmp, tstride, dst, dst_stride, dst_height, dst_width, &ax);
  } else {
    /* Only the input rows some output row reads go through the horizontal pass:
     * [row1 - row0, dst_width] intermediate */
    int row0 = ay.first[0];
    int row1 = ay.first[dst_height - 1] + ay.count[dst_height - 1];
    tstride = 3 * (gsize) dst_width;
    tmp = g_try_malloc (tstride * (gsize) (row1 - row0));
    if (!tmp)
      goto nomem;
    pass_horizontal (src->data + (gsize) row0 * src->stride, src->stride, tmp, tstride,
                     row1 - row0, dst_width, &ax);
    pass_vertical (tmp, tstride, row0, dst, dst_stride, dst_height, dst_width, &ay, acc);
  }
  ok = TRUE;
  goto out;

nomem:
  g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM,
               "resize: cannot allocate the intermediate image for %dx%d -> %dx%d", src->width,
               src->height, dst_width, dst_height);
out:
  g_free (acc);
  g_free (tmp);
  axis_taps_clear (&ax);
  axis_taps_clear (&ay);
  return ok;
}

dsocr_image *
dsocr_resize_bicubic_new (const dsocr_image_view *src, int width, int height,
                          dsocr_resize_order order, GError **error)
{
  dsocr_image *out = dsocr_image_new (width, height, error);

  if (!out)
    return NULL;
  if (!dsocr_resize_bicubic (src, out->data, out->stride, width, height, order, error)) {
    dsocr_image_free (out);
    return NULL;
  }
  return out;
}
