import numpy as np
import pytest

from s5cli.curation.phash import (
    _DCT,
    downsample,
    luminance,
    phash,
    to_hex,
)
from s5cli_tests.scenes import scene_array


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def chip(seed: int, size: int = 64) -> np.ndarray:
    return scene_array(size, size, 3, "uint8", seed=seed)


def test_dct_matrix_is_orthonormal():
    np.testing.assert_allclose(_DCT @ _DCT.T, np.eye(32), atol=1e-12)


def test_downsample_is_area_average():
    img = np.arange(64 * 64, dtype=np.float64).reshape(64, 64)
    small = downsample(img)
    assert small.shape == (32, 32)
    assert small[0, 0] == (img[0, 0] + img[0, 1] + img[1, 0] + img[1, 1]) / 4
    assert small[31, 31] == img[62:, 62:].mean()


def test_downsample_uneven_and_small_inputs():
    img = np.ones((50, 40))
    np.testing.assert_array_equal(downsample(img), np.ones((32, 32)))
    tiny = np.array([[1.0, 2.0], [3.0, 4.0]])
    small = downsample(tiny)
    assert small.shape == (32, 32)
    assert small[0, 0] == 1.0 and small[31, 31] == 4.0 and small[0, 31] == 2.0


def test_luminance_rec601_and_band_mean():
    img = np.stack([np.full((2, 2), 100.0), np.full((2, 2), 50.0), np.full((2, 2), 10.0)])
    assert luminance(img)[0, 0] == pytest.approx(0.299 * 100 + 0.587 * 50 + 0.114 * 10)
    assert luminance(img[:2])[0, 0] == 75.0


def test_hash_is_64_bit_and_about_half_set():
    h = phash(chip(1))
    assert 0 <= h < 1 << 64
    assert 20 <= h.bit_count() <= 44  # bits above the median of 64 coefficients


def test_noised_copy_matches_and_different_chips_do_not():
    a = chip(1)
    rng = np.random.default_rng(0)
    noised = np.clip(a.astype(np.int16) + rng.integers(-6, 7, size=a.shape), 0, 255).astype(np.uint8)
    brighter = np.clip(a.astype(np.int16) + 10, 0, 255).astype(np.uint8)
    assert hamming(phash(a), phash(noised)) <= 4
    assert hamming(phash(a), phash(brighter)) <= 4
    others = [hamming(phash(a), phash(chip(s))) for s in range(2, 12)]
    assert min(others) > 8


def test_resized_copy_matches():
    a = chip(3, size=128)
    half = a.reshape(3, 64, 2, 64, 2).mean(axis=(2, 4)).astype(np.uint8)
    assert hamming(phash(a), phash(half)) <= 2


def test_hex_round_trip():
    for h in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, phash(chip(5))):
        assert int(to_hex(h), 16) == h and len(to_hex(h)) == 16


def test_hamming():
    assert hamming(0, (1 << 64) - 1) == 64
    assert hamming(0b1011, 0b0001) == 2
