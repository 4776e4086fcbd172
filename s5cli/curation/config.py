"""CurateConfig: one field per `s5 curate` option, plus the shard spec and the plan fingerprint.

The thresholds of the paper's final curation are unpublished (docs/method.md, curation); the defaults here
are our choices, and every one is recorded in the corpus (curate.json and the manifest metadata).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from s5cli.config import StrictConfig, config_to_dict
from s5cli.training.launch import torchrun_env

ChipFormat = Literal["auto", "tif", "png", "jpg"]
EntropyStat = Literal["mean", "max"]

# Fields that change how a run executes but not what it produces: a resumed run or another shard
# may use different values for them.
RUNTIME_FIELDS = frozenset({"workers", "device", "batch_size", "shard"})


class CurateConfig(StrictConfig):
    """How scenes become a pre-training corpus (tiling, rules, dedup, teacher, selection)."""

    chip_size: int = Field(512, ge=16)  # RS4P crops: 512 (MillionAID, STAR, DOTA), 600 (FAST), 800 (SIOR)
    overlap: float = Field(0.0, ge=0.0, lt=1.0)  # share of a chip overlapping each neighbour
    format: ChipFormat = "auto"  # auto: GeoTIFF for georeferenced scenes, the source's format for plain images
    bands: list[int] | None = None  # 1-based bands to keep; None: all
    max_nodata: float = Field(0.1, ge=0.0, le=1.0)  # drop a chip whose nodata share is above this
    min_std: float = Field(2.0, ge=0.0)  # drop a chip whose pixel std (source units) is below this
    gsd: float | None = Field(None, gt=0.0)  # resample georeferenced scenes to this GSD (metres) first
    dedup_distance: int = Field(4, ge=-1, le=16)  # pHash Hamming radius of a near-duplicate; -1: no dedup
    teacher: str | None = None  # segmentation checkpoint that pseudo-labels every chip
    teacher_head: str | None = None  # the teacher's head (dataset name); None: its only head
    background: str | None = None  # background class name; None: the head's first class (iSAID: 0)
    min_foreground: float = Field(0.0, ge=0.0, lt=1.0)  # drop a chip whose foreground share is <= this
    entropy_stat: EntropyStat = "mean"  # which per-chip entropy the entropy rule ranks
    keep_fraction: float | None = Field(None, gt=0.0, le=1.0)  # keep the most confident share of chips
    max_entropy: float | None = Field(None, ge=0.0)  # keep chips whose entropy (nats) is at most this
    diversity_budget: float = Field(0.05, ge=0.0, le=1.0)  # re-admitted chips, as a share of the kept ones
    batch_size: int = Field(8, ge=1)  # teacher batch
    device: str = "auto"  # teacher device: auto, cpu, cuda, cuda:N
    workers: int = Field(0, ge=0)  # tiling processes; 0: in the main process
    shard: str | None = None  # 'I/N': this process curates shard I (0-based) of N

    @field_validator("bands")
    @classmethod
    def _bands_positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("bands are 1-based numbers such as [1, 2, 3]")
        return value

    @field_validator("shard")
    @classmethod
    def _shard_form(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shard(value)
        return value

    @property
    def overlap_px(self) -> int:
        """Pixels shared by neighbouring chips."""
        return round(self.overlap * self.chip_size)


def plan_fingerprint(cfg: CurateConfig, corpus: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings that decide a corpus's content; a resumed run or a peer shard must match them.

    The teacher's path is the corpus's own (relative to it): the same from any working folder.
    """
    from s5cli.geo.files import portable_path

    plan = {k: v for k, v in config_to_dict(cfg).items() if k not in RUNTIME_FIELDS}
    if plan.get("teacher") is not None:
        plan["teacher"] = portable_path(plan["teacher"], corpus)
    return plan


@dataclass(frozen=True)
class Shard:
    """This process's slice of the scenes: index (0-based) of count."""

    index: int = 0
    count: int = 1

    @property
    def name(self) -> str:
        """Folder name of this shard's part files."""
        return f"shard-{self.index:05d}-of-{self.count:05d}"


def parse_shard(text: str) -> Shard:
    """Parse 'I/N' (0-based I) into a Shard; anything else is a ValueError."""
    parts = text.split("/")
    try:
        index, count = int(parts[0]), int(parts[1])
        if len(parts) != 2:
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"shard must look like I/N, e.g. 0/4, not '{text}'") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard '{text}': I must be in 0..N-1 (0-based, as torchrun's RANK)")
    return Shard(index, count)


def resolve_shard(cfg: CurateConfig) -> Shard:
    """`--shard I/N`, else torchrun's RANK/WORLD_SIZE, else the single shard 0/1."""
    if cfg.shard is not None:
        return parse_shard(cfg.shard)
    launch = torchrun_env()
    return Shard(launch.rank, launch.world_size) if launch is not None else Shard()
