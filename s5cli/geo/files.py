"""Output paths: refuse to clobber without --overwrite, and write atomically (temp, then rename).

Temp paths are hidden siblings of their destination named `.<stem>.tmp-<pid>@<host>-<random><suffix>`.
A process killed with SIGKILL cannot remove its temp files, so each new atomic write first removes the
temp siblings in its folder whose creator (same host, that pid) is no longer running: nothing renames
those any more. A writer that fails on a full disk raises whatever its library raises (GDAL, SQLite,
torch's zip writer); atomic_output and disk_full_as_error turn that into OSError(ENOSPC) naming the
output, which the CLI prints as one line.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s5cli.errors import InputError, OutputExistsError, S5Error

# A failed write with less free space than this on its file system is reported as a full disk.
DISK_FULL_MARGIN = 16 * 1024 * 1024
_TEMP_RE = re.compile(r"^\..*\.tmp-(\d+)@([A-Za-z0-9._]+)-")


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
def atomic_output(path: str | os.PathLike[str], overwrite: bool = False, directory: bool = False) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it into place, on failure remove it.

    The temp path keeps the destination's suffix so that drivers chosen by extension
    (GeoTIFF, GPKG, PNG) still work. With `directory=True` the temp path is a new folder.
    """
    dest = check_output(path, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest.parent)
    # Same folder as the destination: os.replace is atomic only within one file system.
    prefix = temp_prefix(dest.stem)
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
    except BaseException as exc:
        full = _disk_full(dest.parent, exc) and not _names_an_output(exc)  # before the temp gives space back
        _remove(tmp)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest)) from exc
        raise


def temp_prefix(name: str) -> str:
    """The hidden name prefix of this process's temp files for `name`: `.<name>.tmp-<pid>@<host>-`."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"
    return f".{name}.tmp-{os.getpid()}@{host}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files and folders in `folder` left by dead processes of this host; returns them."""
    host = temp_prefix("x").rsplit("@", 1)[1][:-1]
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match and match.group(2) == host and not _alive(int(match.group(1))):
            _remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def _names_an_output(exc: BaseException) -> bool:
    """An ENOSPC error that already names an output (not a temp file): pass it on as it is."""
    if not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC and exc.filename is not None):
        return False
    return not _TEMP_RE.match(Path(str(exc.filename)).name)


def _disk_full(folder: Path, exc: BaseException) -> bool:
    """True when a write failed with ENOSPC, or failed in any way with (almost) no space left."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if not isinstance(exc, Exception) or isinstance(exc, S5Error):
        return False
    try:
        return shutil.disk_usage(folder).free < DISK_FULL_MARGIN
    except OSError:
        return False


@contextmanager
def disk_full_as_error(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Writes to `folder` (e.g. scratch rasters) inside: a failure on a full disk becomes OSError(ENOSPC)."""
    try:
        yield
    except Exception as exc:
        if not _names_an_output(exc) and _disk_full(Path(folder), exc):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder)) from exc
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


def portable_path(path: str | os.PathLike[str], base: str | os.PathLike[str]) -> str:
    """`path` as a file inside `base` records it: relative to `base`, so the two can move together.

    Run directories (config.yaml) and curate corpora (scene sources) store paths this way, as a QGIS
    project stores relative paths; absolute when no relative path exists (another drive on Windows).
    """
    absolute = os.path.abspath(path)
    try:
        return os.path.relpath(absolute, os.path.abspath(base))
    except ValueError:
        return absolute
