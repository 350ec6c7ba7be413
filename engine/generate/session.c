/* session.c: a stream of decoder work: the input embedding, the KV cache, heads and the LM
 * loss, on the session's backend. */
#include "dsocr/dsocr-session.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "backend-private.h"
#include "decoder.h"
#include "dsocr/dsocr-error.h"
#include "dsocr/dsocr-indexer.h"
#include "indexer.h"
#include "kv-cache.h"
#include "session-private.h"

/* Rows of logits computed at once by the loss (bounds its memory to rows * n_vocab floats). */
#define LOSS_CHUNK 32

struct dsocr_session {
  dsocr_model *model;          /* one reference */
  dsocr_session_params params;
  dsk_backend *be;             /* a reference */
  dsocr_kv_cache cache;
  dsocr_decoder_state *dec;
  dsk_arena *io;               /* the inputs and logits of one call */
  dsk_buffer *hidden_buf;      /* the final-norm output of the last call */
  dsk_tensor hidden;           /* [T, n_embd] in hidden_buf */
  float *hidden_host;          /* its host copy, made when asked for */
  gsize hidden_host_cap;
  gboolean hidden_host_valid;
  int32_t *pos;                /* [T] position ids of the current call (host) */
  uint8_t *mask;               /* [T] attention mask of the current call (host) */
  int32_t *idx;                /* [T] row indices (host) */
  gsize pos_cap;
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
  dsk_backend *be;
  int k_width, v_width;

  if (params)
    p = *params;
  else
    dsocr_session_params_init (&p);
  if (p.n_seq_max < 0 || p.n_ctx < 0 || p.n_threads < 0 ||
      p.n_threads > DSOCR_BACKEND_MAX_THREADS || p.mla_form < DSOCR_MLA_AUTO ||
      p.mla_form > DSOCR_MLA_ABSORBED || !dsocr_precision_to_string (p.precision)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "session: invalid params (n_seq_max %d, n_ctx %d, n_threads %d, mla_form %d, "
                 "precision %d)", p.n_seq_max, p.n_ctx, p.n_threads, (int) p.mla_form,
                 (int) p.precision);
    return NULL;
  }
  p.precision = dsocr_precision_resolve (p.precision);
  if (p.n_seq_max == 0)
    p.n_seq_max = 1;
  if (p.n_ctx == 0)
    p.n_ctx = t->max_position_embeddings;
  be = p.backend ? dsk_backend_ref (p.backend) : dsocr_backend_default (p.n_threads, error);
  if (!be)
    return NULL;

  s = g_new0 (dsocr_session, 1);
  s->model = dsocr_model_ref (model);
  s->params = p;
  s->params.backend = NULL;   /* s->be holds the reference */
  s->be = be;
  s->io = dsk_arena_new (be);
  dsocr_attention_cache_widths (t, &k_width, &v_width);
  dsocr_kv_cache_init (&s->cache, be, dsocr_model_get_n_layers (model), p.n_seq_max, p.n_ctx,
                       k_width, v_width);
  s->dec = dsocr_decoder_state_new (model, be, p.precision, p.mla_form, error);
  if (!s->dec) {
    dsocr_session_free (s);
    return NULL;
  }
  return s;
}

void
dsocr_session_free (dsocr_session *session)
{
  if (!session)
    return;
  dsocr_decoder_state_free (session->dec);
  dsocr_kv_cache_clear (&session->cache);
  dsk_arena_free (session->io);
  dsk_buffer_free (session->hidden_buf);
  dsk_backend_unref (session->be);
  g_free (session->hidden_host);
  g_free (session->pos);
  g_free (session->mask);
  g_free (session->idx);
  dsocr_model_unref (session->model);
  g_free (session);
}

void
dsocr_session_reset (dsocr_session *session)
{
  dsocr_kv_cache_reset (&session->cache);
  session->have_hidden = FALSE;
  if (session->dec)
    dsocr_indexer_forget (session->dec->indexer);
}

gboolean
dsocr_session_set_indexer_outputs (dsocr_session *session, guint flags, GError **error)
{
  return dsocr_indexer_set_flags (session->dec->indexer, flags, error);
}

const dsocr_indexer_outputs *
dsocr_session_get_indexer_outputs (const dsocr_session *session)
{
  return dsocr_indexer_get_outputs (session->dec->indexer);
}

dsocr_model *
dsocr_session_get_model (const dsocr_session *session)
{
  return session->model;
}

dsocr_precision
dsocr_session_get_precision (const dsocr_session *session)
{
  return session->params.precision;
}

gsize
dsocr_session_get_weight_bytes (const dsocr_session *session)
{
  return session->dec->weight_bytes;
}

dsocr_backend *
dsocr_session_get_backend (const dsocr_session *session)
{
  return session->be;
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
  dsocr_session *s = (dsocr_session *) session;   /* the host copy is a cache */
  const gsize n = (gsize) (s->hidden_shape[0] * s->hidden_shape[1] * s->hidden_shape[2]);

  if (!s->have_hidden)
    return NULL;
  if (!s->hidden_host_valid) {
    if (s->hidden_host_cap < n) {
      g_free (s->hidden_host);
      s->hidden_host = g_try_new (float, n);
      s->hidden_host_cap = s->hidden_host ? n : 0;
      if (!s->hidden_host)
        return NULL;
    }
    dsk_tensor_get (s->be, &s->hidden, s->hidden_host);
    if (!dsocr_backend_check (s->be, "session", NULL))
      return NULL;
    s->hidden_host_valid = TRUE;
  }
  if (shape)
    memcpy (shape, s->hidden_shape, sizeof s->hidden_shape);
  return s->hidden_host;
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
  const int V = dsocr_model_get_n_vocab (s->model);

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
  if (b->ids) {
    for (gsize i = 0; i < (gsize) b->n_seq * b->n_tokens; i++)
      if (b->ids[i] < 0 || b->ids[i] >= V) {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                     "token id %d at index %" G_GSIZE_FORMAT
                     " is outside the vocabulary [0, %d)", b->ids[i], i, V);
        return FALSE;
      }
  }
  return TRUE;
}

/* The call's input embeddings into @x [T, n_embd]. */
static void
embed_batch (dsocr_session *s, const dsocr_batch *b, const dsk_tensor *x)
{
  dsk_backend *be = s->be;
  const gsize T = (gsize) b->n_seq * b->n_tokens, H = dsocr_model_get_n_embd (s->model);

  if (!b->ids) {
    dsk_tensor_set (be, x, b->embeds);
    return;
  }
  {
    dsk_tensor ids = dsk_arena_1d (s->io, DSK_I32, T);   /* [T] */
    dsk_tensor_set (be, &ids, b->ids);
    dsk_get_rows (be, x, &s->dec->w->embed, &ids, NULL);
  }
  if (b->embeds_mask) {
    /* masked_scatter_: the masked columns, in row-major order, take consecutive embeds rows. */
    gsize n = 0;
    for (gsize i = 0; i < T; i++)
      if (b->embeds_mask[i])
        s->idx[n++] = (int32_t) i;
    if (n > 0) {
      dsk_tensor rows = dsk_arena_2d (s->io, DSK_F32, n, H);   /* [n, H] */
      dsk_tensor where = dsk_arena_1d (s->io, DSK_I32, n);     /* [n] */
      dsk_tensor_set (be, &rows, b->embeds);
      dsk_tensor_set (be, &where, s->idx);
      dsk_set_rows (be, x, &rows, &where);
    }
  }
}

/* Makes the persistent hidden buffer hold [T, H]. */
static gboolean
ensure_hidden (dsocr_session *s, gsize T, gsize H, GError **error)
{
  const gsize bytes = T * H * sizeof (float);
  if (!s->hidden_buf || dsk_buffer_size (s->hidden_buf) < bytes) {
    dsk_buffer_free (s->hidden_buf);
    s->hidden_buf = dsk_buffer_new (s->be, bytes);
    if (!s->hidden_buf)
      return dsocr_backend_check (s->be, "session", error);
  }
  {
    const size_t ne[2] = { T, H };
    s->hidden = dsk_buffer_tensor (s->hidden_buf, 0, DSK_F32, 2, ne);
  }
  return TRUE;
}

gboolean
dsocr_session_forward (dsocr_session *s, const dsocr_batch *b, dsocr_logits_mode mode,
                       float *logits, GError **error)
{
  dsk_backend *be = s->be;
  const gsize T = (gsize) b->n_seq * b->n_tokens, H = dsocr_model_get_n_embd (s->model);
  const int n_past = s->cache.n_past, V = dsocr_model_get_n_vocab (s->model);
  dsocr_kv_cache *cache = &s->cache;
  dsk_tensor x;

  if (!check_batch (s, b, mode, logits, error))
    return FALSE;
  if (T > s->pos_cap) {
    s->pos = g_renew (int32_t, s->pos, T);
    s->mask = g_renew (uint8_t, s->mask, T);
    s->idx = g_renew (int32_t, s->idx, T);
    s->pos_cap = T;
  }
  if (!dsocr_kv_cache_reserve (cache, n_past + b->n_tokens, error) ||
      !ensure_hidden (s, T, H, error))
    return FALSE;
  s->have_hidden = FALSE;
  s->hidden_host_valid = FALSE;
  dsk_arena_reset (s->io);
  x = dsk_arena_2d (s->io, DSK_F32, T, H);   /* [T, H] the residual stream */
  embed_batch (s, b, &x);

  for (int r = 0; r < b->n_seq; r++) {
    for (int t = 0; t < b->n_tokens; t++) {
      gsize i = (gsize) r * b->n_tokens + t;
      s->pos[i] = b->positions ? b->positions[i] : n_past + t;
      s->mask[i] = b->attention_mask ? b->attention_mask[i] != 0 : 1;
    }
  }
  cache->n_seq = b->n_seq;
  {
    dsk_tensor m = dsocr_kv_cache_mask (cache, n_past, b->n_tokens);   /* [n_seq, n_tokens] */
    dsk_tensor_set (be, &m, s->mask);
  }
  if (!dsocr_backend_check (be, "session", error) ||
      !dsocr_decoder_forward (s->dec, cache, b->n_seq, b->n_tokens, &x, s->pos, &s->hidden,
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

  if (mode == DSOCR_LOGITS_ALL) {
    dsk_tensor l = dsk_arena_2d (s->io, DSK_F32, T, V);   /* [T, V] */
    dsocr_decoder_lm_head (s->dec, &s->hidden, &l);
    dsk_tensor_get (be, &l, logits);
  } else if (mode == DSOCR_LOGITS_LAST) {
    dsk_tensor last = dsk_arena_1d (s->io, DSK_I32, (gsize) b->n_seq);    /* [n_seq] */
    dsk_tensor rows = dsk_arena_2d (s->io, DSK_F32, (gsize) b->n_seq, H); /* [n_seq, H] */
    dsk_tensor l = dsk_arena_2d (s->io, DSK_F32, (gsize) b->n_seq, V);    /* [n_seq, V] */
    for (int r = 0; r < b->n_seq; r++)
      s->idx[r] = r * b->n_tokens + b->n_tokens - 1;
    dsk_tensor_set (be, &last, s->idx);
    dsk_get_rows (be, &rows, &s->hidden, &last, NULL);
    dsocr_decoder_lm_head (s->dec, &rows, &l);
    dsk_tensor_get (be, &l, logits);
  }
  return dsocr_backend_check (be, "session", error);
}

gboolean
dsocr_session_lm_loss (dsocr_session *s, const dsocr_batch *b, const int64_t *labels,
                       double *loss, GError **error)
{
  dsk_backend *be = s->be;
  const int V = dsocr_model_get_n_vocab (s->model);
  const gsize H = dsocr_model_get_n_embd (s->model);
  float *logits;           // [LOSS_CHUNK, V] (host)
  int64_t target[LOSS_CHUNK];
  int32_t which[LOSS_CHUNK];
  dsk_tensor rows, l, sel;
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

  logits = g_try_new (float, (gsize) LOSS_CHUNK * V);
  if (!logits) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_NOMEM, "lm_loss: out of memory");
    return FALSE;
  }
  rows = dsk_arena_2d (s->io, DSK_F32, LOSS_CHUNK, H);   /* [LOSS_CHUNK, H] */
  l = dsk_arena_2d (s->io, DSK_F32, LOSS_CHUNK, V);      /* [LOSS_CHUNK, V] */
  sel = dsk_arena_1d (s->io, DSK_I32, LOSS_CHUNK);       /* [LOSS_CHUNK] */
  /* Column t predicts label t + 1 of the same row; the last column predicts nothing. */
  for (int r = 0; r < b->n_seq; r++) {
    for (int t = 0; t < b->n_tokens; t++) {
      gsize i = (gsize) r * b->n_tokens + t;
      gboolean last = r == b->n_seq - 1 && t == b->n_tokens - 1;

      if (t + 1 < b->n_tokens && labels[i + 1] != -100) {
        which[n] = (int32_t) i;
        target[n] = labels[i + 1];
        n++;
      }
      if (n == LOSS_CHUNK || (last && n > 0)) {
        dsk_tensor sel_n = dsk_narrow (&sel, 0, 0, (size_t) n);
        dsk_tensor rows_n = dsk_narrow (&rows, 0, 0, (size_t) n);
        dsk_tensor l_n = dsk_narrow (&l, 0, 0, (size_t) n);
        dsk_tensor_set (be, &sel_n, which);
        dsk_get_rows (be, &rows_n, &s->hidden, &sel_n, NULL);
        dsocr_decoder_lm_head (s->dec, &rows_n, &l_n);
        dsk_tensor_get (be, &l_n, logits);
        if (!dsocr_backend_check (be, "lm_loss", error)) {
          g_free (logits);
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
  *loss = count ? sum / (double) count : NAN;
  return TRUE;
}

/* The score head on the last call's hidden rows @which [n] (classify.c). */
gboolean
dsocr_session_score_rows (dsocr_session *s, const int32_t *which, int n, float *logits,
                          GError **error)
{
  dsk_backend *be = s->be;
  const gsize H = dsocr_model_get_n_embd (s->model);
  const int L = dsocr_model_get_n_labels (s->model);
  dsk_tensor sel, rows, l;

  if (!s->have_hidden || n <= 0 || L <= 0)
    return invalid (error, "score: no hidden states or no score head");
  sel = dsk_arena_1d (s->io, DSK_I32, (gsize) n);       /* [n] */
  rows = dsk_arena_2d (s->io, DSK_F32, (gsize) n, H);   /* [n, H] */
  l = dsk_arena_2d (s->io, DSK_F32, (gsize) n, L);      /* [n, L] */
  dsk_tensor_set (be, &sel, which);
  dsk_get_rows (be, &rows, &s->hidden, &sel, NULL);
  dsocr_decoder_score (s->dec, &rows, &l);
  dsk_tensor_get (be, &l, logits);
  return dsocr_backend_check (be, "score", error);
}
