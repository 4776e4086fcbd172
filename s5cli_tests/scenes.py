"""Small georeferenced scenes and bad files, generated on the fly for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

UTM33 = CRS.from_epsg(32633)


def scene_array(width: int, height: int, bands: int, dtype: str, seed: int = 0) -> np.ndarray:
    """A smooth, structured image (blobs and stripes) so models and filters see real content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.zeros((bands, height, width), np.float32)
    for b in range(bands):
        for _ in range(4):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(4, max(6, min(width, height) / 3))
            base[b] += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        base[b] += 0.3 * np.sin(xx / rng.uniform(3, 9)) * np.cos(yy / rng.uniform(3, 9))
    base -= base.min()
    base /= max(float(base.max()), 1e-6)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    if info is None:
        return base.astype(dtype)
    top = 255 if info.max == 255 else 4000  # 16-bit imagery rarely fills its range
    return (1 + base * (top - 1)).astype(dtype)


def make_scene(
    path: Path,
    width: int = 96,
    height: int = 80,
    bands: int = 3,
    dtype: str = "uint8",
    crs: CRS | None = UTM33,
    gsd: float = 0.5,
    nodata_border: int = 4,
    seed: int = 0,
) -> Path:
    """Write a GeoTIFF scene in a projected CRS with a nodata border (nodata = 0)."""
    data = scene_array(width, height, bands, dtype, seed)
    if nodata_border:
        data[:, :nodata_border, :] = 0
        data[:, :, :nodata_border] = 0
    transform = from_origin(500_000.0, 5_800_000.0, gsd, gsd)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": dtype,
        "transform": transform,
        "nodata": 0,
        "tiled": width >= 16 and height >= 16,
        "blockxsize": 16,
        "blockysize": 16,
        "compress": "deflate",
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def make_not_a_raster(path: Path) -> Path:
    """A text file with a raster's name."""
    path.write_text("this is not a GeoTIFF\n")
    return path


def make_truncated(path: Path, source: Path) -> Path:
    """The first third of a real GeoTIFF."""
    raw = source.read_bytes()
    path.write_bytes(raw[: max(64, len(raw) // 3)])
    return path


def make_custom_dataset(
    folder: Path, name: str = "mytown", scene_bands: int = 3, scene_dtype: str = "uint8", **yaml_keys
) -> dict:
    """`folder/<name>.yaml`: two scenes (north: train, south: val) with a building and a road; returns the YAML.

    `scene_bands`, `scene_dtype`: of the scenes (e.g. 4 bands of 12-bit values in uint16); `yaml_keys`: more YAML keys.
    """
    import geopandas as gpd
    import yaml
    from shapely.geometry import box

    folder.mkdir(parents=True, exist_ok=True)
    for scene, seed in (("north", 1), ("south", 2)):
        # 96 x 80, EPSG:32633, 0.5 m pixels from (500000, 5800000)
        make_scene(folder / f"{scene}.tif", seed=seed, bands=scene_bands, dtype=scene_dtype)
    x0, y0 = 500_000.0, 5_800_000.0
    shapes = [box(x0 + 5, y0 - 20, x0 + 15, y0 - 5), box(x0 + 20, y0 - 40, x0 + 22, y0)]
    labels = gpd.GeoDataFrame({"kind": ["building", "road"], "geometry": shapes}, crs="EPSG:32633")
    labels.to_file(folder / "labels.geojson", driver="GeoJSON")
    spec = {
        "name": name,
        "classes": ["background", "building", "road"],
        "scenes": [{"path": "north.tif", "split": "train"}, {"path": "south.tif", "split": "val"}],
        "labels": "labels.geojson",
        "class_column": "kind",
        "background": "background",
        "tile_size": 32,
        **yaml_keys,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return spec
