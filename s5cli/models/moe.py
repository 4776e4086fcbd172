"""MoE-MDF conversions: upcycle a dense model into per-dataset experts, and export one dataset back.

Upcycling (docs/method.md, MoE-MDF; official `load_moe_ffn_weights`): the shared fc2 keeps the dense rows
[0, D-P), every expert starts as the dense rows [D-P, D), every dataset decoder is a copy of the
dense decoder, and a class head is copied only when its classes match; so at step 0 every dataset's
path computes exactly the dense function. Export merges shared + one expert back into a dense fc2.
"""

from __future__ import annotations

import torch

from s5cli.errors import InputError
from s5cli.models.ffn import PartialExpertFFN
from s5cli.models.network import S5Model, build_model, head_key
from s5cli.models.spec import HeadSpec, ModelSpec


def _device(model: S5Model) -> torch.device:
    return next(model.parameters()).device


def _respec(spec: ModelSpec, **update: object) -> ModelSpec:
    return ModelSpec.model_validate({**spec.model_dump(), **update})


def _copy_shared(src: S5Model, dst: S5Model) -> None:
    """Copy everything of the backbone but the FFNs, and the whole FPN."""
    state = {k: v for k, v in src.backbone.state_dict().items() if ".mlp." not in k}
    missing, unexpected = dst.backbone.load_state_dict(state, strict=False)
    if unexpected or any(".mlp." not in k for k in missing):
        raise InputError(f"backbones differ: missing {missing[:3]}, unexpected {unexpected[:3]}")
    dst.fpn.load_state_dict(src.fpn.state_dict())


def _source_head(dense: S5Model, head: HeadSpec) -> HeadSpec | None:
    """The dense head a new head starts from: same name and task, else the first head of that task."""
    same_task = [h for h in dense.spec.heads if h.task == head.task]
    for h in same_task:
        if h.name == head.name:
            return h
    return same_task[0] if same_task and head.task == "segmentation" else None


@torch.no_grad()
def _init_head(dense: S5Model, moe: S5Model, head: HeadSpec) -> None:
    source = _source_head(dense, head)
    if source is None:
        return  # a new task: fresh weights
    src, dst = dense.heads[head_key(source.name)], moe.heads[head_key(head.name)]
    same_classes = source.classes == head.classes
    if head.task == "segmentation":
        dst.decoder.load_state_dict(src.decoder.state_dict())
        if same_classes:
            dst.classifier.load_state_dict(src.classifier.state_dict())
    elif same_classes:
        dst.load_state_dict(src.state_dict())


@torch.no_grad()
def upcycle(dense: S5Model, heads: list[HeadSpec] | None = None, expert_width: int | None = None) -> S5Model:
    """A MoE-MDF model with one expert per head that computes the dense model's function at init.

    Args:
        dense: the dense (e.g. S4P pre-trained) model.
        heads: the datasets of the new model, in expert order; default: the dense model's heads.
        expert_width: P; default: the dense spec's expert_width (256).
    """
    if dense.spec.moe:
        raise InputError("the model already has MoE experts; upcycle takes a dense model")
    heads = list(dense.spec.heads) if heads is None else list(heads)
    width = dense.spec.expert_width if expert_width is None else expert_width
    spec = _respec(dense.spec, moe=True, expert_width=width, heads=[h.model_dump() for h in heads])
    with torch.device(_device(dense)):
        moe = build_model(spec)
    _copy_shared(dense, moe)
    for src_block, dst_block in zip(dense.backbone.blocks, moe.backbone.blocks, strict=True):
        dst_block.mlp.load_dense(src_block.mlp)
    for head in spec.heads:
        _init_head(dense, moe, head)
    return moe.train(dense.training)


@torch.no_grad()
def export_dense(model: S5Model, dataset: str | None = None) -> S5Model:
    """A dense single-dataset model equal to `model` on `dataset` (shared fc2 + that expert merged)."""
    head = model.spec.head(dataset)
    spec = _respec(model.spec, moe=False, heads=[head.model_dump()])
    with torch.device(_device(model)):
        dense = build_model(spec)
    _copy_shared(model, dense)
    expert = model.expert_index(head.name)
    for src_block, dst_block in zip(model.backbone.blocks, dense.backbone.blocks, strict=True):
        mlp = src_block.mlp
        merged = mlp.to_dense(expert) if isinstance(mlp, PartialExpertFFN) else mlp
        dst_block.mlp.load_state_dict(merged.state_dict())
    dense.heads[head_key(head.name)].load_state_dict(model.heads[head_key(head.name)].state_dict())
    return dense.train(model.training)
