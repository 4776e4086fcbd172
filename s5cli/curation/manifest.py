"""Manifest rows: one per chip, written in GeoParquet parts per group of scenes, read back in scene order.

Columns (`SCHEMA`): path (relative to the corpus; null for chips never written), mask_path, source
(the scene, relative to the corpus folder too: a corpus moved with its scenes still names them),
scene_index (the scene's ordinal in the input walk), scene_id, chip_index, the window col, row,
width, height (pixels of the grid the chip was cut from), crs (of the source, as a string), gsd
(metres), phash (the 64-bit hash as 16 hex digits; a nullable int64 would become float in pandas),
nodata_fraction, std, entropy_mean, entropy_max, foreground, class_hist (pixels per teacher
class), kept, reason, duplicate_of (manifest row of the chip a duplicate repeats) and geometry
(the chip footprint in EPSG:4326; null for plain images).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from s5cli.errors import InputError
from s5cli.geo.files import atomic_output

FOOTPRINT_CRS = "EPSG:4326"

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("mask_path", pa.string()),
        ("source", pa.string()),
        ("scene_index", pa.int64()),
        ("scene_id", pa.int64()),
        ("chip_index", pa.int32()),
        ("col", pa.int32()),
        ("row", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("crs", pa.string()),
        ("gsd", pa.float64()),
        ("phash", pa.string()),
        ("nodata_fraction", pa.float32()),
        ("std", pa.float32()),
        ("entropy_mean", pa.float32()),
        ("entropy_max", pa.float32()),
        ("foreground", pa.float32()),
        ("class_hist", pa.list_(pa.int64())),
        ("kept", pa.bool_()),
        ("reason", pa.string()),
        ("duplicate_of", pa.int64()),
        ("geometry", pa.binary()),
    ]
)
COLUMNS = SCHEMA.names

# Reasons. Chips end "kept" or "diversity" (re-admitted) when kept; "candidate" exists only in parts.
CANDIDATE = "candidate"
KEPT = "kept"
READMITTED = "diversity"
NODATA = "nodata"
LOW_STD = "low_std"
NO_FOREGROUND = "no_foreground"
DUPLICATE = "duplicate"
HIGH_ENTROPY = "high_entropy"
UNREADABLE = "unreadable"  # the window could not be read (a corrupt tile of the scene)
REASONS = (KEPT, READMITTED, NODATA, LOW_STD, NO_FOREGROUND, DUPLICATE, HIGH_ENTROPY, UNREADABLE)

_INT_COLUMNS = ("scene_index", "scene_id", "chip_index", "col", "row", "width", "height", "duplicate_of")
_FLOAT_COLUMNS = ("gsd", "nodata_fraction", "std", "entropy_mean", "entropy_max", "foreground")


def write_part_file(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as a GeoParquet part with geopandas (footprints as shapely geometries or None)."""
    import geopandas as gpd
    import pandas as pd

    data: dict[str, Any] = {}
    for name in COLUMNS:
        if name == "geometry":
            continue
        values = [r.get(name) for r in rows]
        if name in _INT_COLUMNS:
            data[name] = pd.array(values, dtype="Int64")  # nullable: duplicate_of may be missing
        elif name in _FLOAT_COLUMNS:
            data[name] = pd.array([np.nan if v is None else v for v in values], dtype="float64")
        elif name == "kept":
            data[name] = pd.array(values, dtype="bool")
        else:
            data[name] = pd.Series(values, dtype="object")
    frame = gpd.GeoDataFrame(
        pd.DataFrame(data), geometry=gpd.GeoSeries([r.get("geometry") for r in rows], crs=FOOTPRINT_CRS)
    )
    with atomic_output(path, overwrite=True) as tmp:
        frame.to_parquet(tmp, index=False)


def conform(table: pa.Table, source: str | Path = "part") -> pa.Table:
    """A part table cast to SCHEMA (missing or all-null columns become typed nulls).

    A column of another type that does not cast is an InputError naming the file.
    """
    arrays = []
    for field in SCHEMA:
        if field.name in table.column_names:
            col = table.column(field.name)
            try:
                arrays.append(col.cast(field.type) if col.type != field.type else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise InputError(f"column '{field.name}' holds {col.type} values, not {field.type}", source) from None
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class PartWriter:
    """Buffers whole scenes' rows and commits them as numbered parts (parquet, then a JSON record).

    A part is committed when its JSON record exists; the record lists its scenes, so a resumed run
    knows exactly which scenes are finished. Parts flush after `max_rows` rows or `max_seconds`.
    """

    def __init__(self, folder: Path, max_rows: int = 4096, max_seconds: float = 60.0) -> None:
        self.folder = folder
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.seq = next_part_seq(folder)
        self._rows: list[dict[str, Any]] = []
        self._scenes: list[dict[str, Any]] = []
        self._since = time.monotonic()
        self.parts_written = 0

    def add_scene(self, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Add one finished scene (record: index, id, source, chips, error) and its rows."""
        self._scenes.append(record)
        self._rows.extend(rows)
        if len(self._rows) >= self.max_rows or time.monotonic() - self._since >= self.max_seconds:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered scenes as one part."""
        if not self._scenes:
            return
        name = f"part-{self.seq:06d}"
        if self._rows:
            write_part_file(self.folder / f"{name}.parquet", self._rows)
        record = {
            "seq": self.seq,
            "first_index": min(s["index"] for s in self._scenes),
            "rows": len(self._rows),
            "scenes": self._scenes,
        }
        with atomic_output(self.folder / f"{name}.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(record), encoding="utf-8")
        self.seq += 1
        self.parts_written += 1
        self._rows, self._scenes = [], []
        self._since = time.monotonic()


def part_records(folder: Path) -> list[dict[str, Any]]:
    """Committed part records of one shard folder, in commit order (each with its 'parquet' path or None)."""
    records = []
    for path in sorted(folder.glob("part-*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise InputError("is not a valid part record; remove it and rerun with --resume", path) from None
        parquet = path.with_suffix(".parquet")
        if record.get("rows", 0) and not parquet.is_file():
            raise InputError("part record without its parquet file; remove it and rerun with --resume", path)
        record["parquet"] = parquet if record.get("rows", 0) else None
        records.append(record)
    return records


def next_part_seq(folder: Path) -> int:
    """The next free part number in a shard folder."""
    seqs = [int(p.stem.split("-")[1]) for p in folder.glob("part-*.json")]
    return max(seqs, default=-1) + 1


def finished_scene_ids(folder: Path) -> np.ndarray:
    """Sorted int64 ids of the scenes committed in a shard folder (8 bytes per scene)."""
    ids = [s["id"] for r in part_records(folder) for s in r["scenes"]]
    return np.unique(np.asarray(ids, dtype=np.int64))


def _scene_stream(folder: Path) -> Iterator[tuple[int, pa.Table]]:
    """One shard's rows scene by scene, in its commit order (walk order), one part in memory at a time."""
    for record in sorted(part_records(folder), key=lambda r: (r["first_index"], r["seq"])):
        table = read_part(record)
        if not table.num_rows:
            continue
        index = table.column("scene_index").to_numpy()
        cuts = np.flatnonzero(np.diff(index)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(index)]])
        for a, b in zip(starts.tolist(), ends.tolist()):
            yield int(index[a]), table.slice(a, b - a)


def ordered_scenes(folders: list[Path]) -> Iterator[pa.Table]:
    """Rows of every shard, scene by scene in the input walk's order: what a single run would see.

    Each shard commits its scenes in walk order, so a k-way merge by scene index restores the global
    order while holding one part per shard in memory, never all rows.
    """
    streams = [_scene_stream(f) for f in folders]
    for _, table in heapq.merge(*streams, key=lambda item: item[0]):
        yield table


def read_part(record: dict[str, Any]) -> pa.Table:
    """The rows of a part record, sorted by (scene_index, chip_index) and cast to SCHEMA."""
    if record["parquet"] is None:
        return SCHEMA.empty_table()
    # One thread: parts are small, and threaded reads grow the allocator pools for nothing.
    table = conform(pq.ParquetFile(record["parquet"]).read(use_threads=False), record["parquet"])
    order = np.lexsort((table.column("chip_index").to_numpy(), table.column("scene_index").to_numpy()))
    return table.take(order)
