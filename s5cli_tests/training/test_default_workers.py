"""DataLoader workers sized to the machine when a run asks for `auto` (None)."""

import pytest
import torch

from s5cli.training import data
from s5cli.training.data import InfiniteLoader, default_workers


@pytest.mark.parametrize(
    ("cores", "ranks", "streams", "expected"),
    [
        (1, 1, 1, 0),  # nothing to spare: load in the training process
        (2, 1, 2, 1),  # S4P on 2 cores: one worker per stream, not the 4 that warn
        (2, 1, 3, 1),  # finetune, three datasets
        (4, 1, 1, 3),
        (16, 1, 2, 4),  # capped per stream
        (16, 8, 2, 1),  # 8 ranks on the node share the cores
        (16, 16, 2, 0),
    ],
)
def test_auto_follows_the_cores(monkeypatch, cores: int, ranks: int, streams: int, expected: int) -> None:
    monkeypatch.setattr(data, "usable_cores", lambda: cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks))
    assert default_workers(None, streams) == expected


def test_a_given_count_is_kept(monkeypatch) -> None:
    monkeypatch.setattr(data, "usable_cores", lambda: 2)
    assert default_workers(6, 2) == 6 and default_workers(0, 1) == 0


class _Indexes(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, key: tuple[int, int]) -> int:
        return key[0]


def test_loader_sizes_its_workers_when_asked(monkeypatch) -> None:
    monkeypatch.setattr(data, "usable_cores", lambda: 1)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    loader = InfiniteLoader(_Indexes(), 2, seed=0, num_workers=None, streams=2)
    assert loader.num_workers == 0 and loader.loader.num_workers == 0
    assert len(next(loader)) == 2


def test_runs_default_to_auto_and_refuse_other_words() -> None:
    from s5cli.config import build_config
    from s5cli.errors import ConfigError
    from s5cli.training.stage import RunSettings

    assert RunSettings(output="run").loader_workers() is None  # auto: sized by default_workers
    assert build_config(RunSettings, {"output": "run", "workers": "3"}).loader_workers() == 3  # as the CLI gives it
    for bad in (-1, "many", True):
        with pytest.raises(ConfigError, match=r"key 'workers': .*or auto"):
            build_config(RunSettings, {"output": "run", "workers": bad}, "run.yaml")
