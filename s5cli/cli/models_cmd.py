"""`s5 models`: the model presets and their parameter counts."""

from __future__ import annotations

import json

import typer

from s5cli.cli.options import JsonOpt


def _millions(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def models(as_json: JsonOpt = False) -> None:
    """List the model presets with parameter counts: one dataset, and MoE-MDF over S5's datasets.

    Segmentation counts one Vaihingen head, or four heads (Vaihingen, Potsdam, OpenEarthMap, LoveDA);
    detection counts DIOR-R, or DIOR-R + DOTA-v2.0.


    $ s5 models --json
    """
    from rich.console import Console
    from rich.table import Table

    from s5cli.models.catalog import preset_rows

    rows = preset_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Model presets, parameters in millions", title_justify="left")
    for column in ("preset", "width", "depth", "heads", "seg 1", "seg MoE 4", "det 1", "det MoE 2"):
        table.add_column(column, justify="left" if column == "preset" else "right")
    for row in rows:
        table.add_row(
            row["preset"] + ("*" if row["test_only"] else ""),
            str(row["embed_dim"]),
            str(row["depth"]),
            str(row["num_heads"]),
            *(
                _millions(row[k])
                for k in ("segmentation_single", "segmentation_multi", "detection_single", "detection_multi")
            ),
        )
    table.caption = "* tiny preset for tests and demos"
    Console(highlight=False).print(table)  # the listing itself goes to stdout
