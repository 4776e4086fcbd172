"""Polygons in the scene CRS: pixel -> map coordinates, true areas in m², attributes, GeoPackage layers.

Areas: in a projected CRS the planar area (pixel area x |det(transform)| x the unit's metres squared,
exact for pixel polygons); in a geographic CRS the polygons are projected to a Lambert azimuthal
equal-area CRS centred on the scene (same datum), so `area_m2` is in true square metres there too;
without a CRS (a plain PNG) the coordinates are pixels and `area_m2` is NaN.

Polygons are appended block by block to a GeoPackage layer; the formats users hand on (GeoJSON,
FlatGeobuf, GeoParquet, Shapefile: one layer a file, chosen by the output's extension) are copied from
that layer batch by batch (`export_layer`), so no format holds a scene's polygons in memory.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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

from s5cli.errors import InputError
from s5cli.geo.polygonize import Piece
from s5cli.geo.raster import RASTER_SUFFIXES

SEGMENT_FIELDS = ("class_id", "class_name", "area_m2", "mean_confidence", "pixels")
# Table name prefixes that SQLite (sqlite_), the GeoPackage standard (gpkg_) and its spatial indexes (rtree_)
# keep for themselves: a layer of that name would clash with, or be refused as, a system table.
RESERVED_PREFIXES = ("gpkg_", "sqlite_", "rtree_")
DETECTION_FIELDS = ("class_id", "class_name", "score", "area_m2", "clipped")
SHAPEFILE_NAMES = {"mean_confidence": "mean_conf"}  # dBase field names hold 10 characters
EXPORT_BATCH = 65_536  # features per batch when copying a layer to another format


@dataclass(frozen=True)
class VectorFormat:
    """A vector output format: its OGR driver, its file suffixes and whether one file holds several layers."""

    name: str
    driver: str  # OGR driver ("Parquet" is written with pyarrow as GeoParquet 1.0)
    suffixes: tuple[str, ...]  # the main file's suffix first, then the files that travel with it
    multi_layer: bool = False


VECTOR_FORMATS = {
    ".gpkg": VectorFormat("GeoPackage", "GPKG", (".gpkg",), multi_layer=True),
    ".geojson": VectorFormat("GeoJSON", "GeoJSON", (".geojson",)),
    ".json": VectorFormat("GeoJSON", "GeoJSON", (".json",)),
    ".fgb": VectorFormat("FlatGeobuf", "FlatGeobuf", (".fgb",)),
    ".parquet": VectorFormat("GeoParquet", "Parquet", (".parquet",)),
    ".shp": VectorFormat("Shapefile", "ESRI Shapefile", (".shp", ".shx", ".dbf", ".prj", ".cpg")),
}


def vector_format(path: str | os.PathLike[str]) -> VectorFormat:
    """The format an output path names by its extension; an unknown one is an InputError listing them."""
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_FORMATS:
        known = ", ".join(VECTOR_FORMATS)
        raise InputError(f"unknown vector format '{suffix or '(no extension)'}'; use one of {known}", path)
    return VECTOR_FORMATS[suffix]


def vector_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every file a vector output consists of (a Shapefile is five)."""
    return [Path(path).with_suffix(s) for s in vector_format(path).suffixes]


def layer_name(scene: str, taken: Sequence[str] = ()) -> str:
    """A GeoPackage layer name from a scene path: its stem, letters/digits/_ only, unique among `taken`.

    Names that would start with a digit or a reserved prefix (gpkg_, sqlite_, rtree_) get `scene_` in front.
    """
    stem = os.path.basename(str(scene).rstrip("/"))
    for suffix in RASTER_SUFFIXES:
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


def row_pixel_areas(transform: Affine, crs: CRS | None, width: int, height: int) -> np.ndarray:
    """(height,) m² of one pixel in each row: constant in a projected CRS, geodesic per row in a geographic one.

    Geographic pixels shrink towards the poles; each row's pixel at the centre column is measured on the
    CRS's ellipsoid (exact for north-up grids). NaN without a CRS.
    """
    if crs is None:
        return np.full(height, np.nan)
    if not crs.is_geographic:
        unit = crs.linear_units_factor[1] if crs.is_projected else 1.0
        return np.full(height, abs(transform.a * transform.e - transform.b * transform.d) * unit * unit)
    geod = ProjCRS.from_wkt(crs.to_wkt()).get_geod()
    if geod is None:
        return np.full(height, np.nan)
    col = width / 2
    rows = np.arange(height, dtype=np.float64)
    corners = [(col, rows), (col + 1, rows), (col + 1, rows + 1), (col, rows + 1)]
    lons = np.stack([transform.a * c + transform.b * r + transform.c for c, r in corners], axis=1)
    lats = np.stack([transform.d * c + transform.e * r + transform.f for c, r in corners], axis=1)
    return np.asarray([abs(geod.polygon_area_perimeter(lo, la)[0]) for lo, la in zip(lons, lats)])


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
    extent: tuple[int, int] | None = None,
) -> gpd.GeoDataFrame:
    """Oriented boxes (polygons in pixel coordinates) -> a GeoDataFrame in the scene CRS with class and score.

    With `extent` (width, height) boxes reaching past the scene are cut at its edge and flagged `clipped`.
    """
    clipped = np.zeros(len(polygons), dtype=bool)
    if extent is not None and len(polygons):
        scene = shapely.box(0, 0, extent[0], extent[1])
        clipped = ~shapely.covered_by(polygons, scene)
        if clipped.any():
            polygons = polygons.copy()
            polygons[clipped] = shapely.intersection(polygons[clipped], scene)
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
            "clipped": clipped[keep],
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
        with warnings.catch_warnings():  # a scene without a CRS was announced once, in our words
            warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
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
    dtypes = {"class_id": np.int16, "class_name": object, "pixels": np.int64, "clipped": bool}  # others float64
    data = {f: np.asarray([], dtype=dtypes.get(f, np.float64)) for f in fields}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=crs))


def export_layer(source: str | os.PathLike[str], layer: str, dest: str | os.PathLike[str]) -> None:
    """Copy a GeoPackage layer into a new single-layer file in `dest`'s format, batch by batch."""
    fmt = vector_format(dest)
    with pyogrio.open_arrow(source, layer=layer, use_pyarrow=True, batch_size=EXPORT_BATCH) as (meta, reader):
        geometry = meta["geometry_name"] or "wkb_geometry"
        if fmt.driver == "Parquet":
            _write_geoparquet(reader, geometry, meta["crs"], Path(dest))
            return
        if fmt.driver == "ESRI Shapefile":
            reader = _renamed(reader, SHAPEFILE_NAMES)
        pyogrio.write_arrow(
            reader,
            str(dest),
            layer=Path(dest).stem,
            driver=fmt.driver,
            geometry_name=geometry,
            geometry_type=meta["geometry_type"] or "Polygon",
            crs=meta["crs"],
        )


def _renamed(reader: object, names: dict[str, str]) -> object:
    """The same record batches with some columns renamed."""
    import pyarrow as pa

    schema = reader.schema  # type: ignore[attr-defined]
    fields = [f.with_name(names.get(f.name, f.name)) for f in schema]
    new = pa.schema(fields, metadata=schema.metadata)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:  # type: ignore[attr-defined]
            yield pa.RecordBatch.from_arrays(batch.columns, schema=new)

    return pa.RecordBatchReader.from_batches(new, batches())


def _write_geoparquet(reader: object, geometry: str, crs: str | None, dest: Path) -> None:
    """Record batches with a WKB column -> a GeoParquet 1.0 file (column `geometry`, the layer's CRS)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = reader.schema  # type: ignore[attr-defined]
    fields = [pa.field("geometry", pa.binary()) if f.name == geometry else f for f in schema]
    column = {
        "encoding": "WKB",
        "geometry_types": ["Polygon"],
        "crs": ProjCRS.from_user_input(crs).to_json_dict() if crs else None,  # null: unknown (not CRS84)
    }
    geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": column}}
    out_schema = pa.schema(fields, metadata={b"geo": json.dumps(geo).encode()})
    with pq.ParquetWriter(str(dest), out_schema) as writer:
        for batch in reader:  # type: ignore[attr-defined]
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=out_schema))
