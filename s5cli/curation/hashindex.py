"""Near-duplicate search over 64-bit hashes in memory linear in the kept hashes (multi-index hashing).

Pigeonhole (Norouzi et al., "Fast search in Hamming space with multi-index hashing", CVPR 2012):
split the 64 bits into m >= d + 1 disjoint bands; two hashes within Hamming distance d agree
exactly on at least one band. So each band keeps its keys sorted, a query looks up its own key
in every band (binary search), and only those candidates get a full popcount.

Memory per stored hash: 8 bytes (hash) + 8 bytes (caller's reference) + m x (2-byte key + 4-byte id),
e.g. 46 bytes for d = 4 (m = 5); nothing is quadratic. New hashes wait in a small unsorted buffer
(scanned linearly) and are merged into the sorted bands every `merge_every` additions; the merge is
a stable radix sort of 16-bit keys, so it costs O(n) per merge.
"""

from __future__ import annotations

import numpy as np

from s5cli.curation.phash import popcount64

_MIN_BANDS = 4  # at most 16 bits per band, so band keys fit uint16 and radix-sort


class HashIndex:
    """Stored 64-bit hashes; `find(h)` returns a stored one within `distance` bits, if any."""

    def __init__(self, distance: int, merge_every: int = 4096, capacity: int = 1024) -> None:
        if not 0 <= distance <= 16:
            raise ValueError(f"distance must be in [0, 16], got {distance}")
        self.distance = distance
        self.merge_every = merge_every
        self.num_bands = max(distance + 1, _MIN_BANDS)
        widths = [64 // self.num_bands + (1 if i < 64 % self.num_bands else 0) for i in range(self.num_bands)]
        shifts, start = [], 64
        for w in widths:
            start -= w
            shifts.append(start)
        self._shifts = np.array(shifts, dtype=np.uint64)
        self._masks = np.array([(1 << w) - 1 for w in widths], dtype=np.uint64)
        self._hashes = np.empty(capacity, dtype=np.uint64)
        self._refs = np.empty(capacity, dtype=np.int64)
        self._n = 0
        self._n_sorted = 0
        self._keys = [np.empty(0, dtype=np.uint16) for _ in widths]  # per band, sorted
        self._ids = [np.empty(0, dtype=np.int32) for _ in widths]  # per band, ids in key order

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held by the index arrays (capacity included)."""
        return (
            self._hashes.nbytes
            + self._refs.nbytes
            + sum(k.nbytes for k in self._keys)
            + sum(i.nbytes for i in self._ids)
        )

    def _band_keys(self, hashes: np.ndarray) -> np.ndarray:
        """(n,) uint64 -> (m, n) uint16 band keys."""
        return ((hashes[None, :] >> self._shifts[:, None]) & self._masks[:, None]).astype(np.uint16)

    def find(self, h: int) -> int | None:
        """The reference of a stored hash within the distance of `h` (the closest, earliest on ties), or None."""
        q = np.uint64(h)
        cands: list[np.ndarray] = []
        if self._n_sorted:
            qkeys = self._band_keys(np.array([q], dtype=np.uint64))[:, 0]
            for band in range(self.num_bands):
                keys = self._keys[band]
                lo = np.searchsorted(keys, qkeys[band], side="left")
                hi = np.searchsorted(keys, qkeys[band], side="right")
                if hi > lo:
                    cands.append(self._ids[band][lo:hi])
        if self._n > self._n_sorted:
            cands.append(np.arange(self._n_sorted, self._n, dtype=np.int32))
        if not cands:
            return None
        ids = np.concatenate(cands)
        dist = popcount64(self._hashes[ids] ^ q)
        ok = dist <= self.distance
        if not ok.any():
            return None
        ids, dist = ids[ok], dist[ok]
        best = np.lexsort((ids, dist))[0]
        return int(self._refs[ids[best]])

    def add(self, h: int, ref: int) -> None:
        """Store a hash with the caller's reference (e.g. its manifest row)."""
        if self._n == len(self._hashes):
            grow = max(1024, len(self._hashes))
            self._hashes = np.concatenate([self._hashes, np.empty(grow, dtype=np.uint64)])
            self._refs = np.concatenate([self._refs, np.empty(grow, dtype=np.int64)])
        self._hashes[self._n] = np.uint64(h)
        self._refs[self._n] = ref
        self._n += 1
        if self._n - self._n_sorted >= self.merge_every:
            self._merge()

    def _merge(self) -> None:
        """Fold the buffer into the sorted bands."""
        new_ids = np.arange(self._n_sorted, self._n, dtype=np.int32)
        new_keys = self._band_keys(self._hashes[self._n_sorted : self._n])
        for band in range(self.num_bands):
            keys = np.concatenate([self._keys[band], new_keys[band]])
            ids = np.concatenate([self._ids[band], new_ids])
            order = np.argsort(keys, kind="stable")  # radix sort for uint16
            self._keys[band] = keys[order]
            self._ids[band] = ids[order]
        self._n_sorted = self._n
