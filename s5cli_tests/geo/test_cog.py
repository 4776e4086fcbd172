import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from s5cli.geo.cog import (
    CLASS_NODATA,
    class_colormap,
    create_class_raster,
    iter_blocks,
    read_classes,
    write_cog,
)


def test_colormap_holds_only_the_head_colours() -> None:
    cmap = class_colormap(["a", "b"], [(1, 2, 3), (4, 5, 6)])
    assert cmap == {0: (1, 2, 3, 255), 1: (4, 5, 6, 255)}  # nodata 255 is transparent by being nodata
    with pytest.raises(ValueError, match="1 colours for 3 classes"):
        class_colormap(["a", "b", "c"], [(1, 2, 3)])


def test_iter_blocks_cover_exactly() -> None:
    blocks = iter_blocks(10, 7, 4)
    assert [(b.col_off, b.row_off, b.width, b.height) for b in blocks] == [
        (0, 0, 4, 4), (4, 0, 4, 4), (8, 0, 2, 4), (0, 4, 4, 3), (4, 4, 4, 3), (8, 4, 2, 3)
    ]  # fmt: skip


def test_cog_keeps_grid_classes_and_colours(tmp_path: Path) -> None:
    width, height = 1100, 700  # larger than one 512 block: overviews and several tiles
    transform = from_origin(500000, 5800000, 0.3, 0.3)
    arr = ((np.arange(width)[None, :] // 100 + np.arange(height)[:, None] // 100) % 3).astype(np.uint8)
    arr[:50] = CLASS_NODATA
    work = tmp_path / "work.tif"
    with create_class_raster(
        work, width, height, "EPSG:32633", transform, ["a", "b", "c"], [(9, 9, 9), (1, 1, 1), (2, 2, 2)]
    ) as dst:
        dst.write(arr[:300], 1, window=Window(0, 0, width, 300))
        dst.write(arr[300:], 1, window=Window(0, 300, width, height - 300))
    out = tmp_path / "cog.tif"
    write_cog(work, out)
    with rasterio.open(out) as src:
        assert (src.width, src.height, src.crs.to_epsg(), src.transform) == (width, height, 32633, transform)
        assert src.nodata == CLASS_NODATA and src.dtypes[0] == "uint8"
        assert src.block_shapes[0] == (512, 512) and src.compression.value == "DEFLATE"
        assert src.overviews(1) == [2, 4]  # down to one 512 block
        assert src.colormap(1)[0] == (9, 9, 9, 255)
        assert src.descriptions == ("class",)
        assert json.loads(src.tags(1)["CLASS_NAMES"]) == ["a", "b", "c"] and src.tags(1)["CLASS_2"] == "c"
        assert np.array_equal(src.read(1), arr)
        # Nearest overviews: only class ids and nodata, never an average of two classes.
        assert set(np.unique(src.read(1, out_shape=(350, 550)))) <= {0, 1, 2, CLASS_NODATA}
    assert read_classes(out, max_side=110).shape == (70, 110)
