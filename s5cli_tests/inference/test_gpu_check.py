"""benchmarks/gpu_check.py runs its whole code path on the CPU at tiny sizes, so a GPU's first run is not its first."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S5_NO_PROGRESS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--workdir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for expected in ("1. predict", "pipeline alone", "vit-nano raster", "vit-nano + polygons", "2. training steps"):
        assert expected in text, text
    assert "S4P     checkpointing on" in text and "MoE-MDF checkpointing off" in text, text
    assert "3. DDP, one process: backend gloo" in text and "all_reduce_sum -> 1" in text, text
