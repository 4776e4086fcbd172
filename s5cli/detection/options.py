"""Settings of the Oriented R-CNN head; defaults are S5's (configs/obb/oriented_rcnn/mtd/vit_*_moe_dior_r_dota2.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from s5cli.config import StrictConfig


class DetectionOptions(StrictConfig):
    """Every number of the head: network sizes, anchors, assignment, sampling, losses and test post-processing."""

    # Network
    fpn_channels: int = 256
    fc_channels: int = 1024  # OBBShared2FCBBoxHead
    # Initial weights of a fresh head. "s5": as S5 trained them: OBBTwoStageDetectorMTD.init_weights tests
    # `neck` / `rpn_head` / `roi_head` attributes it does not have, so it never runs; the necks keep mmcv
    # ConvModule's construction-time kaiming (fan_out, normal) and the RPN and RoI layers PyTorch's defaults.
    # "mmdet": what mmdet's init_weights would have set (FPN xavier, RPN normal 0.01, shared FCs xavier,
    # classifier normal 0.01, regressor normal 0.001). The default is "s5", the init behind the paper's numbers.
    init: Literal["s5", "mmdet"] = "s5"
    # Anchors: one scale, three ratios per level; the FPN has one level per stride
    anchor_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width
    anchor_scale: float = 8.0
    allowed_border: float = 0.0  # anchors further outside the image are not trained; negative: keep all
    # RPN assignment and sampling (train_cfg.rpn)
    rpn_pos_iou: float = 0.7
    rpn_neg_iou: float = 0.3
    rpn_min_pos_iou: float = 0.3
    rpn_samples: int = 256
    rpn_pos_fraction: float = 0.5
    rpn_loss_beta: float = 1.0 / 9.0  # smooth-L1 beta
    rpn_stds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.5, 0.5)  # MidpointOffsetCoder
    # Proposals (train_cfg.rpn_proposal / test_cfg.rpn)
    rpn_pre_nms: int = 2000  # per level
    rpn_nms_iou: float = 0.8  # on the proposals' enclosing horizontal boxes, per level
    rpn_post_nms_train: int = 2000
    rpn_post_nms_test: int = 2000
    min_box_size: float = 0.0
    # RoI feature extraction (OBBSingleRoIExtractor + RoIAlignRotated)
    roi_size: int = 7
    roi_sampling_ratio: int = 2
    roi_aligned: bool = True
    roi_levels: int = 4  # RoIs read the first 4 FPN levels (strides 4..32)
    # OBBDetection's extend_factor=(1.4, 1.2) is unpacked as (h, w) by roi_rescale: w x 1.2, h x 1.4.
    roi_extend_w: float = 1.2
    roi_extend_h: float = 1.4
    finest_scale: float = 56.0
    # RoI head assignment and sampling (train_cfg.rcnn): rotated IoU
    rcnn_pos_iou: float = 0.5
    rcnn_neg_iou: float = 0.5
    rcnn_min_pos_iou: float = 0.5
    rcnn_samples: int = 512
    rcnn_pos_fraction: float = 0.25
    add_gt_as_proposals: bool = True
    rcnn_loss_beta: float = 1.0
    rcnn_stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2, 0.1)  # OBB2OBBDeltaXYWHTCoder
    # Test post-processing (test_cfg.rcnn)
    score_threshold: float = 0.05
    nms_iou: float = 0.1  # rotated IoU, per class
    max_detections: int = 2000

    @model_validator(mode="after")
    def _consistent(self) -> DetectionOptions:
        if len(self.anchor_strides) < 4 or tuple(self.anchor_strides[:4]) != (4, 8, 16, 32):
            raise ValueError("anchor_strides must start with 4, 8, 16, 32 (the backbone's map strides)")
        if not 1 <= self.roi_levels <= len(self.anchor_strides):
            raise ValueError("roi_levels must be between 1 and the number of FPN levels")
        if len(self.rpn_stds) != 6 or len(self.rcnn_stds) != 5:
            raise ValueError("rpn_stds needs 6 values and rcnn_stds 5")
        return self
