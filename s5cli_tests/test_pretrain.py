import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from s5cli.pretrain.fixmatch import FixMatchConfig, fixmatch_step

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "pretrain" / "tiny.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add contention on the shared 2-core machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Echo(nn.Module):
    """logits = w * 10 * x (3 bands -> 3 classes); records how it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.calls: list[dict] = []

    def forward(self, x: torch.Tensor, head: str) -> torch.Tensor:
        self.calls.append(
            {
                "x": x.detach().clone(),
                "head": head,
                "training": self.training,
                "grad": torch.is_grad_enabled(),
                "autocast": torch.is_autocast_enabled("cpu"),
            }
        )
        return self.w * 10.0 * x


def onehot(cls: torch.Tensor, k: int = 3) -> torch.Tensor:
    """(B, H, W) class map -> (B, K, H, W) one-hot float image."""
    return F.one_hot(cls, k).permute(0, 3, 1, 2).float()


def ce_map(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return -(logits.log_softmax(1).gather(1, label[:, None]))[:, 0]


def _batches():
    # labeled: 1 image of 4x4, classes 0..2, two ignored pixels
    y = torch.tensor([[[0, 1, 2, 0], [1, 1, 2, 2], [0, 0, 1, 1], [2, 2, 255, 255]]])
    x_l = onehot(y.clamp(max=2)) * 0.3
    # unlabeled: weak views whose left half is confidently class 1 and right half ambiguous (0.5, 0.5, 0)
    weak = torch.zeros(2, 3, 4, 4)
    weak[:, 1, :, :2] = 1.0
    weak[:, 0, :, 2:] = 0.5
    weak[:, 1, :, 2:] = 0.5
    strong = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ignore = torch.zeros(2, 4, 4, dtype=torch.long)
    ignore[:, 3, :] = 255  # the bottom row is padding
    box = torch.zeros(2, 4, 4, dtype=torch.bool)
    return {"image": x_l, "mask": y}, {"image_w": weak, "image_s": strong, "ignore": ignore, "box": box}


def test_confidence_mask_and_normalisation_by_non_ignored_pixels() -> None:
    batch_l, batch_u = _batches()
    model = Echo()
    loss, stats = fixmatch_step(model, batch_l, batch_u, None, FixMatchConfig(), head="toy")
    # confident: left half (2 columns) of the 3 non-padding rows, in both images = 12 of 24 valid pixels
    assert float(stats["mask_ratio"]) == 0.5
    logits_u = 10.0 * batch_u["image_s"]
    ce = ce_map(logits_u, torch.ones(2, 4, 4, dtype=torch.long))
    confident = torch.zeros(2, 4, 4, dtype=torch.bool)
    confident[:, :3, :2] = True
    expected_u = ce[confident].sum() / 24  # divided by NON-IGNORED pixels (24), not confident ones (12)
    assert float(stats["loss_u"]) == pytest.approx(float(expected_u), rel=1e-6)
    y = batch_l["mask"]
    ce_l = ce_map(10.0 * batch_l["image"], y.clamp(max=2))
    expected_x = ce_l[y != 255].mean()
    assert float(stats["loss_x"]) == pytest.approx(float(expected_x), rel=1e-6)
    assert float(loss.detach()) == pytest.approx(float(expected_x + expected_u) / 2, rel=1e-6)
    loss.backward()
    assert model.w.grad is not None and torch.isfinite(model.w.grad)


def test_teacher_in_eval_without_grad_or_autocast_then_student_under_autocast() -> None:
    batch_l, batch_u = _batches()
    model = Echo()
    fixmatch_step(
        model,
        batch_l,
        batch_u,
        None,
        FixMatchConfig(),
        head="toy",
        autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    )
    teacher, student = model.calls
    assert (teacher["training"], teacher["grad"], teacher["autocast"]) == (False, False, False)
    assert (student["training"], student["grad"], student["autocast"]) == (True, True, True)
    assert teacher["x"].shape[0] == 4  # weak + partner weak
    assert student["x"].shape[0] == 3  # ONE forward on labeled (1) + strong (2)
    assert model.training


def test_independent_partner_is_cut_mixed_into_image_label_and_ignore() -> None:
    batch_l, batch_u = _batches()
    box = torch.zeros(2, 4, 4, dtype=torch.bool)
    box[0, :2, 2:] = True  # top-right quarter of image 0 comes from its partner
    batch_u["box"] = box
    partner = {
        "image_w": onehot(torch.full((2, 4, 4), 2)),  # confidently class 2 everywhere
        "image_s": torch.full((2, 3, 4, 4), 0.7),
        "ignore": torch.zeros(2, 4, 4, dtype=torch.long),
        "box": torch.zeros(2, 4, 4, dtype=torch.bool),
    }
    partner["ignore"][0, 0, 3] = 255  # one padded pixel of the partner, inside the box
    model = Echo()
    _, stats = fixmatch_step(model, batch_l, batch_u, partner, FixMatchConfig(), head="toy")
    x_s = model.calls[1]["x"][1:]  # the strong half of the student's input
    assert torch.equal(x_s[0][:, box[0]], partner["image_s"][0][:, box[0]])
    assert torch.equal(x_s[0][:, ~box[0]], batch_u["image_s"][0][:, ~box[0]])
    assert torch.equal(x_s[1], batch_u["image_s"][1])
    # pseudo-labels: class 2 inside the box (partner, confident), class 1 on the confident left half
    label = torch.ones(2, 4, 4, dtype=torch.long)
    label[0, :2, 2:] = 2
    confident = torch.zeros(2, 4, 4, dtype=torch.bool)
    confident[:, :3, :2] = True
    confident[0, :2, 2:] = True
    confident[0, 0, 3] = False  # the partner's padding is ignored
    valid = torch.ones(2, 4, 4, dtype=torch.bool)
    valid[:, 3, :] = False
    valid[0, 0, 3] = False
    ce = ce_map(10.0 * x_s, label)
    assert float(stats["mask_ratio"]) == pytest.approx(15 / 23)
    assert float(stats["loss_u"]) == pytest.approx(float(ce[confident].sum() / valid.sum()), rel=1e-6)


def test_roll_partner_and_ema_teacher() -> None:
    batch_l, batch_u = _batches()
    batch_u["box"] = torch.ones(2, 4, 4, dtype=torch.bool)  # whole image from the partner
    batch_u["image_s"][1] = 0.25
    model, teacher = Echo(), Echo().eval()
    fixmatch_step(model, batch_l, batch_u, None, FixMatchConfig(partner="roll"), head="toy", teacher=teacher)
    assert len(teacher.calls) == 1 and len(model.calls) == 1  # pseudo-labels from the EMA copy only
    x_s = model.calls[0]["x"][1:]
    assert torch.equal(x_s[0], batch_u["image_s"][1])  # rolled by one: image 0's partner is image 1
    assert not teacher.training


def test_all_padding_batch_gives_zero_unlabeled_loss() -> None:
    batch_l, batch_u = _batches()
    batch_u["ignore"][:] = 255
    _, stats = fixmatch_step(Echo(), batch_l, batch_u, None, FixMatchConfig(), head="toy")
    assert float(stats["loss_u"]) == 0.0 and float(stats["mask_ratio"]) == 0.0


# ---- end to end -------------------------------------------------------------------------------


def _invoke(runner, args: list[str]):
    from s5cli.cli import app

    return runner.invoke(app, ["pretrain", *args])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_tiny_pretrain_through_the_cli(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s5cli.config import build_config
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.training.logs import read_metrics
    from s5cli.training.run_dir import RunDir, read_run_config

    monkeypatch.chdir(REPO)  # tiny.yaml names the fake data relative to the repository root
    run = tmp_path / "run"
    result = _invoke(runner, ["--config", str(TINY), "-o", str(run)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run / "model.pt")  # the one file to go on with, on stdout
    lines = result.stderr.splitlines()  # validation scores as training goes, and the file to use last
    assert [ln.split(" isaid_mIoU ")[0] for ln in lines if "validation:" in ln] == [
        "[4/8] validation:",
        "[8/8] validation:",
    ]
    assert lines[-1] == (
        f"the model to predict, evaluate and export with: {run / 'model.pt'} "
        "(best validation mean; the final weights are last.pt)"
    )
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml",
        "curves.png",
        "last.pt",  # the final weights
        "metrics.csv",
        "model.pt",  # the best validation mean so far, as in finetune
        "states",
    ]
    cfg = build_config(PretrainConfig, read_run_config(RunDir(run), PretrainConfig))
    assert cfg.output == run and cfg.model.preset == "vit-nano" and cfg.iterations == 8
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6, 8]
    for key in ("loss", "loss_x", "loss_u", "mask_ratio", "lr", "images_per_s", "data_wait"):
        assert all(math.isfinite(r[key]) for r in rows), key
    key = "val_isaid_mIoU"  # one validation path for every stage: <dataset>_<metric> and their mean
    assert key in rows[1] and key in rows[3] and key not in rows[0] and rows[3]["val_mean"] == rows[3][key]
    assert rows[0]["loss_x"] == pytest.approx(2 * rows[0]["loss"] - rows[0]["loss_u"], rel=1e-4)
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # the final checkpoint is in the shared format: predict and finetune --init rebuild it
    model, spec, ckpt = load_checkpoint(run / "last.pt")
    assert spec.preset == "vit-nano" and spec.heads[0].name == "isaid" and spec.heads[0].num_classes == 16
    assert ckpt["config"]["iterations"] == 8 and ckpt["extra"]["stage"] == "pretrain"
    assert model(torch.rand(1, 3, 32, 32), "isaid").shape == (1, 16, 32, 32)
    states = sorted(p.name for p in (run / "states").iterdir())
    assert states == ["state_00000004.pt", "state_00000008.pt"]
    state = torch.load(run / "states" / states[-1], weights_only=True)
    assert state["config"]["seed"] == 2025 and state["data"]["labeled"]["epoch"] >= 1
    # an existing run directory is refused without --resume / --overwrite
    again = _invoke(runner, ["--config", str(TINY), "-o", str(run)])
    assert again.exit_code == 2 and "exists" in again.output


def test_interrupted_run_resumes_exactly(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    base = ["--config", str(TINY), "--eval-every", "0", "--checkpoint-every", "0", "--amp", "off"]
    whole = _invoke(runner, [*base, "-o", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    stopped = _invoke(runner, [*base, "-o", str(tmp_path / "cut"), "--stop-after", "3"])
    assert stopped.exit_code == 0, stopped.output
    assert not (tmp_path / "cut" / "last.pt").exists() and stopped.stdout == ""  # no model yet
    assert (tmp_path / "cut" / "states" / "state_00000003.pt").is_file()
    resumed = _invoke(runner, ["-o", str(tmp_path / "cut"), "--resume"])  # config taken from the run
    assert resumed.exit_code == 0, resumed.output
    a, b = _weights(tmp_path / "whole" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the cut run also logged at its stop (3), so its row 4 averages 1 iteration instead of 2;
    # rows over the same iterations (2, 6, 8) match exactly: iteration, loss, loss_x, loss_u, mask_ratio
    rows = [
        {line.split(",")[0]: line.split(",")[:5] for line in (tmp_path / run / "metrics.csv").read_text().splitlines()}
        for run in ("whole", "cut")
    ]
    assert list(rows[1]) == ["iteration", "2", "3", "4", "6", "8"]
    assert [rows[0][k] for k in ("iteration", "2", "6", "8")] == [rows[1][k] for k in ("iteration", "2", "6", "8")]


def test_two_process_ddp_with_gloo(tmp_path: Path) -> None:
    script = tmp_path / "launch.py"
    script.write_text(
        "import sys, torch\n"
        "from s5cli.config import load_config\n"
        "from s5cli.pretrain.config import PretrainConfig\n"
        "from s5cli.pretrain.run import plan_pretrain\n"
        "from s5cli.training.stage import train_stage\n"
        "from s5cli.training.distributed import init_distributed, shutdown_distributed\n"
        "out = sys.argv[2]\n"
        "cfg = load_config(PretrainConfig, sys.argv[1], {'output': out, 'micro_batch_size': 1, 'iterations': 4})\n"
        "dist = init_distributed('cpu')\n"
        "result, run, _ = train_stage(cfg, plan_pretrain, dist, 'pretrain')\n"
        "torch.save(result.model.state_dict(), f'{out}-rank{dist.rank}.pt')\n"
        "print('rank', dist.rank, 'of', dist.world_size, 'done', result.iteration)\n"
        "shutdown_distributed(dist)\n"
    )
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "S5_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]  # a free port
    proc = subprocess.run(
        [*cmd, str(script), str(TINY), str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 of 2 done 4" in proc.stdout and "rank 1 of 2 done 4" in proc.stdout
    w0 = torch.load(f"{out}-rank0.pt", weights_only=True)
    w1 = torch.load(f"{out}-rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # DDP kept the ranks in step
    assert (out / "metrics.csv").is_file() and (out / "config.yaml").is_file()  # written by rank 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,loss,loss_x,loss_u,mask_ratio,lr,images_per_s,data_wait")


# ---- config and CLI mapping -------------------------------------------------------------------


def test_options_land_in_their_fields(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s5cli.config import load_config
    from s5cli.pretrain import run as run_module
    from s5cli.pretrain.config import PretrainConfig

    seen = {}

    def fake_run(cfg: PretrainConfig) -> Path:
        seen["cfg"] = cfg
        return tmp_path / "x"

    monkeypatch.setattr(run_module, "run_pretrain", fake_run)
    args = [
        "--config", str(TINY), "-o", str(tmp_path / "r"), "--device", "cpu", "--seed", "7", "--stop-after", "2",
        "--data-root", "d", "--labeled", "loveda", "--unlabeled-manifest", "m.parquet", "--preset", "vit-tiny",
        "--init", "i.pt", "--crop-size", "64", "--iterations", "9", "--global-batch-size", "8",
        "--micro-batch-size", "4", "--lr", "0.5", "--amp", "off", "--teacher", "ema", "--workers", "3",
        "--eval-every", "5",
        "--checkpoint-every", "6", "--overwrite",
    ]  # fmt: skip
    result = _invoke(runner, args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    base = load_config(PretrainConfig, TINY)
    assert cfg.output == tmp_path / "r" and cfg.device == "cpu" and cfg.seed == 7 and cfg.stop_after == 2
    assert cfg.labeled.data_root == Path("d") and cfg.labeled.dataset == "loveda"
    assert cfg.labeled.options == base.labeled.options  # untouched fields keep the file's values
    assert cfg.unlabeled.manifest == Path("m.parquet") and cfg.unlabeled.folder is None
    assert (cfg.model.preset, cfg.model.init, cfg.crop_size) == ("vit-tiny", Path("i.pt"), 64)
    assert (cfg.iterations, cfg.global_batch_size, cfg.micro_batch_size, cfg.optim.lr) == (9, 8, 4, 0.5)
    assert (cfg.amp, cfg.fixmatch.teacher, cfg.workers, cfg.eval_every, cfg.checkpoint_every) == ("off", "ema", 3, 5, 6)
    assert cfg.overwrite and not cfg.resume


def test_bad_config_key_is_one_line_exit_2(runner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("iterations: 8", "iteratons: 8"))
    result = _invoke(runner, ["--config", str(bad), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {bad}: unknown key 'iteratons'"]
    assert not (tmp_path / "run").exists()


def test_batch_must_divide_over_processes(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = _invoke(runner, ["--config", str(TINY), "-o", str(tmp_path / "run"), "--micro-batch-size", "3"])
    assert result.exit_code == 2
    assert "global_batch_size 4 is not divisible" in result.output


def test_unlabeled_source_can_be_a_curate_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s5cli.config import build_config, read_yaml
    from s5cli.curation.config import CurateConfig
    from s5cli.curation.pipeline import run_curate
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.pretrain.run import run_pretrain
    from s5cli_tests.scenes import make_scene

    make_scene(tmp_path / "a.tif", width=96, height=80, seed=1)
    run_curate([str(tmp_path / "a.tif")], tmp_path / "corpus", CurateConfig(chip_size=32))
    monkeypatch.chdir(REPO)
    data = read_yaml(TINY)
    data.update(
        output=str(tmp_path / "run"),
        unlabeled={"manifest": str(tmp_path / "corpus" / "manifest.parquet")},
        iterations=2,
        eval_every=0,
        checkpoint_every=0,
    )
    out = run_pretrain(build_config(PretrainConfig, data))
    assert out == tmp_path / "run" / "model.pt" and out.is_file()
    assert read_yaml(tmp_path / "run" / "config.yaml")["unlabeled"] == {
        "manifest": "../corpus/manifest.parquet",  # relative to the run: the two can move together
        "folder": None,
    }


def test_labeled_source_can_be_a_custom_gis_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s5cli.config import build_config, read_yaml
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli.pretrain.config import PretrainConfig
    from s5cli.pretrain.run import run_pretrain
    from s5cli_tests.scenes import make_custom_dataset

    # 4 bands of 12-bit values stored in uint16, read as bands 2-4 / 4095
    spec = make_custom_dataset(tmp_path, scene_bands=4, scene_dtype="uint16", bands=[2, 3, 4], scale=4095)
    monkeypatch.chdir(REPO)
    data = read_yaml(TINY)
    data.update(
        output=str(tmp_path / "run"),
        labeled={"dataset": "custom", "root": str(tmp_path / "mytown.yaml")},
        iterations=2,
        eval_every=2,
        checkpoint_every=0,
    )
    out = run_pretrain(build_config(PretrainConfig, data))
    model, spec_out, ckpt = load_checkpoint(out)
    assert model(torch.rand(1, 3, 32, 32), "mytown").shape == (1, 3, 32, 32)
    assert [h.name for h in spec_out.heads] == ["mytown"] and spec_out.heads[0].classes == spec["classes"]
    assert "val_mytown_mIoU" in ckpt["extra"]["metrics"]
    contract = spec_out.input.for_head("mytown")  # how the labeled data were read, for predict
    assert (contract.source_bands, contract.scale, contract.dtype, contract.gsd) == ([2, 3, 4], 4095.0, "uint16", 0.5)


def test_labeled_option_takes_a_dataset_yaml_as_finetune_does(runner, tmp_path: Path, monkeypatch) -> None:
    """`s5 pretrain --labeled trees.yaml` (relative, as typed) with no --data-root."""
    import yaml

    from s5cli.config import read_yaml
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli_tests.scenes import make_custom_dataset

    make_custom_dataset(tmp_path)
    data = read_yaml(TINY)
    del data["labeled"]  # isaid's loader options do not apply to your own data
    data["unlabeled"] = {"folder": str(REPO / "s5cli_tests" / "data" / "million-aid")}
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    args = ["--config", "pretrain.yaml", "--labeled", "mytown.yaml", "--iterations", "2", "-o", "run"]
    result = _invoke(runner, [*args, "--eval-every", "0", "--checkpoint-every", "0"])
    assert result.exit_code == 0, result.output
    assert [h.name for h in load_checkpoint(tmp_path / "run" / "model.pt")[1].heads] == ["mytown"]
    assert read_yaml(tmp_path / "run" / "config.yaml")["labeled"]["dataset"] == "../mytown.yaml"
    missing = _invoke(runner, ["--config", "pretrain.yaml", "--labeled", "isaid", "-o", "run2"])
    assert missing.exit_code == 2
    assert missing.stderr.strip().endswith(
        "give --data-root (a folder holding isaid/), labeled.root (the dataset folder) or --labeled YOUR_DATASET.yaml"
    )
