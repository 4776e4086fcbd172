"""Benchmark `s5 predict` on generated scenes with a small preset (CPU): overhead, memory, polygons.

Prints:
  (a) end-to-end seconds of one N x N scene (raster only, then raster + polygons) against the model
      forward alone on the same tiles (targets: <= 1.05 and <= 1.15), with the per-stage split and the
      machine's load during each run. The forward alone is measured two ways: one call at a time on all
      of torch's threads (what running the model by hand gives), and as the engine runs it (two calls
      side by side, each on half the threads: the model's own speed on this machine). Variants are
      interleaved, so that a change of load hits all of them; ratios are medians of per-repeat ratios.
  (b) peak RSS of a whole predict run (raster + polygons) for two scene sizes, each in its own
      subprocess; the ratio should stay <= 1.3 for 4,000^2 vs 16,000^2. Then a sparse scene (mostly
      nodata, 32,000^2 by default) predicted in bounded memory.
  (c) polygonising a noisy 6-class map: polygons/s and peak RSS of our block-wise path against a naive
      whole-array rasterio.features.shapes + GeoDataFrame + GPKG baseline.

    python benchmarks/predict.py                      # the issue's sizes (long on 2 cores)
    python benchmarks/predict.py --size 2000 --rss-sizes 1000,4000 --sparse-size 8000 --vector-size 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from s5cli.geo.tiles import window_grid

CLASSES = ["ground", "building", "tree", "water", "road", "car"]


def _profile(size: int, count: int, nodata: int) -> dict:
    return dict(
        driver="GTiff", width=size, height=size, count=count, dtype="uint8", crs="EPSG:32633", nodata=nodata,
        transform=from_origin(500000, 5800000, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
        compress="deflate",
    )  # fmt: skip


def _texture(rng: np.random.Generator, coarse: np.ndarray, phase: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """RGB uint8 (3, rows, cols) with structure at several scales (blobs, waves, noise)."""
    out = np.empty((3, len(rows), len(cols)), np.uint8)
    for b in range(3):
        blobs = coarse[b][(rows // 48).astype(int)][:, (cols // 48).astype(int)]
        waves = np.sin(cols[None] / 23 + phase[b, 0]) * np.cos(rows[:, None] / 31 + phase[b, 1])
        out[b] = np.clip(1 + 200 * blobs + 40 * waves + rng.normal(0, 6, blobs.shape), 1, 255)
    return out


def write_scene(path: Path, size: int, seed: int = 0, strip: int = 512) -> Path:
    """An RGB uint8 UTM scene with structure at several scales, written strip by strip (never whole)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, size // 48 + 2, size // 48 + 2)).astype(np.float32)
    phase = rng.uniform(0, 6.28, size=(3, 2))
    cols = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **_profile(size, 3, 0)) as dst:
        for r0 in range(0, size, strip):
            rows = np.arange(r0, min(size, r0 + strip), dtype=np.float32)
            dst.write(_texture(rng, coarse, phase, rows, cols), window=Window(0, r0, size, len(rows)))
    return path


def write_sparse_scene(path: Path, size: int, islands: int = 4, island: int = 1536, seed: int = 5) -> Path:
    """A mostly-nodata scene: `islands` squares of data on a diagonal, the rest never written (sparse file)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, island // 48 + 2, island // 48 + 2)).astype(np.float32)
    phase = rng.uniform(0, 6.28, size=(3, 2))
    local = np.arange(island, dtype=np.float32)
    with rasterio.open(path, "w", **_profile(size, 3, 0), SPARSE_OK=True) as dst:
        for k in range(islands):
            off = min(max(0, int((k + 0.5) * size / islands - island / 2) // 512 * 512), size - island)
            dst.write(_texture(rng, coarse, phase, local, local), window=Window(off, off, island, island))
    return path


def write_class_map(folder: Path, size: int, noise: float = 0.01, seed: int = 1) -> tuple[Path, Path]:
    """A 6-class map with blobs (like a real prediction) plus `noise` of isolated wrong pixels, and its confidence."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(CLASSES), size=(size // 24 + 2, size // 24 + 2)).astype(np.uint8)
    prof = {**_profile(size, 1, 255)}
    cls_path, conf_path = folder / "classes.tif", folder / "conf.tif"
    idx = np.arange(size)
    with rasterio.open(cls_path, "w", **prof) as dc, rasterio.open(conf_path, "w", **{**prof, "nodata": 0}) as df:
        for r0 in range(0, size, 512):
            rows = idx[r0 : r0 + 512]
            # Offset each row of coarse cells so edges are not all straight.
            cls = coarse[(rows // 24)[:, None], ((idx[None] + 7 * (rows[:, None] // 24 % 3)) // 24)]
            flip = rng.random(cls.shape) < noise
            cls = np.where(flip, rng.integers(0, len(CLASSES), size=cls.shape), cls).astype(np.uint8)
            dc.write(cls, 1, window=Window(0, r0, size, len(rows)))
            df.write(rng.integers(90, 256, size=cls.shape).astype(np.uint8), 1, window=Window(0, r0, size, len(rows)))
    return cls_path, conf_path


def make_checkpoint(path: Path, preset: str, tile: int, decoder: int) -> Path:
    """A randomly initialised checkpoint of a small preset (the benchmark measures plumbing, not accuracy)."""
    import torch

    from s5cli.models.checkpoint import save_checkpoint
    from s5cli.models.network import build_model
    from s5cli.models.spec import HeadInput, HeadSpec, InputSpec, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        preset=preset,
        heads=[HeadSpec(name="bench", classes=CLASSES, input=HeadInput(size=tile, overlap=0.25))],
        img_size=tile,
        decoder_channels=decoder,
        input=InputSpec(gsd=0.5),
    )
    save_checkpoint(path, build_model(spec).eval(), overwrite=True)
    return path


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    Linux keeps ru_maxrss across fork + exec, so a child of a parent that already holds torch and a model
    would report the parent's peak; VmHWM in /proc/self/status is the peak of this program alone.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


class Load:
    """CPU cores kept busy by other processes while a block runs: all busy time (/proc/stat) minus ours."""

    def __enter__(self) -> Load:
        self._t, self._busy, self._own = time.perf_counter(), _busy_seconds(), _own_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.perf_counter() - self._t, 1e-9)
        self.own = (_own_seconds() - self._own) / wall
        self.others = max(0.0, (_busy_seconds() - self._busy) / wall - self.own)


def _busy_seconds() -> float:
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def run_predict_once(scene: Path, ckpt: Path, out: Path, polygons: bool, args: argparse.Namespace) -> dict:
    from s5cli.inference.config import PredictConfig
    from s5cli.inference.predict import run_predict

    for p in out.parent.glob(f"{out.stem}*"):
        p.unlink()
    cfg = PredictConfig(
        scenes=[str(scene)],
        checkpoint=str(ckpt),
        raster=str(out.with_suffix(".tif")),
        output=str(out.with_suffix(".gpkg")) if polygons else None,
        batch_size=args.batch_size,
        overlap=args.overlap,
        device="cpu",
        overwrite=True,
    )
    return run_predict(cfg)["scenes"][0]


def forward_alone(ckpt: Path, tiles: int, args: argparse.Namespace, engine_calls: bool) -> float:
    """Seconds of the model forward (softmax included, as in predict) on `tiles` tiles in the same batches.

    engine_calls: run the calls as the engine does (s5cli.inference.engine.ModelCalls), else one at a
    time on all of torch's threads.
    """
    import torch

    from s5cli.inference.engine import ModelCalls
    from s5cli.inference.predictor import load_predictor

    predictor = load_predictor(ckpt, None, "cpu")
    tile = predictor.head.input.size
    batch = torch.from_numpy(np.random.default_rng(0).random((args.batch_size, 3, tile, tile), dtype=np.float32))
    # No warm-up call: predict's own first batch pays the same one-time cost (kernel selection, allocations).
    sizes = [args.batch_size] * (tiles // args.batch_size) + (
        [tiles % args.batch_size] if tiles % args.batch_size else []
    )
    t0 = time.perf_counter()
    if not engine_calls:
        for n in sizes:
            predictor.probabilities(batch[:n])
        return time.perf_counter() - t0
    calls = ModelCalls(lambda n: predictor.probabilities(batch[:n]), torch.device("cpu"))
    inflight: deque = deque()
    try:
        for n in sizes:
            inflight.append(calls.submit(n))
            while len(inflight) > calls.depth:
                inflight.popleft().result()
        while inflight:
            inflight.popleft().result()
    finally:
        calls.close()
    return time.perf_counter() - t0


STAGES = ("forward_s", "read_s", "wait_s", "blend_s", "write_s", "rasters_s", "polygons_s", "polygon_thread_s")


def part_a(work: Path, ckpt: Path, args: argparse.Namespace) -> None:
    warm = write_scene(work / "warm.tif", 600, seed=9)
    run_predict_once(warm, ckpt, work / "warm_out", True, args)  # first calls allocate kernels: not measured
    scene = write_scene(work / f"scene_{args.size}.tif", args.size)
    runs: dict[str, list[dict]] = {"forward, one call": [], "forward, engine's calls": [], "raster": [], "poly": []}
    tile_px = args.tile
    overlap_px = 2 * round(args.overlap * tile_px / 2)  # as predict rounds it (scene.tile_and_overlap)
    tiles = len(window_grid(args.size, args.size, tile_px, min(overlap_px, tile_px - 16)))
    for _ in range(args.repeats):  # interleaved, so that load changes on a shared machine hit all variants
        for name in runs:
            with Load() as load:
                if name == "raster" or name == "poly":
                    r = run_predict_once(scene, ckpt, work / f"a_{name}", name == "poly", args)
                    assert r["tiles"] == tiles, (r["tiles"], tiles)
                else:
                    r = {"seconds": forward_alone(ckpt, tiles, args, engine_calls="engine" in name)}
            r.update(others=load.others, own=load.own, loadavg=os.getloadavg()[0])
            runs[name].append(r)
    print(f"\n(a) end to end, {args.size}^2 px, {tiles} tiles of {args.tile} px, batch {args.batch_size}")
    for name in ("forward, one call", "forward, engine's calls"):
        secs = [r["seconds"] for r in runs[name]]
        print(f"    model {name:24s}: {np.median(secs):7.1f} s (runs {', '.join(f'{s:.1f}' for s in secs)})")
    for name, label, target in (("raster", "raster only", 1.05), ("poly", "raster + polygons", 1.15)):
        rs = runs[name]
        secs = [r["seconds"] for r in rs]
        ratio_one = np.median([r["seconds"] / f["seconds"] for r, f in zip(rs, runs["forward, one call"])])
        ratio_eng = np.median([r["seconds"] / f["seconds"] for r, f in zip(rs, runs["forward, engine's calls"])])
        print(
            f"    {label:18s}: {np.median(secs):7.1f} s = {ratio_one:.3f} x forward one call,"
            f" {ratio_eng:.3f} x forward as the engine runs it (target <= {target}); {rs[0]['polygons']} polygons"
            f" (runs {', '.join(f'{s:.1f}' for s in secs)})"
        )
        split = ", ".join(f"{k[:-2]} {np.median([r.get(k) or 0.0 for r in rs]):.2f}" for k in STAGES)
        print(f"        stage seconds (median): {split}")
    print("    machine load per run (cores busy with other processes / ours; 1-min load average):")
    for name, rs in runs.items():
        cells = ", ".join(f"{r['others']:.2f}/{r['own']:.2f} ({r['loadavg']:.1f})" for r in rs)
        print(f"        {name:24s}: {cells}")


def _child(mode: str, args: argparse.Namespace, **extra: str) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--workdir", str(args.workdir_path)]
    cmd += ["--batch-size", str(args.batch_size), "--overlap", str(args.overlap)]
    for key, value in extra.items():
        cmd += [f"--{key}", value]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "S5_NO_PROGRESS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_b(work: Path, ckpt: Path, args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.rss_sizes.split(",")]
    results = []
    for size in sizes:
        scene = write_scene(work / f"rss_{size}.tif", size, seed=size)
        results.append(_child("rss", args, scene=str(scene), ckpt=str(ckpt)))
        scene.unlink()
    print("\n(b) peak RSS of a whole predict run (raster + polygons), one subprocess per size")
    for size, r in zip(sizes, results):
        line = f"    {size:6d} x {size:<6d}: {r['rss_mb']:8.0f} MB   ({r['seconds']:.1f} s, {r['tiles']} tiles"
        print(f"{line}, {r['polygons']} polygons, others' load {r['others']:.2f} cores)")
    print(f"    ratio {sizes[-1]}^2 / {sizes[0]}^2: {results[-1]['rss_mb'] / results[0]['rss_mb']:.2f} (target <= 1.3)")
    if args.sparse_size:
        scene = write_sparse_scene(work / "sparse.tif", args.sparse_size)
        r = _child("rss", args, scene=str(scene), ckpt=str(ckpt))
        scene.unlink()
        n = args.sparse_size
        print(
            f"    sparse {n} x {n} (4 data squares, the rest nodata): {r['rss_mb']:.0f} MB, {r['seconds']:.1f} s,"
            f" {r['tiles']} tiles predicted, {r['skipped']} all-nodata tiles skipped, {r['polygons']} polygons"
        )


def part_c(work: Path, args: argparse.Namespace) -> None:
    cls_path, conf_path = write_class_map(work, args.vector_size)
    rows = {mode: _child(mode, args, scene=str(cls_path), conf=str(conf_path)) for mode in ("naive", "ours", "sieve")}
    n = args.vector_size
    print(f"\n(c) polygonising a {n} x {n} 6-class map with 1% pixel noise, to a GeoPackage (one subprocess each)")
    for mode, label in (
        ("naive", "naive whole-array shapes + GeoDataFrame"),
        ("ours", "ours, block-wise, sieve off"),
        ("sieve", "ours, block-wise, sieve 4 px (default)"),
    ):
        r = rows[mode]
        rate = r["polygons"] / r["seconds"]
        print(
            f"    {label:42s}: {r['polygons']:9d} polygons in {r['seconds']:7.1f} s = {rate:9.0f} polygons/s,"
            f" {n * n / 1e6 / r['seconds']:5.1f} MP/s, peak RSS {r['rss_mb']:6.0f} MB"
        )


def child(args: argparse.Namespace) -> None:
    """Subprocess modes: one measurement per process so that the peak RSS belongs to it alone."""
    work = Path(args.workdir)
    t0 = time.perf_counter()
    with Load() as load:
        if args.child == "rss":
            out = work / f"rss_out_{Path(args.scene).stem}"
            r = run_predict_once(Path(args.scene), Path(args.ckpt), out, True, args)
            result = {"tiles": r["tiles"], "skipped": r["skipped_tiles"], "polygons": r["polygons"]}
        elif args.child == "naive":
            import geopandas as gpd
            from rasterio import features

            with rasterio.open(args.scene) as src:
                arr, transform, crs = src.read(1), src.transform, src.crs
            feats = [
                {"type": "Feature", "geometry": g, "properties": {"class_id": int(v)}}
                for g, v in features.shapes(arr, mask=arr != 255, transform=transform)
            ]
            frame = gpd.GeoDataFrame.from_features(feats, crs=crs)
            frame.to_file(work / "naive.gpkg", layer="naive", driver="GPKG", engine="pyogrio")
            result = {"polygons": len(frame)}
        else:
            from s5cli.geo.polygonize import sieve_raster
            from s5cli.geo.raster import describe_raster
            from s5cli.inference.config import PredictConfig
            from s5cli.inference.scene import POLYGON_BLOCK, write_polygons

            gpkg = work / f"{args.child}.gpkg"
            gpkg.unlink(missing_ok=True)
            cfg = PredictConfig(output=str(gpkg), sieve=4 if args.child == "sieve" else 0)
            info = describe_raster(args.scene)
            classes = Path(args.scene)
            if cfg.sieve > 1:  # as predict does off the scene grid: sieve the raster, polygonise what it holds
                classes = sieve_raster(classes, work / "sieved.tif", cfg.sieve, POLYGON_BLOCK)
            n = write_polygons(classes, Path(args.conf), info, CLASSES, gpkg, "ours", cfg)
            result = {"polygons": n}
    result.update(seconds=time.perf_counter() - t0, rss_mb=peak_rss_mb(), others=load.others)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8000, help="(a) scene side in px")
    parser.add_argument("--rss-sizes", default="4000,16000", help="(b) two scene sides, comma-separated")
    parser.add_argument("--sparse-size", type=int, default=32000, help="(b) side of the sparse scene; 0: skip")
    parser.add_argument("--vector-size", type=int, default=8000, help="(c) class map side in px")
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--preset", default="vit-tiny")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--decoder", type=int, default=64, help="decoder channels of the generated checkpoint")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=2, help="(a) measurements per variant (median)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scene", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--conf", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("S5_NO_PROGRESS", "1")
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        child(args)  # the polygon children never import torch: their RSS is the polygon path's own
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="s5-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        args.workdir_path = work
        parts = set(args.parts.split(","))
        setup = f"preset {args.preset}, tile {args.tile}, decoder {args.decoder}, overlap {args.overlap}"
        print(f"{setup}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
        ckpt = make_checkpoint(work / "bench.pt", args.preset, args.tile, args.decoder) if parts & {"a", "b"} else None
        if "a" in parts:
            part_a(work, ckpt, args)
        if "b" in parts:
            part_b(work, ckpt, args)
        if "c" in parts:
            part_c(work, args)


if __name__ == "__main__":
    main()
