"""Oriented R-CNN's second stage: rotated RoIAlign 7x7, two shared FC of 1024, K+1 scores and 5 class-agnostic deltas.

As OBBDetection's OBBStandardRoIHead + OBBShared2FCBBoxHead: proposals (plus the ground truth) are
assigned by exact rotated IoU and sampled 512 per image with at most 25% positives; the loss is
softmax CE over the samples and smooth-L1 on the positives' deltas, both averaged over the samples.
The background is the last class (mmdet 2.x), so official `fc_cls` weights load without reordering.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s5cli.detection.assign import max_iou_assign, random_sample
from s5cli.detection.coders import DeltaXYWHTCoder
from s5cli.detection.nms import batched_nms
from s5cli.detection.options import DetectionOptions
from s5cli.detection.roi_align import rotated_roi_align
from s5cli.geometry.iou import rotated_iou


class RotatedRoIHead(nn.Module):
    """Pooled RoI features -> (K+1) logits and (5,) deltas; sampling, loss and test post-processing."""

    def __init__(self, channels: int, num_classes: int, options: DetectionOptions) -> None:
        super().__init__()
        self.options = options
        self.num_classes = num_classes
        size, fc = options.roi_size, options.fc_channels
        self.shared_fcs = nn.ModuleList([nn.Linear(channels * size * size, fc), nn.Linear(fc, fc)])
        self.fc_cls = nn.Linear(fc, num_classes + 1)
        self.fc_reg = nn.Linear(fc, 5)
        for fc_layer in self.shared_fcs:  # ConvFCBBoxHead.init_weights
            nn.init.xavier_uniform_(fc_layer.weight)
            nn.init.zeros_(fc_layer.bias)
        nn.init.normal_(self.fc_cls.weight, std=0.01)
        nn.init.normal_(self.fc_reg.weight, std=0.001)
        nn.init.zeros_(self.fc_cls.bias)
        nn.init.zeros_(self.fc_reg.bias)
        self.coder = DeltaXYWHTCoder(stds=options.rcnn_stds)

    def pool(self, feats: list[Tensor], rois: Tensor) -> Tensor:
        """Features (R, C, 7, 7) of rois (R, 6) = (image index, rotated box), each from the level its size picks."""
        o = self.options
        rois = rois.clone()
        rois[:, 3] *= o.roi_extend_w  # pool a margin of context around each box
        rois[:, 4] *= o.roi_extend_h
        # FPN level rule (OBBSingleRoIExtractor.map_roi_levels, on the enlarged boxes)
        scale = (rois[:, 3] * rois[:, 4]).clamp_min(0).sqrt()
        level = torch.floor(torch.log2(scale / o.finest_scale + 1e-6)).clamp(0, o.roi_levels - 1).long()
        out = feats[0].new_zeros(rois.shape[0], feats[0].shape[1], o.roi_size, o.roi_size)
        for lvl in range(o.roi_levels):
            sel = (level == lvl).nonzero(as_tuple=True)[0]
            if sel.numel():
                stride = o.anchor_strides[lvl]
                # In float32 whatever the autocast dtype, as OBBDetection's force_fp32 extractor.
                out[sel] = rotated_roi_align(
                    feats[lvl].float(), rois[sel].float(), o.roi_size, 1.0 / stride, o.roi_sampling_ratio, o.roi_aligned
                ).to(out.dtype)
        return out

    def forward(self, feats: list[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits (R, K+1) and deltas (R, 5) for rois (R, 6)."""
        x = self.pool(feats, rois).flatten(1)
        for fc_layer in self.shared_fcs:
            x = F.relu(fc_layer(x))
        return self.fc_cls(x), self.fc_reg(x)

    @torch.no_grad()
    def sample(
        self, proposals: list[Tensor], gts: list[Tensor], labels: list[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sampled rois (R, 6), class targets (R,), delta targets (P, 5) and the positive mask (R,)."""
        o = self.options
        rois, classes, goals, positive = [], [], [], []
        for b, (props, gt, lab) in enumerate(zip(proposals, gts, labels)):
            if o.add_gt_as_proposals and gt.numel():
                props = torch.cat([gt.to(props.dtype), props])
            iou = rotated_iou(props, gt.to(props.dtype))
            assigned = max_iou_assign(iou, o.rcnn_pos_iou, o.rcnn_neg_iou, o.rcnn_min_pos_iou, match_low_quality=False)
            pos, neg = random_sample(assigned, o.rcnn_samples, o.rcnn_pos_fraction)
            boxes = props[torch.cat([pos, neg])]
            rois.append(torch.cat([boxes.new_full((boxes.shape[0], 1), b), boxes], dim=1))
            classes.append(torch.cat([lab[assigned[pos]], lab.new_full((neg.numel(),), self.num_classes)]))
            goals.append(self.coder.encode(props[pos], gt[assigned[pos]].to(props.dtype)))
            positive.append(
                torch.cat([torch.ones_like(pos, dtype=torch.bool), torch.zeros_like(neg, dtype=torch.bool)])
            )
        return torch.cat(rois), torch.cat(classes), torch.cat(goals), torch.cat(positive)

    def loss(
        self, feats: list[Tensor], proposals: list[Tensor], gts: list[Tensor], labels: list[Tensor]
    ) -> dict[str, Tensor]:
        """Softmax CE over the sampled RoIs and smooth-L1 on the positives, each over the number of samples."""
        rois, classes, goals, positive = self.sample(proposals, gts, labels)
        logits, deltas = self(feats, rois)
        count = max(rois.shape[0], 1)
        logits, deltas = logits.float(), deltas.float()  # losses in float32 under autocast
        loss_cls = F.cross_entropy(logits, classes, reduction="sum") / count if rois.shape[0] else logits.sum() * 0
        reg = F.smooth_l1_loss(
            deltas[positive], goals.to(deltas.dtype), beta=self.options.rcnn_loss_beta, reduction="sum"
        )
        return {"loss_cls": loss_cls, "loss_bbox": (reg + deltas.sum() * 0) / count}

    @torch.no_grad()
    def predict(self, feats: list[Tensor], proposals: list[Tensor]) -> list[dict[str, Tensor]]:
        """Per image: boxes (M, 5), scores (M,), labels (M,) after the score threshold and per-class rotated NMS."""
        o = self.options
        rois = torch.cat([torch.cat([p.new_full((p.shape[0], 1), b), p], dim=1) for b, p in enumerate(proposals)])
        logits, deltas = self(feats, rois)
        probs = logits.float().softmax(-1)[:, : self.num_classes]  # drop the background column
        boxes = self.coder.decode(rois[:, 1:].float(), deltas.float())
        results, start = [], 0
        for p in proposals:
            stop = start + p.shape[0]
            prob, box = probs[start:stop], boxes[start:stop]
            start = stop
            roi_idx, cls = (prob > o.score_threshold).nonzero(as_tuple=True)
            cand_box, cand_score = box[roi_idx], prob[roi_idx, cls]
            keep = batched_nms(cand_box, cand_score, cls, o.nms_iou)[: o.max_detections]
            results.append({"boxes": cand_box[keep], "scores": cand_score[keep], "labels": cls[keep]})
        return results
