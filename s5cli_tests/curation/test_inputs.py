from pathlib import Path

from s5cli.curation.config import Shard, parse_shard
from s5cli.curation.inputs import Scene, iter_scenes


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_walk_order_globs_overlaps_and_exclusions(tmp_path):
    for rel in ("b.tif", "a/z.png", "a/y/x.jpg", "a/notes.txt", ".hidden/h.tif", "out/chip.tif", "c.TIFF"):
        touch(tmp_path / rel)
    scenes = list(iter_scenes([str(tmp_path), str(tmp_path / "b.tif")], exclude=[tmp_path / "out"]))
    rels = [Path(s.source).relative_to(tmp_path).as_posix() for s in scenes]
    assert rels == ["b.tif", "c.TIFF", "a/z.png", "a/y/x.jpg"]  # files of a folder first, then sub-folders, sorted
    assert [s.index for s in scenes] == [0, 1, 2, 3]
    globbed = list(iter_scenes([str(tmp_path / "a" / "**" / "*.jpg")]))
    assert [Path(s.source).name for s in globbed] == ["x.jpg"]


def test_shards_partition_the_scenes(tmp_path):
    scenes = [Scene(i, str(tmp_path / f"s{i}.tif")) for i in range(200)]
    owners = [[s for s in scenes if s.in_shard(Shard(k, 3))] for k in range(3)]
    assert sorted(s.index for part in owners for s in part) == list(range(200))
    assert all(40 < len(part) < 95 for part in owners)  # a hash spreads them
    assert Scene(0, "/x/a.tif").id == Scene(5, "/x/a.tif").id  # the id depends on the path only
    assert parse_shard("2/3") == Shard(2, 3) and Shard(2, 3).name == "shard-00002-of-00003"
