import json
from pathlib import Path

import pytest

from s5cli.cli import app
from s5cli.config import load_config
from s5cli.curation.config import CurateConfig

REPO = Path(__file__).resolve().parents[2]


def test_yaml_defaults_are_the_config_defaults():
    path = REPO / "configs" / "curate.yaml"
    assert load_config(CurateConfig, path) == CurateConfig()
    text = path.read_text()
    for field in CurateConfig.model_fields:
        line = next(line for line in text.splitlines() if line.startswith(f"{field}:"))
        assert "#" in line  # every default is commented


def one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_missing_input_exits_2(runner, tmp_path):
    line = one_error_line(runner.invoke(app, ["curate", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "c")]))
    assert "no such file or folder" in line


def test_text_file_named_tif_exits_2(runner, tmp_path, not_a_raster):
    line = one_error_line(runner.invoke(app, ["curate", str(not_a_raster), "-o", str(tmp_path / "c")]))
    assert "not a readable raster" in line
    assert not (tmp_path / "c").exists()


def test_existing_output_exits_2(runner, tmp_path, scene_rgb):
    (tmp_path / "c").mkdir()
    line = one_error_line(runner.invoke(app, ["curate", str(scene_rgb), "-o", str(tmp_path / "c")]))
    assert "--overwrite" in line


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "one of them"),
        (["x.tif"], "missing -o"),
        (["x.tif", "-o", "c", "--overlap", "1.5"], "overlap"),
        (["x.tif", "-o", "c", "--shard", "2/2"], "0-based"),
        (["x.tif", "-o", "c", "--format", "webp"], "format"),
        (["x.tif", "-o", "c", "--bands", "0"], "--bands"),
    ],
)
def test_usage_errors_exit_2(runner, tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(runner.invoke(app, ["curate", *args]))
    assert message in line


def test_run_report_and_merge_through_the_cli(runner, tmp_path, scene_rgb):
    out = tmp_path / "corpus"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("chip_size: 48\nmin_std: 1.0\n")
    result = runner.invoke(
        app, ["curate", str(scene_rgb), "-o", str(out), "--config", str(cfg), "--overlap", "0.1667", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["merged"] and summary["chips"] == 6  # 96 x 80 at 48 px with 8 px overlap: 3 x 2
    assert json.loads((out / "curate.json").read_text())["plan"]["overlap"] == 0.1667
    result = runner.invoke(app, ["curate", "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert "kept" in result.stdout and "report_footprints.png" in result.stdout
    first = (out / "report_footprints.png").read_bytes()
    again = runner.invoke(app, ["curate", "--report", str(out)])  # can be re-run: the plots are redrawn
    assert again.exit_code == 0 and (out / "report_footprints.png").read_bytes() == first
    result = runner.invoke(app, ["curate", "--merge", str(out), "--overwrite", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["chips"] == 6
    line = one_error_line(runner.invoke(app, ["curate", "--report", str(tmp_path)]))
    assert "not a curate corpus" in line
