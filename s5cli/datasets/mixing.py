"""Several datasets in one training step: each repeated to the longest one's length.

S5 (docs/method.md, MoE-MDF): every dataset's list is repeated or truncated to the longest one, each gets
its own loader, and every step takes one batch of each. ``repeat_to_longest`` does the repetition on
the datasets, so that each dataset's resumable stream (training/data.py) shuffles and shards the
repeated index space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.utils.data import Dataset

from s5cli.errors import InputError


class RepeatToLength(Dataset):
    """A dataset seen as ``length`` items: item i is ``dataset[i % len(dataset)]`` (repeat or truncate)."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise InputError(f"cannot repeat an empty dataset ({getattr(dataset, 'name', type(dataset).__name__)})")
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]  # type: ignore[arg-type]


def repeat_to_longest(datasets: Mapping[str, Dataset]) -> dict[str, RepeatToLength]:
    """Each dataset repeated to the length of the longest one (S5's id-list repetition)."""
    if not datasets:
        raise InputError("no datasets to mix")
    longest = max(len(d) for d in datasets.values())  # type: ignore[arg-type]
    return {name: RepeatToLength(d, longest) for name, d in datasets.items()}
