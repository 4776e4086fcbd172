"""The corpus folder: where chips, masks, part files and the manifest live, and how a run claims it.

    CORPUS/
      curate.json                      plan (settings that decide the content, shard count) + summary
      images/<kk>/<stem>-<key>-<row>-<col>.<ext>   chips (kk: first two hex digits of the scene key)
      masks/<kk>/<same name>.png       pseudo-labels (with --teacher)
      parts/shard-IIIII-of-NNNNN/part-SSSSSS.{parquet,json}   manifest rows, committed per group of scenes
      parts/shard-IIIII-of-NNNNN/DONE.json                    the shard finished
      manifest.parquet                 the merged GeoParquet manifest, one row per chip

A fresh single-process run creates the folder atomically (a temp folder renamed into place) and
then fills it; `--resume` reuses it when the plan matches. Shards of one job share the folder: the
first creates it, the others join when their plan matches; each owns its `parts/shard-*` folder.

A run that never committed a part leaves nothing: on an error, Ctrl-C or SIGTERM it removes the
corpus it created (pipeline.py); after SIGKILL no code runs, so the next run recognises the leftover,
a single-process corpus without a committed part whose lock (`.curate.lock`, held by the run that
curates into it) nobody holds, and replaces it without --overwrite.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from s5cli.curation.config import Shard
from s5cli.errors import ConfigError, InputError, OutputExistsError
from s5cli.geo.files import atomic_output

FORMAT = "s5cli-corpus"
VERSION = 1
STATE = "curate.json"
MANIFEST = "manifest.parquet"
IMAGES = "images"
MASKS = "masks"
PARTS = "parts"
DONE = "DONE.json"
MERGE_LOCK = "merge.lock"
RUN_LOCK = ".curate.lock"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def chip_relpath(scene_key: str, source: str, row: int, col: int, ext: str) -> str:
    """A chip's path relative to the corpus, unique per scene and window."""
    stem = _UNSAFE.sub("_", Path(source).stem)[:60] or "scene"
    return f"{IMAGES}/{scene_key[:2]}/{stem}-{scene_key[:12]}-{row}-{col}.{ext}"


def mask_relpath(chip_rel: str) -> str:
    """The pseudo-label PNG beside a chip: same name under masks/ (the RS4P-1M layout)."""
    rel = Path(chip_rel)
    return str(Path(MASKS, *rel.parts[1:]).with_suffix(".png"))


def shard_dir(corpus: Path, shard: Shard) -> Path:
    """The folder of one shard's part files."""
    return corpus / PARTS / shard.name


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically, replacing an older file."""
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False), encoding="utf-8")


def read_state(corpus: Path) -> dict[str, Any]:
    """The corpus state (curate.json); InputError when the folder is not a curate corpus."""
    path = corpus / STATE
    if not path.is_file():
        raise InputError(f"not a curate corpus (no {STATE})", corpus)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("is not valid JSON", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} state file", path)
    return state


def _check_plan(corpus: Path, state: dict[str, Any], plan: dict[str, Any], shard: Shard) -> None:
    if state.get("shards") != shard.count:
        raise ConfigError(
            f"was started with {state.get('shards')} shard(s), this run has {shard.count}; use the same N", corpus
        )
    old = state.get("plan", {})
    for key in sorted(set(old) | set(plan)):
        if old.get(key) != plan.get(key):
            raise ConfigError(
                f"was curated with {key}={old.get(key)!r}, this run has {key}={plan.get(key)!r}; "
                "use the same settings or a new output folder",
                corpus,
            )


def lock_corpus(corpus: Path) -> Any:
    """Hold the corpus's run lock while this process curates into it (the open file; close() releases it)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): leftovers of killed runs are not recognised
        return None
    handle = (corpus / RUN_LOCK).open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError("another s5 curate is writing into this corpus", corpus) from None
    return handle


def abandoned(corpus: Path) -> bool:
    """A killed run's leftover: a single-process corpus that never committed a part, whose lock nobody holds."""
    try:
        import fcntl

        state = read_state(corpus)
    except (ImportError, InputError):
        return False
    if state.get("shards") != 1 or state.get("summary") is not None or (corpus / MANIFEST).exists():
        return False
    if any((corpus / PARTS).glob("*/part-*.json")):
        return False
    with (corpus / RUN_LOCK).open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live run holds it
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return True


def check_corpus_output(corpus: Path, plan: dict[str, Any], shard: Shard, overwrite: bool, resume: bool) -> None:
    """Refuse a run before any work: an existing folder needs --overwrite or --resume (or a matching peer shard)."""
    if not corpus.exists():
        return
    if shard.count == 1:
        if resume:
            _check_plan(corpus, read_state(corpus), plan, shard)
        elif not overwrite and not abandoned(corpus):
            raise OutputExistsError(corpus)
        return
    _check_plan(corpus, read_state(corpus), plan, shard)
    own = shard_dir(corpus, shard)
    if own.exists() and not (overwrite or resume):
        raise OutputExistsError(own)


def _skeleton(folder: Path, plan: dict[str, Any], shard: Shard) -> None:
    (folder / PARTS).mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, "shards": shard.count, "plan": plan, "summary": None}
    (folder / STATE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def prepare_corpus(corpus: Path, plan: dict[str, Any], shard: Shard, overwrite: bool, resume: bool) -> Path:
    """Create or join the corpus folder for this run; returns this shard's part folder (created)."""
    check_corpus_output(corpus, plan, shard, overwrite, resume)
    if shard.count == 1 and not resume and not overwrite and corpus.exists():
        shutil.rmtree(corpus)  # the abandoned start of a killed run (check_corpus_output let nothing else by)
    if shard.count == 1 and not (resume and corpus.exists()):
        with atomic_output(corpus, overwrite=overwrite, directory=True) as tmp:
            _skeleton(tmp, plan, shard)
    elif not corpus.exists():
        corpus.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{corpus.name}.tmp-", dir=corpus.parent))
        _skeleton(tmp, plan, shard)
        try:
            os.rename(tmp, corpus)  # fails when a peer shard created it first: then join it
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            check_corpus_output(corpus, plan, shard, overwrite, resume)
    own = shard_dir(corpus, shard)
    if own.exists() and overwrite and not resume:
        shutil.rmtree(own)
    own.mkdir(parents=True, exist_ok=True)
    (own / DONE).unlink(missing_ok=True)  # running (again)
    return own


def shard_dirs(corpus: Path, count: int) -> list[Path]:
    """Every shard's part folder, in shard order."""
    return [shard_dir(corpus, Shard(i, count)) for i in range(count)]


def unfinished_shards(corpus: Path, count: int) -> list[str]:
    """Names of the shards without a DONE record."""
    return [d.name for d in shard_dirs(corpus, count) if not (d / DONE).is_file()]


def try_merge_lock(corpus: Path) -> bool:
    """Claim the right to merge (one process among shards that finish together)."""
    try:
        fd = os.open(corpus / MERGE_LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def release_merge_lock(corpus: Path) -> None:
    """Give the merge right back."""
    with contextlib.suppress(FileNotFoundError):
        (corpus / MERGE_LOCK).unlink()
