"""Official S5 state dicts made from our models, with the key names and shapes of the official checkpoints.

Written independently of s5cli/models/official.py (the direction here is ours -> official) so that the
import tests check one mapping against the other.
"""

from __future__ import annotations

import torch

from s5cli.models.network import S5Model

# RS_Finetune/Semantic_Segmentation/model/semseg/upernet_mdf.py
MDF_DECODER = {
    "vaihingen": "semsegdecoder",
    "potsdam": "semsegdecoder_potsdam",
    "openearthmap": "semsegdecoder_OpenEarthMap",
    "loveda": "semsegdecoder_loveda",
}
MDF_HEAD = {
    "vaihingen": "semseghead_vaihingen",
    "potsdam": "semseghead_potsdam",
    "openearthmap": "semseghead_OpenEarthMap",
    "loveda": "semseghead_loveda",
}


def official_encoder(model: S5Model, prefix: str = "") -> dict[str, torch.Tensor]:
    """mmseg ViT keys: patch_embed.projection, layers.i.{ln1,attn.attn,ffn.layers,ln2}, fpn1/fpn2."""
    ours = model.state_dict()
    out = {
        f"{prefix}patch_embed.projection.weight": ours["backbone.patch_embed.proj.weight"],
        f"{prefix}patch_embed.projection.bias": ours["backbone.patch_embed.proj.bias"],
        f"{prefix}pos_embed": ours["backbone.pos_embed"],
        f"{prefix}cls_token": ours["backbone.cls_token"],
    }
    for i in range(len(model.backbone.blocks)):
        src, dst = f"backbone.blocks.{i}.", f"{prefix}layers.{i}."
        for p in ("weight", "bias"):
            out[f"{dst}ln1.{p}"] = ours[f"{src}norm1.{p}"]
            out[f"{dst}ln2.{p}"] = ours[f"{src}norm2.{p}"]
            out[f"{dst}attn.attn.in_proj_{p}"] = ours[f"{src}attn.qkv.{p}"]
            out[f"{dst}attn.attn.out_proj.{p}"] = ours[f"{src}attn.proj.{p}"]
            out[f"{dst}ffn.layers.0.0.{p}"] = ours[f"{src}mlp.fc1.{p}"]
            out[f"{dst}ffn.layers.1.{p}"] = ours[f"{src}mlp.fc2.{p}"]
        for k in range(len(getattr(model.backbone.blocks[i].mlp, "experts", []))):
            for p in ("weight", "bias"):
                out[f"{dst}ffn.experts.{k}.{p}"] = ours[f"{src}mlp.experts.{k}.{p}"]
    for p in ("weight", "bias"):
        out[f"{prefix}fpn1.0.{p}"] = ours[f"fpn.fpn1.0.{p}"]
        out[f"{prefix}fpn1.1.ln.{p}"] = ours[f"fpn.fpn1.1.{p}"]
        out[f"{prefix}fpn1.3.{p}"] = ours[f"fpn.fpn1.3.{p}"]
        out[f"{prefix}fpn2.0.{p}"] = ours[f"fpn.fpn2.0.{p}"]
    return out


def official_decoder(model: S5Model, head: str, decoder: str, classifier: str) -> dict[str, torch.Tensor]:
    """mmseg UPerHead keys under `<decoder>.decode_head.` and the class conv under `<classifier>.1.`."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith(f"heads.{head}.decoder."):
            out[f"{decoder}.decode_head.{key.split('.decoder.', 1)[1]}"] = value
        elif key.startswith(f"heads.{head}.classifier.1."):
            out[f"{classifier}.1.{key.rsplit('.', 1)[1]}"] = value
    return out


def official_mdf(model: S5Model) -> dict[str, torch.Tensor]:
    """s5_vit_b_moe_mdf.pth: encoder + one decoder and head per dataset, DDP `module.` prefix."""
    state = official_encoder(model, "encoder.")
    for name in model.head_names:
        state.update(official_decoder(model, name, MDF_DECODER[name], MDF_HEAD[name]))
    return {f"module.{k}": v for k, v in state.items()}


def official_s4p_upernet(model: S5Model) -> dict[str, torch.Tensor]:
    """vit_*_s4p_upernet.pth: encoder + semsegdecoder + semseghead, DDP `module.` prefix."""
    state = official_encoder(model, "encoder.")
    state.update(official_decoder(model, model.head_names[0], "semsegdecoder", "semseghead"))
    return {f"module.{k}": v for k, v in state.items()}


def timm_vit(model: S5Model, pos_embed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A timm / MAE ViT state dict of the model's backbone: pos_embed with the cls slot, a final `norm`.

    `pos_embed` (1, 1 + g*g, D), e.g. MAE's 14 x 14 grid at 224 px; default: ours with a cls slot added.
    """
    ours = model.state_dict()
    dim = model.backbone.embed_dim
    pos = ours["backbone.pos_embed"]
    out = {
        "cls_token": ours["backbone.cls_token"],
        "pos_embed": torch.cat([torch.zeros(1, 1, dim), pos], dim=1) if pos_embed is None else pos_embed,
        "patch_embed.proj.weight": ours["backbone.patch_embed.proj.weight"],
        "patch_embed.proj.bias": ours["backbone.patch_embed.proj.bias"],
    }
    for i in range(len(model.backbone.blocks)):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            for p in ("weight", "bias"):
                out[f"blocks.{i}.{part}.{p}"] = ours[f"backbone.blocks.{i}.{part}.{p}"]
    out["norm.weight"], out["norm.bias"] = torch.ones(dim), torch.zeros(dim)
    return out


def mae_decoder(dim: int, decoder_dim: int = 16, patch: int = 16, make=torch.randn) -> dict[str, torch.Tensor]:
    """The decoder keys of an MAE training checkpoint (models_mae.py MaskedAutoencoderViT), one block."""
    out = {
        "mask_token": make(1, 1, decoder_dim),
        "decoder_embed.weight": make(decoder_dim, dim),
        "decoder_embed.bias": make(decoder_dim),
        "decoder_pos_embed": make(1, 197, decoder_dim),
        "decoder_norm.weight": make(decoder_dim),
        "decoder_norm.bias": make(decoder_dim),
        "decoder_pred.weight": make(patch * patch * 3, decoder_dim),
        "decoder_pred.bias": make(patch * patch * 3),
    }
    for part, shape in (("norm1", (decoder_dim,)), ("attn.qkv", (3 * decoder_dim, decoder_dim))):
        out[f"decoder_blocks.0.{part}.weight"] = make(*shape)
    return out


def official_class_rows(value: torch.Tensor, task: str, classes: list[str]) -> torch.Tensor:
    """fc_cls rows in the official class order of `task` (background stays last)."""
    from s5cli.models.official_detection import class_permutation

    perm = class_permutation(task, classes)
    if perm is None:
        return value
    rows = value.clone()
    for ours_row, official_row in enumerate(perm):
        rows[official_row] = value[ours_row]
    return rows


def official_detection_head(state: dict, ours: str, task: str, classes: list[str] | None = None) -> dict:
    """mmdet/OBBDetection names of one task's neck, RPN and RoI head (OBBTwoStageDetectorMTD modules)."""
    out = {}
    for key, value in state.items():
        if not key.startswith(f"heads.{ours}."):
            continue
        module, rest = key[len(f"heads.{ours}.") :].split(".", 1)
        if module == "neck":  # mmdet FPN ConvModules: lateral_convs.i.conv.*
            kind, index, param = rest.split(".")
            out[f"neck_{task}.{kind}.{index}.conv.{param}"] = value
        elif module == "rpn_head":
            out[f"rpn_head_{task}.{rest}"] = value
        elif rest.startswith("fc_cls.") and classes is not None:
            out[f"roi_head_{task}.bbox_head.{rest}"] = official_class_rows(value, task, classes)
        else:
            out[f"roi_head_{task}.bbox_head.{rest}"] = value
    return out


def official_mtd(model: S5Model, tasks: dict[str, str]) -> dict[str, torch.Tensor]:
    """An OBBTwoStageDetectorMTD state dict: `backbone.*` (experts in `tasks` order) and one head set per task.

    tasks: {official task name: our head name}, in the config's task_names order (dior, dota).
    """
    state = model.state_dict()
    out = official_encoder(model, "backbone.")
    for task, name in tasks.items():
        classes = model.spec.head(name).classes
        out.update(official_detection_head(state, name.replace(".", "_"), task, classes))
    return out
