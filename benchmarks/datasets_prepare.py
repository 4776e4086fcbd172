"""Does `s5 prepare` pay off? Random DOTA patches read from the raw layout vs from prepared patch files.

The raw layout decodes a whole PNG for every patch (PNG has no windowed reads); the prepared one reads
one 1024 px file. Synthetic textured images stand in for DOTA (no download).

    .venv/bin/python benchmarks/datasets_prepare.py --images 4 --size 3000 --samples 24
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from s5cli.datasets.prepare import prepare_dataset
from s5cli.datasets.registry import get_dataset


def make_dota(root: Path, images: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for split in ("train",):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labelTxt").mkdir(parents=True)
        for k in range(images):
            yy, xx = np.mgrid[0:size, 0:size]
            base = (np.sin(xx / 37.0 + k) + np.cos(yy / 23.0)) * 60 + 128
            pixels = np.clip(base[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / split / "images" / f"P{k:04d}.png")
            lines = ["imagesource:GoogleEarth", "gsd:0.15"]
            for _ in range(200):
                x, y = rng.uniform(0, size - 40, 2)
                corners = (x, y, x + 30, y, x + 30, y + 15, x, y + 15)
                lines.append(" ".join(f"{v:.1f}" for v in corners) + " small-vehicle 0")
            (root / split / "labelTxt" / f"P{k:04d}.txt").write_text("\n".join(lines) + "\n")


def time_reads(dataset, order: list[int]) -> float:
    start = time.perf_counter()
    for i in order:
        dataset[i]
    return (time.perf_counter() - start) / len(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw_root, out = Path(tmp) / "dota-v2.0", Path(tmp) / "patches"
        make_dota(raw_root, args.images, args.size)
        raw = get_dataset("dota-v2.0", raw_root, "train")
        order = torch.randperm(len(raw), generator=torch.Generator().manual_seed(0))[: args.samples].tolist()
        per_raw = time_reads(raw, order)
        start = time.perf_counter()
        counts = prepare_dataset("dota-v2.0", raw_root, out, splits=["train"])
        prep = time.perf_counter() - start
        cut = get_dataset("dota-v2.0", out, "train")
        per_cut = time_reads(cut, order)
        n = counts["train"]
        print(f"{args.images} images of {args.size} px -> {n} patches of 1024 (gap 200)")
        print(f"raw layout, random order : {per_raw * 1000:8.1f} ms per patch")
        print(f"prepared patches         : {per_cut * 1000:8.1f} ms per patch  ({per_raw / per_cut:.1f}x faster)")
        print(f"s5 prepare (once)        : {prep:8.1f} s = {prep / n * 1000:.1f} ms per patch")
        print(f"break-even after {prep / max(per_raw - per_cut, 1e-9) / n:.2f} epochs")


if __name__ == "__main__":
    main()
