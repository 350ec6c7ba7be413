#!/usr/bin/env python3
"""Golden fixtures for DeepSeek-V3.2 sparse attention (DSA): tests/fixtures/tiny-v32/ and tiny-v32-fp8/.

    python3 tests/reference/make_dsa_fixtures.py                 # write both fixtures
    python3 tests/reference/make_dsa_fixtures.py --only tiny-v32

The reference is transformers' DeepseekV32ForCausalLM (models/deepseek_v32, eager attention, float32), run
on a tiny random model whose weights are rounded to bf16 and stored in the hub checkpoint layout. What that
class does not expose is taken from it without copying its code:

- indexer scores I(t, s): the tensor the library's DeepseekV32Indexer hands to `topk` (captured by wrapping
  torch.Tensor.topk while an indexer runs), cross-checked against the release formula of the reference
  sheet (section 10.2) evaluated here on the indexer's captured inputs;
- top-k indices: the indexer's own output (forward hook);
- KL target p(t, :): the library's attention probabilities (`output_attentions`, the sparse mask applied)
  summed over heads and L1-normalised, `sum / (sum + 1e-10)`, as the DeepSeek-V3.2 API document defines
  `output_indexer_kl_target`;
- KL loss: that document's `compute_indexer_kl_loss`: per layer the mean over (batch, query) of
  sum_s p * (log(p + 1e-10) - log_softmax(I)), masked keys at the additive mask's finfo.min, then the
  mean over layers.

tiny-v32 holds one checkpoint and three configs:
  config.json            index_topk 6 < the 16-token prompt: sparse prefill and sparse decode
  config-dense-topk.json index_topk 64 >= every sequence here: the indexer runs, nothing is masked
  config-no-sparse.json  use_sparse_attention false: the plain MLA decoder (reference DeepseekV3ForCausalLM
                         on the same weights without the indexer)
tiny-v32-fp8 is the same architecture with FP8 e4m3 weights and block scales (weight_scale_inv).
"""

import argparse
import json
import pathlib
import platform
import re
import sys
import tempfile

import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
import transformers
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, DeepseekV32Config, DeepseekV32ForCausalLM
from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from dsv2_hub_layout import from_hub, to_hub  # noqa: E402
from make_decoder_fixtures import classic_rope_fields, logit_margin, router_margin, routers_of  # noqa: E402

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

VOCAB = 320
N_USED_IDS = 300
BOS, EOS, PAD = 0, 1, 2
SEQ = 16
SHORT = 9            # real tokens of the left-padded batch row
NEW_TOKENS = 40
INDEX_TOPK = 6
DENSE_TOPK = 64      # >= SEQ + NEW_TOKENS
FP8_BLOCK = [32, 48] # rows, cols: partial blocks on both axes of most tiny matrices
FP8_MAX = 448.0

MIN_LOGIT_MARGIN = 2e-4
MIN_INDEX_MARGIN = 2e-4
MIN_ROUTER_MARGIN = 2e-5

STD_EMBED, STD_LINEAR, STD_ROUTER, STD_NORM, STD_NORM_BIAS = 1.0, 0.1, 0.2, 0.1, 0.1
E_BIAS_RANGE = 0.15

ROPE = {
    "rope_type": "yarn",
    "rope_theta": 10000.0,
    "factor": 40.0,
    "original_max_position_embeddings": 64,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
}

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_shared_experts=1,
    n_routed_experts=8,
    routed_scaling_factor=2.5,
    kv_lora_rank=32,
    q_lora_rank=32,
    qk_rope_head_dim=16,
    v_head_dim=16,
    qk_nope_head_dim=16,
    n_group=4,
    topk_group=2,
    num_experts_per_tok=3,
    first_k_dense_replace=1,
    norm_topk_prob=True,
    max_position_embeddings=2560,
    rms_norm_eps=1e-6,
    bos_token_id=BOS,
    eos_token_id=EOS,
    tie_word_embeddings=False,
    attention_bias=False,
    rope_parameters=ROPE,
)
INDEXER = dict(index_n_heads=8, index_head_dim=32)

SPECS = {
    "tiny-v32": dict(seed=6101, fp8=False),
    "tiny-v32-fp8": dict(seed=6215, fp8=True),
}


# ---------------------------------------------------------------------------------------------------------
# Models and weights


def v32_model(index_topk):
    config = DeepseekV32Config(**COMMON, **INDEXER, index_topk=index_topk)
    config._attn_implementation = "eager"
    return DeepseekV32ForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32).eval()


def v3_model():
    config = DeepseekV3Config(**COMMON, rope_interleave=True)
    config._attn_implementation = "eager"
    return DeepseekV3ForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32).eval()


def init_weights(model, gen):
    """Seeded weights rounded to bf16 (kept as f32); e_score_correction_bias stays f32."""
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            shape = t.shape
            if name.endswith("e_score_correction_bias"):
                t.copy_((torch.rand(shape, generator=gen) * 2 - 1) * E_BIAS_RANGE)
                continue
            if name.endswith("k_norm.bias"):
                value = STD_NORM_BIAS * torch.randn(shape, generator=gen)
            elif "norm" in name:
                value = 1.0 + STD_NORM * torch.randn(shape, generator=gen)
            elif "embed_tokens" in name:
                value = STD_EMBED * torch.randn(shape, generator=gen)
            elif name.endswith("mlp.gate.weight"):
                value = STD_ROUTER * torch.randn(shape, generator=gen)
            else:
                value = STD_LINEAR * torch.randn(shape, generator=gen)
            t.copy_(value.to(torch.bfloat16).float())


def load_state(model, sd):
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"missing {missing}, unexpected {unexpected}")


# Linear weights the V3 / V3.2 release checkpoints store as FP8 (2-D, inside the decoder layers); the router
# (mlp.gate), the indexer's weights_proj, norms, embeddings and lm_head stay in higher precision.
_FP8_NAME = re.compile(r"^model\.layers\.\d+\..*(proj|proj_with_mqa|wq_b|wk)\.weight$")


def is_fp8_weight(name):
    return bool(_FP8_NAME.match(name)) and not name.endswith("weights_proj.weight")


def quantize_block_fp8(w, block, ue8m0):
    """w [rows, cols] f32 -> (e4m3 weight, f32 weight_scale_inv [ceil(rows/bm), ceil(cols/bn)]) with
    scale = amax / 448 per block (a power of two rounded up with ue8m0), as DeepSeek's release quantiser.
    Partial blocks at the edges have their own scale."""
    rows, cols = w.shape
    bm, bn = block
    nr, nc = -(-rows // bm), -(-cols // bn)
    scale = torch.empty(nr, nc, dtype=torch.float32)
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(nr):
        for j in range(nc):
            blk = w[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn]
            amax = float(blk.abs().max().clamp(min=1e-4))
            s = amax / FP8_MAX
            if ue8m0:
                s = float(2.0 ** torch.ceil(torch.log2(torch.tensor(s))))
            scale[i, j] = s
            q[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn] = (blk / scale[i, j]).clamp(-FP8_MAX, FP8_MAX).to(
                torch.float8_e4m3fn)
    return q, scale


def dequantize(q, scale, block):
    """The library's FP8 block dequantisation (handles partial edge blocks)."""
    return _dequantize_fp8_weight(q, scale, list(block), torch.float32)


def hub_checkpoint(model, fp8):
    """(file dict, dict of the weights the reference must run on). BF16 tensors under the hub names; with
    fp8 the decoder layers' Linear weights become F8_E4M3 + weight_scale_inv and weights_proj is F32."""
    hub = to_hub({k: v.detach().clone() for k, v in model.state_dict().items()})
    out, ref = {}, {}
    for name, t in sorted(hub.items()):
        if name.endswith("e_score_correction_bias"):
            out[name] = t.float()
        elif fp8 and is_fp8_weight(name):
            q, s = quantize_block_fp8(t.float(), FP8_BLOCK, ue8m0=True)
            out[name] = q
            out[name + "_scale_inv"] = s
            ref[name] = dequantize(q, s, FP8_BLOCK)
            continue
        elif fp8 and name.endswith("weights_proj.weight"):
            out[name] = t.float()
        else:
            out[name] = t.to(torch.bfloat16)
        ref[name] = out[name].float()
    return out, ref


# ---------------------------------------------------------------------------------------------------------
# Config files


def config_json(model, fp8, **extra):
    with tempfile.TemporaryDirectory() as tmp:
        model.config.save_pretrained(tmp)
        d = json.loads((pathlib.Path(tmp) / "config.json").read_text())
    d["dtype"] = "bfloat16"
    d["torch_dtype"] = "bfloat16"
    d["architectures"] = ["DeepseekV32ForCausalLM"]
    d.update(classic_rope_fields(ROPE))
    d["moe_layer_freq"] = 1
    d["topk_method"] = "noaux_tc"
    d["scoring_func"] = "sigmoid"
    d["num_nextn_predict_layers"] = 0
    d["ep_size"] = 1
    if fp8:
        d["quantization_config"] = {
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "quant_method": "fp8",
            "scale_fmt": "ue8m0",
            "weight_block_size": FP8_BLOCK,
        }
    d.update(extra)
    return dict(sorted(d.items()))


# ---------------------------------------------------------------------------------------------------------
# Capturing the library's indexer


class Capture:
    """Records, for every indexer call, its inputs, the scores it ranks and the top-k it returns; plus
    per-layer outputs, router decisions and the final norm of the last forward."""

    def __init__(self, model):
        self.model = model
        self.calls = []     # dicts: layer, x, q_resid, scores, topk
        self.hidden = {}
        self.router = {}
        self._active = None
        self._handles = []
        self._orig_topk = None

    def __enter__(self):
        layers = self.model.model.layers
        for i, layer in enumerate(layers):
            self._handles.append(layer.register_forward_hook(self._on_layer(i)))
            ind = getattr(layer.self_attn, "indexer", None)
            if ind is not None:
                self._handles.append(ind.register_forward_pre_hook(self._on_indexer_in(i), with_kwargs=True))
                self._handles.append(ind.register_forward_hook(self._on_indexer_out))
        for i, gate in routers_of(self.model).items():
            self._handles.append(gate.register_forward_hook(self._on_router(i)))
        self._handles.append(layers[0].register_forward_pre_hook(self._on_embed, with_kwargs=True))
        self._handles.append(self.model.model.norm.register_forward_hook(self._on_norm))
        self._orig_topk = torch.Tensor.topk
        capture = self

        def topk(tensor, *args, **kwargs):
            if capture._active is not None and "scores" not in capture._active:
                capture._active["scores"] = tensor.detach().clone()
            return capture._orig_topk(tensor, *args, **kwargs)

        torch.Tensor.topk = topk
        return self

    def __exit__(self, *exc):
        torch.Tensor.topk = self._orig_topk
        for h in self._handles:
            h.remove()

    def _on_layer(self, i):
        def hook(mod, args, out):
            self.hidden[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    def _on_embed(self, mod, args, kwargs):
        self.embeddings = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    def _on_norm(self, mod, args, out):
        self.final_norm = out.detach().clone()

    def _on_router(self, i):
        def hook(mod, args, out):
            self.router[i] = out[0].detach().clone()
        return hook

    def _on_indexer_in(self, i):
        def hook(mod, args, kwargs):
            self._active = {"layer": i, "x": args[0].detach().clone(), "q_resid": args[1].detach().clone(),
                            "cos_sin": tuple(t.detach().clone() for t in args[2])}
        return hook

    def _on_indexer_out(self, mod, args, out):
        self._active["topk"] = out.detach().clone()
        self.calls.append(self._active)
        self._active = None


def visible_mask(batch, n_q, n_kv, past, key_valid=None):
    """[B, T, S] True where query t (cache column past + t) may see key s."""
    t = torch.arange(n_q).unsqueeze(-1) + past
    s = torch.arange(n_kv).unsqueeze(0)
    vis = (s <= t).unsqueeze(0).expand(batch, -1, -1).clone()
    if key_valid is not None:
        vis &= key_valid.bool().unsqueeze(1)
    return vis


def release_scores(ind, x, q_resid, cos_sin, rope_dim):
    """The sheet's release formula (section 10.2) in exact arithmetic: RoPE on the FIRST rope_dim dims,
    half-split pairs (i, i + rope_dim/2); k = LayerNorm(x Wk) with weight and bias; ReLU before the
    head-weighted sum; weights = proj(x) * n_heads^-0.5 * head_dim^-0.5. (Hadamard and FP8 omitted.)"""
    B, T, _ = x.shape
    H, D = ind.n_heads, ind.head_dim
    cos, sin = cos_sin
    half = rope_dim // 2
    c, s = cos[..., :half], sin[..., :half]                    # [B, T, half]

    def rope(v):                                                 # v [B, T, (heads,) D]
        extra = v.dim() - 3
        cc = c.reshape(*c.shape[:2], *([1] * extra), half)
        ss = s.reshape(*s.shape[:2], *([1] * extra), half)
        a, b, rest = v[..., :half], v[..., half:rope_dim], v[..., rope_dim:]
        return torch.cat([a * cc - b * ss, b * cc + a * ss, rest], dim=-1)

    q = rope((q_resid @ ind.wq_b.weight.T).view(B, T, H, D))
    k = rope(F.layer_norm(x @ ind.wk.weight.T, (D,), ind.k_norm.weight, ind.k_norm.bias, 1e-6))
    w = (x @ ind.weights_proj.weight.T) * H ** -0.5 * D ** -0.5   # [B, T, H]
    dots = torch.einsum("bthd,bsd->bths", q, k)
    return torch.einsum("bth,bths->bts", w, F.relu(dots))


def kl_target_of(attn):
    """[B, heads, T, S] attention probabilities -> head-summed, L1-normalised [B, T, S]."""
    total = attn.sum(dim=1)
    return total / (total.sum(dim=-1, keepdim=True) + 1e-10)


def kl_loss(scores, targets, visible):
    """compute_indexer_kl_loss of the DeepSeek-V3.2 API document (masked keys at finfo.min)."""
    total = 0.0
    for I, p in zip(scores, targets):
        I = I.masked_fill(~visible, torch.finfo(torch.float32).min)
        log_q = F.log_softmax(I, dim=-1)
        total = total + (p * (torch.log(p + 1e-10) - log_q)).sum(-1).mean()
    return total / len(scores)


def topk_margin(scores, visible, k):
    """Smallest gap between the k-th and (k+1)-th visible score over the queries that see more than k keys."""
    best = float("inf")
    flat_s = scores.reshape(-1, scores.shape[-1])
    flat_v = visible.reshape(-1, visible.shape[-1])
    for row, vis in zip(flat_s, flat_v):
        vals = row[vis].sort(descending=True).values
        if vals.numel() > k:
            best = min(best, float(vals[k - 1] - vals[k]))
    return best


# ---------------------------------------------------------------------------------------------------------


class Fixture:
    def __init__(self, name, spec):
        self.name, self.spec = name, spec
        self.dir = FIXTURES / name
        self.goldens = {}   # file name -> {tensor name -> tensor}
        self.facts = {}
        self.checks = []

    def put(self, file, key, tensor):
        t = tensor.detach().clone().contiguous()
        t = t.to(torch.int64) if t.dtype in (torch.int32, torch.int64, torch.bool) else t.to(torch.float32)
        self.goldens.setdefault(file, {})[key] = t


def prompt_ids(gen, n):
    ids = torch.randint(3, N_USED_IDS, (1, n), generator=gen)
    ids[0, 0] = BOS
    return ids


def greedy(model, ids, n_new):
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=n_new, pad_token_id=PAD, output_logits=True, return_dict_in_generate=True)
    new = out.sequences[:, ids.shape[1]:]
    if new.shape[1] != n_new:
        raise RuntimeError("generation stopped early")
    return new, torch.stack(out.logits, 1)


def indexer_goldens(fx, file, model, ids, index_topk, prefix=""):
    """Prefill forward with the indexer outputs: scores, top-k, KL target, KL loss, plus logits and
    per-layer states. Returns the facts' margins."""
    cfg = model.config
    n_layers = cfg.num_hidden_layers
    with Capture(model) as cap, torch.no_grad():
        out = model(input_ids=ids, output_attentions=True)
    vis = visible_mask(ids.shape[0], ids.shape[1], ids.shape[1], 0)
    fx.put(file, "input_ids", ids)
    fx.put(file, "embeddings", cap.embeddings)
    for i in range(n_layers):
        fx.put(file, f"hidden.{i}", cap.hidden[i])
    fx.put(file, "final_norm", cap.final_norm)
    fx.put(file, "logits", out.logits)
    scores, targets = [], []
    k = min(index_topk, ids.shape[1])
    margins = {}
    for c in cap.calls:
        i = c["layer"]
        lib = c["scores"].masked_fill(~vis, float("-inf"))
        mine = release_scores(model.model.layers[i].self_attn.indexer, c["x"], c["q_resid"], c["cos_sin"],
                              cfg.qk_rope_head_dim).masked_fill(~vis, float("-inf"))
        err = ((lib - mine).abs()[vis].max() / lib[vis].abs().max()).item()
        if err > 1e-5:
            raise RuntimeError(f"{fx.name}: layer {i}: library scores differ from the release formula ({err})")
        topk = c["topk"].long()
        valid = torch.gather(vis, -1, topk)
        topk = topk.masked_fill(~valid, -1)
        target = kl_target_of(out.attentions[i])
        scores.append(lib)
        targets.append(target)
        fx.put(file, f"indexer.{i}.scores", lib)
        fx.put(file, f"indexer.{i}.topk", topk)
        fx.put(file, f"indexer.{i}.kl_target", target)
        if not prefix:
            fx.put(file, f"indexer.{i}.x", c["x"])
            fx.put(file, f"indexer.{i}.q_resid", c["q_resid"])
        margins[i] = topk_margin(lib, vis, k)
        # the selected set is the top-k of the visible keys
        for t in range(ids.shape[1]):
            sel = set(topk[0, t][topk[0, t] >= 0].tolist())
            row = lib[0, t].clone()
            want = set(row.topk(min(k, int(vis[0, t].sum()))).indices.tolist())
            if sel != want:
                raise RuntimeError(f"{fx.name}: layer {i} query {t}: top-k is not the top of the scores")
    assert len(cap.calls) == n_layers
    loss = kl_loss(scores, targets, vis)
    fx.put(file, "indexer_kl_loss", torch.tensor(float(loss)))
    fx.checks.append(f"{file}: library indexer scores = release formula (rel. err <= 1e-5); "
                     "its top-k = top of those scores")
    fx.facts[f"{file}:index_topk_min_margin"] = margins
    rmargins = {i: router_margin(model, routers_of(model)[i], r) for i, r in cap.router.items()}
    fx.facts[f"{file}:router_min_margin"] = rmargins
    return out


def decode_goldens(fx, file, model, ids, index_topk, with_step_logits):
    """Greedy generation with the cache; the indexer's top-k of every decode step; a no-cache replay."""
    cfg = model.config
    with Capture(model) as cap, torch.no_grad():
        new, step_logits = greedy(model, ids, NEW_TOKENS)
    fx.put(file, "greedy_tokens", new)
    if with_step_logits:
        fx.put(file, "greedy_step_logits", step_logits)
    fx.facts[f"{file}:greedy_min_margin"] = logit_margin(step_logits)
    fx.facts[f"{file}:greedy_distinct_tokens"] = len(set(new[0].tolist()))
    if (new == EOS).any():
        raise RuntimeError(f"{fx.name}: {file}: EOS generated; pick another seed")
    n_layers = cfg.num_hidden_layers
    steps = [c for c in cap.calls if c["topk"].shape[1] == 1]
    if len(steps) != n_layers * (NEW_TOKENS - 1):
        raise RuntimeError(f"{len(steps)} decode indexer calls")
    if index_topk < SEQ + NEW_TOKENS:
        for i in range(n_layers):
            rows = torch.cat([c["topk"][0] for c in steps if c["layer"] == i], 0)   # [NEW-1, k]
            fx.put(file, f"decode_topk.{i}", rows)

    # No-cache replay of prompt + generated tokens: same tokens, and the top-k margins of every position.
    seq = torch.cat([ids, new], 1)
    with Capture(model) as rep, torch.no_grad():
        out = model(input_ids=seq)
    pred = out.logits[:, ids.shape[1] - 1:-1].argmax(-1)
    if not torch.equal(pred, new):
        raise RuntimeError(f"{fx.name}: {file}: greedy tokens differ from the no-cache replay")
    vis = visible_mask(1, seq.shape[1], seq.shape[1], 0)
    k = min(index_topk, seq.shape[1])
    margin = min(topk_margin(c["scores"].masked_fill(~vis, float("-inf")), vis, k) for c in rep.calls)
    fx.facts[f"{file}:decode_index_topk_min_margin"] = margin
    fx.facts[f"{file}:decode_router_min_margin"] = min(
        router_margin(model, routers_of(model)[i], r) for i, r in rep.router.items())
    # decode top-k (from the cache) = replay top-k of the same rows
    if index_topk < SEQ + NEW_TOKENS:
        for i in range(n_layers):
            rows = fx.goldens[file][f"decode_topk.{i}"]
            scores = [c for c in rep.calls if c["layer"] == i][0]["scores"][0]
            for j in range(rows.shape[0]):
                t = SEQ + j
                want = set(scores[t, : t + 1].topk(k).indices.tolist())
                if set(rows[j].tolist()) != want:
                    raise RuntimeError(f"{fx.name}: decode top-k differs from the replay (layer {i}, step {j})")
        fx.checks.append(f"{file}: decode top-k over the indexer key cache = top-k of the no-cache replay")
    fx.checks.append(f"{file}: greedy tokens = argmax of one no-cache forward over prompt + output")


def batch_goldens(fx, file, model, ids, gen):
    short = prompt_ids(gen, SHORT)
    batch = torch.full((2, SEQ), PAD, dtype=torch.long)
    mask = torch.zeros((2, SEQ), dtype=torch.long)
    batch[0], mask[0] = ids[0], 1
    batch[1, SEQ - SHORT:], mask[1, SEQ - SHORT:] = short[0], 1
    with torch.no_grad():
        logits = model(input_ids=batch, attention_mask=mask).logits
        single = model(input_ids=ids).logits
    if not torch.allclose(logits[0], single[0], rtol=0, atol=1e-5):
        raise RuntimeError("row 0 of the padded batch differs from the unpadded run")
    fx.put(file, "batch_input_ids", batch)
    fx.put(file, "batch_attention_mask", mask)
    fx.put(file, "batch_last_logits", logits[:, -1])
    fx.facts[f"{file}:batch_last_min_margin"] = logit_margin(logits[:, -1])


def check_margins(fx):
    low = {}
    for key, v in fx.facts.items():
        if isinstance(v, dict):
            limit = MIN_ROUTER_MARGIN if "router" in key else MIN_INDEX_MARGIN
            bad = {i: m for i, m in v.items() if m < limit}
            if bad:
                low[key] = bad
        elif key.endswith("_min_margin"):
            limit = (MIN_ROUTER_MARGIN if "router" in key else
                     MIN_INDEX_MARGIN if "index" in key else MIN_LOGIT_MARGIN)
            if v < limit:
                low[key] = v
        elif key.endswith("distinct_tokens") and v < 4:
            low[key] = v
    return low


def write_fixture(name):
    spec = SPECS[name]
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    fx = Fixture(name, spec)
    fx.dir.mkdir(parents=True, exist_ok=True)
    fp8 = spec["fp8"]

    model = v32_model(INDEX_TOPK)
    init_weights(model, gen)
    hub, ref = hub_checkpoint(model, fp8)
    load_state(model, {k: v.float() for k, v in from_hub(ref).items()})

    ids = prompt_ids(gen, SEQ)

    indexer_goldens(fx, "golden", model, ids, INDEX_TOPK)
    decode_goldens(fx, "golden", model, ids, INDEX_TOPK, with_step_logits=not fp8)
    batch_goldens(fx, "golden", model, ids, gen)

    if not fp8:
        # Same weights, index_topk >= every length: the indexer selects everything.
        dense = v32_model(DENSE_TOPK)
        load_state(dense, model.state_dict())
        indexer_goldens(fx, "golden-dense-topk", dense, ids, DENSE_TOPK, prefix="dense")
        decode_goldens(fx, "golden-dense-topk", dense, ids, DENSE_TOPK, with_step_logits=False)
        # use_sparse_attention false: the plain MLA decoder = DeepseekV3ForCausalLM without the indexer.
        v3 = v3_model()
        load_state(v3, {k: v for k, v in model.state_dict().items() if ".indexer." not in k})
        with torch.no_grad():
            logits = v3(input_ids=ids).logits
        fx.put("golden-no-sparse", "input_ids", ids)
        fx.put("golden-no-sparse", "logits", logits)
        new, step_logits = greedy(v3, ids, NEW_TOKENS)
        fx.put("golden-no-sparse", "greedy_tokens", new)
        fx.facts["golden-no-sparse:greedy_min_margin"] = logit_margin(step_logits)
        fx.facts["golden-no-sparse:greedy_distinct_tokens"] = len(set(new[0].tolist()))
        dense_logits = fx.goldens["golden-dense-topk"]["logits"]
        err = float((logits - dense_logits).abs().max() / dense_logits.abs().max())
        if err > 1e-6:
            raise RuntimeError(f"V3 (no indexer) and V3.2 with index_topk >= L differ: {err}")
        if not torch.equal(new, fx.goldens["golden-dense-topk"]["greedy_tokens"]):
            raise RuntimeError("V3 (no indexer) and V3.2 with index_topk >= L generate different tokens")
        fx.checks.append(f"DeepseekV3ForCausalLM without the indexer = DeepseekV32ForCausalLM with index_topk "
                         f"{DENSE_TOPK}: logits rel. err {err:.1e}, same greedy tokens")
        sparse_logits = fx.goldens["golden"]["logits"]
        fx.facts["sparse_vs_dense_logits_max_abs_diff"] = float((sparse_logits - dense_logits).abs().max())
        if fx.facts["sparse_vs_dense_logits_max_abs_diff"] < 1e-2:
            raise RuntimeError("the sparse mask barely changes the logits: the fixture would not test it")
    else:
        # Dequantisation examples: two checkpoint tensors, and a non-power-of-two-scale case.
        for name in ("model.layers.1.self_attn.indexer.wq_b.weight", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"):
            fx.put("golden", f"dequantized.{name}", ref[name])
        w = STD_LINEAR * torch.randn(40, 70, generator=gen)
        q, s = quantize_block_fp8(w, FP8_BLOCK, ue8m0=False)
        fx.goldens.setdefault("golden", {})["synthetic.weight"] = q
        fx.put("golden", "synthetic.weight_scale_inv", s)
        fx.put("golden", "synthetic.dequantized", dequantize(q, s, FP8_BLOCK))

    low = check_margins(fx)
    if low:
        raise RuntimeError(f"{fx.name}: decisions too close to call: {low}")

    # Files.
    safetensors.torch.save_file(hub, str(fx.dir / "model.safetensors"), metadata={"format": "pt"})
    (fx.dir / "config.json").write_text(json.dumps(config_json(model, fp8), indent=2) + "\n")
    if not fp8:
        (fx.dir / "config-dense-topk.json").write_text(
            json.dumps(config_json(model, fp8, index_topk=DENSE_TOPK), indent=2) + "\n")
        (fx.dir / "config-no-sparse.json").write_text(
            json.dumps(config_json(model, fp8, use_sparse_attention=False), indent=2) + "\n")
    for file, tensors in fx.goldens.items():
        safetensors.torch.save_file(dict(sorted(tensors.items())), str(fx.dir / f"{file}.safetensors"),
                                    metadata={"format": "pt"})

    # Read the checkpoint back: the reference must have run on exactly the stored values.
    stored = safetensors.torch.load_file(str(fx.dir / "model.safetensors"))
    for name, t in ref.items():
        if name in stored and stored[name].dtype == torch.float8_e4m3fn:
            again = dequantize(stored[name], stored[name + "_scale_inv"], FP8_BLOCK)
        else:
            again = stored[name].float()
        if not torch.equal(again, t):
            raise RuntimeError(f"{name}: stored tensor differs from the reference's")
    fx.checks.append("model.safetensors read back (FP8 dequantised by transformers' _dequantize_fp8_weight): "
                     "bit-identical to the weights the reference ran on")
    write_golden_json(fx, model)
    return fx


def write_golden_json(fx, model):
    facts = {
        "fixture": fx.name,
        "generator": "tests/reference/make_dsa_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
        },
        "seed": fx.spec["seed"],
        "reference_class": "DeepseekV32ForCausalLM (eager, float32); golden-no-sparse: DeepseekV3ForCausalLM",
        "init": {
            "embed_std": STD_EMBED, "linear_std": STD_LINEAR, "router_std": STD_ROUTER,
            "norm": f"1 + {STD_NORM} * N(0,1)", "k_norm.bias": f"{STD_NORM_BIAS} * N(0,1)",
            "e_score_correction_bias": f"U(-{E_BIAS_RANGE}, {E_BIAS_RANGE}), F32",
        },
        "index_topk": {"config.json": INDEX_TOPK, "config-dense-topk.json": DENSE_TOPK},
        "prompt_length": SEQ, "new_tokens": NEW_TOKENS,
        "files": {
            file: {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                   for k, v in sorted(t.items())}
            for file, t in sorted(fx.goldens.items())
        },
        "scalars": {f"{file}:{k}": float(v) for file, t in fx.goldens.items() for k, v in t.items() if v.dim() == 0},
        "layout": {
            "indexer.N.scores": "[1, L, L] I(t, s) of layer N as the library ranks them; -inf where s > t",
            "indexer.N.topk": "[1, L, k] the library's top-k (sorted by score, descending), k = min(index_topk, L); "
                              "-1 where the library picked a masked key (queries that see fewer than k keys): "
                              "compare as sets",
            "indexer.N.kl_target": "[1, L, L] attention probabilities (sparse mask applied) summed over heads and "
                                   "L1-normalised: sum / (sum + 1e-10)",
            "indexer_kl_loss": "mean over layers of mean over queries of sum_s p (log(p + 1e-10) - log_softmax(I))",
            "indexer.N.x / indexer.N.q_resid": "the indexer's inputs: attn-normed hidden states [1, L, 64] and "
                                               "q_a_layernorm(q_a_proj(x)) [1, L, 32] (positions 0..L-1)",
            "decode_topk.N": f"[{NEW_TOKENS - 1}, k] top-k of each decode step (query position L + j) over the "
                             "cached indexer keys",
            "greedy_tokens": f"{NEW_TOKENS} tokens of generate(do_sample=False) with the cache; no EOS among them",
            "batch_*": f"row 0 = input_ids, row 1 = a {SHORT}-token prompt left-padded with PAD; positions 0..L-1 "
                       "in both rows; batch_last_logits = logits at column L-1",
            "dequantized.NAME": "the library's dequantisation of that FP8 tensor of model.safetensors",
            "synthetic.*": "an F8_E4M3 [40, 70] tensor with arbitrary (not power-of-two) block scales and its "
                           "dequantisation by the library",
        },
        "fp8": {"weight_block_size": FP8_BLOCK, "scale_fmt": "ue8m0",
                "quantised": "decoder-layer Linear weights incl. indexer wq_b / wk; not mlp.gate, "
                             "indexer.weights_proj (F32), norms, embed_tokens, lm_head"} if fx.spec["fp8"] else None,
        "checks": fx.checks,
        "margins": fx.facts,
    }
    (fx.dir / "golden.json").write_text(json.dumps(facts, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(SPECS))
    ap.add_argument("--seed", type=int, help="override the seed (to search for one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for name in args.only or list(SPECS):
        if args.seed is not None:
            SPECS[name]["seed"] = args.seed
        fx = write_fixture(name)
        size = sum(p.stat().st_size for p in fx.dir.iterdir())
        print(f"{name}: {size / 1024:.0f} KiB")
        for k, v in fx.facts.items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
