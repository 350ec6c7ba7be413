/* moe.c: mixture-of-experts routing and experts on the CPU backend.
 *
 * References reproduced (transformers 5.23): DeepseekV2TopkRouter (greedy,
 * group_limited_greedy), DeepseekV3TopkRouter (noaux_tc), with norm_topk_prob as the hub's
 * modeling_deepseekv2.py applies it; DeepseekV2Experts (routed outputs weighted and summed in
 * f32, experts in ascending id order) plus the shared-expert MLP.
 *
 * The experts run as one pass over the pool (linear.c's dsk_mm_experts): the tokens are grouped
 * by expert, every expert with tokens is a job, the shared MLP the last one. */
#include "backend-cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- routing ---- */

/* Picks the top_k largest of @scores[n] into @idx (the lowest id first among equal values:
 * torch.topk leaves their order and choice unspecified). */
static void
top_k (const float *scores, int n, int k, int32_t *idx)
{
  for (int j = 0; j < k; j++) {
    int best = -1;
    for (int e = 0; e < n; e++) {
      int taken = 0;
      for (int i = 0; i < j && !taken; i++)
        taken = idx[i] == e;
      if (!taken && (best < 0 || scores[e] > scores[best]))
        best = e;
    }
    idx[j] = best;
  }
}

static int
compare_i32 (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Per-thread tables of one token's routing. */
typedef struct {
  float *logits;       /* [E] the token's scores */
  float *choice;       /* [E] scores the experts are chosen by (biased for noaux_tc) */
  float *group_score;  /* [n_group] */
  int32_t *kept;       /* [n_group] groups kept */
} route_tables;

/* Router of one token: @logits_in [E] -> @idx [k] (ascending) and @w [k]. */
static void
route_token (const dsk_moe_router *t, const float *bias_f32, const float *logits_in,
             int32_t *idx, float *w, const route_tables *rt)
{
  const int E = t->n_experts, k = t->top_k;
  const int n_group = t->n_group > 0 ? t->n_group : 1, per_group = E / n_group;
  float *logits = rt->logits, *choice = rt->choice, *group_score = rt->group_score;
  int32_t *kept = rt->kept;
  float sum = 0.0f;

  memcpy (logits, logits_in, sizeof (float) * (size_t) E);
  if (t->scoring == DSK_MOE_SIGMOID) {
    for (int e = 0; e < E; e++)
      logits[e] = 1.0f / (1.0f + expf (-logits[e]));
  } else {
    dsk_softmax_f32_cpu (logits, 0, logits, 0, NULL, 0, 1, (size_t) E);
  }
  for (int e = 0; e < E; e++)
    choice[e] = logits[e] + (bias_f32 ? bias_f32[e] : 0.0f);

  if (t->method != DSK_MOE_GREEDY && n_group > 1) {
    const int topk_group = t->topk_group > 0 ? t->topk_group : 1;
    for (int g = 0; g < n_group; g++) {
      const float *cg = choice + g * per_group;
      if (t->method == DSK_MOE_NOAUX_TC) {
        int32_t two[2] = { 0, 0 };   /* the two best biased scores of the group */
        top_k (cg, per_group, per_group < 2 ? per_group : 2, two);
        group_score[g] = cg[two[0]] + (per_group > 1 ? cg[two[1]] : 0.0f);
      } else {
        float best = cg[0];   /* group_limited_greedy: the group's best probability */
        for (int e = 1; e < per_group; e++)
          best = best > cg[e] ? best : cg[e];
        group_score[g] = best;
      }
    }
    top_k (group_score, n_group, topk_group, kept);
    for (int g = 0; g < n_group; g++) {
      int keep = 0;
      for (int i = 0; i < topk_group && !keep; i++)
        keep = kept[i] == g;
      /* transformers fills dropped groups with -inf for noaux_tc, 0.0 for
       * group_limited_greedy */
      if (!keep)
        for (int e = 0; e < per_group; e++)
          choice[g * per_group + e] = t->method == DSK_MOE_NOAUX_TC ? -INFINITY : 0.0f;
    }
  }
  top_k (choice, E, k, idx);
  qsort (idx, (size_t) k, sizeof *idx, compare_i32);
  for (int j = 0; j < k; j++) {
    /* group_limited_greedy weighs with the masked scores (0 for a dropped group) */
    w[j] = t->method == DSK_MOE_GROUP_LIMITED_GREEDY ? choice[idx[j]] : logits[idx[j]];
    sum += w[j];
  }
  if (t->norm_topk_prob && (k > 1 || t->method == DSK_MOE_NOAUX_TC)) {
    for (int j = 0; j < k; j++)
      w[j] = w[j] / (sum + 1e-20f);
  }
  for (int j = 0; j < k; j++)
    w[j] = w[j] * t->routed_scaling_factor;
}

typedef struct {
  dsk_pool *pool;
  const dsk_moe_router *r;
  const float *bias;   /* [E] f32 or NULL */
  const dsk_tensor *idx, *weights, *logits;
} route_run;

#define ROUTE_TOKENS 16   /* tokens per item */

static void
route_item (void *ctx, int item, int thread)
{
  const route_run *c = ctx;
  const size_t E = (size_t) c->r->n_experts, G = (size_t) (c->r->n_group > 0 ? c->r->n_group : 1);
  float *s = dsk_pool_scratch (c->pool, thread, 0);   /* reserved: 2 E + 2 G floats */
  const route_tables rt = { s, s + E, s + 2 * E, (int32_t *) (s + 2 * E + G) };
  const size_t T = c->logits->ne[0], t1 = ((size_t) item + 1) * ROUTE_TOKENS;

  for (size_t t = (size_t) item * ROUTE_TOKENS; t < (t1 < T ? t1 : T); t++)
    route_token (c->r, c->bias, dsk_cpu_f32 (c->logits, t, 0, 0, 0),
                 (int32_t *) c->idx->data + t * c->idx->st[0],
                 dsk_cpu_f32 (c->weights, t, 0, 0, 0), &rt);
}

void
dsk_cpu_moe_route (dsk_backend *be, const dsk_tensor *idx, const dsk_tensor *weights,
                   const dsk_tensor *logits, const dsk_tensor *bias, const dsk_moe_router *r)
{
  dsk_cpu *cpu = dsk_cpu_of (be);
  const size_t T = logits->ne[0], E = (size_t) r->n_experts;
  const size_t G = (size_t) (r->n_group > 0 ? r->n_group : 1);
  float *bias_f32 = NULL;
  route_run c = { cpu->pool, r, NULL, idx, weights, logits };

  if (bias) {
    if (!(bias_f32 = dsk_cpu_work (be, E * sizeof (float))))
      return;
    dsk_convert_to_f32_cpu (bias_f32, bias->data, bias->dtype, E);
    c.bias = bias_f32;
  }
  if (!dsk_pool_reserve_scratch (cpu->pool, 2 * E + 2 * G)) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "moe_route: out of memory for scratch");
    return;
  }
  dsk_pool_run (cpu->pool, (int) ((T + ROUTE_TOKENS - 1) / ROUTE_TOKENS),
                20.0 * (double) T * E * r->top_k, route_item, &c);
}

/* ---- experts ---- */

/* The routed sum of tokens [16 item, 16 item + 16): f32, experts in ascending id order (the
 * reference's index_add_ loop), then the shared experts. */
typedef struct {
  const float *eout;        /* [T * k (+ T), H] expert outputs, one row per (token, choice) */
  const int32_t *slot_of;   /* [T * k] row of eout of each (token, choice) */
  const dsk_tensor *weights, *out;
  size_t T, H;
  int k, shared;
} combine_run;

static void
combine_item (void *ctx, int item, int thread)
{
  const combine_run *c = ctx;
  const size_t H = c->H, i1 = (size_t) item * 16 + 16;
  (void) thread;

  for (size_t i = (size_t) item * 16; i < (i1 < c->T ? i1 : c->T); i++) {
    float *o = dsk_cpu_f32 (c->out, i, 0, 0, 0);
    const float *wt = dsk_cpu_f32 (c->weights, i, 0, 0, 0);
    memset (o, 0, sizeof (float) * H);
    for (int j = 0; j < c->k; j++) {
      const float w = wt[j];
      const float *e = c->eout + (size_t) c->slot_of[i * c->k + j] * H;
      for (size_t col = 0; col < H; col++)
        o[col] = o[col] + e[col] * w;
    }
    if (c->shared) {
      const float *sh = c->eout + (c->T * c->k + i) * H;
      for (size_t col = 0; col < H; col++)
        o[col] = o[col] + sh[col];
    }
  }
}

static dsk_mat
mat (const dsk_tensor *w)
{
  return (dsk_mat) { .data = w->data, .dtype = w->dtype, .rows = (int) w->ne[0],
                     .cols = (int) w->ne[1], .ld = w->st[0] };
}

static dsk_expert_job
job_of (const dsk_tensor *g, const dsk_tensor *u, const dsk_tensor *d, int n,
        const int32_t *rows, size_t slot0)
{
  return (dsk_expert_job) { mat (g), mat (u), mat (d), n, rows, slot0 };
}

void
dsk_cpu_moe (dsk_backend *be, const dsk_tensor *out, const dsk_tensor *x, const dsk_tensor *idx,
             const dsk_tensor *weights, const dsk_moe_experts *ex)
{
  dsk_cpu *cpu = dsk_cpu_of (be);
  const int E = ex->n_experts, k = (int) idx->ne[1];
  const size_t T = x->ne[0], H = x->ne[1], n_slots = T * (size_t) k + (ex->sh_gate ? T : 0);
  const int32_t *topk = idx->data;
  int n_jobs = 0;

  for (size_t i = 0; i < T; i++)
    for (int j = 0; j < k; j++) {
      const int32_t e = topk[i * idx->st[0] + (size_t) j];
      if (e < 0 || e >= E) {
        dsk_backend_fail (be, DSK_ERR_INVALID, "moe: expert %d of token %zu is outside [0, %d)",
                          e, i, E);
        return;
      }
    }

  /* work: expert outputs, then the tables */
  const size_t eout_bytes = n_slots * H * sizeof (float);
  const size_t table_bytes = sizeof (int32_t) * (3 * T * (size_t) k + 2 * (size_t) E + 1) +
                             sizeof (dsk_expert_job) * (size_t) (E + 1);
  char *work = dsk_cpu_work (be, eout_bytes + table_bytes + 64);
  if (!work)
    return;
  float *eout = (float *) work;                                  /* [n_slots, H] */
  int32_t *exp_rows = (int32_t *) (work + eout_bytes);           /* [T * k] tokens by expert */
  int32_t *slot_of = exp_rows + T * (size_t) k;                  /* [T * k] */
  int32_t *exp_count = slot_of + T * (size_t) k;                 /* [E + 1] offsets */
  int32_t *exp_fill = exp_count + E + 1;                         /* [E] */
  dsk_expert_job *jobs = (dsk_expert_job *) (((uintptr_t) (exp_fill + E) + 63) & ~(uintptr_t) 63);

  /* Group the tokens by expert (ascending within an expert); slot_of maps each (token,
   * choice) to its row of the expert outputs. */
  memset (exp_count, 0, sizeof (int32_t) * (size_t) (E + 1));
  for (size_t i = 0; i < T; i++)
    for (int j = 0; j < k; j++)
      exp_count[topk[i * idx->st[0] + (size_t) j] + 1]++;
  for (int e = 0; e < E; e++)
    exp_count[e + 1] += exp_count[e];
  memcpy (exp_fill, exp_count, sizeof (int32_t) * (size_t) E);
  for (size_t i = 0; i < T; i++)
    for (int j = 0; j < k; j++) {
      const int32_t e = topk[i * idx->st[0] + (size_t) j];
      exp_rows[exp_fill[e]] = (int32_t) i;
      slot_of[i * (size_t) k + (size_t) j] = exp_fill[e]++;
    }
  for (int e = 0; e < E; e++) {
    const int n = exp_count[e + 1] - exp_count[e];
    if (n > 0)
      jobs[n_jobs++] = job_of (&ex->gate[e], &ex->up[e], &ex->down[e], n,
                               exp_rows + exp_count[e], (size_t) exp_count[e]);
  }
  if (ex->sh_gate)
    jobs[n_jobs++] = job_of (ex->sh_gate, ex->sh_up, ex->sh_down, (int) T, NULL, T * (size_t) k);
  if (!dsk_mm_experts (cpu->mm, jobs, n_jobs, x->data, x->st[0], H, eout)) {
    dsk_backend_fail (be, DSK_ERR_NOMEM, "moe: out of memory for scratch");
    return;
  }

  combine_run c = { eout, slot_of, weights, out, T, H, k, ex->sh_gate != NULL };
  dsk_pool_run (cpu->pool, (int) ((T + 15) / 16), (double) T * (k + 1) * H * 2, combine_item, &c);
}
