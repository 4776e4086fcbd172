import math

import pytest
import torch

from s5cli.detection.head import OrientedRCNNHead, build_detection_head
from s5cli.detection.rpn import level_anchors
from s5cli.errors import ConfigError, InputError

SMALL = {"fpn_channels": 32, "fc_channels": 64, "rpn_pre_nms": 300, "rpn_post_nms_train": 100, "rpn_post_nms_test": 100,
         "rcnn_samples": 64}  # fmt: skip


def features(batch=2, dim=16, size=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, size // s, size // s, generator=gen) for s in (4, 8, 16, 32)]


def targets():
    return [
        {
            "boxes": torch.tensor([[20.0, 24.0, 24.0, 10.0, 0.4], [44.0, 40.0, 16.0, 14.0, -1.0]]),
            "labels": torch.tensor([0, 2]),
        },
        {"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long)},
    ]


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("dim", "classes"), [(768, 20), (768, 18), (1024, 20), (1280, 18)])
def test_parameter_counts_match_obbdetection_heads(dim, classes):
    with torch.device("meta"):
        head = build_detection_head(dim, classes)
    fpn = 4 * (dim * 256 + 256) + 4 * (256 * 256 * 9 + 256)  # mmdet FPN: 1x1 laterals, 3x3 outputs
    rpn = (256 * 256 * 9 + 256) + (256 * 3 + 3) + (256 * 18 + 18)  # OrientedRPNHead, 3 anchors, 6 deltas each
    roi = (256 * 49 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * (classes + 1) + classes + 1) + (1024 * 5 + 5)
    assert (count(head.neck), count(head.rpn_head), count(head.roi_head)) == (fpn, rpn, roi)
    if dim == 768:  # the paper's +27.1 M: a second FPN 3.15 M, RPN 0.60 M, RoI head 13.92 M for ViT-B
        assert (round(fpn / 1e6, 2), round(rpn / 1e6, 2), round(roi / 1e6, 2)) == (3.15, 0.60, 13.92)


def test_anchors_follow_mmdet_layout():
    anchors = level_anchors(4, height=2, width=3, ratios=(0.5, 1.0, 2.0), scale=8.0)
    assert anchors.shape == (2 * 3 * 3, 4)
    w, h = 32 / math.sqrt(0.5), 32 * math.sqrt(0.5)  # ratio = h / w, area (4 * 8)^2
    assert torch.allclose(anchors[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    assert torch.allclose(anchors[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    assert torch.allclose(anchors[3], anchors[0] + torch.tensor([4.0, 0.0, 4.0, 0.0]))  # next cell along x
    assert torch.allclose(anchors[9], anchors[0] + torch.tensor([0.0, 4.0, 0.0, 4.0]))  # next row


def test_train_mode_gives_finite_losses_and_gradients():
    torch.manual_seed(0)
    head = build_detection_head(16, 3, **SMALL).train()
    losses = head(features(), (64, 64), targets())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert losses["loss_bbox"] > 0 and losses["loss_rpn_bbox"] > 0  # positives were sampled
    sum(losses.values()).backward()
    for name in (
        "neck.lateral_convs.0.weight",
        "rpn_head.rpn_reg.weight",
        "roi_head.fc_cls.weight",
        "roi_head.fc_reg.weight",
    ):
        grad = head.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_eval_mode_returns_detections_per_image():
    torch.manual_seed(0)
    head = build_detection_head(16, 3, **SMALL, max_detections=7).eval()
    with torch.no_grad():
        out = head(features(batch=3), (64, 64))
    assert len(out) == 3
    for det in out:
        m = det["boxes"].shape[0]
        assert det["boxes"].shape == (m, 5) and det["scores"].shape == (m,) and det["labels"].shape == (m,)
        assert 0 < m <= 7 and det["labels"].dtype == torch.int64
        assert (det["labels"] >= 0).all() and (det["labels"] < 3).all()
        assert (det["scores"] > 0.05).all() and (det["scores"][:-1] >= det["scores"][1:]).all()
        assert (det["boxes"][:, 2] >= det["boxes"][:, 3]).all()


def test_ignored_boxes_are_dropped():
    head = build_detection_head(16, 3, **SMALL).train()
    feats = features(batch=1)
    box = torch.tensor([[20.0, 24.0, 24.0, 10.0, 0.4]])
    torch.manual_seed(1)
    ignored = head(feats, (64, 64), [{"boxes": box, "labels": torch.tensor([1]), "ignore": torch.tensor([True])}])
    torch.manual_seed(1)
    empty = head(feats, (64, 64), [{"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long)}])
    for key in empty:
        assert torch.equal(ignored[key], empty[key])
    assert empty["loss_bbox"] == 0 and empty["loss_rpn_bbox"] == 0


def test_bad_options_and_targets():
    with pytest.raises(ConfigError, match="unknown key 'nms_thr'"):
        build_detection_head(16, 3, nms_thr=0.5)
    with pytest.raises(ConfigError, match="anchor_strides"):
        build_detection_head(16, 3, anchor_strides=(8, 16, 32, 64))
    head = build_detection_head(16, 3, **SMALL).train()
    with pytest.raises(InputError, match="labels must be in"):
        head(features(batch=1), (64, 64), [{"boxes": torch.zeros(1, 5), "labels": torch.tensor([3])}])
    with pytest.raises(InputError, match="one target dict per image"):
        head(features(batch=2), (64, 64), None)


def test_inside_the_s5_network():
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        preset="vit-nano", heads=[HeadSpec(name="dota-v2.0", task="detection", classes=["a", "b", "c"])], img_size=64
    )
    model = build_model(spec)
    assert isinstance(model.heads["dota-v2_0"], OrientedRCNNHead)
    model.heads["dota-v2_0"] = build_detection_head(64, 3, **SMALL)  # the defaults are slow on CPU
    images = torch.rand(2, 3, 64, 64)
    losses = model(images, "dota-v2.0", targets())
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(images, "dota-v2.0")
    assert len(out) == 2 and all(d["boxes"].shape[1] == 5 for d in out)


def test_autocast_bfloat16_on_cpu():
    torch.manual_seed(0)
    head = build_detection_head(16, 3, **SMALL).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = head(features(), (64, 64), targets())
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        head.eval()
        with torch.no_grad():
            out = head(features(), (64, 64))
    assert out[0]["boxes"].dtype == torch.float32 and out[0]["scores"].dtype == torch.float32


def test_zero_size_boxes_are_dropped_not_nan():
    torch.manual_seed(0)
    head = build_detection_head(16, 3, **SMALL).train()
    sliver = [
        {
            "boxes": torch.tensor([[20.0, 24.0, 24.0, 0.0, 0.4], [30.0, 30.0, 20.0, 8.0, 0.0]]),
            "labels": torch.tensor([0, 1]),
        }
    ]
    losses = head(features(batch=1), (64, 64), sliver)
    assert all(torch.isfinite(v) for v in losses.values())


def test_fresh_heads_start_as_s5_ran_them_or_as_mmdet_intended():
    torch.manual_seed(0)
    s5 = build_detection_head(64, 5, fpn_channels=128, fc_channels=256)  # default: init "s5"
    mmdet = build_detection_head(64, 5, fpn_channels=128, fc_channels=256, init="mmdet")
    # S5: mmcv ConvModule's kaiming_init (fan_out, relu gain, normal, bias 0) on the necks...
    lateral, output = s5.neck.lateral_convs[0], s5.neck.fpn_convs[0]
    assert lateral.weight.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.05)
    assert output.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.05)
    assert not lateral.bias.any() and not output.bias.any()
    # ... and PyTorch's defaults on the RPN and RoI layers: U(+-1/sqrt(fan_in)) weights and biases.
    for layer, fan_in in (
        (s5.rpn_head.rpn_conv, 128 * 9),
        (s5.roi_head.shared_fcs[0], 128 * 49),
        (s5.roi_head.fc_cls, 256),
    ):
        bound = 1 / math.sqrt(fan_in)
        assert layer.weight.abs().max().item() <= bound and layer.weight.abs().max().item() > 0.9 * bound
        assert layer.bias.abs().max().item() <= bound and layer.bias.any()
    # mmdet's init_weights: xavier FPN, N(0, 0.01) RPN, N(0, 0.001) regressor, zero biases.
    bound = math.sqrt(6 / (64 + 128))
    assert mmdet.neck.lateral_convs[0].weight.abs().max().item() <= bound
    assert mmdet.rpn_head.rpn_cls.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert mmdet.roi_head.fc_reg.weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert not mmdet.rpn_head.rpn_conv.bias.any() and not mmdet.roi_head.fc_cls.bias.any()
    with pytest.raises(ConfigError):
        build_detection_head(64, 5, init="xavier")
