/* test-dsa-golden.c: DeepSeek-V3.2 sparse attention against transformers' goldens
 * (tests/fixtures/tiny-v32{,-fp8}/, written by tests/reference/make_dsa_fixtures.py).
 *
 * Unit level: the indexer of each layer on the reference's captured inputs (scores, top-k
 * sets), the top-k selection rules, the KL loss on the reference's arrays, FP8 block
 * dequantisation. Model level: logits, hidden states and the indexer outputs (scores, top-k,
 * KL target, KL loss) of a prefill with index_topk below the prompt length (sparse), at or
 * above it (dense) and with use_sparse_attention false (the plain MLA decoder); both MLA
 * attention forms; chunked prefill; 40 greedy tokens with the indexer's key cache and the top-k
 * of every decode step; a left-padded batch; the FP8 checkpoint; saving the outputs. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include <dsocr/dsocr.h>
#include <dsocr/dsocr-generate.h>
#include <dsocr/dsocr-indexer.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-session.h>

#include "decoder.h"
#include "dsk.h"
#include "dsocr-test.h"
#include "fp8.h"
#include "indexer.h"
#include "kv-cache.h"

#define RTOL 1e-4

/* ---- golden files ---- */

static dsocr_safetensors *
golden_open (const char *fixture, const char *file)
{
  g_autofree char *dir = dsocr_test_fixture (fixture);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  GError *err = NULL;
  dsocr_safetensors *st = dsocr_safetensors_open (path, &err);

  g_assert_no_error (err);
  return st;
}

static const dsocr_tensor *
golden (dsocr_safetensors *st, const char *name)
{
  const dsocr_tensor *t = dsocr_safetensors_get (st, name);
  if (!t)
    g_error ("%s: golden tensor '%s' missing", dsocr_safetensors_get_path (st), name);
  return t;
}

static gsize
numel (const dsocr_tensor *t)
{
  return (gsize) dsocr_shape_numel (t->n_dims, t->shape);
}

static const float *
golden_f32 (dsocr_safetensors *st, const char *name)
{
  const dsocr_tensor *t = golden (st, name);
  g_assert_cmpint (t->dtype, ==, DSOCR_DTYPE_F32);
  return t->data;
}

/* An I64 golden narrowed to int32 (transfer full). */
static int32_t *
golden_i32 (dsocr_safetensors *st, const char *name, gsize *n)
{
  const dsocr_tensor *t = golden (st, name);
  const int64_t *src = t->data;
  int32_t *out = g_new (int32_t, numel (t));

  g_assert_cmpint (t->dtype, ==, DSOCR_DTYPE_I64);
  for (gsize i = 0; i < numel (t); i++)
    out[i] = (int32_t) src[i];
  if (n)
    *n = numel (t);
  return out;
}

/* Scores with -inf at masked keys: the same keys masked, the finite ones close. */
static void
assert_scores_close (const float *got, const float *want, gsize n, const char *what)
{
  g_autofree float *g = g_new (float, n);
  g_autofree float *w = g_new (float, n);

  for (gsize i = 0; i < n; i++) {
    if (isinf (want[i])) {
      if (!(isinf (got[i]) && got[i] < 0))
        g_error ("%s: entry %" G_GSIZE_FORMAT " should be -inf, got %g", what, i, got[i]);
      g[i] = w[i] = 0.0f;
    } else {
      g[i] = got[i];
      w[i] = want[i];
    }
  }
  dsocr_test_assert_close (g, w, n, RTOL, what);
}

static int
cmp_i32 (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Rows of @k indices (-1 = none): equal as sets row by row. */
static void
assert_topk_sets (const int32_t *got, const int32_t *want, gsize rows, int k, const char *what)
{
  g_autofree int32_t *a = g_new (int32_t, k);
  g_autofree int32_t *b = g_new (int32_t, k);

  for (gsize r = 0; r < rows; r++) {
    memcpy (a, got + r * k, sizeof (int32_t) * k);
    memcpy (b, want + r * k, sizeof (int32_t) * k);
    qsort (a, k, sizeof (int32_t), cmp_i32);
    qsort (b, k, sizeof (int32_t), cmp_i32);
    for (int j = 0; j < k; j++)
      if (a[j] != b[j])
        g_error ("%s: row %" G_GSIZE_FORMAT ": selected keys differ (entry %d: %d vs %d)", what, r,
                 j, a[j], b[j]);
  }
}

/* ---- unit: the top-k selection ---- */

/* The backend's topk op on one row of @n scores: @k picks into @idx; returns how many are not
 * -1 (the padding). */
static int
topk_row (const float *scores, size_t n, int k, int32_t *idx)
{
  char err[128];
  dsk_backend *be = dsk_backend_new ("cpu", 1, err, sizeof err);
  const dsk_tensor s = dsk_tensor_host_2d (scores, DSK_F32, 1, n);
  const dsk_tensor i = dsk_tensor_host_2d (idx, DSK_I32, 1, (size_t) k);
  int m = 0;

  g_assert_nonnull (be);
  dsk_topk (be, &i, &s);
  g_assert_false (dsk_backend_failed (be));
  dsk_backend_unref (be);
  for (int j = 0; j < k; j++)
    m += idx[j] >= 0;
  return m;
}

static void
test_topk_rules (void)
{
  const float s[8] = { 0.5f, -INFINITY, 2.0f, 0.5f, -1.0f, 2.0f, -INFINITY, 0.25f };
  int32_t idx[8];

  /* by score, lower index first among equal scores */
  g_assert_cmpint (topk_row (s, 8, 3, idx), ==, 3);
  g_assert_cmpint (idx[0], ==, 2);
  g_assert_cmpint (idx[1], ==, 5);
  g_assert_cmpint (idx[2], ==, 0);
  g_assert_cmpint (topk_row (s, 8, 4, idx), ==, 4);
  g_assert_cmpint (idx[3], ==, 3);
  /* masked keys are never picked: fewer visible than k pads with -1 */
  g_assert_cmpint (topk_row (s, 8, 8, idx), ==, 6);
  g_assert_cmpint (idx[4], ==, 7);
  g_assert_cmpint (idx[5], ==, 4);
  g_assert_cmpint (idx[6], ==, -1);
  g_assert_cmpint (idx[7], ==, -1);
  g_assert_cmpint (topk_row (s, 2, 1, idx), ==, 1);
  g_assert_cmpint (idx[0], ==, 0);
  {
    /* a larger row against a full sort */
    float big[300];
    int32_t top[40];
    guint32 x = 12345;
    for (int i = 0; i < 300; i++) {
      x = x * 1664525u + 1013904223u;
      big[i] = (float) (x >> 20) / 7.0f;   /* many ties */
      if (i % 11 == 0)
        big[i] = -INFINITY;
    }
    topk_row (big, 300, 40, top);
    for (int j = 0; j < 40; j++) {
      /* top[j] must rank before every key not picked before it */
      for (int i = 0; i < 300; i++) {
        gboolean earlier = FALSE;
        for (int m = 0; m <= j && !earlier; m++)
          earlier = top[m] == i;
        if (!earlier && isfinite (big[i]))
          g_assert_true (big[top[j]] > big[i] || (big[top[j]] == big[i] && top[j] < i));
      }
    }
  }
}

/* ---- unit: the indexer of each layer on the reference's inputs ---- */

static void
test_indexer_layers (void)
{
  g_autofree char *dir = dsocr_test_fixture ("tiny-v32");
  dsocr_safetensors *g = golden_open ("tiny-v32", "golden.safetensors");
  GError *err = NULL;
  dsocr_config *cfg = dsocr_config_load (dir, &err);
  dsocr_checkpoint *ckpt;
  GPtrArray *owned = g_ptr_array_new_with_free_func ((GDestroyNotify) dsocr_tensor_free);
  const dsocr_text_config *t;
  dsocr_indexer_weights *w;
  dsocr_indexer *ix;
  dsocr_kv_cache cache;
  dsocr_decoder_state st = { 0 };
  const dsocr_indexer_outputs *o;
  char msg[256];
  int L, K, half;
  g_autofree int32_t *pos = NULL;
  g_autofree uint8_t *valid = NULL;
  g_autofree float *inv_freq = NULL, *cos_tab = NULL, *sin_tab = NULL;

  g_assert_no_error (err);
  ckpt = dsocr_checkpoint_open (dir, &err);
  g_assert_no_error (err);
  t = &cfg->text;
  g_assert_true (t->use_sparse_attention);
  g_assert_cmpint (t->index_topk, ==, 6);
  L = (int) golden (g, "input_ids")->shape[1];
  K = MIN (t->index_topk, L);

  /* a decoder state of one row on a 2-thread CPU backend, as the decoder would hold it */
  st.be = dsk_backend_new ("cpu", 2, msg, sizeof msg);
  g_assert_nonnull (st.be);
  st.scratch = dsk_arena_new (st.be);
  st.n_seq = 1;
  st.n_tokens = L;

  /* RoPE tables as the decoder builds them: yarn frequencies of qk_rope_head_dim */
  half = t->qk_rope_head_dim / 2;
  inv_freq = g_new (float, half);
  {
    const dsocr_rope_config *r = &t->rope;
    dsk_rope_yarn yarn = { (float) r->factor, (size_t) r->original_max_position_embeddings,
                           (float) r->beta_fast, (float) r->beta_slow, (float) r->mscale,
                           (float) r->mscale_all_dim };
    const dsk_tensor f = dsk_tensor_host_1d (inv_freq, DSK_F32, (size_t) half);
    g_assert_cmpint (dsk_rope_inv_freq (inv_freq, t->qk_rope_head_dim, (float) r->theta, &yarn),
                     ==, DSK_OK);
    cos_tab = g_new (float, 64 * half);
    sin_tab = g_new (float, 64 * half);
    st.cos_tab = dsk_tensor_host_2d (cos_tab, DSK_F32, 64, (size_t) half);
    st.sin_tab = dsk_tensor_host_2d (sin_tab, DSK_F32, 64, (size_t) half);
    dsk_rope_tables (st.be, &st.cos_tab, &st.sin_tab, &f, (float) r->attention_factor);
  }
  pos = g_new (int32_t, L);
  valid = g_new (uint8_t, L);
  for (int i = 0; i < L; i++) {
    pos[i] = i;
    valid[i] = 1;
  }
  st.pos = dsk_tensor_host_1d (pos, DSK_I32, (size_t) L);

  w = g_new0 (dsocr_indexer_weights, t->num_hidden_layers);
  for (int l = 0; l < t->num_hidden_layers; l++) {
    dsocr_indexer_weights_load (&w[l], ckpt, cfg, l, owned, &err);
    g_assert_no_error (err);
  }
  ix = dsocr_indexer_new (cfg);
  g_assert_nonnull (ix);
  dsocr_indexer_set_flags (ix, DSOCR_INDEXER_SCORES | DSOCR_INDEXER_TOPK, &err);
  g_assert_no_error (err);
  dsocr_kv_cache_init (&cache, st.be, t->num_hidden_layers, 1, 64, 1, t->index_head_dim);
  dsocr_kv_cache_reserve (&cache, L, &err);
  g_assert_no_error (err);
  cache.n_seq = 1;
  st.cache = &cache;
  g_assert_true (dsocr_indexer_begin (ix, 1, L, L, &err));
  for (int l = 0; l < t->num_hidden_layers; l++) {
    g_autofree char *xn_name = g_strdup_printf ("indexer.%d.x", l);
    g_autofree char *qr_name = g_strdup_printf ("indexer.%d.q_resid", l);
    const dsk_tensor xn = dsk_tensor_host_2d (golden_f32 (g, xn_name), DSK_F32, (size_t) L,
                                              (size_t) t->hidden_size);
    const dsk_tensor qr = dsk_tensor_host_2d (golden_f32 (g, qr_name), DSK_F32, (size_t) L,
                                              (size_t) t->q_lora_rank);
    /* a one-dim stand-in for the MLA attention: only the indexer's outputs are checked here */
    g_autofree float *out = g_new (float, L), *q1 = g_new0 (float, L), *k1 = g_new0 (float, L);
    g_autofree float *v1 = g_new0 (float, L);
    const size_t ne[4] = { 1, (size_t) L, 1, 1 };
    const dsk_device host = { DSK_DEVICE_HOST, 0 };
    const dsk_tensor to = dsk_tensor_make (out, DSK_F32, 4, ne, host);
    const dsk_tensor tq = dsk_tensor_make (q1, DSK_F32, 4, ne, host);
    const dsk_tensor tk = dsk_tensor_make (k1, DSK_F32, 4, ne, host);
    const dsk_tensor tv = dsk_tensor_make (v1, DSK_F32, 4, ne, host);
    const dsk_tensor mask = dsk_tensor_host_2d (valid, DSK_U8, 1, (size_t) L);
    const dsk_attention_desc desc = { .scale = 1.0f, .causal = 1, .key_valid = &mask };

    dsk_arena_reset (st.scratch);
    dsocr_indexer_prepare (ix, &st, &w[l], l, &xn, &qr);
    g_assert_true (dsocr_indexer_attention (ix, &st, 0, &to, &tq, &tk, &tv, &desc, &err));
    g_assert_no_error (err);
  }
  o = dsocr_indexer_get_outputs (ix);
  g_assert_nonnull (o);
  g_assert_null (dsocr_indexer_outputs_get_kl_target (o, 0, NULL));
  for (int l = 0; l < t->num_hidden_layers; l++) {
    g_autofree char *sn = g_strdup_printf ("indexer.%d.scores", l);
    g_autofree char *kn = g_strdup_printf ("indexer.%d.topk", l);
    g_autofree int32_t *want = golden_i32 (g, kn, NULL);
    int64_t shape[3];
    const float *scores = dsocr_indexer_outputs_get_scores (o, l, shape);
    const int32_t *topk = dsocr_indexer_outputs_get_topk (o, l, NULL);

    g_assert_cmpint (shape[0], ==, 1);
    g_assert_cmpint (shape[1], ==, L);
    g_assert_cmpint (shape[2], ==, L);
    assert_scores_close (scores, golden_f32 (g, sn), (gsize) L * L, sn);
    assert_topk_sets (topk, want, L, K, kn);
  }
  dsocr_kv_cache_clear (&cache);
  dsocr_indexer_free (ix);
  dsk_arena_free (st.scratch);
  dsk_backend_unref (st.be);
  g_free (w);
  g_ptr_array_unref (owned);
  dsocr_checkpoint_unref (ckpt);
  dsocr_config_free (cfg);
  dsocr_safetensors_unref (g);
}

/* ---- unit: the KL loss on the reference's own arrays ---- */

static void
test_kl_loss_arrays (void)
{
  static const char *const files[] = { "golden.safetensors", "golden-dense-topk.safetensors" };

  for (gsize f = 0; f < G_N_ELEMENTS (files); f++) {
    dsocr_safetensors *g = golden_open ("tiny-v32", files[f]);
    const float *scores[3], *targets[3];
    gsize L = (gsize) golden (g, "input_ids")->shape[1];
    double loss;
    float want = *golden_f32 (g, "indexer_kl_loss");

    for (int l = 0; l < 3; l++) {
      g_autofree char *sn = g_strdup_printf ("indexer.%d.scores", l);
      g_autofree char *tn = g_strdup_printf ("indexer.%d.kl_target", l);
      scores[l] = golden_f32 (g, sn);
      targets[l] = golden_f32 (g, tn);
    }
    loss = dsocr_indexer_compute_kl_loss (scores, targets, 3, L, L);
    g_test_message ("%s: KL loss %.7g (reference %.7g)", files[f], loss, want);
    g_assert_cmpfloat (fabs (loss - want), <=, 1e-5 * fabs (want));
    dsocr_safetensors_unref (g);
  }
}

/* ---- unit: FP8 block dequantisation ---- */

static void
test_fp8_dequantize (void)
{
  g_autofree char *dir = dsocr_test_fixture ("tiny-v32-fp8");
  dsocr_safetensors *g = golden_open ("tiny-v32-fp8", "golden.safetensors");
  GError *err = NULL;
  dsocr_config *cfg = dsocr_config_load (dir, &err);
  dsocr_checkpoint *ckpt;
  GPtrArray *owned = g_ptr_array_new_with_free_func ((GDestroyNotify) dsocr_tensor_free);
  static const char *const names[] = { "model.layers.1.self_attn.indexer.wq_b.weight",
                                       "model.layers.0.self_attn.kv_a_proj_with_mqa.weight" };

  g_assert_no_error (err);
  g_assert_cmpint (cfg->quant.method, ==, DSOCR_QUANT_FP8);
  ckpt = dsocr_checkpoint_open (dir, &err);
  g_assert_no_error (err);

  /* checkpoint tensors: ue8m0 scales, so the result is exact in BF16 */
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *gname = g_strconcat ("dequantized.", names[i], NULL);
    const dsocr_tensor *w = dsocr_checkpoint_lookup (ckpt, names[i]);
    const dsocr_tensor *d;
    g_autofree float *got = NULL;

    g_assert_nonnull (w);
    g_assert_cmpint (w->dtype, ==, DSOCR_DTYPE_F8_E4M3);
    d = dsocr_fp8_weight (ckpt, cfg, w, owned, &err);
    g_assert_no_error (err);
    g_assert_cmpint (d->dtype, ==, DSOCR_DTYPE_BF16);
    got = g_new (float, numel (d));
    dsocr_tensor_to_f32 (d, got, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (got, golden_f32 (g, gname), numel (d), 0.0, gname);
  }
  /* arbitrary scales: not representable in BF16, kept in F32, still exact */
  {
    const dsocr_tensor *w = golden (g, "synthetic.weight");
    const dsocr_tensor *s = golden (g, "synthetic.weight_scale_inv");
    dsocr_tensor *d = dsocr_fp8_dequantize (w, s, cfg->quant.weight_block_size[0],
                                            cfg->quant.weight_block_size[1], &err);
    g_assert_no_error (err);
    g_assert_cmpint (d->dtype, ==, DSOCR_DTYPE_F32);
    dsocr_test_assert_close ((const float *) d->data, golden_f32 (g, "synthetic.dequantized"),
                             numel (d), 0.0, "synthetic.dequantized");
    dsocr_tensor_free (d);
    /* a scale grid of the wrong shape is refused, naming the tensor */
    d = dsocr_fp8_dequantize (w, s, cfg->quant.weight_block_size[0], 16, &err);
    g_assert_null (d);
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_SHAPE);
    g_assert_nonnull (strstr (err->message, "synthetic.weight"));
    g_clear_error (&err);
  }
  /* an FP8 tensor without a quantization_config is refused */
  {
    dsocr_config *plain = dsocr_config_load (dir, &err);
    g_assert_no_error (err);
    plain->quant.method = DSOCR_QUANT_NONE;
    g_assert_null (dsocr_fp8_weight (ckpt, plain, dsocr_checkpoint_lookup (ckpt, names[0]), owned,
                                     &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED);
    g_clear_error (&err);
    dsocr_config_free (plain);
  }
  g_ptr_array_unref (owned);
  dsocr_checkpoint_unref (ckpt);
  dsocr_config_free (cfg);
  dsocr_safetensors_unref (g);
}

/* ---- model level ---- */

/* One reference run: a config of a fixture and the golden file made with it. */
typedef struct {
  const char *fixture;
  const char *config;      /* file in the fixture directory */
  const char *golden;
  gboolean has_indexer;    /* use_sparse_attention */
  gboolean has_hidden;     /* hidden.N / final_norm / embeddings goldens */
  gboolean has_decode_topk;
  gboolean has_step_logits;
  gboolean has_batch;
} dsa_case;

static const dsa_case case_sparse = { "tiny-v32", "config.json", "golden.safetensors", TRUE,
                                      TRUE, TRUE, TRUE, TRUE };
static const dsa_case case_dense_topk = { "tiny-v32", "config-dense-topk.json",
                                          "golden-dense-topk.safetensors", TRUE, TRUE, FALSE,
                                          FALSE, FALSE };
static const dsa_case case_no_sparse = { "tiny-v32", "config-no-sparse.json",
                                         "golden-no-sparse.safetensors", FALSE, FALSE, FALSE,
                                         FALSE, FALSE };
static const dsa_case case_fp8 = { "tiny-v32-fp8", "config.json", "golden.safetensors", TRUE, TRUE,
                                   TRUE, FALSE, TRUE };

/* The fixture's checkpoint with one of its configs. */
static dsocr_model *
model_load (const dsa_case *c)
{
  g_autofree char *dir = dsocr_test_fixture (c->fixture);
  g_autofree char *cfg_path = g_build_filename (dir, c->config, NULL);
  GError *err = NULL;
  dsocr_config *cfg = dsocr_config_load (cfg_path, &err);
  dsocr_checkpoint *ckpt;
  dsocr_model *m;

  g_assert_no_error (err);
  ckpt = dsocr_checkpoint_open (dir, &err);
  g_assert_no_error (err);
  m = dsocr_model_new_from_checkpoint (ckpt, cfg, &err);
  g_assert_no_error (err);
  dsocr_checkpoint_unref (ckpt);
  return m;
}

static dsocr_session *
session_new (dsocr_model *m, int n_seq, dsocr_mla_form form)
{
  GError *err = NULL;
  dsocr_session_params p;
  dsocr_session *s;

  dsocr_session_params_init (&p);
  p.n_seq_max = n_seq;
  p.mla_form = form;
  p.n_threads = 2;
  p.precision = DSOCR_PRECISION_F32;   /* the goldens are the reference's f32 numbers */
  s = dsocr_session_new (m, &p, &err);
  g_assert_no_error (err);
  return s;
}

typedef struct {
  dsocr_safetensors *g;
  int n_checked;
} capture;

static void
check_intermediate (const dsocr_tensor *t, int layer, gpointer user_data)
{
  capture *cap = user_data;
  g_autofree char *name = NULL;

  if (g_str_has_prefix (t->name, "router."))
    return;   /* routing is covered by the decoder's own goldens */
  name = g_str_equal (t->name, "hidden") ? g_strdup_printf ("hidden.%d", layer) : g_strdup (t->name);
  g_assert_cmpuint (numel (t), ==, numel (golden (cap->g, name)));
  dsocr_test_assert_close ((const float *) t->data, golden_f32 (cap->g, name), numel (t), RTOL,
                           name);
  cap->n_checked++;
}

/* Layer-by-layer indexer outputs of a prefill of @n columns (rows @t0 .. of the goldens, keys
 * 0 .. @n_kv) against the goldens, and the KL loss when the whole prompt was run. */
static void
check_outputs (const dsocr_indexer_outputs *o, dsocr_safetensors *g, int n_layers, int t0, int n,
               int n_kv, int L, int index_topk)
{
  const int K = MIN (index_topk, n_kv), K_golden = MIN (index_topk, L);

  g_assert_nonnull (o);
  g_assert_cmpint (dsocr_indexer_outputs_get_n_layers (o), ==, n_layers);
  for (int l = 0; l < n_layers; l++) {
    g_autofree char *sn = g_strdup_printf ("indexer.%d.scores", l);
    g_autofree char *kn = g_strdup_printf ("indexer.%d.topk", l);
    g_autofree char *tn = g_strdup_printf ("indexer.%d.kl_target", l);
    g_autofree int32_t *want_topk = golden_i32 (g, kn, NULL);
    g_autofree int32_t *want_k = g_new (int32_t, (gsize) n * K);
    int64_t shape[3];
    const float *scores = dsocr_indexer_outputs_get_scores (o, l, shape);
    const float *target = dsocr_indexer_outputs_get_kl_target (o, l, NULL);
    const int32_t *topk = dsocr_indexer_outputs_get_topk (o, l, NULL);

    g_assert_cmpint (shape[0], ==, 1);
    g_assert_cmpint (shape[1], ==, n);
    g_assert_cmpint (shape[2], ==, n_kv);
    /* the goldens are [L, L]: the rows of these columns, their first n_kv keys */
    for (int i = 0; i < n; i++) {
      g_autofree char *what = g_strdup_printf ("%s row %d", sn, t0 + i);
      assert_scores_close (scores + (gsize) i * n_kv, golden_f32 (g, sn) + (gsize) (t0 + i) * L,
                           (gsize) n_kv, what);
      g_free (what);
      what = g_strdup_printf ("%s row %d", tn, t0 + i);
      dsocr_test_assert_close (target + (gsize) i * n_kv, golden_f32 (g, tn) + (gsize) (t0 + i) * L,
                               (gsize) n_kv, RTOL, what);
      for (int j = 0; j < K; j++)
        want_k[(gsize) i * K + j] = j < K_golden ? want_topk[(gsize) (t0 + i) * K_golden + j] : -1;
    }
    assert_topk_sets (topk, want_k, n, K, kn);
  }
  if (t0 == 0 && n == L) {
    double loss;
    GError *err = NULL;
    dsocr_indexer_kl_loss (o, &loss, &err);
    g_assert_no_error (err);
    g_assert_cmpfloat (fabs (loss - *golden_f32 (g, "indexer_kl_loss")), <=,
                       RTOL * fabs (*golden_f32 (g, "indexer_kl_loss")));
  }
}

/* A prefill of the prompt, both MLA forms: logits, hidden states and the indexer outputs. */
static void
test_prefill (gconstpointer data)
{
  const dsa_case *c = data;
  dsocr_model *m = model_load (c);
  dsocr_safetensors *g = golden_open (c->fixture, c->golden);
  const dsocr_text_config *t = &dsocr_model_get_config (m)->text;
  const int V = t->vocab_size;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = golden_i32 (g, "input_ids", &L);
  g_autofree float *logits = g_new (float, L * V);

  g_assert_cmpint (t->use_sparse_attention, ==, c->has_indexer);
  for (int form = DSOCR_MLA_EXPANDED; form <= DSOCR_MLA_ABSORBED; form++) {
    dsocr_session *s = session_new (m, 1, form);
    capture cap = { g, 0 };

    if (c->has_indexer) {
      g_assert_null (dsocr_session_get_indexer_outputs (s));
      dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_ALL, &err);
      g_assert_no_error (err);
    } else {
      g_assert_false (dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_SCORES, &err));
      g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
      g_clear_error (&err);
    }
    if (c->has_hidden)
      dsocr_session_set_tensor_callback (s, check_intermediate, &cap);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                           DSOCR_LOGITS_ALL, logits, &err);
    g_assert_no_error (err);
    if (c->has_hidden)
      g_assert_cmpint (cap.n_checked, ==, t->num_hidden_layers + 2);
    g_test_message ("%s/%s form %d: logits relative error %.3g", c->fixture, c->config, form,
                    dsocr_test_rel_error (logits, golden_f32 (g, "logits"), L * V));
    dsocr_test_assert_close (logits, golden_f32 (g, "logits"), L * V, RTOL, "logits");
    if (c->has_indexer)
      check_outputs (dsocr_session_get_indexer_outputs (s), g, t->num_hidden_layers, 0, (int) L,
                     (int) L, (int) L, t->index_topk);
    else
      g_assert_null (dsocr_session_get_indexer_outputs (s));
    dsocr_session_free (s);
  }
  dsocr_safetensors_unref (g);
  dsocr_model_unref (m);
}

/* The prompt in two calls (5 columns, then 11 through the cache): the second call's logits and
 * indexer outputs are the reference's rows 5 .. L-1. */
static void
test_chunked_prefill (gconstpointer data)
{
  const dsa_case *c = data;
  dsocr_model *m = model_load (c);
  dsocr_safetensors *g = golden_open (c->fixture, c->golden);
  const dsocr_text_config *t = &dsocr_model_get_config (m)->text;
  const int V = t->vocab_size, first = 5;
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = golden_i32 (g, "input_ids", &L);
  g_autofree float *logits = g_new (float, L * V);

  for (int form = DSOCR_MLA_EXPANDED; form <= DSOCR_MLA_ABSORBED; form++) {
    dsocr_session *s = session_new (m, 1, form);
    dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_ALL, &err);
    g_assert_no_error (err);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = first, .ids = ids },
                           DSOCR_LOGITS_NONE, NULL, &err);
    g_assert_no_error (err);
    check_outputs (dsocr_session_get_indexer_outputs (s), g, t->num_hidden_layers, 0, first, first,
                   (int) L, t->index_topk);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L - first,
                                               .ids = ids + first },
                           DSOCR_LOGITS_ALL, logits, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (logits, golden_f32 (g, "logits") + (gsize) first * V,
                             (L - first) * V, RTOL, "chunked logits");
    check_outputs (dsocr_session_get_indexer_outputs (s), g, t->num_hidden_layers, first,
                   (int) L - first, (int) L, (int) L, t->index_topk);
    dsocr_session_reset (s);
    g_assert_null (dsocr_session_get_indexer_outputs (s));
    dsocr_session_free (s);
  }
  dsocr_safetensors_unref (g);
  dsocr_model_unref (m);
}

typedef struct {
  const dsa_case *c;
  dsocr_safetensors *g;
  dsocr_session *s;
  int V, n_layers, index_topk, n_checked;
} greedy_check;

static gboolean
on_token (int row, int step, int32_t token, const float *logits, gpointer user_data)
{
  greedy_check *gc = user_data;

  if (gc->c->has_step_logits)
    dsocr_test_assert_close (logits, golden_f32 (gc->g, "greedy_step_logits") + (gsize) step * gc->V,
                             (gsize) gc->V, RTOL, "greedy_step_logits");
  if (gc->c->has_decode_topk && step > 0) {
    /* the step before this one fed token step-1: query position L + step - 1 */
    const dsocr_indexer_outputs *o = dsocr_session_get_indexer_outputs (gc->s);
    g_assert_nonnull (o);
    for (int l = 0; l < gc->n_layers; l++) {
      g_autofree char *name = g_strdup_printf ("decode_topk.%d", l);
      g_autofree int32_t *want = golden_i32 (gc->g, name, NULL);
      int64_t shape[3];
      const int32_t *got = dsocr_indexer_outputs_get_topk (o, l, shape);
      g_assert_cmpint (shape[1], ==, 1);
      g_assert_cmpint (shape[2], ==, gc->index_topk);
      assert_topk_sets (got, want + (gsize) (step - 1) * gc->index_topk, 1, gc->index_topk, name);
    }
    gc->n_checked++;
  }
  return TRUE;
}

/* 40 greedy tokens with the KV cache (and the indexer's key cache), both MLA forms. */
static void
test_greedy (gconstpointer data)
{
  const dsa_case *c = data;
  dsocr_model *m = model_load (c);
  dsocr_safetensors *g = golden_open (c->fixture, c->golden);
  const dsocr_text_config *t = &dsocr_model_get_config (m)->text;
  GError *err = NULL;
  gsize L, n_new;
  g_autofree int32_t *ids = golden_i32 (g, "input_ids", &L);
  g_autofree int32_t *want = golden_i32 (g, "greedy_tokens", &n_new);

  for (int form = DSOCR_MLA_AUTO; form <= DSOCR_MLA_ABSORBED; form++) {
    dsocr_session *s = session_new (m, 1, form);
    greedy_check gc = { c, g, s, t->vocab_size, t->num_hidden_layers, t->index_topk, 0 };
    dsocr_generate_params p;
    dsocr_generate_result *r = NULL;

    if (c->has_decode_topk) {
      dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_TOPK, &err);
      g_assert_no_error (err);
    }
    dsocr_generate_params_init (&p);
    p.max_new_tokens = (int) n_new;
    p.ignore_eos = TRUE;
    p.callback = on_token;
    p.user_data = &gc;
    dsocr_generate (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids }, &p, &r,
                    &err);
    g_assert_no_error (err);
    g_assert_cmpint (r->n_steps, ==, (int) n_new);
    for (gsize i = 0; i < n_new; i++)
      g_assert_cmpint (r->tokens[i], ==, want[i]);
    if (c->has_decode_topk)
      g_assert_cmpint (gc.n_checked, ==, (int) n_new - 1);
    dsocr_generate_result_free (r);
    dsocr_session_free (s);
  }
  dsocr_safetensors_unref (g);
  dsocr_model_unref (m);
}

/* A batch of the prompt and a left-padded shorter one: the last column's logits. */
static void
test_padded_batch (gconstpointer data)
{
  const dsa_case *c = data;
  dsocr_model *m = model_load (c);
  dsocr_safetensors *g = golden_open (c->fixture, c->golden);
  const int V = dsocr_model_get_n_vocab (m);
  GError *err = NULL;
  gsize n;
  g_autofree int32_t *ids = golden_i32 (g, "batch_input_ids", &n);
  g_autofree int32_t *mask32 = golden_i32 (g, "batch_attention_mask", NULL);
  g_autofree uint8_t *mask = g_new (uint8_t, n);
  g_autofree float *logits = g_new (float, 2 * V);

  for (gsize i = 0; i < n; i++)
    mask[i] = (uint8_t) mask32[i];
  for (int form = DSOCR_MLA_EXPANDED; form <= DSOCR_MLA_ABSORBED; form++) {
    dsocr_session *s = session_new (m, 2, form);
    dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_ALL, &err);
    g_assert_no_error (err);
    dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 2, .n_tokens = (int) n / 2, .ids = ids,
                                               .attention_mask = mask },
                           DSOCR_LOGITS_LAST, logits, &err);
    g_assert_no_error (err);
    dsocr_test_assert_close (logits, golden_f32 (g, "batch_last_logits"), 2 * (gsize) V, RTOL,
                             "batch_last_logits");
    {
      /* padding keys are never scored or picked */
      const dsocr_indexer_outputs *o = dsocr_session_get_indexer_outputs (s);
      int64_t shape[3];
      const float *sc = dsocr_indexer_outputs_get_scores (o, 1, shape);
      const int32_t *tk = dsocr_indexer_outputs_get_topk (o, 1, NULL);
      const int T = (int) shape[1], S = (int) shape[2], K = MIN (T, 6);
      for (int tq = 0; tq < T; tq++)
        for (int k = 0; k < S; k++)
          if (!mask[T + k])
            g_assert_true (isinf (sc[((gsize) T + tq) * S + k]));
      for (int i = 0; i < T * K; i++)
        g_assert_true (tk[(gsize) T * K + i] < 0 || mask[T + tk[(gsize) T * K + i]]);
    }
    dsocr_session_free (s);
  }
  dsocr_safetensors_unref (g);
  dsocr_model_unref (m);
}

/* dsocr_indexer_outputs_save writes what the getters return. */
static void
test_save (void)
{
  dsocr_model *m = model_load (&case_sparse);
  dsocr_safetensors *g = golden_open ("tiny-v32", "golden.safetensors");
  dsocr_session *s = session_new (m, 1, DSOCR_MLA_AUTO);
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = golden_i32 (g, "input_ids", &L);
  g_autofree char *dir = g_dir_make_tmp ("dsa-XXXXXX", &err);
  g_autofree char *path = NULL;
  const dsocr_indexer_outputs *o;
  dsocr_safetensors *st;
  double loss;

  g_assert_no_error (err);
  path = g_build_filename (dir, "scores.safetensors", NULL);
  g_assert_false (dsocr_session_set_indexer_outputs (s, 1 << 7, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_ALL, &err);
  g_assert_no_error (err);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         DSOCR_LOGITS_NONE, NULL, &err);
  g_assert_no_error (err);
  o = dsocr_session_get_indexer_outputs (s);
  g_assert_true (dsocr_indexer_outputs_save (o, path, &err));
  g_assert_no_error (err);
  st = dsocr_safetensors_open (path, &err);
  g_assert_no_error (err);
  for (int l = 0; l < 3; l++) {
    g_autofree char *sn = g_strdup_printf ("indexer.%d.scores", l);
    g_autofree char *kn = g_strdup_printf ("indexer.%d.topk", l);
    g_autofree char *tn = g_strdup_printf ("indexer.%d.kl_target", l);
    const dsocr_tensor *ts = dsocr_safetensors_get (st, sn), *tk = dsocr_safetensors_get (st, kn),
                       *tt = dsocr_safetensors_get (st, tn);
    g_assert_nonnull (ts);
    g_assert_nonnull (tk);
    g_assert_nonnull (tt);
    g_assert_cmpint (tk->dtype, ==, DSOCR_DTYPE_I32);
    g_assert_cmpint (ts->shape[2], ==, (int64_t) L);
    g_assert_cmpint (memcmp (ts->data, dsocr_indexer_outputs_get_scores (o, l, NULL), ts->nbytes),
                     ==, 0);
    g_assert_cmpint (memcmp (tk->data, dsocr_indexer_outputs_get_topk (o, l, NULL), tk->nbytes), ==,
                     0);
    g_assert_cmpint (memcmp (tt->data, dsocr_indexer_outputs_get_kl_target (o, l, NULL),
                             tt->nbytes), ==, 0);
  }
  dsocr_indexer_kl_loss (o, &loss, &err);
  g_assert_no_error (err);
  g_assert_cmpfloat (*(const float *) dsocr_safetensors_get (st, "indexer_kl_loss")->data, ==,
                     (float) loss);
  dsocr_safetensors_unref (st);
  /* outputs without targets: no loss */
  dsocr_session_set_indexer_outputs (s, DSOCR_INDEXER_SCORES, &err);
  dsocr_session_reset (s);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         DSOCR_LOGITS_NONE, NULL, &err);
  g_assert_no_error (err);
  o = dsocr_session_get_indexer_outputs (s);
  g_assert_null (dsocr_indexer_outputs_get_topk (o, 0, NULL));
  g_assert_false (dsocr_indexer_kl_loss (o, &loss, &err));
  g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_INVALID);
  g_clear_error (&err);
  /* an unwritable path names itself */
  {
    g_autofree char *bad = g_build_filename (dir, "missing", "x.safetensors", NULL);
    g_assert_false (dsocr_indexer_outputs_save (o, bad, &err));
    g_assert_error (err, DSOCR_ERROR, DSOCR_ERROR_FILE);
    g_assert_nonnull (strstr (err->message, "missing"));
    g_clear_error (&err);
  }
  /* nothing recorded once the flags are cleared */
  dsocr_session_set_indexer_outputs (s, 0, &err);
  dsocr_session_forward (s, &(dsocr_batch) { .n_seq = 1, .n_tokens = 1, .ids = ids },
                         DSOCR_LOGITS_NONE, NULL, &err);
  g_assert_no_error (err);
  g_assert_null (dsocr_session_get_indexer_outputs (s));
  g_unlink (path);
  g_rmdir (dir);
  dsocr_session_free (s);
  dsocr_safetensors_unref (g);
  dsocr_model_unref (m);
}

/* use_sparse_attention false equals index_topk >= every length (nothing masked), and both
 * equal transformers' DeepseekV3 without the indexer (golden-no-sparse). */
static void
test_dense_modes_agree (void)
{
  dsocr_model *dense = model_load (&case_no_sparse), *wide = model_load (&case_dense_topk);
  dsocr_safetensors *g = golden_open ("tiny-v32", "golden-no-sparse.safetensors");
  const int V = dsocr_model_get_n_vocab (dense);
  GError *err = NULL;
  gsize L;
  g_autofree int32_t *ids = golden_i32 (g, "input_ids", &L);
  g_autofree float *a = g_new (float, L * V), *b = g_new (float, L * V);
  dsocr_session *sa = session_new (dense, 1, DSOCR_MLA_AUTO), *sb = session_new (wide, 1,
                                                                                 DSOCR_MLA_AUTO);

  dsocr_session_forward (sa, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         DSOCR_LOGITS_ALL, a, &err);
  g_assert_no_error (err);
  dsocr_session_forward (sb, &(dsocr_batch) { .n_seq = 1, .n_tokens = (int) L, .ids = ids },
                         DSOCR_LOGITS_ALL, b, &err);
  g_assert_no_error (err);
  dsocr_test_assert_close (a, b, L * V, 1e-6, "no-sparse vs dense top-k");
  dsocr_session_free (sa);
  dsocr_session_free (sb);
  dsocr_safetensors_unref (g);
  dsocr_model_unref (dense);
  dsocr_model_unref (wide);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/dsa/topk-rules", test_topk_rules);
  g_test_add_func ("/dsa/indexer-layers", test_indexer_layers);
  g_test_add_func ("/dsa/kl-loss-arrays", test_kl_loss_arrays);
  g_test_add_func ("/dsa/fp8-dequantize", test_fp8_dequantize);
  g_test_add_data_func ("/dsa/prefill/sparse", &case_sparse, test_prefill);
  g_test_add_data_func ("/dsa/prefill/dense-topk", &case_dense_topk, test_prefill);
  g_test_add_data_func ("/dsa/prefill/no-sparse", &case_no_sparse, test_prefill);
  g_test_add_data_func ("/dsa/prefill/fp8", &case_fp8, test_prefill);
  g_test_add_data_func ("/dsa/chunked/sparse", &case_sparse, test_chunked_prefill);
  g_test_add_data_func ("/dsa/chunked/fp8", &case_fp8, test_chunked_prefill);
  g_test_add_data_func ("/dsa/greedy/sparse", &case_sparse, test_greedy);
  g_test_add_data_func ("/dsa/greedy/dense-topk", &case_dense_topk, test_greedy);
  g_test_add_data_func ("/dsa/greedy/no-sparse", &case_no_sparse, test_greedy);
  g_test_add_data_func ("/dsa/greedy/fp8", &case_fp8, test_greedy);
  g_test_add_data_func ("/dsa/batch/sparse", &case_sparse, test_padded_batch);
  g_test_add_data_func ("/dsa/batch/fp8", &case_fp8, test_padded_batch);
  g_test_add_func ("/dsa/save", test_save);
  g_test_add_func ("/dsa/dense-modes-agree", test_dense_modes_agree);
  return g_test_run ();
}
