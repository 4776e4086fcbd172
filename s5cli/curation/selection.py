"""Corpus-wide selection in bounded memory: the entropy rule and diversity expansion.

Entropy rule (the final paper's "entropy-based filtering"; its thresholds are unpublished, so both
forms are offered): keep the `keep_fraction` most confident candidates (lowest entropy, ties taken
in corpus order) and/or those with entropy <= `max_entropy`. The k-th smallest entropy is found by
repeated histogram passes over the values (streamed from disk), never by holding them all.

Diversity expansion: re-admit chips the entropy rule dropped, greedily, while some foreground class
holds less than an equal share of the kept foreground pixels: pick the least represented class that
a candidate can raise, admit the candidate with most pixels of it (then lower entropy, then
earlier), update the totals, repeat up to the budget. Only each class's best `budget` candidates
can ever be picked, so the pool keeps that many per class and the greedy result is exact.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator

import numpy as np

Chunks = Callable[[], Iterator[np.ndarray]]


def kth_smallest(chunks: Chunks, k: int, bins: int = 4096, collect: int = 65536) -> tuple[float, int]:
    """The k-th smallest (1-based) of streamed values, and how many values equal to it are among the first k.

    `chunks()` must yield the same values in the same order on every call. Returns (inf, 0) when k
    covers all values. Memory: `bins` counters and at most `collect` values.
    """
    n, lo, hi = 0, math.inf, -math.inf
    for chunk in chunks():
        if len(chunk):
            n += len(chunk)
            lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    if k >= n:
        return math.inf, 0
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    below = 0  # values < lo
    while True:
        if lo == hi:
            return lo, k - below
        counts = np.zeros(bins, dtype=np.int64)
        mins = np.full(bins, np.inf)
        maxs = np.full(bins, -np.inf)
        kept: list[np.ndarray] | None = []
        inside = 0
        for chunk in chunks():
            v = chunk[(chunk >= lo) & (chunk <= hi)].astype(np.float64)
            inside += len(v)
            if kept is not None and inside <= collect:
                kept.append(v)
            else:
                kept = None
            idx = np.minimum(((v - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)  # monotone in v
            np.add.at(counts, idx, 1)
            np.minimum.at(mins, idx, v)
            np.maximum.at(maxs, idx, v)
        if kept is not None:
            vals = np.sort(np.concatenate(kept)) if kept else np.empty(0)
            t = float(vals[k - below - 1])
            return t, k - below - int(np.searchsorted(vals, t, side="left"))
        cum = np.cumsum(counts)
        b = int(np.searchsorted(cum, k - below, side="left"))
        below += int(cum[b - 1]) if b else 0
        lo, hi = float(mins[b]), float(maxs[b])


class EntropyRule:
    """Keep-or-drop decisions for candidates streamed in corpus order (stateful for ties; reset per pass)."""

    def __init__(self, threshold: float = math.inf, ties: int = 0, max_entropy: float | None = None) -> None:
        self.threshold = threshold
        self.ties = ties
        self.max_entropy = max_entropy
        self._ties_left = ties

    def reset(self) -> None:
        """Start a new pass over the candidates."""
        self._ties_left = self.ties

    def keep(self, values: np.ndarray) -> np.ndarray:
        """Decisions (bool) for the next candidates' entropies, in order."""
        v = np.asarray(values, dtype=np.float64)
        keep = v < self.threshold
        tied = np.flatnonzero(v == self.threshold)
        take = tied[: self._ties_left]
        keep[take] = True
        self._ties_left -= len(take)
        if self.max_entropy is not None:
            keep &= v <= self.max_entropy
        return keep


def entropy_rule(chunks: Chunks, count: int, keep_fraction: float | None, max_entropy: float | None) -> EntropyRule:
    """Build the entropy rule over `count` candidates (keep_fraction: keep ceil(f * count) lowest)."""
    threshold, ties = math.inf, 0
    if keep_fraction is not None and count:
        threshold, ties = kth_smallest(chunks, math.ceil(keep_fraction * count))
    return EntropyRule(threshold, ties, max_entropy)


class DiversityPool:
    """Per foreground class, the `budget` best dropped candidates for it; then the greedy re-admission."""

    def __init__(self, num_classes: int, background: int, budget: int) -> None:
        self.foreground = [c for c in range(num_classes) if c != background]
        self.budget = budget
        self._heaps: dict[int, list[tuple]] = {c: [] for c in self.foreground}

    def offer(self, row: int, hist: np.ndarray, entropy: float) -> None:
        """Consider a dropped chip (its manifest row, class pixel counts and entropy)."""
        if self.budget <= 0:
            return
        for c in self.foreground:
            if hist[c] <= 0:
                continue
            item = (int(hist[c]), -float(entropy), -row, row, hist)  # larger is better
            heap = self._heaps[c]
            if len(heap) < self.budget:
                heapq.heappush(heap, item)
            elif item[:3] > heap[0][:3]:
                heapq.heapreplace(heap, item)

    def select(self, totals: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Greedy re-admission from kept-pixel totals per class; returns (rows in pick order, new totals)."""
        totals = np.asarray(totals, dtype=np.int64).copy()
        ranked = {c: sorted(h, reverse=True) for c, h in self._heaps.items()}
        pos = dict.fromkeys(self.foreground, 0)
        picked: list[int] = []
        taken: set[int] = set()
        while len(picked) < self.budget and self.foreground:
            fg_total = int(totals[self.foreground].sum())
            under = [c for c in self.foreground if fg_total == 0 or totals[c] * len(self.foreground) < fg_total]
            choice = None
            for c in sorted(under, key=lambda c: (totals[c], c)):
                items = ranked[c]
                while pos[c] < len(items) and items[pos[c]][3] in taken:
                    pos[c] += 1
                if pos[c] < len(items):
                    choice = items[pos[c]]
                    break
            if choice is None:
                break
            picked.append(choice[3])
            taken.add(choice[3])
            totals += np.asarray(choice[4], dtype=np.int64)
        return picked, totals
