"""Random draws from torch's RNG, so torch.manual_seed and DataLoader worker seeding govern every augmentation."""

from __future__ import annotations

import torch


def rand() -> float:
    """Uniform in [0, 1)."""
    return float(torch.rand(()))


def uniform(low: float, high: float) -> float:
    """Uniform in [low, high)."""
    return low + (high - low) * rand()


def randint(low: int, high: int) -> int:
    """Uniform integer in [low, high)."""
    return int(torch.randint(low, high, ()))
