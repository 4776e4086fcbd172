"""Dataset names and aliases -> records, and where a dataset's folder is under a data root.

``dataset_info(name)`` gives the record of a benchmark (datasets/benchmarks.py) or of a custom dataset
YAML (datasets/custom.py); ``get_dataset(name, root, split)`` builds its loader; ``find_dataset_root``
finds ``DATA_ROOT/<name>/`` or one of its aliases.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s5cli.datasets.benchmarks import BENCHMARKS
from s5cli.datasets.custom_config import CUSTOM, custom_info, custom_pixel_format
from s5cli.datasets.info import DatasetInfo
from s5cli.datasets.pixels import PixelFormat, benchmark_format
from s5cli.errors import ConfigError, InputError

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (*BENCHMARKS, CUSTOM)}
# Datasets that live as a folder under a data root (custom data is named by its YAML instead).
FOLDER_DATASETS = tuple(info.name for info in BENCHMARKS)
# Loader options that are pixel sizes, and the smallest value each takes (None keeps a loader's default).
SIZE_OPTIONS = {"crop_size": 1, "stride": 1, "patch_size": 1, "gap": 0}


def _norm(name: str) -> str:
    return name.strip().lower()


def canonical_name(name: str) -> str:
    """The registry name of a dataset name or alias; unknown names are an InputError listing valid ones."""
    key = _norm(name)
    for info in DATASETS.values():
        if key == info.name or key in (_norm(a) for a in info.aliases):
            return info.name
    raise InputError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")


def is_dataset_yaml(entry: str | os.PathLike[str] | None) -> bool:
    """True when a dataset entry or root is a custom dataset YAML (your own GeoTIFFs + vector labels)."""
    return entry is not None and str(entry).lower().endswith((".yaml", ".yml"))


def same_dataset(a: str, b: str) -> bool:
    """True when two names (registry names, aliases or custom names) denote the same dataset."""
    try:
        return canonical_name(a) == canonical_name(b)
    except InputError:
        return _norm(a) == _norm(b)


def dataset_info(name: str, root: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """The record of a name or alias; a custom dataset YAML as root gives that dataset's own record."""
    if is_dataset_yaml(root):
        return custom_info(root)  # type: ignore[arg-type]
    return DATASETS[canonical_name(name)]


def resolve_dataset(
    entry: str, data_root: str | os.PathLike[str] | None = None, root: str | os.PathLike[str] | None = None
) -> tuple[str, DatasetInfo, Path]:
    """(name, record, root) of a `--datasets` entry: a registry name or alias, or a custom dataset YAML.

    A registry dataset is found at `root` when given, else under `data_root`; a YAML entry is its own
    root and is named by its `name:` key, so several custom datasets can train side by side.
    """
    if is_dataset_yaml(entry):
        path = Path(entry)
        if not path.is_file():
            raise InputError("no such dataset YAML", path)
        info = custom_info(path)
        return info.name, info, path
    name = canonical_name(entry)
    if root is not None:
        found = Path(root)
    elif data_root is not None:
        found = find_dataset_root(data_root, name)
    else:
        raise InputError(f"give --data-root (a folder holding {name}/) or dataset_settings.{name}.root")
    return name, dataset_info(name, found), found


def pixel_format(
    info: DatasetInfo, root: str | os.PathLike[str] | None, options: Mapping[str, Any] | None = None
) -> PixelFormat:
    """How a dataset's loader reads its pixels under its loader options (a custom one's: its YAML and rasters)."""
    if info.loader == CUSTOM.loader and root is not None:
        return custom_pixel_format(Path(root))
    try:
        return benchmark_format(info, options)
    except ValueError as exc:
        raise InputError(f"options.bands: {exc}", root) from None


def find_dataset_root(data_root: str | os.PathLike[str], name: str) -> Path:
    """``DATA_ROOT/<name>/`` or ``DATA_ROOT/<alias>/`` (case-insensitive); an InputError when absent."""
    base = Path(data_root)
    if not base.is_dir():
        raise InputError("no such folder (expected a data root holding one folder per dataset)", base)
    info = dataset_info(name)
    wanted = [_norm(n) for n in (info.name, *info.aliases)]
    present = {_norm(p.name): p for p in sorted(base.iterdir()) if p.is_dir()}
    for key in wanted:
        if key in present:
            return present[key]
    tried = ", ".join([info.name, *info.aliases])
    raise InputError(f"no {info.name} folder here (looked for: {tried})", base)


def check_settings_keys(settings: Mapping[str, Any], names: Sequence[str], where: str = "dataset_settings") -> None:
    """Every key of a per-dataset settings section names a dataset of the run (a typo is an error, not ignored)."""
    for key in settings:
        if not any(same_dataset(key, name) for name in names):
            raise ConfigError(f"{where}.{key} names no dataset of this run; the datasets are: {', '.join(names)}")


def get_dataset(
    name: str,
    root: str | os.PathLike[str],
    split: str = "train",
    transforms: Any = None,
    **options: Any,
) -> Any:
    """Build the loader of a dataset folder (or custom YAML) as a torch Dataset of sample dicts."""
    info = dataset_info(name, root)
    module_name, class_name = info.loader.split(":")
    cls = getattr(importlib.import_module(f"s5cli.datasets.{module_name}"), class_name)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "root", "split", "transforms")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"{info.name} has no option {', '.join(unknown)}; its options: {', '.join(valid) or 'none'}")
    for key, smallest in SIZE_OPTIONS.items():
        value = options.get(key)
        if value is not None and (type(value) is not int or value < smallest):
            raise InputError(f"{info.name} option {key} must be a whole number of pixels >= {smallest}, got {value!r}")
    return cls(root, split=split, transforms=transforms, **options)
