#!/usr/bin/env python3
"""transformers' side of the decoder benchmark (bench/run-decoder.sh).

    python3 bench/bench_decoder_hf.py make-full OUT_DIR [--seed S]
        writes a random-weight checkpoint with the real DeepSeek-OCR decoder config (12 layers,
        hidden 1280, 64 routed + 2 shared experts, vocab 129280): OUT_DIR/config.json in the
        hub's deepseek_vl_v2 layout and OUT_DIR/model.safetensors (bf16, hub tensor names,
        6.7 GB), streamed tensor by tensor so it never sits in memory whole.
    python3 bench/bench_decoder_hf.py time MODEL_DIR [--prompt-len P] [--new-tokens N]
        [--threads T] [--reps R] [--dtype bf16|f32]
        loads MODEL_DIR (an OCR-decoder checkpoint as above, or tests/fixtures/tiny-ocr-decoder)
        into transformers' DeepseekOcr2TextModel + lm_head and times a prefill of P tokens and N
        single-token decode steps through the KV cache; prints one JSON line.

The token ids are those bench-decoder.c uses (bench_id below), so both sides do the same work:
the prompt, then N teacher-forced decode tokens (no sampling, no argmax dependence).
"""

import argparse
import json
import math
import pathlib
import resource
import statistics
import struct
import sys
import time

import torch
import transformers
from safetensors import safe_open

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reference"))

# The real DeepSeek-OCR language model (reference sheet 1.1).
FULL = dict(
    hidden_size=1280,
    num_hidden_layers=12,
    num_attention_heads=10,
    num_key_value_heads=10,
    intermediate_size=6848,
    moe_intermediate_size=896,
    n_routed_experts=64,
    n_shared_experts=2,
    num_experts_per_tok=6,
    first_k_dense_replace=1,
    vocab_size=129280,
    max_position_embeddings=8192,
)


def bench_id(i, vocab):
    """Deterministic ids in [3, min(vocab, 120000)): the same formula as bench-decoder.c."""
    span = min(vocab, 120000) - 3
    return 3 + ((i * 2654435761) & 0xFFFFFFFF) % span


# ---------------------------------------------------------------------------------------------
# make-full


def hub_tensors(c):
    """(name, shape, kind) of every decoder tensor in the hub layout, in file order."""
    H, V, L = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = H // nh
    out = [("model.embed_tokens.weight", (V, H), "embed")]
    for l in range(L):
        p = f"model.layers.{l}"
        out += [(f"{p}.input_layernorm.weight", (H,), "norm"),
                (f"{p}.post_attention_layernorm.weight", (H,), "norm"),
                (f"{p}.self_attn.q_proj.weight", (nh * hd, H), "linear"),
                (f"{p}.self_attn.k_proj.weight", (nkv * hd, H), "linear"),
                (f"{p}.self_attn.v_proj.weight", (nkv * hd, H), "linear"),
                (f"{p}.self_attn.o_proj.weight", (H, nh * hd), "linear")]
        if l < c["first_k_dense_replace"]:
            I = c["intermediate_size"]
            out += [(f"{p}.mlp.gate_proj.weight", (I, H), "linear"),
                    (f"{p}.mlp.up_proj.weight", (I, H), "linear"),
                    (f"{p}.mlp.down_proj.weight", (H, I), "linear")]
            continue
        I, S = c["moe_intermediate_size"], c["moe_intermediate_size"] * c["n_shared_experts"]
        out.append((f"{p}.mlp.gate.weight", (c["n_routed_experts"], H), "router"))
        for e in range(c["n_routed_experts"]):
            out += [(f"{p}.mlp.experts.{e}.gate_proj.weight", (I, H), "linear"),
                    (f"{p}.mlp.experts.{e}.up_proj.weight", (I, H), "linear"),
                    (f"{p}.mlp.experts.{e}.down_proj.weight", (H, I), "linear")]
        out += [(f"{p}.mlp.shared_experts.gate_proj.weight", (S, H), "linear"),
                (f"{p}.mlp.shared_experts.up_proj.weight", (S, H), "linear"),
                (f"{p}.mlp.shared_experts.down_proj.weight", (H, S), "linear")]
    out += [("model.norm.weight", (H,), "norm"), ("lm_head.weight", (V, H), "linear")]
    return out


def ocr_config(c):
    lm = {
        "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": c["first_k_dense_replace"],
        "hidden_size": c["hidden_size"], "intermediate_size": c["intermediate_size"],
        "kv_lora_rank": None, "lm_head": True, "max_position_embeddings": c["max_position_embeddings"],
        "moe_intermediate_size": c["moe_intermediate_size"], "n_group": 1,
        "n_routed_experts": c["n_routed_experts"], "n_shared_experts": c["n_shared_experts"],
        "num_attention_heads": c["num_attention_heads"], "num_experts_per_tok": c["num_experts_per_tok"],
        "num_hidden_layers": c["num_hidden_layers"], "num_key_value_heads": c["num_key_value_heads"],
        "q_lora_rank": None, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "rm_head": False,
        "topk_group": 1, "topk_method": "greedy", "use_mla": False, "v_head_dim": 0,
        "vocab_size": c["vocab_size"],
    }
    top = {
        "architectures": ["DeepseekOCRForCausalLM"],
        "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head",
        "language_config": dict(lm, architectures=["DeepseekV2ForCausalLM"], torch_dtype="bfloat16"),
        "model_type": "deepseek_vl_v2",
        "projector_config": {"input_dim": 2048, "model_type": "mlp_projector", "n_embed": 1280,
                             "projector_type": "linear"},
        "tile_tag": "2D",
        "torch_dtype": "bfloat16",
        "vision_config": {
            "image_size": 1024, "mlp_ratio": 3.7362, "model_name": "deeplip_b_l", "model_type": "vision",
            "width": {"clip-l-14-224": {"heads": 16, "image_size": 224, "layers": 24, "patch_size": 14,
                                        "width": 1024},
                      "sam_vit_b": {"downsample_channels": [512, 1024], "global_attn_indexes": [2, 5, 8, 11],
                                    "heads": 12, "layers": 12, "width": 768}},
        },
    }
    top.update(lm)
    return top


def make_full(out_dir, seed):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = hub_tensors(FULL)
    header, offset = {}, 0
    for name, shape, _ in tensors:
        n = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    gen = torch.Generator().manual_seed(seed)
    std = {"embed": 1.0, "linear": 0.02, "router": 0.05}
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, kind in tensors:
            if kind == "norm":
                t = torch.ones(shape, dtype=torch.bfloat16)
            else:
                t = torch.empty(shape, dtype=torch.float32).normal_(0.0, std[kind], generator=gen)
                t = t.to(torch.bfloat16)
            f.write(t.contiguous().view(torch.uint16).numpy().tobytes())
    (out / "config.json").write_text(json.dumps(ocr_config(FULL), indent=2) + "\n")
    print(f"{out}: {offset / 1e9:.2f} GB of bf16 weights, {len(tensors)} tensors")


# ---------------------------------------------------------------------------------------------
# time


def load_ocr_decoder(model_dir, dtype):
    """transformers' DeepseekOcr2TextModel + lm_head with the checkpoint's weights, built on the
    meta device and filled layer by layer (peak memory = one copy of the weights)."""
    from make_decoder_fixtures import OcrDecoderForCausalLM  # the fixtures' reference class
    from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig
    from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextRotaryEmbedding

    raw = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    lm = raw.get("language_config", raw)
    n_layers = lm["num_hidden_layers"]
    first_dense = lm.get("first_k_dense_replace", 0)
    config = DeepseekOcr2TextConfig(
        vocab_size=lm["vocab_size"], hidden_size=lm["hidden_size"],
        intermediate_size=lm["intermediate_size"], moe_intermediate_size=lm["moe_intermediate_size"],
        num_hidden_layers=n_layers, num_attention_heads=lm["num_attention_heads"],
        num_key_value_heads=lm["num_key_value_heads"], n_routed_experts=lm["n_routed_experts"],
        n_shared_experts=lm["n_shared_experts"], num_experts_per_tok=lm["num_experts_per_tok"],
        first_k_dense_replace=first_dense, topk_method="greedy", n_group=1, topk_group=1,
        routed_scaling_factor=1.0, max_position_embeddings=lm["max_position_embeddings"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rms_norm_eps=1e-6,
        bos_token_id=0, eos_token_id=1, tie_word_embeddings=False,
        mlp_layer_types=["dense" if l < first_dense else "sparse" for l in range(n_layers)],
    )
    with torch.device("meta"):
        model = OcrDecoderForCausalLM._from_config(config, dtype=dtype)
    sd = {}
    with safe_open(str(pathlib.Path(model_dir) / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        for name in sorted(names):
            if ".mlp.experts." in name:
                continue
            sd[name] = f.get_tensor(name).to(dtype)
        for l in range(n_layers):
            p = f"model.layers.{l}.mlp.experts"
            if f"{p}.0.gate_proj.weight" not in names:
                continue
            E = config.n_routed_experts
            sd[f"{p}.gate_up_proj"] = torch.stack([
                torch.cat([f.get_tensor(f"{p}.{e}.gate_proj.weight"), f.get_tensor(f"{p}.{e}.up_proj.weight")])
                for e in range(E)]).to(dtype)
            sd[f"{p}.down_proj"] = torch.stack([f.get_tensor(f"{p}.{e}.down_proj.weight") for e in range(E)]).to(dtype)
    missing, unexpected = model.load_state_dict(sd, strict=False, assign=True)
    if unexpected or any("rotary" not in m for m in missing):
        raise RuntimeError(f"missing {missing}, unexpected {unexpected}")
    model.model.rotary_emb = DeepseekOcr2TextRotaryEmbedding(config)
    model.eval()
    return model


def time_model(args):
    torch.set_num_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    t0 = time.perf_counter()
    model = load_ocr_decoder(args.model, dtype)
    load_s = time.perf_counter() - t0
    V = model.config.vocab_size
    prompt = torch.tensor([[0] + [bench_id(i, V) for i in range(1, args.prompt_len)]])
    steps = [bench_id(args.prompt_len + s, V) for s in range(args.new_tokens)]
    prefill, decode = [], []
    with torch.inference_mode():
        for _ in range(args.reps):
            cache = transformers.DynamicCache(config=model.config)
            t0 = time.perf_counter()
            out = model(input_ids=prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
            prefill.append(time.perf_counter() - t0)
            cache = out.past_key_values
            t0 = time.perf_counter()
            for tok in steps:
                out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                out.logits[0, -1].argmax()
            decode.append(time.perf_counter() - t0)
    p, d = statistics.median(prefill), statistics.median(decode)
    print(json.dumps({
        "impl": f"transformers {transformers.__version__} ({args.dtype}, sdpa)",
        "model": str(args.model), "threads": args.threads, "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens, "reps": args.reps, "load_s": round(load_s, 3),
        "prefill_s": round(p, 4), "prefill_tok_s": round(args.prompt_len / p, 2),
        "prefill_best_tok_s": round(args.prompt_len / min(prefill), 2),
        "decode_s": round(d, 4), "decode_tok_s": round(args.new_tokens / d, 2),
        "decode_best_tok_s": round(args.new_tokens / min(decode), 2),
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-full")
    mk.add_argument("out")
    mk.add_argument("--seed", type=int, default=1234)
    tm = sub.add_parser("time")
    tm.add_argument("model")
    tm.add_argument("--prompt-len", type=int, default=128)
    tm.add_argument("--new-tokens", type=int, default=32)
    tm.add_argument("--threads", type=int, default=2)
    tm.add_argument("--reps", type=int, default=3)
    tm.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()
    if args.cmd == "make-full":
        make_full(args.out, args.seed)
    else:
        time_model(args)


if __name__ == "__main__":
    main()
