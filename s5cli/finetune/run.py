"""`run_finetune(cfg)`: MoE-MDF fine-tuning from a FinetuneConfig to RUN_DIR/model.pt (and last.pt).

The stage supplies its plan (training/stage.py): one stream per dataset, the upcycled model, the MDF step
and the validation of each dataset on its own protocol and metric (scoring/); the shared run does the
rest (device, DDP, autocast, accumulation, schedule, layer decay, clipping, states, resume, logs). model.pt
keeps the model with the best mean of the validation scores (S5 keeps the best mean mIoU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from s5cli.console import info
from s5cli.datasets.registry import pixel_format
from s5cli.errors import ConfigError
from s5cli.finetune.config import FinetuneConfig
from s5cli.finetune.data import DatasetPlan, load_split, plan_datasets, train_view
from s5cli.finetune.model import build_finetune_model, count_trainable
from s5cli.finetune.step import LossTerm, MultiDatasetModel, mdf_step
from s5cli.scoring.plan import Choices, Validator, plan_job
from s5cli.training.data import InfiniteLoader
from s5cli.training.distributed import DistContext
from s5cli.training.engine import StepContext
from s5cli.training.run_dir import RunDir
from s5cli.training.stage import StagePlan, run_stage


def _validator(plans: list[DatasetPlan], cfg: FinetuneConfig) -> Validator | None:
    """Each dataset with a validation split, scored as `s5 evaluate` scores it (DOTA on its patches: fast)."""
    jobs = []
    for plan in plans:
        if plan.val_split is None:
            continue
        choices = Choices(
            split=plan.val_split, options=plan.options, max_images=cfg.eval_max_images, on_patches=True,
            protocol=cfg.protocol, flip=False if cfg.protocol == "paper" else None,
        )  # fmt: skip
        jobs.append(plan_job(plan.info, plan.head, plan.root, choices, cfg.model.preset))
    validator = Validator(jobs, select="mIoU" if cfg.protocol == "paper" else None)
    return validator if validator else None


def _streams(cfg: FinetuneConfig, plans: list[DatasetPlan], dist: DistContext) -> dict[str, InfiniteLoader]:
    from s5cli.datasets.mixing import repeat_to_longest

    bases = {p.name: load_split(p, p.split) for p in plans}
    repeated = repeat_to_longest(bases)  # S5: every list repeated (or truncated) to the longest
    streams = {}
    for k, plan in enumerate(plans):
        view, collate = train_view(plan, repeated[plan.name], cfg)
        streams[plan.name] = InfiniteLoader(
            view,
            plan.settings.batch_size or cfg.batch_size_per_dataset,
            seed=cfg.seed + 1009 * k,
            rank=dist.rank,
            world_size=dist.world_size,
            num_workers=cfg.loader_workers(),
            streams=len(plans),  # one loader per dataset, sharing the cores
            collate_fn=collate,
            pin_memory=dist.device.type == "cuda",
        )
    info(
        "datasets: "
        + ", ".join(f"{p.name} {len(bases[p.name])} ({p.split})" for p in plans)
        + f"; each repeated to {len(next(iter(repeated.values())))}"
    )
    return streams


def plan_finetune(cfg: FinetuneConfig, dist: DistContext, run: RunDir) -> StagePlan:
    """Streams, upcycled model, MDF step and validation of a fine-tuning run (user errors surface here)."""
    from s5cli.models.presets import get_preset

    del run  # the shared stage owns it
    plans = plan_datasets(cfg)
    terms = [LossTerm(p.name, p.task, p.head.num_classes, p.settings.weight, p.settings.start_epoch) for p in plans]
    if all(t.start_epoch > 0 for t in terms):
        raise ConfigError("every dataset has start_epoch > 0: nothing would train in the first epoch")
    streams = _streams(cfg, plans, dist)
    validator = _validator(plans, cfg)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    net = build_finetune_model(
        cfg, [p.head for p in plans], {p.head.name: pixel_format(p.info, p.root, p.options) for p in plans}
    )
    # One epoch = one pass over the longest dataset in batches (with per-dataset batch sizes, the others cycle).
    per_epoch = max(max(s.batches_per_epoch for s in streams.values()) // cfg.accumulation, 1)
    batch_sizes = {p.name: p.settings.batch_size or cfg.batch_size_per_dataset for p in plans}
    iterations = cfg.iterations or cfg.epochs * per_epoch

    def step(model: nn.Module, batch: dict[str, Any], ctx: StepContext) -> tuple[torch.Tensor, dict]:
        return mdf_step(model, batch, terms, ctx.epoch, ctx.autocast)

    # DDP must tolerate parameters without gradient: a dataset before its start epoch is not forwarded, and a
    # detection batch without objects leaves the RPN regression unused.
    idle = any(t.start_epoch > 0 or t.task == "detection" for t in terms)
    summary = (
        f"MDF: {len(plans)} dataset(s), {'MoE experts' if net.spec.moe else 'dense'} {net.spec.preset}, "
        f"{count_trainable(net) / 1e6:.1f}M trainable; {dist.world_size} process(es) x {batch_sizes} per step "
        f"x {cfg.accumulation} accumulation; {iterations} iterations ({per_epoch} per epoch)"
    )
    return StagePlan(
        model=MultiDatasetModel(net, terms),
        step=step,
        streams=streams,
        iterations=iterations,
        iters_per_epoch=per_epoch,
        accumulation=cfg.accumulation,
        images_per_micro_batch=sum(batch_sizes.values()),
        depth=get_preset(net.spec.preset).depth,
        extra={
            "stage": "finetune",
            "datasets": [p.name for p in plans],
            "init": str(cfg.model.init) if cfg.model.init else None,
        },
        show=("loss", *(f"loss_{p.name}" for p in plans)),
        summary=summary,
        validate=validator,
        net=lambda model: model.net,  # type: ignore[union-attr]
        find_unused_parameters=cfg.find_unused_parameters if cfg.find_unused_parameters is not None else idle,
    )


def run_finetune(cfg: FinetuneConfig) -> Path | None:
    """Fine-tune; returns RUN_DIR/model.pt, the model to use (None when stopped early by stop_after)."""
    return run_stage(cfg, plan_finetune, "finetune")
