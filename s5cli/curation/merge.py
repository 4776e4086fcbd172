"""Finalise a corpus: merge every shard's parts in scene order, run the corpus-wide rules, write manifest.parquet.

Passes over disk, each holding one batch of rows (plus the O(kept) hash index):
1. parts in the input walk's order (a k-way merge of shards) -> near-duplicate removal against all
   earlier kept chips -> a staging Parquet file;
2. the entropy rule's threshold (a few histogram passes over one column), then the diversity pool;
3. the final GeoParquet manifest with every decision and the rules in its metadata.
The same parts give the same manifest whether they came from one process or N shards.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from s5cli.curation import manifest as mf
from s5cli.curation.hashindex import HashIndex
from s5cli.curation.layout import MANIFEST, STATE, read_state, shard_dirs, unfinished_shards, write_json
from s5cli.curation.selection import DiversityPool, EntropyRule, entropy_rule
from s5cli.errors import InputError
from s5cli.geo.files import atomic_output, check_output

STAGE = ".manifest.stage.parquet"
BATCH = 4096


@dataclass
class _Staged:
    rows: int = 0
    candidates: int = 0
    duplicates: int = 0
    bbox: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])


def geo_metadata(bbox: list[float]) -> bytes:
    """GeoParquet 1.0 metadata for the WKB footprint column in EPSG:4326."""
    from pyproj import CRS

    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": ["Polygon"] if math.isfinite(bbox[0]) else [],
        "crs": CRS.from_string(mf.FOOTPRINT_CRS).to_json_dict(),
    }
    if math.isfinite(bbox[0]):
        column["bbox"] = bbox
    return json.dumps({"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": column}}).encode()


def _stage(folders: list[Path], stage: Path, distance: int) -> _Staged:
    """Pass 1: scene-ordered rows, near-duplicates marked, into the staging file."""
    index = HashIndex(distance) if distance >= 0 else None
    out = _Staged()
    buffer: list[pa.Table] = []
    with pq.ParquetWriter(stage, mf.SCHEMA) as writer:
        for table in mf.ordered_scenes(folders):
            reasons = table.column("reason").to_pylist()
            hashes = table.column("phash").to_pylist()
            dups: list[int | None] = [None] * table.num_rows
            for i, reason in enumerate(reasons):
                if reason != mf.CANDIDATE:
                    continue
                out.candidates += 1
                if index is None:
                    continue
                h = int(hashes[i], 16)
                match = index.find(h)
                if match is None:
                    index.add(h, out.rows + i)
                else:
                    reasons[i], dups[i] = mf.DUPLICATE, match
                    out.duplicates += 1
            table = table.set_column(table.schema.get_field_index("reason"), "reason", pa.array(reasons, pa.string()))
            table = table.set_column(
                table.schema.get_field_index("duplicate_of"), "duplicate_of", pa.array(dups, pa.int64())
            )
            bounds = shapely.bounds(shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
            if np.isfinite(bounds).any():
                b = out.bbox
                out.bbox = [
                    min(b[0], float(np.nanmin(bounds[:, 0]))),
                    min(b[1], float(np.nanmin(bounds[:, 1]))),
                    max(b[2], float(np.nanmax(bounds[:, 2]))),
                    max(b[3], float(np.nanmax(bounds[:, 3]))),
                ]
            out.rows += table.num_rows
            buffer.append(table)
            if sum(t.num_rows for t in buffer) >= BATCH:
                writer.write_table(pa.concat_tables(buffer))
                buffer = []
        if buffer:
            writer.write_table(pa.concat_tables(buffer))
    out.candidates -= out.duplicates
    return out


def _batches(stage: Path, columns: list[str] | None = None, size: int = 65536) -> Any:
    """Record batches of the staging file, read on one thread (threaded reads only grow allocator pools)."""
    return pq.ParquetFile(stage).iter_batches(batch_size=size, columns=columns, use_threads=False)


def _candidate_batches(stage: Path, columns: list[str]) -> Any:
    """Stream (candidate-only) columns of the staging file."""
    for batch in _batches(stage, ["reason", *columns]):
        mask = pc.equal(batch.column(0), mf.CANDIDATE)
        yield [batch.column(i + 1).filter(mask) for i in range(len(columns))]


def _hists(array: pa.Array, num_classes: int) -> np.ndarray:
    """A list<int64> column of class histograms -> (n, K)."""
    if len(array) == 0:
        return np.zeros((0, num_classes), dtype=np.int64)
    return array.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(array), num_classes)


def _select(stage: Path, plan: dict[str, Any], teacher: dict[str, Any] | None, candidates: int) -> dict[str, Any]:
    """Pass 2: the entropy rule and the diversity re-admissions."""
    col = f"entropy_{plan['entropy_stat']}"
    result: dict[str, Any] = {"rule": None, "readmit": set(), "threshold": None, "ties": 0, "budget": 0, "column": col}
    if teacher is None or (plan["keep_fraction"] is None and plan["max_entropy"] is None):
        return result

    def chunks() -> Any:
        for (values,) in _candidate_batches(stage, [col]):
            yield values.to_numpy(zero_copy_only=False).astype(np.float64)

    rule = entropy_rule(chunks, candidates, plan["keep_fraction"], plan["max_entropy"])
    result.update(rule=rule, threshold=rule.threshold if math.isfinite(rule.threshold) else None, ties=rule.ties)
    kept = sum(int(rule.keep(v).sum()) for v in chunks())
    budget = int(plan["diversity_budget"] * kept)
    result["budget"] = budget
    if budget <= 0 or kept == candidates:
        return result
    k = len(teacher["classes"])
    pool = DiversityPool(k, teacher["background"], budget)
    totals = np.zeros(k, dtype=np.int64)
    rule.reset()
    row = 0
    for batch in _batches(stage, ["reason", col, "class_hist"]):
        cand = np.flatnonzero(pc.equal(batch.column(0), mf.CANDIDATE).to_numpy(zero_copy_only=False))
        values = batch.column(1).take(pa.array(cand)).to_numpy(zero_copy_only=False).astype(np.float64)
        hists = _hists(batch.column(2).take(pa.array(cand)), k)
        keep = rule.keep(values)
        totals += hists[keep].sum(axis=0)
        for j in np.flatnonzero(~keep):
            pool.offer(row + int(cand[j]), hists[j], values[j])
        row += batch.num_rows
    picked, _ = pool.select(totals)
    result["readmit"] = set(picked)
    result["classes_before"] = totals.tolist()
    return result


def _rules(plan: dict[str, Any], teacher: dict[str, Any] | None, sel: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rule with its threshold, in the order they apply."""
    rules: list[dict[str, Any]] = [
        {"reason": mf.NODATA, "drop_if": "nodata_fraction > max_nodata", "max_nodata": plan["max_nodata"]},
        {"reason": mf.LOW_STD, "drop_if": "std < min_std (source pixel units)", "min_std": plan["min_std"]},
    ]
    if teacher is not None:
        rules.append(
            {
                "reason": mf.NO_FOREGROUND,
                "drop_if": "foreground <= min_foreground (share of pixels not in the background class)",
                "min_foreground": plan["min_foreground"],
                "background": teacher["classes"][teacher["background"]],
            }
        )
    rules.append(
        {
            "reason": mf.DUPLICATE,
            "drop_if": "pHash Hamming distance <= dedup_distance to an earlier kept chip (input order)",
            "dedup_distance": plan["dedup_distance"],
            "enabled": plan["dedup_distance"] >= 0,
        }
    )
    if sel["rule"] is not None:
        rules.append(
            {
                "reason": mf.HIGH_ENTROPY,
                "drop_if": "not among the keep_fraction lowest-entropy candidates, or entropy > max_entropy",
                "entropy_stat": plan["entropy_stat"],
                "keep_fraction": plan["keep_fraction"],
                "max_entropy": plan["max_entropy"],
                "threshold": sel["threshold"],
                "ties_taken": sel["ties"],
            }
        )
        rules.append(
            {
                "reason": mf.READMITTED,
                "keep_if": "greedily raises the least represented foreground class (below an equal share)",
                "diversity_budget": plan["diversity_budget"],
                "budget_chips": sel["budget"],
                "readmitted": len(sel["readmit"]),
            }
        )
    return rules


def merge_corpus(corpus: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Merge all shards of a finished curate run into manifest.parquet and record the summary."""
    corpus = Path(corpus)
    state = read_state(corpus)
    count, plan, teacher = int(state["shards"]), state["plan"], state.get("teacher")
    missing = unfinished_shards(corpus, count)
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise InputError(f"{len(missing)} shard(s) not finished ({shown}); run them (with --resume) first", corpus)
    manifest = check_output(corpus / MANIFEST, overwrite)
    folders = shard_dirs(corpus, count)
    stage = corpus / STAGE
    try:
        staged = _stage(folders, stage, int(plan["dedup_distance"]))
        sel = _select(stage, plan, teacher, staged.candidates)
        rules = _rules(plan, teacher, sel)
        meta = {b"geo": geo_metadata(staged.bbox), b"s5cli": json.dumps({"rules": rules, "plan": plan}).encode()}
        counts, class_pixels = _write(stage, manifest, overwrite, sel, meta, teacher)
    finally:
        stage.unlink(missing_ok=True)
    records = [r for f in folders for r in mf.part_records(f)]
    failures = [{"source": s["source"], "error": s["error"]} for r in records for s in r["scenes"] if s["error"]]
    summary = {
        "chips": staged.rows,
        "kept": counts.get(mf.KEPT, 0) + counts.get(mf.READMITTED, 0),
        "reasons": {r: counts.get(r, 0) for r in mf.REASONS},
        "scenes": sum(len(r["scenes"]) for r in records),
        "failed_scenes": len(failures),
        "lost_windows": counts.get(mf.UNREADABLE, 0),  # windows of readable scenes that could not be read
        "failures": failures[:20],
        "shards": count,
        "rules": rules,
        "classes": teacher["classes"] if teacher else None,
        "class_pixels_kept": class_pixels,
        "bbox": staged.bbox if math.isfinite(staged.bbox[0]) else None,
    }
    state["summary"] = summary
    write_json(corpus / STATE, state)
    return summary


def _write(
    stage: Path,
    manifest: Path,
    overwrite: bool,
    sel: dict[str, Any],
    meta: dict[bytes, bytes],
    teacher: dict[str, Any] | None,
) -> tuple[dict[str, int], list[int] | None]:
    """Pass 3: final reasons and kept flags into the GeoParquet manifest."""
    rule: EntropyRule | None = sel["rule"]
    if rule is not None:
        rule.reset()
    counts: dict[str, int] = {}
    k = len(teacher["classes"]) if teacher else 0
    pixels = np.zeros(k, dtype=np.int64)
    row = 0
    with atomic_output(manifest, overwrite=overwrite) as tmp, pq.ParquetWriter(tmp, mf.SCHEMA.with_metadata(meta)) as w:
        for batch in _batches(stage, size=BATCH):
            table = pa.Table.from_batches([batch], schema=mf.SCHEMA)
            reasons = np.array(table.column("reason").to_pylist(), dtype=object)
            cand = np.flatnonzero(reasons == mf.CANDIDATE)
            if rule is not None and len(cand):
                values = table.column(sel["column"]).take(pa.array(cand)).to_numpy(zero_copy_only=False)
                keep = rule.keep(values.astype(np.float64))
                for j in cand[~keep]:
                    reasons[j] = mf.READMITTED if row + int(j) in sel["readmit"] else mf.HIGH_ENTROPY
            reasons[reasons == mf.CANDIDATE] = mf.KEPT
            kept = (reasons == mf.KEPT) | (reasons == mf.READMITTED)
            table = table.set_column(table.schema.get_field_index("reason"), "reason", pa.array(reasons.tolist()))
            table = table.set_column(table.schema.get_field_index("kept"), "kept", pa.array(kept))
            if k and kept.any():
                pixels += _hists(
                    table.column("class_hist").take(pa.array(np.flatnonzero(kept))).combine_chunks(), k
                ).sum(0)
            for r, n in zip(*np.unique(reasons.astype(str), return_counts=True)):
                counts[str(r)] = counts.get(str(r), 0) + int(n)
            w.write_table(table)
            row += table.num_rows
    return counts, pixels.tolist() if k else None
