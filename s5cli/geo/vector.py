"""Polygons in the scene CRS: pixel -> map coordinates, true areas in m², attributes, GeoPackage layers.

Areas: in a projected CRS the planar area (pixel area x |det(transform)| x the unit's metres squared,
exact for pixel polygons); in a geographic CRS the polygons are projected to a Lambert azimuthal
equal-area CRS centred on the scene (same datum), so `area_m2` is in true square metres there too;
without a CRS (a plain PNG) the coordinates are pixels and `area_m2` is NaN.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion
from rasterio.crs import CRS
from rasterio.transform import Affine

from s5cli.geo.polygonize import Piece

SEGMENT_FIELDS = ("class_id", "class_name", "area_m2", "mean_confidence", "pixels")
# Table name prefixes that SQLite (sqlite_), the GeoPackage standard (gpkg_) and its spatial indexes (rtree_)
# keep for themselves: a layer of that name would clash with, or be refused as, a system table.
RESERVED_PREFIXES = ("gpkg_", "sqlite_", "rtree_")
DETECTION_FIELDS = ("class_id", "class_name", "score", "area_m2")


def layer_name(scene: str, taken: Sequence[str] = ()) -> str:
    """A GeoPackage layer name from a scene path: its stem, letters/digits/_ only, unique among `taken`.

    Names that would start with a digit or a reserved prefix (gpkg_, sqlite_, rtree_) get `scene_` in front.
    """
    stem = os.path.basename(str(scene).rstrip("/"))
    for suffix in (".tif", ".tiff", ".vrt", ".png", ".jpg", ".jpeg", ".jp2", ".img"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "scene"
    if name[0].isdigit() or name.lower().startswith(RESERVED_PREFIXES):
        name = f"scene_{name}"
    unique, n = name, 2
    while unique.lower() in {t.lower() for t in taken}:
        unique, n = f"{name}_{n}", n + 1
    return unique


def pixel_to_map(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Apply the full affine (rotation and shear included) to geometries in (col, row) pixel coordinates."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def _apply(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(geoms, _apply)


class AreaCalculator:
    """True areas in m² for polygons of one scene (see the module docstring for the method)."""

    def __init__(self, transform: Affine, crs: CRS | None, width: int, height: int) -> None:
        self.transform = transform
        self.mode = "pixel" if crs is None else ("geographic" if crs.is_geographic else "projected")
        self.pixel_m2 = float("nan")
        self._to_equal_area: Transformer | None = None
        if self.mode == "projected":
            unit = crs.linear_units_factor[1] if crs is not None else 1.0
            self.pixel_m2 = abs(transform.a * transform.e - transform.b * transform.d) * unit * unit
        elif self.mode == "geographic" and crs is not None:
            lon, lat = transform * (width / 2, height / 2)
            geodetic = ProjCRS.from_wkt(crs.to_wkt()).geodetic_crs
            laea = ProjectedCRS(LambertAzimuthalEqualAreaConversion(lat, lon), geodetic_crs=geodetic)
            self._to_equal_area = Transformer.from_crs(geodetic, laea, always_xy=True)
            # Edges along pixel rows/cols are straight in degrees, not in the projection: densify.
            self._segment = 64 * float(np.hypot(transform.a, transform.d))

    def areas(self, pixel_geoms: np.ndarray, pixel_areas: np.ndarray, map_geoms: np.ndarray) -> np.ndarray:
        """Areas in m² (NaN in pixel coordinates)."""
        if self.mode == "projected":
            return np.asarray(pixel_areas, dtype=np.float64) * self.pixel_m2
        if self.mode == "pixel" or self._to_equal_area is None or len(map_geoms) == 0:
            return np.full(len(pixel_areas), np.nan)
        dense = shapely.segmentize(map_geoms, self._segment)
        fwd = self._to_equal_area

        def _project(xy: np.ndarray) -> np.ndarray:
            x, y = fwd.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return shapely.area(shapely.transform(dense, _project))


def segment_frame(
    pieces: list[Piece],
    classes: Sequence[str],
    transform: Affine,
    crs: CRS | None,
    areas: AreaCalculator,
    simplify: float = 0.0,
    min_area: float = 0.0,
) -> gpd.GeoDataFrame:
    """Polygons (pixel coordinates) -> a GeoDataFrame in the scene CRS with the segmentation attributes."""
    pix = np.asarray([p.geom for p in pieces], dtype=object)
    pixels = np.asarray([p.pixels for p in pieces], dtype=np.float64)
    geoms = pixel_to_map(pix, transform) if len(pix) else pix
    area = areas.areas(pix, pixels, geoms)
    keep = ~(area < min_area) if min_area > 0 else np.ones(len(pieces), dtype=bool)
    if simplify > 0 and len(geoms):
        # Per polygon (Douglas-Peucker keeping each polygon valid); neighbours may part by < tolerance.
        geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
    ids = np.asarray([p.class_id for p in pieces], dtype=np.int16)
    frame = gpd.GeoDataFrame(
        {
            "class_id": ids[keep],
            "class_name": [classes[i] if 0 <= i < len(classes) else str(i) for i in ids[keep]],
            "area_m2": area[keep],
            "mean_confidence": np.asarray([p.mean_conf for p in pieces], dtype=np.float64)[keep],
            "pixels": pixels[keep].astype(np.int64),
        },
        geometry=gpd.GeoSeries(geoms[keep] if len(geoms) else [], crs=crs),
    )
    return frame


def detection_frame(
    polygons: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    transform: Affine,
    crs: CRS | None,
    areas: AreaCalculator,
    min_area: float = 0.0,
) -> gpd.GeoDataFrame:
    """Oriented boxes (polygons in pixel coordinates) -> a GeoDataFrame in the scene CRS with class and score."""
    geoms = pixel_to_map(polygons, transform) if len(polygons) else polygons
    area = areas.areas(polygons, shapely.area(polygons) if len(polygons) else np.zeros(0), geoms)
    keep = ~(area < min_area) if min_area > 0 else np.ones(len(polygons), dtype=bool)
    ids = np.asarray(labels, dtype=np.int16)
    return gpd.GeoDataFrame(
        {
            "class_id": ids[keep],
            "class_name": [classes[i] if 0 <= i < len(classes) else str(i) for i in ids[keep]],
            "score": np.asarray(scores, dtype=np.float64)[keep],
            "area_m2": area[keep],
        },
        geometry=gpd.GeoSeries(geoms[keep] if len(geoms) else [], crs=crs),
    )


class LayerWriter:
    """Appends GeoDataFrames to one GeoPackage layer (pyogrio); the layer exists even when empty."""

    def __init__(self, path: str | os.PathLike[str], layer: str, crs: CRS | None, fields: Sequence[str]) -> None:
        self.path, self.layer, self.crs, self.fields = str(path), layer, crs, tuple(fields)
        self.count = 0
        self._created = False

    def write(self, frame: gpd.GeoDataFrame) -> None:
        """Append features (no-op for an empty frame once the layer exists)."""
        if len(frame) == 0 and self._created:
            return
        append = self._created or (os.path.exists(self.path) and self.layer in _layers(self.path))
        pyogrio.write_dataframe(
            frame,
            self.path,
            layer=self.layer,
            driver="GPKG",
            append=append,
            geometry_type="Polygon",
            promote_to_multi=False,
        )
        self._created = True
        self.count += len(frame)

    def close(self) -> None:
        """Create the layer with its fields if nothing was written."""
        if not self._created:
            self.write(empty_frame(self.fields, self.crs))


def _layers(path: str) -> set[str]:
    return {str(name) for name, _ in pyogrio.list_layers(path)}


def empty_frame(fields: Sequence[str], crs: CRS | None) -> gpd.GeoDataFrame:
    """A typed empty frame so that an empty layer still declares its attribute schema."""
    dtypes = {"class_id": np.int16, "class_name": object, "pixels": np.int64}  # the rest are float64
    data = {f: np.asarray([], dtype=dtypes.get(f, np.float64)) for f in fields}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=crs))
