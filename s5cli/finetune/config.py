"""FinetuneConfig: every setting of `s5 finetune`, strict (unknown key -> exit 2), saved with the run.

Defaults are S5's segmentation recipe (RS_Finetune/Semantic_Segmentation/configs/rsseg.yaml):
AdamW 5e-5, wd 0.05, cosine stepped per epoch over 100 epochs, 512 crops, 12 images per dataset per
GPU. `batch_size_per_dataset` is per dataset and per process, as S5 states it (a dataset may set its own,
e.g. 2 for detection beside 12 for segmentation); several GPUs under torchrun multiply it.
Training length is in epochs (one epoch = one pass over the longest dataset, the others repeated to its
length, S5's id-list repetition) unless `iterations` is given. The run controls are the shared
`RunSettings` (training/stage.py). A dataset's defaults (splits, classes, protocol) are its record's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from s5cli.config import StrictConfig, build_config
from s5cli.training.optim import OptimConfig
from s5cli.training.schedules import ScheduleConfig
from s5cli.training.stage import RunSettings


class DatasetSettings(StrictConfig):
    """One dataset's settings; None fields take the dataset record's defaults (datasets/info.py)."""

    root: Path | None = None  # the dataset folder itself; wins over data_root
    split: str | None = None  # training split
    val_split: str | None = None  # validation split; "none" turns validation off for this dataset
    weight: float = Field(1.0, ge=0.0)  # multiplies the dataset's loss (finite: the config refuses inf)
    start_epoch: int = Field(0, ge=0)  # the loss counts from this epoch on (S5: Vaihingen 70 of 100)
    batch_size: int | None = Field(None, ge=1)  # this dataset's images per process and step; None: the run's
    options: dict[str, Any] = Field(default_factory=dict)  # loader options, e.g. {labels: eroded}


class FinetuneModelConfig(StrictConfig):
    """The network: a preset (or the init checkpoint's), dense or MoE-MDF."""

    preset: str | None = None  # None: the --init checkpoint's preset, else vit-b
    init: Path | None = None  # an s5cli checkpoint (S4P, or an official one converted by `s5 weights import`)
    moe: bool | None = None  # None: experts when there are several datasets, a dense model for one
    expert_width: int = Field(256, ge=1)  # P: outputs of each expert's fc2 slice, 256 at every size (S5 --part)
    drop_path: float = Field(0.1, ge=0.0, lt=1.0)
    decoder_channels: int = Field(256, ge=8)  # UperNet width of a fresh model (an init keeps its own)
    grad_checkpointing: bool = True
    detection: dict[str, Any] = Field(default_factory=dict)  # DetectionOptions overrides for detection heads

    @field_validator("detection")
    @classmethod
    def _detection_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        from s5cli.detection.options import DetectionOptions
        from s5cli.errors import ConfigError

        try:  # checked with the config, not when the first detection head is built
            build_config(DetectionOptions, value)
        except ConfigError as exc:
            raise ValueError(exc.problem) from None
        return value


class FinetuneConfig(RunSettings):
    """`s5 finetune`: MoE-MDF fine-tuning on one or several segmentation / detection datasets."""

    DATASET_ENTRIES: ClassVar[tuple[str, ...]] = ("datasets",)

    output: Path = Path("runs/finetune")
    # data
    datasets: list[str] = Field(min_length=1)  # registry names or dataset YAMLs, in expert order
    data_root: Path | None = None  # folder holding one folder per dataset
    dataset_settings: dict[str, DatasetSettings] = Field(default_factory=dict)  # by dataset name
    crop_size: int = Field(512, ge=16)  # segmentation training crop
    det_size: int = Field(1024, ge=32)  # detection input: long side resized to it (S5: 1024)
    # model and optimisation
    model: FinetuneModelConfig = Field(default_factory=FinetuneModelConfig)
    epochs: int = Field(100, ge=1)
    iterations: int | None = Field(None, ge=1)  # overrides epochs
    batch_size_per_dataset: int = Field(12, ge=1)  # images per dataset, per process and micro-batch
    accumulation: int = Field(1, ge=1)  # micro-batches per optimiser step
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=5e-5, weight_decay=0.05))
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig(name="cosine_epoch"))
    # validation and best.pt: "standard" scores each dataset by its protocol and metric; "paper" as the
    # authors select (the mean mIoU without flip, their scoring quirks included)
    protocol: Literal["standard", "paper"] = "standard"

    def settings_for(self, name: str) -> DatasetSettings:
        """The settings of a dataset (given by registry name or alias), defaults when absent."""
        from s5cli.datasets.registry import same_dataset

        for key, value in self.dataset_settings.items():
            if same_dataset(key, name):
                return value
        return DatasetSettings()
