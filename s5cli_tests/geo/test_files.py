from pathlib import Path

import pytest

from s5cli.errors import InputError, OutputExistsError
from s5cli.geo.files import atomic_output, check_input, check_output, within_root


def test_check_output_refuses_existing(tmp_path: Path) -> None:
    out = tmp_path / "a.tif"
    out.write_text("keep")
    with pytest.raises(OutputExistsError) as info:
        check_output(out)
    assert "--overwrite" in info.value.message and str(out) in info.value.message
    assert check_output(out, overwrite=True) == out


def test_atomic_output_renames_on_success(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "a.txt"
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and tmp.suffix == ".txt"
        tmp.write_text("done")
        assert not out.exists()
    assert out.read_text() == "done"
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed midway")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_old_file(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(OSError), atomic_output(out, overwrite=True) as tmp:
        tmp.write_text("ha")
        raise OSError(28, "No space left on device")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_directory(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    with atomic_output(out, directory=True) as tmp:
        (tmp / "x.txt").write_text("1")
    assert (out / "x.txt").read_text() == "1"
    with pytest.raises(OutputExistsError):
        check_output(out)


def test_check_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        check_input(tmp_path / "missing.tif")
    empty = tmp_path / "empty.tif"
    empty.touch()
    with pytest.raises(InputError, match="is empty"):
        check_input(empty)


def test_within_root(tmp_path: Path) -> None:
    assert within_root(tmp_path, "a/b.tif") == (tmp_path / "a/b.tif").resolve()
    with pytest.raises(InputError, match="escapes"):
        within_root(tmp_path, "../../etc/passwd")
    with pytest.raises(InputError, match="escapes"):  # untrusted data: an absolute path must stay inside too
        within_root(tmp_path, "/abs/path.tif")
    assert within_root(tmp_path, tmp_path / "a.tif") == (tmp_path / "a.tif").resolve()
    with pytest.raises(InputError, match="escapes"):
        within_root(tmp_path, "/vsicurl/http://localhost/x.tif")
