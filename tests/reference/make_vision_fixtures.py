#!/usr/bin/env python3
"""DeepSeek-OCR vision tower goldens: tests/fixtures/tiny-ocr/.

The reference is the official DeepSeek-OCR code (GitHub deepseek-ai/DeepSeek-OCR,
DeepSeek-OCR-master/DeepSeek-OCR-vllm): its `deepencoder` modules (SAM ViT-B `ImageEncoderViT`,
CLIP-L `VitModel`, `MlpProjector`) and the view packing of `DeepseekOCRForCausalLM.
_pixel_values_to_embedding` in `deepseek_ocr.py`. They are IMPORTED from a checkout whose
`DeepSeek-OCR-vllm` directory is given with --ocr-repo or DSOCR_OCR_REPO, e.g.

    git -C <DeepSeek-OCR clone> archive HEAD DeepSeek-OCR-master/DeepSeek-OCR-vllm | tar -x -C /tmp/ocr
    DSOCR_OCR_REPO=/tmp/ocr/DeepSeek-OCR-master/DeepSeek-OCR-vllm \\
        python3 tests/reference/make_vision_fixtures.py

Needs torch, safetensors, numpy and `easydict` (pip install easydict; the CLIP module builds
its config with it). What the modules import but the paths run here never call is replaced by
empty stand-ins in sys.modules: flash_attn (the SDPA path runs: use_flash_attn False), vllm,
einops, addict and the repo's own `config` / `process.image_process` (which would download a
tokenizer). Those stand-ins raise if anything calls them.

The model: a tiny random DeepSeek-OCR, built with the modules' own constructors and saved in
the hub checkpoint layout (BF16):
  SAM   ImageEncoderViT(img_size 1024, patch 16, depth 4, embed 32, heads 2, mlp_ratio 4,
        LayerNorm eps 1e-6, qkv_bias, use_rel_pos, window 14, global_attn_indexes (1, 3),
        out_chans 16); its net_2 / net_3 (hard-coded 256->512->1024 in the constructor) are
        replaced by Conv2d(16->24) and Conv2d(24->48), 3x3 stride 2 pad 1 without bias, the
        same layers at the tiny widths, so the SAM output width equals CLIP's.
  CLIP  VitModel(vit_model_cfg with num_layers 2, hidden 48, heads 2, ffn 192; patch 14,
        image 224 -> 257 positions, eps 1e-5 as released).
  proj  MlpProjector(linear, input_dim 96, n_embed 64) and image_newline / view_seperator [64].
  decoder: the tensors of tests/fixtures/tiny-ocr-decoder/model.safetensors (hidden 64) as
        they are, so that fixture's decoder goldens hold for this model too.
All weights are drawn from a seeded generator and rounded to bf16; the reference then runs in
float32 on those exact values with bf16-rounded pixels (the reference's cast before SAM), so
an f32 implementation reading model.safetensors matches to ~1e-6.

Pixels are synthetic (no image file is needed): view `seed` of side S has
    h = (x * 73856093) ^ (y * 19349663) ^ (c * 83492791) ^ (seed * 2654435761)   (uint32)
    h ^= h >> 13; h *= 0x5bd1e995; h ^= h >> 15                                  (uint32)
    u8 = (x * 192 // S + y * 64 // S + c * 40 + (h & 63)) & 255
    pixel = bf16(((u8 / 255) - 0.5) / 0.5)   in float32, as ToTensor + Normalize(0.5, 0.5)
Seeds: tiny 1, small 2, base 3, large 4, gundam global = base (seed 3), gundam tiles 10..15.

golden-vision.safetensors (F32 unless noted; C = 48 SAM/CLIP width, E = 64, n = S / 64):
  {mode}.pixel_rows   [3, 2, S]    rows 0 and S-1 of every channel (to check the generator)
  {mode}.sam          [1, C, n, n] sam_model(pixels)
  {mode}.clip         [1, n*n+1, C] vision_model(pixels, sam) (row 0 is the CLS token)
  {mode}.proj         [1, n*n, E]  projector(cat(clip[:, 1:], sam tokens))
  {mode}.packed       [n(n+1)+1, E] _pixel_values_to_embedding without tiles
      modes: tiny (S 512), small (640), base (1024), large (1280)
  gundam.tiles.proj   [6, 100, E]  projector output of the six 640 tiles (seeds 10..15,
                                   row-major over the grid)
  gundam.tiles.pixel_rows          [6, 3, 2, 640]
  gundam.packed       [903, E]     tiles (3 rows x 2 columns) + global (base) + separator
  gundam.grid         I64 [2]      images_spatial_crop = [cols 2, rows 3]
  gundam.n_tokens     I64 [1]      903 = 16*17+1 + (10*3)*(10*2+1)
  interp.sam_pos.{40,32,80}        [1, s, s, 32] sam_vary_sdpa.get_abs_pos(pos_embed, s)
  interp.sam_rel_h.{40,32,80}      [2s-1, 16] block 1's rel_pos_h as get_rel_pos resamples it
  interp.sam_rel_w.{40,32,80}      [2s-1, 16] block 3's rel_pos_w likewise
  interp.clip_pos.{10,8,20}        [1, s*s+1, C] clip_sdpa.get_abs_pos(position table, s*s+1)
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import types
from functools import partial

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"

SAM = dict(depth=4, embed_dim=32, num_heads=2, global_attn_indexes=(1, 3), window_size=14,
           out_chans=16, downsample=(24, 48))
CLIP = dict(num_layers=2, hidden_size=48, num_attention_heads=2, ffn_hidden_size=192)
N_EMBED = 64
MODES = {"tiny": (512, 1), "small": (640, 2), "base": (1024, 3), "large": (1280, 4)}
TILE_SEEDS = list(range(10, 16))
GRID = (2, 3)  # (cols, rows)


# ---- importing the reference -------------------------------------------------------------

class _Unused:
    """Stand-in for a name the reference imports but never uses on the paths run here."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} is a stand-in and must not be called")


class _StubMeta(type):
    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        # registry decorators: @REGISTRY.register_processor(...) leaves the class as is
        return lambda *a, **k: (lambda obj: obj)

    def __getitem__(cls, item):
        return cls


def _stub_class(name):
    """A class usable as a base, a generic (Base[T]) and a decorator factory host."""
    return _StubMeta(name, (), {"__init__": lambda self, *a, **k: None})


class _StubModule(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        value = _stub_class(attr)
        setattr(self, attr, value)
        return value


class _StubFinder:
    """Makes `vllm` and every `vllm.*` module importable as stand-ins."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "vllm" or fullname.startswith("vllm."):
            import importlib.machinery
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


def import_reference(repo):
    repo = pathlib.Path(repo).resolve()
    if not (repo / "deepencoder" / "sam_vary_sdpa.py").is_file():
        sys.exit(f"{repo}: not the DeepSeek-OCR-vllm directory (no deepencoder/sam_vary_sdpa.py)")
    try:
        import easydict  # noqa: F401  (used by clip_sdpa to hold its config)
    except ImportError:
        sys.exit("easydict is needed: python3 -m pip install easydict")

    flash = types.ModuleType("flash_attn")
    flash.flash_attn_qkvpacked_func = _Unused("flash_attn_qkvpacked_func")
    flash.flash_attn_func = _Unused("flash_attn_func")
    sys.modules.setdefault("flash_attn", flash)
    for name, attrs in (("einops", ("rearrange", "repeat")), ("addict", ("Dict",))):
        if name not in sys.modules:
            m = types.ModuleType(name)
            for a in attrs:
                setattr(m, a, _Unused(f"{name}.{a}"))
            sys.modules[name] = m
    # the repo's config.py loads a tokenizer from the hub at import time
    cfg = types.ModuleType("config")
    cfg.IMAGE_SIZE, cfg.BASE_SIZE, cfg.CROP_MODE = 640, 1024, True
    cfg.MIN_CROPS, cfg.MAX_CROPS = 2, 6
    cfg.PRINT_NUM_VIS_TOKENS, cfg.PROMPT, cfg.TOKENIZER = False, "", None
    sys.modules["config"] = cfg
    proc = types.ModuleType("process")
    proc.__path__ = []
    improc = types.ModuleType("process.image_process")
    improc.DeepseekOCRProcessor = _Unused("DeepseekOCRProcessor")
    improc.count_tiles = _Unused("count_tiles")
    sys.modules["process"] = proc
    sys.modules["process.image_process"] = improc
    sys.meta_path.insert(0, _StubFinder())

    sys.path.insert(0, str(repo))
    import deepencoder.build_linear as build_linear
    import deepencoder.clip_sdpa as clip_sdpa
    import deepencoder.sam_vary_sdpa as sam_vary_sdpa
    import deepseek_ocr
    return types.SimpleNamespace(sam=sam_vary_sdpa, clip=clip_sdpa, linear=build_linear,
                                 ocr=deepseek_ocr)


# ---- the tiny model ----------------------------------------------------------------------

def towers(ref, sam_w, clip_w, n_embed):
    """The reference's SAM, CLIP and projector at the widths of `sam_w` (keys of SAM above) and
    `clip_w` (keys of CLIP above), as their constructors make them."""
    sam = ref.sam.ImageEncoderViT(
        depth=sam_w["depth"], embed_dim=sam_w["embed_dim"], img_size=1024, mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=sam_w["num_heads"],
        patch_size=16, qkv_bias=True, use_rel_pos=True,
        global_attn_indexes=sam_w["global_attn_indexes"], window_size=sam_w["window_size"],
        out_chans=sam_w["out_chans"])
    c2, c3 = sam_w["downsample"]
    sam.net_2 = nn.Conv2d(sam_w["out_chans"], c2, kernel_size=3, stride=2, padding=1, bias=False)
    sam.net_3 = nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1, bias=False)

    cfg = ref.clip.adict(dict(ref.clip.vit_model_cfg))
    cfg.update(clip_w)
    cfg.num_heads = clip_w["num_attention_heads"]
    assert not cfg.use_flash_attn
    clip = ref.clip.VitModel(cfg=cfg, freeze_embed=False, freeze_pre_norm=False)
    proj = ref.linear.MlpProjector(ref.clip.adict(projector_type="linear",
                                                  input_dim=clip_w["hidden_size"] + c3,
                                                  n_embed=n_embed))
    return sam, clip, proj


def vision_config_json(sam_w, clip_w):
    """config.json's vision_config for towers of those widths (the released file's keys, plus
    out_chans and window_size, which it leaves at SAM ViT-B's)."""
    c2, c3 = sam_w["downsample"]
    return {
        "image_size": 1024,
        "mlp_ratio": 3.7362,
        "model_name": "deeplip_b_l",
        "model_type": "vision",
        "width": {
            "clip-l-14-224": {"heads": clip_w["num_attention_heads"], "image_size": 224,
                              "layers": clip_w["num_layers"], "patch_size": 14,
                              "width": clip_w["hidden_size"]},
            "sam_vit_b": {"downsample_channels": [c2, c3],
                          "global_attn_indexes": list(sam_w["global_attn_indexes"]),
                          "heads": sam_w["num_heads"], "layers": sam_w["depth"],
                          "width": sam_w["embed_dim"], "out_chans": sam_w["out_chans"],
                          "window_size": sam_w["window_size"]},
        },
    }


def load_hub_towers(parts, weights):
    """Copies the hub-named vision tensors of `weights` (popped) into parts = (sam, clip, proj,
    newline, sep)."""
    sam, clip, proj, newline, sep = parts
    with torch.no_grad():
        for prefix, mod in (("model.sam_model.", sam), ("model.vision_model.", clip),
                            ("model.projector.", proj)):
            for name, p in mod.named_parameters():
                p.copy_(weights.pop(prefix + name).float())
        newline.copy_(weights.pop("model.image_newline").float())
        sep.copy_(weights.pop("model.view_seperator").float())


def build(ref, gen):
    sam, clip, proj = towers(ref, SAM, CLIP, N_EMBED)
    newline = nn.Parameter(torch.zeros(N_EMBED))
    sep = nn.Parameter(torch.zeros(N_EMBED))

    # Random values everywhere (the constructors zero pos_embed and the rel-pos tables and set
    # norms to 1/0, which would hide their handling), rounded to bf16.
    with torch.no_grad():
        for mod in (sam, clip, proj):
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
                    fan_in = p[0].numel()
                    v = torch.randn(p.shape, generator=gen) / fan_in ** 0.5
                p.copy_(v.to(torch.bfloat16).float())
        newline.copy_(torch.randn(N_EMBED, generator=gen).to(torch.bfloat16).float())
        sep.copy_(torch.randn(N_EMBED, generator=gen).to(torch.bfloat16).float())
    for m in (sam, clip, proj):
        m.eval()
    return sam, clip, proj, newline, sep


def hub_tensors(sam, clip, proj, newline, sep):
    out = {}
    for prefix, mod in (("model.sam_model.", sam), ("model.vision_model.", clip),
                        ("model.projector.", proj)):
        for name, p in mod.named_parameters():
            out[prefix + name] = p.detach().to(torch.bfloat16).contiguous()
    out["model.image_newline"] = newline.detach().to(torch.bfloat16)
    out["model.view_seperator"] = sep.detach().to(torch.bfloat16)
    return out


# ---- inputs ------------------------------------------------------------------------------

def pixels(seed, size):
    y, x = np.meshgrid(np.arange(size, dtype=np.uint32), np.arange(size, dtype=np.uint32),
                       indexing="ij")
    planes = []
    for c in range(3):
        h = (x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ \
            np.uint32((c * 83492791) & 0xffffffff) ^ np.uint32((seed * 2654435761) & 0xffffffff)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0x5bd1e995)
        h ^= h >> np.uint32(15)
        u8 = (x * 192 // size + y * 64 // size + c * 40 + (h & np.uint32(63))) & np.uint32(255)
        planes.append(u8.astype(np.uint8))
    t = torch.from_numpy(np.stack(planes)).float() / 255
    t = (t - 0.5) / 0.5
    return t.to(torch.bfloat16).float()  # [3, S, S]


def pixel_rows(p):
    return torch.stack([p[:, 0, :], p[:, -1, :]], dim=1).contiguous()  # [3, 2, S]


# ---- goldens -----------------------------------------------------------------------------

class Float32Inputs(nn.Module):
    """The packing method casts tiles to bf16 before calling the towers; they hold bf16 values
    already, so casting back is exact and the towers run in float32."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, *rest):
        return self.inner(x.float(), *rest)


def packer(ref, sam, clip, proj, newline, sep):
    cls = ref.ocr.DeepseekOCRForCausalLM
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    obj.sam_model = Float32Inputs(sam)
    obj.vision_model = Float32Inputs(clip)
    obj.projector = proj
    obj.image_newline = newline
    obj.view_seperator = sep
    return obj


def run_view(sam, clip, proj, px):
    """px: [B, 3, S, S] -> sam [B, C, n, n], clip [B, n*n+1, C], proj [B, n*n, E]."""
    s = sam(px)
    c = clip(px, s)
    p = proj(torch.cat((c[:, 1:], s.flatten(2).permute(0, 2, 1)), dim=-1))
    return s, c, p


def rel_table(ref, rel_pos, size):
    """The resampled [2*size-1, C] table, read back from get_rel_pos's [q, k, C] gather:
    row r is at (q, k) = (max(0, r - (size-1)), max(0, (size-1) - r))."""
    g = ref.sam.get_rel_pos(size, size, rel_pos)
    rows = []
    for r in range(2 * size - 1):
        rows.append(g[max(0, r - (size - 1)), max(0, (size - 1) - r)])
    return torch.stack(rows)


def goldens(ref, sam, clip, proj, newline, sep):
    g = {}
    pk = packer(ref, sam, clip, proj, newline, sep)
    zero_crop = torch.zeros(1, 1, 1, 3, 640, 640)
    with torch.no_grad():
        for mode, (size, seed) in MODES.items():
            px = pixels(seed, size)
            s, c, p = run_view(sam, clip, proj, px[None])
            n = size // 64
            assert s.shape == (1, SAM["downsample"][1], n, n), s.shape
            g[f"{mode}.pixel_rows"] = pixel_rows(px)
            g[f"{mode}.sam"], g[f"{mode}.clip"], g[f"{mode}.proj"] = s, c, p
            packed = pk._pixel_values_to_embedding(
                pixel_values=px[None, None].to(torch.bfloat16), images_crop=zero_crop,
                images_spatial_crop=torch.tensor([[[1, 1]]]))[0]
            assert packed.shape == (n * (n + 1) + 1, N_EMBED), packed.shape
            # the packing is made of the stage outputs above, bit for bit
            grid = p[0].view(n, n, N_EMBED)
            assert torch.equal(packed[: n * (n + 1)].view(n, n + 1, N_EMBED)[:, :n], grid)
            g[f"{mode}.packed"] = packed

        tiles = torch.stack([pixels(sd, 640) for sd in TILE_SEEDS])
        _, _, tp = run_view(sam, clip, proj, tiles)
        g["gundam.tiles.pixel_rows"] = torch.stack([pixel_rows(t) for t in tiles])
        g["gundam.tiles.proj"] = tp
        glob = pixels(MODES["base"][1], 1024)
        cols, rows = GRID
        packed = pk._pixel_values_to_embedding(
            pixel_values=glob[None, None].to(torch.bfloat16), images_crop=tiles[None, None],
            images_spatial_crop=torch.tensor([[[cols, rows]]]))[0]
        n_tokens = 16 * 17 + 1 + (10 * rows) * (10 * cols + 1)
        assert packed.shape == (n_tokens, N_EMBED), packed.shape
        assert torch.equal(packed[-(16 * 17 + 1):], g["base.packed"])
        g["gundam.packed"] = packed
        g["gundam.grid"] = torch.tensor([cols, rows], dtype=torch.int64)
        g["gundam.n_tokens"] = torch.tensor([n_tokens], dtype=torch.int64)

        pos = sam.pos_embed.detach()
        rel_h = sam.blocks[1].attn.rel_pos_h.detach()
        rel_w = sam.blocks[3].attn.rel_pos_w.detach()
        assert rel_h.shape[0] == 127 and rel_w.shape[0] == 127
        table = clip.embeddings.position_embedding(clip.embeddings.position_ids)
        for s_ in (40, 32, 80):
            g[f"interp.sam_pos.{s_}"] = ref.sam.get_abs_pos(pos, s_)
            g[f"interp.sam_rel_h.{s_}"] = rel_table(ref, rel_h, s_)
            g[f"interp.sam_rel_w.{s_}"] = rel_table(ref, rel_w, s_)
        for s_ in (10, 8, 20):
            g[f"interp.clip_pos.{s_}"] = ref.clip.get_abs_pos(table, s_ * s_ + 1)
    return {k: v.detach().contiguous() for k, v in g.items()}


def config_json(decoder_cfg):
    cfg = json.loads(decoder_cfg.read_text())
    cfg["_name_or_path"] = "tiny-ocr"
    c3 = SAM["downsample"][1]
    cfg["vision_config"] = vision_config_json(SAM, CLIP)
    cfg["projector_config"] = {"input_dim": CLIP["hidden_size"] + c3, "model_type": "mlp_projector",
                               "n_embed": N_EMBED, "projector_type": "linear"}
    return json.dumps(cfg, indent=2) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ocr-repo", default=os.environ.get("DSOCR_OCR_REPO"),
                    help="the DeepSeek-OCR-master/DeepSeek-OCR-vllm directory of a checkout")
    ap.add_argument("--out", default=str(FIXTURES / "tiny-ocr"))
    args = ap.parse_args()
    if not args.ocr_repo:
        sys.exit("give --ocr-repo or DSOCR_OCR_REPO (see the docstring)")

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    ref = import_reference(args.ocr_repo)
    gen = torch.Generator().manual_seed(20251122)
    sam, clip, proj, newline, sep = build(ref, gen)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dec_dir = FIXTURES / "tiny-ocr-decoder"
    tensors = hub_tensors(sam, clip, proj, newline, sep)
    with safetensors.safe_open(dec_dir / "model.safetensors", "pt") as f:
        for k in f.keys():
            assert k not in tensors, k
            tensors[k] = f.get_tensor(k)
    safetensors.torch.save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(config_json(dec_dir / "config.json"))

    # the towers read back from the written file give the same goldens
    written = safetensors.torch.load_file(out / "model.safetensors")
    with torch.no_grad():
        for prefix, mod in (("model.sam_model.", sam), ("model.vision_model.", clip),
                            ("model.projector.", proj)):
            for name, p in mod.named_parameters():
                assert torch.equal(written[prefix + name].float(), p), name

    g = goldens(ref, sam, clip, proj, newline, sep)
    # one metadata key: safetensors writes several in a random order, and the file should be
    # byte-identical from run to run
    safetensors.torch.save_file(g, out / "golden-vision.safetensors", metadata={
        "generator": f"tests/reference/make_vision_fixtures.py (torch {torch.__version__}, "
                     f"python {platform.python_version()})"})
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {len(tensors)} weights, {len(g)} goldens, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
