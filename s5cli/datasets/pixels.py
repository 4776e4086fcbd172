"""How a dataset's loader turns raw pixels into [0, 1] images: source bands, scale, dtype and GSD.

This is what a checkpoint records as its input contract (models/spec.py `input_spec`), so that predict
reads a scene the way the training data were read. The benchmarks are 8-bit images as their loaders
return them (datasets/base.py: PNG/JPEG/TIFF images as uint8 bands, divided by 255) holding the
record's bands (RGB, Vaihingen's IRRG, the product a Potsdam `bands` option picks) at the record's
GSD; a custom dataset's comes from its YAML (`bands`, `scale`) and its rasters (dtype, geotransform),
datasets/custom_config.py. `registry.pixel_format` gives any dataset's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from s5cli.datasets.info import DatasetInfo


@dataclass(frozen=True)
class PixelFormat:
    """The raw pixels a loader reads and how it scales them to [0, 1]."""

    bands: tuple[int, ...]  # 1-based source bands, in the order the loader stacks them
    names: tuple[str, ...]  # a name per band (the raster's band description or colour, else band<N>)
    scale: float  # the raw value the loader maps to 1.0
    dtype: str | None  # the source data type (None: the scenes mix types under one explicit scale)
    gsd: float | None  # metres per pixel, when known
    origin: str | None = None  # the file that says so (a dataset YAML), for messages

    def band_advice(self, channels: int) -> str:
        """How the user gets `channels` bands out of this dataset (a YAML chooses them; a benchmark cannot)."""
        if self.origin is not None and str(self.origin).lower().endswith((".yaml", ".yml")):
            example = ", ".join(str(b) for b in range(1, channels + 1))
            return f"choose {channels} with `bands: [{example}]` in {self.origin}"
        return f"its loader reads {len(self.bands)} ({', '.join(self.names)}): use a checkpoint that takes those"


def benchmark_format(info: DatasetInfo, options: Mapping[str, Any] | None = None) -> PixelFormat:
    """8-bit bands divided by 255 at the record's GSD, as the loader returns them under `options`."""
    names = info.bands_read(options)
    return PixelFormat(bands=tuple(range(1, len(names) + 1)), names=names, scale=255.0, dtype="uint8", gsd=info.gsd)
