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
    detection counts DIOR-R, or DIOR-R + DOTA-v2.0, at 512 px as the paper's table does and at the
    official detection config's 1024 px.


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
    columns = (
        "preset",
        "width",
        "depth",
        "heads",
        "seg 1",
        "seg MoE 4",
        "det 1",
        "det MoE 2",
        "det 1 @1024",
        "det MoE 2 @1024",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "preset" else "right")
    for row in rows:
        table.add_row(
            row["preset"] + ("*" if row["test_only"] else ""),
            str(row["embed_dim"]),
            str(row["depth"]),
            str(row["num_heads"]),
            *(
                _millions(row[k])
                for k in (
                    "segmentation_single",
                    "segmentation_multi",
                    "detection_single",
                    "detection_multi",
                    "detection_single_1024",
                    "detection_multi_1024",
                )
            ),
        )
    table.caption = (
        "at 512 px, as the paper's table counts; @1024: the official detection config (64 x 64 position grid)\n"
        "* tiny preset for tests and demos"
    )
    Console(highlight=False).print(table)  # the listing itself goes to stdout
