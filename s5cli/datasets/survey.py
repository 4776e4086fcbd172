"""What `s5 datasets` reports: the registry and, under a data root, which datasets are there and their sizes.

Counting is cheap: loaders list files and read image headers (for window counts); no pixel is decoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from s5cli.datasets.registry import (
    DATASETS,
    FOLDER_DATASETS,
    canonical_name,
    find_dataset_root,
    get_dataset,
    is_dataset_yaml,
    resolve_dataset,
)
from s5cli.errors import InputError, S5Error


def _count_splits(name: str, info: Any, root: Any, strict: bool) -> dict[str, Any]:
    samples: dict[str, int | None] = {}
    problems: dict[str, str] = {}
    first: S5Error | None = None
    for split in info.splits:
        try:
            samples[split] = len(get_dataset(name, root, split))
        except S5Error as exc:
            samples[split] = None
            problems[split] = exc.message
            first = first or exc
    found = any(n is not None for n in samples.values())
    if strict and not found and first is not None:
        raise first
    return {"folder": str(root), "found": found, "samples": samples, "problems": problems}


def survey_dataset(name: str, data_root: str | os.PathLike[str], strict: bool = False) -> dict[str, Any]:
    """Folder, found flag, samples per split (None where a split cannot be read) and the problems.

    With ``strict``, a missing folder or a folder where no split can be read raises its InputError.
    """
    try:
        root = find_dataset_root(data_root, name)
    except InputError:
        if strict:
            raise
        return {"folder": None, "found": False, "samples": {}, "problems": {}}
    return _count_splits(name, DATASETS[name], root, strict)


def survey(data_root: str | os.PathLike[str] | None = None, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One entry per dataset (all, or the named ones): its description, plus what is under ``data_root``.

    Naming datasets makes the check strict: one that is missing or unreadable is an InputError. A named
    custom dataset YAML is described and counted from its own scenes.
    """
    if data_root is not None and not os.path.isdir(data_root):
        raise InputError("no such folder (expected a data root holding one folder per dataset)", data_root)
    entries = []
    for entry_name in names or list(DATASETS):
        if is_dataset_yaml(entry_name):
            name, info, root = resolve_dataset(entry_name)
            entries.append({**info.describe(), **_count_splits(name, info, root, strict=True)})
            continue
        name = canonical_name(entry_name)
        entry = DATASETS[name].describe()
        if data_root is not None:
            if name in FOLDER_DATASETS:
                entry.update(survey_dataset(name, data_root, strict=bool(names)))
            else:
                entry.update(folder=None, found=None, samples={}, problems={})
        entries.append(entry)
    return entries
