from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from s5cli.training.data import InfiniteLoader
from s5cli.training.distributed import DistContext
from s5cli.training.ema import ModelEMA
from s5cli.training.engine import LoopSettings, Trainer
from s5cli.training.logs import read_metrics
from s5cli.training.optim import OptimConfig
from s5cli.training.run_dir import RunDir
from s5cli.training.schedules import ScheduleConfig

W_TRUE = torch.tensor([[1.0, -2.0, 0.5]])


class Regression(Dataset):
    """y = x @ W_TRUE.T with x drawn from the key's seed."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, key):
        x = torch.from_numpy(np.random.default_rng(key[1]).normal(size=3).astype("float32"))
        return {"x": x, "y": x @ W_TRUE[0]}


class Net(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.lin(self.drop(x))[:, 0]


def step(model, batch, ctx):
    with ctx.autocast():
        pred = model(batch["data"]["x"])
    loss = ((pred.float() - batch["data"]["y"]) ** 2).mean()
    return loss, {"loss": loss.detach()}


def _trainer(micro: int, accumulation: int, run=None, dropout=0.0, **kw) -> Trainer:
    torch.manual_seed(0)
    settings = LoopSettings(iterations=kw.pop("iterations", 6), accumulation=accumulation, amp="off", log_every=1, **kw)
    streams = {"data": InfiniteLoader(Regression(), micro, seed=4)}
    optim = OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0)
    return Trainer(
        Net(dropout),
        step,
        streams,
        settings,
        dist=DistContext(),
        optim=optim,
        schedule=ScheduleConfig(name="cosine"),
        run=run,
        config={"demo": 1},
    )


def test_training_reduces_the_loss() -> None:
    result = _trainer(4, 1, iterations=30).fit()
    assert result.finished and result.iteration == 30
    assert result.last_metrics["loss"] < 0.05
    assert not result.model.training


def test_accumulation_equals_one_big_batch() -> None:
    big = _trainer(4, 1).fit().model
    acc = _trainer(2, 2).fit().model
    for a, b in zip(big.parameters(), acc.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_interrupted_and_resumed_run_is_identical(tmp_path: Path) -> None:
    whole = _trainer(2, 2, dropout=0.3).fit().model
    run = RunDir(tmp_path / "run")
    first = _trainer(2, 2, run=run, dropout=0.3, stop_after=3).fit()
    assert not first.finished and run.latest_state() == run.state_path(3)
    resumed = _trainer(2, 2, run=run, dropout=0.3, resume=True).fit()
    assert resumed.finished
    for a, b in zip(whole.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    rows = read_metrics(run.metrics)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "images_per_s", "data_wait"} <= set(rows[0])
    assert run.curves.is_file()


def test_eval_cadence_and_checkpoint_pruning(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    seen = []

    def evaluate(model, ctx):
        seen.append(ctx.iteration)
        assert not model.training
        return {"score": 1.0}

    t = _trainer(2, 1, run=run, eval_every=2, checkpoint_every=2, keep_checkpoints=2, iterations=7)
    t.eval_fn = evaluate
    t.fit()
    assert len(seen) == 4  # at 2, 4, 6 and the end (7)
    assert [it for it, _ in run.states()] == [4, 6]
    rows = {int(r["iteration"]): r for r in read_metrics(run.metrics)}
    assert rows[2]["val_score"] == 1.0 and rows[7]["val_score"] == 1.0 and "val_score" not in rows[3]


def test_grad_clip_bounds_the_update() -> None:
    t = _trainer(4, 1, iterations=1, grad_clip=1e-3)
    before = [p.detach().clone() for p in t.model.parameters()]
    result = t.fit()
    change = torch.sqrt(sum(((a - b.detach()) ** 2).sum() for a, b in zip(before, result.model.parameters())))
    assert float(change) == pytest.approx(0.1 * 1e-3, rel=1e-4)  # lr x clipped norm
    assert result.last_metrics["grad_norm"] > 1e-3  # the logged norm is the one before clipping


def test_ema_follows_the_formula() -> None:
    model = nn.Linear(2, 1, bias=False)
    nn.init.constant_(model.weight, 0.0)
    ema = ModelEMA(model, decay=0.9)
    nn.init.constant_(model.weight, 1.0)
    ema.update(model)  # r = min(1 - 1/2, 0.9) = 0.5
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.5))
    for _ in range(20):
        ema.update(model)
    r_last = 0.9
    assert ema.updates == 21 and not ema.module.weight.requires_grad
    assert float(ema.module.weight[0, 0]) == pytest.approx(
        1 - 0.5 * (2 / 3) * (3 / 4) * (4 / 5) * (5 / 6) * (6 / 7) * (7 / 8) * (8 / 9) * (9 / 10) * r_last**12, rel=1e-5
    )


def test_best_metric_calls_on_best_and_survives_resume(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    scores = iter([0.2, 0.5, 0.4, 0.3, 0.6])
    saved = []

    def evaluate(model, ctx):
        return {"score": next(scores)}

    def on_best(model, values, iteration):
        saved.append((iteration, values["score"]))

    t = _trainer(2, 1, run=run, eval_every=1, best_metric="score", stop_after=3, iterations=5)
    t.eval_fn, t.on_best = evaluate, on_best
    t.fit()
    assert saved == [(1, 0.2), (2, 0.5)] and t.best == 0.5
    again = _trainer(2, 1, run=run, eval_every=1, best_metric="score", resume=True, iterations=5)
    again.eval_fn, again.on_best = evaluate, on_best
    again.fit()
    assert again.best == 0.6 and saved[-1] == (5, 0.6) and len(saved) == 3  # 0.3 at 4 is not a best


def test_step_context_epoch() -> None:
    t = _trainer(2, 1, iterations=6, iters_per_epoch=4)
    epochs = []

    def step_with_epoch(model, batch, ctx):
        epochs.append(ctx.epoch)
        return step(model, batch, ctx)

    t.step_fn = step_with_epoch
    t.fit()
    assert epochs == [0, 0, 0, 0, 1, 1]
