"""EvaluateConfig: every setting of `s5 evaluate`; None means "the dataset record's protocol" (datasets/info.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from s5cli.config import StrictConfig


class EvalDatasetSettings(StrictConfig):
    """One dataset's overrides of its protocol."""

    root: Path | None = None  # the dataset folder itself; wins over data_root
    split: str | None = None
    mode: Literal["crop", "slide", "resize"] | None = None  # segmentation only
    flip: bool | None = None
    overlap: float | None = Field(None, ge=0.0, lt=1.0)  # slide mode
    options: dict[str, Any] = Field(default_factory=dict)  # loader options, merged over the protocol's


class EvaluateConfig(StrictConfig):
    """`s5 evaluate`: score a checkpoint on benchmarks with each one's metric and eval mode."""

    checkpoint: Path
    datasets: list[str] | None = None  # None: every head of the checkpoint
    data_root: Path | None = None
    dataset_settings: dict[str, EvalDatasetSettings] = Field(default_factory=dict)
    split: str | None = None  # for every dataset (e.g. test for the server submissions)
    mode: Literal["crop", "slide", "resize"] | None = None  # segmentation datasets; None: each one's protocol
    flip: bool | None = None  # horizontal-flip TTA; None: each one's protocol
    tile_size: int | None = Field(None, ge=16)  # segmentation tile; None: the size the head was trained at
    det_size: int | None = Field(None, ge=32)  # detection input / patch size; None: the trained size
    patch_gap: int | None = Field(None, ge=0)  # pixels shared by detection patches; None: the head's
    batch_size: int = Field(4, ge=1)  # windows per forward
    max_images: int | None = Field(None, ge=1)  # score the first N samples of each dataset only
    save_predictions: Path | None = None  # folder for server submissions (LoveDA PNGs, DOTA Task1 files)
    output: Path | None = None  # per-class metrics CSV
    overwrite: bool = False
    device: str = "auto"
    protocol: Literal["standard", "paper"] = "standard"  # paper: the authors' evaluation, quirks included
    amp: Literal["auto", "bf16", "fp16", "off"] = "off"  # off: float32, results independent of the CPU

    def settings_for(self, name: str) -> EvalDatasetSettings:
        """A dataset's overrides (given by registry name or alias), empty when absent."""
        from s5cli.datasets.registry import same_dataset

        for key, value in self.dataset_settings.items():
            if same_dataset(key, name):
                return value
        return EvalDatasetSettings()
