"""A 64-bit DCT perceptual hash (pHash) and Hamming distances, for near-duplicate chips.

The hash: luminance (or the band mean) -> 32 x 32 area-average downsample -> 2-D DCT-II ->
the 8 x 8 lowest frequencies -> one bit per coefficient, set when it is above their median.
Recompression, small noise or a slight brightness change move few bits; different content moves
about half of them. Hashes are Python ints in [0, 2**64); the manifest stores them as int64.
"""

from __future__ import annotations

import numpy as np

SIZE = 32  # downsample side
LOW = 8  # low-frequency block side: LOW * LOW = 64 bits
_MASK64 = (1 << 64) - 1


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix D (n, n): D @ x is the DCT of a column vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


_DCT = _dct_matrix(SIZE)
_BIT_WEIGHTS = [1 << (63 - i) for i in range(64)]


def luminance(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) float64: Rec. 601 luma of the first three bands, else the band mean."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.shape[0] >= 3:
        return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    return img.mean(axis=0)


def _resize_axis(img: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Area-average an axis down to `size` cells (uneven cells when not divisible); repeat when smaller."""
    n = img.shape[axis]
    if n < size:
        return np.take(img, (np.arange(size) * n) // size, axis=axis)
    edges = (np.arange(size + 1) * n) // size
    sums = np.add.reduceat(img, edges[:-1], axis=axis)
    counts = np.diff(edges).astype(np.float64)
    shape = [1, 1]
    shape[axis] = size
    return sums / counts.reshape(shape)


def downsample(gray: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(H, W) -> (size, size) by area averaging."""
    return _resize_axis(_resize_axis(gray, size, 0), size, 1)


def phash(image: np.ndarray) -> int:
    """The 64-bit perceptual hash of a (C, H, W) or (H, W) image, as an int in [0, 2**64)."""
    small = downsample(luminance(image))
    coeffs = _DCT @ small @ _DCT.T  # (32, 32) 2-D DCT-II
    low = coeffs[:LOW, :LOW].ravel()
    bits = low > np.median(low)
    return sum(w for w, b in zip(_BIT_WEIGHTS, bits.tolist()) if b)


def to_hex(h: int) -> str:
    """16 hex digits."""
    return f"{h & _MASK64:016x}"


def popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set in each element of a uint64 array."""
    return np.bitwise_count(x.astype(np.uint64, copy=False))
