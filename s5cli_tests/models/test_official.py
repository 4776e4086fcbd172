import numpy as np
import pytest
import torch

from s5cli.errors import InputError, UntrustedFileError
from s5cli.models.checkpoint import load_checkpoint, read_checkpoint
from s5cli.models.known_heads import S5_SEGMENTATION_DATASETS, known_head
from s5cli.models.network import build_model
from s5cli.models.official import convert_official, import_official, unwrap_state_dict
from s5cli.models.spec import ModelSpec
from s5cli.models.vit import Block
from s5cli_tests.models.official_keys import (
    official_detection_head,
    official_encoder,
    official_mdf,
    official_s4p_upernet,
)
from s5cli_tests.models.test_checkpoint import _Payload
from s5cli_tests.models.tiny import images, randomise

S5_HEADS = [known_head(n) for n in S5_SEGMENTATION_DATASETS]


def _model(spec: ModelSpec, seed: int = 0):
    torch.manual_seed(seed)
    return randomise(build_model(spec), seed).eval()


def _mdf_model(seed: int = 0):
    spec = ModelSpec(preset="vit-nano", heads=S5_HEADS, moe=True, expert_width=16, decoder_channels=32)
    return _model(spec, seed)


def test_our_attention_is_torch_multihead_attention_with_in_proj_as_qkv():
    from s5cli.models.ffn import DenseFFN

    torch.manual_seed(0)
    block = Block(32, 4, DenseFFN(32, 64)).eval()
    mha = torch.nn.MultiheadAttention(32, 4, bias=True, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(block.attn.qkv.weight)
        mha.in_proj_bias.copy_(block.attn.qkv.bias)
        mha.out_proj.load_state_dict(block.attn.proj.state_dict())
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        torch.testing.assert_close(block.attn(x), mha(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-6)


def test_mdf_import_gives_identical_outputs(tmp_path):
    source = _mdf_model(seed=1)
    path = tmp_path / "s5_vit_b_moe_mdf.pth"
    torch.save({"model": official_mdf(source), "previous_best_avg_mIoU": np.float64(71.3)}, path)
    report = import_official(path, tmp_path / "ours.pt")
    assert report.unmapped == [] and report.unset == []
    assert report.preset == "vit-nano" and report.moe
    assert report.datasets == ["vaihingen", "potsdam", "openearthmap", "loveda"]
    model, spec, rest = load_checkpoint(tmp_path / "ours.pt")
    assert spec.expert_width == 16 and spec.decoder_channels == 32 and spec.img_size == 512
    assert [h.num_classes for h in spec.heads] == [5, 5, 9, 7]
    assert spec.head("vaihingen").classes[:2] == ["impervious_surface", "building"]
    assert rest["extra"]["imported_from"] == str(path)
    x = images(2, 48)
    with torch.no_grad():
        for name in S5_SEGMENTATION_DATASETS:
            assert torch.equal(model(x, name), source(x, name)), name


def test_mdf_import_with_dataset_order(tmp_path):
    source = _mdf_model(seed=2)
    official = official_mdf(source)
    path = tmp_path / "mdf.pth"
    torch.save({"state_dict": official}, path)
    order = ["potsdam", "vaihingen", "openearthmap", "loveda"]
    report = import_official(path, tmp_path / "ours.pt", datasets=order)
    assert report.datasets == order and report.unmapped == []
    state = read_checkpoint(tmp_path / "ours.pt")["state_dict"]
    # Experts, decoders and heads all follow their dataset's name: our expert 0 (potsdam) is the file's
    # expert 1 (official order vaihingen, potsdam, ...). Until issue 15, expert k took the k-th name.
    for ours, theirs in ((0, 1), (1, 0), (2, 2), (3, 3)):
        assert torch.equal(
            state[f"backbone.blocks.1.mlp.experts.{ours}.weight"],
            official[f"module.encoder.layers.1.ffn.experts.{theirs}.weight"],
        )
    key = "fpn_bottleneck.conv.weight"
    assert torch.equal(
        state[f"heads.potsdam.decoder.{key}"], official[f"module.semsegdecoder_potsdam.decode_head.{key}"]
    )
    assert torch.equal(state[f"heads.vaihingen.decoder.{key}"], official[f"module.semsegdecoder.decode_head.{key}"])


def test_s4p_upernet_import_gives_identical_outputs(tmp_path):
    source = _model(ModelSpec(preset="vit-nano", heads=[known_head("isaid", 16)], decoder_channels=32), seed=3)
    path = tmp_path / "vit_nano_s4p_upernet.pth"
    torch.save({"model": official_s4p_upernet(source)}, path)
    report = import_official(path, tmp_path / "ours.pt")
    assert report.unmapped == [] and report.unset == [] and report.datasets == ["isaid"]
    model, spec, _ = load_checkpoint(tmp_path / "ours.pt")
    assert not spec.moe and spec.heads[0].num_classes == 16 and spec.heads[0].classes[1] == "ship"
    x = images(1, 64)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


@pytest.mark.parametrize("prefix", ["", "backbone."])
def test_backbone_only_import(tmp_path, prefix):
    source = _model(ModelSpec(preset="vit-nano", heads=[known_head("isaid", 16)]), seed=4)
    encoder = official_encoder(source, prefix)
    encoder[f"{prefix}ln1.weight"] = torch.ones(64)  # a final norm S5's ViT does not have
    path = tmp_path / "vit_nano_s4p.pth"
    torch.save({"model": encoder}, path)
    report = import_official(path, tmp_path / "ours.pt", datasets=["loveda"])
    assert report.unmapped == [f"{prefix}ln1.weight"]
    assert report.unset and all(k.startswith("heads.loveda.") for k in report.unset)
    model, spec, _ = load_checkpoint(tmp_path / "ours.pt")
    assert [h.name for h in spec.heads] == ["loveda"]
    x = images(1, 64)
    with torch.no_grad():
        for a, b in zip(model.features(x), source.features(x)):
            assert torch.equal(a, b)


def test_vit_b_and_vit_h_official_names_and_shapes_map_completely():
    for preset in ("vit-b", "vit-h"):
        with torch.device("meta"):
            model = build_model(ModelSpec(preset=preset, heads=S5_HEADS, moe=True))
        spec, ours, _, unmapped = convert_official(unwrap_state_dict({"model": official_mdf(model)}))
        assert unmapped == [] and spec.preset == preset and spec.expert_width == 256
        expected = model.state_dict()
        assert sorted(ours) == sorted(expected)
        assert all(ours[k].shape == expected[k].shape for k in ours)


def test_mae_style_pos_embed_with_cls_slot_is_dropped():
    source = _model(ModelSpec(preset="vit-nano", heads=[known_head("isaid", 16)]), seed=5)
    encoder = official_encoder(source)
    pos = encoder["pos_embed"]
    encoder["pos_embed"] = torch.cat([torch.full_like(pos[:, :1], 9.0), pos], dim=1)
    _, ours, _, _ = convert_official(encoder)
    assert torch.equal(ours["backbone.pos_embed"], pos)


def test_shape_mismatch_and_unknown_keys_are_reported(tmp_path):
    source = _mdf_model(seed=6)
    official = official_mdf(source)
    official["module.semsegdecoder_loveda.decode_head.fpn_bottleneck.conv.weight"] = torch.zeros(32, 128, 1, 1)
    official["module.aux_head.weight"] = torch.zeros(3)
    path = tmp_path / "mdf.pth"
    torch.save(official, path)
    report = import_official(path, tmp_path / "ours.pt")
    assert "module.aux_head.weight" not in report.unmapped  # the module. prefix is stripped
    assert "aux_head.weight" in report.unmapped
    assert any("fpn_bottleneck.conv.weight (shape (32, 128, 1, 1)" in k for k in report.unmapped)
    assert report.unset == ["heads.loveda.decoder.fpn_bottleneck.conv.weight"]


def test_bad_official_files(tmp_path):
    source = _mdf_model(seed=7)
    path = tmp_path / "mdf.pth"
    torch.save({"model": official_mdf(source)}, path)
    with pytest.raises(InputError, match="4 experts but 2 dataset names"):
        import_official(path, tmp_path / "ours.pt", datasets=["a", "b"])
    torch.save({"model": {"conv.weight": torch.zeros(2)}}, path)
    with pytest.raises(InputError, match="no ViT backbone"):
        import_official(path, tmp_path / "ours.pt")
    torch.save({"epoch": 3}, path)
    with pytest.raises(InputError, match="no weights"):
        import_official(path, tmp_path / "ours.pt")
    assert not (tmp_path / "ours.pt").exists()


def test_malicious_official_file_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "s5_vit_b_moe_mdf.pth"
    torch.save({"model": {"pos_embed": torch.zeros(1)}, "meta": _Payload(marker)}, path)
    with pytest.raises(UntrustedFileError):
        import_official(path, tmp_path / "ours.pt")
    assert not marker.exists() and not (tmp_path / "ours.pt").exists()


def test_detection_import_uses_the_detection_mapper(tmp_path):
    pytest.importorskip("s5cli.detection.head")
    pytest.importorskip("s5cli.models.official_detection")
    heads = [known_head("dior-r", task="detection"), known_head("dota-v2.0", task="detection")]
    source = _model(ModelSpec(preset="vit-nano", heads=heads, moe=True, expert_width=16, img_size=1024), seed=9)
    state = source.state_dict()
    official = official_encoder(source, "backbone.")
    official.update(official_detection_head(state, "dior-r", "dior", heads[0].classes))
    official.update(official_detection_head(state, "dota-v2_0", "dota", heads[1].classes))
    path = tmp_path / "vit_nano_moe_dior_r_dota2.pth"
    torch.save({"state_dict": official, "meta": {"epoch": 12, "CLASSES": ("a", "b")}}, path)
    report = import_official(path, tmp_path / "ours.pt")
    assert report.unmapped == [] and report.unset == []
    assert report.datasets == ["dior-r", "dota-v2.0"] and report.moe
    ckpt = read_checkpoint(tmp_path / "ours.pt")
    assert ckpt["spec"]["img_size"] == 1024 and [h["task"] for h in ckpt["spec"]["heads"]] == ["detection"] * 2
    assert set(ckpt["state_dict"]) == set(state)
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in state.items())
