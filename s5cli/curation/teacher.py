"""The teacher: a segmentation checkpoint that pseudo-labels chips, in batches, with per-chip statistics.

Per chip, over its valid (not nodata) pixels, from the softmax p (K classes):
- per-pixel entropy H = -sum_k p_k ln p_k (nats, 0 .. ln K); `entropy_mean`, `entropy_max`;
- `class_hist`: pixels per argmax class; `foreground`: share of pixels whose argmax is not the
  background class (the draft paper drops chips with none; docs/method.md, curation).
The pseudo-label is an index PNG with the head's palette; 255 marks pixels without a label.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from s5cli.datasets.base import to_unit_float
from s5cli.datasets.info import IGNORE
from s5cli.errors import InputError
from s5cli.models.spec import HeadSpec, InputSpec
from s5cli.training.device import inference_precision, resolve_device

NO_LABEL = IGNORE  # pseudo-label pixels without a label, read back as ignore by S4P


@dataclass
class ChipStats:
    """One chip's teacher statistics and its pseudo-label (H, W) uint8 (255 where not valid)."""

    entropy_mean: float
    entropy_max: float
    foreground: float
    class_hist: list[int]
    labels: np.ndarray


def write_mask(path: Path, labels: np.ndarray, palette: Sequence[tuple[int, int, int]]) -> None:
    """Write an index PNG (mode P) whose palette colours the classes; 255 stays unlabelled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8)))  # mode L
    flat = [c for rgb in palette for c in rgb]
    image.putpalette(flat + [0] * (768 - len(flat)))
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def chip_stats(probs: torch.Tensor, valid: torch.Tensor, background: int) -> ChipStats:
    """Statistics of one chip from its class probabilities (K, H, W) and valid mask (H, W)."""
    k = probs.shape[0]
    entropy = torch.special.entr(probs).sum(0)  # (H, W), entr(p) = -p ln p with entr(0) = 0
    labels = probs.argmax(0)
    n = int(valid.sum())
    if n == 0:
        empty = np.full(valid.shape, NO_LABEL, dtype=np.uint8)
        return ChipStats(0.0, 0.0, 0.0, [0] * k, empty)
    ent = entropy[valid]
    hist = torch.bincount(labels[valid], minlength=k)
    out = torch.where(valid, labels, torch.full_like(labels, NO_LABEL)).to(torch.uint8)
    return ChipStats(
        entropy_mean=float(ent.double().mean()),
        entropy_max=float(ent.max()),
        foreground=float(1.0 - hist[background].item() / n),
        class_hist=[int(v) for v in hist.tolist()],
        labels=out.cpu().numpy(),
    )


class Teacher:
    """A model honouring the spec contract (model(x in [0, 1], dataset) -> logits) run in batches."""

    def __init__(
        self,
        model: nn.Module,
        head: HeadSpec,
        input_spec: InputSpec,
        device: torch.device | str = "cpu",
        background: str | None = None,
        batch_size: int = 8,
    ) -> None:
        if head.task != "segmentation":
            raise InputError(f"head '{head.name}' is a {head.task} head; the teacher needs a segmentation head")
        if head.num_classes > NO_LABEL:
            raise InputError(f"head '{head.name}' has {head.num_classes} classes; index PNGs hold at most 255")
        self.model = model.eval()
        self.head = head
        self.input = input_spec
        self.device = torch.device(device)
        self.batch_size = batch_size
        if background is None:
            self.background = 0
        elif background in head.classes:
            self.background = head.classes.index(background)
        else:
            raise InputError(f"no class '{background}' in head '{head.name}'; it has: {', '.join(head.classes)}")
        self.palette = [tuple(c) for c in head.palette]  # every HeadSpec has one colour per class

    @property
    def classes(self) -> list[str]:
        """Class names of the head."""
        return list(self.head.classes)

    @torch.inference_mode()
    def predict(self, chips: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[ChipStats]:
        """Statistics and pseudo-labels for (data (C, H, W) raw, valid (H, W)) chips, batch by batch."""
        out: list[ChipStats] = []
        for start in range(0, len(chips), self.batch_size):
            out.extend(self._batch(chips[start : start + self.batch_size]))
        return out

    def _batch(self, chips: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[ChipStats]:
        channels = len(self.input.bands)
        h16 = 16 * math.ceil(max(d.shape[1] for d, _ in chips) / 16)  # the contract: multiples of 16
        w16 = 16 * math.ceil(max(d.shape[2] for d, _ in chips) / 16)
        x = torch.zeros((len(chips), channels, h16, w16), dtype=torch.float32)
        valid = torch.zeros((len(chips), h16, w16), dtype=torch.bool)
        for i, (data, ok) in enumerate(chips):
            if data.shape[0] != channels:
                raise InputError(
                    f"a chip has {data.shape[0]} band(s); the teacher takes {channels} ({', '.join(self.input.bands)});"
                    " choose them with --bands"
                )
            h, w = data.shape[1:]
            x[i, :, :h, :w] = to_unit_float(data, self.input.scale)
            valid[i, :h, :w] = torch.from_numpy(ok)
        x, valid = x.to(self.device), valid.to(self.device)
        with inference_precision("auto", self.device).autocast():  # fp32 on CPU: exact statistics
            logits = self.model(x, self.head.name)  # (B, K, H, W)
        probs = torch.softmax(logits.float(), dim=1)
        stats = []
        for i, (data, _) in enumerate(chips):
            h, w = data.shape[1:]
            stats.append(chip_stats(probs[i, :, :h, :w], valid[i, :h, :w], self.background))
        return stats


def load_teacher(
    path: str | os.PathLike[str],
    device: str = "auto",
    head: str | None = None,
    background: str | None = None,
    batch_size: int = 8,
) -> Teacher:
    """Load a checkpoint as a teacher on a device ('auto': cuda when available)."""
    from s5cli.models.checkpoint import load_checkpoint

    dev = resolve_device(device)
    model, spec, _ = load_checkpoint(path, dev)
    chosen = spec.head(head)
    return Teacher(model, chosen, spec.input.for_head(chosen.name), dev, background, batch_size)  # its data's scale
