"""`run_curate`: scenes -> chips (CPU pool) -> teacher (main process, batched) -> parts -> merged manifest.

Memory does not grow with the number of chips: scenes stream from a lazy walk, at most 2 x workers
scenes are in flight, the teacher holds one batch, and rows leave for a part file every few
thousand. A part's JSON record commits its scenes, so `--resume` skips exactly those. Each shard
(`--shard I/N` or torchrun's RANK/WORLD_SIZE) writes its own parts; the shard that finishes last
(or `s5 curate --merge`) merges them, with the corpus-wide dedup and selection.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from s5cli.console import info, progress_bar, warn
from s5cli.curation import manifest as mf
from s5cli.curation.config import CurateConfig, Shard, plan_fingerprint, resolve_shard
from s5cli.curation.inputs import Scene, check_inputs, iter_scenes
from s5cli.curation.layout import (
    DONE,
    STATE,
    check_corpus_output,
    lock_corpus,
    mask_relpath,
    prepare_corpus,
    read_state,
    release_merge_lock,
    try_merge_lock,
    unfinished_shards,
    write_json,
)
from s5cli.curation.merge import merge_corpus
from s5cli.curation.tiling import SceneResult, TileSettings, tile_scene
from s5cli.errors import InputError
from s5cli.geo.files import check_distinct_outputs, portable_path

PART_ROWS = 2048  # rows per committed part: the granularity of --resume


class Labeler:
    """Runs the teacher over candidate chips in batches that span scenes; passes scenes on in order."""

    def __init__(self, teacher: Any, corpus: Path, min_foreground: float, writer: mf.PartWriter) -> None:
        self.teacher = teacher
        self.corpus = corpus
        self.min_foreground = min_foreground
        self.writer = writer
        self._scenes: deque[tuple[SceneResult, list[int]]] = deque()  # (scene, [chips waiting])
        self._queue: deque[tuple[list[int], dict[str, Any]]] = deque()
        self.chips = 0

    def add(self, result: SceneResult) -> None:
        """Take a tiled scene; label what a full batch allows; hand finished scenes to the writer."""
        self.chips += len(result.rows)
        waiting = [0]
        if self.teacher is not None:
            for row in result.rows:
                if row["reason"] == mf.CANDIDATE:
                    self._queue.append((waiting, row))
                    waiting[0] += 1
        self._scenes.append((result, waiting))
        while self.teacher is not None and len(self._queue) >= self.teacher.batch_size:
            self._label(self.teacher.batch_size)
        self._emit()

    def close(self) -> None:
        """Label the rest and flush."""
        while self._queue:
            self._label(self.teacher.batch_size)
        self._emit()
        self.writer.flush()

    def _label(self, n: int) -> None:
        from s5cli.curation.teacher import write_mask
        from s5cli.datasets.corpus import read_chip

        batch = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
        chips = [read_chip(self.corpus / row["path"]) for _, row in batch]
        for (waiting, row), stats in zip(batch, self.teacher.predict(chips)):
            rel = mask_relpath(row["path"])
            write_mask(self.corpus / rel, stats.labels, self.teacher.palette)
            row.update(
                mask_path=rel,
                entropy_mean=stats.entropy_mean,
                entropy_max=stats.entropy_max,
                foreground=stats.foreground,
                class_hist=stats.class_hist,
            )
            if stats.foreground <= self.min_foreground:
                row["reason"] = mf.NO_FOREGROUND
            waiting[0] -= 1

    def _emit(self) -> None:
        while self._scenes and self._scenes[0][1][0] == 0:
            result, _ = self._scenes.popleft()
            if result.error:
                warn(result.error)
            if result.lost:
                warn(result.lost)
            self.writer.add_scene(result.record(), result.rows)


def _tiled(scenes: Iterator[Scene], settings: TileSettings, workers: int) -> Iterator[SceneResult]:
    """Tile scenes in order: in this process (workers=0) or in a pool, at most 2 x workers in flight."""
    if workers <= 0:
        for scene in scenes:
            yield tile_scene(scene, settings)
        return
    # spawn, not fork: the parent may hold torch and GDAL threads that fork would copy half-alive.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[Future[SceneResult]] = deque()
    try:
        for scene in scenes:
            pending.append(pool.submit(tile_scene, scene, settings))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _record_teacher(corpus: Path, teacher: Any, cfg: CurateConfig) -> None:
    state = read_state(corpus)
    state["teacher"] = {
        "path": portable_path(cfg.teacher, corpus) if cfg.teacher is not None else None,
        "head": teacher.head.name,
        "classes": teacher.classes,
        "background": teacher.background,
    }
    write_json(corpus / STATE, state)


def run_curate(
    inputs: list[str],
    output: str | Path,
    cfg: CurateConfig,
    overwrite: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Curate scenes into a corpus folder; returns the merged summary (or this shard's, if others still run)."""
    corpus = Path(output)
    shard = resolve_shard(cfg)
    plan = plan_fingerprint(cfg, corpus)
    check_corpus_output(corpus, plan, shard, overwrite, resume)
    check_inputs(inputs)
    check_distinct_outputs([("-o/--output", corpus)], [*inputs, *([cfg.teacher] if cfg.teacher else [])])
    total, mine = 0, 0
    for scene in iter_scenes(inputs, exclude=[corpus], corpus=corpus):
        total += 1
        mine += scene.in_shard(shard)
    if total == 0:
        raise InputError(f"no images found in {', '.join(inputs)} (looked for .tif, .png, .jpg, .jp2, .vrt, .img)")
    teacher = None
    if cfg.teacher is not None:
        from s5cli.curation.teacher import load_teacher

        teacher = load_teacher(cfg.teacher, cfg.device, cfg.teacher_head, cfg.background, cfg.batch_size)
    created = not corpus.exists() or (shard.count == 1 and not resume)  # new, replaced or an abandoned start
    own = prepare_corpus(corpus, plan, shard, overwrite, resume)
    lock = lock_corpus(corpus) if shard.count == 1 else None
    try:
        _curate_scenes(inputs, corpus, own, shard, mine, teacher, cfg, resume)
    except BaseException:
        # A new corpus that failed before committing any part (e.g. on its first chip) holds nothing to
        # resume: remove it, so that a corrected rerun needs no --overwrite.
        if created and shard.count == 1 and not len(mf.finished_scene_ids(own)):
            shutil.rmtree(corpus, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.close()
    summary = _finish(corpus, shard)
    if summary.get("merged") and summary["scenes"] and summary["failed_scenes"] == summary["scenes"]:
        # Nothing of the input could be read: not a corpus, whatever the exit of the last scene.
        if created and shard.count == 1:
            shutil.rmtree(corpus, ignore_errors=True)
        first = summary["failures"][0]["error"]
        raise InputError(f"none of the {summary['scenes']} scene(s) could be read (first: {first})")
    return summary


def _curate_scenes(
    inputs: list[str], corpus: Path, own: Path, shard: Shard, mine: int, teacher: Any, cfg: CurateConfig, resume: bool
) -> None:
    """Tile, label and commit this shard's scenes (those not committed yet), then mark the shard done."""
    if teacher is not None:
        _record_teacher(corpus, teacher, cfg)
    done = mf.finished_scene_ids(own) if resume else np.empty(0, dtype=np.int64)
    todo = mine - len(done)
    if len(done):
        info(f"resuming: {len(done)} scene(s) of shard {shard.index}/{shard.count} already done, {todo} to go")

    def scenes() -> Iterator[Scene]:
        for scene in iter_scenes(inputs, exclude=[corpus], corpus=corpus):
            if scene.in_shard(shard):
                pos = np.searchsorted(done, scene.id)
                if pos < len(done) and done[pos] == scene.id:
                    continue
                yield scene

    writer = mf.PartWriter(own, max_rows=PART_ROWS)
    labeler = Labeler(teacher, corpus, cfg.min_foreground, writer)
    start = time.perf_counter()
    with progress_bar("curating scenes", total=max(todo, 0)) as bar:
        for result in _tiled(scenes(), TileSettings.from_config(cfg, corpus), cfg.workers):
            labeler.add(result)
            bar.advance()
            bar.set_rate(f"{labeler.chips / max(time.perf_counter() - start, 1e-9):.0f} chips/s")
        labeler.close()
    write_json(own / DONE, {"scenes": mine, "new_scenes": todo, "new_chips": labeler.chips})


def _finish(corpus: Path, shard: Shard) -> dict[str, Any]:
    """Merge when every shard is done (among shards, the one that takes the lock), else report this shard."""
    if shard.count == 1:
        return {"merged": True, **merge_corpus(corpus, overwrite=True)}
    waiting = unfinished_shards(corpus, shard.count)
    if waiting:
        return {"merged": False, "shard": shard.name, "waiting_for": waiting}
    if not try_merge_lock(corpus):
        warn(f"another shard is merging {corpus} (if none is, remove merge.lock and run s5 curate --merge)")
        return {"merged": False, "shard": shard.name, "waiting_for": []}
    try:
        return {"merged": True, **merge_corpus(corpus, overwrite=True)}
    finally:
        release_merge_lock(corpus)
