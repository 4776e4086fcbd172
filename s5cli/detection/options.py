"""Settings of the Oriented R-CNN head; defaults are S5's (configs/obb/oriented_rcnn/mtd/vit_*_moe_dior_r_dota2.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from s5cli.config import StrictConfig

Positive = Annotated[float, Field(gt=0.0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]  # an IoU, a fraction or a score


class DetectionOptions(StrictConfig):
    """Every number of the head: network sizes, anchors, assignment, sampling, losses and test post-processing."""

    # Network
    fpn_channels: int = Field(256, ge=1)
    fc_channels: int = Field(1024, ge=1)  # OBBShared2FCBBoxHead
    # Initial weights of a fresh head. "s5": as S5 trained them: OBBTwoStageDetectorMTD.init_weights tests
    # `neck` / `rpn_head` / `roi_head` attributes it does not have, so it never runs; the necks keep mmcv
    # ConvModule's construction-time kaiming (fan_out, normal) and the RPN and RoI layers PyTorch's defaults.
    # "mmdet": what mmdet's init_weights would have set (FPN xavier, RPN normal 0.01, shared FCs xavier,
    # classifier normal 0.01, regressor normal 0.001). The default is "s5", the init behind the paper's numbers.
    init: Literal["s5", "mmdet"] = "s5"
    # Anchors: one scale, three ratios per level; the FPN has one level per stride
    anchor_strides: tuple[Annotated[int, Field(ge=1)], ...] = (4, 8, 16, 32, 64)
    anchor_ratios: tuple[Positive, ...] = Field((0.5, 1.0, 2.0), min_length=1)  # height / width
    anchor_scale: float = Field(8.0, gt=0.0)
    allowed_border: float = 0.0  # anchors further outside the image are not trained; negative: keep all
    # RPN assignment and sampling (train_cfg.rpn)
    rpn_pos_iou: Share = 0.7
    rpn_neg_iou: Share = 0.3
    rpn_min_pos_iou: Share = 0.3
    rpn_samples: int = Field(256, ge=1)
    rpn_pos_fraction: float = Field(0.5, gt=0.0, le=1.0)
    rpn_loss_beta: float = Field(1.0 / 9.0, gt=0.0)  # smooth-L1 beta
    rpn_stds: tuple[Positive, ...] = (1.0, 1.0, 1.0, 1.0, 0.5, 0.5)  # MidpointOffsetCoder
    # Proposals (train_cfg.rpn_proposal / test_cfg.rpn)
    rpn_pre_nms: int = Field(2000, ge=1)  # per level
    rpn_nms_iou: Share = 0.8  # on the proposals' enclosing horizontal boxes, per level
    rpn_post_nms_train: int = Field(2000, ge=1)
    rpn_post_nms_test: int = Field(2000, ge=1)
    min_box_size: float = Field(0.0, ge=0.0)
    # RoI feature extraction (OBBSingleRoIExtractor + RoIAlignRotated)
    roi_size: int = Field(7, ge=1)
    roi_sampling_ratio: int = Field(2, ge=0)
    roi_aligned: bool = True
    roi_levels: int = 4  # RoIs read the first 4 FPN levels (strides 4..32)
    # OBBDetection's extend_factor=(1.4, 1.2) is unpacked as (h, w) by roi_rescale: w x 1.2, h x 1.4.
    roi_extend_w: float = Field(1.2, gt=0.0)
    roi_extend_h: float = Field(1.4, gt=0.0)
    finest_scale: float = Field(56.0, gt=0.0)
    # RoI head assignment and sampling (train_cfg.rcnn): rotated IoU
    rcnn_pos_iou: Share = 0.5
    rcnn_neg_iou: Share = 0.5
    rcnn_min_pos_iou: Share = 0.5
    rcnn_samples: int = Field(512, ge=1)
    rcnn_pos_fraction: float = Field(0.25, gt=0.0, le=1.0)
    add_gt_as_proposals: bool = True
    rcnn_loss_beta: float = Field(1.0, gt=0.0)
    rcnn_stds: tuple[Positive, ...] = (0.1, 0.1, 0.2, 0.2, 0.1)  # OBB2OBBDeltaXYWHTCoder
    # Test post-processing (test_cfg.rcnn)
    score_threshold: Share = 0.05
    nms_iou: Share = 0.1  # rotated IoU, per class
    max_detections: int = Field(2000, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> DetectionOptions:
        if len(self.anchor_strides) < 4 or tuple(self.anchor_strides[:4]) != (4, 8, 16, 32):
            raise ValueError("anchor_strides must start with 4, 8, 16, 32 (the backbone's map strides)")
        if not 1 <= self.roi_levels <= len(self.anchor_strides):
            raise ValueError("roi_levels must be between 1 and the number of FPN levels")
        if len(self.rpn_stds) != 6 or len(self.rcnn_stds) != 5:
            raise ValueError("rpn_stds needs 6 values and rcnn_stds 5")
        return self
