"""Share of training time spent waiting for data: MoE-MDF fine-tuning on three datasets mixed, by worker count.

Runs the real `run_finetune` on the committed fake Potsdam, LoveDA and OpenEarthMap sets (three segmentation
streams, one DataLoader each) for a few dozen iterations with DataLoader workers 0, `auto`
(training.data.default_workers: sized to this machine's cores and the number of streams) and 4 (the old
fixed default, which warns on 2 cores), and prints images/s and data_wait (target <= 10 %). S4P's two
streams are measured by benchmarks/s4p_gain.py.

    python benchmarks/data_wait.py
    python benchmarks/data_wait.py --preset vit-tiny --crop 64 --iterations 60 --workers 0 auto
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from s5cli.config import load_config
from s5cli.finetune.config import FinetuneConfig
from s5cli.finetune.run import run_finetune
from s5cli.training.data import default_workers
from s5cli.training.logs import read_metrics

REPO = Path(__file__).resolve().parent.parent
DATASETS = ["potsdam", "loveda", "openearthmap"]


def run(workers: int, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """One short fine-tuning run; returns mean images/s and data_wait over the logged windows after the first."""
    overrides = {
        "datasets": DATASETS,
        "data_root": str(REPO / "s5cli_tests" / "data"),
        "output": str(out),
        "workers": workers,
        "iterations": args.iterations,
        "crop_size": args.crop,
        "batch_size_per_dataset": args.batch_size,
        "log_every": max(args.iterations // 6, 1),
        "eval_every": 0,
        "model": {"preset": args.preset, "decoder_channels": 64, "expert_width": args.expert_width},
    }
    cfg = load_config(FinetuneConfig, REPO / "configs" / "finetune" / "tiny.yaml", overrides)
    start = time.perf_counter()
    run_finetune(cfg)
    rows = read_metrics(out / "metrics.csv")
    later = rows[1:] or rows
    return {
        "images_per_s": float(np.mean([r["images_per_s"] for r in later])),
        "data_wait": float(np.mean([r["data_wait"] for r in later])),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vit-tiny")
    parser.add_argument("--expert-width", type=int, default=48)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--workers", nargs="+", default=["0", "auto", "4"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"MoE-MDF on {', '.join(DATASETS)} (fake sets), {args.preset}, crop {args.crop}, batch {args.batch_size}")
    print(f"{'workers':<16}{'images/s':>10}{'data wait':>11}{'seconds':>9}")
    for choice in args.workers:
        workers = default_workers(None if choice == "auto" else int(choice), streams=len(DATASETS))
        with tempfile.TemporaryDirectory() as tmp:
            r = run(workers, args, Path(tmp) / "run")
        label = f"{choice} ({workers}/stream)" if choice == "auto" else choice
        print(f"{label:<16}{r['images_per_s']:>10.1f}{100 * r['data_wait']:>10.1f}%{r['seconds']:>9.0f}")


if __name__ == "__main__":
    main()
