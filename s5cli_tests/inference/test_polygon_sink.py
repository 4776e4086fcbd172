"""Polygons as rows finish (PolygonSink) against polygons from the finished raster (write_polygons)."""

from pathlib import Path

import numpy as np
import pyogrio
import pytest

from s5cli.geo.raster import describe_raster
from s5cli.inference.config import PredictConfig
from s5cli.inference.predict import run_predict
from s5cli.inference.scene import write_polygons
from s5cli.inference.sinks import PolygonLayer, PolygonSink
from s5cli_tests.scenes import make_scene


def _rows(frame) -> list[tuple]:
    return sorted(
        (int(r.class_id), int(r.pixels), round(float(r.mean_confidence), 6), round(float(r.area_m2), 3))
        for r in frame.itertuples()
    )


def test_streamed_polygons_equal_the_raster_path(tmp_path: Path, tiny_ckpt: Path) -> None:
    scene = make_scene(tmp_path / "scene.tif", width=230, height=170, nodata_border=5)
    gpkg, raster = tmp_path / "out.gpkg", tmp_path / "out.tif"
    cfg = PredictConfig(
        scenes=[str(scene)], checkpoint=str(tiny_ckpt), output=str(gpkg), raster=str(raster), probs=True, sieve=3
    )
    summary = run_predict(cfg)["scenes"][0]
    assert summary["polygon_thread_s"] is not None  # polygonised while predicting
    again = tmp_path / "again.gpkg"
    conf = tmp_path / "out_confidence.tif"
    n = write_polygons(raster, conf, describe_raster(str(scene)), ["ground", "building", "tree"], again, "x", cfg)
    streamed, from_raster = pyogrio.read_dataframe(gpkg, layer="scene"), pyogrio.read_dataframe(again, layer="x")
    assert summary["polygons"] == n == len(streamed) > 3
    assert _rows(streamed) == _rows(from_raster)
    assert streamed.geometry.union_all().equals(from_raster.geometry.union_all())


class _BrokenLayer(PolygonLayer):
    def add(self, pieces) -> None:
        raise OSError(28, "No space left on device")


def test_an_error_in_the_polygon_thread_reaches_the_writer(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=40, height=40)
    layer = _BrokenLayer(describe_raster(str(scene)), ["a", "b"], tmp_path / "p.gpkg", "p")
    sink = PolygonSink(layer, block=8)
    rows = np.zeros((40, 40), np.uint8)
    with pytest.raises(OSError, match="No space"):
        for r0 in range(0, 40, 8):
            sink.write(r0, rows[r0 : r0 + 8], rows[r0 : r0 + 8] + 200)
        sink.close()


def test_cancel_stops_without_finishing(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "s.tif", width=40, height=40)
    sink = PolygonSink(PolygonLayer(describe_raster(str(scene)), ["a"], tmp_path / "p.gpkg", "p"), block=16)
    sink.write(0, np.zeros((8, 40), np.uint8), np.full((8, 40), 200, np.uint8))
    sink.cancel()
    assert not sink._thread.is_alive()
