"""One run of a training stage (pretrain, finetune): the parts every stage shares, around the engine.

A stage supplies a `StagePlan` (its data streams, its model, its step, its validation); `run_stage` does
the rest, in this order: distributed set-up, the run directory (checked before any work; created, with
config.yaml, once the first optimiser step is done: training/run_dir.py), the engine, model.pt whenever
the validation mean improves, last.pt at the end (and model.pt = last.pt when nothing was validated),
shut-down, and the last line naming the model to pass to predict, evaluate and export.

`RunSettings` is the config section both stages share (their config classes extend it), so a run
control is spelled, validated and defaulted once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from torch import nn

from s5cli.config import StrictConfig, config_to_dict
from s5cli.console import info, set_verbosity, warn
from s5cli.training.data import InfiniteLoader
from s5cli.training.device import AmpMode
from s5cli.training.distributed import DistContext, barrier, init_distributed, shutdown_distributed
from s5cli.training.engine import EvalFn, LoopSettings, StepContext, StepFn, Trainer, TrainResult
from s5cli.training.optim import OptimConfig
from s5cli.training.run_dir import (
    RunDir,
    absolute_paths,
    check_run_dir,
    config_changes,
    run_config_text,
    start_run,
)
from s5cli.training.schedules import ScheduleConfig

# Config keys that may change between an interrupted run and its resume without a warning.
RESUME_FREE = ("resume", "overwrite", "stop_after", "device", "workers", "output")


class RunSettings(StrictConfig):
    """The run controls of a training stage: where, how long to keep going, how often to log and save."""

    # Dotted fields holding dataset names or dataset YAML paths: config.yaml stores the paths among them
    # relative to the run directory, as it stores every Path field (training/run_dir.py).
    DATASET_ENTRIES: ClassVar[tuple[str, ...]] = ()
    output: Path  # the run directory
    overwrite: bool = False
    resume: bool = False  # continue from the newest state in `output`
    device: str = "auto"  # auto | cpu | cuda | cuda:N (torchrun: each rank its local GPU)
    seed: int = Field(2025, ge=0, lt=2**63)  # S5's seed; derived seeds (+ iteration, rank) stay in 64 bits
    stop_after: int | None = Field(None, ge=1)  # stop after this many iterations (with a state), to resume later
    # data-loading processes per stream and rank; auto: sized to the cores (training.data.default_workers)
    workers: int | Literal["auto"] = "auto"
    amp: AmpMode = "auto"
    grad_clip: float | None = Field(None, gt=0.0)  # max total gradient norm
    find_unused_parameters: bool | None = None  # DDP; None: the stage decides
    log_every: int = Field(50, ge=1)  # iterations between metrics.csv rows
    eval_every: int | None = Field(None, ge=0)  # iterations; None: every epoch; 0: only at the end
    eval_max_images: int | None = Field(None, ge=1)  # validate on the first N samples of each dataset
    checkpoint_every: int | None = Field(None, ge=0)  # iterations; None: every epoch; 0: only at stop_after
    keep_checkpoints: int = Field(2, ge=0)  # newest training states kept; 0 keeps all
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)

    @field_validator("workers", mode="before")
    @classmethod
    def _worker_count(cls, value: Any) -> Any:
        if isinstance(value, str) and value.isdigit():  # from the command line
            value = int(value)
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError("give a number of processes (0: load in the training process) or auto")

    def loader_workers(self) -> int | None:
        """The workers for InfiniteLoader: a count, or None to size them to the machine."""
        return None if self.workers == "auto" else self.workers


@dataclass
class StagePlan:
    """What a stage trains and how; everything else is `run_stage`'s."""

    model: nn.Module  # the module the engine trains (finetune: the per-dataset wrapper)
    step: StepFn
    streams: Mapping[str, InfiniteLoader]
    iterations: int
    iters_per_epoch: int
    accumulation: int
    images_per_micro_batch: int  # per rank, for images/s
    depth: int  # ViT depth, for layer-wise lr decay
    extra: dict[str, Any]  # stored in every checkpoint of the run (stage, datasets, ...)
    show: tuple[str, ...]  # the step's stats printed with each log row
    summary: str  # one line on what is trained
    validate: EvalFn | None = None  # called with the S5Model: {"<dataset>_<metric>": ..., "mean": ...}
    net: Callable[[nn.Module], nn.Module] = field(default=lambda m: m)  # the S5Model inside `model`
    ema_decay: float | None = None
    find_unused_parameters: bool = False


Build = Callable[[Any, DistContext, RunDir], StagePlan]


def train_stage(
    cfg: RunSettings, build: Build, dist: DistContext, description: str
) -> tuple[TrainResult, RunDir, StagePlan]:
    """Check the run directory, build the stage's plan and train (every rank); the run starts with its first step."""
    from s5cli.models.checkpoint import save_checkpoint

    run = check_run_dir(cfg.output, cfg.resume, cfg.overwrite)
    if cfg.resume and dist.is_main:
        changed = config_changes(run, cfg, RESUME_FREE)
        if changed:
            warn(f"resuming with a config that differs from the run's in: {', '.join(changed)}")
    plan = build(cfg, dist, run)
    config = stored_config(cfg)
    text = run_config_text(cfg, run)

    def start() -> None:  # rank 0, once the first optimiser step is done: nothing is written before
        start_run(run, text, cfg.overwrite)

    def save_best(model: nn.Module, values: dict[str, float], iteration: int) -> None:
        scores = {f"val_{k}": v for k, v in values.items()}  # named as in metrics.csv and last.pt
        extra = {**plan.extra, "iteration": iteration + 1, "metrics": scores, "best_score": values["mean"]}
        save_checkpoint(run.model, plan.net(model), config=config, extra=extra, overwrite=True)

    per_epoch = plan.iters_per_epoch
    settings = LoopSettings(
        iterations=plan.iterations,
        accumulation=plan.accumulation,
        amp=cfg.amp,
        grad_clip=cfg.grad_clip,
        log_every=cfg.log_every,
        eval_every=per_epoch if cfg.eval_every is None else cfg.eval_every,
        checkpoint_every=per_epoch if cfg.checkpoint_every is None else cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
        stop_after=cfg.stop_after,
        resume=cfg.resume,
        seed=cfg.seed,
        ema_decay=plan.ema_decay,
        iters_per_epoch=per_epoch,
        depth=plan.depth,
        images_per_micro_batch=plan.images_per_micro_batch,
        find_unused_parameters=plan.find_unused_parameters,
        best_metric="mean" if plan.validate is not None else None,
        show=plan.show,
        description=description,
    )

    def validate(model: nn.Module, ctx: StepContext) -> dict[str, float]:
        return plan.validate(plan.net(model), ctx) if plan.validate is not None else {}

    info(plan.summary)
    trainer = Trainer(
        plan.model, plan.step, plan.streams, settings, dist=dist, optim=cfg.optim, schedule=cfg.schedule,
        run=run, config=config, eval_fn=validate if plan.validate is not None else None, on_best=save_best,
        on_start=start if dist.is_main else None,
    )  # fmt: skip
    return trainer.fit(), run, plan


def stored_config(cfg: RunSettings) -> dict[str, Any]:
    """The config as stored inside checkpoints and states: plain data, paths absolute (a model file travels alone)."""
    return absolute_paths(config_to_dict(cfg), type(cfg), Path.cwd())


def run_stage(cfg: RunSettings, build: Build, description: str) -> Path | None:
    """Run a stage from its config; returns RUN_DIR/model.pt, the model to use, on rank 0 (else None).

    The last status line names that file; a run stopped by `stop_after` returns None and names the state
    to resume. Under torchrun only rank 0 returns the path, so that the command prints it once.
    """
    from s5cli.models.checkpoint import save_checkpoint

    dist = init_distributed(cfg.device)
    if not dist.is_main:
        set_verbosity(0, 1)  # one copy of the messages: rank 0's (warnings still show)
    try:
        result, run, plan = train_stage(cfg, build, dist, description)
        best = True  # model.pt holds the best validation, written as the run went
        if dist.is_main and result.finished:
            extra = {**plan.extra, "iterations": result.iteration, "metrics": result.last_metrics}
            save_checkpoint(run.last, plan.net(result.model), config=stored_config(cfg), extra=extra, overwrite=True)
            if not run.model.is_file():  # no validation (or none scored): the final weights are the model
                run.share_last_as_model()
                best = False
        barrier(dist)
    finally:
        shutdown_distributed(dist)
    if not result.finished:
        info(f"stopped after iteration {result.iteration}; continue with --resume (state: {run.latest_state()})")
        return None
    which = f"best validation mean; the final weights are {run.last.name}" if best else "the final weights"
    info(f"the model to predict, evaluate and export with: {run.model} ({which})")
    return run.model if dist.is_main else None
