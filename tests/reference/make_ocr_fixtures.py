#!/usr/bin/env python3
"""End-to-end DeepSeek-OCR goldens: tests/fixtures/tiny-ocr-e2e/.

    DSOCR_OCR_REPO=/tmp/ocr/DeepSeek-OCR-master/DeepSeek-OCR-vllm \\
        python3 tests/reference/make_ocr_fixtures.py

(DSOCR_OCR_REPO is the DeepSeek-OCR-vllm directory of a deepseek-ai/DeepSeek-OCR checkout, as for
make_vision_fixtures.py.) About 30 s on one CPU thread; the output is identical from run to run.

What runs the reference, all imported:
  pixels    Pillow: ImageOps.exif_transpose(Image.open(page.png)).convert("RGB"), then the
            preprocessing of the HUB infer() as make_preprocess_goldens.reference_preprocess
            writes it with Pillow (resize / ImageOps.pad / dynamic_preprocess with max_num 9),
            ToTensor + Normalize(0.5, 0.5) in float32, then the bf16 cast infer() applies.
  vision    the official deepencoder modules (SAM ImageEncoderViT, CLIP VitModel, MlpProjector)
            and the view packing of DeepseekOCRForCausalLM._pixel_values_to_embedding (local
            tiles, then the global view, image_newline per row, view_seperator), imported from
            DSOCR_OCR_REPO through make_vision_fixtures.import_reference, with the tiny tower
            of tests/fixtures/tiny-ocr/model.safetensors loaded into them.
  prompt    infer()'s: the conversation formatted with the "plain" template and .strip()ed,
            split on "<image>", every piece encoded by `tokenizers` without special tokens,
            ids = [BOS] + enc(before) + [image_token_id] * n_image_tokens + enc(after).
  decoder   transformers' DeepseekOcr2TextModel + lm_head (make_decoder_fixtures.OcrDecoderFor
            CausalLM) on inputs_embeds = embed_tokens(ids) with the packed image embeddings
            masked-scattered over the image positions, in float32 on the bf16 weights of the
            same file.
  greedy    transformers' generate() with input_ids and those inputs_embeds, do_sample False,
            no_repeat_ngram_size 20 (infer()'s guard, over prompt + output), eos 1.
            The vLLM form for one mode: a greedy loop whose scores go through the official
            process/ngram_norepeat.py NoRepeatNGramLogitsProcessor(30, 90, {<td>, </td>}) on the
            generated ids, as the vLLM scripts use it.

The tiny model (vocabulary 320) cannot hold DeepSeek-OCR's <image> id 128815; config.json
names its own image_token_id (the id of <image> in the tiny tokenizer), which the engine reads.

Written to tests/fixtures/tiny-ocr-e2e/:
  config.json            tests/fixtures/tiny-ocr/config.json plus "image_token_id"
  model.safetensors      a byte copy of tests/fixtures/tiny-ocr/model.safetensors
  tokenizer.json         the byte-level BPE of tests/fixtures/tokenizer/mini cut to 320 ids: the
  tokenizer_config.json  three DeepSeek specials, the 256 byte symbols, its first 46 merges, and
                         the fifteen added tokens (<|EOT|>, <｜User｜>, <｜Assistant｜>, then the
                         twelve DeepSeek-OCR ones from <image> on)
  page.png               a 400 x 800 page of text (1 column x 2 rows of tiles in gundam mode)
  golden-ocr.safetensors per mode (tiny, small, base, large, gundam):
      {mode}.input_ids       I64 [L]      the prompt
      {mode}.embeds_rows     I64 [k]      rows of the packed image embeddings kept below
      {mode}.embeds          F32 [k, 64]  those rows (first, newline, last tile row, separator)
      {mode}.logits_rows     I64 [r]      prompt positions whose prefill logits are kept
      {mode}.logits          F32 [r, 320] the prefill logits at those positions (the last
                                          position, whose argmax is the first token, included)
      {mode}.tokens          I64 [n]      greedy tokens, HF guard (no_repeat_ngram_size 20)
      small.tokens_window    I64 [120]    greedy tokens, vLLM guard (30, window 90, whitelist)
  golden-ocr.json        versions, prompt, grids, decoded texts, margins
"""

import argparse
import hashlib
import importlib.util
import json
import os
import pathlib
import platform
import shutil
import sys

import numpy as np
import safetensors.torch
import tokenizers
import torch
import transformers
from PIL import Image, ImageDraw, ImageFont, ImageOps

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_decoder_fixtures as dec  # noqa: E402
import make_preprocess_goldens as pre  # noqa: E402
import make_vision_fixtures as vis  # noqa: E402
from dsv2_hub_layout import from_hub  # noqa: E402

FIXTURES = HERE.parent / "fixtures"
SRC = FIXTURES / "tiny-ocr"
MINI_TOKENIZER = FIXTURES / "tokenizer" / "mini"

PROMPT = "<image>\n<|grounding|>Convert the document to markdown. "
MODES = ("tiny", "small", "base", "large", "gundam")
MAX_TILES = 9                 # infer()'s dynamic_preprocess max_num
BOS, EOS, PAD = 0, 1, 2
NEW_TOKENS = 48
HF_NGRAM = 20
WINDOW_MODE, WINDOW_NGRAM, WINDOW_SIZE, WINDOW_TOKENS = "small", 30, 90, 120
N_MERGES = 46                 # 3 + 256 + 46 + 15 added tokens = 320 ids
PAGE_SIZE = (400, 800)
PAGE_VARIANT = 1              # picked so that no greedy or routing decision is a near tie

# An f32 port differs from torch by ~1e-6 relative: greedy choices and expert selections closer
# than this would make the goldens depend on rounding.
MIN_LOGIT_MARGIN = 2e-4
MIN_ROUTER_MARGIN = 1e-5


# ---- inputs ---------------------------------------------------------------------------------

def tiny_tokenizer():
    """tokenizer.json text and the parsed Tokenizer."""
    d = json.loads((MINI_TOKENIZER / "tokenizer.json").read_text())
    model = d["model"]
    n_base = 3 + 256
    keep = n_base + N_MERGES
    inv = {i: t for t, i in model["vocab"].items()}
    # the mini vocabulary is dense: ids 259.. are the merges' results in rank order
    for r, (a, b) in enumerate(model["merges"][:N_MERGES]):
        assert inv[n_base + r] == a + b, (r, a, b)
    model["vocab"] = {inv[i]: i for i in range(keep)}
    model["merges"] = model["merges"][:N_MERGES]
    added = [t for t in d["added_tokens"] if t["id"] < 3]
    for k, t in enumerate(t for t in d["added_tokens"] if t["id"] >= 3):
        added.append(dict(t, id=keep + k))
    d["added_tokens"] = added
    text = json.dumps(d, ensure_ascii=False, indent=2) + "\n"
    tok = tokenizers.Tokenizer.from_str(text)
    assert tok.get_vocab_size(with_added_tokens=True) == 320, tok.get_vocab_size()
    return text, tok


def draw_page(path, variant=PAGE_VARIANT):
    img = Image.new("RGB", PAGE_SIZE, (250, 250, 246))
    d = ImageDraw.Draw(img)
    title = ImageFont.load_default(size=26)
    body = ImageFont.load_default(size=15)
    d.text((24, 22), "Quarterly Report", font=title, fill=(20, 20, 20))
    d.line((24, 60, 376, 60), fill=(60, 60, 60), width=2)
    lines = ["Revenue grew in every region.", "Costs fell for the third time.",
             "The board met on 12 May 2025.", "Totals are in the table below.",
             f"Edition {variant + 1}."]
    for i, s in enumerate(lines):
        d.text((24, 80 + 24 * i), s, font=body, fill=(30, 30, 30))
    y0 = 200
    for r in range(5):
        for c in range(3):
            x, y = 24 + 117 * c, y0 + 34 * r
            d.rectangle((x, y, x + 117, y + 34), outline=(40, 40, 40))
            d.text((x + 8, y + 9), f"{'ABCDE'[r]}{c + 1}: {(r + 2) * (c + 3) * 7}", font=body,
                   fill=(20, 20, 20))
    d.rectangle((60, 420, 340, 620), fill=(205, 220, 240), outline=(40, 60, 120), width=3)
    d.ellipse((120, 450, 280, 590), fill=(240, 200, 80))
    d.text((24, 650), "Figure 1: a chart.", font=body, fill=(30, 30, 30))
    for i in range(4):
        d.text((24, 690 + 22 * i), f"Note {i + 1}: see page {i + 3}.", font=body, fill=(40, 40, 40))
    img.save(path, optimize=True)


def load_page(path):
    """The reference's load_image: exif_transpose(open) then convert("RGB")."""
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


# ---- the tiny model ---------------------------------------------------------------------------

def load_towers(ref, weights):
    towers = vis.build(ref, torch.Generator().manual_seed(0))
    vis.load_hub_towers(towers, weights)
    return towers


def load_decoder(weights):
    model = dec.build_model(dec.SPECS["tiny-ocr-decoder"])
    sd = {k: v.float() for k, v in from_hub(weights).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"decoder: missing {missing}, unexpected {unexpected}")
    return model


def check_towers(ref, towers):
    """The towers loaded here are the vision fixture's: they give its goldens bit for bit."""
    golden = safetensors.torch.load_file(SRC / "golden-vision.safetensors")
    sam, clip, proj, _, _ = towers
    with torch.no_grad():
        _, _, p = vis.run_view(sam, clip, proj, vis.pixels(1, 512)[None])
    assert torch.equal(p, golden["tiny.proj"]), "tiny-ocr towers do not reproduce tiny.proj"


def vllm_ngram_processor(repo):
    """process/ngram_norepeat.py of the official repo. It imports a transformers helper that
    transformers 5 removed and that its processor never calls: a stand-in takes its place."""
    import transformers.generation.logits_process as lp
    if not hasattr(lp, "_calc_banned_ngram_tokens"):
        lp._calc_banned_ngram_tokens = vis._Unused("_calc_banned_ngram_tokens")
    spec = importlib.util.spec_from_file_location(
        "ngram_norepeat", pathlib.Path(repo) / "process" / "ngram_norepeat.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.NoRepeatNGramLogitsProcessor


# ---- the reference run ------------------------------------------------------------------------

def encode_image(ref, towers, image, mode):
    """Pillow preprocessing + official towers and packing -> packed [n_tokens, E], grid."""
    _, _, g, t, ratio = pre.reference_preprocess(image, mode, MAX_TILES)
    cols, rows = ratio
    pk = vis.packer(ref, *towers)
    crop = (t.to(torch.bfloat16)[None, None] if t is not None
            else torch.zeros(1, 1, 1, 3, 640, 640))
    with torch.no_grad():
        packed = pk._pixel_values_to_embedding(
            pixel_values=g.to(torch.bfloat16)[None, None], images_crop=crop,
            images_spatial_crop=torch.tensor([[[cols, rows]]]))[0]
    n = pre.n_image_tokens(mode, cols, rows)
    assert packed.shape == (n, vis.N_EMBED), (mode, packed.shape, n)
    return packed.float(), (cols, rows), 0 if t is None else int(t.shape[0])


def prompt_ids(tok, image_token_id, n_image_tokens):
    text = PROMPT.strip()   # format_messages(sft_format="plain") strips the prompt
    pieces = text.split("<image>")
    ids = [BOS]
    for piece in pieces[:-1]:
        ids += tok.encode(piece, add_special_tokens=False).ids
        ids += [image_token_id] * n_image_tokens
    ids += tok.encode(pieces[-1], add_special_tokens=False).ids
    return torch.tensor([ids])


def inputs_embeds(model, ids, packed, image_token_id):
    with torch.no_grad():
        e = model.model.embed_tokens(ids)
        mask = (ids == image_token_id).unsqueeze(-1)
        return e.masked_scatter(mask, packed.to(e.dtype))


def hf_generate(model, ids, embeds):
    out = model.generate(input_ids=ids, inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                         do_sample=False, max_new_tokens=NEW_TOKENS,
                         no_repeat_ngram_size=HF_NGRAM, eos_token_id=EOS, pad_token_id=PAD,
                         output_scores=True, output_logits=True, return_dict_in_generate=True)
    seq = out.sequences[0]
    assert torch.equal(seq[: ids.shape[1]], ids[0]), "generate() did not echo the prompt ids"
    new = seq[ids.shape[1]:]
    scores = torch.stack(out.scores, 1)[0]   # processed scores, [n, V]
    raw = torch.stack(out.logits, 1)[0]      # raw logits, [n, V]
    overrides = (raw.argmax(-1) != new).nonzero()[:, 0].tolist()   # steps the guard decided
    return new, scores, overrides


def window_generate(model, embeds, processor):
    """Greedy decoding with the vLLM scripts' logits processor on the generated ids."""
    gen, margins, overrides = [], [], []
    with torch.no_grad():
        out = model(inputs_embeds=embeds, use_cache=True)
        for _ in range(WINDOW_TOKENS):
            scores = processor(list(gen), out.logits[0, -1].clone())
            tok = int(scores.argmax())
            if tok != int(out.logits[0, -1].argmax()):
                overrides.append(len(gen))
            margins.append(dec.logit_margin(scores))
            gen.append(tok)
            if tok == EOS:
                break
            out = model(input_ids=torch.tensor([[tok]]), past_key_values=out.past_key_values,
                        use_cache=True)
    return torch.tensor(gen), min(margins), overrides


def router_margin(model, embeds, new):
    """Smallest expert-selection margin over the prompt and every generated token but the last,
    from one forward without cache over all of them."""
    with torch.no_grad():
        seq = torch.cat([embeds, model.model.embed_tokens(new[None, :-1])], dim=1)
    _, cap = dec.run_captured(model, inputs_embeds=seq)
    gates = dec.routers_of(model)
    return min(dec.router_margin(model, gates[i], r[1]) for i, r in cap["router"].items())


def raw_text(tok, ids):
    """infer()'s output text: decoded with special tokens, the trailing EOS cut, stripped."""
    s = tok.decode(ids, skip_special_tokens=False)
    stop = "<｜end▁of▁sentence｜>"
    if s.endswith(stop):
        s = s[: -len(stop)]
    return s.strip()


def run_mode(mode, ref, towers, model, tok, image, image_token_id, golden, facts):
    packed, (cols, rows), n_tiles = encode_image(ref, towers, image, mode)
    ids = prompt_ids(tok, image_token_id, packed.shape[0])
    embeds = inputs_embeds(model, ids, packed, image_token_id)
    with torch.no_grad():
        logits = model(inputs_embeds=embeds).logits[0]       # [L, V]
        new, scores, overrides = hf_generate(model, ids, embeds)
    router = router_margin(model, embeds, new)
    assert int(new[0]) == int(logits[-1].argmax()), "first token is not the prefill's argmax"
    margin = dec.logit_margin(scores)
    if margin < MIN_LOGIT_MARGIN or router < MIN_ROUTER_MARGIN:
        raise RuntimeError(f"{mode}: greedy margin {margin:.3g}, router margin {router:.3g}")

    L, n = ids.shape[1], packed.shape[0]
    first = int((ids[0] == image_token_id).nonzero()[0])
    side = 10 * cols if n_tiles else int(round((n - 1) ** 0.5 - 0.5))   # first grid row width
    rows_kept = sorted({0, side, n - 2, n - 1})   # a feature, a newline, the last one, separator
    # logits at BOS, the first and last image position, the first text position after the image,
    # and the last four positions of the prompt
    lrows = sorted({0, first, first + n - 1, first + n} | set(range(L - 4, L)))
    golden[f"{mode}.input_ids"] = ids[0].to(torch.int64)
    golden[f"{mode}.embeds_rows"] = torch.tensor(rows_kept, dtype=torch.int64)
    golden[f"{mode}.embeds"] = packed[rows_kept].contiguous()
    golden[f"{mode}.logits_rows"] = torch.tensor(lrows, dtype=torch.int64)
    golden[f"{mode}.logits"] = logits[lrows].float().contiguous()
    golden[f"{mode}.tokens"] = new.to(torch.int64)
    facts[mode] = {
        "grid": [cols, rows], "n_tiles": n_tiles, "n_image_tokens": n, "prompt_len": L,
        "n_tokens": int(new.shape[0]), "ends_with_eos": bool(int(new[-1]) == EOS),
        "raw_text": raw_text(tok, new.tolist()),
        "guard_override_steps": overrides,
        "min_greedy_margin": margin, "min_router_margin": router,
    }
    return embeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ocr-repo", default=os.environ.get("DSOCR_OCR_REPO"),
                    help="the DeepSeek-OCR-master/DeepSeek-OCR-vllm directory of a checkout")
    ap.add_argument("--out", default=str(FIXTURES / "tiny-ocr-e2e"))
    args = ap.parse_args()
    if not args.ocr_repo:
        sys.exit("give --ocr-repo or DSOCR_OCR_REPO (see the docstring)")

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    ref = vis.import_reference(args.ocr_repo)
    window_proc = vllm_ngram_processor(args.ocr_repo)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok_text, tok = tiny_tokenizer()
    (out / "tokenizer.json").write_text(tok_text)
    shutil.copyfile(MINI_TOKENIZER / "tokenizer_config.json", out / "tokenizer_config.json")
    image_token_id = tok.token_to_id("<image>")
    whitelist = {tok.token_to_id("<td>"), tok.token_to_id("</td>")}

    cfg = json.loads((SRC / "config.json").read_text())
    cfg["_name_or_path"] = "tiny-ocr-e2e"
    cfg["image_token_id"] = image_token_id
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.copyfile(SRC / "model.safetensors", out / "model.safetensors")

    weights = safetensors.torch.load_file(out / "model.safetensors")
    towers = load_towers(ref, weights)
    check_towers(ref, towers)
    model = load_decoder(weights)

    draw_page(out / "page.png", int(os.environ.get("DSOCR_PAGE_VARIANT", PAGE_VARIANT)))
    image = load_page(out / "page.png")

    golden, facts = {}, {}
    for mode in MODES:
        embeds = run_mode(mode, ref, towers, model, tok, image, image_token_id, golden, facts)
        if mode == WINDOW_MODE:
            proc = window_proc(WINDOW_NGRAM, WINDOW_SIZE, whitelist)
            toks, margin, overrides = window_generate(model, embeds, proc)
            router = router_margin(model, embeds, toks)
            if margin < MIN_LOGIT_MARGIN or router < MIN_ROUTER_MARGIN:
                raise RuntimeError(f"window guard: greedy margin {margin:.3g}, router {router:.3g}")
            if not overrides:
                raise RuntimeError("window guard: it changed no token, the golden tests nothing")
            golden[f"{mode}.tokens_window"] = toks.to(torch.int64)
            facts[mode]["window"] = {"ngram_size": WINDOW_NGRAM, "window": WINDOW_SIZE,
                                     "whitelist": sorted(whitelist), "n_tokens": len(toks),
                                     "ends_with_eos": bool(int(toks[-1]) == EOS),
                                     "min_greedy_margin": margin,
                                     "min_router_margin": router,
                                     "guard_override_steps": overrides,
                                     "differs_from_hf": not torch.equal(
                                         toks[: NEW_TOKENS], golden[f"{mode}.tokens"])}
        print(f"{mode}: {facts[mode]['prompt_len']} prompt ids, {facts[mode]['n_tokens']} tokens, "
              f"margins {facts[mode]['min_greedy_margin']:.3g} / "
              f"{facts[mode]['min_router_margin']:.3g}")

    safetensors.torch.save_file({k: v.contiguous() for k, v in golden.items()},
                                out / "golden-ocr.safetensors",
                                metadata={"generator": "tests/reference/make_ocr_fixtures.py"})
    meta = {
        "generator": "tests/reference/make_ocr_fixtures.py",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "pillow": Image.__version__,
                     "numpy": np.__version__},
        "model": "tiny-ocr (tests/fixtures/tiny-ocr/model.safetensors, sha256 " +
                 hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() + ")",
        "image": {"file": "page.png", "width": image.width, "height": image.height},
        "prompt": PROMPT,
        "image_token_id": image_token_id,
        "max_tiles": MAX_TILES,
        "max_new_tokens": NEW_TOKENS,
        "no_repeat_ngram_size": HF_NGRAM,
        "eos_token_id": EOS,
        "modes": facts,
    }
    (out / "golden-ocr.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {len(golden)} goldens, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
