/* session.c: a stream of decoder work: input embedding, the KV cache, heads and the LM loss. */
#include "dsocr/dsocr-session.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "decoder.h"
#include "dsocr/dsocr-error.h"
#include "dsocr/dsocr-indexer.h"
#include "kv-cache.h"

/* Rows of logits computed at once by the loss (bounds its memory to rows * n_vocab floats). */
#define LOSS_CHUNK 32

struct dsocr_session {
  dsocr_model *model;          /* one reference */
  dsocr_session_params params;
  dsocr_kv_cache cache;
  dsocr_decoder_state *dec;
  float *x;                    /* [T, n_embd] residual stream of the current call */
  float *hidden;               /* [T, n_embd] final-norm output of the last call */
  float *rows;                 /* [n_seq, n_embd] last columns gathered for the LM head */
  int32_t *pos;                /* [T] position ids of the current call */
  gsize x_cap, pos_cap, rows_cap;
  int64_t hidden_shape[3];
  gboolean have_hidden;
  dsocr_tensor_callback callback;
  gpointer user_data;
};

void
dsocr_session_params_init (dsocr_session_params *params)
{
  memset (params, 0, sizeof *params);
  params->n_seq_max = 1;
  params->mla_form = DSOCR_MLA_AUTO;
}

dsocr_session *
dsocr_session_new (dsocr_model *model, const dsocr_session_params *params, GError **error)
{
  const dsocr_text_config *t = &dsocr_model_get_config (model)->text;
  dsocr_session_params p;
  dsocr_session *s;
  int k_width, v_width;

  if (params)
    p = *params;
  else
    dsocr_session_params_init (&p);
  if (p.n_seq_max < 0 || p.n_ctx < 0 || p.n_threads < 0 || p.mla_form < DSOCR_MLA_AUTO ||
      p.mla_form > DSOCR_MLA_ABSORBED) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "session: invalid params (n_seq_max %d, n_ctx %d, n_threads %d, mla_form %d)",
                 p.n_seq_max, p.n_ctx, p.n_threads, (int) p.mla_form);
    return NULL;
  }
  if (p.n_seq_max == 0)
    p.n_seq_max = 1;
  if (p.n_ctx == 0)
    p.n_ctx = t->max_position_embeddings;
  if (p.n_threads == 0)
    p.n_threads = (int) g_get_num_processors ();

  if (t->use_mla) {
    k_width = t->kv_lora_rank + t->qk_rope_head_dim;
    v_width = t->use_sparse_attention ? t->index_head_dim : 0;  /* the DSA indexer's keys */
  } else {
    k_width = v_width = t->num_key_value_heads * t->head_dim;
  }
  s = g_new0 (dsocr_session, 1);
  s->model = dsocr_model_ref (model);
  s->params = p;
  dsocr_kv_cache_init (&s->cache, dsocr_model_get_n_layers (model), p.n_seq_max, p.n_ctx, k_width,
                       v_width);
  s->dec = dsocr_decoder_state_new (model, p.n_threads, p.mla_form);
  return s;
}

void
dsocr_session_free (dsocr_session *session)
{
  if (!session)
    return;
  dsocr_decoder_state_free (session->dec);
  dsocr_kv_cache_clear (&session->cache);
  g_free (session->x);
  g_free (session->hidden);
  g_free (session->rows);
  g_free (session->pos);
  dsocr_model_unref (session->model);
  g_free (session);
}

void
dsocr_session_reset (dsocr_session *session)
{
  dsocr_kv_cache_reset (&session->cache);
  session->have_hidden = FALSE;
  dsocr_indexer_forget (dsocr_decoder_get_indexer (session->dec));
}

gboolean
dsocr_session_set_indexer_outputs (dsocr_session *session, guint flags, GError **error)
{
  return dsocr_indexer_set_flags (dsocr_decoder_get_indexer (session->dec), flags, error);
}

const dsocr_indexer_outputs *
dsocr_session_get_indexer_outputs (const dsocr_session *session)
{
  return dsocr_indexer_get_outputs (dsocr_decoder_get_indexer (session->dec));
}

dsocr_model *
dsocr_session_get_model (const dsocr_session *session)
{
  return session->model;
}

int
dsocr_session_get_n_past (const dsocr_session *session)
{
  return session->cache.n_past;
}

int
dsocr_session_get_n_seq (const dsocr_session *session)
{
  return session->cache.n_seq;
}

const int32_t *
dsocr_session_get_last_positions (const dsocr_session *session)
{
  return session->cache.last_pos;
}

void
dsocr_session_set_tensor_callback (dsocr_session *session, dsocr_tensor_callback callback,
                                   gpointer user_data)
{
  session->callback = callback;
  session->user_data = user_data;
}

const float *
dsocr_session_get_hidden (const dsocr_session *session, int64_t shape[3])
{
  if (!session->have_hidden)
    return NULL;
  if (shape)
    memcpy (shape, session->hidden_shape, sizeof session->hidden_shape);
  return session->hidden;
}

static gboolean
grow (void **buf, gsize *cap, gsize n, gsize elem, GError **error)
{
  void *p;

  if (n <= *cap)
    return TRUE;
  p = g_try_realloc (*buf, n * elem);
  if (!p) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "session: cannot allocate %" G_GSIZE_FORMAT
                 " bytes", n * elem);
    return FALSE;
  }
  *buf = p;
  *cap = n;
  return TRUE;
}

static gboolean G_GNUC_PRINTF (2, 3)
invalid (GError **error, const char *fmt, ...)
{
  va_list ap;
  char *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "session: %s", msg);
  g_free (msg);
  return FALSE;
}

/* Position ids beyond this would make the RoPE tables absurdly large. */
static int64_t
max_position (const dsocr_session *s)
{
  const dsocr_text_config *t = &dsocr_model_get_config (s->model)->text;
  return 4 * (int64_t) MAX (s->params.n_ctx, t->max_position_embeddings);
}

static gboolean
check_batch (const dsocr_session *s, const dsocr_batch *b, dsocr_logits_mode mode, float *logits,
             GError **error)
{
  const gboolean by_ids = b->ids && !b->embeds, by_embeds = !b->ids && b->embeds,
                 mixed = b->ids && b->embeds && b->embeds_mask;

  if (b->n_seq <= 0 || b->n_tokens <= 0)
    return invalid (error, "empty batch (%d rows of %d columns)", b->n_seq, b->n_tokens);
  if (s->cache.n_past > 0 && b->n_seq != s->cache.n_seq)
    return invalid (error, "the batch has %d rows but the cache holds %d", b->n_seq,
                    s->cache.n_seq);
  if (b->n_seq > s->params.n_seq_max)
    return invalid (error, "the batch has %d rows, n_seq_max is %d", b->n_seq,
                    s->params.n_seq_max);
  if (!by_ids && !by_embeds && !mixed)
    return invalid (error, "give ids, embeds, or ids + embeds + embeds_mask");
  if ((gint64) s->cache.n_past + b->n_tokens > s->params.n_ctx)
    return invalid (error, "%d cached + %d new columns exceed n_ctx %d", s->cache.n_past,
                    b->n_tokens, s->params.n_ctx);
  if (mode != DSOCR_LOGITS_NONE && (!logits || !dsocr_model_has_lm_head (s->model)))
    return invalid (error, "logits asked of a model without lm_head, or into NULL");
  if (b->positions) {
    for (gsize i = 0; i < (gsize) b->n_seq * b->n_tokens; i++)
      if (b->positions[i] < 0 || b->positions[i] >= max_position (s))
        return invalid (error, "position id %d at index %" G_GSIZE_FORMAT
                        " is outside [0, %" G_GINT64_FORMAT ")", b->positions[i], i,
                        max_position (s));
  } else if ((int64_t) s->cache.n_past + b->n_tokens > max_position (s)) {
    return invalid (error, "positions would exceed %" G_GINT64_FORMAT, max_position (s));
  }
  return TRUE;
}

/* The call's input embeddings into s->x [T, n_embd]. */
static gboolean
embed_batch (dsocr_session *s, const dsocr_batch *b, GError **error)
{
  const gsize T = (gsize) b->n_seq * b->n_tokens, H = dsocr_model_get_n_embd (s->model);

  if (!b->ids) {
    memcpy (s->x, b->embeds, sizeof (float) * T * H);
    return TRUE;
  }
  if (!dsocr_model_embed (s->model, b->ids, T, s->x, error))
    return FALSE;
  if (b->embeds_mask) {
    /* masked_scatter_: the masked columns, in row-major order, take consecutive embeds rows. */
    gsize next = 0;
    for (gsize i = 0; i < T; i++)
      if (b->embeds_mask[i])
        memcpy (s->x + i * H, b->embeds + (next++) * H, sizeof (float) * H);
  }
  return TRUE;
}

gboolean
dsocr_session_forward (dsocr_session *s, const dsocr_batch *b, dsocr_logits_mode mode,
                       float *logits, GError **error)
{
  const gsize T = (gsize) b->n_seq * b->n_tokens, H = dsocr_model_get_n_embd (s->model);
  const int n_past = s->cache.n_past;
  dsocr_kv_cache *cache = &s->cache;
  gsize x_cap = s->x_cap;

  if (!check_batch (s, b, mode, logits, error))
    return FALSE;
  /* x and hidden always have the same size. */
  if (!grow ((void **) &s->x, &x_cap, T * H, sizeof (float), error) ||
      !grow ((void **) &s->hidden, &s->x_cap, T * H, sizeof (float), error) ||
      !grow ((void **) &s->pos, &s->pos_cap, T, sizeof (int32_t), error) ||
      !dsocr_kv_cache_reserve (cache, n_past + b->n_tokens, error))
    return FALSE;
  s->have_hidden = FALSE;
  if (!embed_batch (s, b, error))
    return FALSE;

  for (int r = 0; r < b->n_seq; r++) {
    for (int t = 0; t < b->n_tokens; t++) {
      gsize i = (gsize) r * b->n_tokens + t;
      s->pos[i] = b->positions ? b->positions[i] : n_past + t;
      cache->mask[r][n_past + t] = b->attention_mask ? b->attention_mask[i] != 0 : 1;
    }
  }
  cache->n_seq = b->n_seq;
  if (!dsocr_decoder_forward (s->dec, cache, b->n_seq, b->n_tokens, s->x, s->pos, s->hidden,
                              s->callback, s->user_data, error)) {
    if (n_past == 0)
      cache->n_seq = 0;
    return FALSE;
  }
  cache->n_past = n_past + b->n_tokens;
  for (int r = 0; r < b->n_seq; r++)
    cache->last_pos[r] = s->pos[(gsize) r * b->n_tokens + b->n_tokens - 1];
  s->hidden_shape[0] = b->n_seq;
  s->hidden_shape[1] = b->n_tokens;
  s->hidden_shape[2] = (int64_t) H;
  s->have_hidden = TRUE;

  if (mode == DSOCR_LOGITS_ALL)
    return dsocr_decoder_lm_head (s->dec, s->hidden, (int) T, logits, error);
  if (mode == DSOCR_LOGITS_LAST) {
    if (!grow ((void **) &s->rows, &s->rows_cap, (gsize) b->n_seq * H, sizeof (float), error))
      return FALSE;
    for (int r = 0; r < b->n_seq; r++)
      memcpy (s->rows + (gsize) r * H,
              s->hidden + ((gsize) r * b->n_tokens + b->n_tokens - 1) * H, sizeof (float) * H);
    return dsocr_decoder_lm_head (s->dec, s->rows, b->n_seq, logits, error);
  }
  return TRUE;
}

gboolean
dsocr_session_lm_loss (dsocr_session *s, const dsocr_batch *b, const int64_t *labels,
                       double *loss, GError **error)
{
  const int V = dsocr_model_get_n_vocab (s->model);
  const gsize H = dsocr_model_get_n_embd (s->model);
  float *logits;     // [LOSS_CHUNK, V]
  int64_t *target;   // [LOSS_CHUNK]
  double sum = 0.0;
  gsize count = 0;
  int n = 0;

  if (!dsocr_model_has_lm_head (s->model))
    return invalid (error, "lm_loss: the model has no lm_head");
  for (gsize i = 0; i < (gsize) b->n_seq * b->n_tokens; i++)
    if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= V))
      return invalid (error, "lm_loss: label %" G_GINT64_FORMAT " at index %" G_GSIZE_FORMAT
                      " is outside [0, %d) and is not -100", labels[i], i, V);
  if (!dsocr_session_forward (s, b, DSOCR_LOGITS_NONE, NULL, error))
    return FALSE;

  logits = g_new (float, (gsize) LOSS_CHUNK * V);
  target = g_new (int64_t, LOSS_CHUNK);
  if (!grow ((void **) &s->rows, &s->rows_cap, (gsize) LOSS_CHUNK * H, sizeof (float), error)) {
    g_free (logits);
    g_free (target);
    return FALSE;
  }
  /* Column t predicts label t + 1 of the same row; the last column predicts nothing. */
  for (int r = 0; r < b->n_seq; r++) {
    for (int t = 0; t < b->n_tokens; t++) {
      gsize i = (gsize) r * b->n_tokens + t;
      gboolean last = r == b->n_seq - 1 && t == b->n_tokens - 1;

      if (t + 1 < b->n_tokens && labels[i + 1] != -100) {
        memcpy (s->rows + (gsize) n * H, s->hidden + i * H, sizeof (float) * H);
        target[n] = labels[i + 1];
        n++;
      }
      if (n == LOSS_CHUNK || (last && n > 0)) {
        if (!dsocr_decoder_lm_head (s->dec, s->rows, n, logits, error)) {
          g_free (logits);
          g_free (target);
          return FALSE;
        }
        for (int j = 0; j < n; j++) {
          const float *row = logits + (gsize) j * V;
          double max = -INFINITY, lse = 0.0;
          for (int v = 0; v < V; v++)
            max = MAX (max, (double) row[v]);
          for (int v = 0; v < V; v++)
            lse += exp ((double) row[v] - max);
          sum += max + log (lse) - (double) row[target[j]];
          count++;
        }
        n = 0;
      }
    }
  }
  g_free (logits);
  g_free (target);
  *loss = count ? sum / (double) count : NAN;
  return TRUE;
}
