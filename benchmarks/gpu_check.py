"""One command for the first CUDA GPU: predict and training throughput, memory, MFU, and the NCCL path.

    python benchmarks/gpu_check.py              # one CUDA GPU, about 3-6 minutes (hard stop before 8)
    python benchmarks/gpu_check.py --dry-run    # the same code at tiny sizes on the CPU (CI, well under a minute)
    python benchmarks/gpu_check.py --peak-tflops 989   # a GPU the table below does not know

Nothing is downloaded: every model is built from its preset with random weights; the scene is generated.
Prints, for ViT-B and ViT-L (dry run: vit-nano, fp32 unless the CPU has native bf16):

1. predict, 512 px tiles, 25 % overlap, bf16 autocast, batch sized to the GPU: scene megapixels/s end to
   end (read, normalise, model, blend and argmax on the device, uint8 rows written; then with polygons
   as rows finish), the model forward alone on the same number of tiles, their ratio (target <= 1.05),
   the share of time the model waited for input, and the pipeline alone (a stand-in model that costs
   nothing), which is the ceiling the host side sets.
2. training steps on device-resident batches, bf16, gradient checkpointing off and on: S4P (FixMatch
   with CutMix: teacher forward + one student forward/backward on labeled + strong) and MoE-MDF (three
   datasets, one expert and head each, summed losses): images/s, peak memory, and MFU = model FLOPs
   per step (counted with torch.utils.flop_counter on the step without recomputation) / step time /
   the GPU's dense bf16 peak (target >= 40 % for ViT-L). Also the cost of moving the step's stats to the
   host every step, as the training engine logs them.
3. a one-process NCCL (gloo on the dry run) init of the DDP path: init_distributed, wrap_ddp, one
   step, all_reduce_sum, shutdown.

Figures of runs on real GPUs go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/predict.py: scene generator

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets; first match wins.
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GB200", 2500.0),
    ("B200", 2250.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
]


@dataclass(frozen=True)
class Sizes:
    """What one run measures: real sizes on a GPU, tiny ones for the dry run."""

    presets: tuple[str, ...]
    tile: int
    scene: int
    crop: int
    decoder: int
    predict_batches: tuple[int, ...]  # tried largest first; the first that fits is used
    train_batches: tuple[int, ...]
    warmup: int
    steps: int
    budget_s: float  # stop starting new measurements after this


GPU = Sizes(("vit-b", "vit-l"), 512, 6144, 512, 256, (64, 32, 16, 8, 4), (16, 8, 4, 2, 1), 3, 8, 420.0)
DRY = Sizes(("vit-nano",), 64, 128, 64, 32, (4,), (2,), 1, 1, 120.0)
CLASSES = ["ground", "building", "tree", "water", "road", "car"]


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The device's dense bf16 peak: the option, else the table by device name; None when unknown."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def sync(device: torch.device) -> None:
    """Wait for the device (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error of the device."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def largest_fitting(candidates: tuple[int, ...], trial: Callable[[int], object], device: torch.device) -> int:
    """The largest batch in `candidates` (descending) for which `trial(batch)` runs without running out of memory."""
    for batch in candidates:
        try:
            trial(batch)
            sync(device)
            return batch
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
    raise RuntimeError(f"not even a batch of {candidates[-1]} fits on {device}")


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> float:
    """Peak device memory (GPU) or peak RSS of this process (CPU), in GB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    from predict import peak_rss_mb

    return peak_rss_mb() / 1e3


def seg_spec(preset: str, sizes: Sizes, heads: list[tuple[str, int]], moe: bool = False) -> Any:
    """A ModelSpec with segmentation heads (name, classes); MoE experts of S5's width (256, less for tiny presets)."""
    from s5cli.models.presets import get_preset
    from s5cli.models.spec import HeadInput, HeadSpec, ModelSpec

    return ModelSpec(
        preset=preset,
        heads=[
            HeadSpec(name=name, classes=[f"c{i}" for i in range(k)], input=HeadInput(size=sizes.tile, overlap=0.25))
            for name, k in heads
        ],
        moe=moe,
        expert_width=min(256, get_preset(preset).embed_dim // 4),
        img_size=sizes.crop,
        drop_path=0.1,
        decoder_channels=sizes.decoder,
    )


def build_on(spec: Any, device: torch.device) -> Any:
    """Build a model with its weights initialised on the device (seconds for ViT-L, not a minute on the CPU)."""
    from s5cli.models.network import build_model

    torch.manual_seed(0)
    with torch.device(device):
        return build_model(spec)


# ----------------------------------------------------------------------------------------------- predict


class FreeModel:
    """A stand-in DeviceModel that costs nothing: what the pipeline alone can sustain."""

    def __init__(self, device: torch.device, classes: int) -> None:
        self.device, self.classes = device, classes

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Uniform probabilities of the batch's shape."""
        b, _, h, w = batch.shape
        return torch.full((b, self.classes, h, w), 1.0 / self.classes, device=batch.device)


def run_engine(scene: Path, model: Any, sizes: Sizes, batch: int, work: Path, polygons: bool) -> tuple[Any, float]:
    """One scene through the engine into working rasters (and a polygon layer); returns (stats, seconds)."""
    from s5cli.datasets.info import default_palette
    from s5cli.geo.raster import describe_raster
    from s5cli.inference.engine import predict_source
    from s5cli.inference.normalize import Normaliser
    from s5cli.inference.sinks import GeoTiffSink, PolygonLayer, PolygonSink, TeeSink
    from s5cli.inference.sources import open_rasterio_source

    for old in work.glob("work_*"):
        old.unlink()
    gpkg = work / "polygons.gpkg"
    gpkg.unlink(missing_ok=True)
    source = open_rasterio_source(str(scene))
    t0 = time.perf_counter()
    try:
        sink = GeoTiffSink(work, source, CLASSES, default_palette(len(CLASSES)))
        streamed = None
        if polygons:
            streamed = PolygonSink(PolygonLayer(describe_raster(str(scene)), CLASSES, gpkg, "bench"), 2048, 4)
        rows = TeeSink(sink, streamed) if streamed is not None else sink
        overlap = sizes.tile // 4
        norm = Normaliser((0.0,) * 3, (255.0,) * 3)
        try:
            stats = predict_source(source, model, len(CLASSES), rows, sizes.tile, overlap, batch, None, norm)
            if streamed is not None:
                streamed.close()
        finally:
            sink.close()
            if streamed is not None:
                streamed.cancel()
    finally:
        source.close()
    return stats, time.perf_counter() - t0


def forward_alone(predictor: Any, tiles: int, batch: int, sizes: Sizes) -> float:
    """Seconds of the forward alone on `tiles` device-resident tiles, in batches of `batch`."""
    device = predictor.device
    x = torch.rand((batch, 3, sizes.tile, sizes.tile), device=device)
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, tiles, batch):
        predictor.probabilities(x[: min(batch, tiles - start)])
    sync(device)
    return time.perf_counter() - t0


def check_predict(device: torch.device, sizes: Sizes, work: Path, deadline: float) -> None:
    from predict import write_scene

    from s5cli.geo.tiles import window_grid

    scene = write_scene(work / "scene.tif", sizes.scene)
    mp = sizes.scene**2 / 1e6
    tiles = len(window_grid(sizes.scene, sizes.scene, sizes.tile, sizes.tile // 4))
    print(f"\n1. predict: {sizes.scene}^2 scene ({mp:.1f} MP, {tiles} tiles of {sizes.tile} px, 25 % overlap)")
    stats, secs = run_engine(scene, FreeModel(device, len(CLASSES)), sizes, sizes.predict_batches[-1], work, False)
    print(f"   pipeline alone (a model that costs nothing): {mp / secs:8.1f} MP/s, read busy {stats.read_s:.1f} s")
    for preset in sizes.presets:
        if time.perf_counter() > deadline:
            print(f"   {preset}: skipped (time budget spent)")
            continue
        predict_preset(preset, scene, tiles, device, sizes, work)
        reset_peak(device)


def predict_preset(preset: str, scene: Path, tiles: int, device: torch.device, sizes: Sizes, work: Path) -> None:
    """Forward alone and the scene end to end (raster only, then with polygons) for one preset."""
    from s5cli.inference.predictor import predictor_for

    mp = sizes.scene**2 / 1e6
    model = build_on(seg_spec(preset, sizes, [("bench", len(CLASSES))]), device).eval()
    predictor = predictor_for(model, device=device)  # bf16 autocast on CUDA
    reset_peak(device)
    batch = largest_fitting(sizes.predict_batches, lambda b: forward_alone(predictor, b, b, sizes), device)
    run_engine(scene, predictor, sizes, batch, work, False)  # warm-up: kernels, allocator, page cache
    fwd = forward_alone(predictor, tiles, batch, sizes)
    for polygons in (False, True):
        stats, secs = run_engine(scene, predictor, sizes, batch, work, polygons)
        label = "+ polygons" if polygons else "raster   "
        print(
            f"   {preset:8s} {label} batch {batch:3d}: {mp / secs:8.1f} MP/s end to end, forward alone"
            f" {mp / fwd:8.1f} MP/s, ratio {secs / fwd:.3f} (target <= 1.05); model waited {stats.wait_s:.2f} s,"
            f" peak memory {peak_memory_gb(device):.1f} GB"
        )


# ---------------------------------------------------------------------------------------------- training


def s4p_case(preset: str, sizes: Sizes, device: torch.device) -> tuple[Any, Callable[[int], Any], int]:
    """(model, batch maker, images per step per batch unit) for one S4P step."""
    from s5cli.pretrain.fixmatch import FixMatchConfig, fixmatch_step

    model = build_on(seg_spec(preset, sizes, [("isaid", 16)]), device).train()
    cfg = FixMatchConfig()

    def make(b: int) -> Callable[[Any, Callable], tuple[torch.Tensor, dict]]:
        c = sizes.crop
        g = torch.Generator(device=device).manual_seed(0)

        def unlabeled() -> dict[str, torch.Tensor]:
            box = torch.zeros((b, c, c), dtype=torch.uint8, device=device)
            box[:, c // 4 : c // 2, c // 4 : c // 2] = 1
            return {
                "image_w": torch.rand((b, 3, c, c), device=device, generator=g),
                "image_s": torch.rand((b, 3, c, c), device=device, generator=g),
                "ignore": torch.zeros((b, c, c), dtype=torch.uint8, device=device),
                "box": box,
            }

        labeled = {
            "image": torch.rand((b, 3, c, c), device=device, generator=g),
            "mask": torch.randint(0, 16, (b, c, c), device=device, generator=g),
        }
        batch_u, partner = unlabeled(), unlabeled()

        def step(m: Any, autocast: Callable) -> tuple[torch.Tensor, dict]:
            return fixmatch_step(m, labeled, batch_u, partner, cfg, head="isaid", autocast=autocast)

        return step

    return model, make, 2  # labeled + unlabeled images per batch unit


def moe_case(preset: str, sizes: Sizes, device: torch.device) -> tuple[Any, Callable[[int], Any], int]:
    """(model, batch maker, images per step per batch unit) for one MoE-MDF step over three datasets."""
    from s5cli.finetune.step import LossTerm, MultiDatasetModel

    heads = [("potsdam", 6), ("loveda", 7), ("isaid", 16)]
    net = build_on(seg_spec(preset, sizes, heads, moe=True), device).train()
    model = MultiDatasetModel(net, [LossTerm(name, "segmentation", k) for name, k in heads])

    def make(b: int) -> Callable[[Any, Callable], tuple[torch.Tensor, dict]]:
        c = sizes.crop
        g = torch.Generator(device=device).manual_seed(0)
        batches = {
            name: {
                "image": torch.rand((b, 3, c, c), device=device, generator=g),
                "mask": torch.randint(0, k, (b, c, c), device=device, generator=g),
            }
            for name, k in heads
        }
        factors = {name: 1.0 for name, _ in heads}

        def step(m: Any, autocast: Callable) -> tuple[torch.Tensor, dict]:
            with autocast():
                return m(batches, factors)

        return step

    return model, make, len(heads)


def train_steps(model: Any, step: Callable, optimizer: Any, autocast: Callable, n: int, stats_to_host: bool) -> None:
    """n optimiser steps (loss, backward, AdamW step); optionally the stats to the host, as the engine logs them."""
    for _ in range(n):
        loss, stats = step(model, autocast)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if stats_to_host:
            for value in stats.values():
                value.detach().double().cpu()


def step_flops(model: Any, step: Callable, autocast: Callable) -> int:
    """Model FLOPs of one step, forward and backward (no recomputation: checkpointing off)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = step(model, autocast)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def check_training(device: torch.device, sizes: Sizes, peak: float | None, deadline: float) -> None:
    peak_note = f"{peak:.0f} TFLOP/s bf16 dense peak" if peak else "peak unknown: give --peak-tflops for MFU"
    print(f"\n2. training steps, crop {sizes.crop}, device-resident batches ({peak_note})")
    for preset in sizes.presets:
        for name, case in (("S4P", s4p_case), ("MoE-MDF", moe_case)):
            if time.perf_counter() > deadline:
                print(f"   {preset:8s} {name}: skipped (time budget spent)")
                continue
            train_case(preset, name, case, device, sizes, peak)
            reset_peak(device)


def train_case(preset: str, name: str, case: Callable, device: torch.device, sizes: Sizes, peak: float | None) -> None:
    """Throughput, peak memory and MFU of one training step kind, checkpointing off and on."""
    from s5cli.training.device import resolve_precision
    from s5cli.training.optim import OptimConfig, build_optimizer

    # bf16 on a GPU; on the dry run's CPU what `auto` picks (fp32 without native bf16, which is emulated and slow).
    autocast = resolve_precision("bf16" if device.type == "cuda" else "auto", device).autocast
    model, make, per_unit = case(preset, sizes, device)
    net = model.net if hasattr(model, "net") else model
    optimizer = build_optimizer(model, OptimConfig(lr=1e-5))
    net.set_grad_checkpointing(False)
    batch = largest_fitting(
        sizes.train_batches, lambda b: train_steps(model, make(b), optimizer, autocast, 1, False), device
    )
    step = make(batch)
    flops = step_flops(model, step, autocast)
    for checkpointing in (False, True):
        net.set_grad_checkpointing(checkpointing)
        train_steps(model, step, optimizer, autocast, sizes.warmup, False)
        reset_peak(device)
        times = {}
        for to_host in (False, True):
            sync(device)
            t0 = time.perf_counter()
            train_steps(model, step, optimizer, autocast, sizes.steps, to_host)
            sync(device)
            times[to_host] = (time.perf_counter() - t0) / sizes.steps
        secs = times[False]
        mfu = f"MFU {100 * flops / secs / (peak * 1e12):5.1f} %" if peak else "MFU n/a"
        print(
            f"   {preset:8s} {name:7s} checkpointing {'on ' if checkpointing else 'off'} batch {batch:3d}:"
            f" {batch * per_unit / secs:8.1f} images/s, {secs * 1000:8.1f} ms/step, {mfu},"
            f" {flops / 1e12:7.3f} TFLOP/step, peak memory {peak_memory_gb(device):6.1f} GB;"
            f" stats to host each step {1000 * (times[True] - secs):+.1f} ms"
        )


# ------------------------------------------------------------------------------------------------- NCCL


def free_port() -> int:
    """A TCP port nothing listens on (for the process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_ddp(device: torch.device, sizes: Sizes) -> None:
    from s5cli.training.distributed import all_reduce_sum, init_distributed, shutdown_distributed, unwrap, wrap_ddp

    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    try:
        ctx = init_distributed(device.type)
        model = wrap_ddp(build_on(seg_spec(sizes.presets[0], sizes, [("isaid", 16)]), ctx.device).train(), ctx)
        x = torch.rand((2, 3, sizes.crop, sizes.crop), device=ctx.device)
        y = torch.randint(0, 16, (2, sizes.crop, sizes.crop), device=ctx.device)
        loss = torch.nn.functional.cross_entropy(model(x, "isaid").float(), y)
        loss.backward()  # DDP all-reduces the gradients here
        total = all_reduce_sum(torch.ones((), device=ctx.device), ctx)
        grads = sum(int(p.grad is not None) for p in unwrap(model).parameters() if p.requires_grad)
        sync(ctx.device)
        print(
            f"\n3. DDP, one process: backend {ctx.backend}, world size {ctx.world_size},"
            f" all_reduce_sum -> {total.item():g}, {grads} gradients reduced, loss {loss.item():.3f},"
            f" {time.perf_counter() - t0:.1f} s"
        )
        shutdown_distributed(ctx)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: the same code, for CI")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, TFLOP/s")
    parser.add_argument("--parts", default="predict,train,ddp")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("S5_NO_PROGRESS", "1")
    if args.dry_run:
        device, sizes = torch.device("cpu"), DRY
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda", 0), GPU
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        raise SystemExit("no CUDA GPU here: run with --dry-run for the CPU check")
    start = time.perf_counter()
    deadline = start + sizes.budget_s
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    peak = peak_tflops(device, args.peak_tflops)
    print(f"device {name}; torch {torch.__version__}; {'dry run, tiny sizes' if args.dry_run else 'full sizes'}")
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="s5-gpu-check-", dir=args.workdir) as tmp:
        if "predict" in parts:
            check_predict(device, sizes, Path(tmp), deadline)
        if "train" in parts:
            check_training(device, sizes, peak, deadline)
    if "ddp" in parts:
        check_ddp(device, sizes)
    print(f"\ndone in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
