#!/usr/bin/env python3
"""Golden fixtures for the CPU kernels' RoPE tables and rotations (tests/fixtures/kernels/rope.txt).

    python3 tests/reference/make_kernel_goldens.py

The other kernels are checked against double-precision math written in their tests; RoPE is checked
against transformers itself because its f32 table arithmetic (inv_freq, YaRN ramp, angles) is what an
implementation has to reproduce bit for bit to stay within 1e-4 at large positions.

What runs the reference (imported, nothing copied):
  tables          LlamaRotaryEmbedding (default and "yarn" rope types, ROPE_INIT_FUNCTIONS) -> cos, sin
  rotate-half     transformers.models.llama.modeling_llama.apply_rotary_pos_emb
  interleaved     transformers.models.deepseek_v2.modeling_deepseek_v2.apply_rotary_emb (complex form)

File format, one record per line: `<key> <count> <values...>`; `case <name>` starts a case. Floats are
written with 9 significant digits (exact for f32).
"""

import pathlib

import torch
from transformers import LlamaConfig
from transformers.models.deepseek_v2.modeling_deepseek_v2 import apply_rotary_emb
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "kernels" / "rope.txt"
POSITIONS = [0, 1, 2, 7, 97, 257, 1000, 4095, 8191, 100000]


def fmt(key, values):
    vals = " ".join(f"{float(v):.9g}" if isinstance(v, float) else str(v) for v in values)
    return f"{key} {len(values)} {vals}"


def table_case(lines, name, rot_dim, theta, yarn):
    params = {"rope_type": "default", "rope_theta": theta}
    if yarn:
        params = {"rope_type": "yarn", "rope_theta": theta, "factor": yarn["factor"],
                  "original_max_position_embeddings": yarn["original"],
                  "beta_fast": yarn["beta_fast"], "beta_slow": yarn["beta_slow"],
                  "mscale": yarn["mscale"], "mscale_all_dim": yarn["mscale_all_dim"]}
    # max_position_embeddings only matters to transformers' consistency warning for yarn
    max_pos = int(yarn["factor"] * yarn["original"]) if yarn else 8192
    cfg = LlamaConfig(hidden_size=rot_dim * 2, num_attention_heads=2, head_dim=rot_dim,
                      max_position_embeddings=max_pos, rope_parameters=params)
    rot = LlamaRotaryEmbedding(cfg)
    pos = torch.tensor([POSITIONS])
    cos, sin = rot(torch.zeros(1, dtype=torch.float32), pos)   # [1, n_pos, rot_dim]
    half = rot_dim // 2
    # cos/sin are cat(freqs, freqs): both halves equal, keep the first
    assert torch.equal(cos[..., :half], cos[..., half:])
    lines.append(f"case {name}")
    lines.append(fmt("rot_dim", [rot_dim]))
    lines.append(fmt("theta", [float(theta)]))
    if yarn:
        lines.append(fmt("yarn", [float(yarn["factor"]), yarn["original"], float(yarn["beta_fast"]),
                                  float(yarn["beta_slow"]), float(yarn["mscale"]),
                                  float(yarn["mscale_all_dim"])]))
    lines.append(fmt("inv_freq", [float(v) for v in rot.inv_freq]))
    lines.append(fmt("attention_factor", [float(rot.attention_scaling)]))
    lines.append(fmt("positions", POSITIONS))
    lines.append(fmt("cos", [float(v) for v in cos[0, :, :half].flatten()]))
    lines.append(fmt("sin", [float(v) for v in sin[0, :, :half].flatten()]))
    return rot


def apply_case(lines, name, rot, rot_dim, nope, interleaved):
    """x: [tokens, heads, nope + rot_dim]; the rope part sits after the nope part as in MLA."""
    g = torch.Generator().manual_seed(7)
    tokens, heads = 5, 3
    x = torch.randn(tokens, heads, nope + rot_dim, generator=g)
    positions = torch.tensor([[3, 0, 4095, 17, 100000]])
    part = x[..., nope:].transpose(0, 1).unsqueeze(0)             # [1, heads, tokens, rot_dim]
    if interleaved:
        freqs = positions[..., None].float() * rot.inv_freq.float()   # as DeepseekV2RotaryEmbedding
        freqs_cis = torch.polar(torch.ones_like(freqs), freqs) * rot.attention_scaling
        out, _ = apply_rotary_emb(part, part, freqs_cis)
    else:
        cos, sin = rot(x, positions)
        out, _ = apply_rotary_pos_emb(part, part, cos, sin)
    y = x.clone()
    y[..., nope:] = out[0].transpose(0, 1)
    lines.append(f"case {name}")
    lines.append(fmt("shape", [tokens, heads, nope, rot_dim]))
    lines.append(fmt("mode", [1 if interleaved else 0]))
    lines.append(fmt("positions", positions[0].tolist()))
    lines.append(fmt("x", [float(v) for v in x.flatten()]))
    lines.append(fmt("y", [float(v) for v in y.flatten()]))


def main():
    torch.set_num_threads(1)
    lines = ["# RoPE goldens from transformers; written by tests/reference/make_kernel_goldens.py"]
    plain128 = table_case(lines, "plain-128", 128, 10000.0, None)
    table_case(lines, "plain-64", 64, 10000.0, None)
    v2lite = dict(factor=40.0, original=4096, beta_fast=32.0, beta_slow=1.0, mscale=0.707,
                  mscale_all_dim=0.707)
    yarn64 = table_case(lines, "yarn-v2-lite", 64, 10000.0, v2lite)
    tiny = dict(factor=40.0, original=64, beta_fast=32.0, beta_slow=1.0, mscale=0.707,
                mscale_all_dim=0.707)
    table_case(lines, "yarn-tiny-16", 16, 10000.0, tiny)
    scaled = dict(factor=16.0, original=2048, beta_fast=32.0, beta_slow=2.0, mscale=1.0,
                  mscale_all_dim=0.5)
    yarn_scaled = table_case(lines, "yarn-scaled-32", 32, 50000.0, scaled)
    apply_case(lines, "apply-half-128", plain128, 128, 0, False)
    apply_case(lines, "apply-interleaved-yarn-64", yarn64, 64, 128, True)
    apply_case(lines, "apply-interleaved-scaled-32", yarn_scaled, 32, 16, True)
    apply_case(lines, "apply-half-yarn-64", yarn64, 64, 8, False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
