"""The curated pre-training corpus (`s5 curate` output), read through its GeoParquet manifest.

Only kept chips are read (the manifest's `kept` column). Paths in the manifest are relative to the
corpus folder and may not escape it (an absolute path is taken as is). A sample is
{"image": float32 (C, H, W) in [0, 1], "dataset": "corpus", "path": str} plus, with masks=True,
"mask": int64 (H, W) pseudo-labels (255 = no label, e.g. nodata pixels).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from s5cli.errors import InputError
from s5cli.geo.files import within_root

MANIFEST = "manifest.parquet"
_PIL_SUFFIXES = {".png", ".jpg", ".jpeg"}


def read_chip(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a chip: (data (C, H, W) in its own dtype, valid (H, W) bool: not nodata in any band)."""
    p = Path(path)
    if p.suffix.lower() in _PIL_SUFFIXES:
        try:
            with Image.open(p) as im:
                arr = np.asarray(im)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read image ({exc})", p) from None
        data = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
        return np.ascontiguousarray(data), np.ones(data.shape[1:], dtype=bool)
    from rasterio.errors import NotGeoreferencedWarning

    from s5cli.geo.raster import open_raster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with open_raster(p) as src:
            data = src.read()
            valid = np.all(src.read_masks() > 0, axis=0)
    return data, valid


def default_scale(dtype: np.dtype) -> float:
    """Raw value that maps to 1.0 when nothing else says: the integer type's maximum, 1.0 for floats."""
    kind = np.dtype(dtype)
    return float(np.iinfo(kind).max) if kind.kind in "ui" else 1.0


def to_unit(data: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Raw pixels -> float32 in [0, 1], dividing by `scale` (None: by dtype)."""
    s = scale if scale is not None else default_scale(data.dtype)
    return np.clip(data.astype(np.float32) / np.float32(s), 0.0, 1.0)


def locate_manifest(corpus: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(corpus root, manifest path) from a corpus folder or a manifest file."""
    p = Path(corpus)
    if p.is_dir():
        manifest = p / MANIFEST
        if not manifest.is_file():
            raise InputError(
                f"no {MANIFEST}: the curate run has not finished (rerun it with --resume, or s5 curate --merge)", p
            )
        return p, manifest
    if p.is_file():
        return p.parent, p
    raise InputError("no such corpus folder or manifest", p)


class CorpusDataset(Dataset):
    """Kept chips of a curated corpus, optionally with their pseudo-label masks."""

    name = "corpus"

    def __init__(
        self,
        corpus: str | os.PathLike[str],
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        masks: bool = False,
        scale: float | None = None,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.root, self.manifest = locate_manifest(corpus)
        try:
            table = pq.read_table(self.manifest, columns=["path", "mask_path", "kept"], filters=[("kept", "==", True)])
        except (pa.ArrowInvalid, KeyError, OSError) as exc:
            raise InputError(
                f"not a readable corpus manifest ({str(exc).splitlines()[0][:160]})", self.manifest
            ) from None
        # Arrow arrays, not Python lists: compact, and DataLoader workers share them without copy-on-read.
        self._paths = table.column("path").combine_chunks()
        self._masks = table.column("mask_path").combine_chunks() if masks else None
        if self._paths.null_count:
            raise InputError("kept rows without a chip path", self.manifest)
        if self._masks is not None and (self._masks.null_count or len(self._masks) != len(self._paths)):
            raise InputError(
                "masks asked for, but kept chips lack pseudo-labels (curate with --teacher)", self.manifest
            )
        self.transforms = transforms
        self.scale = scale

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = within_root(self.root, self._paths[index].as_py())
        data, _ = read_chip(path)
        sample: dict[str, Any] = {
            "image": torch.from_numpy(to_unit(data, self.scale)),
            "dataset": self.name,
            "path": str(path),
        }
        if self._masks is not None:
            mask_path = within_root(self.root, self._masks[index].as_py())
            with Image.open(mask_path) as im:
                sample["mask"] = torch.from_numpy(np.asarray(im).astype(np.int64))
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample
