"""Quick-look PNG: the scene (decimated read, 2-98% stretch) with the class map over it and a legend.

One stretch for all bands (the 2nd and 98th percentiles of every valid value), so that grey stays grey
and colours keep their balance; per-band stretches turn grey roads purple. The legend's swatches are
the overlay's own colours, alpha included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling

from s5cli.geo.cog import CLASS_NODATA, class_colormap
from s5cli.inference.sources import WindowSource

PREVIEW_SIDE = 1024  # pixels on the longer side of the quick-look
OVERLAY_ALPHA = 0.45


def display_rgb(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(C, h, w) raw -> (h, w, 3) float RGB in [0, 1] for display (first 3 bands, or grey), one common stretch."""
    bands = data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, axis=0)
    values = bands[:, valid].astype(np.float64)
    lo, hi = np.percentile(values, [2, 98]) if values.size else (0.0, 1.0)
    out = np.clip((np.moveaxis(bands, 0, -1).astype(np.float32) - lo) / max(hi - lo, 1e-12), 0, 1)
    out[~valid] = 0.0
    return out


def overlay_colours(names: Sequence[str], palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(256, 4) RGBA in [0, 1] per class id as the overlay draws it (transparent where there is no class)."""
    lut = np.zeros((256, 4), dtype=np.float32)
    for value, rgba in class_colormap(names, palette).items():
        lut[value, :3] = np.asarray(rgba[:3], dtype=np.float32) / 255.0
        lut[value, 3] = OVERLAY_ALPHA
    return lut


def class_overlay(classes: np.ndarray, names: Sequence[str], palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(h, w) class ids -> (h, w, 4) RGBA in [0, 1], transparent where there is no class."""
    return overlay_colours(names, palette)[classes]


def legend_handles(present: Sequence[int], names: Sequence[str], palette: Sequence[Sequence[int]]) -> list:
    """Legend patches of the classes present, filled with exactly the overlay's RGBA."""
    from matplotlib.patches import Patch

    lut = overlay_colours(names, palette)
    return [
        Patch(facecolor=tuple(lut[i]), edgecolor="black", linewidth=0.3, label=names[i])
        for i in present
        if i < len(names)
    ]


def render_preview(
    source: WindowSource,
    bands: list[int] | None,
    class_path: str | os.PathLike[str] | None,
    names: Sequence[str],
    palette: Sequence[Sequence[int]],
    out_path: str | os.PathLike[str],
    title: str = "",
    max_side: int = PREVIEW_SIDE,
    boxes: Sequence[tuple[np.ndarray, int]] = (),
) -> None:
    """Write the quick-look PNG (matplotlib, Agg backend) at out_path.

    Args:
        source: the scene.
        bands: bands to show (the first three as RGB, or the first as grey).
        class_path: a class raster on the scene grid to overlay (segmentation), or None.
        names: class names (legend).
        palette: class colours (a default palette fills the gaps).
        out_path: the PNG to write.
        title: a title above the image.
        max_side: the quick-look's longer side in pixels.
        boxes: (corners (4, 2) in source pixels, class id) outlines to draw (detection).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon as PolygonPatch

    data, valid = source.decimated(max_side, bands)
    h, w = valid.shape
    classes = np.full((h, w), CLASS_NODATA, np.uint8)
    if class_path is not None:
        with rasterio.open(class_path) as src:
            classes = src.read(1, out_shape=(h, w), resampling=Resampling.nearest)
    present = sorted({int(v) for v in np.unique(classes) if v != CLASS_NODATA} | {int(c) for _, c in boxes})
    cmap = class_colormap(names, palette)
    fig_w = 8.0
    fig_h = max(2.5, fig_w * h / max(w, 1)) + 0.6
    fig, ax = plt.subplots(figsize=(fig_w + 2.2, fig_h), dpi=max(72, int(min(max_side, max(h, w)) / fig_w)))
    try:
        ax.imshow(display_rgb(data, valid), interpolation="nearest")
        ax.imshow(class_overlay(classes, names, palette), interpolation="nearest")
        sx, sy = w / source.width, h / source.height
        for corners, cls in boxes:
            colour = np.asarray(cmap.get(int(cls), (255, 255, 0, 255))[:3]) / 255.0
            xy = np.asarray(corners, dtype=np.float64) * (sx, sy) - 0.5  # pixel edges -> imshow's pixel centres
            ax.add_patch(PolygonPatch(xy, closed=True, fill=False, edgecolor=colour, linewidth=0.8))
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=10)
        handles = legend_handles(present, names, palette)
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        else:
            ax.text(1.02, 0.98, "no classes predicted", transform=ax.transAxes, va="top", fontsize=8)
        fig.savefig(out_path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
