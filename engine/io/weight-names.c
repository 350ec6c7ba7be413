/* weight-names.c: canonical -> transformers-native tensor names (weight-names.h).
 *
 * The rules follow the transformers conversion script for DeepseekOcr
 * (convert_deepseek_ocr_weights_to_hf.py, STATE_DICT_MAPPING and split_qkv_weights). Each rule
 * renames a prefix; '#' stands for a layer number (one or more digits), copied as written.
 * The first matching rule wins, so specific prefixes come before general ones.
 */
#include "weight-names.h"

#include <string.h>

typedef struct {
  const char *from;
  const char *to;
  gboolean split_qkv; /* a CLIP layer: self_attn.qkv_proj is stored as q/k/v_proj */
} name_rule;

static const name_rule rules[] = {
  /* SAM: blocks -> layers, normN -> layer_normN, the neck's Sequential indices -> names;
   * pos_embed, net_2 and net_3 keep their names. */
  { "model.sam_model.patch_embed.proj.", "model.sam_model.patch_embed.projection.", FALSE },
  { "model.sam_model.blocks.#.norm1.", "model.sam_model.layers.#.layer_norm1.", FALSE },
  { "model.sam_model.blocks.#.norm2.", "model.sam_model.layers.#.layer_norm2.", FALSE },
  { "model.sam_model.blocks.#.", "model.sam_model.layers.#.", FALSE },
  { "model.sam_model.neck.0.", "model.sam_model.neck.conv1.", FALSE },
  { "model.sam_model.neck.1.", "model.sam_model.neck.layer_norm1.", FALSE },
  { "model.sam_model.neck.2.", "model.sam_model.neck.conv2.", FALSE },
  { "model.sam_model.neck.3.", "model.sam_model.neck.layer_norm2.", FALSE },
  /* CLIP: under clip_model, transformer -> encoder. */
  { "model.vision_model.transformer.layers.#.",
    "model.clip_model.vision_model.encoder.layers.#.", TRUE },
  { "model.vision_model.", "model.clip_model.vision_model.", FALSE },
  /* Projector (an older conversion kept model.projector, which is the canonical name). */
  { "model.projector.", "model.multi_modal_projector.", FALSE },
  /* Language model under language_model; lm_head, image_newline, view_seperator unchanged. */
  { "model.embed_tokens.", "model.language_model.embed_tokens.", FALSE },
  { "model.layers.", "model.language_model.layers.", FALSE },
  { "model.norm.", "model.language_model.norm.", FALSE },
};

/* If @name starts with @pattern (where '#' matches one or more digits), returns the length of
 * the matched prefix and stores the digits' position and length; else 0. */
static gsize
match_prefix (const char *name, const char *pattern, const char **digits, gsize *n_digits)
{
  const char *n = name;

  *digits = NULL;
  *n_digits = 0;
  for (const char *p = pattern; *p; p++) {
    if (*p == '#') {
      const char *start = n;
      while (g_ascii_isdigit (*n))
        n++;
      if (n == start)
        return 0;
      *digits = start;
      *n_digits = (gsize) (n - start);
    } else if (*n++ != *p) {
      return 0;
    }
  }
  return (gsize) (n - name);
}

/* @to with its '#' replaced by the digits, followed by @tail. (transfer full) */
static char *
build_name (const char *to, const char *digits, gsize n_digits, const char *tail)
{
  GString *s = g_string_new (NULL);

  for (const char *p = to; *p; p++) {
    if (*p == '#')
      g_string_append_len (s, digits, (gssize) n_digits);
    else
      g_string_append_c (s, *p);
  }
  g_string_append (s, tail);
  return g_string_free (s, FALSE);
}

gboolean
dsocr_weight_name_native (const char *canonical, dsocr_weight_alias *alias)
{
  static const char *const qkv_tails[] = { "self_attn.qkv_proj.weight",
                                           "self_attn.qkv_proj.bias" };

  memset (alias, 0, sizeof *alias);
  for (gsize r = 0; r < G_N_ELEMENTS (rules); r++) {
    const char *digits, *tail;
    gsize n_digits, len = match_prefix (canonical, rules[r].from, &digits, &n_digits);

    if (len == 0)
      continue;
    tail = canonical + len;
    if (rules[r].split_qkv) {
      for (gsize k = 0; k < G_N_ELEMENTS (qkv_tails); k++) {
        static const char *const pieces[3] = { "self_attn.q_proj", "self_attn.k_proj",
                                               "self_attn.v_proj" };
        /* ".weight" or ".bias" after "self_attn.qkv_proj" */
        const char *suffix = qkv_tails[k] + strlen ("self_attn.qkv_proj");

        if (strcmp (tail, qkv_tails[k]) != 0)
          continue;
        for (int i = 0; i < 3; i++) {
          g_autofree char *piece = g_strconcat (pieces[i], suffix, NULL);
          alias->parts[i] = build_name (rules[r].to, digits, n_digits, piece);
        }
        alias->n_parts = 3;
        return TRUE;
      }
    }
    alias->parts[0] = build_name (rules[r].to, digits, n_digits, tail);
    alias->n_parts = 1;
    return TRUE;
  }
  return FALSE;
}

void
dsocr_weight_alias_clear (dsocr_weight_alias *alias)
{
  for (int i = 0; i < 3; i++)
    g_free (alias->parts[i]);
  memset (alias, 0, sizeof *alias);
}
