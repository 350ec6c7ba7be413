#!/usr/bin/env python3
"""Writes the safetensors fixtures of test-safetensors.c / test-checkpoint.c and the seed corpus
of fuzz-safetensors.c.

Every .safetensors file is written by the `safetensors` library (shards and indexes by
`huggingface_hub.save_torch_state_dict`, the hub's own sharding), and each fixture has a
`<name>.golden.json` holding what a reader must find: per tensor its dtype, shape and values
(floats widened to f32 by torch, integers as integers, booleans as 0/1), plus the metadata.

Fixtures (tests/fixtures/safetensors/):
  dtypes.safetensors     one tensor per dtype (BF16 F16 F32 F8_E4M3 I64 I32 U8 BOOL), a scalar,
                         an empty tensor, a rank-4 tensor, an odd name; a __metadata__ block
  sharded/               2 shards + model.safetensors.index.json
  original/              a miniature DeepSeek-OCR checkpoint in the hub's ORIGINAL names
  native/                the same weights in the transformers-native layout (renamed, CLIP
                         qkv_proj split into q/k/v), sharded; original.golden.json is the
                         expectation for both, under the original names

The native names follow the DeepseekOcr conversion of transformers
(convert_deepseek_ocr_weights_to_hf.py); transformers 5.23 no longer ships that model, so the
conversion is restated here as renames plus torch.split, the way the script applies them.

Usage: python3 tests/reference/make_safetensors_fixtures.py   (from the repository root)
"""
import json
import os
import re
import shutil
import struct

import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import save, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures", "safetensors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus", "safetensors")

DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3", torch.int64: "I64", torch.int32: "I32",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def golden_entry(t):
    if t.dtype.is_floating_point:
        values = [float(v) for v in t.to(torch.float32).flatten().tolist()]
    else:
        values = [int(v) for v in t.to(torch.int64).flatten().tolist()]
    return {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "values": values}


def write_golden(path, tensors, metadata=None):
    doc = {"tensors": {k: golden_entry(v) for k, v in tensors.items()},
           "metadata": metadata or {}}
    # One line per tensor: small, and a diff shows which tensor changed.
    with open(path, "w") as f:
        f.write('{"metadata": %s,\n "tensors": {\n' % json.dumps(doc["metadata"], sort_keys=True))
        lines = ['  %s: %s' % (json.dumps(k), json.dumps(v, separators=(",", ":")))
                 for k, v in sorted(doc["tensors"].items())]
        f.write(",\n".join(lines) + "\n }}\n")


def dtypes_fixture():
    g = torch.Generator().manual_seed(1)
    tensors = {
        "f32.matrix": torch.tensor([[1.5, -2.25, 0.0], [3.0e-8, 65504.0, -1.0e30]]),
        "f16.vector": torch.tensor([0.5, -1.0, 6.1035e-05, 65504.0, -0.0999], dtype=torch.float16),
        "bf16.rank4": torch.randn(1, 2, 2, 3, generator=g).to(torch.bfloat16),
        "f8.e4m3": torch.tensor([0.5, -1.75, 448.0, 0.015625, -0.001953125]).to(
            torch.float8_e4m3fn),
        "i64": torch.tensor([1, -2, 2**40 + 1, -(2**62)], dtype=torch.int64),
        "i32": torch.tensor([[7, -8], [2**31 - 1, -(2**31)]], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 127, 128, 255, 42], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 4),
        "odd name/with spaces.and.dots": torch.tensor([9.0, 10.0]),
    }
    metadata = {"format": "pt", "source": "make_safetensors_fixtures.py"}
    save_file(tensors, os.path.join(FIX, "dtypes.safetensors"), metadata=metadata)
    write_golden(os.path.join(FIX, "dtypes.golden.json"), tensors, metadata)
    return tensors, metadata


def sharded_fixture():
    g = torch.Generator().manual_seed(2)
    tensors = {
        "a.weight": torch.randn(16, 8, generator=g),                    # 512 bytes
        "b.weight": torch.randn(16, 8, generator=g),                    # 512 bytes
        "c.bias": torch.randn(8, generator=g).to(torch.bfloat16),
        "d.ids": torch.arange(5, dtype=torch.int64),
    }
    out = os.path.join(FIX, "sharded")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    save_torch_state_dict(tensors, out, max_shard_size=600)
    shards = [f for f in os.listdir(out) if f.endswith(".safetensors")]
    assert len(shards) >= 2, shards
    write_golden(os.path.join(FIX, "sharded.golden.json"), tensors)


def mini_original():
    """A miniature checkpoint with every kind of name of the hub checkpoint (§2 of the
    reference sheet), two-digit layer numbers included; shapes are tiny, dtype is bf16."""
    g = torch.Generator().manual_seed(3)
    shapes = {}
    sam = "model.sam_model."
    shapes[sam + "patch_embed.proj.weight"] = [4, 3, 2, 2]
    shapes[sam + "patch_embed.proj.bias"] = [4]
    shapes[sam + "pos_embed"] = [1, 2, 2, 4]
    for n in (0, 11):
        b = f"{sam}blocks.{n}."
        for p in ("norm1", "norm2"):
            shapes[b + p + ".weight"] = [4]
            shapes[b + p + ".bias"] = [4]
        shapes[b + "attn.qkv.weight"] = [12, 4]
        shapes[b + "attn.qkv.bias"] = [12]
        shapes[b + "attn.proj.weight"] = [4, 4]
        shapes[b + "attn.proj.bias"] = [4]
        shapes[b + "attn.rel_pos_h"] = [3, 2]
        shapes[b + "attn.rel_pos_w"] = [3, 2]
        shapes[b + "mlp.lin1.weight"] = [8, 4]
        shapes[b + "mlp.lin1.bias"] = [8]
        shapes[b + "mlp.lin2.weight"] = [4, 8]
        shapes[b + "mlp.lin2.bias"] = [4]
    shapes[sam + "neck.0.weight"] = [4, 4, 1, 1]
    shapes[sam + "neck.1.weight"] = [4]
    shapes[sam + "neck.1.bias"] = [4]
    shapes[sam + "neck.2.weight"] = [4, 4, 2, 2]
    shapes[sam + "neck.3.weight"] = [4]
    shapes[sam + "neck.3.bias"] = [4]
    shapes[sam + "net_2.weight"] = [8, 4, 1, 1]
    shapes[sam + "net_3.weight"] = [4, 8, 1, 1]

    clip = "model.vision_model."
    shapes[clip + "embeddings.class_embedding"] = [8]
    shapes[clip + "embeddings.patch_embedding.weight"] = [8, 3, 2, 2]
    shapes[clip + "embeddings.position_embedding.weight"] = [5, 8]
    shapes[clip + "pre_layrnorm.weight"] = [8]
    shapes[clip + "pre_layrnorm.bias"] = [8]
    for n in (0, 23):
        b = f"{clip}transformer.layers.{n}."
        for p in ("layer_norm1", "layer_norm2"):
            shapes[b + p + ".weight"] = [8]
            shapes[b + p + ".bias"] = [8]
        shapes[b + "self_attn.qkv_proj.weight"] = [24, 8]
        shapes[b + "self_attn.qkv_proj.bias"] = [24]
        shapes[b + "self_attn.out_proj.weight"] = [8, 8]
        shapes[b + "self_attn.out_proj.bias"] = [8]
        shapes[b + "mlp.fc1.weight"] = [16, 8]
        shapes[b + "mlp.fc1.bias"] = [16]
        shapes[b + "mlp.fc2.weight"] = [8, 16]
        shapes[b + "mlp.fc2.bias"] = [8]

    shapes["model.projector.layers.weight"] = [6, 16]
    shapes["model.projector.layers.bias"] = [6]
    shapes["model.image_newline"] = [6]
    shapes["model.view_seperator"] = [6]

    shapes["model.embed_tokens.weight"] = [10, 6]
    for n in (0, 1, 10):
        b = f"model.layers.{n}."
        shapes[b + "input_layernorm.weight"] = [6]
        shapes[b + "post_attention_layernorm.weight"] = [6]
        for p in "qkvo":
            shapes[b + f"self_attn.{p}_proj.weight"] = [6, 6]
        if n == 0:
            shapes[b + "mlp.gate_proj.weight"] = [12, 6]
            shapes[b + "mlp.up_proj.weight"] = [12, 6]
            shapes[b + "mlp.down_proj.weight"] = [6, 12]
            continue
        shapes[b + "mlp.gate.weight"] = [4, 6]
        for e in (0, 3):
            shapes[b + f"mlp.experts.{e}.gate_proj.weight"] = [2, 6]
            shapes[b + f"mlp.experts.{e}.up_proj.weight"] = [2, 6]
            shapes[b + f"mlp.experts.{e}.down_proj.weight"] = [6, 2]
        shapes[b + "mlp.shared_experts.gate_proj.weight"] = [4, 6]
        shapes[b + "mlp.shared_experts.up_proj.weight"] = [4, 6]
        shapes[b + "mlp.shared_experts.down_proj.weight"] = [6, 4]
    shapes["model.norm.weight"] = [6]
    shapes["lm_head.weight"] = [10, 6]
    return {k: torch.randn(*s, generator=g).to(torch.bfloat16) for k, s in shapes.items()}


# Original -> transformers-native names (the DeepseekOcr conversion), first match wins.
NATIVE_RENAMES = [
    (r"^model\.sam_model\.patch_embed\.proj\.", "model.sam_model.patch_embed.projection."),
    (r"^model\.sam_model\.blocks\.(\d+)\.norm(\d)\.", r"model.sam_model.layers.\1.layer_norm\2."),
    (r"^model\.sam_model\.blocks\.(\d+)\.", r"model.sam_model.layers.\1."),
    (r"^model\.sam_model\.neck\.0\.", "model.sam_model.neck.conv1."),
    (r"^model\.sam_model\.neck\.1\.", "model.sam_model.neck.layer_norm1."),
    (r"^model\.sam_model\.neck\.2\.", "model.sam_model.neck.conv2."),
    (r"^model\.sam_model\.neck\.3\.", "model.sam_model.neck.layer_norm2."),
    (r"^model\.vision_model\.transformer\.layers\.",
     "model.clip_model.vision_model.encoder.layers."),
    (r"^model\.vision_model\.", "model.clip_model.vision_model."),
    (r"^model\.projector\.", "model.multi_modal_projector."),
    (r"^model\.embed_tokens\.", "model.language_model.embed_tokens."),
    (r"^model\.layers\.", "model.language_model.layers."),
    (r"^model\.norm\.", "model.language_model.norm."),
]


def to_native(original):
    native = {}
    for name, t in original.items():
        new = name
        for pat, rep in NATIVE_RENAMES:
            new, n = re.subn(pat, rep, name)
            if n:
                break
        m = re.match(r"^(model\.clip_model\..*\.self_attn\.)qkv_proj\.(weight|bias)$", new)
        if m:
            q, k, v = torch.split(t, t.shape[0] // 3, dim=0)
            for part, piece in zip("qkv", (q, k, v)):
                native[f"{m.group(1)}{part}_proj.{m.group(2)}"] = piece.clone()
        else:
            native[new] = t
    return native


def mini_checkpoints():
    original = mini_original()
    odir = os.path.join(FIX, "original")
    ndir = os.path.join(FIX, "native")
    shutil.rmtree(odir, ignore_errors=True)
    shutil.rmtree(ndir, ignore_errors=True)
    os.makedirs(odir)
    os.makedirs(ndir)
    save_file(original, os.path.join(odir, "model.safetensors"), metadata={"format": "pt"})
    # Small shards, so that q, k and v of a layer may sit in different files.
    save_torch_state_dict(to_native(original), ndir, max_shard_size=2048)
    write_golden(os.path.join(FIX, "original.golden.json"), original)


def header_file(header, data=b"", header_len=None):
    h = header.encode() if isinstance(header, str) else header
    n = len(h) if header_len is None else header_len
    return struct.pack("<Q", n) + h + data


def corpus(dtypes, metadata):
    shutil.rmtree(CORPUS, ignore_errors=True)
    os.makedirs(CORPUS)
    f32x2 = struct.pack("<2f", 1.0, 2.0)
    seeds = {
        "valid-dtypes": save(dtypes, metadata=metadata),
        "valid-single": save({"a": torch.tensor([1.0, 2.0])}),
        "valid-empty-header": save({}),
        "valid-metadata-only": save({}, metadata={"k": "v"}),
        "valid-zero-size": save({"z": torch.zeros(0, 3), "y": torch.ones(2, dtype=torch.int32)}),
        "short-7-bytes": b"\x08\x00\x00\x00\x00\x00\x00",
        "header-len-huge": struct.pack("<Q", 2**63 + 5) + b"{}",
        "header-not-json": header_file("{not json}", f32x2),
        "header-json-array": header_file("[1, 2]"),
        "unknown-dtype": header_file('{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}',
                                     b"\0" * 8),
        "negative-shape": header_file('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}',
                                      f32x2),
        "float-shape": header_file('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}',
                                   f32x2),
        "offsets-out-of-range": header_file(
            '{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32x2),
        "overlap": header_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                               '"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}', f32x2),
        "size-mismatch": header_file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',
                                     f32x2),
        "truncated-data": save({"a": torch.arange(16, dtype=torch.float32)})[:-10],
        "duplicate-key": header_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                     '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
                                     f32x2),
        "deep-nesting": header_file("{\"a\":" + "[" * 40 + "]" * 40 + "}"),
        "rank-5": header_file('{"a":{"dtype":"U8","shape":[1,1,1,1,2],"data_offsets":[0,2]}}',
                              b"\1\2"),
        "metadata-not-string": header_file('{"__metadata__":{"k":3}}'),
    }
    for name, data in seeds.items():
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)


def main():
    os.makedirs(FIX, exist_ok=True)
    dtypes, metadata = dtypes_fixture()
    sharded_fixture()
    mini_checkpoints()
    corpus(dtypes, metadata)


if __name__ == "__main__":
    main()
