"""`s5 pretrain`: S4P semi-supervised pre-training (FixMatch + CutMix) into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from s5cli.cli.boundary import guarded
from s5cli.cli.options import ConfigOpt, DataRootOpt, DeviceOpt, OptionalOutputOpt

# Every option (by parameter name) and the one PretrainConfig field it sets (style.md §9.3);
# s5cli_tests/test_pretrain.py checks this table against the command and the config class.
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
    "batch_size": "batch_size",
    "micro_batch_size": "micro_batch_size",
    "lr": "optim.lr",
    "amp": "amp",
    "teacher": "fixmatch.teacher",
    "workers": "workers",
    "eval_every": "eval_every",
    "checkpoint_every": "checkpoint_every",
}


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


@guarded
def pretrain(
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
    data_root: DataRootOpt = None,
    labeled: Annotated[str | None, _opt("--labeled", help="Labeled dataset name (isaid by default).")] = None,
    unlabeled_folder: Annotated[
        Path | None, _opt("--unlabeled-folder", help="Folder of unlabeled images (any depth).")
    ] = None,
    unlabeled_manifest: Annotated[
        Path | None, _opt("--unlabeled-manifest", help="Corpus manifest written by `s5 curate`.")
    ] = None,
    preset: Annotated[str | None, _opt("--preset", help="Model preset: vit-b, vit-l, vit-h.")] = None,
    init: Annotated[Path | None, _opt("--init", help="s5cli checkpoint to start from (e.g. imported MAE).")] = None,
    crop_size: Annotated[int | None, _opt("--crop-size", help="Training crop in pixels.")] = None,
    iterations: Annotated[int | None, _opt("--iterations", help="Optimiser steps.")] = None,
    batch_size: Annotated[
        int | None, _opt("--batch-size", help="Global labeled batch (the unlabeled batch is the same).")
    ] = None,
    micro_batch_size: Annotated[
        int | None, _opt("--micro-batch-size", help="Images per process and forward (gradient accumulation).")
    ] = None,
    lr: Annotated[float | None, _opt("--lr", help="Peak learning rate.")] = None,
    amp: Annotated[str | None, _opt("--amp", help="Mixed precision: auto, bf16, fp16 or off.")] = None,
    teacher: Annotated[str | None, _opt("--teacher", help="Pseudo-label teacher: same or ema.")] = None,
    workers: Annotated[int | None, _opt("--workers", help="Data-loading processes per stream.")] = None,
    eval_every: Annotated[int | None, _opt("--eval-every", help="Validate every N iterations.")] = None,
    checkpoint_every: Annotated[
        int | None, _opt("--checkpoint-every", help="Save a resumable state every N iterations.")
    ] = None,
) -> None:
    """Pre-train a segmentation model with S4P (FixMatch on labeled + unlabeled images).

    Writes RUN_DIR/{config.yaml, metrics.csv, curves.png, checkpoints/, checkpoint.pt}; several GPUs
    or nodes: the same command under `torchrun --nproc-per-node N -m s5cli pretrain ...`.


    $ s5 pretrain --config configs/pretrain/vit-b.yaml --data-root /data --unlabeled-folder /data/rs4p -o runs/s4p
    """
    from s5cli.config import build_config, load_config, read_yaml, set_dotted
    from s5cli.console import info
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.pretrain.run import run_pretrain

    given = dict(locals())
    overrides: dict[str, Any] = {}
    for name, field in OPTION_FIELDS.items():
        value = given[name]
        if isinstance(value, bool):
            value = True if value else None  # a flag left off means "not given"
        if isinstance(value, Path):
            value = str(value)
        overrides[field] = value
    # One unlabeled source replaces the config's (folder and manifest are exclusive).
    for name in ("unlabeled_folder", "unlabeled_manifest"):
        if given[name] is not None:
            field = OPTION_FIELDS[name]
            overrides.pop(OPTION_FIELDS["unlabeled_folder"], None)
            overrides.pop(OPTION_FIELDS["unlabeled_manifest"], None)
            overrides["unlabeled"] = {field.split(".")[1]: str(given[name])}
    if resume and not overwrite:
        overrides["overwrite"] = False  # a run started with --overwrite is resumed without it
    if config is None and resume and output is not None and (output / "config.yaml").is_file():
        # Resume with the config the run was started with, minus its one-off run controls.
        saved = output / "config.yaml"
        info(f"using {saved}")
        data = {k: v for k, v in read_yaml(saved).items() if k not in ("stop_after", "resume", "overwrite")}
        for key, value in overrides.items():
            if value is not None:
                set_dotted(data, key, value)
        cfg = build_config(PretrainConfig, data, str(saved))
    else:
        cfg = load_config(PretrainConfig, config, overrides)
    path = run_pretrain(cfg)
    typer.echo(str(path))
