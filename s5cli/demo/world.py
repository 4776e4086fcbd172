"""A synthetic georeferenced world: a UTM scene with buildings, roads, trees and water.

Geometries are drawn first (shapely, in map coordinates), then burnt into a label raster and
rendered into an RGB image with texture, so the vector labels, the label raster and the image
agree exactly, as they would for a real annotated orthophoto.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import Affine, from_origin
from shapely.affinity import rotate
from shapely.geometry import LineString, Point, Polygon, box

CLASSES = ["background", "building", "road", "tree", "water"]
PALETTE = [(200, 190, 160), (220, 40, 40), (90, 90, 90), (30, 140, 50), (40, 90, 200)]
# Mean colour of each class in the rendered image; background is dry grass.
_COLOURS = np.array([(165, 160, 110), (185, 105, 90), (120, 118, 115), (45, 95, 45), (50, 80, 120)], np.float32)
_BURN_ORDER = ["water", "road", "tree", "building"]  # later classes are drawn on top
CRS_UTM = CRS.from_epsg(32633)


@dataclass(frozen=True)
class World:
    """Paths of one generated world."""

    train_scene: Path
    val_scene: Path
    labels_raster: Path  # label raster of the validation scene
    labels_vector: Path  # GeoPackage: layer "landcover" (every class), layer "buildings"
    unlabeled: list[Path]


def _geometries(rng: np.random.Generator, width_m: float, height_m: float, x0: float, y0: float) -> list[dict]:
    feats: list[dict] = []
    # Water: an irregular lake.
    cx, cy = x0 + rng.uniform(0.2, 0.8) * width_m, y0 - rng.uniform(0.2, 0.8) * height_m
    angles = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    radii = rng.uniform(0.08, 0.14) * min(width_m, height_m) * (1 + 0.25 * np.sin(3 * angles + rng.uniform(0, 6)))
    lake = Polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)])
    feats.append({"class_name": "water", "geometry": lake})
    # Roads: a few straight streets crossing the scene.
    for i in range(3):
        if i % 2 == 0:
            y = y0 - rng.uniform(0.15, 0.85) * height_m
            line = LineString([(x0, y + rng.uniform(-8, 8)), (x0 + width_m, y + rng.uniform(-8, 8))])
        else:
            x = x0 + rng.uniform(0.15, 0.85) * width_m
            line = LineString([(x + rng.uniform(-8, 8), y0), (x + rng.uniform(-8, 8), y0 - height_m)])
        feats.append({"class_name": "road", "geometry": line.buffer(rng.uniform(3.0, 5.0), cap_style="flat")})
    roads = [f["geometry"] for f in feats if f["class_name"] == "road"]
    occupied = [lake.buffer(2), *roads]
    # Buildings: rotated rectangles that avoid roads and water.
    for _ in range(400):
        if sum(f["class_name"] == "building" for f in feats) >= 18:
            break
        bx, by = x0 + rng.uniform(0.05, 0.95) * width_m, y0 - rng.uniform(0.05, 0.95) * height_m
        w, h = rng.uniform(8, 18), rng.uniform(8, 14)
        shape = rotate(box(bx - w / 2, by - h / 2, bx + w / 2, by + h / 2), rng.uniform(0, 90), origin="center")
        if any(shape.buffer(2).intersects(o) for o in occupied):
            continue
        occupied.append(shape)
        feats.append({"class_name": "building", "geometry": shape})
    # Trees: round crowns in clusters.
    for _ in range(6):
        tx, ty = x0 + rng.uniform(0.05, 0.95) * width_m, y0 - rng.uniform(0.05, 0.95) * height_m
        for _ in range(int(rng.integers(3, 8))):
            crown = Point(tx + rng.normal(0, 8), ty + rng.normal(0, 8)).buffer(rng.uniform(2.5, 4.5))
            if any(crown.intersects(o) for o in occupied[:4]):
                continue
            feats.append({"class_name": "tree", "geometry": crown})
    return feats


def _render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = labels.shape
    image = _COLOURS[labels].transpose(2, 0, 1).copy()  # (3, H, W)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Low-frequency illumination plus per-pixel texture, stronger on vegetation.
    shade = 1 + 0.08 * np.sin(xx / 37.0 + rng.uniform(0, 6)) * np.cos(yy / 29.0 + rng.uniform(0, 6))
    texture = rng.normal(0, 1, (3, h, w)).astype(np.float32)
    strength = np.array([9, 6, 4, 14, 3], np.float32)[labels]
    image = image * shade + texture * strength
    return np.clip(image, 0, 255).astype(np.uint8)


def make_scene(
    path: Path, size: int, gsd: float, seed: int, labels_path: Path | None = None
) -> tuple[np.ndarray, Affine, list[dict]]:
    """Write one RGB GeoTIFF scene (and optionally its label raster); return labels, transform, features."""
    rng = np.random.default_rng(seed)
    x0, y0 = 500_000.0 + 2_000.0 * seed, 5_800_000.0
    transform = from_origin(x0, y0, gsd, gsd)
    feats = _geometries(rng, size * gsd, size * gsd, x0, y0)
    labels = np.zeros((size, size), np.uint8)
    for name in _BURN_ORDER:
        shapes = [(f["geometry"], CLASSES.index(name)) for f in feats if f["class_name"] == name]
        if shapes:
            rasterize(shapes, out=labels, transform=transform)
    image = _render(labels, rng)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS_UTM,
        "transform": transform,
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
        "compress": "deflate",
        "photometric": "RGB",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image)
    if labels_path is not None:
        lab_profile = {**profile, "count": 1, "nodata": 255, "photometric": "MINISBLACK"}
        with rasterio.open(labels_path, "w", **lab_profile) as dst:
            dst.write(labels[None])
            dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(PALETTE)})
    return labels, transform, feats


def build_world(folder: Path, size: int = 512, gsd: float = 0.5, n_unlabeled: int = 3, seed: int = 0) -> World:
    """Generate labeled train and validation scenes, their vector labels, and unlabeled scenes."""
    folder.mkdir(parents=True, exist_ok=True)
    train, val, labels_raster = folder / "scene_train.tif", folder / "scene_val.tif", folder / "scene_val_labels.tif"
    _, _, feats = make_scene(train, size, gsd, seed)
    _, _, val_feats = make_scene(val, size, gsd, seed + 1, labels_raster)
    vector = folder / "labels.gpkg"
    gdf = gpd.GeoDataFrame(feats + val_feats, geometry="geometry", crs=CRS_UTM.to_string())
    gdf.to_file(vector, layer="landcover", driver="GPKG", engine="pyogrio")
    buildings = gdf[gdf["class_name"] == "building"]
    buildings.to_file(vector, layer="buildings", driver="GPKG", engine="pyogrio")
    unlabeled_dir = folder / "unlabeled"
    unlabeled_dir.mkdir(exist_ok=True)
    unlabeled = []
    for k in range(n_unlabeled):
        path = unlabeled_dir / f"scene_{k + 1:02d}.tif"
        make_scene(path, size, gsd, seed + 2 + k)
        unlabeled.append(path)
    return World(train, val, labels_raster, vector, unlabeled)
