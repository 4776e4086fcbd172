"""The fine-tuning network: from an S4P checkpoint through the function-preserving upcycle, or fresh.

- Several datasets (or `model.moe: true`): `models.moe.upcycle` turns the dense S4P model into MoE-MDF with
  one expert per dataset (shared fc2 = dense rows [0, D-P), every expert = rows [D-P, D)); each dataset's
  decoder is a copy of the S4P decoder, class heads are new unless their classes equal the S4P head's.
- One dataset (or `model.moe: false`): a dense model; its weights come from the same upcycle followed by
  `models.moe.export_dense`, which merges the expert back (exact), so decoder copying follows one rule.
- An init that already has experts continues only when its datasets are exactly the run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s5cli.console import info, warn
from s5cli.errors import ConfigError, InputError
from s5cli.finetune.config import FinetuneConfig
from s5cli.models.network import S5Model, build_model, head_key
from s5cli.models.spec import HeadSpec, ModelSpec


def _respec(spec: ModelSpec, **update: Any) -> ModelSpec:
    return ModelSpec.model_validate({**spec.model_dump(), **update})


def _with_spec(model: S5Model, spec: ModelSpec) -> S5Model:
    """Swap in a spec that differs only in fields that build no parameters (heads' trained input, drop path)."""
    model.spec = spec
    return model


def _check_width(preset: str, width: int, moe: bool) -> None:
    from s5cli.models.presets import get_preset

    dim = get_preset(preset).embed_dim
    if moe and not 0 < width < dim:
        raise ConfigError(f"model.expert_width {width} must be below the width of {preset} ({dim})")


def position_size(heads: list[HeadSpec]) -> int:
    """The input size the position embedding is learned at: the largest one a head trains at.

    The official detection config builds its ViT at 1024 (a 64 x 64 grid interpolated once from the
    S4P 32 x 32 and then trained), its segmentation one at 512.
    """
    return max(h.input.size for h in heads)


def _dense_init(path: Path, cfg: FinetuneConfig, img_size: int) -> S5Model:
    """The init checkpoint as a dense model with the run's drop-path, its position grid at `img_size`."""
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli.models.presets import get_preset
    from s5cli.models.vit import resample_grid

    loaded, spec, _ = load_checkpoint(path)
    if cfg.model.preset is not None and cfg.model.preset != spec.preset:
        raise ConfigError(f"model.preset is {cfg.model.preset} but the init checkpoint {path} is a {spec.preset}")
    if len(spec.input.bands) != 3:
        raise InputError(f"the init checkpoint takes {len(spec.input.bands)} bands; the benchmarks are RGB", path)
    dense = build_model(_respec(spec, drop_path=cfg.model.drop_path, img_size=img_size))
    weights = loaded.state_dict()
    grid = img_size // get_preset(spec.preset).patch_size
    weights["backbone.pos_embed"] = resample_grid(weights["backbone.pos_embed"], grid)  # once, here
    dense.load_state_dict(weights)
    return dense


def _dense_heads(moe: S5Model) -> S5Model:
    """A dense model with all of `moe`'s heads, each dataset's path exported (identical right after upcycling)."""
    spec = _respec(moe.spec, moe=False)
    dense = build_model(spec)
    first = moe.spec.heads[0].name
    shared = {k: v for k, v in _export(moe, first).state_dict().items() if not k.startswith("heads.")}
    dense.load_state_dict(shared, strict=False)
    for head in moe.spec.heads:
        key = head_key(head.name)
        dense.heads[key].load_state_dict(moe.heads[key].state_dict())
    return dense


def _export(moe: S5Model, name: str) -> S5Model:
    from s5cli.models.moe import export_dense

    return export_dense(moe, name)


def build_finetune_model(cfg: FinetuneConfig, heads: list[HeadSpec]) -> S5Model:
    """The model to fine-tune: upcycled from `cfg.model.init`, or fresh weights (with a warning)."""
    from s5cli.models.moe import upcycle

    moe = cfg.model.moe if cfg.model.moe is not None else len(heads) > 1
    names = [h.name for h in heads]
    init = cfg.model.init
    if init is None:
        preset = cfg.model.preset or "vit-b"
        _check_width(preset, cfg.model.expert_width, moe)
        warn("no --init checkpoint: fine-tuning starts from random weights (give an S4P checkpoint for S5)")
        spec = ModelSpec(
            preset=preset,
            heads=heads,
            moe=moe,
            expert_width=cfg.model.expert_width,
            img_size=position_size(heads),
            drop_path=cfg.model.drop_path,
            decoder_channels=cfg.model.decoder_channels,
        )
        model = build_model(spec)
    else:
        from s5cli.models.checkpoint import checkpoint_spec, read_checkpoint

        ckpt_spec = checkpoint_spec(read_checkpoint(init), init)
        if ckpt_spec.moe:
            if [h.name for h in ckpt_spec.heads] != names or not moe:
                raise InputError(
                    f"this checkpoint already has experts ({', '.join(h.name for h in ckpt_spec.heads)}); "
                    f"fine-tuning on {', '.join(names)} needs a dense (S4P) checkpoint, or `s5 export` one dataset",
                    init,
                )
            from s5cli.models.checkpoint import load_checkpoint

            model = load_checkpoint(init)[0].train()
        else:
            dense = _dense_init(init, cfg, position_size(heads))
            width = cfg.model.expert_width
            if moe:
                _check_width(dense.spec.preset, width, True)
            else:  # any valid width: the upcycle + export round trip is exact
                width = min(width, dense.backbone.embed_dim // 2)
            upcycled = upcycle(dense, heads, expert_width=width)
            if moe:
                model = upcycled
            elif len(heads) == 1:
                model = _export(upcycled, heads[0].name)
            else:
                model = _dense_heads(upcycled)
            info(f"init: {init} ({dense.spec.preset}) -> {'MoE-MDF, one expert per dataset' if moe else 'dense'}")
    trained = {h.name: h.input for h in heads}  # each head records the input this run trains it at
    spec = model.spec.model_copy(
        update={"heads": [h.model_copy(update={"input": trained[h.name]}) for h in model.spec.heads]}
    )
    model = _with_spec(model, spec)
    model.set_grad_checkpointing(cfg.model.grad_checkpointing)
    return model.train()


def count_trainable(model: torch.nn.Module) -> int:
    """Parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
