"""Your own GIS data: windows of GeoTIFF scenes with vector labels, as a dataset YAML describes them.

The YAML and the record it makes: s5cli/datasets/custom_config.py. Labels are reprojected to each
raster's CRS once and rasterised per window on the fly (``rasterio.features.rasterize``); pixels
outside the raster or nodata are IGNORE. For detection each feature becomes the corners of its
minimum rotated rectangle in pixel coordinates. Splits come from each scene's ``split``
(``split_by: scene``) or from a seeded fraction of the windows (``split_by: fraction``; overlapping
windows then leak across splits, so prefer whole scenes).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from s5cli.datasets.base import Sample, SampleDataset, Transform, WindowTuple, check_split, to_unit_float
from s5cli.datasets.custom_config import SPLITS, CustomConfig, custom_info, read_custom_config, scene_entries
from s5cli.datasets.info import IGNORE
from s5cli.datasets.polygons import clip_to_window, corners_of
from s5cli.errors import InputError
from s5cli.geo.raster import open_raster, read_window
from s5cli.geo.tiles import window_grid


def _read_labels(path: Path, cfg: CustomConfig) -> Any:
    import geopandas as gpd

    if not path.exists():
        raise InputError("no such label file", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = gpd.read_file(path, layer=cfg.layer) if cfg.layer else gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"not a readable vector file ({str(exc).splitlines()[0]})", path) from None
    if frame.crs is None:
        raise InputError("the label file has no CRS, so it cannot be matched to the rasters", path)
    if cfg.class_column not in frame.columns:
        cols = ", ".join(c for c in frame.columns if c != "geometry")
        raise InputError(f"no column '{cfg.class_column}'; columns: {cols}", path)
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty & frame[cfg.class_column].notna()]
    # Classes mapped by name (exact, then case-insensitive), never by position.
    lower = {c.lower(): i for i, c in enumerate(cfg.classes)}
    names = frame[cfg.class_column].astype(str).str.strip()
    index = names.map(lambda n: cfg.classes.index(n) if n in cfg.classes else lower.get(n.lower(), -1))
    unknown = sorted(set(names[index < 0]))
    if unknown:
        raise InputError(
            f"class values not in the YAML's classes: {', '.join(unknown[:5])}; classes: {', '.join(cfg.classes)}",
            path,
        )
    frame = frame.assign(_class=index.astype(np.int64))
    return frame[["_class", "geometry"]].reset_index(drop=True)


class CustomDataset(SampleDataset):
    """Windows of your GeoTIFF scenes with labels rasterised (segmentation) or boxed (detection) on the fly."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
    ) -> None:
        super().__init__(transforms)
        yaml_path = Path(root)
        if yaml_path.is_dir():
            raise InputError("is a folder; a custom dataset is given by its YAML file", yaml_path)
        self.cfg = cfg = read_custom_config(yaml_path)
        self.info = custom_info(yaml_path)
        self.name = cfg.name
        self.split = check_split(cfg.name, split, SPLITS)
        base = yaml_path.parent
        self.scenes: list[Path] = []
        windows: list[tuple[int, WindowTuple, str]] = []
        for s, (path, entry) in enumerate(scene_entries(cfg, yaml_path)):
            with open_raster(path) as src:
                if src.crs is None:
                    raise InputError("has no CRS, so the vector labels cannot be placed on it", path)
                grid = window_grid(src.width, src.height, cfg.tile_size, cfg.overlap_px)
            self.scenes.append(path)
            size = cfg.tile_size
            windows.extend((s, (int(w.col_off), int(w.row_off), size, size), entry.split) for w in grid)
        if cfg.split_by == "fraction":
            order = np.random.default_rng(cfg.seed).permutation(len(windows))
            n_val = round(len(windows) * cfg.val_fraction)
            n_test = round(len(windows) * cfg.test_fraction)
            assigned = {int(k): "val" for k in order[:n_val]} | {int(k): "test" for k in order[n_val : n_val + n_test]}
            windows = [(s, w, assigned.get(k, "train")) for k, (s, w, _) in enumerate(windows)]
        self.index = [(s, w) for s, w, part in windows if part == self.split]
        self.labels = _read_labels(base / cfg.labels if not Path(cfg.labels).is_absolute() else Path(cfg.labels), cfg)
        self._by_crs: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _labels_in(self, crs: Any) -> Any:
        key = crs.to_wkt()
        if key not in self._by_crs:
            self._by_crs[key] = self.labels.to_crs(crs)  # reprojected once per raster CRS
        return self._by_crs[key]

    def _load(self, index: int) -> Sample:
        s, window = self.index[index]
        path = self.scenes[s]
        win = Window(*window)
        with open_raster(path) as src:
            data, valid = read_window(src, win, self.cfg.bands)
            transform = window_transform(win, src.transform)
            frame = self._labels_in(src.crs)
            from shapely.geometry import box

            hits = frame.sindex.query(box(*window_bounds(win, src.transform)), predicate="intersects")
            feats = frame.iloc[np.sort(hits)]
        sample: Sample = {
            "image": to_unit_float(data, self.cfg.scale),
            "dataset": self.name,
            "path": str(path),
            "window": window,
        }
        h, w = valid.shape
        if self.cfg.task == "segmentation":
            fill = IGNORE if self.cfg.background is None else self.cfg.classes.index(self.cfg.background)
            shapes = list(zip(feats.geometry, feats["_class"].astype(int)))
            mask = np.full((h, w), fill, np.uint8)
            if shapes:
                mask = rasterize(
                    shapes, (h, w), fill=fill, transform=transform, dtype="uint8", all_touched=self.cfg.all_touched
                )
            mask = mask.astype(np.int64)
            mask[~valid] = IGNORE
            sample["mask"] = torch.from_numpy(mask)
        else:
            sample.update(self._boxes(feats, transform, w, h))
        return sample

    def _boxes(self, feats: Any, transform: Any, width: int, height: int) -> dict[str, torch.Tensor]:
        from shapely import affinity

        inv = ~transform
        params = [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff]
        corners = [corners_of(affinity.affine_transform(g, params)) for g in feats.geometry]
        polys = np.asarray(corners, np.float64).reshape(-1, 8)
        clipped, keep, cut = clip_to_window(polys, (0, 0, width, height), self.cfg.min_iof)
        labels = feats["_class"].to_numpy(np.int64)[keep]
        return {
            "polygons": torch.from_numpy(clipped),
            "labels": torch.from_numpy(labels),
            "difficult": torch.zeros(len(keep), dtype=torch.bool),
            "truncated": torch.from_numpy(cut),
        }
