"""`s5 predict`: scenes of any size -> class COG + polygons (GeoPackage or another format) (+ quick-look PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from s5cli.cli.options import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    config_overrides,
    parse_bands,
    parse_gsd,
    parse_stretch,
)
from s5cli.errors import InputError

ScenesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="GeoTIFFs, folders, globs, .vrt or GDAL paths such as /vsicurl/https://... (or `scenes:` in --config).",
        show_default=False,
    ),
]
GpkgOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Polygons by extension: .gpkg (a layer per scene), .geojson, .fgb, .parquet or .shp (one scene).",
        show_default=False,
    ),
]
CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", help="Model checkpoint (.pt).", show_default=False)]
RasterOpt = Annotated[
    str | None,
    typer.Option(
        "--raster",
        help="Class COG (one scene) or a folder of <scene>.tif (several, or a path ending /).",
        show_default=False,
    ),
]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", help="Head of a multi-dataset checkpoint.", show_default=False)
]
TileOpt = Annotated[
    int | None, typer.Option("--tile-size", help="Tile side in px (default: the checkpoint's).", show_default=False)
]
OverlapOpt = Annotated[
    float | None,
    typer.Option(
        "--overlap", help="Overlap between tiles, a fraction of a tile [the head's, 0.25].", show_default=False
    ),
]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Tiles per model call [4].", show_default=False)]
BandsOpt = Annotated[
    str | None,
    typer.Option(
        "--bands", "-b", help="1-based bands in the model's order, e.g. 1,2,3 [the trained ones].", show_default=False
    ),
]
GsdOpt = Annotated[
    str | None,
    typer.Option(
        "--gsd", help="Metres per pixel to run at: auto (the training data's), native or a number.", show_default=False
    ),
]
ScaleOpt = Annotated[
    float | None,
    typer.Option(
        "--scale", help="Raw value that means 1.0, e.g. 4095 for 12-bit [the training data's].", show_default=False
    ),
]
StretchOpt = Annotated[
    str | None,
    typer.Option("--stretch", help="Percentile stretch per band instead of a scale, e.g. 2,98.", show_default=False),
]
NodataOpt = Annotated[
    str | None,
    typer.Option(
        "--nodata",
        help="Nodata value instead of the file's, or 'none' to ignore it [the file's mask].",
        show_default=False,
    ),
]
MinScoreOpt = Annotated[
    float | None,
    typer.Option("--min-score", help="Detection: drop boxes scoring below this [0.3].", show_default=False),
]
ProbsOpt = Annotated[
    bool, typer.Option("--probs", help="Also write <raster>_confidence.tif: uint8 = round(255 p), nodata 0.")
]
SimplifyOpt = Annotated[
    float | None, typer.Option("--simplify", help="Simplify tolerance in CRS units [0: off].", show_default=False)
]
MinAreaOpt = Annotated[
    float | None, typer.Option("--min-area", help="Drop polygons below this area in m² [0].", show_default=False)
]
SieveOpt = Annotated[
    int | None,
    typer.Option(
        "--sieve", help="Minimum mapping unit in pixels, raster and polygons [4; 0: the raw map].", show_default=False
    ),
]
PreviewOpt = Annotated[
    str | None,
    typer.Option(
        "--preview",
        help="Quick-look PNG (one scene) or a folder of them (several, or a path ending /).",
        show_default=False,
    ),
]
OverwriteFlag = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]


def parse_nodata(value: str | None) -> float | str | None:
    """'none', 'nan' or a number -> the config value; None stays None (the file's mask)."""
    if value is None:
        return None
    text = value.strip().lower()
    if text == "none":
        return "none"
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--nodata takes a value such as 0 or nan, or 'none', not '{value}'") from None


# Every option (by parameter name) and the one PredictConfig field it sets; --config and --json steer the run.
OPTION_FIELDS = {
    "scenes": "scenes",
    "output": "output",
    "checkpoint": "checkpoint",
    "raster": "raster",
    "dataset": "dataset",
    "tile_size": "tile_size",
    "overlap": "overlap",
    "batch_size": "batch_size",
    "bands": ("bands", parse_bands),
    "gsd": ("gsd", parse_gsd),
    "scale": "scale",
    "stretch": ("stretch", parse_stretch),
    "nodata": ("nodata", parse_nodata),
    "min_score": "min_score",
    "probs": "probs",
    "simplify": "simplify",
    "min_area": "min_area",
    "sieve": "sieve",
    "preview": "preview",
    "device": "device",
    "overwrite": "overwrite",
}


def predict(
    scenes: ScenesArg = None,
    output: GpkgOpt = None,
    checkpoint: CheckpointOpt = None,
    raster: RasterOpt = None,
    dataset: DatasetOpt = None,
    tile_size: TileOpt = None,
    overlap: OverlapOpt = None,
    batch_size: BatchOpt = None,
    bands: BandsOpt = None,
    gsd: GsdOpt = None,
    scale: ScaleOpt = None,
    stretch: StretchOpt = None,
    nodata: NodataOpt = None,
    probs: ProbsOpt = False,
    simplify: SimplifyOpt = None,
    min_area: MinAreaOpt = None,
    sieve: SieveOpt = None,
    min_score: MinScoreOpt = None,
    preview: PreviewOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    overwrite: OverwriteFlag = False,
    json_out: JsonOpt = False,
) -> None:
    """Predict scenes of any size into a class COG and polygons (GeoPackage) on the scene's grid and CRS.

    $ s5 predict scene.tif -o scene.gpkg --checkpoint model.pt --raster scene_classes.tif --preview scene.png
    """
    from s5cli.config import load_config
    from s5cli.console import info
    from s5cli.inference.config import PredictConfig
    from s5cli.inference.predict import run_predict

    overrides = config_overrides(predict, {**locals(), "scenes": scenes or None}, OPTION_FIELDS)
    cfg = load_config(PredictConfig, config, overrides)
    summary = run_predict(cfg)
    if summary["rank"] != 0:
        return  # under torchrun, rank 0 reports every scene
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    for scene in summary["scenes"]:
        outputs = [p for p in (cfg.output, scene["raster"], scene["confidence"], scene["preview"]) if p]
        info(f"{scene['scene']}: {scene_line(scene)} -> {', '.join(outputs)}")


def scene_line(scene: dict) -> str:
    """One scene's summary: size, how it was read (GSD, scaling, invalid pixels), what came out."""
    parts = [f"{scene['width']}x{scene['height']} px"]
    if scene.get("working_factor", 1.0) != 1.0 and scene.get("scene_gsd_m"):
        parts.append(f"resampled from {scene['scene_gsd_m']:.3g} m to the model's {scene['working_gsd_m']:.3g} m")
    ranges = {tuple(r) for r in scene.get("raw_range", [])}
    if len(ranges) == 1:
        lo, hi = ranges.pop()
        parts.append(f"raw {lo:g}..{hi:g} -> 0..1")
    elif ranges:
        parts.append("stretched per band")
    if scene.get("invalid_pixels"):
        nonfinite = f", {scene['nonfinite_pixels']} NaN/inf" if scene.get("nonfinite_pixels") else ""
        parts.append(f"{scene['invalid_pixels']} px nodata{nonfinite}")
    parts.append(f"{scene['tiles']} tiles")
    if "detections" in scene:
        parts.append(f"{scene['detections']} boxes (score >= {scene['min_score']:g}, {scene['clipped']} clipped)")
    else:
        parts.append(f"{scene['polygons']} polygons")
    parts.append(f"{scene['megapixels_per_s']:.2f} MP/s")
    return ", ".join(parts)
