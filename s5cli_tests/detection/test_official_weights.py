import pytest
import torch

from s5cli.detection.head import build_detection_head
from s5cli.errors import InputError
from s5cli.models.official_detection import map_detection_keys


def official_head(task, dim, classes, fpn=256, fc=1024, make=torch.empty):
    """Tensors named and shaped as OBBDetection's FPN / OrientedRPNHead / OBBShared2FCBBoxHead of one task."""
    suffix = f"_{task}" if task else ""
    shapes = {}
    for i in range(4):
        shapes[f"neck{suffix}.lateral_convs.{i}.conv.weight"] = (fpn, dim, 1, 1)
        shapes[f"neck{suffix}.lateral_convs.{i}.conv.bias"] = (fpn,)
        shapes[f"neck{suffix}.fpn_convs.{i}.conv.weight"] = (fpn, fpn, 3, 3)
        shapes[f"neck{suffix}.fpn_convs.{i}.conv.bias"] = (fpn,)
    for name, out, k in (("rpn_conv", fpn, 3), ("rpn_cls", 3, 1), ("rpn_reg", 18, 1)):
        shapes[f"rpn_head{suffix}.{name}.weight"] = (out, fpn, k, k)
        shapes[f"rpn_head{suffix}.{name}.bias"] = (out,)
    for name, shape in (
        ("shared_fcs.0", (fc, fpn * 49)),
        ("shared_fcs.1", (fc, fc)),
        ("fc_cls", (classes + 1, fc)),
        ("fc_reg", (5, fc)),
    ):
        shapes[f"roi_head{suffix}.bbox_head.{name}.weight"] = shape
        shapes[f"roi_head{suffix}.bbox_head.{name}.bias"] = shape[:1]
    return {k: make(v) for k, v in shapes.items()}


def test_moe_checkpoint_maps_onto_the_network_heads():
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    heads = [HeadSpec(name="dior-r", task="detection", classes=[f"c{i}" for i in range(20)]),
             HeadSpec(name="dota-v2.0", task="detection", classes=[f"c{i}" for i in range(18)])]  # fmt: skip
    with torch.device("meta"):
        ours = build_model(ModelSpec(preset="vit-b", moe=True, heads=heads)).state_dict()
    state = {
        "backbone.layers.0.ln1.weight": torch.empty(768),
        **official_head("dior", 768, 20),
        **official_head("dota", 768, 18),
    }
    mapped, unmapped = map_detection_keys(state, ["dior-r", "dota-v2.0"])
    assert unmapped == ["backbone.layers.0.ln1.weight"]
    assert set(mapped) == {k for k in ours if k.startswith("heads.")}
    assert all(mapped[k].shape == ours[k].shape for k in mapped)
    assert mapped["heads.dota-v2_0.roi_head.fc_cls.weight"].shape == (19, 1024)
    assert mapped["heads.dior-r.neck.fpn_convs.3.weight"] is state["neck_dior.fpn_convs.3.conv.weight"]


def test_single_checkpoint_loads_into_a_head_and_keeps_values():
    official = official_head(None, 16, 4, fpn=8, fc=12, make=torch.randn)
    official = {f"module.{k}": v for k, v in official.items()}  # DDP prefix
    mapped, unmapped = map_detection_keys(official, ["dior-r"], prefix="")
    assert unmapped == []
    head = build_detection_head(16, 4, fpn_channels=8, fc_channels=12)
    head.load_state_dict({k.removeprefix("dior-r."): v for k, v in mapped.items()}, strict=True)
    assert torch.equal(head.roi_head.fc_cls.weight, official["module.roi_head.bbox_head.fc_cls.weight"])
    assert torch.equal(head.neck.lateral_convs[2].weight, official["module.neck.lateral_convs.2.conv.weight"])
    assert torch.equal(head.rpn_head.rpn_reg.bias, official["module.rpn_head.rpn_reg.bias"])


def test_dataset_names_match_official_tasks_by_name_then_position():
    state = {**official_head("dior", 8, 2, fpn=4, fc=4), **official_head("dota", 8, 3, fpn=4, fc=4)}
    mapped, _ = map_detection_keys(state, ["dota-v2.0", "dior-r"])  # given in the other order
    assert mapped["heads.dior-r.roi_head.fc_cls.weight"].shape == (3, 4)
    assert mapped["heads.dota-v2_0.roi_head.fc_cls.weight"].shape == (4, 4)
    mapped, _ = map_detection_keys(state, ["first", "second"])  # no name matches: checkpoint order
    assert mapped["heads.first.roi_head.fc_cls.weight"].shape == (3, 4)
    assert mapped["heads.second.roi_head.fc_cls.weight"].shape == (4, 4)


def test_unknown_head_keys_and_mismatched_names():
    state = {**official_head("dior", 8, 2, fpn=4, fc=4), "roi_head_dior.bbox_head.fc_extra.weight": torch.empty(1)}
    _, unmapped = map_detection_keys(state, ["dior-r"])
    assert unmapped == ["roi_head_dior.bbox_head.fc_extra.weight"]
    with pytest.raises(InputError, match="detection heads for"):
        map_detection_keys(state, ["dior-r", "dota-v2.0"])
    with pytest.raises(InputError, match="single-dataset"):
        map_detection_keys(official_head(None, 8, 2, fpn=4, fc=4), ["a", "b"])
    assert map_detection_keys({"backbone.x": torch.empty(1)}, ["a"]) == ({}, ["backbone.x"])


def test_dota_classification_rows_follow_our_class_order():
    from s5cli.models.official_detection import OFFICIAL_CLASSES

    state = official_head("dota", 8, 18, fpn=4, fc=4)
    state["roi_head_dota.bbox_head.fc_cls.weight"] = torch.arange(19.0)[:, None].expand(19, 4).clone()
    state["roi_head_dota.bbox_head.fc_cls.bias"] = torch.arange(19.0)
    ours = ["plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
            "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
            "swimming-pool", "helicopter", "container-crane", "airport", "helipad"]  # fmt: skip
    mapped, _ = map_detection_keys(state, ["dota-v2.0"], class_names={"dota-v2.0": ours})
    rows = mapped["heads.dota-v2_0.roi_head.fc_cls.bias"].long().tolist()
    assert rows[0] == OFFICIAL_CLASSES["dota"].index("plane") == 4
    assert [OFFICIAL_CLASSES["dota"][r] for r in rows[:18]] == ours
    assert rows[18] == 18  # background stays last
    assert mapped["heads.dota-v2_0.roi_head.fc_cls.weight"][:, 0].long().tolist() == rows
    # Unknown class names (not a permutation of the official ones): rows are left as they are.
    mapped, _ = map_detection_keys(state, ["dota-v2.0"], class_names={"dota-v2.0": [f"c{i}" for i in range(18)]})
    assert mapped["heads.dota-v2_0.roi_head.fc_cls.bias"].tolist() == list(range(19))
