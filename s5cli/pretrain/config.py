"""PretrainConfig: every setting of `s5 pretrain`, strict (unknown key -> exit 2), saved with the run.

Relative paths are read from the current directory. `batch_size` is GLOBAL (labeled images per
optimiser step over all ranks; the unlabeled batch has the same size, S4P's 96 + 96), so one config
gives the same recipe on 1 laptop or 8 GPUs: each process draws `micro_batch_size` images per
forward and accumulates `batch_size / (world_size * micro_batch_size)` micro-batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from s5cli.config import StrictConfig
from s5cli.errors import ConfigError
from s5cli.pretrain.fixmatch import FixMatchConfig
from s5cli.training.optim import OptimConfig
from s5cli.training.schedules import ScheduleConfig


class ModelConfig(StrictConfig):
    """The network trained."""

    preset: str = "vit-b"  # s5cli.models.presets: vit-b, vit-l, vit-h (vit-tiny, vit-nano for tests)
    init: Path | None = None  # an s5cli checkpoint to start from (`s5 weights import` converts MAE/official files)
    drop_path: float = Field(0.1, ge=0.0, lt=1.0)
    decoder_channels: int = Field(256, ge=8)  # UperNet width (S5: 256); smaller for tiny test models
    grad_checkpointing: bool = True


class LabeledConfig(StrictConfig):
    """The labeled source: a registered segmentation dataset, or a custom GIS dataset YAML."""

    dataset: str = "isaid"  # registry name or alias; "custom" with root = the dataset YAML
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


class PretrainConfig(StrictConfig):
    """`s5 pretrain` (S4P): FixMatch semi-supervised segmentation pre-training."""

    # run
    output: Path = Path("runs/pretrain")  # the run directory
    overwrite: bool = False
    resume: bool = False  # continue from the newest state in `output`
    device: str = "auto"  # auto | cpu | cuda | cuda:N (torchrun: each rank its local GPU)
    seed: int = 2025  # S4P's seed
    stop_after: int | None = Field(None, ge=1)  # stop after this many iterations (with a state), to resume later
    # data
    labeled: LabeledConfig = Field(default_factory=LabeledConfig)
    unlabeled: UnlabeledConfig
    crop_size: int = Field(512, ge=16)
    workers: int = Field(4, ge=0)  # data-loading processes per rank and stream
    # model and optimisation
    model: ModelConfig = Field(default_factory=ModelConfig)
    iterations: int = Field(120_000, ge=1)
    batch_size: int = Field(96, ge=1)  # global labeled batch (and unlabeled batch)
    micro_batch_size: int | None = Field(None, ge=1)  # per process and forward; None: batch_size / world_size
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    grad_clip: float | None = Field(None, gt=0.0)
    fixmatch: FixMatchConfig = Field(default_factory=FixMatchConfig)
    find_unused_parameters: bool = False  # DDP
    # logging
    log_every: int = Field(200, ge=1)
    eval_every: int = Field(2000, ge=0)  # 0: validate only at the end
    eval_max_images: int | None = Field(None, ge=1)  # validate on the first N val samples only
    checkpoint_every: int = Field(20_000, ge=0)
    keep_checkpoints: int = Field(2, ge=0)  # 0 keeps all


def accumulation_steps(cfg: PretrainConfig, world_size: int) -> tuple[int, int]:
    """(micro-batch per process, micro-batches per step) for a world size; ConfigError if they do not divide."""
    micro = cfg.micro_batch_size or cfg.batch_size // max(world_size, 1)
    if micro < 1 or cfg.batch_size % (world_size * micro):
        raise ConfigError(
            f"batch_size {cfg.batch_size} is not divisible by world size {world_size} x micro_batch_size {micro}"
        )
    return micro, cfg.batch_size // (world_size * micro)
