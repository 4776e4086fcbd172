"""`run_finetune(cfg)`: MoE-MDF fine-tuning from a FinetuneConfig to RUN_DIR/checkpoint.pt (+ best.pt).

The stage supplies one stream per dataset, the upcycled model and the MDF step; training/engine.py does
the rest (device, DDP, autocast, accumulation, schedule, layer decay, clipping, states, resume, logs).
Validation runs every epoch on each dataset's val split with its own metric and eval mode
(evaluation/); best.pt keeps the model with the best mean of those metrics (S5 keeps the best mean mIoU).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from s5cli.config import config_to_dict
from s5cli.console import info, set_verbosity
from s5cli.errors import ConfigError
from s5cli.evaluation.modes import patch_gap, protocol_for
from s5cli.evaluation.scoring import EvalSettings, evaluate_dataset
from s5cli.finetune.config import FinetuneConfig
from s5cli.finetune.data import DatasetPlan, load_split, plan_datasets, train_view
from s5cli.finetune.model import build_finetune_model, count_trainable
from s5cli.finetune.step import LossTerm, MultiDatasetModel, mdf_step
from s5cli.training.data import InfiniteLoader
from s5cli.training.distributed import DistContext, barrier, init_distributed, shutdown_distributed
from s5cli.training.engine import LoopSettings, StepContext, Trainer, TrainResult
from s5cli.training.run_dir import RunDir, begin_run, check_run_dir

# Config keys that may change between an interrupted run and its resume without a warning.
_RESUME_FREE = ("resume", "overwrite", "stop_after", "device", "workers", "output")


def input_sizes(cfg: FinetuneConfig, plans: list[DatasetPlan]) -> dict[str, int]:
    """The input size each head is trained at (evaluate and export read it from the checkpoint)."""
    return {p.name: cfg.crop_size if p.task == "segmentation" else cfg.det_size for p in plans}


def _val_settings(plan: DatasetPlan, cfg: FinetuneConfig) -> tuple[dict[str, Any], EvalSettings]:
    proto = protocol_for(plan.name, plan.task)
    size = cfg.crop_size if plan.task == "segmentation" else cfg.det_size
    options = {**proto.options, **plan.options}
    mode = proto.mode
    if proto.windows:
        options.update(crop_size=size, stride=size)
    if mode == "patches":  # validate on the loader's patches (MTP's local DOTA val), not whole images
        options.update(patch_size=size, gap=patch_gap(size))
        mode = "detect"
    settings = EvalSettings(
        mode=mode,
        size=size,
        flip=proto.flip,
        overlap=proto.overlap or 0.5,
        max_images=cfg.eval_max_images,
    )
    return options, settings


class Validator:
    """Per-dataset validation with each dataset's metric; writes best.pt when the mean improves."""

    def __init__(self, plans: list[DatasetPlan], cfg: FinetuneConfig, run: RunDir, extra: dict[str, Any]) -> None:
        from s5cli.datasets.registry import get_dataset

        self.cfg, self.run, self.extra = cfg, run, extra
        self.jobs = []
        for plan in plans:
            if plan.val_split is None:
                continue
            options, settings = _val_settings(plan, cfg)
            dataset = get_dataset(plan.name, plan.root, plan.val_split, **options)
            self.jobs.append((plan, dataset, settings))
        self.best = -math.inf
        if cfg.resume and run.best.is_file():
            from s5cli.models.checkpoint import read_checkpoint

            self.best = float(read_checkpoint(run.best)["extra"].get("best_score", -math.inf))

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def __call__(self, wrapper: nn.Module, ctx: StepContext) -> dict[str, float]:
        """{"<dataset>_<metric>": score, ..., "mean": mean score} (fractions); saves best.pt on rank 0."""
        from s5cli.models.checkpoint import save_checkpoint

        net = wrapper.net  # type: ignore[attr-defined]
        values: dict[str, float] = {}
        scores = []
        for plan, dataset, settings in self.jobs:
            res = evaluate_dataset(
                net, plan.info, dataset, settings, split=plan.val_split or "", device=ctx.device,
                autocast=ctx.autocast, dist=ctx.dist, show_progress=False,
            )  # fmt: skip
            score = math.nan if res.score is None else res.score
            values[f"{plan.name}_{res.metric}"] = score
            if not math.isnan(score):
                scores.append(score)
        mean = sum(scores) / len(scores) if scores else math.nan
        values["mean"] = mean
        if scores and mean > self.best:
            self.best = mean
            if ctx.dist.is_main:
                extra = {**self.extra, "iteration": ctx.iteration + 1, "metrics": values, "best_score": mean}
                save_checkpoint(self.run.best, net, config=config_to_dict(self.cfg), extra=extra, overwrite=True)
        return values


def _streams(cfg: FinetuneConfig, plans: list[DatasetPlan], dist: DistContext) -> dict[str, InfiniteLoader]:
    from s5cli.datasets.mixing import repeat_to_longest

    bases = {p.name: load_split(p, p.split) for p in plans}
    repeated = repeat_to_longest(bases)  # S5: every list repeated (or truncated) to the longest
    streams = {}
    for k, plan in enumerate(plans):
        view, collate = train_view(plan, repeated[plan.name], cfg)
        streams[plan.name] = InfiniteLoader(
            view,
            plan.settings.batch_size or cfg.batch_size,
            seed=cfg.seed + 1009 * k,
            rank=dist.rank,
            world_size=dist.world_size,
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=dist.device.type == "cuda",
        )
    info(
        "datasets: "
        + ", ".join(f"{p.name} {len(bases[p.name])} ({p.split})" for p in plans)
        + f"; each repeated to {len(next(iter(repeated.values())))}"
    )
    return streams


def train_finetune(cfg: FinetuneConfig, dist: DistContext) -> tuple[TrainResult, RunDir, dict[str, Any]]:
    """Build everything and train; returns the engine's result, the run dir and the checkpoint extras."""
    from s5cli.models.presets import get_preset

    run = check_run_dir(cfg.output, cfg.resume, cfg.overwrite)
    plans = plan_datasets(cfg)
    streams = _streams(cfg, plans, dist)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    net = build_finetune_model(cfg, [p.head for p in plans])
    terms = [LossTerm(p.name, p.task, p.head.num_classes, p.settings.weight, p.settings.start_epoch) for p in plans]
    # One epoch = one pass over the longest dataset in batches (with per-dataset batch sizes, the others cycle).
    per_epoch = max(max(s.batches_per_epoch for s in streams.values()) // cfg.accumulation, 1)
    batch_sizes = {p.name: p.settings.batch_size or cfg.batch_size for p in plans}
    iterations = cfg.iterations or cfg.epochs * per_epoch
    extra = {
        "stage": "finetune",
        "datasets": [p.name for p in plans],
        "input_sizes": input_sizes(cfg, plans),
        "init": str(cfg.model.init) if cfg.model.init else None,
    }
    if all(t.start_epoch > 0 for t in terms):
        raise ConfigError("every dataset has start_epoch > 0: nothing would train in the first epoch")
    validator = Validator(plans, cfg, run, extra)
    if dist.is_main:
        begin_run(run, cfg, _RESUME_FREE)
    barrier(dist)

    def step(model: nn.Module, batch: dict[str, Any], ctx: StepContext) -> tuple[torch.Tensor, dict]:
        return mdf_step(model, batch, terms, ctx.iteration // per_epoch, ctx.autocast)

    # DDP must tolerate parameters without gradient: a dataset before its start epoch is not forwarded, and a
    # detection batch without objects leaves the RPN regression unused.
    idle = any(t.start_epoch > 0 or t.task == "detection" for t in terms)
    unused = cfg.find_unused_parameters if cfg.find_unused_parameters is not None else idle
    settings = LoopSettings(
        iterations=iterations,
        accumulation=cfg.accumulation,
        amp=cfg.amp,
        grad_clip=cfg.grad_clip,
        log_every=cfg.log_every,
        eval_every=per_epoch if cfg.eval_every is None else cfg.eval_every,
        checkpoint_every=per_epoch if cfg.checkpoint_every is None else cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
        stop_after=cfg.stop_after,
        resume=cfg.resume,
        seed=cfg.seed,
        iters_per_epoch=per_epoch,
        depth=get_preset(net.spec.preset).depth,
        images_per_micro_batch=sum(batch_sizes.values()),
        find_unused_parameters=unused,
        description="finetune",
    )
    info(
        f"MDF: {len(plans)} dataset(s), {'MoE experts' if net.spec.moe else 'dense'} {net.spec.preset}, "
        f"{count_trainable(net) / 1e6:.1f}M trainable; {dist.world_size} process(es) x {batch_sizes} per step "
        f"x {cfg.accumulation} accumulation; {iterations} iterations ({per_epoch} per epoch)"
    )
    trainer = Trainer(
        MultiDatasetModel(net, terms),
        step,
        streams,
        settings,
        dist=dist,
        optim=cfg.optim,
        schedule=cfg.schedule,
        run=run,
        config=config_to_dict(cfg),
        eval_fn=validator if validator else None,
    )
    return trainer.fit(), run, extra


def run_finetune(cfg: FinetuneConfig) -> Path:
    """Fine-tune; returns RUN_DIR/checkpoint.pt (or the last training state when stopped by stop_after)."""
    from s5cli.models.checkpoint import save_checkpoint

    dist = init_distributed(cfg.device)
    if not dist.is_main:
        set_verbosity(0, 1)  # one copy of the messages: rank 0's (warnings still show)
    try:
        result, run, extra = train_finetune(cfg, dist)
        out = run.final if result.finished else (run.latest_state() or run.final)
        if dist.is_main and result.finished:
            extra = {**extra, "iterations": result.iteration, "metrics": result.last_metrics}
            net = result.model.net  # type: ignore[attr-defined]
            save_checkpoint(run.final, net, config=config_to_dict(cfg), extra=extra, overwrite=True)
        barrier(dist)
    finally:
        shutdown_distributed(dist)
    if result.finished:
        info(f"wrote {out}" + (f" and {run.best}" if run.best.is_file() else ""))
    else:
        info(f"stopped after iteration {result.iteration}; continue with --resume (state: {out})")
    return out
