import numpy as np
import pytest

from s5cli.curation.hashindex import HashIndex


def flip(h: int, bits: list[int]) -> int:
    for b in bits:
        h ^= 1 << b
    return h


def brute(stored: list[int], q: int, d: int) -> list[int]:
    return [i for i, s in enumerate(stored) if (s ^ q).bit_count() <= d]


@pytest.mark.parametrize("distance", [0, 3, 4, 8])
def test_matches_brute_force(distance):
    rng = np.random.default_rng(distance)
    index = HashIndex(distance, merge_every=64)  # small buffer: exercise the sorted bands and the buffer
    stored: list[int] = []
    for step in range(1500):
        if stored and step % 3 == 0:  # a planted neighbour of a stored hash, 0 .. 2d bits away
            base = stored[int(rng.integers(len(stored)))]
            q = flip(base, rng.choice(64, size=int(rng.integers(0, 2 * distance + 1)), replace=False).tolist())
        else:
            q = int(rng.integers(0, 1 << 62)) << 2 | int(rng.integers(0, 4))
        expected = brute(stored, q, distance)
        found = index.find(q)
        if expected:
            assert found is not None and found in expected
            dists = [(stored[i] ^ q).bit_count() for i in expected]
            assert (stored[found] ^ q).bit_count() == min(dists)
        else:
            assert found is None
            index.add(q, ref=len(stored))
            stored.append(q)
    assert len(index) == len(stored)


def test_refs_are_returned():
    index = HashIndex(2)
    index.add(0xFF, ref=1234)
    assert index.find(0xFF ^ 0b11) == 1234
    assert index.find(0xFF ^ 0b111) is None


def test_memory_is_linear_in_stored_hashes():
    rng = np.random.default_rng(0)
    index = HashIndex(4, merge_every=4096)
    sizes = {}
    for n in (20_000, 40_000):
        while len(index) < n:
            index.add(int(rng.integers(0, 1 << 63)), ref=len(index))
        sizes[n] = index.nbytes
    # 8 (hash) + 8 (ref) per slot with at most 2x spare capacity, + 5 bands x (2 + 4) bytes per hash
    for n, nbytes in sizes.items():
        assert nbytes <= 32 * n + 30 * n + 64 * 1024
    assert sizes[40_000] / sizes[20_000] < 2.3


def test_distance_out_of_range():
    with pytest.raises(ValueError):
        HashIndex(17)
