/* backend-impl.h: what a backend implements (kernels/cpu/, kernels/cuda/); not for the engine.
 *
 * backend.c checks every op's arguments (shapes, dtypes, devices, the sticky error) and then
 * calls the backend's entry in its table, so an implementation may assume well-formed
 * arguments. An op that is NULL in the table is unsupported on that backend: the call records
 * DSK_ERR_UNSUPPORTED naming the op, and the generic backend test skips it by name. An
 * implementation reports a runtime failure (scratch it could not get, a CUDA error) with
 * dsk_backend_fail().
 *
 * To add an op: declare it in backend.h, check its arguments in backend.c, add its entry here
 * and to the name list in backend.c, implement it in each backend (cpu/ops-*.c, cuda/) and
 * give it cases in tests/kernels/test-backend-ops.c.
 */
#ifndef DSK_BACKEND_IMPL_H
#define DSK_BACKEND_IMPL_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef const dsk_tensor cten;   /* brevity in the table below */

typedef struct {
  /* memory */
  void *(*buffer_alloc) (dsk_backend *be, size_t nbytes);   /* NULL when out of memory */
  void (*buffer_free) (dsk_device device, void *ptr);   /* needs no backend: weights outlive them */
  void (*tensor_set) (dsk_backend *be, cten *dst, const void *src);
  void (*tensor_get) (dsk_backend *be, cten *src, void *dst);
  /* a weight from host memory, allocated through @storage (backend.c's
   * dsk_weight_storage_add) when it must be copied */
  dsk_tensor (*prepare_weight) (dsk_backend *be, cten *host, dsk_weight_storage *storage);
  /* a host weight quantized to @q (backend.c has checked it); NULL: no block formats */
  dsk_tensor (*quantize_weight) (dsk_backend *be, cten *host, dsk_dtype q,
                                 dsk_weight_storage *storage);
  void (*synchronize) (dsk_backend *be);
  void (*free) (dsk_backend *be);   /* the backend's own state (impl) */

  /* ops, in the order of backend.h */
  void (*copy) (dsk_backend *be, cten *dst, cten *src);
  void (*fill) (dsk_backend *be, cten *dst, float value);
  void (*get_rows) (dsk_backend *be, cten *dst, cten *src, cten *idx, cten *fill);
  void (*set_rows) (dsk_backend *be, cten *dst, cten *src, cten *idx);
  void (*add) (dsk_backend *be, cten *y, cten *a, cten *b);
  void (*round) (dsk_backend *be, cten *y, cten *x, dsk_dtype dtype);
  void (*silu) (dsk_backend *be, cten *y, cten *x);
  void (*gelu) (dsk_backend *be, cten *y, cten *x);
  void (*quick_gelu) (dsk_backend *be, cten *y, cten *x);
  void (*swiglu) (dsk_backend *be, cten *y, cten *gate, cten *up);
  void (*softmax) (dsk_backend *be, cten *y, cten *x);
  void (*rmsnorm) (dsk_backend *be, cten *y, cten *x, cten *w, float eps);
  void (*layernorm) (dsk_backend *be, cten *y, cten *x, cten *w, cten *b, float eps);
  void (*rope_tables) (dsk_backend *be, cten *cos_tab, cten *sin_tab, cten *inv_freq,
                       float attn_factor);
  void (*rope) (dsk_backend *be, cten *x, cten *positions, cten *cos_tab, cten *sin_tab,
                size_t rot_offset, size_t rot_dim, dsk_rope_mode mode);
  void (*linear) (dsk_backend *be, cten *y, cten *x, cten *w, cten *b, int accumulate);
  void (*matmul) (dsk_backend *be, cten *y, cten *x, cten *w);
  void (*attention) (dsk_backend *be, cten *out, cten *q, cten *k, cten *v,
                     const dsk_attention_desc *desc);
  void (*attention_sparse) (dsk_backend *be, cten *out, cten *q, cten *k, cten *v,
                            const dsk_attention_desc *desc, cten *sel);
  void (*attention_probs) (dsk_backend *be, cten *dst, cten *q, cten *k,
                           const dsk_attention_desc *desc, cten *sel);
  void (*rel_pos) (dsk_backend *be, cten *rel_h, cten *rel_w, cten *q, cten *tab_h,
                   cten *tab_w);
  void (*conv2d) (dsk_backend *be, cten *y, cten *x, cten *w, cten *b,
                  const dsk_conv2d_desc *desc);
  void (*resize_bicubic_aa) (dsk_backend *be, cten *y, cten *x);
  void (*resize_linear) (dsk_backend *be, cten *y, cten *x);
  void (*moe_route) (dsk_backend *be, cten *idx, cten *weights, cten *logits, cten *bias,
                     const dsk_moe_router *r);
  void (*moe) (dsk_backend *be, cten *out, cten *x, cten *idx, cten *weights,
               const dsk_moe_experts *experts);
  void (*index_scores) (dsk_backend *be, cten *scores, cten *q, cten *w, cten *keys,
                        const dsk_attention_desc *desc, float scale);
  void (*topk) (dsk_backend *be, cten *idx, cten *scores);
} dsk_backend_ops;

/* The common part of every backend; an implementation embeds it first in its own struct. */
struct dsk_backend {
  const dsk_backend_ops *ops;
  dsk_device device;
  int n_threads;
  int ref_count;
  dsk_status status;          /* the sticky error */
  char error[512];
  char description[128];
};

/* Called by dsk_backend_new() for each kind; NULL with a message in @err when unavailable. */
dsk_backend *dsk_backend_cpu_new (int n_threads, char *err, size_t err_len);
dsk_backend *dsk_backend_cuda_new (int device, char *err, size_t err_len);
int dsk_backend_cuda_count (void);

/* For prepare_weight: @nbytes of @be's memory owned by @storage, freed with it (through the
 * ops' buffer_free, which needs no backend); NULL with @be's error set when out of memory. */
void *dsk_weight_storage_add (dsk_weight_storage *storage, dsk_backend *be, size_t nbytes);

#ifdef __cplusplus
}
#endif

#endif /* DSK_BACKEND_IMPL_H */
