"""`s5 export`: the dense single-dataset model of a multi-dataset checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import OutputOpt, OverwriteOpt

CheckpointArg = Annotated[Path, typer.Argument(help="A fine-tuned checkpoint (.pt).", show_default=False)]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", help="The dataset whose head and expert to keep (not needed with one head).", show_default=False
    ),
]


def export(
    checkpoint: CheckpointArg, output: OutputOpt, dataset: DatasetOpt = None, overwrite: OverwriteOpt = False
) -> None:
    """Export one dataset's dense model (shared FFN + its expert merged, its head only) for fast predict.

    $ s5 export runs/finetune/model.pt --dataset potsdam -o potsdam.pt
    """
    from s5cli.console import info
    from s5cli.finetune.export import export_checkpoint

    path = export_checkpoint(checkpoint, dataset, output, overwrite)
    info(f"wrote {path}")
    typer.echo(str(path))
