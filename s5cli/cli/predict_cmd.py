"""`s5 predict`: scenes of any size -> class COG + polygons in a GeoPackage (+ quick-look PNG)."""

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

ScenesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="GeoTIFFs, folders, globs, .vrt or GDAL paths such as /vsicurl/https://... (or `scenes:` in --config).",
        show_default=False,
    ),
]
GpkgOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="GeoPackage of polygons, one layer per scene.", show_default=False),
]
CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", help="Model checkpoint (.pt).", show_default=False)]
RasterOpt = Annotated[
    Path | None,
    typer.Option("--raster", help="Class COG (one scene) or a folder of <scene>.tif (several).", show_default=False),
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
    typer.Option("--bands", "-b", help="1-based bands in the model's order, e.g. 1,2,3.", show_default=False),
]
GsdOpt = Annotated[
    str | None,
    typer.Option(
        "--gsd", help="Metres per pixel to run at: auto (checkpoint's), native or a number.", show_default=False
    ),
]
StretchOpt = Annotated[
    str | None,
    typer.Option("--stretch", help="Percentile stretch per band instead of the checkpoint's scale, e.g. 2,98."),
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
    typer.Option("--sieve", help="Minimum mapping unit in pixels before polygonising [4; 0: off].", show_default=False),
]
PreviewOpt = Annotated[
    Path | None,
    typer.Option("--preview", help="Quick-look PNG (one scene) or a folder of them (several).", show_default=False),
]
OverwriteFlag = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]

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
    "stretch": ("stretch", parse_stretch),
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
    stretch: StretchOpt = None,
    probs: ProbsOpt = False,
    simplify: SimplifyOpt = None,
    min_area: MinAreaOpt = None,
    sieve: SieveOpt = None,
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
        info(
            f"{scene['scene']}: {scene['width']}x{scene['height']} px, {scene['tiles']} tiles, "
            f"{scene['polygons']} polygons, {scene['megapixels_per_s']:.2f} MP/s -> {', '.join(outputs)}"
        )
