"""Every benchmark script runs end to end at toy sizes, so that none drifts from the package it measures.

The figures themselves are printed by the scripts (docs/performance.md); nothing here is timed.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TOY_RUNS = {
    "predict.py": ["--size", "600", "--rss-sizes", "300,600", "--sparse-size", "0", "--vector-size", "600",
                   "--repeats", "1"],
    "data_wait.py": ["--iterations", "2", "--workers", "0"],
    "s4p_gain.py": ["--seeds", "0", "--iterations", "2", "--labeled", "2", "--unlabeled", "8", "--val", "2"],
    "curate.py": ["--sizes", "100"],
    "detection_learning.py": ["--backbone", "vit-nano", "--steps", "2", "--train-images", "4", "--test-images", "2"],
    "moe_overhead.py": ["--preset", "vit-nano", "--size", "64", "--reps", "1", "--warmup", "0", "--limit", "100"],
    "datasets_prepare.py": ["--images", "2", "--size", "256", "--samples", "4"],
}  # fmt: skip


def test_every_benchmark_has_a_toy_run() -> None:
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"gpu_check.py"}  # its --dry-run has a test
    assert scripts == set(TOY_RUNS)


@pytest.mark.parametrize("script", sorted(TOY_RUNS))
def test_benchmark_runs_at_toy_sizes(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S5_NO_PROGRESS": "1", "TMPDIR": str(tmp_path)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *TOY_RUNS[script]]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip(), "a benchmark prints its figures"
