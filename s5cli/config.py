"""Strict typed configs: YAML files and CLI options merged into frozen pydantic models.

Every stage has one config class (defined next to the stage). `load_config` reads a YAML file,
applies CLI overrides (options left at None mean "not given"), and validates strictly: an unknown
key, a wrong type or a missing file is a `ConfigError` naming the file and the key path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from s5cli.errors import ConfigError

C = TypeVar("C", bound="StrictConfig")


class StrictConfig(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping is a ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("no such config file", p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"not valid YAML ({first})", p) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("a config file must hold a mapping of keys to values", p)
    return data


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


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "<root>"
    if err["type"] == "extra_forbidden":
        problem = f"unknown key '{loc}'"
    elif err["type"] == "missing":
        problem = f"missing key '{loc}'"
    else:
        problem = f"key '{loc}': {err['msg']}"
        if "input" in err and not isinstance(err["input"], dict | list):
            problem += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    if more > 0:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return problem


def build_config(cls: type[C], data: dict[str, Any], source: str = "<options>") -> C:
    """Validate a dict into a config object; errors name the source and the key path."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source), source) from None


def load_config(
    cls: type[C],
    path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """Load `path` (optional) into `cls`, with dotted-key overrides; None overrides are skipped."""
    data = read_yaml(path) if path is not None else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in given.items():
        set_dotted(data, key, value)
    source = str(path) if path is not None else "<options>"
    return build_config(cls, data, source)


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """The config as plain YAML/JSON-safe data."""
    return cfg.model_dump(mode="json")


def dump_config(cfg: BaseModel) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
