"""`s5 curate`: build a pre-training corpus from raw scenes; `--report` and `--merge` act on an existing one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from s5cli.cli.options import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    OptionalOutputOpt,
    OverwriteOpt,
    config_overrides,
    parse_bands,
)
from s5cli.errors import InputError

# Every option (by parameter name) and the one CurateConfig field it sets (s5cli_tests/test_cli.py checks
# every command's table against its options and its config class). The others choose what to do or where.
OPTION_FIELDS = {
    "chip_size": "chip_size",
    "overlap": "overlap",
    "chip_format": "format",
    "bands": ("bands", parse_bands),
    "max_nodata": "max_nodata",
    "min_std": "min_std",
    "gsd": "gsd",
    "dedup_distance": "dedup_distance",
    "teacher": "teacher",
    "teacher_head": "teacher_head",
    "background": "background",
    "min_foreground": "min_foreground",
    "entropy_stat": "entropy_stat",
    "keep_fraction": "keep_fraction",
    "max_entropy": "max_entropy",
    "diversity_budget": "diversity_budget",
    "batch_size": "batch_size",
    "device": "device",
    "workers": "workers",
    "shard": "shard",
}


def _opt(name: str, help_text: str, short: str | None = None) -> Any:
    names = [name, short] if short else [name]
    return typer.Option(*names, help=help_text, show_default=False)


def curate(
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Scene files, folders (recursive) or globs.", show_default=False)
    ] = None,
    output: OptionalOutputOpt = None,
    report: Annotated[Path | None, _opt("--report", "Summarise a finished corpus and (re)draw its PNG plots.")] = None,
    merge: Annotated[Path | None, _opt("--merge", "Merge the finished shards of a corpus.")] = None,
    chip_size: Annotated[int | None, _opt("--chip-size", "Chip side in pixels [512].")] = None,
    overlap: Annotated[
        float | None, _opt("--overlap", "Share of a chip overlapping its neighbours, in [0, 1) [0].")
    ] = None,
    chip_format: Annotated[str | None, _opt("--format", "auto, tif, png or jpg [auto].")] = None,
    bands: Annotated[str | None, _opt("--bands", "1-based bands to keep, e.g. 1,2,3 [all].", "-b")] = None,
    max_nodata: Annotated[float | None, _opt("--max-nodata", "Drop chips with more nodata than this [0.1].")] = None,
    min_std: Annotated[float | None, _opt("--min-std", "Drop chips whose pixel std is below this [2].")] = None,
    gsd: Annotated[float | None, _opt("--gsd", "Resample georeferenced scenes to this GSD (m) first.")] = None,
    dedup_distance: Annotated[
        int | None, _opt("--dedup-distance", "pHash Hamming radius of near-duplicates; -1: off [4].")
    ] = None,
    teacher: Annotated[str | None, _opt("--teacher", "Checkpoint that pseudo-labels every chip.")] = None,
    teacher_head: Annotated[str | None, _opt("--teacher-head", "The teacher's head (dataset).")] = None,
    background: Annotated[str | None, _opt("--background", "Background class name [first class].")] = None,
    min_foreground: Annotated[
        float | None, _opt("--min-foreground", "Drop chips whose foreground share is <= this [0].")
    ] = None,
    entropy_stat: Annotated[str | None, _opt("--entropy-stat", "mean or max: the entropy ranked [mean].")] = None,
    keep_fraction: Annotated[float | None, _opt("--keep-fraction", "Keep this most confident share.")] = None,
    max_entropy: Annotated[float | None, _opt("--max-entropy", "Keep chips with entropy <= this (nats).")] = None,
    diversity_budget: Annotated[
        float | None, _opt("--diversity-budget", "Re-admitted chips, as a share of the kept [0.05].")
    ] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", "Teacher batch size [8].")] = None,
    device: DeviceOpt = None,
    workers: Annotated[int | None, _opt("--workers", "Tiling processes; 0: in this process [0].")] = None,
    shard: Annotated[str | None, _opt("--shard", "Curate shard I/N (0-based), e.g. 0/4.")] = None,
    config: ConfigOpt = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in -o.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Build an RS4P-style pre-training corpus: chips, pseudo-labels, a GeoParquet manifest.

    $ s5 curate scenes/ -o corpus/ --teacher isaid.pt --keep-fraction 0.8 --workers 4
    """
    modes = [m for m in (inputs, report, merge) if m]
    if len(modes) != 1:
        raise InputError("give INPUT... -o CORPUS_DIR, or --report CORPUS_DIR, or --merge CORPUS_DIR (one of them)")
    if report is not None:
        from s5cli.curation.report import report as make_report

        _show(make_report(report), json_out)  # its plots are redrawn each time
        return
    if merge is not None:
        from s5cli.curation.merge import merge_corpus

        _show({"merged": True, **merge_corpus(merge, overwrite=overwrite)}, json_out)
        return
    if output is None:
        raise InputError("missing -o/--output CORPUS_DIR")
    from s5cli.config import load_config
    from s5cli.curation.config import CurateConfig
    from s5cli.curation.pipeline import run_curate

    values = config_overrides(curate, dict(locals()), OPTION_FIELDS)
    cfg = load_config(CurateConfig, config, values)
    _show(run_curate(list(inputs or []), output, cfg, overwrite=overwrite, resume=resume), json_out)


def _show(summary: dict[str, Any], as_json: bool) -> None:
    """Print the summary: JSON, or a rich table on stdout."""
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    if not summary.get("merged", True):
        waiting = len(summary["waiting_for"])
        out.print(f"{summary['shard']} done; waiting for {waiting} shard(s) to merge", soft_wrap=True)
        return
    table = Table(title="curated corpus")
    table.add_column("chips", justify="left")
    table.add_column("count", justify="right")
    table.add_row("total", str(summary["chips"]))
    table.add_row("kept", str(summary["kept"]), style="bold green")
    for reason, n in summary["reasons"].items():
        if n:
            table.add_row(f"  {reason}", str(n))
    table.add_row("scenes", str(summary["scenes"]))
    if summary["failed_scenes"]:
        table.add_row("scenes failed", str(summary["failed_scenes"]), style="red")
    out.print(table)
    for plot in summary.get("plots", []):
        out.print(f"wrote {plot}", soft_wrap=True)
