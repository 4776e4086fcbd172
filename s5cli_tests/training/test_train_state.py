import random
from pathlib import Path

import numpy as np
import pytest
import torch

from s5cli.errors import InputError
from s5cli.training.train_state import capture_rng, load_train_state, restore_rng, save_train_state


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    random.gauss(0, 1)  # leave a cached gaussian in python's state
    state = capture_rng()
    expected = _draws()
    path = save_train_state(
        tmp_path / "s.pt", {"iteration": 3, "rng": [state], "data": {"a": {"epoch": 1, "offset": 2}}}
    )
    loaded = load_train_state(path)
    assert loaded["iteration"] == 3 and loaded["data"] == {"a": {"epoch": 1, "offset": 2}}
    _draws()  # move every generator on
    restore_rng(loaded["rng"][0])
    assert _draws() == expected
    # the file is plain: a strict weights-only load reads it
    assert torch.load(path, weights_only=True)["format"] == "s5cli-train-state"


def test_optimizer_state_survives(tmp_path: Path) -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    save_train_state(tmp_path / "s.pt", {"optimizer": opt.state_dict()})
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    opt2.load_state_dict(load_train_state(tmp_path / "s.pt")["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(InputError, match="not an s5cli training state"):
        load_train_state(other)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        load_train_state(broken)
    with pytest.raises(InputError, match="no such"):
        load_train_state(tmp_path / "missing.pt")
