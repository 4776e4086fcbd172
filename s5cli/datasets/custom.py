"""Your own GIS data: windows of GeoTIFF scenes with vector labels, as a dataset YAML describes them.

The YAML and the record it makes: s5cli/datasets/custom_config.py. Labels are reprojected to each
raster's CRS once and rasterised per window on the fly (``rasterio.features.rasterize``); pixels
outside the raster or nodata are IGNORE. For detection each feature becomes the corners of its
minimum rotated rectangle in pixel coordinates. Splits come from each scene's ``split``
(``split_by: scene``) or from a seeded fraction of the scenes' tile cells (``split_by: fraction``: a
window belongs to the cell holding its centre; overlapping windows then leak across splits, so prefer
whole scenes).

Training windows overlap (``overlap``) and the last row and column snap to the scene's edge, so some
pixels lie in several of them. Scoring must count every pixel and every object once, so with
``scoring=True`` (the record's protocol asks for it: `s5 evaluate` and validation) a split is cut into
non-overlapping cells of ``tile_size`` instead (``s5cli.geo.tiles.cell_grid``), each read
through the full window that holds it (the model sees a whole tile) with ``region`` = the cell in
window pixels: labels outside the cell are IGNORE, an object belongs to the cell holding its centre and
is ``difficult`` (neither a hit nor a miss) in the windows of the other cells it reaches into, and the
scorer keeps only the predictions centred in the cell.
"""

from __future__ import annotations

import os
import warnings
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from s5cli.console import warn
from s5cli.datasets.base import Sample, SampleDataset, Transform, WindowTuple, check_split, to_unit_float
from s5cli.datasets.custom_config import (
    SPLITS,
    CustomConfig,
    SceneEntry,
    custom_info,
    read_custom_config,
    scene_entries,
)
from s5cli.datasets.info import IGNORE
from s5cli.datasets.polygons import clip_to_window, corners_of
from s5cli.errors import InputError
from s5cli.geo.files import check_input
from s5cli.geo.raster import open_raster, read_window
from s5cli.geo.tiles import cell_grid, window_around, window_grid

Region = tuple[int, int, int, int]  # a scoring cell in its window's pixels: col0, row0, col1, row1


def _read_labels(path: Path, cfg: CustomConfig) -> Any:
    import geopandas as gpd
    import shapely

    if not path.exists():
        raise InputError("no such label file", path)
    check_input(path, "any")  # a FIFO would block the reader
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
    geoms = np.asarray(frame.geometry.array, dtype=object)
    blank = shapely.is_missing(geoms) | shapely.is_empty(geoms)  # shapely itself: geopandas warns on notna()
    if blank.any():
        warn(f"{path}: {int(blank.sum())} feature(s) with an empty or NULL geometry left out")
    frame = frame[~blank & frame[cfg.class_column].notna().to_numpy()]
    _check_geometry_types(frame, path, cfg)
    _check_coordinates(frame, path)
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


def _check_geometry_types(frame: Any, path: Path, cfg: CustomConfig) -> None:
    """Detection boxes come from polygons: points and lines have no extent to box."""
    if cfg.task != "detection" or not len(frame):
        return
    kinds = frame.geometry.geom_type
    other = kinds[~kinds.isin(("Polygon", "MultiPolygon"))]
    if len(other):
        found = ", ".join(sorted(set(other)))
        raise InputError(
            f"{len(other)} feature(s) are {found}; a detection dataset needs Polygon or MultiPolygon features", path
        )


def _check_coordinates(frame: Any, path: Path) -> None:
    """Coordinates outside longitude/latitude in a geographic CRS: the CRS is wrong (GeoJSON's default WGS84)."""
    if not len(frame) or not frame.crs.is_geographic:
        return
    x0, y0, x1, y1 = frame.total_bounds
    if x0 < -360 or x1 > 360 or y0 < -90 or y1 > 90:
        raise InputError(
            f"coordinates ({x0:.6g}, {y0:.6g}, {x1:.6g}, {y1:.6g}) are not longitude/latitude, but the file says "
            f"{frame.crs.to_string()} (a GeoJSON without a CRS is read as WGS84): save the labels with their CRS",
            path,
        )


class CustomDataset(SampleDataset):
    """Windows of your GeoTIFF scenes with labels rasterised (segmentation) or boxed (detection) on the fly."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transform | None = None,
        scoring: bool = False,
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
        label_path = base / cfg.labels if not Path(cfg.labels).is_absolute() else Path(cfg.labels)
        self.labels = _read_labels(label_path, cfg)
        self._by_crs: dict[str, Any] = {}
        self.scenes: list[Path] = []
        sizes: list[tuple[int, int]] = []
        resolved = scene_entries(cfg, yaml_path)
        entries = [entry for _, entry in resolved]
        for path, _ in resolved:
            with open_raster(path) as src:
                if src.crs is None:
                    raise InputError("has no CRS, so the vector labels cannot be placed on it", path)
                self._check_covered(src, path, label_path)
                sizes.append((src.width, src.height))
            self.scenes.append(path)
        parts = self._cell_splits(entries, sizes)
        self.index: list[tuple[int, WindowTuple, Region | None]] = []
        size = cfg.tile_size
        for s, (width, height) in enumerate(sizes):
            cells = cell_grid(width, height, size)
            if scoring:  # each cell once, seen through the whole window that holds it
                for (c0, r0, c1, r1), part in zip(cells, parts[s]):
                    if part == self.split:
                        col, row = window_around(c0, width, size), window_around(r0, height, size)
                        self.index.append((s, (col, row, size, size), (c0 - col, r0 - row, c1 - col, r1 - row)))
                continue
            per_row = -(-width // size)
            for w in window_grid(width, height, size, cfg.overlap_px):
                col, row = int(w.col_off), int(w.row_off)
                cx, cy = min(col + size // 2, width - 1), min(row + size // 2, height - 1)
                if parts[s][(cy // size) * per_row + cx // size] == self.split:  # the cell holding its centre
                    self.index.append((s, (col, row, size, size), None))

    def _check_covered(self, src: Any, scene: Path, label_path: Path) -> None:
        """Some label lies on the scene: labels elsewhere (a wrong CRS, another area) would train on nothing."""
        from shapely.geometry import box

        frame = self._labels_in(src.crs)
        if not len(frame.sindex.query(box(*src.bounds), predicate="intersects")):
            raise InputError(f"the labels cover none of the scene {scene} (check their CRS and extent)", label_path)

    def _cell_splits(self, entries: list[SceneEntry], sizes: list[tuple[int, int]]) -> list[list[str]]:
        """The split of every tile cell of every scene: the scene's, or a seeded fraction of all cells."""
        cfg = self.cfg
        counts = [len(cell_grid(w, h, cfg.tile_size)) for w, h in sizes]
        if cfg.split_by == "scene":
            return [[entry.split] * n for entry, n in zip(entries, counts)]
        total = sum(counts)
        order = np.random.default_rng(cfg.seed).permutation(total)
        n_val, n_test = round(total * cfg.val_fraction), round(total * cfg.test_fraction)
        flat = ["train"] * total
        for k in order[:n_val]:
            flat[int(k)] = "val"
        for k in order[n_val : n_val + n_test]:
            flat[int(k)] = "test"
        starts = np.cumsum([0, *counts]).tolist()
        return [flat[a:b] for a, b in pairwise(starts)]

    def __len__(self) -> int:
        return len(self.index)

    def _labels_in(self, crs: Any) -> Any:
        key = crs.to_wkt()
        if key not in self._by_crs:
            self._by_crs[key] = self.labels.to_crs(crs)  # reprojected once per raster CRS
        return self._by_crs[key]

    def _load(self, index: int) -> Sample:
        s, window, region = self.index[index]
        path = self.scenes[s]
        win = Window(*window)
        with open_raster(path) as src:
            data, valid = read_window(src, win, self.cfg.bands)
            transform = window_transform(win, src.transform)
            frame = self._labels_in(src.crs)
            scene = (-window[0], -window[1], src.width - window[0], src.height - window[1])  # in window pixels
            from shapely.geometry import box

            hits = frame.sindex.query(box(*window_bounds(win, src.transform)), predicate="intersects")
            feats = frame.iloc[np.sort(hits)]
        sample: Sample = {
            "image": to_unit_float(data, self.cfg.scale),
            "dataset": self.name,
            "path": str(path),
            "window": window,
        }
        if region is not None:
            sample["region"] = region
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
            if region is not None:  # pixels of the other cells are scored in their own windows
                inside = np.zeros_like(valid)
                inside[region[1] : region[3], region[0] : region[2]] = True
                mask[~inside] = IGNORE
            sample["mask"] = torch.from_numpy(mask)
        else:
            sample.update(self._boxes(feats, transform, w, h, region, scene))
        return sample

    def _boxes(
        self, feats: Any, transform: Any, width: int, height: int, region: Region | None, scene: Region
    ) -> dict[str, torch.Tensor]:
        from shapely import affinity

        inv = ~transform
        params = [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff]
        corners = [corners_of(affinity.affine_transform(g, params)) for g in feats.geometry]
        polys = np.asarray(corners, np.float64).reshape(-1, 8)
        if region is None:
            clipped, keep, cut = clip_to_window(polys, (0, 0, width, height), self.cfg.min_iof)
            difficult = np.zeros(len(keep), bool)
        else:  # every object that shows, scored only in the cell holding its centre (inside the scene)
            clipped, keep, cut = clip_to_window(polys, (0, 0, width, height), min_iof=1e-6)
            centre = polys[keep].reshape(-1, 4, 2).mean(axis=1)
            x = np.clip(centre[:, 0], scene[0], scene[2] - 1e-6)
            y = np.clip(centre[:, 1], scene[1], scene[3] - 1e-6)
            own = (x >= region[0]) & (x < region[2]) & (y >= region[1]) & (y < region[3])
            difficult = ~own
        labels = feats["_class"].to_numpy(np.int64)[keep]
        return {
            "polygons": torch.from_numpy(clipped),
            "labels": torch.from_numpy(labels),
            "difficult": torch.from_numpy(difficult),
            "truncated": torch.from_numpy(cut),
        }
