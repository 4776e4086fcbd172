"""Every committed fake dataset is exactly what its data.py writes (decoded pixels, text, georeferencing)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from s5cli_tests.datasets.conftest import load_generator

DATA = Path(__file__).parent / "data"
FOLDERS = sorted(p.name for p in DATA.iterdir() if (p / "data.py").is_file())


def files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "data.py" and "__pycache__" not in p.parts
    )


def same_content(a: Path, b: Path) -> None:
    suffix = a.suffix.lower()
    if suffix in (".tif", ".tiff"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(a) as ra, rasterio.open(b) as rb:
                assert np.array_equal(ra.read(), rb.read()), a
                assert ra.crs == rb.crs and ra.transform == rb.transform and ra.dtypes == rb.dtypes, a
    elif suffix in (".png", ".jpg", ".jpeg"):
        ia, ib = Image.open(a), Image.open(b)
        assert ia.mode == ib.mode, a
        assert np.array_equal(np.asarray(ia), np.asarray(ib)), a
    else:
        assert a.read_bytes() == b.read_bytes(), a


BENCHMARKS = [
    "potsdam",
    "vaihingen",
    "loveda",
    "openearthmap",
    "isaid",
    "dior-r",
    "dota-v1.0",
    "dota-v1.5",
    "dota-v2.0",
]


def test_every_dataset_folder_has_a_generator() -> None:
    assert set(BENCHMARKS) | {"million-aid"} <= set(FOLDERS)


@pytest.mark.parametrize("name", FOLDERS)
def test_committed_files_match_the_generator(name: str, tmp_path: Path) -> None:
    load_generator(DATA / name / "data.py").create(tmp_path)
    committed, regenerated = files(DATA / name), files(tmp_path)
    assert committed == regenerated
    for rel in committed:
        same_content(DATA / name / rel, tmp_path / rel)


def test_fake_benchmarks_are_small() -> None:
    total = sum(p.stat().st_size for name in BENCHMARKS for p in (DATA / name).rglob("*") if p.is_file())
    assert total < 300_000
