"""The training engine shared by `s5 pretrain` and `s5 finetune`: a stage supplies a step function.

API (the stage owns the model, the data and the loss; the engine owns everything else)::

    from s5cli.training import engine
    dist = engine.init_distributed(cfg.device)            # torchrun env or single process
    streams = {"labeled": InfiniteLoader(...), ...}       # training/data.py, one per input stream
    def step(model, batch, ctx) -> (loss, stats):         # batch = {name: next(stream)} on ctx.device
        with ctx.autocast():                              # autocast is the step's to open (teachers stay out)
            logits = model(batch["labeled"]["image"], "isaid")
        loss = ...
        return loss, {"loss": loss.detach()}              # stats: tensors or floats, averaged per log row
    result = engine.Trainer(model, step, streams, settings, dist=dist, optim=cfg.optim,
                            schedule=cfg.schedule, run=run_dir, config=config_to_dict(cfg),
                            eval_fn=validate).fit()
    result.model, result.finished, result.iteration

What `Trainer.fit` does, in order: moves the model to the device; builds the optimizer
(optim.build_optimizer, layer-wise decay when configured) and the per-iteration LR schedule; the
GradScaler (fp16 only) and an optional EMA copy; resumes from the newest state in the run dir
(`settings.resume`): model, optimizer, schedule, scaler, EMA, every stream's position, metrics rows
and each rank's RNG; wraps in DDP (SyncBN on GPU; off GPU BN statistics are averaged over ranks after
every step instead); then loops: `settings.accumulation`
micro-steps per iteration (DDP `no_sync` on all but the last), loss / accumulation backward through
the scaler, optional grad-norm clipping, optimizer and schedule step, EMA update; every
`log_every` iterations a metrics.csv row (the step's stats averaged over the interval and ranks,
plus lr, images/s and data_wait = share of wall time spent waiting for batches); every
`eval_every` iterations `eval_fn(model, ctx)` on every rank (prefixed `val_`, printed), and when
`settings.best_metric` improves, `on_best(model, values, iteration)` on rank 0 (the stages' model.pt;
the best value survives resumes); every `checkpoint_every` iterations (and at
`stop_after`) a resumable state. Rank 0 alone writes. The returned model is unwrapped and in eval
mode. Log rows print the stats the stage names in `settings.show`. training/stage.py runs a stage
around this: distributed set-up, the run directory, the final checkpoint and shut-down.

StepContext gives the step: `device`, `autocast()`, `iteration`, `epoch` (iteration //
iters_per_epoch, e.g. for per-dataset start epochs), `micro_step`, `accumulation`, `dist` and `ema`.
Schedules: ScheduleConfig `cosine` (per iteration), `cosine_epoch`, `step` (epoch milestones) with
optional linear warm-up; OptimConfig `layer_decay` scales ViT block lrs (training/optim.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from s5cli.console import info, progress_bar, show_progress
from s5cli.training.data import InfiniteLoader
from s5cli.training.device import AmpMode, Precision, resolve_precision
from s5cli.training.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    average_buffers,
    barrier,
    init_distributed,
    unwrap,
    wrap_ddp,
)
from s5cli.training.ema import ModelEMA
from s5cli.training.logs import MetricsLog, plot_curves
from s5cli.training.optim import OptimConfig, build_optimizer
from s5cli.training.run_dir import RunDir
from s5cli.training.schedules import LRSchedule, ScheduleConfig
from s5cli.training.train_state import (
    REQUIRED,
    capture_rng,
    load_train_state,
    restore_rng,
    restoring,
    save_train_state,
)

__all__ = ["LoopSettings", "StepContext", "TrainResult", "Trainer", "init_distributed", "move_to"]


@dataclass(frozen=True)
class LoopSettings:
    """How long and how to train; filled by the stage from its config."""

    iterations: int
    accumulation: int = 1  # micro-batches per optimiser step
    amp: AmpMode = "auto"  # training/device.py
    grad_clip: float | None = None  # max total grad norm; None: no clipping
    log_every: int = 50
    eval_every: int = 0  # 0: only at the end (when an eval_fn is given)
    checkpoint_every: int = 0  # 0: no periodic states (one is still written at stop_after)
    keep_checkpoints: int = 2  # newest states kept on disk; 0 keeps all
    stop_after: int | None = None  # stop (with a state) after this many iterations, to resume later
    resume: bool = False
    seed: int = 0
    ema_decay: float | None = None  # keep an EMA copy of the weights (ctx.ema) when set
    iters_per_epoch: int = 1  # for per-epoch schedules
    depth: int | None = None  # ViT depth for layer-wise lr decay
    images_per_micro_batch: int = 1  # per rank, for images/s
    find_unused_parameters: bool = False  # DDP: set when some parameters get no gradient
    best_metric: str | None = None  # an eval_fn key; on_best is called when it improves
    best_mode: Literal["max", "min"] = "max"
    show: tuple[str, ...] = ("loss",)  # the step's stats printed with each log row (the stage declares them)
    description: str = "train"


@dataclass
class StepContext:
    """What a step function may use besides the model and the batch."""

    dist: DistContext
    precision: Precision
    iteration: int = 0  # the optimiser step being computed (0-based)
    micro_step: int = 0
    accumulation: int = 1
    iters_per_epoch: int = 1
    ema: ModelEMA | None = None

    @property
    def epoch(self) -> int:
        """The epoch the current iteration belongs to (0-based), for per-epoch rules such as start epochs."""
        return self.iteration // max(self.iters_per_epoch, 1)

    @property
    def device(self) -> torch.device:
        """The device batches are on."""
        return self.dist.device

    def autocast(self) -> AbstractContextManager[object]:
        """The autocast context of this run (a no-op in fp32)."""
        return self.precision.autocast()


@dataclass
class TrainResult:
    """What `fit` returns."""

    model: nn.Module
    iteration: int
    finished: bool  # False when stopped early by stop_after
    ema: ModelEMA | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)


StepFn = Callable[[nn.Module, dict[str, Any], StepContext], tuple[torch.Tensor, Mapping[str, Any]]]
EvalFn = Callable[[nn.Module, StepContext], dict[str, float]]
BestFn = Callable[[nn.Module, dict[str, float], int], None]  # (unwrapped model, eval values, iteration), rank 0


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a nested dict/list/tuple to a device."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


class Trainer:
    """Runs a step function for `settings.iterations` optimiser steps (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        step_fn: StepFn,
        streams: Mapping[str, InfiniteLoader],
        settings: LoopSettings,
        *,
        dist: DistContext,
        optim: OptimConfig,
        schedule: ScheduleConfig,
        run: RunDir | None = None,
        config: dict[str, Any] | None = None,
        eval_fn: EvalFn | None = None,
        on_best: BestFn | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.step_fn = step_fn
        self.streams = dict(streams)
        self.dist = dist
        self.run = run
        self.config = config or {}
        self.eval_fn = eval_fn
        self.on_best = on_best
        self.on_start = on_start  # called once this process's first optimiser step is done, before any write
        self.started = False
        self.best: float | None = None  # best value of settings.best_metric so far (kept in states)
        self.model = model.to(dist.device)
        self.optimizer = build_optimizer(self.model, optim, settings.depth)
        self.schedule = LRSchedule(self.optimizer, schedule, settings.iterations, settings.iters_per_epoch)
        self.precision = resolve_precision(settings.amp, dist.device)
        self.scaler = self.precision.make_scaler()
        self.ema = ModelEMA(self.model, settings.ema_decay) if settings.ema_decay is not None else None
        writes = run is not None and dist.is_main
        self.metrics = MetricsLog(run.metrics if run else None, run.tensorboard if run else None, writes)
        self.ctx = StepContext(
            dist,
            self.precision,
            accumulation=settings.accumulation,
            iters_per_epoch=settings.iters_per_epoch,
            ema=self.ema,
        )
        self.iteration = 0

    # -- state ---------------------------------------------------------------------------------
    def _resume(self) -> bool:
        path = self.run.latest_state() if self.run is not None else None
        if path is None:
            return False
        state = load_train_state(path, REQUIRED)
        with restoring(path, "model weights", "a state of another run or model"):
            unwrap(self.model).load_state_dict(state["model"])
        with restoring(path, "optimizer state", "a state of another run or optimiser"):
            self.optimizer.load_state_dict(state["optimizer"])
        with restoring(path, "schedule and scaler states"):
            self.schedule.load_state_dict(state["schedule"])
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            with restoring(path, "EMA weights", "a state of another run or model"):
                self.ema.load_state_dict(state["ema"])
        with restoring(path, "data positions"):
            for name, stream in self.streams.items():
                if name in state["data"]:
                    stream.load_state_dict(state["data"][name])
            self.iteration = int(state["iteration"])
        self.best = state.get("best")
        self.metrics.resume(self.iteration)
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            with restoring(path, "random-number states"):
                restore_rng(rngs[self.dist.rank])
        else:
            info(f"resumed on {self.dist.world_size} ranks from a state of {len(rngs)}: RNG streams reseeded")
            torch.manual_seed(self.settings.seed + 7919 * self.iteration + self.dist.rank)
        info(f"resumed from {path} at iteration {self.iteration}")
        return True

    def _save_state(self) -> None:
        rngs = all_gather_objects(capture_rng(), self.dist)
        if self.run is not None and self.dist.is_main:
            state = {
                "iteration": self.iteration,
                "model": unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng": rngs,
                "data": {name: s.state_dict() for name, s in self.streams.items()},
                "config": self.config,
                "world_size": self.dist.world_size,
                "best": self.best,
                "model_file": os.path.relpath(self.run.model, self.run.states_dir),  # for "not a model" errors
            }
            save_train_state(self.run.state_path(self.iteration), state)
            self.run.prune_states(self.settings.keep_checkpoints)
            self.metrics.flush()
        barrier(self.dist)

    # -- loop ----------------------------------------------------------------------------------
    def _evaluate(self) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        model = unwrap(self.model)
        model.eval()
        with torch.no_grad():
            values = self.eval_fn(model, self.ctx)
        model.train()
        self.metrics.log(self.iteration, values, prefix="val_")
        if self.dist.is_main and values:
            info(f"[{self.iteration}/{self.settings.iterations}] validation: " + _format(values))
        key = self.settings.best_metric
        if key is not None and key in values and math.isfinite(values[key]):
            better = self.best is None or (
                values[key] > self.best if self.settings.best_mode == "max" else values[key] < self.best
            )
            if better:
                self.best = float(values[key])
                if self.on_best is not None and self.dist.is_main:
                    self.on_best(model, values, self.iteration)
        return values

    def _one_iteration(self, sums: dict[str, torch.Tensor]) -> float:
        """One optimiser step over `accumulation` micro-batches; returns seconds waited for data."""
        s = self.settings
        waited = 0.0
        for micro in range(s.accumulation):
            t0 = time.perf_counter()
            batch = move_to({name: next(stream) for name, stream in self.streams.items()}, self.dist.device)
            waited += time.perf_counter() - t0
            self.ctx.iteration, self.ctx.micro_step = self.iteration, micro
            last = micro == s.accumulation - 1
            sync: AbstractContextManager[object] = nullcontext()
            if not last and isinstance(self.model, nn.parallel.DistributedDataParallel):
                sync = self.model.no_sync()  # all-reduce gradients once, on the last micro-batch
            with sync:
                loss, stats = self.step_fn(self.model, batch, self.ctx)
                self.scaler.scale(loss / s.accumulation).backward()
            for key, value in stats.items():
                v = value.detach().double() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
                sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64)) + v.cpu() / s.accumulation
        if s.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
            sums["grad_norm"] = sums.get("grad_norm", torch.zeros((), dtype=torch.float64)) + norm.detach().cpu()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.dist.distributed and self.dist.device.type != "cuda":
            average_buffers(self.model, self.dist)  # no SyncBN off GPU: keep BN statistics equal across ranks
        self.schedule.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.iteration += 1
        return waited

    def _log(self, sums: dict[str, torch.Tensor], steps: int, lr: float, seconds: float, waited: float) -> dict:
        keys = list(sums)  # the step's order (same on every rank)
        packed = torch.stack([sums[k] for k in keys] + [torch.tensor(float(waited), dtype=torch.float64)])
        all_reduce_sum(packed, self.dist)
        n = steps * self.dist.world_size
        row = {k: float(packed[i]) / n for i, k in enumerate(keys)}
        images = steps * self.settings.accumulation * self.settings.images_per_micro_batch * self.dist.world_size
        row["lr"] = lr
        row["images_per_s"] = images / max(seconds, 1e-9)
        row["data_wait"] = min(float(packed[-1]) / self.dist.world_size / max(seconds, 1e-9), 1.0)
        self.metrics.log(self.iteration, row)
        return row

    def fit(self) -> TrainResult:
        """Train (or continue) to `settings.iterations`, or stop at `settings.stop_after`.

        Nothing is written before this process's first optimiser step is done (then `on_start`), so a
        run stopped earlier (bad data usually fails on the first batch) leaves the run directory as it was.
        """
        s = self.settings
        resumed = s.resume and self._resume()
        self.model = wrap_ddp(self.model, self.dist, s.find_unused_parameters)
        if not resumed:
            # Same init on every rank (DDP also broadcasts rank 0's), different dropout streams.
            torch.manual_seed(s.seed + 7919 * self.iteration + self.dist.rank)
        stop = s.iterations if s.stop_after is None else min(s.stop_after, s.iterations)
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        last: dict[str, float] = {}
        window_steps, window_wait, window_start = 0, 0.0, time.perf_counter()
        bar_ctx = progress_bar(s.description, total=s.iterations) if self.dist.is_main else nullcontext()
        with bar_ctx as bar:
            if bar is not None:
                bar.advance(self.iteration)
            while self.iteration < stop:
                lr = self.schedule.peak_lr()
                window_wait += self._one_iteration(sums)
                window_steps += 1
                if not self.started:
                    self.started = True
                    if self.on_start is not None:
                        self.on_start()
                if bar is not None:
                    bar.advance(1)
                at_end = self.iteration == s.iterations
                if self.iteration % max(s.log_every, 1) == 0 or at_end or self.iteration == stop:
                    seconds = time.perf_counter() - window_start
                    last = self._log(sums, window_steps, lr, seconds, window_wait)
                    if bar is not None:
                        bar.set_rate(f"{last['images_per_s']:.1f} img/s")
                    if self.dist.is_main and not show_progress():
                        shown = {k: v for k, v in last.items() if k in s.show}
                        rate = f"lr {last['lr']:.3g} {last['images_per_s']:.1f} img/s"
                        info(f"[{self.iteration}/{s.iterations}] {_format(shown)} {rate}")
                    sums, window_steps, window_wait, window_start = {}, 0, 0.0, time.perf_counter()
                if (s.eval_every and self.iteration % s.eval_every == 0) or at_end:
                    last.update({f"val_{k}": v for k, v in self._evaluate().items()})
                    self.metrics.flush()
                periodic = s.checkpoint_every and self.iteration % s.checkpoint_every == 0
                if periodic or (self.iteration == stop and not at_end):
                    self._save_state()
        finished = self.iteration >= s.iterations
        if self.started:
            self.metrics.close()
            if self.run is not None and self.dist.is_main:
                plot_curves(self.run.metrics, self.run.curves)
        model = unwrap(self.model).eval()
        return TrainResult(model, self.iteration, finished, self.ema, last)


def _format(values: Mapping[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in values.items())
