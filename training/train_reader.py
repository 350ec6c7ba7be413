#!/usr/bin/env python3
"""Train dsocr-reader: a small DeepSeek-OCR that reads the pages of training/synthpages.py.

    DSOCR_OCR_REPO=<DeepSeek-OCR checkout>/DeepSeek-OCR-master/DeepSeek-OCR-vllm \\
        python3 training/train_reader.py --vision-steps 2000 --steps 9000 --minutes 240 \\
            --out models/dsocr-reader

The model is DeepSeek-OCR at small widths, built from the reference's own classes so that its
checkpoint is the real one's layout and every engine code path runs it unchanged:
  vision   the official deepencoder modules (SAM ImageEncoderViT, CLIP VitModel, MlpProjector),
           imported from DSOCR_OCR_REPO as tests/reference/make_vision_fixtures.py imports them,
           with SAM's neck convolutions at the small widths;
  decoder  transformers' DeepseekOcr2TextModel + lm_head (DeepSeek-V2 MoE: MHA, one dense layer,
           then routed + shared experts, greedy softmax routing), as make_decoder_fixtures.py
           builds it;
  tokens   a byte-level BPE trained here with HF `tokenizers` on the pages' targets, with the
           DeepSeek-V3 normaliser / pre-tokeniser / decoder and the real special tokens.
It is trained in tiny mode (the page resized to 512 x 512: 8 x 8 vision tokens + newlines +
separator = 73) on the two prompts of synthpages.py, with cross-entropy on the answer tokens,
AdamW and a cosine schedule, under bf16 autocast. A curriculum grows the pages from one line to
a title and three lines over --curriculum steps. Three training-only signals, none of them
exported, are what let a CPU budget get anywhere:
  - Reader.aux: a linear head on each vision token names the characters of its 64 x 64 cell in
    reading order; without it the tower collapses to one output for every page before the
    decoder learns to read;
  - Reader.aux_patch: the same, unordered, per 16 x 16 SAM patch: glyph shapes come sooner;
  - guidance: five decoder heads are told which image positions hold the characters of the
    current token, of the next one, and of the next one's first and last character (guided
    attention, as TTS models are taught alignment).
--vision-steps first trains the tower alone on the auxiliary losses, at half the cost a page.
Train pages are seeds 10**6 and up; the held-out pages (training/eval_reader.py) are seeds
below 10**4, the progress readings' pages seeds from 5 * 10**5.

Written to --out: config.json (the DeepSeek-OCR layout), model.safetensors (BF16, hub names),
tokenizer.json, tokenizer_config.json, training.json (the run's settings and loss curve).
"""

import argparse
import json
import math
import os
import pathlib
import random
import sys
import time

import numpy as np
import safetensors
import safetensors.torch
import tokenizers
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "reference"))

import synthpages  # noqa: E402
import eval_reader  # noqa: E402
# transformers first: the reference import below installs stand-ins (flash_attn) that
# transformers' own availability probes must not see.
import make_decoder_fixtures as dec  # noqa: E402
import make_vision_fixtures as vis  # noqa: E402
from dsv2_hub_layout import from_hub, to_hub  # noqa: E402

BOS, EOS, PAD = 0, 1, 2
N_IMAGE_TOKENS = 73            # tiny mode: 8 rows of (8 + newline), then the view separator
TRAIN_SEED0 = 10 ** 6
GROUNDING_SHARE = 0.3          # pages trained on the grounding prompt, the rest on Free OCR
AUX_WEIGHT = 0.5               # the auxiliary losses (Reader.aux, Reader.aux_patch)
AUX_SLOTS = 6                  # characters of a vision token's cell that Reader.aux names
GUIDE_WEIGHT = 0.5             # the attention guidance (Reader.forward)
# Decoder heads guided towards the cells of a token's characters (layer, head): on a query's
# own token (where am I) and on the token it predicts (what comes next).
GUIDE_CURRENT = ((1, 0),)
GUIDE_NEXT = ((2, 0), (3, 0))
# ... and towards the cell of the next token's first character and of its last: a head that
# averages all of a token's cells cannot tell "37" from "73".
GUIDE_NEXT_FIRST = ((3, 1),)
GUIDE_NEXT_LAST = ((2, 1),)
GUIDED = GUIDE_CURRENT + GUIDE_NEXT + GUIDE_NEXT_FIRST + GUIDE_NEXT_LAST
SPECIAL = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"]
OCR_TOKENS = ["<image>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>",
              "<td>", "</td>", "<tr>", "</tr>", "<|User|>", "<|Assistant|>"]

# Widths. SAM and CLIP keep the reference's structure (patch 16, windowed + global attention,
# the neck, two stride-2 convolutions, CLIP on SAM's features); only the sizes are small.
SAM = dict(depth=3, embed_dim=96, num_heads=2, global_attn_indexes=(), window_size=8,
           out_chans=64, downsample=(128, 192))
CLIP = dict(num_layers=2, hidden_size=192, num_attention_heads=3, ffn_hidden_size=768)
N_EMBED = 256
DECODER = dict(
    vocab_size=None,             # the tokenizer's size, set at build time
    hidden_size=N_EMBED,
    intermediate_size=1024,
    moe_intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_shared_experts=1,
    first_k_dense_replace=1,
    mlp_layer_types=["dense", "sparse", "sparse", "sparse"],
    topk_method="greedy",
    n_group=1,
    topk_group=1,
    routed_scaling_factor=1.0,
    norm_topk_prob=False,
    rms_norm_eps=1e-6,
    hidden_act="silu",
    max_position_embeddings=512,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    bos_token_id=BOS,
    eos_token_id=EOS,
    pad_token_id=PAD,
    tie_word_embeddings=False,
    attention_bias=False,
)


# ---- tokenizer -----------------------------------------------------------------------------

def added_token(content, tid, special=True, normalized=False):
    return {"id": tid, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": normalized, "special": special}


def train_tokenizer(v3_path, n_pages, vocab_size):
    """Byte-level BPE on the targets of n_pages pages (their seeds are train seeds) -> json text."""
    v3 = json.loads(pathlib.Path(v3_path).read_text())
    base = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": v3["normalizer"], "pre_tokenizer": v3["pre_tokenizer"],
            "post_processor": v3["post_processor"], "decoder": v3["decoder"],
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {}, "merges": []}}
    tok = tokenizers.Tokenizer.from_str(json.dumps(base))
    corpus = []
    for i in range(n_pages):
        _, t = synthpages.make_page(TRAIN_SEED0 + 10 ** 7 + i)
        corpus += [t["free"], t["grounding"]]
    corpus += [" ".join(synthpages.WORDS)] * 4
    corpus += [synthpages.PROMPT_FREE, synthpages.PROMPT_GROUNDING] * 50
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    d = json.loads(tok.to_str())
    n = len(d["model"]["vocab"])
    added = [added_token(s, i) for i, s in enumerate(SPECIAL)]
    extra = [added_token("<|EOT|>", 0, normalized=True),
             added_token("<｜User｜>", 0, special=False, normalized=True),
             added_token("<｜Assistant｜>", 0, special=False, normalized=True)]
    extra += [added_token(t, 0) for t in OCR_TOKENS]
    for k, t in enumerate(extra):
        t["id"] = n + k
    d["added_tokens"] = added + extra
    d["post_processor"] = v3["post_processor"]
    return json.dumps(d, ensure_ascii=False, indent=1) + "\n"


TOKENIZER_CONFIG = {
    "add_bos_token": True, "add_eos_token": False,
    "bos_token": {"__type": "AddedToken", "content": SPECIAL[0], "lstrip": False,
                  "normalized": True, "rstrip": False, "single_word": False},
    "eos_token": {"__type": "AddedToken", "content": SPECIAL[1], "lstrip": False,
                  "normalized": True, "rstrip": False, "single_word": False},
    "legacy": True, "tokenizer_class": "LlamaTokenizerFast", "pad_token": SPECIAL[2],
    "model_max_length": 512,
}


# ---- model ---------------------------------------------------------------------------------

def build_vision(ref):
    sam, clip, proj = vis.towers(ref, SAM, CLIP, N_EMBED)
    # The constructors leave the position tables at zero; small random values let training
    # tell positions apart from the first step.
    with torch.no_grad():
        sam.pos_embed.normal_(0, 0.02)
    return sam, clip, proj


def build_decoder(vocab_size):
    from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig
    config = DeepseekOcr2TextConfig(**dict(DECODER, vocab_size=vocab_size))
    config._attn_implementation = "sdpa"
    return dec.OcrDecoderForCausalLM._from_config(config, attn_implementation="sdpa",
                                                  dtype=torch.float32)


class Reader(nn.Module):
    def __init__(self, ref, vocab_size):
        super().__init__()
        self.sam, self.clip, self.proj = build_vision(ref)
        self.image_newline = nn.Parameter(torch.randn(N_EMBED) / N_EMBED ** 0.5)
        self.view_seperator = nn.Parameter(torch.randn(N_EMBED) / N_EMBED ** 0.5)
        self.lm = build_decoder(vocab_size)
        self.lm.config._attn_implementation = "eager"          # the guidance reads attentions
        self._attn = {}
        for layer in sorted({layer for layer, _ in GUIDED}):
            self.lm.model.layers[layer].self_attn.register_forward_hook(self._keep_attention)
        # Training only, never exported: the characters each vision token covers, in reading
        # order (one slot each, then "none"). Without it the decoder first learns the text's
        # statistics, the tower's gradients fade, and the tower settles on one output for
        # every page, a state training does not leave; with the order named, a token's vector
        # spells its cell out and the decoder only has to learn to walk the cells.
        self.aux = nn.Linear(N_EMBED, AUX_SLOTS * (len(synthpages.CELL_CHARS) + 1))
        # The same per 16 x 16 patch on SAM's last block: glyph shapes are learnt far sooner
        # from a label per patch than from the text alone.
        self.aux_patch = nn.Linear(SAM["embed_dim"], len(synthpages.CELL_CHARS))
        self._sam_blocks = None
        self.sam.blocks[-1].register_forward_hook(self._keep_blocks)

    def _keep_attention(self, module, args, out):
        self._attn[module.layer_idx] = out[1]                   # [B, H, L, L] probabilities

    def _keep_blocks(self, module, args, out):
        self._sam_blocks = out                                  # [B, 32, 32, D]

    def features(self, px):
        """px [B, 3, 512, 512] -> the projector output [B, 64, E] (8 x 8 tokens, row-major)."""
        s = self.sam(px)                                        # [B, C, 8, 8]
        c = self.clip(px, s)                                    # [B, 65, C]
        return self.proj(torch.cat((c[:, 1:], s.flatten(2).permute(0, 2, 1)), dim=-1))

    def image_embeds(self, px, f=None):
        """px [B, 3, 512, 512] -> [B, 73, E]: the global view packed as the reference packs it
        (rows of 8 tokens each followed by image_newline, then view_seperator)."""
        f = self.features(px) if f is None else f               # [B, 64, E]
        b, n, e = f.shape
        side = int(math.isqrt(n))
        f = f.view(b, side, side, e)
        nl = self.image_newline.to(f.dtype).view(1, 1, 1, e).expand(b, side, 1, e)
        f = torch.cat((f, nl), dim=2).reshape(b, side * (side + 1), e)
        sep = self.view_seperator.to(f.dtype).view(1, 1, e).expand(b, 1, e)
        return torch.cat((f, sep), dim=1)

    def aux_loss(self, f, cells, patches):
        """The auxiliary losses of features f [B, 64, E] (self._sam_blocks from the same pass)."""
        n_cls = len(synthpages.CELL_CHARS) + 1
        aux = nn.functional.cross_entropy(
            self.aux(f).float().reshape(-1, n_cls), cells.reshape(-1),
            reduction="sum") / (f.shape[0] * f.shape[1])
        sb = self._sam_blocks.flatten(1, 2)                     # [B, 1024, D]
        return aux + nn.functional.binary_cross_entropy_with_logits(
            self.aux_patch(sb).float(), patches, reduction="sum") / (sb.shape[0] * sb.shape[1])

    def forward(self, px, ids, image_mask, labels, cells, patches, guides):
        """-> (language-model loss, auxiliary loss); cells [B, 64, AUX_SLOTS] class indices
        (n_chars = none), patches [B, 1024, n_chars] multi-hot, guides [4, B, L, 73] multi-hot:
        the image positions holding the characters of the token at each position, of the token
        after it, and that token's first and last character (all zero where unknown)."""
        f = self.features(px)                                   # [B, 64, E]
        img = self.image_embeds(px, f)                          # [B, 73, E]
        emb = self.lm.model.embed_tokens(ids)                   # [B, L, E]
        emb = emb.masked_scatter(image_mask.unsqueeze(-1), img.to(emb.dtype))
        out = self.lm(inputs_embeds=emb, labels=labels, use_cache=False)
        # Training only: a few heads are told where the characters are (guided attention, as
        # TTS alignment is taught). Left alone the decoder takes thousands of steps to find
        # that reading means walking the cells; the exported model is the plain architecture.
        # both prompts put <image> right after BOS, so one offset serves the whole batch
        img0 = int(image_mask[0].float().argmax())
        guide = out.loss.new_zeros(())
        for g, heads in zip(guides, (GUIDE_CURRENT, GUIDE_NEXT, GUIDE_NEXT_FIRST, GUIDE_NEXT_LAST)):
            valid = g.sum(-1) > 0                               # [B, L]
            for layer, head in heads:
                a = self._attn[layer][:, head, :, img0:img0 + N_IMAGE_TOKENS].float()
                mass = (a * g).sum(-1)                          # [B, L]
                guide = guide - torch.log(mass[valid] + 1e-6).mean()
        guide = guide / len(GUIDED)
        aux = self.aux_loss(f, cells, patches)
        return out.loss, aux, guide


def hub_tensors(model):
    out = {}
    for prefix, mod in (("model.sam_model.", model.sam), ("model.vision_model.", model.clip),
                        ("model.projector.", model.proj)):
        for name, p in mod.named_parameters():
            out[prefix + name] = p.detach().to(torch.bfloat16).contiguous()
    out["model.image_newline"] = model.image_newline.detach().to(torch.bfloat16)
    out["model.view_seperator"] = model.view_seperator.detach().to(torch.bfloat16)
    for name, t in to_hub(model.lm.state_dict()).items():
        out[name] = t.detach().to(torch.bfloat16).contiguous()
    return out


def config_json(vocab_size, image_token_id):
    lm = {
        "bos_token_id": BOS, "eos_token_id": EOS, "first_k_dense_replace": 1,
        "hidden_size": N_EMBED, "intermediate_size": DECODER["intermediate_size"],
        "kv_lora_rank": None, "lm_head": True,
        "max_position_embeddings": DECODER["max_position_embeddings"],
        "moe_intermediate_size": DECODER["moe_intermediate_size"], "n_group": 1,
        "n_routed_experts": DECODER["n_routed_experts"],
        "n_shared_experts": DECODER["n_shared_experts"],
        "num_attention_heads": DECODER["num_attention_heads"],
        "num_experts_per_tok": DECODER["num_experts_per_tok"],
        "num_hidden_layers": DECODER["num_hidden_layers"],
        "num_key_value_heads": DECODER["num_key_value_heads"], "q_lora_rank": None,
        "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "rm_head": False, "topk_group": 1,
        "topk_method": "greedy", "use_mla": False, "v_head_dim": 0, "vocab_size": vocab_size,
    }
    language_config = dict(sorted({
        "architectures": ["DeepseekV2ForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_deepseekv2.DeepseekV2Config",
                     "AutoModel": "modeling_deepseek.DeepseekV2Model",
                     "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM"},
        **lm, "torch_dtype": "bfloat16"}.items()))
    c3 = SAM["downsample"][1]
    top = {
        "_name_or_path": "dsocr-reader",
        "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head",
        "architectures": ["DeepseekOCRForCausalLM"],
        "auto_map": {"AutoConfig": "modeling_deepseekocr.DeepseekOCRConfig",
                     "AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM"},
        "language_config": language_config,
        "model_type": "deepseek_vl_v2",
        "projector_config": {"input_dim": CLIP["hidden_size"] + c3, "model_type": "mlp_projector",
                             "n_embed": N_EMBED, "projector_type": "linear"},
        "tile_tag": "2D",
        "torch_dtype": "bfloat16",
        "vision_config": vis.vision_config_json(SAM, CLIP),
    }
    top.update(lm)
    top["image_token_id"] = image_token_id
    return top


# ---- data ----------------------------------------------------------------------------------

def pixels(img):
    """Tiny mode as the reference preprocesses it: resize to 512 x 512 (Pillow bicubic), then
    ToTensor + Normalize(0.5, 0.5). [3, 512, 512]"""
    a = np.asarray(img.convert("RGB").resize((512, 512)), dtype=np.float32) / 255.0
    return torch.from_numpy((a - 0.5) / 0.5).permute(2, 0, 1).contiguous()


def encode_example(tok, image_token_id, prompt, answer, answer_cells=None):
    """ids = [BOS] + enc(prompt before <image>) + image ids + enc(after) + enc(answer) + [EOS];
    labels are -100 except on the answer and EOS. With @answer_cells (the cell of each
    character of @answer, -1 for none) also -> guidance [(position, [image positions])]: per
    answer token, the image positions of its characters' cells, in reading order."""
    before, after = prompt.split("<image>")
    p = [BOS] + tok.encode(before, add_special_tokens=False).ids
    img0 = len(p)
    p += [image_token_id] * N_IMAGE_TOKENS + tok.encode(after, add_special_tokens=False).ids
    enc = tok.encode(answer, add_special_tokens=False)
    a = enc.ids + [EOS]
    if answer_cells is None:
        return p + a, [-100] * len(p) + a
    guidance = []
    for j, (start, end) in enumerate(enc.offsets):
        where = list(dict.fromkeys(c for c in answer_cells[start:end] if c >= 0))
        guidance.append((len(p) + j, [img0 + (c // 8) * 9 + c % 8 for c in where]))
    return p + a, [-100] * len(p) + a, guidance


def max_lines_at(step, curriculum):
    """The curriculum: single lines first, so that nothing can be predicted without reading
    the image; then the full pages (a title and synthpages.MAX_LINES lines) from `curriculum`
    steps on."""
    if step >= curriculum:
        return synthpages.MAX_LINES
    return 1 + ((synthpages.MAX_LINES - 1) * step) // curriculum


class Pages(torch.utils.data.IterableDataset):
    def __init__(self, tok_json, image_token_id, first_seed, batch, curriculum):
        self.tok_json, self.image_token_id = tok_json, image_token_id
        self.first_seed, self.batch, self.curriculum = first_seed, batch, curriculum

    def __iter__(self):
        torch.set_num_threads(1)
        tok = tokenizers.Tokenizer.from_str(self.tok_json)
        seed = self.first_seed
        while True:
            px, ids, labels, cells, patches, guides = [], [], [], [], [], []
            step = (seed - TRAIN_SEED0) // self.batch
            for _ in range(self.batch):
                img, t = synthpages.make_page(seed, max_lines_at(step, self.curriculum))
                grounding = random.Random(seed * 7 + 1).random() < GROUNDING_SHARE
                prompt = synthpages.PROMPT_GROUNDING if grounding else synthpages.PROMPT_FREE
                if grounding:
                    i, l = encode_example(tok, self.image_token_id, prompt, t["grounding"])
                    guides.append([])
                else:
                    i, l, gd = encode_example(tok, self.image_token_id, prompt, t["free"],
                                              t["free_cells"])
                    guides.append(gd)
                px.append(pixels(img))
                c = torch.full((64, AUX_SLOTS), len(synthpages.CELL_CHARS), dtype=torch.long)
                for (row, col), ks in t["cells"].items():
                    ks = ks[:AUX_SLOTS]
                    c[row * 8 + col, :len(ks)] = torch.tensor(ks)
                cells.append(c)
                c = torch.zeros(1024, len(synthpages.CELL_CHARS))
                for (row, col), ks in t["patches"].items():
                    c[row * 32 + col, ks] = 1.0
                patches.append(c)
                ids.append(i)
                labels.append(l)
                seed += 1
            n = max(len(i) for i in ids)
            ids_t = torch.full((len(ids), n), PAD, dtype=torch.long)
            lab_t = torch.full((len(ids), n), -100, dtype=torch.long)
            g = torch.zeros(4, len(ids), n, N_IMAGE_TOKENS)   # current, next, first, last
            for k, (i, l) in enumerate(zip(ids, labels)):
                ids_t[k, :len(i)] = torch.tensor(i)
                lab_t[k, :len(l)] = torch.tensor(l)
                img0 = i.index(self.image_token_id)
                for pos, where in guides[k]:
                    if where:
                        where = [w - img0 for w in where]
                        g[0, k, pos, where] = 1.0
                        g[1, k, pos - 1, where] = 1.0
                        g[2, k, pos - 1, where[0]] = 1.0
                        g[3, k, pos - 1, where[-1]] = 1.0
            yield (torch.stack(px), ids_t, lab_t, torch.stack(cells), torch.stack(patches),
                   g, seed)


# ---- training ------------------------------------------------------------------------------

VALID_SEED0 = 5 * 10 ** 5      # pages for the progress readings: neither training nor held out


@torch.no_grad()
def quick_cer(model, tok, image_token_id, n_pages=12, max_new=64):
    """Greedy Free OCR of n_pages validation pages by the training model itself (no KV cache,
    bf16 autocast): a progress reading only; eval_reader.py measures the exported model."""
    model.eval()
    pages = [synthpages.make_page(VALID_SEED0 + i) for i in range(n_pages)]
    px = torch.stack([pixels(img) for img, _ in pages])
    prompt, _ = encode_example(tok, image_token_id, synthpages.PROMPT_FREE, "")
    prompt = prompt[:-1]                                        # without the EOS
    ids = torch.tensor([prompt] * n_pages)
    done = torch.zeros(n_pages, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = model.image_embeds(px)                            # [N, 73, E]
        for _ in range(max_new):
            emb = model.lm.model.embed_tokens(ids)
            emb = emb.masked_scatter((ids == image_token_id).unsqueeze(-1), img.to(emb.dtype))
            nxt = model.lm(inputs_embeds=emb, use_cache=False).logits[:, -1].argmax(-1)
            nxt[done] = EOS
            done |= nxt == EOS
            ids = torch.cat((ids, nxt[:, None]), dim=1)
            if bool(done.all()):
                break
    edits = chars = 0
    for k, (_, t) in enumerate(pages):
        out = [i for i in ids[k, len(prompt):].tolist() if i != EOS]
        text = eval_reader.text_of(tok.decode(out, skip_special_tokens=False))
        edits += eval_reader.levenshtein(text, t["free"])
        chars += len(t["free"])
    model.train()
    return edits / chars, tok.decode(ids[0, len(prompt):].tolist())


def save(model, tok_json, image_token_id, out, info):
    out.mkdir(parents=True, exist_ok=True)
    tensors = hub_tensors(model)
    safetensors.torch.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    vocab = model.lm.config.vocab_size
    (out / "config.json").write_text(json.dumps(config_json(vocab, image_token_id), indent=2) + "\n")
    (out / "tokenizer.json").write_text(tok_json)
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=1) + "\n")
    (out / "training.json").write_text(json.dumps(info, indent=1) + "\n")


def save_warm_start(model, path, step, next_seed, curve, tok_json):
    """Everything --resume needs but the optimizer, in bf16 (the training heads included):
    about a sixth of train-state.pt, small enough to keep with the scripts."""
    tensors = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    meta = {"step": str(step), "next_seed": str(next_seed), "curve": json.dumps(curve),
            "tokenizer": tok_json}
    safetensors.torch.save_file(tensors, str(path), metadata=meta)


def load_warm_start(path):
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k).float() for k in f.keys()}
    return {"model": weights, "step": int(meta["step"]), "next_seed": int(meta["next_seed"]),
            "curve": json.loads(meta["curve"]), "tokenizer": meta["tokenizer"]}


def load_model_dir(path):
    """A model directory as save() writes it (models/dsocr-reader) -> what --resume needs: the
    weights under Reader's names (the training heads are not exported: they start afresh), the
    step, seed and curve of its training.json, its tokenizer."""
    weights = safetensors.torch.load_file(str(path / "model.safetensors"))
    state = {}
    for hub, ours in (("model.sam_model.", "sam."), ("model.vision_model.", "clip."),
                      ("model.projector.", "proj.")):
        for k in [k for k in weights if k.startswith(hub)]:
            state[ours + k[len(hub):]] = weights.pop(k).float()
    state["image_newline"] = weights.pop("model.image_newline").float()
    state["view_seperator"] = weights.pop("model.view_seperator").float()
    state.update({"lm." + k: v.float() for k, v in from_hub(weights).items()})
    info = json.loads((path / "training.json").read_text())
    return {"model": state, "step": info["steps"], "next_seed": info["next_seed"],
            "curve": info["curve"], "tokenizer": (path / "tokenizer.json").read_text()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--ocr-repo", default=os.environ.get("DSOCR_OCR_REPO"))
    ap.add_argument("--v3-tokenizer", default=str(HERE.parent.parent / "shared" / "tokenizers" /
                                                  "deepseek-v3" / "tokenizer.json"))
    ap.add_argument("--minutes", type=float, default=60.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=4000, help="schedule length (cosine)")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--curriculum", type=int, default=600,
                    help="steps until pages reach their full size")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--resume", type=pathlib.Path,
                    help="continue from a train-state.pt, from a warm-start.safetensors (the "
                         "same without the optimizer's state) or from a model directory "
                         "(models/dsocr-reader: no optimizer state nor training heads)")
    ap.add_argument("--vision-steps", type=int, default=0,
                    help="first train the vision tower alone on the auxiliary losses for this "
                         "many steps (constant --vision-lr after a short warm-up; the decoder "
                         "waits)")
    ap.add_argument("--vision-lr", type=float, default=2e-3)
    ap.add_argument("--bench", type=int, default=0, help="time this many steps and exit")
    ap.add_argument("--eval-every", type=int, default=250,
                    help="steps between progress readings (greedy CER on validation pages)")
    args = ap.parse_args()
    if not args.ocr_repo:
        sys.exit("give --ocr-repo or DSOCR_OCR_REPO (the DeepSeek-OCR-vllm directory)")

    ref = vis.import_reference(args.ocr_repo)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    ckpt = args.out / "train-state.pt"
    t0 = time.time()
    if args.resume and args.resume.is_dir():
        state = load_model_dir(args.resume)
        tok_json = state["tokenizer"]
    elif args.resume and args.resume.suffix == ".safetensors":
        state = load_warm_start(args.resume)
        tok_json = state["tokenizer"]
    elif args.resume:
        state = torch.load(args.resume, weights_only=False)
        tok_json = state["tokenizer"]
    else:
        state = None
        tok_json = train_tokenizer(args.v3_tokenizer, 3000, args.vocab)
    tok = tokenizers.Tokenizer.from_str(tok_json)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    image_token_id = tok.token_to_id("<image>")
    print(f"tokenizer: {vocab_size} ids, <image> = {image_token_id} ({time.time() - t0:.0f} s)",
          flush=True)

    model = Reader(ref, vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params / 1e6:.2f} M", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "pos" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    step, seed0, curve, missing = 0, TRAIN_SEED0, [], []
    if state:
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        # a model directory lacks the training heads and CLIP's position_ids (a constant
        # buffer, not exported: the constructor's arange is the value)
        if unexpected or any(not k.startswith("aux") and k != "clip.embeddings.position_ids"
                             for k in missing):
            sys.exit(f"--resume: missing {missing}, unexpected {unexpected}")
        fresh = bool(missing) or "opt" not in state
        if not fresh:     # a head added since, or a warm start: the optimizer starts afresh
            opt.load_state_dict(state["opt"])
        step, seed0, curve = state["step"], state["next_seed"], state["curve"]

    # a resumed run whose optimizer starts afresh warms up again
    rewarm = step if (state and fresh) else None

    def lr_at(s):
        if rewarm is not None and s - rewarm < 50:
            return lr_cosine(s) * (s - rewarm + 1) / 50
        return lr_cosine(s)

    def lr_cosine(s):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        p = min(1.0, (s - args.warmup) / max(1, args.steps - args.warmup))
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    loader = torch.utils.data.DataLoader(Pages(tok_json, image_token_id, seed0, args.batch,
                                               args.curriculum),
                                         batch_size=None, num_workers=1, prefetch_factor=4)
    model.train()
    start = time.time()
    deadline = start + args.minutes * 60
    ema = None
    vision_step = 0
    first_step = step                   # --bench times this run's steps, resumed or not
    for px, ids, labels, cells, patches, guides, next_seed in loader:
        if vision_step < args.vision_steps:
            # The tower alone, three times cheaper a page than the whole model: until it tells
            # glyphs apart, the decoder's steps teach it only the pages' statistics.
            for g in opt.param_groups:
                g["lr"] = args.vision_lr * min(1.0, (vision_step + 1) / 50)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                aux_loss = model.aux_loss(model.features(px), cells, patches)
            opt.zero_grad(set_to_none=True)
            aux_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            vision_step += 1
            if vision_step % 10 == 0:
                print(f"vision step {vision_step} aux {float(aux_loss.detach()):.3f} "
                      f"{(time.time() - start) / 60:.1f} min", flush=True)
            if vision_step % 200 == 0 or vision_step == args.vision_steps:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                            "next_seed": int(next_seed), "curve": curve, "tokenizer": tok_json,
                            "vision_steps": vision_step}, ckpt)
            continue
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        image_mask = ids == image_token_id
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lm_loss, aux_loss, guide_loss = model(px, ids, image_mask, labels, cells, patches,
                                                  guides)
        loss = lm_loss + AUX_WEIGHT * aux_loss + GUIDE_WEIGHT * guide_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        v = float(lm_loss.detach())
        ema = v if ema is None else 0.98 * ema + 0.02 * v
        if step % 10 == 0:
            el = time.time() - start
            print(f"step {step} loss {v:.4f} ema {ema:.4f} aux {float(aux_loss.detach()):.3f} "
                  f"guide {float(guide_loss.detach()):.3f} "
                  f"lr {lr_at(step):.2e} {el / 60:.1f} min", flush=True)
            curve.append([step, round(ema, 4)])
        if args.eval_every and step % args.eval_every == 0:
            cer, sample = quick_cer(model, tok, image_token_id)
            print(f"step {step} validation CER {cer:.3f} e.g. {sample!r}", flush=True)
            curve.append([step, round(ema, 4), round(cer, 4)])
        if args.bench and step - first_step >= args.bench:
            print(f"{(time.time() - start) / (step - first_step):.2f} s/step")
            return
        done = step >= args.steps or time.time() > deadline
        if step % 100 == 0 or done:
            info = {"steps": step, "batch": args.batch, "lr": args.lr, "warmup": args.warmup,
                    "curriculum": args.curriculum, "grounding_share": GROUNDING_SHARE,
                    "aux_weight": AUX_WEIGHT, "aux_slots": AUX_SLOTS,
                    "vision_steps": args.vision_steps,
                    "guide_weight": GUIDE_WEIGHT, "guide_current": GUIDE_CURRENT,
                    "guide_next": GUIDE_NEXT, "guide_next_first": GUIDE_NEXT_FIRST,
                    "guide_next_last": GUIDE_NEXT_LAST,
                    "schedule_steps": args.steps, "pages_seen": step * args.batch,
                    "next_seed": int(next_seed),
                    "first_train_seed": TRAIN_SEED0, "seed": args.seed,
                    "minutes": round((time.time() - start) / 60, 1), "loss_ema": round(ema, 4),
                    "parameters": n_params, "curve": curve, "torch": torch.__version__}
            model.eval()
            save(model, tok_json, image_token_id, args.out, info)
            model.train()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "next_seed": int(next_seed), "curve": curve, "tokenizer": tok_json},
                       ckpt)
        if done:
            save_warm_start(model, args.out / "warm-start.safetensors", step, int(next_seed),
                            curve, tok_json)
            break


if __name__ == "__main__":
    main()
