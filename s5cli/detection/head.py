"""Oriented R-CNN on the S5 backbone's four simple-FPN maps: FPN neck + oriented RPN + rotated RoI head.

`build_detection_head(in_channels, num_classes, **options)` is what `s5cli.models.network.build_model`
calls for a detection HeadSpec; the module is called as `head(features, image_size, targets)`:
- features: the four backbone maps (B, D, H/s, W/s), s = 4, 8, 16, 32;
- image_size: (H, W) of the input batch (anchors outside it are not trained);
- targets (training): per image {"boxes": (N, 5) rotated boxes (s5cli.geometry.boxes convention),
  "labels": int64 (N,) in [0, K)}, optionally "ignore": bool (N,) marking boxes to drop (boxes of zero
  width or height are dropped too). "difficult" boxes are ordinary ground truth in training, as in
  OBBDetection; evaluation is where they are ignored.
Training returns {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}; evaluation returns per
image {"boxes": (M, 5), "scores": (M,), "labels": int64 (M,)}, best first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from s5cli.config import build_config
from s5cli.detection.fpn import FPN
from s5cli.detection.options import DetectionOptions
from s5cli.detection.roi_head import RotatedRoIHead
from s5cli.detection.rpn import OrientedRPN
from s5cli.errors import InputError


class OrientedRCNNHead(nn.Module):
    """FPN (`neck`), oriented RPN (`rpn_head`) and rotated RoI head (`roi_head`) of one dataset."""

    def __init__(self, in_channels: int, num_classes: int, options: DetectionOptions | None = None) -> None:
        super().__init__()
        self.options = options or DetectionOptions()
        self.num_classes = num_classes
        c = self.options.fpn_channels
        self.neck = FPN([in_channels] * 4, c, num_outs=len(self.options.anchor_strides))
        self.rpn_head = OrientedRPN(c, self.options)
        self.roi_head = RotatedRoIHead(c, num_classes, self.options)
        if self.options.init == "s5":  # the modules start as mmdet's init_weights; S5 never ran those
            self._init_as_s5()

    @torch.no_grad()
    def _init_as_s5(self) -> None:
        """The weights S5's detector trains from (DetectionOptions.init): mmcv ConvModule and PyTorch defaults."""
        for conv in [*self.neck.lateral_convs, *self.neck.fpn_convs]:  # ConvModule.init_weights (kaiming_init)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        for module in [*self.rpn_head.modules(), *self.roi_head.modules()]:
            if isinstance(module, nn.Conv2d | nn.Linear):
                module.reset_parameters()

    def forward(
        self, features: list[Tensor], image_size: tuple[int, int], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses (training) or detections per image (evaluation); see the module docstring."""
        feats = self.neck(features)
        scores, deltas = self.rpn_head(feats)
        anchors = self.rpn_head.anchors(feats)
        proposals = self.rpn_head.proposals(scores, deltas, anchors)
        if not self.training:
            return self.roi_head.predict(feats, proposals)
        if targets is None or len(targets) != features[0].shape[0]:
            raise InputError("a detection head in training mode needs one target dict per image")
        gts, labels = self._targets(targets, features[0].device)
        losses = self.rpn_head.loss(scores, deltas, anchors, image_size, gts)
        losses.update(self.roi_head.loss(feats, proposals, gts, labels))
        return losses

    def _targets(self, targets: list[dict[str, Tensor]], device: torch.device) -> tuple[list[Tensor], list[Tensor]]:
        gts, labels = [], []
        for t in targets:
            boxes = torch.as_tensor(t["boxes"], dtype=torch.float32, device=device).reshape(-1, 5)
            lab = torch.as_tensor(t["labels"], dtype=torch.long, device=device).reshape(-1)
            if boxes.shape[0] != lab.shape[0]:
                raise InputError(f"{boxes.shape[0]} boxes but {lab.shape[0]} labels in a detection target")
            if lab.numel() and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise InputError(f"detection labels must be in [0, {self.num_classes}), got {lab.tolist()}")
            # Boxes without area (a crop can leave slivers) have no log-size target: drop them too.
            keep = torch.isfinite(boxes).all(1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
            if t.get("ignore") is not None:
                keep &= ~torch.as_tensor(t["ignore"], dtype=torch.bool, device=device).reshape(-1)
            boxes, lab = boxes[keep], lab[keep]
            gts.append(boxes)
            labels.append(lab)
        return gts, labels


def build_detection_head(in_channels: int, num_classes: int, **options: Any) -> OrientedRCNNHead:
    """The Oriented R-CNN head for one dataset; options override DetectionOptions fields (ConfigError if unknown)."""
    if num_classes < 1:
        raise InputError(f"a detection head needs at least one class, got {num_classes}")
    opts = build_config(DetectionOptions, options, source="detection head options")
    return OrientedRCNNHead(in_channels, num_classes, opts)
