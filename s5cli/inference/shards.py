"""Several scenes over torchrun ranks, with the GeoPackage written by one process at a time.

Each rank predicts scenes[rank::world_size] on its own device and writes its raster outputs directly
(the names differ per scene). A GeoPackage is SQLite: concurrent writers from several processes would
serialise on its lock at best and corrupt it on network file systems at worst. So each rank writes its
layers into its own hidden per-rank GeoPackage, then drops a marker file; rank 0 waits for every
marker, merges the per-rank layers into the final GeoPackage (atomically) and removes the parts.
Markers are files, not a collective, because the process group's timeout (30 minutes by default)
would fire while a rank with a large scene is still working; if a rank dies, torchrun stops the
others, and a rank that fails with an error leaves a `failed` marker that rank 0 reports.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyogrio

from s5cli.errors import InputError
from s5cli.geo.vector import SEGMENT_FIELDS, LayerWriter, empty_frame

MERGE_CHUNK = 50_000  # features per read when merging per-rank layers


@dataclass
class ShardContext:
    """This process's rank, the world size, its device and the shared folder for per-rank parts."""

    rank: int
    world_size: int
    device: Any
    folder: Path | None = None

    @classmethod
    def from_env(cls, device: str, output: str | None) -> ShardContext:
        """Single process, or join torchrun's process group (only to agree on a run id)."""
        from s5cli.training.distributed import broadcast_object, init_distributed, shutdown_distributed

        ctx = init_distributed(device)
        if ctx.world_size == 1:
            shutdown_distributed(ctx)
            return cls(0, 1, ctx.device)
        run_id = broadcast_object(uuid.uuid4().hex[:12] if ctx.rank == 0 else None, ctx)
        shutdown_distributed(ctx)  # the process group was only needed to agree on the run id
        parent = Path(output).resolve().parent if output else Path(".").resolve()
        folder = parent / f".s5-predict-ranks-{run_id}"
        folder.mkdir(parents=True, exist_ok=True)
        return cls(ctx.rank, ctx.world_size, ctx.device, folder)

    def _need_folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError("a single process has no per-rank folder")
        return self.folder

    def rank_gpkg(self, rank: int | None = None) -> Path:
        """The per-rank GeoPackage of a rank (this one by default)."""
        return self._need_folder() / f"rank{self.rank if rank is None else rank}.gpkg"

    def rank_gpkgs(self) -> list[Path]:
        """Every rank's part that exists (a rank without scenes writes none)."""
        return [p for p in (self.rank_gpkg(r) for r in range(self.world_size)) if p.exists()]

    def mark_done(self, results: list[dict[str, Any]]) -> None:
        """Tell rank 0 this rank is finished (its summary is in the marker)."""
        tmp = self._need_folder() / f"rank{self.rank}.done.tmp"
        tmp.write_text(json.dumps(results))
        os.replace(tmp, self._need_folder() / f"rank{self.rank}.done")

    def mark_failed(self) -> None:
        """Tell rank 0 this rank failed."""
        (self._need_folder() / f"rank{self.rank}.failed").write_text("failed")

    def wait_for_ranks(self, poll_s: float = 0.5) -> list[dict[str, Any]]:
        """Rank 0: wait until every rank is done; their scene summaries in rank order."""
        folder = self._need_folder()
        while True:
            failed = sorted(folder.glob("rank*.failed"))
            if failed:
                raise InputError(f"{failed[0].name.split('.')[0]} failed; see its error above", folder)
            done = [folder / f"rank{r}.done" for r in range(self.world_size)]
            if all(p.exists() for p in done):
                return [s for p in done for s in json.loads(p.read_text())]
            time.sleep(poll_s)

    def cleanup(self) -> None:
        """Remove the per-rank folder."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def merge_rank_layers(parts: Sequence[Path], dest: Path, order: Sequence[str]) -> None:
    """Copy every layer of the per-rank GeoPackages into dest, in scene order, in chunks."""
    where = {}
    for part in parts:
        for name, _ in pyogrio.list_layers(part):
            where[str(name)] = part
    for layer in order:
        if layer not in where:
            raise InputError(f"layer '{layer}' is missing from every rank's output", dest)
        info = pyogrio.read_info(where[layer], layer=layer)
        writer = LayerWriter(dest, layer, info["crs"], SEGMENT_FIELDS)
        total = int(info["features"])
        for start in range(0, total, MERGE_CHUNK):
            frame = pyogrio.read_dataframe(where[layer], layer=layer, skip_features=start, max_features=MERGE_CHUNK)
            writer.write(frame)
        if total == 0:
            writer.write(empty_frame(list(info["fields"]), info["crs"]))
        writer.close()
