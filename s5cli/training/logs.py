"""Training logs: metrics.csv (rewritten atomically, union of columns), TensorBoard when installed, curves.png.

metrics.csv has one row per logged iteration, first column `iteration`; a training row and a
validation row at the same iteration are merged into one row. Rows are kept in memory (a 120k
iteration run logged every 200 is 600 rows) so that a resume can drop the rows after the
resumed iteration and the file ends identical to an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from s5cli.console import warn
from s5cli.geo.files import atomic_output


def _parse(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.csv (numbers as float, empty cells dropped)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: _parse(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


class MetricsLog:
    """Rows of metrics keyed by iteration, written to CSV (and TensorBoard) on `flush`."""

    def __init__(self, path: Path | None, tensorboard_dir: Path | None = None, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled and path is not None
        self.rows: dict[int, dict[str, Any]] = {}
        self._columns: list[str] = ["iteration"]
        # Opened on the first row: a run writes nothing before its first step (training/run_dir.py).
        self._tb_dir = tensorboard_dir if self.enabled else None
        self._tb: Any = None

    def resume(self, iteration: int) -> None:
        """Load the rows already on disk, keeping those at or before `iteration`."""
        for row in read_metrics(self.path) if self.path is not None else []:
            it = int(row["iteration"])
            if it <= iteration:
                self._add_columns(row)
                self.rows[it] = {k: v for k, v in row.items() if k != "iteration"}

    def _add_columns(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self._columns:
                self._columns.append(key)

    def log(self, iteration: int, values: dict[str, float], prefix: str = "") -> None:
        """Record values at an iteration (merged with any row already there)."""
        named = {f"{prefix}{k}": float(v) for k, v in values.items()}
        self._add_columns(named)
        self.rows.setdefault(iteration, {}).update(named)
        if self._tb is None and self._tb_dir is not None:
            self._tb, self._tb_dir = _tensorboard(self._tb_dir), None
        if self._tb is not None:
            for key, value in named.items():
                if math.isfinite(value):
                    self._tb.add_scalar(key, value, iteration)

    def flush(self) -> None:
        """Rewrite metrics.csv atomically (no-op on non-main ranks)."""
        if not self.enabled or self.path is None:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, lineterminator="\n")
        writer.writeheader()
        for it in sorted(self.rows):
            writer.writerow({"iteration": it, **{k: _fmt(v) for k, v in self.rows[it].items()}})
        with atomic_output(self.path, overwrite=True) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        self.flush()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _tensorboard(folder: Path) -> Any:
    """A SummaryWriter when tensorboard is installed, else None (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


def plot_curves(metrics_csv: Path, out_png: Path) -> Path | None:
    """Plot every numeric column of metrics.csv against the iteration into one PNG (matplotlib Agg)."""
    rows = read_metrics(metrics_csv)
    if not rows:
        return None
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c != "iteration"]
    columns = [c for c in columns if any(isinstance(r.get(c), float) for r in rows)]
    if not columns:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warn("matplotlib is not installed: no curves.png")
        return None
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, columns):
        pts = [(r["iteration"], r[col]) for r in rows if isinstance(r.get(col), float)]
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, linewidth=1.2)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_output(out_png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out_png
