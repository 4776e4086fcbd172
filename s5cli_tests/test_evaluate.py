import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from s5cli.scoring.modes import segment
from s5cli_tests.test_finetune import DATA, THREE, invoke, one_thread, trained_run  # noqa: F401 - fixture

LOVEDA_TEST = sorted(p.stem for p in (DATA / "loveda" / "Test").rglob("images_png/*.png"))


class PixelModel(nn.Module):
    """A per-pixel model (1x1 conv, 3 bands -> 4 classes) that records its input shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(12.0).reshape(4, 3, 1, 1) / 6 - 1)
            self.conv.bias.copy_(torch.tensor([0.5, -0.5, 0.2, 0.0]))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor, head: str) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.conv(x)


def _image(h: int, w: int) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))


def test_slide_equals_a_whole_image_forward_for_a_per_pixel_model() -> None:
    model = PixelModel()
    image = _image(70, 45)  # not multiples of the stride, one side shorter than two tiles
    whole = model(image[None], "x").softmax(1)[0]
    model.shapes.clear()
    probs = segment(model, image, "x", "slide", 32, overlap=0.5)
    torch.testing.assert_close(probs, whole, rtol=1e-6, atol=1e-6)
    assert {s[-2:] for s in model.shapes} == {(32, 32)}  # every window is exactly one tile
    rows, cols = 4, 2  # starts 0, 16, 32, 38 down; 0, 13 across (the last snapped to the border)
    assert sum(s[0] for s in model.shapes) == rows * cols
    small = _image(20, 12)  # smaller than a tile: padded, cropped back
    torch.testing.assert_close(
        segment(model, small, "x", "slide", 32), model(small[None], "x").softmax(1)[0], rtol=1e-6, atol=1e-6
    )


def test_crop_with_flip_and_resize_modes() -> None:
    model = PixelModel()
    image = _image(24, 40)
    once = model(image[None], "x").softmax(1)[0]
    model.shapes.clear()
    both = segment(model, image, "x", "crop", 32, flip=True)
    torch.testing.assert_close(both, 2 * once, rtol=1e-6, atol=1e-6)  # a per-pixel model is flip-equivariant
    assert model.shapes == [(1, 3, 32, 48), (1, 3, 32, 48)]  # padded to the 16-pixel grid
    flat = torch.full((3, 50, 30), 0.4)
    model.shapes.clear()
    probs = segment(model, flat, "x", "resize", 32)
    assert model.shapes == [(1, 3, 32, 32)] and probs.shape == (4, 50, 30)
    expected = model(flat[None, :, :1, :1], "x").softmax(1)[0, :, 0, 0]
    torch.testing.assert_close(probs, expected[:, None, None].expand(4, 50, 30), rtol=1e-5, atol=1e-6)


def test_each_dataset_reports_its_own_metric(runner, tmp_path_factory, tmp_path: Path) -> None:
    run = trained_run(runner, tmp_path_factory)
    out = tmp_path / "metrics.csv"
    result = invoke(
        runner, "evaluate", [run / "best.pt", "--datasets", THREE, "--data-root", DATA, "-o", out, "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    got = {d["dataset"]: (d["metric"], d["split"], d["mode"], d["labeled"]) for d in summary["datasets"]}
    assert got == {
        "potsdam": ("mF1", "test", "crop", True),
        "loveda": ("mIoU", "val", "slide", True),
        "dior-r": ("mAP", "test", "detect", True),
    }
    for d in summary["datasets"]:
        assert 0.0 <= d["score"] <= 1.0
        key = "mAP" if d["dataset"] == "dior-r" else d["metric"]
        assert d["score"] == d["values"][key]
    potsdam = summary["datasets"][0]
    assert potsdam["images"] == 8  # 2 test tiles of 40 px in 32 px windows (the last snapped): 2 x 2 x 2
    rows = list(csv.DictReader(out.open()))
    assert [r["dataset"] for r in rows] == ["potsdam"] * 6 + ["loveda"] * 7 + ["dior-r"] * 20
    assert rows[5]["class"] == "clutter" and rows[5]["excluded"] == "True"
    assert rows[13]["class"] == "airplane" and rows[13]["AP"] != "" and rows[13]["IoU"] == ""
    table = invoke(runner, "evaluate", [run / "best.pt", "--datasets", "potsdam", "--data-root", DATA])
    assert table.exit_code == 0, table.output
    assert "potsdam" in table.stdout and "mF1" in table.stdout and "crop" in table.stdout


def test_loveda_test_predictions_for_the_server(runner, tmp_path_factory, tmp_path: Path) -> None:
    run = trained_run(runner, tmp_path_factory)
    folder = tmp_path / "submission"
    args = [run / "checkpoint.pt", "--datasets", "loveda", "--data-root", DATA, "--split", "test"]
    result = invoke(runner, "evaluate", [*args, "--save-predictions", folder, "--json"])
    assert result.exit_code == 0, result.output
    (loveda,) = json.loads(result.stdout)["datasets"]
    assert loveda["labeled"] is False and loveda["score"] is None and loveda["images"] == len(LOVEDA_TEST)
    assert sorted(p.name for p in (folder / "loveda").iterdir()) == sorted(f"{s}.png" for s in LOVEDA_TEST)
    for png in (folder / "loveda").iterdir():
        img = Image.open(png)
        values = np.asarray(img)
        assert img.mode == "L" and values.shape == (32, 32) and values.max() <= 6
    again = invoke(runner, "evaluate", [*args, "--save-predictions", folder])
    assert again.exit_code == 2 and "exists" in again.output


def test_dota_task1_files(tmp_path: Path) -> None:
    from s5cli.datasets.registry import dataset_info
    from s5cli.evaluation.submissions import SubmissionWriter

    classes = list(dataset_info("dota-v2.0").classes)
    writer = SubmissionWriter(tmp_path, "dota-v2.0", "detection", classes)
    boxes = torch.tensor([[50.0, 40.0, 20.0, 10.0, 0.0], [10.0, 10.0, 4.0, 4.0, 0.0]])
    prediction = {"boxes": boxes, "scores": torch.tensor([0.9, 0.5]), "labels": torch.tensor([0, 17])}
    writer.add({"path": "/x/P0003.png"}, prediction)
    files = writer.close()
    assert [f.name for f in files] == sorted(f"Task1_{c}.txt" for c in classes)
    folder = tmp_path / "dota-v2.0"
    assert (
        folder / "Task1_plane.txt"
    ).read_text() == "P0003 0.900000 40.00 35.00 60.00 35.00 60.00 45.00 40.00 45.00\n"
    assert (folder / "Task1_helipad.txt").read_text() == "P0003 0.500000 8.00 8.00 12.00 8.00 12.00 12.00 8.00 12.00\n"
    assert (folder / "Task1_ship.txt").read_text() == ""


def _tiny_checkpoint(path: Path, name: str, task: str, classes: list[str]) -> Path:
    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    spec = ModelSpec(preset="vit-nano", heads=[HeadSpec(name=name, task=task, classes=classes)], decoder_channels=16)
    return save_checkpoint(path, build_model(spec))


def test_missing_head_and_wrong_task_are_one_line_exit_2(runner, tmp_path: Path) -> None:
    from s5cli.datasets.registry import dataset_info

    seg = _tiny_checkpoint(tmp_path / "seg.pt", "loveda", "segmentation", list(dataset_info("loveda").classes))
    result = invoke(runner, "evaluate", [seg, "--datasets", "potsdam", "--data-root", DATA])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {seg}: no head for potsdam in this checkpoint; it has: loveda"
    ]
    wrong = _tiny_checkpoint(tmp_path / "wrong.pt", "dior-r", "segmentation", list(dataset_info("dior-r").classes))
    result = invoke(runner, "evaluate", [wrong, "--datasets", "dior-r", "--data-root", DATA])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {wrong}: the dior-r head is a segmentation head but dior-r is a detection dataset"
    ]
    out = tmp_path / "metrics.csv"
    out.write_text("keep\n")
    result = invoke(runner, "evaluate", [seg, "--datasets", "loveda", "--data-root", DATA, "-o", out])
    assert result.exit_code == 2 and "exists" in result.output and out.read_text() == "keep\n"


def test_options_land_in_their_fields(runner, tmp_path: Path, monkeypatch) -> None:
    from s5cli.config import load_config
    from s5cli.evaluation import run as run_module
    from s5cli.evaluation.config import EvaluateConfig

    seen = {}

    def fake_run(cfg: EvaluateConfig) -> dict:
        seen["cfg"] = cfg
        return {"checkpoint": str(cfg.checkpoint), "datasets": [], "csv": None, "predictions": None}

    monkeypatch.setattr(run_module, "run_evaluate", fake_run)
    args = [
        "c.pt", "--datasets", "potsdam,loveda", "--data-root", "d", "--split", "val", "--mode", "slide", "--no-flip",
        "--tile-size", 64, "--det-size", 96, "--batch-size", 3, "--max-images", 5, "--save-predictions", "sub",
        "-o", "m.csv", "--overwrite", "--device", "cpu", "--amp", "bf16", "--json",
    ]  # fmt: skip
    result = invoke(runner, "evaluate", args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert (cfg.checkpoint, cfg.datasets, cfg.data_root, cfg.split) == (
        Path("c.pt"),
        ["potsdam", "loveda"],
        Path("d"),
        "val",
    )
    assert (cfg.mode, cfg.flip, cfg.tile_size, cfg.det_size, cfg.batch_size, cfg.max_images) == (
        "slide",
        False,
        64,
        96,
        3,
        5,
    )
    assert (cfg.save_predictions, cfg.output, cfg.overwrite, cfg.device, cfg.amp) == (
        Path("sub"), Path("m.csv"), True, "cpu", "bf16"
    )  # fmt: skip
    base = load_config(
        EvaluateConfig, Path(__file__).parent.parent / "configs" / "evaluate.yaml", {"checkpoint": "c.pt"}
    )
    assert base.mode is None and base.flip is None and base.amp == "off"


def test_dota_patches_merge_at_the_servers_iou_for_test_and_the_local_one_for_val() -> None:
    from s5cli.datasets.registry import dataset_info
    from s5cli.evaluation.config import EvaluateConfig
    from s5cli.evaluation.run import plan_jobs
    from s5cli.models.spec import HeadSpec, ModelSpec

    spec = ModelSpec(preset="vit-nano", heads=[HeadSpec.from_dataset(dataset_info("dota-v2.0"))])
    merges = {}
    for split in ("val", "test"):
        cfg = EvaluateConfig(checkpoint=Path("s5.pt"), datasets=["dota-v2.0"], data_root=DATA, split=split)
        (job,) = plan_jobs(cfg, spec)
        assert job.settings.mode == "patches" and job.options == {"patch_size": None}
        merges[split] = job.settings.merge_iou
    assert merges == {"val": None, "test": 0.5}  # None: detection.patches.MERGE_IOU (0.1)


def test_paper_protocol_through_the_cli(runner, tmp_path_factory) -> None:
    """`--protocol paper` scores as the authors' code: the head's K classes, clutter as the ignore index K."""
    run = trained_run(runner, tmp_path_factory)
    args = [run / "checkpoint.pt", "--datasets", "potsdam,loveda", "--data-root", DATA, "--json"]
    standard = json.loads(invoke(runner, "evaluate", args).stdout)
    result = invoke(runner, "evaluate", [*args, "--protocol", "paper"])
    assert result.exit_code == 0, result.output
    paper = json.loads(result.stdout)
    potsdam = paper["datasets"][0]
    assert [r["class"] for r in potsdam["per_class"]] == [
        "impervious_surface",
        "building",
        "low_vegetation",
        "tree",
        "car",
    ]
    assert [r["class"] for r in standard["datasets"][0]["per_class"]][-1] == "clutter"  # the standard table: 6 rows
    assert potsdam["score"] is not None and potsdam["images"] == standard["datasets"][0]["images"]
