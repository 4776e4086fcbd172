"""PredictConfig: every setting of `s5 predict`; configs/predict.yaml holds the commented defaults."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from s5cli.config import StrictConfig


class PredictConfig(StrictConfig):
    """Everything `s5 predict` needs; None means "take it from the checkpoint" where that applies."""

    scenes: list[str] = Field(default_factory=list)  # files, folders (searched at any depth), globs, .vrt, /vsicurl/
    output: str | None = None  # polygons: .gpkg (a layer per scene), .geojson, .fgb, .parquet or .shp (one scene)
    checkpoint: str | None = None
    raster: str | None = None  # class COG (one scene) or a folder of <scene>.tif (several scenes, or a path ending /)
    dataset: str | None = None  # head of a multi-dataset checkpoint
    tile_size: int | None = Field(default=None, ge=16)  # None: the size the head was trained at
    overlap: float | None = Field(default=None, ge=0.0, lt=1.0)  # share of a tile between neighbours; None: the head's
    batch_size: int = Field(default=4, ge=1)
    bands: list[int] | None = None  # 1-based band numbers in the model's order; None: the ones it was trained on
    gsd: Literal["auto", "native"] | float = "auto"  # metres per pixel the model runs at; auto: the training GSD
    scale: float | None = Field(default=None, gt=0)  # raw value mapped to 1.0; None: the training data's scale
    stretch: tuple[float, float] | None = None  # percentile stretch (e.g. 2, 98) instead of a scale
    nodata: float | Literal["none"] | None = None  # None: the file's mask; "none": ignore its nodata value
    probs: bool = False  # also write <raster stem>_confidence.tif (uint8 = round(255 p), nodata 0)
    simplify: float = Field(default=0.0, ge=0.0)  # Douglas-Peucker tolerance in CRS units; 0: off
    min_area: float = Field(default=0.0, ge=0.0)  # drop polygons smaller than this many m²
    sieve: int = Field(default=4, ge=0)  # minimum mapping unit in pixels, of the raster and the polygons; 0: off
    min_score: float = Field(default=0.3, ge=0.0, le=1.0)  # detection: drop boxes scoring below this
    preview: str | None = None  # quick-look PNG (one scene) or a folder of <scene>.png
    device: str = "auto"
    overwrite: bool = False

    @field_validator("gsd", mode="before")
    @classmethod
    def _positive_gsd(cls, value: object) -> object:
        if isinstance(value, float | int) and not (math.isfinite(value) and value > 0):
            raise ValueError("gsd must be positive, finite metres, 'auto' or 'native'")
        return value

    @field_validator("stretch")
    @classmethod
    def _ordered_stretch(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0.0 <= value[0] < value[1] <= 100.0:
            raise ValueError("stretch takes two percentiles low < high in [0, 100], e.g. 2,98")
        return value

    @model_validator(mode="after")
    def _one_scaling(self) -> PredictConfig:
        if self.scale is not None and self.stretch is not None:
            raise ValueError("give --scale or --stretch, not both")
        return self

    @field_validator("bands")
    @classmethod
    def _one_based(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("bands are 1-based band numbers such as [1, 2, 3]")
        return value
