"""Does S4P's unlabeled loss help? FixMatch vs the same run without it, on a generated task with few labels.

The task: 64 px images of overlapping rectangles on a background. A class is a brightness relative
to the image's background (darker, brighter, or stripes of both); hue and saturation are random per
region and the background brightness random per image, nuisances that 8 labeled images cover
poorly and that S4P's strong views (colour jitter, grayscale, blur) vary while keeping the class.
Unlabeled images come from the same generator. Both runs use the real pipeline (`run_pretrain`: the
iSAID loader on an iSAID-layout copy, S4P views, `fixmatch_step`, the engine), the same seed, data
order, iterations and labeled batches; the supervised run sets the unlabeled loss weight to 0 (its
gradient is then loss_x / 2, which AdamW's scale invariance makes harmless).
Validation: mIoU over the 3 region classes (background left out, as S4P's iSAID validation) on
held-out generated images. Also printed: images/s and the share of step time spent waiting for data
(target <= 10 %), with DataLoader workers sized to the machine by default (training.data.default_workers).

    python benchmarks/s4p_gain.py                      # 8 labeled, 300 unlabeled, 600 iterations
    python benchmarks/s4p_gain.py --seeds 0 1 2          # three tasks, the spread between seeds
    python benchmarks/s4p_gain.py --iterations 100 --unlabeled 60   # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from s5cli.config import build_config
from s5cli.datasets.benchmarks import ISAID_PALETTE
from s5cli.pretrain.config import PretrainConfig
from s5cli.pretrain.run import run_pretrain
from s5cli.training.data import default_workers
from s5cli.training.logs import read_metrics

SIZE = 64
CLASSES = 4  # 0 background, 1 dark, 2 bright, 3 dark/bright stripes (iSAID indexes 0-3)
# A class is a brightness RELATIVE to the image's background: darker, brighter, or stripes of both.
# Hue and saturation are drawn at random for every region and the background's brightness for every
# image, so absolute colour and brightness are nuisances; S4P's strong views (colour jitter,
# grayscale, blur) change exactly those and keep the relative brightness.
RATIO = {1: 0.45, 2: 1.6}  # region brightness / background brightness
PERIOD = (8.0, 12.0)  # stripe period in pixels (survives the blur of the strong view)


def _hsv_to_rgb(h: float, s: float, v: np.ndarray) -> np.ndarray:
    """(..., 3) RGB of one hue and saturation at brightness values v (...)."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v[..., None] * (1 - s * np.clip(np.minimum(k, 4 - k), 0, 1))


def make_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W) class map."""
    label = np.zeros((SIZE, SIZE), np.int64)
    for _ in range(int(rng.integers(2, 5))):
        h, w = (int(v) for v in rng.integers(18, 40, size=2))
        y, x = int(rng.integers(0, SIZE - h)), int(rng.integers(0, SIZE - w))
        label[y : y + h, x : x + w] = int(rng.integers(1, CLASSES))
    base = rng.uniform(0.25, 0.6)  # the background's brightness, per image
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    image = np.zeros((SIZE, SIZE, 3), np.float32)
    for cls in range(CLASSES):
        region = label == cls
        if not region.any():
            continue
        if cls == 3:  # stripes of dark and bright, in a random direction
            angle, period = rng.uniform(0, np.pi), rng.uniform(*PERIOD)
            wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + rng.uniform(0, 6.3))
            value = base * np.where(wave > 0, RATIO[2], RATIO[1])
        else:
            value = np.full((SIZE, SIZE), base * RATIO.get(cls, 1.0), np.float32)
        value = value * rng.uniform(0.9, 1.1) * (1 + rng.normal(0, 0.05, value.shape))  # texture noise
        image[region] = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.7), value)[region]
    image += rng.normal(0, 0.02, image.shape)  # sensor noise
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), label


def make_task(root: Path, labeled: int, unlabeled: int, val: int, seed: int) -> tuple[Path, Path]:
    """Write an iSAID-layout labeled set (train/val) and an unlabeled folder; returns (data_root, folder)."""
    rng = np.random.default_rng(seed)
    palette = np.array(ISAID_PALETTE, np.uint8)
    for split, n in (("train", labeled), ("val", val)):
        folder = root / "isaid" / split / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, label = make_image(rng)
            Image.fromarray(image).save(folder / f"P{i:04d}.png")
            Image.fromarray(palette[label]).save(folder / f"P{i:04d}_instance_color_RGB.png")
    folder = root / "unlabeled"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(unlabeled):
        Image.fromarray(make_image(rng)[0]).save(folder / f"U{i:05d}.png")
    return root, folder


def train(data_root: Path, unlabeled: Path, out: Path, args: argparse.Namespace, weight: float) -> dict:
    """One pretrain run; returns the final metrics row."""
    cfg = build_config(
        PretrainConfig,
        {
            "output": str(out),
            "device": args.device,
            "seed": args.seed,
            "labeled": {"dataset": "isaid", "data_root": str(data_root), "options": {"crop_size": None}},
            "unlabeled": {"folder": str(unlabeled)},
            "crop_size": SIZE,
            "workers": args.workers,  # auto: sized per stream (labeled + unlabeled)
            "model": {
                "preset": args.preset,
                "drop_path": 0.0,
                "decoder_channels": args.decoder_channels,
                "grad_checkpointing": False,
            },
            "iterations": args.iterations,
            "global_batch_size": args.batch_size,
            "optim": {"lr": args.lr, "weight_decay": 0.01},
            "amp": "off",
            "fixmatch": {"unlabeled_weight": weight, "threshold": args.threshold},
            "log_every": max(args.iterations // 10, 1),
            "eval_every": 0,
            "checkpoint_every": 0,
        },
    )
    run_pretrain(cfg)
    rows = read_metrics(out / "metrics.csv")
    final: dict = {}
    for row in rows:  # training rows and the validation row: the last value of each column
        final.update({k: v for k, v in row.items() if v is not None and v == v})
    final["val_miou"] = next(v for k, v in final.items() if k.endswith("_mIoU"))  # e.g. isaid_mIoU
    # throughput over the run, skipping the first log window (start-up)
    later = rows[1:] or rows
    final["images_per_s"] = float(np.mean([r["images_per_s"] for r in later]))
    final["data_wait"] = float(np.mean([r["data_wait"] for r in later]))
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled", type=int, default=8)
    parser.add_argument("--unlabeled", type=int, default=300)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--preset", default="vit-tiny")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument(
        "--workers", type=lambda v: v if v == "auto" else int(v), default="auto", help="per stream; 'auto' (default)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one task + pair of runs per seed")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    # Tiny tensors: extra intra-op threads mostly add contention (3x slower on the shared 2-core machines).
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        args.seed = seed  # the task, the data order and the initial weights all follow the seed
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            work = Path(tmp)
            data_root, unlabeled = make_task(work / "data", args.labeled, args.unlabeled, args.val, seed)
            for name, weight in (("supervised", 0.0), ("fixmatch", 1.0)):
                start = time.perf_counter()
                result = train(data_root, unlabeled, work / name, args, weight)
                rows.append({"seed": seed, "run": name, "seconds": time.perf_counter() - start, **result})
    workers = default_workers(None if args.workers == "auto" else args.workers, 2)
    print(
        f"\n{args.labeled} labeled + {args.unlabeled} unlabeled images, {args.iterations} iterations of "
        f"{args.batch_size} + {args.batch_size}, {args.preset}, {workers} workers per stream"
    )
    print(f"{'seed':<6}{'run':<12}{'val mIoU':>10}{'mask ratio':>12}{'images/s':>10}{'data wait':>11}{'seconds':>9}")
    for r in rows:
        print(
            f"{r['seed']:<6}{r['run']:<12}{100 * r['val_miou']:>10.1f}{r['mask_ratio']:>12.2f}"
            f"{r['images_per_s']:>10.1f}{100 * r['data_wait']:>10.1f}%{r['seconds']:>9.0f}"
        )
    gains = [100 * (f["val_miou"] - s["val_miou"]) for s, f in zip(rows[::2], rows[1::2])]
    mean = {
        run: 100 * float(np.mean([r["val_miou"] for r in rows if r["run"] == run]))
        for run in ("supervised", "fixmatch")
    }
    print(
        f"mean val mIoU: supervised {mean['supervised']:.1f}, fixmatch {mean['fixmatch']:.1f}; "
        f"FixMatch gain per seed: {', '.join(f'{g:+.1f}' for g in gains)} mIoU points"
    )


if __name__ == "__main__":
    main()
