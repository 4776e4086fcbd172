"""`s5 demo`: the whole chain on a generated georeferenced world, in minutes on a CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import JsonOpt, OverwriteOpt

WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-o", help="Folder for every output of the demo.")]
ItersOpt = Annotated[int, typer.Option("--pretrain-iterations", min=1, help="S4P iterations.")]
FtItersOpt = Annotated[int, typer.Option("--finetune-iterations", min=1, help="MoE-MDF iterations.")]
SizeOpt = Annotated[int, typer.Option("--scene-size", min=128, help="Side of the generated scenes in pixels.")]


def demo(
    workdir: WorkdirOpt = Path("s5-demo"),
    pretrain_iterations: ItersOpt = 40,
    finetune_iterations: FtItersOpt = 100,
    scene_size: SizeOpt = 512,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run curate -> pretrain -> finetune (2 datasets) -> evaluate -> export -> predict on a synthetic world.

    A UTM scene with buildings, roads, trees and water, its vector labels and unlabeled scenes are
    generated; tiny models keep it to a few minutes on 2 CPU cores.

    $ s5 demo --workdir s5-demo
    """
    from rich.table import Table

    from s5cli.console import console
    from s5cli.demo.run import run_demo
    from s5cli.geo.files import check_output

    check_output(workdir, overwrite)
    summary = run_demo(workdir, overwrite, pretrain_iterations, finetune_iterations, scene_size)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(title="s5 demo: outputs")
    table.add_column("what")
    table.add_column("where")
    for what, where in summary["outputs"].items():
        table.add_row(what, where)
    console.print(table)
    for row in summary["metrics"]:
        console.print(f"{row['dataset']}: {row['metric']} = {row['score']:.3f}", markup=False)
    steps = ", ".join(f"{s['step']} {s['seconds']} s" for s in summary["steps"])
    console.print(f"timings: {steps}", markup=False)
