"""`run_pretrain(cfg)`: S4P from a PretrainConfig to RUN_DIR/checkpoint.pt, on one process or under torchrun.

The stage supplies data streams, the model and the FixMatch step; training/engine.py does the rest
(device, DDP, autocast, accumulation, schedule, validation, checkpoints, resume, logs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from s5cli.config import config_to_dict
from s5cli.console import info, set_verbosity
from s5cli.errors import InputError
from s5cli.metrics.segmentation import metrics_for
from s5cli.pretrain.config import PretrainConfig, accumulation_steps
from s5cli.pretrain.data import labeled_source, unlabeled_source
from s5cli.pretrain.fixmatch import fixmatch_step
from s5cli.pretrain.validate import validate
from s5cli.pretrain.views import LabeledViews, UnlabeledViews
from s5cli.training.data import InfiniteLoader
from s5cli.training.distributed import DistContext, barrier, init_distributed, shutdown_distributed
from s5cli.training.engine import LoopSettings, StepContext, Trainer, TrainResult
from s5cli.training.run_dir import RunDir, begin_run, check_run_dir

# Config keys that may change between an interrupted run and its resume without a warning.
_RESUME_FREE = ("resume", "overwrite", "stop_after", "device", "workers", "output")


def build_pretrain_model(cfg: PretrainConfig, head: Any, channels: int = 3) -> nn.Module:
    """The S5 model with one segmentation head (the labeled dataset's), optionally initialised from a checkpoint."""
    from s5cli.models.network import build_model
    from s5cli.models.spec import InputSpec, ModelSpec

    if channels == 3:
        inputs = InputSpec(tile_size=cfg.crop_size)
    else:  # no ImageNet statistics for other band sets: centre [0, 1] data
        inputs = InputSpec(
            bands=[f"band{i + 1}" for i in range(channels)],
            mean=[0.5] * channels,
            std=[0.25] * channels,
            tile_size=cfg.crop_size,
        )
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
    from timm.layers import resample_abs_pos_embed

    from s5cli.models.checkpoint import read_checkpoint

    weights = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    fitting: dict[str, torch.Tensor] = {}
    for name, value in weights.items():
        if name not in own:
            continue
        if name.endswith("pos_embed") and value.shape != own[name].shape and value.shape[-1] == own[name].shape[-1]:
            old, new = int(value.shape[1] ** 0.5), int(own[name].shape[1] ** 0.5)
            value = resample_abs_pos_embed(value, new_size=[new, new], old_size=[old, old], num_prefix_tokens=0)
        if value.shape == own[name].shape:
            fitting[name] = value
    if not fitting:
        raise InputError("no weight of this checkpoint fits the model (another preset?)", path)
    model.load_state_dict(fitting, strict=False)
    info(f"init: {len(fitting)} of {len(own)} tensors from {path}")


def train_pretrain(cfg: PretrainConfig, dist: DistContext) -> tuple[TrainResult, RunDir]:
    """Build everything and train; returns the engine's result and the run dir (all ranks)."""
    run = check_run_dir(cfg.output, cfg.resume, cfg.overwrite)
    micro, accum = accumulation_steps(cfg, dist.world_size)
    labeled, linfo = labeled_source(cfg, cfg.labeled.split)
    val = labeled_source(cfg, cfg.labeled.val_split)[0] if cfg.labeled.val_split else None
    unlabeled = unlabeled_source(cfg)
    head = linfo.head_spec()
    channels = int(labeled[0]["image"].shape[0])
    views = cfg.fixmatch.views

    def stream(ds: Any, seed: int, size: int) -> InfiniteLoader:
        return InfiniteLoader(
            ds,
            size,
            seed=seed,
            rank=dist.rank,
            world_size=dist.world_size,
            num_workers=cfg.workers,
            pin_memory=dist.device.type == "cuda",
        )

    # partner "loader": each unlabeled draw is 2 x micro images of the shuffled stream; the second half
    # (other images, other augmentations) are the CutMix partners of the first half.
    pairs = 2 if cfg.fixmatch.partner == "loader" else 1
    streams = {
        "labeled": stream(LabeledViews(labeled, cfg.crop_size, views), cfg.seed, micro),
        "unlabeled": stream(UnlabeledViews(unlabeled, cfg.crop_size, views), cfg.seed + 1, pairs * micro),
    }

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = build_pretrain_model(cfg, head, channels)

    if dist.is_main:
        begin_run(run, cfg, _RESUME_FREE)
    barrier(dist)

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

    metrics = metrics_for(linfo)

    def evaluate(model: nn.Module, ctx: StepContext) -> dict[str, float]:
        return validate(model, val, head.name, metrics, ctx, cfg.eval_max_images)

    settings = LoopSettings(
        iterations=cfg.iterations,
        accumulation=accum,
        amp=cfg.amp,
        grad_clip=cfg.grad_clip,
        log_every=cfg.log_every,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
        stop_after=cfg.stop_after,
        resume=cfg.resume,
        seed=cfg.seed,
        ema_decay=cfg.fixmatch.ema_decay if cfg.fixmatch.teacher == "ema" else None,
        iters_per_epoch=max(streams["unlabeled"].batches_per_epoch // accum, 1),
        depth=_depth(cfg.model.preset),
        images_per_micro_batch=2 * micro,  # labeled + unlabeled
        find_unused_parameters=cfg.find_unused_parameters,
        description="pretrain",
    )
    info(
        f"S4P: {len(labeled)} labeled + {len(unlabeled)} unlabeled samples, {dist.world_size} process(es) x "
        f"{micro} per micro-batch x {accum} accumulation = batch {cfg.batch_size}, {cfg.iterations} iterations"
    )
    trainer = Trainer(
        model,
        step,
        streams,
        settings,
        dist=dist,
        optim=cfg.optim,
        schedule=cfg.schedule,
        run=run,
        config=config_to_dict(cfg),
        eval_fn=evaluate if val is not None else None,
    )
    return trainer.fit(), run


def _depth(preset: str) -> int:
    from s5cli.models.presets import get_preset

    return get_preset(preset).depth


def run_pretrain(cfg: PretrainConfig) -> Path:
    """Train S4P; returns RUN_DIR/checkpoint.pt (or the last training state when stopped by stop_after)."""
    from s5cli.models.checkpoint import save_checkpoint

    dist = init_distributed(cfg.device)
    if not dist.is_main:
        set_verbosity(0, 1)  # one copy of the messages: rank 0's (warnings still show)
    try:
        result, run = train_pretrain(cfg, dist)
        out = run.final if result.finished else (run.latest_state() or run.final)
        if dist.is_main and result.finished:
            extra = {"stage": "pretrain", "iterations": result.iteration, "metrics": result.last_metrics}
            save_checkpoint(run.final, result.model, config=config_to_dict(cfg), extra=extra, overwrite=True)
        barrier(dist)
    finally:
        shutdown_distributed(dist)
    if result.finished:
        info(f"wrote {out}")
    else:
        info(f"stopped after iteration {result.iteration}; continue with --resume (state: {out})")
    return out
