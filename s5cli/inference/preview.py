"""Quick-look PNG: the scene (decimated read, 2-98% stretch) with the class map over it and a legend."""

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
    """(C, h, w) raw -> (h, w, 3) float RGB in [0, 1] for display (first 3 bands, or grey)."""
    bands = data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, axis=0)
    out = np.zeros((*bands.shape[1:], 3), dtype=np.float32)
    for i, band in enumerate(bands):
        values = band[valid].astype(np.float64)
        lo, hi = np.percentile(values, [2, 98]) if values.size else (0.0, 1.0)
        out[..., i] = np.clip((band.astype(np.float32) - lo) / max(hi - lo, 1e-12), 0, 1)
    out[~valid] = 0.0
    return out


def class_overlay(classes: np.ndarray, names: Sequence[str], palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(h, w) class ids -> (h, w, 4) RGBA in [0, 1], transparent where there is no class."""
    cmap = class_colormap(names, palette)
    lut = np.zeros((256, 4), dtype=np.float32)
    for value, rgba in cmap.items():
        lut[value] = np.asarray(rgba, dtype=np.float32) / 255.0
    rgba = lut[classes]
    rgba[..., 3] = np.where(classes == CLASS_NODATA, 0.0, OVERLAY_ALPHA)
    return rgba


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
    from matplotlib.patches import Patch
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
        handles = [
            Patch(facecolor=np.asarray(cmap[i][:3]) / 255.0, edgecolor="black", linewidth=0.3, label=names[i])
            for i in present
            if i < len(names)
        ]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        else:
            ax.text(1.02, 0.98, "no classes predicted", transform=ax.transAxes, va="top", fontsize=8)
        fig.savefig(out_path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
