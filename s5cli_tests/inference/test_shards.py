import json
import os
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from s5cli.errors import InputError
from s5cli.geo.polygonize import Piece
from s5cli.geo.vector import SEGMENT_FIELDS, AreaCalculator, LayerWriter, segment_frame
from s5cli.inference.shards import ShardContext, merge_rank_layers
from s5cli_tests.scenes import make_scene

UTM = rasterio.crs.CRS.from_epsg(32633)


def write_layer(path: Path, layer: str, n: int) -> None:
    tr = from_origin(0, 100, 1, 1)
    writer = LayerWriter(path, layer, UTM, SEGMENT_FIELDS)
    pieces = [Piece(k % 2, shapely.box(k, 0, k + 1, 1), 1, 0.5) for k in range(n)]
    if pieces:
        writer.write(segment_frame(pieces, ["a", "b"], tr, UTM, AreaCalculator(tr, UTM, 10, 10)))
    writer.close()


def test_merge_keeps_scene_order_counts_and_empty_layers(tmp_path: Path, monkeypatch) -> None:
    import s5cli.inference.shards as shards

    monkeypatch.setattr(shards, "MERGE_CHUNK", 2)  # several chunks per layer
    rank0, rank1 = tmp_path / "rank0.gpkg", tmp_path / "rank1.gpkg"
    write_layer(rank0, "s1", 5)
    write_layer(rank0, "s3", 0)
    write_layer(rank1, "s2", 3)
    dest = tmp_path / "all.gpkg"
    merge_rank_layers([rank0, rank1], dest, ["s1", "s2", "s3"])
    assert [n for n, _ in pyogrio.list_layers(dest)] == ["s1", "s2", "s3"]
    counts = [pyogrio.read_info(dest, layer=n)["features"] for n in ("s1", "s2", "s3")]
    assert counts == [5, 3, 0]
    frame = pyogrio.read_dataframe(dest, layer="s1")
    assert frame.crs == UTM and frame.class_name.tolist() == ["a", "b", "a", "b", "a"]
    with pytest.raises(InputError, match="s9"):
        merge_rank_layers([rank0], tmp_path / "x.gpkg", ["s9"])


def test_markers(tmp_path: Path) -> None:
    ctx0 = ShardContext(0, 2, "cpu", tmp_path)
    ctx1 = ShardContext(1, 2, "cpu", tmp_path)
    ctx1.mark_done([{"scene": "b"}])
    ctx0.mark_done([{"scene": "a"}])
    assert ctx0.wait_for_ranks(poll_s=0.01) == [{"scene": "a"}, {"scene": "b"}]
    ctx1.mark_failed()
    with pytest.raises(InputError, match="rank1 failed"):
        ctx0.wait_for_ranks(poll_s=0.01)
    ctx0.cleanup()
    assert not tmp_path.exists()


@pytest.mark.slow
def test_torchrun_two_ranks_share_scenes(tmp_path: Path, tiny_ckpt: Path) -> None:
    scenes = [make_scene(tmp_path / f"s{k}.tif", width=64, height=64, seed=k) for k in range(3)]
    out, rasters = tmp_path / "all.gpkg", tmp_path / "rasters"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "S5_NO_PROGRESS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "s5cli", "predict", *map(str, scenes)]
    cmd += ["-o", str(out), "--raster", str(rasters), "--checkpoint", str(tiny_ckpt), "--device", "cpu", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [n for n, _ in pyogrio.list_layers(out)] == ["s0", "s1", "s2"]
    assert sorted(p.name for p in rasters.iterdir()) == ["s0.tif", "s1.tif", "s2.tif"]
    summary = json.loads(proc.stdout)  # rank 0 alone reports, for every rank's scenes
    assert summary["rank"] == 0 and summary["world_size"] == 2
    assert [s["layer"] for s in summary["scenes"]] == ["s0", "s2", "s1"]  # rank 0: s0, s2; rank 1: s1
    assert not list(tmp_path.glob(".s5-predict-*"))
