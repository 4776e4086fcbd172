"""`s5 weights import`: the released S5 weights converted into an s5cli checkpoint."""

from __future__ import annotations

import json
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import DatasetsOpt, JsonOpt, OutputOpt, OverwriteOpt, split_names


class WeightsAction(str, Enum):
    """What `s5 weights` does."""

    IMPORT = "import"


def _groups(keys: list[str], depth: int = 3) -> list[str]:
    """`heads.isaid.decoder.* (62 tensors)` lines: every key, counted by its first `depth` name parts."""
    counts = Counter(".".join(k.split(" ")[0].split(".")[:depth]) for k in keys)
    return [f"{group}.* ({n} tensor{'s' if n > 1 else ''})" for group, n in counts.items()]


def weights(
    action: Annotated[WeightsAction, typer.Argument(help="import: official S5 / MAE / timm .pth -> our checkpoint.")],
    source: Annotated[Path, typer.Argument(help="Official S5, MAE or timm ViT weights (.pth).", show_default=False)],
    output: OutputOpt,
    datasets: DatasetsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert released weights (S4P, MoE-MDF segmentation or detection, MAE / timm ViT) into an s5cli checkpoint.

    MoE experts follow the dataset names, so --datasets may list them in any order.

    $ s5 weights import s5_vit_b_moe_mdf.pth -o s5-vit-b-mdf.pt
    """
    from s5cli.console import info, warn
    from s5cli.geo.files import check_distinct_outputs, check_input, check_output
    from s5cli.models.official import import_official

    check_output(output, overwrite)
    check_input(source, "file")
    check_distinct_outputs([("-o/--output", output)], [source])
    info(f"reading {source}")
    report = import_official(source, output, datasets=split_names(datasets), overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    # Many keys (an MAE decoder) are summed up by module; a few are named, with their reason.
    for line in report.unmapped if len(report.unmapped) <= 8 else _groups(report.unmapped, depth=1):
        warn(f"not mapped: {line}")
    for line in _groups(report.unset):
        warn(f"left at fresh initialisation: {line}")
    kind = f"MoE-MDF, experts {', '.join(report.datasets)}" if report.moe else f"heads {', '.join(report.datasets)}"
    typer.echo(f"{report.output}: {report.preset} ({kind}), {report.loaded} tensors imported from {report.source}")
