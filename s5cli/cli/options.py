"""Options shared by several commands, defined once (rio `options.py` habit), and the one path from options to config.

Each command declares, beside its options, an OPTION_FIELDS table: parameter name -> the dotted config
field it sets, or (field, parser) where the text needs parsing. `config_overrides` applies any such table
the same way: an option left at its default (None, or a flag left off) is "not given" and leaves the
config file's value alone.

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

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

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
ProtocolOpt = Annotated[
    str | None,
    typer.Option(
        "--protocol",
        help="standard (mmseg / GeoSeg / DOTA devkit scoring) or paper (the S5 authors' code, quirks included).",
        show_default=False,
    ),
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


def parse_stretch(value: str | None) -> tuple[float, float] | None:
    """'2,98' or 'p2,p98' -> (2.0, 98.0); None stays None."""
    if value is None:
        return None
    parts = [p.strip().lstrip("pP") for p in value.split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--stretch takes two percentiles such as 2,98, not '{value}'") from None
    return lo, hi


def parse_gsd(value: str | None) -> str | float | None:
    """'auto', 'native' or metres as text -> the config value; None stays None."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("auto", "native"):
        return text
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--gsd takes metres per pixel, 'auto' or 'native', not '{value}'") from None


FieldSpec = str | tuple[str, Callable[[Any], Any]]


def config_overrides(command: Callable[..., Any], given: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> dict:
    """Dotted config overrides from a command's parameters, by its OPTION_FIELDS table.

    A flag whose default is False counts as given only when set; None means not given; paths become text.
    """
    defaults = {name: p.default for name, p in inspect.signature(command).parameters.items()}
    overrides: dict[str, Any] = {}
    for name, spec in fields.items():
        field, parse = (spec, None) if isinstance(spec, str) else spec
        value = given[name]
        if value is False and defaults.get(name) is False:
            value = None  # an on/off flag left off: the config decides
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list | tuple) and value and isinstance(value[0], Path):
            value = [str(v) for v in value]
        if value is not None and parse is not None:
            value = parse(value)
        overrides[field] = value
    return overrides
