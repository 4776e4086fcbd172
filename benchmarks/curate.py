"""Throughput and peak memory of `s5 curate` at two corpus sizes (default 2,000 and 20,000 chips).

Each size runs in a fresh subprocess that reads its own peak RSS (ru_maxrss) at the end, so the
figures do not mix; the claim checked is that memory does not grow with the number of chips
(peak RSS ratio of the largest to the smallest size at most 1.2). Scenes are generated first
(structured blobs + noise, 640 x 640 uint8 RGB in UTM, i.e. 100 chips of 64 px each), outside the
measured time.

    .venv/bin/python benchmarks/curate.py                      # 2,000 and 20,000 chips, tiling only
    .venv/bin/python benchmarks/curate.py --sizes 500,5000 --workers 2 --teacher
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers (scene generator, tiny checkpoint) live beside the package

SCENE = 640
CHIP = 64
PER_SCENE = (SCENE // CHIP) ** 2


def make_scenes(folder: Path, count: int) -> None:
    """Write `count` distinct scenes (skipping those already there)."""
    import rasterio
    from rasterio.transform import from_origin

    from s5cli_tests.scenes import UTM33, scene_array

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = folder / f"scene{i:05d}.tif"
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        base = scene_array(SCENE, SCENE, 3, "uint8", seed=i).astype(np.int16)
        data = np.clip(base + rng.integers(-40, 41, size=base.shape), 0, 255).astype(np.uint8)
        profile = {
            "driver": "GTiff",
            "width": SCENE,
            "height": SCENE,
            "count": 3,
            "dtype": "uint8",
            "crs": UTM33,
            "transform": from_origin(500_000.0 + 400.0 * (i % 50), 5_800_000.0 - 400.0 * (i // 50), 0.5, 0.5),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


def child(args: argparse.Namespace) -> None:
    """One measured run: curate the first n scenes, print JSON figures."""
    from s5cli.curation.config import CurateConfig
    from s5cli.curation.pipeline import run_curate

    scenes = sorted(Path(args.scenes).glob("*.tif"))[: args.n_scenes]
    inputs = [str(p) for p in scenes]
    cfg = CurateConfig(
        chip_size=CHIP, workers=args.workers, teacher=args.teacher_path, device="cpu", min_std=1.0, max_nodata=0.1
    )
    start = time.perf_counter()
    summary = run_curate(inputs, args.out, cfg)
    seconds = time.perf_counter() - start
    me, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own, kids = me.ru_maxrss / 1024, workers.ru_maxrss / 1024  # KiB on Linux -> MiB
    # CPU seconds: on a shared, loaded machine wall time mostly measures the neighbours.
    cpu = me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime
    print(
        json.dumps(
            {
                "chips": summary["chips"],
                "kept": summary["kept"],
                "seconds": seconds,
                "chips_per_s": summary["chips"] / seconds,
                "chips_per_cpu_s": summary["chips"] / cpu,
                "peak_rss_mib": own,
                "peak_rss_worker_mib": kids,
            }
        )
    )


def tiny_teacher(path: Path) -> Path:
    """A vit-nano checkpoint with random weights (exercises the batched teacher path)."""
    from s5cli_tests.curation.conftest import save_tiny_checkpoint

    return path if path.exists() else save_tiny_checkpoint(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000", help="chip counts (multiples of 100)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--teacher", action="store_true", help="also pseudo-label with a vit-nano teacher")
    parser.add_argument("--workdir", default=None, help="where scenes and corpora go (default: a temp folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scenes", help=argparse.SUPPRESS)
    parser.add_argument("--n-scenes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--teacher-path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="s5-curate-bench-"))
    make_scenes(work / "scenes", max(sizes) // PER_SCENE)
    teacher = str(tiny_teacher(work / "teacher.pt")) if args.teacher else None
    env = {**os.environ, "S5_NO_PROGRESS": "1"}
    results = []
    for n in sizes:
        out = work / f"corpus-{n}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        cmd = [sys.executable, __file__, "--child", "--scenes", str(work / "scenes"), "--n-scenes"]
        cmd += [str(n // PER_SCENE), "--out", str(out), "--workers", str(args.workers)]
        if teacher:
            cmd += ["--teacher-path", teacher]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"curate benchmark: {CHIP} px chips, workers={args.workers}, teacher={'vit-nano' if teacher else 'none'}")
    head = ("chips", "kept", "seconds", "chips/s", "chips/cpu-s", "peak RSS MiB", "worker RSS MiB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (8, 8, 8, 8, 12, 13, 15))))
    for r in results:
        print(
            f"{r['chips']:>8} {r['kept']:>8} {r['seconds']:>8.1f} {r['chips_per_s']:>8.1f} "
            f"{r['chips_per_cpu_s']:>12.1f} {r['peak_rss_mib']:>13.0f} {r['peak_rss_worker_mib']:>15.0f}"
        )
    ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    print(f"peak RSS ratio {results[-1]['chips']} / {results[0]['chips']} chips: {ratio:.3f} (claim: <= 1.2)")


if __name__ == "__main__":
    main()
