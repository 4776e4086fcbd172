import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s5cli.cli import app
from s5cli.config import load_config
from s5cli.finetune.config import FinetuneConfig
from s5cli.finetune.step import LossTerm, MultiDatasetModel, mdf_step, segmentation_loss

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "configs" / "finetune" / "tiny.yaml"
DATA = REPO / "s5cli_tests" / "data"
THREE = "potsdam,loveda,dior-r"
_RUNS: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add contention on the shared 2-core machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(runner, command: str, args: list[str]):
    return runner.invoke(app, [command, *[str(a) for a in args]])


def trained_run(runner, tmp_path_factory) -> Path:
    """A tiny MoE-MDF run on the fake potsdam, loveda and dior-r, trained once per test session."""
    if "three" not in _RUNS:
        run = tmp_path_factory.mktemp("mdf") / "run"
        args = ["--config", TINY, "--datasets", THREE, "--data-root", DATA, "-o", run, "--iterations", 6]
        result = invoke(runner, "finetune", args)
        assert result.exit_code == 0, result.output
        _RUNS["three"] = run
    return _RUNS["three"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _tiny_cfg(datasets: list[str], **over) -> FinetuneConfig:
    return load_config(FinetuneConfig, TINY, {"datasets": datasets, "data_root": str(DATA), **over})


# ---- the step ----------------------------------------------------------------------------------


def _fixed_batches(cfg: FinetuneConfig):
    from s5cli.finetune.data import load_split, plan_datasets, train_view

    plans = plan_datasets(cfg)
    batches = {}
    for plan in plans:
        view, collate = train_view(plan, load_split(plan, plan.split), cfg)
        batches[plan.name] = collate([view[(i % len(view), 11 + i)] for i in range(2)])
    return plans, batches


def test_every_head_learns_on_a_fixed_batch() -> None:
    from s5cli.finetune.model import build_finetune_model

    cfg = _tiny_cfg(["potsdam", "loveda", "dior-r"])
    plans, batches = _fixed_batches(cfg)
    assert batches["dior-r"]["targets"][0]["boxes"].shape[1] == 5  # polygons became rotated boxes
    torch.manual_seed(0)
    net = build_finetune_model(cfg, [p.head for p in plans])
    assert net.spec.moe and net.head_names == ["potsdam", "loveda", "dior-r"]
    terms = [LossTerm(p.name, p.task, p.head.num_classes) for p in plans]
    model = MultiDatasetModel(net, terms).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(12):
        loss, stats = mdf_step(model, batches, terms, epoch=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({k: float(v) for k, v in stats.items()})
    for name in ("potsdam", "loveda", "dior-r"):
        first, last = history[0][f"loss_{name}"], history[-1][f"loss_{name}"]
        assert last < 0.8 * first, (name, first, last)
    total = history[0]["loss_potsdam"] + history[0]["loss_loveda"] + history[0]["loss_dior-r"]
    assert history[0]["loss"] == pytest.approx(total, rel=1e-5)


def test_weights_start_epochs_and_routing_isolation() -> None:
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    heads = [HeadSpec(name=n, classes=["a", "b", "c"]) for n in ("vaihingen", "potsdam")]
    torch.manual_seed(0)
    net = build_model(ModelSpec(preset="vit-nano", heads=heads, moe=True, expert_width=16, decoder_channels=16))
    terms = [
        LossTerm("vaihingen", "segmentation", 3, weight=1.0, start_epoch=70),
        LossTerm("potsdam", "segmentation", 3, 0.5),
    ]
    model = MultiDatasetModel(net, terms).train()
    gen = torch.Generator().manual_seed(1)
    batch = {"image": torch.rand(2, 3, 32, 32, generator=gen), "mask": torch.randint(0, 3, (2, 32, 32), generator=gen)}
    batches = {"vaihingen": batch, "potsdam": batch}
    loss, stats = mdf_step(model, batches, terms, epoch=69)
    assert set(stats) == {"loss_potsdam", "loss"}  # vaihingen is not even forwarded before epoch 70
    assert float(loss.detach()) == pytest.approx(0.5 * float(stats["loss_potsdam"]))
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.requires_grad}
    assert all(g is None for n, g in grads.items() if "heads.vaihingen" in n or ".experts.0." in n)
    assert all(g is not None for n, g in grads.items() if "heads.potsdam" in n or ".experts.1." in n)
    net.zero_grad(set_to_none=True)
    loss, stats = mdf_step(model, batches, terms, epoch=70)
    assert float(loss.detach()) == pytest.approx(
        float(stats["loss_vaihingen"]) + 0.5 * float(stats["loss_potsdam"]), rel=1e-6
    )


def test_segmentation_loss_ignores_255_and_classes_past_the_head() -> None:
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 0, 0, 0] = 2.0  # pixel 0: class 0 likely
    mask = torch.tensor([[[0, 5, 255]]])  # 5 = ISPRS clutter with a 5-class head: ignored too
    expected = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
    assert float(segmentation_loss(logits, mask)) == pytest.approx(float(expected))
    empty = segmentation_loss(logits.requires_grad_(), torch.full((1, 1, 3), 255))
    assert float(empty) == 0.0 and empty.requires_grad


def test_per_dataset_batch_sizes_and_repetition_to_the_longest() -> None:
    from s5cli.finetune.data import plan_datasets
    from s5cli.finetune.run import _streams
    from s5cli.training.distributed import DistContext

    cfg = _tiny_cfg(["potsdam", "loveda", "dior-r"], dataset_settings={"dior-r": {"batch_size": 1}})
    streams = _streams(cfg, plan_datasets(cfg), DistContext())
    assert {n: s.batch_size for n, s in streams.items()} == {"potsdam": 2, "loveda": 2, "dior-r": 1}
    assert {n: len(s.loader.dataset) for n, s in streams.items()} == {"potsdam": 3, "loveda": 3, "dior-r": 3}
    assert next(streams["dior-r"])["image"].shape == (1, 3, 64, 64)  # DIOR-R's 32 px long side resized to 64
    assert next(streams["loveda"])["mask"].shape == (2, 32, 32)


# ---- model initialisation ----------------------------------------------------------------------


def _s4p_checkpoint(path: Path) -> Path:
    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec
    from s5cli_tests.models.tiny import randomise

    spec = ModelSpec(
        preset="vit-nano",
        heads=[HeadSpec(name="isaid", classes=[f"c{i}" for i in range(16)])],
        img_size=32,
        decoder_channels=32,
    )
    torch.manual_seed(3)
    return save_checkpoint(path, randomise(build_model(spec), 3).eval())


def test_init_upcycles_an_s4p_checkpoint_function_preserving(tmp_path: Path) -> None:
    from s5cli.errors import InputError
    from s5cli.finetune.data import plan_datasets
    from s5cli.finetune.model import build_finetune_model
    from s5cli.models.checkpoint import load_checkpoint, save_checkpoint

    init = _s4p_checkpoint(tmp_path / "s4p.pt")
    dense, _, _ = load_checkpoint(init)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = _tiny_cfg(["potsdam", "loveda"], **{"model.init": str(init), "model.drop_path": 0.0})
    plans = plan_datasets(cfg)
    assert [p.head.num_classes for p in plans] == [5, 7]  # S5's 5 ISPRS classes (clutter ignored)
    moe = build_finetune_model(cfg, [p.head for p in plans]).eval()
    assert moe.spec.moe and moe.spec.expert_width == 16
    assert [h.input.size for h in moe.spec.heads] == [32, 32]  # each head records its trained crop
    with torch.no_grad():
        reference = dense.features(x)
        for name in ("potsdam", "loveda"):
            for a, b in zip(moe.features(x, name), reference):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            decoded = moe.heads[name].decoder(moe.features(x, name))
            torch.testing.assert_close(decoded, dense.heads["isaid"].decoder(reference), rtol=1e-5, atol=1e-5)
    single = build_finetune_model(_tiny_cfg(["loveda"], **{"model.init": str(init)}), [plans[1].head]).eval()
    assert not single.spec.moe and single.head_names == ["loveda"]
    with torch.no_grad():
        for a, b in zip(single.features(x, "loveda"), reference):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # a checkpoint that already has experts only continues the same datasets
    save_checkpoint(tmp_path / "moe.pt", moe)
    other = _tiny_cfg(["potsdam", "vaihingen"], **{"model.init": str(tmp_path / "moe.pt")})
    with pytest.raises(InputError, match="already has experts"):
        build_finetune_model(other, [p.head for p in plan_datasets(other)])


def test_layer_decay_is_applied_to_the_finetune_optimizer(tmp_path: Path) -> None:
    """One AdamW step moves each weight by about its group's lr: block i gets lr * decay ** (depth - i)."""
    from s5cli.finetune.run import run_finetune

    init = _s4p_checkpoint(tmp_path / "s4p.pt")
    before = _weights(init)
    over = {
        "output": str(tmp_path / "run"), "iterations": 1, "model.init": str(init), "dataset_settings": {
            "potsdam": {"val_split": "none"}}, "optim": {"lr": 0.01, "weight_decay": 0.0, "layer_decay": 0.5},
        "schedule": {"name": "constant"},
    }  # fmt: skip
    out = run_finetune(_tiny_cfg(["potsdam"], **over))
    after = _weights(out)

    def step(name: str) -> float:
        return float((after[name] - before[name]).abs().max())

    # vit-nano has depth 2: embeddings 0.5 ** 3, block 0 0.5 ** 2, block 1 0.5 ** 1, FPN and heads 0.5 ** 0
    assert step("backbone.patch_embed.proj.weight") == pytest.approx(0.01 * 0.125, rel=0.02)
    assert step("backbone.blocks.0.attn.qkv.weight") == pytest.approx(0.01 * 0.25, rel=0.02)
    assert step("backbone.blocks.1.mlp.fc1.weight") == pytest.approx(0.01 * 0.5, rel=0.02)
    assert step("fpn.fpn1.0.weight") == pytest.approx(0.01, rel=0.02)


def test_detection_learns_its_position_grid_at_its_own_size(tmp_path: Path) -> None:
    """As the official detection config: the S4P 32 x 32 grid is resampled once to the detection input's grid
    and trained there (no resampling per forward at that size); pos_embed gets no weight decay when named."""
    from s5cli.finetune.data import plan_datasets
    from s5cli.finetune.model import build_finetune_model
    from s5cli.models.vit import resample_grid
    from s5cli.training.optim import OptimConfig, param_groups

    init = _s4p_checkpoint(tmp_path / "s4p.pt")
    cfg = _tiny_cfg(["dior-r"], **{"model.init": str(init)})
    plans = plan_datasets(cfg)
    net = build_finetune_model(cfg, [p.head for p in plans])
    side = cfg.det_size // 16
    assert net.spec.img_size == cfg.det_size and net.backbone.pos_embed.shape[1] == side * side
    expected = resample_grid(_weights(init)["backbone.pos_embed"], side)
    torch.testing.assert_close(net.backbone.pos_embed.detach(), expected)
    groups = param_groups(net, OptimConfig(weight_decay=0.05, no_decay=["backbone.pos_embed"]))
    decay = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert decay["backbone.pos_embed"] == 0.0 and decay["backbone.blocks.0.attn.qkv.weight"] == 0.05


def test_paper_model_selection_is_the_mean_miou_without_flip() -> None:
    from s5cli.finetune.data import plan_datasets
    from s5cli.finetune.run import _validator

    cfg = _tiny_cfg(["potsdam"], protocol="paper")
    validator = _validator(plan_datasets(cfg), cfg)
    ((job, _),) = validator.jobs
    assert job.settings.paper and not job.settings.flip and validator.select == "mIoU"
    standard = _validator(plan_datasets(_tiny_cfg(["potsdam"])), _tiny_cfg(["potsdam"]))
    assert standard.jobs[0][0].settings.flip and standard.select is None  # Potsdam: mF1 with flip TTA


# ---- end to end --------------------------------------------------------------------------------


def test_three_datasets_train_through_the_cli(runner, tmp_path_factory) -> None:
    from s5cli.models.checkpoint import load_checkpoint
    from s5cli.training.logs import read_metrics

    run = trained_run(runner, tmp_path_factory)
    names = sorted(p.name for p in run.iterdir())
    assert names == ["best.pt", "checkpoint.pt", "checkpoints", "config.yaml", "curves.png", "metrics.csv"]
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [5, 6]
    for key in ("loss_potsdam", "loss_loveda", "loss_dior-r", "dior-r/loss_rpn_cls", "loss", "lr"):
        assert all(math.isfinite(r[key]) for r in rows), key
    last = rows[-1]
    for key in ("val_potsdam_mF1", "val_loveda_mIoU", "val_dior-r_mAP", "val_mean"):
        assert 0.0 <= last[key] <= 1.0, key
    scores = [last["val_potsdam_mF1"], last["val_loveda_mIoU"], last["val_dior-r_mAP"]]
    assert last["val_mean"] == pytest.approx(sum(scores) / 3, abs=1e-5)
    model, spec, ckpt = load_checkpoint(run / "checkpoint.pt")
    assert spec.moe and [h.name for h in spec.heads] == ["potsdam", "loveda", "dior-r"]
    assert [h.task for h in spec.heads] == ["segmentation", "segmentation", "detection"]
    assert ckpt["extra"]["stage"] == "finetune"
    assert {h.name: h.input.size for h in spec.heads} == {"potsdam": 32, "loveda": 32, "dior-r": 64}
    best = load_checkpoint(run / "best.pt")[2]["extra"]
    assert best["best_score"] == pytest.approx(last["val_mean"], abs=1e-5)
    assert model(torch.rand(1, 3, 32, 32), "loveda").shape == (1, 7, 32, 32)


def test_interrupted_run_resumes_exactly(runner, tmp_path: Path) -> None:
    base = ["--config", TINY, "--datasets", "potsdam", "--data-root", DATA, "--iterations", 4, "--eval-every", 0]
    whole = invoke(runner, "finetune", [*base, "-o", tmp_path / "whole"])
    assert whole.exit_code == 0, whole.output
    cut = invoke(runner, "finetune", [*base, "-o", tmp_path / "cut", "--stop-after", 2])
    assert cut.exit_code == 0, cut.output
    assert not (tmp_path / "cut" / "checkpoint.pt").exists()
    assert (tmp_path / "cut" / "checkpoints" / "state_00000002.pt").is_file()
    resumed = invoke(runner, "finetune", ["-o", tmp_path / "cut", "--resume"])  # config taken from the run
    assert resumed.exit_code == 0, resumed.output
    a, b = _weights(tmp_path / "whole" / "checkpoint.pt"), _weights(tmp_path / "cut" / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_ddp_with_a_detection_dataset(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "S5_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "s5cli"]
    args = ["finetune", "--config", TINY, "--datasets", "potsdam,dior-r", "--data-root", DATA, "-o", out]
    args += ["--iterations", "2", "--eval-every", "0"]
    proc = subprocess.run([*cmd, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,loss_potsdam,") and "val_dior-r_mAP" in rows[0]
    assert (out / "checkpoint.pt").is_file()


# ---- config and CLI mapping --------------------------------------------------------------------


def test_options_land_in_their_fields_and_the_file_keeps_the_rest(runner, tmp_path, monkeypatch) -> None:
    from s5cli.finetune import run as run_module

    seen = {}

    def fake_run(cfg: FinetuneConfig) -> Path:
        seen["cfg"] = cfg
        return tmp_path

    monkeypatch.setattr(run_module, "run_finetune", fake_run)
    result = invoke(runner, "finetune", ["--config", TINY, "--datasets", "potsdam"])
    assert result.exit_code == 0, result.output
    assert seen.pop("cfg") == load_config(FinetuneConfig, TINY, {"datasets": ["potsdam"]})  # file -> config
    args = [
        "--config", TINY, "--datasets", "vaihingen,dior-r", "--data-root", "d", "--init", "s4p.pt",
        "-o", tmp_path / "r", "--overwrite", "--device", "cpu", "--seed", 7, "--stop-after", 2,
        "--preset", "vit-tiny", "--no-moe",
        "--crop-size", 64, "--det-size", 96, "--epochs", 3, "--iterations", 9, "--batch-size-per-dataset", 5,
        "--lr", 0.5,
        "--amp", "bf16", "--workers", 3, "--eval-every", 4, "--checkpoint-every", 6,
    ]  # fmt: skip
    result = invoke(runner, "finetune", args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert cfg.datasets == ["vaihingen", "dior-r"] and cfg.data_root == Path("d") and cfg.output == tmp_path / "r"
    assert (cfg.model.init, cfg.model.preset, cfg.model.moe) == (Path("s4p.pt"), "vit-tiny", False)
    assert (cfg.overwrite, cfg.resume, cfg.device, cfg.seed, cfg.stop_after) == (True, False, "cpu", 7, 2)
    assert (cfg.crop_size, cfg.det_size, cfg.epochs, cfg.iterations, cfg.batch_size_per_dataset) == (64, 96, 3, 9, 5)
    assert (cfg.optim.lr, cfg.amp, cfg.workers, cfg.eval_every, cfg.checkpoint_every) == (0.5, "bf16", 3, 4, 6)
    assert cfg.model.detection == load_config(FinetuneConfig, TINY, {"datasets": ["x"]}).model.detection


def test_paper_recipes_load_with_their_values() -> None:
    seg = load_config(FinetuneConfig, REPO / "configs" / "finetune" / "seg-vit-b.yaml")
    assert seg.datasets == ["vaihingen", "potsdam", "openearthmap", "loveda"]
    assert (seg.optim.lr, seg.optim.weight_decay, seg.epochs, seg.crop_size, seg.batch_size_per_dataset) == (
        5e-5,
        0.05,
        100,
        512,
        12,
    )
    assert seg.schedule.name == "cosine_epoch" and seg.settings_for("vaihingen").start_epoch == 70
    det = load_config(FinetuneConfig, REPO / "configs" / "finetune" / "det-vit-b.yaml")
    assert (det.optim.lr, det.optim.weight_decay, det.epochs, det.grad_clip, det.det_size) == (
        1e-4,
        0.05,
        12,
        35.0,
        1024,
    )
    assert (det.schedule.name, det.schedule.milestones, det.schedule.warmup_iters) == ("step", [8, 11], 500)


def test_bad_dataset_name_is_one_line_exit_2(runner, tmp_path: Path) -> None:
    result = invoke(runner, "finetune", ["--config", TINY, "--datasets", "potsdam,potsdamm", "--data-root", DATA,
                                         "-o", tmp_path / "run"])  # fmt: skip
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown dataset 'potsdamm'; valid names: potsdam,")
    assert not (tmp_path / "run").exists()


def test_existing_run_directory_is_refused(runner, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("iteration\n")
    result = invoke(runner, "finetune", ["--config", TINY, "--datasets", "potsdam", "--data-root", DATA, "-o", run])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {run}: exists and won't be overwritten without --overwrite"]
    assert (run / "metrics.csv").read_text() == "iteration\n"
