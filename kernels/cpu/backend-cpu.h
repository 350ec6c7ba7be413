/* backend-cpu.h: the CPU backend's state and the ops implemented outside backend-cpu.c
 * (internal to kernels/cpu/).
 *
 * An op is split into pool items (rows, heads, blocks of weight rows) and each item calls a
 * single-threaded kernel (dsk-cpu.h), so results never depend on the thread count. Scratch an
 * item needs comes from its pool thread's own (dsk_pool_scratch), reserved before the run. */
#ifndef DSK_BACKEND_CPU_H
#define DSK_BACKEND_CPU_H

#include "backend-impl.h"
#include "dsk-cpu.h"
#include "linear.h"
#include "pool.h"

typedef struct {
  dsk_backend base;
  dsk_pool *pool;
  dsk_mm *mm;
  /* scratch of the ops that need more than items do (MoE routing tables, the indexer) */
  void *work;
  size_t work_bytes;
} dsk_cpu;

static inline dsk_cpu *
dsk_cpu_of (dsk_backend *be)
{
  return (dsk_cpu *) be;
}

/* be's shared work memory of at least @nbytes (kept between ops); NULL with be's error set. */
void *dsk_cpu_work (dsk_backend *be, size_t nbytes);

/* Element (i0, i1, i2, i3) of @t, as a typed pointer. */
static inline float *
dsk_cpu_f32 (const dsk_tensor *t, size_t i0, size_t i1, size_t i2, size_t i3)
{
  return (float *) t->data + i0 * t->st[0] + i1 * t->st[1] + i2 * t->st[2] + i3 * t->st[3];
}

/* The attention problem of batch @b of a 4-D call as the kernel takes it. */
void dsk_cpu_attention_params (dsk_attention_params *p, const dsk_tensor *out, const dsk_tensor *q,
                               const dsk_tensor *k, const dsk_tensor *v,
                               const dsk_attention_desc *desc, size_t b);

/* Whether the kernel can take these strides: no broadcast over tokens, none of q over heads,
 * and k and v broadcast over their heads together or not at all. */
int dsk_cpu_attention_strides_ok (const dsk_tensor *q, const dsk_tensor *k, const dsk_tensor *v);

/* moe.c */
void dsk_cpu_moe_route (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *weights,
                        const dsk_tensor *logits, const dsk_tensor *bias, const dsk_moe_router *r);
void dsk_cpu_moe (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *x,
                  const dsk_tensor *idx, const dsk_tensor *weights, const dsk_moe_experts *e);

/* indexer.c */
void dsk_cpu_index_scores (dsk_backend *be, const dsk_tensor *scores, const dsk_tensor *q,
                           const dsk_tensor *w, const dsk_tensor *keys,
                           const dsk_attention_desc *desc, float scale);
void dsk_cpu_topk (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *scores);
void dsk_cpu_attention_sparse (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *q,
                               const dsk_tensor *k, const dsk_tensor *v,
                               const dsk_attention_desc *desc, const dsk_tensor *sel);
void dsk_cpu_attention_probs (dsk_backend *be, const dsk_tensor *dst, const dsk_tensor *q,
                              const dsk_tensor *k, const dsk_attention_desc *desc,
                              const dsk_tensor *sel);

/* The top-k selection kernel (indexer.c): the @k largest finite entries of @scores [n] (by
 * score, descending; lower index first on ties) into @idx [k], padded with -1; returns how
 * many were picked. */
int dsk_topk_cpu (const float *scores, size_t n, int k, int32_t *idx);

#endif /* DSK_BACKEND_CPU_H */
