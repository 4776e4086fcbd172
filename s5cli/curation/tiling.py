"""Tile one scene: read window by window, apply the chip rules, hash and write the survivors.

This is the worker function of the CPU pool (no torch here). Rules, in order, each recorded as the
row's reason: `nodata` (nodata share above max_nodata), `low_std` (pixel standard deviation of the
valid pixels, in source units, below min_std). Survivors are written and marked `candidate`; the
teacher, dedup and selection decide later. A window that cannot be read (a corrupt tile) is a row with
reason `unreadable` and the rest of the scene goes on; a scene that cannot be opened, or none of whose
windows reads, becomes an error record. Options that do not fit a scene (--bands past its band count)
are a ConfigError that stops the run: another scene would not make them right.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from s5cli.curation.chips import check_writable, chip_extension, footprints, write_chip
from s5cli.curation.config import CurateConfig
from s5cli.curation.inputs import Scene
from s5cli.curation.layout import chip_relpath
from s5cli.curation.manifest import CANDIDATE, LOW_STD, NODATA, UNREADABLE
from s5cli.curation.phash import phash, to_hex
from s5cli.errors import ConfigError, InputError
from s5cli.geo.raster import check_real, info_of, open_raster, read_window
from s5cli.geo.resample import resampled
from s5cli.geo.tiles import grid_starts


@dataclass(frozen=True)
class TileSettings:
    """What a tiling worker needs (picklable)."""

    corpus: str
    chip_size: int = 512
    overlap_px: int = 0
    fmt: str = "auto"
    bands: tuple[int, ...] | None = None
    max_nodata: float = 0.1
    min_std: float = 2.0
    gsd: float | None = None

    @classmethod
    def from_config(cls, cfg: CurateConfig, corpus: str | Path) -> TileSettings:
        """Settings from a CurateConfig."""
        return cls(
            corpus=str(corpus),
            chip_size=cfg.chip_size,
            overlap_px=cfg.overlap_px,
            fmt=cfg.format,
            bands=tuple(cfg.bands) if cfg.bands else None,
            max_nodata=cfg.max_nodata,
            min_std=cfg.min_std,
            gsd=cfg.gsd,
        )


@dataclass
class SceneResult:
    """One scene's rows (no pixels), or the reason it failed."""

    scene: Scene
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    lost: str | None = None  # "<scene>: N of M windows unreadable, left out (...)" when tiles are corrupt

    def record(self) -> dict[str, Any]:
        """The scene's entry in a part record."""
        return {
            "index": self.scene.index,
            "id": self.scene.id,
            "source": self.scene.recorded,
            "chips": len(self.rows),
            "error": self.error,
        }


def tile_scene(scene: Scene, settings: TileSettings) -> SceneResult:
    """Cut one scene into chips (written under the corpus) and describe every chip in a row."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(scene.source) as src:
                rows, first_loss = _tile(scene, src, settings)
    except InputError as exc:
        return SceneResult(scene, [], exc.message, time.perf_counter() - start)
    lost = sum(row["reason"] == UNREADABLE for row in rows)
    note = f"{scene.source}: {lost} of {len(rows)} windows unreadable, left out ({first_loss})" if lost else None
    return SceneResult(scene, rows, None, time.perf_counter() - start, note)


def _resampled(src: Any, gsd_m: float | None, target: float | None) -> tuple[Any, float | None]:
    """The source at the target GSD (geo/resample.py), or the source itself when no resampling applies."""
    if target is None or gsd_m is None or math.isclose(gsd_m / target, 1.0, rel_tol=1e-6):
        return src, gsd_m
    return resampled(src, gsd_m / target), target


def _tile(scene: Scene, src: Any, st: TileSettings) -> tuple[list[dict[str, Any]], str | None]:
    """The scene's rows and the first window read error (None when every window read)."""
    info = info_of(src, scene.source)
    check_real(info)
    bands = list(st.bands) if st.bands else list(range(1, info.count + 1))
    if max(bands) > info.count:
        raise ConfigError(f"{scene.source}: has {info.count} band(s); --bands asks for band {max(bands)}")
    georef = info.is_georeferenced
    reader, gsd = _resampled(src, info.gsd_m if georef else None, st.gsd if georef else None)
    try:
        ext = chip_extension(st.fmt, georef, scene.source)
        check_writable(ext, info.dtype, len(bands))
        crs = reader.crs if georef else None
        crs_text = crs.to_string() if crs is not None else None
        stride = st.chip_size - st.overlap_px
        width, height = min(st.chip_size, reader.width), min(st.chip_size, reader.height)
        starts = itertools.product(
            grid_starts(reader.height, st.chip_size, stride), grid_starts(reader.width, st.chip_size, stride)
        )
        pad = reader.nodata if reader.nodata is not None else 0
        corpus = Path(st.corpus)
        rows, windows = [], []
        first_loss = None
        for i, (r, c) in enumerate(starts):
            window = Window(c, r, width, height)
            row = _chip_row(scene, i, window, crs_text, gsd)
            rows.append(row)
            windows.append(window)
            try:
                data, valid = read_window(reader, window, bands, pad_value=pad)
            except InputError as exc:
                row["reason"] = UNREADABLE
                first_loss = first_loss or exc.problem
                continue
            row["nodata_fraction"] = float(1.0 - valid.mean())
            if row["nodata_fraction"] > st.max_nodata:
                row["reason"] = NODATA
            else:
                row["std"] = float(data[:, valid].std(dtype=np.float64)) if valid.any() else 0.0
                if row["std"] < st.min_std:
                    row["reason"] = LOW_STD
                else:
                    rel = chip_relpath(scene.key, scene.source, r, c, ext)
                    write_chip(corpus / rel, data, ext, crs, reader.window_transform(window), reader.nodata)
                    row.update(path=rel, phash=to_hex(phash(data)), reason=CANDIDATE)
        if rows and all(row["reason"] == UNREADABLE for row in rows):
            raise InputError(f"no window of the scene can be read ({first_loss})", scene.source)
        for row, geom in zip(rows, footprints(windows, reader.transform, crs)):
            row["geometry"] = geom
        return rows, first_loss
    finally:
        if reader is not src:
            reader.close()


def _chip_row(scene: Scene, index: int, window: Window, crs: str | None, gsd: float | None) -> dict[str, Any]:
    return {
        "path": None,
        "mask_path": None,
        "source": scene.recorded,
        "scene_index": scene.index,
        "scene_id": scene.id,
        "chip_index": index,
        "col": int(window.col_off),
        "row": int(window.row_off),
        "width": int(window.width),
        "height": int(window.height),
        "crs": crs,
        "gsd": gsd,
        "phash": None,
        "std": None,
        "kept": False,
        "reason": None,
        "duplicate_of": None,
    }
