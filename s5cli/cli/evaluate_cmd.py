"""`s5 evaluate`: a checkpoint scored on benchmarks with each one's metric and the paper's eval modes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from s5cli.cli.options import (
    ConfigOpt,
    DataRootOpt,
    DatasetsOpt,
    DeviceOpt,
    JsonOpt,
    OptionalOutputOpt,
    OverwriteOpt,
    ProtocolOpt,
    config_overrides,
    split_names,
)

# Every option (by parameter name) and the one EvaluateConfig field it sets (s5cli_tests/test_cli.py checks
# every command's table against its options and its config class).
OPTION_FIELDS: dict[str, str] = {
    "checkpoint": "checkpoint",
    "datasets": ("datasets", split_names),
    "data_root": "data_root",
    "split": "split",
    "mode": "mode",
    "flip": "flip",
    "tile_size": "tile_size",
    "det_size": "det_size",
    "batch_size": "batch_size",
    "max_images": "max_images",
    "save_predictions": "save_predictions",
    "output": "output",
    "overwrite": "overwrite",
    "device": "device",
    "amp": "amp",
    "protocol": "protocol",
}
_COLUMNS = ("dataset", "split", "mode", "images", "metric", "score", "mIoU", "mF1", "OA", "mAP")


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint to score (.pt).", show_default=False)],
    datasets: DatasetsOpt = None,
    data_root: DataRootOpt = None,
    split: Annotated[str | None, _opt("--split", help="Split for every dataset (default: each protocol's).")] = None,
    mode: Annotated[
        str | None, _opt("--mode", help="Segmentation eval mode: crop (+flip = S5 'original'), slide or resize.")
    ] = None,
    flip: Annotated[bool | None, _opt("--flip/--no-flip", help="Horizontal-flip test-time augmentation.")] = None,
    tile_size: Annotated[int | None, _opt("--tile-size", help="Segmentation tile (default: trained size).")] = None,
    det_size: Annotated[int | None, _opt("--det-size", help="Detection input / patch size.")] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", help="Windows per forward.")] = None,
    max_images: Annotated[int | None, _opt("--max-images", help="Score only the first N samples.")] = None,
    save_predictions: Annotated[
        Path | None, _opt("--save-predictions", help="Folder for server files: LoveDA PNGs, DOTA Task1 txt.")
    ] = None,
    output: OptionalOutputOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = None,
    amp: Annotated[str | None, _opt("--amp", help="Mixed precision: off (default), auto, bf16, fp16.")] = None,
    protocol: ProtocolOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score a checkpoint on benchmark splits: each dataset's metric and eval mode; per-class CSV with -o.

    $ s5 evaluate runs/mdf/best.pt --datasets potsdam,loveda --data-root /data -o metrics.csv
    """
    from s5cli.config import load_config
    from s5cli.evaluation.config import EvaluateConfig
    from s5cli.evaluation.run import run_evaluate, summary_rows

    cfg = load_config(EvaluateConfig, config, config_overrides(evaluate, dict(locals()), OPTION_FIELDS))
    summary = run_evaluate(cfg)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{checkpoint.name}: scores in %", title_justify="left")
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column in ("dataset", "split", "mode", "metric") else "right")
    for row in summary_rows(summary):
        table.add_row(*(row[c] for c in _COLUMNS))
    import sys

    wide = None if sys.stdout.isatty() else 132  # pipes and files: no truncated columns
    Console(highlight=False, width=wide).print(table)  # the table itself goes to stdout
