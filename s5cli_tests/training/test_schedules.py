import math

import pytest
import torch

from s5cli.training.schedules import LRSchedule, ScheduleConfig, lr_factor


def test_cosine_per_iteration_to_zero() -> None:
    cfg = ScheduleConfig(name="cosine")
    assert lr_factor(cfg, 0, 100) == 1.0
    assert lr_factor(cfg, 50, 100) == pytest.approx(0.5)
    assert lr_factor(cfg, 25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(cfg, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_cosine_epoch_is_flat_within_an_epoch() -> None:
    cfg = ScheduleConfig(name="cosine_epoch")
    # 4 epochs of 10 iterations: factor of epoch e is 0.5 * (1 + cos(pi * e / 4))
    assert [lr_factor(cfg, it, 40, 10) for it in (0, 9)] == [1.0, 1.0]
    assert lr_factor(cfg, 10, 40, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(cfg, 19, 40, 10) == lr_factor(cfg, 10, 40, 10)
    assert lr_factor(cfg, 20, 40, 10) == pytest.approx(0.5)


def test_step_with_linear_warmup() -> None:
    # S5 detection recipe: steps at epochs 8 and 11, 500 warm-up iterations at ratio 1/3 (mmcv)
    cfg = ScheduleConfig(name="step", milestones=[8, 11], gamma=0.1, warmup_iters=500, warmup_ratio=1 / 3)
    assert lr_factor(cfg, 0, 1200, 100) == pytest.approx(1 / 3)
    assert lr_factor(cfg, 250, 1200, 100) == pytest.approx(1 - 0.5 * (2 / 3))
    assert lr_factor(cfg, 500, 1200, 100) == 1.0
    assert lr_factor(cfg, 799, 1200, 100) == 1.0
    assert lr_factor(cfg, 800, 1200, 100) == pytest.approx(0.1)
    assert lr_factor(cfg, 1100, 1200, 100) == pytest.approx(0.01)


def test_schedule_sets_every_group_and_resumes() -> None:
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.25}], lr=1.0)
    sched = LRSchedule(opt, ScheduleConfig(name="cosine"), total_iters=4)
    for _ in range(2):
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.125])
    assert sched.peak_lr() == pytest.approx(0.5)
    opt2 = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.25}], lr=1.0)
    again = LRSchedule(opt2, ScheduleConfig(name="cosine"), total_iters=4)
    again.load_state_dict(sched.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
