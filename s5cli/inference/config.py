"""PredictConfig: one field per `s5 predict` option (configs/predict.yaml holds the commented defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from s5cli.config import StrictConfig

# CLI option -> config field, checked both ways by a test (options that only steer the display,
# --config and --json, are not config fields).
OPTION_FIELDS: dict[str, str] = {
    "scenes": "scenes",
    "--output": "output",
    "--checkpoint": "checkpoint",
    "--raster": "raster",
    "--dataset": "dataset",
    "--tile-size": "tile_size",
    "--overlap": "overlap",
    "--batch-size": "batch_size",
    "--bands": "bands",
    "--gsd": "gsd",
    "--stretch": "stretch",
    "--probs": "probs",
    "--simplify": "simplify",
    "--min-area": "min_area",
    "--sieve": "sieve",
    "--preview": "preview",
    "--device": "device",
    "--overwrite": "overwrite",
}


class PredictConfig(StrictConfig):
    """Everything `s5 predict` needs; None means "take it from the checkpoint" where that applies."""

    scenes: list[str] = Field(default_factory=list)  # files, folders, globs, .vrt, /vsicurl/... paths
    output: str | None = None  # GeoPackage: one polygon layer per scene
    checkpoint: str | None = None
    raster: str | None = None  # class COG (one scene) or a folder of <scene>.tif (several scenes)
    dataset: str | None = None  # head of a multi-dataset checkpoint
    tile_size: int | None = Field(default=None, ge=16)  # None: the checkpoint's InputSpec.tile_size
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)  # fraction of the tile shared with each neighbour
    batch_size: int = Field(default=4, ge=1)
    bands: list[int] | None = None  # 1-based band numbers, in the checkpoint's band order
    gsd: Literal["auto", "native"] | float = "auto"  # metres per pixel the model runs at
    stretch: tuple[float, float] | None = None  # percentile stretch (e.g. 2, 98) instead of InputSpec.scale
    probs: bool = False  # also write <raster stem>_confidence.tif (uint8 = round(255 p), nodata 0)
    simplify: float = Field(default=0.0, ge=0.0)  # Douglas-Peucker tolerance in CRS units; 0: off
    min_area: float = Field(default=0.0, ge=0.0)  # drop polygons smaller than this many m²
    sieve: int = Field(default=4, ge=0)  # minimum mapping unit in pixels before polygonising; 0: off
    preview: str | None = None  # quick-look PNG (one scene) or a folder of <scene>.png
    device: str = "auto"
    overwrite: bool = False

    @field_validator("gsd")
    @classmethod
    def _positive_gsd(cls, value: str | float) -> str | float:
        if isinstance(value, float | int) and value <= 0:
            raise ValueError("gsd must be positive metres, 'auto' or 'native'")
        return value

    @field_validator("stretch")
    @classmethod
    def _ordered_stretch(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0.0 <= value[0] < value[1] <= 100.0:
            raise ValueError("stretch takes two percentiles low < high in [0, 100], e.g. 2,98")
        return value

    @field_validator("bands")
    @classmethod
    def _one_based(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("bands are 1-based band numbers such as [1, 2, 3]")
        return value


def parse_stretch(value: str | None) -> tuple[float, float] | None:
    """'2,98' or 'p2,p98' -> (2.0, 98.0); None stays None."""
    if value is None:
        return None
    from s5cli.errors import InputError

    parts = [p.strip().lstrip("pP") for p in value.split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--stretch takes two percentiles such as 2,98, not '{value}'") from None
    return lo, hi


def parse_gsd(value: str | None) -> str | float | None:
    """'auto', 'native' or metres as text -> the config value; None stays None."""
    if value is None:
        return None
    from s5cli.errors import InputError

    text = value.strip().lower()
    if text in ("auto", "native"):
        return text
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--gsd takes metres per pixel, 'auto' or 'native', not '{value}'") from None
