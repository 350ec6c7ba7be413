"""Weight-name mapping between transformers 5 DeepSeek-V2/V3 modules and the hub checkpoint layout.

transformers 5 keeps the routed experts of one MoE layer as two fused parameters:

    model.layers.N.mlp.experts.gate_up_proj   [E, 2*I, H]   (rows 0..I-1 = gate, I..2I-1 = up)
    model.layers.N.mlp.experts.down_proj      [E, H, I]

The released checkpoints (DeepSeek-V2, -V3, -OCR, -VL2) store one Linear per expert:

    model.layers.N.mlp.experts.E.gate_proj.weight   [I, H]
    model.layers.N.mlp.experts.E.up_proj.weight     [I, H]
    model.layers.N.mlp.experts.E.down_proj.weight   [H, I]

Every other name (attention, dense MLP, router `mlp.gate.weight`, `mlp.gate.e_score_correction_bias`,
`mlp.shared_experts.*`, norms, `model.embed_tokens.weight`, `lm_head.weight`, `score.weight`) is the same
in both layouts. `to_hub` and `from_hub` are exact inverses (pure slicing / stacking, no arithmetic).
"""

import re

import torch

_FUSED_GATE_UP = re.compile(r"^(.*\.mlp\.experts)\.gate_up_proj$")
_FUSED_DOWN = re.compile(r"^(.*\.mlp\.experts)\.down_proj$")
_PER_EXPERT = re.compile(r"^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


def to_hub(state_dict):
    """transformers state dict -> hub-layout dict (same tensors, split per expert)."""
    out = {}
    for name, t in state_dict.items():
        m = _FUSED_GATE_UP.match(name)
        if m:
            prefix = m.group(1)
            inter = t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{prefix}.{e}.gate_proj.weight"] = t[e, :inter, :].contiguous()
                out[f"{prefix}.{e}.up_proj.weight"] = t[e, inter:, :].contiguous()
            continue
        m = _FUSED_DOWN.match(name)
        if m:
            prefix = m.group(1)
            for e in range(t.shape[0]):
                out[f"{prefix}.{e}.down_proj.weight"] = t[e].contiguous()
            continue
        out[name] = t.contiguous()
    return out


def from_hub(hub):
    """hub-layout dict -> transformers state dict (per-expert Linears stacked into the fused tensors)."""
    out = {}
    experts = {}  # prefix -> {expert index -> {proj -> tensor}}
    for name, t in hub.items():
        m = _PER_EXPERT.match(name)
        if m:
            experts.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = t
            continue
        out[name] = t
    for prefix, by_index in experts.items():
        n = len(by_index)
        if sorted(by_index) != list(range(n)):
            raise ValueError(f"{prefix}: expert indices are not 0..{n - 1}")
        out[f"{prefix}.gate_up_proj"] = torch.stack(
            [torch.cat([by_index[e]["gate_proj"], by_index[e]["up_proj"]], dim=0) for e in range(n)]
        )
        out[f"{prefix}.down_proj"] = torch.stack([by_index[e]["down_proj"] for e in range(n)])
    return out
