"""Detection checkpoints in predict: streamed patches, row-by-row NMS merge, boxes as polygons in the CRS."""

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from rasterio.transform import from_origin
from torch import nn

from s5cli.geo.vector import DETECTION_FIELDS
from s5cli.inference.config import PredictConfig
from s5cli.inference.detect import detect_scene, detect_source
from s5cli.inference.normalize import Normaliser
from s5cli.inference.predictor import predictor_for
from s5cli.inference.scene import SceneTargets, plan_scene
from s5cli.inference.sources import RasterioSource
from s5cli.models.spec import HeadSpec, ModelSpec
from s5cli_tests.models.tiny import trained_at

SQUARES = [(20, 10, 12, 8), (70, 60, 10, 10)]  # (col, row, width, height) of bright objects in the scene


class BrightBoxes(nn.Module):
    """forward(x, dataset) -> per image one axis-aligned box around its bright pixels (score grows with size),
    so a patch that holds a whole object and one that cuts it disagree, and NMS must keep the whole one."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, dataset: str | None = None) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in x:
            ys, xs = torch.nonzero(image[0] > 0.9, as_tuple=True)
            if len(xs) == 0:
                out.append({"boxes": torch.zeros(0, 5), "scores": torch.zeros(0), "labels": torch.zeros(0).long()})
                continue
            boxes, scores = [], []
            # one box per connected square: split by a gap in x (squares are far apart)
            for sel in (xs < xs.min() + 20, xs >= xs.min() + 20):
                if sel.any():
                    x0, x1 = xs[sel].min().float(), xs[sel].max().float() + 1
                    y0, y1 = ys[sel].min().float(), ys[sel].max().float() + 1
                    w, h = x1 - x0, y1 - y0
                    boxes.append(torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, w, h, torch.tensor(0.0)]))
                    scores.append(w * h / 200)
            out.append(
                {"boxes": torch.stack(boxes), "scores": torch.stack(scores), "labels": torch.ones(len(boxes)).long()}
            )
        return out


def det_spec(tile: int = 32) -> ModelSpec:
    head = HeadSpec(name="dota", task="detection", classes=["plane", "ship"], palette=[(255, 0, 0), (0, 0, 255)])
    return ModelSpec(preset="vit-nano", heads=trained_at([head], tile), img_size=tile)


def bright_scene(path: Path, nodata_cols: int = 0) -> Path:
    data = np.full((3, 80, 100), 60, np.uint8)
    for c, r, w, h in SQUARES:
        data[:, r : r + h, c : c + w] = 250
    data[:, :, :nodata_cols] = 0
    profile = dict(driver="GTiff", width=100, height=80, count=3, dtype="uint8", crs="EPSG:32633", nodata=0)
    with rasterio.open(path, "w", transform=from_origin(500000, 5800000, 0.5, 0.5), **profile) as dst:
        dst.write(data)
    return path


def test_streamed_patches_merge_to_one_box_per_object(tmp_path: Path) -> None:
    predictor = predictor_for(BrightBoxes(det_spec()), device="cpu")
    with rasterio.open(bright_scene(tmp_path / "s.tif")) as ds:
        norm = Normaliser((0.0,) * 3, (255.0,) * 3)
        dets, stats = detect_source(RasterioSource(ds), predictor, 32, 12, 3, None, norm)
    assert stats["patches"] == 5 * 4  # columns 0, 20, 40, 60, 68 x rows 0, 20, 40, 48
    boxes = sorted(dets["boxes"].tolist())
    expected = sorted([[c + w / 2, r + h / 2, w, h, 0.0] for c, r, w, h in SQUARES])
    assert np.allclose(boxes, expected)
    assert dets["labels"].tolist() == [1, 1]


def test_detect_scene_writes_boxes_in_the_crs(tmp_path: Path) -> None:
    predictor = predictor_for(BrightBoxes(det_spec()), device="cpu")
    scene = bright_scene(tmp_path / "s.tif", nodata_cols=8)
    gpkg, png = tmp_path / "o.gpkg", tmp_path / "p.png"
    cfg = PredictConfig(scenes=[str(scene)], output=str(gpkg), tile_size=32, overlap=0.4, batch_size=2)
    plan = plan_scene(SceneTargets(str(scene), "s", preview=png), predictor, cfg)
    summary = detect_scene(plan, predictor, cfg, gpkg, tmp_path)
    assert summary["detections"] == 2 and summary["skipped_tiles"] == 0
    frame = pyogrio.read_dataframe(gpkg, layer="s")
    assert list(frame.columns[:5]) == list(DETECTION_FIELDS) and frame.crs.to_epsg() == 32633
    assert frame.class_name.tolist() == ["ship", "ship"]
    got = sorted(frame.geometry, key=lambda g: g.bounds[0])
    for geom, (c, r, w, h) in zip(got, SQUARES):
        want = shapely.box(500000 + c * 0.5, 5800000 - (r + h) * 0.5, 500000 + (c + w) * 0.5, 5800000 - r * 0.5)
        assert geom.symmetric_difference(want).area == pytest.approx(0, abs=1e-6)
    assert frame.area_m2.tolist() == pytest.approx([w * h * 0.25 for _, _, w, h in SQUARES])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_real_detection_checkpoint_through_the_cli(runner, tmp_path: Path) -> None:
    from s5cli.cli import app
    from s5cli_tests.inference.conftest import tiny_checkpoint
    from s5cli_tests.scenes import make_scene

    def few_boxes(model: nn.Module) -> None:  # background logit +3: a handful of boxes, not thousands
        model.heads["dota"].roi_head.fc_cls.bias[-1] = 3.0

    head = HeadSpec(name="dota", task="detection", classes=["plane", "ship"])
    ckpt = tiny_checkpoint(tmp_path / "det.pt", [head], tile=64, tweak=few_boxes)
    scene = make_scene(tmp_path / "s.tif", width=60, height=50)  # one patch: the head is slow on CPU
    gpkg = tmp_path / "d.gpkg"
    refused = runner.invoke(
        app, ["predict", str(scene), "--raster", str(tmp_path / "r.tif"), "--checkpoint", str(ckpt)]
    )
    assert refused.exit_code == 2 and "detects objects" in refused.stderr
    result = runner.invoke(app, ["predict", str(scene), "-o", str(gpkg), "--checkpoint", str(ckpt), "--json"])
    assert result.exit_code == 0, result.stderr
    info = pyogrio.read_info(gpkg, layer="s")
    assert list(info["fields"]) == list(DETECTION_FIELDS) and info["crs"] == "EPSG:32633"
    assert info["geometry_type"] == "Polygon"


def test_a_detection_head_of_a_multi_dataset_checkpoint_predicts_at_its_own_patch_size(tmp_path: Path) -> None:
    """Each head carries its trained input: predict reads the detection head's patch and gap, not the model's."""
    from s5cli.config import build_config
    from s5cli.inference.config import PredictConfig
    from s5cli.inference.predict import run_predict
    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadInput
    from s5cli_tests.scenes import make_scene

    seg = HeadSpec(name="potsdam", classes=["a", "b"], input=HeadInput(size=32, overlap=0.25))
    det = HeadSpec(
        name="dota-v2.0", task="detection", classes=["plane", "ship"], input=HeadInput(size=64, overlap=0.25)
    )
    torch.manual_seed(0)
    model = build_model(ModelSpec(preset="vit-nano", heads=[seg, det], moe=True, expert_width=16, img_size=32))
    with torch.no_grad():
        model.heads["dota-v2_0"].roi_head.fc_cls.bias[-1] = 5.0  # few boxes
    ckpt = save_checkpoint(tmp_path / "two.pt", model.eval())
    scene = make_scene(tmp_path / "s.tif", width=60, height=50)
    cfg = {"scenes": [str(scene)], "output": str(tmp_path / "d.gpkg"), "checkpoint": str(ckpt), "device": "cpu"}
    summary = run_predict(build_config(PredictConfig, {**cfg, "dataset": "dota-v2.0"}))
    assert (summary["scenes"][0]["tile_size"], summary["scenes"][0]["overlap_px"]) == (64, 16)
    summary = run_predict(build_config(PredictConfig, {**cfg, "dataset": "potsdam", "overwrite": True}))
    assert (summary["scenes"][0]["tile_size"], summary["scenes"][0]["overlap_px"]) == (32, 8)


class PaddedBoxes(BrightBoxes):
    """BrightBoxes grown by `pad` px on every side: an object at the scene's edge gets a box reaching past it."""

    pad = 4.0

    def forward(self, x: torch.Tensor, dataset: str | None = None) -> list[dict[str, torch.Tensor]]:
        out = super().forward(x, dataset)
        for det in out:
            det["boxes"][:, 2:4] += 2 * self.pad
        return out


def test_min_score_drops_weak_boxes_and_boxes_past_the_scene_are_clipped(tmp_path: Path) -> None:
    predictor = predictor_for(PaddedBoxes(det_spec()), device="cpu")
    data = np.full((3, 80, 100), 60, np.uint8)
    data[:, 0:10, 0:10] = 250  # a 10 x 10 object in the corner (score 0.5): its padded box reaches past it
    data[:, 40:48, 60:72] = 250  # a 12 x 8 object inside (score 0.48)
    scene = tmp_path / "edge.tif"
    profile = dict(driver="GTiff", width=100, height=80, count=3, dtype="uint8", crs="EPSG:32633")
    with rasterio.open(scene, "w", transform=from_origin(500000, 5800000, 0.5, 0.5), **profile) as dst:
        dst.write(data)
    gpkg = tmp_path / "o.gpkg"
    cfg = PredictConfig(scenes=[str(scene)], output=str(gpkg), tile_size=32, overlap=0.4, min_score=0.3)
    plan = plan_scene(SceneTargets(str(scene), "s"), predictor, cfg)
    summary = detect_scene(plan, predictor, cfg, gpkg, tmp_path)
    assert summary["detections"] == 2 and summary["clipped"] == 1
    frame = pyogrio.read_dataframe(gpkg, layer="s").sort_values("score")
    assert frame.clipped.tolist() == [False, True]
    corner = shapely.box(500000, 5800000 - 14 * 0.5, 500000 + 14 * 0.5, 5800000)  # -4..14 px cut at 0
    assert frame.geometry.iloc[1].symmetric_difference(corner).area == pytest.approx(0, abs=1e-6)
    assert frame.area_m2.iloc[1] == pytest.approx(14 * 14 * 0.25)
    strict = cfg.model_copy(update={"min_score": 0.49})
    gpkg.unlink()
    assert detect_scene(plan, predictor, strict, gpkg, tmp_path)["detections"] == 1
