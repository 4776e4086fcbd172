"""Output paths: refuse to clobber without --overwrite, and write atomically (temp, then rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s5cli.errors import InputError, OutputExistsError


def check_output(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Check an output path before any work: refuse an existing one without overwrite."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputExistsError(out)
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError("parent is not a folder", parent)
    return out


def check_input(path: str | os.PathLike[str], kind: str = "file") -> Path:
    """Check that an input exists and is of the expected kind ('file', 'dir' or 'any')."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", p)
    if kind == "file" and not p.is_file():
        raise InputError("is not a file", p)
    if kind == "dir" and not p.is_dir():
        raise InputError("is not a folder", p)
    if kind == "file" and p.stat().st_size == 0:
        raise InputError("is empty", p)
    return p


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], overwrite: bool = False, directory: bool = False
) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it into place, on failure remove it.

    The temp path keeps the destination's suffix so that drivers chosen by extension
    (GeoTIFF, GPKG, PNG) still work. With `directory=True` the temp path is a new folder.
    """
    dest = check_output(path, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the destination: os.replace is atomic only within one file system.
    prefix = f".{dest.stem}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=dest.suffix, dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()  # writers such as GDAL refuse or append to an existing file
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{tmp}: the writer produced no output")
        if dest.exists():
            if not overwrite:
                raise OutputExistsError(dest)
            if dest.is_dir() and not directory:
                raise InputError("is a folder; give a file path", dest)
            if directory:
                _remove(dest)
        os.replace(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


def within_root(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """Resolve a relative path under root; refuse one that escapes it (absolute paths are kept)."""
    rel = Path(relative)
    if rel.is_absolute():
        return rel
    base = Path(root).resolve()
    resolved = (base / rel).resolve()
    if resolved != base and base not in resolved.parents:
        raise InputError(f"path escapes its root {base}", relative)
    return resolved
