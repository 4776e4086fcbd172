"""Strict typed configs: YAML files and CLI options merged into frozen pydantic models.

Every stage has one config class (defined next to the stage). `load_config` reads a YAML file,
applies CLI overrides (options left at None mean "not given"), and validates strictly: an unknown
key, a wrong type, a non-finite number or a missing file is a `ConfigError` naming the file and the key
path. A YAML file is read within limits (size, alias expansion, nesting), so that a tiny file cannot
grow into gigabytes (the "billion laughs" of nested aliases).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from s5cli.errors import ConfigError, InputError

C = TypeVar("C", bound="StrictConfig")

MAX_YAML_BYTES = 8 * 1024 * 1024  # configs are kilobytes; a dataset YAML listing many scenes stays far below
# Nodes that aliases may add by repetition: ample for `<<: *defaults` merges, nothing like a bomb's 10^9.
MAX_ALIAS_NODES = 1000


class StrictConfig(BaseModel):
    """Base for every config section: unknown keys are errors, numbers are finite, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes under `node` once every alias is expanded (shared nodes counted once in `sizes`)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise ValueError("an alias refers to a node that contains it (a recursive structure)")
    open_nodes.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    sizes[key] = size
    return size


def _load_limited(text: str) -> Any:
    """yaml.safe_load, refusing documents whose aliases expand past MAX_ALIAS_NODES (checked before building)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        expanded = _expanded_size(node, sizes, set())
        if expanded - len(sizes) > MAX_ALIAS_NODES:
            raise ValueError(
                f"its aliases expand to {expanded - len(sizes)} more nodes (at most {MAX_ALIAS_NODES} are allowed)"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping within the size and alias limits; a missing file or a non-mapping is a ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("no such config file", p)
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"is {p.stat().st_size} bytes; a config file may hold at most {MAX_YAML_BYTES}", p)
    try:
        data = _load_limited(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"not valid YAML ({first})", p) from None
    except ValueError as exc:
        raise ConfigError(f"refused: {exc}", p) from None
    except RecursionError:
        raise ConfigError("refused: nested too deeply", p) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("a config file must hold a mapping of keys to values", p)
    return data


def check_text(value: str, where: str) -> None:
    """A path or text value must hold no NUL byte and be valid UTF-8 (GDAL, SQLite and YAML need it)."""
    if "\x00" in value:
        raise InputError("holds a NUL byte", where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("is not valid UTF-8 (GDAL and GeoPackage need UTF-8 names); rename it", where) from None


def _check_texts(data: Any, source: str, key: str = "") -> None:
    """Every string in a config (keys and values, nested) passes check_text; errors name the key path."""
    if isinstance(data, str):
        check_text(data, data if "\x00" not in data else f"{source}: key '{key or '<root>'}'")
    elif isinstance(data, dict):
        for k, v in data.items():
            path = f"{key}.{k}" if key else str(k)
            if isinstance(k, str):
                check_text(k, f"{source}: key '{path}'")
            _check_texts(v, source, path)
    elif isinstance(data, list | tuple):
        for i, v in enumerate(data):
            _check_texts(v, source, f"{key}.{i}" if key else str(i))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating the sections on the way."""
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


class Overrides(dict[str, Any]):
    """Dotted config overrides from command options, with the option that sets each field (`flags`).

    Errors about a field name its option when the value came from one (`--crop-size: ...`), and a
    missing field the options that set it, instead of the internal key path.
    """

    def __init__(self, values: Mapping[str, Any], flags: Mapping[str, str]) -> None:
        super().__init__(values)
        self.flags = dict(flags)


def _flags_under(loc: str, flags: Mapping[str, str]) -> list[str]:
    """The options that set `loc`, a field inside it, or the field holding it."""
    return [
        f for field, f in flags.items() if field == loc or field.startswith(f"{loc}.") or loc.startswith(f"{field}.")
    ]


def _format_error(exc: ValidationError, flags: Mapping[str, str], given: set[str]) -> tuple[str, bool]:
    """(the problem, whether it is about an option's value rather than the file's)."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "<root>"
    named = _flags_under(loc, {k: v for k, v in flags.items() if k in given})
    if err["type"] == "extra_forbidden":
        problem = f"unknown key '{loc}'"
    elif err["type"] == "missing":
        options = _flags_under(loc, flags)
        problem = f"missing key '{loc}'" + (f": give {' or '.join(options)}" if options else "")
    else:
        problem = f"{named[0] if named else f'key {loc!r}'}: {err['msg']}"
        if "input" in err and not isinstance(err["input"], dict | list):
            problem += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    if more > 0:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return problem, bool(named) and err["type"] not in ("extra_forbidden", "missing")


def build_config(
    cls: type[C],
    data: dict[str, Any],
    source: str = "<options>",
    flags: Mapping[str, str] | None = None,
    given: set[str] | None = None,
) -> C:
    """Validate a dict into a config object; errors name the source and the key path, or the option (`flags`)."""
    _check_texts(data, source)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problem, from_options = _format_error(exc, flags or {}, given or set())
        raise ConfigError(problem, None if from_options or source == "<options>" else source) from None


def load_config(
    cls: type[C],
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Load `path` (optional) into `cls`, with dotted-key overrides; None overrides are skipped."""
    data = read_yaml(path) if path is not None else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in given.items():
        set_dotted(data, key, value)
    source = str(path) if path is not None else "<options>"
    return build_config(cls, data, source, getattr(overrides, "flags", None), set(given))


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """The config as plain YAML/JSON-safe data."""
    return cfg.model_dump(mode="json")


def dump_config(cfg: BaseModel) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
