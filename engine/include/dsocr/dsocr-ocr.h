/* dsocr-ocr.h: DeepSeek-OCR end to end: an image in, a page of markdown out.
 *
 *   GError *error = NULL;
 *   dsocr_ocr *ocr = dsocr_ocr_load ("/models/DeepSeek-OCR", &error);
 *   dsocr_image *img = ocr ? dsocr_image_load ("page.png", NULL, &error) : NULL;
 *   if (!img) {
 *     g_printerr ("%s\n", error->message);
 *     ...
 *   }
 *   dsocr_ocr_params p;
 *   dsocr_ocr_params_init (&p);                   // gundam, the grounding prompt, 8192 tokens
 *   dsocr_image_view v = dsocr_image_get_view (img);
 *   dsocr_result *r = dsocr_ocr_run (ocr, &v, &p, NULL, NULL, &error);
 *   if (r)
 *     fputs (dsocr_result_get_markdown (r), stdout);
 *   dsocr_result_free (r);
 *   dsocr_image_free (img);
 *   dsocr_ocr_unref (ocr);
 *
 * dsocr_ocr_run() is what the reference's infer() does (HUB modeling_deepseekocr.py):
 *   1. preprocess the image for the mode (dsocr-preprocess.h);
 *   2. build the prompt: the text .strip()ed (the "plain" conversation template), split at its
 *      one "<image>", ids = BOS + enc(before) + [image_token_id] * n_image_tokens + enc(after),
 *      the pieces encoded without special tokens;
 *   3. encode the views (SAM, CLIP, projector) and pack them (dsocr-vision.h): local tiles,
 *      then the global view, image_newline after every row, view_seperator last;
 *   4. prefill with embed_tokens(ids) whose image positions are overwritten, in order, by the
 *      packed embeddings (masked scatter), positions 0 .. L-1;
 *   5. greedy decoding until EOS or max_new_tokens, with an n-gram guard (below);
 *   6. decode the generated ids with special tokens kept and post-process them into a
 *      dsocr_result (dsocr-result.h): markdown, grounded regions, crops, JSON.
 * The same steps are available separately, so that encoding and decoding can run on different
 * threads (or GStreamer elements): dsocr_ocr_preprocess() -> dsocr_ocr_encode() ->
 * dsocr_ocr_generate().
 *
 * The n-gram guard: DSOCR_NGRAM_GUARD_HF (the default) is infer()'s no_repeat_ngram_size 20
 * over prompt + output; DSOCR_NGRAM_GUARD_WINDOW is the official vLLM scripts' guard: n 30
 * over the last 90 generated tokens, `<td>` and `</td>` exempt.
 *
 * The image token: config.json's image_token_id, else DeepSeek-OCR's 128815 when the
 * vocabulary holds it, else the tokenizer's "<image>" id (tiny test models).
 *
 * Ownership and threads: a dsocr_ocr is immutable once loaded and shared by reference (_ref /
 * _unref); any number of threads may run it at once, each call uses its own decoder session.
 * Embeddings are immutable and refcounted too; prompts are plain data owned by the caller.
 * Errors are the DSOCR_ERROR codes of the parts (file, config, shape, tokenizer, preprocess)
 * plus DSOCR_ERROR_INVALID for bad parameters or a prompt without exactly one "<image>".
 */
#ifndef DSOCR_OCR_H
#define DSOCR_OCR_H

#include <glib.h>
#include <stdint.h>

#include <dsocr/dsocr-image.h>
#include <dsocr/dsocr-model.h>
#include <dsocr/dsocr-preprocess.h>
#include <dsocr/dsocr-result.h>
#include <dsocr/dsocr-session.h>
#include <dsocr/dsocr-tensor.h>
#include <dsocr/dsocr-tokenizer.h>
#include <dsocr/dsocr-vision.h>

G_BEGIN_DECLS

typedef struct dsocr_ocr dsocr_ocr;
typedef struct dsocr_ocr_embeddings dsocr_ocr_embeddings;
typedef struct dsocr_ocr_prompt dsocr_ocr_prompt;

/* The prompt of the reference's document mode. */
#define DSOCR_OCR_DEFAULT_PROMPT "<image>\n<|grounding|>Convert the document to markdown."
/* infer()'s max_new_tokens. */
#define DSOCR_OCR_MAX_NEW_TOKENS 8192
/* Default n-gram sizes and window of the two guards. */
#define DSOCR_OCR_NGRAM_HF 20
#define DSOCR_OCR_NGRAM_WINDOW 30
#define DSOCR_OCR_NGRAM_WINDOW_SIZE 90

typedef enum {
  DSOCR_NGRAM_GUARD_HF = 0,  /* ban any token that repeats an n-gram of prompt + output */
  DSOCR_NGRAM_GUARD_WINDOW,  /* ban repeating an n-gram started in the last window output
                              * tokens, whitelisted ids exempt */
  DSOCR_NGRAM_GUARD_NONE,
} dsocr_ngram_guard;

typedef struct {
  /* Preprocessing. */
  dsocr_mode mode;             /* DSOCR_MODE_GUNDAM */
  int max_tiles;               /* DSOCR_MAX_TILES_HF (9); vLLM uses 6 */
  dsocr_pillow_version pillow; /* DSOCR_PILLOW_13 */

  /* Prompt: UTF-8 text with exactly one "<image>"; NULL means DSOCR_OCR_DEFAULT_PROMPT. */
  const char *prompt;

  /* Generation (always greedy, as the reference). */
  int max_new_tokens;          /* DSOCR_OCR_MAX_NEW_TOKENS; 0 generates nothing */
  dsocr_ngram_guard ngram_guard; /* DSOCR_NGRAM_GUARD_HF */
  int ngram_size;              /* 0: DSOCR_OCR_NGRAM_HF or DSOCR_OCR_NGRAM_WINDOW */
  int ngram_window;            /* WINDOW only; 0: DSOCR_OCR_NGRAM_WINDOW_SIZE */
  const int32_t *ngram_whitelist; /* WINDOW only; NULL: the tokenizer's <td> and </td> ids */
  int n_ngram_whitelist;
  int n_threads;               /* threads of a CPU backend made for the call (when @backend
                                * is NULL); 0: all processors */
  dsocr_backend *backend;      /* (transfer none) where to compute, e.g. an element's backend
                                * kept between pages; NULL: one made for the call */
  dsocr_precision precision;   /* the decoder's (dsocr-backend.h); DEFAULT: the documented
                                * default */

  /* Post-processing (page numbering, the PDF script's newline collapsing). */
  dsocr_result_options result;
} dsocr_ocr_params;

/* Called for every generated token, EOS included. @text: (transfer none) the UTF-8 text this
 * token completes, special tokens kept (possibly "", may hold NUL bytes), valid during the
 * call; the pieces of one run add up to the decoded output. Return FALSE to stop generating:
 * the result then holds what was generated so far. */
typedef gboolean (*dsocr_ocr_token_callback) (int32_t token, const char *text, gsize len,
                                              gpointer user_data);

/* Fills @params with the defaults given above. */
void dsocr_ocr_params_init (dsocr_ocr_params *params);

/* ---- the model ---- */

/* Loads the DeepSeek-OCR model in @dir: config.json, model.safetensors (or a shard index),
 * tokenizer.json (+ tokenizer_config.json). The checkpoint is mapped once and shared by the
 * decoder and the vision tower. Fails with the loaders' errors, naming the file and field or
 * tensor, or DSOCR_ERROR_UNSUPPORTED for a config that is not DeepSeek-OCR.
 * Returns (transfer full) a model with one reference. */
dsocr_ocr *dsocr_ocr_load (const char *dir, GError **error);

/* Prepares @ocr's weights for @backend's device at @precision now (otherwise the first run
 * does: Q8 / Q4 quantize the decoder's matrices then, a few seconds for the full model), and
 * gives the bytes they take: @decoder_bytes at that precision, @vision_bytes (both nullable).
 * The prepared weights stay with @ocr and serve every later run on that device and precision.
 * FALSE with @error when the device cannot hold them. */
gboolean dsocr_ocr_prepare (dsocr_ocr *ocr, dsocr_backend *backend, dsocr_precision precision,
                            gsize *decoder_bytes, gsize *vision_bytes, GError **error);

/* The model to use when none is named: $DSOCR_MODEL when set and not empty; else the bundled
 * dsocr-reader (models/dsocr-reader in the source tree: a small DeepSeek-OCR for short printed
 * pages in tiny mode, see models/README.md) where `meson install` put it; else, in a build that
 * was not installed, its place in the source tree the library was built from.
 * Returns (transfer none) a path, never NULL; whether it holds a model shows when it is
 * loaded. */
const char *dsocr_ocr_default_model_dir (void);

/* Builds one from parts already loaded (e.g. a cache that holds the decoder and the vision
 * tower of one checkpoint). @model, @vision: (transfer none) a reference is taken on each.
 * @tokenizer: (transfer full) owned from now on, also when this call fails.
 * Fails with DSOCR_ERROR_INVALID when the parts do not fit together (no lm_head, vision
 * width != hidden size, no image token id). Returns (transfer full). */
dsocr_ocr *dsocr_ocr_new (dsocr_model *model, dsocr_vision *vision, dsocr_tokenizer *tokenizer,
                          GError **error);

/* Returns @ocr with one more reference (transfer full). Thread-safe. */
dsocr_ocr *dsocr_ocr_ref (dsocr_ocr *ocr);
/* Drops a reference; the last one frees the model. NULL is a no-op. Thread-safe. */
void dsocr_ocr_unref (dsocr_ocr *ocr);

/* The parts (transfer none), valid while @ocr lives. */
dsocr_model *dsocr_ocr_get_model (const dsocr_ocr *ocr);
dsocr_vision *dsocr_ocr_get_vision (const dsocr_ocr *ocr);
const dsocr_tokenizer *dsocr_ocr_get_tokenizer (const dsocr_ocr *ocr);
/* The id that fills the image positions of a prompt (see above). */
int32_t dsocr_ocr_get_image_token_id (const dsocr_ocr *ocr);

/* ---- the whole page ---- */

/* Runs the six steps above on @image (borrowed RGB8, read during the call only). @params may
 * be NULL (defaults); @callback (nullable) sees every token as it is generated.
 * Returns (transfer full) the result, with DSOCR_RESULT_HIT_TOKEN_LIMIT when generation
 * stopped at max_new_tokens and DSOCR_RESULT_REPETITION_STOPPED when, in addition, the n-gram
 * guard had to overrule the model's own choice within the last ngram_size tokens (the model
 * was still trying to repeat itself when it was cut); NULL with @error set. */
dsocr_result *dsocr_ocr_run (dsocr_ocr *ocr, const dsocr_image_view *image,
                             const dsocr_ocr_params *params, dsocr_ocr_token_callback callback,
                             gpointer user_data, GError **error);

/* ---- the steps ---- */

/* Step 1: dsocr_preprocess() with @params' mode, max_tiles and pillow (NULL: defaults) and
 * F32 pixels. Returns (transfer full). */
dsocr_preprocessed *dsocr_ocr_preprocess (const dsocr_image_view *image,
                                          const dsocr_ocr_params *params, GError **error);

/* Step 3: encodes and packs the views of @pp (transfer none) on @backend (NULL: a CPU
 * backend made for the call). A stream of images is faster through its own
 * dsocr_vision_session (dsocr-vision.h), whose scratch memory stays sized between calls.
 * Returns (transfer full) immutable embeddings with one reference, or NULL with @error set. */
dsocr_ocr_embeddings *dsocr_ocr_encode (const dsocr_ocr *ocr, const dsocr_preprocessed *pp,
                                        dsocr_backend *backend, GError **error);

/* Wraps embeddings computed elsewhere: @tensor (transfer full, owned also on failure) is an
 * F32 CPU tensor [n_tokens, n_embed]; @image_width x @image_height is the original image
 * (boxes refer to it). Fails with DSOCR_ERROR_INVALID for another dtype or shape or a size
 * outside 1..DSOCR_IMAGE_MAX_SIDE. Returns (transfer full). */
dsocr_ocr_embeddings *dsocr_ocr_embeddings_new (dsocr_tensor *tensor, int image_width,
                                                int image_height, GError **error);
dsocr_ocr_embeddings *dsocr_ocr_embeddings_ref (dsocr_ocr_embeddings *emb);
void dsocr_ocr_embeddings_unref (dsocr_ocr_embeddings *emb);
/* The packed rows, F32 [n_tokens, n_embed] (transfer none). */
const dsocr_tensor *dsocr_ocr_embeddings_get_tensor (const dsocr_ocr_embeddings *emb);
int dsocr_ocr_embeddings_get_n_tokens (const dsocr_ocr_embeddings *emb);
void dsocr_ocr_embeddings_get_image_size (const dsocr_ocr_embeddings *emb, int *width,
                                          int *height);

/* Step 2: the prompt ids for @text (NULL: DSOCR_OCR_DEFAULT_PROMPT) with @n_image_tokens
 * image positions. Fails with DSOCR_ERROR_INVALID when @text, once stripped, does not hold
 * exactly one "<image>" or is not UTF-8. Returns (transfer full). */
dsocr_ocr_prompt *dsocr_ocr_prompt_new (const dsocr_ocr *ocr, const char *text,
                                        int n_image_tokens, GError **error);
/* A prompt given as ids (e.g. for a model without tokenizer.json); its image positions are the
 * ids equal to dsocr_ocr_get_image_token_id(). Fails with DSOCR_ERROR_INVALID for an empty
 * list or an id outside the vocabulary. Returns (transfer full). */
dsocr_ocr_prompt *dsocr_ocr_prompt_new_from_ids (const dsocr_ocr *ocr, const int32_t *ids,
                                                 gsize n_ids, GError **error);
void dsocr_ocr_prompt_free (dsocr_ocr_prompt *prompt);
/* The ids, [*n_ids] (transfer none). */
const int32_t *dsocr_ocr_prompt_get_ids (const dsocr_ocr_prompt *prompt, gsize *n_ids);
int dsocr_ocr_prompt_get_n_image_tokens (const dsocr_ocr_prompt *prompt);

/* Step 4's input: fills @batch (one row) with @prompt's ids, @emb's rows and the mask of the
 * image positions, all borrowed from @prompt and @emb. Fails with DSOCR_ERROR_INVALID when the
 * counts or widths do not match. */
gboolean dsocr_ocr_prompt_fill_batch (const dsocr_ocr_prompt *prompt,
                                      const dsocr_ocr_embeddings *emb, dsocr_batch *batch,
                                      GError **error);

/* Steps 4-6 on a new session of @ocr's decoder, on @params->backend. @prompt (nullable): the prompt, else one built
 * from @params->prompt for @emb. @params (nullable): defaults. Returns (transfer full) as
 * dsocr_ocr_run(). */
dsocr_result *dsocr_ocr_generate (const dsocr_ocr *ocr, const dsocr_ocr_embeddings *emb,
                                  const dsocr_ocr_prompt *prompt, const dsocr_ocr_params *params,
                                  dsocr_ocr_token_callback callback, gpointer user_data,
                                  GError **error);

G_END_DECLS

#endif /* DSOCR_OCR_H */
