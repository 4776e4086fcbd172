"""Shared fixtures: data folder, CLI runner, small generated scenes and bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s5cli_tests import scenes

os.environ.setdefault("S5_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The committed fake datasets (each folder has the data.py that wrote it)."""
    return Path(__file__).parent / "data"


@pytest.fixture()
def runner():
    """A Typer CLI runner (stderr captured separately)."""
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture()
def scene_rgb(tmp_path: Path) -> Path:
    """96 x 80 uint8 RGB scene in EPSG:32633 with a nodata border."""
    return scenes.make_scene(tmp_path / "scene_rgb.tif")


@pytest.fixture()
def scene_u16(tmp_path: Path) -> Path:
    """96 x 80 uint16 4-band scene in EPSG:32633 with a nodata border."""
    return scenes.make_scene(tmp_path / "scene_u16.tif", bands=4, dtype="uint16")


@pytest.fixture()
def scene_no_crs(tmp_path: Path) -> Path:
    """A raster without CRS."""
    return scenes.make_scene(tmp_path / "no_crs.tif", crs=None)


@pytest.fixture()
def not_a_raster(tmp_path: Path) -> Path:
    """A text file named .tif."""
    return scenes.make_not_a_raster(tmp_path / "text.tif")


@pytest.fixture()
def truncated_tif(tmp_path: Path, scene_rgb: Path) -> Path:
    """The first third of a GeoTIFF."""
    return scenes.make_truncated(tmp_path / "truncated.tif", scene_rgb)
