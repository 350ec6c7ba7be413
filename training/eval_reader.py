#!/usr/bin/env python3
"""The held-out pages of dsocr-reader and the reference's reading of them.

    python3 training/eval_reader.py make-set --out tests/fixtures/reader-eval --pages 40
    DSOCR_OCR_REPO=<DeepSeek-OCR checkout>/DeepSeek-OCR-master/DeepSeek-OCR-vllm \\
        python3 training/eval_reader.py reference --model models/dsocr-reader \\
            --set tests/fixtures/reader-eval

make-set renders pages 1..N of training/synthpages.py (training uses seeds from 10**6 on) to
page-NNN.png and writes truth.json: per page its file, size, the text (lines, title first) and
the boxes of its grounded blocks in 0..999 coordinates.

reference reads every page twice, with "<image>\\nFree OCR." and with the grounding prompt,
exactly as DeepSeek-OCR's infer() does in tiny mode, everything imported:
  pixels   tests/reference/make_preprocess_goldens.reference_preprocess (Pillow: resize to
           512 x 512, ToTensor + Normalize(0.5, 0.5)), then the bf16 cast infer() applies;
  vision   the official deepencoder SAM / CLIP / projector holding the model's weights and the
           view packing of DeepseekOCRForCausalLM._pixel_values_to_embedding;
  decoder  transformers' DeepseekOcr2TextModel + lm_head on the same weights, float32;
  greedy   transformers' generate(), no_repeat_ngram_size 20 (infer()'s guard), EOS stops.
It writes reference.json (per page and prompt: the generated ids and text) and prints the
character error rate (CER) against truth.json, computed as tests/engine/test-reader.c does:
the text of the output (grounding tags and '# ' removed, lines stripped, empty lines dropped)
against the page's lines, Levenshtein distance over characters summed over pages / the number
of truth characters.
"""

import argparse
import json
import os
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "reference"))

import synthpages  # noqa: E402

MAX_NEW_TOKENS = 256
HF_NGRAM = 20


def make_set(out, pages):
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for seed in range(1, pages + 1):
        img, t = synthpages.make_page(seed)
        name = f"page-{seed:03d}.png"
        img.save(out / name, optimize=True)
        boxes = [[int(v) for v in m] for m in
                 re.findall(r"<\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>",
                            t["grounding"])]
        truth.append({"file": name, "seed": seed, "size": t["size"], "text": t["free"],
                      "boxes": boxes})
    (out / "truth.json").write_text(json.dumps({"pages": truth}, indent=1) + "\n")


def text_of(output):
    s = re.sub(r"<\|ref\|>.*?<\|/ref\|>", "", output, flags=re.S)
    s = re.sub(r"<\|det\|>.*?<\|/det\|>", "", s, flags=re.S)
    lines = []
    for line in s.split("\n"):
        line = line.strip()
        if line.startswith("# "):
            line = line[2:].strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference(model_dir, set_dir, ocr_repo):
    import make_decoder_fixtures as dec  # transformers before the reference's stand-ins
    import make_ocr_fixtures as ocrfx
    import make_preprocess_goldens as pre
    import make_vision_fixtures as vis
    import safetensors.torch
    import tokenizers
    import torch
    import transformers
    from dsv2_hub_layout import from_hub
    import train_reader as tr

    ref = vis.import_reference(ocr_repo)
    cfg = json.loads((model_dir / "config.json").read_text())
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    image_token_id = cfg["image_token_id"]
    weights = safetensors.torch.load_file(str(model_dir / "model.safetensors"))

    sam, clip, proj = tr.build_vision(ref)
    newline = torch.nn.Parameter(torch.zeros(tr.N_EMBED))
    sep = torch.nn.Parameter(torch.zeros(tr.N_EMBED))
    vis.load_hub_towers((sam, clip, proj, newline, sep), weights)
    for m in (sam, clip, proj):
        m.eval()
    lm = tr.build_decoder(cfg["vocab_size"])
    lm.config._attn_implementation = "eager"
    missing, unexpected = lm.load_state_dict({k: v.float() for k, v in from_hub(weights).items()},
                                             strict=False)
    if missing or unexpected:
        sys.exit(f"decoder: missing {missing}, unexpected {unexpected}")
    lm.eval()
    packer = vis.packer(ref, sam, clip, proj, newline, sep)

    truth = json.loads((set_dir / "truth.json").read_text())["pages"]
    results, edits, chars, ious = [], {"free": 0, "grounding": 0}, 0, []
    min_margin = float("inf")
    for page in truth:
        image = ocrfx.load_page(set_dir / page["file"])
        _, _, g, _, _ = pre.reference_preprocess(image, "tiny", 9)
        with torch.no_grad():
            packed = packer._pixel_values_to_embedding(
                pixel_values=g.to(torch.bfloat16)[None, None],
                images_crop=torch.zeros(1, 1, 1, 3, 640, 640),
                images_spatial_crop=torch.tensor([[[1, 1]]]))[0].float()
        assert packed.shape[0] == tr.N_IMAGE_TOKENS, packed.shape
        entry = {"file": page["file"]}
        for kind, prompt in (("free", synthpages.PROMPT_FREE),
                             ("grounding", synthpages.PROMPT_GROUNDING)):
            before, after = prompt.strip().split("<image>")
            ids = [tr.BOS] + tok.encode(before, add_special_tokens=False).ids
            ids += [image_token_id] * packed.shape[0] + tok.encode(after, add_special_tokens=False).ids
            ids = torch.tensor([ids])
            with torch.no_grad():
                e = lm.model.embed_tokens(ids)
                e = e.masked_scatter((ids == image_token_id).unsqueeze(-1), packed)
                out = lm.generate(input_ids=ids, inputs_embeds=e,
                                  attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=MAX_NEW_TOKENS, no_repeat_ngram_size=HF_NGRAM,
                                  eos_token_id=tr.EOS, pad_token_id=tr.PAD,
                                  output_scores=True, return_dict_in_generate=True)
            new = out.sequences[0, ids.shape[1]:].tolist()
            # how close each greedy choice came to a tie (an f32 port differs by ~1e-6)
            top2 = torch.stack(out.scores, 1)[0].topk(2, dim=-1).values
            margin = float((top2[:, 0] - top2[:, 1]).min())
            text = ocrfx.raw_text(tok, new)
            d = levenshtein(text_of(text), page["text"])
            edits[kind] += d
            entry[kind] = {"tokens": new, "text": text, "edits": d, "min_margin": margin}
            min_margin = min(min_margin, margin)
            if kind == "grounding":
                got = [[int(v) for v in m] for m in
                       re.findall(r"<\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>", text)]
                for k, b in enumerate(page["boxes"]):
                    ious.append(iou(b, got[k]) if k < len(got) else 0.0)
        chars += len(page["text"])
        results.append(entry)
        print(f"{page['file']}: free {entry['free']['edits']} grounding "
              f"{entry['grounding']['edits']} / {len(page['text'])}", flush=True)
    summary = {"pages": len(truth), "truth_chars": chars,
               "cer_free": edits["free"] / chars, "cer_grounding": edits["grounding"] / chars,
               "mean_box_iou": sum(ious) / max(1, len(ious)),
               "min_greedy_margin": min_margin,
               "max_new_tokens": MAX_NEW_TOKENS, "no_repeat_ngram_size": HF_NGRAM,
               "mode": "tiny",
               "prompts": {"free": synthpages.PROMPT_FREE,
                           "grounding": synthpages.PROMPT_GROUNDING},
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "tokenizers": tokenizers.__version__}}
    (set_dir / "reference.json").write_text(
        json.dumps({"summary": summary, "pages": results}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("make-set")
    a.add_argument("--out", type=pathlib.Path, required=True)
    a.add_argument("--pages", type=int, default=40)
    b = sub.add_parser("reference")
    b.add_argument("--model", type=pathlib.Path, required=True)
    b.add_argument("--set", type=pathlib.Path, required=True)
    b.add_argument("--ocr-repo", default=os.environ.get("DSOCR_OCR_REPO"))
    args = ap.parse_args()
    if args.cmd == "make-set":
        make_set(args.out, args.pages)
    else:
        if not args.ocr_repo:
            sys.exit("give --ocr-repo or DSOCR_OCR_REPO (the DeepSeek-OCR-vllm directory)")
        reference(args.model, args.set, args.ocr_repo)


if __name__ == "__main__":
    main()
