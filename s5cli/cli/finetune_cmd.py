"""`s5 finetune`: MoE-MDF fine-tuning on several benchmarks at once into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import (
    ConfigOpt,
    DataRootOpt,
    DatasetsOpt,
    DeviceOpt,
    OptionalOutputOpt,
    ProtocolOpt,
    config_overrides,
    split_names,
)
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

# Every option (by parameter name) and the one FinetuneConfig field it sets (s5cli_tests/test_cli.py checks
# every command's table against its options and its config class).
OPTION_FIELDS: dict[str, str] = {
    "output": "output",
    "overwrite": "overwrite",
    "resume": "resume",
    "device": "device",
    "seed": "seed",
    "stop_after": "stop_after",
    "datasets": ("datasets", split_names),
    "data_root": "data_root",
    "init": "model.init",
    "preset": "model.preset",
    "moe": "model.moe",
    "crop_size": "crop_size",
    "det_size": "det_size",
    "epochs": "epochs",
    "iterations": "iterations",
    "batch_size_per_dataset": "batch_size_per_dataset",
    "lr": "optim.lr",
    "amp": "amp",
    "protocol": "protocol",
    "workers": "workers",
    "eval_every": "eval_every",
    "checkpoint_every": "checkpoint_every",
}


def finetune(
    datasets: DatasetsOpt = None,
    data_root: DataRootOpt = None,
    init: Annotated[
        Path | None, opt("--init", help="S4P checkpoint to upcycle (ours, or official via `s5 weights import`).")
    ] = None,
    config: ConfigOpt = None,
    output: OptionalOutputOpt = None,
    overwrite: RunOverwriteOpt = False,
    resume: ResumeOpt = False,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    stop_after: StopAfterOpt = None,
    preset: Annotated[str | None, opt("--preset", help="Model preset without --init (vit-b, vit-l, vit-h).")] = None,
    moe: Annotated[
        bool | None, opt("--moe/--no-moe", help="Per-dataset experts (default: with several datasets).")
    ] = None,
    crop_size: Annotated[int | None, opt("--crop-size", help="Segmentation training crop in pixels.")] = None,
    det_size: Annotated[int | None, opt("--det-size", help="Detection input (long side) in pixels.")] = None,
    epochs: Annotated[int | None, opt("--epochs", help="Epochs over the longest dataset.")] = None,
    iterations: Annotated[int | None, opt("--iterations", help="Optimiser steps (overrides --epochs).")] = None,
    batch_size_per_dataset: Annotated[
        int | None, opt("--batch-size-per-dataset", help="Images of each dataset per GPU (process) and step.")
    ] = None,
    lr: LrOpt = None,
    amp: AmpOpt = None,
    protocol: ProtocolOpt = None,
    workers: Annotated[
        str | None, opt("--workers", help="Data-loading processes per dataset, or auto (sized to the cores).")
    ] = None,
    eval_every: Annotated[
        int | None, opt("--eval-every", help="Validate every N iterations (default: every epoch).")
    ] = None,
    checkpoint_every: CheckpointEveryOpt = None,
) -> None:
    """Fine-tune one model on several datasets: shared backbone, an expert and a head per dataset (MoE-MDF).

    Writes RUN_DIR/model.pt, the model to predict, evaluate and export with: the best validation mean
    (the final weights without validation); its path is printed last. Beside it: last.pt (final
    weights), config.yaml, metrics.csv, curves.png and states/ (training states for --resume, not
    models). Several GPUs: the same command under `torchrun --nproc-per-node N -m s5cli finetune ...`.


    $ s5 finetune --datasets potsdam,loveda,dior-r --data-root /data --init s4p.pt -o runs/mdf
    """
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.finetune.run import run_finetune

    overrides = config_overrides(finetune, dict(locals()), OPTION_FIELDS)
    cfg = resolve_run_config(FinetuneConfig, config, output, resume, overrides)
    model = run_finetune(cfg)
    if model is not None:  # finished: the one file to predict, evaluate and export with, on stdout
        typer.echo(str(model))
