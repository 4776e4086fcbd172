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
