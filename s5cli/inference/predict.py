"""`s5 predict` as a library call: scenes -> class COGs, polygons (a GeoPackage layer per scene), quick-looks.

Order of work: expand the scene list, plan and check every output path (nothing is loaded before an
existing output is refused), load the checkpoint, check every scene against it (bands, GSD), then
predict. Under torchrun the scenes are dealt out round-robin over the ranks (each rank its own device
and its own raster outputs); see s5cli.inference.shards for how the GeoPackage is written by one
process at a time.

Polygons always go to a GeoPackage layer first: the output itself when `-o` ends in .gpkg (each layer
then gets its QGIS style in `layer_styles`), else a scratch one that is copied into the format `-o`
names (GeoJSON, FlatGeobuf, GeoParquet, Shapefile; one scene) with a `.qml` style beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import rasterio

from s5cli.errors import ConfigError, InputError
from s5cli.geo.files import (
    atomic_output,
    check_distinct_outputs,
    check_output,
    clean_stale_temps,
    disk_full_as_error,
    is_remote,
    temp_prefix,
)
from s5cli.geo.styles import style_path, vector_qml, write_layer_styles
from s5cli.geo.vector import export_layer, layer_name, vector_files, vector_format
from s5cli.inference.config import PredictConfig
from s5cli.inference.inputs import expand_scenes
from s5cli.inference.scene import SceneTargets, plan_scene, predict_scene


def plan_targets(scenes: list[str], cfg: PredictConfig) -> list[SceneTargets]:
    """Output paths of every scene; refuses existing ones without --overwrite (before any work)."""
    several = len(scenes) > 1
    taken: list[tuple[str, Path]] = []  # (option, path) of every file this run writes
    if cfg.output is not None:
        check_output(cfg.output, cfg.overwrite)  # an existing path is refused before its name is judged
        fmt = vector_format(cfg.output)
        if several and not fmt.multi_layer:
            raise InputError(f"a {fmt.name} file holds one layer: with several scenes write a .gpkg", cfg.output)
        files = vector_files(cfg.output) + ([] if fmt.multi_layer else [style_path(cfg.output)])
        taken = [("-o/--output", path) for path in files]
    names: list[str] = []
    targets = []
    for scene in scenes:
        name = layer_name(scene, names)  # unique: also names the per-scene rasters and quick-looks
        names.append(name)
        layer = name if cfg.output is not None else None
        raster = _per_scene(cfg.raster, name, ".tif", several)
        confidence = raster.with_name(f"{raster.stem}_confidence.tif") if raster is not None and cfg.probs else None
        preview = _per_scene(cfg.preview, name, ".png", several)
        target = SceneTargets(scene, layer, raster, confidence, preview)
        named = [("--raster", raster), *(("--raster", p) for p in target.raster_sidecars), ("--probs", confidence)]
        taken += [(option, path) for option, path in (*named, ("--preview", preview)) if path is not None]
        targets.append(target)
    # One check for all: no output is an input (with --overwrite it would replace what is read), none shared.
    check_distinct_outputs(taken, [*scenes, *([cfg.checkpoint] if cfg.checkpoint else [])])
    for _, path in taken:
        check_output(path, cfg.overwrite)
    return targets


def _per_scene(option: str | None, name: str, suffix: str, several: bool) -> Path | None:
    """A file path as given, or a folder holding <scene><suffix> per scene.

    A folder when there are several scenes, when the path ends with a slash or when it is an existing folder.
    """
    if option is None:
        return None
    path = Path(option)
    folder = several or str(option).endswith(("/", os.sep)) or path.is_dir()
    if not folder:
        return path
    if path.suffix.lower() == suffix and not path.is_dir():
        raise InputError(f"with several scenes this option names a folder (one <scene>{suffix} each)", path)
    if path.exists() and not path.is_dir():
        raise InputError("is a file; with several scenes give a folder", path)
    return path / f"{name}{suffix}"


# Two rows of 512-px blocks of a 40,000 px wide RGB scene (a strip read re-reads the overlap of the
# row above), plus the working rasters' dirty blocks; a fixed bound, so memory stays flat with the scene.
GDAL_CACHE_BYTES = 128 * 2**20


def gdal_options(scenes: list[str]) -> dict[str, Any]:
    """GDAL settings for predict: a bounded block cache, and the usual cloud-COG settings for remote scenes."""
    # A bounded block cache (GDAL's default is 5% of RAM). Bytes: rasterio hands an integer to GDAL's
    # SetCacheMax, so 256 would mean 256 bytes, and every read would decode its tiles again (40x slower).
    options: dict[str, Any] = {"GDAL_CACHEMAX": GDAL_CACHE_BYTES}
    if any(is_remote(s) for s in scenes):
        # pangeo/torchgeo settings: no sidecar lookups, merged range requests, a read cache.
        options.update(
            GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
            GDAL_HTTP_MULTIRANGE="YES",
            GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
            VSI_CACHE="TRUE",
        )
    return options


def run_predict(cfg: PredictConfig) -> dict[str, Any]:
    """Run `s5 predict`; returns a JSON-safe summary (per scene: sizes, tiles, timings, polygon counts)."""
    with rasterio.Env(**gdal_options(list(cfg.scenes))):
        return _run_predict(cfg)


def _run_predict(cfg: PredictConfig) -> dict[str, Any]:
    from s5cli.inference.predictor import load_predictor
    from s5cli.inference.shards import ShardContext, merge_rank_layers

    t0 = time.perf_counter()
    if cfg.checkpoint is None:
        raise ConfigError("no checkpoint: give --checkpoint CKPT")
    if cfg.output is None and cfg.raster is None:
        raise ConfigError(
            "nothing to write: give -o OUT.gpkg (or .geojson, .fgb, .parquet, .shp) and/or --raster OUT.tif"
        )
    if cfg.probs and cfg.raster is None:
        raise ConfigError("--probs writes beside the class raster: give --raster too")
    scenes = expand_scenes(cfg.scenes)
    targets = plan_targets(scenes, cfg)
    shard = ShardContext.from_env(cfg.device, cfg.output)
    predictor = load_predictor(cfg.checkpoint, cfg.dataset, str(shard.device))
    scene_fn = predict_scene
    if predictor.head.task == "detection":
        from s5cli.inference.detect import detect_scene

        if cfg.raster is not None:
            raise ConfigError(f"head '{predictor.head.name}' detects objects: it writes -o OUT.gpkg, not --raster")
        scene_fn = detect_scene
    plans = [plan_scene(t, predictor, cfg) for t in targets]
    mine = plans[shard.rank :: shard.world_size]
    results: list[dict[str, Any]] = []
    layers = [t.layer for t in targets if t.layer]
    parent = _scratch_parent(targets, Path(cfg.output) if cfg.output is not None else None)
    clean_stale_temps(parent)  # scratch folders of runs killed with SIGKILL
    scratch = Path(tempfile.mkdtemp(prefix=temp_prefix("s5-predict"), dir=parent))
    try:
        with disk_full_as_error(parent), ExitStack() as finals:  # scratch rasters fill a disk first: one line
            # Where every rank's layers end up: the GeoPackage output, or a scratch one copied at the end.
            gpkg: Path | None = None
            if cfg.output is not None and shard.rank == 0:
                multi = vector_format(cfg.output).multi_layer
                gpkg = finals.enter_context(atomic_output(cfg.output, cfg.overwrite)) if multi else scratch / "p.gpkg"
            if shard.world_size == 1:
                results = [scene_fn(p, predictor, cfg, gpkg, scratch) for p in mine]
            else:
                part = shard.rank_gpkg() if cfg.output is not None else None
                try:
                    results = [scene_fn(p, predictor, cfg, part, scratch) for p in mine]
                except BaseException:
                    shard.mark_failed()
                    raise
                shard.mark_done(results)
                if shard.rank == 0:
                    results = shard.wait_for_ranks()
                    if gpkg is not None:
                        merge_rank_layers(shard.rank_gpkgs(), gpkg, layers)
                    shard.cleanup()
            if gpkg is not None and cfg.output is not None:
                finish_vectors(gpkg, layers, Path(cfg.output), predictor.head, finals, cfg.overwrite)
            # Leaving the stack renames the finished vector outputs into place.
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "checkpoint": str(cfg.checkpoint),
        "head": predictor.head.name,
        "classes": list(predictor.head.classes),
        "device": str(predictor.device),
        "rank": shard.rank,
        "world_size": shard.world_size,
        "output": cfg.output,
        "scenes": results,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def finish_vectors(
    gpkg: Path, layers: list[str], output: Path, head: Any, finals: ExitStack, overwrite: bool = False
) -> None:
    """QGIS styles for the layers; for a single-layer format, the copy into `output` and its `.qml`."""
    filled = head.task == "segmentation"  # detection boxes are outlined, not filled
    if vector_format(output).multi_layer:
        write_layer_styles(gpkg, layers, head.classes, head.palette, filled=filled)
        return
    out = gpkg.parent / "export" / output.name  # every part of a Shapefile, under the final name
    out.parent.mkdir()
    export_layer(gpkg, layers[0], out)
    for part in vector_files(out):
        if part.exists():
            os.replace(part, finals.enter_context(atomic_output(output.with_suffix(part.suffix), overwrite)))
    qml = finals.enter_context(atomic_output(style_path(output), overwrite))
    qml.write_text(vector_qml(head.classes, head.palette, filled=filled), encoding="utf-8")


def _scratch_parent(targets: list[SceneTargets], gpkg: Path | None) -> Path:
    """Working rasters go beside the outputs (same disk, room for them), not in a small /tmp."""
    first = gpkg or next((t.raster or t.preview for t in targets if (t.raster or t.preview)), None)
    parent = (first.parent if first is not None else Path(".")).resolve()
    parent.mkdir(parents=True, exist_ok=True)
    return parent
