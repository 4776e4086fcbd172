"""What `s5 datasets` reports: the registry and, under a data root, which datasets are there and their sizes.

Counting is cheap: loaders list files and read image headers (for window counts); no pixel is decoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from s5cli.datasets.registry import DATASETS, FOLDER_DATASETS, canonical_name, find_dataset_root, get_dataset
from s5cli.errors import InputError, S5Error


def survey_dataset(name: str, data_root: str | os.PathLike[str], strict: bool = False) -> dict[str, Any]:
    """Folder, found flag, samples per split (None where a split cannot be read) and the problems.

    With ``strict``, a missing folder or a folder where no split can be read raises its InputError.
    """
    info = DATASETS[name]
    try:
        root = find_dataset_root(data_root, name)
    except InputError:
        if strict:
            raise
        return {"folder": None, "found": False, "samples": {}, "problems": {}}
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


def survey(data_root: str | os.PathLike[str] | None = None, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One entry per dataset (all, or the named ones): its description, plus what is under ``data_root``.

    Naming datasets makes the check strict: one that is missing or unreadable is an InputError.
    """
    if data_root is not None and not os.path.isdir(data_root):
        raise InputError("no such folder (expected a data root holding one folder per dataset)", data_root)
    wanted = [canonical_name(n) for n in names] if names else list(DATASETS)
    entries = []
    for name in wanted:
        entry = DATASETS[name].describe()
        if data_root is not None:
            if name in FOLDER_DATASETS:
                entry.update(survey_dataset(name, data_root, strict=bool(names)))
            else:
                entry.update(folder=None, found=None, samples={}, problems={})
        entries.append(entry)
    return entries
