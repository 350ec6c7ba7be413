#!/usr/bin/env python3
"""Golden fixtures for the DeepSeek-V2-family decoder (tests/fixtures/tiny-*/).

    python3 tests/reference/make_decoder_fixtures.py            # write all five fixtures
    python3 tests/reference/make_decoder_fixtures.py --only tiny-v3-noaux

Each fixture is a tiny random model (hidden 64, 8 routed experts, vocab 320) whose weights are drawn from
a seeded generator, rounded to bf16 and stored in the hub checkpoint layout (`model.safetensors`, BF16).
The reference runs in float32 on exactly those bf16 values with transformers' eager attention, so an f32
implementation reading the same file must match `golden.safetensors` to ~1e-6 relative.

What runs the reference (all imported from transformers, nothing copied):
  tiny-ocr-decoder   DeepseekOcr2TextModel (Llama MHA attention + DeepSeek-V2 MoE) + a plain lm_head Linear
  tiny-v2-mla-yarn   DeepseekV2ForCausalLM
  tiny-v2-mla-group  DeepseekV2ForCausalLM, router weights renormalised as in the hub code (see README)
  tiny-v3-noaux      DeepseekV3ForCausalLM
  tiny-v2-cls        DeepseekV2ForSequenceClassification
"""

import argparse
import copy
import json
import pathlib
import platform
import sys
import tempfile

import safetensors
import safetensors.torch
import torch
import transformers
from torch import nn
from transformers import (
    DeepseekV2Config,
    DeepseekV2ForCausalLM,
    DeepseekV2ForSequenceClassification,
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
    GenerationMixin,
)
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import (
    DeepseekOcr2TextModel,
    DeepseekOcr2TextPreTrainedModel,
)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from dsv2_hub_layout import from_hub, to_hub  # noqa: E402

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

VOCAB = 320  # rows of embed_tokens / lm_head
N_USED_IDS = 300  # prompts only use ids < 300; rows 300..319 play the padding rows of the real vocab
BOS, EOS, PAD = 0, 1, 2
SEQ = 12
NEW_TOKENS = 64
NGRAM = 3

# Greedy / routing decisions must not hinge on float noise: an f32 port differs from torch by ~1e-6.
MIN_LOGIT_MARGIN = 2e-4
MIN_ROUTER_MARGIN = 2e-5


# ---------------------------------------------------------------------------------------------------------
# Models


class OcrDecoderForCausalLM(DeepseekOcr2TextPreTrainedModel, GenerationMixin):
    """DeepSeek-OCR's language model: transformers' DeepseekOcr2TextModel plus an untied lm_head.

    The module names (`model.*`, `lm_head.weight`) are those of the DeepSeek-OCR checkpoint.
    """

    def __init__(self, config):
        super().__init__(config)
        self.model = DeepseekOcr2TextModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        logits_to_keep=0,
        **kwargs,
    ):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(out.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, past_key_values=out.past_key_values, hidden_states=out.hidden_states
        )


def renormalise_routers(model):
    """Router rule of the hub DeepSeek-V2 code shipped with DeepSeek-OCR / DeepSeek-VL2 (and of V3):
    w = topk(p) / (sum topk(p) + 1e-20) * routed_scaling_factor when norm_topk_prob is set.

    transformers 5.23's DeepseekV2TopkRouter ignores norm_topk_prob (it always returns topk(p) * factor).
    The library router still does the scoring and the selection; with its factor set to 1 it returns the
    raw top-k probabilities, which this wrapper normalises and scales.
    """
    cfg = model.config
    if not cfg.norm_topk_prob or cfg.num_experts_per_tok <= 1:
        return
    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(gate, "topk_method"):
            continue
        gate.routed_scaling_factor = 1.0
        library_forward = gate.forward

        def forward(hidden_states, _library_forward=library_forward, _factor=cfg.routed_scaling_factor):
            router_logits, topk_weights, topk_indices = _library_forward(hidden_states)
            denominator = topk_weights.sum(dim=-1, keepdim=True) + 1e-20
            return router_logits, topk_weights / denominator * _factor, topk_indices

        gate.forward = forward


# ---------------------------------------------------------------------------------------------------------
# Fixture specifications

COMMON_DECODER = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    moe_intermediate_size=32,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_routed_experts=8,
    num_experts_per_tok=3,
    first_k_dense_replace=1,
    rms_norm_eps=1e-6,
    hidden_act="silu",
    bos_token_id=BOS,
    eos_token_id=EOS,
    tie_word_embeddings=False,
    attention_bias=False,
)

SPECS = {
    "tiny-ocr-decoder": dict(
        kind="ocr",
        seed=1001,
        config=dict(
            COMMON_DECODER,
            num_hidden_layers=3,
            n_shared_experts=2,
            topk_method="greedy",
            n_group=1,
            topk_group=1,
            routed_scaling_factor=1.0,
            max_position_embeddings=256,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            mlp_layer_types=["dense", "sparse", "sparse"],
        ),
    ),
    "tiny-v2-mla-yarn": dict(
        kind="v2",
        seed=2003,
        config=dict(
            COMMON_DECODER,
            num_hidden_layers=3,
            n_shared_experts=2,
            q_lora_rank=32,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=16,
            topk_method="greedy",
            n_group=1,
            topk_group=1,
            norm_topk_prob=False,
            routed_scaling_factor=1.0,
            max_position_embeddings=2560,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 40.0,
                "original_max_position_embeddings": 64,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "mscale": 0.707,
                "mscale_all_dim": 0.707,
            },
        ),
    ),
    "tiny-v2-mla-group": dict(
        kind="v2",
        seed=3007,
        config=dict(
            COMMON_DECODER,
            num_hidden_layers=3,
            n_shared_experts=2,
            q_lora_rank=None,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=16,
            topk_method="group_limited_greedy",
            n_group=4,
            topk_group=2,
            norm_topk_prob=True,
            routed_scaling_factor=1.5,
            max_position_embeddings=256,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
    ),
    "tiny-v3-noaux": dict(
        kind="v3",
        seed=4005,
        config=dict(
            COMMON_DECODER,
            num_hidden_layers=3,
            n_shared_experts=1,
            q_lora_rank=32,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=16,
            n_group=4,
            topk_group=2,
            norm_topk_prob=True,
            routed_scaling_factor=2.5,
            rope_interleave=True,
            num_mtp_layers=0,
            max_position_embeddings=2560,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 40.0,
                "original_max_position_embeddings": 64,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
            },
        ),
    ),
    "tiny-v2-cls": dict(
        kind="cls",
        seed=5005,
        config=dict(
            COMMON_DECODER,
            num_hidden_layers=2,
            n_shared_experts=2,
            q_lora_rank=None,
            kv_lora_rank=32,
            qk_nope_head_dim=16,
            qk_rope_head_dim=16,
            v_head_dim=16,
            topk_method="greedy",
            n_group=1,
            topk_group=1,
            norm_topk_prob=False,
            routed_scaling_factor=1.0,
            max_position_embeddings=256,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            pad_token_id=PAD,
            num_labels=3,
            id2label={0: "negative", 1: "neutral", 2: "positive"},
            label2id={"negative": 0, "neutral": 1, "positive": 2},
        ),
    ),
}

# Init scales: embeddings O(1) so the residual stream is O(1); projections 0.1 (fan-in 64 -> O(1) outputs);
# router 0.2 so the expert scores are well separated; norm weights 1 +- 0.1 so a missing weight shows.
STD_EMBED, STD_LINEAR, STD_ROUTER, STD_NORM = 1.0, 0.1, 0.2, 0.1
E_BIAS_RANGE = 0.15


def build_model(spec):
    kind, cfg = spec["kind"], dict(spec["config"])
    if kind == "ocr":
        config = DeepseekOcr2TextConfig(**cfg)
        cls = OcrDecoderForCausalLM
    elif kind == "v2":
        config = DeepseekV2Config(**cfg)
        cls = DeepseekV2ForCausalLM
    elif kind == "v3":
        config = DeepseekV3Config(**cfg)
        cls = DeepseekV3ForCausalLM
    elif kind == "cls":
        config = DeepseekV2Config(**cfg)
        cls = DeepseekV2ForSequenceClassification
    else:
        raise ValueError(kind)
    config._attn_implementation = "eager"
    model = cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
    if kind == "v2":
        renormalise_routers(model)
    model.eval()
    return model


def init_weights(model, gen):
    """Seeded weights, rounded to bf16 (kept as f32 tensors). e_score_correction_bias stays f32."""
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            shape = t.shape
            if name.endswith("e_score_correction_bias"):
                t.copy_((torch.rand(shape, generator=gen) * 2 - 1) * E_BIAS_RANGE)
                continue
            if "norm" in name:
                value = 1.0 + STD_NORM * torch.randn(shape, generator=gen)
            elif "embed_tokens" in name:
                value = STD_EMBED * torch.randn(shape, generator=gen)
            elif name.endswith("mlp.gate.weight"):
                value = STD_ROUTER * torch.randn(shape, generator=gen)
            else:
                value = STD_LINEAR * torch.randn(shape, generator=gen)
            t.copy_(value.to(torch.bfloat16).float())


def hub_state_dict(model):
    """The checkpoint as released models store it: per-expert Linears, BF16 (router bias F32)."""
    hub = to_hub({k: v.detach().clone() for k, v in model.state_dict().items()})
    out = {}
    for name, t in hub.items():
        out[name] = t.float() if name.endswith("e_score_correction_bias") else t.to(torch.bfloat16)
    return out


def load_hub_into(model, path):
    hub = safetensors.torch.load_file(str(path))
    sd = {k: v.float() for k, v in from_hub(hub).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # Non-persistent rotary buffers are not in the state dict; anything else missing is an error.
    if missing or unexpected:
        raise RuntimeError(f"{path}: missing {missing}, unexpected {unexpected}")


# ---------------------------------------------------------------------------------------------------------
# Config files in the checkpoints' own format


def classic_rope_fields(rope):
    """`rope_theta` + `rope_scaling` as the hub configs (and transformers 4.x) write them."""
    fields = {"rope_theta": rope["rope_theta"]}
    if rope.get("rope_type", "default") == "default":
        fields["rope_scaling"] = None
    else:
        scaling = {k: v for k, v in rope.items() if k not in ("rope_type", "rope_theta")}
        scaling["type"] = rope["rope_type"]
        fields["rope_scaling"] = dict(sorted(scaling.items()))
    return fields


def hf_config_json(model, spec):
    """deepseek_v2 / deepseek_v3 config.json as transformers 5.23 saves it, plus the fields of the released
    checkpoints that transformers 5 no longer writes (rope_theta, rope_scaling, moe_layer_freq, ...)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.config.save_pretrained(tmp)
        d = json.loads((pathlib.Path(tmp) / "config.json").read_text())
    d["dtype"] = "bfloat16"
    d["torch_dtype"] = "bfloat16"
    d["architectures"] = [type(model).__name__]
    d.update(classic_rope_fields(spec["config"]["rope_parameters"]))
    d["moe_layer_freq"] = 1
    d["aux_loss_alpha"] = 0.001
    d["seq_aux"] = True
    d["ep_size"] = 1
    if spec["kind"] == "v3":
        d["topk_method"] = "noaux_tc"
        d["scoring_func"] = "sigmoid"
        d["num_nextn_predict_layers"] = 0
    else:
        d["scoring_func"] = "softmax"
    return dict(sorted(d.items()))


def ocr_config_json(model):
    """config.json in the layout of deepseek-ai/DeepSeek-OCR (model_type deepseek_vl_v2, the language-model
    fields both in language_config and at top level; fields the hub file omits are omitted here too and
    take the DeepseekV2Config defaults: rope_theta 10000, rms_norm_eps 1e-6, routed_scaling_factor 1.0,
    norm_topk_prob false, scoring_func softmax, moe_layer_freq 1, hidden_act silu)."""
    c = model.config
    lm = {
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "first_k_dense_replace": 1,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "kv_lora_rank": None,
        "lm_head": True,
        "max_position_embeddings": c.max_position_embeddings,
        "moe_intermediate_size": c.moe_intermediate_size,
        "n_group": 1,
        "n_routed_experts": c.n_routed_experts,
        "n_shared_experts": c.n_shared_experts,
        "num_attention_heads": c.num_attention_heads,
        "num_experts_per_tok": c.num_experts_per_tok,
        "num_hidden_layers": c.num_hidden_layers,
        "num_key_value_heads": c.num_key_value_heads,
        "q_lora_rank": None,
        "qk_nope_head_dim": 0,
        "qk_rope_head_dim": 0,
        "rm_head": False,
        "topk_group": 1,
        "topk_method": "greedy",
        "use_mla": False,
        "v_head_dim": 0,
        "vocab_size": c.vocab_size,
    }
    language_config = {
        "architectures": ["DeepseekV2ForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_deepseekv2.DeepseekV2Config",
            "AutoModel": "modeling_deepseek.DeepseekV2Model",
            "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM",
        },
        **lm,
        "torch_dtype": "bfloat16",
    }
    language_config = dict(sorted(language_config.items()))
    top = {
        "_name_or_path": "tiny-ocr-decoder",
        "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head",
        "architectures": ["DeepseekOCRForCausalLM"],
        "auto_map": {
            "AutoConfig": "modeling_deepseekocr.DeepseekOCRConfig",
            "AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM",
        },
        "language_config": language_config,
        "model_type": "deepseek_vl_v2",
        # Decoder-only fixture: no vision or projector weights; these blocks only mirror the file's shape.
        "projector_config": {"input_dim": 64, "model_type": "mlp_projector", "n_embed": c.hidden_size,
                             "projector_type": "linear"},
        "tile_tag": "2D",
        "torch_dtype": "bfloat16",
        "transformers_version": transformers.__version__,
        "vision_config": {
            "image_size": 64,
            "mlp_ratio": 3.7362,
            "model_name": "deeplip_b_l",
            "model_type": "vision",
            "width": {
                "clip-l-14-224": {"heads": 2, "image_size": 28, "layers": 2, "patch_size": 14, "width": 32},
                "sam_vit_b": {"downsample_channels": [16, 32], "global_attn_indexes": [1], "heads": 2,
                              "layers": 2, "width": 16},
            },
        },
    }
    top.update(lm)
    return top


# ---------------------------------------------------------------------------------------------------------
# Reference runs


def routers_of(model):
    out = {}
    for i, layer in enumerate(model.model.layers):
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None and hasattr(gate, "top_k"):
            out[i] = gate
    return out


def run_captured(model, **inputs):
    """One forward; returns (output, capture) with per-layer outputs, router decisions and final norm."""
    cap = {"hidden": {}, "router": {}}

    def first(t):
        return (t[0] if isinstance(t, tuple) else t).detach().clone()

    def on_embeddings(mod, args, kwargs):
        cap["embeddings"] = first(args) if args else kwargs["hidden_states"].detach().clone()

    def on_layer(i):
        return lambda mod, args, out: cap["hidden"].__setitem__(i, first(out))

    def on_router(i):
        # (router input, router_logits, topk_weights, topk_indices)
        return lambda mod, args, out: cap["router"].__setitem__(i, (first(args), *[o.detach().clone() for o in out]))

    def on_norm(mod, args, out):
        cap["final_norm"] = out.detach().clone()

    layers = model.model.layers
    handles = [layers[0].register_forward_pre_hook(on_embeddings, with_kwargs=True)]
    handles += [layer.register_forward_hook(on_layer(i)) for i, layer in enumerate(layers)]
    handles += [gate.register_forward_hook(on_router(i)) for i, gate in routers_of(model).items()]
    handles.append(model.model.norm.register_forward_hook(on_norm))
    try:
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return out, cap


def router_margin(model, gate, logits):
    """Smallest gap, over tokens, between the last expert (and group) kept and the first one dropped."""
    cfg = model.config
    k = gate.top_k
    n_exp = logits.shape[-1]
    method = getattr(gate, "topk_method", "noaux_tc")
    if method == "noaux_tc":
        scores = logits.sigmoid() + gate.e_score_correction_bias
        group_scores = scores.view(-1, cfg.n_group, n_exp // cfg.n_group).topk(2, dim=-1)[0].sum(-1)
    else:
        scores = logits.softmax(dim=-1)
        group_scores = scores.view(-1, cfg.n_group or 1, n_exp // (cfg.n_group or 1)).max(dim=-1).values
    margins = []
    if method in ("group_limited_greedy", "noaux_tc"):
        gs = group_scores.sort(dim=-1, descending=True).values
        margins.append((gs[:, cfg.topk_group - 1] - gs[:, cfg.topk_group]).min())
        keep = group_scores.topk(cfg.topk_group, dim=-1).indices
        mask = torch.zeros_like(group_scores).scatter_(1, keep, 1.0)
        mask = mask.repeat_interleave(n_exp // cfg.n_group, dim=1).bool()
        scores = scores.masked_fill(~mask, float("-inf"))
    s = scores.sort(dim=-1, descending=True).values
    margins.append((s[:, k - 1] - s[:, k]).min())
    return float(min(margins))


def routing_sensitivity(gate, x, router_logits, idx):
    """How many tokens the e_score_correction_bias and the group limit actually re-route, found by running
    the library router again with the bias zeroed / with every group kept."""

    def changed(other):
        return int((idx.sort(-1).values != other.sort(-1).values).any(-1).sum())

    res = {}
    with torch.no_grad():
        if hasattr(gate, "e_score_correction_bias"):
            saved = gate.e_score_correction_bias.clone()
            gate.e_score_correction_bias.zero_()
            res["tokens_rerouted_by_bias"] = changed(gate(x)[2])
            gate.e_score_correction_bias.copy_(saved)
            res["min_chosen_biased_score"] = float((router_logits.sigmoid() + saved).gather(1, idx).min())
        if getattr(gate, "topk_method", "noaux_tc") in ("noaux_tc", "group_limited_greedy"):
            saved = gate.topk_group
            gate.topk_group = gate.num_group
            res["tokens_rerouted_by_group_limit"] = changed(gate(x)[2])
            gate.topk_group = saved
    return res


def check_sensitivity(fx):
    sens = fx.facts.get("routing_sensitivity")
    if not sens:
        return
    for key in ("tokens_rerouted_by_bias", "tokens_rerouted_by_group_limit"):
        counts = [v[key] for v in sens.values() if key in v]
        if counts and sum(counts) == 0:
            raise RuntimeError(f"{fx.name}: {key} is 0 in every layer: the fixture would not test it")
    scores = [v["min_chosen_biased_score"] for v in sens.values() if "min_chosen_biased_score" in v]
    if scores and min(scores) <= 0:
        # Dropped groups are filled with -inf by transformers and V3.2's reference but with 0.0 by the hub
        # V2/V3 code; while every chosen expert's biased score is > 0 both pick the same experts.
        raise RuntimeError(f"{fx.name}: a chosen biased score <= 0 makes the group-masking convention matter")


def sorted_routing(idx, w, shape):
    order = idx.argsort(dim=-1)
    return idx.gather(-1, order).reshape(*shape, -1), w.gather(-1, order).reshape(*shape, -1)


def logit_margin(scores):
    top = scores.topk(2, dim=-1).values
    return float((top[..., 0] - top[..., 1]).min())


def generate(model, input_ids, attention_mask=None, **kwargs):
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask if attention_mask is not None else torch.ones_like(input_ids),
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        pad_token_id=PAD,
        output_logits=True,
        output_scores=True,
        return_dict_in_generate=True,
        **kwargs,
    )
    new = out.sequences[:, input_ids.shape[1]:]
    if new.shape[1] != NEW_TOKENS:
        raise RuntimeError(f"generation stopped after {new.shape[1]} tokens")
    return new, torch.stack(out.logits, 1), torch.stack(out.scores, 1)


def check_no_cache_replay(model, prompt, new):
    """The greedy tokens are also the argmax of one full forward (no KV cache) over prompt + generated
    tokens. Returns the smallest router margin over every token of that sequence."""
    seq = torch.cat([prompt, new], dim=1)
    out, cap = run_captured(model, input_ids=seq, use_cache=False)
    pred = out.logits[:, prompt.shape[1] - 1 : -1].argmax(-1)
    if not torch.equal(pred, new):
        raise RuntimeError("greedy tokens differ from the no-cache replay")
    gates = routers_of(model)
    return min((router_margin(model, gates[i], r[1]) for i, r in cap["router"].items()), default=float("inf"))


class Fixture:
    def __init__(self, name, spec):
        self.name, self.spec = name, spec
        self.dir = FIXTURES / name
        self.golden = {}
        self.facts = {}
        self.checks = []

    def put(self, key, tensor):
        t = tensor.detach().clone().contiguous()
        if t.dtype in (torch.int32, torch.int64, torch.bool):
            t = t.to(torch.int64)
        else:
            t = t.to(torch.float32)
        self.golden[key] = t


def prompt_ids(gen, n, first=BOS):
    ids = torch.randint(3, N_USED_IDS, (1, n), generator=gen)
    ids[0, 0] = first
    return ids


def decoder_goldens(fx, model, gen):
    cfg = model.config
    ids = prompt_ids(gen, SEQ)
    fx.put("input_ids", ids)
    out, cap = run_captured(model, input_ids=ids)
    fx.put("embeddings", cap["embeddings"])
    for i in range(cfg.num_hidden_layers):
        fx.put(f"hidden.{i}", cap["hidden"][i])
    fx.put("final_norm", cap["final_norm"])
    fx.put("logits", out.logits)
    check_hidden_states_tuple(fx, out.hidden_states, cap, cfg.num_hidden_layers)

    margins = {}
    for i, (x, router_logits, w, idx) in sorted(cap["router"].items()):
        idx_s, w_s = sorted_routing(idx, w, ids.shape)
        fx.put(f"router.{i}.topk_idx", idx_s)
        fx.put(f"router.{i}.topk_weight", w_s)
        margins[i] = router_margin(model, routers_of(model)[i], router_logits)
        sens = routing_sensitivity(routers_of(model)[i], x, router_logits, idx)
        if sens:
            fx.facts.setdefault("routing_sensitivity", {})[i] = sens
    fx.facts["router_min_margin"] = margins
    check_sensitivity(fx)

    # Causal-LM loss with ignored labels.
    labels = ids.clone()
    labels[0, :2] = -100
    labels[0, 7] = -100
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
    manual = nn.functional.cross_entropy(out.logits[0, :-1], labels[0, 1:], ignore_index=-100)
    assert torch.allclose(loss, manual, rtol=1e-6, atol=0), (loss, manual)
    fx.put("labels", labels)
    fx.put("loss", loss.reshape(()))

    # inputs_embeds path (no embedding lookup).
    embeds = torch.randn(1, SEQ, cfg.hidden_size, generator=gen).to(torch.bfloat16).float()
    with torch.no_grad():
        logits_e = model(inputs_embeds=embeds).logits
    fx.put("inputs_embeds", embeds)
    fx.put("logits_embeds", logits_e)

    # Greedy decoding, batch of 1, no EOS stop.
    new, step_logits, step_scores = generate(model, ids)
    decode_router_margin = check_no_cache_replay(model, ids, new)
    fx.put("greedy_tokens", new)
    fx.put("greedy_step_logits", step_logits)
    fx.facts["greedy_min_margin"] = logit_margin(step_scores)
    fx.facts["greedy_distinct_tokens"] = len(set(new[0].tolist()))

    # Greedy with HF NoRepeatNGramLogitsProcessor(3) over prompt + output.
    nr, _, nr_scores = generate(model, ids, no_repeat_ngram_size=NGRAM)
    seq = torch.cat([ids, nr], dim=1)
    _, cap_nr = run_captured(model, input_ids=seq, use_cache=False)
    gates = routers_of(model)
    decode_router_margin = min(
        [decode_router_margin] + [router_margin(model, gates[i], r[1]) for i, r in cap_nr["router"].items()]
    )
    fx.put("nrng_tokens", nr)
    fx.facts["nrng_min_margin"] = logit_margin(nr_scores)
    fx.facts["nrng_distinct_tokens"] = len(set(nr[0].tolist()))
    fx.facts["nrng_differs_from_greedy"] = not torch.equal(nr, new)

    for key in ("greedy_tokens", "nrng_tokens"):
        toks = fx.golden[key]
        if (toks == EOS).any():
            raise RuntimeError(f"{fx.name}: {key} contains the EOS id; pick another seed")

    if fx.spec["kind"] == "ocr":
        # Two prompts of different lengths, left-padded with PAD, attention_mask marks the real tokens.
        short = prompt_ids(gen, 7)
        batch = torch.full((2, SEQ), PAD, dtype=torch.long)
        mask = torch.zeros((2, SEQ), dtype=torch.long)
        batch[0] = ids[0]
        mask[0] = 1
        batch[1, SEQ - 7 :] = short[0]
        mask[1, SEQ - 7 :] = 1
        fx.put("batch_input_ids", batch)
        fx.put("batch_attention_mask", mask)
        with torch.no_grad():
            last = model(input_ids=batch, attention_mask=mask, position_ids=gen_positions(mask)).logits[:, -1]
        fx.put("batch_last_logits", last)
        bnew, _, bscores = generate(model, batch, mask)
        if not torch.equal(bnew[:, 0], last.argmax(-1)):
            raise RuntimeError("batch_last_logits do not give the first generated tokens")
        for r in range(2):
            real = batch[r : r + 1, mask[r].bool()]
            decode_router_margin = min(decode_router_margin, check_no_cache_replay(model, real, bnew[r : r + 1]))
        fx.put("greedy_tokens_batch", bnew)
        fx.facts["batch_min_margin"] = logit_margin(bscores)
        if not torch.equal(bnew[0], new[0]):
            raise RuntimeError("row 0 of the batch (no padding) must decode like the batch-of-1 run")
        if (bnew == EOS).any():
            raise RuntimeError(f"{fx.name}: greedy_tokens_batch contains the EOS id")
        fx.facts["batch_generated_pad_id"] = bool((bnew == PAD).any())
    fx.facts["decode_router_min_margin"] = decode_router_margin


def gen_positions(mask):
    """Position ids as transformers' generate() derives them from a left-padded attention mask."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 0)


def check_hidden_states_tuple(fx, hs, cap, n_layers):
    """Record how output_hidden_states lines up with the per-layer hooks."""
    assert len(hs) == n_layers + 1, len(hs)
    assert torch.equal(hs[0], cap["embeddings"])
    for i in range(n_layers - 1):
        assert torch.equal(hs[i + 1], cap["hidden"][i]), i
    if torch.equal(hs[n_layers], cap["final_norm"]):
        last = "final_norm"
    elif torch.equal(hs[n_layers], cap["hidden"][n_layers - 1]):
        last = f"hidden.{n_layers - 1}"
    else:
        raise AssertionError("last hidden state matches neither the last layer nor the final norm")
    fx.facts["output_hidden_states"] = (
        f"tuple of {n_layers + 1}: [0] = embeddings, [i] = hidden.{{i-1}} for i = 1..{n_layers - 1}, "
        f"[{n_layers}] = {last}"
    )


def cls_goldens(fx, model, gen):
    cfg = model.config
    n = SEQ
    rows = torch.randint(3, N_USED_IDS, (3, n), generator=gen)
    ids = rows.clone()
    mask = torch.ones_like(ids)
    # row 0: right padding (4 pads)
    ids[0, 8:] = PAD
    mask[0, 8:] = 0
    # row 1: left padding (3 pads)
    ids[1, :3] = PAD
    mask[1, :3] = 0
    # row 2: the pad id inside the text (attended, as when pad == eos) plus 3 trailing pads
    ids[2, 4] = PAD
    ids[2, 9:] = PAD
    mask[2, 9:] = 0
    fx.put("input_ids", ids)
    fx.put("attention_mask", mask)

    out, cap = run_captured(model, input_ids=ids, attention_mask=mask)
    valid = mask.bool().unsqueeze(-1)
    fx.put("embeddings", cap["embeddings"] * valid)
    for i in range(cfg.num_hidden_layers):
        fx.put(f"hidden.{i}", cap["hidden"][i] * valid)
    fx.put("final_norm", cap["final_norm"] * valid)
    with torch.no_grad():
        logits_all = model.score(cap["final_norm"])
    fx.put("logits_all", logits_all * valid)
    fx.put("logits", out.logits)
    pooled_index = (torch.arange(n) * (ids != PAD)).argmax(-1)
    assert torch.equal(out.logits, logits_all[torch.arange(3), pooled_index])
    fx.put("pooled_index", pooled_index)
    check_hidden_states_tuple(fx, out.hidden_states, cap, cfg.num_hidden_layers)
    margins = {}
    for i, (x, router_logits, w, idx) in sorted(cap["router"].items()):
        # Tokens at masked positions are routed too but their values are not defined: drop them.
        idx_s, w_s = sorted_routing(idx, w, ids.shape)
        fx.put(f"router.{i}.topk_idx", idx_s.masked_fill(~valid, -1))
        fx.put(f"router.{i}.topk_weight", w_s * valid)
        margins[i] = router_margin(model, routers_of(model)[i], router_logits[mask.reshape(-1).bool()])
    fx.facts["router_min_margin"] = margins
    fx.facts["pooled_index"] = pooled_index.tolist()

    def loss_with(problem_type, labels, m=model):
        m.config.problem_type = problem_type
        with torch.no_grad():
            value = m(input_ids=ids, attention_mask=mask, labels=labels).loss
        used = m.config.problem_type
        m.config.problem_type = None
        return value.reshape(()), used

    labels_single = torch.tensor([2, -100, 0])
    loss, used = loss_with(None, labels_single)
    assert used == "single_label_classification", used
    fx.put("labels_single", labels_single)
    fx.put("loss_single", loss)

    labels_multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    loss, used = loss_with("multi_label_classification", labels_multi)
    fx.put("labels_multi", labels_multi)
    fx.put("loss_multi", loss)

    labels_reg = torch.randn(3, 3, generator=gen)
    loss, used = loss_with("regression", labels_reg)
    fx.put("labels_regression", labels_reg)
    fx.put("loss_regression", loss)

    # num_labels == 1: regression is inferred; same weights, score = row 0 of the 3-label head.
    one = copy.deepcopy(model)
    one.config.num_labels = 1
    one.config.id2label = {0: "LABEL_0"}
    one.config.label2id = {"LABEL_0": 0}
    one.num_labels = 1
    one.score = nn.Linear(cfg.hidden_size, 1, bias=False)
    with torch.no_grad():
        one.score.weight.copy_(model.score.weight[:1])
    labels_reg1 = torch.randn(3, generator=gen)
    loss, used = loss_with(None, labels_reg1, one)
    assert used == "regression", used
    with torch.no_grad():
        fx.put("logits_1label", one(input_ids=ids, attention_mask=mask).logits)
    fx.put("labels_regression_1label", labels_reg1)
    fx.put("loss_regression_1label", loss)
    fx.facts["problem_types"] = {
        "loss_single": "inferred: num_labels 3 + int64 labels -> single_label_classification "
                       "(cross-entropy, ignore_index -100, mean over the 2 labelled rows)",
        "loss_multi": "config.problem_type = multi_label_classification (BCEWithLogits, mean over B*num_labels)",
        "loss_regression": "config.problem_type = regression with num_labels 3 (MSE, mean over B*3)",
        "loss_regression_1label": "num_labels 1 -> regression inferred; score.weight = row 0 of the 3-label "
                                  "score.weight (logits_1label); MSE of the squeezed logits",
    }


# ---------------------------------------------------------------------------------------------------------


def check_reload(fx, model, spec):
    """Reload model.safetensors through from_hub into a fresh model: logits must be bit-identical.
    For the deepseek_v2/v3 fixtures also load the directory with transformers' own from_pretrained
    (its checkpoint conversion turns per-expert tensors into the fused ones)."""
    ids = fx.golden["input_ids"]
    kwargs = {"input_ids": ids}
    if "attention_mask" in fx.golden:
        kwargs["attention_mask"] = fx.golden["attention_mask"]
    fresh = build_model(spec)
    load_hub_into(fresh, fx.dir / "model.safetensors")
    with torch.no_grad():
        a = model(**kwargs).logits
        b = fresh(**kwargs).logits
    if not torch.equal(a, b):
        raise RuntimeError(f"{fx.name}: from_hub reload changes the logits")
    fx.checks.append("model.safetensors -> from_hub -> fresh model: logits bit-identical")

    if spec["kind"] == "ocr":
        return
    cls = type(model)
    loaded = cls.from_pretrained(str(fx.dir), dtype=torch.float32, attn_implementation="eager")
    if spec["kind"] == "v2":
        renormalise_routers(loaded)
    loaded.eval()
    with torch.no_grad():
        c = loaded(**kwargs).logits
    if not torch.equal(a, c):
        raise RuntimeError(f"{fx.name}: transformers from_pretrained(config.json + model.safetensors) differs")
    fx.checks.append(f"{cls.__name__}.from_pretrained(fixture dir): logits bit-identical")


def write_fixture(name):
    spec = SPECS[name]
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    fx = Fixture(name, spec)
    fx.dir.mkdir(parents=True, exist_ok=True)

    model = build_model(spec)
    init_weights(model, gen)

    hub = hub_state_dict(model)
    safetensors.torch.save_file(hub, str(fx.dir / "model.safetensors"), metadata={"format": "pt"})
    cfg_json = ocr_config_json(model) if spec["kind"] == "ocr" else hf_config_json(model, spec)
    (fx.dir / "config.json").write_text(json.dumps(cfg_json, indent=2) + "\n")

    if spec["kind"] == "cls":
        cls_goldens(fx, model, gen)
    else:
        decoder_goldens(fx, model, gen)

    # Facts of the reference modules that an implementation must reproduce.
    attn = model.model.layers[0].self_attn
    fx.put("attn_softmax_scale", torch.tensor(float(attn.scaling)))
    rot = model.model.rotary_emb
    fx.put("rope_inv_freq", rot.inv_freq)
    fx.put("rope_attention_scaling", torch.tensor(float(rot.attention_scaling)))

    safetensors.torch.save_file(
        dict(sorted(fx.golden.items())), str(fx.dir / "golden.safetensors"), metadata={"format": "pt"}
    )
    check_reload(fx, model, spec)
    check_margins(fx)
    write_golden_json(fx, model)
    return fx


def check_margins(fx):
    f = fx.facts
    low = {k: v for k, v in f.items()
           if k.endswith("_min_margin") and "router" not in k and isinstance(v, float) and v < MIN_LOGIT_MARGIN}
    if f.get("decode_router_min_margin", 1.0) < MIN_ROUTER_MARGIN:
        low["decode_router_min_margin"] = f["decode_router_min_margin"]
    low_router = {i: v for i, v in f.get("router_min_margin", {}).items() if v < MIN_ROUTER_MARGIN}
    if low or low_router:
        raise RuntimeError(f"{fx.name}: decisions too close to call: {low} {low_router}")
    for key in ("greedy_distinct_tokens", "nrng_distinct_tokens"):
        if key in f and f[key] < 4:
            raise RuntimeError(f"{fx.name}: {key} = {f[key]}: decoding is stuck, change the seed")


def write_golden_json(fx, model):
    spec = fx.spec
    facts = {
        "fixture": fx.name,
        "generator": "tests/reference/make_decoder_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
        },
        "seed": spec["seed"],
        "reference_class": type(model).__name__,
        "attn_implementation": "eager",
        "compute_dtype": "float32 (weights are the bf16 values of model.safetensors, upcast exactly)",
        "init": {
            "embed_std": STD_EMBED,
            "linear_std": STD_LINEAR,
            "router_std": STD_ROUTER,
            "norm": f"1 + {STD_NORM} * N(0,1)",
            "e_score_correction_bias": f"U(-{E_BIAS_RANGE}, {E_BIAS_RANGE}), F32",
        },
        "vocab_size": VOCAB,
        "ids_used_below": N_USED_IDS,
        "bos_eos_pad": [BOS, EOS, PAD],
        "tensors": {
            k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
            for k, v in sorted(fx.golden.items())
        },
        "scalars": {k: float(v) for k, v in fx.golden.items() if v.dim() == 0},
        "input_ids": fx.golden["input_ids"].tolist(),
        "layout": {
            "embeddings": "input of layer 0 (embed_tokens lookup, or inputs_embeds)",
            "hidden.N": "output of decoder layer N (residual stream after its MLP/MoE), before the final norm",
            "final_norm": "model.norm applied to hidden.{last}",
            "router.N.*": "MoE layer N: the top-k experts per token and their final weights, sorted by expert id",
            "positions": "forward passes use positions 0..L-1 for every row (no position_ids given)",
        },
        "checks": fx.checks,
        **fx.facts,
    }
    kind = spec["kind"]
    if kind != "cls":
        facts["layout"].update({
            "logits": "lm_head(final_norm), float32, all positions",
            "loss": "transformers ForCausalLMLoss: mean over t of CE(logits[t], labels[t+1]) "
                    "for the t where labels[t+1] != -100",
            "logits_embeds": "logits for inputs_embeds (given, already bf16-representable) instead of input_ids",
            "greedy_tokens": f"{NEW_TOKENS} new tokens (prompt excluded) from generate(do_sample=False), "
                             "KV cache on, no EOS stop; EOS never occurs in them, so stopping at EOS "
                             "gives the same tokens",
            "greedy_step_logits": "raw logits of each generated step [1, 64, V]",
            "nrng_tokens": f"as greedy_tokens with no_repeat_ngram_size={NGRAM} (n-grams over prompt + output)",
        })
    if kind == "ocr":
        facts["layout"].update({
            "batch_input_ids": "row 0 = input_ids; row 1 = a 7-token prompt left-padded with PAD (id 2)",
            "batch_last_logits": "logits at the last position of the left-padded batch prefill with "
                                 "generate()'s position ids (cumsum(mask) - 1, pads 0): each row's real "
                                 "tokens start at position 0",
            "greedy_tokens_batch": "generate() on the left-padded batch with attention_mask: same positions rule, "
                                   "pad keys masked; row 0 equals greedy_tokens",
        })
        if fx.facts.get("batch_generated_pad_id"):
            facts["layout"]["greedy_tokens_batch"] += (
                "; a generated PAD id is an ordinary token (its mask entry is 1, it is attended)"
            )
    if kind == "cls":
        facts["layout"].update({
            "hidden/final_norm/logits_all/router": "rows where attention_mask == 0 are set to 0 (router idx -1): "
                                                  "the reference leaves them undefined",
            "logits_all": "score(final_norm) at every position [B, L, num_labels]",
            "logits": "pooled logits [B, num_labels] at pooled_index = rightmost position whose id != pad_token_id",
        })
    if kind == "v2" and model.config.norm_topk_prob:
        facts["router_rule"] = (
            "norm_topk_prob true: w = p_topk / (sum p_topk + 1e-20) * routed_scaling_factor (hub "
            "modeling_deepseekv2.py of DeepSeek-OCR / DeepSeek-VL2, and V3); transformers 5.23's "
            "DeepseekV2TopkRouter ignores norm_topk_prob, so the script renormalises its output"
        )
    if kind in ("v2", "v3", "cls"):
        qk = model.config.qk_nope_head_dim + model.config.qk_rope_head_dim
        facts["attn_softmax_scale_note"] = (
            f"qk_head_dim^-0.5 = {qk ** -0.5:.8f}; times yarn mscale(factor, mscale_all_dim)^2 when rope is yarn"
        )
    (fx.dir / "golden.json").write_text(json.dumps(facts, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(SPECS), help="write only this fixture (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for name in args.only or list(SPECS):
        fx = write_fixture(name)
        size = sum(p.stat().st_size for p in fx.dir.iterdir())
        f = fx.facts
        print(f"{name}: {size / 1024:.0f} KiB, greedy margin {f.get('greedy_min_margin', float('nan')):.4f}, "
              f"distinct {f.get('greedy_distinct_tokens', '-')}, router margins "
              f"{ {k: round(v, 5) for k, v in f.get('router_min_margin', {}).items()} }")


if __name__ == "__main__":
    main()
