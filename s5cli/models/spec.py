"""What a model is, as saved in every checkpoint: preset, heads (one per dataset) and the input contract.

The contract every part of s5cli relies on:
- a model's `forward(x, dataset)` takes float images in [0, 1], shape (B, C, H, W) with
  C = len(InputSpec.bands), H and W multiples of 16, and normalises them itself with
  InputSpec.mean / InputSpec.std (so datasets, predict and curate all feed [0, 1] images);
- raw pixels become [0, 1] by dividing by InputSpec.scale, the value training divided by (255 for
  8-bit, 4095 for 12-bit data given `scale: 4095`, ...); InputSpec also records the 1-based source bands,
  the dtype and the GSD the training data had, and predict applies them by default (`input_spec` fills
  them from the data both training stages read; `for_head` gives one head's view);
- one head per dataset name; a segmentation head returns logits (B, K, H, W) at the input size;
- each head carries the input it was trained on (HeadInput: tile or patch side, overlap), which
  predict, evaluate and export read as their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from s5cli.config import StrictConfig

if TYPE_CHECKING:
    from s5cli.datasets.pixels import PixelFormat

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics on RGB in [0, 1] (S5's normalisation)
IMAGENET_STD = (0.229, 0.224, 0.225)

Task = Literal["segmentation", "detection"]
Channel = Annotated[int, Field(ge=0, le=255)]  # one 8-bit colour component


class HeadInput(StrictConfig):
    """The input a head was trained on: the tile (segmentation) or patch (detection) side and the overlap."""

    size: int = Field(ge=16)  # pixels a side
    overlap: float = Field(ge=0.0, lt=1.0)  # share of `size` between neighbouring tiles or patches

    @property
    def overlap_px(self) -> int:
        """Pixels shared by neighbouring tiles or patches (even, so that blends stay symmetric)."""
        return min(2 * round(self.overlap * self.size / 2), self.size - 16)

    @classmethod
    def default(cls, task: Task) -> HeadInput:
        """What predict assumes of a head that does not say: 512 tiles with 25 % overlap, DOTA's patches."""
        if task == "segmentation":
            return cls(size=512, overlap=0.25)
        from s5cli.datasets.benchmarks import DOTA_V2_0

        return cls(size=DOTA_V2_0.patch_size, overlap=DOTA_V2_0.patch_gap / DOTA_V2_0.patch_size)


class HeadSpec(StrictConfig):
    """One dataset's head: its task, class names, colours and the input it was trained on."""

    name: str = Field(min_length=1)
    task: Task = "segmentation"
    classes: list[str] = Field(min_length=1)
    palette: list[tuple[Channel, Channel, Channel]] = Field(default_factory=list)  # empty: a default palette
    input: HeadInput  # filled with HeadInput.default(task) when not given
    options: dict[str, Any] = Field(default_factory=dict)  # detection: DetectionOptions overrides (e.g. fc_channels)

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "ignore_index"}  # checkpoints before 0.2 stored it
            classes = data.get("classes") or []
            if not data.get("palette"):
                from s5cli.datasets.info import default_palette

                data["palette"] = [list(c) for c in default_palette(len(classes))]
            if data.get("input") is None:
                data["input"] = HeadInput.default(data.get("task", "segmentation"))
        return data

    @model_validator(mode="after")
    def _check_palette(self) -> HeadSpec:
        if len(self.palette) != len(self.classes):
            raise ValueError(f"{len(self.palette)} palette colours for {len(self.classes)} classes")
        return self

    @property
    def num_classes(self) -> int:
        """Number of classes the head predicts."""
        return len(self.classes)

    @classmethod
    def from_dataset(cls, info: Any, size: int | None = None, **update: Any) -> HeadSpec:
        """The head of a dataset record: its head classes and colours, trained at `size` px (default: its own).

        Detection heads keep the dataset's patch overlap (DOTA: 200 px at 1024), scaled to `size`.
        """
        from s5cli.errors import InputError

        if info.task not in ("segmentation", "detection"):
            raise InputError(f"{info.name} has no labels, so no model head")
        base = HeadInput.default(info.task)
        overlap = base.overlap
        if info.task == "detection" and info.patch_size and info.patch_gap is not None:
            overlap = info.patch_gap / info.patch_size
        head_input = HeadInput(size=size or base.size, overlap=overlap)
        return cls(
            name=info.name,
            task=info.task,
            classes=list(info.head_classes),
            palette=[tuple(c) for c in info.head_palette],
            input=head_input,
            **update,
        )


class PixelRead(StrictConfig):
    """How a head's training data became [0, 1] images: which source bands, divided by what, of which dtype and GSD."""

    source_bands: list[int] | None = None  # 1-based bands of the training rasters, in the model's order
    scale: float | None = Field(default=255.0, gt=0)  # raw value mapped to 1.0; None: by dtype (255, 65535, 1.0)
    dtype: str | None = None  # data type of the training rasters (uint8, uint16, float32, ...), when known
    gsd: float | None = Field(default=None, gt=0)  # metres per pixel of the training data, when known
    band_names: list[str] | None = None  # a head's own band names, where heads differ (else InputSpec.bands)


class InputSpec(PixelRead):
    """How raw pixels become the model's input: band names and normalisation, and how the training data were read.

    The PixelRead fields are the model's; where the heads of a multi-dataset model were trained on data
    read differently (Potsdam at 0.05 m, LoveDA at 0.3 m), `heads` holds every head's own (`for_head`).
    """

    bands: list[str] = Field(default_factory=lambda: ["red", "green", "blue"], min_length=1)
    mean: list[float] = Field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = Field(default_factory=lambda: list(IMAGENET_STD))  # divides: each at least 1e-6
    heads: dict[str, PixelRead] = Field(default_factory=dict)

    @field_validator("std")
    @classmethod
    def _not_degenerate(cls, value: list[float]) -> list[float]:
        if any(v < 1e-6 for v in value):  # a std of 1e-9 turns every pixel into +-1e9 after normalising
            raise ValueError(f"std values must be at least 1e-6, got {value}")
        return value

    def for_head(self, name: str) -> InputSpec:
        """The contract one head was trained under (its own PixelRead in place of the model's)."""
        own = self.heads.get(name)
        if own is None:
            return self.model_copy(update={"heads": {}})
        names = {"bands": list(own.band_names), "band_names": None} if own.band_names else {}
        return self.model_copy(update={**own.model_dump(), **names, "heads": {}})


def input_spec(formats: Mapping[str, PixelFormat], base: InputSpec | None = None) -> InputSpec:
    """The input contract of a model trained on these datasets: head name -> its loader's PixelFormat.

    Both training stages build it here from what their loaders read (datasets/pixels.py). `base` is an
    init checkpoint's contract: its band count must match the data and its normalisation is kept (the
    weights were trained under it). Without one, 3-band data get ImageNet statistics (S5's) and other
    band counts a centred [0, 1] range.
    """
    from s5cli.errors import InputError

    if not formats:
        raise ValueError("input_spec needs at least one dataset")
    items = list(formats.items())
    first = items[0][1]
    channels = len(first.bands)
    for name, fmt in items:
        if base is not None and len(fmt.bands) != len(base.bands):
            raise InputError(
                f"dataset '{name}' gives {len(fmt.bands)} band(s) but the init checkpoint takes "
                f"{len(base.bands)} bands ({', '.join(base.bands)}); {fmt.band_advice(len(base.bands))}",
                fmt.origin,
            )
        if len(fmt.bands) != channels:
            raise InputError(
                f"dataset '{name}' gives {len(fmt.bands)} band(s) but '{items[0][0]}' gives {channels}: one model "
                f"takes one band count; {fmt.band_advice(channels)}",
                fmt.origin,
            )
    if base is not None:
        norm = {"bands": list(first.names), "mean": list(base.mean), "std": list(base.std)}
    elif channels == 3:
        norm = {"bands": list(first.names), "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    else:  # no ImageNet statistics for other band sets: centre [0, 1] data
        norm = {"bands": list(first.names), "mean": [0.5] * channels, "std": [0.25] * channels}
    reads = {
        name: PixelRead(source_bands=list(f.bands), scale=f.scale, dtype=f.dtype, gsd=f.gsd, band_names=list(f.names))
        for name, f in items
    }
    same = len({r.model_dump_json() for r in reads.values()}) == 1
    model_read = reads[items[0][0]].model_dump(exclude={"band_names"})  # the model's names are `bands`
    return InputSpec(**norm, **model_read, heads={} if same else reads)


class ModelSpec(StrictConfig):
    """Everything needed to rebuild a model before loading its weights."""

    preset: str = "vit-b"
    heads: list[HeadSpec]
    moe: bool = False  # MoE-MDF experts in every block (one per head), else a dense FFN
    expert_width: int = Field(256, ge=1)  # P: output channels of each expert's fc2 slice (docs/method.md)
    img_size: int = Field(512, ge=16)  # position embedding stored at img_size / 16 tokens a side
    drop_path: float = Field(0.1, ge=0.0, lt=1.0)
    decoder_channels: int = Field(256, ge=1)
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


def upgrade_spec(data: dict[str, Any], input_sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """A spec as checkpoints before 0.2 stored it, in today's form.

    They kept one tile size for the whole model (`input.tile_size`) and each head's trained size in the
    checkpoint's `extra["input_sizes"]`; both become the heads' own HeadInput.
    """
    data = dict(data)
    inputs = dict(data.get("input") or {})
    tile = inputs.pop("tile_size", None)
    data["input"] = inputs
    heads = []
    for head in data.get("heads") or []:
        head = dict(head)
        if head.get("input") is None:
            size = (input_sizes or {}).get(head.get("name")) or (tile if head.get("task") != "detection" else None)
            if size is not None:
                default = HeadInput.default(head.get("task", "segmentation"))
                head["input"] = {"size": int(size), "overlap": default.overlap}
        heads.append(head)
    data["heads"] = heads
    return data
