"""`s5 pretrain`: S4P semi-supervised pre-training (FixMatch + CutMix) into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import ConfigOpt, DataRootOpt, DeviceOpt, OptionalOutputOpt, config_overrides
from s5cli.cli.runs import (
    AmpOpt,
    CheckpointEveryOpt,
    LrOpt,
    ResumeOpt,
    RunOverwriteOpt,
    SeedOpt,
    StopAfterOpt,
    opt,
    resolve_run_config,
)

# Every option (by parameter name) and the one PretrainConfig field it sets (s5cli_tests/test_cli.py checks
# every command's table against its options and its config class).
OPTION_FIELDS: dict[str, str] = {
    "output": "output",
    "overwrite": "overwrite",
    "resume": "resume",
    "device": "device",
    "seed": "seed",
    "stop_after": "stop_after",
    "data_root": "labeled.data_root",
    "labeled": "labeled.dataset",
    "unlabeled_folder": "unlabeled.folder",
    "unlabeled_manifest": "unlabeled.manifest",
    "preset": "model.preset",
    "init": "model.init",
    "crop_size": "crop_size",
    "iterations": "iterations",
    "global_batch_size": "global_batch_size",
    "micro_batch_size": "micro_batch_size",
    "lr": "optim.lr",
    "amp": "amp",
    "teacher": "fixmatch.teacher",
    "workers": "workers",
    "eval_every": "eval_every",
    "checkpoint_every": "checkpoint_every",
}


def pretrain(
    config: ConfigOpt = None,
    output: OptionalOutputOpt = None,
    overwrite: RunOverwriteOpt = False,
    resume: ResumeOpt = False,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    stop_after: StopAfterOpt = None,
    data_root: DataRootOpt = None,
    labeled: Annotated[
        str | None, opt("--labeled", help="Labeled dataset: a name (isaid by default) or your dataset YAML.")
    ] = None,
    unlabeled_folder: Annotated[
        Path | None, opt("--unlabeled-folder", help="Folder of unlabeled images (any depth).")
    ] = None,
    unlabeled_manifest: Annotated[
        Path | None, opt("--unlabeled-manifest", help="Corpus manifest written by `s5 curate`.")
    ] = None,
    preset: Annotated[str | None, opt("--preset", help="Model preset: vit-b, vit-l, vit-h.")] = None,
    init: Annotated[Path | None, opt("--init", help="s5cli checkpoint to start from (e.g. imported MAE).")] = None,
    crop_size: Annotated[int | None, opt("--crop-size", help="Training crop in pixels.")] = None,
    iterations: Annotated[int | None, opt("--iterations", help="Optimiser steps.")] = None,
    global_batch_size: Annotated[
        int | None, opt("--global-batch-size", help="Labeled images per step over all GPUs (as many unlabeled).")
    ] = None,
    micro_batch_size: Annotated[
        int | None, opt("--micro-batch-size", help="Images per process and forward (gradient accumulation).")
    ] = None,
    lr: LrOpt = None,
    amp: AmpOpt = None,
    teacher: Annotated[str | None, opt("--teacher", help="Pseudo-label teacher: same or ema.")] = None,
    workers: Annotated[
        str | None, opt("--workers", help="Data-loading processes per stream, or auto (sized to the cores).")
    ] = None,
    eval_every: Annotated[int | None, opt("--eval-every", help="Validate every N iterations.")] = None,
    checkpoint_every: CheckpointEveryOpt = None,
) -> None:
    """Pre-train a segmentation model with S4P (FixMatch on labeled + unlabeled images).

    Writes RUN_DIR/model.pt, the model to fine-tune from (finetune --init) or predict with: the best
    validation mean, or the final weights without validation; its path is printed last. Beside it:
    last.pt (final weights), config.yaml, metrics.csv, curves.png and states/ (training states for
    --resume, not models). Several GPUs or nodes: the same command under
    `torchrun --nproc-per-node N -m s5cli pretrain ...`.


    $ s5 pretrain --config configs/pretrain/vit-b.yaml --data-root /data --unlabeled-folder /data/rs4p -o runs/s4p
    """
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.pretrain.run import run_pretrain

    given = dict(locals())
    overrides = config_overrides(pretrain, given, OPTION_FIELDS)
    # One unlabeled source replaces the config's (folder and manifest are exclusive).
    for name in ("unlabeled_folder", "unlabeled_manifest"):
        if given[name] is not None:
            field = OPTION_FIELDS[name]
            overrides.pop(OPTION_FIELDS["unlabeled_folder"], None)
            overrides.pop(OPTION_FIELDS["unlabeled_manifest"], None)
            overrides["unlabeled"] = {field.split(".")[1]: str(given[name])}
    cfg = resolve_run_config(PretrainConfig, config, output, resume, overrides)
    model = run_pretrain(cfg)
    if model is not None:  # finished: the one file to predict, evaluate and export with, on stdout
        typer.echo(str(model))
