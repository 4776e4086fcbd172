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
