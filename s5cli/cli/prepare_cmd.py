"""`s5 prepare`: cut a dataset of huge images (DOTA, iSAID) into patch files once, for faster training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import DataRootOpt, JsonOpt, OutputOpt, OverwriteOpt, split_names

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="The dataset folder itself (instead of --data-root).", show_default=False)
]
SplitsOpt = Annotated[
    str | None, typer.Option("--splits", help="Comma-separated splits (default: all but trainval).", show_default=False)
]
PatchOpt = Annotated[
    int | None, typer.Option("--patch-size", help="Patch size in pixels (default: DOTA 1024, iSAID 896).")
]
GapOpt = Annotated[int | None, typer.Option("--gap", help="Overlap between patches (default: DOTA 200, iSAID 384).")]


def prepare(
    dataset: Annotated[str, typer.Argument(help="dota-v1.0, dota-v1.5, dota-v2.0 or isaid.", show_default=False)],
    output: OutputOpt,
    data_root: DataRootOpt = None,
    root: RootOpt = None,
    splits: SplitsOpt = None,
    patch_size: PatchOpt = None,
    gap: GapOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Cut DOTA or iSAID into patch files in the same layout, so training stops decoding whole PNGs per patch.

    $ s5 prepare dota-v2.0 --data-root /data -o /data/dota-v2.0-patches
    """
    from s5cli.datasets.prepare import prepare_dataset
    from s5cli.datasets.registry import find_dataset_root
    from s5cli.errors import InputError
    from s5cli.geo.files import check_output

    check_output(output, overwrite)
    if (root is None) == (data_root is None):
        raise InputError("give the dataset folder with --root or a folder of datasets with --data-root")
    folder = root if root is not None else find_dataset_root(data_root, dataset)
    counts = prepare_dataset(dataset, folder, output, split_names(splits), patch_size, gap, overwrite)
    if as_json:
        typer.echo(json.dumps({"dataset": dataset, "output": str(output), "patches": counts}))
    else:
        from s5cli.console import info

        info(f"{output}: " + ", ".join(f"{split} {n} patches" for split, n in counts.items()))
