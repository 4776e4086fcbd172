"""Convert the released S5 weights (mmcv/mmseg key names) and MAE / timm ViTs into our checkpoints.

Handled files:
- `vit_*_s4p.pth`: backbone only, bare ViT keys (`patch_embed.projection.*`, `layers.i.*`, `fpn1.*`) or `backbone.*`;
- `vit_*_s4p_upernet.pth`: `encoder.*`, `semsegdecoder.decode_head.*`, `semseghead.1.*` (S4P, 16 iSAID classes);
- `s5_vit_b_moe_mdf.pth`: MoE encoder (`ffn.experts.k`), `semsegdecoder[_<ds>].decode_head.*`, `semseghead_<ds>.1.*`;
- detection files as the mmcv runner saves them (`meta` / `state_dict` / `optimizer`; `backbone.*`, `neck_*`,
  `rpn_head_*`, `roi_head_*`, fp16 for ViT-B): heads mapped by official_detection.py;
- MAE (`mae_pretrain_vit_*.pth`, training checkpoints with `args`) and plain timm ViT state dicts: renamed as
  S4P's `ViT.init_weights` renames them (S4_Pretrain/model/backbone/vit.py), the cls position dropped and
  the position embedding resized bicubically to the S4P grid (512 px); MAE's decoder and final norm are
  reported as not mapped, as S5's ViT has neither.
`module.` prefixes are stripped and `model` / `state_dict` wrappers unwrapped. The preset is inferred from
the shapes. The attention `in_proj` already has our fused qkv layout ([q; k; v] rows), so nothing is split.
MoE experts are stored by index in the official task order (segmentation vaihingen, potsdam, openearthmap,
loveda; detection dior, dota); each of our datasets takes the expert of the official task its decoder or
detection head is matched to by name, so `--datasets` may come in any order.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field

import torch
from timm.layers import resample_abs_pos_embed

from s5cli.errors import InputError
from s5cli.geo.files import check_output
from s5cli.models.checkpoint import check_tensors, official_globals, refuse_train_state, safe_load, save_checkpoint
from s5cli.models.known_heads import S5_SEGMENTATION_DATASETS, known_head
from s5cli.models.network import build_model, head_key
from s5cli.models.presets import get_preset, preset_for_shape
from s5cli.models.spec import HeadSpec, ModelSpec

_BACKBONE_RULES = [
    (r"patch_embed\.projection\.(weight|bias)", r"backbone.patch_embed.proj.\1"),
    (r"pos_embed", "backbone.pos_embed"),
    (r"cls_token", "backbone.cls_token"),
    (r"layers\.(\d+)\.ln([12])\.(weight|bias)", r"backbone.blocks.\1.norm\2.\3"),
    (r"layers\.(\d+)\.attn\.attn\.in_proj_(weight|bias)", r"backbone.blocks.\1.attn.qkv.\2"),
    (r"layers\.(\d+)\.attn\.attn\.out_proj\.(weight|bias)", r"backbone.blocks.\1.attn.proj.\2"),
    (r"layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)", r"backbone.blocks.\1.mlp.fc1.\2"),
    (r"layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)", r"backbone.blocks.\1.mlp.fc2.\2"),
    (r"layers\.(\d+)\.ffn\.experts\.(\d+)\.(weight|bias)", r"backbone.blocks.\1.mlp.experts.\2.\3"),
    (r"fpn1\.([03])\.(weight|bias)", r"fpn.fpn1.\1.\2"),
    (r"fpn1\.1\.ln\.(weight|bias)", r"fpn.fpn1.1.\1"),
    (r"fpn2\.0\.(weight|bias)", r"fpn.fpn2.0.\1"),
]
# timm / MAE names -> the official mmcv names, as S4P's ViT.init_weights renames them.
_TIMM_RULES = [
    (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.projection.\1"),
    (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"layers.\1.ln\2.\3"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"layers.\1.attn.attn.in_proj_\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"layers.\1.attn.attn.out_proj.\2"),
    (r"blocks\.(\d+)\.mlp\.fc1\.(weight|bias)", r"layers.\1.ffn.layers.0.0.\2"),
    (r"blocks\.(\d+)\.mlp\.fc2\.(weight|bias)", r"layers.\1.ffn.layers.1.\2"),
]
_TIMM = re.compile(r"(blocks\.\d+\.|patch_embed\.proj\.)")
# S4P builds its ViT at 512 px (32 x 32 positions), the grid the MAE position embedding is resized to.
S4P_IMG_SIZE = ModelSpec.model_fields["img_size"].default
_BACKBONE_PREFIXES = ("encoder.", "backbone.")
_BARE_BACKBONE = re.compile(r"(patch_embed|pos_embed|cls_token|layers|fpn\d|ln1)\b")
_DETECTION = re.compile(r"(neck|rpn_head|roi_head)[._]")  # per-task `neck_dior.` or single `neck.`
# Official MDF modules in task order (upernet_mdf.py): vaihingen uses the unsuffixed decoder.
_MOE_DECODERS = ["semsegdecoder", "semsegdecoder_potsdam", "semsegdecoder_OpenEarthMap", "semsegdecoder_loveda"]
_MOE_HEADS = ["semseghead_vaihingen", "semseghead_potsdam", "semseghead_OpenEarthMap", "semseghead_loveda"]
_DETECTION_NAMES = {"dior": "dior-r", "dota": "dota-v2.0"}  # official task names -> our dataset names


def unwrap_state_dict(obj: object, source: str = "weights") -> dict[str, torch.Tensor]:
    """The tensor dict inside `{"model": ...}` / `{"state_dict": ...}` wrappers, `module.` prefixes stripped."""
    while isinstance(obj, dict):
        inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise InputError("holds no state dict", source)
    state = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            while key.startswith("module."):
                key = key[len("module.") :]
            state[key] = value
    if not state:
        raise InputError("holds no weights (no tensors in the state dict)", source)
    return state


def map_backbone_key(key: str) -> str | None:
    """Our key for an official ViT key without prefix (e.g. `layers.3.ln1.weight`), None if unknown."""
    for pattern, target in _BACKBONE_RULES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    return None


def _timm_to_official(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A timm / MAE state dict under the official mmcv names; returns it and {new name: name in the file}."""
    renamed, names = {}, {}
    for key, value in state.items():
        new = next((re.sub(p, t, key) for p, t in _TIMM_RULES if re.fullmatch(p, key)), key)
        renamed[new], names[new] = value, key
    return renamed, names


def _resized_pos_embed(pos: torch.Tensor, side: int) -> torch.Tensor:
    """(1, g*g, D) position embedding bicubically resized to side x side (align_corners=False, as init_weights)."""
    old = round(pos.shape[1] ** 0.5)
    if old == side:
        return pos
    return resample_abs_pos_embed(
        pos.float(), new_size=[side, side], old_size=[old, old], num_prefix_tokens=0, antialias=False
    ).to(pos.dtype)


def _split_backbone(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict[str, str]]:
    """(backbone keys without prefix, everything else, {backbone key: key in the file})."""
    backbone, rest, names = {}, {}, {}
    for key, value in state.items():
        prefix = next((p for p in _BACKBONE_PREFIXES if key.startswith(p)), "")
        if prefix or _BARE_BACKBONE.match(key):
            backbone[key[len(prefix) :]], names[key[len(prefix) :]] = value, key
        else:
            rest[key] = value
    if "patch_embed.projection.weight" not in backbone:
        raise InputError("no ViT backbone found (no patch_embed.projection.weight): not an S5 ViT checkpoint")
    return backbone, rest, names


def _modules(rest: dict[str, torch.Tensor], pattern: str) -> list[str]:
    return sorted({m.group(1) for k in rest if (m := re.match(pattern, k))})


def _pick(available: list[str], prefix: str, name: str, position: int, defaults: list[str], used: set) -> str | None:
    """The official module for dataset `name` at expert `position`: by name, then by official position."""
    by_name = [m for m in available if m.lower() == f"{prefix}_{name}".lower()]
    if name.lower() in S5_SEGMENTATION_DATASETS and len(defaults) == len(S5_SEGMENTATION_DATASETS):
        by_name.append(defaults[S5_SEGMENTATION_DATASETS.index(name.lower())])  # e.g. vaihingen: unsuffixed
    by_position = [defaults[position]] if position < len(defaults) else []
    only = available if len(available) == 1 else []
    for candidate in by_name + by_position + only:
        if candidate in available and candidate not in used:
            used.add(candidate)
            return candidate
    return None


def _segmentation_heads(
    rest: dict[str, torch.Tensor], names: list[str], moe: bool
) -> tuple[list[HeadSpec], dict[str, str], list[int]]:
    """Head specs, {official module prefix: our module prefix} and each dataset's official expert index."""
    decoders = _modules(rest, r"(semsegdecoder[^.]*)\.decode_head\.")
    classifiers = _modules(rest, r"(semseghead[^.]*)\.1\.weight$")
    dec_defaults, cls_defaults = (_MOE_DECODERS, _MOE_HEADS) if moe else (["semsegdecoder"], ["semseghead"])
    heads, prefixes, experts, used_dec, used_cls = [], {}, [], set(), set()
    for position, name in enumerate(names):
        decoder = _pick(decoders, "semsegdecoder", name, position, dec_defaults, used_dec)
        classifier = _pick(classifiers, "semseghead", name, position, cls_defaults, used_cls)
        key = f"{classifier}.1.weight"
        num_classes = _dims(rest[key], key, 4)[0] if classifier else None
        heads.append(known_head(name, num_classes))
        if decoder:
            prefixes[f"{decoder}.decode_head."] = f"heads.{head_key(name)}.decoder."
        if classifier:
            prefixes[f"{classifier}.1."] = f"heads.{head_key(name)}.classifier.1."
        # The expert trained with this decoder and head: their index in the official task order.
        if decoder in dec_defaults:
            experts.append(dec_defaults.index(decoder))
        elif classifier in cls_defaults:
            experts.append(cls_defaults.index(classifier))
        else:
            experts.append(_task_index(name, position))
    return heads, prefixes, experts


def _task_index(name: str, position: int) -> int:
    """A dataset's expert in the official segmentation order (vaihingen, potsdam, ...), else its position."""
    known = [n.lower() for n in S5_SEGMENTATION_DATASETS]
    return known.index(name.lower()) if name.lower() in known else position


def _expert_permutation(sources: list[int], count: int) -> dict[int, int]:
    """{official expert index: our expert index} from the official expert each of our datasets takes."""
    if sorted(sources) != list(range(count)):
        raise InputError(
            f"cannot tell which of the {count} experts each dataset takes (matched {sources}); "
            "name the datasets as the file's tasks with --datasets"
        )
    return {src: ours for ours, src in enumerate(sources)}


def _map_prefixed(rest: dict[str, torch.Tensor], prefixes: dict[str, str]) -> tuple[dict, dict, list[str]]:
    mapped, origin, unmapped = {}, {}, []
    for key, value in rest.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            unmapped.append(key)
        else:
            target = prefixes[prefix] + key[len(prefix) :]
            mapped[target], origin[target] = value, key
    return mapped, origin, unmapped


def _dims(tensor: torch.Tensor, key: str, ndim: int) -> torch.Size:
    """The shape of a tensor the conversion reads sizes from; another rank (a 1-D or 0-D stand-in) is refused."""
    if tensor.ndim != ndim:
        raise InputError(f"'{key}' is a {tensor.ndim}-D tensor {tuple(tensor.shape)}; S5 weights hold a {ndim}-D one")
    return tensor.shape


def _grid_pos_embed(pos: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(pos_embed without a cls slot, grid side): official files store (1, g*g, D), MAE ones (1, 1+g*g, D)."""
    tokens = _dims(pos, "pos_embed", 3)[1]
    side = round(tokens**0.5)
    if side * side == tokens:
        return pos, side
    side = round((tokens - 1) ** 0.5)
    if side * side == tokens - 1:
        return pos[:, 1:], side
    raise InputError(f"pos_embed has {tokens} tokens, not a square grid")


def convert_official(
    state: dict[str, torch.Tensor], datasets: list[str] | None = None
) -> tuple[ModelSpec, dict[str, torch.Tensor], dict[str, str], list[str]]:
    """Map an official (or MAE / timm) state dict to ours.

    Returns:
        (spec, our state dict, {our key: official key}, official keys that could not be mapped).
    """
    from s5cli.models.official_detection import map_detection_keys, task_experts

    timm = any(_TIMM.match(k) for k in state)
    renamed: dict[str, str] = {}
    if timm:
        state, renamed = _timm_to_official(state)
    backbone, rest, file_keys = _split_backbone(state)
    file_keys = {k: renamed.get(v, v) for k, v in file_keys.items()}
    weight = backbone["patch_embed.projection.weight"]  # (D, C, 16, 16)
    _dims(weight, "patch_embed.projection.weight", 4)
    if weight.shape[1] != 3:
        raise InputError(f"the patch embedding takes {weight.shape[1]} bands; the S5 weights are RGB")
    depth = 1 + max((int(m.group(1)) for k in backbone if (m := re.match(r"layers\.(\d+)\.", k))), default=-1)
    preset = preset_for_shape(weight.shape[0], depth)
    patch = get_preset(preset).patch_size
    if tuple(weight.shape[-2:]) != (patch, patch):
        raise InputError(
            f"the patch embedding is {weight.shape[-2]}x{weight.shape[-1]}, but S5's {preset} uses {patch}x{patch} "
            "patches (S5 pre-trains a patch-16 MAE; the public MAE ViT-H/14 does not fit)"
        )
    experts = {int(m.group(1)) for k in backbone if (m := re.search(r"\.ffn\.experts\.(\d+)\.", k))}
    width = next((_dims(v, k, 2)[0] for k, v in backbone.items() if ".ffn.experts." in k and k.endswith("weight")), 256)
    pos, side = _grid_pos_embed(backbone.get("pos_embed", torch.zeros(1, 1024, weight.shape[0])))
    if timm:  # S4P's init: the MAE grid (14 x 14 at 224 px) resized to the S4P input
        side = S4P_IMG_SIZE // patch
        pos = _resized_pos_embed(pos, side)
    if "pos_embed" in backbone:
        backbone["pos_embed"] = pos

    detection = any(_DETECTION.match(k) for k in rest)
    if detection:
        default = [_DETECTION_NAMES.get(n, n) for n in _modules(rest, r"neck_([^.]+)\.")]
    else:
        default = S5_SEGMENTATION_DATASETS[: len(experts)] if experts else ["isaid"]
    names = datasets or default
    if not names:
        raise InputError("a single-dataset detection checkpoint: name its dataset with --datasets")
    if experts and len(names) != len(experts):
        raise InputError(
            f"the file has {len(experts)} experts but {len(names)} dataset names; name each with --datasets"
        )
    if not experts and len(names) != 1 and any(k.startswith("semseg") for k in rest):
        raise InputError("a single-head checkpoint: give one name with --datasets")
    if detection:
        heads = [known_head(n, task="detection") for n in names]
        mapped, left = map_detection_keys(rest, names)
        head_origin = {k: "(detection head)" for k in mapped}
        sources = task_experts(rest, names)
    else:
        heads, prefixes, sources = _segmentation_heads(rest, names, moe=bool(experts))
        mapped, head_origin, left = _map_prefixed(rest, prefixes)
    permutation = _expert_permutation(sources, len(experts)) if experts else {}

    ours, origin, unmapped = {}, {}, []
    for key, value in backbone.items():
        target = map_backbone_key(key)
        if target is None:
            unmapped.append(file_keys[key])
            continue
        expert = re.search(r"\.mlp\.experts\.(\d+)\.", target)
        if expert:  # the official expert k goes to the dataset that was trained with it
            start, stop = expert.span(1)
            target = f"{target[:start]}{permutation[int(expert.group(1))]}{target[stop:]}"
        ours[target], origin[target] = value, file_keys[key]
    ours.update(mapped)
    origin.update(head_origin)
    channels = next((_dims(v, k, 4)[0] for k, v in rest.items() if k.endswith("fpn_bottleneck.conv.weight")), 256)
    trained = side * patch  # the official models take exactly their position grid's size
    spec = ModelSpec(
        preset=preset,
        heads=[h.model_copy(update={"input": h.input.model_copy(update={"size": trained})}) for h in heads],
        moe=bool(experts),
        expert_width=width,
        decoder_channels=channels,
        img_size=trained,
    )
    return spec, ours, origin, unmapped + list(left)


@dataclass
class ImportReport:
    """What an import did: the model recognised, and every key it could not carry over."""

    source: str
    output: str
    preset: str
    moe: bool
    datasets: list[str]
    loaded: int  # our tensors set from the file
    unmapped: list[str] = field(default_factory=list)  # official keys not used (with the reason)
    unset: list[str] = field(default_factory=list)  # our keys left at fresh initialisation

    def as_dict(self) -> dict:
        """Plain dict for --json."""
        return asdict(self)


def import_official(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    datasets: list[str] | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Convert an official S5 .pth file into our checkpoint at `output`."""
    check_output(output, overwrite)
    loaded = safe_load(source, allow=official_globals())
    refuse_train_state(loaded, source)
    state = unwrap_state_dict(loaded, str(source))
    try:
        spec, ours, origin, unmapped = convert_official(state, datasets)
    except InputError as exc:
        raise InputError(exc.problem, exc.path or source) from None
    check_tensors(ours, source)  # NaN, infinite or complex weights would be written as a broken checkpoint
    model = build_model(spec)
    expected = model.state_dict()
    fitting = {}
    for key, value in ours.items():
        if key not in expected:
            unmapped.append(f"{origin[key]} (no {key} in {spec.preset})")
        elif tuple(value.shape) != tuple(expected[key].shape):
            unmapped.append(f"{origin[key]} (shape {tuple(value.shape)}, need {tuple(expected[key].shape)})")
        else:
            fitting[key] = value.to(expected[key].dtype)
    result = model.load_state_dict(fitting, strict=False)
    report = ImportReport(
        source=str(source),
        output=str(output),
        preset=spec.preset,
        moe=spec.moe,
        datasets=model.head_names,
        loaded=len(fitting),
        unmapped=unmapped,
        unset=list(result.missing_keys),
    )
    extra = {"imported_from": report.source, "unmapped": report.unmapped, "unset": report.unset}
    save_checkpoint(output, model, config=None, extra=extra, overwrite=overwrite)
    return report
