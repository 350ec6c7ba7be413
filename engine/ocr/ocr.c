/* ocr.c: DeepSeek-OCR end to end: prompt building, image embedding injection, greedy decoding
 * with the reference's n-gram guard, and the result. Glue over preprocess, vision, session,
 * generate, tokenizer and result. */
#include "dsocr/dsocr-ocr.h"

#include <string.h>

#include "dsocr/dsocr-config.h"
#include "dsocr/dsocr-error.h"
#include "dsocr/dsocr-generate.h"
#include "dsocr-build-config.h"

struct dsocr_ocr {
  gatomicrefcount ref;
  dsocr_model *model;         /* owns a reference */
  dsocr_vision *vision;       /* owns a reference */
  dsocr_tokenizer *tokenizer; /* owned */
  int32_t image_token_id;
  int32_t bos_id;
  int32_t td_ids[2];          /* <td>, </td>: the windowed guard's default whitelist */
  int n_td_ids;
};

struct dsocr_ocr_embeddings {
  gatomicrefcount ref;
  dsocr_tensor *tensor;       /* [n_tokens, n_embed] F32, owned */
  int image_width;
  int image_height;
};

struct dsocr_ocr_prompt {
  int32_t *ids;               /* [n_ids] */
  uint8_t *image_mask;        /* [n_ids]: 1 at the image positions */
  gsize n_ids;
  int n_image_tokens;
};

#define IMAGE_MARKER "<image>"

void
dsocr_ocr_params_init (dsocr_ocr_params *params)
{
  g_return_if_fail (params != NULL);
  memset (params, 0, sizeof *params);
  params->mode = DSOCR_MODE_GUNDAM;
  params->max_tiles = DSOCR_MAX_TILES_HF;
  params->pillow = DSOCR_PILLOW_13;
  params->prompt = NULL;
  params->max_new_tokens = DSOCR_OCR_MAX_NEW_TOKENS;
  params->ngram_guard = DSOCR_NGRAM_GUARD_HF;
  dsocr_result_options_init (&params->result);
}

/* ---- the model ---- */

dsocr_ocr *
dsocr_ocr_new (dsocr_model *model, dsocr_vision *vision, dsocr_tokenizer *tokenizer,
               GError **error)
{
  g_return_val_if_fail (model != NULL && vision != NULL && tokenizer != NULL, NULL);
  const dsocr_config *cfg = dsocr_model_get_config (model);
  const int n_vocab = dsocr_model_get_n_vocab (model);
  int32_t image_id = cfg->vision.image_token_id;

  if (image_id < 0) {
    /* Tiny models: 128815 does not fit their vocabulary and the config may name no id. */
    image_id = dsocr_tokenizer_token_to_id (tokenizer, IMAGE_MARKER);
    if (image_id >= n_vocab)
      image_id = -1;
  }
  const char *bad = NULL;
  if (cfg->kind != DSOCR_MODEL_DEEPSEEK_OCR)
    bad = "the config is not DeepSeek-OCR";
  else if (!dsocr_model_has_lm_head (model))
    bad = "the decoder has no lm_head";
  else if (dsocr_vision_get_n_embed (vision) != dsocr_model_get_n_embd (model))
    bad = "the vision tower's width differs from the decoder's hidden_size";
  else if (image_id < 0)
    bad = "image_token_id: not given, 128815 is outside the vocabulary and the tokenizer has no "
          "<image> inside it";
  if (bad) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "%s: %s", cfg->path, bad);
    dsocr_tokenizer_free (tokenizer);
    return NULL;
  }

  dsocr_ocr *ocr = g_new0 (dsocr_ocr, 1);
  g_atomic_ref_count_init (&ocr->ref);
  ocr->model = dsocr_model_ref (model);
  ocr->vision = dsocr_vision_ref (vision);
  ocr->tokenizer = tokenizer;
  ocr->image_token_id = image_id;
  /* infer() prepends tokenizer.bos_token_id; the DeepSeek configs agree with it (0). */
  ocr->bos_id = dsocr_tokenizer_get_bos_id (tokenizer);
  if (ocr->bos_id < 0)
    ocr->bos_id = cfg->text.bos_token_id;
  for (int i = 0; i < 2; i++) {
    int32_t id = dsocr_tokenizer_token_to_id (tokenizer, i == 0 ? "<td>" : "</td>");
    if (id >= 0 && id < n_vocab)
      ocr->td_ids[ocr->n_td_ids++] = id;
  }
  return ocr;
}

/* ---- the default model ---- */

static gboolean
is_model_dir (const char *dir)
{
  g_autofree char *cfg = g_build_filename (dir, "config.json", NULL);
  return g_file_test (cfg, G_FILE_TEST_IS_REGULAR);
}

const char *
dsocr_ocr_default_model_dir (void)
{
  const char *env = g_getenv ("DSOCR_MODEL");
  if (env && *env)
    return env;
  /* an uninstalled build runs on the copy in its source tree until the model is installed */
  if (!is_model_dir (DSOCR_MODEL_INSTALL_DIR) &&
      is_model_dir (DSOCR_SOURCE_DIR "/models/dsocr-reader"))
    return DSOCR_SOURCE_DIR "/models/dsocr-reader";
  return DSOCR_MODEL_INSTALL_DIR;
}

dsocr_ocr *
dsocr_ocr_load (const char *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  dsocr_checkpoint *ckpt = NULL;
  dsocr_config *cfg = NULL;
  dsocr_model *model = NULL;
  dsocr_vision *vision = NULL;
  dsocr_tokenizer *tok = NULL;
  dsocr_ocr *ocr = NULL;

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_FILE, "%s: %s", dir,
                 g_file_test (dir, G_FILE_TEST_EXISTS) ? "not a directory"
                                                       : "no such model directory");
    return NULL;
  }
  /* The config first: a directory of another model family fails on what it is, not on a
   * missing tensor. */
  cfg = dsocr_config_load (dir, error);
  if (!cfg)
    return NULL;
  if (cfg->kind != DSOCR_MODEL_DEEPSEEK_OCR) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_UNSUPPORTED,
                 "%s: a %s model, not DeepSeek-OCR (it has no vision tower)", cfg->path,
                 dsocr_model_kind_name (cfg->kind));
    dsocr_config_free (cfg);
    return NULL;
  }
  ckpt = dsocr_checkpoint_open (dir, error);
  if (!ckpt) {
    dsocr_config_free (cfg);
    return NULL;
  }
  model = dsocr_model_new_from_checkpoint (ckpt, cfg, error);   /* owns cfg from here */
  if (model)
    vision = dsocr_vision_new (ckpt, dsocr_model_get_config (model), error);
  if (vision)
    tok = dsocr_tokenizer_load (dir, error);
  if (tok)
    ocr = dsocr_ocr_new (model, vision, tok, error);             /* owns tok from here */
  dsocr_vision_unref (vision);
  dsocr_model_unref (model);
  dsocr_checkpoint_unref (ckpt);
  return ocr;
}

dsocr_ocr *
dsocr_ocr_ref (dsocr_ocr *ocr)
{
  g_return_val_if_fail (ocr != NULL, NULL);
  g_atomic_ref_count_inc (&ocr->ref);
  return ocr;
}

void
dsocr_ocr_unref (dsocr_ocr *ocr)
{
  if (!ocr || !g_atomic_ref_count_dec (&ocr->ref))
    return;
  dsocr_tokenizer_free (ocr->tokenizer);
  dsocr_vision_unref (ocr->vision);
  dsocr_model_unref (ocr->model);
  g_free (ocr);
}

dsocr_model *
dsocr_ocr_get_model (const dsocr_ocr *ocr)
{
  return ocr->model;
}

dsocr_vision *
dsocr_ocr_get_vision (const dsocr_ocr *ocr)
{
  return ocr->vision;
}

const dsocr_tokenizer *
dsocr_ocr_get_tokenizer (const dsocr_ocr *ocr)
{
  return ocr->tokenizer;
}

int32_t
dsocr_ocr_get_image_token_id (const dsocr_ocr *ocr)
{
  return ocr->image_token_id;
}

/* ---- embeddings ---- */

dsocr_preprocessed *
dsocr_ocr_preprocess (const dsocr_image_view *image, const dsocr_ocr_params *params,
                      GError **error)
{
  dsocr_ocr_params defaults;
  dsocr_preprocess_params pp;

  if (!params) {
    dsocr_ocr_params_init (&defaults);
    params = &defaults;
  }
  dsocr_preprocess_params_init (&pp);
  pp.mode = params->mode;
  pp.max_tiles = params->max_tiles;
  pp.pillow = params->pillow;
  return dsocr_preprocess (image, &pp, error);
}

dsocr_ocr_embeddings *
dsocr_ocr_embeddings_new (dsocr_tensor *tensor, int image_width, int image_height,
                          GError **error)
{
  g_return_val_if_fail (tensor != NULL, NULL);
  if (tensor->dtype != DSOCR_DTYPE_F32 || tensor->n_dims != 2 || tensor->shape[0] < 1 ||
      tensor->shape[0] > G_MAXINT || tensor->device != DSOCR_DEVICE_CPU ||
      image_width < 1 || image_width > DSOCR_IMAGE_MAX_SIDE || image_height < 1 ||
      image_height > DSOCR_IMAGE_MAX_SIDE) {
    char shape[64];
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "image embeddings: %s tensor %s for a %d x %d image, expected F32 "
                 "[n_tokens, n_embed] on the CPU and sides in 1..%d",
                 dsocr_dtype_name (tensor->dtype) ? dsocr_dtype_name (tensor->dtype) : "?",
                 dsocr_shape_format (tensor->n_dims, tensor->shape, shape, sizeof shape),
                 image_width, image_height, DSOCR_IMAGE_MAX_SIDE);
    dsocr_tensor_free (tensor);
    return NULL;
  }
  dsocr_ocr_embeddings *emb = g_new0 (dsocr_ocr_embeddings, 1);
  g_atomic_ref_count_init (&emb->ref);
  emb->tensor = tensor;
  emb->image_width = image_width;
  emb->image_height = image_height;
  return emb;
}

dsocr_ocr_embeddings *
dsocr_ocr_encode (const dsocr_ocr *ocr, const dsocr_preprocessed *pp, dsocr_backend *backend,
                  GError **error)
{
  g_return_val_if_fail (ocr != NULL && pp != NULL, NULL);
  dsocr_vision_session *vs = dsocr_vision_session_new (ocr->vision, backend, error);
  dsocr_tensor *t = vs ? dsocr_vision_encode (vs, pp, error) : NULL;
  dsocr_vision_session_free (vs);
  if (!t)
    return NULL;
  return dsocr_ocr_embeddings_new (t, pp->orig_width, pp->orig_height, error);
}

dsocr_ocr_embeddings *
dsocr_ocr_embeddings_ref (dsocr_ocr_embeddings *emb)
{
  g_return_val_if_fail (emb != NULL, NULL);
  g_atomic_ref_count_inc (&emb->ref);
  return emb;
}

void
dsocr_ocr_embeddings_unref (dsocr_ocr_embeddings *emb)
{
  if (!emb || !g_atomic_ref_count_dec (&emb->ref))
    return;
  dsocr_tensor_free (emb->tensor);
  g_free (emb);
}

const dsocr_tensor *
dsocr_ocr_embeddings_get_tensor (const dsocr_ocr_embeddings *emb)
{
  return emb->tensor;
}

int
dsocr_ocr_embeddings_get_n_tokens (const dsocr_ocr_embeddings *emb)
{
  return (int) emb->tensor->shape[0];
}

void
dsocr_ocr_embeddings_get_image_size (const dsocr_ocr_embeddings *emb, int *width, int *height)
{
  if (width)
    *width = emb->image_width;
  if (height)
    *height = emb->image_height;
}

/* ---- the prompt ---- */

/* Python's str.isspace() for one code point: what .strip() removes. */
static gboolean
py_isspace (gunichar c)
{
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
         c == 0x202f || c == 0x205f || c == 0x3000;
}

/* [*start, *end) of @text without the leading and trailing whitespace .strip() removes.
 * @text is valid UTF-8. */
static void
py_strip (const char *text, gsize len, gsize *start, gsize *end)
{
  const char *p = text, *stop = text + len;
  while (p < stop && py_isspace (g_utf8_get_char (p)))
    p = g_utf8_next_char (p);
  const char *q = stop;
  while (q > p) {
    const char *prev = g_utf8_prev_char (q);
    if (!py_isspace (g_utf8_get_char (prev)))
      break;
    q = prev;
  }
  *start = (gsize) (p - text);
  *end = (gsize) (q - text);
}

static dsocr_ocr_prompt *
prompt_alloc (gsize n_ids)
{
  dsocr_ocr_prompt *p = g_new0 (dsocr_ocr_prompt, 1);
  p->ids = g_new (int32_t, MAX (n_ids, 1));
  p->image_mask = g_new0 (uint8_t, MAX (n_ids, 1));
  p->n_ids = n_ids;
  return p;
}

dsocr_ocr_prompt *
dsocr_ocr_prompt_new (const dsocr_ocr *ocr, const char *text, int n_image_tokens,
                      GError **error)
{
  g_return_val_if_fail (ocr != NULL, NULL);
  if (!text)
    text = DSOCR_OCR_DEFAULT_PROMPT;
  const gsize len = strlen (text);
  if (!g_utf8_validate_len (text, len, NULL)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "prompt: not valid UTF-8");
    return NULL;
  }
  if (n_image_tokens < 1) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "prompt: %d image tokens, at least 1 is needed", n_image_tokens);
    return NULL;
  }
  gsize start, end;
  py_strip (text, len, &start, &end);
  const char *s = text + start, *stop = text + end;
  const char *marker = g_strstr_len (s, (gssize) (end - start), IMAGE_MARKER);
  const char *second = marker ? g_strstr_len (marker + strlen (IMAGE_MARKER),
                                              stop - (marker + strlen (IMAGE_MARKER)),
                                              IMAGE_MARKER)
                              : NULL;
  if (!marker || second) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "prompt: \"%s\" needs exactly one " IMAGE_MARKER " (one image is given)", text);
    return NULL;
  }

  GArray *before = g_array_new (FALSE, FALSE, sizeof (int32_t));
  GArray *after = g_array_new (FALSE, FALSE, sizeof (int32_t));
  const char *rest = marker + strlen (IMAGE_MARKER);
  dsocr_ocr_prompt *p = NULL;
  /* infer() encodes every piece with add_special_tokens=False; its BOS comes separately. */
  if (dsocr_tokenizer_encode (ocr->tokenizer, s, marker - s, DSOCR_TOKENIZE_NONE, before,
                              error) &&
      dsocr_tokenizer_encode (ocr->tokenizer, rest, stop - rest, DSOCR_TOKENIZE_NONE, after,
                              error)) {
    const int n_vocab = dsocr_model_get_n_vocab (ocr->model);
    const gsize n = 1 + before->len + (gsize) n_image_tokens + after->len;
    gsize k = 0;
    p = prompt_alloc (n);
    p->ids[k++] = ocr->bos_id;
    for (guint i = 0; i < before->len; i++)
      p->ids[k++] = g_array_index (before, int32_t, i);
    for (int i = 0; i < n_image_tokens; i++) {
      p->image_mask[k] = 1;
      p->ids[k++] = ocr->image_token_id;
    }
    for (guint i = 0; i < after->len; i++)
      p->ids[k++] = g_array_index (after, int32_t, i);
    p->n_image_tokens = n_image_tokens;
    for (gsize i = 0; i < n; i++) {
      if (p->ids[i] < 0 || p->ids[i] >= n_vocab) {
        g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                     "prompt: token id %d (position %" G_GSIZE_FORMAT ") is outside the "
                     "model's vocabulary of %d", p->ids[i], i, n_vocab);
        g_clear_pointer (&p, dsocr_ocr_prompt_free);
        break;
      }
    }
  }
  g_array_unref (before);
  g_array_unref (after);
  return p;
}

dsocr_ocr_prompt *
dsocr_ocr_prompt_new_from_ids (const dsocr_ocr *ocr, const int32_t *ids, gsize n_ids,
                               GError **error)
{
  g_return_val_if_fail (ocr != NULL, NULL);
  const int n_vocab = dsocr_model_get_n_vocab (ocr->model);
  if (n_ids == 0 || !ids || n_ids > G_MAXINT) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "prompt: %" G_GSIZE_FORMAT " ids",
                 n_ids);
    return NULL;
  }
  dsocr_ocr_prompt *p = prompt_alloc (n_ids);
  for (gsize i = 0; i < n_ids; i++) {
    if (ids[i] < 0 || ids[i] >= n_vocab) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "prompt: id %d (position %" G_GSIZE_FORMAT ") is outside the model's "
                   "vocabulary of %d", ids[i], i, n_vocab);
      dsocr_ocr_prompt_free (p);
      return NULL;
    }
    p->ids[i] = ids[i];
    p->image_mask[i] = ids[i] == ocr->image_token_id;
    p->n_image_tokens += p->image_mask[i];
  }
  return p;
}

void
dsocr_ocr_prompt_free (dsocr_ocr_prompt *prompt)
{
  if (!prompt)
    return;
  g_free (prompt->ids);
  g_free (prompt->image_mask);
  g_free (prompt);
}

const int32_t *
dsocr_ocr_prompt_get_ids (const dsocr_ocr_prompt *prompt, gsize *n_ids)
{
  if (n_ids)
    *n_ids = prompt->n_ids;
  return prompt->ids;
}

int
dsocr_ocr_prompt_get_n_image_tokens (const dsocr_ocr_prompt *prompt)
{
  return prompt->n_image_tokens;
}

gboolean
dsocr_ocr_prompt_fill_batch (const dsocr_ocr_prompt *prompt, const dsocr_ocr_embeddings *emb,
                             dsocr_batch *batch, GError **error)
{
  g_return_val_if_fail (prompt != NULL && emb != NULL && batch != NULL, FALSE);
  if (emb->tensor->shape[0] != prompt->n_image_tokens) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "prompt: %d image positions for %" G_GINT64_FORMAT " image embeddings",
                 prompt->n_image_tokens, emb->tensor->shape[0]);
    return FALSE;
  }
  memset (batch, 0, sizeof *batch);
  batch->n_seq = 1;
  batch->n_tokens = (int) prompt->n_ids;
  batch->ids = prompt->ids;
  /* The ids are looked up first and the image rows then written over their positions in
   * order: the reference's embed_tokens + masked_scatter_. */
  batch->embeds = emb->tensor->data;
  batch->embeds_mask = prompt->image_mask;
  return TRUE;
}

/* ---- generation ---- */

typedef struct {
  const dsocr_ocr *ocr;
  dsocr_decode_stream *stream;
  GString *piece;             /* the text handed to the user callback */
  GArray *tokens;             /* int32_t: every generated token */
  int max_new;
  int last_override;          /* last step where the guard overruled the argmax, or -1 */
  int n_eos;
  const int32_t *eos;
  dsocr_ocr_token_callback callback;
  gpointer user_data;
} run_state;

static gboolean
on_token (int row, int step, int32_t token, const float *logits, gpointer user_data)
{
  run_state *st = user_data;
  const int n_vocab = dsocr_model_get_n_vocab (st->ocr->model);
  gboolean last = step + 1 >= st->max_new;
  gsize len;

  g_array_append_val (st->tokens, token);
  /* Greedy decoding picks the argmax unless the guard banned it. */
  if (token != dsocr_logits_argmax (logits, n_vocab))
    st->last_override = step;
  if (!st->callback)
    return TRUE;
  for (int e = 0; e < st->n_eos; e++)
    last |= token == st->eos[e];
  const char *s = dsocr_decode_stream_push (st->stream, token, &len);
  g_string_truncate (st->piece, 0);
  g_string_append_len (st->piece, s, (gssize) len);
  if (last) {
    /* Bytes of a character the output never completed, as the full decode writes them. */
    s = dsocr_decode_stream_finish (st->stream, &len);
    g_string_append_len (st->piece, s, (gssize) len);
  }
  return st->callback (token, st->piece->str, st->piece->len, st->user_data);
}

static gboolean
check_params (const dsocr_ocr_params *p, GError **error)
{
  const char *bad = NULL;
  if (p->max_new_tokens < 0)
    bad = "max_new_tokens is negative";
  else if (p->ngram_guard < DSOCR_NGRAM_GUARD_HF || p->ngram_guard > DSOCR_NGRAM_GUARD_NONE)
    bad = "unknown n-gram guard";
  else if (p->ngram_size < 0 || p->ngram_window < 0)
    bad = "ngram_size and ngram_window must be >= 0";
  else if (p->n_ngram_whitelist < 0 || (p->n_ngram_whitelist > 0 && !p->ngram_whitelist))
    bad = "ngram_whitelist / n_ngram_whitelist are inconsistent";
  else if (p->n_threads < 0)
    bad = "n_threads is negative";
  else if (!dsocr_precision_to_string (p->precision))
    bad = "precision is not one of dsocr_precision";
  if (bad)
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "OCR parameters: %s", bad);
  return bad == NULL;
}

gboolean
dsocr_ocr_prepare (dsocr_ocr *ocr, dsocr_backend *backend, dsocr_precision precision,
                   gsize *decoder_bytes, gsize *vision_bytes, GError **error)
{
  g_return_val_if_fail (ocr != NULL && backend != NULL, FALSE);
  if (!dsocr_precision_to_string (precision)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID, "precision %d is not one of "
                 "dsocr_precision", (int) precision);
    return FALSE;
  }
  dsocr_vision_session *vs = dsocr_vision_session_new (ocr->vision, backend, error);
  if (!vs)
    return FALSE;
  if (vision_bytes)
    *vision_bytes = dsocr_vision_session_get_weight_bytes (vs);
  dsocr_vision_session_free (vs);
  /* a session of one column prepares the decoder's weights, which outlive it */
  dsocr_session *s = dsocr_session_new (ocr->model, &(dsocr_session_params) {
                                          .n_ctx = 1, .backend = backend,
                                          .precision = precision }, error);
  if (!s)
    return FALSE;
  if (decoder_bytes)
    *decoder_bytes = dsocr_session_get_weight_bytes (s);
  dsocr_session_free (s);
  return TRUE;
}

dsocr_result *
dsocr_ocr_generate (const dsocr_ocr *ocr, const dsocr_ocr_embeddings *emb,
                    const dsocr_ocr_prompt *prompt, const dsocr_ocr_params *params,
                    dsocr_ocr_token_callback callback, gpointer user_data, GError **error)
{
  g_return_val_if_fail (ocr != NULL && emb != NULL, NULL);
  const dsocr_config *cfg = dsocr_model_get_config (ocr->model);
  dsocr_ocr_params defaults;
  dsocr_ocr_prompt *own_prompt = NULL;
  dsocr_session *session = NULL;
  dsocr_generate_result *gen = NULL;
  dsocr_result *result = NULL;
  dsocr_batch batch;
  run_state st = { 0 };

  if (!params) {
    dsocr_ocr_params_init (&defaults);
    params = &defaults;
  }
  if (!check_params (params, error))
    return NULL;
  if (!prompt) {
    own_prompt = dsocr_ocr_prompt_new (ocr, params->prompt, dsocr_ocr_embeddings_get_n_tokens (emb),
                                       error);
    if (!own_prompt)
      return NULL;
    prompt = own_prompt;
  }
  if (!dsocr_ocr_prompt_fill_batch (prompt, emb, &batch, error))
    goto out;
  if (emb->tensor->shape[1] != dsocr_model_get_n_embd (ocr->model)) {
    g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                 "image embeddings: width %" G_GINT64_FORMAT ", the decoder's hidden_size is %d",
                 emb->tensor->shape[1], dsocr_model_get_n_embd (ocr->model));
    goto out;
  }

  {
    dsocr_session_params sp;
    dsocr_session_params_init (&sp);
    /* The reference's rotary code does not enforce max_position_embeddings: the cache is
     * sized for this prompt and its output instead. */
    gint64 n_ctx = (gint64) prompt->n_ids + MAX (params->max_new_tokens, 1);
    if (n_ctx > G_MAXINT / 4) {
      g_set_error (error, DSOCR_ERROR, DSOCR_ERROR_INVALID,
                   "OCR parameters: %" G_GSIZE_FORMAT " prompt ids + %d new tokens is too long",
                   prompt->n_ids, params->max_new_tokens);
      goto out;
    }
    sp.n_ctx = (int) n_ctx;
    sp.n_threads = params->n_threads;
    sp.backend = params->backend;
    sp.precision = params->precision;
    session = dsocr_session_new (ocr->model, &sp, error);
    if (!session)
      goto out;
  }

  {
    dsocr_generate_params gp;
    dsocr_generate_params_init (&gp);
    gp.max_new_tokens = params->max_new_tokens;
    if (params->ngram_guard == DSOCR_NGRAM_GUARD_HF) {
      gp.no_repeat_ngram_size = params->ngram_size ? params->ngram_size : DSOCR_OCR_NGRAM_HF;
    } else if (params->ngram_guard == DSOCR_NGRAM_GUARD_WINDOW) {
      gp.ngram_size = params->ngram_size ? params->ngram_size : DSOCR_OCR_NGRAM_WINDOW;
      gp.ngram_window = params->ngram_window ? params->ngram_window
                                             : DSOCR_OCR_NGRAM_WINDOW_SIZE;
      gp.ngram_whitelist = params->ngram_whitelist ? params->ngram_whitelist : ocr->td_ids;
      gp.n_ngram_whitelist = params->ngram_whitelist ? params->n_ngram_whitelist
                                                     : ocr->n_td_ids;
    }
    st.ocr = ocr;
    st.stream = dsocr_decode_stream_new (ocr->tokenizer, FALSE);
    st.piece = g_string_new (NULL);
    st.tokens = g_array_new (FALSE, FALSE, sizeof (int32_t));
    st.max_new = params->max_new_tokens;
    st.last_override = -1;
    st.eos = cfg->text.eos_token_ids;
    st.n_eos = cfg->text.n_eos_token_ids;
    st.callback = callback;
    st.user_data = user_data;
    gp.callback = on_token;
    gp.user_data = &st;
    if (!dsocr_generate (session, &batch, &gp, &gen, error))
      goto out;

    gsize len;
    char *text = dsocr_tokenizer_decode (ocr->tokenizer, (const int32_t *) st.tokens->data,
                                         st.tokens->len, FALSE, &len);
    result = dsocr_result_new_from_text_len (text, (gssize) len, emb->image_width,
                                             emb->image_height, &params->result, error);
    g_free (text);
    if (result && gen->finish[0] == DSOCR_FINISH_LENGTH) {
      const int n_guard = gp.no_repeat_ngram_size ? gp.no_repeat_ngram_size : gp.ngram_size;
      dsocr_result_set_flag (result, DSOCR_RESULT_HIT_TOKEN_LIMIT, TRUE);
      if (st.last_override >= 0 && gen->n_steps - 1 - st.last_override < n_guard)
        dsocr_result_set_flag (result, DSOCR_RESULT_REPETITION_STOPPED, TRUE);
    }
  }

out:
  dsocr_generate_result_free (gen);
  dsocr_session_free (session);
  dsocr_decode_stream_free (st.stream);
  if (st.piece)
    g_string_free (st.piece, TRUE);
  if (st.tokens)
    g_array_unref (st.tokens);
  dsocr_ocr_prompt_free (own_prompt);
  return result;
}

dsocr_result *
dsocr_ocr_run (dsocr_ocr *ocr, const dsocr_image_view *image, const dsocr_ocr_params *params,
               dsocr_ocr_token_callback callback, gpointer user_data, GError **error)
{
  g_return_val_if_fail (ocr != NULL && image != NULL, NULL);
  dsocr_ocr_params p;
  dsocr_preprocessed *pp = NULL;
  dsocr_ocr_prompt *prompt = NULL;
  dsocr_ocr_embeddings *emb = NULL;
  dsocr_result *result = NULL;
  dsocr_backend *own = NULL;

  if (params)
    p = *params;
  else
    dsocr_ocr_params_init (&p);
  if (!check_params (&p, error))
    return NULL;
  pp = dsocr_ocr_preprocess (image, &p, error);
  /* The prompt before the vision tower: a bad prompt fails before the expensive part. */
  if (pp)
    prompt = dsocr_ocr_prompt_new (ocr, p.prompt, pp->n_image_tokens, error);
  /* one backend for both halves of the run */
  if (prompt && !p.backend)
    p.backend = own = dsocr_backend_new ("cpu", p.n_threads, error);
  if (prompt && p.backend)
    emb = dsocr_ocr_encode (ocr, pp, p.backend, error);
  if (emb)
    result = dsocr_ocr_generate (ocr, emb, prompt, &p, callback, user_data, error);
  dsocr_ocr_embeddings_unref (emb);
  dsocr_ocr_prompt_free (prompt);
  dsocr_preprocessed_free (pp);
  dsocr_backend_unref (own);
  return result;
}
