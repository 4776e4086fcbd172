"""Raw pixels -> the model's [0, 1] input, as the checkpoint says (InputSpec.scale) or by a percentile stretch.

The model normalises [0, 1] images itself (InputSpec.mean/std), so all predict does is map raw values to
[0, 1]: divide by InputSpec.scale (255 for 8-bit training data; None means by dtype: 255, 65535, 1.0 for
floats), or, for 16-bit scenes whose values fill a small part of the range, stretch each band linearly
between two percentiles. Percentiles come from a decimated read (overviews when the file has them),
never from the whole scene, and are fixed for the whole scene so that tiles agree at their seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s5cli.console import warn
from s5cli.inference.sources import WindowSource
from s5cli.models.spec import InputSpec

STRETCH_SAMPLE_SIDE = 1024  # the decimated read for percentiles: at most 1024 px on its longer side


@dataclass(frozen=True)
class Normaliser:
    """Per-band linear map lo -> 0, hi -> 1, clipped to [0, 1]."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """(C, h, w) raw -> (C, h, w) float32 in [0, 1]."""
        lo = np.asarray(self.lo, dtype=np.float32).reshape(-1, 1, 1)
        span = np.maximum(np.asarray(self.hi, dtype=np.float32).reshape(-1, 1, 1) - lo, 1e-12)
        out = (data.astype(np.float32) - lo) / span
        return np.clip(out, 0.0, 1.0, out=out)

    def describe(self) -> str:
        """A short text for logs and the JSON summary."""
        return ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.lo, self.hi))


def dtype_scale(dtype: str) -> float:
    """The raw value that means 1.0 when the checkpoint does not say: the dtype's maximum, 1.0 for floats."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        return 1.0
    if kind in "ui":
        return float(np.iinfo(dtype).max)
    return 1.0


def percentile_range(
    source: WindowSource, bands: list[int] | None, low: float, high: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band (lo, hi) percentiles of the valid pixels of a decimated read."""
    data, valid = source.decimated(STRETCH_SAMPLE_SIDE, bands)
    los, his = [], []
    for band in data:
        values = band[valid].astype(np.float64)
        if values.size == 0:
            los.append(0.0)
            his.append(1.0)
            continue
        lo, hi = np.percentile(values, [low, high])
        los.append(float(lo))
        his.append(float(hi) if hi > lo else float(lo) + 1.0)
    return tuple(los), tuple(his)


def make_normaliser(
    source: WindowSource,
    spec: InputSpec,
    bands: list[int] | None,
    stretch: tuple[float, float] | None = None,
) -> Normaliser:
    """The normaliser for a scene: a percentile stretch if asked, else InputSpec.scale (or the dtype's)."""
    n = len(bands) if bands else source.count
    if stretch is not None:
        lo, hi = percentile_range(source, bands, stretch[0], stretch[1])
        return Normaliser(lo, hi)
    scale = spec.scale if spec.scale is not None else dtype_scale(source.dtype)
    top = dtype_scale(source.dtype)
    if np.dtype(source.dtype).kind in "ui" and top > 255 and scale <= 255:
        warn(
            f"the checkpoint maps raw value {scale:g} to 1.0 (8-bit training data) but the scene is "
            f"{source.dtype}; brighter pixels will saturate. Try --stretch 2,98"
        )
    elif np.dtype(source.dtype).kind == "f" and scale > 1.0:
        data, valid = source.decimated(256, bands)
        if valid.any() and float(np.percentile(data[:, valid], 99)) <= 1.0:
            warn(
                f"the scene's float values lie in [0, 1] but the checkpoint maps raw value {scale:g} to 1.0; "
                "the image will look nearly black to the model. Try --stretch 0,100"
            )
    return Normaliser((0.0,) * n, (float(scale),) * n)
