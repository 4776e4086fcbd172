"""Helpers shared by the fake-data generators (data.py in each folder): seeded pixels and writers.

Images are smooth (blobs and stripes) so that deflate/PNG keep the committed files tiny; labels are
blocky class maps. Nothing here is real data.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

UTM33 = CRS.from_epsg(32633)


def smooth_image(height: int, width: int, bands: int, seed: int) -> np.ndarray:
    """(bands, H, W) uint8 with smooth structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.zeros((bands, height, width), np.float32)
    for b in range(bands):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(6, 16)
        out[b] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        out[b] += 0.3 * np.sin(xx / rng.uniform(3, 8) + b)
    out -= out.min(axis=(1, 2), keepdims=True)
    out /= np.maximum(out.max(axis=(1, 2), keepdims=True), 1e-6)
    return np.round(20 + out * 215).astype(np.uint8)


def blocky_classes(height: int, width: int, classes: list[int], seed: int, block: int = 8) -> np.ndarray:
    """(H, W) int map of square blocks drawn from ``classes``; each class appears at least once."""
    rng = np.random.default_rng(seed)
    gh, gw = -(-height // block), -(-width // block)
    grid = rng.choice(classes, size=(gh, gw))
    flat = grid.reshape(-1)
    flat[: len(classes)] = rng.permutation(classes)[: flat.size]
    return np.kron(grid, np.ones((block, block), int))[:height, :width]


def boundaries(classes: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another class (the eroded-label rim)."""
    edge = np.zeros(classes.shape, bool)
    edge[:, :-1] |= classes[:, :-1] != classes[:, 1:]
    edge[:-1, :] |= classes[:-1, :] != classes[1:, :]
    return edge


def paint(classes: np.ndarray, palette: list[tuple[int, int, int]]) -> np.ndarray:
    """(3, H, W) uint8 colour label from a class map."""
    return np.asarray(palette, np.uint8)[classes].transpose(2, 0, 1).copy()


def write_tif(path: Path, data: np.ndarray, crs: CRS | None = None, transform: Affine | None = None) -> None:
    """Write (C, H, W) or (H, W) as a deflate GeoTIFF (no CRS when crs is None)."""
    arr = data[None] if data.ndim == 2 else data
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": str(arr.dtype),
        "compress": "deflate",
        "predictor": 2,
    }
    if crs is not None:
        profile.update(crs=crs, transform=transform or from_origin(500_000, 5_800_000, 0.05, 0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for the CRS-less ISPRS labels
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)


def write_png(path: Path, data: np.ndarray) -> None:
    """Write (3, H, W) as RGB PNG or (H, W) as grayscale PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(data.transpose(1, 2, 0) if data.ndim == 3 else data)
    img.save(path, optimize=True)


def write_jpg(path: Path, data: np.ndarray) -> None:
    """Write (3, H, W) as a JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.transpose(1, 2, 0)).save(path, quality=85)


def write_text(path: Path, text: str) -> None:
    """Write a text file (UTF-8, '\\n' line ends)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def regenerate(folder: Path, create: Callable[[Path], None]) -> None:
    """Delete what a generator wrote next to itself (everything but data.py) and write it again."""
    for p in folder.iterdir():
        if p.name in ("data.py", "__pycache__"):
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    create(folder)
