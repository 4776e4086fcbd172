"""Weight files as their makers save them: expert order, MAE / timm ViTs, the mmcv runner's detection files."""

import argparse

import pytest
import torch
import torch.nn.functional as F

from s5cli.errors import InputError, UntrustedFileError
from s5cli.models.checkpoint import load_checkpoint, read_checkpoint
from s5cli.models.known_heads import S5_SEGMENTATION_DATASETS, known_head
from s5cli.models.network import build_model, head_key
from s5cli.models.official import convert_official, import_official, unwrap_state_dict
from s5cli.models.spec import ModelSpec
from s5cli_tests.models.official_keys import mae_decoder, official_encoder, official_mdf, official_mtd, timm_vit
from s5cli_tests.models.test_checkpoint import _Payload
from s5cli_tests.models.tiny import images, randomise

SEG_HEADS = [known_head(n) for n in S5_SEGMENTATION_DATASETS]
DET_HEADS = [known_head("dior-r", task="detection"), known_head("dota-v2.0", task="detection")]
TASKS = {"dior": "dior-r", "dota": "dota-v2.0"}  # the official task order of the MTD detector


def _model(spec: ModelSpec, seed: int = 0):
    torch.manual_seed(seed)
    return randomise(build_model(spec), seed).eval()


def _meta_model(spec: ModelSpec):
    with torch.device("meta"):
        return build_model(spec)


def _mae_args() -> argparse.Namespace:
    """What MAE's main_pretrain.py keeps under `args` in its checkpoints."""
    return argparse.Namespace(
        batch_size=64, epochs=1600, accum_iter=1, model="mae_vit_base_patch16", input_size=224, mask_ratio=0.75,
        norm_pix_loss=True, weight_decay=0.05, lr=None, blr=1.5e-4, min_lr=0.0, warmup_epochs=40,
        data_path="/datasets/MillionAID", output_dir="./output_dir", device="cuda", seed=0, resume="",
        start_epoch=0, num_workers=10, pin_mem=True, world_size=8, local_rank=-1, dist_on_itp=False,
        dist_url="env://", distributed=True, rank=0, gpu=0, dist_backend="nccl",
    )  # fmt: skip


def test_segmentation_experts_follow_the_names_in_any_order(tmp_path):
    source = _model(ModelSpec(preset="vit-nano", heads=SEG_HEADS, moe=True, expert_width=16, decoder_channels=32), 11)
    path = tmp_path / "s5_vit_b_moe_mdf.pth"
    torch.save({"model": official_mdf(source)}, path)
    shuffled = ["loveda", "openearthmap", "vaihingen", "potsdam"]
    import_official(path, tmp_path / "a.pt")
    import_official(path, tmp_path / "b.pt", datasets=shuffled)
    a, _, _ = load_checkpoint(tmp_path / "a.pt")
    b, spec_b, _ = load_checkpoint(tmp_path / "b.pt")
    assert [h.name for h in spec_b.heads] == shuffled
    x = images(2, 48, seed=3)
    with torch.no_grad():
        for name in S5_SEGMENTATION_DATASETS:
            expected = source(x, name)
            assert torch.equal(a(x, name), expected) and torch.equal(b(x, name), expected), name


def _detection_outputs(model, x: torch.Tensor, name: str) -> list[torch.Tensor]:
    """Backbone maps, RPN outputs and RoI logits / deltas of one dataset on fixed RoIs."""
    head = model.heads[head_key(name)]
    maps = model.features(x, name)
    feats = head.neck(maps)
    scores, deltas = head.rpn_head(feats)
    rois = torch.tensor([[0, 20.0, 24.0, 30.0, 12.0, 0.3], [1, 40.0, 30.0, 16.0, 16.0, -0.7]])
    logits, box_deltas = head.roi_head(feats, rois)
    return [*maps, *scores, *deltas, logits, box_deltas]


def test_detection_experts_follow_the_names_in_any_order(tmp_path):
    spec = ModelSpec(preset="vit-nano", heads=DET_HEADS, moe=True, expert_width=16, img_size=1024)
    source = _model(spec, seed=12)
    path = tmp_path / "vit_nano_moe_dior_r_dota2.pth"
    torch.save({"state_dict": official_mtd(source, TASKS)}, path)
    import_official(path, tmp_path / "a.pt", datasets=["dior-r", "dota-v2.0"])
    import_official(path, tmp_path / "b.pt", datasets=["dota-v2.0", "dior-r"])  # DOTA first: expert 1 first
    a, _, _ = load_checkpoint(tmp_path / "a.pt")
    b, _, _ = load_checkpoint(tmp_path / "b.pt")
    assert b.expert_index("dota-v2.0") == 0
    x = images(2, 64, seed=4)
    with torch.no_grad():
        for name in TASKS.values():
            expected = _detection_outputs(source, x, name)
            for model in (a, b):
                got = _detection_outputs(model, x, name)
                assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True)), name


@pytest.mark.parametrize("layout", ["mae_pretrain", "mae_training", "timm"])
def test_mae_and_timm_files(tmp_path, layout):
    source = _model(ModelSpec(preset="vit-nano", heads=[known_head("isaid", 16)]), seed=13)
    dim = source.backbone.embed_dim
    grid = torch.randn(1, 1 + 14 * 14, dim, generator=torch.Generator().manual_seed(1))  # 224 px + cls
    encoder = timm_vit(source, pos_embed=grid)
    if layout == "mae_pretrain":  # mae_pretrain_vit_{base,large,huge}.pth
        payload, extra = {"model": encoder}, ["norm.weight", "norm.bias"]
    elif layout == "mae_training":  # MAE's checkpoint-1599.pth (S5: vit-b-checkpoint-1599.pth)
        decoder = mae_decoder(dim)
        model_state = {**encoder, **decoder}
        optimizer = {
            "state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
            "param_groups": [{"lr": 1.5e-4, "betas": (0.9, 0.95), "weight_decay": 0.05, "params": [0]}],
        }
        scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}
        payload = {"model": model_state, "optimizer": optimizer, "epoch": 1599, "scaler": scaler, "args": _mae_args()}
        extra = ["norm.weight", "norm.bias", *decoder]
    else:  # a plain timm VisionTransformer state dict
        head = {"head.weight": torch.randn(10, dim), "head.bias": torch.zeros(10), "fc_norm.weight": torch.ones(dim)}
        payload, extra = {**encoder, **head}, ["norm.weight", "norm.bias", *head]
    path = tmp_path / "mae.pth"
    torch.save(payload, path)
    report = import_official(path, tmp_path / "ours.pt")
    assert sorted(report.unmapped) == sorted(extra)
    assert report.unset and all(k.startswith(("fpn.", "heads.isaid.")) for k in report.unset)  # MAE has neither
    ckpt = read_checkpoint(tmp_path / "ours.pt")
    state, theirs = ckpt["state_dict"], source.state_dict()
    assert ckpt["spec"]["img_size"] == 512 and ckpt["spec"]["preset"] == "vit-nano"
    for key in encoder:
        if key.startswith("blocks.") or key.startswith("patch_embed."):
            assert torch.equal(state[f"backbone.{key}"], theirs[f"backbone.{key}"]), key
    # S4P's init_weights: the cls position dropped, the 14 x 14 grid resized bicubically to 32 x 32.
    patches = grid[:, 1:].reshape(1, 14, 14, dim).permute(0, 3, 1, 2)
    expected = F.interpolate(patches, size=(32, 32), mode="bicubic", align_corners=False)
    assert torch.allclose(state["backbone.pos_embed"], expected.flatten(2).transpose(1, 2), atol=1e-6)


@pytest.mark.parametrize("preset", ["vit-b", "vit-l", "vit-h"])
def test_mae_layouts_of_every_size_map_completely(preset):
    model = _meta_model(ModelSpec(preset=preset, heads=[known_head("isaid", 16)]))
    dim = model.backbone.embed_dim
    encoder = timm_vit(model, pos_embed=torch.empty(1, 197, dim, device="meta"))
    spec, ours, _, unmapped = convert_official(unwrap_state_dict({"model": encoder}))
    assert spec.preset == preset and spec.img_size == 512 and sorted(unmapped) == ["norm.bias", "norm.weight"]
    expected = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert sorted(ours) == sorted(expected)
    assert all(ours[k].shape == expected[k].shape for k in ours)


def test_public_mae_vit_h14_is_refused_with_the_reason():
    model = _meta_model(ModelSpec(preset="vit-h", heads=[known_head("isaid", 16)]))
    encoder = timm_vit(model, pos_embed=torch.empty(1, 257, 1280, device="meta"))
    encoder["patch_embed.proj.weight"] = torch.empty(1280, 3, 14, 14, device="meta")
    with pytest.raises(InputError, match="patch embedding is 14x14, but S5's vit-h uses 16x16"):
        convert_official(encoder)


def test_detection_file_as_the_mmcv_runner_saves_it(tmp_path):
    spec = ModelSpec(preset="vit-nano", heads=DET_HEADS, moe=True, expert_width=16, img_size=1024)
    source = _model(spec, seed=14)
    official = {k: v.half() for k, v in official_mtd(source, TASKS).items()}  # Fp16OptimizerHook: model.half()
    assert official["backbone.pos_embed"].shape == (1, 64 * 64, 64)
    meta = {
        "mmdet_version": "2.2.0+unknown", "mmcv_version": "1.3.16", "config": "model = dict(...)",
        "CLASSES": tuple(DET_HEADS[1].classes), "epoch": 12, "iter": 66000, "time": "Thu Jun  5 10:00:00 2025",
        "hook_msgs": {"last_ckpt": "work_dirs/epoch_12.pth"},
    }  # fmt: skip
    optimizer = {"state": {0: {"step": 12, "exp_avg": torch.zeros(4)}}, "param_groups": [{"lr": 1e-6, "params": [0]}]}
    path = tmp_path / "vit_nano_moe_dior_r_dota2_epoch_12.pth"
    torch.save({"meta": meta, "state_dict": official, "optimizer": optimizer}, path)
    report = import_official(path, tmp_path / "ours.pt")
    assert report.unmapped == [] and report.unset == [] and report.datasets == ["dior-r", "dota-v2.0"]
    ckpt = read_checkpoint(tmp_path / "ours.pt")
    assert ckpt["spec"]["img_size"] == 1024 and {h["input"]["size"] for h in ckpt["spec"]["heads"]} == {1024}
    for key, value in source.state_dict().items():
        assert ckpt["state_dict"][key].dtype == torch.float32
        assert torch.equal(ckpt["state_dict"][key], value.half().float()), key


@pytest.mark.parametrize("preset", ["vit-b", "vit-l", "vit-h"])
def test_detection_and_backbone_layouts_of_every_size_map_completely(preset):
    det = _meta_model(ModelSpec(preset=preset, heads=DET_HEADS, moe=True, img_size=1024))
    spec, ours, _, unmapped = convert_official(unwrap_state_dict({"state_dict": official_mtd(det, TASKS)}))
    assert unmapped == [] and spec.preset == preset and spec.img_size == 1024 and spec.moe
    expected = det.state_dict()
    assert sorted(ours) == sorted(expected) and all(ours[k].shape == expected[k].shape for k in ours)
    dense = _meta_model(ModelSpec(preset=preset, heads=[known_head("isaid", 16)]))
    spec, ours, _, unmapped = convert_official(unwrap_state_dict({"model": official_encoder(dense)}))  # vit_*_s4p.pth
    assert unmapped == [] and spec.preset == preset and spec.img_size == 512
    assert sorted(ours) == sorted(k for k in dense.state_dict() if not k.startswith("heads."))


def test_a_namespace_holding_code_is_still_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "mae.pth"
    torch.save({"model": {"pos_embed": torch.zeros(1)}, "args": argparse.Namespace(hook=_Payload(marker))}, path)
    with pytest.raises(UntrustedFileError):
        import_official(path, tmp_path / "ours.pt")
    assert not marker.exists() and not (tmp_path / "ours.pt").exists()
