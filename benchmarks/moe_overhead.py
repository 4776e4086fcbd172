"""Forward time of a MoE-MDF model on one dataset vs the dense single-dataset model of the same size.

The MoE model is S5's four-dataset segmentation model (vaihingen, potsdam, openearthmap, loveda: one
expert and one UperNet head each); the dense model is `models.moe.export_dense` of it for potsdam, so
both compute the same function with the same head. Runs alternate (MoE, dense, MoE, ...) after a warm-up,
and the claim checked is the median over adjacent (MoE, dense) pairs of t_MoE / t_dense <= 1.05 (exit
status 1 otherwise).

    .venv/bin/python benchmarks/moe_overhead.py                               # vit-b, 256 px, batch 1, fp32
    .venv/bin/python benchmarks/moe_overhead.py --preset vit-b --size 512 --batch 2 --amp bf16 --reps 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch


def build(preset: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(MoE four-dataset model, dense potsdam export), eval mode."""
    from s5cli.models.catalog import paper_specs
    from s5cli.models.moe import export_dense
    from s5cli.models.network import build_model

    torch.manual_seed(0)
    moe = build_model(paper_specs(preset)[1]).eval()
    dense = export_dense(moe, "potsdam").eval()
    return moe, dense


def time_forward(model: torch.nn.Module, x: torch.Tensor, autocast: object) -> float:
    """Seconds of one forward (synchronised on CUDA)."""
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode(), autocast:  # type: ignore[attr-defined]
        model(x, "potsdam")
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    """Run the comparison and print the figures; exit 1 when the ratio exceeds the limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vit-b")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--limit", type=float, default=1.05)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    moe, dense = (m.to(device) for m in build(args.preset))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():  # the two models compute the same function
        diff = float((moe(x, "potsdam") - dense(x, "potsdam")).abs().max())

    def ctx() -> object:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()

    for _ in range(args.warmup):
        time_forward(moe, x, ctx())
        time_forward(dense, x, ctx())
    times: dict[str, list[float]] = {"moe": [], "dense": []}
    for _ in range(args.reps):
        times["moe"].append(time_forward(moe, x, ctx()))
        times["dense"].append(time_forward(dense, x, ctx()))
    med = {k: statistics.median(v) for k, v in times.items()}
    # Each MoE run is paired with the dense run right after it: the median of the pair ratios is robust to
    # load drifting on a shared machine; the ratio of the medians is reported beside it.
    ratio = statistics.median(m / d for m, d in zip(times["moe"], times["dense"]))
    result = {
        "preset": args.preset,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "input": [args.batch, 3, args.size, args.size],
        "amp": args.amp,
        "params_moe_M": round(sum(p.numel() for p in moe.parameters()) / 1e6, 1),
        "params_dense_M": round(sum(p.numel() for p in dense.parameters()) / 1e6, 1),
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "ratio": round(ratio, 4),  # median over (MoE, dense) pairs
        "ratio_of_medians": round(med["moe"] / med["dense"], 4),
        "limit": args.limit,
        "max_abs_output_diff": diff,
        "pass": ratio <= args.limit,
    }
    print(json.dumps(result, indent=2))
    return 0 if ratio <= args.limit else 1


if __name__ == "__main__":
    raise SystemExit(main())
