/* ops.c: the public op entry points of backend.h. Each one checks its arguments (present,
 * on the backend's device, of an accepted dtype and rank, shapes that agree, contiguous
 * innermost dimensions) and then calls the backend's implementation; the first failure is
 * recorded as the backend's sticky error and the op does nothing. */
#include "backend-impl.h"

#include <stdio.h>
#include <string.h>

/* Accepted dtypes as a bit mask. */
#define M(dt) (1u << (dt))
#define FLOATS (M (DSK_F32) | M (DSK_BF16) | M (DSK_F16))
#define QUANT (M (DSK_Q8) | M (DSK_Q4))
#define F32 M (DSK_F32)
#define I32 M (DSK_I32)
#define U8 M (DSK_U8)
#define ANY (((1u << DSK_N_DTYPES) - 1u) & ~QUANT)   /* the block formats only where named */

#define dtype_name dsk_dtype_name

static const char *
shape_str (const dsk_tensor *t, char *buf, size_t len)
{
  size_t o = 0;
  o += (size_t) snprintf (buf + o, len - o, "[");
  for (int i = 0; i < t->n_dims && o < len; i++)
    o += (size_t) snprintf (buf + o, len - o, i ? ", %zu" : "%zu", t->ne[i]);
  if (o < len)
    snprintf (buf + o, len - o, "]");
  return buf;
}

/* The op may run: no earlier error, and the backend implements it. */
static int
begin (dsk_backend *be, const char *op, int implemented)
{
  if (!be || be->status != DSK_OK)
    return 0;
  if (!implemented) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "%s: not implemented on %s", op,
                      be->description);
    return 0;
  }
  return 1;
}

/* Checks operand @name of @op: present with memory, on the backend's device, of a dtype in
 * @dtypes, of rank @rank (0: any), innermost stride 1 unless @strided_inner. */
static int
arg (dsk_backend *be, const char *op, const char *name, const dsk_tensor *t, unsigned dtypes,
     int rank)
{
  char a[16], b[16];
  if (!t || !t->data) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is missing (NULL, or a view out of range)",
                      op, name);
    return 0;
  }
  if (t->device.kind != be->device.kind || t->device.index != be->device.index) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s lives on %s, the op runs on %s", op, name,
                      dsk_device_name (t->device, a, sizeof a),
                      dsk_device_name (be->device, b, sizeof b));
    return 0;
  }
  if ((unsigned) t->dtype >= DSK_N_DTYPES || !(dtypes & M (t->dtype))) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "%s: %s has dtype %s", op, name,
                      dtype_name (t->dtype));
    return 0;
  }
  if (rank && t->n_dims != rank) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s has %d dimensions, expected %d", op, name,
                      t->n_dims, rank);
    return 0;
  }
  if (t->n_dims < 1 || t->n_dims > DSK_MAX_DIMS || t->st[t->n_dims - 1] != 1) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s's innermost dimension is not contiguous", op,
                      name);
    return 0;
  }
  for (int i = 0; i < t->n_dims; i++)
    if (t->ne[i] == 0) {
      dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is empty", op, name);
      return 0;
    }
  return 1;
}

/* An optional operand: absent is fine. */
static int
opt (dsk_backend *be, const char *op, const char *name, const dsk_tensor *t, unsigned dtypes,
     int rank)
{
  return !t || arg (be, op, name, t, dtypes, rank);
}

/* Dimension @dim of @t has size @n. */
static int
dim_is (dsk_backend *be, const char *op, const char *name, const dsk_tensor *t, int dim,
        size_t n)
{
  char s[96];
  if (t->ne[dim] == n)
    return 1;
  dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is %s, dimension %d should be %zu", op, name,
                    shape_str (t, s, sizeof s), dim, n);
  return 0;
}

static int
same_shape (dsk_backend *be, const char *op, const char *na, const dsk_tensor *a,
            const char *nb, const dsk_tensor *b)
{
  char s1[96], s2[96];
  int same = a->n_dims == b->n_dims;
  for (int i = 0; same && i < a->n_dims; i++)
    same = a->ne[i] == b->ne[i];
  if (!same)
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is %s but %s is %s", op, na,
                      shape_str (a, s1, sizeof s1), nb, shape_str (b, s2, sizeof s2));
  return same;
}

/* A destination: every element has its own place (no zero strides). */
static int
writable (dsk_backend *be, const char *op, const char *name, const dsk_tensor *t)
{
  for (int i = 0; i < t->n_dims; i++)
    if (t->ne[i] > 1 && t->st[i] == 0) {
      dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is a broadcast view and cannot be written",
                        op, name);
      return 0;
    }
  return 1;
}

/* y and x are the same tensor, or do not share memory (by their address ranges). */
static int
no_overlap (dsk_backend *be, const char *op, const char *ny, const dsk_tensor *y,
            const char *nx, const dsk_tensor *x)
{
  size_t ey = 0, ex = 0;
  for (int i = 0; i < y->n_dims; i++)
    ey += (y->ne[i] - 1) * y->st[i];
  for (int i = 0; i < x->n_dims; i++)
    ex += (x->ne[i] - 1) * x->st[i];
  const char *y0 = y->data, *y1 = y0 + (ey + 1) * dsk_dtype_size (y->dtype);
  const char *x0 = x->data, *x1 = x0 + (ex + 1) * dsk_dtype_size (x->dtype);
  if (y1 <= x0 || x1 <= y0)
    return 1;
  dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s overlaps %s", op, ny, nx);
  return 0;
}

static int
same_or_apart (dsk_backend *be, const char *op, const char *ny, const dsk_tensor *y,
               const char *nx, const dsk_tensor *x)
{
  if (y->data == x->data && y->n_dims == x->n_dims &&
      memcmp (y->st, x->st, sizeof y->st) == 0)
    return 1;
  return no_overlap (be, op, ny, y, nx, x);
}

#define CALL(name, ...) be->ops->name (be, __VA_ARGS__)

/* ---- moving data ---- */

/* A tensor of a block format moves only as a whole: contiguous, its rows a multiple of 32. */
static int
whole_blocks (dsk_backend *be, const char *op, const char *name, const dsk_tensor *t)
{
  if (!(M (t->dtype) & QUANT) ||
      (dsk_tensor_is_contiguous (t) && t->ne[t->n_dims - 1] % 32 == 0))
    return 1;
  dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is %s but not whole contiguous rows", op, name,
                    dsk_dtype_name (t->dtype));
  return 0;
}

void
dsk_tensor_set (dsk_backend *be, const dsk_tensor *dst, const void *src)
{
  if (!begin (be, "tensor_set", be->ops->tensor_set != NULL) ||
      !arg (be, "tensor_set", "dst", dst, ANY | QUANT, 0) ||
      !whole_blocks (be, "tensor_set", "dst", dst) || !writable (be, "tensor_set", "dst", dst))
    return;
  if (!src) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "tensor_set: no source");
    return;
  }
  CALL (tensor_set, dst, src);
}

void
dsk_tensor_get (dsk_backend *be, const dsk_tensor *src, void *dst)
{
  if (!begin (be, "tensor_get", be->ops->tensor_get != NULL) ||
      !arg (be, "tensor_get", "src", src, ANY | QUANT, 0) ||
      !whole_blocks (be, "tensor_get", "src", src))
    return;
  if (!dst) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "tensor_get: no destination");
    return;
  }
  CALL (tensor_get, src, dst);
}

void
dsk_copy (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src)
{
  const char *op = "copy";
  if (!begin (be, op, be->ops->copy != NULL) || !arg (be, op, "dst", dst, ANY, 0) ||
      !arg (be, op, "src", src, ANY, 0) || !writable (be, op, "dst", dst) ||
      !same_shape (be, op, "dst", dst, "src", src) || !no_overlap (be, op, "dst", dst, "src", src))
    return;
  if (dst->dtype != src->dtype &&
      !(dst->dtype == DSK_F32 && (M (src->dtype) & FLOATS)) &&
      !(dst->dtype == DSK_BF16 && src->dtype == DSK_F32)) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "copy: %s to %s", dtype_name (src->dtype),
                      dtype_name (dst->dtype));
    return;
  }
  CALL (copy, dst, src);
}

void
dsk_fill (dsk_backend *be, const dsk_tensor *dst, float value)
{
  if (!begin (be, "fill", be->ops->fill != NULL) || !arg (be, "fill", "dst", dst, F32, 0) ||
      !writable (be, "fill", "dst", dst))
    return;
  CALL (fill, dst, value);
}

void
dsk_get_rows (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src,
              const dsk_tensor *idx, const dsk_tensor *fill)
{
  const char *op = "get_rows";
  if (!begin (be, op, be->ops->get_rows != NULL) || !arg (be, op, "dst", dst, F32, 2) ||
      !arg (be, op, "src", src, FLOATS, 2) || !arg (be, op, "idx", idx, I32, 1) ||
      !opt (be, op, "fill", fill, F32, 1) || !writable (be, op, "dst", dst) ||
      !dim_is (be, op, "idx", idx, 0, dst->ne[0]) || !dim_is (be, op, "src", src, 1, dst->ne[1]) ||
      (fill && !dim_is (be, op, "fill", fill, 0, dst->ne[1])) ||
      !no_overlap (be, op, "dst", dst, "src", src))
    return;
  CALL (get_rows, dst, src, idx, fill);
}

void
dsk_set_rows (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *src,
              const dsk_tensor *idx)
{
  const char *op = "set_rows";
  if (!begin (be, op, be->ops->set_rows != NULL) || !arg (be, op, "dst", dst, F32, 2) ||
      !arg (be, op, "src", src, F32, 2) || !arg (be, op, "idx", idx, I32, 1) ||
      !writable (be, op, "dst", dst) || !dim_is (be, op, "idx", idx, 0, src->ne[0]) ||
      !dim_is (be, op, "src", src, 1, dst->ne[1]) || !no_overlap (be, op, "dst", dst, "src", src))
    return;
  CALL (set_rows, dst, src, idx);
}

/* ---- elementwise ---- */

void
dsk_add (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *a, const dsk_tensor *b)
{
  const char *op = "add";
  char s1[96], s2[96];
  if (!begin (be, op, be->ops->add != NULL) || !arg (be, op, "y", y, F32, 0) ||
      !arg (be, op, "a", a, F32, 0) || !arg (be, op, "b", b, F32, 0) ||
      !writable (be, op, "y", y) || !same_shape (be, op, "y", y, "a", a) ||
      !same_or_apart (be, op, "y", y, "a", a) || !same_or_apart (be, op, "y", y, "b", b))
    return;
  /* b: a's shape or its trailing dimensions */
  int ok = b->n_dims <= a->n_dims;
  for (int i = 0; ok && i < b->n_dims; i++)
    ok = b->ne[b->n_dims - 1 - i] == a->ne[a->n_dims - 1 - i];
  if (!ok) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "add: b %s does not broadcast to a %s",
                      shape_str (b, s1, sizeof s1), shape_str (a, s2, sizeof s2));
    return;
  }
  CALL (add, y, a, b);
}

void
dsk_round (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, dsk_dtype dtype)
{
  const char *op = "round";
  if (!begin (be, op, be->ops->round != NULL) || !arg (be, op, "y", y, F32, 0) ||
      !arg (be, op, "x", x, F32, 0) || !writable (be, op, "y", y) ||
      !same_shape (be, op, "y", y, "x", x) || !same_or_apart (be, op, "y", y, "x", x))
    return;
  if (dtype != DSK_BF16 && dtype != DSK_F16) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "round: to %s", dtype_name (dtype));
    return;
  }
  CALL (round, y, x, dtype);
}

static int
unary_ok (dsk_backend *be, const char *op, int impl, const dsk_tensor *y, const dsk_tensor *x)
{
  return begin (be, op, impl) && arg (be, op, "y", y, F32, 0) && arg (be, op, "x", x, F32, 0) &&
         writable (be, op, "y", y) && same_shape (be, op, "y", y, "x", x) &&
         same_or_apart (be, op, "y", y, "x", x);
}

void
dsk_silu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  if (unary_ok (be, "silu", be->ops->silu != NULL, y, x))
    CALL (silu, y, x);
}

void
dsk_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  if (unary_ok (be, "gelu", be->ops->gelu != NULL, y, x))
    CALL (gelu, y, x);
}

void
dsk_quick_gelu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  if (unary_ok (be, "quick_gelu", be->ops->quick_gelu != NULL, y, x))
    CALL (quick_gelu, y, x);
}

void
dsk_swiglu (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *gate, const dsk_tensor *up)
{
  const char *op = "swiglu";
  if (unary_ok (be, op, be->ops->swiglu != NULL, y, gate) && arg (be, op, "up", up, F32, 0) &&
      same_shape (be, op, "y", y, "up", up) && same_or_apart (be, op, "y", y, "up", up))
    CALL (swiglu, y, gate, up);
}

void
dsk_softmax (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  if (unary_ok (be, "softmax", be->ops->softmax != NULL, y, x))
    CALL (softmax, y, x);
}

/* ---- norms ---- */

void
dsk_rmsnorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
             float eps)
{
  const char *op = "rmsnorm";
  if (unary_ok (be, op, be->ops->rmsnorm != NULL, y, x) && arg (be, op, "w", w, FLOATS, 1) &&
      dim_is (be, op, "w", w, 0, dsk_tensor_row_len (x)))
    CALL (rmsnorm, y, x, w, eps);
}

void
dsk_layernorm (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
               const dsk_tensor *b, float eps)
{
  const char *op = "layernorm";
  const size_t d = x ? x->ne[x->n_dims - 1] : 0;
  if (!unary_ok (be, op, be->ops->layernorm != NULL, y, x) ||
      !opt (be, op, "w", w, FLOATS, 1) || !opt (be, op, "b", b, FLOATS, 1) ||
      (w && !dim_is (be, op, "w", w, 0, d)) || (b && !dim_is (be, op, "b", b, 0, d)))
    return;
  if (w && b && w->dtype != b->dtype) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "layernorm: w is %s but b is %s",
                      dtype_name (w->dtype), dtype_name (b->dtype));
    return;
  }
  CALL (layernorm, y, x, w, b, eps);
}

/* ---- rope ---- */

void
dsk_rope_tables (dsk_backend *be, const dsk_tensor *cos_tab, const dsk_tensor *sin_tab,
                 const dsk_tensor *inv_freq, float attn_factor)
{
  const char *op = "rope_tables";
  if (!begin (be, op, be->ops->rope_tables != NULL) || !arg (be, op, "cos", cos_tab, F32, 2) ||
      !arg (be, op, "sin", sin_tab, F32, 2) || !arg (be, op, "inv_freq", inv_freq, F32, 1) ||
      !writable (be, op, "cos", cos_tab) || !writable (be, op, "sin", sin_tab) ||
      !same_shape (be, op, "cos", cos_tab, "sin", sin_tab) ||
      !dim_is (be, op, "inv_freq", inv_freq, 0, cos_tab->ne[1]))
    return;
  if (!dsk_tensor_is_contiguous (cos_tab) || !dsk_tensor_is_contiguous (sin_tab) ||
      !dsk_tensor_is_contiguous (inv_freq)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "rope_tables: the tables must be contiguous");
    return;
  }
  CALL (rope_tables, cos_tab, sin_tab, inv_freq, attn_factor);
}

void
dsk_rope (dsk_backend *be, const dsk_tensor *x, const dsk_tensor *positions,
          const dsk_tensor *cos_tab, const dsk_tensor *sin_tab, size_t rot_offset, size_t rot_dim,
          dsk_rope_mode mode)
{
  const char *op = "rope";
  if (!begin (be, op, be->ops->rope != NULL) || !arg (be, op, "x", x, F32, 3) ||
      !writable (be, op, "x", x) || !arg (be, op, "positions", positions, I32, 1) ||
      !arg (be, op, "cos", cos_tab, F32, 2) || !arg (be, op, "sin", sin_tab, F32, 2) ||
      !same_shape (be, op, "cos", cos_tab, "sin", sin_tab) ||
      !dim_is (be, op, "positions", positions, 0, x->ne[0]))
    return;
  if (!dsk_tensor_is_contiguous (positions) || !dsk_tensor_is_contiguous (cos_tab) ||
      !dsk_tensor_is_contiguous (sin_tab)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "rope: positions and tables must be contiguous");
    return;
  }
  if (rot_dim == 0 || rot_dim % 2 || rot_offset + rot_dim > x->ne[2] ||
      cos_tab->ne[1] != rot_dim / 2 || (mode != DSK_ROPE_HALF && mode != DSK_ROPE_INTERLEAVED)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "rope: rotating %zu values at %zu of heads of %zu "
                      "with tables of %zu pairs (mode %d)", rot_dim, rot_offset, x->ne[2],
                      cos_tab->ne[1], (int) mode);
    return;
  }
  CALL (rope, x, positions, cos_tab, sin_tab, rot_offset, rot_dim, mode);
}

/* ---- products ---- */

/* A product's weight: a float dtype, or a block format with whole rows (quantize_weight made
 * it: contiguous, rows a multiple of 32 long). */
static int
weight_arg (dsk_backend *be, const char *op, const char *name, const dsk_tensor *t, int rank)
{
  if (!arg (be, op, name, t, FLOATS | QUANT, rank))
    return 0;
  if ((M (t->dtype) & QUANT) && (t->st[0] != t->ne[1] || t->ne[1] % 32)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s is %s but not whole rows of a multiple of "
                      "32 (a view into a quantized weight?)", op, name, dsk_dtype_name (t->dtype));
    return 0;
  }
  return 1;
}

static void
linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
        const dsk_tensor *b, int acc)
{
  const char *op = acc ? "linear_acc" : "linear";
  if (!begin (be, op, be->ops->linear != NULL) || !arg (be, op, "y", y, F32, 2) ||
      !arg (be, op, "x", x, F32, 2) || !weight_arg (be, op, "w", w, 2) ||
      !opt (be, op, "b", b, FLOATS, 1) || !writable (be, op, "y", y) ||
      !dim_is (be, op, "x", x, 1, w->ne[1]) || !dim_is (be, op, "y", y, 0, x->ne[0]) ||
      !dim_is (be, op, "y", y, 1, w->ne[0]) || (b && !dim_is (be, op, "b", b, 0, w->ne[0])) ||
      !no_overlap (be, op, "y", y, "x", x))
    return;
  CALL (linear, y, x, w, b, acc);
}

void
dsk_linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
            const dsk_tensor *b)
{
  linear (be, y, x, w, b, 0);
}

void
dsk_linear_acc (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
                const dsk_tensor *b)
{
  linear (be, y, x, w, b, 1);
}

void
dsk_matmul (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w)
{
  const char *op = "matmul";
  if (!begin (be, op, be->ops->matmul != NULL) || !arg (be, op, "y", y, F32, 3) ||
      !arg (be, op, "x", x, F32, 3) || !arg (be, op, "w", w, FLOATS, 3) ||
      !writable (be, op, "y", y) || !dim_is (be, op, "x", x, 0, y->ne[0]) ||
      !dim_is (be, op, "w", w, 0, y->ne[0]) || !dim_is (be, op, "x", x, 1, y->ne[1]) ||
      !dim_is (be, op, "w", w, 1, x->ne[2]) || !dim_is (be, op, "w", w, 2, y->ne[2]) ||
      !no_overlap (be, op, "y", y, "x", x))
    return;
  CALL (matmul, y, x, w);
}

/* ---- attention ---- */

/* q [B, T, H, dqk], k [B, S, Hkv, dqk], v [B, S, Hkv, dv], out [B, T, H, dv] and the
 * descriptor's tensors. */
static int
attention_args (dsk_backend *be, const char *op, const dsk_tensor *out, const dsk_tensor *q,
                const dsk_tensor *k, const dsk_tensor *v, const dsk_attention_desc *d)
{
  if (!arg (be, op, "q", q, F32, 4) || !arg (be, op, "k", k, F32, 4) ||
      (out && (!arg (be, op, "out", out, F32, 4) || !writable (be, op, "out", out))) ||
      (v && !arg (be, op, "v", v, F32, 4)))
    return 0;
  if (!d) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: no descriptor", op);
    return 0;
  }
  const size_t B = q->ne[0], T = q->ne[1], H = q->ne[2], S = k->ne[1], Hkv = k->ne[2];
  if (!dim_is (be, op, "k", k, 0, B) || !dim_is (be, op, "k", k, 3, q->ne[3]) ||
      (v && (!dim_is (be, op, "v", v, 0, B) || !dim_is (be, op, "v", v, 1, S) ||
             !dim_is (be, op, "v", v, 2, Hkv))) ||
      (out && (!dim_is (be, op, "out", out, 0, B) || !dim_is (be, op, "out", out, 1, T) ||
               !dim_is (be, op, "out", out, 2, H) ||
               (v && !dim_is (be, op, "out", out, 3, v->ne[3])))))
    return 0;
  if (H % Hkv) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %zu query heads over %zu kv heads", op, H, Hkv);
    return 0;
  }
  if (v && v->ne[3] > 512) {
    dsk_backend_fail (be, DSK_ERR_UNSUPPORTED, "%s: value heads of %zu (at most 512)", op,
                      v->ne[3]);
    return 0;
  }
  if (out && (!no_overlap (be, op, "out", out, "q", q) || !no_overlap (be, op, "out", out, "k", k) ||
              (v && !no_overlap (be, op, "out", out, "v", v))))
    return 0;
  if (d->key_valid && (!arg (be, op, "key_valid", d->key_valid, U8, 2) ||
                       !dim_is (be, op, "key_valid", d->key_valid, 0, B) ||
                       !dim_is (be, op, "key_valid", d->key_valid, 1, S)))
    return 0;
  if (d->bias && (!arg (be, op, "bias", d->bias, F32, 4) ||
                  !dim_is (be, op, "bias", d->bias, 0, B) ||
                  !dim_is (be, op, "bias", d->bias, 2, T) ||
                  !dim_is (be, op, "bias", d->bias, 3, S) ||
                  (d->bias->ne[1] != 1 && !dim_is (be, op, "bias", d->bias, 1, H))))
    return 0;
  if (!d->rel_h != !d->rel_w) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: rel_h and rel_w go together", op);
    return 0;
  }
  if (d->rel_h) {
    if (!arg (be, op, "rel_h", d->rel_h, F32, 4) || !arg (be, op, "rel_w", d->rel_w, F32, 4) ||
        !dim_is (be, op, "rel_h", d->rel_h, 0, B) || !dim_is (be, op, "rel_h", d->rel_h, 1, H) ||
        !dim_is (be, op, "rel_h", d->rel_h, 2, T) || !dim_is (be, op, "rel_w", d->rel_w, 0, B) ||
        !dim_is (be, op, "rel_w", d->rel_w, 1, H) || !dim_is (be, op, "rel_w", d->rel_w, 2, T))
      return 0;
    for (int i = 0; i < 2; i++) {
      const dsk_tensor *r = i ? d->rel_w : d->rel_h;
      if (r->st[2] != r->ne[3] || r->st[1] != r->ne[2] * r->ne[3]) {
        dsk_backend_fail (be, DSK_ERR_INVALID, "%s: %s must be contiguous within a problem", op,
                          i ? "rel_w" : "rel_h");
        return 0;
      }
    }
    if (d->rel_h->ne[3] * d->rel_w->ne[3] != S) {
      dsk_backend_fail (be, DSK_ERR_INVALID, "%s: a %zu x %zu relative-position grid for %zu "
                        "keys", op, d->rel_h->ne[3], d->rel_w->ne[3], S);
      return 0;
    }
  }
  return 1;
}

void
dsk_attention (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q, const dsk_tensor *k,
               const dsk_tensor *v, const dsk_attention_desc *desc)
{
  if (begin (be, "attention", be->ops->attention != NULL) &&
      attention_args (be, "attention", out, q, k, v, desc))
    CALL (attention, out, q, k, v, desc);
}

static int
sel_arg (dsk_backend *be, const char *op, const dsk_tensor *sel, const dsk_tensor *q,
         const dsk_attention_desc *desc)
{
  if (q->ne[0] != 1) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: one problem at a time (B is %zu)", op, q->ne[0]);
    return 0;
  }
  if (desc->bias || desc->rel_h) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: takes no bias", op);
    return 0;
  }
  return !sel || (arg (be, op, "sel", sel, I32, 2) && dim_is (be, op, "sel", sel, 0, q->ne[1]));
}

void
dsk_attention_sparse (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q,
                      const dsk_tensor *k, const dsk_tensor *v, const dsk_attention_desc *desc,
                      const dsk_tensor *sel)
{
  const char *op = "attention_sparse";
  if (begin (be, op, be->ops->attention_sparse != NULL) &&
      attention_args (be, op, out, q, k, v, desc) && arg (be, op, "sel", sel, I32, 2) &&
      sel_arg (be, op, sel, q, desc))
    CALL (attention_sparse, out, q, k, v, desc, sel);
}

void
dsk_attention_probs (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *q,
                     const dsk_tensor *k, const dsk_attention_desc *desc, const dsk_tensor *sel)
{
  const char *op = "attention_probs";
  if (begin (be, op, be->ops->attention_probs != NULL) &&
      attention_args (be, op, NULL, q, k, NULL, desc) && sel_arg (be, op, sel, q, desc) &&
      arg (be, op, "dst", dst, F32, 2) && writable (be, op, "dst", dst) &&
      dim_is (be, op, "dst", dst, 0, q->ne[1]) && dim_is (be, op, "dst", dst, 1, k->ne[1]))
    CALL (attention_probs, dst, q, k, desc, sel);
}

void
dsk_rel_pos (dsk_backend *be, const dsk_tensor *rel_h, const dsk_tensor *rel_w,
             const dsk_tensor *q, const dsk_tensor *tab_h, const dsk_tensor *tab_w)
{
  const char *op = "rel_pos";
  if (!begin (be, op, be->ops->rel_pos != NULL) || !arg (be, op, "rel_h", rel_h, F32, 4) ||
      !arg (be, op, "rel_w", rel_w, F32, 4) || !arg (be, op, "q", q, F32, 4) ||
      !arg (be, op, "tab_h", tab_h, F32, 2) || !arg (be, op, "tab_w", tab_w, F32, 2) ||
      !writable (be, op, "rel_h", rel_h) || !writable (be, op, "rel_w", rel_w) ||
      !same_shape (be, op, "rel_h", rel_h, "rel_w", rel_w) ||
      !same_shape (be, op, "tab_h", tab_h, "tab_w", tab_w))
    return;
  const size_t size = rel_h->ne[3];
  if (!dim_is (be, op, "rel_h", rel_h, 0, q->ne[0]) || !dim_is (be, op, "rel_h", rel_h, 1, q->ne[2]) ||
      !dim_is (be, op, "rel_h", rel_h, 2, q->ne[1]) || !dim_is (be, op, "q", q, 1, size * size) ||
      !dim_is (be, op, "tab_h", tab_h, 0, 2 * size - 1) ||
      !dim_is (be, op, "tab_h", tab_h, 1, q->ne[3]))
    return;
  CALL (rel_pos, rel_h, rel_w, q, tab_h, tab_w);
}

/* ---- vision ---- */

size_t
dsk_conv2d_out_size (size_t in, size_t k, size_t stride, size_t pad)
{
  if (stride == 0 || in + 2 * pad < k)
    return 0;
  return (in + 2 * pad - k) / stride + 1;
}

void
dsk_conv2d (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x, const dsk_tensor *w,
            const dsk_tensor *b, const dsk_conv2d_desc *d)
{
  const char *op = "conv2d";
  if (!begin (be, op, be->ops->conv2d != NULL) || !arg (be, op, "y", y, F32, 2) ||
      !arg (be, op, "x", x, F32, 0) || !arg (be, op, "w", w, FLOATS, 4) ||
      !opt (be, op, "b", b, FLOATS, 1) || !writable (be, op, "y", y) ||
      !no_overlap (be, op, "y", y, "x", x))
    return;
  if (!d || !d->c_in || !d->h || !d->w || !d->kh || !d->kw || !d->stride ||
      (d->in_layout != DSK_LAYOUT_NCHW && d->in_layout != DSK_LAYOUT_NHWC)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "conv2d: bad descriptor");
    return;
  }
  const size_t oh = dsk_conv2d_out_size (d->h, d->kh, d->stride, d->pad);
  const size_t ow = dsk_conv2d_out_size (d->w, d->kw, d->stride, d->pad);
  if (!oh || !ow || !dsk_tensor_is_contiguous (x) ||
      dsk_tensor_n_elements (x) != d->c_in * d->h * d->w ||
      !dim_is (be, op, "y", y, 0, oh * ow) || !dim_is (be, op, "y", y, 1, w->ne[0]) ||
      !dim_is (be, op, "w", w, 1, d->c_in) || !dim_is (be, op, "w", w, 2, d->kh) ||
      !dim_is (be, op, "w", w, 3, d->kw) || (b && !dim_is (be, op, "b", b, 0, w->ne[0]))) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "conv2d: sizes do not fit (%zu x %zu x %zu input)",
                      d->c_in, d->h, d->w);
    return;
  }
  CALL (conv2d, y, x, w, b, d);
}

void
dsk_resize_bicubic_aa (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  const char *op = "resize_bicubic_aa";
  if (begin (be, op, be->ops->resize_bicubic_aa != NULL) && arg (be, op, "y", y, F32, 3) &&
      arg (be, op, "x", x, F32, 3) && writable (be, op, "y", y) &&
      dsk_tensor_is_contiguous (y) && dsk_tensor_is_contiguous (x) &&
      dim_is (be, op, "y", y, 2, x->ne[2]) && no_overlap (be, op, "y", y, "x", x))
    CALL (resize_bicubic_aa, y, x);
  else if (be->status == DSK_OK)
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: y and x must be contiguous", op);
}

void
dsk_resize_linear (dsk_backend *be, const dsk_tensor *y, const dsk_tensor *x)
{
  const char *op = "resize_linear";
  if (begin (be, op, be->ops->resize_linear != NULL) && arg (be, op, "y", y, F32, 2) &&
      arg (be, op, "x", x, F32, 2) && writable (be, op, "y", y) &&
      dsk_tensor_is_contiguous (y) && dsk_tensor_is_contiguous (x) &&
      dim_is (be, op, "y", y, 1, x->ne[1]) && no_overlap (be, op, "y", y, "x", x))
    CALL (resize_linear, y, x);
  else if (be->status == DSK_OK)
    dsk_backend_fail (be, DSK_ERR_INVALID, "%s: y and x must be contiguous", op);
}

/* ---- mixture of experts ---- */

void
dsk_moe_route (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *weights,
               const dsk_tensor *logits, const dsk_tensor *bias, const dsk_moe_router *r)
{
  const char *op = "moe_route";
  if (!begin (be, op, be->ops->moe_route != NULL) || !arg (be, op, "idx", idx, I32, 2) ||
      !arg (be, op, "weights", weights, F32, 2) || !arg (be, op, "logits", logits, F32, 2) ||
      !opt (be, op, "bias", bias, FLOATS, 1) || !writable (be, op, "idx", idx) ||
      !writable (be, op, "weights", weights) || !same_shape (be, op, "idx", idx, "weights", weights))
    return;
  const int n_group = r && r->n_group > 0 ? r->n_group : 1;
  if (!r || r->n_experts <= 0 || (size_t) r->n_experts != logits->ne[1] || r->top_k <= 0 ||
      r->top_k > r->n_experts || (size_t) r->top_k != idx->ne[1] || r->n_experts % n_group ||
      (r->method != DSK_MOE_GREEDY && n_group > 1 && r->topk_group > n_group) ||
      (bias && bias->ne[0] != logits->ne[1])) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "moe_route: the router does not fit its tensors");
    return;
  }
  if (!dim_is (be, op, "idx", idx, 0, logits->ne[0]))
    return;
  CALL (moe_route, idx, weights, logits, bias, r);
}

static int
mlp_args (dsk_backend *be, const char *what, const dsk_tensor *g, const dsk_tensor *u,
          const dsk_tensor *d, size_t H)
{
  const char *op = "moe";
  return weight_arg (be, op, what, g, 2) && weight_arg (be, op, what, u, 2) &&
         weight_arg (be, op, what, d, 2) && dim_is (be, op, what, g, 1, H) &&
         same_shape (be, op, "gate", g, "up", u) && dim_is (be, op, what, d, 0, H) &&
         dim_is (be, op, what, d, 1, g->ne[0]);
}

void
dsk_moe (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *x, const dsk_tensor *idx,
         const dsk_tensor *weights, const dsk_moe_experts *e)
{
  const char *op = "moe";
  if (!begin (be, op, be->ops->moe != NULL) || !arg (be, op, "out", out, F32, 2) ||
      !arg (be, op, "x", x, F32, 2) || !arg (be, op, "idx", idx, I32, 2) ||
      !arg (be, op, "weights", weights, F32, 2) || !writable (be, op, "out", out) ||
      !same_shape (be, op, "out", out, "x", x) || !same_shape (be, op, "idx", idx, "weights", weights) ||
      !dim_is (be, op, "idx", idx, 0, x->ne[0]) || !no_overlap (be, op, "out", out, "x", x))
    return;
  if (!e || e->n_experts <= 0 || !e->gate || !e->up || !e->down ||
      (!e->sh_gate != !e->sh_up) || (!e->sh_gate != !e->sh_down)) {
    dsk_backend_fail (be, DSK_ERR_INVALID, "moe: incomplete expert weights");
    return;
  }
  for (int i = 0; i < e->n_experts; i++)
    if (!mlp_args (be, "an expert", &e->gate[i], &e->up[i], &e->down[i], x->ne[1]))
      return;
  if (e->sh_gate && !mlp_args (be, "the shared experts", e->sh_gate, e->sh_up, e->sh_down,
                               x->ne[1]))
    return;
  CALL (moe, out, x, idx, weights, e);
}

/* ---- indexer ---- */

void
dsk_index_scores (dsk_backend *be, const dsk_tensor *scores, const dsk_tensor *q,
                  const dsk_tensor *w, const dsk_tensor *keys, const dsk_attention_desc *desc,
                  float scale)
{
  const char *op = "index_scores";
  if (!begin (be, op, be->ops->index_scores != NULL) ||
      !arg (be, op, "scores", scores, F32, 2) || !arg (be, op, "q", q, F32, 3) ||
      !arg (be, op, "w", w, F32, 2) || !arg (be, op, "keys", keys, F32, 2) ||
      !writable (be, op, "scores", scores) || !dim_is (be, op, "q", q, 0, scores->ne[0]) ||
      !dim_is (be, op, "w", w, 0, scores->ne[0]) || !dim_is (be, op, "w", w, 1, q->ne[1]) ||
      !dim_is (be, op, "keys", keys, 0, scores->ne[1]) ||
      !dim_is (be, op, "keys", keys, 1, q->ne[2]))
    return;
  if (!desc || desc->bias || desc->rel_h ||
      (desc->key_valid && (!arg (be, op, "key_valid", desc->key_valid, U8, 2) ||
                           !dim_is (be, op, "key_valid", desc->key_valid, 1, keys->ne[0])))) {
    if (be->status == DSK_OK)
      dsk_backend_fail (be, DSK_ERR_INVALID, "index_scores: bad descriptor");
    return;
  }
  CALL (index_scores, scores, q, w, keys, desc, scale);
}

void
dsk_topk (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *scores)
{
  const char *op = "topk";
  if (begin (be, op, be->ops->topk != NULL) && arg (be, op, "idx", idx, I32, 2) &&
      arg (be, op, "scores", scores, F32, 2) && writable (be, op, "idx", idx) &&
      dim_is (be, op, "idx", idx, 0, scores->ne[0]))
    CALL (topk, idx, scores);
}

int
dsk_backend_supports (const dsk_backend *be, const char *name)
{
  const dsk_backend_ops *o = be->ops;
  const struct { const char *name; int have; } table[] = {
    { "tensor_set", o->tensor_set != NULL }, { "tensor_get", o->tensor_get != NULL },
    { "copy", o->copy != NULL }, { "fill", o->fill != NULL },
    { "get_rows", o->get_rows != NULL }, { "set_rows", o->set_rows != NULL },
    { "add", o->add != NULL }, { "round", o->round != NULL }, { "silu", o->silu != NULL },
    { "gelu", o->gelu != NULL }, { "quick_gelu", o->quick_gelu != NULL },
    { "swiglu", o->swiglu != NULL }, { "softmax", o->softmax != NULL },
    { "rmsnorm", o->rmsnorm != NULL }, { "layernorm", o->layernorm != NULL },
    { "rope_tables", o->rope_tables != NULL }, { "rope", o->rope != NULL },
    { "linear", o->linear != NULL }, { "linear_acc", o->linear != NULL },
    { "matmul", o->matmul != NULL }, { "attention", o->attention != NULL },
    { "attention_sparse", o->attention_sparse != NULL },
    { "attention_probs", o->attention_probs != NULL }, { "rel_pos", o->rel_pos != NULL },
    { "conv2d", o->conv2d != NULL }, { "resize_bicubic_aa", o->resize_bicubic_aa != NULL },
    { "resize_linear", o->resize_linear != NULL }, { "moe_route", o->moe_route != NULL },
    { "moe", o->moe != NULL }, { "index_scores", o->index_scores != NULL },
    { "topk", o->topk != NULL }, { "quantize_weight", o->quantize_weight != NULL },
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp (table[i].name, name) == 0)
      return table[i].have;
  return 0;
}
