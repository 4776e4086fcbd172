import json

import pytest
from PIL import Image

from s5cli.curation.config import CurateConfig
from s5cli.curation.pipeline import run_curate
from s5cli.curation.report import PLOTS, report
from s5cli.errors import InputError


def test_report_writes_three_pngs(scenes_dir, tmp_path, tiny_checkpoint):
    out = tmp_path / "corpus"
    cfg = CurateConfig(chip_size=32, teacher=str(tiny_checkpoint), device="cpu", keep_fraction=0.6)
    run_curate([str(scenes_dir)], out, cfg)
    summary = report(out)
    assert [p.split("/")[-1] for p in summary["plots"]] == list(PLOTS)
    for name in PLOTS:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] >= 400
    state = json.loads((out / "curate.json").read_text())["summary"]
    assert summary["kept"] == state["kept"] and summary["reasons"] == state["reasons"]
    assert len(report(out)["plots"]) == 3  # a rerun redraws the plots


def test_report_without_teacher_draws_the_map_only(scenes_dir, tmp_path):
    out = tmp_path / "corpus"
    run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32))
    summary = report(out, max_shapes=5)
    assert [p.split("/")[-1] for p in summary["plots"]] == ["report_footprints.png"]


def test_report_of_unfinished_corpus(scenes_dir, tmp_path):
    out = tmp_path / "corpus"
    run_curate([str(scenes_dir)], out, CurateConfig(chip_size=32, shard="0/2"))
    with pytest.raises(InputError, match="not finished"):
        report(out)
