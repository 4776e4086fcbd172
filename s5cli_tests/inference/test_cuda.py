"""CUDA paths: bf16 and fp16 autocast steps, the device-side blend against the CPU one, checkpoints across
devices, and pinned transfers. Marked `cuda`; every test skips cleanly where no GPU is present."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from s5cli.geo.tiles import window_grid
from s5cli.inference.engine import ArraySink, predict_source
from s5cli.inference.normalize import Normaliser
from s5cli.inference.predictor import Predictor, predictor_for
from s5cli.inference.sources import RasterioSource
from s5cli.inference.stitch import RowBand
from s5cli.inference.transfer import Download, Uploader
from s5cli_tests.inference.conftest import StandIn, standin_spec
from s5cli_tests.scenes import make_scene

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CUDA = torch.device("cuda", 0)
NORM = Normaliser((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def _map(path: Path, predictor: Predictor) -> ArraySink:
    with rasterio.open(path) as ds:
        src = RasterioSource(ds)
        sink = ArraySink(src.width, src.height)
        predict_source(src, predictor, 3, sink, 32, 8, 4, None, NORM)
    return sink


def test_device_blend_equals_the_cpu_blend() -> None:
    width, height, tile, overlap, k = 300, 200, 64, 16, 6
    rng = np.random.default_rng(0)
    bands = [RowBand(width, height, tile, k, overlap, d) for d in (torch.device("cpu"), CUDA)]
    outs: list[list[np.ndarray]] = [[], []]
    for win in window_grid(width, height, tile, overlap):
        probs = torch.from_numpy(rng.dirichlet(np.ones(k), size=(tile, tile)).transpose(2, 0, 1).astype(np.float32))
        for band, out in zip(bands, outs):
            if win.row_off > band.row0:
                out.append(band.flush(int(win.row_off))[1])
            band.add(win, probs.to(band.device), torch.ones((tile, tile), dtype=torch.bool, device=band.device))
    for band, out in zip(bands, outs):
        while band.row0 < height:
            out.append(band.flush(height)[1])
    cpu, gpu = (np.concatenate(o) for o in outs)
    assert (cpu == gpu).mean() >= 0.9999


def test_engine_on_the_gpu_agrees_with_the_cpu(tmp_path: Path) -> None:
    """bf16 autocast and the device-side blend against fp32 on the CPU: argmax agreement >= 99.99 %."""
    path = make_scene(tmp_path / "s.tif", width=200, height=150, nodata_border=4)
    model = StandIn(standin_spec())
    cpu = _map(path, predictor_for(model, device="cpu"))
    gpu = _map(path, predictor_for(model, device="cuda"))
    assert (cpu.classes == gpu.classes).mean() >= 0.9999
    assert np.array_equal(cpu.classes == 255, gpu.classes == 255)


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_autocast_training_steps(mode: str) -> None:
    """bf16 without a scaler, fp16 with GradScaler: finite losses and weights that move."""
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec
    from s5cli.training.device import resolve_precision

    precision = resolve_precision(mode, CUDA)
    assert precision.use_scaler == (mode == "fp16")
    torch.manual_seed(0)
    with torch.device(CUDA):
        model = build_model(ModelSpec(preset="vit-nano", heads=[HeadSpec(name="a", classes=["x", "y"])], img_size=64))
    scaler = precision.make_scaler()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.rand((2, 3, 64, 64), device=CUDA)
    y = torch.randint(0, 2, (2, 64, 64), device=CUDA)
    for _ in range(3):
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(model(x, "a").float(), y)
        assert torch.isfinite(loss)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_checkpoints_move_across_devices(tmp_path: Path) -> None:
    from s5cli.models.checkpoint import load_checkpoint, save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadSpec, ModelSpec

    spec = ModelSpec(preset="vit-nano", heads=[HeadSpec(name="a", classes=["x", "y", "z"])], img_size=64)
    torch.manual_seed(0)
    with torch.device(CUDA):
        model = build_model(spec).eval()
    x = torch.rand((1, 3, 64, 64))
    save_checkpoint(tmp_path / "gpu.pt", model)
    on_cpu = load_checkpoint(tmp_path / "gpu.pt", device="cpu")[0]
    with torch.no_grad():
        expected = model(x.to(CUDA), "a").cpu()
        assert torch.allclose(on_cpu(x, "a"), expected, atol=1e-4)
    save_checkpoint(tmp_path / "cpu.pt", on_cpu)
    back = load_checkpoint(tmp_path / "cpu.pt", device="cuda")[0]
    assert next(back.parameters()).device.type == "cuda"
    with torch.no_grad():
        assert torch.allclose(back(x.to(CUDA), "a").cpu(), expected, atol=1e-4)


def test_pinned_transfers_round_trip() -> None:
    upload = Uploader(CUDA)
    tiles = [np.random.default_rng(i).random((3, 16, 16), dtype=np.float32) for i in range(4)]
    batch = upload(tiles)
    assert batch.device.type == "cuda"
    back = Download([(batch * 0 + 7).to(torch.uint8), batch]).result()
    assert (back[0] == 7).all() and np.array_equal(back[1], np.stack(tiles))
