"""Options shared by several commands, defined once (rio `options.py` habit).

| option            | commands                                   | config field |
|-------------------|--------------------------------------------|--------------|
| -o/--output       | every command that writes                  | output       |
| --overwrite       | every command that writes                  | overwrite    |
| --config          | curate, pretrain, finetune, evaluate, predict | (the file)  |
| --json            | commands that end with a summary           | (display)    |
| --device          | pretrain, finetune, evaluate, predict, curate | device     |
| --data-root       | datasets, finetune, evaluate               | data_root    |
| --datasets        | finetune, evaluate                         | datasets     |
| --checkpoint      | predict                                    | checkpoint   |
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from s5cli.errors import InputError

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output path.", show_default=False)]
OptionalOutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Output path.", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Always overwrite an existing output.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="auto, cpu, cuda or cuda:N.", show_default=False),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding one sub-folder per dataset.", show_default=False),
]
DatasetsOpt = Annotated[
    str | None,
    typer.Option("--datasets", help="Comma-separated dataset names, e.g. potsdam,loveda.", show_default=False),
]


def split_names(value: str | None) -> list[str] | None:
    """Split 'a,b,c' into names; None stays None."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise InputError(f"no names in '{value}'")
    return names


def parse_bands(value: str | None) -> list[int] | None:
    """Parse 1-based band indexes '1,2,3'."""
    if value is None:
        return None
    try:
        bands = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--bands takes 1-based band numbers such as 1,2,3, not '{value}'") from None
    if not bands or min(bands) < 1:
        raise InputError(f"--bands takes 1-based band numbers such as 1,2,3, not '{value}'")
    return bands
