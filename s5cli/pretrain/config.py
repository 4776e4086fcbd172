"""PretrainConfig: every setting of `s5 pretrain`, strict (unknown key -> exit 2), saved with the run.

Relative paths are read from the current directory. `global_batch_size` is labeled images per
optimiser step over ALL ranks (the unlabeled batch has the same size, S4P's 96 + 96), so one config
gives the same recipe on 1 laptop or 8 GPUs: each process draws `micro_batch_size` images per
forward and accumulates `global_batch_size / (world_size * micro_batch_size)` micro-batches.
The run controls (output, resume, device, amp, logging and checkpoint cadence) are the shared
`RunSettings` (training/stage.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from s5cli.config import StrictConfig
from s5cli.errors import ConfigError
from s5cli.pretrain.fixmatch import FixMatchConfig
from s5cli.training.stage import RunSettings


class ModelConfig(StrictConfig):
    """The network trained."""

    preset: str = "vit-b"  # s5cli.models.presets: vit-b, vit-l, vit-h (vit-tiny, vit-nano for tests)
    init: Path | None = None  # an s5cli checkpoint to start from (`s5 weights import` converts MAE/official files)
    drop_path: float = Field(0.1, ge=0.0, lt=1.0)
    decoder_channels: int = Field(256, ge=8)  # UperNet width (S5: 256); smaller for tiny test models
    grad_checkpointing: bool = True


class LabeledConfig(StrictConfig):
    """The labeled source: a registered segmentation dataset, or a custom GIS dataset YAML."""

    dataset: str = "isaid"  # registry name or alias, or your dataset YAML (as finetune --datasets takes it)
    data_root: Path | None = None  # folder holding one folder per dataset (`find_dataset_root`)
    root: Path | None = None  # the dataset folder (or custom YAML) itself; wins over data_root
    split: str = "train"
    val_split: str | None = "val"  # None: no validation
    options: dict[str, Any] = Field(default_factory=dict)  # loader options, e.g. {crop_size: 1024, stride: 1024}


class UnlabeledConfig(StrictConfig):
    """The unlabeled source: a corpus manifest from `s5 curate`, or any folder of images."""

    manifest: Path | None = None
    folder: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> UnlabeledConfig:
        if (self.manifest is None) == (self.folder is None):
            raise ValueError("give exactly one of unlabeled.manifest and unlabeled.folder")
        return self


class PretrainConfig(RunSettings):
    """`s5 pretrain` (S4P): FixMatch semi-supervised segmentation pre-training."""

    DATASET_ENTRIES: ClassVar[tuple[str, ...]] = ("labeled.dataset",)

    output: Path = Path("runs/pretrain")
    # data
    labeled: LabeledConfig = Field(default_factory=LabeledConfig)
    unlabeled: UnlabeledConfig
    crop_size: int = Field(512, ge=16)
    # model and optimisation
    model: ModelConfig = Field(default_factory=ModelConfig)
    iterations: int = Field(120_000, ge=1)
    global_batch_size: int = Field(96, ge=1)  # labeled images per step over all ranks (and as many unlabeled)
    micro_batch_size: int | None = Field(None, ge=1)  # per process and forward; None: global / world size
    fixmatch: FixMatchConfig = Field(default_factory=FixMatchConfig)


def accumulation_steps(cfg: PretrainConfig, world_size: int) -> tuple[int, int]:
    """(micro-batch per process, micro-batches per step) for a world size; ConfigError if they do not divide."""
    total = cfg.global_batch_size
    micro = cfg.micro_batch_size or total // max(world_size, 1)
    if micro < 1 or total % (world_size * micro):
        raise ConfigError(
            f"global_batch_size {total} is not divisible by world size {world_size} x micro_batch_size {micro}"
        )
    return micro, total // (world_size * micro)
