"""Values no run can use, refused as one line (exit 2) before any work, with nothing left on disk.

Config values are checked in the schema that defines them (optimiser, schedule, run settings, detection
options, loader options), sizes against what the model takes, torchrun's variables at start, and Typer's
own usage errors print one line like every other error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from s5cli_tests import scenes
from s5cli_tests.reliability.helpers import DATA, REPO, empty, invoke, last_line_error, one_line_error, snapshot

FINETUNE_TINY = REPO / "configs" / "finetune" / "tiny.yaml"


def tiny_config(tmp: Path, base: Path, changes: dict) -> Path:
    """A copy of a tiny config with dotted keys changed (written as YAML, so .nan/.inf are YAML's own)."""
    from s5cli.config import set_dotted

    data = yaml.safe_load(base.read_text())
    for key, value in changes.items():
        set_dotted(data, key, value)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# case -> (dotted changes to the tiny finetune config, fragment of the error line)
FINETUNE_VALUES = {
    "lr_nan": ({"optim.lr": float("nan")}, "key 'optim.lr': Input should be a finite number"),
    "lr_inf": ({"optim.lr": float("inf")}, "key 'optim.lr': Input should be a finite number"),
    "lr_negative": ({"optim.lr": -1e-3}, "key 'optim.lr': Input should be greater than 0"),
    "weight_decay_negative": ({"optim.weight_decay": -0.1}, "key 'optim.weight_decay': Input should be greater"),
    "beta_past_one": ({"optim.betas": [0.9, 1.5]}, "key 'optim.betas.1': Input should be less than 1"),
    "sgd_momentum_negative": ({"optim.name": "sgd", "optim.momentum": -0.9}, "key 'optim.momentum'"),
    "layer_decay_negative": ({"optim.layer_decay": -0.5}, "key 'optim.layer_decay': Input should be greater than 0"),
    "gamma_nan": ({"schedule.name": "step", "schedule.gamma": float("nan")}, "key 'schedule.gamma'"),
    "seed_past_64_bits": ({"seed": 2**64}, "key 'seed': Input should be less than"),
    "dataset_weight_inf": ({"dataset_settings.potsdam.weight": float("inf")}, "dataset_settings.potsdam.weight"),
    "rpn_samples_zero": ({"model.detection.rpn_samples": 0}, "key 'rpn_samples': Input should be greater than"),
    "fpn_channels_negative": ({"model.detection.fpn_channels": -32}, "key 'fpn_channels': Input should be greater"),
    "nul_in_a_path": ({"model.init": "s4p\x00.pt"}, "key 'model.init': holds a NUL byte"),
}


@pytest.mark.parametrize("case", list(FINETUNE_VALUES))
def test_finetune_refuses_values_no_run_can_use(runner, tmp_path: Path, case: str) -> None:
    changes, fragment = FINETUNE_VALUES[case]
    config = tiny_config(tmp_path, FINETUNE_TINY, changes)
    out = tmp_path / "out"
    args = ["--config", config, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "run"]
    line = one_line_error(invoke(runner, "-q", "finetune", *args), fragment)
    assert line.startswith(f"error: {config}: "), line
    empty(out)


# Values that pass the schema but fit no dataset of the run: refused after the datasets are found
# (the fake Potsdam's partial-split warning comes first), before the run directory exists.
FINETUNE_DATA_VALUES = {
    "settings_key_typo": (
        {"dataset_settings.potsdm.weight": 2.0},
        "dataset_settings.potsdm names no dataset of this run; the datasets are: potsdam",
    ),
    "negative_crop_option": (
        {"dataset_settings.potsdam.options.crop_size": -512},
        "potsdam option crop_size must be a whole number of pixels >= 1, got -512",
    ),
}


@pytest.mark.parametrize("case", list(FINETUNE_DATA_VALUES))
def test_finetune_refuses_settings_that_fit_no_dataset(runner, tmp_path: Path, case: str) -> None:
    changes, fragment = FINETUNE_DATA_VALUES[case]
    config = tiny_config(tmp_path, FINETUNE_TINY, changes)
    out = tmp_path / "out"
    args = ["--config", config, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "run"]
    last_line_error(invoke(runner, "-q", "finetune", *args), fragment)
    empty(out)


def test_evaluate_refuses_a_settings_key_of_no_dataset(runner, tmp_path: Path, ckpts) -> None:
    config = tmp_path / "evaluate.yaml"
    config.write_text("datasets: [potsdam]\ndataset_settings:\n  potsdm: {split: test}\n")
    out = tmp_path / "out"
    args = [ckpts["potsdam"], "--config", config, "--data-root", DATA, "-o", out / "m.csv"]
    last_line_error(invoke(runner, "evaluate", *args), "dataset_settings.potsdm names no dataset of this run")
    empty(out)


def test_evaluate_refuses_a_patch_gap_not_below_the_patch_size(runner, tmp_path: Path, ckpts) -> None:
    config = tmp_path / "evaluate.yaml"
    config.write_text("datasets: [dota-v1.0]\ndet_size: 64\npatch_gap: 64\n")
    out = tmp_path / "out"
    result = invoke(runner, "evaluate", ckpts["dota"], "--config", config, "--data-root", DATA, "-o", out / "m.csv")
    one_line_error(result, "the patch gap (64 px) must be smaller than the patch size (64 px)")
    empty(out)


def test_prepare_refuses_a_zero_patch_size(runner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(runner, "prepare", "dota-v1.0", "--data-root", DATA, "-o", out / "p", "--patch-size", 0)
    one_line_error(result, "need 0 <= gap < patch size, got patch size 0")
    empty(out)


# ---- sizes the model cannot take ----------------------------------------------------------------------

TOO_SMALL = "below the model's minimum of 32 px (two 16 px patches, so that its coarsest feature map keeps a cell)"


@pytest.mark.parametrize("role", ["seg", "det"])
def test_predict_refuses_tiles_below_the_models_minimum(runner, tmp_path: Path, ckpts, role: str) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    result = invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", ckpts[role], "--tile-size", 16)
    assert one_line_error(result, TOO_SMALL) == f"error: the tile size (16 px) is {TOO_SMALL}"
    empty(out)


@pytest.mark.parametrize("role, dataset, option", [("potsdam", "potsdam", "--tile-size"), ("dota", "dota-v1.0", "")])
def test_evaluate_refuses_tiles_below_the_models_minimum(runner, tmp_path, ckpts, role, dataset, option) -> None:
    out = tmp_path / "out"
    args = [ckpts[role], "--datasets", dataset, "--data-root", DATA, "-o", out / "m.csv"]
    if option:
        args += [option, 16]
    else:  # detection: the patch size, through the config (the CLI's --det-size starts at 32)
        config = tmp_path / "e.yaml"
        config.write_text("det_size: 16\n")
        args += ["--config", config]
    result = invoke(runner, "evaluate", *args)
    if option:
        last_line_error(result, f"the tile size (16 px) is {TOO_SMALL}")
    else:
        last_line_error(result, "key 'det_size': Input should be greater than or equal to 32")
    empty(out)


def test_predict_refuses_a_sieve_not_smaller_than_the_scene(runner, tmp_path: Path, ckpts) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    result = invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"], "--sieve", 100000)
    line = one_line_error(result, "--sieve 100000 px is not smaller than the scene (40x40 px)")
    assert line.startswith(f"error: {scene}: ")
    one_px = scenes.make_scene(tmp_path / "one.tif", width=1, height=1, nodata_border=0)
    result = invoke(runner, "predict", one_px, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"])
    one_line_error(result, "--sieve 4 px is not smaller than the scene (1x1 px); give a smaller --sieve, or --sieve 0")
    empty(out)


def test_a_one_pixel_scene_without_sieve_is_predicted(runner, tmp_path: Path, ckpts) -> None:
    import pyogrio

    one_px = scenes.make_scene(tmp_path / "one.tif", width=1, height=1, nodata_border=0)
    out = tmp_path / "out"
    args = [one_px, "-o", out / "o.gpkg", "--raster", out / "o.tif", "--checkpoint", ckpts["seg"], "--sieve", 0]
    result = invoke(runner, "predict", *args)
    assert result.exit_code == 0, result.stderr
    frame = pyogrio.read_dataframe(out / "o.gpkg")
    assert len(frame) == 1 and frame.area_m2.sum() == pytest.approx(0.25)  # the one 0.5 m pixel


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--gsd", "inf", "--gsd: Value error, gsd must be positive, finite metres"),
        ("--gsd", "nan", "--gsd: Value error, gsd must be positive, finite metres"),
        ("--overlap", "1.0", "--overlap: Input should be less than 1"),
        ("--min-area", "nan", "--min-area: Input should be a finite number"),
    ],
)
def test_predict_refuses_nonsense_numbers(runner, tmp_path: Path, ckpts, option: str, value: str, fragment) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    result = invoke(runner, "predict", scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"], option, value)
    one_line_error(result, fragment)
    empty(out)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--bands", "99"], "s.tif: has 3 band(s); --bands asks for band 99"),
        (["--bands", "1e20"], "--bands takes 1-based band numbers such as 1,2,3, not '1e20'"),
        (["--gsd", "inf"], "--gsd: Input should be a finite number"),
        (["--chip-size", "8"], "--chip-size: Input should be greater than or equal to 16"),
    ],
)
def test_curate_refuses_options_no_scene_can_use(runner, tmp_path: Path, args: list, fragment: str) -> None:
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    out = tmp_path / "out"
    one_line_error(invoke(runner, "curate", scene, "-o", out / "corpus", "--chip-size", 32, *args), fragment)
    empty(out)


# ---- torchrun's environment ----------------------------------------------------------------------------

TORCHRUN_ENVS = {
    "world_size_not_a_number": (
        {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "abc"},
        "WORLD_SIZE='abc' from the environment is not a whole number",
    ),
    "rank_without_master_addr": (
        {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": None},
        "RANK, LOCAL_RANK, WORLD_SIZE set but MASTER_ADDR not: launch with torchrun, or unset RANK",
    ),
    "rank_alone": (
        {"RANK": "1"},
        "RANK set but LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not: launch with torchrun",
    ),
    "rank_outside_the_world": (
        {"RANK": "5", "LOCAL_RANK": "0", "WORLD_SIZE": "2"},
        "RANK=5 from the environment is outside 0..1 (WORLD_SIZE=2)",
    ),
    "port_not_a_port": ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "99999"}, "MASTER_PORT"),
}


@pytest.mark.parametrize("command", ["finetune", "predict", "curate"])
@pytest.mark.parametrize("case", list(TORCHRUN_ENVS))
def test_torchrun_variables_that_make_no_sense(runner, tmp_path, ckpts, monkeypatch, case, command) -> None:
    env, fragment = TORCHRUN_ENVS[case]
    full = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"} if len(env) > 1 else {}
    for name, value in {**full, **env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    scene = scenes.make_scene(tmp_path / "s.tif", width=40, height=40)
    args = {
        "finetune": ["--config", FINETUNE_TINY, "--datasets", "potsdam", "--data-root", DATA, "-o", out / "run"],
        "predict": [scene, "-o", out / "o.gpkg", "--checkpoint", ckpts["seg"]],
        "curate": [scene, "-o", out / "corpus", "--chip-size", 32],
    }[command]
    last_line_error(invoke(runner, "-q", command, *args), fragment)  # refused at start: nothing hangs
    empty(out)


# ---- Typer's own usage errors ----------------------------------------------------------------------------

USAGE_ERRORS = {
    "unknown_command": (["nosuch"], "error: s5: No such command 'nosuch'. (see s5 --help)"),
    "unknown_option": (["predict", "--nosuch"], "error: s5 predict: No such option: --nosuch (see s5 predict --help)"),
    "not_a_number": (["predict", "s.tif", "--tile-size", "big"], "error: s5 predict: Invalid value for '--tile-size'"),
    "below_a_bound": (["demo", "--scene-size", "100"], "error: s5 demo: Invalid value for '--scene-size'"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_errors_are_one_line(runner, tmp_path: Path, case: str) -> None:
    args, start = USAGE_ERRORS[case]
    before = snapshot(tmp_path)
    assert one_line_error(invoke(runner, *args)).startswith(start)
    assert snapshot(tmp_path) == before
