/* backend-cpu.c: the CPU backend: host memory, one thread pool for every op, and the ops
 * table over the kernels of this folder (backend-cpu.h says how ops become pool items).
 * MoE ops are in moe.c, the DSA indexer's in indexer.c. */
#include "backend-cpu.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsocr-build-config.h"

#if DSOCR_HAVE_OPENBLAS
#include <cblas.h>
/* OpenBLAS's own declaration (cblas.h of Debian's OpenBLAS has it; a reference CBLAS would not) */
void openblas_set_num_threads (int num_threads);
#endif

/* Elements per item of the elementwise ops, and the cost below which an op stays on the
 * caller (the pool's own threshold is in flops; these ops count ~8 flops an element). */
#define ELEMS_PER_ITEM (16 * 1024)

void *
dsk_cpu_work (dsk_backend *be, size_t nbytes)
{
  dsk_cpu *c = dsk_cpu_of (be);
  if (nbytes > c->work_bytes) {
    void *p = NULL;
    if (posix_memalign (&p, 64, nbytes) != 0) {
      dsk_backend_fail (be, DSK_ERR_NOMEM, "cpu: cannot allocate %zu bytes of scratch", nbytes);
      return NULL;
    }
    free (c->work);
    c->work = p;
    c->work_bytes = nbytes;
  }
  return c->work;
}

/* Offset in elements of row @r of @t, a row being its innermost dimension and rows counted in
 * row-major order over the outer ones. */
static inline size_t
row_offset (const dsk_tensor *t, size_t r)
{
  size_t off = 0;
  for (int d = t->n_dims - 2; d >= 0; d--) {
    off += (r % t->ne[d]) * t->st[d];
    r /= t->ne[d];
  }
  return off;
}

static inline void *
row_ptr (const dsk_tensor *t, size_t r)
{
  return (char *) t->data + row_offset (t, r) * dsk_dtype_size (t->dtype);
}

/* ---- memory ---- */

static void *
cpu_buffer_alloc (dsk_backend *be, size_t nbytes)
{
  void *p = NULL;
  (void) be;
  return posix_memalign (&p, 64, nbytes) == 0 ? p : NULL;
}

static void
cpu_buffer_free (dsk_device device, void *ptr)
{
  (void) device;
  free (ptr);
}

/* Copies between the rows of @t and the packed array @packed, in either direction. */
static void
copy_packed (const dsk_tensor *t, void *packed, int to_tensor)
{
  const size_t rows = dsk_tensor_rows (t);
  const size_t row_bytes = dsk_dtype_bytes (t->dtype, dsk_tensor_row_len (t));
  if (dsk_tensor_is_contiguous (t)) {   /* block formats always are (ops.c) */
    if (to_tensor)
      memcpy (t->data, packed, rows * row_bytes);
    else
      memcpy (packed, t->data, rows * row_bytes);
    return;
  }
  for (size_t r = 0; r < rows; r++) {
    char *p = (char *) packed + r * row_bytes;
    if (to_tensor)
      memcpy (row_ptr (t, r), p, row_bytes);
    else
      memcpy (p, row_ptr (t, r), row_bytes);
  }
}

static void
cpu_tensor_set (dsk_backend *be, const dsk_tensor *dst, const void *src)
{
  (void) be;
  copy_packed (dst, (void *) src, 1);
}

static void
cpu_tensor_get (dsk_backend *be, const dsk_tensor *src, void *dst)
{
  (void) be;
  copy_packed (src, dst, 0);
}

static dsk_tensor
cpu_prepare_weight (dsk_backend *be, const dsk_tensor *host, dsk_weight_storage *storage)
{
  const size_t es = dsk_dtype_size (host->dtype);
  dsk_tensor t = *host;
  /* the kernels read weights in place; only an element misaligned by the file is copied */
  if ((uintptr_t) host->data % es == 0)
    return t;
  const size_t bytes = dsk_tensor_n_elements (host) * es;
  void *copy = dsk_weight_storage_add (storage, be, bytes);
  if (copy)
    memcpy (copy, host->data, bytes);
  t.data = copy;
  return t;
}

/* Rows of one quantization item. */
#define QUANT_ROWS 64

typedef struct {
  const dsk_tensor *host;
  dsk_dtype q;
  char *dst;
  size_t rows, cols, src_row_bytes, dst_row_bytes;
  size_t bad_row;   /* the first row that could not be coded, or SIZE_MAX */
} quant_run;

static void
quant_item (void *ctx, int item, int thread)
{
  quant_run *c = ctx;
  const size_t r0 = (size_t) item * QUANT_ROWS;
  const size_t r1 = r0 + QUANT_ROWS < c->rows ? r0 + QUANT_ROWS : c->rows;
  (void) thread;
  for (size_t r = r0; r < r1; r++)
    if (!dsk_quant_row (c->dst + r * c->dst_row_bytes, c->q,
                        (const char *) c->host->data + r * c->src_row_bytes, c->host->dtype,
                        c->cols)) {
      size_t seen = __atomic_load_n (&c->bad_row, __ATOMIC_RELAXED);
      while (r < seen && !__atomic_compare_exchange_n (&c->bad_row, &seen, r, 0,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
      return;
    }
}

static dsk_tensor
cpu_quantize_weight (dsk_backend *be, const dsk_tensor *host, dsk_dtype q,
                     dsk_weight_storage *storage)
{
  const size_t cols = host->ne[host->n_dims - 1], n = dsk_tensor_n_elements (host);
  quant_run c = { host, q, NULL, n / cols, cols, cols * dsk_dtype_size (host->dtype),
                  dsk_dtype_bytes (q, cols), SIZE_MAX };
  dsk_tensor t = *host;

  t.dtype = q;
  t.data = c.dst = dsk_weight_storage_add (storage, be, dsk_dtype_bytes (q, n));
  if (!t.data)
    return t;
  /* the checkpoint's pages are read once, in parallel: load time is memory time */
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) ((c.rows + QUANT_ROWS - 1) / QUANT_ROWS),
                40.0 * (double) n, quant_item, &c);
  if (c.bad_row != SIZE_MAX) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "quantize_weight: row %zu of a [%zu, %zu] weight has "
                      "a value %s cannot code (not finite, or too large)", c.bad_row, c.rows,
                      cols, dsk_dtype_name (q));
    t.data = NULL;
  }
  return t;
}

static void
cpu_free (dsk_backend *be)
{
  dsk_cpu *c = dsk_cpu_of (be);
  dsk_mm_free (c->mm);
  dsk_pool_free (c->pool);
  free (c->work);
  free (c);
}

/* ---- row maps: copy, fill, add, round, activations ---- */

typedef enum {
  MAP_COPY, MAP_FILL, MAP_ADD, MAP_ROUND, MAP_SILU, MAP_GELU, MAP_QUICK_GELU, MAP_SWIGLU,
  MAP_SOFTMAX,
} map_kind;

typedef struct {
  map_kind kind;
  const dsk_tensor *y, *a, *b;
  size_t rows, len;       /* rows of y (or flat chunks), elements per row */
  size_t rows_b;          /* rows of b (broadcast over y's) */
  int flat;               /* every operand contiguous: chunks of the flat arrays */
  size_t total;
  float value;            /* fill */
  dsk_dtype dtype;        /* round */
  size_t rows_per_item;
} map_run;

static void
map_row (const map_run *m, float *y, const void *a, const float *b, size_t n)
{
  switch (m->kind) {
    case MAP_COPY:
      if (m->y->dtype == m->a->dtype) {
        memcpy (y, a, n * dsk_dtype_size (m->y->dtype));
      } else if (m->y->dtype == DSK_F32) {
        dsk_convert_to_f32_cpu (y, a, m->a->dtype, n);
      } else {   /* F32 -> BF16 */
        uint16_t *d = (uint16_t *) y;
        for (size_t i = 0; i < n; i++)
          d[i] = dsk_f32_to_bf16 (((const float *) a)[i]);
      }
      break;
    case MAP_FILL:
      for (size_t i = 0; i < n; i++)
        y[i] = m->value;
      break;
    case MAP_ADD:
      for (size_t i = 0; i < n; i++)
        y[i] = ((const float *) a)[i] + b[i];
      break;
    case MAP_ROUND:
      for (size_t i = 0; i < n; i++) {
        const float v = ((const float *) a)[i];
        y[i] = m->dtype == DSK_BF16 ? dsk_bf16_to_f32 (dsk_f32_to_bf16 (v))
                                    : dsk_f16_to_f32 (dsk_f32_to_f16 (v));
      }
      break;
    case MAP_SILU:
      dsk_silu_f32_cpu (y, a, n);
      break;
    case MAP_GELU:
      dsk_gelu_f32_cpu (y, a, n);
      break;
    case MAP_QUICK_GELU:
      dsk_quick_gelu_f32_cpu (y, a, n);
      break;
    case MAP_SWIGLU:
      dsk_swiglu_f32_cpu (y, a, b, n);
      break;
    case MAP_SOFTMAX:
      dsk_softmax_f32_cpu (y, 0, a, 0, NULL, 0, 1, n);
      break;
  }
}

/* A source row for @r: broadcast sources have zero strides, so a row pointer may repeat. */
static const void *
src_row (const dsk_tensor *t, size_t r)
{
  return row_ptr (t, r);
}

static void
map_item (void *ctx, int item, int thread)
{
  const map_run *m = ctx;
  const size_t r0 = (size_t) item * m->rows_per_item;
  const size_t r1 = r0 + m->rows_per_item < m->rows ? r0 + m->rows_per_item : m->rows;
  (void) thread;
  if (m->flat) {
    const size_t e0 = r0 * m->len, e1 = r1 * m->len < m->total ? r1 * m->len : m->total;
    const size_t ey = dsk_dtype_size (m->y->dtype), ea = m->a ? dsk_dtype_size (m->a->dtype) : 0;
    map_row (m, (float *) ((char *) m->y->data + e0 * ey),
             m->a ? (const char *) m->a->data + e0 * ea : NULL,
             m->b ? (const float *) m->b->data + e0 : NULL, e1 - e0);
    return;
  }
  for (size_t r = r0; r < r1; r++)
    map_row (m, row_ptr (m->y, r), m->a ? src_row (m->a, r) : NULL,
             m->b ? src_row (m->b, m->rows_b ? r % m->rows_b : r) : NULL, m->len);
}

static void
run_map (dsk_backend *be, map_run *m, double flops_per_elem)
{
  const dsk_tensor *y = m->y;
  m->total = dsk_tensor_n_elements (y);
  m->flat = dsk_tensor_is_contiguous (y) && (!m->a || dsk_tensor_is_contiguous (m->a)) &&
            (!m->b || (dsk_tensor_is_contiguous (m->b) &&
                       dsk_tensor_n_elements (m->b) == m->total)) &&
            m->kind != MAP_SOFTMAX;
  if (m->flat) {
    m->len = ELEMS_PER_ITEM;
    m->rows = (m->total + m->len - 1) / m->len;
    m->rows_per_item = 1;
  } else {
    m->len = dsk_tensor_row_len (y);
    m->rows = dsk_tensor_rows (y);
    m->rows_per_item = ELEMS_PER_ITEM / m->len ? ELEMS_PER_ITEM / m->len : 1;
    if (m->b)
      m->rows_b = dsk_tensor_rows (m->b);
  }
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) ((m->rows + m->rows_per_item - 1) / m->rows_per_item),
                flops_per_elem * (double) m->total, map_item, m);
}

static void
cpu_copy (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src)
{
  map_run m = { .kind = MAP_COPY, .y = dst, .a = src };
  run_map (be, &m, 1.0);
}

static void
cpu_fill (dsk_backend *be, const dsk_tensor *dst, float value)
{
  map_run m = { .kind = MAP_FILL, .y = dst, .value = value };
  run_map (be, &m, 1.0);
}

static void
cpu_add (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *a, const dsk_tensor *b)
{
  map_run m = { .kind = MAP_ADD, .y = y, .a = a, .b = b };
  run_map (be, &m, 1.0);
}

static void
cpu_round (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, dsk_dtype dtype)
{
  map_run m = { .kind = MAP_ROUND, .y = y, .a = x, .dtype = dtype };
  run_map (be, &m, 2.0);
}

static void
cpu_silu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  map_run m = { .kind = MAP_SILU, .y = y, .a = x };
  run_map (be, &m, 20.0);
}

static void
cpu_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  map_run m = { .kind = MAP_GELU, .y = y, .a = x };
  run_map (be, &m, 20.0);
}

static void
cpu_quick_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  map_run m = { .kind = MAP_QUICK_GELU, .y = y, .a = x };
  run_map (be, &m, 20.0);
}

static void
cpu_swiglu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *gate, const dsk_tensor *up)
{
  map_run m = { .kind = MAP_SWIGLU, .y = y, .a = gate, .b = up };
  run_map (be, &m, 20.0);
}

static void
cpu_softmax (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  map_run m = { .kind = MAP_SOFTMAX, .y = y, .a = x };
  run_map (be, &m, 20.0);
}

/* ---- rows by index ---- */

typedef struct {
  const dsk_tensor *dst, *src, *idx, *fill;
  int set;   /* set_rows: dst[idx[i]] = src[i] */
} rows_run;

static void
rows_item (void *ctx, int item, int thread)
{
  const rows_run *c = ctx;
  const int32_t *idx = c->idx->data;
  const size_t d = c->dst->ne[1], r = (size_t) item;
  const int32_t j = idx[r * c->idx->st[0]];
  (void) thread;
  if (c->set) {
    if (j >= 0)
      memcpy (dsk_cpu_f32 (c->dst, (size_t) j, 0, 0, 0), dsk_cpu_f32 (c->src, r, 0, 0, 0),
              d * sizeof (float));
    return;
  }
  float *out = dsk_cpu_f32 (c->dst, r, 0, 0, 0);
  if (j < 0) {
    if (c->fill)
      memcpy (out, c->fill->data, d * sizeof (float));
    else
      memset (out, 0, d * sizeof (float));
    return;
  }
  dsk_convert_to_f32_cpu (out, (const char *) c->src->data +
                                   (size_t) j * c->src->st[0] * dsk_dtype_size (c->src->dtype),
                          c->src->dtype, d);
}

static int
check_indices (dsk_backend *be, const char *op, const dsk_tensor *idx, size_t limit)
{
  const int32_t *p = idx->data;
  for (size_t i = 0; i < idx->ne[0]; i++) {
    const int32_t v = p[i * idx->st[0]];
    if (v < -1 || (v >= 0 && (size_t) v >= limit)) {
      dsk_backend_fail (be, DSK_ERR_INVALID, "%s: index %d at %zu is outside [-1, %zu)", op, v,
                        i, limit);
      return 0;
    }
  }
  return 1;
}

static void
cpu_get_rows (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src,
              const dsk_tensor *idx, const dsk_tensor *fill)
{
  rows_run c = { dst, src, idx, fill, 0 };
  if (check_indices (be, "get_rows", idx, src->ne[0]))
    dsk_pool_run (dsk_cpu_of (be)->pool, (int) dst->ne[0], 2.0 * (double) dst->ne[0] * dst->ne[1],
                  rows_item, &c);
}

static void
cpu_set_rows (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src,
              const dsk_tensor *idx)
{
  rows_run c = { dst, src, idx, NULL, 1 };
  /* rows are written in order on the caller: a repeated index keeps its last row */
  if (check_indices (be, "set_rows", idx, dst->ne[0]))
    for (size_t r = 0; r < src->ne[0]; r++)
      rows_item (&c, (int) r, 0);
}

/* ---- norms ---- */

typedef struct {
  const dsk_tensor *y, *x, *w, *b;
  float eps;
  int layer;   /* LayerNorm (else RMSNorm) */
  size_t rows, rows_per_item;
} norm_run;

static void
norm_item (void *ctx, int item, int thread)
{
  const norm_run *c = ctx;
  const size_t r0 = (size_t) item * c->rows_per_item;
  const size_t n = c->rows - r0 < c->rows_per_item ? c->rows - r0 : c->rows_per_item;
  const size_t dim = dsk_tensor_row_len (c->x);
  (void) thread;
  if (c->x->n_dims == 2) {
    /* a run of strided rows: one kernel call */
    if (c->layer)
      dsk_layernorm_f32_cpu (dsk_cpu_f32 (c->y, r0, 0, 0, 0), c->y->st[0],
                             dsk_cpu_f32 (c->x, r0, 0, 0, 0), c->x->st[0],
                             c->w ? c->w->data : NULL, c->b ? c->b->data : NULL,
                             c->w ? c->w->dtype : c->b ? c->b->dtype : DSK_F32, n, dim, c->eps);
    else
      dsk_rmsnorm_f32_cpu (dsk_cpu_f32 (c->y, r0, 0, 0, 0), c->y->st[0],
                           dsk_cpu_f32 (c->x, r0, 0, 0, 0), c->x->st[0], c->w->data,
                           c->w->dtype, n, dim, c->eps);
    return;
  }
  for (size_t r = r0; r < r0 + n; r++) {
    if (c->layer)
      dsk_layernorm_f32_cpu (row_ptr (c->y, r), 0, row_ptr (c->x, r), 0,
                             c->w ? c->w->data : NULL, c->b ? c->b->data : NULL,
                             c->w ? c->w->dtype : c->b ? c->b->dtype : DSK_F32, 1, dim, c->eps);
    else
      dsk_rmsnorm_f32_cpu (row_ptr (c->y, r), 0, row_ptr (c->x, r), 0, c->w->data, c->w->dtype,
                           1, dim, c->eps);
  }
}

static void
run_norm (dsk_backend *be, norm_run *c)
{
  const size_t dim = dsk_tensor_row_len (c->x);
  c->rows = dsk_tensor_rows (c->x);
  c->rows_per_item = ELEMS_PER_ITEM / dim ? ELEMS_PER_ITEM / dim : 1;
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) ((c->rows + c->rows_per_item - 1) / c->rows_per_item),
                8.0 * (double) c->rows * (double) dim, norm_item, c);
}

static void
cpu_rmsnorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
             float eps)
{
  norm_run c = { y, x, w, NULL, eps, 0, 0, 0 };
  run_norm (be, &c);
}

static void
cpu_layernorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
               const dsk_tensor *b, float eps)
{
  norm_run c = { y, x, w, b, eps, 1, 0, 0 };
  run_norm (be, &c);
}

/* ---- rope ---- */

typedef struct {
  const dsk_tensor *cos_tab, *sin_tab, *inv_freq, *x, *pos;
  float factor;
  size_t rot_offset, rot_dim;
  dsk_rope_mode mode;
  size_t rows_per_item;
} rope_run;

static void
rope_tables_item (void *ctx, int item, int thread)
{
  const rope_run *c = ctx;
  const size_t p0 = (size_t) item * c->rows_per_item, n_pos = c->cos_tab->ne[0];
  const size_t n = n_pos - p0 < c->rows_per_item ? n_pos - p0 : c->rows_per_item;
  (void) thread;
  dsk_rope_tables_cpu (dsk_cpu_f32 (c->cos_tab, p0, 0, 0, 0), dsk_cpu_f32 (c->sin_tab, p0, 0, 0, 0),
                       c->inv_freq->data, 2 * c->cos_tab->ne[1], p0, n, c->factor);
}

static void
cpu_rope_tables (dsk_backend *be, const dsk_tensor *cos_tab, const dsk_tensor *sin_tab,
                 const dsk_tensor *inv_freq, float attn_factor)
{
  rope_run c = { .cos_tab = cos_tab, .sin_tab = sin_tab, .inv_freq = inv_freq,
                 .factor = attn_factor, .rows_per_item = 64 };
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) ((cos_tab->ne[0] + 63) / 64),
                40.0 * (double) cos_tab->ne[0] * cos_tab->ne[1], rope_tables_item, &c);
}

static void
rope_item (void *ctx, int item, int thread)
{
  const rope_run *c = ctx;
  const size_t t0 = (size_t) item * c->rows_per_item, T = c->x->ne[0];
  const size_t t1 = T - t0 < c->rows_per_item ? T : t0 + c->rows_per_item;
  (void) thread;
  /* token by token: any layout of x works, tokens outermost in memory or heads */
  for (size_t t = t0; t < t1; t++)
    dsk_rope_f32_cpu (dsk_cpu_f32 (c->x, t, 0, 0, 0), 1, c->x->ne[1], 0, c->x->st[1],
                      c->rot_offset, c->rot_dim, (const int32_t *) c->pos->data + t,
                      c->cos_tab->data, c->sin_tab->data, c->cos_tab->ne[0], c->mode);
}

static void
cpu_rope (dsk_backend *be, const dsk_tensor *x, const dsk_tensor *positions,
          const dsk_tensor *cos_tab, const dsk_tensor *sin_tab, size_t rot_offset,
          size_t rot_dim, dsk_rope_mode mode)
{
  const size_t T = x->ne[0], n_pos = cos_tab->ne[0];
  const int32_t *pos = positions->data;
  rope_run c = { .cos_tab = cos_tab, .sin_tab = sin_tab, .x = x, .pos = positions,
                 .rot_offset = rot_offset, .rot_dim = rot_dim, .mode = mode };
  for (size_t t = 0; t < T; t++)
    if (pos[t] < 0 || (size_t) pos[t] >= n_pos) {
      dsk_backend_fail (be, DSK_ERR_INVALID, "rope: position %d at %zu is outside the tables "
                        "[0, %zu)", pos[t], t, n_pos);
      return;
    }
  /* the heads of a token must not overlap their rotated parts (ops.c refused broadcasts) */
  if (x->ne[1] > 1 && x->st[1] < rot_offset + rot_dim) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "rope: the heads of x overlap");
    return;
  }
  c.rows_per_item = ELEMS_PER_ITEM / (x->ne[1] * rot_dim) + 1;
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) ((T + c.rows_per_item - 1) / c.rows_per_item),
                6.0 * (double) T * x->ne[1] * rot_dim, rope_item, &c);
}

/* ---- products ---- */

static dsk_mat
mat_of (const dsk_tensor *w, const dsk_tensor *b)
{
  return (dsk_mat) {
    .data = w->data, .dtype = w->dtype, .rows = (int) w->ne[0], .cols = (int) w->ne[1],
    .ld = w->st[0], .bias = b ? b->data : NULL, .bias_dtype = b ? b->dtype : DSK_F32,
  };
}

static void
cpu_linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
            const dsk_tensor *b, int accumulate)
{
  const dsk_mat m = mat_of (w, b);
  if (w->ne[0] > INT32_MAX || w->ne[1] > INT32_MAX) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "linear: a weight of %zu x %zu", w->ne[0],
                      w->ne[1]);
    return;
  }
  if (!dsk_mm_linear (dsk_cpu_of (be)->mm, y->data, y->st[0], x->data, x->st[0], x->ne[0], &m,
                      accumulate))
    dsk_backend_fail (be, DSK_ERR_NOMEM, "linear: out of memory for scratch");
}

typedef struct {
  const dsk_tensor *y, *x, *w;
} matmul_run;

static void
matmul_item (void *ctx, int b, int thread)
{
  const matmul_run *c = ctx;
  (void) thread;
  dsk_mm_xw (dsk_cpu_f32 (c->y, (size_t) b, 0, 0, 0), c->y->st[1],
             dsk_cpu_f32 (c->x, (size_t) b, 0, 0, 0), c->x->st[1],
             (const char *) c->w->data + (size_t) b * c->w->st[0] * dsk_dtype_size (c->w->dtype),
             c->w->dtype, c->w->st[1], c->x->ne[1], c->x->ne[2], c->y->ne[2]);
}

static void
cpu_matmul (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w)
{
  matmul_run c = { y, x, w };
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) y->ne[0],
                2.0 * (double) y->ne[0] * y->ne[1] * y->ne[2] * x->ne[2], matmul_item, &c);
}

/* ---- attention ---- */

void
dsk_cpu_attention_params (dsk_attention_params *p, const dsk_tensor *out, const dsk_tensor *q,
                          const dsk_tensor *k, const dsk_tensor *v,
                          const dsk_attention_desc *d, size_t b)
{
  (void) b;
  *p = (dsk_attention_params) {
    .n_q = q->ne[1], .n_kv = k->ne[1], .n_heads = q->ne[2], .n_kv_heads = k->ne[2],
    .d_qk = q->ne[3], .d_v = v ? v->ne[3] : q->ne[3],
    .q_stride = q->st[1], .k_stride = k->st[1], .v_stride = v ? v->st[1] : 0,
    .out_stride = out ? out->st[1] : 0,
    .q_head_stride = q->st[2], .k_head_stride = k->st[2], .v_head_stride = v ? v->st[2] : 0,
    .out_head_stride = out ? out->st[2] : 0,
    .scale = d->scale, .causal = d->causal, .q_pos0 = d->q_pos0,
  };
  /* k and v broadcast over their heads (stride 0) are one kv head for every query head */
  if (k->ne[2] > 1 && k->st[2] == 0 && (!v || v->st[2] == 0))
    p->n_kv_heads = 1;
  /* a stride of 0 means "packed" to the kernel: a single head or token keeps its own */
  if (!p->q_head_stride)
    p->q_head_stride = p->d_qk;
  if (!p->k_head_stride)
    p->k_head_stride = p->d_qk;
  if (v && !p->v_head_stride)
    p->v_head_stride = p->d_v;
  if (out && !p->out_head_stride)
    p->out_head_stride = p->d_v;
  if (d->key_valid)
    p->key_valid = (const uint8_t *) d->key_valid->data + b * d->key_valid->st[0];
  if (d->bias) {
    p->bias = dsk_cpu_f32 (d->bias, b, 0, 0, 0);
    /* a bias broadcast over the heads (stride 0) is one bias head for all */
    p->bias_heads = d->bias->st[1] == 0 ? 1 : d->bias->ne[1];
    p->bias_head_stride = d->bias->st[1];
    p->bias_ld = d->bias->st[2];
    p->bias_rows_shared = d->bias->ne[2] > 1 && d->bias->st[2] == 0;
  }
  if (d->rel_h) {
    p->rel_h = dsk_cpu_f32 (d->rel_h, b, 0, 0, 0);
    p->rel_w = dsk_cpu_f32 (d->rel_w, b, 0, 0, 0);
    p->kv_h = d->rel_h->ne[3];
    p->kv_w = d->rel_w->ne[3];
  }
}

int
dsk_cpu_attention_strides_ok (const dsk_tensor *q, const dsk_tensor *k, const dsk_tensor *v)
{
  const int k_bc = k->ne[2] > 1 && k->st[2] == 0, v_bc = v && v->ne[2] > 1 && v->st[2] == 0;
  return !(q->ne[1] > 1 && q->st[1] == 0) && !(k->ne[1] > 1 && k->st[1] == 0) &&
         !(v && v->ne[1] > 1 && v->st[1] == 0) && !(q->ne[2] > 1 && q->st[2] == 0) &&
         (v ? k_bc == v_bc : 1);
}

typedef struct {
  dsk_backend *be;
  const dsk_tensor *out, *q, *k, *v;
  const dsk_attention_desc *desc;
  size_t items_per_problem;
} attention_run;

static void
attention_item (void *ctx, int item, int thread)
{
  const attention_run *c = ctx;
  const size_t b = (size_t) item / c->items_per_problem;
  dsk_attention_params p;
  dsk_cpu_attention_params (&p, c->out, c->q, c->k, c->v, c->desc, b);
  dsk_attention_item_cpu (dsk_cpu_f32 (c->out, b, 0, 0, 0), dsk_cpu_f32 (c->q, b, 0, 0, 0),
                          dsk_cpu_f32 (c->k, b, 0, 0, 0), dsk_cpu_f32 (c->v, b, 0, 0, 0), &p,
                          (size_t) item % c->items_per_problem,
                          dsk_pool_scratch (dsk_cpu_of (c->be)->pool, thread, 0));
}

static void
cpu_attention (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q, const dsk_tensor *k,
               const dsk_tensor *v, const dsk_attention_desc *desc)
{
  const size_t B = q->ne[0];
  dsk_attention_params p;
  size_t n_items, n_scratch;
  attention_run c = { be, out, q, k, v, desc, 0 };

  if (!dsk_cpu_attention_strides_ok (q, k, v)) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "attention: q, k or v broadcast over tokens, or "
                      "only one of k and v broadcast over heads");
    return;
  }
  dsk_cpu_attention_params (&p, out, q, k, v, desc, 0);
  dsk_status st = dsk_attention_plan_cpu (&p, &n_items, &n_scratch);
  if (st != DSK_OK) {
    dsk_backend_fail (be, st, "attention: the kernel refused the problem");
    return;
  }
  if (n_scratch && !dsk_pool_reserve_scratch (dsk_cpu_of (be)->pool, n_scratch)) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "attention: out of memory for scratch");
    return;
  }
  c.items_per_problem = n_items;
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) (B * n_items),
                2.0 * (double) B * p.n_q * p.n_kv * p.n_heads * (double) (p.d_qk + p.d_v),
                attention_item, &c);
}

/* SAM's decomposed relative-position terms, query rows [t0, t1) of problem b. */
typedef struct {
  dsk_backend *be;
  const dsk_tensor *rel_h, *rel_w, *q, *tab_h, *tab_w;
  size_t rows_per_item, n_tb;
} rel_run;

static void
rel_item (void *ctx, int item, int thread)
{
  const rel_run *c = ctx;
  const size_t b = (size_t) item / c->n_tb, t0 = ((size_t) item % c->n_tb) * c->rows_per_item;
  const size_t size = c->rel_h->ne[3], n = size * size, heads = c->q->ne[2], hd = c->q->ne[3];
  const size_t t1 = t0 + c->rows_per_item < n ? t0 + c->rows_per_item : n;
  const float *tab_h = c->tab_h->data, *tab_w = c->tab_w->data;
  const size_t ldt = c->tab_h->st[0];
  (void) thread;
  for (size_t t = t0; t < t1; t++) {
    const size_t qy = t / size, qx = t % size;
    for (size_t h = 0; h < heads; h++) {
      const float *qv = dsk_cpu_f32 (c->q, b, t, h, 0);
      float *oh = dsk_cpu_f32 (c->rel_h, b, h, t, 0), *ow = dsk_cpu_f32 (c->rel_w, b, h, t, 0);
      for (size_t k = 0; k < size; k++) {
        const float *rh = tab_h + (qy + size - 1 - k) * ldt;
        const float *rw = tab_w + (qx + size - 1 - k) * ldt;
        float sh = 0.0f, sw = 0.0f;
        for (size_t i = 0; i < hd; i++) {
          sh += qv[i] * rh[i];
          sw += qv[i] * rw[i];
        }
        oh[k] = sh;
        ow[k] = sw;
      }
    }
  }
}

/* The same as products on the packed kernel (linear.h): for one grid row qy, rel_h of its
 * tokens is their queries times the table rows qy + size - 1 - k, the same rows for every
 * token and head; likewise rel_w for one grid column. Item: (problem, grid row or column). */
static void
rel_packed_item (void *ctx, int item, int thread)
{
  const rel_run *c = ctx;
  const size_t size = c->rel_h->ne[3], H = c->q->ne[2], hd = c->q->ne[3];
  const size_t b = (size_t) item / (2 * size), j = (size_t) item % (2 * size);
  const int is_w = j >= size;
  const size_t g = is_w ? j - size : j, ldt = c->tab_h->st[0];
  const dsk_tensor *rel = is_w ? c->rel_w : c->rel_h;
  const float *tab = is_w ? c->tab_w->data : c->tab_h->data;
  float *rows = dsk_pool_scratch (dsk_cpu_of (c->be)->pool, thread, 0);
  float *wp = rows + size * hd, *xp = wp + (size + 7) / 8 * 8 * hd;
  const int npad = (int) ((size + 15) / 16 * 16);

  for (size_t k = 0; k < size; k++)
    memcpy (rows + k * hd, tab + (g + size - 1 - k) * ldt, sizeof (float) * hd);
  dsk_mm_pack_rows (wp, rows, hd, (int) size, hd);
  for (size_t h = 0; h < H; h++) {
    /* rel_h: the tokens g * size + i of grid row g; rel_w: the tokens i * size + g */
    const float *q0 = (const float *) c->q->data + b * c->q->st[0] +
                      (is_w ? g : g * size) * c->q->st[1] + h * c->q->st[2];
    float *dst = (float *) rel->data + b * rel->st[0] + h * rel->st[1] +
                 (is_w ? g : g * size) * rel->st[2];
    dsk_mm_pack_panels (xp, q0, (is_w ? size : 1) * c->q->st[1], (int) size, hd);
    dsk_mm_packed (wp, hd, (int) size, xp, npad, (int) size, hd, dst, 1,
                   (is_w ? size : 1) * rel->st[2]);
  }
}

static void
cpu_rel_pos (dsk_backend *be, const dsk_tensor *rel_h, const dsk_tensor *rel_w,
             const dsk_tensor *q, const dsk_tensor *tab_h, const dsk_tensor *tab_w)
{
  const size_t B = q->ne[0], n = q->ne[1], size = rel_h->ne[3], hd = q->ne[3];
  const double flops = 4.0 * (double) B * n * q->ne[2] * size * hd;
  rel_run c = { be, rel_h, rel_w, q, tab_h, tab_w, 64, 0 };
  c.n_tb = (n + c.rows_per_item - 1) / c.rows_per_item;
  if (tab_w->st[0] != tab_h->st[0]) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "rel_pos: tables of different strides");
    return;
  }
  if (dsk_mm_packed_ok ()) {
    const size_t scratch = size * hd + (size + 7) / 8 * 8 * hd + (size + 15) / 16 * 16 * hd;
    if (!dsk_pool_reserve_scratch (dsk_cpu_of (be)->pool, scratch)) {
      dsk_backend_fail (be, DSK_ERR_NOMEM, "rel_pos: out of memory for scratch");
      return;
    }
    dsk_pool_run (dsk_cpu_of (be)->pool, (int) (B * 2 * size), flops, rel_packed_item, &c);
    return;
  }
  dsk_pool_run (dsk_cpu_of (be)->pool, (int) (B * c.n_tb), flops, rel_item, &c);
}

/* ---- convolution ---- */

typedef struct {
  float *col;
  const float *x;
  const dsk_conv2d_desc *d;
  size_t ow, pix0, n, rows_per_item;
} im2col_run;

static void
im2col_item (void *ctx, int item, int thread)
{
  const im2col_run *c = ctx;
  const size_t r0 = (size_t) item * c->rows_per_item;
  const size_t n = c->n - r0 < c->rows_per_item ? c->n - r0 : c->rows_per_item;
  const size_t k = c->d->c_in * c->d->kh * c->d->kw;
  (void) thread;
  dsk_im2col_cpu (c->col + r0 * k, c->x, c->d, c->ow, c->pix0 + r0, n);
}

/* Output pixels unfolded per product. */
#define CONV_BLOCK_PIXELS 1024

static void
cpu_conv2d (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
            const dsk_tensor *b, const dsk_conv2d_desc *d)
{
  dsk_cpu *cpu = dsk_cpu_of (be);
  const size_t oh = dsk_conv2d_out_size (d->h, d->kh, d->stride, d->pad);
  const size_t ow = dsk_conv2d_out_size (d->w, d->kw, d->stride, d->pad);
  const size_t pixels = oh * ow, k = d->c_in * d->kh * d->kw;
  dsk_mat m = mat_of (w, b);

  m.cols = (int) k;   /* [c_out, c_in, kh, kw] as [c_out, k] */
  m.ld = w->st[0];
  if (d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0 &&
      d->in_layout == DSK_LAYOUT_NHWC) {
    /* a pointwise conv on channels-last pixels is the product itself */
    if (!dsk_mm_linear (cpu->mm, y->data, y->st[0], x->data, k, pixels, &m, 0))
      dsk_backend_fail (be, DSK_ERR_NOMEM, "conv2d: out of memory for scratch");
    return;
  }
  const size_t block = pixels < CONV_BLOCK_PIXELS ? pixels : CONV_BLOCK_PIXELS;
  float *col = dsk_cpu_work (be, block * k * sizeof (float));   /* [block, k] */
  if (!col)
    return;
  for (size_t pix0 = 0; pix0 < pixels; pix0 += block) {
    const size_t n = pixels - pix0 < block ? pixels - pix0 : block;
    im2col_run c = { col, x->data, d, ow, pix0, n, 64 };
    dsk_pool_run (cpu->pool, (int) ((n + 63) / 64), (double) n * k, im2col_item, &c);
    if (!dsk_mm_linear (cpu->mm, dsk_cpu_f32 (y, pix0, 0, 0, 0), y->st[0], col, k, n, &m, 0)) {
      dsk_backend_fail (be, DSK_ERR_NOMEM, "conv2d: out of memory for scratch");
      return;
    }
  }
}

static void
cpu_resize_bicubic_aa (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  const size_t work_n = x->ne[0] * y->ne[1] * x->ne[2];
  float *work = dsk_cpu_work (be, work_n * sizeof (float));
  if (work &&
      dsk_resize_bicubic_aa_f32_cpu (y->data, x->data, x->ne[0], x->ne[1], y->ne[0], y->ne[1],
                                     x->ne[2], work, work_n) != DSK_OK)
    dsk_backend_fail (be, DSK_ERR_INVALID, "resize_bicubic_aa: the kernel refused the sizes");
}

static void
cpu_resize_linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  if (dsk_resize_linear_f32_cpu (y->data, x->data, x->ne[0], y->ne[0], x->ne[1]) != DSK_OK)
    dsk_backend_fail (be, DSK_ERR_INVALID, "resize_linear: the kernel refused the sizes");
}

static const dsk_backend_ops cpu_ops = {
  .buffer_alloc = cpu_buffer_alloc,
  .buffer_free = cpu_buffer_free,
  .tensor_set = cpu_tensor_set,
  .tensor_get = cpu_tensor_get,
  .prepare_weight = cpu_prepare_weight,
  .quantize_weight = cpu_quantize_weight,
  .synchronize = NULL,
  .free = cpu_free,
  .copy = cpu_copy,
  .fill = cpu_fill,
  .get_rows = cpu_get_rows,
  .set_rows = cpu_set_rows,
  .add = cpu_add,
  .round = cpu_round,
  .silu = cpu_silu,
  .gelu = cpu_gelu,
  .quick_gelu = cpu_quick_gelu,
  .swiglu = cpu_swiglu,
  .softmax = cpu_softmax,
  .rmsnorm = cpu_rmsnorm,
  .layernorm = cpu_layernorm,
  .rope_tables = cpu_rope_tables,
  .rope = cpu_rope,
  .linear = cpu_linear,
  .matmul = cpu_matmul,
  .attention = cpu_attention,
  .attention_sparse = dsk_cpu_attention_sparse,
  .attention_probs = dsk_cpu_attention_probs,
  .rel_pos = cpu_rel_pos,
  .conv2d = cpu_conv2d,
  .resize_bicubic_aa = cpu_resize_bicubic_aa,
  .resize_linear = cpu_resize_linear,
  .moe_route = dsk_cpu_moe_route,
  .moe = dsk_cpu_moe,
  .index_scores = dsk_cpu_index_scores,
  .topk = dsk_cpu_topk,
};

dsk_backend *
dsk_backend_cpu_new (int n_threads, char *err, size_t err_len)
{
  const long n_proc = sysconf (_SC_NPROCESSORS_ONLN);
  dsk_cpu *c;

#if DSOCR_HAVE_OPENBLAS
  /* every product runs inside a pool item: OpenBLAS's own threads would only compete */
  openblas_set_num_threads (1);
#endif
  if (n_threads == 0)
    n_threads = n_proc > 0 ? (int) n_proc : 1;
  c = calloc (1, sizeof *c);
  if (c)
    c->pool = dsk_pool_new (n_threads);
  if (c && c->pool)
    c->mm = dsk_mm_new (c->pool);
  if (!c || !c->pool || !c->mm) {
    if (c) {
      dsk_pool_free (c->pool);
      free (c);
    }
    if (err && err_len)
      snprintf (err, err_len, "cpu: out of memory");
    return NULL;
  }
  c->base.ops = &cpu_ops;
  c->base.device = (dsk_device) { DSK_DEVICE_HOST, 0 };
  c->base.n_threads = dsk_pool_n_threads (c->pool);
  snprintf (c->base.description, sizeof c->base.description, "cpu (%d thread%s, %s)",
            c->base.n_threads, c->base.n_threads == 1 ? "" : "s", dsk_cpu_simd_name ());
  return &c->base;
}
