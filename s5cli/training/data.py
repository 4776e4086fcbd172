"""Endless, resumable data streams whose order and augmentation are functions of (seed, epoch).

`InfiniteLoader` draws fixed-size batches forever from a map-style dataset. Its sampler shards a
seeded permutation across ranks like `DistributedSampler` (same padding rule), and yields keys
`(index, sample_seed)`: the dataset draws every random augmentation from `sample_seed`, so a batch
is the same whatever the number of workers, and the stream can restart exactly from its position
`(epoch, batches consumed)` after a resume. A dataset smaller than one global batch is repeated
(fresh permutations) within an epoch, so tiny labeled sets work with any batch size.

The dataset's `__getitem__` receives the key tuple; `seeded_rng(key)` turns it into a generator.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

SampleKey = tuple[int, int]  # (dataset index, seed of this draw)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the draw at `position` of `epoch` of a stream seeded with `seed`."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, position]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


MAX_WORKERS_PER_STREAM = 4  # the former fixed default, now the ceiling of the sized count


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers(requested: int | None, streams: int = 1) -> int:
    """DataLoader workers per stream: `requested` as given, or (None) sized to the machine.

    Sized: the usable cores, shared by this node's ranks (torchrun's LOCAL_WORLD_SIZE), less one for the
    training step, split evenly over the streams, at most MAX_WORKERS_PER_STREAM. A share below one
    core still gets one worker per stream when the machine has a core to spare for loading: a worker
    overlaps loading with the step, where loading in the training process adds its whole time to each
    step. With a single core, loading stays in the training process (0).
    """
    if requested is not None:
        return max(0, int(requested))
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    spare = usable_cores() // ranks - 1
    if spare <= 0:
        return 0
    return max(1, min(MAX_WORKERS_PER_STREAM, spare // max(1, streams)))


class ResumableSampler(Sampler[SampleKey]):
    """Rank-sharded, seeded permutations (repeated when the set is small), resumable mid-epoch."""

    def __init__(
        self, length: int, batch_size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        if length <= 0:
            raise ValueError("an empty dataset cannot be sampled")
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0  # samples of this rank's share to skip (resume mid-epoch)
        # DistributedSampler pads to a multiple of the world size; we also pad to one full batch per rank.
        per_rank = max(math.ceil(length / world_size), batch_size)
        self.per_rank = per_rank
        self.total = per_rank * world_size

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Draw epoch `epoch`, skipping the first `start` samples of this rank."""
        self.epoch = epoch
        self.start = start

    def _order(self) -> list[int]:
        order: list[int] = []
        rep = 0
        while len(order) < self.total:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch + rep)
                order.extend(torch.randperm(self.length, generator=g).tolist())
            else:
                order.extend(range(self.length))
            rep += 1
        return order[: self.total]

    def __iter__(self) -> Iterator[SampleKey]:
        order = self._order()
        positions = range(self.rank, self.total, self.world_size)
        for i, pos in enumerate(positions):
            if i < self.start:
                continue
            yield order[pos], sample_seed(self.seed, self.epoch, pos)

    def __len__(self) -> int:
        return self.per_rank - self.start


class InfiniteLoader:
    """Endless batches from a dataset; `state_dict()` is the position (epoch, batches consumed)."""

    def __init__(
        self,
        dataset: Dataset[Any],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int | None = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        prefetch: int = 4,
        streams: int = 1,
    ) -> None:
        """`num_workers` None sizes the workers to the machine (default_workers), shared by `streams` loaders."""
        num_workers = default_workers(num_workers, streams)
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.sampler = ResumableSampler(len(dataset), batch_size, seed, shuffle, rank, world_size)  # type: ignore[arg-type]
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=collate_fn,
            drop_last=True,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
            prefetch_factor=prefetch if num_workers > 0 else None,
            # A private generator: creating an iterator draws a worker base seed, and drawing it from the
            # global RNG would shift the model's dropout stream whenever a resume restarts the iterators.
            generator=torch.Generator().manual_seed(seed),
        )
        self.epoch = 0
        self.offset = 0  # batches handed out in this epoch
        self._it: Iterator[Any] | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per rank per epoch."""
        return self.sampler.per_rank // self.batch_size

    def _restart(self) -> None:
        self.sampler.set_position(self.epoch, self.offset * self.batch_size)
        self._it = iter(self.loader)

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._restart()
        try:
            batch = next(self._it)  # type: ignore[arg-type]
        except StopIteration:
            self.epoch, self.offset = self.epoch + 1, 0
            self._restart()
            batch = next(self._it)  # type: ignore[arg-type]
        self.offset += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        """Where the stream is: epoch and batches consumed in it."""
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved position (the next batch is the one after it)."""
        self.epoch = int(state["epoch"])
        self.offset = int(state["offset"])
        self._it = None
