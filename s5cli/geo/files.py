"""Output paths: refuse to clobber without --overwrite, and write atomically (temp, then rename).

Temp paths are hidden siblings of their destination named `.<stem>.tmp-<pid>@<owner>-<random><suffix>`,
where <owner> is the host name and the PID namespace (`/proc/self/ns/pid`): a pid means a process only
inside its namespace, and containers on one machine often share a host name. A process killed with
SIGKILL cannot remove its temp files, so each new atomic write first removes the temp siblings in its
folder whose creator (same host, same PID namespace, that pid) is no longer running: nothing renames
those any more. Temps of other hosts or namespaces are never touched (they may belong to a live run).

Paths are checked once here (check_path): a NUL byte or a name that is not UTF-8 is an InputError,
never an exception from deep inside GDAL or SQLite. A writer that fails on a full disk raises whatever
its library raises (GDAL, SQLite, torch's zip writer); atomic_output and disk_full_as_error turn that
into OSError(ENOSPC) naming the output, which the CLI prints as one line.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from s5cli.config import check_text
from s5cli.errors import InputError, OutputExistsError, S5Error

# A failed write with less free space than this on its file system is reported as a full disk.
DISK_FULL_MARGIN = 16 * 1024 * 1024
_TEMP_RE = re.compile(r"^\..*\.tmp-(\d+)@([A-Za-z0-9._]+)-")
# Paths GDAL reads without a local file: /vsicurl/, /vsis3/, ... and URLs.
_REMOTE_PREFIXES = ("/vsi", "http://", "https://", "s3://", "gs://")


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a GDAL virtual or remote path that cannot be checked with os.path."""
    return str(path).startswith(_REMOTE_PREFIXES)


def check_path(path: str | os.PathLike[str]) -> Path:
    """A path as a Path, refusing NUL bytes and names that are not UTF-8 (which no GDAL call could take)."""
    text = os.fsdecode(path)
    check_text(text, text)
    return Path(text)


def check_output(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Check an output path before any work: refuse an existing one (a dangling link too) without overwrite."""
    out = check_path(path)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise OutputExistsError(out)
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError("parent is not a folder", parent)
    return out


def check_input(path: str | os.PathLike[str], kind: str = "file") -> Path:
    """Check that an input exists and is of the expected kind ('file', 'dir' or 'any').

    'file' means a regular file: a FIFO, socket or device would block or never end when read.
    """
    p = check_path(path)
    if not p.exists():
        raise InputError("no such file or folder", p)
    if kind == "file" and not p.is_file():
        raise InputError("is not a regular file" if not p.is_dir() else "is not a file", p)
    if kind == "any" and not (p.is_file() or p.is_dir()):
        raise InputError("is not a regular file or a folder (a FIFO, socket or device?)", p)
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


def _owner() -> str:
    """This process's host name and PID namespace, as temp names carry them: `<host>.<namespace inode>`."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # no /proc (macOS): the host name alone
        namespace = "0"
    return f"{host}.{namespace}"


def temp_prefix(name: str) -> str:
    """The hidden name prefix of this process's temp files for `name`: `.<name>.tmp-<pid>@<owner>-`."""
    return f".{name}.tmp-{os.getpid()}@{_owner()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files and folders in `folder` left by dead processes of this host and PID namespace."""
    owner = _owner()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match and match.group(2) == owner and not _alive(int(match.group(1))):
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


def within_root(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Resolve a path of untrusted data under root; refuse one that leads out of it (`..`, a link, absolute)."""
    rel = check_path(path)
    base = Path(root).resolve()
    resolved = (base / rel).resolve()  # an absolute `rel` replaces base: it must still lie inside
    if resolved != base and base not in resolved.parents:
        raise InputError(f"path escapes its root {base}", path)
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


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when two paths name one file (links, `..` and hard links resolved), existing or not."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_distinct_outputs(
    outputs: Sequence[tuple[str, str | os.PathLike[str] | None]], inputs: Sequence[str | os.PathLike[str]] = ()
) -> None:
    """Refuse an output that is one of the inputs or a folder holding one, or two outputs on one path.

    Checked before any work: with --overwrite such an output would replace what is being read.
    `outputs` pairs each output's option (e.g. "--raster") with its path (None: not asked for).
    """
    given = [(option, check_path(path)) for option, path in outputs if path is not None]
    local = [Path(source) for source in inputs if source is not None and not is_remote(source)]
    for option, out in given:
        for source in local:
            if same_file(out, source):
                raise InputError(f"{option} is an input of this command; choose another output", out)
            if out.is_dir() and out.resolve() in source.resolve().parents:
                raise InputError(f"{option} is a folder holding the input {source}; choose another output", out)
    for i, (option, out) in enumerate(given):
        for other, path in given[:i]:
            if same_file(out, path):
                raise InputError(f"{option} and {other} name the same file; give each its own path", out)
