import pytest
import torch

from s5cli.models.network import build_model
from s5cli.models.spec import HeadSpec, ModelSpec
from s5cli.training.optim import OptimConfig, build_optimizer, param_groups, vit_layer_id
from s5cli.training.schedules import LRSchedule, ScheduleConfig


def _nano() -> torch.nn.Module:
    spec = ModelSpec(preset="vit-nano", heads=[HeadSpec(name="toy", classes=["a", "b"])], img_size=32)
    return build_model(spec)


def test_vit_layer_id() -> None:
    assert vit_layer_id("backbone.patch_embed.proj.weight", 12, ("backbone.",)) == 0
    assert vit_layer_id("backbone.pos_embed", 12, ("backbone.",)) == 0
    assert vit_layer_id("backbone.blocks.0.attn.qkv.weight", 12, ("backbone.",)) == 1
    assert vit_layer_id("backbone.blocks.11.mlp.fc2.bias", 12, ("backbone.",)) == 12
    assert vit_layer_id("fpn.fpn1.0.weight", 12, ("backbone.",)) == 13
    assert vit_layer_id("heads.toy.decoder.layers.0.weight", 12, ("backbone.",)) == 13


def test_layer_decay_scales_by_block() -> None:
    model = _nano()  # depth 2
    groups = param_groups(model, OptimConfig(lr=1.0, layer_decay=0.5), depth=2)
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    assert scale["backbone.patch_embed.proj.weight"] == 0.125  # 0.5 ** (2 + 1 - 0)
    assert scale["backbone.pos_embed"] == 0.125
    assert scale["backbone.blocks.0.attn.qkv.weight"] == 0.25
    assert scale["backbone.blocks.1.mlp.fc1.weight"] == 0.5
    assert all(v == 1.0 for n, v in scale.items() if n.startswith(("fpn.", "heads.")))
    assert "backbone.cls_token" not in scale  # frozen, so not optimised


def test_layer_decay_really_changes_the_updates() -> None:
    model = _nano()
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, layer_decay=0.5)
    opt = build_optimizer(model, cfg, depth=2)
    sched = LRSchedule(opt, ScheduleConfig(name="constant"), total_iters=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    sched.step()
    params = dict(model.named_parameters())
    names = ("backbone.pos_embed", "backbone.blocks.0.norm1.weight", "backbone.blocks.1.norm1.weight")
    step = {n: float((before[n] - params[n].detach()).flatten()[0]) for n in names}
    assert step["backbone.pos_embed"] == pytest.approx(0.1 * 0.125)
    assert step["backbone.blocks.0.norm1.weight"] == pytest.approx(0.1 * 0.25)
    assert step["backbone.blocks.1.norm1.weight"] == pytest.approx(0.1 * 0.5)
    assert torch.equal(before["backbone.cls_token"], params["backbone.cls_token"])


def test_no_decay_norm_bias_and_default_single_group() -> None:
    model = _nano()
    assert len(param_groups(model, OptimConfig())) == 1  # S4P: one group, everything decays
    groups = param_groups(model, OptimConfig(no_decay_norm_bias=True))
    wd = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert wd["backbone.blocks.0.norm1.weight"] == 0.0 and wd["backbone.blocks.0.attn.qkv.bias"] == 0.0
    assert wd["backbone.blocks.0.attn.qkv.weight"] == 0.01


def test_layer_decay_needs_depth() -> None:
    with pytest.raises(ValueError, match="depth"):
        param_groups(_nano(), OptimConfig(layer_decay=0.9))
