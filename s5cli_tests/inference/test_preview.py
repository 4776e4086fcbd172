from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from s5cli.geo.cog import create_class_raster
from s5cli.inference.preview import OVERLAY_ALPHA, class_overlay, display_rgb, render_preview
from s5cli.inference.sources import RasterioSource
from s5cli_tests.scenes import make_scene


def test_overlay_colours_and_transparency() -> None:
    rgba = class_overlay(np.array([[0, 1, 255]], np.uint8), ["a", "b"], [(255, 0, 0), (0, 0, 255)])
    assert np.allclose(rgba[0, 0], [1.0, 0.0, 0.0, OVERLAY_ALPHA])
    assert np.allclose(rgba[0, 1], [0.0, 0.0, 1.0, OVERLAY_ALPHA])
    assert rgba[0, 2, 3] == 0.0


def test_display_rgb_stretches_and_blacks_out_nodata() -> None:
    data = np.stack([np.arange(100, dtype=np.uint16).reshape(10, 10)] * 3)
    valid = np.ones((10, 10), bool)
    valid[0, 0] = False
    rgb = display_rgb(data, valid)
    assert rgb.shape == (10, 10, 3) and rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[-1, -1].tolist() == [1, 1, 1] and 0.4 < rgb[5, 0, 0] < 0.6
    grey = display_rgb(data[:1], valid)
    assert np.array_equal(grey[..., 0], grey[..., 2])


def test_render_preview_png(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=300, height=150)
    classes = tmp_path / "c.tif"
    with rasterio.open(scene) as src:
        with create_class_raster(
            classes, 300, 150, src.crs, src.transform, ["a", "b"], [(200, 0, 0), (0, 200, 0)]
        ) as dst:
            dst.write((np.arange(300)[None, :] // 150 * np.ones((150, 1))).astype(np.uint8), 1)
        out = tmp_path / "p.png"
        render_preview(
            RasterioSource(src),
            [1, 2, 3],
            classes,
            ["a", "b"],
            [(200, 0, 0), (0, 200, 0)],
            out,
            title="s.tif",
            max_side=200,
        )
    image = Image.open(out)
    assert image.format == "PNG" and image.width > image.height > 50


def test_one_stretch_for_all_bands_keeps_grey_grey() -> None:
    from s5cli.inference.preview import display_rgb

    yy = np.arange(100, dtype=np.float32).reshape(10, 10)
    data = np.stack([yy, yy * 2, yy / 2]).astype(np.uint16)  # bands with different ranges
    data[:, 5, 5] = 40  # a grey pixel (road): equal in every band
    rgb = display_rgb(data, np.ones((10, 10), bool))
    assert rgb[5, 5, 0] == rgb[5, 5, 1] == rgb[5, 5, 2] > 0
    values = data.reshape(-1).astype(np.float64)
    lo, hi = np.percentile(values, [2, 98])
    assert rgb[9, 9, 0] == pytest.approx(min(1.0, (99 - lo) / (hi - lo)))


def test_legend_swatches_are_the_overlay_colours() -> None:
    from s5cli.inference.preview import legend_handles, overlay_colours

    palette = [(160, 160, 160), (0, 90, 255)]
    handles = legend_handles([0, 1], ["background", "house"], palette)
    lut = overlay_colours(["background", "house"], palette)
    assert [h.get_label() for h in handles] == ["background", "house"]
    assert [tuple(h.get_facecolor()) for h in handles] == [pytest.approx(tuple(lut[i])) for i in (0, 1)]
    rgba = class_overlay(np.array([[1]], np.uint8), ["background", "house"], palette)
    assert tuple(rgba[0, 0]) == pytest.approx(tuple(lut[1]))
