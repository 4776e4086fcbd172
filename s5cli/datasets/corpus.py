"""The curated pre-training corpus (`s5 curate` output), read through its GeoParquet manifest.

Only kept chips are read (the manifest's `kept` column). A manifest is data, not an instruction: its
paths are relative to the corpus folder and may not lead out of it (no `..`, link or absolute path
outside), and each chip must be a plain GeoTIFF, PNG or JPEG (geo/raster.py). A sample is
{"image": float32 (C, H, W) in [0, 1], "dataset": "corpus", "path": str} plus, with masks=True,
"mask": int64 (H, W) pseudo-labels (255 = no label, e.g. nodata pixels).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from s5cli.datasets.base import GEOTIFF_SUFFIXES, Sample, SampleDataset, Transform, read_pixels, to_unit_float
from s5cli.datasets.columns import check_columns
from s5cli.errors import InputError
from s5cli.geo.files import within_root
from s5cli.geo.raster import open_raster

MANIFEST = "manifest.parquet"


def read_chip(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a chip: (data (C, H, W) in its own dtype, valid (H, W) bool: not nodata in any band).

    PNG/JPEG chips follow the datasets' convention (3-channel RGB, every pixel valid), so the
    teacher sees what pre-training will see.
    """
    p = Path(path)
    if p.suffix.lower() not in GEOTIFF_SUFFIXES:
        data = read_pixels(p, kind="image")
        return data, np.ones(data.shape[1:], dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: chips of plain images carry no CRS
        with open_raster(p, untrusted=True) as src:
            data = src.read()
            valid = np.all(src.read_masks() > 0, axis=0)
    return data, valid


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


class CorpusDataset(SampleDataset):
    """Kept chips of a curated corpus, optionally with their pseudo-label masks."""

    name = "corpus"

    def __init__(
        self,
        corpus: str | os.PathLike[str],
        transforms: Transform | None = None,
        masks: bool = False,
        scale: float | None = None,
    ) -> None:
        import pyarrow.parquet as pq

        super().__init__(transforms)
        self.root, self.manifest = locate_manifest(corpus)
        try:
            schema = pq.read_schema(self.manifest)
            check_columns(schema, self.manifest, {"path": "text", "mask_path": "text", "kept": "bool"})
            table = pq.read_table(self.manifest, columns=["path", "mask_path", "kept"], filters=[("kept", "==", True)])
        except (pa.ArrowException, KeyError, OSError) as exc:
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise InputError(f"not a readable corpus manifest ({first})", self.manifest) from None
        # Arrow arrays, not Python lists: compact, and DataLoader workers share them without copy-on-read.
        self._paths = table.column("path").combine_chunks()
        self._masks = table.column("mask_path").combine_chunks() if masks else None
        if not len(self._paths):
            raise InputError("the corpus keeps no chip (every chip was dropped by the curate rules)", self.manifest)
        if self._paths.null_count:
            raise InputError("kept rows without a chip path", self.manifest)
        if self._masks is not None and self._masks.null_count:
            raise InputError("masks asked for, but kept chips lack pseudo-labels (use --teacher)", self.manifest)
        self.scale = scale

    def __len__(self) -> int:
        return len(self._paths)

    def _load(self, index: int) -> Sample:
        path = within_root(self.root, self._paths[index].as_py())
        data, _ = read_chip(path)
        sample: Sample = {"image": to_unit_float(data, self.scale), "dataset": self.name, "path": str(path)}
        if self._masks is not None:
            mask_path = within_root(self.root, self._masks[index].as_py())
            sample["mask"] = torch.from_numpy(read_pixels(mask_path, kind="label")[0].astype(np.int64))
        return sample
