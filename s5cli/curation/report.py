"""`s5 curate --report`: the corpus summary (from curate.json and the manifest) and PNG plots.

Plots written into the corpus folder: report_classes.png (kept pseudo-label pixels per class, with a
teacher), report_entropy.png (entropy of candidates, kept vs dropped, with a teacher) and
report_footprints.png (chip footprints on a lon/lat map, kept vs dropped; at most `max_shapes`
drawn, an even subsample beyond). The manifest is streamed by row group for the statistics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from s5cli.curation.layout import MANIFEST, read_state
from s5cli.datasets.columns import check_columns
from s5cli.errors import InputError
from s5cli.geo.files import atomic_output

PLOTS = ("report_classes.png", "report_entropy.png", "report_footprints.png")


def _streams(manifest: Path, max_shapes: int, upper: float) -> dict[str, Any]:
    """Entropy histograms and a footprint sample, one row group at a time."""
    pf = pq.ParquetFile(manifest)
    check_columns(pf.schema_arrow, manifest, {"entropy_mean": "float", "kept": "bool", "geometry": "binary"})
    total = pf.metadata.num_rows
    step = max(1, -(-total // max_shapes))
    edges = None
    hist_kept = hist_drop = None
    shapes: list[tuple[bytes, bool]] = []
    seen = 0
    for batch in pf.iter_batches(batch_size=65536, columns=["entropy_mean", "kept", "geometry"]):
        ent = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
        kept = batch.column(1).to_numpy(zero_copy_only=False).astype(bool)
        has = np.isfinite(ent)
        if has.any():
            if edges is None:
                edges = np.linspace(0.0, upper, 51)  # entropy of K classes is at most ln K
                hist_kept, hist_drop = np.zeros(50, np.int64), np.zeros(50, np.int64)
            hist_kept += np.histogram(np.clip(ent[has & kept], 0, edges[-1]), edges)[0]
            hist_drop += np.histogram(np.clip(ent[has & ~kept], 0, edges[-1]), edges)[0]
        geoms = batch.column(2).to_pylist()
        for i in range((-seen) % step, len(geoms), step):
            if geoms[i] is not None:
                shapes.append((geoms[i], bool(kept[i])))
        seen += len(geoms)
    return {"edges": edges, "kept": hist_kept, "dropped": hist_drop, "shapes": shapes}


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_output(path, overwrite=True) as tmp:  # a plot of the corpus, redrawn from it: replaced
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def report(corpus: str | Path, max_shapes: int = 20000) -> dict[str, Any]:
    """Summarise a finished corpus and (re)draw its plots; returns the summary with the plot paths.

    The plots are the corpus's own derived files, drawn from its manifest, so a rerun replaces them
    (as a merge replaces the manifest): `--report` can be run as often as wanted.
    """
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise InputError("no such corpus folder", corpus)
    state = read_state(corpus)
    summary = state.get("summary")
    manifest = corpus / MANIFEST
    if summary is None or not manifest.is_file():
        raise InputError("the curate run has not finished: rerun it with --resume, or s5 curate --merge", corpus)
    for name in PLOTS:
        if (corpus / name).is_dir():
            raise InputError("is a folder, not a plot this report may replace", corpus / name)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shapely

    classes = summary.get("classes") or []
    data = _streams(manifest, max_shapes, math.log(len(classes)) if len(classes) > 1 else 1.0)
    written = []
    if summary.get("classes"):
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.bar(range(len(summary["classes"])), summary["class_pixels_kept"], color="tab:blue")
        ax.set_xticks(range(len(summary["classes"])), summary["classes"], rotation=60, ha="right", fontsize=7)
        ax.set_yscale("symlog")
        ax.set_ylabel("pseudo-label pixels in kept chips")
        ax.set_title("class histogram")
        fig.tight_layout()
        _save(fig, corpus / PLOTS[0])
        written.append(PLOTS[0])
    if data["edges"] is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        centres = (data["edges"][:-1] + data["edges"][1:]) / 2
        width = data["edges"][1] - data["edges"][0]
        ax.bar(centres, data["kept"], width=width, label="kept", color="tab:green")
        ax.bar(centres, data["dropped"], width=width, bottom=data["kept"], label="dropped", color="tab:red")
        ax.set_xlabel("mean per-pixel entropy (nats)")
        ax.set_ylabel("chips")
        ax.set_title("entropy distribution")
        ax.legend()
        fig.tight_layout()
        _save(fig, corpus / PLOTS[1])
        written.append(PLOTS[1])
    if data["shapes"]:
        from matplotlib.collections import PolyCollection
        from matplotlib.patches import Patch

        fig, ax = plt.subplots(figsize=(6, 6))
        handles = []
        for kept_flag, colour, label in ((False, "tab:red", "dropped"), (True, "tab:green", "kept")):
            wkb = [g for g, k in data["shapes"] if k == kept_flag]
            if not wkb:
                continue
            verts = [np.asarray(g.exterior.coords) for g in shapely.from_wkb(wkb)]
            ax.add_collection(PolyCollection(verts, facecolors=colour, edgecolors=colour, alpha=0.4, linewidths=0.3))
            handles.append(Patch(color=colour, alpha=0.4, label=label))
        ax.autoscale_view()
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title("chip footprints (EPSG:4326)")
        ax.legend(handles=handles)
        fig.tight_layout()
        _save(fig, corpus / PLOTS[2])
        written.append(PLOTS[2])
    return {**summary, "plots": [str(corpus / p) for p in written]}
