"""Fixtures for the dataset tests: fresh copies of the fake datasets made by their generators."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image


def load_generator(script: Path) -> ModuleType:
    """Import a fake dataset's data.py by path (folder names like dota-v1.0 are not importable)."""
    name = "fake_" + script.parent.name.replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def fake(tmp_path: Path, data_dir: Path) -> Callable[[str], Path]:
    """make(name) writes a fresh copy of s5cli_tests/data/<name> under tmp_path and returns its root."""

    def make(name: str) -> Path:
        root = tmp_path / name
        load_generator(data_dir / name / "data.py").create(root)
        return root

    return make


def truncate(path: Path) -> Path:
    """Cut a file to half its size (a broken download)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def read_rgb(path: Path, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(H, W, 3) colours of a label file, independently of the loaders."""
    if path.suffix == ".tif":
        import rasterio
        from rasterio.windows import Window

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ISPRS labels carry no georeferencing
            with rasterio.open(path) as src:
                data = src.read([1, 2, 3], window=Window(*window) if window else None)
        return data.transpose(1, 2, 0)
    arr = np.asarray(Image.open(path).convert("RGB"))
    if window:
        c, r, w, h = window
        arr = arr[r : r + h, c : c + w]
    return arr
