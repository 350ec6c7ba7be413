#!/usr/bin/env python3
"""The reference side of the vision benchmark (bench/run-vision.sh).

    python3 bench/bench_vision_ref.py make-full OUT_DIR [--seed S]
        builds the full-size tower with the official modules (build_sam_vit_b(), build_clip_l(),
        MlpProjector(linear 2048 -> 1280)), fills it with seeded random values rounded to bf16,
        and writes OUT_DIR/model.safetensors (bf16, hub names, vision tensors only, 0.8 GB) and
        OUT_DIR/config.json (tests/fixtures/configs/deepseek-ocr.json, the hub config). It also
        runs the reference once in float32 on a 512 and a 1024 view and writes their projector
        outputs to OUT_DIR/reference.safetensors ("tiny.proj" [64, 1280], "base.proj"
        [256, 1280]) so that bench-vision can check the C tower at full size.
    python3 bench/bench_vision_ref.py time MODEL_DIR --mode M [--threads T] [--reps R]
        [--dtype f32|bf16]
        loads MODEL_DIR into the reference modules and times the views of mode M (tiny 512,
        small 640, base 1024, large 1280, gundam 1024 + 6 tiles of 640: sam_model, vision_model,
        projector per view, as _pixel_values_to_embedding runs them); prints one JSON line.

The reference code is imported as tests/reference/make_vision_fixtures.py does (DSOCR_OCR_REPO
or --ocr-repo: the DeepSeek-OCR-vllm directory of a checkout). Pixels come from the same
generator as the fixtures and bench-vision.c.
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import statistics
import sys
import time

import safetensors.torch
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reference"))
import make_vision_fixtures as mvf  # noqa: E402

MODES = {"tiny": [(512, 1)], "small": [(640, 2)], "base": [(1024, 3)], "large": [(1280, 4)],
         "gundam": [(1024, 3)] + [(640, s) for s in range(10, 16)]}


def build_full(ref):
    sam = ref.sam.build_sam_vit_b()
    clip = ref.clip.build_clip_l()
    proj = ref.linear.MlpProjector(ref.clip.adict(projector_type="linear", input_dim=2048,
                                                  n_embed=1280))
    return sam.eval(), clip.eval(), proj.eval()


def randomise(mods, gen):
    with torch.no_grad():
        for mod in mods:
            for name, p in mod.named_parameters():
                is_norm = name.endswith(".weight") and any(
                    t in name for t in ("norm1", "norm2", "layer_norm", "neck.1", "neck.3",
                                        "pre_layrnorm"))
                if is_norm:
                    v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
                elif "pos" in name or "class_embedding" in name:
                    v = 0.5 * torch.randn(p.shape, generator=gen)
                elif p.dim() == 1:
                    v = 0.1 * torch.randn(p.shape, generator=gen)
                else:
                    v = torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5
                p.copy_(v.to(torch.bfloat16).float())


def run_view(sam, clip, proj, px):
    s = sam(px)
    c = clip(px, s)
    return proj(torch.cat((c[:, 1:], s.flatten(2).permute(0, 2, 1)), dim=-1))


def make_full(args, ref):
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    sam, clip, proj = build_full(ref)
    randomise((sam, clip, proj), torch.Generator().manual_seed(args.seed))
    tensors = {}
    for prefix, mod in (("model.sam_model.", sam), ("model.vision_model.", clip),
                        ("model.projector.", proj)):
        for name, p in mod.named_parameters():
            tensors[prefix + name] = p.detach().to(torch.bfloat16).contiguous()
    gen = torch.Generator().manual_seed(args.seed + 1)
    tensors["model.image_newline"] = torch.randn(1280, generator=gen).to(torch.bfloat16)
    tensors["model.view_seperator"] = torch.randn(1280, generator=gen).to(torch.bfloat16)
    safetensors.torch.save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(HERE.parent / "tests" / "fixtures" / "configs" / "deepseek-ocr.json",
                out / "config.json")
    refs = {}
    with torch.no_grad():
        for mode, (size, seed) in (("tiny", (512, 1)), ("base", (1024, 3))):
            refs[f"{mode}.proj"] = run_view(sam, clip, proj, mvf.pixels(seed, size)[None])[0]
    safetensors.torch.save_file({k: v.contiguous() for k, v in refs.items()},
                                out / "reference.safetensors")
    print(f"{out}: {len(tensors)} tensors", file=sys.stderr)


def load(model_dir, ref, dtype):
    sam, clip, proj = build_full(ref)
    w = safetensors.torch.load_file(pathlib.Path(model_dir) / "model.safetensors")
    for prefix, mod in (("model.sam_model.", sam), ("model.vision_model.", clip),
                        ("model.projector.", proj)):
        sd = {k[len(prefix):]: v.float() for k, v in w.items() if k.startswith(prefix)}
        missing, unexpected = mod.load_state_dict(sd, strict=False)
        assert not unexpected and all(m.endswith("position_ids") for m in missing), missing
    return [m.to(dtype) for m in (sam, clip, proj)]


def time_mode(args, ref):
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    t0 = time.perf_counter()
    sam, clip, proj = load(args.model, ref, dtype)
    load_s = time.perf_counter() - t0
    views = [mvf.pixels(seed, size)[None].to(dtype) for size, seed in MODES[args.mode]]
    times = []
    with torch.inference_mode():
        for _ in range(args.reps):
            t0 = time.perf_counter()
            for px in views:
                run_view(sam, clip, proj, px)
            times.append(time.perf_counter() - t0)
    print(json.dumps({
        "impl": f"reference deepencoder (torch {torch.__version__}, {args.dtype})",
        "mode": args.mode, "views": len(views), "threads": args.threads, "reps": args.reps,
        "load_s": round(load_s, 3), "encode_s": round(statistics.median(times), 4),
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ocr-repo", default=os.environ.get("DSOCR_OCR_REPO"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-full")
    mk.add_argument("out")
    mk.add_argument("--seed", type=int, default=7)
    mk.add_argument("--threads", type=int, default=2)
    tm = sub.add_parser("time")
    tm.add_argument("model")
    tm.add_argument("--mode", choices=sorted(MODES), required=True)
    tm.add_argument("--threads", type=int, default=2)
    tm.add_argument("--reps", type=int, default=3)
    tm.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    args = ap.parse_args()
    if not args.ocr_repo:
        sys.exit("give --ocr-repo or DSOCR_OCR_REPO (see tests/reference/make_vision_fixtures.py)")
    ref = mvf.import_reference(args.ocr_repo)
    torch.manual_seed(0)
    (make_full if args.cmd == "make-full" else time_mode)(args, ref)


if __name__ == "__main__":
    main()
