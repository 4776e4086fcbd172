"""Input scenes: files, folders (recursive) and globs, walked lazily in one stable order, split into shards.

Order matters: near-duplicate removal keeps the first chip in this order, so a single run and a
sharded run (merged later) must agree on it. Each scene gets its ordinal in the full walk (before
any shard filter), and each scene's shard is a stable hash of its path relative to the corpus folder
(so a corpus moved together with its scenes resumes and merges as before).
"""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rasterio.errors import NotGeoreferencedWarning

from s5cli.curation.config import Shard
from s5cli.errors import InputError
from s5cli.geo.files import check_path, portable_path
from s5cli.geo.raster import is_raster_name, open_raster, walk_rasters


@dataclass(frozen=True)
class Scene:
    """One input image: its ordinal in the walk, its absolute path and the path the corpus records."""

    index: int
    source: str  # absolute: what is read
    ref: str = ""  # relative to the corpus folder (geo/files.py portable_path); "" for the absolute path

    @property
    def recorded(self) -> str:
        """The path in the manifest and the part records: relative to the corpus, so both can move together."""
        return self.ref or self.source

    @property
    def key(self) -> str:
        """16 hex digits of the recorded path's SHA-1: the scene's stable id (chip names, shard, resume)."""
        return hashlib.sha1(self.recorded.encode("utf-8")).hexdigest()[:16]

    @property
    def id(self) -> int:
        """The key as a signed int64 (stored in the manifest and the resume records)."""
        value = int(self.key, 16)
        return value - (1 << 64) if value >= 1 << 63 else value

    def in_shard(self, shard: Shard) -> bool:
        """True when this scene belongs to `shard`."""
        return int(self.key, 16) % shard.count == shard.index


def _expand(arg: str, exclude: set[str]) -> Iterator[str]:
    path = Path(arg)
    if path.is_dir():
        yield from map(os.path.abspath, walk_rasters(path, sorted(exclude)))
    elif path.exists():
        yield os.path.abspath(path)
    else:
        for match in sorted(glob.glob(arg, recursive=True)):
            if os.path.isdir(match):
                yield from map(os.path.abspath, walk_rasters(match, sorted(exclude)))
            elif is_raster_name(os.path.basename(match)):
                yield os.path.abspath(match)


def _covered_by(source: str, earlier: list[str]) -> bool:
    """True when an earlier argument (a file, or a folder that contains it) already yields `source`."""
    return any(source == e or source.startswith(e + os.sep) for e in earlier)


def iter_scenes(
    inputs: list[str],
    exclude: list[str | os.PathLike[str]] | None = None,
    corpus: str | os.PathLike[str] | None = None,
) -> Iterator[Scene]:
    """All input scenes in a stable order (arguments in order, each walked sorted), named relative to `corpus`.

    A scene that an earlier file or folder argument already gave is skipped (no per-scene memory:
    overlaps are found from the arguments; overlapping globs are not detected).
    """
    skip = [os.path.abspath(p) for p in exclude or []]
    earlier: list[str] = []
    index = 0
    for arg in inputs:
        for source in _expand(arg, set(skip)):
            if _covered_by(source, skip) or _covered_by(source, earlier):
                continue
            check_path(source)  # a name that is not UTF-8 stops the walk here, before any scene is tiled
            yield Scene(index, source, portable_path(source, corpus) if corpus is not None else "")
            index += 1
        if os.path.exists(arg):
            earlier.append(os.path.abspath(arg))


def check_inputs(inputs: list[str]) -> None:
    """Fail early (InputError) on a missing path, a glob without matches or an explicit non-raster file."""
    if not inputs:
        raise InputError("no inputs given; pass scene files, folders or globs")
    for arg in inputs:
        path = check_path(arg)
        if path.is_dir():
            continue
        if path.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                open_raster(path).close()
            continue
        if glob.has_magic(arg):
            if not glob.glob(arg, recursive=True):
                raise InputError("no files match this pattern", arg)
            continue
        raise InputError("no such file or folder", arg)
