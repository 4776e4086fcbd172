"""Oriented RPN (Oriented R-CNN, Xie et al. 2021): horizontal anchors, midpoint-offset regression, proposals.

As OBBDetection's OrientedRPNHead: a shared 3x3 conv + ReLU, a 1x1 sigmoid objectness per anchor
and a 1x1 6-delta regression per anchor; anchors are assigned by horizontal IoU with the ground
truth's enclosing boxes; proposals are NMSed per level on their enclosing horizontal boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s5cli.detection.assign import max_iou_assign, random_sample
from s5cli.detection.coders import MidpointOffsetCoder
from s5cli.detection.nms import batched_nms
from s5cli.detection.options import DetectionOptions
from s5cli.geometry.boxes import hbox_iou, rboxes_to_hboxes


def level_anchors(stride: int, height: int, width: int, ratios: tuple[float, ...], scale: float) -> Tensor:
    """Anchors (height * width * A, 4) of one level, row-major over the map, anchors of a cell adjacent.

    mmdet AnchorGenerator: base size = stride, w = stride * scale / sqrt(ratio), h = stride * scale * sqrt(ratio),
    centred on (x * stride, y * stride) (center_offset 0).
    """
    r = torch.tensor(ratios, dtype=torch.float32)
    ws = stride * scale / r.sqrt()
    hs = stride * scale * r.sqrt()
    base = torch.stack([-ws / 2, -hs / 2, ws / 2, hs / 2], dim=-1)  # (A, 4)
    ys, xs = torch.meshgrid(torch.arange(height) * stride, torch.arange(width) * stride, indexing="ij")
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4).float()
    return (shifts + base).reshape(-1, 4)


class OrientedRPN(nn.Module):
    """Objectness and midpoint-offset deltas on every FPN level; loss and proposals."""

    def __init__(self, channels: int, options: DetectionOptions) -> None:
        super().__init__()
        self.options = options
        self.num_anchors = len(options.anchor_ratios)
        self.rpn_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(channels, self.num_anchors, 1)
        self.rpn_reg = nn.Conv2d(channels, self.num_anchors * 6, 1)
        for conv in (self.rpn_conv, self.rpn_cls, self.rpn_reg):  # OrientedRPNHead.init_weights
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        self.coder = MidpointOffsetCoder(stds=options.rpn_stds)

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness logits (B, H*W*A) and deltas (B, H*W*A, 6), cell-major like the anchors."""
        scores, deltas = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            b = x.shape[0]
            scores.append(self.rpn_cls(x).permute(0, 2, 3, 1).reshape(b, -1))
            deltas.append(self.rpn_reg(x).permute(0, 2, 3, 1).reshape(b, -1, 6))
        return scores, deltas

    def anchors(self, feats: list[Tensor]) -> list[Tensor]:
        """Anchors (H*W*A, 4) of every level, on the features' device."""
        o = self.options
        return [
            level_anchors(s, x.shape[-2], x.shape[-1], o.anchor_ratios, o.anchor_scale).to(x.device)
            for s, x in zip(o.anchor_strides, feats)
        ]

    def loss(
        self,
        scores: list[Tensor],
        deltas: list[Tensor],
        anchors: list[Tensor],
        image_size: tuple[int, int],
        gts: list[Tensor],
    ) -> dict[str, Tensor]:
        """Sigmoid CE on 256 sampled anchors per image and smooth-L1 on the positives, both over the sample count."""
        o = self.options
        flat_anchors = torch.cat(anchors)
        logits, preds = torch.cat(scores, dim=1).float(), torch.cat(deltas, dim=1).float()  # (B, N), (B, N, 6)
        height, width = image_size
        border = o.allowed_border
        valid = (
            torch.ones(flat_anchors.shape[0], dtype=torch.bool, device=flat_anchors.device)
            if border < 0
            else (flat_anchors[:, 0] >= -border)
            & (flat_anchors[:, 1] >= -border)
            & (flat_anchors[:, 2] < width + border)
            & (flat_anchors[:, 3] < height + border)
        )
        valid_idx = valid.nonzero(as_tuple=True)[0]
        cls_terms, reg_terms, count = [], [], 0
        for b, gt in enumerate(gts):
            cand, gt_h = flat_anchors[valid_idx], rboxes_to_hboxes(gt)
            assigned = max_iou_assign(
                lambda start, stop, cand=cand, gt_h=gt_h: hbox_iou(cand[start:stop], gt_h),
                o.rpn_pos_iou,
                o.rpn_neg_iou,
                o.rpn_min_pos_iou,
                match_low_quality=True,
                shape=(cand.shape[0], gt_h.shape[0]),
                chunk=max(1, (1 << 22) // max(gt_h.shape[0], 1)),  # ~4M anchor-GT pairs at a time
            )
            pos, neg = random_sample(assigned, o.rpn_samples, o.rpn_pos_fraction)
            idx = torch.cat([pos, neg])
            target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).to(logits.dtype)
            cls_terms.append(F.binary_cross_entropy_with_logits(logits[b, valid_idx[idx]], target, reduction="sum"))
            if pos.numel():
                goal = self.coder.encode(cand[pos], gt[assigned[pos]])
                pred = preds[b, valid_idx[pos]]
                reg_terms.append(F.smooth_l1_loss(pred, goal, beta=o.rpn_loss_beta, reduction="sum"))
            count += idx.numel()
        count = max(count, 1)
        # The zero terms keep every output in the graph when nothing (or no positive) was sampled.
        return {
            "loss_rpn_cls": (sum(cls_terms) + logits.sum() * 0) / count,
            "loss_rpn_bbox": (sum(reg_terms) + preds.sum() * 0) / count,
        }

    @torch.no_grad()
    def proposals(self, scores: list[Tensor], deltas: list[Tensor], anchors: list[Tensor]) -> list[Tensor]:
        """Per image: up to rpn_post_nms_(train|test) rotated proposals (P, 5), best first."""
        o = self.options
        keep_max = o.rpn_post_nms_train if self.training else o.rpn_post_nms_test
        out = []
        for b in range(scores[0].shape[0]):
            boxes, probs, levels = [], [], []
            for lvl, (s, d, a) in enumerate(zip(scores, deltas, anchors)):
                p = s[b].float().sigmoid()
                if 0 < o.rpn_pre_nms < p.numel():
                    p, top = p.topk(o.rpn_pre_nms)
                    d_, a_ = d[b][top], a[top]
                else:
                    d_, a_ = d[b], a
                boxes.append(self.coder.decode(a_, d_.float()))
                probs.append(p)
                levels.append(torch.full_like(p, lvl, dtype=torch.long))
            box, prob, level = torch.cat(boxes), torch.cat(probs), torch.cat(levels)
            if o.min_box_size > 0:
                ok = (box[:, 2] >= o.min_box_size) & (box[:, 3] >= o.min_box_size)
                box, prob, level = box[ok], prob[ok], level[ok]
            ok = torch.isfinite(box).all(1)
            box, prob, level = box[ok], prob[ok], level[ok]
            keep = batched_nms(rboxes_to_hboxes(box), prob, level, o.rpn_nms_iou)[:keep_max]
            out.append(box[keep])
        return out
