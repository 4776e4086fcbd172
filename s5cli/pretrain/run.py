"""`run_pretrain(cfg)`: S4P from a PretrainConfig to RUN_DIR/model.pt, on one process or under torchrun.

The stage supplies its plan (training/stage.py): the labeled and unlabeled streams, the model and the
FixMatch step, validated on the labeled dataset's protocol (scoring/); the shared run does the rest
(device, DDP, autocast, accumulation, schedule, states, model.pt, resume, logs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from s5cli.console import info
from s5cli.datasets.registry import pixel_format
from s5cli.errors import InputError
from s5cli.models.spec import HeadSpec, InputSpec, input_spec
from s5cli.pretrain.config import PretrainConfig, accumulation_steps
from s5cli.pretrain.data import labeled_info, labeled_root, labeled_source, unlabeled_source
from s5cli.pretrain.fixmatch import fixmatch_step
from s5cli.pretrain.views import LabeledViews, UnlabeledViews
from s5cli.scoring.plan import Choices, Validator, plan_job
from s5cli.training.data import InfiniteLoader
from s5cli.training.distributed import DistContext
from s5cli.training.engine import StepContext
from s5cli.training.run_dir import RunDir
from s5cli.training.stage import StagePlan, run_stage


def build_pretrain_model(cfg: PretrainConfig, head: HeadSpec, inputs: InputSpec) -> nn.Module:
    """The S5 model with one segmentation head (the labeled dataset's), optionally initialised from a checkpoint."""
    from s5cli.models.network import build_model
    from s5cli.models.spec import ModelSpec

    spec = ModelSpec(
        preset=cfg.model.preset,
        heads=[head],
        img_size=cfg.crop_size,
        drop_path=cfg.model.drop_path,
        decoder_channels=cfg.model.decoder_channels,
        input=inputs,
    )
    model = build_model(spec)
    if cfg.model.init is not None:
        load_init(model, cfg.model.init)
    model.set_grad_checkpointing(cfg.model.grad_checkpointing)
    return model


def load_init(model: nn.Module, path: Path) -> None:
    """Load every tensor of an s5cli checkpoint whose name and shape fit (position embeddings resampled)."""
    from s5cli.models.checkpoint import read_checkpoint
    from s5cli.models.vit import resample_grid

    weights = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    fitting: dict[str, torch.Tensor] = {}
    for name, value in weights.items():
        if name not in own:
            continue
        if name.endswith("pos_embed") and value.shape != own[name].shape and value.shape[-1] == own[name].shape[-1]:
            value = resample_grid(value, round(own[name].shape[1] ** 0.5))
        if value.shape == own[name].shape:
            fitting[name] = value
    if not fitting:
        raise InputError("no weight of this checkpoint fits the model (another preset?)", path)
    model.load_state_dict(fitting, strict=False)
    info(f"init: {len(fitting)} of {len(own)} tensors from {path}")


def plan_pretrain(cfg: PretrainConfig, dist: DistContext, run: RunDir) -> StagePlan:
    """Streams, model, FixMatch step and validation of an S4P run (all user errors surface here)."""
    del run  # the shared stage owns it
    micro, accum = accumulation_steps(cfg, dist.world_size)
    linfo = labeled_info(cfg)
    head = HeadSpec.from_dataset(linfo, cfg.crop_size)
    labeled = labeled_source(cfg, cfg.labeled.split, head.classes)
    unlabeled = unlabeled_source(cfg)
    # what the checkpoint records: how the labeled loader reads its pixels
    inputs = input_spec({head.name: pixel_format(linfo, labeled_root(cfg), cfg.labeled.options)})
    views = cfg.fixmatch.views

    def stream(ds: Any, seed: int, size: int) -> InfiniteLoader:
        return InfiniteLoader(
            ds,
            size,
            seed=seed,
            rank=dist.rank,
            world_size=dist.world_size,
            num_workers=cfg.loader_workers(),
            streams=2,  # labeled and unlabeled share the cores
            pin_memory=dist.device.type == "cuda",
        )

    # partner "loader": each unlabeled draw is 2 x micro images of the shuffled stream; the second half
    # (other images, other augmentations) are the CutMix partners of the first half.
    pairs = 2 if cfg.fixmatch.partner == "loader" else 1
    streams = {
        "labeled": stream(LabeledViews(labeled, cfg.crop_size, views), cfg.seed, micro),
        "unlabeled": stream(UnlabeledViews(unlabeled, cfg.crop_size, views), cfg.seed + 1, pairs * micro),
    }
    validator = None
    if cfg.labeled.val_split:
        choices = Choices(split=cfg.labeled.val_split, options=cfg.labeled.options, max_images=cfg.eval_max_images)
        validator = Validator([plan_job(linfo, head, labeled_root(cfg), choices, cfg.model.preset)])

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = build_pretrain_model(cfg, head, inputs)

    def step(model: nn.Module, batch: dict[str, Any], ctx: StepContext) -> tuple[torch.Tensor, dict]:
        teacher = ctx.ema.module if ctx.ema is not None else None
        unlabeled, partner = batch["unlabeled"], None
        if pairs == 2:
            unlabeled = {k: v[:micro] for k, v in batch["unlabeled"].items()}
            partner = {k: v[micro:] for k, v in batch["unlabeled"].items()}
        return fixmatch_step(
            model,
            batch["labeled"],
            unlabeled,
            partner,
            cfg.fixmatch,
            head=head.name,
            teacher=teacher,
            autocast=ctx.autocast,
        )

    from s5cli.models.presets import get_preset

    return StagePlan(
        model=model,
        step=step,
        streams=streams,
        iterations=cfg.iterations,
        iters_per_epoch=max(streams["unlabeled"].batches_per_epoch // accum, 1),
        accumulation=accum,
        images_per_micro_batch=2 * micro,  # labeled + unlabeled
        depth=get_preset(cfg.model.preset).depth,
        extra={"stage": "pretrain"},
        show=("loss", "loss_x", "loss_u", "mask_ratio"),
        summary=(
            f"S4P: {len(labeled)} labeled + {len(unlabeled)} unlabeled samples, {dist.world_size} process(es) x "
            f"{micro} per micro-batch x {accum} accumulation = batch {cfg.global_batch_size}, "
            f"{cfg.iterations} iterations"
        ),
        validate=validator if validator else None,
        ema_decay=cfg.fixmatch.ema_decay if cfg.fixmatch.teacher == "ema" else None,
        find_unused_parameters=bool(cfg.find_unused_parameters),
    )


def run_pretrain(cfg: PretrainConfig) -> Path | None:
    """Train S4P; returns RUN_DIR/model.pt, the model to use (None when stopped early by stop_after)."""
    return run_stage(cfg, plan_pretrain, "pretrain")
