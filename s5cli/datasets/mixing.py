"""Several datasets in one training step: repeat each to the longest, one loader each, zipped.

S5 (s5_method.md §3, algorithms.md §7.1): every dataset's list is repeated or truncated to the longest
one, each gets its own DataLoader (DistributedSampler under torchrun), and every step takes one batch
of each. ``repeat_to_longest`` does the repetition on the datasets, so a DistributedSampler shuffles
and shards the repeated index space; ``ZipLoaders`` yields ``{name: batch}`` and, should loader
lengths still differ (other batch sizes), restarts the shorter ones until the longest is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler

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


class ZipLoaders:
    """Iterate loaders in lock-step; one step is ``{name: batch}``; shorter loaders restart."""

    def __init__(self, loaders: Mapping[str, Any]) -> None:
        if not loaders:
            raise InputError("no loaders to zip")
        self.loaders = dict(loaders)
        self.epoch = 0

    def __len__(self) -> int:
        return max(len(loader) for loader in self.loaders.values())

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every DistributedSampler (a new shuffle per epoch)."""
        self.epoch = epoch
        for loader in self.loaders.values():
            sampler = getattr(loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        iterators = {name: iter(loader) for name, loader in self.loaders.items()}
        for _ in range(len(self)):
            step = {}
            for name, it in iterators.items():
                try:
                    step[name] = next(it)
                except StopIteration:
                    iterators[name] = iter(self.loaders[name])
                    step[name] = next(iterators[name])
            yield step


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def mixed_loader(
    datasets: Mapping[str, Dataset],
    batch_size: int,
    collate_fns: Mapping[str, Callable[[list[Any]], Any]],
    num_workers: int = 0,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
) -> ZipLoaders:
    """One DataLoader per dataset (repeated to the longest), DistributedSampler under torchrun, zipped."""
    loaders = {}
    for name, dataset in repeat_to_longest(datasets).items():
        if _distributed():
            sampler: Any = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        elif shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        else:
            sampler = SequentialSampler(dataset)
        loaders[name] = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            collate_fn=collate_fns[name],
            drop_last=drop_last,
            persistent_workers=num_workers > 0,
        )
    return ZipLoaders(loaders)
