import time

import pytest
import torch
import torch.nn.functional as F

from s5cli.errors import InputError
from s5cli.models.network import build_model, count_parameters, head_key
from s5cli.models.presets import MODEL_PRESETS, get_preset, preset_for_shape
from s5cli.models.spec import HeadSpec, InputSpec, ModelSpec
from s5cli.models.upernet import UperNetDecoder
from s5cli.models.vit import Block
from s5cli_tests.models.tiny import images, tiny_model, tiny_spec


@pytest.mark.parametrize("size", [64, 80])
def test_nano_shapes(size):
    model = tiny_model("a")
    with torch.no_grad():
        maps = model.features(images(2, size))
        logits = model(images(2, size))
    grid = size // 16
    assert [tuple(m.shape) for m in maps] == [
        (2, 64, 4 * grid, 4 * grid),
        (2, 64, 2 * grid, 2 * grid),
        (2, 64, grid, grid),
        (2, 64, grid // 2, grid // 2),
    ]
    assert logits.shape == (2, 3, size, size)
    assert torch.isfinite(logits).all()


def test_non_square_input():
    model = tiny_model("a")
    with torch.no_grad():
        assert model(images(1, 64)[..., :48]).shape == (1, 3, 64, 48)


def test_vit_tiny_at_512_and_640():
    torch.manual_seed(0)
    model = build_model(ModelSpec(preset="vit-tiny", heads=[HeadSpec(name="x", classes=["a", "b"])])).eval()
    start = time.perf_counter()
    with torch.no_grad():
        for size in (512, 640):
            out = model(torch.rand(1, 3, size, size))
            assert out.shape == (1, 2, size, size)
            assert torch.isfinite(out).all()
    assert time.perf_counter() - start < 30  # about 2 s on one core


def test_pos_embed_stored_at_img_size_and_resampled():
    model = tiny_model("a")
    vit = model.backbone
    assert vit.pos_embed.shape == (1, 32 * 32, 64)  # img_size 512 -> 32 x 32, no cls slot
    assert torch.equal(vit.pos_embed_for(32, 32), vit.pos_embed)
    assert vit.pos_embed_for(4, 6).shape == (1, 24, 64)
    # bicubic (no antialias) on the (32, 32) grid, rows = y: the same as interpolating the image of it
    grid = vit.pos_embed.detach().reshape(1, 32, 32, 64).permute(0, 3, 1, 2)
    for size in [(4, 6), (48, 40)]:
        expected = F.interpolate(grid, size=size, mode="bicubic", align_corners=False)
        got = vit.pos_embed_for(*size).reshape(1, *size, 64).permute(0, 3, 1, 2)
        torch.testing.assert_close(got, expected)


def test_input_checks():
    model = tiny_model("a")
    with pytest.raises(InputError, match="not a multiple of 16"):
        model(images(1, 72))
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        model(images(1, 64, channels=4))
    with pytest.raises(InputError, match="no head 'b'"):
        model(images(1, 64), "b")


def test_normalisation_inside_with_spec_bands():
    spec = tiny_spec("a", input=InputSpec(bands=["nir", "red", "green", "blue"], mean=[0.5] * 4, std=[0.25] * 4))
    model = build_model(spec).eval()
    assert model.backbone.patch_embed.proj.weight.shape[1] == 4
    x = images(1, 64, channels=4)
    with torch.no_grad():
        direct = model.fpn(model.backbone((x - 0.5) / 0.25))
        via = model.features(x)
    for a, b in zip(direct, via):
        torch.testing.assert_close(a, b)
    assert "mean" not in model.state_dict()  # derived from the spec, not saved twice


def test_grad_checkpointing_same_output_and_grads():
    model = tiny_model("a").train()
    model.heads["a"].classifier[0].p = 0.0
    x = images(2, 64)
    torch.manual_seed(1)
    loss = model(x).square().mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    torch.manual_seed(1)
    loss2 = model(x).square().mean()
    loss2.backward()
    torch.testing.assert_close(loss, loss2)
    for name, p in model.named_parameters():
        if name in grads:
            torch.testing.assert_close(p.grad, grads[name], msg=name)


def test_drop_path_only_on_ffn_branch():
    from s5cli.models.ffn import DenseFFN

    torch.manual_seed(0)
    block = Block(32, 2, DenseFFN(32, 128), drop_path=1.0).train()
    x = torch.randn(2, 5, 32)
    # drop probability 1: the FFN branch vanishes, the attention branch stays
    torch.testing.assert_close(block(x), x + block.attn(block.norm1(x)))


def test_drop_path_linear_over_depth():
    model = build_model(ModelSpec(preset="vit-tiny", heads=[HeadSpec(name="a", classes=["x"])], drop_path=0.3))
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in model.backbone.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_layer_norm_eps_and_qkv_bias():
    model = tiny_model("a")
    block = model.backbone.blocks[0]
    assert block.norm1.eps == 1e-5 and block.norm2.eps == 1e-5
    assert block.attn.qkv.bias is not None
    assert model.fpn.fpn1[1].eps == 1e-6


def test_unused_official_parameters_are_frozen():
    model = tiny_model("a")
    assert not model.backbone.cls_token.requires_grad
    assert not model.heads["a"].decoder.conv_seg.weight.requires_grad
    assert sum(p.numel() for p in model.heads["a"].decoder.conv_seg.parameters()) == 33  # 32 channels + bias


def test_upernet_conv_seg_counts_257_at_256_channels():
    decoder = UperNetDecoder(64, 256)
    assert sum(p.numel() for p in decoder.conv_seg.parameters()) == 257


def test_head_keys_without_dots():
    spec = ModelSpec(preset="vit-nano", decoder_channels=16, heads=[HeadSpec(name="dota-v2.0", classes=["a"])])
    model = build_model(spec).eval()
    assert head_key("dota-v2.0") in model.heads
    assert model.head_names == ["dota-v2.0"]
    with torch.no_grad():
        assert model(images(1, 32), "dota-v2.0").shape == (1, 1, 32, 32)


def test_spec_validation():
    with pytest.raises(InputError, match=r"unknown model preset 'vit-x'.*vit-b"):
        build_model(ModelSpec(preset="vit-x", heads=[HeadSpec(name="a", classes=["x"])]))
    with pytest.raises(InputError, match="distinct"):
        build_model(tiny_spec("a", "a"))
    with pytest.raises(InputError, match="expert_width"):
        build_model(tiny_spec("a", moe=True, expert_width=64))
    with pytest.raises(InputError, match="reserved"):
        build_model(tiny_spec("train"))
    with pytest.raises(InputError, match="at least one head"):
        build_model(ModelSpec(preset="vit-nano", heads=[]))


def test_presets_and_shape_lookup():
    assert get_preset("vit-l").taps == (7, 11, 15, 23)
    assert preset_for_shape(1280, 32) == "vit-h"
    with pytest.raises(InputError, match="width 100"):
        preset_for_shape(100, 3)
    for name, preset in MODEL_PRESETS.items():
        assert all(0 <= t < preset.depth for t in preset.taps), name


def test_count_parameters_matches_built_model():
    spec = tiny_spec("a", "b", moe=True)
    model = build_model(spec)
    assert count_parameters(spec) == sum(p.numel() for p in model.parameters())
