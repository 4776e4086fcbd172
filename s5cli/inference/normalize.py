"""Raw pixels -> the model's [0, 1] input, as the checkpoint was trained (InputSpec.scale), or as told.

The model normalises [0, 1] images itself (InputSpec.mean/std), so all predict does is map raw values to
[0, 1]: divide by the scale the training data were divided by (InputSpec.scale: 255 for 8-bit data,
4095 for 12-bit data trained with `scale: 4095`, ...; None means the dtype's maximum), by `--scale`, or,
with `--stretch`, stretch each band linearly between two percentiles. Percentiles come from a decimated
read (overviews when the file has them), never from the whole scene, and are fixed for the whole scene
so that tiles agree at their seams. A small decimated read also checks that the scale fits the scene
(values that would saturate, or a scene that would look black), with a warning saying what to pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s5cli.console import warn
from s5cli.geo.raster import unit_scale
from s5cli.inference.sources import WindowSource
from s5cli.models.spec import InputSpec

STRETCH_SAMPLE_SIDE = 1024  # the decimated read for percentiles: at most 1024 px on its longer side
CHECK_SAMPLE_SIDE = 256  # the decimated read that checks a scale against the scene
SATURATED_SHARE = 0.01  # warn when more than 1 % of the values lie above the raw value mapped to 1.0
DARK_SHARE = 0.1  # warn when 99 % of the values lie below a tenth of it


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

    def ranges(self) -> list[list[float]]:
        """[lo, hi] per band: the raw values mapped to 0 and 1 (the JSON summary's `raw_range`)."""
        return [[float(lo), float(hi)] for lo, hi in zip(self.lo, self.hi)]


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
    scale: float | None = None,
) -> Normaliser:
    """The normaliser for a scene: a percentile stretch or `scale` if given, else the training scale.

    `spec` is the head's contract (InputSpec.for_head).
    """
    n = len(bands) if bands else source.count
    if stretch is not None:
        lo, hi = percentile_range(source, bands, stretch[0], stretch[1])
        return Normaliser(lo, hi)
    if scale is None:
        scale = spec.scale if spec.scale is not None else unit_scale(source.dtype)
        check_scale(source, spec, bands, scale)
    return Normaliser((0.0,) * n, (float(scale),) * n)


def check_scale(source: WindowSource, spec: InputSpec, bands: list[int] | None, scale: float) -> None:
    """Warn when the training scale does not fit the scene: its values would saturate or look black."""
    data, valid = source.decimated(CHECK_SAMPLE_SIDE, bands)
    values = data[:, valid].astype(np.float64)
    if values.size == 0:
        return
    if spec.dtype:
        trained = f"the model was trained on {spec.dtype} data divided by {scale:g}"
    else:
        trained = f"the checkpoint divides raw values by {scale:g}"
    over = float(np.mean(values > scale))
    if over > SATURATED_SHARE:
        warn(
            f"{trained}, but {over:.0%} of this {source.dtype} scene's values are above {scale:g} and saturate; "
            "give --scale (the raw value of white) or try --stretch 2,98"
        )
    elif float(np.percentile(values, 99)) < DARK_SHARE * scale:
        hint = "--scale 1" if np.dtype(source.dtype).kind == "f" else f"--scale {unit_scale(source.dtype):g}"
        warn(
            f"{trained}, but this {source.dtype} scene's values lie far below {scale:g}: it looks nearly black "
            f"to the model; give {hint} or try --stretch 0,100"
        )
