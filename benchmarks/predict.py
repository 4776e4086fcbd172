"""Benchmark `s5 predict` on generated scenes with a small preset (CPU).

Prints:
  (a) end-to-end seconds of one N x N scene (raster only, then raster + polygons) against the seconds
      of the model forward alone on the same tiles (targets: <= 1.05 and <= 1.15);
  (b) peak RSS of a whole predict run (raster + polygons) for two scene sizes, each in its own
      subprocess (ru_maxrss); the ratio should stay <= 1.3 for 4,000^2 vs 16,000^2;
  (c) polygonising throughput (polygons/s) and peak RSS of our block-wise path against a naive
      whole-array rasterio.features.shapes + GeoDataFrame + GPKG baseline.

    python benchmarks/predict.py                       # the sizes of issue 5 (long on 2 cores)
    python benchmarks/predict.py --size 2000 --rss-sizes 1000,4000 --vector-size 4000   # minutes
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
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

CLASSES = ["ground", "building", "tree", "water", "road", "car"]


def write_scene(path: Path, size: int, seed: int = 0, strip: int = 512) -> Path:
    """An RGB uint8 UTM scene with structure at several scales, written strip by strip (never whole)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, size // 48 + 2, size // 48 + 2)).astype(np.float32)
    phase = rng.uniform(0, 6.28, size=(3, 2))
    profile = dict(
        driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32633", nodata=0,
        transform=from_origin(500000, 5800000, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
        compress="deflate",
    )  # fmt: skip
    xx = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            rows = np.arange(r0, min(size, r0 + strip), dtype=np.float32)
            out = np.empty((3, len(rows), size), np.uint8)
            for b in range(3):
                blobs = coarse[b][(rows // 48).astype(int)][:, (xx // 48).astype(int)]
                waves = np.sin(xx[None] / 23 + phase[b, 0]) * np.cos(rows[:, None] / 31 + phase[b, 1])
                out[b] = np.clip(1 + 200 * blobs + 40 * waves + rng.normal(0, 6, blobs.shape), 1, 255)
            dst.write(out, window=Window(0, r0, size, len(rows)))
    return path


def write_class_map(folder: Path, size: int, noise: float = 0.01, seed: int = 1) -> tuple[Path, Path]:
    """A 6-class map with blobs (like a real prediction) plus `noise` of isolated wrong pixels, and its confidence."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, len(CLASSES), size=(size // 24 + 2, size // 24 + 2)).astype(np.uint8)
    prof = dict(
        driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs="EPSG:32633", nodata=255,
        transform=from_origin(500000, 5800000, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
        compress="deflate",
    )  # fmt: skip
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
    from s5cli.models.spec import HeadSpec, InputSpec, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        preset=preset,
        heads=[HeadSpec(name="bench", classes=CLASSES)],
        img_size=tile,
        decoder_channels=decoder,
        input=InputSpec(tile_size=tile, gsd=0.5),
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


def forward_alone(ckpt: Path, tiles: int, args: argparse.Namespace) -> float:
    """Seconds of the model forward (softmax included, as in predict) on `tiles` tiles in the same batches."""
    from s5cli.inference.predictor import load_predictor

    predictor = load_predictor(ckpt, None, "cpu")
    tile = predictor.tile_size
    rng = np.random.default_rng(0)
    batch = rng.random((args.batch_size, 3, tile, tile), dtype=np.float32)
    # No warm-up call: predict's own first batch pays the same one-time cost (kernel selection, allocations).
    sizes = [args.batch_size] * (tiles // args.batch_size) + (
        [tiles % args.batch_size] if tiles % args.batch_size else []
    )
    t0 = time.perf_counter()
    for n in sizes:
        predictor(batch[:n])
    return time.perf_counter() - t0


def part_a(work: Path, ckpt: Path, args: argparse.Namespace) -> None:
    warm = write_scene(work / "warm.tif", 600, seed=9)
    run_predict_once(warm, ckpt, work / "warm_out", True, args)  # first calls allocate kernels: not measured
    scene = write_scene(work / f"scene_{args.size}.tif", args.size)
    fwd, raster, polys = [], [], []
    for _ in range(args.repeats):  # interleaved, so that load changes on a shared machine hit all three
        raster.append(run_predict_once(scene, ckpt, work / "a_raster", False, args))
        fwd.append(forward_alone(ckpt, raster[-1]["tiles"], args))
        polys.append(run_predict_once(scene, ckpt, work / "a_polys", True, args))
    f = float(np.median(fwd))
    r0 = raster[0]
    print(f"\n(a) end to end, {args.size}^2 px, {r0['tiles']} tiles of {r0['tile_size']} px, batch {args.batch_size}")
    print(f"    model forward alone on the same tiles: {f:8.1f} s  (median of {', '.join(f'{x:.1f}' for x in fwd)})")
    for name, runs, target in (("raster only", raster, 1.05), ("raster + polygons", polys, 1.15)):
        secs = float(np.median([r["seconds"] for r in runs]))
        inside = float(np.median([r["forward_s"] for r in runs]))
        stages = ", ".join(
            f"{k[:-2]} {np.median([r[k] for r in runs]):.1f} s" for k in ("engine_s", "rasters_s", "polygons_s")
        )
        print(
            f"    {name:18s} end to end: {secs:8.1f} s = {secs / f:.3f} x forward (target <= {target});"
            f" forward inside the run {inside:.1f} s; {stages}; {runs[0]['polygons']} polygons"
        )


def part_b(work: Path, ckpt: Path, args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.rss_sizes.split(",")]
    results = []
    for size in sizes:
        scene = write_scene(work / f"rss_{size}.tif", size, seed=size)
        cmd = [sys.executable, __file__, "--child", "rss", "--scene", str(scene), "--ckpt", str(ckpt)]
        cmd += ["--batch-size", str(args.batch_size), "--overlap", str(args.overlap), "--workdir", str(work)]
        cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "S5_NO_PROGRESS": "1"})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        scene.unlink()
    print("\n(b) peak RSS of a whole predict run (raster + polygons), one subprocess per size")
    for size, r in zip(sizes, results):
        print(f"    {size:6d} x {size:<6d}: {r['rss_mb']:8.0f} MB   ({r['seconds']:.1f} s, {r['tiles']} tiles)")
    print(f"    ratio {sizes[-1]}^2 / {sizes[0]}^2: {results[-1]['rss_mb'] / results[0]['rss_mb']:.2f} (target <= 1.3)")


def part_c(work: Path, args: argparse.Namespace) -> None:
    cls_path, conf_path = write_class_map(work, args.vector_size)
    rows = {}
    for mode in ("naive", "ours", "ours-sieve"):
        cmd = [sys.executable, __file__, "--child", mode, "--scene", str(cls_path), "--conf", str(conf_path)]
        cmd += ["--workdir", str(work)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "S5_NO_PROGRESS": "1"})
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    n = args.vector_size
    print(f"\n(c) polygonising a {n} x {n} 6-class map with 1% pixel noise, to a GeoPackage (one subprocess each)")
    for mode, label in (
        ("naive", "naive whole-array shapes + GeoDataFrame"),
        ("ours", "ours, block-wise, sieve off"),
        ("ours-sieve", "ours, block-wise, sieve 4 px (default)"),
    ):
        r = rows[mode]
        rate = r["polygons"] / r["seconds"]
        print(
            f"    {label:42s}: {r['polygons']:9d} polygons in {r['seconds']:7.1f} s = {rate:9.0f} polygons/s,"
            f" peak RSS {r['rss_mb']:6.0f} MB"
        )


def child(args: argparse.Namespace) -> None:
    """Subprocess modes: one measurement per process so that ru_maxrss belongs to it alone."""
    work = Path(args.workdir)
    t0 = time.perf_counter()
    if args.child == "rss":
        out = work / f"rss_out_{Path(args.scene).stem}"
        r = run_predict_once(Path(args.scene), Path(args.ckpt), out, True, args)
        result = {"tiles": r["tiles"], "polygons": r["polygons"]}
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
        from s5cli.geo.raster import describe_raster
        from s5cli.inference.config import PredictConfig
        from s5cli.inference.scene import write_polygons

        gpkg = work / f"{args.child}.gpkg"
        gpkg.unlink(missing_ok=True)
        cfg = PredictConfig(output=str(gpkg), sieve=4 if args.child == "ours-sieve" else 0)
        n = write_polygons(Path(args.scene), Path(args.conf), describe_raster(args.scene), CLASSES, gpkg, "ours", cfg)
        result = {"polygons": n}
    result.update(seconds=time.perf_counter() - t0, rss_mb=peak_rss_mb())
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8000, help="(a) scene side in px")
    parser.add_argument("--rss-sizes", default="4000,16000", help="(b) two scene sides, comma-separated")
    parser.add_argument("--vector-size", type=int, default=8000, help="(c) class map side in px")
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--preset", default="vit-tiny")
    parser.add_argument("--tile", type=int, default=256)
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
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="s5-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        parts = set(args.parts.split(","))
        import torch

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
