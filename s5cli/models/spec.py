"""What a model is, as saved in every checkpoint: preset, heads (one per dataset) and input contract.

The contract every part of s5cli relies on:
- a model's `forward(x, dataset)` takes float images in [0, 1], shape (B, C, H, W) with
  C = len(InputSpec.bands), H and W multiples of 16, and normalises them itself with
  InputSpec.mean / InputSpec.std (so datasets, predict and curate all feed [0, 1] images);
- raw pixels become [0, 1] by dividing by InputSpec.scale (255 for 8-bit), or by the percentile
  stretch that predict offers for 16-bit data;
- one head per dataset name; a segmentation head returns logits (B, K, H, W) at the input size.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from s5cli.config import StrictConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # s5_method.md §0: ImageNet statistics on RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)

Task = Literal["segmentation", "detection"]


class HeadSpec(StrictConfig):
    """One dataset's head: its task, class names, colours and ignore value."""

    name: str
    task: Task = "segmentation"
    classes: list[str]
    palette: list[tuple[int, int, int]] = Field(default_factory=list)
    ignore_index: int = 255
    options: dict[str, Any] = Field(default_factory=dict)  # detection: DetectionOptions overrides (e.g. fc_channels)

    @property
    def num_classes(self) -> int:
        """Number of classes the head predicts."""
        return len(self.classes)


class InputSpec(StrictConfig):
    """How raw pixels become the model's input."""

    bands: list[str] = Field(default_factory=lambda: ["red", "green", "blue"])
    mean: list[float] = Field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = Field(default_factory=lambda: list(IMAGENET_STD))
    scale: float | None = 255.0  # raw value mapped to 1.0; None: by dtype (255, 65535, 1.0 for floats)
    gsd: float | None = None  # ground sample distance of the training data in metres, when known
    tile_size: int = 512  # the crop size the model was trained at


class ModelSpec(StrictConfig):
    """Everything needed to rebuild a model before loading its weights."""

    preset: str = "vit-b"
    heads: list[HeadSpec]
    moe: bool = False  # MoE-MDF experts in every block (one per head), else a dense FFN
    expert_width: int = 256  # P in s5_method.md §3: output channels of each expert's fc2 slice
    img_size: int = 512  # position embedding stored at img_size / 16 tokens a side
    drop_path: float = 0.1
    decoder_channels: int = 256
    input: InputSpec = Field(default_factory=InputSpec)

    def head(self, name: str | None) -> HeadSpec:
        """The head for a dataset name; None picks the only head (an error if there are several)."""
        from s5cli.errors import InputError

        if name is None:
            if len(self.heads) == 1:
                return self.heads[0]
            names = ", ".join(h.name for h in self.heads)
            raise InputError(f"this model has several heads ({names}); choose one with --dataset")
        for head in self.heads:
            if head.name == name:
                return head
        names = ", ".join(h.name for h in self.heads)
        raise InputError(f"no head '{name}' in this model; it has: {names}")
