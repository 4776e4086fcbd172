"""`s5 finetune`: MoE-MDF fine-tuning on several benchmarks at once into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from s5cli.cli.boundary import guarded
from s5cli.cli.options import ConfigOpt, DataRootOpt, DatasetsOpt, DeviceOpt, OptionalOutputOpt, split_names

# Every option (by parameter name) and the one FinetuneConfig field it sets (style.md §9.3);
# s5cli_tests/test_finetune.py checks this table against the command and the config class.
OPTION_FIELDS: dict[str, str] = {
    "output": "output",
    "overwrite": "overwrite",
    "resume": "resume",
    "device": "device",
    "seed": "seed",
    "stop_after": "stop_after",
    "datasets": "datasets",
    "data_root": "data_root",
    "init": "model.init",
    "preset": "model.preset",
    "moe": "model.moe",
    "crop_size": "crop_size",
    "det_size": "det_size",
    "epochs": "epochs",
    "iterations": "iterations",
    "batch_size": "batch_size",
    "lr": "optim.lr",
    "amp": "amp",
    "workers": "workers",
    "eval_every": "eval_every",
    "checkpoint_every": "checkpoint_every",
}
# Run controls dropped from a saved config.yaml when a run is resumed with it.
_ONE_OFF = ("stop_after", "resume", "overwrite")


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


def finetune_overrides(given: dict[str, Any]) -> dict[str, Any]:
    """Dotted config overrides from the command's parameters (None: not given)."""
    overrides: dict[str, Any] = {}
    for name, field in OPTION_FIELDS.items():
        value = given[name]
        if name == "datasets":
            value = split_names(value)
        elif name in ("overwrite", "resume"):
            value = True if value else None  # a flag left off means "not given"
        elif isinstance(value, Path):
            value = str(value)
        overrides[field] = value
    if given["resume"] and not given["overwrite"]:
        overrides["overwrite"] = False  # a run started with --overwrite is resumed without it
    return overrides


@guarded
def finetune(
    datasets: DatasetsOpt = None,
    data_root: DataRootOpt = None,
    init: Annotated[
        Path | None, _opt("--init", help="S4P checkpoint to upcycle (ours, or official via `s5 weights import`).")
    ] = None,
    config: ConfigOpt = None,
    output: OptionalOutputOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in the run directory.")
    ] = False,
    device: DeviceOpt = None,
    seed: Annotated[int | None, _opt("--seed", help="Random seed.")] = None,
    stop_after: Annotated[
        int | None, _opt("--stop-after", help="Stop after N iterations (saving a state) to --resume later.")
    ] = None,
    preset: Annotated[str | None, _opt("--preset", help="Model preset without --init (vit-b, vit-l, vit-h).")] = None,
    moe: Annotated[
        bool | None, _opt("--moe/--no-moe", help="Per-dataset experts (default: with several datasets).")
    ] = None,
    crop_size: Annotated[int | None, _opt("--crop-size", help="Segmentation training crop in pixels.")] = None,
    det_size: Annotated[int | None, _opt("--det-size", help="Detection input (long side) in pixels.")] = None,
    epochs: Annotated[int | None, _opt("--epochs", help="Epochs over the longest dataset.")] = None,
    iterations: Annotated[int | None, _opt("--iterations", help="Optimiser steps (overrides --epochs).")] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", help="Images per dataset per process.")] = None,
    lr: Annotated[float | None, _opt("--lr", help="Peak learning rate.")] = None,
    amp: Annotated[str | None, _opt("--amp", help="Mixed precision: auto, bf16, fp16 or off.")] = None,
    workers: Annotated[int | None, _opt("--workers", help="Data-loading processes per dataset.")] = None,
    eval_every: Annotated[
        int | None, _opt("--eval-every", help="Validate every N iterations (default: every epoch).")
    ] = None,
    checkpoint_every: Annotated[
        int | None, _opt("--checkpoint-every", help="Save a resumable state every N iterations.")
    ] = None,
) -> None:
    """Fine-tune one model on several datasets: shared backbone, an expert and a head per dataset (MoE-MDF).

    Writes RUN_DIR/{config.yaml, metrics.csv, curves.png, checkpoints/, best.pt, checkpoint.pt}; several
    GPUs: the same command under `torchrun --nproc-per-node N -m s5cli finetune ...`.


    $ s5 finetune --datasets potsdam,loveda,dior-r --data-root /data --init s4p.pt -o runs/mdf
    """
    from s5cli.config import build_config, load_config, read_yaml, set_dotted
    from s5cli.console import info
    from s5cli.finetune.config import FinetuneConfig
    from s5cli.finetune.run import run_finetune

    overrides = finetune_overrides(dict(locals()))
    if config is None and resume and output is not None and (output / "config.yaml").is_file():
        saved = output / "config.yaml"  # resume with the config the run was started with
        info(f"using {saved}")
        data = {k: v for k, v in read_yaml(saved).items() if k not in _ONE_OFF}
        for key, value in overrides.items():
            if value is not None:
                set_dotted(data, key, value)
        cfg = build_config(FinetuneConfig, data, str(saved))
    else:
        cfg = load_config(FinetuneConfig, config, overrides)
    path = run_finetune(cfg)
    typer.echo(str(path))
