import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from s5cli.curation import pipeline
from s5cli.curation.config import CurateConfig, Shard
from s5cli.curation.inputs import Scene
from s5cli.curation.layout import read_state
from s5cli.curation.manifest import COLUMNS, NO_FOREGROUND, PartWriter, part_records, read_part
from s5cli.curation.merge import merge_corpus
from s5cli.curation.pipeline import Labeler, run_curate
from s5cli.curation.tiling import TileSettings, tile_scene
from s5cli.errors import ConfigError, InputError, OutputExistsError
from s5cli_tests.curation.conftest import textured, write_tif


def manifest(corpus: Path):
    return gpd.read_parquet(corpus / "manifest.parquet")


def test_manifest_columns_crs_and_files(scenes_dir, tmp_path):
    summary = run_curate([str(scenes_dir)], tmp_path / "corpus", CurateConfig(chip_size=32))
    df = manifest(tmp_path / "corpus")
    assert list(df.columns) == COLUMNS
    assert df.crs.to_epsg() == 4326
    assert df.geometry.notna().all() and (df.geometry.geom_type == "Polygon").all()
    assert len(df) == summary["chips"] == 9 + 4 + 6  # 96x80, 64x64, 80x64 at 32 px
    assert summary["kept"] == int(df.kept.sum()) and summary["scenes"] == 3
    # sources relative to the corpus (they move together), resolving to the scenes read
    assert {str((tmp_path / "corpus" / s).resolve()) for s in df.source} == {
        str(p.resolve()) for p in scenes_dir.rglob("*.tif")
    }
    assert all(not Path(s).is_absolute() for s in df.source)
    assert df.scene_index.is_monotonic_increasing
    for row in df[df.kept].itertuples():
        assert (tmp_path / "corpus" / row.path).is_file()
        assert row.reason == "kept" and len(row.phash) == 16
    assert (df[~df.kept].reason.isin(["nodata", "low_std", "duplicate"])).all()
    meta = json.loads(pq.read_schema(tmp_path / "corpus" / "manifest.parquet").metadata[b"s5cli"])
    assert [r["reason"] for r in meta["rules"]] == ["nodata", "low_std", "duplicate"]
    assert meta["rules"][0]["max_nodata"] == 0.1
    state = read_state(tmp_path / "corpus")
    assert state["summary"]["rules"] == meta["rules"]


def test_cross_scene_duplicates_point_to_the_first(tmp_path):
    (tmp_path / "in").mkdir()
    src = write_tif(tmp_path / "in" / "a.tif", textured(64, 64, seed=1))
    shutil.copy(src, tmp_path / "in" / "b.tif")
    summary = run_curate([str(tmp_path / "in")], tmp_path / "corpus", CurateConfig(chip_size=32))
    df = manifest(tmp_path / "corpus")
    assert summary["reasons"]["duplicate"] == 4 and summary["kept"] == 4
    first, second = df[df.source.str.endswith("a.tif")], df[df.source.str.endswith("b.tif")]
    assert first.kept.all() and (second.reason == "duplicate").all()
    assert second.duplicate_of.astype(int).tolist() == first.index.tolist()
    off = run_curate([str(tmp_path / "in")], tmp_path / "c2", CurateConfig(chip_size=32, dedup_distance=-1))
    assert off["kept"] == 8


def test_existing_output_is_refused_then_overwritten(scenes_dir, tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32))
    assert (out / "keep.txt").is_file()
    run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32), overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "manifest.parquet").is_file()


def test_bad_inputs(tmp_path, not_a_raster):
    with pytest.raises(InputError, match="no such file or folder"):
        run_curate([str(tmp_path / "missing.tif")], tmp_path / "c", CurateConfig())
    with pytest.raises(InputError, match="not a readable raster"):
        run_curate([str(not_a_raster)], tmp_path / "c", CurateConfig())
    with pytest.raises(InputError, match="no files match"):
        run_curate([str(tmp_path / "*.jp2")], tmp_path / "c", CurateConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        run_curate([str(tmp_path / "empty")], tmp_path / "c", CurateConfig())
    assert not (tmp_path / "c").exists()


def test_resume_skips_finished_scenes(scenes_dir, tmp_path, monkeypatch):
    fresh = run_curate([str(scenes_dir)], tmp_path / "fresh", CurateConfig(chip_size=32))
    seen: list[str] = []

    def interrupted(scene, settings):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(scene.source)
        return tile_scene(scene, settings)

    monkeypatch.setattr(pipeline, "PART_ROWS", 1)  # commit after every scene
    monkeypatch.setattr(pipeline, "tile_scene", interrupted)
    out = tmp_path / "corpus"
    with pytest.raises(KeyboardInterrupt):
        run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32))
    assert not (out / "manifest.parquet").exists()
    with pytest.raises(OutputExistsError):
        run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32))
    with pytest.raises(ConfigError, match="chip_size=32"):
        run_curate([str(scenes_dir)], out, CurateConfig(chip_size=48), resume=True)
    first_two = list(seen)
    seen.clear()
    monkeypatch.setattr(pipeline, "tile_scene", lambda s, st: seen.append(s.source) or tile_scene(s, st))
    resumed = run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32, workers=0), resume=True)
    assert len(seen) == 1 and seen[0] not in first_two
    assert resumed["reasons"] == fresh["reasons"]
    a, b = manifest(tmp_path / "fresh"), manifest(out)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    seen.clear()
    again = run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32), resume=True)  # nothing left: re-merge
    assert seen == [] and again["kept"] == fresh["kept"]


def _names_in_shards(folder: Path, count: int, corpus: Path) -> dict[int, list[str]]:
    """Pick file names so that each shard gets scenes, and two copies land in different shards."""
    from s5cli.geo.files import portable_path

    by_shard: dict[int, list[str]] = {i: [] for i in range(count)}
    for i in range(40):
        name = f"scene{i}.tif"
        path = str((folder / name).resolve())
        for s in range(count):
            if Scene(0, path, portable_path(path, corpus)).in_shard(Shard(s, count)):  # as the corpus names it
                by_shard[s].append(name)
    return by_shard


def test_shards_then_merge_equal_a_single_run(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = _names_in_shards(folder, 2, tmp_path / "sharded")  # "single" sits beside it: the same names
    chosen = names[0][:2] + names[1][:2]
    for k, name in enumerate(chosen):
        write_tif(folder / name, textured(48, 64, seed=k))
    shutil.copy(folder / names[0][0], folder / names[1][2])  # a duplicate across shards
    single = run_curate([str(folder)], tmp_path / "single", CurateConfig(chip_size=32))
    assert single["reasons"]["duplicate"] == 4
    out = tmp_path / "sharded"
    first = run_curate([str(folder)], out, CurateConfig(chip_size=32, shard="1/2"))
    assert first == {"merged": False, "shard": "shard-00001-of-00002", "waiting_for": ["shard-00000-of-00002"]}
    with pytest.raises(InputError, match="not finished"):
        merge_corpus(out)
    with pytest.raises(ConfigError, match="shard"):
        run_curate([str(folder)], out, CurateConfig(chip_size=32, shard="0/3"))
    second = run_curate([str(folder)], out, CurateConfig(chip_size=32, shard="0/2"))
    assert second["merged"] is True
    a, b = manifest(tmp_path / "single"), manifest(out)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert a.geometry.geom_equals(b.geometry).all()
    # each shard curated a disjoint part of the scenes
    per_shard = [
        {s["source"] for r in part_records(out / "parts" / f"shard-0000{i}-of-00002") for s in r["scenes"]}
        for i in range(2)
    ]
    assert not per_shard[0] & per_shard[1] and per_shard[0] | per_shard[1] == set(a.source)
    with pytest.raises(OutputExistsError):
        merge_corpus(out)
    assert merge_corpus(out, overwrite=True)["kept"] == single["kept"]


def test_torchrun_environment_picks_the_shard(tmp_path, monkeypatch):
    write_tif(tmp_path / "a.tif", textured(32, 32, seed=0))
    for name, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", "29500")
    summary = run_curate([str(tmp_path / "a.tif")], tmp_path / "c", CurateConfig(chip_size=32))
    assert summary == {"merged": False, "shard": "shard-00001-of-00002", "waiting_for": ["shard-00000-of-00002"]}
    assert read_state(tmp_path / "c")["shards"] == 2


def test_plain_images_and_output_inside_the_input_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(np.moveaxis(textured(40, 40, seed=k), 0, -1)).save(folder / f"p{k}.png")
    (folder / "notes.txt").write_text("not an image")
    out = folder / "corpus"
    run_curate([str(folder)], out, CurateConfig(chip_size=64))
    run_curate([str(folder)], out, CurateConfig(chip_size=64), overwrite=True)  # its own chips are not inputs
    df = manifest(out)
    assert len(df) == 3 and df.kept.all() and df.geometry.isna().all() and df["crs"].isna().all()
    assert all(p.endswith(".png") for p in df.path)


def test_workers_give_the_same_manifest(scenes_dir, tmp_path):
    run_curate([str(scenes_dir)], tmp_path / "w0", CurateConfig(chip_size=32))
    run_curate([str(scenes_dir)], tmp_path / "w2", CurateConfig(chip_size=32, workers=2))
    a, b = manifest(tmp_path / "w0"), manifest(tmp_path / "w2")
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))


def test_labeler_foreground_rule(tmp_path, stand_in_teacher):
    data = textured(32, 64, seed=0)
    data[0, :, 32:] = np.clip(data[0, :, 32:], 20, 100)  # right chip: band 0 never above 0.5
    scene = write_tif(tmp_path / "s.tif", data)
    corpus = tmp_path / "c"
    result = tile_scene(Scene(0, str(scene)), TileSettings(corpus=str(corpus), chip_size=32))
    (corpus / "parts").mkdir(parents=True)
    writer = PartWriter(corpus / "parts")
    labeler = Labeler(stand_in_teacher, corpus, 0.0, writer)
    labeler.add(result)
    labeler.close()
    (record,) = part_records(corpus / "parts")
    rows = read_part(record).to_pylist()
    assert [r["reason"] for r in rows] == ["candidate", NO_FOREGROUND]
    assert rows[1]["foreground"] == 0.0 and rows[0]["foreground"] > 0.3
    assert all((corpus / r["mask_path"]).is_file() for r in rows)
    assert sum(rows[0]["class_hist"]) == 1024


def test_teacher_run_with_selection(scenes_dir, tmp_path, tiny_checkpoint):
    cfg = CurateConfig(chip_size=32, teacher=str(tiny_checkpoint), device="cpu", keep_fraction=0.5, min_foreground=0.0)
    summary = run_curate([str(scenes_dir)], tmp_path / "corpus", cfg)
    df = manifest(tmp_path / "corpus")
    labelled = df[df.entropy_mean.notna()]
    assert len(labelled) and labelled.mask_path.notna().all()
    for row in labelled.itertuples():
        assert (tmp_path / "corpus" / row.mask_path).is_file()
        assert sum(row.class_hist) == 32 * 32
    candidates = df[df.reason.isin(["kept", "high_entropy", "diversity"])]
    kept_by_rule = candidates[candidates.reason == "kept"]
    assert len(kept_by_rule) == int(np.ceil(0.5 * len(candidates)))
    if len(candidates) > len(kept_by_rule):
        assert kept_by_rule.entropy_mean.max() <= candidates[candidates.reason == "high_entropy"].entropy_mean.min()
    rules = {r["reason"]: r for r in summary["rules"]}
    assert rules["high_entropy"]["keep_fraction"] == 0.5
    assert rules["high_entropy"]["threshold"] == pytest.approx(float(kept_by_rule.entropy_mean.max()))
    assert rules["no_foreground"]["background"] == "background"
    assert summary["classes"] == ["background", "ship", "plane", "car"]
    assert sum(summary["class_pixels_kept"]) == 1024 * summary["kept"]
