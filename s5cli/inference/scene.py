"""One scene, end to end: open and check -> (resample) -> engine -> scene grid -> sieve -> COG, polygons, quick-look.

The head's input contract (the bands, scale and GSD its training data had) is applied unless an option
overrides it. The minimum mapping unit (`--sieve`) is applied to the class raster itself, so the COG and
the polygons describe one map (`--sieve 0` keeps the raw map). The COG gets its QGIS style and GDAL
class names beside it (geo/styles.py).

Every output of a scene is built under a temporary name beside its destination and renamed only once
the whole scene has succeeded (geo.files.atomic_output), so a failed or killed run leaves nothing at
any destination. Working rasters live in a scratch folder that is always removed.
"""

from __future__ import annotations

import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rasterio.errors import NodataShadowWarning, NotGeoreferencedWarning

from s5cli.console import info, progress_bar, warn
from s5cli.errors import InputError
from s5cli.geo.cog import WORK_CODEC, create_class_raster, write_cog
from s5cli.geo.files import atomic_output
from s5cli.geo.polygonize import polygonize_raster, sieve_raster
from s5cli.geo.raster import Nodata, RasterInfo, check_real, info_of
from s5cli.geo.styles import pam_path, raster_pam, raster_qml, style_path
from s5cli.inference.config import PredictConfig
from s5cli.inference.engine import predict_source
from s5cli.inference.inputs import resolve_bands, tile_and_overlap, working_factor
from s5cli.inference.normalize import make_normaliser
from s5cli.inference.preview import render_preview
from s5cli.inference.sinks import GeoTiffSink, PolygonLayer, PolygonSink, TeeSink, to_scene_grid
from s5cli.inference.sources import RasterioSource, open_rasterio_source, resampled

if TYPE_CHECKING:  # torch stays out of the polygon path
    from s5cli.inference.predictor import Predictor

POLYGON_BLOCK = 2048  # block side for polygonising: a few MB per block, any scene size


@dataclass(frozen=True)
class SceneTargets:
    """Where one scene's outputs go (None: not asked for)."""

    scene: str
    layer: str | None = None
    raster: Path | None = None
    confidence: Path | None = None
    preview: Path | None = None

    @property
    def raster_sidecars(self) -> list[Path]:
        """The files that travel with the class raster: its QGIS style and GDAL's PAM (class names)."""
        return [] if self.raster is None else [style_path(self.raster), pam_path(self.raster)]


@dataclass(frozen=True)
class ScenePlan:
    """A checked scene: its grid, the bands to read and the working-grid factor."""

    targets: SceneTargets
    info: RasterInfo
    bands: list[int]
    factor: float

    def gsd_summary(self) -> dict[str, float | None]:
        """The scene's GSD and the one the model ran at (metres; None without georeferencing)."""
        scene = self.info.gsd_m
        return {"scene_gsd_m": scene, "working_gsd_m": None if scene is None else scene / self.factor}


def open_scene(path: str, nodata: Nodata = None) -> RasterioSource:
    """Open a scene under a nodata rule; rasterio's not-georeferenced warning is replaced by ours (see plan_scene)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return open_rasterio_source(path, nodata)


def plan_scene(targets: SceneTargets, predictor: Predictor, cfg: PredictConfig) -> ScenePlan:
    """Open a scene and check it against the head's input contract (pixels, bands, GSD, sieve) before any heavy work."""
    tile_and_overlap(predictor.spec, predictor.head, cfg.tile_size, cfg.overlap)  # sizes the model cannot take
    src = open_scene(targets.scene, cfg.nodata)
    contract = predictor.contract
    try:
        raster = info_of(src.ds, targets.scene)
        check_real(raster)
        pixels = raster.width * raster.height
        if predictor.head.task == "segmentation" and cfg.sieve > 1 and cfg.sieve >= pixels:
            raise InputError(
                f"--sieve {cfg.sieve} px is not smaller than the scene ({raster.width}x{raster.height} px); "
                "give a smaller --sieve, or --sieve 0",
                targets.scene,
            )
        bands = resolve_bands(src.count, cfg.bands, contract, src.alpha_bands(), targets.scene)
        factor = working_factor(raster, cfg.gsd, contract, targets.scene)
        if src.ds.block_shapes[0][0] == 1 and raster.width * raster.height > 4096 * 4096:
            info(f"{targets.scene}: striped, not tiled; a COG (gdal_translate -of COG) reads faster by windows")
    finally:
        src.close()
    return ScenePlan(targets, raster, bands, factor)


def no_georef_warning(scene: str, raster: RasterInfo) -> str:
    """What the outputs of a scene without georeferencing are: on its pixel grid, or in pixel coordinates."""
    if raster.crs is None and not raster.transform.is_identity:
        return f"{scene}: no CRS; outputs keep its geotransform but carry no CRS (area_m2 left empty)"
    return f"{scene}: no georeferencing; predicting in pixel coordinates (outputs carry no CRS)"


def predict_scene(plan: ScenePlan, predictor: Predictor, cfg: PredictConfig, gpkg: Path | None, scratch: Path) -> dict:
    """Predict one scene into its targets (and a layer of the GeoPackage at `gpkg`); returns a summary."""
    with warnings.catch_warnings():
        # A scene without georeferencing was announced once, in our words; GDAL would repeat it per file.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        warnings.simplefilter("ignore", NodataShadowWarning)  # nodata wins over an alpha band; both mask
        return _predict_scene(plan, predictor, cfg, gpkg, scratch)


def _predict_scene(plan: ScenePlan, predictor: Predictor, cfg: PredictConfig, gpkg: Path | None, scratch: Path) -> dict:
    t0 = time.perf_counter()
    tg, raster = plan.targets, plan.info
    head = predictor.head
    if not raster.is_georeferenced:
        warn(no_georef_warning(tg.scene, raster))
    elif raster.is_rotated:
        info(f"{tg.scene}: rotated geotransform; outputs keep it and polygons use the full affine")
    tile, overlap = tile_and_overlap(predictor.spec, predictor.head, cfg.tile_size, cfg.overlap)
    src = open_scene(tg.scene, cfg.nodata)
    work = src
    summary: dict[str, Any] = {"scene": tg.scene, "width": raster.width, "height": raster.height}
    with ExitStack() as outputs:
        try:
            normalise = make_normaliser(src, predictor.contract, plan.bands, cfg.stretch, cfg.scale)
            if plan.factor != 1.0:
                work = resampled(src, plan.factor)
            sink = GeoTiffSink(scratch, work, head.classes, head.palette)
            # Polygons as rows finish when the model's grid is the scene's (else from the scene-grid raster).
            streamed = None
            sieved_path = scratch / "sieved_classes.tif"
            if gpkg is not None and tg.layer is not None and plan.factor == 1.0:
                layer = PolygonLayer(raster, head.classes, gpkg, tg.layer, cfg.simplify, cfg.min_area)
                sieved = None  # the sieved class raster, written by the polygon sink from the same sieve
                if cfg.sieve > 1:
                    grid = (raster.width, raster.height, raster.crs, raster.transform)
                    sieved = create_class_raster(sieved_path, *grid, head.classes, head.palette, WORK_CODEC)
                streamed = PolygonSink(layer, POLYGON_BLOCK, cfg.sieve, sieved)
            try:
                stats = predict_source(
                    work,
                    predictor,
                    head.num_classes,
                    TeeSink(sink, streamed) if streamed is not None else sink,
                    tile,
                    overlap,
                    cfg.batch_size,
                    plan.bands,
                    normalise,
                    description=Path(tg.scene).name,
                )
                polygons = streamed.close() if streamed is not None else 0
            finally:
                sink.close()
                if streamed is not None:
                    streamed.cancel()
            if plan.factor != 1.0:
                cls_path, conf_path, valid = to_scene_grid(
                    sink.class_path, sink.conf_path, src, scratch, head.classes, head.palette, plan.bands
                )
            else:
                cls_path, conf_path, valid = sink.class_path, sink.conf_path, sink.valid_pixels
            nonfinite = src.nonfinite(plan.bands)
            if nonfinite:
                warn(f"{tg.scene}: {nonfinite} pixel(s) are NaN or infinite; they are masked like nodata")
            if cfg.sieve > 1:  # one minimum mapping unit for the raster and the polygons
                if streamed is None:  # else the polygon sink sieved the rows as they finished
                    sieve_raster(cls_path, sieved_path, cfg.sieve, POLYGON_BLOCK)
                cls_path = sieved_path
            t_engine = time.perf_counter()
            if valid == 0:
                warn(f"{tg.scene}: every pixel is nodata; its outputs are valid but empty")
            if tg.raster is not None:
                write_cog(cls_path, outputs.enter_context(atomic_output(tg.raster, cfg.overwrite)))
                write_class_sidecars(tg.raster, head.classes, head.palette, outputs, cfg.overwrite)
            if tg.confidence is not None:
                write_cog(conf_path, outputs.enter_context(atomic_output(tg.confidence, cfg.overwrite)))
            if tg.preview is not None:
                out = outputs.enter_context(atomic_output(tg.preview, cfg.overwrite))
                render_preview(src, plan.bands, cls_path, head.classes, head.palette, out, Path(tg.scene).name)
            t_rasters = time.perf_counter()
            if gpkg is not None and tg.layer is not None and streamed is None:
                polygons = write_polygons(cls_path, conf_path, raster, head.classes, gpkg, tg.layer, cfg)
            t_polygons = time.perf_counter()
        finally:
            if work is not src:
                work.ds.close()
            src.close()
            for tmp in scratch.glob("*.tif"):  # working rasters can be large: free the disk scene by scene
                tmp.unlink(missing_ok=True)
        # Leaving the stack renames every finished output into place (all of them, or none on error).
    seconds = time.perf_counter() - t0
    summary.update(
        layer=tg.layer,
        raster=str(tg.raster) if tg.raster else None,
        confidence=str(tg.confidence) if tg.confidence else None,
        preview=str(tg.preview) if tg.preview else None,
        working_factor=plan.factor,
        **plan.gsd_summary(),
        raw_range=normalise.ranges(),
        tile_size=tile,
        overlap_px=overlap,
        tiles=stats.tiles,
        skipped_tiles=stats.skipped,
        predicted_pixels=valid,
        invalid_pixels=raster.width * raster.height - valid,  # nodata, masked, NaN or infinite
        nonfinite_pixels=nonfinite,
        sieve=cfg.sieve,
        polygons=polygons,
        **stats.stage_seconds(),  # forward_s (the model), read_s, wait_s, blend_s, write_s
        engine_s=round(t_engine - t0, 3),  # open, read, model, blend, working rasters
        rasters_s=round(t_rasters - t_engine, 3),  # COG, confidence and quick-look
        polygons_s=round(t_polygons - t_rasters, 3),  # after the rasters; streamed polygons finish with the engine
        polygon_thread_s=round(streamed.busy_s, 3) if streamed is not None else None,
        seconds=round(seconds, 3),
        megapixels_per_s=round(raster.width * raster.height / 1e6 / max(seconds, 1e-9), 3),
    )
    return summary


def write_polygons(
    cls_path: Path, conf_path: Path, raster: RasterInfo, classes: list[str], gpkg: Path, layer: str, cfg: PredictConfig
) -> int:
    """Polygonise a (sieved) class raster block by block into one GeoPackage layer; returns the polygon count."""
    out = PolygonLayer(raster, classes, gpkg, layer, cfg.simplify, cfg.min_area)
    with progress_bar(f"{layer}: polygons", total=raster.width * raster.height) as bar:
        for pieces in polygonize_raster(cls_path, conf_path, POLYGON_BLOCK, on_block=bar.advance):
            out.add(pieces)
    return out.close()


def write_class_sidecars(
    raster: Path, classes: list[str], palette: list[tuple[int, int, int]], outputs: ExitStack, overwrite: bool
) -> None:
    """The class raster's QGIS style (`<name>.qml`) and GDAL class names (`<name>.tif.aux.xml`), atomically."""
    for path, text in (
        (style_path(raster), raster_qml(classes, palette)),
        (pam_path(raster), raster_pam(classes, palette)),
    ):
        outputs.enter_context(atomic_output(path, overwrite)).write_text(text, encoding="utf-8")
